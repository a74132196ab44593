//! Waits of a minute or more: EventBridge Scheduler one-time schedules that invoke one of our
//! functions with a JSON input. Names are deterministic, so a repeated request is a no-op.

use std::sync::Mutex;

use async_trait::async_trait;
use aws_sdk_scheduler::Client;
use aws_sdk_scheduler::types::{
    ActionAfterCompletion, DeadLetterConfig, FlexibleTimeWindow, FlexibleTimeWindowMode, RetryPolicy, Target,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::macros::format_description;

use crate::error::{Error, Result};

/// The functions a schedule can start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ScheduleTarget {
    CreateContainer,
    PollStatus,
}

/// What create-container receives when a scheduled post's time comes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartInput {
    pub post_id: String,
    pub account_id: String,
}

/// What poll-status receives.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PollInput {
    pub post_id: String,
    pub account_id: String,
    pub attempt: u32,
}

#[derive(Clone, Debug, PartialEq)]
pub struct OneTimeSchedule {
    pub name: String,
    pub at: OffsetDateTime,
    pub target: ScheduleTarget,
    pub input: serde_json::Value,
}

impl OneTimeSchedule {
    pub fn start(input: StartInput, at: OffsetDateTime) -> Self {
        OneTimeSchedule {
            name: Self::start_name(&input.post_id, &input.account_id, at),
            at,
            target: ScheduleTarget::CreateContainer,
            input: serde_json::to_value(input).expect("plain struct"),
        }
    }

    /// Retry `retry` of a start whose container creation failed transiently.
    pub fn retry_start(input: StartInput, retry: u32, at: OffsetDateTime) -> Self {
        OneTimeSchedule { name: Self::retry_start_name(&input.post_id, &input.account_id, retry), ..Self::start(input, at) }
    }

    pub fn poll(input: PollInput, at: OffsetDateTime) -> Self {
        OneTimeSchedule {
            name: Self::poll_name(&input.post_id, &input.account_id, input.attempt),
            at,
            target: ScheduleTarget::PollStatus,
            input: serde_json::to_value(input).expect("plain struct"),
        }
    }

    /// Names, so that a schedule can be found again to delete it. A start's name carries its
    /// time: a reschedule creates the new one before deleting the old, and a start re-armed
    /// while an older one is firing never collides with it (a conflict then always means "the
    /// schedule we meant exists").
    pub fn start_name(post_id: &str, account_id: &str, at: OffsetDateTime) -> String {
        format!("start-{post_id}-{account_id}-{}", at.unix_timestamp())
    }

    pub fn retry_start_name(post_id: &str, account_id: &str, retry: u32) -> String {
        format!("start-{post_id}-{account_id}-r{retry}")
    }

    pub fn poll_name(post_id: &str, account_id: &str, attempt: u32) -> String {
        format!("poll-{post_id}-{account_id}-{attempt}")
    }

    /// `at(yyyy-mm-ddThh:mm:ss)` in UTC, rounded up to the next whole second.
    pub fn expression(&self) -> String {
        let at = if self.at.nanosecond() > 0 {
            self.at.replace_nanosecond(0).expect("0 is valid") + time::Duration::SECOND
        } else {
            self.at
        };
        let at = at.to_offset(time::UtcOffset::UTC);
        let format = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
        format!("at({})", at.format(format).expect("valid date"))
    }
}

/// Parses an `at(...)` expression written by [`OneTimeSchedule::expression`] (UTC).
pub fn parse_at_expression(expression: &str) -> Option<OffsetDateTime> {
    let inner = expression.strip_prefix("at(")?.strip_suffix(')')?;
    let format = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    time::PrimitiveDateTime::parse(inner, format).ok().map(|t| t.assume_utc())
}

#[async_trait]
pub trait Scheduler: Send + Sync {
    /// Creates the schedule; one that already exists under that name counts as success.
    async fn schedule_once(&self, schedule: &OneTimeSchedule) -> Result<()>;
    /// Deletes the schedule; one that does not exist (fired, or never made) counts as deleted.
    async fn delete(&self, name: &str) -> Result<()>;
}

/// Scheduler names are at most 64 characters of `[0-9a-zA-Z-_.]`.
fn check_name(name: &str) -> Result<()> {
    if name.len() > 64 || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) {
        return Err(Error::Data(format!("schedule name {name:?} is not valid for EventBridge Scheduler")));
    }
    Ok(())
}

pub struct EventBridgeScheduler {
    client: Client,
    group: String,
    role_arn: String,
    create_container_arn: String,
    poll_status_arn: String,
    dead_letter_arn: Option<String>,
}

impl EventBridgeScheduler {
    pub fn new(client: Client, settings: &crate::config::ScheduleSettings) -> Self {
        EventBridgeScheduler {
            client,
            group: settings.group.clone(),
            role_arn: settings.role_arn.clone(),
            create_container_arn: settings.create_container_arn.clone(),
            poll_status_arn: settings.poll_status_arn.clone(),
            dead_letter_arn: settings.dead_letter_arn.clone(),
        }
    }
}

#[async_trait]
impl Scheduler for EventBridgeScheduler {
    async fn schedule_once(&self, schedule: &OneTimeSchedule) -> Result<()> {
        check_name(&schedule.name)?;
        let arn = match schedule.target {
            ScheduleTarget::CreateContainer => &self.create_container_arn,
            ScheduleTarget::PollStatus => &self.poll_status_arn,
        };
        let target = Target::builder()
            .arn(arn)
            .role_arn(&self.role_arn)
            .input(schedule.input.to_string())
            .retry_policy(RetryPolicy::builder().maximum_retry_attempts(20).maximum_event_age_in_seconds(6 * 3600).build())
            .set_dead_letter_config(self.dead_letter_arn.as_ref().map(|arn| DeadLetterConfig::builder().arn(arn).build()))
            .build()
            .map_err(|e| Error::aws("Scheduler target", e))?;
        let result = self
            .client
            .create_schedule()
            .name(&schedule.name)
            .group_name(&self.group)
            .schedule_expression(schedule.expression())
            .schedule_expression_timezone("UTC")
            .flexible_time_window(
                FlexibleTimeWindow::builder()
                    .mode(FlexibleTimeWindowMode::Off)
                    .build()
                    .map_err(|e| Error::aws("Scheduler window", e))?,
            )
            .action_after_completion(ActionAfterCompletion::Delete)
            .target(target)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_conflict_exception()) => Ok(()),
            Err(err) => Err(Error::aws("Scheduler CreateSchedule", err)),
        }
    }

    async fn delete(&self, name: &str) -> Result<()> {
        check_name(name)?;
        match self.client.delete_schedule().group_name(&self.group).name(name).send().await {
            Ok(_) => Ok(()),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_resource_not_found_exception()) => Ok(()),
            Err(err) => Err(Error::aws("Scheduler DeleteSchedule", err)),
        }
    }
}

/// Keeps schedules in memory (unit tests).
#[derive(Default)]
pub struct MemoryScheduler {
    pub schedules: Mutex<Vec<OneTimeSchedule>>,
    /// Deletes fail (as Scheduler may), to test what a failure half-way leaves.
    pub fail_deletes: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl Scheduler for MemoryScheduler {
    async fn schedule_once(&self, schedule: &OneTimeSchedule) -> Result<()> {
        check_name(&schedule.name)?;
        let mut list = self.schedules.lock().unwrap();
        if !list.iter().any(|s| s.name == schedule.name) {
            list.push(schedule.clone());
        }
        Ok(())
    }

    async fn delete(&self, name: &str) -> Result<()> {
        check_name(name)?;
        if self.fail_deletes.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(Error::Aws { service: "Scheduler DeleteSchedule", message: "InternalServerException".into() });
        }
        self.schedules.lock().unwrap().retain(|s| s.name != name);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn expressions_round_up_to_the_second_and_parse_back() {
        let s = OneTimeSchedule::start(
            StartInput { post_id: "01KAB".into(), account_id: "17841400000000001".into() },
            datetime!(2026-11-23 10:00:00.2 +01:00),
        );
        assert_eq!(s.expression(), "at(2026-11-23T09:00:01)");
        assert_eq!(parse_at_expression(&s.expression()), Some(datetime!(2026-11-23 09:00:01 UTC)));
        assert_eq!(parse_at_expression("rate(1 minute)"), None);
    }

    #[test]
    fn names_are_deterministic_and_fit_the_limit() {
        let input = PollInput { post_id: ulid::Ulid::new().to_string(), account_id: "1".repeat(20), attempt: 999 };
        let s = OneTimeSchedule::poll(input, datetime!(2026-11-23 10:00 UTC));
        assert!(s.name.len() <= 64, "{}", s.name);
        check_name(&s.name).unwrap();
        assert!(check_name(&"x".repeat(65)).is_err());
        assert!(check_name("poll#1").is_err());
    }

    #[tokio::test]
    async fn deleting_removes_the_schedule_and_a_missing_one_counts_as_deleted() {
        let scheduler = MemoryScheduler::default();
        let input = StartInput { post_id: "01KAB".into(), account_id: "1784".into() };
        scheduler.schedule_once(&OneTimeSchedule::start(input.clone(), datetime!(2026-11-23 10:00 UTC))).await.unwrap();
        scheduler.schedule_once(&OneTimeSchedule::retry_start(input, 1, datetime!(2026-11-23 10:00 UTC))).await.unwrap();
        scheduler.delete(&OneTimeSchedule::start_name("01KAB", "1784", datetime!(2026-11-23 10:00 UTC))).await.unwrap();
        let names: Vec<_> = scheduler.schedules.lock().unwrap().iter().map(|s| s.name.clone()).collect();
        assert_eq!(names, [OneTimeSchedule::retry_start_name("01KAB", "1784", 1)]);
        scheduler.delete("start-01KAB-1784").await.unwrap();
        assert!(scheduler.delete("bad#name").await.is_err());
    }
}
