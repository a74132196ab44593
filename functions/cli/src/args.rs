//! The command line, as clap reads it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use instapipe_core::account::LoginFlavour;

pub use crate::output::OutputFormat;

#[derive(Debug, Parser)]
#[command(name = "instapipe", version, about = "Operate instapipe: accounts, posts, CSV imports and the failure queues")]
#[command(after_help = "Configured like the functions (TABLE_NAME, SCHEDULE_GROUP, ... and the AWS_* variables), \
from the environment or an --env-file; `instapipe --local ...` works against `make run`. \
See the README's \"Operator CLI\" section.")]
pub struct Cli {
    /// `text` for people, `json` for scripts (one JSON object; shapes in the README)
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// Read the configuration (KEY=value lines) from this file; its values win over the environment
    #[arg(long, global = true, env = ENV_FILE_VAR, value_name = "FILE")]
    pub env_file: Option<PathBuf>,
    /// Against the local stack: read .instapipe/local.env, which `make run` writes (looked for in
    /// the current directory and its parents; over --env-file)
    #[arg(long, global = true)]
    pub local: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// The variable that names an env file, as `--env-file` does (`make run` writes to it too).
pub const ENV_FILE_VAR: &str = "INSTAPIPE_ENV_FILE";
/// Where `make run` writes the local stack's environment, from the project root.
pub const LOCAL_ENV_FILE: &str = ".instapipe/local.env";

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Instagram accounts and their tokens
    #[command(subcommand)]
    Accounts(AccountsCommand),
    /// Posts: list, show, cancel, retry
    #[command(subcommand)]
    Posts(PostsCommand),
    /// Routes of ROUTING_CONFIG and their signing secrets (set, rotate, list; never printed)
    #[command(subcommand)]
    Routes(RoutesCommand),
    /// Schedule posts from a CSV file (columns: caption,media,accounts,publish_at,options)
    Import(ImportArgs),
    /// API keys of the posts API: create (shown once), list, revoke
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Events Lambda could not deliver (the on-failure queues): show them, deliver them again
    #[command(subcommand)]
    Queues(QueuesCommand),
    /// An MCP server over stdio for AI assistants: post through the posts API
    /// (reads INSTAPIPE_API_URL and INSTAPIPE_API_KEY from the environment)
    Mcp,
}

#[derive(Debug, Subcommand)]
pub enum AccountsCommand {
    /// Store an account's token (Secrets Manager) and the account; waiting posts continue
    Add(AddArgs),
    /// Log in with Meta in a browser and store the account it connects, as `add` does
    /// (prints the authorize URL, opens $BROWSER when set, waits on a loopback callback)
    Connect(ConnectArgs),
    /// Every account: login, token expiry, status, latest API usage
    List(ListAccountsArgs),
    /// Refresh an account's long-lived token now
    Refresh { id: String },
}

#[derive(Args)]
pub struct AddArgs {
    /// The Instagram professional account id
    pub id: String,
    /// The access token, or `-` to read it from stdin (keeps it out of the shell history)
    #[arg(long)]
    pub token: String,
    #[arg(long, value_enum, default_value_t = Login::Instagram)]
    pub login: Login,
    /// The token is short-lived: exchange it for a long-lived one first
    #[arg(long)]
    pub exchange: bool,
}

/// Never shows the token.
impl std::fmt::Debug for AddArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AddArgs").field("id", &self.id).field("login", &self.login).field("exchange", &self.exchange).finish_non_exhaustive()
    }
}

#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// Instagram Login (no Facebook Page needed) or Facebook Login (the Page's Instagram account)
    #[arg(long, value_enum, default_value_t = Login::Instagram)]
    pub flavour: Login,
    /// The Meta app id (Instagram Login: the Instagram app id); default: INSTAGRAM_APP_ID /
    /// FACEBOOK_APP_ID, else the Meta app secret's instagram_app_id / facebook_app_id
    #[arg(long)]
    pub app_id: Option<String>,
    /// Read the app secret from the first line of stdin instead of the Meta app secret in
    /// Secrets Manager (it is never a flag: flags end up in shell histories and process lists)
    #[arg(long)]
    pub app_secret_stdin: bool,
    /// Port of the loopback callback http://127.0.0.1:PORT/callback (0: any free one); Meta
    /// accepts only redirect URIs registered in the app, so register it with a fixed port
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Facebook Login: the Page whose Instagram account to connect (needed when there are several)
    #[arg(long)]
    pub page: Option<String>,
    /// Seconds to wait for the login to come back
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
}

#[derive(Debug, Args)]
pub struct ListAccountsArgs {
    /// Also read each account's publishing quota from Instagram (one call per account)
    #[arg(long)]
    pub quota: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Login {
    /// Instagram API with Instagram Login (graph.instagram.com)
    Instagram,
    /// Instagram API with Facebook Login for Business (graph.facebook.com)
    Facebook,
}

impl From<Login> for LoginFlavour {
    fn from(login: Login) -> LoginFlavour {
        match login {
            Login::Instagram => LoginFlavour::Instagram,
            Login::Facebook => LoginFlavour::Facebook,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum RoutesCommand {
    /// Every route: its tenant, accounts, and what verifies it (own secrets by fingerprint, the
    /// shared secret, nothing)
    List,
    /// A route's signing secrets (Secrets Manager `<ROUTE_SECRET_PREFIX><source>/<tenant>`)
    #[command(subcommand)]
    Secret(RouteSecretCommand),
}

#[derive(Debug, Subcommand)]
pub enum RouteSecretCommand {
    /// Replace the route's secrets with one (from --secret -, or generated and shown once)
    Set(RouteSecretArgs),
    /// Add a secret, keeping the others (a rotation: both verify until the old is removed)
    Add(RouteSecretArgs),
    /// Remove the secret with this fingerprint (the end of a rotation; never the last one)
    Remove {
        #[command(flatten)]
        route: RouteArgs,
        /// As `routes list` shows it (8 hex digits)
        #[arg(long)]
        fingerprint: String,
    },
}

#[derive(Debug, Args)]
pub struct RouteArgs {
    /// shopify, contentful, wordpress or eventbridge
    pub source: String,
    /// The shop domain, the site URL, the Contentful space id or the EventBridge event source
    pub tenant: String,
}

#[derive(Args)]
pub struct RouteSecretArgs {
    #[command(flatten)]
    pub route: RouteArgs,
    /// The secret, `-` to read it from stdin (keeps it out of the shell history); without it a
    /// new secret is generated and shown once (not for Shopify, which makes its own)
    #[arg(long)]
    pub secret: Option<String>,
}

/// Never shows the secret.
impl std::fmt::Debug for RouteSecretArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteSecretArgs").field("route", &self.route).field("secret_given", &self.secret.is_some()).finish()
    }
}

#[derive(Debug, Subcommand)]
pub enum PostsCommand {
    /// Destinations, newest first (one line per post and account)
    List(ListPostsArgs),
    /// A post: overall state, and per account its state, ids, permalink, failure and history
    Show { id: String },
    /// Cancel every account of a post not yet publishing
    Cancel { id: String },
    /// Re-queue a FAILED destination from the step it failed at
    Retry {
        id: String,
        /// Only this account (default: every FAILED account of the post)
        #[arg(long)]
        account: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct ListPostsArgs {
    /// A destination state: SCHEDULED, QUEUED, PROCESSING, READY, PUBLISHING, PUBLISHED, FAILED, AWAITING_AUTH, DEFERRED, CANCELLED
    #[arg(long)]
    pub state: Option<String>,
    #[arg(long)]
    pub account: Option<String>,
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Make a key for some accounts (or all) and print it once; only its SHA-256 is stored
    Create(CreateKeyArgs),
    /// Every key: id, name, scope, created, last used (noted at most once a minute)
    List,
    /// Revoke a key by its id or name: refused (401) from the next request on
    Revoke {
        /// The id `keys list` shows, or the key's name
        key: String,
    },
}

#[derive(Debug, Args)]
pub struct CreateKeyArgs {
    /// Who uses it, e.g. "shop-a cms" (unique)
    #[arg(long)]
    pub name: String,
    /// The Instagram accounts it may post to and read, comma-separated
    #[arg(long, value_delimiter = ',', required_unless_present = "all_accounts", conflicts_with = "all_accounts")]
    pub accounts: Vec<String>,
    /// Every account, present and future (an admin key)
    #[arg(long)]
    pub all_accounts: bool,
    /// It may read posts but not create, edit or cancel them
    #[arg(long)]
    pub read_only: bool,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    pub file: PathBuf,
    /// Check every row and report; write nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Subcommand)]
pub enum QueuesCommand {
    /// Every message of the async on-failure queue and the stream failure queue (left in them):
    /// function, post and account, Lambda's condition and the error, when, how often
    Show {
        /// Only this function's messages (e.g. create-container, or the deployed name)
        #[arg(long)]
        function: Option<String>,
    },
    /// Invoke each failed asynchronous event's function again with its event, and re-arm the
    /// destinations of each failed stream batch; a message is deleted once that was accepted
    Redrive {
        /// Say what would be done; do nothing
        #[arg(long)]
        dry_run: bool,
        /// Only this function's messages (e.g. create-container, or the deployed name)
        #[arg(long)]
        function: Option<String>,
    },
}
