//! `GET /posts?state=&account=&limit=&cursor=`: newest first, one entry per post, a page at a
//! time, within the calling key's scope. A key reads only the partitions of its own accounts
//! (a key with several is listed by merging theirs), so neither its pages nor their lengths
//! tell anything about other keys' posts.

use std::collections::BTreeMap;

use futures::StreamExt;
use lambda_http::{Body, Request, Response};

use super::cursor::{At, Lane, Position};
use super::view::{PostView, PostsPage};
use super::{DEFAULT_LIMIT, MAX_LIMIT, load};
use crate::deps::Ingest;
use crate::handlers::edge;
use crate::post::{DestState, Destination};
use crate::sources::RequestError;
use crate::store::api_keys::{Accounts, ApiKey};
use crate::store::{DestinationQuery, Page};
use super::changes::unavailable;

fn bad_cursor() -> RequestError {
    RequestError::field(400, "invalid_query", "cursor", "not a cursor this API returned to this key for these filters")
}

/// How a key's listing is read.
enum Plan {
    /// The key may see nothing the filters ask for.
    Nothing,
    /// One listing of the store (an account, a state, or everything for an all-accounts key).
    One(DestinationQuery),
    /// The key's accounts, each listed, merged newest first.
    Merged(Vec<String>),
}

pub async fn list(deps: &Ingest, request: &Request, key: &ApiKey) -> Result<Response<Body>, RequestError> {
    let mut query = DestinationQuery { limit: DEFAULT_LIMIT, ..DestinationQuery::default() };
    let mut cursor = None;
    for (name, value) in edge::query_params(request, &["state", "account", "limit", "cursor"])? {
        let bad = |message: String| RequestError::field(400, "invalid_query", name.clone(), message);
        match name.as_str() {
            "state" => {
                let state = serde_json::from_value::<DestState>(serde_json::Value::String(value.clone()));
                query.state = Some(state.map_err(|_| bad(format!("{value:?} is not a destination state")))?);
            }
            "account" => {
                if value.is_empty() || value.len() > 20 || !value.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad("an Instagram account id is 1 to 20 digits".into()));
                }
                query.account = Some(value);
            }
            "limit" => {
                query.limit = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| bad(format!("a number from 1 to {MAX_LIMIT}")))?;
            }
            // An empty cursor is the first page, as no cursor is (clients send `cursor=` for it).
            _ if value.is_empty() => {}
            _ => cursor = Some(value),
        }
    }
    // The cursor is checked before anything is read: made by this server, for this key and
    // these filters.
    let position = match &cursor {
        None => None,
        Some(cursor) => {
            let position = deps.cursor_key.open(&key.hash, cursor).ok_or_else(bad_cursor)?;
            if position.state != query.state || position.account != query.account {
                return Err(bad_cursor());
            }
            Some(position.at)
        }
    };
    let plan = match (&key.scope.accounts, &query.account) {
        // Another key's account: from this key's side, it has no posts.
        (_, Some(account)) if !key.scope.allows(account) => Plan::Nothing,
        (Accounts::All, _) | (_, Some(_)) => Plan::One(query.clone()),
        (Accounts::Only(accounts), None) => match accounts.len() {
            0 => Plan::Nothing,
            1 => Plan::One(DestinationQuery { account: accounts.first().cloned(), ..query.clone() }),
            _ => Plan::Merged(accounts.iter().cloned().collect()),
        },
    };
    let (destinations, next) = match plan {
        Plan::Nothing => match position {
            None => (Vec::new(), None),
            Some(_) => return Err(bad_cursor()),
        },
        Plan::One(mut one) => {
            one.cursor = match position {
                None => None,
                Some(At::One(cursor)) => Some(cursor),
                Some(At::Merged(_)) => return Err(bad_cursor()),
            };
            let page = match deps.store.query_destinations(&one).await {
                Ok(page) => page,
                Err(crate::Error::Data(_)) if one.cursor.is_some() => return Err(bad_cursor()),
                Err(err) => return Err(unavailable(err)),
            };
            (page.items, page.next_cursor.map(At::One))
        }
        Plan::Merged(accounts) => {
            let lanes = match position {
                None => accounts.iter().map(|a| (a.clone(), Lane::Start)).collect(),
                Some(At::Merged(lanes)) if lanes.keys().eq(accounts.iter()) => lanes,
                Some(_) => return Err(bad_cursor()),
            };
            merged_page(deps, lanes, query.state, query.limit).await?
        }
    };
    let next_cursor = next.map(|at| deps.cursor_key.seal(&key.hash, &Position { state: query.state, account: query.account.clone(), at }));
    let posts = posts_of(deps, &query, key, &destinations).await?;
    Ok(edge::json(200, &PostsPage { posts, next_cursor }))
}

/// The next `limit` destinations of several accounts, newest first, and where each account's
/// listing then stands. Each account is read from where it stood; a destination is given only
/// when no account still to be read could hold a newer one, so the merge is in order and a
/// page may be short. `state` is applied here, after the merge.
async fn merged_page(
    deps: &Ingest,
    mut lanes: BTreeMap<String, Lane>,
    state: Option<DestState>,
    limit: usize,
) -> Result<(Vec<Destination>, Option<At>), RequestError> {
    let query = |account: &str, cursor: Option<String>| DestinationQuery { account: Some(account.to_string()), state: None, limit, cursor };
    let open: Vec<(String, Option<String>)> = lanes
        .iter()
        .filter_map(|(account, lane)| match lane {
            Lane::Start => Some((account.clone(), None)),
            Lane::After(cursor) => Some((account.clone(), Some(cursor.clone()))),
            Lane::Done => None,
        })
        .collect();
    let read: Vec<(String, Result<Page<Destination>, crate::Error>)> = futures::stream::iter(open)
        .map(|(account, cursor)| {
            let q = query(&account, cursor.clone());
            async move { (account, deps.store.query_destinations(&q).await) }
        })
        .buffered(4)
        .collect()
        .await;
    let newest_first = |d: &Destination| std::cmp::Reverse((d.created_at, d.post_id.clone(), d.account_id.clone()));
    let mut pages: BTreeMap<String, Page<Destination>> = BTreeMap::new();
    for (account, page) in read {
        let page = match page {
            Ok(page) => page,
            Err(crate::Error::Data(_)) => return Err(bad_cursor()),
            Err(err) => return Err(unavailable(err)),
        };
        pages.insert(account, page);
    }
    // Nothing older than the oldest destination read of an account with more to read may be
    // given yet: that account may hold newer ones further on.
    let mut frontier = None;
    for page in pages.values().filter(|p| p.next_cursor.is_some()) {
        // None: an empty page with more to read; read on, and give nothing this time.
        let oldest = page.items.last().map(newest_first);
        frontier = match (frontier, oldest) {
            (None, oldest) => Some(oldest),
            (Some(None), _) | (_, None) => Some(None),
            (Some(Some(f)), Some(o)) => Some(Some(std::cmp::min(f, o))),
        };
    }
    let mut all: Vec<&Destination> = pages.values().flat_map(|p| p.items.iter()).collect();
    all.sort_by_key(|d| newest_first(d));
    let given: Vec<Destination> = all
        .into_iter()
        .filter(|d| match &frontier {
            None => true,
            Some(None) => false,
            Some(Some(f)) => newest_first(d) <= *f,
        })
        .take(limit)
        .cloned()
        .collect();
    for (account, page) in &pages {
        let last_given = given.iter().rev().find(|d| d.account_id == *account);
        let lane = match (last_given, page.items.last()) {
            // All of this page was given (or it was empty): continue after it.
            (Some(g), Some(last)) if g.post_id == last.post_id => page.next_cursor.clone().map_or(Lane::Done, Lane::After),
            (None, None) => page.next_cursor.clone().map_or(Lane::Done, Lane::After),
            (Some(g), _) => {
                Lane::After(deps.store.destination_cursor(&query(account, None), g).map_err(unavailable)?)
            }
            (None, Some(_)) => continue,
        };
        lanes.insert(account.clone(), lane);
    }
    let next = lanes.values().any(|l| *l != Lane::Done).then_some(At::Merged(lanes));
    let given = given.into_iter().filter(|d| state.is_none_or(|s| d.state == s)).collect();
    Ok((given, next))
}

/// Each post once, in page order, as the key may see it.
async fn posts_of(deps: &Ingest, query: &DestinationQuery, key: &ApiKey, page: &[Destination]) -> Result<Vec<PostView>, RequestError> {
    // With the accounts it was found with on this page.
    let mut found: Vec<(String, Vec<String>)> = Vec::new();
    for d in page {
        match found.iter_mut().find(|(p, _)| *p == d.post_id) {
            Some((_, accounts)) => accounts.push(d.account_id.clone()),
            None => found.push((d.post_id.clone(), vec![d.account_id.clone()])),
        }
    }
    let loaded: Vec<_> = futures::stream::iter(found)
        .map(|(post_id, accounts)| async move { (load(deps, &post_id).await, accounts) })
        .buffered(8)
        .collect()
        .await;
    let mut posts = Vec::new();
    for (result, accounts) in loaded {
        let (post, destinations) = match result {
            Ok(found) => found,
            Err(err) if err.status == 404 => continue,
            Err(err) => return Err(err),
        };
        // A post that also goes to an account outside the key's scope is not the key's.
        if !key.scope.sees(&post.accounts) || listed_on_another_page(query, &destinations, &accounts) {
            continue;
        }
        posts.push(PostView::new(post, destinations));
    }
    Ok(posts)
}

/// A post with several matching destinations is listed once: with the first of them by
/// account id, so pages that hold its other destinations skip it.
fn listed_on_another_page(query: &DestinationQuery, destinations: &[Destination], found_with: &[String]) -> bool {
    let matches = |d: &&Destination| {
        query.state.is_none_or(|s| d.state == s) && query.account.as_ref().is_none_or(|a| d.account_id == *a)
    };
    match destinations.iter().filter(matches).map(|d| d.account_id.as_str()).min() {
        Some(first) => !found_with.iter().any(|a| a == first),
        // It changed since the page was read: show it as it is now.
        None => false,
    }
}
