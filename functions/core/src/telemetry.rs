//! Tracing set-up: JSON lines in Lambda (CloudWatch parses them), readable text elsewhere.
//!
//! `LOG_LEVEL` (error, warn, info, debug or trace; template.yaml's `LogLevel`) is instapipe's own
//! level. Every other target — the Lambda runtime (`lambda_runtime`, `lambda_http`), the HTTP
//! stack (`hyper`, `h2`, `reqwest`, `rustls`) and the AWS SDK (`aws_smithy_*`, `aws_sigv4`,
//! `aws_config`) — stops at debug whatever `LOG_LEVEL` says: at trace they print the raw
//! invocation event (the Authorization header of a posts-API call included), signed requests
//! and Secrets Manager's answers (the tokens).

use std::str::FromStr;

use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::prelude::*;

use crate::error::{Error, Result};

/// The variable that sets the level.
pub const LOG_LEVEL_VAR: &str = "LOG_LEVEL";

/// How much instapipe logs, least to most.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Error,
    Warn,
    #[default]
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    pub const ALL: [LogLevel; 5] = [LogLevel::Error, LogLevel::Warn, LogLevel::Info, LogLevel::Debug, LogLevel::Trace];

    fn as_filter(self) -> LevelFilter {
        match self {
            LogLevel::Error => LevelFilter::ERROR,
            LogLevel::Warn => LevelFilter::WARN,
            LogLevel::Info => LevelFilter::INFO,
            LogLevel::Debug => LevelFilter::DEBUG,
            LogLevel::Trace => LevelFilter::TRACE,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }

    /// `LOG_LEVEL` through `lookup`: unset or blank is info; anything else must be one of
    /// [`LogLevel::ALL`], or the error names the variable.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<LogLevel> {
        match lookup(LOG_LEVEL_VAR).filter(|v| !v.trim().is_empty()) {
            None => Ok(LogLevel::default()),
            Some(value) => value.parse().map_err(|()| {
                let names: Vec<&str> = LogLevel::ALL.iter().map(|l| l.as_str()).collect();
                Error::Config(format!("environment variable {LOG_LEVEL_VAR} must be one of {} (not {value:?})", names.join(", ")))
            }),
        }
    }
}

impl FromStr for LogLevel {
    type Err = ();

    fn from_str(s: &str) -> std::result::Result<Self, ()> {
        LogLevel::ALL.into_iter().find(|l| l.as_str().eq_ignore_ascii_case(s.trim())).ok_or(())
    }
}

/// instapipe's own code (the bins are one call into it).
const OWN_TARGET: &str = "instapipe_core";
/// The most any other target may log: their trace level prints raw events and secrets.
const LIBRARY_CEILING: LogLevel = LogLevel::Debug;

/// What is logged at `level`: instapipe's targets at `level`, every other target at `level` but
/// never above [`LIBRARY_CEILING`]. Fixed targets, not `RUST_LOG` directives: no regex engine in
/// the bootstrap (issue 14).
pub fn filter(level: LogLevel) -> Targets {
    Targets::new().with_default(level.min(LIBRARY_CEILING).as_filter()).with_target(OWN_TARGET, level.as_filter())
}

/// Reads `LOG_LEVEL` (a malformed one stops the function before anything else) and installs the
/// subscriber.
pub fn init() -> Result<()> {
    let level = LogLevel::from_lookup(|name| std::env::var(name).ok())?;
    let output = tracing_subscriber::fmt::layer().with_target(false);
    let logs = tracing_subscriber::registry().with(filter(level));
    let result = if std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some() {
        // Lambda adds its own timestamps; the span fields carry post id and state.
        logs.with(output.json().with_current_span(true).with_span_list(false).without_time()).try_init()
    } else {
        logs.with(output.compact()).try_init()
    };
    // A second init (tests, the local stack hosting several handlers) keeps the first subscriber.
    let _ = result;
    Ok(())
}

/// Logs written through [`filter`] at a level, kept for a test to read.
#[cfg(test)]
#[derive(Clone, Default)]
pub(crate) struct CapturedLogs(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

#[cfg(test)]
impl CapturedLogs {
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[cfg(test)]
impl std::io::Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Until the guard drops, this thread's `tracing` events go through [`filter`] at `level` into
/// the returned buffer (JSON lines with every field, as in Lambda).
#[cfg(test)]
pub(crate) fn capture(level: LogLevel) -> (tracing::subscriber::DefaultGuard, CapturedLogs) {
    let logs = CapturedLogs::default();
    let writer = logs.clone();
    let subscriber =
        tracing_subscriber::registry().with(filter(level)).with(tracing_subscriber::fmt::layer().json().with_writer(move || writer.clone()));
    (tracing::subscriber::set_default(subscriber), logs)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use lambda_http::{Body, Request, Response};

    use super::*;
    use crate::config::NotifySettings;
    use crate::deps::AwsClients;
    use crate::functions::Function;

    fn lookup(value: Option<&str>) -> impl Fn(&str) -> Option<String> {
        let value = value.map(str::to_string);
        move |name| (name == LOG_LEVEL_VAR).then(|| value.clone()).flatten()
    }

    #[test]
    fn the_level_is_one_of_five_names_and_a_bad_one_is_named() {
        assert_eq!(LogLevel::from_lookup(lookup(None)).unwrap(), LogLevel::Info);
        assert_eq!(LogLevel::from_lookup(lookup(Some(" "))).unwrap(), LogLevel::Info);
        assert_eq!(LogLevel::from_lookup(lookup(Some("DEBUG"))).unwrap(), LogLevel::Debug);
        for level in LogLevel::ALL {
            assert_eq!(LogLevel::from_lookup(lookup(Some(level.as_str()))).unwrap(), level);
        }
        for bad in ["verbose", "instapipe_core=debug", "trace,lambda_runtime=trace"] {
            let err = LogLevel::from_lookup(lookup(Some(bad))).unwrap_err().to_string();
            assert!(err.contains("LOG_LEVEL must be one of error, warn, info, debug, trace"), "{err}");
        }
    }

    /// What a subscriber with [`filter`] at `level` writes while `emit` runs.
    fn captured(level: LogLevel, emit: impl FnOnce()) -> String {
        let (guard, logs) = capture(level);
        emit();
        drop(guard);
        logs.text()
    }

    #[test]
    fn libraries_stop_at_debug_whatever_the_level() {
        let emit = || {
            tracing::trace!(target: "instapipe_core::handlers", "ours at trace");
            tracing::debug!(target: "instapipe_core::handlers", "ours at debug");
            tracing::trace!(target: "lambda_runtime::layers::api_response", "raw JSON event received from Lambda");
            tracing::trace!(target: "aws_smithy_runtime::client::orchestrator", "received response from service");
            tracing::debug!(target: "reqwest::connect", "starting new connection");
        };
        let trace = captured(LogLevel::Trace, emit);
        assert!(trace.contains("ours at trace") && trace.contains("starting new connection"), "{trace}");
        assert!(!trace.contains("raw JSON event"), "{trace}");
        assert!(!trace.contains("received response from service"), "{trace}");
        let info = captured(LogLevel::Info, emit);
        assert!(!info.contains("ours at debug") && !info.contains("starting new connection"), "{info}");
    }

    /// Answers 200 and logs at trace, so the child's output shows the most verbose level is on.
    struct Echo;

    impl Function for Echo {
        const NAME: &'static str = "echo";
        const TIMEOUT: Duration = Duration::from_secs(5);
        type Settings = NotifySettings;
        type Deps = ();
        type Event = Request;
        type Output = Response<Body>;
        type Error = std::convert::Infallible;

        async fn deps(_: &AwsClients, _: &NotifySettings) -> Result<()> {
            Ok(())
        }

        async fn handle(_: &(), request: Request) -> std::result::Result<Response<Body>, std::convert::Infallible> {
            tracing::trace!(path = request.uri().path(), "echo handled a request");
            Ok(Response::new(Body::from("ok")))
        }
    }

    const CHILD_VAR: &str = "INSTAPIPE_TELEMETRY_CHILD";
    const TOKEN: &str = "ipk_live_0123456789abcdefSECRET";

    /// A Function URL event of a posts-API call, as the Lambda Runtime API hands it over.
    fn function_url_event() -> serde_json::Value {
        serde_json::json!({
            "version": "2.0", "routeKey": "$default", "rawPath": "/posts", "rawQueryString": "",
            "headers": {"authorization": format!("Bearer {TOKEN}"), "content-type": "application/json"},
            "requestContext": {
                "accountId": "anonymous", "apiId": "abc", "domainName": "abc.lambda-url.us-east-1.on.aws",
                "domainPrefix": "abc", "requestId": "r1", "routeKey": "$default", "stage": "$default",
                "time": "01/Dec/2026:00:00:00 +0000", "timeEpoch": 0,
                "http": {"method": "GET", "path": "/posts", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "t"}
            },
            "body": format!("{{\"api_key\": \"{TOKEN}\"}}"), "isBase64Encoded": false
        })
    }

    /// The bin's own start-up (`run_http`: LOG_LEVEL, the subscriber, the Lambda runtime) in a
    /// child process at LOG_LEVEL=trace, against a fake Lambda Runtime API that hands it one
    /// posts-API request carrying a key: the key appears nowhere in what the child logged.
    #[test]
    fn at_trace_neither_the_raw_event_nor_the_authorization_header_is_logged() {
        if std::env::var_os(CHILD_VAR).is_some() {
            let runtime = tokio::runtime::Runtime::new().unwrap();
            runtime.block_on(crate::functions::run_http::<Echo>()).unwrap();
            return;
        }
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let (answered_tx, answered_rx) = std::sync::mpsc::channel::<String>();
        let addr = runtime.block_on(async move {
            use axum::routing::{get, post};
            let handed_out = Arc::new(AtomicBool::new(false));
            let answered = Arc::new(std::sync::Mutex::new(Some(answered_tx)));
            let app = axum::Router::new()
                .route(
                    "/2018-06-01/runtime/invocation/next",
                    get(move || {
                        let handed_out = handed_out.clone();
                        async move {
                            if handed_out.swap(true, Ordering::SeqCst) {
                                std::future::pending::<()>().await; // one event only
                            }
                            let deadline = (std::time::SystemTime::now() + Duration::from_secs(60))
                                .duration_since(std::time::UNIX_EPOCH)
                                .unwrap()
                                .as_millis()
                                .to_string();
                            (
                                [
                                    ("lambda-runtime-aws-request-id", "req-1".to_string()),
                                    ("lambda-runtime-deadline-ms", deadline),
                                    ("lambda-runtime-invoked-function-arn", "arn:aws:lambda:us-east-1:1:function:echo".into()),
                                    ("content-type", "application/json".into()),
                                ],
                                function_url_event().to_string(),
                            )
                        }
                    }),
                )
                .route(
                    "/2018-06-01/runtime/invocation/{id}/response",
                    post(move |body: String| {
                        let answered = answered.clone();
                        async move {
                            if let Some(tx) = answered.lock().unwrap().take() {
                                let _ = tx.send(body);
                            }
                            axum::http::StatusCode::ACCEPTED
                        }
                    }),
                );
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
            addr
        });
        let log_path = std::env::temp_dir().join(format!("instapipe-telemetry-{}.log", std::process::id()));
        let log_file = std::fs::File::create(&log_path).unwrap();
        let env: HashMap<&str, String> = HashMap::from([
            (CHILD_VAR, "1".to_string()),
            ("LOG_LEVEL", "trace".into()),
            ("AWS_LAMBDA_RUNTIME_API", addr.to_string()),
            ("AWS_LAMBDA_FUNCTION_NAME", "echo".into()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128".into()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "1".into()),
            ("TABLE_NAME", "posts".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE".into()),
            ("AWS_SECRET_ACCESS_KEY", "example".into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ]);
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "telemetry::tests::at_trace_neither_the_raw_event_nor_the_authorization_header_is_logged"])
            .args(["--nocapture", "--test-threads=1"])
            .envs(env)
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
            .unwrap();
        let answer = answered_rx.recv_timeout(Duration::from_secs(60));
        let _ = child.kill();
        let _ = child.wait();
        let logs = std::fs::read_to_string(&log_path).unwrap();
        let _ = std::fs::remove_file(&log_path);
        let answer = answer.unwrap_or_else(|_| panic!("the child never answered the invocation; its output:\n{logs}"));
        assert!(answer.contains("ok"), "{answer}");
        assert!(logs.contains("echo handled a request"), "instapipe's trace level is on:\n{logs}");
        assert!(!logs.contains("SECRET"), "the key was logged:\n{logs}");
        assert!(!logs.contains("raw JSON event"), "the raw event was logged:\n{logs}");
        drop(runtime);
    }
}
