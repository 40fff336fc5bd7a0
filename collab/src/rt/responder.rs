//! The one answer a request gets. Whoever handles a request (the socket's task or a meeting's
//! owner) answers through a `Responder`; one dropped unanswered answers `internal`, so a
//! client never waits for a reply that will not come.

use std::sync::Arc;

use serde_json::Value;

use super::observer::RtObserver;
use super::session::Session;
use super::wire;

pub(crate) struct Responder {
    session: Arc<Session>,
    re: String,
    observer: Arc<dyn RtObserver>,
    answered: bool,
}

impl Responder {
    pub(crate) fn new(session: Arc<Session>, re: String, observer: Arc<dyn RtObserver>) -> Self {
        Responder {
            session,
            re,
            observer,
            answered: false,
        }
    }

    pub(crate) fn ok(mut self, data: Value) {
        self.answered = true;
        self.session.reply(wire::ok(&self.re, data));
    }

    pub(crate) fn err(mut self, code: &'static str, message: &str) {
        self.answered = true;
        self.observer.error_sent(code);
        self.session
            .reply(wire::error(Some(&self.re), code, message));
    }

    /// Drops without answering: the request is being handed to someone else.
    pub(crate) fn disarm(mut self) {
        self.answered = true;
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        if !self.answered {
            self.observer.error_sent("internal");
            self.session.reply(wire::error(
                Some(&self.re),
                "internal",
                "the request was lost; try again",
            ));
        }
    }
}
