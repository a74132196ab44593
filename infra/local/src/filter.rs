//! Lambda event filtering (the subset template.yaml uses): nested objects, lists of literal
//! values, `prefix`, `anything-but` and `exists`, matched against the record's JSON.

use serde_json::Value;

pub fn matches(pattern: &Value, event: &Value) -> bool {
    let Value::Object(fields) = pattern else { return false };
    fields.iter().all(|(name, rule)| {
        let value = event.get(name);
        match rule {
            Value::Object(_) => value.is_some_and(|v| matches(rule, v)),
            Value::Array(options) => options.iter().any(|option| matches_one(option, value)),
            _ => false,
        }
    })
}

fn matches_one(option: &Value, value: Option<&Value>) -> bool {
    match option {
        Value::Object(rule) => {
            if let Some(prefix) = rule.get("prefix").and_then(Value::as_str) {
                value.and_then(Value::as_str).is_some_and(|s| s.starts_with(prefix))
            } else if let Some(excluded) = rule.get("anything-but") {
                let excluded = match excluded {
                    Value::Array(list) => list.clone(),
                    single => vec![single.clone()],
                };
                value.is_some_and(|v| !excluded.contains(v))
            } else if let Some(exists) = rule.get("exists").and_then(Value::as_bool) {
                value.is_some() == exists
            } else {
                false
            }
        }
        literal => value == Some(literal),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use instapipe_core::stream_filters::{CREATE_CONTAINER, NOTIFY, PUBLISH};
    use serde_json::json;

    fn record(name: &str, sk: &str, new: &str, old: Option<&str>) -> Value {
        let mut r = json!({"eventName": name, "dynamodb": {"Keys": {"sk": {"S": sk}}, "NewImage": {"state": {"S": new}}}});
        if let Some(old) = old {
            r["dynamodb"]["OldImage"] = json!({"state": {"S": old}});
        }
        r
    }

    fn any(patterns: &[&str], r: &Value) -> bool {
        patterns.iter().any(|p| matches(&serde_json::from_str(p).unwrap(), r))
    }

    #[test]
    fn the_templates_filters_select_the_right_records() {
        assert!(any(&CREATE_CONTAINER, &record("INSERT", "DEST#1", "QUEUED", None)));
        assert!(any(&CREATE_CONTAINER, &record("INSERT", "DEST#1", "SCHEDULED", None)));
        assert!(!any(&CREATE_CONTAINER, &record("INSERT", "META", "QUEUED", None)));
        assert!(!any(&CREATE_CONTAINER, &record("MODIFY", "DEST#1", "QUEUED", Some("QUEUED"))));
        assert!(any(&CREATE_CONTAINER, &record("MODIFY", "DEST#1", "QUEUED", Some("FAILED"))));
        // publish-due: a scheduled post is started now, not at its old time.
        assert!(any(&CREATE_CONTAINER, &record("MODIFY", "DEST#1", "QUEUED", Some("SCHEDULED"))));
        assert!(!any(&CREATE_CONTAINER, &record("MODIFY", "DEST#1", "SCHEDULED", Some("SCHEDULED"))));
        assert!(!any(&CREATE_CONTAINER, &record("MODIFY", "DEST#1", "PROCESSING", Some("QUEUED"))));
        assert!(any(&PUBLISH, &record("MODIFY", "DEST#1", "READY", Some("PROCESSING"))));
        assert!(!any(&PUBLISH, &record("MODIFY", "DEST#1", "READY", Some("READY"))));
        assert!(!any(&PUBLISH, &record("REMOVE", "DEST#1", "READY", None)));
        assert!(any(&NOTIFY, &record("MODIFY", "DEST#1", "PUBLISHED", Some("PUBLISHING"))));
        assert!(any(&NOTIFY, &record("MODIFY", "DEST#1", "FAILED", Some("PROCESSING"))));
        // Recording the delivery, or any later write, does not notify again.
        assert!(!any(&NOTIFY, &record("MODIFY", "DEST#1", "PUBLISHED", Some("PUBLISHED"))));
        assert!(!any(&NOTIFY, &record("MODIFY", "NOTIFY#1#post.published", "PUBLISHED", Some("PUBLISHING"))));
        assert!(!any(&NOTIFY, &record("MODIFY", "DEST#1", "READY", Some("PROCESSING"))));
    }
}
