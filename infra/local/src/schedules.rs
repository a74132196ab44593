//! Fires due EventBridge Scheduler schedules (moto stores them but never fires them): delivers
//! each one-time schedule's input to its target function, then deletes it, as
//! ActionAfterCompletion DELETE does.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_scheduler::Client;
use instapipe_core::scheduler::parse_at_expression;
use time::OffsetDateTime;

use crate::functions::Function;
use crate::lambda::{AsyncInvoker, Dice};
use crate::stream::Duplicator;

/// The functions schedules may target, by ARN (a `:$LATEST` or alias qualifier is ignored, so
/// an on-failure record's functionArn can be a target again).
pub struct Targets {
    by_arn: HashMap<String, Function>,
}

impl Targets {
    pub fn new(create_container_arn: &str, poll_status_arn: &str) -> Targets {
        let mut by_arn: HashMap<String, Function> =
            [Function::Sweep, Function::RefreshTokens].into_iter().map(|f| (crate::lambda::function_arn(f.name()), f)).collect();
        by_arn.insert(create_container_arn.to_string(), Function::CreateContainer);
        by_arn.insert(poll_status_arn.to_string(), Function::PollStatus);
        Targets { by_arn }
    }

    pub fn function(&self, arn: &str) -> Option<Function> {
        self.by_arn.get(arn).copied().or_else(|| {
            // arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]
            let unqualified = arn.splitn(8, ':').take(7).collect::<Vec<_>>().join(":");
            self.by_arn.get(&unqualified).copied()
        })
    }
}

/// How the firer departs from the schedule: up to `lateness` late (seeded by `dice`), and the
/// firings `duplicates` picks delivered twice (Scheduler delivers at least once).
pub struct Firing {
    pub lateness: Duration,
    pub dice: Dice,
    pub duplicates: Arc<Duplicator>,
}

impl Firing {
    pub fn on_time() -> Firing {
        Firing { lateness: Duration::ZERO, dice: Dice::new(0), duplicates: Arc::new(Duplicator::off()) }
    }
}

/// Fires due schedules forever, invoking their targets asynchronously through `invoker`.
pub async fn run(client: Client, group: String, targets: Arc<Targets>, invoker: Arc<AsyncInvoker>, firing: Firing) {
    let mut seen: HashMap<String, Option<Seen>> = HashMap::new();
    loop {
        if let Err(err) = fire_due(&client, &group, &targets, &invoker, &firing, &mut seen).await {
            tracing::warn!(error = %err, "reading schedules failed; trying again");
        }
        tokio::time::sleep(TICK).await;
    }
}

/// How often the firer looks for due schedules: with the second-precision `at()` expressions, a
/// schedule fires at most a second and a tick after its time.
const TICK: Duration = Duration::from_millis(100);

/// A listed schedule as read once (None: not a one-time `at()` schedule). Schedules are never
/// changed in place, only deleted and made anew under another name, so each name is read once:
/// a tick costs one list call, not a read per pending schedule, however many are pending.
struct Seen {
    /// Its time plus the lateness the firer gives it, drawn when it is read.
    fires_at: OffsetDateTime,
    arn: String,
    input: serde_json::Value,
}

async fn fire_due(
    client: &Client,
    group: &str,
    targets: &Arc<Targets>,
    invoker: &Arc<AsyncInvoker>,
    firing: &Firing,
    seen: &mut HashMap<String, Option<Seen>>,
) -> Result<(), String> {
    let mut names = Vec::new();
    let mut pages = client.list_schedules().group_name(group).into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| format!("{e:?}"))?;
        names.extend(page.schedules().iter().filter_map(|s| s.name().map(str::to_string)));
    }
    let now = OffsetDateTime::now_utc();
    seen.retain(|name, _| names.contains(name));
    for name in names {
        if !seen.contains_key(&name) {
            let schedule = match client.get_schedule().group_name(group).name(&name).send().await {
                Ok(s) => s,
                Err(_) => continue, // deleted meanwhile
            };
            let due = schedule.schedule_expression().and_then(parse_at_expression);
            if due.is_none() {
                tracing::warn!(%name, expression = ?schedule.schedule_expression(), "not a one-time at() schedule; left alone");
            }
            let read = due.zip(schedule.target()).map(|(at, target)| Seen {
                fires_at: at + firing.dice.up_to(firing.lateness),
                arn: target.arn().to_string(),
                input: serde_json::from_str(target.input().unwrap_or("{}")).unwrap_or_default(),
            });
            seen.insert(name.clone(), read);
        }
        let Some(Some(Seen { fires_at, arn, input })) = seen.get(&name) else { continue };
        if *fires_at > now {
            continue;
        }
        let (arn, input) = (arn.clone(), input.clone());
        let function = targets.function(&arn);
        // Deleted since the list (a cancel or reschedule): it must not fire. Any other failure
        // leaves it for the next tick.
        if let Err(err) = client.delete_schedule().group_name(group).name(&name).send().await {
            tracing::debug!(%name, error = ?err, "schedule not deleted; not fired");
            continue;
        }
        let Some(function) = function else {
            tracing::error!(%name, %arn, "schedule targets an unknown function; dropped");
            continue;
        };
        if firing.duplicates.roll() {
            let (invoker, input, delay) = (invoker.clone(), input.clone(), firing.duplicates.delay());
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                invoker.invoke(function, input);
            });
        }
        invoker.invoke(function, input);
    }
    Ok(())
}
