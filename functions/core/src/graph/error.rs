//! One taxonomy for every Graph API failure: what it was, and what to do about it.
//! Codes and reactions follow shared/reference/instagram-graph-api.md §3; classify on
//! code + subcode, never on the HTTP status (Meta answers 400 for nearly everything).

use serde::Deserialize;

use crate::post::Failure;

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum GraphError {
    #[error("Instagram error {code}{}: {message}", subcode.map(|s| format!("/{s}")).unwrap_or_default())]
    Api {
        http_status: u16,
        code: i64,
        subcode: Option<i64>,
        message: String,
        is_transient: bool,
        fbtrace_id: Option<String>,
    },
    #[error("Instagram answered HTTP {status} without an error body")]
    Http { status: u16 },
    #[error("Instagram did not answer in time")]
    Timeout,
    #[error("Instagram could not be reached: {0}")]
    Transport(String),
    #[error("Instagram's answer was not understood: {0}")]
    Decode(String),
}

/// What the pipeline does about an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reaction {
    /// Transient: the same call again, with backoff.
    Retry,
    /// The media is not ready yet: check the container's status again later.
    Repoll,
    /// The container is gone or broken: make a new one.
    Recreate,
    /// Rate-limited: pause this account (or the app) before calling again.
    Throttle,
    /// The 24-hour publishing cap is used up: wait for the window to free a slot.
    Quota,
    /// The token or its permissions are no longer good: a person must log in again.
    Reauth,
    /// Permanent: give up and say why.
    Fail,
}

#[derive(Deserialize)]
struct ErrorEnvelope {
    error: ErrorBody,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    message: String,
    code: i64,
    #[serde(default)]
    error_subcode: Option<i64>,
    #[serde(default)]
    is_transient: bool,
    #[serde(default)]
    error_user_msg: Option<String>,
    #[serde(default)]
    fbtrace_id: Option<String>,
}

impl GraphError {
    pub fn from_response(http_status: u16, body: &[u8]) -> GraphError {
        match serde_json::from_slice::<ErrorEnvelope>(body) {
            Ok(ErrorEnvelope { error }) => GraphError::Api {
                http_status,
                code: error.code,
                subcode: error.error_subcode,
                // Meta's user-facing text explains more than the developer message when present.
                message: error.error_user_msg.filter(|m| !m.is_empty()).unwrap_or(error.message),
                is_transient: error.is_transient,
                fbtrace_id: error.fbtrace_id,
            },
            Err(_) => GraphError::Http { status: http_status },
        }
    }

    pub fn reaction(&self) -> Reaction {
        match self {
            GraphError::Api { code, subcode, is_transient, .. } => classify(*code, *subcode, *is_transient),
            GraphError::Http { status } if *status >= 500 || *status == 429 => Reaction::Retry,
            GraphError::Http { .. } => Reaction::Fail,
            GraphError::Timeout | GraphError::Transport(_) => Reaction::Retry,
            // A 2xx whose body we could not read: the call most likely took effect, so it is
            // an unknown outcome like a timeout, never a reason to give up.
            GraphError::Decode(_) => Reaction::Retry,
        }
    }

    /// The reaction to this error met by a creation whose earlier attempt may have taken
    /// effect on Meta's side (its outcome unknown, or its invocation cut short). A refusal of
    /// the request itself may then be that attempt's doing: a carousel container's children
    /// already belong to the container it made (an API that lets a child belong to one
    /// carousel only answers 100 "not an unused carousel item"; Meta documents neither way).
    /// So it means "make the containers afresh", not "fail". Refusals of the account (inactive,
    /// restricted) stay what they are: no fresh container changes them.
    pub fn reaction_after_unknown_outcome(&self) -> Reaction {
        match (self, self.reaction()) {
            (GraphError::Api { code: 25, .. } | GraphError::Api { code: 4, subcode: Some(2207051), .. }, reaction) => reaction,
            (_, Reaction::Fail | Reaction::Recreate) => Reaction::Recreate,
            (_, reaction) => reaction,
        }
    }

    /// Whether a call that failed this way may still have taken effect on Meta's side.
    pub fn outcome_unknown(&self) -> bool {
        match self {
            GraphError::Timeout | GraphError::Transport(_) => true,
            GraphError::Http { status } => *status >= 500,
            GraphError::Api { http_status, .. } => *http_status >= 500,
            // A success whose body we could not read: the call most likely took effect.
            GraphError::Decode(_) => true,
        }
    }

    /// The failure recorded on a destination.
    pub fn to_failure(&self, context: &str) -> Failure {
        match self {
            GraphError::Api { code, subcode, message, fbtrace_id, .. } => Failure {
                reason: format!("{context}: {message}"),
                code: Some(*code),
                subcode: *subcode,
                fbtrace_id: fbtrace_id.clone(),
            },
            other => Failure::new(format!("{context}: {other}")),
        }
    }
}

fn classify(code: i64, subcode: Option<i64>, is_transient: bool) -> Reaction {
    use Reaction::*;
    match (code, subcode) {
        (4, Some(2207051)) => Fail,  // restricted as suspected spam: a person must look
        (1, Some(2207057)) => Fail,  // thumb_offset outside the video
        (1 | 2, _) => Retry,         // unknown / temporary service error
        (4 | 17 | 32 | 613 | 80002, _) => Throttle,
        (368, _) => Throttle,        // temporarily blocked: pause for hours
        (9, _) => Quota,             // 9/2207042 publishing cap reached
        (10, _) | (200..=299, _) | (190, _) => Reauth,
        (24, Some(2207008)) => Retry, // container temporarily missing: retry, then recreate
        (24, _) => Recreate,          // 2207006 container not found
        (25, _) => Fail,              // account inactive or restricted
        (100, _) => Fail,             // invalid parameter (incl. 33, 2207023, 2207028, ...)
        (-1, Some(2207032 | 2207053)) => Recreate,
        (-1, _) => Retry,             // 2207001 Instagram server error
        (-2, Some(2207020)) => Recreate,
        (-2, _) => Retry,             // 2207003 media download timed out
        (352, _) => Fail,             // unsupported video format
        (9004, _) => Fail,            // media could not be fetched from the URL
        (9007, _) => Repoll,          // media not ready for publishing
        (36000..=36004, _) => Fail,   // image size, format, aspect ratio, caption
        _ if is_transient => Retry,
        _ => Fail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: i64, subcode: Option<i64>) -> GraphError {
        GraphError::Api { http_status: 400, code, subcode, message: "m".into(), is_transient: false, fbtrace_id: None }
    }

    /// Every code and subcode of the reference's error table, with the reaction it prescribes.
    #[test]
    fn every_code_in_the_reference_has_its_reaction() {
        use Reaction::*;
        let table: &[(i64, Option<i64>, Reaction)] = &[
            (1, None, Retry),
            (2, None, Retry),
            (4, None, Throttle),
            (4, Some(2207051), Fail),
            (9, Some(2207042), Quota),
            (10, None, Reauth),
            (17, None, Throttle),
            (24, Some(2207006), Recreate),
            (24, Some(2207008), Retry),
            (25, Some(2207050), Fail),
            (32, None, Throttle),
            (100, None, Fail),
            (100, Some(33), Fail),
            (100, Some(2207023), Fail),
            (100, Some(2207028), Fail),
            (100, Some(2207035), Fail),
            (100, Some(2207036), Fail),
            (100, Some(2207037), Fail),
            (100, Some(2207040), Fail),
            (190, None, Reauth),
            (190, Some(463), Reauth),
            (190, Some(467), Reauth),
            (190, Some(460), Reauth),
            (190, Some(458), Reauth),
            (190, Some(459), Reauth),
            (190, Some(464), Reauth),
            (190, Some(492), Reauth),
            (200, None, Reauth),
            (299, None, Reauth),
            (368, None, Throttle),
            (613, None, Throttle),
            (80002, None, Throttle),
            (-1, Some(2207001), Retry),
            (-1, Some(2207032), Recreate),
            (-1, Some(2207053), Recreate),
            (-2, Some(2207003), Retry),
            (-2, Some(2207020), Recreate),
            (1, Some(2207057), Fail),
            (352, Some(2207026), Fail),
            (9004, Some(2207052), Fail),
            (9007, Some(2207027), Repoll),
            (36000, Some(2207004), Fail),
            (36001, Some(2207005), Fail),
            (36003, Some(2207009), Fail),
            (36004, Some(2207010), Fail),
        ];
        for &(code, subcode, expected) in table {
            assert_eq!(api(code, subcode).reaction(), expected, "code {code} subcode {subcode:?}");
        }
    }

    #[test]
    fn unknown_codes_fail_unless_meta_says_transient() {
        assert_eq!(api(12345, None).reaction(), Reaction::Fail);
        let transient = GraphError::Api {
            http_status: 400,
            code: 12345,
            subcode: None,
            message: String::new(),
            is_transient: true,
            fbtrace_id: None,
        };
        assert_eq!(transient.reaction(), Reaction::Retry);
    }

    #[test]
    fn transport_failures_retry_and_leave_the_outcome_unknown() {
        for e in [GraphError::Timeout, GraphError::Transport("reset".into()), GraphError::Http { status: 502 }] {
            assert_eq!(e.reaction(), Reaction::Retry);
            assert!(e.outcome_unknown());
        }
        assert!(!api(9007, Some(2207027)).outcome_unknown());
    }

    #[test]
    fn an_unreadable_answer_is_an_unknown_outcome_not_a_failure() {
        let e = GraphError::Decode("expected value at line 1 column 1".into());
        assert!(e.outcome_unknown());
        assert_eq!(e.reaction(), Reaction::Retry);
    }

    #[test]
    fn after_an_unknown_outcome_a_refused_request_is_made_afresh_but_a_refused_account_is_not() {
        let reused_children = GraphError::Api {
            http_status: 400,
            code: 100,
            subcode: None,
            message: "(#100) Invalid children: 17880000000000012 is not an unused carousel item container of this account".into(),
            is_transient: false,
            fbtrace_id: None,
        };
        assert_eq!(reused_children.reaction(), Reaction::Fail, "on its own, an invalid parameter fails");
        assert_eq!(reused_children.reaction_after_unknown_outcome(), Reaction::Recreate);
        assert_eq!(api(24, Some(2207006)).reaction_after_unknown_outcome(), Reaction::Recreate);
        assert_eq!(api(25, Some(2207050)).reaction_after_unknown_outcome(), Reaction::Fail);
        assert_eq!(api(4, Some(2207051)).reaction_after_unknown_outcome(), Reaction::Fail);
        assert_eq!(api(190, Some(463)).reaction_after_unknown_outcome(), Reaction::Reauth);
        assert_eq!(api(17, None).reaction_after_unknown_outcome(), Reaction::Throttle);
        assert_eq!(api(9, Some(2207042)).reaction_after_unknown_outcome(), Reaction::Quota);
        assert_eq!(GraphError::Timeout.reaction_after_unknown_outcome(), Reaction::Retry);
    }

    #[test]
    fn error_bodies_parse_and_garbage_does_not() {
        let body = br#"{"error":{"message":"The media is not ready","type":"OAuthException","code":9007,
            "error_subcode":2207027,"is_transient":false,"error_user_msg":"","fbtrace_id":"AbC"}}"#;
        let e = GraphError::from_response(400, body);
        assert_eq!(e.reaction(), Reaction::Repoll);
        let failure = e.to_failure("publish");
        assert_eq!((failure.code, failure.subcode), (Some(9007), Some(2207027)));
        assert_eq!(failure.reason, "publish: The media is not ready");
        assert_eq!(failure.fbtrace_id.as_deref(), Some("AbC"));
        assert_eq!(GraphError::from_response(502, b"<html>bad gateway</html>"), GraphError::Http { status: 502 });
        assert_eq!(GraphError::from_response(400, b""), GraphError::Http { status: 400 });
    }
}
