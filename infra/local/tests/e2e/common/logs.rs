//! The one log subscriber of the test binary, and the TRACE capture of the secret-hygiene test.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use tracing_subscriber::filter::{EnvFilter, LevelFilter};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::prelude::*;
use tracing_subscriber::reload;

/// The test binary's log subscriber (a process has one): handler logs at warn (instapipe_core at
/// info) show with a failing test's output, and a capture at TRACE that one test at a time turns
/// on (the secret-hygiene test). Every test calls this before it starts a stack.
pub fn logs() -> &'static Logs {
    static LOGS: OnceLock<Logs> = OnceLock::new();
    LOGS.get_or_init(|| {
        let captured = Captured::default();
        let (capture_filter, handle) = reload::Layer::new(LevelFilter::OFF);
        tracing_subscriber::registry()
            .with(tracing_subscriber::fmt::layer().with_test_writer().with_filter(EnvFilter::new("warn,instapipe_core=info")))
            .with(tracing_subscriber::fmt::layer().with_ansi(false).with_writer(captured.clone()).with_filter(capture_filter))
            .try_init()
            .expect("only common::logs installs a subscriber in this test binary");
        let set_capture_level = Box::new(move |level| handle.reload(level).expect("the subscriber is installed"));
        Logs { captured, capture: Mutex::new(()), set_capture_level }
    })
}

pub struct Logs {
    captured: Captured,
    /// Held while a capture runs: one capturing test at a time.
    capture: Mutex<()>,
    set_capture_level: Box<dyn Fn(LevelFilter) + Send + Sync>,
}

impl Logs {
    /// Captures every log line of every crate at TRACE, this test's and those of the tests that
    /// run beside it, until the returned capture is dropped.
    pub fn capture_trace(&self) -> Capture<'_> {
        let one_at_a_time = self.capture.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        self.captured.0.lock().unwrap().clear();
        (self.set_capture_level)(LevelFilter::TRACE);
        Capture { logs: self, _one_at_a_time: one_at_a_time }
    }
}

pub struct Capture<'a> {
    logs: &'a Logs,
    _one_at_a_time: std::sync::MutexGuard<'a, ()>,
}

impl Capture<'_> {
    /// Everything captured so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.logs.captured.0.lock().unwrap()).into_owned()
    }
}

impl Drop for Capture<'_> {
    fn drop(&mut self) {
        (self.logs.set_capture_level)(LevelFilter::OFF);
        self.logs.captured.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clear();
    }
}

/// What the capture layer writes, in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

struct CapturedWriter(Arc<Mutex<Vec<u8>>>);

impl Write for CapturedWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = CapturedWriter;

    fn make_writer(&'a self) -> Self::Writer {
        CapturedWriter(self.0.clone())
    }
}
