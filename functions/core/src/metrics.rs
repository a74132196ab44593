//! CloudWatch metrics as Embedded Metric Format lines: one JSON object on stdout that CloudWatch
//! Logs turns into a metric, with no API call and no extra permission. template.yaml's alarms
//! watch these names in the `instapipe` namespace.

use time::OffsetDateTime;

pub const NAMESPACE: &str = "instapipe";

/// refresh-tokens: an account whose token was refused or had expired (a person must log in).
pub const ACCOUNTS_NEEDING_REAUTH: &str = "AccountsNeedingReauth";
/// refresh-tokens: a token refreshed and stored.
pub const TOKENS_REFRESHED: &str = "TokensRefreshed";
/// notify: a destination that reached FAILED / PUBLISHED.
pub const DESTINATIONS_FAILED: &str = "DestinationsFailed";
pub const DESTINATIONS_PUBLISHED: &str = "DestinationsPublished";
/// notify: a status webhook that could not be delivered after every try of one invocation.
pub const STATUS_WEBHOOKS_UNDELIVERED: &str = "StatusWebhooksUndelivered";

/// sweep: overdue destinations restarted at their step, and those failed after too many restarts.
pub const WATCHDOG_REARMS: &str = "WatchdogRearms";
pub const WATCHDOG_FAILED: &str = "WatchdogFailed";

/// The EMF line of a count, with the `Service` dimension alarms use.
pub fn emf_count(metric: &str, value: u64, at: OffsetDateTime) -> String {
    let millis = i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
    serde_json::json!({
        "_aws": {
            "Timestamp": millis,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [["Service"]],
                "Metrics": [{ "Name": metric, "Unit": "Count" }],
            }],
        },
        "Service": "instapipe",
        metric: value,
    })
    .to_string()
}

/// Emits a count. In Lambda the line goes to stdout as it is (CloudWatch extracts it); elsewhere
/// (the local stack, tests) it goes to the log at debug level, so it does not clutter a terminal.
pub fn count(metric: &str, value: u64) {
    let line = emf_count(metric, value, OffsetDateTime::now_utc());
    if std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some() {
        println!("{line}");
    } else {
        tracing::debug!(emf = %line, "metric");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn an_emf_line_names_its_metric_namespace_and_value() {
        let line = emf_count(ACCOUNTS_NEEDING_REAUTH, 1, datetime!(2026-11-23 10:00 UTC));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["_aws"]["Timestamp"], 1_795_428_000_000_i64);
        let directive = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "instapipe");
        assert_eq!(directive["Metrics"][0]["Name"], "AccountsNeedingReauth");
        assert_eq!(directive["Dimensions"][0][0], "Service");
        assert_eq!(v["AccountsNeedingReauth"], 1);
        assert_eq!(v["Service"], "instapipe");
        assert!(!line.contains('\n'), "one line per metric");
    }
}
