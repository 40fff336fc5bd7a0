//! Settings of meetings and the realtime socket (`docs/realtime.md`, "Configuration"). Their
//! flags are flattened into [`super::Cli`].

use std::collections::BTreeMap;
use std::time::Duration;

use super::{ConfigError, duration, invalid, positive, size};
use crate::meetings::turn::TurnConfig;

/// Quotas of the meetings API, limits of `/ws/rt` and the TURN/STUN servers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MeetConfig {
    pub max_meetings_per_user: usize,
    pub max_invites_per_meeting: usize,
    pub rt_max_message_bytes: usize,
    pub rt_signal_bytes: usize,
    pub rt_messages_per_second: u32,
    pub rt_signals_per_second: u32,
    pub rt_max_errors_per_minute: u32,
    pub rt_resume_window: Duration,
    pub rt_replay_bytes: usize,
    pub rt_outbound_bytes: usize,
    pub max_participants_per_meeting: usize,
    pub max_lobby_per_meeting: usize,
    /// Deprecated alias of `msg_store_writes` (meeting chat is a conversation now).
    pub chat_store_writes: Option<usize>,
    pub turn: TurnConfig,
}

/// The default and the bounds of `turn_ttl`: long enough for a refresh at 80 % to arrive in
/// time, short enough that a leaked credential soon stops working.
const TURN_TTL: Duration = Duration::from_secs(600);
const TURN_TTL_MIN: Duration = Duration::from_secs(60);
const TURN_TTL_MAX: Duration = Duration::from_secs(3600);

impl Default for MeetConfig {
    fn default() -> Self {
        let rt = dure_collab::rt::RtConfig::default();
        MeetConfig {
            max_meetings_per_user: 200,
            max_invites_per_meeting: 100,
            rt_max_message_bytes: rt.max_message_bytes,
            rt_signal_bytes: rt.signal_bytes,
            rt_messages_per_second: rt.messages_per_second,
            rt_signals_per_second: rt.signals_per_second,
            rt_max_errors_per_minute: rt.max_errors_per_minute,
            rt_resume_window: rt.resume_window,
            rt_replay_bytes: rt.replay_bytes,
            rt_outbound_bytes: rt.outbound_bytes,
            max_participants_per_meeting: rt.max_participants_per_meeting,
            max_lobby_per_meeting: rt.max_lobby_per_meeting,
            chat_store_writes: None,
            turn: TurnConfig {
                ttl: TURN_TTL,
                ..TurnConfig::default()
            },
        }
    }
}

/// `chat_store_writes` when not set. Local-disk writes are fsyncs that take CPU from the
/// same machine: measured with dure-rt-bench (500 meetings x 4, chat bursts), 1, 2 and 4 at
/// once gave signalling p99 25, 78 and 108 ms and chat p50 370, 213 and 200 ms. Object-store
/// writes are network round trips that cost no local CPU but 20-50 ms each, so they want
/// many in flight.
pub fn chat_store_writes_for(storage: &super::StorageBackend) -> usize {
    match storage {
        super::StorageBackend::Fs => 2,
        _ => 32,
    }
}

/// The flags (and `DURE_*` variables) of [`MeetConfig`].
#[derive(clap::Args, Debug, Default)]
pub struct MeetFlags {
    /// Meetings one user may have created and not ended; more get 409 [default: 200].
    #[arg(long, env = "DURE_MAX_MEETINGS_PER_USER", value_name = "N")]
    pub max_meetings_per_user: Option<String>,
    /// Live guest invites per meeting; more get 409 [default: 100].
    #[arg(long, env = "DURE_MAX_INVITES_PER_MEETING", value_name = "N")]
    pub max_invites_per_meeting: Option<String>,
    /// Largest text frame on /ws/rt; bigger closes the socket with 1009 [default: 64KiB].
    #[arg(long, env = "DURE_RT_MAX_MESSAGE_BYTES", value_name = "SIZE")]
    pub rt_max_message_bytes: Option<String>,
    /// Largest encoded payload of one meet.signal [default: 16KiB].
    #[arg(long, env = "DURE_RT_SIGNAL_BYTES", value_name = "SIZE")]
    pub rt_signal_bytes: Option<String>,
    /// Requests per second per realtime socket, in bursts of twice that [default: 50].
    #[arg(long, env = "DURE_RT_MESSAGES_PER_SECOND", value_name = "N")]
    pub rt_messages_per_second: Option<String>,
    /// meet.signal requests per second per participant [default: 40].
    #[arg(long, env = "DURE_RT_SIGNALS_PER_SECOND", value_name = "N")]
    pub rt_signals_per_second: Option<String>,
    /// Errors a realtime socket may cause per minute before it is closed with 1008
    /// [default: 20].
    #[arg(long, env = "DURE_RT_MAX_ERRORS_PER_MINUTE", value_name = "N")]
    pub rt_max_errors_per_minute: Option<String>,
    /// How long a dropped realtime session keeps its seat for a resume [default: 30s].
    #[arg(long, env = "DURE_RT_RESUME_WINDOW", value_name = "DURATION")]
    pub rt_resume_window: Option<String>,
    /// Events kept per realtime session for replay on resume [default: 256KiB].
    #[arg(long, env = "DURE_RT_REPLAY_BYTES", value_name = "SIZE")]
    pub rt_replay_bytes: Option<String>,
    /// Bytes queued for one realtime socket; a reader further behind is closed 1008
    /// [default: 1MiB].
    #[arg(long, env = "DURE_RT_OUTBOUND_BYTES", value_name = "SIZE")]
    pub rt_outbound_bytes: Option<String>,
    /// People in one meeting's call [default: 50].
    #[arg(long, env = "DURE_MAX_PARTICIPANTS_PER_MEETING", value_name = "N")]
    pub max_participants_per_meeting: Option<String>,
    /// People waiting in one meeting's lobby [default: 100].
    #[arg(long, env = "DURE_MAX_LOBBY_PER_MEETING", value_name = "N")]
    pub max_lobby_per_meeting: Option<String>,
    /// Deprecated: meeting chat is stored as a conversation, so its writes are bounded by
    /// msg_store_writes; this sets msg_store_writes when that is not set.
    #[arg(long, env = "DURE_CHAT_STORE_WRITES", value_name = "N")]
    pub chat_store_writes: Option<String>,
    /// Comma-separated TURN URLs (turn: or turns:) handed to meeting participants with
    /// coturn REST credentials; needs turn_secret or turn_secret_file [default: none].
    #[arg(long, env = "DURE_TURN_URLS", value_name = "URLS")]
    pub turn_urls: Option<String>,
    /// Comma-separated STUN URLs (stun: or stuns:) handed out without credentials
    /// [default: none].
    #[arg(long, env = "DURE_STUN_URLS", value_name = "URLS")]
    pub stun_urls: Option<String>,
    /// The secret shared with coturn (use-auth-secret); prefer turn_secret_file.
    #[arg(
        long,
        env = "DURE_TURN_SECRET",
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub turn_secret: Option<String>,
    /// File with TURN secrets, one per line: the first mints credentials, the others are
    /// listed for coturn during a rotation.
    #[arg(long, env = "DURE_TURN_SECRET_FILE", value_name = "PATH")]
    pub turn_secret_file: Option<String>,
    /// How long TURN credentials stay valid, 1m to 1h [default: 10m].
    #[arg(long, env = "DURE_TURN_TTL", value_name = "DURATION")]
    pub turn_ttl: Option<String>,
}

/// Keys of these settings in `dure.toml`.
pub const FILE_KEYS: &[&str] = &[
    "max_meetings_per_user",
    "max_invites_per_meeting",
    "rt_max_message_bytes",
    "rt_signal_bytes",
    "rt_messages_per_second",
    "rt_signals_per_second",
    "rt_max_errors_per_minute",
    "rt_resume_window",
    "rt_replay_bytes",
    "rt_outbound_bytes",
    "max_participants_per_meeting",
    "max_lobby_per_meeting",
    "chat_store_writes",
    "turn_urls",
    "stun_urls",
    "turn_secret",
    "turn_secret_file",
    "turn_ttl",
];

/// A size of at least `min` bytes.
fn size_at_least(setting: &'static str, v: &str, min: usize) -> Result<usize, ConfigError> {
    let n = size(setting, v)?;
    if n < min {
        return Err(invalid(setting, v, format!("must be at least {min} bytes")));
    }
    Ok(n)
}

fn urls(setting: &'static str, v: &str, schemes: &[&str]) -> Result<Vec<String>, ConfigError> {
    v.split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(|u| {
            let ok = schemes.iter().any(|s| {
                u.strip_prefix(s)
                    .and_then(|rest| rest.strip_prefix(':'))
                    .is_some_and(|host| {
                        !host.is_empty()
                            && !host.starts_with('/')
                            && !host.chars().any(|c| c.is_whitespace() || c.is_control())
                    })
            });
            if ok {
                Ok(u.to_owned())
            } else {
                Err(invalid(
                    setting,
                    u,
                    format!(
                        "expected a URL like {}:turn.example.gov:3478",
                        schemes.join(": or ")
                    ),
                ))
            }
        })
        .collect()
}

impl MeetFlags {
    /// Layers these flags over the file and validates them.
    pub fn resolve(&self, file: &BTreeMap<String, String>) -> Result<MeetConfig, ConfigError> {
        let get =
            |flag: &Option<String>, key: &str| flag.clone().or_else(|| file.get(key).cloned());
        let mut m = MeetConfig::default();
        if let Some(v) = get(&self.max_meetings_per_user, "max_meetings_per_user") {
            m.max_meetings_per_user = positive("max_meetings_per_user", &v)?;
        }
        if let Some(v) = get(&self.max_invites_per_meeting, "max_invites_per_meeting") {
            m.max_invites_per_meeting = positive("max_invites_per_meeting", &v)?;
            // The invites object is one JSON document read whole: keep it small.
            if m.max_invites_per_meeting > 10_000 {
                return Err(invalid(
                    "max_invites_per_meeting",
                    &v,
                    "must be at most 10000",
                ));
            }
        }
        if let Some(v) = get(&self.rt_max_message_bytes, "rt_max_message_bytes") {
            m.rt_max_message_bytes = size_at_least("rt_max_message_bytes", &v, 1024)?;
        }
        if let Some(v) = get(&self.rt_signal_bytes, "rt_signal_bytes") {
            m.rt_signal_bytes = size_at_least("rt_signal_bytes", &v, 256)?;
        }
        if m.rt_signal_bytes > m.rt_max_message_bytes {
            return Err(invalid(
                "rt_signal_bytes",
                &m.rt_signal_bytes.to_string(),
                format!(
                    "must not exceed rt_max_message_bytes ({}): a signal travels in one message",
                    m.rt_max_message_bytes
                ),
            ));
        }
        if let Some(v) = get(&self.rt_messages_per_second, "rt_messages_per_second") {
            m.rt_messages_per_second = positive("rt_messages_per_second", &v)?;
        }
        if let Some(v) = get(&self.rt_signals_per_second, "rt_signals_per_second") {
            m.rt_signals_per_second = positive("rt_signals_per_second", &v)?;
        }
        if let Some(v) = get(&self.rt_max_errors_per_minute, "rt_max_errors_per_minute") {
            m.rt_max_errors_per_minute = positive("rt_max_errors_per_minute", &v)?;
        }
        if let Some(v) = get(&self.rt_resume_window, "rt_resume_window") {
            m.rt_resume_window = duration("rt_resume_window", &v)?;
        }
        if let Some(v) = get(&self.rt_replay_bytes, "rt_replay_bytes") {
            m.rt_replay_bytes = size_at_least("rt_replay_bytes", &v, 1024)?;
        }
        if let Some(v) = get(&self.rt_outbound_bytes, "rt_outbound_bytes") {
            m.rt_outbound_bytes = size_at_least("rt_outbound_bytes", &v, 1024)?;
        }
        if let Some(v) = get(
            &self.max_participants_per_meeting,
            "max_participants_per_meeting",
        ) {
            m.max_participants_per_meeting = positive("max_participants_per_meeting", &v)?;
        }
        if let Some(v) = get(&self.max_lobby_per_meeting, "max_lobby_per_meeting") {
            m.max_lobby_per_meeting = positive("max_lobby_per_meeting", &v)?;
        }
        if let Some(v) = get(&self.chat_store_writes, "chat_store_writes") {
            m.chat_store_writes = Some(positive("chat_store_writes", &v)?);
        }
        if let Some(v) = get(&self.turn_urls, "turn_urls") {
            m.turn.turn_urls = urls("turn_urls", &v, &["turn", "turns"])?;
        }
        if let Some(v) = get(&self.stun_urls, "stun_urls") {
            m.turn.stun_urls = urls("stun_urls", &v, &["stun", "stuns"])?;
        }
        m.turn.secrets = match (
            get(&self.turn_secret, "turn_secret"),
            get(&self.turn_secret_file, "turn_secret_file"),
        ) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "turn_secret",
                    "<redacted>",
                    "set either turn_secret or turn_secret_file, not both",
                ));
            }
            (Some(s), None) if s.trim().is_empty() => {
                return Err(invalid("turn_secret", "", "must not be empty"));
            }
            (Some(s), None) => vec![s.trim().to_owned()],
            (None, Some(path)) => {
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| invalid("turn_secret_file", &path, e))?;
                let secrets: Vec<String> = text
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(str::to_owned)
                    .collect();
                if secrets.is_empty() {
                    return Err(invalid("turn_secret_file", &path, "holds no secret"));
                }
                secrets
            }
            (None, None) => Vec::new(),
        };
        if !m.turn.turn_urls.is_empty() && m.turn.secrets.is_empty() {
            return Err(invalid(
                "turn_urls",
                &m.turn.turn_urls.join(","),
                "needs turn_secret or turn_secret_file (the secret shared with coturn)",
            ));
        }
        if let Some(v) = get(&self.turn_ttl, "turn_ttl") {
            let d = duration("turn_ttl", &v)?;
            if !(TURN_TTL_MIN..=TURN_TTL_MAX).contains(&d) {
                return Err(invalid("turn_ttl", &v, "must be between 1m and 1h"));
            }
            m.turn.ttl = d;
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Cli;
    use crate::config::tests::cli;

    #[test]
    fn meeting_settings_from_file_and_flags() {
        let cfg = Cli::default().resolve().expect("defaults valid");
        assert_eq!(cfg.meet, MeetConfig::default());
        assert_eq!(cfg.meet.max_meetings_per_user, 200);
        assert_eq!(cfg.meet.turn.ttl, Duration::from_secs(600));
        let rt = cfg.rt_config();
        assert_eq!(rt.max_message_bytes, 64 * 1024);
        assert_eq!(rt.public_url, cfg.public_url);
        let dir = tempfile::tempdir().expect("tempdir");
        let secrets = dir.path().join("turn");
        std::fs::write(&secrets, "new-secret\n\nold-secret\n").expect("write");
        let path = dir.path().join("dure.toml");
        std::fs::write(
            &path,
            format!(
                "max_meetings_per_user = 3\nrt_signal_bytes = \"8KiB\"\nturn_urls = \"turn:t.example:3478, turns:t.example:5349\"\nturn_secret_file = \"{}\"\nturn_ttl = \"5m\"\n",
                secrets.display()
            ),
        )
        .expect("write");
        let p = path.to_str().expect("utf8");
        let cfg = cli(&["--config", p, "--stun-urls", "stun:s.example:3478"])
            .resolve()
            .expect("valid");
        assert_eq!(cfg.meet.max_meetings_per_user, 3);
        assert_eq!(cfg.meet.rt_signal_bytes, 8192);
        assert_eq!(cfg.rt_config().signal_bytes, 8192);
        assert_eq!(cfg.meet.turn.turn_urls.len(), 2);
        assert_eq!(cfg.meet.turn.stun_urls, vec!["stun:s.example:3478"]);
        assert_eq!(cfg.meet.turn.secrets, vec!["new-secret", "old-secret"]);
        assert_eq!(cfg.meet.turn.ttl, Duration::from_secs(300));
        assert!(
            !format!("{cfg:?}").contains("new-secret"),
            "secret in Debug"
        );
    }

    #[test]
    fn names_the_invalid_meeting_setting() {
        for (args, setting) in [
            (
                vec!["--max-meetings-per-user", "0"],
                "max_meetings_per_user",
            ),
            (
                vec!["--max-invites-per-meeting", "x"],
                "max_invites_per_meeting",
            ),
            (vec!["--rt-max-message-bytes", "10"], "rt_max_message_bytes"),
            (vec!["--rt-signal-bytes", "1MiB"], "rt_signal_bytes"),
            (
                vec!["--rt-messages-per-second", "0"],
                "rt_messages_per_second",
            ),
            (
                vec!["--rt-signals-per-second", "none"],
                "rt_signals_per_second",
            ),
            (
                vec!["--rt-max-errors-per-minute", "0"],
                "rt_max_errors_per_minute",
            ),
            (vec!["--rt-resume-window", "later"], "rt_resume_window"),
            (vec!["--rt-replay-bytes", "1"], "rt_replay_bytes"),
            (vec!["--rt-outbound-bytes", "lots"], "rt_outbound_bytes"),
            (
                vec!["--max-participants-per-meeting", "0"],
                "max_participants_per_meeting",
            ),
            (
                vec!["--max-lobby-per-meeting", "0"],
                "max_lobby_per_meeting",
            ),
            (vec!["--chat-store-writes", "0"], "chat_store_writes"),
            (
                vec!["--turn-urls", "http://t.example", "--turn-secret", "s"],
                "turn_urls",
            ),
            (vec!["--turn-urls", "turn:t.example:3478"], "turn_urls"),
            (vec!["--stun-urls", "turn:t.example"], "stun_urls"),
            (vec!["--turn-secret", " "], "turn_secret"),
            (
                vec!["--turn-secret-file", "/nonexistent/dure-turn"],
                "turn_secret_file",
            ),
            (vec!["--turn-ttl", "30s"], "turn_ttl"),
            (vec!["--turn-ttl", "2h"], "turn_ttl"),
        ] {
            let err = cli(&args).resolve().expect_err("invalid");
            assert!(
                err.to_string().contains(&format!("`{setting}`")),
                "{args:?}: {err}"
            );
        }
        let err = cli(&["--turn-urls", "turn:t:3478", "--turn-secret", "s3cr3t-turn"])
            .resolve()
            .map(|c| c.meet.turn.secrets);
        assert_eq!(err.ok(), Some(vec!["s3cr3t-turn".to_owned()]));
    }
}
