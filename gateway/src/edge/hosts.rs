//! The `Host` check against DNS rebinding: a page on another site whose name resolves to
//! this server's address (127.0.0.1 in local mode) sends its own name in `Host`, and no
//! `Origin` on simple GETs. Requests naming a host this server does not serve are refused
//! with 421 before any route runs; the probes (`/healthz`, `/readyz`, `/metrics`) answer to
//! any Host, since load balancers and orchestrators call them by address.

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::debug;

use crate::config::Config;
use crate::error_code::ErrorCode;
use crate::state::AppState;

/// Paths answered whatever the Host.
const PROBES: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

const LOOPBACK_NAMES: [&str; 3] = ["127.0.0.1", "localhost", "[::1]"];

/// The names (and ports) requests may carry in `Host`.
#[derive(Clone, Debug)]
pub struct AllowedHosts {
    /// `(host, port)`; `None` accepts any port.
    entries: Vec<(String, Option<u16>)>,
    /// The port a Host without one means (the public URL's scheme default).
    default_port: u16,
}

impl AllowedHosts {
    /// The public URL's host; in local mode (or on a loopback public URL) also every
    /// loopback name on the bound port; and the operator's `allowed_hosts`.
    pub fn new(config: &Config) -> Self {
        Self::build(
            &config.public_url,
            config.oidc.is_some(),
            config.listen.port(),
            &config.net.allowed_hosts,
        )
    }

    fn build(public_url: &str, sign_in: bool, bound_port: u16, extra: &[String]) -> Self {
        let mut entries = Vec::new();
        let mut default_port = 80;
        let mut loopback_public = false;
        let mut public_port = None;
        if let Ok(url) = url::Url::parse(public_url) {
            default_port = if url.scheme() == "https" { 443 } else { 80 };
            public_port = url.port_or_known_default();
            if let Some(host) = url.host() {
                let name = match host {
                    url::Host::Ipv6(ip) => format!("[{ip}]"),
                    other => other.to_string().to_ascii_lowercase(),
                };
                loopback_public = LOOPBACK_NAMES.contains(&name.as_str());
                entries.push((name, public_port));
            }
        }
        if !sign_in || loopback_public {
            // The same server is reachable by each loopback name; the public URL's port may
            // differ from the bound one behind a local port forward.
            for name in LOOPBACK_NAMES {
                for port in [Some(bound_port), public_port] {
                    entries.push((name.to_owned(), port));
                }
            }
        }
        for name in extra {
            let (host, port) = split_host(name);
            entries.push((host.to_owned(), port));
        }
        AllowedHosts {
            entries,
            default_port,
        }
    }

    /// Whether a `Host` value names this server.
    pub fn allows(&self, value: &str) -> bool {
        let value = value.trim().to_ascii_lowercase();
        let (host, port) = split_host(&value);
        let host = host.strip_suffix('.').unwrap_or(host);
        let port = port.unwrap_or(self.default_port);
        self.entries
            .iter()
            .any(|(h, p)| h == host && p.is_none_or(|p| p == port))
    }

    /// What to put in an error message: the names accepted.
    fn describe(&self) -> String {
        let mut names: Vec<String> = self
            .entries
            .iter()
            .map(|(h, p)| match p {
                Some(p) => format!("{h}:{p}"),
                None => h.clone(),
            })
            .collect();
        names.dedup();
        names.join(", ")
    }
}

/// `host[:port]` split; a port that does not parse counts as none given.
fn split_host(value: &str) -> (&str, Option<u16>) {
    let (host, port) = if let Some(rest) = value.strip_prefix('[') {
        match rest.find(']') {
            Some(end) => (&value[..end + 2], rest[end + 1..].strip_prefix(':')),
            None => (value, None),
        }
    } else {
        match value.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (value, None),
        }
    };
    (host, port.and_then(|p| p.parse().ok()))
}

/// Refuses requests whose `Host` (or HTTP/2 `:authority`) is not one of ours, with 421
/// Misdirected Request and a JSON error naming the accepted hosts.
pub async fn check_host(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if PROBES.contains(&req.uri().path()) {
        return next.run(req).await;
    }
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| req.uri().authority().map(|a| a.as_str().to_owned()));
    match host {
        Some(h) if state.hosts.allows(&h) => next.run(req).await,
        other => {
            let shown = other.as_deref().unwrap_or("(none)");
            debug!(host = %shown, "request for a host this server does not serve refused");
            crate::routes::api::ApiError::new(
                StatusCode::MISDIRECTED_REQUEST,
                ErrorCode::UnknownHost,
                format!(
                    "this server does not answer to Host {shown}; it serves {} (add names with allowed_hosts)",
                    state.hosts.describe()
                ),
            )
            .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(port: u16) -> Config {
        let mut cfg = Config::test();
        cfg.listen.set_port(port);
        cfg.public_url = format!("http://127.0.0.1:{port}");
        cfg
    }

    #[test]
    fn local_mode_answers_to_loopback_names_on_its_port_only() {
        let hosts = AllowedHosts::new(&local(8080));
        for ok in [
            "127.0.0.1:8080",
            "localhost:8080",
            "LOCALHOST:8080",
            "[::1]:8080",
        ] {
            assert!(hosts.allows(ok), "{ok}");
        }
        for bad in [
            "rebind.example",
            "rebind.example:8080",
            "127.0.0.1:9999",
            "localhost",
            "127.0.0.1.evil.example:8080",
            "",
        ] {
            assert!(!hosts.allows(bad), "{bad}");
        }
    }

    #[test]
    fn sign_in_answers_to_the_public_host_and_extra_names() {
        let extra = ["intranet.example".to_owned(), "10.0.0.5:8080".to_owned()];
        let hosts = AllowedHosts::build("https://docs.example.gov", true, 8080, &extra);
        for ok in [
            "docs.example.gov",
            "docs.example.gov:443",
            "docs.example.gov.",
            "intranet.example:1234",
            "10.0.0.5:8080",
        ] {
            assert!(hosts.allows(ok), "{ok}");
        }
        for bad in [
            "docs.example.gov:80",
            "10.0.0.5",
            "evil.example",
            "127.0.0.1:8080",
            "localhost:8080",
        ] {
            assert!(!hosts.allows(bad), "{bad}");
        }
    }
}
