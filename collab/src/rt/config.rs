use std::time::Duration;

/// Limits of the realtime socket and meetings; each is a setting of the same name in the
/// gateway's configuration (see `docs/realtime.md`).
#[derive(Debug, Clone)]
pub struct RtConfig {
    /// A text frame above this closes the socket with 1009.
    pub max_message_bytes: usize,
    /// The encoded `payload` of one `meet.signal`.
    pub signal_bytes: usize,
    /// Requests per second per socket (burst twice that).
    pub messages_per_second: u32,
    /// `meet.signal` requests per second per participant.
    pub signals_per_second: u32,
    /// More errors than this in a minute closes the socket with 1008.
    pub max_errors_per_minute: u32,
    /// How long a dropped session keeps its seat.
    pub resume_window: Duration,
    /// Events kept per session for replay on resume.
    pub replay_bytes: usize,
    /// Frames queued for one socket; a reader further behind is closed 1008 `slow_reader`.
    pub outbound_bytes: usize,
    pub max_participants_per_meeting: usize,
    pub max_lobby_per_meeting: usize,
    /// The heartbeat clients are told to keep; a socket silent for three of these is closed.
    pub heartbeat: Duration,
    /// The public base URL, for meeting links in replies.
    pub public_url: String,
}

impl Default for RtConfig {
    fn default() -> Self {
        RtConfig {
            max_message_bytes: 64 * 1024,
            signal_bytes: 16 * 1024,
            messages_per_second: 50,
            signals_per_second: 40,
            max_errors_per_minute: 20,
            resume_window: Duration::from_secs(30),
            replay_bytes: 256 * 1024,
            outbound_bytes: 1024 * 1024,
            max_participants_per_meeting: 50,
            max_lobby_per_meeting: 100,
            heartbeat: Duration::from_secs(20),
            public_url: "http://127.0.0.1:8080".to_owned(),
        }
    }
}
