//! `--output json`: one JSON object per command on stdout, for scripts.
//!
//! The shapes are this module's own types (not the stored items'), so they stay stable when the
//! table's items change; the README's "Operator CLI" lists them. Times are RFC 3339 in UTC to
//! the second; states are the destination states (`PUBLISHED`, `FAILED`, …); a field without a
//! value is `null` (never left out); lists are empty rather than missing.

use std::io::Write;

use instapipe_core::handlers::refresh_tokens::{AccountResult, Outcome};
use instapipe_core::post::{DestState, Destination, Post, overall_state};
use serde::Serialize;
use time::OffsetDateTime;

use crate::commands::accounts::{Added, AccountRow, login_name, status_name};
use crate::commands::import::ImportReport;
use crate::commands::{Result, when};

/// How a command prints what it found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Columns and sentences for people
    #[default]
    Text,
    /// One JSON object (shapes in the README's "Operator CLI")
    Json,
}

/// Writes `value` as pretty-printed JSON and a line break.
pub fn write_json(out: &mut dyn Write, value: &impl Serialize) -> Result<()> {
    serde_json::to_writer_pretty(&mut *out, value).map_err(|e| crate::CliError(format!("cannot write the output: {e}")))?;
    writeln!(out)?;
    Ok(())
}

fn at(t: Option<OffsetDateTime>) -> Option<String> {
    t.map(when)
}

// accounts list ---------------------------------------------------------------------------

#[derive(Serialize)]
pub struct AccountsJson {
    pub accounts: Vec<AccountJson>,
}

#[derive(Serialize)]
pub struct AccountJson {
    pub account_id: String,
    /// `instagram` or `facebook`
    pub login: &'static str,
    /// `ACTIVE` or `NEEDS_REAUTH`
    pub status: &'static str,
    pub token_expires_at: Option<String>,
    /// The highest figure of Meta's latest usage header, in percent.
    pub usage_percent: Option<u32>,
    /// Set while the account's calls wait for its usage to fall.
    pub paused_until: Option<String>,
    /// With `--quota`: the 24-hour publishing quota, or why it could not be read.
    pub quota: Option<QuotaJson>,
    pub quota_error: Option<String>,
}

#[derive(Serialize)]
pub struct QuotaJson {
    pub usage: u32,
    pub total: Option<u32>,
}

impl From<&[AccountRow]> for AccountsJson {
    fn from(rows: &[AccountRow]) -> AccountsJson {
        let accounts = rows
            .iter()
            .map(|row| {
                let (quota, quota_error) = match &row.quota {
                    None => (None, None),
                    Some(Ok((usage, total))) => (Some(QuotaJson { usage: *usage, total: *total }), None),
                    Some(Err(e)) => (None, Some(e.clone())),
                };
                AccountJson {
                    account_id: row.account.account_id.clone(),
                    login: login_name(row.account.login),
                    status: status_name(row.account.status),
                    token_expires_at: at(row.account.token_expires_at),
                    usage_percent: row.usage_percent,
                    paused_until: at(row.paused_until),
                    quota,
                    quota_error,
                }
            })
            .collect();
        AccountsJson { accounts }
    }
}

// accounts add / refresh ------------------------------------------------------------------

#[derive(Serialize)]
pub struct AddedJson {
    pub account_id: String,
    pub login: &'static str,
    /// The short-lived token was exchanged for a long-lived one (`--exchange`).
    pub exchanged: bool,
    /// Where the token is (Secrets Manager); never the token.
    pub secret_name: String,
    pub token_expires_at: Option<String>,
    /// Destinations that were waiting for this account (AWAITING_AUTH) and continue now.
    pub resumed: usize,
}

impl AddedJson {
    pub fn new(account_id: &str, added: &Added, secret_prefix: &str) -> AddedJson {
        AddedJson {
            account_id: account_id.to_string(),
            login: login_name(added.login),
            exchanged: added.exchanged,
            secret_name: format!("{secret_prefix}{account_id}"),
            token_expires_at: at(added.token_expires_at),
            resumed: added.resumed,
        }
    }
}

/// `accounts connect`: who was connected (never the token).
#[derive(Serialize)]
pub struct ConnectedJson {
    pub account_id: String,
    pub username: Option<String>,
    pub login: &'static str,
    pub secret_name: String,
    /// `null`: the token does not expire (a Facebook Page token).
    pub token_expires_at: Option<String>,
    /// Facebook Login: the Page whose token is stored.
    pub page: Option<instapipe_core::oauth::Page>,
    pub resumed: usize,
}

impl ConnectedJson {
    pub fn new(connected: &crate::commands::connect::ConnectedAccount, secret_prefix: &str) -> ConnectedJson {
        ConnectedJson {
            account_id: connected.account_id.clone(),
            username: connected.username.clone(),
            login: login_name(connected.login),
            secret_name: format!("{secret_prefix}{}", connected.account_id),
            token_expires_at: at(connected.token_expires_at),
            page: connected.page.clone(),
            resumed: connected.resumed,
        }
    }
}

#[derive(Serialize)]
pub struct RefreshedJson {
    pub accounts: Vec<RefreshedAccountJson>,
}

#[derive(Serialize)]
pub struct RefreshedAccountJson {
    pub account_id: String,
    /// `refreshed`, `not_due`, `busy`, `awaiting_reauth`, `needs_reauth` or `failed`
    pub outcome: &'static str,
    /// With `refreshed`: when the new token expires (when Meta said).
    pub expires_at: Option<String>,
    /// With `needs_reauth` and `failed`: why.
    pub reason: Option<String>,
}

impl From<&[AccountResult]> for RefreshedJson {
    fn from(results: &[AccountResult]) -> RefreshedJson {
        let accounts = results
            .iter()
            .map(|r| {
                let (outcome, expires_at, reason) = match &r.outcome {
                    Outcome::Refreshed { expires_at } => ("refreshed", at(*expires_at), None),
                    Outcome::NotDue => ("not_due", None, None),
                    Outcome::Busy => ("busy", None, None),
                    Outcome::AwaitingReauth => ("awaiting_reauth", None, None),
                    Outcome::NeedsReauth { reason } => ("needs_reauth", None, Some(reason.clone())),
                    Outcome::Failed { error } => ("failed", None, Some(error.clone())),
                };
                RefreshedAccountJson { account_id: r.account_id.clone(), outcome, expires_at, reason }
            })
            .collect();
        RefreshedJson { accounts }
    }
}

// posts list / show / cancel / retry ------------------------------------------------------

#[derive(Serialize)]
pub struct DestinationsJson {
    pub destinations: Vec<DestinationRowJson>,
}

/// One post on one account (a line of `posts list`).
#[derive(Serialize)]
pub struct DestinationRowJson {
    pub post_id: String,
    pub account_id: String,
    pub state: &'static str,
    pub publish_at: Option<String>,
    pub updated_at: String,
    pub media_id: Option<String>,
    pub permalink: Option<String>,
    /// Why it failed (FAILED).
    pub failure: Option<String>,
}

impl From<&[Destination]> for DestinationsJson {
    fn from(found: &[Destination]) -> DestinationsJson {
        let destinations = found
            .iter()
            .map(|d| DestinationRowJson {
                post_id: d.post_id.clone(),
                account_id: d.account_id.clone(),
                state: d.state.as_str(),
                publish_at: at(d.publish_at),
                updated_at: when(d.updated_at),
                media_id: d.media_id.clone(),
                permalink: d.permalink.clone(),
                failure: d.failure.as_ref().map(|f| f.reason.clone()),
            })
            .collect();
        DestinationsJson { destinations }
    }
}

#[derive(Serialize)]
pub struct PostJson {
    pub post_id: String,
    /// The post's overall state: `SCHEDULED`, `IN_PROGRESS`, `PUBLISHED`, `PARTIALLY_FAILED`, `FAILED`, `CANCELLED`
    pub state: &'static str,
    pub source: String,
    pub source_event_id: String,
    pub created_at: String,
    /// `null`: as soon as possible.
    pub publish_at: Option<String>,
    pub caption: String,
    pub media: Vec<MediaJson>,
    pub accounts: Vec<PostAccountJson>,
}

#[derive(Serialize)]
pub struct MediaJson {
    #[serde(rename = "type")]
    pub kind: String,
    pub url: String,
}

#[derive(Serialize)]
pub struct PostAccountJson {
    pub account_id: String,
    pub state: &'static str,
    pub container_id: Option<String>,
    /// A carousel's item containers.
    pub children: Vec<String>,
    pub media_id: Option<String>,
    pub permalink: Option<String>,
    pub failure: Option<FailureJson>,
    /// DEFERRED: when it is tried again.
    pub waiting_until: Option<String>,
    pub history: Vec<ChangeJson>,
}

#[derive(Serialize)]
pub struct FailureJson {
    pub reason: String,
    /// Meta's error code and subcode, when Meta refused.
    pub code: Option<i64>,
    pub subcode: Option<i64>,
}

#[derive(Serialize)]
pub struct ChangeJson {
    pub at: String,
    pub state: &'static str,
    pub note: Option<String>,
}

impl PostJson {
    pub fn new(post: &Post, destinations: &[Destination]) -> PostJson {
        let media = post
            .media
            .iter()
            .map(|item| MediaJson {
                kind: serde_json::to_value(item.kind).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default(),
                url: item.url.clone(),
            })
            .collect();
        let accounts = destinations
            .iter()
            .map(|d| PostAccountJson {
                account_id: d.account_id.clone(),
                state: d.state.as_str(),
                container_id: d.container_id.clone(),
                children: d.children.clone(),
                media_id: d.media_id.clone(),
                permalink: d.permalink.clone(),
                failure: d.failure.as_ref().map(|f| FailureJson {
                    reason: f.reason.clone(),
                    code: f.code,
                    subcode: f.subcode,
                }),
                waiting_until: at(d.deferred_until.filter(|_| d.state == DestState::Deferred)),
                history: d
                    .history
                    .iter()
                    .map(|c| ChangeJson { at: when(c.at), state: c.state.as_str(), note: c.note.clone() })
                    .collect(),
            })
            .collect();
        PostJson {
            post_id: post.post_id.clone(),
            state: overall_state(destinations).as_str(),
            source: post.source.clone(),
            source_event_id: post.source_event_id.clone(),
            created_at: when(post.created_at),
            publish_at: at(post.publish_at),
            caption: post.caption.clone(),
            media,
            accounts,
        }
    }
}

/// `posts cancel`: the post's state after, and each account's.
#[derive(Serialize)]
pub struct CancelledJson {
    pub post_id: String,
    pub state: &'static str,
    pub accounts: Vec<AccountStateJson>,
}

#[derive(Serialize)]
pub struct AccountStateJson {
    pub account_id: String,
    pub state: &'static str,
}

impl CancelledJson {
    pub fn new(post_id: &str, destinations: &[Destination]) -> CancelledJson {
        CancelledJson {
            post_id: post_id.to_string(),
            state: overall_state(destinations).as_str(),
            accounts: destinations.iter().map(|d| AccountStateJson { account_id: d.account_id.clone(), state: d.state.as_str() }).collect(),
        }
    }
}

/// `posts retry`: the accounts sent back to work and the state each starts again from.
#[derive(Serialize)]
pub struct RetriedJson {
    pub post_id: String,
    pub retried: Vec<AccountStateJson>,
}

impl RetriedJson {
    pub fn new(post_id: &str, retried: &[(String, DestState)]) -> RetriedJson {
        RetriedJson {
            post_id: post_id.to_string(),
            retried: retried.iter().map(|(account_id, state)| AccountStateJson { account_id: account_id.clone(), state: state.as_str() }).collect(),
        }
    }
}

// import ----------------------------------------------------------------------------------

#[derive(Serialize)]
pub struct ImportJson {
    pub dry_run: bool,
    /// Data rows read (blank lines not counted).
    pub rows: usize,
    pub scheduled: Vec<LinePostJson>,
    /// With `--dry-run`: the rows that would be scheduled.
    pub would_schedule: Vec<LineJson>,
    pub already_imported: Vec<LinePostJson>,
    /// Same content as an earlier row of the file (imported once).
    pub repeated: Vec<RepeatedJson>,
    pub bad: Vec<BadRowJson>,
}

#[derive(Serialize)]
pub struct LineJson {
    pub line: u64,
}

#[derive(Serialize)]
pub struct LinePostJson {
    pub line: u64,
    pub post_id: String,
}

#[derive(Serialize)]
pub struct RepeatedJson {
    pub line: u64,
    pub first_line: u64,
}

#[derive(Serialize)]
pub struct BadRowJson {
    pub line: u64,
    pub reason: String,
}

impl ImportJson {
    pub fn new(report: &ImportReport, dry_run: bool) -> ImportJson {
        let line_post = |rows: &[(u64, String)]| rows.iter().map(|(line, post_id)| LinePostJson { line: *line, post_id: post_id.clone() }).collect();
        ImportJson {
            dry_run,
            rows: report.scheduled.len() + report.would_schedule.len() + report.already.len() + report.repeated.len() + report.bad.len(),
            scheduled: line_post(&report.scheduled),
            would_schedule: report.would_schedule.iter().map(|&line| LineJson { line }).collect(),
            already_imported: line_post(&report.already),
            repeated: report.repeated.iter().map(|&(line, first_line)| RepeatedJson { line, first_line }).collect(),
            bad: report.bad.iter().map(|b| BadRowJson { line: b.line, reason: b.reason.clone() }).collect(),
        }
    }
}
