//! `instapipe`: see `instapipe --help` and the README's "Operator CLI".

use std::process::ExitCode;

use clap::Parser;
use instapipe_cli::CliError;

fn main() -> ExitCode {
    // Logs (warnings and errors of the shared code) go to stderr; RUST_LOG changes the filter.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let cli = instapipe_cli::Cli::parse();
    if let Err(err) = apply_env_file(&cli) {
        eprintln!("error: {err}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(async {
        let ctx = instapipe_cli::context_from_env().await?;
        instapipe_cli::run(cli, &ctx, &mut std::io::stdout().lock()).await
    });
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(2)
        }
    }
}

/// Puts the env file's variables into the environment, over what was there: the functions'
/// configuration and the AWS SDK read them from there.
fn apply_env_file(cli: &instapipe_cli::Cli) -> Result<(), CliError> {
    let Some(path) = instapipe_cli::env_file(cli)? else { return Ok(()) };
    for (name, value) in instapipe_cli::read_env_file(&path)? {
        // SAFETY: only this thread runs yet (the runtime and its threads start afterwards).
        unsafe { std::env::set_var(name, value) };
    }
    Ok(())
}
