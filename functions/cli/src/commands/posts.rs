//! `instapipe posts list | show | cancel | retry`.

use std::io::Write;

use instapipe_core::Error;
use instapipe_core::handlers::posts_api::changes;
use instapipe_core::post::{DestState, Destination, Post, overall_state};
use instapipe_core::store::DestinationQuery;
use time::OffsetDateTime;

use super::{CliError, Ctx, Result, when, when_opt};

/// A Meta container lives 24 hours; an older one is made again rather than published.
const CONTAINER_LIFETIME: time::Duration = time::Duration::hours(24);
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

/// Where a FAILED destination starts again: READY when its container had finished (and has
/// not expired since), so only media_publish is repeated; otherwise QUEUED, with the old
/// containers forgotten so they are made again.
pub fn retry_target(d: &Destination, now: OffsetDateTime) -> std::result::Result<DestState, String> {
    if d.state != DestState::Failed {
        return Err(format!("account {} is {}, not FAILED: nothing to retry", d.account_id, d.state));
    }
    // Since the containers were last (re)made: the last QUEUED in the history.
    let since = d.history.iter().rposition(|c| c.state == DestState::Queued).unwrap_or(0);
    let finished = d.history[since..].iter().any(|c| c.state == DestState::Ready);
    let fresh = d.container_created_at.is_none_or(|at| now - at < CONTAINER_LIFETIME);
    Ok(if d.container_id.is_some() && finished && fresh { DestState::Ready } else { DestState::Queued })
}

/// Moves a FAILED destination back to work (see [`retry_target`]), clears the failure and
/// records why in the history.
pub fn apply_retry(d: &mut Destination, now: OffsetDateTime) -> std::result::Result<DestState, String> {
    let target = retry_target(d, now)?;
    let was = d.failure.as_ref().map(|f| format!(" (failed: {})", f.reason)).unwrap_or_default();
    let note = match target {
        DestState::Ready => format!("retried by an operator: publishing container {} again{was}", d.container_id.as_deref().unwrap_or("?")),
        _ => format!("retried by an operator: creating the container again{was}"),
    };
    d.move_to(target, now, Some(note)).map_err(|e| e.to_string())?;
    d.failure = None;
    d.resume_state = None;
    d.deferred_until = None;
    if target == DestState::Queued {
        d.container_id = None;
        d.children.clear();
        d.children_ready = 0;
        d.container_created_at = None;
        d.recreated = false;
        // Their schedules have fired and are gone (ActionAfterCompletion DELETE).
        d.create_retries = 0;
    }
    Ok(target)
}

/// Re-queues the post's FAILED destinations (or only `account`'s). The stream then hands a
/// QUEUED one to create-container and a READY one to publish.
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
        let target = apply_retry(&mut d, now).map_err(CliError)?;
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
    use instapipe_core::post::{Failure, MediaItem, MediaKind, Post, PostRequest};
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-23 10:00 UTC);

    fn destination() -> Destination {
        let request = PostRequest {
            caption: "c".into(),
            media: vec![MediaItem::new("https://example.com/a.jpg", MediaKind::Image)],
            accounts: vec!["1784".into()],
            ..PostRequest::default()
        };
        Post::new("P1".into(), "csv", "k", request, NOW).destinations(NOW).remove(0)
    }

    #[test]
    fn a_failure_before_any_container_goes_back_to_queued() {
        let mut d = destination();
        d.fail(Failure::new("media could not be fetched"), NOW).unwrap();
        assert_eq!(apply_retry(&mut d, NOW), Ok(DestState::Queued));
        assert_eq!(d.state, DestState::Queued);
        assert!(d.failure.is_none());
        let note = d.history.last().unwrap().note.clone().unwrap();
        assert!(note.contains("retried by an operator") && note.contains("media could not be fetched"), "{note}");
    }

    #[test]
    fn a_finished_container_goes_back_to_ready_and_keeps_its_id() {
        let mut d = destination();
        d.move_to(DestState::Processing, NOW, None).unwrap();
        d.container_id = Some("C1".into());
        d.container_created_at = Some(NOW);
        d.move_to(DestState::Ready, NOW, None).unwrap();
        d.move_to(DestState::Publishing, NOW, None).unwrap();
        d.fail(Failure { reason: "publish refused".into(), code: Some(2), ..Failure::default() }, NOW).unwrap();
        assert_eq!(apply_retry(&mut d, NOW + time::Duration::hours(1)), Ok(DestState::Ready));
        assert_eq!(d.container_id.as_deref(), Some("C1"));
        assert!(d.failure.is_none());
    }

    #[test]
    fn a_container_that_failed_processing_or_expired_is_made_again() {
        // Processing ended in ERROR: never READY.
        let mut d = destination();
        d.move_to(DestState::Processing, NOW, None).unwrap();
        d.container_id = Some("C1".into());
        d.container_created_at = Some(NOW);
        d.create_retries = 3;
        d.fail(Failure::new("status ERROR"), NOW).unwrap();
        assert_eq!(apply_retry(&mut d, NOW), Ok(DestState::Queued));
        assert_eq!((d.container_id.as_deref(), d.container_created_at, d.create_retries), (None, None, 0));

        // Finished, but more than 24 h ago.
        let mut d = destination();
        d.move_to(DestState::Processing, NOW, None).unwrap();
        d.container_id = Some("C1".into());
        d.container_created_at = Some(NOW);
        d.move_to(DestState::Ready, NOW, None).unwrap();
        d.fail(Failure::new("quota"), NOW).unwrap();
        assert_eq!(retry_target(&d, NOW + time::Duration::hours(25)), Ok(DestState::Queued));

        // READY before a recreate does not count for the new container.
        let mut d = destination();
        d.move_to(DestState::Processing, NOW, None).unwrap();
        d.move_to(DestState::Ready, NOW, None).unwrap();
        d.recreate("expired", NOW).unwrap();
        d.move_to(DestState::Processing, NOW, None).unwrap();
        d.container_id = Some("C2".into());
        d.fail(Failure::new("status ERROR"), NOW).unwrap();
        assert_eq!(retry_target(&d, NOW), Ok(DestState::Queued));
    }

    #[test]
    fn only_failed_destinations_are_retried() {
        let mut d = destination();
        assert!(apply_retry(&mut d, NOW).is_err(), "QUEUED");
        d.move_to(DestState::Cancelled, NOW, None).unwrap();
        assert!(apply_retry(&mut d, NOW).is_err(), "CANCELLED");
        assert_eq!(d.state, DestState::Cancelled);
    }

    #[test]
    fn list_arguments_are_checked() {
        let q = list_query(Some("failed"), Some("1784".into()), 5).unwrap();
        assert_eq!((q.state, q.limit), (Some(DestState::Failed), 5));
        assert!(list_query(Some("DONE"), None, 5).is_err());
        assert!(list_query(None, Some("abc".into()), 5).is_err());
        assert!(list_query(None, None, 0).is_err());
    }
}
