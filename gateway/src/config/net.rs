//! Settings of the network edge: connection limits and timeouts, the Host check and the
//! readiness probes. Their flags are flattened into [`super::Cli`].

use std::collections::BTreeMap;
use std::time::Duration;

use super::{ConfigError, duration, invalid, positive};

/// Bounds on what a client may hold open at the TCP and HTTP level, and the names this
/// server answers to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetLimits {
    /// An HTTP/1 request's headers must arrive within this; it also bounds how long a
    /// kept-alive connection waits for its next request.
    pub header_read_timeout: Duration,
    /// An HTTP connection (before a WebSocket upgrade on HTTP/1; all of HTTP/2) with no byte
    /// read or written for this long is closed.
    pub idle_timeout: Duration,
    /// Connections open at once; at the limit the server stops accepting for a moment.
    pub max_connections: usize,
    /// Connections open at once from one IP address; more are closed at once.
    pub max_connections_per_address: usize,
    /// How long a document socket without credentials may take to send its first-message
    /// token.
    pub auth_timeout: Duration,
    /// Document sockets from one IP address still waiting to send their token.
    pub max_unauthenticated_per_address: usize,
    /// After a close frame, how long input is read and dropped before the connection is
    /// closed (so that the close frame is not lost to a TCP reset).
    pub close_linger: Duration,
    /// Extra `Host` names (with an optional `:port`) this server answers to, besides the
    /// public URL's host (and the loopback names in local mode).
    pub allowed_hosts: Vec<String>,
    /// How often the store and the identity provider are probed for `/readyz` (and the
    /// longest one probe may take).
    pub health_check_interval: Duration,
}

impl Default for NetLimits {
    fn default() -> Self {
        NetLimits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(120),
            max_connections: 8192,
            max_connections_per_address: 512,
            auth_timeout: Duration::from_secs(2),
            max_unauthenticated_per_address: 16,
            close_linger: Duration::from_secs(2),
            allowed_hosts: Vec::new(),
            health_check_interval: Duration::from_secs(5),
        }
    }
}

/// The flags (and `DURE_*` variables) of [`NetLimits`].
#[derive(clap::Args, Debug, Default)]
pub struct NetFlags {
    /// HTTP/1 request headers must arrive within this; also the longest wait for the next
    /// request on a kept-alive connection [default: 10s].
    #[arg(long, env = "DURE_HEADER_READ_TIMEOUT", value_name = "DURATION")]
    pub header_read_timeout: Option<String>,
    /// An HTTP connection with no byte read or written for this long is closed (WebSockets
    /// on HTTP/1 have their own ping timeout); must exceed ping_interval [default: 120s].
    #[arg(long, env = "DURE_IDLE_TIMEOUT", value_name = "DURATION")]
    pub idle_timeout: Option<String>,
    /// Connections open at once; set the descriptor limit (ulimit -n) above it
    /// [default: 8192].
    #[arg(long, env = "DURE_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<String>,
    /// Connections open at once from one IP address; more are closed at once. Behind a
    /// reverse proxy every client has the proxy's address [default: 512].
    #[arg(long, env = "DURE_MAX_CONNECTIONS_PER_ADDRESS", value_name = "N")]
    pub max_connections_per_address: Option<String>,
    /// How long a document socket without credentials may take to send its token
    /// [default: 2s].
    #[arg(long, env = "DURE_AUTH_TIMEOUT", value_name = "DURATION")]
    pub auth_timeout: Option<String>,
    /// Document sockets from one IP address waiting to send their token; more get 429
    /// [default: 16].
    #[arg(long, env = "DURE_MAX_UNAUTHENTICATED_PER_ADDRESS", value_name = "N")]
    pub max_unauthenticated_per_address: Option<String>,
    /// After a close frame, how long input is read and dropped before the connection is
    /// closed [default: 2s].
    #[arg(long, env = "DURE_CLOSE_LINGER", value_name = "DURATION")]
    pub close_linger: Option<String>,
    /// Comma-separated extra Host names (host or host:port) this server answers to.
    #[arg(long, env = "DURE_ALLOWED_HOSTS", value_name = "HOSTS")]
    pub allowed_hosts: Option<String>,
    /// How often /readyz's store and identity provider checks run in the background
    /// [default: 5s].
    #[arg(long, env = "DURE_HEALTH_CHECK_INTERVAL", value_name = "DURATION")]
    pub health_check_interval: Option<String>,
}

/// Keys of these settings in `dure.toml`.
pub const FILE_KEYS: &[&str] = &[
    "header_read_timeout",
    "idle_timeout",
    "max_connections",
    "max_connections_per_address",
    "auth_timeout",
    "max_unauthenticated_per_address",
    "close_linger",
    "allowed_hosts",
    "health_check_interval",
];

impl NetFlags {
    /// Layers these flags over the file and validates them; `ping_interval` bounds the
    /// idle timeout from below (HTTP/2 WebSockets only show activity at each ping).
    pub fn resolve(
        &self,
        file: &BTreeMap<String, String>,
        ping_interval: Duration,
    ) -> Result<NetLimits, ConfigError> {
        let get =
            |flag: &Option<String>, key: &str| flag.clone().or_else(|| file.get(key).cloned());
        let mut net = NetLimits::default();
        let at_least = |setting: &'static str, v: &str, d: Duration, min: Duration| {
            if d < min {
                Err(invalid(setting, v, format!("must be at least {min:?}")))
            } else {
                Ok(d)
            }
        };
        if let Some(v) = get(&self.header_read_timeout, "header_read_timeout") {
            let d = duration("header_read_timeout", &v)?;
            net.header_read_timeout =
                at_least("header_read_timeout", &v, d, Duration::from_millis(100))?;
        }
        if let Some(v) = get(&self.idle_timeout, "idle_timeout") {
            net.idle_timeout = duration("idle_timeout", &v)?;
        }
        if net.idle_timeout <= ping_interval {
            return Err(invalid(
                "idle_timeout",
                &format!("{:?}", net.idle_timeout),
                format!(
                    "must be longer than ping_interval ({ping_interval:?}): an HTTP/2 WebSocket is only active at its pings"
                ),
            ));
        }
        if let Some(v) = get(&self.max_connections, "max_connections") {
            net.max_connections = positive("max_connections", &v)?;
        }
        if let Some(v) = get(
            &self.max_connections_per_address,
            "max_connections_per_address",
        ) {
            net.max_connections_per_address = positive("max_connections_per_address", &v)?;
        }
        if net.max_connections_per_address > net.max_connections {
            net.max_connections_per_address = net.max_connections;
        }
        if let Some(v) = get(&self.auth_timeout, "auth_timeout") {
            let d = duration("auth_timeout", &v)?;
            net.auth_timeout = at_least("auth_timeout", &v, d, Duration::from_millis(100))?;
        }
        if let Some(v) = get(
            &self.max_unauthenticated_per_address,
            "max_unauthenticated_per_address",
        ) {
            net.max_unauthenticated_per_address = positive("max_unauthenticated_per_address", &v)?;
        }
        if let Some(v) = get(&self.close_linger, "close_linger") {
            net.close_linger = duration("close_linger", &v)?;
        }
        if let Some(v) = get(&self.allowed_hosts, "allowed_hosts") {
            net.allowed_hosts = v
                .split(',')
                .map(str::trim)
                .filter(|h| !h.is_empty())
                .map(parse_host)
                .collect::<Result<_, _>>()?;
        }
        if let Some(v) = get(&self.health_check_interval, "health_check_interval") {
            let d = duration("health_check_interval", &v)?;
            net.health_check_interval =
                at_least("health_check_interval", &v, d, Duration::from_millis(100))?;
        }
        Ok(net)
    }
}

/// A Host value as browsers send it: a name or address, optionally `:port`, lower case.
fn parse_host(v: &str) -> Result<String, ConfigError> {
    let host = v.to_ascii_lowercase();
    let ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b));
    if !ok {
        return Err(invalid(
            "allowed_hosts",
            v,
            "expected a host name or address, optionally with :port (docs.example.gov, 10.0.0.5:8080)",
        ));
    }
    Ok(host)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Cli;
    use crate::config::tests::cli;

    #[test]
    fn net_settings_from_file_and_flags_with_named_errors() {
        let cfg = Cli::default().resolve().expect("defaults valid");
        assert_eq!(cfg.net, NetLimits::default());
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("dure.toml");
        std::fs::write(
            &path,
            "header_read_timeout = \"3s\"\nallowed_hosts = \"Docs.Example, 10.0.0.5:8080\"\nmax_connections = 50\n",
        )
        .expect("write");
        let p = path.to_str().expect("utf8");
        let cfg = cli(&["--config", p, "--max-connections-per-address", "9"])
            .resolve()
            .expect("valid");
        assert_eq!(cfg.net.header_read_timeout, Duration::from_secs(3));
        assert_eq!(cfg.net.allowed_hosts, vec!["docs.example", "10.0.0.5:8080"]);
        assert_eq!(cfg.net.max_connections, 50);
        assert_eq!(cfg.net.max_connections_per_address, 9);
        for (args, setting) in [
            (vec!["--header-read-timeout", "10ms"], "header_read_timeout"),
            (vec!["--idle-timeout", "soon"], "idle_timeout"),
            (vec!["--idle-timeout", "20s"], "idle_timeout"),
            (vec!["--max-connections", "0"], "max_connections"),
            (
                vec!["--max-connections-per-address", "none"],
                "max_connections_per_address",
            ),
            (vec!["--auth-timeout", "0"], "auth_timeout"),
            (
                vec!["--max-unauthenticated-per-address", "x"],
                "max_unauthenticated_per_address",
            ),
            (vec!["--close-linger", "long"], "close_linger"),
            (
                vec!["--allowed-hosts", "https://x.example/"],
                "allowed_hosts",
            ),
            (
                vec!["--health-check-interval", "1ms"],
                "health_check_interval",
            ),
        ] {
            let err = cli(&args).resolve().expect_err("invalid");
            assert!(err.to_string().contains(&format!("`{setting}`")), "{err}");
        }
        // The idle timeout must outlast a ping interval.
        assert!(
            cli(&["--idle-timeout", "10s", "--ping-interval", "5s"])
                .resolve()
                .is_ok()
        );
    }
}
