//! A caught panic is reported as one ERROR log line with its message; its backtrace is
//! logged only at DEBUG (the default panic printer wrote raw text with a backtrace hint to
//! stderr, outside the log format, and the engine logged it at WARN).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::sync::{Arc, Mutex};

use tracing_subscriber::fmt::MakeWriter;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

/// Panics inside `catch_unwind` with logs at `level`; returns what was logged.
fn panic_logged_at(level: tracing::Level) -> String {
    let out = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_ansi(false)
        .with_writer(out.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        let caught = std::panic::catch_unwind(|| panic!("boom in a handler 42"));
        assert!(caught.is_err());
    });
    String::from_utf8(out.0.lock().unwrap().clone()).unwrap()
}

#[test]
fn a_caught_panic_is_one_error_line_and_its_backtrace_is_debug_only() {
    dure_gateway::logging::install_panic_hook();
    let info = panic_logged_at(tracing::Level::INFO);
    let debug = panic_logged_at(tracing::Level::DEBUG);
    // The default printer back, so that a failing assertion below is shown.
    let _ = std::panic::take_hook();
    let lines: Vec<&str> = info.lines().collect();
    assert_eq!(lines.len(), 1, "{info}");
    assert!(lines[0].contains("ERROR"), "{info}");
    assert!(lines[0].contains("boom in a handler 42"), "{info}");
    assert!(lines[0].contains("panic_log.rs"), "the location: {info}");
    // (The thread, named after this test, says "backtrace" too: look for the backtrace line.)
    assert!(
        !info.contains("backtrace of the panic"),
        "no backtrace at INFO: {info}"
    );

    assert!(debug.contains("ERROR") && debug.contains("boom in a handler 42"));
    assert!(
        debug.contains("DEBUG") && debug.contains("backtrace of the panic"),
        "the backtrace at DEBUG: {debug}"
    );
}
