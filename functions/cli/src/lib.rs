//! `instapipe`, the operator CLI: accounts and their tokens, posts, and bulk scheduling from CSV.
//!
//! It talks to the same table, secrets and schedules as the functions, configured the same way:
//! [`Config::from_env`] for instapipe's variables, the SDK's standard `AWS_*` variables
//! (`AWS_ENDPOINT_URL_*` included) for where AWS is. `main.rs` only parses the arguments; each
//! command group lives in its own module under [`commands`] and writes what it has to say to a
//! writer, so the end-to-end tests run the very same functions.

pub mod args;
pub mod commands;

use std::io::Write;

use instapipe_core::config::Config;
use instapipe_core::deps::AwsClients;

pub use args::Cli;
pub use commands::{Ctx, CliError};

/// Runs one parsed command; the returned code is the process's exit code (0: all went well,
/// 1: done, but some rows or accounts had a problem the output names).
pub async fn run(cli: Cli, ctx: &Ctx, out: &mut dyn Write) -> Result<u8, CliError> {
    use args::{AccountsCommand, Command, PostsCommand};
    match cli.command {
        Command::Accounts(AccountsCommand::Add(add)) => {
            let token = commands::accounts::read_token(&add.token, &mut std::io::stdin().lock())?;
            let request = commands::accounts::AddAccount { account_id: add.id, token, login: add.login.into(), exchange: add.exchange };
            commands::accounts::add(ctx, request, out).await.map(|_| 0)
        }
        Command::Accounts(AccountsCommand::List(list)) => commands::accounts::list(ctx, list.quota, out).await.map(|_| 0),
        Command::Accounts(AccountsCommand::Refresh { id }) => commands::accounts::refresh(ctx, &id, out).await,
        Command::Posts(PostsCommand::List(list)) => {
            let query = commands::posts::list_query(list.state.as_deref(), list.account, list.limit)?;
            commands::posts::list(ctx, query, out).await.map(|_| 0)
        }
        Command::Posts(PostsCommand::Show { id }) => commands::posts::show(ctx, &id, out).await.map(|_| 0),
        Command::Posts(PostsCommand::Cancel { id }) => commands::posts::cancel(ctx, &id, out).await.map(|_| 0),
        Command::Posts(PostsCommand::Retry { id, account }) => {
            commands::posts::retry(ctx, &id, account.as_deref(), out).await.map(|_| 0)
        }
        Command::Mcp => commands::mcp::serve_from_env().await.map(|_| 0),
        Command::Import(import) => {
            let file = std::fs::File::open(&import.file)
                .map_err(|e| CliError(format!("cannot open {}: {e}", import.file.display())))?;
            let options = commands::import::ImportOptions { dry_run: import.dry_run, progress: commands::import::Progress::Auto };
            let report = commands::import::import(ctx, file, options, out).await?;
            Ok(u8::from(!report.bad.is_empty()))
        }
    }
}

/// The context from the process environment.
pub async fn context_from_env() -> Result<Ctx, CliError> {
    let config = Config::from_env()?;
    Ok(Ctx::new(AwsClients::from_env().await, config))
}
