//! Settings of messaging (`docs/messaging.md`, "Configuration"): message and membership
//! bounds, the posting rate, attachment and image limits, search, store writes and
//! retention. Their flags are flattened into [`super::Cli`].

use std::collections::BTreeMap;
use std::time::Duration;

use super::{ConfigError, StorageBackend, duration, invalid, positive, size};

/// Limits and schedules of conversations and their files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MsgConfig {
    /// Characters in one message's text.
    pub max_message_chars: usize,
    /// Conversations one user may be a member of.
    pub max_conversations_per_user: usize,
    /// Members of one conversation.
    pub max_conversation_members: usize,
    /// Messages one user may post per second (in bursts of four times that).
    pub msg_posts_per_second: u32,
    /// Largest file one upload may carry.
    pub max_attachment_bytes: usize,
    /// Largest image (width × height) decoded for a thumbnail; larger ones are refused.
    pub max_image_pixels: u64,
    /// How much of each conversation's newest log a search reads.
    pub msg_search_scan_bytes: usize,
    /// `None`: chosen by the storage backend ([`msg_store_writes_for`]).
    pub msg_store_writes: Option<usize>,
    /// How long direct conversations' messages are kept; `None` keeps them forever.
    pub retention_direct: Option<Duration>,
    /// How long group conversations' messages are kept; `None` keeps them forever.
    pub retention_group: Option<Duration>,
    /// How long meetings' chats are kept; `None` keeps them forever.
    pub retention_meeting: Option<Duration>,
    /// How often the retention task runs (it also removes files never attached).
    pub retention_interval: Duration,
    /// Uploads received at once across the server (each held in memory).
    pub upload_concurrency: usize,
    /// Uploads one person may have being received at once.
    pub uploads_per_user: usize,
}

impl Default for MsgConfig {
    fn default() -> Self {
        MsgConfig {
            max_message_chars: MAX_MESSAGE_CHARS_LIMIT,
            max_conversations_per_user: 1000,
            max_conversation_members: 2000,
            msg_posts_per_second: 5,
            max_attachment_bytes: 25 * 1024 * 1024,
            max_image_pixels: 40_000_000,
            msg_search_scan_bytes: 4 * 1024 * 1024,
            msg_store_writes: None,
            retention_direct: None,
            retention_group: None,
            retention_meeting: None,
            retention_interval: Duration::from_secs(3600),
            upload_concurrency: 8,
            uploads_per_user: 2,
        }
    }
}

impl MsgConfig {
    /// `msg_store_writes` as set, else the backend's default.
    pub fn store_writes(&self, storage: &StorageBackend) -> usize {
        self.msg_store_writes
            .unwrap_or_else(|| msg_store_writes_for(storage))
    }
}

/// The upper bounds below come from the store layout (`dure_collab::msg::layout`): its
/// objects are read whole under fixed size caps, so a setting must not let one outgrow them.
/// A log batch holds 32 of the largest messages (8,000 characters each).
const MAX_MESSAGE_CHARS_LIMIT: usize = 8000;
/// The user state object (1 MiB) lists every conversation of its user in under 100 bytes.
const MAX_CONVERSATIONS_PER_USER_LIMIT: usize = 10_000;
/// The meta object (4 MiB) lists every member in a few hundred bytes.
const MAX_CONVERSATION_MEMBERS_LIMIT: usize = 10_000;
/// An upload is held in memory while it is checked and stored.
const MAX_ATTACHMENT_BYTES_LIMIT: usize = 1024 * 1024 * 1024;
/// A decode may take 8 bytes per pixel (16-bit RGBA), two at once.
const MAX_IMAGE_PIXELS_LIMIT: u64 = 250_000_000;

/// `msg_store_writes` when not set: the same reasoning and figures as meeting chat
/// (`super::meet::chat_store_writes_for`): fsyncs on local disk take this machine's CPU,
/// object-store writes are network round trips that want many in flight.
pub fn msg_store_writes_for(storage: &StorageBackend) -> usize {
    super::meet::chat_store_writes_for(storage)
}

/// The flags (and `DURE_*` variables) of [`MsgConfig`].
#[derive(clap::Args, Debug, Default)]
pub struct MsgFlags {
    /// Characters in one message, at most 8000 [default: 8000].
    #[arg(long, env = "DURE_MAX_MESSAGE_CHARS", value_name = "N")]
    pub max_message_chars: Option<String>,
    /// Conversations one user may belong to; more get quota_exceeded [default: 1000].
    #[arg(long, env = "DURE_MAX_CONVERSATIONS_PER_USER", value_name = "N")]
    pub max_conversations_per_user: Option<String>,
    /// Members of one conversation; more get quota_exceeded [default: 2000].
    #[arg(long, env = "DURE_MAX_CONVERSATION_MEMBERS", value_name = "N")]
    pub max_conversation_members: Option<String>,
    /// Messages one user may post per second, in bursts of four times that; more get
    /// rate_limited [default: 5].
    #[arg(long, env = "DURE_MSG_POSTS_PER_SECOND", value_name = "N")]
    pub msg_posts_per_second: Option<String>,
    /// Largest file attached to a conversation; bigger uploads get 413 [default: 25MiB].
    #[arg(long, env = "DURE_MAX_ATTACHMENT_BYTES", value_name = "SIZE")]
    pub max_attachment_bytes: Option<String>,
    /// Largest image (width x height) accepted; larger ones get 413, smaller ones a
    /// thumbnail [default: 40000000].
    #[arg(long, env = "DURE_MAX_IMAGE_PIXELS", value_name = "N")]
    pub max_image_pixels: Option<String>,
    /// How much of each conversation's newest messages a search reads [default: 4MiB].
    #[arg(long, env = "DURE_MSG_SEARCH_SCAN_BYTES", value_name = "SIZE")]
    pub msg_search_scan_bytes: Option<String>,
    /// Message log writes to the store at once, across all conversations [default: 2 on
    /// fs, whose fsyncs cost this machine's CPU; 32 on s3 and memory].
    #[arg(long, env = "DURE_MSG_STORE_WRITES", value_name = "N")]
    pub msg_store_writes: Option<String>,
    /// How long messages of direct conversations are kept, e.g. 365d; 0 keeps them forever
    /// [default: 0].
    #[arg(long, env = "DURE_RETENTION_DIRECT", value_name = "DURATION")]
    pub retention_direct: Option<String>,
    /// How long messages of group conversations are kept, e.g. 365d; 0 keeps them forever
    /// [default: 0].
    #[arg(long, env = "DURE_RETENTION_GROUP", value_name = "DURATION")]
    pub retention_group: Option<String>,
    /// How long messages of meetings' chats are kept, e.g. 90d; 0 keeps them forever
    /// [default: 0].
    #[arg(long, env = "DURE_RETENTION_MEETING", value_name = "DURATION")]
    pub retention_meeting: Option<String>,
    /// How often expired messages and files never attached are removed [default: 1h].
    #[arg(long, env = "DURE_RETENTION_INTERVAL", value_name = "DURATION")]
    pub retention_interval: Option<String>,
    /// Uploads received at once across the server, each held in memory up to
    /// max_attachment_bytes; more get 503 [default: 8].
    #[arg(long, env = "DURE_UPLOAD_CONCURRENCY", value_name = "N")]
    pub upload_concurrency: Option<String>,
    /// Uploads one person may have being received at once; more get 429 [default: 2].
    #[arg(long, env = "DURE_UPLOADS_PER_USER", value_name = "N")]
    pub uploads_per_user: Option<String>,
}

/// Keys of these settings in `dure.toml`.
pub const FILE_KEYS: &[&str] = &[
    "max_message_chars",
    "max_conversations_per_user",
    "max_conversation_members",
    "msg_posts_per_second",
    "max_attachment_bytes",
    "max_image_pixels",
    "msg_search_scan_bytes",
    "msg_store_writes",
    "retention_direct",
    "retention_group",
    "retention_interval",
    "retention_meeting",
    "upload_concurrency",
    "uploads_per_user",
];

/// A positive count of at most `max` (`why` says where the bound comes from).
fn count_at_most<T>(setting: &'static str, v: &str, max: T, why: &str) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + Default + std::fmt::Display,
    T::Err: std::fmt::Display,
{
    let n: T = positive(setting, v)?;
    if n > max {
        return Err(invalid(
            setting,
            v,
            format!("must be at most {max} ({why})"),
        ));
    }
    Ok(n)
}

/// A retention period: `0` keeps forever (`None`).
fn retention(setting: &'static str, v: &str) -> Result<Option<Duration>, ConfigError> {
    let d = duration(setting, v)?;
    Ok((!d.is_zero()).then_some(d))
}

impl MsgFlags {
    /// Layers these flags over the file and validates them.
    pub fn resolve(&self, file: &BTreeMap<String, String>) -> Result<MsgConfig, ConfigError> {
        let get =
            |flag: &Option<String>, key: &str| flag.clone().or_else(|| file.get(key).cloned());
        let mut m = MsgConfig::default();
        if let Some(v) = get(&self.max_message_chars, "max_message_chars") {
            m.max_message_chars = count_at_most(
                "max_message_chars",
                &v,
                MAX_MESSAGE_CHARS_LIMIT,
                "a stored log batch holds 32 of the longest messages",
            )?;
        }
        if let Some(v) = get(
            &self.max_conversations_per_user,
            "max_conversations_per_user",
        ) {
            m.max_conversations_per_user = count_at_most(
                "max_conversations_per_user",
                &v,
                MAX_CONVERSATIONS_PER_USER_LIMIT,
                "a user's conversations are kept in one stored object",
            )?;
        }
        if let Some(v) = get(&self.max_conversation_members, "max_conversation_members") {
            m.max_conversation_members = count_at_most(
                "max_conversation_members",
                &v,
                MAX_CONVERSATION_MEMBERS_LIMIT,
                "a conversation's members are kept in one stored object",
            )?;
        }
        if let Some(v) = get(&self.msg_posts_per_second, "msg_posts_per_second") {
            m.msg_posts_per_second = positive("msg_posts_per_second", &v)?;
        }
        if let Some(v) = get(&self.max_attachment_bytes, "max_attachment_bytes") {
            let n = size("max_attachment_bytes", &v)?;
            if n == 0 {
                return Err(invalid(
                    "max_attachment_bytes",
                    &v,
                    "must be greater than zero",
                ));
            }
            if n > MAX_ATTACHMENT_BYTES_LIMIT {
                return Err(invalid(
                    "max_attachment_bytes",
                    &v,
                    "must be at most 1GiB (an upload is held in memory while it is checked)",
                ));
            }
            m.max_attachment_bytes = n;
        }
        if let Some(v) = get(&self.max_image_pixels, "max_image_pixels") {
            m.max_image_pixels = count_at_most(
                "max_image_pixels",
                &v,
                MAX_IMAGE_PIXELS_LIMIT,
                "decoding takes up to 8 bytes per pixel",
            )?;
        }
        if let Some(v) = get(&self.msg_search_scan_bytes, "msg_search_scan_bytes") {
            let n = size("msg_search_scan_bytes", &v)?;
            if n < 1024 {
                return Err(invalid(
                    "msg_search_scan_bytes",
                    &v,
                    "must be at least 1KiB",
                ));
            }
            m.msg_search_scan_bytes = n;
        }
        if let Some(v) = get(&self.upload_concurrency, "upload_concurrency") {
            m.upload_concurrency = count_at_most(
                "upload_concurrency",
                &v,
                1024,
                "each upload is held in memory",
            )?;
        }
        if let Some(v) = get(&self.uploads_per_user, "uploads_per_user") {
            m.uploads_per_user = count_at_most(
                "uploads_per_user",
                &v,
                1024,
                "each upload is held in memory",
            )?;
        }
        if let Some(v) = get(&self.msg_store_writes, "msg_store_writes") {
            m.msg_store_writes = Some(positive("msg_store_writes", &v)?);
        }
        if let Some(v) = get(&self.retention_direct, "retention_direct") {
            m.retention_direct = retention("retention_direct", &v)?;
        }
        if let Some(v) = get(&self.retention_group, "retention_group") {
            m.retention_group = retention("retention_group", &v)?;
        }
        if let Some(v) = get(&self.retention_meeting, "retention_meeting") {
            m.retention_meeting = retention("retention_meeting", &v)?;
        }
        if let Some(v) = get(&self.retention_interval, "retention_interval") {
            let d = duration("retention_interval", &v)?;
            // Each run lists the store; zero would run it back to back.
            if d < Duration::from_secs(1) {
                return Err(invalid("retention_interval", &v, "must be at least 1s"));
            }
            m.retention_interval = d;
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Cli;
    use crate::config::tests::cli;

    const DAY: u64 = 86_400;

    #[test]
    fn messaging_defaults_match_the_spec() {
        let cfg = Cli::default().resolve().expect("defaults valid");
        assert_eq!(cfg.msg, MsgConfig::default());
        let m = &cfg.msg;
        assert_eq!(m.max_message_chars, 8000);
        assert_eq!(m.max_conversations_per_user, 1000);
        assert_eq!(m.max_conversation_members, 2000);
        assert_eq!(m.msg_posts_per_second, 5);
        assert_eq!(m.max_attachment_bytes, 25 * 1024 * 1024);
        assert_eq!(m.max_image_pixels, 40_000_000);
        assert_eq!(m.msg_search_scan_bytes, 4 * 1024 * 1024);
        assert_eq!(m.retention_direct, None, "kept forever by default");
        assert_eq!(m.retention_group, None);
        assert_eq!(m.retention_interval, Duration::from_secs(3600));
    }

    #[test]
    fn msg_store_writes_follows_the_backend_unless_set() {
        let writes = |args: &[&str]| {
            let cfg = cli(args).resolve().expect("valid");
            cfg.msg.store_writes(&cfg.storage)
        };
        assert_eq!(writes(&[]), 2, "fs: fsyncs share the CPU");
        assert_eq!(writes(&["--storage", "memory"]), 32);
        assert_eq!(
            writes(&["--storage", "memory", "--msg-store-writes", "7"]),
            7
        );
    }

    #[test]
    fn messaging_settings_from_file_and_flags() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("dure.toml");
        std::fs::write(
            &path,
            "max_message_chars = 2000\nmax_attachment_bytes = \"10MiB\"\nmsg_search_scan_bytes = \"64KiB\"\nretention_direct = \"365d\"\nretention_group = \"0\"\nretention_interval = \"30m\"\nmax_image_pixels = 1000000\n",
        )
        .expect("write");
        let p = path.to_str().expect("utf8");
        let cfg = cli(&[
            "--config",
            p,
            "--max-message-chars",
            "4000",
            "--retention-group",
            "2w",
            "--retention-meeting",
            "90d",
            "--max-conversation-members",
            "50",
        ])
        .resolve()
        .expect("valid");
        let m = &cfg.msg;
        assert_eq!(m.max_message_chars, 4000, "the flag wins over the file");
        assert_eq!(m.max_attachment_bytes, 10 * 1024 * 1024);
        assert_eq!(m.msg_search_scan_bytes, 64 * 1024);
        assert_eq!(m.retention_direct, Some(Duration::from_secs(365 * DAY)));
        assert_eq!(m.retention_group, Some(Duration::from_secs(14 * DAY)));
        assert_eq!(m.retention_meeting, Some(Duration::from_secs(90 * DAY)));
        assert_eq!(m.retention_interval, Duration::from_secs(1800));
        assert_eq!(m.max_image_pixels, 1_000_000);
        assert_eq!(m.max_conversation_members, 50);
        // `0` in any spelling keeps forever.
        let cfg = cli(&["--retention-direct", "0s"]).resolve().expect("valid");
        assert_eq!(cfg.msg.retention_direct, None);
    }

    #[test]
    fn names_the_invalid_messaging_setting() {
        for (args, setting) in [
            (vec!["--max-message-chars", "0"], "max_message_chars"),
            (vec!["--max-message-chars", "8001"], "max_message_chars"),
            (
                vec!["--max-conversations-per-user", "many"],
                "max_conversations_per_user",
            ),
            (
                vec!["--max-conversations-per-user", "100000"],
                "max_conversations_per_user",
            ),
            (
                vec!["--max-conversation-members", "0"],
                "max_conversation_members",
            ),
            (
                vec!["--max-conversation-members", "10001"],
                "max_conversation_members",
            ),
            (vec!["--msg-posts-per-second", "0"], "msg_posts_per_second"),
            (vec!["--msg-posts-per-second=-1"], "msg_posts_per_second"),
            (vec!["--max-attachment-bytes", "0"], "max_attachment_bytes"),
            (
                vec!["--max-attachment-bytes", "25 parsecs"],
                "max_attachment_bytes",
            ),
            (
                vec!["--max-attachment-bytes", "2GiB"],
                "max_attachment_bytes",
            ),
            (vec!["--max-image-pixels", "0"], "max_image_pixels"),
            (vec!["--max-image-pixels", "1e6"], "max_image_pixels"),
            (vec!["--max-image-pixels", "300000000"], "max_image_pixels"),
            (
                vec!["--msg-search-scan-bytes", "10"],
                "msg_search_scan_bytes",
            ),
            (vec!["--msg-store-writes", "0"], "msg_store_writes"),
            (vec!["--retention-direct", "a year"], "retention_direct"),
            (vec!["--retention-group", "365"], "retention_group"),
            (vec!["--retention-meeting", "forever"], "retention_meeting"),
            (vec!["--retention-interval", "0"], "retention_interval"),
            (vec!["--retention-interval", "soon"], "retention_interval"),
        ] {
            let err = cli(&args).resolve().expect_err("invalid");
            assert!(
                err.to_string().contains(&format!("`{setting}`")),
                "{args:?}: {err}"
            );
        }
    }

    #[test]
    fn unknown_messaging_keys_are_still_refused_in_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("dure.toml");
        std::fs::write(&path, "max_message_char = 10\n").expect("write");
        let err = cli(&["--config", path.to_str().expect("utf8")])
            .resolve()
            .expect_err("unknown key");
        let msg = err.to_string();
        assert!(
            msg.contains("unknown setting `max_message_char`") && msg.contains("max_message_chars"),
            "{msg}"
        );
    }
}
