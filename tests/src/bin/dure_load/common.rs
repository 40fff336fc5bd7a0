//! What every scenario shares: the target server, /proc measurements, latency statistics and
//! the result line.

use std::path::Path;
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::{Map, Value, json};

/// Errors are reported, not handled: the scenario stops and the bench records the failure.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type Res<T> = Result<T, BoxError>;

/// Builds an error from a message.
pub fn fail(msg: impl Into<String>) -> BoxError {
    msg.into().into()
}

/// The server under test.
#[derive(Args, Debug, Clone)]
pub struct Target {
    /// Base WebSocket URL of the server (documents are at `{url}/ws/doc/{id}`).
    #[arg(long, default_value = "ws://127.0.0.1:8080")]
    pub url: String,
    /// Process id of the server, to measure its CPU and memory from /proc.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// The server does not speak the sync protocol (a plain relay): clients skip the handshake
    /// and do not wait for sync step 2.
    #[arg(long)]
    pub no_sync: bool,
    /// Name of the server in the result line (e.g. `relay`, `dure`).
    #[arg(long, default_value = "server")]
    pub label: String,
    /// Prefix of document ids (defaults to a random one, so runs never share documents).
    #[arg(long)]
    pub doc_prefix: Option<String>,
}

impl Target {
    /// WebSocket URL of document `doc`.
    pub fn doc_url(&self, doc: &str) -> String {
        format!("{}/ws/doc/{doc}", self.url.trim_end_matches('/'))
    }

    /// Document id number `n` of this run.
    pub fn doc_id(&self, prefix: &str, n: usize) -> String {
        format!("{prefix}-{n}")
    }

    /// The document prefix of this run.
    pub fn prefix(&self, scenario: &str) -> String {
        self.doc_prefix
            .clone()
            .unwrap_or_else(|| format!("{scenario}-{:08x}", rand::random::<u32>()))
    }

    /// `http://host:port` of the same server.
    pub fn http_base(&self) -> String {
        let rest = self
            .url
            .strip_prefix("ws://")
            .or_else(|| self.url.strip_prefix("http://"))
            .unwrap_or(&self.url);
        format!("http://{}", rest.trim_end_matches('/'))
    }
}

/// User-mode + kernel-mode CPU ticks of a process (fields 14 and 15 of /proc/PID/stat).
fn cpu_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces: count fields after its closing paren.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split_whitespace();
    // `rest` starts at field 3; utime is field 14.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Clock ticks per second for /proc/PID/stat (USER_HZ, 100 on Linux unless getconf says else).
fn clk_tck() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// Resident memory of a process in KiB (VmRSS of /proc/PID/status).
pub fn rss_kib(pid: u32) -> Option<u64> {
    rss_kib_of(&pid.to_string())
}

fn rss_kib_of(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// CPU used by a process over a window, as % of one core.
#[derive(Debug)]
pub struct CpuWindow {
    pid: String,
    start_ticks: Option<u64>,
    start: Instant,
    tck: f64,
}

impl CpuWindow {
    /// Starts measuring `pid` (`None` measures nothing).
    pub fn start(pid: Option<u32>) -> Option<Self> {
        Self::start_pid(pid?.to_string())
    }

    /// Starts measuring this process.
    pub fn start_self() -> Option<Self> {
        Self::start_pid("self".to_owned())
    }

    fn start_pid(pid: String) -> Option<Self> {
        let tck = clk_tck();
        Some(Self {
            start_ticks: cpu_ticks(&pid),
            pid,
            start: Instant::now(),
            tck,
        })
    }

    /// % of one core used since the start.
    pub fn percent(&self) -> Option<f64> {
        let used = cpu_ticks(&self.pid)?.checked_sub(self.start_ticks?)? as f64 / self.tck;
        let wall = self.start.elapsed().as_secs_f64();
        (wall > 0.0).then(|| used / wall * 100.0)
    }
}

/// Latency samples in microseconds.
#[derive(Debug, Default, Clone)]
pub struct Samples(pub Vec<u32>);

impl Samples {
    pub fn push(&mut self, d: Duration) {
        self.0
            .push(u32::try_from(d.as_micros()).unwrap_or(u32::MAX));
    }

    pub fn extend(&mut self, other: Samples) {
        self.0.extend(other.0);
    }

    /// Percentiles in milliseconds: `{n, p50, p95, p99, max, mean}` (nulls when empty).
    pub fn summary(&mut self) -> Value {
        self.0.sort_unstable();
        let n = self.0.len();
        if n == 0 {
            return json!({"n": 0, "p50": null, "p95": null, "p99": null, "max": null});
        }
        let pct = |p: f64| {
            let rank = ((p / 100.0) * n as f64).ceil() as usize;
            ms(self.0[rank.clamp(1, n) - 1])
        };
        let mean = self.0.iter().map(|&v| f64::from(v)).sum::<f64>() / n as f64 / 1000.0;
        json!({
            "n": n,
            "p50": pct(50.0),
            "p95": pct(95.0),
            "p99": pct(99.0),
            "max": ms(self.0[n - 1]),
            "mean": round3(mean),
        })
    }
}

fn ms(us: u32) -> f64 {
    round3(f64::from(us) / 1000.0)
}

/// Rounds to 3 decimals (JSON readability).
pub fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// `{p50, p99, max}` of a summary, for printing.
pub fn fmt_summary(s: &Value) -> String {
    let f = |k: &str| {
        s.get(k)
            .and_then(Value::as_f64)
            .map_or("-".to_owned(), |v| format!("{v:.3}"))
    };
    format!(
        "n={} p50={} p95={} p99={} max={} ms",
        s.get("n").and_then(Value::as_u64).unwrap_or(0),
        f("p50"),
        f("p95"),
        f("p99"),
        f("max")
    )
}

/// Prints the machine-readable result line the bench script collects.
pub fn print_result(scenario: &str, target: &Target, mut fields: Map<String, Value>) {
    fields.insert("scenario".into(), scenario.into());
    fields.insert("target".into(), target.label.clone().into());
    println!("RESULT {}", Value::Object(fields));
}

/// Raises this process's soft limit on open files to `want` (capped by the hard limit).
///
/// `unsafe` is forbidden in this workspace, so there is no direct `setrlimit`: `prlimit(1)`
/// (util-linux) changes the limit of a running process, here our own.
pub fn raise_nofile(want: u64) -> u64 {
    let current = nofile_limits();
    let hard = current.map_or(want, |(_, hard)| hard);
    let target = want.min(hard);
    if current.is_some_and(|(soft, _)| soft >= target) {
        return current.map_or(target, |(soft, _)| soft);
    }
    let pid = std::process::id().to_string();
    let _ = std::process::Command::new("prlimit")
        .args(["--pid", &pid, &format!("--nofile={target}:{hard}")])
        .status();
    nofile_limits().map_or(0, |(soft, _)| soft)
}

/// (soft, hard) limits on open files, from /proc/self/limits.
fn nofile_limits() -> Option<(u64, u64)> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let mut nums = line
        .trim_start_matches("Max open files")
        .split_whitespace()
        .map(|v| v.parse::<u64>().unwrap_or(u64::MAX));
    Some((nums.next()?, nums.next()?))
}

/// Reads a gzip-compressed JSON file.
pub fn read_gz_json<T: serde::de::DeserializeOwned>(path: &Path) -> Res<T> {
    let file = std::fs::File::open(path).map_err(|e| fail(format!("{}: {e}", path.display())))?;
    let reader = std::io::BufReader::new(flate2::read::GzDecoder::new(file));
    Ok(serde_json::from_reader(reader)?)
}

/// GET `url` (plain `http://host:port/path`) over HTTP/1.1 and return the body as text.
pub async fn http_get(url: &str) -> Res<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| fail("only http:// URLs"))?;
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let mut tcp = tokio::net::TcpStream::connect(host).await?;
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nAccept: */*\r\n\r\n");
    tcp.write_all(request.as_bytes()).await?;
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut raw)).await??;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| fail("malformed HTTP response"))?;
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        return Err(fail(format!(
            "GET {url}: {}",
            head.lines().next().unwrap_or("")
        )));
    }
    Ok(body.to_owned())
}

/// Runs futures with at most `limit` in flight; results in input order.
pub async fn bounded<F, T>(limit: usize, futures: Vec<F>) -> Vec<T>
where
    F: std::future::Future<Output = T>,
{
    use futures_util::StreamExt;
    futures_util::stream::iter(futures)
        .buffered(limit.max(1))
        .collect()
        .await
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let mut s = Samples((1..=100).map(|v| v * 1000).collect());
        let v = s.summary();
        assert_eq!(v["p50"], 50.0);
        assert_eq!(v["p99"], 99.0);
        assert_eq!(v["max"], 100.0);
        assert_eq!(Samples::default().summary()["n"], 0);
    }

    #[test]
    fn proc_self() {
        assert!(cpu_ticks("self").is_some());
        assert!(rss_kib_of("self").is_some_and(|kib| kib > 0));
        assert!(nofile_limits().is_some());
    }
}
