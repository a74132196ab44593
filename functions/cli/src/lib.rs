//! `instapipe`, the operator CLI: accounts and their tokens, posts, bulk scheduling from CSV,
//! and the posts API's keys.
//!
//! It talks to the same table, secrets and schedules as the functions, configured the same way:
//! [`Config::from_env`] for instapipe's variables, the SDK's standard `AWS_*` variables
//! (`AWS_ENDPOINT_URL_*` included) for where AWS is. `main.rs` only parses the arguments; each
//! command group lives in its own module under [`commands`] and writes what it has to say to a
//! writer, so the end-to-end tests run the very same functions.

pub mod args;
pub mod commands;
pub mod output;

use std::io::Write;
use std::path::{Path, PathBuf};

use instapipe_core::config::Config;
use instapipe_core::deps::AwsClients;

pub use args::Cli;
pub use output::OutputFormat;
pub use commands::{Ctx, CliError};

/// Runs one parsed command; the returned code is the process's exit code (0: all went well,
/// 1: done, but some rows or accounts had a problem the output names). With `--output json` the
/// commands' text goes nowhere and one JSON object (see [`output`]) is written instead.
pub async fn run(cli: Cli, ctx: &Ctx, out: &mut dyn Write) -> Result<u8, CliError> {
    use args::{AccountsCommand, Command, PostsCommand, QueuesCommand};
    let mut no_text = std::io::sink();
    let (text, json): (&mut dyn Write, Option<&mut dyn Write>) = match cli.output {
        output::OutputFormat::Text => (out, None),
        output::OutputFormat::Json => (&mut no_text, Some(out)),
    };
    match cli.command {
        Command::Accounts(AccountsCommand::Add(add)) => {
            let token = commands::accounts::read_token(&add.token, &mut std::io::stdin().lock())?;
            let request = commands::accounts::AddAccount { account_id: add.id.clone(), token, login: add.login.into(), exchange: add.exchange };
            let added = commands::accounts::add(ctx, request, text).await?;
            if let Some(out) = json {
                output::write_json(out, &output::AddedJson::new(&add.id, &added, &ctx.config.account_secret_prefix()))?;
            }
            Ok(0)
        }
        Command::Accounts(AccountsCommand::Connect(args)) => {
            let app_secret = if args.app_secret_stdin {
                Some(commands::accounts::read_token("-", &mut std::io::stdin().lock()).map_err(|_| CliError("--app-secret-stdin: the first line of stdin is empty".into()))?)
            } else {
                None
            };
            if args.page.is_some() && matches!(args.flavour, args::Login::Instagram) {
                return Err(CliError("--page chooses a Facebook Page: use it with --flavour facebook".into()));
            }
            let request = commands::connect::ConnectRequest {
                login: args.flavour.into(),
                app_id: args.app_id,
                app_secret,
                port: args.port,
                page: args.page,
                timeout: std::time::Duration::from_secs(args.timeout),
            };
            let open = commands::connect::open_with_browser_var;
            let connected = commands::connect::connect(ctx, request, &open, &mut std::io::stderr(), text).await?;
            if let Some(out) = json {
                output::write_json(out, &output::ConnectedJson::new(&connected, ctx.config.account_secret_prefix()))?;
            }
            Ok(0)
        }
        Command::Accounts(AccountsCommand::List(list)) => {
            let rows = commands::accounts::list(ctx, list.quota, text).await?;
            if let Some(out) = json {
                output::write_json(out, &output::AccountsJson::from(rows.as_slice()))?;
            }
            Ok(0)
        }
        Command::Accounts(AccountsCommand::Refresh { id }) => {
            let (code, results) = commands::accounts::refresh(ctx, &id, text).await?;
            if let Some(out) = json {
                output::write_json(out, &output::RefreshedJson::from(results.as_slice()))?;
            }
            Ok(code)
        }
        Command::Posts(PostsCommand::List(list)) => {
            let query = commands::posts::list_query(list.state.as_deref(), list.account, list.limit)?;
            let found = commands::posts::list(ctx, query, text).await?;
            if let Some(out) = json {
                output::write_json(out, &output::DestinationsJson::from(found.as_slice()))?;
            }
            Ok(0)
        }
        Command::Posts(PostsCommand::Show { id }) => {
            let (post, destinations) = commands::posts::show(ctx, &id, text).await?;
            if let Some(out) = json {
                output::write_json(out, &output::PostJson::new(&post, &destinations))?;
            }
            Ok(0)
        }
        Command::Posts(PostsCommand::Cancel { id }) => {
            let destinations = commands::posts::cancel(ctx, &id, text).await?;
            if let Some(out) = json {
                output::write_json(out, &output::CancelledJson::new(&id, &destinations))?;
            }
            Ok(0)
        }
        Command::Posts(PostsCommand::Retry { id, account }) => {
            let retried = commands::posts::retry(ctx, &id, account.as_deref(), text).await?;
            if let Some(out) = json {
                output::write_json(out, &output::RetriedJson::new(&id, &retried))?;
            }
            Ok(0)
        }
        Command::Routes(routes) => commands::routes::run(ctx, routes, &mut std::io::stdin().lock(), text, json).await,
        Command::Keys(keys) => {
            use commands::keys;
            match keys {
                args::KeysCommand::Create(create) => {
                    let accounts = (!create.all_accounts).then_some(create.accounts);
                    let new = keys::NewKey { name: create.name, accounts, read_only: create.read_only };
                    let created = keys::create(ctx, new, text).await?;
                    if let Some(out) = json {
                        output::write_json(out, &keys::CreatedJson { key: created.key, stored: (&created.stored).into() })?;
                    }
                }
                args::KeysCommand::List => {
                    let found = keys::list(ctx, text).await?;
                    if let Some(out) = json {
                        output::write_json(out, &keys::KeysJson { keys: found.iter().map(Into::into).collect() })?;
                    }
                }
                args::KeysCommand::Revoke { key } => {
                    let revoked = keys::revoke(ctx, &key, text).await?;
                    if let Some(out) = json {
                        output::write_json(out, &keys::RevokedJson { revoked: (&revoked).into() })?;
                    }
                }
            }
            Ok(0)
        }
        Command::Queues(QueuesCommand::Show { function }) => {
            let deps = commands::queues::QueueDeps::from_env().await;
            let shown = commands::queues::show(&deps, function.as_deref(), text).await?;
            if let Some(out) = json {
                output::write_json(out, &shown)?;
            }
            Ok(0)
        }
        Command::Queues(QueuesCommand::Redrive { dry_run, function }) => {
            let deps = commands::queues::QueueDeps::from_env().await;
            let options = commands::queues::RedriveOptions { dry_run, function };
            let (code, redriven) = commands::queues::redrive(ctx, &deps, &options, text).await?;
            if let Some(out) = json {
                output::write_json(out, &redriven)?;
            }
            Ok(code)
        }
        Command::Mcp => commands::mcp::serve_from_env().await.map(|_| 0),
        Command::Import(import) => {
            let file = std::fs::File::open(&import.file)
                .map_err(|e| CliError(format!("cannot open {}: {e}", import.file.display())))?;
            let options = commands::import::ImportOptions { dry_run: import.dry_run, progress: commands::import::Progress::Auto };
            let report = commands::import::import(ctx, file, options, text).await?;
            if let Some(out) = json {
                output::write_json(out, &output::ImportJson::new(&report, import.dry_run))?;
            }
            Ok(u8::from(!report.bad.is_empty()))
        }
    }
}

/// The env file the command line names: `--env-file FILE` (or `INSTAPIPE_ENV_FILE`), or with
/// `--local` the `.instapipe/local.env` of the current directory or of the nearest parent.
pub fn env_file(cli: &Cli) -> Result<Option<PathBuf>, CliError> {
    if !cli.local {
        return Ok(cli.env_file.clone());
    }
    let cwd = std::env::current_dir().map_err(|e| CliError(format!("cannot read the current directory: {e}")))?;
    cwd.ancestors().map(|dir| dir.join(args::LOCAL_ENV_FILE)).find(|file| file.is_file()).map(Some).ok_or_else(|| {
        CliError(format!(
            "--local: no {} in {} or its parents; `make run` writes it while the local stack runs",
            args::LOCAL_ENV_FILE,
            cwd.display()
        ))
    })
}

/// The file's variables: `KEY=value` lines (dotenv syntax: `#` comments, quotes, `export `).
pub fn read_env_file(path: &Path) -> Result<Vec<(String, String)>, CliError> {
    let context = |e: dotenvy::Error| CliError(format!("env file {}: {e}", path.display()));
    dotenvy::from_path_iter(path).map_err(context)?.map(|item| item.map_err(context)).collect()
}

/// The context from the process environment.
pub async fn context_from_env() -> Result<Ctx, CliError> {
    let config = Config::from_env()?;
    Ok(Ctx::new(AwsClients::from_env().await, config))
}
