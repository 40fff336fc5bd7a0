//! A real TURN relay for the meetings tests: Debian's coturn (`turnserver`) as a child
//! process on free loopback ports, with its own config file in a temp dir, checking REST
//! credentials (`use-auth-secret`) against the secrets it was given, as a deployment would.
//!
//! `turnserver` comes from `infra/install-test-deps.sh turn`. A missing binary is an error
//! naming that script, never a silent skip.
//!
//! ```no_run
//! # async fn demo() -> Result<(), dure_tests::turn::BoxError> {
//! use dure_tests::turn::Coturn;
//!
//! let turn = Coturn::start(&["first-secret"]).await?;
//! let flags = turn.dure_flags_with("first-secret"); // --turn-urls turn:127.0.0.1:PORT?transport=udp …
//! # let _ = flags; Ok(())
//! # }
//! ```

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use tokio::process::{Child, Command};

use crate::s3::collect_lines;
pub use crate::server::BoxError;

/// Environment variable overriding the path of `turnserver`.
pub const TURNSERVER_ENV: &str = "DURE_TURNSERVER";
/// The realm coturn is configured with (REST credentials do not depend on it).
pub const REALM: &str = "dure.test";

/// How long coturn may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Attempts to start (a free port can be taken between choosing and binding it).
const START_ATTEMPTS: usize = 3;
/// Relay ports per instance: enough for a few peers' allocations.
const RELAY_PORTS: u16 = 40;

/// `turnserver` on the PATH (as Debian installs it), or `$DURE_TURNSERVER`.
pub fn turnserver_bin() -> Result<PathBuf, BoxError> {
    if let Some(p) = std::env::var_os(TURNSERVER_ENV) {
        return Ok(PathBuf::from(p));
    }
    for dir in ["/usr/bin", "/usr/local/bin", "/usr/sbin"] {
        let p = PathBuf::from(dir).join("turnserver");
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(format!(
        "turnserver (coturn) not found: run `infra/install-test-deps.sh turn` from the repository root (or set {TURNSERVER_ENV})"
    )
    .into())
}

/// coturn's REST credentials: username `EXPIRY:USER`, password
/// base64(HMAC-SHA1(secret, username)). Written here apart from Dure's own code so that a
/// test minting with a wrong secret or a past expiry checks coturn, not Dure, refusing them.
pub fn rest_credentials(secret: &str, user: &str, expires_unix: u64) -> (String, String) {
    let username = format!("{expires_unix}:{user}");
    let key = aws_lc_rs::hmac::Key::new(
        aws_lc_rs::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
        secret.as_bytes(),
    );
    let tag = aws_lc_rs::hmac::sign(&key, username.as_bytes());
    (
        username,
        base64::engine::general_purpose::STANDARD.encode(tag.as_ref()),
    )
}

/// Seconds since the epoch, now.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A running coturn, killed on drop.
pub struct Coturn {
    child: Child,
    /// The TURN listening address (UDP and TCP).
    pub addr: SocketAddr,
    log: Arc<Mutex<VecDeque<String>>>,
    _dir: tempfile::TempDir,
}

impl Coturn {
    /// Starts coturn accepting REST credentials made with any of `secrets`.
    pub async fn start(secrets: &[&str]) -> Result<Coturn, BoxError> {
        let bin = turnserver_bin()?;
        let mut last_error = String::new();
        for _ in 0..START_ATTEMPTS {
            match Self::try_start(&bin, secrets).await {
                Ok(c) => return Ok(c),
                Err(e) => last_error = e.to_string(),
            }
        }
        Err(format!("coturn did not start in {START_ATTEMPTS} attempts: {last_error}").into())
    }

    async fn try_start(bin: &PathBuf, secrets: &[&str]) -> Result<Coturn, BoxError> {
        let dir = tempfile::Builder::new().prefix("dure-coturn-").tempdir()?;
        let port = free_udp_and_tcp_port()?;
        let min_port = free_relay_range()?;
        let mut conf = format!(
            "listening-ip=127.0.0.1\n\
             relay-ip=127.0.0.1\n\
             listening-port={port}\n\
             min-port={min_port}\n\
             max-port={max_port}\n\
             realm={REALM}\n\
             use-auth-secret\n\
             fingerprint\n\
             no-tls\n\
             no-dtls\n\
             no-cli\n\
             no-multicast-peers\n\
             allow-loopback-peers\n\
             no-software-attribute\n\
             simple-log\n\
             log-file=stdout\n\
             userdb={db}\n\
             pidfile={pid}\n",
            max_port = min_port + RELAY_PORTS - 1,
            db = dir.path().join("turndb").display(),
            pid = dir.path().join("turnserver.pid").display(),
        );
        for s in secrets {
            conf.push_str(&format!("static-auth-secret={s}\n"));
        }
        let conf_path = dir.path().join("turnserver.conf");
        std::fs::write(&conf_path, conf)?;
        let mut cmd = Command::new(bin);
        cmd.arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("starting {} failed: {e}", bin.display()))?;
        let log = Arc::new(Mutex::new(VecDeque::new()));
        if let Some(out) = child.stdout.take() {
            collect_lines(out, log.clone());
        }
        if let Some(err) = child.stderr.take() {
            collect_lines(err, log.clone());
        }
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let mut coturn = Coturn {
            child,
            addr,
            log,
            _dir: dir,
        };
        coturn.wait_ready().await?;
        Ok(coturn)
    }

    /// Waits until coturn accepts TCP on its port (it opens UDP and TCP together).
    async fn wait_ready(&mut self) -> Result<(), BoxError> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Err(format!(
                    "turnserver exited before listening ({status}); its output:\n{}",
                    self.logs()
                )
                .into());
            }
            if tokio::net::TcpStream::connect(self.addr).await.is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "turnserver did not listen on {} within {START_TIMEOUT:?}; its output:\n{}",
                    self.addr,
                    self.logs()
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `turn:127.0.0.1:PORT?transport=udp`.
    pub fn turn_url(&self) -> String {
        format!("turn:{}?transport=udp", self.addr)
    }

    /// The `dure` flags pointing its credentials at this relay, minted with `secret`.
    pub fn dure_flags_with(&self, secret: &str) -> Vec<String> {
        vec![
            "--turn-urls".into(),
            self.turn_url(),
            "--turn-secret".into(),
            secret.into(),
        ]
    }

    /// coturn's recent output, for failure messages.
    pub fn logs(&self) -> String {
        self.log
            .lock()
            .map(|l| l.iter().cloned().collect::<Vec<_>>().join("\n"))
            .unwrap_or_default()
    }
}

/// A port free for both UDP and TCP on loopback a moment ago.
fn free_udp_and_tcp_port() -> Result<u16, BoxError> {
    for _ in 0..50 {
        let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
        let port = udp.local_addr()?.port();
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return Ok(port);
        }
    }
    Err("no loopback port free for both UDP and TCP".into())
}

/// The first of [`RELAY_PORTS`] consecutive UDP ports free a moment ago, chosen at random in
/// the high range so that parallel tests rarely collide.
fn free_relay_range() -> Result<u16, BoxError> {
    for _ in 0..50 {
        let first: u16 = rand::random_range(20_000..60_000);
        let all_free =
            (first..first + RELAY_PORTS).all(|p| UdpSocket::bind((Ipv4Addr::LOCALHOST, p)).is_ok());
        if all_free {
            return Ok(first);
        }
    }
    Err("no free range of UDP relay ports".into())
}
