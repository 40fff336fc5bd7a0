//! The stable error codes clients see: the `error` field of JSON errors and the reason of
//! WebSocket close frames. One table, so that the API, the sockets, the metrics labels and
//! the browser app's translations (clients/web/src/i18n.ts, `err_<code>`) agree.
//!
//! A code comes with a short generic English sentence. Neither ever carries internal detail
//! (store paths, bucket names, endpoints, yrs messages): that detail goes to the log, next
//! to the code, where an operator can find it.

/// Every code Dure sends. Adding one: add it here, to [`ErrorCode::ALL`], and to the app's
/// translations (a test checks the app names every code).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    // Requests.
    BadRequest,
    Unauthenticated,
    Forbidden,
    NotFound,
    Conflict,
    QuotaExceeded,
    UnknownUser,
    AmbiguousUser,
    RateLimited,
    TooLarge,
    TypeMismatch,
    TypeNotAllowed,
    ImportRefused,
    ImportBusy,
    MethodNotAllowed,
    UnknownHost,
    Unavailable,
    Internal,
    // Document sockets.
    ForeignOrigin,
    TooManySockets,
    TooManyDocumentsOpen,
    Restart,
    Malformed,
    InvalidUpdate,
    AwarenessTooLarge,
    SlowReader,
    RoomFailed,
    DocumentTooLarge,
    FrameTooLarge,
    ProtocolError,
    TextFrame,
}

impl ErrorCode {
    pub const ALL: &[ErrorCode] = &[
        ErrorCode::BadRequest,
        ErrorCode::Unauthenticated,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::Conflict,
        ErrorCode::QuotaExceeded,
        ErrorCode::UnknownUser,
        ErrorCode::AmbiguousUser,
        ErrorCode::RateLimited,
        ErrorCode::TooLarge,
        ErrorCode::TypeMismatch,
        ErrorCode::TypeNotAllowed,
        ErrorCode::ImportRefused,
        ErrorCode::ImportBusy,
        ErrorCode::MethodNotAllowed,
        ErrorCode::UnknownHost,
        ErrorCode::Unavailable,
        ErrorCode::Internal,
        ErrorCode::ForeignOrigin,
        ErrorCode::TooManySockets,
        ErrorCode::TooManyDocumentsOpen,
        ErrorCode::Restart,
        ErrorCode::Malformed,
        ErrorCode::InvalidUpdate,
        ErrorCode::AwarenessTooLarge,
        ErrorCode::SlowReader,
        ErrorCode::RoomFailed,
        ErrorCode::DocumentTooLarge,
        ErrorCode::FrameTooLarge,
        ErrorCode::ProtocolError,
        ErrorCode::TextFrame,
    ];

    /// The code as sent: `snake_case`, at most 32 bytes (a close reason holds 123).
    pub fn as_str(self) -> &'static str {
        self.entry().0
    }

    /// The generic sentence sent with the code.
    pub fn message(self) -> &'static str {
        self.entry().1
    }

    fn entry(self) -> (&'static str, &'static str) {
        use ErrorCode::*;
        match self {
            BadRequest => ("bad_request", "The request is not valid."),
            Unauthenticated => ("unauthenticated", "Sign in first."),
            Forbidden => ("forbidden", "You have no access to this."),
            NotFound => ("not_found", "No such document."),
            Conflict => (
                "conflict",
                "The change conflicts with the document's state.",
            ),
            QuotaExceeded => ("quota_exceeded", "You own as many documents as allowed."),
            UnknownUser => ("unknown_user", "Nobody by that name has signed in yet."),
            AmbiguousUser => (
                "ambiguous_user",
                "More than one person has that e-mail address; share by user id.",
            ),
            RateLimited => ("rate_limited", "Too many requests; try again shortly."),
            TooLarge => ("too_large", "This is larger than the server allows."),
            TypeMismatch => (
                "type_mismatch",
                "The file is not what its name or type says it is.",
            ),
            TypeNotAllowed => ("type_not_allowed", "Files of this type are not allowed."),
            ImportRefused => ("import_refused", "This Markdown file cannot be imported."),
            ImportBusy => (
                "import_busy",
                "Too many imports at once; try again shortly.",
            ),
            MethodNotAllowed => ("method_not_allowed", "That method is not allowed here."),
            UnknownHost => (
                "unknown_host",
                "This server does not answer to that host name.",
            ),
            Unavailable => (
                "unavailable",
                "The server cannot reach its storage right now; try again shortly.",
            ),
            Internal => ("internal", "Something went wrong on the server."),
            ForeignOrigin => (
                "foreign_origin",
                "Pages from other sites may not open documents here.",
            ),
            TooManySockets => (
                "too_many_sockets",
                "You have too many connections open; close some.",
            ),
            TooManyDocumentsOpen => (
                "too_many_documents_open",
                "You have too many documents open; close some.",
            ),
            Restart => ("restart", "The server is restarting; reconnecting."),
            Malformed => ("malformed", "The client sent a message that is not valid."),
            InvalidUpdate => (
                "invalid_update",
                "The client sent a change that cannot be applied.",
            ),
            AwarenessTooLarge => (
                "awareness_too_large",
                "The client's presence data is too large.",
            ),
            SlowReader => ("slow_reader", "The connection was too slow to keep up."),
            RoomFailed => (
                "room_failed",
                "The document failed on the server; reconnect to reload it.",
            ),
            DocumentTooLarge => (
                "document_too_large",
                "The document reached its size limit; the change was not applied.",
            ),
            FrameTooLarge => (
                "frame_too_large",
                "The client sent a message larger than allowed.",
            ),
            ProtocolError => (
                "protocol_error",
                "The connection broke the WebSocket protocol.",
            ),
            TextFrame => ("text_frame", "Text messages are not part of the protocol."),
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The code for a room's reason to close a socket.
pub fn of_close(reason: &dure_collab::CloseReason) -> ErrorCode {
    use dure_collab::CloseReason::*;
    match reason {
        Malformed(_) => ErrorCode::Malformed,
        InvalidUpdate(_) => ErrorCode::InvalidUpdate,
        AwarenessTooLarge { .. } => ErrorCode::AwarenessTooLarge,
        SlowReader => ErrorCode::SlowReader,
        Restart => ErrorCode::Restart,
        RoomFailed(_) => ErrorCode::RoomFailed,
        DocumentTooLarge { .. } => ErrorCode::DocumentTooLarge,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_short_snake_case_and_translated_by_the_app() {
        let i18n = include_str!("../../clients/web/src/i18n.ts");
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            let s = code.as_str();
            assert!(seen.insert(s), "{s} twice");
            assert!(s.len() <= 32 && s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
            assert!(code.message().ends_with('.'), "{s}");
            // Korean and English both (the type checks ko has every en key; count both).
            let key = format!("err_{s}:");
            assert_eq!(i18n.matches(&key).count(), 2, "app translations for {s}");
        }
        // Every room close reason has its code.
        for reason in [
            dure_collab::CloseReason::Malformed("x".into()),
            dure_collab::CloseReason::SlowReader,
        ] {
            assert!(ErrorCode::ALL.contains(&of_close(&reason)));
        }
    }
}
