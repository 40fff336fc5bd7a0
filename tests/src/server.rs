//! Spawning the real `dure` binary for black-box tests.
//!
//! The server listens on `127.0.0.1:0` and the harness reads the address it printed, so
//! parallel tests never race for a port. Its log is captured for assertions.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The `dure` binary under test: `$DURE_BIN`, else `dure` next to this test's target dir.
pub fn dure_bin() -> Result<PathBuf, BoxError> {
    find_bin(
        "dure",
        "DURE_BIN",
        "cargo build --release -p dure-gateway` (tests/run does)",
    )
}

/// A binary under test: `$env_var`, else `name` next to this test's target dir; `build`
/// says how to build it (ends with the closing backtick and any remark).
pub fn find_bin(name: &str, env_var: &str, build: &str) -> Result<PathBuf, BoxError> {
    if let Ok(p) = std::env::var(env_var) {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe()?;
    // target/<profile>/deps/<test> or target/<profile>/<bin>
    for dir in exe.ancestors().skip(1).take(3) {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    Err(format!(
        "the {name} binary was not found next to {}: build it first with `{build}, or set {env_var}",
        exe.display()
    )
    .into())
}

/// A response's status and JSON body (`Null` when empty, a string when not JSON).
pub async fn status_and_json(
    resp: reqwest::Response,
) -> Result<(u16, serde_json::Value), BoxError> {
    let status = resp.status().as_u16();
    let text = resp.text().await?;
    let v = if text.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))
    };
    Ok((status, v))
}

/// A running `dure` process.
pub struct Dure {
    child: Child,
    pub addr: std::net::SocketAddr,
    pub data_dir: PathBuf,
    log: Arc<Mutex<String>>,
}

impl Dure {
    /// Starts `dure` on `data_dir` with extra flags; waits until it listens.
    pub async fn start(data_dir: &Path, extra: &[&str]) -> Result<Dure, BoxError> {
        Self::start_on(data_dir, "127.0.0.1:0", extra).await
    }

    /// Like [`Dure::start`] on a given address (sign-in needs the public URL, hence the port,
    /// before start).
    pub async fn start_on(data_dir: &Path, listen: &str, extra: &[&str]) -> Result<Dure, BoxError> {
        Self::spawn(Command::new(dure_bin()?), data_dir, listen, extra).await
    }

    /// Like [`Dure::start`] under a given umask (e.g. `"022"`, the usual default), set by a
    /// shell that then `exec`s dure, so the process is dure itself.
    pub async fn start_with_umask(
        data_dir: &Path,
        umask: &str,
        extra: &[&str],
    ) -> Result<Dure, BoxError> {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(format!("umask {umask} && exec \"$0\" \"$@\""))
            .arg(dure_bin()?);
        Self::spawn(cmd, data_dir, "127.0.0.1:0", extra).await
    }

    async fn spawn(
        mut cmd: Command,
        data_dir: &Path,
        listen: &str,
        extra: &[&str],
    ) -> Result<Dure, BoxError> {
        cmd.arg("--listen")
            .arg(listen)
            .arg("--data-dir")
            .arg(data_dir)
            .args(extra)
            .env("NO_COLOR", "1")
            .env_remove("DURE_CONFIG")
            .current_dir(data_dir.parent().unwrap_or(data_dir))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn()?;
        let log = Arc::new(Mutex::new(String::new()));
        let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
        // Logs go to stderr; the address is read from whichever stream carries it.
        let addr_tx = Arc::new(Mutex::new(Some(addr_tx)));
        if let Some(out) = child.stdout.take() {
            tokio::spawn(pump_lines(out, log.clone(), addr_tx.clone()));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(pump_lines(err, log.clone(), addr_tx));
        }
        let addr = match tokio::time::timeout(Duration::from_secs(20), addr_rx).await {
            Ok(Ok(a)) => a.parse()?,
            _ => {
                let _ = child.start_kill();
                let log = log.lock().map(|l| l.clone()).unwrap_or_default();
                return Err(format!(
                    "dure did not start listening within 20 s; its output:\n{log}"
                )
                .into());
            }
        };
        Ok(Dure {
            child,
            addr,
            data_dir: data_dir.to_path_buf(),
            log,
        })
    }

    /// `ws://…/ws/doc/{doc}` (plus `?ack=1` when asked).
    pub fn doc_url(&self, doc: &str, ack: bool) -> String {
        format!(
            "ws://{}/ws/doc/{doc}{}",
            self.addr,
            if ack { "?ack=1" } else { "" }
        )
    }

    pub fn http_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    pub fn logs(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// SIGKILL: no flush, no goodbye.
    pub async fn kill9(&mut self) -> Result<(), BoxError> {
        self.child.kill().await?;
        Ok(())
    }

    /// SIGTERM, then waits for the exit (at most `limit`). Returns the exit code.
    pub async fn sigterm(&mut self, limit: Duration) -> Result<Option<i32>, BoxError> {
        let pid = self.child.id().ok_or("already exited")?;
        signal(pid, libc::SIGTERM)?;
        let status = tokio::time::timeout(limit, self.child.wait())
            .await
            .map_err(|_| format!("dure did not exit within {limit:?} of SIGTERM"))??;
        Ok(status.code())
    }

    /// Waits for the process to exit on its own.
    pub async fn wait(&mut self, limit: Duration) -> Result<Option<i32>, BoxError> {
        let status = tokio::time::timeout(limit, self.child.wait())
            .await
            .map_err(|_| format!("dure still running after {limit:?}"))??;
        Ok(status.code())
    }

    /// GET a path; returns (status, body).
    pub async fn get(&self, path: &str) -> Result<(u16, String), BoxError> {
        http_get(self.addr, path).await
    }
}

type AddrSender = Arc<Mutex<Option<tokio::sync::oneshot::Sender<String>>>>;

/// Copies a child's output lines into `log`, and sends the address of the first
/// "listening on http://ADDR" line.
async fn pump_lines(
    stream: impl tokio::io::AsyncRead + Unpin,
    log: Arc<Mutex<String>>,
    addr_tx: AddrSender,
) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(rest) = line.split("listening on http://").nth(1)
            && let Some(addr) = rest.split_whitespace().next()
            && let Some(tx) = addr_tx.lock().ok().and_then(|mut t| t.take())
        {
            let _ = tx.send(addr.to_owned());
        }
        if let Ok(mut l) = log.lock() {
            l.push_str(&line);
            l.push('\n');
        }
    }
}

fn signal(pid: u32, sig: libc::c_int) -> Result<(), BoxError> {
    let pid = libc::pid_t::try_from(pid)?;
    // SAFETY-free: libc::kill is a plain syscall wrapper; `unsafe` is forbidden in this
    // workspace, so go through the `kill` command instead.
    let _ = pid;
    let name = match sig {
        libc::SIGTERM => "TERM",
        libc::SIGKILL => "KILL",
        _ => return Err("unsupported signal".into()),
    };
    let status = std::process::Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()?;
    if !status.success() {
        return Err(format!("kill -{name} {pid} failed").into());
    }
    Ok(())
}

/// Minimal HTTP/1.1 GET over loopback (keeps the harness free of an HTTP client stack).
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> Result<(u16, String), BoxError> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).await?;
    let status = raw
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or("no HTTP status")?;
    let body = raw
        .split_once("\r\n\r\n")
        .map(|x| x.1.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// Runs `dure` to its exit (for start-up failures and `--help`) in `dir`, with `args` and
/// extra environment; returns the exit code and everything it printed.
pub fn run_to_exit<S: AsRef<std::ffi::OsStr>>(
    dir: &Path,
    args: &[S],
    env: &[(&str, &std::ffi::OsStr)],
) -> Result<(Option<i32>, String), BoxError> {
    // A dure that wrongly starts would never exit: coreutils' timeout ends it (exit 124).
    let mut cmd = std::process::Command::new("timeout");
    cmd.arg("60")
        .arg(dure_bin()?)
        .args(args)
        .current_dir(dir)
        .env_remove("DURE_CONFIG")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((out.status.code(), text))
}

/// A temporary directory for one test's data.
pub fn temp_dir() -> Result<tempfile::TempDir, BoxError> {
    Ok(tempfile::Builder::new().prefix("dure-test-").tempdir()?)
}
