//! Configuration: `dure.toml`, then `DURE_*` environment variables, then flags; parsed once
//! into types and validated at start, with errors that name the setting.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use dure_collab::RoomConfig;
use dure_collab::richtext::ImportLimits;
use dure_storage_s3::{S3Config, S3Credentials, Secret};

pub mod meet;
pub mod msg;
pub mod net;
pub use meet::MeetConfig;
pub use msg::MsgConfig;
pub use net::NetLimits;

/// Where documents are kept.
#[derive(Clone, Debug)]
pub enum StorageBackend {
    /// Files under the data directory (fsync'd): the embedded default.
    Fs,
    /// Process memory: nothing survives a restart. For tests and demos.
    Memory,
    /// An S3-compatible object store (AWS S3, MinIO, Ceph RGW, Garage).
    S3(Box<S3Config>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// The validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub storage: StorageBackend,
    pub log_format: LogFormat,
    pub log_filter: String,
    pub max_frame_bytes: usize,
    pub ping_interval: Duration,
    pub shutdown_timeout: Duration,
    pub rooms: RoomConfig,
    /// The address people type, without a trailing slash (`https://docs.example.gov`).
    pub public_url: String,
    /// True when `public_url` was not set: it then follows the address actually bound.
    pub public_url_derived: bool,
    /// Origins whose pages may use the session cookie (WebSockets and changes).
    pub allowed_origins: Vec<String>,
    /// The identity provider; `None` is local mode.
    pub oidc: Option<OidcConfig>,
    /// How long a deleted document stays restorable in its owner's trash.
    pub trash_retention: Duration,
    /// Markdown import bounds and per-user quotas (the document size limit is in `rooms`).
    pub limits: DocLimits,
    /// Sign-in and people-search rates, trusted proxies, the secret key.
    pub access: AccessConfig,
    /// Where `/metrics` is served instead of the main listener; `None`: on the main one.
    pub metrics_listen: Option<SocketAddr>,
    /// Connection limits and timeouts, the Host check and the readiness probes.
    pub net: NetLimits,
    /// Meetings: API quotas, realtime socket limits, TURN/STUN servers.
    pub meet: MeetConfig,
    /// Messaging: message and membership bounds, attachments, retention.
    pub msg: MsgConfig,
}

/// Who may ask how often, where a request really comes from, and the key that seals what
/// Dure keeps for a browser (sign-in state in a cookie, provider tokens in the store).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessConfig {
    /// Sign-ins one client address may start per minute (in bursts of as many).
    pub login_rate_per_minute: u32,
    /// People searches (`/api/users`) one user may make per minute.
    pub user_search_rate_per_minute: u32,
    /// Proxies whose forwarding headers (`Forwarded`, `X-Forwarded-For`) name the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// The secret key file; `None`: `<data_dir>/secret.key`, created on first start.
    pub secret_key_file: Option<PathBuf>,
}

impl Default for AccessConfig {
    fn default() -> Self {
        AccessConfig {
            login_rate_per_minute: 60,
            user_search_rate_per_minute: 60,
            trusted_proxies: Vec::new(),
            secret_key_file: None,
        }
    }
}

/// Bounds on Markdown imports and what one user may own or hold open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocLimits {
    /// Largest Markdown file accepted for import.
    pub import_max_bytes: usize,
    /// Nodes and table rows one import may build.
    pub import: ImportLimits,
    /// Imports parsed at once on the whole server (each also limited to one per user).
    pub import_concurrency: usize,
    /// Documents one user may own (the trash included).
    pub max_docs_per_user: usize,
    /// Distinct documents one user may have open at once.
    pub max_rooms_per_user: usize,
    /// Document sockets one user may have open at once.
    pub max_sockets_per_user: usize,
}

impl Default for DocLimits {
    fn default() -> Self {
        DocLimits {
            import_max_bytes: 4 * 1024 * 1024,
            import: ImportLimits::default(),
            import_concurrency: 2,
            max_docs_per_user: 1000,
            max_rooms_per_user: 64,
            max_sockets_per_user: 128,
        }
    }
}

/// Sign-in through an OpenID Connect provider.
#[derive(Clone, Debug)]
pub struct OidcConfig {
    pub issuer: String,
    pub client_id: String,
    /// Redacted in Debug (openidconnect's secret type).
    pub client_secret: openidconnect::ClientSecret,
    pub redirect_url: String,
    pub scopes: Vec<String>,
    /// The ID-token / access-token claim listing the user's groups.
    pub groups_claim: String,
    /// The public (no secret) client the laptop client `dure-desktop` signs in with
    /// (authorization code + PKCE, loopback redirect); advertised by `/api/config`.
    pub desktop_client_id: Option<String>,
    /// The `aud` bearer access tokens must carry.
    pub audience: String,
    /// Whether `oidc_audience` was set: when it was not, the audience is the client id, and a
    /// token meant only for the client id is what an ID token looks like (refused).
    pub audience_explicit: bool,
    /// Bearer tokens must be typed `at+jwt` (RFC 9068), which no ID token is.
    pub bearer_require_at_jwt: bool,
    /// Signature algorithms accepted on access tokens (never taken from the token).
    pub algorithms: Vec<jsonwebtoken::Algorithm>,
    /// Members of this group are administrators (audit log).
    pub admin_group: Option<String>,
    /// Least time between two JWKS refetches caused by an unknown key id.
    pub jwks_refetch_interval: Duration,
    /// Longest a browser session lasts, refreshes included.
    pub session_max_age: Duration,
}

impl Config {
    /// A configuration for tests: memory storage, an ephemeral loopback port.
    pub fn test() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: PathBuf::from("dure-test-data"),
            storage: StorageBackend::Memory,
            log_format: LogFormat::Text,
            log_filter: "warn".into(),
            max_frame_bytes: 1024 * 1024,
            ping_interval: Duration::from_secs(30),
            shutdown_timeout: Duration::from_secs(10),
            rooms: RoomConfig::default(),
            public_url: "http://127.0.0.1:8080".into(),
            public_url_derived: true,
            allowed_origins: vec!["http://127.0.0.1:8080".into()],
            oidc: None,
            trash_retention: Duration::from_secs(30 * 86400),
            limits: DocLimits::default(),
            access: AccessConfig::default(),
            metrics_listen: None,
            net: NetLimits::default(),
            meet: MeetConfig::default(),
            msg: MsgConfig::default(),
        }
    }

    /// The realtime engine's limits, from the meeting settings.
    pub fn rt_config(&self) -> dure_collab::rt::RtConfig {
        let m = &self.meet;
        dure_collab::rt::RtConfig {
            max_message_bytes: m.rt_max_message_bytes,
            signal_bytes: m.rt_signal_bytes,
            messages_per_second: m.rt_messages_per_second,
            signals_per_second: m.rt_signals_per_second,
            max_errors_per_minute: m.rt_max_errors_per_minute,
            resume_window: m.rt_resume_window,
            replay_bytes: m.rt_replay_bytes,
            outbound_bytes: m.rt_outbound_bytes,
            max_participants_per_meeting: m.max_participants_per_meeting,
            max_lobby_per_meeting: m.max_lobby_per_meeting,
            public_url: self.public_url.clone(),
            ..dure_collab::rt::RtConfig::default()
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Names the setting in all three spellings: people set it in one place and search for
    /// that spelling (`s3_bucket` in dure.toml, `--s3-bucket`, `DURE_S3_BUCKET`).
    #[error(
        "setting `{setting}` (flag --{flag}, environment {env}): {reason} (got {value:?})",
        flag = setting.replace('_', "-"),
        env = format!("DURE_{}", setting.to_ascii_uppercase()),
    )]
    Invalid {
        setting: &'static str,
        value: String,
        reason: String,
    },
    #[error("config file {path}: {reason}")]
    File { path: PathBuf, reason: String },
}

/// The command line. `about` is spelled out: without it clap shows the crate's description,
/// which is written for developers.
#[derive(Parser, Debug, Default)]
#[command(
    name = "dure",
    version,
    about = "Dure: collaborative documents for the workplace, served by one program.\n\
             Every option can also be set in dure.toml (same name, `_` for `-`) or as\n\
             DURE_<NAME> in the environment; flags win over the environment, which wins over\n\
             the file.",
    long_about = None
)]
pub struct Cli {
    /// Configuration file [default: ./dure.toml if it exists].
    #[arg(long, env = "DURE_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080]. Only loopback addresses are allowed
    /// while no identity provider is configured (local mode).
    #[arg(long, env = "DURE_LISTEN", value_name = "ADDR")]
    pub listen: Option<String>,
    /// Directory for documents (storage = "fs") [default: ./dure-data].
    #[arg(long, env = "DURE_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<String>,
    /// Storage backend: fs, memory or s3 [default: fs].
    #[arg(long, env = "DURE_STORAGE", value_name = "BACKEND")]
    pub storage: Option<String>,
    /// Log format: text or json [default: text].
    #[arg(long, env = "DURE_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<String>,
    /// Log filter, tracing's EnvFilter syntax [default: info].
    #[arg(long, env = "DURE_LOG", value_name = "FILTER")]
    pub log: Option<String>,
    /// Largest WebSocket frame a client may send; bigger ones close the socket with 1009
    /// [default: 8MiB].
    #[arg(long, env = "DURE_MAX_FRAME_BYTES", value_name = "SIZE")]
    pub max_frame_bytes: Option<String>,
    /// Interval of WebSocket pings; a peer silent for two intervals is dropped [default: 30s].
    #[arg(long, env = "DURE_PING_INTERVAL", value_name = "DURATION")]
    pub ping_interval: Option<String>,
    /// How long shutdown may take to flush rooms and close sockets [default: 10s].
    #[arg(long, env = "DURE_SHUTDOWN_TIMEOUT", value_name = "DURATION")]
    pub shutdown_timeout: Option<String>,
    /// Frames queued for one socket before it counts as a slow reader [default: 1024].
    #[arg(long, env = "DURE_OUTBOUND_QUEUE", value_name = "FRAMES")]
    pub outbound_queue: Option<String>,
    /// How long a slow reader may lag before it is closed with 1013 [default: 15s].
    #[arg(long, env = "DURE_SLOW_READER_TIMEOUT", value_name = "DURATION")]
    pub slow_reader_timeout: Option<String>,
    /// Largest awareness message per connection [default: 32KiB].
    #[arg(long, env = "DURE_AWARENESS_MAX_BYTES", value_name = "SIZE")]
    pub awareness_max_bytes: Option<String>,
    /// Awareness messages per second per connection; extra ones are coalesced [default: 10].
    #[arg(long, env = "DURE_AWARENESS_RATE", value_name = "PER_SECOND")]
    pub awareness_rate: Option<String>,
    /// How long a document with no connections stays loaded [default: 30s].
    #[arg(long, env = "DURE_IDLE_UNLOAD", value_name = "DURATION")]
    pub idle_unload: Option<String>,
    /// Least time between two writes of one document's log: 0 writes as soon as the last
    /// write returned (lowest "saved" latency); more batches more per write (fewer store
    /// requests, later acks) [default: 20ms on fs, 250ms on s3].
    #[arg(long, env = "DURE_COMMIT_INTERVAL", value_name = "DURATION")]
    pub commit_interval: Option<String>,
    /// Compact a document once this many log entries sit above its snapshot [default: 500].
    #[arg(long, env = "DURE_COMPACT_AFTER_ENTRIES", value_name = "N")]
    pub compact_after_entries: Option<String>,
    /// How long unloading a document (idle or at shutdown) may spend merging its log tail
    /// into a snapshot, so the next load reads one object; 0 turns it off. Shutdown stays
    /// bounded by shutdown_timeout too [default: 5s].
    #[arg(long, env = "DURE_UNLOAD_COMPACTION_TIMEOUT", value_name = "DURATION")]
    pub unload_compaction_timeout: Option<String>,
    /// Bytes queued for one socket before it counts as a slow reader; a single larger frame
    /// still goes out alone [default: 8MiB].
    #[arg(long, env = "DURE_OUTBOUND_QUEUE_BYTES", value_name = "SIZE")]
    pub outbound_queue_bytes: Option<String>,
    /// Deepest nesting of arrays/maps in update values, embedded JSON and awareness states;
    /// deeper input closes the socket (1007 or 1002) [default: 64, at most 1000].
    #[arg(long, env = "DURE_MAX_NESTING_DEPTH", value_name = "N")]
    pub max_nesting_depth: Option<String>,
    /// Distinct awareness client ids one socket may set; more closes it with 1002
    /// [default: 4].
    #[arg(long, env = "DURE_AWARENESS_CLIENTS_PER_CONNECTION", value_name = "N")]
    pub awareness_clients_per_connection: Option<String>,
    /// Live awareness states per document; clients beyond it are not shown [default: 512].
    #[arg(long, env = "DURE_AWARENESS_CLIENTS_PER_ROOM", value_name = "N")]
    pub awareness_clients_per_room: Option<String>,
    /// S3 bucket (storage = s3). It must exist; Dure never creates buckets.
    #[arg(long, env = "DURE_S3_BUCKET", value_name = "NAME")]
    pub s3_bucket: Option<String>,
    /// Key prefix inside the bucket, so one bucket can hold several deployments.
    #[arg(long, env = "DURE_S3_PREFIX", value_name = "PREFIX")]
    pub s3_prefix: Option<String>,
    /// S3 region [default: us-east-1].
    #[arg(long, env = "DURE_S3_REGION", value_name = "REGION")]
    pub s3_region: Option<String>,
    /// Endpoint URL of an S3-compatible service (MinIO, Ceph RGW, Garage); unset for AWS.
    #[arg(long, env = "DURE_S3_ENDPOINT", value_name = "URL")]
    pub s3_endpoint: Option<String>,
    /// Path-style addressing (endpoint/bucket/key), needed by most self-hosted services
    /// [default: false].
    #[arg(long, env = "DURE_S3_PATH_STYLE", value_name = "BOOL")]
    pub s3_path_style: Option<String>,
    /// Static access key id; without it the standard AWS credential chain is used
    /// (environment, profile, web identity for Kubernetes service accounts, …).
    #[arg(long, env = "DURE_S3_ACCESS_KEY_ID", value_name = "ID")]
    pub s3_access_key_id: Option<String>,
    /// Static secret access key (prefer s3-secret-access-key-file).
    #[arg(
        long,
        env = "DURE_S3_SECRET_ACCESS_KEY",
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub s3_secret_access_key: Option<String>,
    /// File holding the secret access key (e.g. a mounted Kubernetes secret).
    #[arg(long, env = "DURE_S3_SECRET_ACCESS_KEY_FILE", value_name = "PATH")]
    pub s3_secret_access_key_file: Option<String>,
    /// Longest one S3 request may take before it counts as failed [default: 10s].
    #[arg(long, env = "DURE_S3_REQUEST_TIMEOUT", value_name = "DURATION")]
    pub s3_request_timeout: Option<String>,
    /// The URL people open, e.g. https://docs.example.gov; https is required outside
    /// loopback [default: http://<listen>].
    #[arg(long, env = "DURE_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,
    /// Comma-separated origins allowed to use the session cookie [default: the origin of
    /// public_url].
    #[arg(long, env = "DURE_ALLOWED_ORIGINS", value_name = "ORIGINS")]
    pub allowed_origins: Option<String>,
    /// How long deleted documents stay restorable [default: 30d].
    #[arg(long, env = "DURE_TRASH_RETENTION", value_name = "DURATION")]
    pub trash_retention: Option<String>,
    /// OpenID Connect issuer URL; setting it turns sign-in on (no more local mode).
    #[arg(long, env = "DURE_OIDC_ISSUER", value_name = "URL")]
    pub oidc_issuer: Option<String>,
    /// OAuth client id registered at the provider.
    #[arg(long, env = "DURE_OIDC_CLIENT_ID", value_name = "ID")]
    pub oidc_client_id: Option<String>,
    /// Client secret (prefer oidc-client-secret-file).
    #[arg(
        long,
        env = "DURE_OIDC_CLIENT_SECRET",
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub oidc_client_secret: Option<String>,
    /// File holding the client secret.
    #[arg(long, env = "DURE_OIDC_CLIENT_SECRET_FILE", value_name = "PATH")]
    pub oidc_client_secret_file: Option<String>,
    /// Redirect URL registered at the provider [default: <public_url>/auth/callback].
    #[arg(long, env = "DURE_OIDC_REDIRECT_URL", value_name = "URL")]
    pub oidc_redirect_url: Option<String>,
    /// Space-separated scopes [default: "openid profile email"].
    #[arg(long, env = "DURE_OIDC_SCOPES", value_name = "SCOPES")]
    pub oidc_scopes: Option<String>,
    /// Claim that lists the user's groups [default: groups].
    #[arg(long, env = "DURE_OIDC_GROUPS_CLAIM", value_name = "CLAIM")]
    pub oidc_groups_claim: Option<String>,
    /// Public client id registered for the laptop client (dure-desktop: code + PKCE,
    /// loopback redirect http://127.0.0.1:PORT/cb); advertised in /api/config [default: none].
    #[arg(long, env = "DURE_OIDC_DESKTOP_CLIENT_ID", value_name = "ID")]
    pub oidc_desktop_client_id: Option<String>,
    /// Audience (`aud`) required in bearer access tokens [default: the client id, but tokens
    /// meant only for the client id are then refused: set it to accept bearer tokens].
    #[arg(long, env = "DURE_OIDC_AUDIENCE", value_name = "AUD")]
    pub oidc_audience: Option<String>,
    /// Bearer tokens must have the header `typ: at+jwt` (RFC 9068); false for providers that
    /// do not type their access tokens (then oidc_audience must differ from the client id)
    /// [default: true].
    #[arg(long, env = "DURE_OIDC_BEARER_REQUIRE_AT_JWT", value_name = "BOOL")]
    pub oidc_bearer_require_at_jwt: Option<String>,
    /// Comma-separated JWS algorithms accepted on access tokens [default: RS256].
    #[arg(long, env = "DURE_OIDC_ALGORITHMS", value_name = "ALGS")]
    pub oidc_algorithms: Option<String>,
    /// Least time between JWKS refetches triggered by an unknown key id [default: 10s].
    #[arg(long, env = "DURE_OIDC_JWKS_REFETCH_INTERVAL", value_name = "DURATION")]
    pub oidc_jwks_refetch_interval: Option<String>,
    /// Longest a browser session lasts, refreshes included [default: 12h].
    #[arg(long, env = "DURE_SESSION_MAX_AGE", value_name = "DURATION")]
    pub session_max_age: Option<String>,
    /// Group whose members are administrators (read the audit log).
    #[arg(long, env = "DURE_ADMIN_GROUP", value_name = "GROUP")]
    pub admin_group: Option<String>,
    /// Largest Markdown file accepted for import; bigger ones get 413 [default: 4MiB].
    #[arg(long, env = "DURE_IMPORT_MAX_BYTES", value_name = "SIZE")]
    pub import_max_bytes: Option<String>,
    /// Most nodes (blocks, cells, runs of text) one import may build; more get 422
    /// [default: 50000].
    #[arg(long, env = "DURE_IMPORT_MAX_NODES", value_name = "N")]
    pub import_max_nodes: Option<String>,
    /// Most rows in one imported table; more get 422 [default: 5000].
    #[arg(long, env = "DURE_IMPORT_MAX_TABLE_ROWS", value_name = "N")]
    pub import_max_table_rows: Option<String>,
    /// Imports parsed at once; more get 429 (and one per user at a time) [default: 2].
    #[arg(long, env = "DURE_IMPORT_CONCURRENCY", value_name = "N")]
    pub import_concurrency: Option<String>,
    /// Documents one user may own, the trash included; creating more gets 409 [default: 1000].
    #[arg(long, env = "DURE_MAX_DOCS_PER_USER", value_name = "N")]
    pub max_docs_per_user: Option<String>,
    /// Largest document (its Yjs state); an update growing it past this is refused and its
    /// socket closed with 4413 [default: 64MiB].
    #[arg(long, env = "DURE_MAX_DOC_BYTES", value_name = "SIZE")]
    pub max_doc_bytes: Option<String>,
    /// Distinct documents one user may have open at once; more are closed with 1013
    /// [default: 64].
    #[arg(long, env = "DURE_MAX_ROOMS_PER_USER", value_name = "N")]
    pub max_rooms_per_user: Option<String>,
    /// Document sockets one user may have open at once; more are closed with 1013
    /// [default: 128].
    #[arg(long, env = "DURE_MAX_SOCKETS_PER_USER", value_name = "N")]
    pub max_sockets_per_user: Option<String>,
    /// Sign-ins one client address may start per minute; more get 429 [default: 60].
    #[arg(long, env = "DURE_LOGIN_RATE_PER_MINUTE", value_name = "N")]
    pub login_rate_per_minute: Option<String>,
    /// People searches (/api/users) one user may make per minute; more get 429 [default: 60].
    #[arg(long, env = "DURE_USER_SEARCH_RATE_PER_MINUTE", value_name = "N")]
    pub user_search_rate_per_minute: Option<String>,
    /// Comma-separated addresses or CIDRs of reverse proxies whose Forwarded /
    /// X-Forwarded-For headers name the client (audit log, rate limits) [default: none].
    #[arg(long, env = "DURE_TRUSTED_PROXIES", value_name = "CIDRS")]
    pub trusted_proxies: Option<String>,
    /// File holding the secret key (32 random bytes, base64) that seals sign-in cookies and
    /// the provider tokens of sessions [default: <data_dir>/secret.key, created if absent].
    #[arg(long, env = "DURE_SECRET_KEY_FILE", value_name = "PATH")]
    pub secret_key_file: Option<String>,
    /// Serve /metrics on this address instead of the main listener (e.g. a port only
    /// Prometheus reaches); loopback only in local mode [default: unset, /metrics on listen].
    #[arg(long, env = "DURE_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<String>,
    #[command(flatten)]
    pub net: net::NetFlags,
    #[command(flatten)]
    pub meet: meet::MeetFlags,
    #[command(flatten)]
    pub msg: msg::MsgFlags,
}

/// Keys accepted in `dure.toml` (same as the flags).
const FILE_KEYS: &[&str] = &[
    "listen",
    "data_dir",
    "storage",
    "log_format",
    "log",
    "max_frame_bytes",
    "ping_interval",
    "shutdown_timeout",
    "outbound_queue",
    "slow_reader_timeout",
    "awareness_max_bytes",
    "awareness_rate",
    "idle_unload",
    "commit_interval",
    "compact_after_entries",
    "unload_compaction_timeout",
    "outbound_queue_bytes",
    "max_nesting_depth",
    "awareness_clients_per_connection",
    "awareness_clients_per_room",
    "s3_bucket",
    "s3_prefix",
    "s3_region",
    "s3_endpoint",
    "s3_path_style",
    "s3_access_key_id",
    "s3_secret_access_key",
    "s3_secret_access_key_file",
    "s3_request_timeout",
    "public_url",
    "allowed_origins",
    "trash_retention",
    "oidc_issuer",
    "oidc_client_id",
    "oidc_client_secret",
    "oidc_client_secret_file",
    "oidc_redirect_url",
    "oidc_scopes",
    "oidc_groups_claim",
    "oidc_desktop_client_id",
    "oidc_audience",
    "oidc_bearer_require_at_jwt",
    "oidc_algorithms",
    "oidc_jwks_refetch_interval",
    "session_max_age",
    "admin_group",
    "import_max_bytes",
    "import_max_nodes",
    "import_max_table_rows",
    "import_concurrency",
    "max_docs_per_user",
    "max_doc_bytes",
    "max_rooms_per_user",
    "max_sockets_per_user",
    "login_rate_per_minute",
    "user_search_rate_per_minute",
    "trusted_proxies",
    "secret_key_file",
    "metrics_listen",
];

/// Default `commit_interval` on S3: each write is a billed request, so batch for up to this
/// long (at most 4 log writes per second per active document).
const S3_DEFAULT_COMMIT_INTERVAL: Duration = Duration::from_millis(250);

fn invalid(setting: &'static str, value: &str, reason: impl ToString) -> ConfigError {
    ConfigError::Invalid {
        setting,
        value: value.to_owned(),
        reason: reason.to_string(),
    }
}

fn read_file(path: &Path) -> Result<BTreeMap<String, String>, ConfigError> {
    let file_err = |reason: String| ConfigError::File {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| file_err(e.to_string()))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| file_err(e.to_string()))?;
    let mut out = BTreeMap::new();
    // `[s3] bucket = "x"` is the same as `s3_bucket = "x"`.
    let mut flat = Vec::new();
    for (key, value) in table {
        match value {
            toml::Value::Table(inner) => {
                for (k, v) in inner {
                    flat.push((format!("{key}_{k}"), v));
                }
            }
            other => flat.push((key, other)),
        }
    }
    for (key, value) in flat {
        if !FILE_KEYS.contains(&key.as_str())
            && !net::FILE_KEYS.contains(&key.as_str())
            && !meet::FILE_KEYS.contains(&key.as_str())
            && !msg::FILE_KEYS.contains(&key.as_str())
        {
            return Err(file_err(format!(
                "unknown setting `{key}` (known: {}, {}, {}, {})",
                FILE_KEYS.join(", "),
                net::FILE_KEYS.join(", "),
                meet::FILE_KEYS.join(", "),
                msg::FILE_KEYS.join(", ")
            )));
        }
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => {
                return Err(file_err(format!(
                    "setting `{key}` has an unsupported type: {other}"
                )));
            }
        };
        out.insert(key, text);
    }
    Ok(out)
}

fn duration(setting: &'static str, value: &str) -> Result<Duration, ConfigError> {
    if value.trim() == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(value.trim()).map_err(|e| {
        invalid(
            setting,
            value,
            format!("not a duration like 30s or 500ms: {e}"),
        )
    })
}

fn boolean(setting: &'static str, value: &str) -> Result<bool, ConfigError> {
    match value.trim() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(invalid(setting, value, "expected true or false")),
    }
}

fn size(setting: &'static str, value: &str) -> Result<usize, ConfigError> {
    let bytes: bytesize::ByteSize = value.trim().parse().map_err(|e| {
        invalid(
            setting,
            value,
            format!("not a size like 8MiB or 65536: {e}"),
        )
    })?;
    usize::try_from(bytes.as_u64()).map_err(|_| invalid(setting, value, "too large"))
}

fn positive<T: std::str::FromStr + PartialOrd + Default>(
    setting: &'static str,
    value: &str,
) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    let n: T = value
        .trim()
        .parse()
        .map_err(|e| invalid(setting, value, e))?;
    if n <= T::default() {
        return Err(invalid(setting, value, "must be greater than zero"));
    }
    Ok(n)
}

impl Cli {
    fn s3_config(&self, file: &BTreeMap<String, String>) -> Result<S3Config, ConfigError> {
        let get =
            |flag: &Option<String>, key: &str| flag.clone().or_else(|| file.get(key).cloned());
        let bucket = get(&self.s3_bucket, "s3_bucket")
            .filter(|b| !b.trim().is_empty())
            .ok_or_else(|| invalid("s3_bucket", "", "required when storage = \"s3\""))?;
        let mut cfg = S3Config::new(bucket.trim());
        cfg.prefix = get(&self.s3_prefix, "s3_prefix").filter(|p| !p.trim_matches('/').is_empty());
        if let Some(region) = get(&self.s3_region, "s3_region") {
            cfg.region = region;
        }
        if let Some(endpoint) = get(&self.s3_endpoint, "s3_endpoint") {
            if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
                return Err(invalid(
                    "s3_endpoint",
                    &endpoint,
                    "must be an http:// or https:// URL",
                ));
            }
            cfg.endpoint = Some(endpoint);
        }
        if let Some(v) = get(&self.s3_path_style, "s3_path_style") {
            cfg.path_style = match v.trim() {
                "true" | "1" | "yes" => true,
                "false" | "0" | "no" => false,
                _ => return Err(invalid("s3_path_style", &v, "expected true or false")),
            };
        }
        if let Some(v) = get(&self.s3_request_timeout, "s3_request_timeout") {
            cfg.request_timeout = duration("s3_request_timeout", &v)?;
        } else {
            cfg.request_timeout = Duration::from_secs(10);
        }
        let secret = match (
            get(&self.s3_secret_access_key, "s3_secret_access_key"),
            get(&self.s3_secret_access_key_file, "s3_secret_access_key_file"),
        ) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "s3_secret_access_key",
                    "<redacted>",
                    "set either s3_secret_access_key or s3_secret_access_key_file, not both",
                ));
            }
            (Some(v), None) => Some(v),
            (None, Some(path)) => Some(
                std::fs::read_to_string(&path)
                    .map(|s| s.trim_end_matches(['\r', '\n']).to_owned())
                    .map_err(|e| invalid("s3_secret_access_key_file", &path, e))?,
            ),
            (None, None) => None,
        };
        cfg.credentials = match (get(&self.s3_access_key_id, "s3_access_key_id"), secret) {
            (Some(id), Some(secret)) => S3Credentials::Static {
                access_key_id: id,
                secret_access_key: Secret::new(secret),
                session_token: None,
            },
            (None, None) => S3Credentials::Chain,
            (Some(id), None) => {
                return Err(invalid(
                    "s3_secret_access_key",
                    "",
                    format!("missing while s3_access_key_id ({id}) is set"),
                ));
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "s3_access_key_id",
                    "",
                    "missing while a secret access key is set",
                ));
            }
        };
        Ok(cfg)
    }

    /// Layers file, environment and flags, and validates the result.
    pub fn resolve(self) -> Result<Config, ConfigError> {
        let file = match &self.config {
            Some(path) => read_file(path)?,
            None if Path::new("dure.toml").exists() => read_file(Path::new("dure.toml"))?,
            None => BTreeMap::new(),
        };
        let get =
            |flag: &Option<String>, key: &str| flag.clone().or_else(|| file.get(key).cloned());
        let defaults = RoomConfig::default();
        let mut rooms = defaults.clone();

        let listen_s = get(&self.listen, "listen").unwrap_or_else(|| "127.0.0.1:8080".into());
        let listen: SocketAddr = listen_s.parse().map_err(|e| {
            invalid(
                "listen",
                &listen_s,
                format!("not an address like 127.0.0.1:8080: {e}"),
            )
        })?;
        let oidc_on = get(&self.oidc_issuer, "oidc_issuer").is_some_and(|v| !v.trim().is_empty());
        if !listen.ip().is_loopback() && !oidc_on {
            return Err(invalid(
                "listen",
                &listen_s,
                "no identity provider is configured (local mode), so dure only listens on a loopback address such as 127.0.0.1; configure an identity provider to serve a network",
            ));
        }
        let data_dir =
            PathBuf::from(get(&self.data_dir, "data_dir").unwrap_or_else(|| "dure-data".into()));
        if data_dir.as_os_str().is_empty() {
            return Err(invalid("data_dir", "", "must not be empty"));
        }
        let storage = match get(&self.storage, "storage").as_deref() {
            None | Some("fs") => StorageBackend::Fs,
            Some("memory") => StorageBackend::Memory,
            Some("s3") => StorageBackend::S3(Box::new(self.s3_config(&file)?)),
            Some(other) => return Err(invalid("storage", other, "expected fs, memory or s3")),
        };
        let log_format = match get(&self.log_format, "log_format").as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => return Err(invalid("log_format", other, "expected text or json")),
        };
        let log_filter = get(&self.log, "log").unwrap_or_else(|| "info".into());
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&log_filter) {
            return Err(invalid("log", &log_filter, e));
        }
        let max_frame_bytes = match get(&self.max_frame_bytes, "max_frame_bytes") {
            Some(v) => size("max_frame_bytes", &v)?,
            None => 8 * 1024 * 1024,
        };
        if max_frame_bytes < 1024 {
            return Err(invalid(
                "max_frame_bytes",
                &max_frame_bytes.to_string(),
                "must be at least 1KiB",
            ));
        }
        let ping_interval = match get(&self.ping_interval, "ping_interval") {
            Some(v) => duration("ping_interval", &v)?,
            None => Duration::from_secs(30),
        };
        if ping_interval < Duration::from_millis(100) {
            return Err(invalid(
                "ping_interval",
                &format!("{ping_interval:?}"),
                "must be at least 100ms",
            ));
        }
        let shutdown_timeout = match get(&self.shutdown_timeout, "shutdown_timeout") {
            Some(v) => duration("shutdown_timeout", &v)?,
            None => Duration::from_secs(10),
        };
        if let Some(v) = get(&self.outbound_queue, "outbound_queue") {
            rooms.outbound_queue = positive("outbound_queue", &v)?;
        }
        if let Some(v) = get(&self.slow_reader_timeout, "slow_reader_timeout") {
            rooms.slow_reader_timeout = duration("slow_reader_timeout", &v)?;
        }
        if let Some(v) = get(&self.awareness_max_bytes, "awareness_max_bytes") {
            rooms.awareness_max_bytes = size("awareness_max_bytes", &v)?;
        }
        if let Some(v) = get(&self.awareness_rate, "awareness_rate") {
            rooms.awareness_rate = positive("awareness_rate", &v)?;
            rooms.awareness_burst = (rooms.awareness_rate * 3.0).max(1.0);
        }
        if let Some(v) = get(&self.idle_unload, "idle_unload") {
            rooms.idle_unload = duration("idle_unload", &v)?;
        }
        match get(&self.commit_interval, "commit_interval") {
            Some(v) => rooms.commit_interval = duration("commit_interval", &v)?,
            None if matches!(storage, StorageBackend::S3(_)) => {
                rooms.commit_interval = S3_DEFAULT_COMMIT_INTERVAL;
            }
            None => {}
        }
        if let Some(v) = get(&self.compact_after_entries, "compact_after_entries") {
            rooms.compact_after_entries = positive("compact_after_entries", &v)?;
        }
        if let Some(v) = get(&self.unload_compaction_timeout, "unload_compaction_timeout") {
            rooms.unload_compaction_timeout = duration("unload_compaction_timeout", &v)?;
        }
        if let Some(v) = get(&self.outbound_queue_bytes, "outbound_queue_bytes") {
            rooms.outbound_queue_bytes = size("outbound_queue_bytes", &v)?;
            if rooms.outbound_queue_bytes < 1024 {
                return Err(invalid("outbound_queue_bytes", &v, "must be at least 1KiB"));
            }
        }
        if let Some(v) = get(&self.max_nesting_depth, "max_nesting_depth") {
            rooms.max_nesting_depth = positive("max_nesting_depth", &v)?;
            if rooms.max_nesting_depth > dure_collab::MAX_NESTING_DEPTH_LIMIT {
                return Err(invalid(
                    "max_nesting_depth",
                    &v,
                    format!("must be at most {}", dure_collab::MAX_NESTING_DEPTH_LIMIT),
                ));
            }
        }
        if let Some(v) = get(
            &self.awareness_clients_per_connection,
            "awareness_clients_per_connection",
        ) {
            rooms.awareness_clients_per_connection =
                positive("awareness_clients_per_connection", &v)?;
        }
        if let Some(v) = get(
            &self.awareness_clients_per_room,
            "awareness_clients_per_room",
        ) {
            rooms.awareness_clients_per_room = positive("awareness_clients_per_room", &v)?;
        }
        let public_url_derived = get(&self.public_url, "public_url").is_none();
        let public_url = match get(&self.public_url, "public_url") {
            Some(v) => parse_public_url(&v)?,
            None if oidc_on => {
                return Err(invalid(
                    "public_url",
                    "",
                    "required with an identity provider: the https URL people open, e.g. https://docs.example.gov",
                ));
            }
            None => format!("http://{listen}"),
        };
        let allowed_origins = match get(&self.allowed_origins, "allowed_origins") {
            Some(v) => v
                .split(',')
                .map(|o| parse_origin(o.trim()))
                .collect::<Result<Vec<_>, _>>()?,
            None => default_origins(&public_url),
        };
        let trash_retention = match get(&self.trash_retention, "trash_retention") {
            Some(v) => duration("trash_retention", &v)?,
            None => Duration::from_secs(30 * 86400),
        };
        let limits = self.doc_limits(&file, &mut rooms)?;
        let access = self.access_config(&file)?;
        let metrics_listen = match get(&self.metrics_listen, "metrics_listen") {
            None => None,
            Some(v) => {
                let addr: SocketAddr = v.trim().parse().map_err(|e| {
                    invalid(
                        "metrics_listen",
                        &v,
                        format!("not an address like 127.0.0.1:9090: {e}"),
                    )
                })?;
                if !addr.ip().is_loopback() && !oidc_on {
                    return Err(invalid(
                        "metrics_listen",
                        &v,
                        "local mode listens on loopback addresses only",
                    ));
                }
                if addr == listen && addr.port() != 0 {
                    return Err(invalid(
                        "metrics_listen",
                        &v,
                        "must differ from listen (unset it to serve /metrics there)",
                    ));
                }
                Some(addr)
            }
        };
        let net = self.net.resolve(&file, ping_interval)?;
        let meet = self.meet.resolve(&file)?;
        let msg = self.msg.resolve(&file)?;
        let oidc = if oidc_on {
            Some(self.oidc_config(&file, &public_url)?)
        } else {
            for (set, name) in [
                (
                    get(&self.oidc_client_id, "oidc_client_id"),
                    "oidc_client_id",
                ),
                (get(&self.admin_group, "admin_group"), "admin_group"),
            ] {
                if set.is_some() {
                    return Err(invalid(
                        name,
                        "",
                        "set, but oidc_issuer is not: set the issuer to turn sign-in on",
                    ));
                }
            }
            None
        };
        Ok(Config {
            listen,
            data_dir,
            storage,
            log_format,
            log_filter,
            max_frame_bytes,
            ping_interval,
            shutdown_timeout,
            rooms,
            public_url,
            public_url_derived,
            allowed_origins,
            oidc,
            trash_retention,
            limits,
            access,
            metrics_listen,
            net,
            meet,
            msg,
        })
    }

    fn access_config(&self, file: &BTreeMap<String, String>) -> Result<AccessConfig, ConfigError> {
        let get =
            |flag: &Option<String>, key: &str| flag.clone().or_else(|| file.get(key).cloned());
        let mut access = AccessConfig::default();
        if let Some(v) = get(&self.login_rate_per_minute, "login_rate_per_minute") {
            access.login_rate_per_minute = positive("login_rate_per_minute", &v)?;
        }
        if let Some(v) = get(
            &self.user_search_rate_per_minute,
            "user_search_rate_per_minute",
        ) {
            access.user_search_rate_per_minute = positive("user_search_rate_per_minute", &v)?;
        }
        if let Some(v) = get(&self.trusted_proxies, "trusted_proxies") {
            access.trusted_proxies = v
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(|p| {
                    p.parse::<ipnet::IpNet>()
                        .or_else(|_| p.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                        .map_err(|_| {
                            invalid(
                                "trusted_proxies",
                                p,
                                "not an IP address or CIDR like 10.0.0.0/8",
                            )
                        })
                })
                .collect::<Result<_, _>>()?;
        }
        if let Some(v) = get(&self.secret_key_file, "secret_key_file") {
            if v.trim().is_empty() {
                return Err(invalid("secret_key_file", &v, "must not be empty"));
            }
            access.secret_key_file = Some(PathBuf::from(v));
        }
        Ok(access)
    }

    /// The import bounds and quotas; the document size limit goes to the rooms.
    fn doc_limits(
        &self,
        file: &BTreeMap<String, String>,
        rooms: &mut RoomConfig,
    ) -> Result<DocLimits, ConfigError> {
        let get =
            |flag: &Option<String>, key: &str| flag.clone().or_else(|| file.get(key).cloned());
        let mut limits = DocLimits::default();
        if let Some(v) = get(&self.import_max_bytes, "import_max_bytes") {
            limits.import_max_bytes = size("import_max_bytes", &v)?;
            if limits.import_max_bytes == 0 {
                return Err(invalid("import_max_bytes", &v, "must be greater than zero"));
            }
        }
        if let Some(v) = get(&self.import_max_nodes, "import_max_nodes") {
            limits.import.max_nodes = positive("import_max_nodes", &v)?;
        }
        if let Some(v) = get(&self.import_max_table_rows, "import_max_table_rows") {
            limits.import.max_table_rows = positive("import_max_table_rows", &v)?;
        }
        if let Some(v) = get(&self.import_concurrency, "import_concurrency") {
            limits.import_concurrency = positive("import_concurrency", &v)?;
        }
        if let Some(v) = get(&self.max_docs_per_user, "max_docs_per_user") {
            limits.max_docs_per_user = positive("max_docs_per_user", &v)?;
        }
        if let Some(v) = get(&self.max_doc_bytes, "max_doc_bytes") {
            let bytes = size("max_doc_bytes", &v)?;
            if bytes < 1024 {
                return Err(invalid("max_doc_bytes", &v, "must be at least 1KiB"));
            }
            rooms.max_doc_bytes = bytes as u64;
        }
        if let Some(v) = get(&self.max_rooms_per_user, "max_rooms_per_user") {
            limits.max_rooms_per_user = positive("max_rooms_per_user", &v)?;
        }
        if let Some(v) = get(&self.max_sockets_per_user, "max_sockets_per_user") {
            limits.max_sockets_per_user = positive("max_sockets_per_user", &v)?;
        }
        Ok(limits)
    }

    fn oidc_config(
        &self,
        file: &BTreeMap<String, String>,
        public_url: &str,
    ) -> Result<OidcConfig, ConfigError> {
        let get =
            |flag: &Option<String>, key: &str| flag.clone().or_else(|| file.get(key).cloned());
        let issuer = get(&self.oidc_issuer, "oidc_issuer")
            .unwrap_or_default()
            .trim()
            .to_owned();
        let issuer_url = url::Url::parse(&issuer)
            .map_err(|e| invalid("oidc_issuer", &issuer, format!("not a URL: {e}")))?;
        let loopback = matches!(
            issuer_url.host_str(),
            Some("127.0.0.1" | "localhost" | "[::1]")
        );
        if issuer_url.scheme() != "https" && !(issuer_url.scheme() == "http" && loopback) {
            return Err(invalid(
                "oidc_issuer",
                &issuer,
                "must be an https:// URL (http only on loopback)",
            ));
        }
        let client_id = get(&self.oidc_client_id, "oidc_client_id")
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| invalid("oidc_client_id", "", "required with oidc_issuer"))?;
        let secret = match (
            get(&self.oidc_client_secret, "oidc_client_secret"),
            get(&self.oidc_client_secret_file, "oidc_client_secret_file"),
        ) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "oidc_client_secret",
                    "<redacted>",
                    "set either oidc_client_secret or oidc_client_secret_file, not both",
                ));
            }
            (Some(v), None) => v,
            (None, Some(path)) => std::fs::read_to_string(&path)
                .map(|s| s.trim_end_matches(['\r', '\n']).to_owned())
                .map_err(|e| invalid("oidc_client_secret_file", &path, e))?,
            (None, None) => {
                return Err(invalid(
                    "oidc_client_secret",
                    "",
                    "required with oidc_issuer (or oidc_client_secret_file)",
                ));
            }
        };
        if secret.is_empty() {
            return Err(invalid("oidc_client_secret", "", "must not be empty"));
        }
        let redirect_url = match get(&self.oidc_redirect_url, "oidc_redirect_url") {
            Some(v) => {
                url::Url::parse(&v).map_err(|e| invalid("oidc_redirect_url", &v, e))?;
                v
            }
            None => format!("{public_url}/auth/callback"),
        };
        let scopes: Vec<String> = get(&self.oidc_scopes, "oidc_scopes")
            .unwrap_or_else(|| "openid profile email".into())
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        if !scopes.iter().any(|s| s == "openid") {
            return Err(invalid(
                "oidc_scopes",
                &scopes.join(" "),
                "must include openid",
            ));
        }
        let algorithms = get(&self.oidc_algorithms, "oidc_algorithms")
            .unwrap_or_else(|| "RS256".into())
            .split(',')
            .map(|a| {
                let a = a.trim();
                match a {
                    "RS256" | "RS384" | "RS512" | "PS256" | "PS384" | "PS512" | "ES256"
                    | "ES384" | "EdDSA" => a
                        .parse::<jsonwebtoken::Algorithm>()
                        .map_err(|e| invalid("oidc_algorithms", a, e)),
                    _ => Err(invalid(
                        "oidc_algorithms",
                        a,
                        "expected asymmetric algorithms such as RS256, PS256, ES256, EdDSA",
                    )),
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        let jwks_refetch_interval = match get(
            &self.oidc_jwks_refetch_interval,
            "oidc_jwks_refetch_interval",
        ) {
            Some(v) => duration("oidc_jwks_refetch_interval", &v)?,
            None => Duration::from_secs(10),
        };
        let session_max_age = match get(&self.session_max_age, "session_max_age") {
            Some(v) => duration("session_max_age", &v)?,
            None => Duration::from_secs(12 * 3600),
        };
        if session_max_age < Duration::from_secs(1) {
            return Err(invalid(
                "session_max_age",
                &format!("{session_max_age:?}"),
                "must be at least 1s",
            ));
        }
        let explicit_audience =
            get(&self.oidc_audience, "oidc_audience").filter(|a| !a.trim().is_empty());
        let bearer_require_at_jwt = match get(
            &self.oidc_bearer_require_at_jwt,
            "oidc_bearer_require_at_jwt",
        ) {
            Some(v) => boolean("oidc_bearer_require_at_jwt", &v)?,
            None => true,
        };
        // Without the at+jwt type, the audience is what tells an access token from an ID
        // token, and an ID token's audience is always the client id (OpenID Connect Core 2).
        if !bearer_require_at_jwt
            && explicit_audience
                .as_deref()
                .is_none_or(|a| a.trim() == client_id.trim())
        {
            return Err(invalid(
                "oidc_bearer_require_at_jwt",
                "false",
                format!(
                    "needs `oidc_audience` set to the API audience your provider puts in access tokens, other than the client id {client_id:?}: without the at+jwt type an ID token (whose audience is the client id) would pass as a bearer token"
                ),
            ));
        }
        Ok(OidcConfig {
            issuer,
            audience_explicit: explicit_audience.is_some(),
            audience: explicit_audience
                .map(|a| a.trim().to_owned())
                .unwrap_or_else(|| client_id.clone()),
            bearer_require_at_jwt,
            client_id,
            client_secret: openidconnect::ClientSecret::new(secret),
            redirect_url,
            scopes,
            groups_claim: get(&self.oidc_groups_claim, "oidc_groups_claim")
                .unwrap_or_else(|| "groups".into()),
            desktop_client_id: get(&self.oidc_desktop_client_id, "oidc_desktop_client_id")
                .map(|c| c.trim().to_owned())
                .filter(|c| !c.is_empty()),
            algorithms,
            admin_group: get(&self.admin_group, "admin_group").filter(|g| !g.is_empty()),
            jwks_refetch_interval,
            session_max_age,
        })
    }
}

/// `scheme://host[:port]` without a trailing slash; https outside loopback, so that the
/// session cookie can be Secure.
fn parse_public_url(v: &str) -> Result<String, ConfigError> {
    let url = url::Url::parse(v.trim()).map_err(|e| invalid("public_url", v, e))?;
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    };
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => {
            return Err(invalid(
                "public_url",
                v,
                "must be https:// outside loopback (session cookies are Secure); terminate TLS in front of dure",
            ));
        }
        _ => return Err(invalid("public_url", v, "must be an http(s) URL")),
    }
    if url.path() != "/" || url.query().is_some() {
        return Err(invalid(
            "public_url",
            v,
            "must be an origin like https://docs.example.gov (dure is served at the root)",
        ));
    }
    Ok(url.origin().ascii_serialization())
}

/// The public URL's origin, and on loopback also its `localhost` twin (the same server is
/// reachable as both).
pub fn default_origins(public_url: &str) -> Vec<String> {
    let mut origins = vec![public_url.to_owned()];
    if let Some(rest) = public_url.strip_prefix("http://127.0.0.1:") {
        origins.push(format!("http://localhost:{rest}"));
    }
    origins
}

fn parse_origin(v: &str) -> Result<String, ConfigError> {
    let url = url::Url::parse(v).map_err(|e| invalid("allowed_origins", v, e))?;
    let origin = url.origin().ascii_serialization();
    if origin == "null" {
        return Err(invalid("allowed_origins", v, "not an http(s) origin"));
    }
    Ok(origin)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `dure ARGS` parsed (the net settings' tests use it too).
    pub(super) fn cli(args: &[&str]) -> Cli {
        let mut full = vec!["dure"];
        full.extend_from_slice(args);
        Cli::try_parse_from(full).expect("parses")
    }

    #[test]
    fn defaults_are_local_mode() {
        let cfg = Cli::default().resolve().expect("defaults valid");
        assert_eq!(cfg.listen, "127.0.0.1:8080".parse().expect("addr"));
        assert_eq!(cfg.data_dir, PathBuf::from("dure-data"));
        assert!(matches!(cfg.storage, StorageBackend::Fs));
    }

    #[test]
    fn store_writes_follow_the_backend_unless_set() {
        let writes = |args: &[&str]| {
            let cfg = cli(args).resolve().expect("valid");
            crate::conversations::engine_config(&cfg).store_writes
        };
        assert_eq!(writes(&[]), 2, "fs: fsyncs share the CPU");
        assert_eq!(writes(&["--storage", "memory"]), 32);
        assert_eq!(
            writes(&["--storage", "memory", "--msg-store-writes", "5"]),
            5
        );
        // The setting from before meeting chat was a conversation still counts.
        assert_eq!(
            writes(&["--storage", "memory", "--chat-store-writes", "3"]),
            3
        );
        assert_eq!(
            writes(&["--chat-store-writes", "3", "--msg-store-writes", "4"]),
            4,
            "msg_store_writes wins"
        );
    }

    #[test]
    fn refuses_a_network_address_without_identity_provider() {
        let err = cli(&["--listen", "0.0.0.0:8080"])
            .resolve()
            .expect_err("must refuse");
        let msg = err.to_string();
        assert!(
            msg.contains("`listen`") && msg.contains("identity provider"),
            "{msg}"
        );
        assert!(cli(&["--listen", "[::1]:9000"]).resolve().is_ok());
    }

    #[test]
    fn names_the_invalid_setting() {
        for (args, setting) in [
            (vec!["--listen", "nope"], "listen"),
            (vec!["--ping-interval", "soon"], "ping_interval"),
            (vec!["--max-frame-bytes", "12 parsecs"], "max_frame_bytes"),
            (vec!["--storage", "floppy"], "storage"),
            (vec!["--outbound-queue", "0"], "outbound_queue"),
            (
                vec!["--outbound-queue-bytes", "100"],
                "outbound_queue_bytes",
            ),
            (vec!["--max-nesting-depth", "0"], "max_nesting_depth"),
            (vec!["--max-nesting-depth", "5000"], "max_nesting_depth"),
            (
                vec!["--awareness-clients-per-connection", "0"],
                "awareness_clients_per_connection",
            ),
            (
                vec!["--awareness-clients-per-room", "none"],
                "awareness_clients_per_room",
            ),
        ] {
            let err = cli(&args).resolve().expect_err("invalid");
            assert!(err.to_string().contains(&format!("`{setting}`")), "{err}");
        }
    }

    #[test]
    fn s3_settings_from_a_table_and_secret_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "s3cr3t\n").expect("write");
        let path = dir.path().join("dure.toml");
        let toml = format!(
            "storage = \"s3\"\n[s3]\nbucket = \"docs\"\nendpoint = \"http://127.0.0.1:9000\"\npath_style = true\naccess_key_id = \"AKID\"\nsecret_access_key_file = \"{}\"\n",
            secret.display()
        );
        std::fs::write(&path, toml).expect("write");
        let cfg = cli(&["--config", path.to_str().expect("utf8")])
            .resolve()
            .expect("valid");
        let StorageBackend::S3(s3) = &cfg.storage else {
            panic!("not s3: {:?}", cfg.storage);
        };
        assert_eq!(s3.bucket, "docs");
        assert!(s3.path_style);
        match &s3.credentials {
            S3Credentials::Static {
                access_key_id,
                secret_access_key,
                ..
            } => {
                assert_eq!(access_key_id, "AKID");
                assert_eq!(secret_access_key.expose(), "s3cr3t");
            }
            S3Credentials::Chain => panic!("static credentials expected"),
        }
        assert!(
            !format!("{cfg:?}").contains("s3cr3t"),
            "secret leaked into Debug"
        );
        assert_eq!(cfg.rooms.commit_interval, S3_DEFAULT_COMMIT_INTERVAL);
        let err = cli(&["--storage", "s3"])
            .resolve()
            .expect_err("bucket required");
        assert!(err.to_string().contains("`s3_bucket`"), "{err}");
        let err = cli(&[
            "--storage",
            "s3",
            "--s3-bucket",
            "b",
            "--s3-access-key-id",
            "x",
        ])
        .resolve()
        .expect_err("secret required");
        assert!(err.to_string().contains("`s3_secret_access_key`"), "{err}");
        let err = cli(&[
            "--storage",
            "s3",
            "--s3-bucket",
            "b",
            "--s3-endpoint",
            "minio:9000",
        ])
        .resolve()
        .expect_err("url");
        assert!(err.to_string().contains("`s3_endpoint`"), "{err}");
    }

    #[test]
    fn oidc_from_a_table_with_a_secret_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "s3cr3t-oidc\n").expect("write");
        let path = dir.path().join("dure.toml");
        let toml = format!(
            "listen = \"0.0.0.0:8080\"\npublic_url = \"https://docs.example.gov/\"\nadmin_group = \"admins\"\n[oidc]\nissuer = \"https://login.example.gov/realms/x\"\nclient_id = \"dure\"\nclient_secret_file = \"{}\"\n",
            secret.display()
        );
        std::fs::write(&path, toml).expect("write");
        let cfg = cli(&["--config", path.to_str().expect("utf8")])
            .resolve()
            .expect("valid");
        let oidc = cfg.oidc.as_ref().expect("oidc on");
        assert_eq!(oidc.client_secret.secret(), "s3cr3t-oidc");
        assert_eq!(oidc.redirect_url, "https://docs.example.gov/auth/callback");
        assert_eq!(oidc.audience, "dure");
        assert_eq!(oidc.admin_group.as_deref(), Some("admins"));
        assert_eq!(cfg.public_url, "https://docs.example.gov");
        assert_eq!(
            cfg.allowed_origins,
            vec!["https://docs.example.gov".to_owned()]
        );
        assert!(
            !format!("{cfg:?}").contains("s3cr3t-oidc"),
            "secret in Debug"
        );
        // Without a provider, provider settings are a mistake worth naming.
        let err = cli(&["--admin-group", "x"])
            .resolve()
            .expect_err("no issuer");
        assert!(err.to_string().contains("`admin_group`"), "{err}");
    }

    #[test]
    fn bearer_type_opt_out_needs_an_api_audience() {
        let base = [
            "--listen",
            "0.0.0.0:8080",
            "--public-url",
            "https://docs.example.gov",
            "--oidc-issuer",
            "https://login.example.gov",
            "--oidc-client-id",
            "dure",
            "--oidc-client-secret",
            "s",
        ];
        let with = |extra: &[&str]| {
            let mut args = base.to_vec();
            args.extend_from_slice(extra);
            cli(&args).resolve()
        };
        let oidc = with(&[]).expect("valid").oidc.expect("oidc");
        assert!(oidc.bearer_require_at_jwt);
        assert!(!oidc.audience_explicit);
        assert_eq!(oidc.audience, "dure");
        for extra in [
            vec!["--oidc-bearer-require-at-jwt", "false"],
            vec![
                "--oidc-bearer-require-at-jwt",
                "false",
                "--oidc-audience",
                "dure",
            ],
        ] {
            let err = with(&extra).expect_err("an ID token would pass");
            let msg = err.to_string();
            assert!(
                msg.contains("`oidc_bearer_require_at_jwt`") && msg.contains("`oidc_audience`"),
                "{msg}"
            );
        }
        let oidc = with(&[
            "--oidc-bearer-require-at-jwt",
            "false",
            "--oidc-audience",
            "urn:dure",
        ])
        .expect("valid")
        .oidc
        .expect("oidc");
        assert!(!oidc.bearer_require_at_jwt && oidc.audience_explicit);
        let err = with(&["--oidc-bearer-require-at-jwt", "maybe"]).expect_err("bool");
        assert!(
            err.to_string().contains("`oidc_bearer_require_at_jwt`"),
            "{err}"
        );
    }

    #[test]
    fn doc_limits_from_file_env_and_flags() {
        let cfg = Cli::default().resolve().expect("defaults valid");
        assert_eq!(cfg.limits, DocLimits::default());
        assert_eq!(cfg.rooms.max_doc_bytes, 64 * 1024 * 1024);
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("dure.toml");
        std::fs::write(
            &path,
            "import_max_bytes = \"1MiB\"\nimport_max_nodes = 500\nmax_doc_bytes = \"2MiB\"\nmax_sockets_per_user = 3\n",
        )
        .expect("write");
        let p = path.to_str().expect("utf8");
        let cfg = cli(&["--config", p, "--max-rooms-per-user", "2"])
            .resolve()
            .expect("valid");
        assert_eq!(cfg.limits.import_max_bytes, 1024 * 1024);
        assert_eq!(cfg.limits.import.max_nodes, 500);
        assert_eq!(cfg.limits.max_sockets_per_user, 3);
        assert_eq!(cfg.limits.max_rooms_per_user, 2);
        assert_eq!(cfg.rooms.max_doc_bytes, 2 * 1024 * 1024);
        for (args, setting) in [
            (vec!["--import-max-bytes", "0"], "import_max_bytes"),
            (vec!["--import-max-nodes", "0"], "import_max_nodes"),
            (
                vec!["--import-max-table-rows", "x"],
                "import_max_table_rows",
            ),
            (vec!["--import-concurrency", "0"], "import_concurrency"),
            (vec!["--max-docs-per-user", "none"], "max_docs_per_user"),
            (vec!["--max-doc-bytes", "10"], "max_doc_bytes"),
            (vec!["--max-rooms-per-user", "0"], "max_rooms_per_user"),
            (vec!["--max-sockets-per-user", "0"], "max_sockets_per_user"),
            (
                vec!["--unload-compaction-timeout", "soon"],
                "unload_compaction_timeout",
            ),
        ] {
            let err = cli(&args).resolve().expect_err("invalid");
            assert!(err.to_string().contains(&format!("`{setting}`")), "{err}");
        }
    }

    #[test]
    fn file_then_flags() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("dure.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9100\"\nmax_frame_bytes = 65536\nidle_unload = \"5s\"\nunload_compaction_timeout = \"2s\"\n",
        )
        .expect("write");
        let p = path.to_str().expect("utf8");
        let cfg = cli(&["--config", p]).resolve().expect("valid");
        assert_eq!(cfg.listen.port(), 9100);
        assert_eq!(cfg.rooms.unload_compaction_timeout, Duration::from_secs(2));
        assert_eq!(cfg.max_frame_bytes, 65536);
        assert_eq!(cfg.rooms.idle_unload, Duration::from_secs(5));
        let cfg = cli(&["--config", p, "--listen", "127.0.0.1:9200"])
            .resolve()
            .expect("valid");
        assert_eq!(cfg.listen.port(), 9200);
        std::fs::write(&path, "lissen = \"x\"\n").expect("write");
        let err = cli(&["--config", p]).resolve().expect_err("unknown key");
        assert!(
            err.to_string().contains("unknown setting `lissen`"),
            "{err}"
        );
    }
}
