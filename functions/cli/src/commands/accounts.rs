//! `instapipe accounts add | list | refresh`.

use std::io::{BufRead, Write};

use instapipe_core::account::{Account, AccountStatus, LoginFlavour};
use instapipe_core::handlers::reauth::register_account;
use instapipe_core::handlers::refresh_tokens::{self, AccountResult, Outcome, RefreshEvent};
use instapipe_core::store::AccountStore;
use secrecy::SecretString;
use time::OffsetDateTime;

use super::{CliError, Ctx, Result, when, when_opt};

/// `--token VALUE`, or `--token -`: the first line of stdin. The token is never echoed.
pub fn read_token(arg: &str, stdin: &mut dyn BufRead) -> Result<SecretString> {
    let token = if arg == "-" {
        let mut line = String::new();
        stdin.read_line(&mut line).map_err(|e| CliError(format!("cannot read the token from stdin: {e}")))?;
        line.trim().to_string()
    } else {
        arg.trim().to_string()
    };
    if token.is_empty() {
        return Err(CliError("the token is empty".into()));
    }
    Ok(SecretString::from(token))
}

pub struct AddAccount {
    pub account_id: String,
    pub token: SecretString,
    pub login: LoginFlavour,
    /// The token is short-lived: exchange it for a long-lived one first.
    pub exchange: bool,
}

#[derive(Debug)]
pub struct Added {
    pub login: LoginFlavour,
    /// The short-lived token was exchanged for a long-lived one.
    pub exchanged: bool,
    pub token_expires_at: Option<OffsetDateTime>,
    /// Posts that were waiting for this account (AWAITING_AUTH) and continue now.
    pub resumed: usize,
}

pub fn check_account_id(id: &str) -> Result<()> {
    if id.is_empty() || id.len() > 20 || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CliError(format!("{id:?} is not an Instagram account id (1 to 20 digits)")));
    }
    Ok(())
}

pub fn login_name(login: LoginFlavour) -> &'static str {
    match login {
        LoginFlavour::Instagram => "instagram",
        LoginFlavour::Facebook => "facebook",
    }
}

pub fn status_name(status: AccountStatus) -> &'static str {
    match status {
        AccountStatus::Active => "ACTIVE",
        AccountStatus::NeedsReauth => "NEEDS_REAUTH",
    }
}

/// Stores the token as a new version of the account's secret, then the account item (ACTIVE),
/// then sends the account's waiting posts on.
pub async fn add(ctx: &Ctx, request: AddAccount, out: &mut dyn Write) -> Result<Added> {
    let AddAccount { account_id, token, login, exchange } = request;
    check_account_id(&account_id)?;
    let refresh = ctx.token_refresh()?;
    let (token, token_expires_at) = if exchange {
        let issued = refresh
            .api
            .exchange_token(login, &token)
            .await
            .map_err(|e| CliError(format!("Instagram did not exchange the token: {e}")))?;
        let expires = issued.expires_in.map(|secs| OffsetDateTime::now_utc() + std::time::Duration::from_secs(secs));
        (issued.access_token, expires)
    } else {
        (token, None)
    };
    let resumed = register_account(&ctx.pipeline()?, refresh.tokens.as_ref(), &account_id, login, &token, token_expires_at).await?;
    writeln!(
        out,
        "account {account_id} stored ({} login{}), token in Secrets Manager under {}{account_id}; token expires {}",
        login_name(login),
        if exchange { ", exchanged for a long-lived token" } else { "" },
        ctx.config.account_secret_prefix(),
        token_expires_at.map_or_else(|| "unknown (the next refresh-tokens run refreshes it)".to_string(), when),
    )?;
    writeln!(out, "{resumed} waiting destination(s) resumed")?;
    Ok(Added { login, exchanged: exchange, token_expires_at, resumed })
}

/// An account as `accounts list` shows it.
#[derive(Debug)]
pub struct AccountRow {
    pub account: Account,
    /// The highest figure of Meta's latest usage header, in percent.
    pub usage_percent: Option<u32>,
    /// While the account's calls wait for its usage to fall.
    pub paused_until: Option<OffsetDateTime>,
    /// With `--quota`: (usage, total) of the 24-hour publishing quota, or why it was not read.
    pub quota: Option<std::result::Result<(u32, Option<u32>), String>>,
}

/// One line per account: login, status, token expiry, latest API usage (and the quota).
pub async fn list(ctx: &Ctx, quota: bool, out: &mut dyn Write) -> Result<Vec<AccountRow>> {
    let accounts = ctx.accounts().list_accounts().await?;
    let refresh = if quota { Some(ctx.token_refresh()?) } else { None };
    let now = OffsetDateTime::now_utc();
    writeln!(out, "{:<20} {:<9} {:<12} {:<32} {:<8} {}", "ACCOUNT", "LOGIN", "STATUS", "TOKEN EXPIRES", "USAGE", if quota { "QUOTA (24 h)" } else { "" })?;
    let mut rows = Vec::new();
    for account in accounts {
        let usage = ctx.store().get_account_usage(&account.account_id).await?;
        let latest = usage.as_ref().and_then(|u| u.latest.map(|l| l.highest()));
        let paused_until = usage.as_ref().and_then(|u| u.waiting_until(now));
        let quota = match &refresh {
            None => None,
            Some(refresh) => Some(match refresh.tokens.token(&account.account_id).await {
                Err(e) => Err(e.to_string()),
                Ok(token) => refresh.api.publishing_quota(&account, &token).await.map(|q| (q.usage, q.total)).map_err(|e| e.to_string()),
            }),
        };
        let row = AccountRow { account, usage_percent: latest, paused_until, quota };
        let expiry = match row.account.token_expires_at {
            None => "unknown".to_string(),
            Some(at) if at <= now => format!("{} (expired)", when(at)),
            Some(at) => format!("{} ({}d)", when(at), (at - now).whole_days()),
        };
        let usage = match (row.usage_percent, row.paused_until) {
            (None, _) => "-".to_string(),
            (Some(latest), None) => format!("{latest}%"),
            (Some(latest), Some(until)) => format!("{latest}% (paused until {})", when(until)),
        };
        let quota = match &row.quota {
            None => String::new(),
            Some(Err(e)) => format!("? ({e})"),
            Some(Ok((usage, total))) => total.map_or_else(|| format!("{usage} used"), |t| format!("{usage}/{t}")),
        };
        writeln!(
            out,
            "{:<20} {:<9} {:<12} {:<32} {:<8} {}",
            row.account.account_id,
            login_name(row.account.login),
            status_name(row.account.status),
            expiry,
            usage,
            quota
        )?;
        rows.push(row);
    }
    if rows.is_empty() {
        writeln!(out, "(no accounts; add one with `instapipe accounts add ID --token -`)")?;
    }
    Ok(rows)
}

/// Refreshes one account's token now, whatever its expiry. Exit code 1 unless it was refreshed;
/// and what happened to each account.
pub async fn refresh(ctx: &Ctx, account_id: &str, out: &mut dyn Write) -> Result<(u8, Vec<AccountResult>)> {
    check_account_id(account_id)?;
    let deps = ctx.token_refresh()?;
    let event = RefreshEvent { account_id: Some(account_id.to_string()), force: true };
    let report = refresh_tokens::handle(&deps, event).await?;
    let mut code = 0;
    for result in &report.accounts {
        let text = match &result.outcome {
            Outcome::Refreshed { expires_at } => format!("refreshed; the new token expires {}", when_opt(*expires_at)),
            Outcome::NotDue => "not due".to_string(),
            Outcome::Busy => {
                code = 1;
                "another refresh holds this account right now; try again in a while".to_string()
            }
            Outcome::AwaitingReauth => {
                code = 1;
                "needs a new login: store a new token with `instapipe accounts add`".to_string()
            }
            Outcome::NeedsReauth { reason } => {
                code = 1;
                format!("refused ({reason}); marked NEEDS_REAUTH: store a new token with `instapipe accounts add`")
            }
            Outcome::Failed { error } => {
                code = 1;
                format!("not refreshed this time: {error}")
            }
        };
        writeln!(out, "account {}: {text}", result.account_id)?;
    }
    Ok((code, report.accounts))
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn the_token_comes_from_the_argument_or_stdin() {
        let mut empty: &[u8] = b"";
        assert_eq!(read_token(" IGAA-x ", &mut empty).unwrap().expose_secret(), "IGAA-x");
        let mut stdin: &[u8] = b"IGAA-from-stdin\nrest";
        assert_eq!(read_token("-", &mut stdin).unwrap().expose_secret(), "IGAA-from-stdin");
        let mut blank: &[u8] = b"\n";
        assert!(read_token("-", &mut blank).is_err());
    }

    #[test]
    fn account_ids_are_digits() {
        assert!(check_account_id("17841400000000001").is_ok());
        for bad in ["", "12a", "123456789012345678901"] {
            assert!(check_account_id(bad).is_err(), "{bad}");
        }
    }
}
