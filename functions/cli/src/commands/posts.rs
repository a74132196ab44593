//! `instapipe posts list | show | cancel | retry`.

use std::io::Write;

use instapipe_core::Error;
use instapipe_core::handlers::posts_api::changes;
use instapipe_core::post::{DestState, Destination, Post, overall_state};
use instapipe_core::store::DestinationQuery;
use time::OffsetDateTime;

use super::{CliError, Ctx, Result, when, when_opt};

pub const MAX_LIST: usize = 1000;

pub fn list_query(state: Option<&str>, account: Option<String>, limit: usize) -> Result<DestinationQuery> {
    let state = match state {
        None => None,
        Some(s) => Some(
            serde_json::from_value::<DestState>(serde_json::Value::String(s.trim().to_ascii_uppercase()))
                .map_err(|_| CliError(format!("--state {s:?} is not a destination state (SCHEDULED, QUEUED, PROCESSING, READY, PUBLISHING, PUBLISHED, FAILED, AWAITING_AUTH, DEFERRED, CANCELLED)")))?,
        ),
    };
    if let Some(account) = &account {
        super::accounts::check_account_id(account)?;
    }
    if !(1..=MAX_LIST).contains(&limit) {
        return Err(CliError(format!("--limit is a number from 1 to {MAX_LIST}")));
    }
    Ok(DestinationQuery { account, state, limit, cursor: None })
}

/// Destinations, newest first, one line each, up to `query.limit`.
pub async fn list(ctx: &Ctx, query: DestinationQuery, out: &mut dyn Write) -> Result<Vec<Destination>> {
    let store = ctx.store();
    let limit = query.limit;
    let mut query = DestinationQuery { limit: limit.min(100), ..query };
    let mut found = Vec::new();
    loop {
        let page = store.query_destinations(&query).await?;
        found.extend(page.items);
        match page.next_cursor {
            Some(cursor) if found.len() < limit => query.cursor = Some(cursor),
            _ => break,
        }
    }
    found.truncate(limit);
    writeln!(out, "{:<26} {:<20} {:<13} {:<20} UPDATED", "POST", "ACCOUNT", "STATE", "PUBLISH AT")?;
    for d in &found {
        writeln!(out, "{:<26} {:<20} {:<13} {:<20} {}", d.post_id, d.account_id, d.state.as_str(), when_opt(d.publish_at), when(d.updated_at))?;
    }
    if found.is_empty() {
        writeln!(out, "(none)")?;
    }
    Ok(found)
}

/// The post's overall state and, per account, its state, ids, permalink, failure and history.
pub async fn show(ctx: &Ctx, post_id: &str, out: &mut dyn Write) -> Result<(Post, Vec<Destination>)> {
    let store = ctx.store();
    let post = store.get_post(post_id).await?.ok_or_else(|| CliError(format!("no post {post_id}")))?;
    let destinations = store.list_destinations(post_id).await?;
    writeln!(out, "post {}  {}", post.post_id, overall_state(&destinations).as_str())?;
    writeln!(out, "  source      {} ({})", post.source, post.source_event_id)?;
    writeln!(out, "  created     {}", when(post.created_at))?;
    writeln!(out, "  publish at  {}", post.publish_at.map_or_else(|| "now".to_string(), when))?;
    writeln!(out, "  caption     {}", post.caption.replace('\n', "\n              "))?;
    for item in &post.media {
        let kind = serde_json::to_value(item.kind).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
        writeln!(out, "  media       {kind} {}", item.url)?;
    }
    for d in &destinations {
        writeln!(out, "\n  account {}  {}", d.account_id, d.state.as_str())?;
        if let Some(container) = &d.container_id {
            let children = if d.children.is_empty() { String::new() } else { format!(" (children {})", d.children.join(", ")) };
            writeln!(out, "    container  {container}{children}")?;
        }
        if let Some(media) = &d.media_id {
            writeln!(out, "    media      {media}")?;
        }
        if let Some(link) = &d.permalink {
            writeln!(out, "    permalink  {link}")?;
        }
        if let Some(f) = &d.failure {
            let codes = match (f.code, f.subcode) {
                (Some(c), Some(s)) => format!(" (code {c}, subcode {s})"),
                (Some(c), None) => format!(" (code {c})"),
                _ => String::new(),
            };
            writeln!(out, "    failure    {}{codes}", f.reason)?;
        }
        if let Some(until) = d.deferred_until.filter(|_| d.state == DestState::Deferred) {
            writeln!(out, "    waiting    until {}", when(until))?;
        }
        if !d.orphaned_containers.is_empty() {
            writeln!(out, "    left behind (never published; they expire after 24 h)")?;
        }
        for o in &d.orphaned_containers {
            let id = o.container_id.as_deref().unwrap_or("(id unknown)");
            let children = if o.children.is_empty() { String::new() } else { format!(" (children {})", o.children.join(", ")) };
            writeln!(out, "      {}  {id}{children}  {}", when(o.at), o.reason)?;
        }
        writeln!(out, "    history")?;
        for change in &d.history {
            let note = change.note.as_deref().map(|n| format!("  {n}")).unwrap_or_default();
            writeln!(out, "      {}  {:<13}{note}", when(change.at), change.state.as_str())?;
        }
    }
    Ok((post, destinations))
}

/// Cancels every account not yet publishing (the posts API's `DELETE /posts/{id}`).
pub async fn cancel(ctx: &Ctx, post_id: &str, out: &mut dyn Write) -> Result<Vec<Destination>> {
    let ingest = ctx.ingest().await?;
    let (_, destinations) = changes::cancel(&ingest, post_id).await?;
    writeln!(out, "post {post_id}: {}", overall_state(&destinations).as_str())?;
    for d in &destinations {
        writeln!(out, "  account {}  {}", d.account_id, d.state.as_str())?;
    }
    Ok(destinations)
}

/// Re-queues the post's FAILED destinations (or only `account`'s), each where
/// [`Destination::operator_retry`] says. The stream then hands a QUEUED one to
/// create-container and a READY one to publish.
pub async fn retry(ctx: &Ctx, post_id: &str, account: Option<&str>, out: &mut dyn Write) -> Result<Vec<(String, DestState)>> {
    let store = ctx.store();
    if store.get_post(post_id).await?.is_none() {
        return Err(CliError(format!("no post {post_id}")));
    }
    let destinations = store.list_destinations(post_id).await?;
    let chosen: Vec<Destination> = match account {
        Some(account) => {
            let d = destinations
                .into_iter()
                .find(|d| d.account_id == account)
                .ok_or_else(|| CliError(format!("post {post_id} has no destination for account {account}")))?;
            vec![d]
        }
        None => destinations.into_iter().filter(|d| d.state == DestState::Failed).collect(),
    };
    if chosen.is_empty() {
        return Err(CliError(format!("post {post_id} has no FAILED account to retry")));
    }
    let now = OffsetDateTime::now_utc();
    let mut retried = Vec::new();
    for mut d in chosen {
        let target = d.operator_retry(now).map_err(|err| CliError(err.to_string()))?;
        match store.save_destination(&mut d).await {
            Ok(()) => {}
            Err(Error::Conflict(_)) => {
                return Err(CliError(format!("account {} changed while retrying; look at it again (`posts show`)", d.account_id)));
            }
            Err(err) => return Err(err.into()),
        }
        writeln!(out, "account {}: FAILED → {}", d.account_id, target.as_str())?;
        retried.push((d.account_id, target));
    }
    Ok(retried)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_arguments_are_checked() {
        let q = list_query(Some("failed"), Some("1784".into()), 5).unwrap();
        assert_eq!((q.state, q.limit), (Some(DestState::Failed), 5));
        assert!(list_query(Some("DONE"), None, 5).is_err());
        assert!(list_query(None, Some("abc".into()), 5).is_err());
        assert!(list_query(None, None, 0).is_err());
    }
}
