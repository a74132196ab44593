//! The DynamoDB stream filters of the two stream-fed functions. template.yaml carries the same
//! patterns (a test checks they match), and the local stack applies them to every record.

/// create-container: a destination that became QUEUED (due) or SCHEDULED (to be scheduled).
/// SCHEDULED → QUEUED (publish-due: "publish it now") is a change too, so each state has its own
/// MODIFY pattern.
pub const CREATE_CONTAINER: [&str; 3] = [
    r#"{"eventName":["INSERT"],"dynamodb":{"Keys":{"sk":{"S":[{"prefix":"DEST#"}]}},"NewImage":{"state":{"S":["QUEUED","SCHEDULED"]}}}}"#,
    r#"{"eventName":["MODIFY"],"dynamodb":{"Keys":{"sk":{"S":[{"prefix":"DEST#"}]}},"NewImage":{"state":{"S":["QUEUED"]}},"OldImage":{"state":{"S":[{"anything-but":["QUEUED"]}]}}}}"#,
    r#"{"eventName":["MODIFY"],"dynamodb":{"Keys":{"sk":{"S":[{"prefix":"DEST#"}]}},"NewImage":{"state":{"S":["SCHEDULED"]}},"OldImage":{"state":{"S":[{"anything-but":["SCHEDULED"]}]}}}}"#,
];

/// publish: a destination whose container became READY.
pub const PUBLISH: [&str; 2] = [
    r#"{"eventName":["INSERT"],"dynamodb":{"Keys":{"sk":{"S":[{"prefix":"DEST#"}]}},"NewImage":{"state":{"S":["READY"]}}}}"#,
    r#"{"eventName":["MODIFY"],"dynamodb":{"Keys":{"sk":{"S":[{"prefix":"DEST#"}]}},"NewImage":{"state":{"S":["READY"]}},"OldImage":{"state":{"S":[{"anything-but":["READY"]}]}}}}"#,
];

/// notify: a destination that became PUBLISHED or FAILED (final states never change again, so
/// one pattern covers both; the delivery records beside it have other sort keys).
pub const NOTIFY: [&str; 1] = [
    r#"{"eventName":["MODIFY"],"dynamodb":{"Keys":{"sk":{"S":[{"prefix":"DEST#"}]}},"NewImage":{"state":{"S":["PUBLISHED","FAILED"]}},"OldImage":{"state":{"S":[{"anything-but":["PUBLISHED","FAILED"]}]}}}}"#,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_yaml_carries_the_same_filters() {
        let template = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../template.yaml"))
            .expect("template.yaml at the workspace root");
        for pattern in CREATE_CONTAINER.iter().chain(PUBLISH.iter()).chain(NOTIFY.iter()) {
            serde_json::from_str::<serde_json::Value>(pattern).expect("valid JSON");
            assert!(template.contains(&format!("Pattern: '{pattern}'")), "template.yaml lacks {pattern}");
        }
    }
}
