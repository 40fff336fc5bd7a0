//! S3 services for tests, started as child processes on free loopback ports.
//!
//! - [`MotoServer`]: moto's S3 server (in memory, no signature checks). Its conditional
//!   writes are atomic under racing writers, so it is the one for fencing tests. It can be
//!   paused with SIGSTOP to play an S3 service that stops answering.
//! - [`S3sFsServer`]: `s3s-fs`, which checks SigV4 signatures: for wrong-credential tests.
//!   (Its conditional writes are check-then-write; do not use it for fencing tests.)
//!
//! Both come from `infra/install-test-deps.sh` (steps `s3` and `s3s`). A missing service is
//! an error naming that script, never a silent skip.
//!
//! ```no_run
//! # async fn demo() -> dure_tests::s3::Result<()> {
//! use dure_tests::s3::MotoServer;
//!
//! let moto = MotoServer::start().await?;
//! moto.create_bucket("dure-test").await?;
//! let flags = moto.dure_flags("dure-test"); // --storage s3 --s3-bucket dure-test …
//! # let _ = flags; Ok(())
//! # }
//! ```

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

pub use crate::server::BoxError;

/// Result of the helpers here.
pub type Result<T, E = BoxError> = std::result::Result<T, E>;

/// The region the test services are addressed with (neither checks it).
pub const REGION: &str = "us-east-1";

/// Keys to sign moto requests with: moto accepts any.
pub const MOTO_ACCESS_KEY_ID: &str = "dure-test-key";
pub const MOTO_SECRET_ACCESS_KEY: &str = "dure-test-secret";

/// Environment variable overriding the path of `moto_server`.
pub const MOTO_SERVER_ENV: &str = "DURE_MOTO_SERVER";
/// Environment variable overriding the path of `s3s-fs`.
pub const S3S_FS_ENV: &str = "DURE_S3S_FS";

/// How long a service may take to answer its first request.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Attempts to start a service (a free port can be taken between choosing and binding it).
const START_ATTEMPTS: usize = 3;
/// Lines of a service's output kept for error messages.
const LOG_TAIL_LINES: usize = 200;

/// `moto_server` from the venv that `infra/install-test-deps.sh s3` creates, or
/// `$DURE_MOTO_SERVER`.
pub fn moto_server_bin() -> PathBuf {
    std::env::var_os(MOTO_SERVER_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| tools_dir().join("venv-moto/bin/moto_server"))
}

/// Where `infra/install-test-deps.sh` puts test tools: `$DURE_TEST_TOOLS`, else
/// `~/.cache/dure-test-tools` (outside the checkout, so fresh clones reuse them).
pub fn tools_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("DURE_TEST_TOOLS") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/root"), PathBuf::from);
    home.join(".cache/dure-test-tools")
}

/// `s3s-fs` as installed by `infra/install-test-deps.sh s3s`, or `$DURE_S3S_FS`.
pub fn s3s_fs_bin() -> PathBuf {
    std::env::var_os(S3S_FS_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| tools_dir().join("cargo/bin/s3s-fs"))
}

fn require_bin(path: &Path, what: &str, step: &str, env: &str) -> Result<()> {
    if path.is_file() {
        return Ok(());
    }
    Err(format!(
        "{what} not found at {}: run `infra/install-test-deps.sh {step}` from the repository root (or set {env})",
        path.display()
    )
    .into())
}

/// The `dure` command-line flags that point a server at an S3 service.
pub fn dure_flags(
    endpoint: &str,
    bucket: &str,
    access_key_id: &str,
    secret_access_key: &str,
) -> Vec<String> {
    [
        "--storage",
        "s3",
        "--s3-bucket",
        bucket,
        "--s3-endpoint",
        endpoint,
        "--s3-region",
        REGION,
        "--s3-path-style",
        "true",
        "--s3-access-key-id",
        access_key_id,
        "--s3-secret-access-key",
        secret_access_key,
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

/// A loopback port that was free a moment ago.
fn free_port() -> Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

/// A child process whose output is collected in the background (so its pipes never fill).
struct Service {
    name: &'static str,
    child: Child,
    addr: SocketAddr,
    log: Arc<Mutex<VecDeque<String>>>,
    paused: AtomicBool,
}

impl Service {
    /// Spawns `cmd` (which must listen on `addr`) and waits until it answers HTTP.
    async fn spawn(name: &'static str, mut cmd: Command, addr: SocketAddr) -> Result<Service> {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("starting {name} failed: {e}"))?;
        let log = Arc::new(Mutex::new(VecDeque::new()));
        if let Some(out) = child.stdout.take() {
            collect_lines(out, log.clone());
        }
        if let Some(err) = child.stderr.take() {
            collect_lines(err, log.clone());
        }
        let mut service = Service {
            name,
            child,
            addr,
            log,
            paused: AtomicBool::new(false),
        };
        service.wait_ready().await?;
        Ok(service)
    }

    async fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Err(format!(
                    "{} exited before answering ({status}); its output:\n{}",
                    self.name,
                    self.logs()
                )
                .into());
            }
            if http_status(self.addr, "GET", "/").await.is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{} did not answer on {} within {START_TIMEOUT:?}; its output:\n{}",
                    self.name,
                    self.addr,
                    self.logs()
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn logs(&self) -> String {
        self.log
            .lock()
            .map(|l| l.iter().cloned().collect::<Vec<_>>().join("\n"))
            .unwrap_or_default()
    }

    fn signal(&self, sig: &str) -> Result<()> {
        let pid = self
            .child
            .id()
            .ok_or_else(|| format!("{} has already exited", self.name))?;
        // `unsafe` (libc::kill) is forbidden in this workspace: use the kill command.
        let status = std::process::Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(pid.to_string())
            .status()?;
        if !status.success() {
            return Err(format!("kill -{sig} {pid} ({}) failed", self.name).into());
        }
        Ok(())
    }

    fn pause(&self) -> Result<()> {
        self.signal("STOP")?;
        self.paused.store(true, Ordering::SeqCst);
        Ok(())
    }

    fn resume(&self) -> Result<()> {
        self.signal("CONT")?;
        self.paused.store(false, Ordering::SeqCst);
        Ok(())
    }

    async fn stop(&mut self) -> Result<()> {
        // SIGKILL ends a stopped process too.
        self.child.kill().await?;
        Ok(())
    }
}

/// Keeps the last lines of a child's output stream in `log` (shared with [`crate::turn`]).
pub(crate) fn collect_lines(
    stream: impl AsyncRead + Unpin + Send + 'static,
    log: Arc<Mutex<VecDeque<String>>>,
) {
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if let Ok(mut l) = log.lock() {
                if l.len() == LOG_TAIL_LINES {
                    l.pop_front();
                }
                l.push_back(line);
            }
        }
    });
}

/// Starts a service on a fresh port, retrying when the port was taken meanwhile.
async fn start_on_free_port(
    name: &'static str,
    command: impl Fn(u16) -> Command,
) -> Result<Service> {
    let mut last_error = String::new();
    for _ in 0..START_ATTEMPTS {
        let port = free_port()?;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        match Service::spawn(name, command(port), addr).await {
            Ok(service) => return Ok(service),
            Err(e) => last_error = e.to_string(),
        }
    }
    Err(
        format!("{name} did not start in {START_ATTEMPTS} attempts; last error: {last_error}")
            .into(),
    )
}

/// Sends a bodiless request and returns the status and the body.
async fn http_request(addr: SocketAddr, method: &str, path: &str) -> Result<(u16, String)> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(
        format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .await?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await?;
    let raw = String::from_utf8_lossy(&raw);
    let status = raw
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or("no HTTP status in the answer")?;
    let body = raw
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

async fn http_status(addr: SocketAddr, method: &str, path: &str) -> Result<u16> {
    let (status, _) =
        tokio::time::timeout(Duration::from_secs(2), http_request(addr, method, path))
            .await
            .map_err(|_| "no answer within 2 s")??;
    Ok(status)
}

/// Runs `moto_server`'s own `main` with every request handled under one lock.
///
/// moto checks `If-None-Match` / `If-Match` and then writes, without a lock: on its threaded
/// server 2 of 32 racing if-absent writers sometimes both "won". Real S3 services evaluate
/// conditions atomically, and the fencing tests need a server that does, so requests are
/// serialised here (connections are still accepted concurrently, and kept alive). The body
/// of each answer is produced inside the lock, so each request's reads and writes are one
/// step.
const SERIAL_MOTO: &str = r#"
import sys, threading
import moto.server as server

lock = threading.Lock()
run_simple = server.run_simple

def serialised(host, port, app, **kwargs):
    def locked_app(environ, start_response):
        with lock:
            body = app(environ, start_response)
            try:
                return [b"".join(body)]
            finally:
                close = getattr(body, "close", None)
                if close is not None:
                    close()
    return run_simple(host, port, locked_app, **kwargs)

server.run_simple = serialised
server.main(sys.argv[1:])
"#;

/// moto's S3 server (its `moto_server -H 127.0.0.1 -p PORT`, with requests serialised so
/// that conditional writes are atomic), killed on drop.
pub struct MotoServer {
    service: Service,
}

impl MotoServer {
    /// Starts moto on a free loopback port and waits until it answers.
    pub async fn start() -> Result<MotoServer> {
        let bin = moto_server_bin();
        require_bin(&bin, "moto_server", "s3", MOTO_SERVER_ENV)?;
        let python = bin.with_file_name("python");
        require_bin(&python, "the venv's python", "s3", MOTO_SERVER_ENV)?;
        let service = start_on_free_port("moto_server", |port| {
            let mut cmd = Command::new(&python);
            cmd.arg("-c")
                .arg(SERIAL_MOTO)
                .arg("-H")
                .arg("127.0.0.1")
                .arg("-p")
                .arg(port.to_string());
            cmd
        })
        .await?;
        Ok(MotoServer { service })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.service.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.service.addr
    }

    pub fn pid(&self) -> Option<u32> {
        self.service.child.id()
    }

    /// Creates a bucket (plain path-style PUT: moto does not check signatures).
    pub async fn create_bucket(&self, name: &str) -> Result<()> {
        let (status, body) = http_request(self.service.addr, "PUT", &format!("/{name}")).await?;
        if status != 200 {
            return Err(
                format!("moto refused to create bucket {name:?}: HTTP {status}: {body}").into(),
            );
        }
        Ok(())
    }

    /// The keys under `prefix` in `bucket` with their ETags (for S3 an MD5 of the content:
    /// equal ETags mean byte-identical objects), from one plain ListObjectsV2 request.
    pub async fn list_etags(&self, bucket: &str, prefix: &str) -> Result<Vec<(String, String)>> {
        let (status, body) = http_request(
            self.service.addr,
            "GET",
            &format!("/{bucket}?list-type=2&max-keys=1000&prefix={prefix}"),
        )
        .await?;
        if status != 200 {
            return Err(format!("listing {bucket:?} failed: HTTP {status}: {body}").into());
        }
        let field = |object: &str, tag: &str| {
            object
                .split_once(&format!("<{tag}>"))
                .and_then(|(_, rest)| rest.split_once(&format!("</{tag}>")))
                .map(|(v, _)| {
                    v.replace("&#34;", "")
                        .replace("&quot;", "")
                        .replace('"', "")
                })
        };
        Ok(body
            .split("<Contents>")
            .skip(1)
            .filter_map(|object| Some((field(object, "Key")?, field(object, "ETag")?)))
            .collect())
    }

    /// How many requests of moto's recent output (the last 200 lines of its request log)
    /// start with `request_line_prefix`, e.g. `"POST /bucket/?delete"`.
    pub fn requests_logged(&self, request_line_prefix: &str) -> usize {
        self.logs()
            .lines()
            .filter(|l| l.contains(&format!("\"{request_line_prefix}")))
            .count()
    }

    /// How many multipart uploads are open (started, neither completed nor aborted) in
    /// `bucket`: a backend must not leave failed uploads behind.
    pub async fn open_multipart_uploads(&self, bucket: &str) -> Result<usize> {
        let (status, body) =
            http_request(self.service.addr, "GET", &format!("/{bucket}?uploads")).await?;
        if status != 200 {
            return Err(
                format!("listing uploads of {bucket:?} failed: HTTP {status}: {body}").into(),
            );
        }
        Ok(body.matches("<Upload>").count())
    }

    /// SIGSTOP: the server keeps its port and accepts connections (the kernel does) but
    /// answers nothing, like a hung S3 service.
    pub fn pause(&self) -> Result<()> {
        self.service.pause()
    }

    /// SIGCONT after [`pause`](Self::pause): requests queued meanwhile are then served.
    pub fn resume(&self) -> Result<()> {
        self.service.resume()
    }

    pub fn is_paused(&self) -> bool {
        self.service.paused.load(Ordering::SeqCst)
    }

    /// Kills the server (also when paused).
    pub async fn stop(mut self) -> Result<()> {
        self.service.stop().await
    }

    /// The server's recent output (request log, errors).
    pub fn logs(&self) -> String {
        self.service.logs()
    }

    /// The `dure` flags for storing in `bucket` on this server.
    pub fn dure_flags(&self, bucket: &str) -> Vec<String> {
        dure_flags(
            &self.endpoint(),
            bucket,
            MOTO_ACCESS_KEY_ID,
            MOTO_SECRET_ACCESS_KEY,
        )
    }
}

/// `s3s-fs`, an S3 server over a temporary directory that checks SigV4 signatures against
/// one key pair. Killed, and its directory removed, on drop.
pub struct S3sFsServer {
    service: Service,
    root: tempfile::TempDir,
    access_key_id: String,
    secret_access_key: String,
}

impl S3sFsServer {
    /// Starts `s3s-fs` accepting only `access_key_id` / `secret_access_key`.
    pub async fn start(access_key_id: &str, secret_access_key: &str) -> Result<S3sFsServer> {
        let bin = s3s_fs_bin();
        require_bin(&bin, "s3s-fs", "s3s", S3S_FS_ENV)?;
        let root = tempfile::tempdir()?;
        let service = start_on_free_port("s3s-fs", |port| {
            let mut cmd = Command::new(&bin);
            cmd.arg("--host")
                .arg("127.0.0.1")
                .arg("--port")
                .arg(port.to_string())
                .arg("--access-key")
                .arg(access_key_id)
                .arg("--secret-key")
                .arg(secret_access_key)
                .arg(root.path());
            cmd
        })
        .await?;
        Ok(S3sFsServer {
            service,
            root,
            access_key_id: access_key_id.to_owned(),
            secret_access_key: secret_access_key.to_owned(),
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.service.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.service.addr
    }

    /// Creates a bucket: s3s-fs keeps each bucket as a directory of its root.
    pub fn create_bucket(&self, name: &str) -> Result<()> {
        std::fs::create_dir(self.root.path().join(name))?;
        Ok(())
    }

    /// The directory holding the buckets.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    pub async fn stop(mut self) -> Result<()> {
        self.service.stop().await
    }

    pub fn logs(&self) -> String {
        self.service.logs()
    }

    /// The `dure` flags for storing in `bucket` on this server, with its own keys.
    pub fn dure_flags(&self, bucket: &str) -> Vec<String> {
        dure_flags(
            &self.endpoint(),
            bucket,
            &self.access_key_id,
            &self.secret_access_key,
        )
    }
}
