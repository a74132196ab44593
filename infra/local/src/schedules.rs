//! Fires due EventBridge Scheduler schedules (moto stores them but never fires them): delivers
//! each one-time schedule's input to its target function, then deletes it, as
//! ActionAfterCompletion DELETE does.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_scheduler::Client;
use instapipe_core::scheduler::parse_at_expression;
use time::OffsetDateTime;

use crate::functions::{Function, Functions};
use crate::stream::Duplicator;

/// Lambda's asynchronous invocation retries a failed invocation twice.
const ASYNC_RETRIES: u32 = 2;

pub struct Targets {
    pub create_container_arn: String,
    pub poll_status_arn: String,
}

impl Targets {
    fn function(&self, arn: &str) -> Option<Function> {
        if arn == self.create_container_arn {
            Some(Function::CreateContainer)
        } else if arn == self.poll_status_arn {
            Some(Function::PollStatus)
        } else {
            None
        }
    }
}

pub async fn run(client: Client, group: String, targets: Arc<Targets>, functions: Arc<Functions>) {
    run_with(client, group, targets, functions, Arc::new(Duplicator::off())).await
}

/// `run`, firing the schedules `duplicates` picks twice (Scheduler delivers at least once).
pub async fn run_with(client: Client, group: String, targets: Arc<Targets>, functions: Arc<Functions>, duplicates: Arc<Duplicator>) {
    loop {
        if let Err(err) = fire_due(&client, &group, &targets, &functions, &duplicates).await {
            tracing::warn!(error = %err, "reading schedules failed; trying again");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn fire_due(
    client: &Client,
    group: &str,
    targets: &Arc<Targets>,
    functions: &Arc<Functions>,
    duplicates: &Duplicator,
) -> Result<(), String> {
    let mut names = Vec::new();
    let mut pages = client.list_schedules().group_name(group).into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| format!("{e:?}"))?;
        names.extend(page.schedules().iter().filter_map(|s| s.name().map(str::to_string)));
    }
    let now = OffsetDateTime::now_utc();
    for name in names {
        let schedule = match client.get_schedule().group_name(group).name(&name).send().await {
            Ok(s) => s,
            Err(_) => continue, // deleted meanwhile
        };
        let due = schedule.schedule_expression().and_then(parse_at_expression);
        let Some(at) = due else {
            tracing::warn!(%name, expression = ?schedule.schedule_expression(), "not a one-time at() schedule; left alone");
            continue;
        };
        if at > now {
            continue;
        }
        let Some(target) = schedule.target() else { continue };
        let input: serde_json::Value = serde_json::from_str(target.input().unwrap_or("{}")).unwrap_or_default();
        let function = targets.function(target.arn());
        client.delete_schedule().group_name(group).name(&name).send().await.map_err(|e| format!("{e:?}"))?;
        let Some(function) = function else {
            tracing::error!(%name, arn = target.arn(), "schedule targets an unknown function; dropped");
            continue;
        };
        if duplicates.roll() {
            let (functions, input, name, delay) = (functions.clone(), input.clone(), name.clone(), duplicates.delay());
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                if let Err(err) = functions.invoke(function, input).await {
                    tracing::warn!(%name, error = %err, "duplicate scheduled invocation failed");
                }
            });
        }
        let functions = functions.clone();
        tokio::spawn(async move {
            for attempt in 0..=ASYNC_RETRIES {
                match functions.invoke(function, input.clone()).await {
                    Ok(_) => return,
                    Err(err) => {
                        tracing::warn!(%name, attempt, error = %err, "scheduled invocation failed");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        });
    }
    Ok(())
}
