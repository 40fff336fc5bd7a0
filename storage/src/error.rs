use thiserror::Error;

/// Errors a store operation can end with. Backends map their own failures onto these so
/// callers can decide between retrying, reporting and giving up without knowing the backend.
#[derive(Debug, Error)]
pub enum StoreError {
    /// A conditional put lost: the object exists (if-absent) or changed (if-match).
    #[error("conditional write failed: {key} was written by someone else")]
    ConditionFailed { key: String },
    /// The key is not a valid object key.
    #[error("invalid object key {key:?}: {reason}")]
    InvalidKey { key: String, reason: &'static str },
    /// A stored object could not be decoded (wrong marker, unknown version, truncated).
    #[error("stored object {key} is unreadable: {reason}")]
    Corrupt { key: String, reason: String },
    /// The backend failed in a way that may pass (I/O error, timeout, throttling).
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The backend refused for a reason that will not pass by retrying (permissions, setup).
    #[error("store misconfigured: {0}")]
    Misconfigured(String),
}

impl StoreError {
    /// Whether retrying the same operation later can succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

impl From<std::io::Error> for StoreError {
    fn from(e: std::io::Error) -> Self {
        match e.kind() {
            std::io::ErrorKind::PermissionDenied => StoreError::Misconfigured(e.to_string()),
            _ => StoreError::Unavailable(e.to_string()),
        }
    }
}
