//! `instapipe`: see `instapipe --help` and the README's "Operator CLI".

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    // Logs (warnings and errors of the shared code) go to stderr; RUST_LOG changes the filter.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let cli = instapipe_cli::Cli::parse();
    let result = async {
        // The MCP server talks to the posts API over HTTP, not to AWS: it needs none of their settings.
        if matches!(cli.command, instapipe_cli::args::Command::Mcp) {
            return instapipe_cli::commands::mcp::serve_from_env().await.map(|_| 0);
        }
        let ctx = instapipe_cli::context_from_env().await?;
        instapipe_cli::run(cli, &ctx, &mut std::io::stdout().lock()).await
    };
    match result.await {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(2)
        }
    }
}
