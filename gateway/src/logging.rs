//! Log set-up: where lines go, whether they are coloured, and how panics are reported.
//!
//! Logs go to stderr (stdout stays free for what a program's output is). Colour codes are
//! written only when stderr is a terminal and `NO_COLOR` is unset or empty
//! (<https://no-color.org>): a file, a pipe or journald gets plain text.

use std::io::IsTerminal;

use tracing::Level;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Whether to write ANSI colour codes: only to a terminal, and never with `NO_COLOR` set.
pub fn use_colour(is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    is_terminal && no_color.is_none_or(|v| v.is_empty())
}

/// Installs the global subscriber (once, at start-up) and the panic hook.
pub fn init(format: LogFormat, filter: &str) {
    let filter = EnvFilter::new(filter);
    let colour = use_colour(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    match format {
        LogFormat::Text => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_target(false)
            .with_ansi(colour)
            .with_writer(std::io::stderr)
            .init(),
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .with_ansi(false)
            .with_writer(std::io::stderr)
            .init(),
    }
    install_panic_hook();
}

/// Replaces the default panic printer (raw text with a backtrace hint, outside the log
/// format) by one ERROR event with the message and location. The backtrace is captured only
/// when DEBUG is enabled, and logged at DEBUG: it helps a developer, not an operator.
///
/// Panics inside request handlers and rooms are caught (tower-http's catch-panic layer,
/// `catch_unwind` around yrs); the server goes on, and this hook is what leaves a trace.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let panic = panic_message(info.payload());
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let thread = std::thread::current();
        let thread = thread.name().unwrap_or("unnamed");
        tracing::error!(%panic, %location, thread, "a panic was caught; the server continues");
        if tracing::enabled!(Level::DEBUG) {
            let backtrace = std::backtrace::Backtrace::force_capture();
            tracing::debug!(%backtrace, "backtrace of the panic above");
        }
    }));
}

/// The text a panic was raised with (`panic!("…")` gives a `&str` or a `String`).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        use std::ffi::OsStr;
        assert!(use_colour(true, None));
        assert!(use_colour(true, Some(OsStr::new(""))));
        assert!(!use_colour(true, Some(OsStr::new("1"))));
        assert!(!use_colour(false, None));
    }
}
