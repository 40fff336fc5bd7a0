//! `dure-msg-bench`: messaging (`docs/messaging.md`) under load, against the relay floor in the
//! same run.
//!
//! Starts the test OpenID provider (`tests/js/idp.mjs`) and mints one access token per load
//! account (`load0`, `load1`, …: one distinct person each), then for each scenario starts a
//! fresh `dure` in signed-in mode (bearer tokens on `/ws/rt`) and, where there is one, `ws-relay`
//! (the bare WebSocket broadcast relay the other benchmarks use as their floor), both from the
//! build directory on free loopback ports. Every person connects once before being added to a
//! conversation (that is how the server learns them). Latencies are from the sender's send to
//! the receiver's frame, on one clock (one process).
//!
//! - `fanout`: one group conversation of MEMBERS people, one socket each; one of them posts
//!   RATE messages a second for SECONDS. Delivery latency to every other member's `msg.new`,
//!   deliveries per second, send → ack (the ack means durable). Floor: the relay broadcasting
//!   frames of the same size (a real `msg.new` event, captured) to a room of MEMBERS sockets.
//! - `many`: CONVERSATIONS direct conversations × 2 people, each conversation carrying
//!   CONV_RATE messages a second (its two members in turn), spread evenly in time. Server CPU
//!   and delivery latency to the other member; floor: the relay with as many two-socket rooms
//!   and the same frames.
//! - `writes`: one conversation receiving each of BUSY_RATES messages a second from WRITERS
//!   members; on fs, the log objects written (files under
//!   `DATA_DIR/objects/conversations/{id}/log/`) per second and messages per write (group
//!   commit). The memory store cannot be counted from outside: only its ack latency is given.
//!
//! `dure-msg-bench [--scenario all|fanout,many,writes] [--storage fs|memory] [--members 1000]
//! [--rates 10,50] [--conversations 2000] [--conv-rate 1] [--busy-rates 50,200,500]
//! [--writers 10] [--seconds 10]`

#[path = "dure_load/common.rs"]
#[allow(dead_code)]
mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use common::{CpuWindow, Samples, fmt_summary, raise_nofile, rss_kib};
use dure_tests::idp::{IdpOptions, SCOPES, TestIdp, free_port, load_login};
use dure_tests::rt_client::{Auth, RtClient, RtSink, RtStream};
use dure_tests::server::{Dure, temp_dir};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Res<T> = Result<T, BoxError>;

#[derive(Parser, Debug, Clone)]
#[command(about = "Messaging benchmark against the relay floor")]
struct Args {
    /// Scenarios to run: fanout, many, writes (comma-separated), or all.
    #[arg(long, value_delimiter = ',', default_value = "all")]
    scenario: Vec<String>,
    /// Dure's storage backend: `fs` (the default deployment) or `memory` (what durable writes
    /// cost).
    #[arg(long, default_value = "fs")]
    storage: String,
    /// fanout: members of the one group conversation (one of them posts).
    #[arg(long, default_value_t = 1000)]
    members: usize,
    /// fanout: messages per second the sender posts; one run per rate.
    #[arg(long, value_delimiter = ',', default_value = "10,50")]
    rates: Vec<f64>,
    /// many: direct conversations (two people each); one run per size.
    #[arg(long, value_delimiter = ',', default_value = "2000")]
    conversations: Vec<usize>,
    /// many: messages per second in each conversation (its members in turn).
    #[arg(long, default_value_t = 1.0)]
    conv_rate: f64,
    /// writes: messages per second into the one busy conversation; one run per rate.
    #[arg(long, value_delimiter = ',', default_value = "50,200,500")]
    busy_rates: Vec<f64>,
    /// writes: members posting (the rate is shared among them).
    #[arg(long, default_value_t = 10)]
    writers: usize,
    /// Length of each measured window, in seconds.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Code flows run at once at the test provider while tokens are minted.
    #[arg(long, default_value_t = 16)]
    mint_concurrency: usize,
    /// Sockets opened at once.
    #[arg(long, default_value_t = 32)]
    connect_concurrency: usize,
}

impl Args {
    fn runs(&self, name: &str) -> bool {
        self.scenario.iter().any(|s| s == name || s == "all")
    }
}

/// Text of every message: an ordinary chat line.
const TEXT: &str =
    "Can we move the budget review to Thursday afternoon? I have the draft ready for comments.";

/// How long the last deliveries and acks may take after a window before the figures are read.
const DRAIN: Duration = Duration::from_secs(20);

fn since(base: Instant) -> u64 {
    base.elapsed().as_micros() as u64
}

fn sibling(name: &str) -> Res<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe.parent().ok_or("no exe dir")?;
    let p = dir.join(name);
    if p.is_file() {
        Ok(p)
    } else {
        Err(format!("{} not built next to this binary", p.display()).into())
    }
}

// ---- one socket ---------------------------------------------------------------------------

/// What a socket's task is asked to do.
enum Cmd {
    /// A request whose reply is wanted (`id` is the envelope's).
    Req {
        id: String,
        text: String,
        reply: oneshot::Sender<Value>,
    },
    /// A frame whose answer (if any) is only counted.
    Send(Message),
    /// Hand over the text of the next `msg.new` received.
    Capture(oneshot::Sender<String>),
    /// Hand over the figures gathered so far and start again.
    Flush(oneshot::Sender<Local>),
}

/// Figures one socket gathered.
#[derive(Default)]
struct Local {
    /// Send → `msg.new` at this socket, for messages by others.
    delivery: Samples,
    /// Send → `ok` of `msg.send`, at the sender.
    ack: Samples,
    delivered: u64,
    /// Deliveries that arrived before the end of the sending window.
    in_window: u64,
    /// `msg.new` of this socket's own messages (Dure delivers to the sender's devices too).
    echo: u64,
    acked: u64,
    /// Error codes answered to `msg.send`.
    errors: BTreeMap<String, u64>,
    /// Per message (send time, sender): the earliest and latest delivery latency, in µs.
    spread: HashMap<(u64, usize), (u64, u64)>,
}

impl Local {
    fn merge(&mut self, o: Local) {
        self.delivery.extend(o.delivery);
        self.ack.extend(o.ack);
        self.delivered += o.delivered;
        self.in_window += o.in_window;
        self.echo += o.echo;
        self.acked += o.acked;
        for (k, v) in o.errors {
            *self.errors.entry(k).or_default() += v;
        }
        for (k, (lo, hi)) in o.spread {
            let e = self.spread.entry(k).or_insert((lo, hi));
            e.0 = e.0.min(lo);
            e.1 = e.1.max(hi);
        }
    }

    /// Per message, first to last delivery: how long one message takes to reach everyone.
    fn spread(&self) -> Samples {
        let mut s = Samples::default();
        for (lo, hi) in self.spread.values() {
            s.push(Duration::from_micros(hi - lo));
        }
        s
    }
}

/// Counts every socket of a run shares, to know when the last delivery arrived.
#[derive(Default)]
struct Counters {
    delivered: AtomicU64,
    answered: AtomicU64,
    /// End of the sending window, µs since the base instant.
    window_end: AtomicU64,
}

impl Counters {
    fn reset(&self) {
        self.delivered.store(0, Ordering::Relaxed);
        self.answered.store(0, Ordering::Relaxed);
    }
}

#[derive(Clone)]
struct Dev {
    tx: mpsc::UnboundedSender<Cmd>,
    next: Arc<AtomicU64>,
}

impl Dev {
    /// A request that must succeed: its `data`.
    async fn request(&self, kind: &str, data: Value) -> Res<Value> {
        let id = format!("r{}", self.next.fetch_add(1, Ordering::Relaxed));
        let text = json!({"v": 1, "type": kind, "id": id, "data": data}).to_string();
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Cmd::Req { id, text, reply })
            .map_err(|_| "socket closed")?;
        let r = tokio::time::timeout(Duration::from_secs(300), rx)
            .await
            .map_err(|_| format!("{kind}: no answer within 300 s"))?
            .map_err(|_| format!("{kind}: socket closed"))?;
        if r["type"] != "ok" {
            return Err(format!("{kind} failed: {r}").into());
        }
        Ok(r["data"].clone())
    }

    fn send(&self, m: Message) {
        let _ = self.tx.send(Cmd::Send(m));
    }

    async fn flush(&self) -> Local {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Cmd::Flush(tx)).is_err() {
            return Local::default();
        }
        rx.await.unwrap_or_default()
    }

    fn capture(&self) -> oneshot::Receiver<String> {
        let (tx, rx) = oneshot::channel();
        let _ = self.tx.send(Cmd::Capture(tx));
        rx
    }
}

/// The few fields a frame is read for (the rest is skipped, not built).
#[derive(Deserialize)]
struct Frame<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<&'a str>,
    #[serde(borrow, default)]
    re: Option<&'a str>,
    #[serde(borrow, default)]
    data: Option<FrameData<'a>>,
}

#[derive(Deserialize)]
struct FrameData<'a> {
    #[serde(borrow, default)]
    message: Option<FrameMsg<'a>>,
}

#[derive(Deserialize)]
struct FrameMsg<'a> {
    #[serde(borrow, default)]
    client_ref: Option<&'a str>,
}

/// A socket's state while its task runs.
struct Reader {
    me: usize,
    base: Instant,
    counters: Arc<Counters>,
    local: Local,
    pending: HashMap<String, oneshot::Sender<Value>>,
    capture: Option<oneshot::Sender<String>>,
}

impl Reader {
    fn frame(&mut self, text: &str) {
        match serde_json::from_str::<Frame>(text) {
            Ok(f) => {
                let cref = f.data.and_then(|d| d.message).and_then(|m| m.client_ref);
                self.parts(text, f.kind, f.re, cref);
            }
            // An error reply (its `message` is a string) or escapes in a field read here.
            Err(_) => {
                let Ok(v) = serde_json::from_str::<Value>(text) else {
                    return;
                };
                let cref = v["data"]["message"]["client_ref"].as_str();
                self.parts(text, v["type"].as_str(), v["re"].as_str(), cref);
            }
        }
    }

    fn parts(&mut self, text: &str, kind: Option<&str>, re: Option<&str>, cref: Option<&str>) {
        let now = since(self.base);
        if let Some(re) = re {
            if let Some(tx) = self.pending.remove(re) {
                let _ = tx.send(serde_json::from_str(text).unwrap_or(Value::Null));
                return;
            }
            // A `msg.send` of a run: id `s{t}-{k}`.
            if let Some(rest) = re.strip_prefix('s') {
                self.counters.answered.fetch_add(1, Ordering::Relaxed);
                if kind == Some("ok") {
                    self.local.acked += 1;
                    if let Some(t) = rest.split('-').next().and_then(|t| t.parse::<u64>().ok()) {
                        self.local
                            .ack
                            .push(Duration::from_micros(now.saturating_sub(t)));
                    }
                } else {
                    let code = serde_json::from_str::<Value>(text)
                        .ok()
                        .and_then(|v| v["data"]["code"].as_str().map(str::to_owned))
                        .unwrap_or_else(|| "?".to_owned());
                    *self.local.errors.entry(code).or_default() += 1;
                }
            }
            return;
        }
        if kind != Some("msg.new") {
            return;
        }
        if let Some(cap) = self.capture.take() {
            let _ = cap.send(text.to_owned());
        }
        // client_ref `{t:012}.{sender}`.
        let Some((t, from)) = cref.and_then(|c| c.split_once('.')) else {
            return;
        };
        let (Ok(t), Ok(from)) = (t.parse::<u64>(), from.parse::<usize>()) else {
            return;
        };
        if from == self.me {
            self.local.echo += 1;
        } else {
            self.local.delivered += 1;
            self.counters.delivered.fetch_add(1, Ordering::Relaxed);
            if now <= self.counters.window_end.load(Ordering::Relaxed) {
                self.local.in_window += 1;
            }
            let lat = now.saturating_sub(t);
            self.local.delivery.push(Duration::from_micros(lat));
            let e = self.local.spread.entry((t, from)).or_insert((lat, lat));
            e.0 = e.0.min(lat);
            e.1 = e.1.max(lat);
        }
    }
}

/// Runs one socket: reads every frame, sends what it is given, pings Dure every 15 s (the
/// server closes a socket silent for 60 s).
fn spawn_dev(
    me: usize,
    (mut sink, mut stream): (RtSink, RtStream),
    base: Instant,
    counters: Arc<Counters>,
    ping: bool,
) -> Dev {
    let (tx, mut rx) = mpsc::unbounded_channel::<Cmd>();
    tokio::spawn(async move {
        let mut r = Reader {
            me,
            base,
            counters,
            local: Local::default(),
            pending: HashMap::new(),
            capture: None,
        };
        let mut tick = tokio::time::interval(Duration::from_secs(15));
        tick.tick().await;
        let mut pings = 0u64;
        loop {
            tokio::select! {
                msg = stream.next() => {
                    match msg {
                        Some(Ok(Message::Text(t))) => r.frame(t.as_str()),
                        Some(Ok(Message::Binary(b))) => {
                            if let Ok(t) = std::str::from_utf8(&b) {
                                r.frame(t);
                            }
                        }
                        Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                        Some(Ok(_)) => {}
                    }
                }
                cmd = rx.recv() => {
                    let Some(cmd) = cmd else { break };
                    let out = match cmd {
                        Cmd::Req { id, text, reply } => {
                            r.pending.insert(id, reply);
                            Message::Text(text.into())
                        }
                        Cmd::Send(m) => m,
                        Cmd::Capture(tx) => {
                            r.capture = Some(tx);
                            continue;
                        }
                        Cmd::Flush(tx) => {
                            let _ = tx.send(std::mem::take(&mut r.local));
                            continue;
                        }
                    };
                    if sink.send(out).await.is_err() {
                        break;
                    }
                }
                _ = tick.tick(), if ping => {
                    pings += 1;
                    let p = json!({"v": 1, "type": "ping", "id": format!("p{pings}")}).to_string();
                    if sink.send(Message::Text(p.into())).await.is_err() {
                        break;
                    }
                }
            }
        }
        // Keep answering flushes after the socket ended, so a run can still read its figures.
        let _ = sink.close().await;
        while let Some(cmd) = rx.recv().await {
            if let Cmd::Flush(tx) = cmd {
                let _ = tx.send(std::mem::take(&mut r.local));
            }
        }
    });
    Dev {
        tx,
        next: Arc::new(AtomicU64::new(1)),
    }
}

async fn flush_all(devs: &[Dev]) -> Local {
    let all = futures_util::future::join_all(devs.iter().map(Dev::flush)).await;
    let mut out = Local::default();
    for l in all {
        out.merge(l);
    }
    out
}

/// Waits until `delivered` deliveries and `answered` send answers arrived, or [`DRAIN`].
async fn drain(c: &Counters, delivered: u64, answered: u64) -> bool {
    let until = Instant::now() + DRAIN;
    while Instant::now() < until {
        if c.delivered.load(Ordering::Relaxed) >= delivered
            && c.answered.load(Ordering::Relaxed) >= answered
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

// ---- servers ------------------------------------------------------------------------------

struct Server {
    dure: Dure,
    base: String,
    data: PathBuf,
    _dir: tempfile::TempDir,
}

async fn start_dure(idp: &TestIdp, args: &Args, sockets: usize) -> Res<Server> {
    let port = free_port()?;
    let base = format!("http://127.0.0.1:{port}");
    let dir = temp_dir()?;
    let data = dir.path().join("data");
    let limit = (sockets + 1000).to_string();
    let mut flags: Vec<String> = idp.dure_flags();
    for f in [
        "--public-url",
        &base,
        "--oidc-scopes",
        SCOPES,
        "--storage",
        &args.storage,
        "--max-connections",
        &limit,
        "--max-connections-per-address",
        &limit,
        "--max-sockets-per-user",
        "16",
        // The load, not the limits, is measured: posts and requests per socket well above
        // what any sender here does.
        "--rt-messages-per-second",
        "1000",
        "--msg-posts-per-second",
        "1000",
    ] {
        flags.push(f.to_owned());
    }
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let dure = Dure::start_on(&data, &format!("127.0.0.1:{port}"), &flags).await?;
    eprintln!(
        "dure-msg-bench: dure pid {} ({} store)",
        dure.pid().unwrap_or(0),
        args.storage
    );
    Ok(Server {
        dure,
        base,
        data,
        _dir: dir,
    })
}

/// Warnings and errors the server logged (count, and the first few distinct ones).
fn server_complaints(dure: &Dure) -> (usize, Vec<String>) {
    let logs = dure.logs();
    let bad: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .collect();
    let mut first: Vec<String> = Vec::new();
    for l in &bad {
        // Without the timestamp, so repeats collapse.
        let s: String = l
            .split_once(' ')
            .map_or(*l, |(_, rest)| rest)
            .chars()
            .take(300)
            .collect();
        if !first.contains(&s) && first.len() < 5 {
            first.push(s);
        }
    }
    (bad.len(), first)
}

fn report_complaints(name: &str, dure: &Dure) -> Value {
    let (n, first) = server_complaints(dure);
    if n > 0 {
        println!("  {name}: the server logged {n} warnings/errors, e.g.:");
        for l in &first {
            println!("    {l}");
        }
    }
    json!({"count": n, "first": first})
}

struct Relay {
    child: tokio::process::Child,
    port: u16,
}

async fn start_relay() -> Res<Relay> {
    let port = free_port()?;
    let child = tokio::process::Command::new(sibling("ws-relay")?)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .kill_on_drop(true)
        .stderr(std::process::Stdio::null())
        .spawn()?;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(Relay { child, port })
}

impl Relay {
    fn pid(&self) -> Option<u32> {
        self.child.id()
    }
}

/// Signed-in sockets of load accounts `users` (after hello), in that order.
async fn connect_dure(
    args: &Args,
    base_url: &str,
    tokens: &[String],
    users: std::ops::Range<usize>,
    base: Instant,
    counters: &Arc<Counters>,
) -> Res<Vec<Dev>> {
    let t0 = Instant::now();
    let n = users.len();
    let mut got: Vec<(usize, Dev)> = futures_util::stream::iter(users.map(|u| {
        let counters = counters.clone();
        async move {
            let c = RtClient::connect(base_url, &Auth::Bearer(tokens[u].clone())).await?;
            Ok::<_, BoxError>((u, spawn_dev(u, c.into_split(), base, counters, true)))
        }
    }))
    .buffer_unordered(args.connect_concurrency)
    .collect::<Vec<_>>()
    .await
    .into_iter()
    .collect::<Res<_>>()?;
    got.sort_by_key(|(u, _)| *u);
    println!(
        "  {n} signed-in sockets open in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    Ok(got.into_iter().map(|(_, d)| d).collect())
}

/// `n` sockets to the relay; socket `i` joins room `room(i)` and is numbered `i`.
async fn connect_relay(
    args: &Args,
    port: u16,
    n: usize,
    room: impl Fn(usize) -> String,
    base: Instant,
    counters: &Arc<Counters>,
) -> Res<Vec<Dev>> {
    let mut got: Vec<(usize, Dev)> = futures_util::stream::iter((0..n).map(|i| {
        let url = format!("ws://127.0.0.1:{port}/ws/doc/{}", room(i));
        let counters = counters.clone();
        async move {
            let (ws, _) = tokio_tungstenite::connect_async(url).await?;
            Ok::<_, BoxError>((i, spawn_dev(i, ws.split(), base, counters, false)))
        }
    }))
    .buffer_unordered(args.connect_concurrency)
    .collect::<Vec<_>>()
    .await
    .into_iter()
    .collect::<Res<_>>()?;
    got.sort_by_key(|(i, _)| *i);
    Ok(got.into_iter().map(|(_, d)| d).collect())
}

// ---- frames -------------------------------------------------------------------------------

fn client_ref(t: u64, sender: usize) -> String {
    format!("{t:012}.{sender}")
}

/// A `msg.send` with id `s{t}-{k}` and client_ref `{t}.{sender}`.
fn msg_send(conv: &str, t: u64, k: u64, sender: usize) -> Message {
    let v = json!({"v": 1, "type": "msg.send", "id": format!("s{t}-{k}"),
        "data": {"conversation": conv, "text": TEXT, "client_ref": client_ref(t, sender)}});
    Message::Text(v.to_string().into())
}

/// A captured `msg.new` event, split around its client_ref, so the relay carries frames of
/// exactly that size.
#[derive(Clone)]
struct Template {
    head: String,
    tail: String,
}

impl Template {
    fn new(frame: &str) -> Res<Template> {
        let key = "\"client_ref\":\"";
        let start = frame.find(key).ok_or("no client_ref in msg.new")? + key.len();
        let len = frame[start..].find('"').ok_or("unterminated client_ref")?;
        Ok(Template {
            head: frame[..start].to_owned(),
            tail: frame[start + len..].to_owned(),
        })
    }

    fn frame(&self, t: u64, sender: usize) -> Message {
        let s = format!("{}{}{}", self.head, client_ref(t, sender), self.tail);
        Message::Binary(s.into_bytes().into())
    }
}

/// Sends one message from a member and returns the `msg.new` frame another member got.
async fn capture_template(from: &Dev, from_idx: usize, to: &Dev, conv: &str) -> Res<Template> {
    let cap = to.capture();
    // Settle whatever creating the conversation still delivers.
    tokio::time::sleep(Duration::from_millis(500)).await;
    from.request(
        "msg.send",
        json!({"conversation": conv, "text": TEXT, "client_ref": client_ref(0, from_idx)}),
    )
    .await?;
    let frame = tokio::time::timeout(Duration::from_secs(30), cap)
        .await
        .map_err(|_| "no msg.new for the template")??;
    Template::new(&frame)
}

// ---- measured windows ---------------------------------------------------------------------

/// One measured window: what was sent, what arrived, and the CPU it took.
struct Window {
    sent: u64,
    expected: u64,
    got: Local,
    complete: bool,
    /// % of one core over the window and the drain.
    server_cpu: Option<f64>,
    /// CPU seconds the server used over the window and the drain.
    server_cpu_s: Option<f64>,
    load_cpu: Option<f64>,
    wall: f64,
}

impl Window {
    fn json(&mut self) -> Value {
        json!({
            "sent": self.sent, "expected_deliveries": self.expected,
            "delivered": self.got.delivered, "echo": self.got.echo, "acked": self.got.acked,
            "errors": self.got.errors, "complete": self.complete,
            "delivery_ms": self.got.delivery.summary(), "ack_ms": self.got.ack.summary(),
            "server_cpu_pct": self.server_cpu, "load_cpu_pct": self.load_cpu,
            "deliveries_per_s": self.got.delivered as f64 / self.wall,
            "deliveries_in_window_per_s": self.got.in_window as f64 / self.wall,
            "server_cpu_s": self.server_cpu_s,
            "server_cpu_us_per_delivery": self.cpu_per_delivery(),
            "spread_ms": self.got.spread().summary(),
            "window_s": self.wall,
        })
    }

    /// Server CPU per delivery to another member, in µs.
    fn cpu_per_delivery(&self) -> Option<f64> {
        self.server_cpu_s
            .map(|s| s * 1e6 / self.got.delivered.max(1) as f64)
    }
}

/// A sender: which socket, and when it first sends within a period.
struct Sender {
    dev: Dev,
    offset: Duration,
    period: Duration,
    /// Builds the frame for time `t`, message `k`.
    frame: Arc<dyn Fn(u64, u64) -> Message + Send + Sync>,
}

/// Runs `senders` for `seconds`, then waits for `per_message` deliveries of each message sent
/// (and an answer to each, when `answers`); measures the server's CPU over the window and the
/// drain.
#[allow(clippy::too_many_arguments)]
async fn window(
    base: Instant,
    devs: &[Dev],
    senders: Vec<Sender>,
    seconds: u64,
    per_message: u64,
    answers: bool,
    counters: &Counters,
    server_pid: Option<u32>,
) -> Window {
    let _ = flush_all(devs).await;
    counters.reset();
    counters
        .window_end
        .store(since(base) + seconds * 1_000_000, Ordering::Relaxed);
    let cpu = CpuWindow::start(server_pid);
    let me = CpuWindow::start_self();
    let t0 = Instant::now();
    let cpu_t0 = Instant::now();
    let until = t0 + Duration::from_secs(seconds);
    let sent = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for s in senders {
        let sent = sent.clone();
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(s.offset).await;
            let mut tick = tokio::time::interval(s.period);
            let mut k = 0u64;
            let mut last = 0u64;
            loop {
                let deadline = tokio::time::Instant::from_std(until);
                if tokio::time::timeout_at(deadline, tick.tick())
                    .await
                    .is_err()
                {
                    break;
                }
                k += 1;
                // Strictly rising, so every message of a sender has its own send time even
                // when late ticks fire back to back.
                let t = since(base).max(last + 1);
                last = t;
                s.dev.send((s.frame)(t, k));
                sent.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let wall = t0.elapsed().as_secs_f64();
    let sent = sent.load(Ordering::Relaxed);
    let expected = sent * per_message;
    let complete = drain(counters, expected, if answers { sent } else { 0 }).await;
    let server_cpu = cpu.and_then(|c| c.percent());
    let server_cpu_s = server_cpu.map(|p| p / 100.0 * cpu_t0.elapsed().as_secs_f64());
    let load_cpu = me.and_then(|c| c.percent());
    let got = flush_all(devs).await;
    Window {
        sent,
        expected,
        got,
        complete,
        server_cpu,
        server_cpu_s,
        load_cpu,
        wall,
    }
}

fn ms(s: &Value, k: &str) -> f64 {
    s[k].as_f64().unwrap_or(f64::NAN)
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { f64::NAN }
}

fn line(name: &str, w: &mut Window) -> (Value, Value) {
    let d = w.got.delivery.summary();
    let a = w.got.ack.summary();
    let errors = if w.got.errors.is_empty() {
        String::new()
    } else {
        format!(" | errors {:?}", w.got.errors)
    };
    println!(
        "  {name}: delivery {} | ack {} | delivered {}/{}{}, {:.0}/s within the window | server CPU {:.1}% ({:.1} µs per delivery) | load generator CPU {:.1}%{errors}",
        fmt_summary(&d),
        if w.got.acked > 0 {
            fmt_summary(&a)
        } else {
            "-".to_owned()
        },
        w.got.delivered,
        w.expected,
        if w.complete { "" } else { " (incomplete)" },
        w.got.in_window as f64 / w.wall,
        w.server_cpu.unwrap_or(f64::NAN),
        w.cpu_per_delivery().unwrap_or(f64::NAN),
        w.load_cpu.unwrap_or(f64::NAN),
    );
    (d, a)
}

// ---- scenarios ----------------------------------------------------------------------------

async fn fanout(args: &Args, idp: &TestIdp, tokens: &[String], base: Instant) -> Res<Value> {
    let m = args.members;
    println!(
        "fanout: 1 group conversation, {m} members (one socket each), one sender, {} s per rate",
        args.seconds
    );
    let counters = Arc::new(Counters::default());
    let server = start_dure(idp, args, m).await?;
    let pid = server.dure.pid();
    let devs = connect_dure(args, &server.base, tokens, 0..m, base, &counters).await?;
    let t0 = Instant::now();
    let members: Vec<String> = (1..m).map(load_login).collect();
    let created = devs[0]
        .request(
            "conv.create",
            json!({"kind": "group", "title": "Fan-out", "members": members}),
        )
        .await?;
    let conv = created["conversation"]["id"]
        .as_str()
        .ok_or("no conversation id")?
        .to_owned();
    println!(
        "  conv.create with {m} members: {:.2} s",
        t0.elapsed().as_secs_f64()
    );
    let template = capture_template(&devs[0], 0, &devs[m - 1], &conv).await?;
    let rss = pid.and_then(rss_kib).unwrap_or(0);
    let relay = start_relay().await?;
    let rdevs = connect_relay(args, relay.port, m, |_| "fan".to_owned(), base, &counters).await?;
    let mut out = Vec::new();
    for &rate in &args.rates {
        let period = Duration::from_secs_f64(1.0 / rate);
        println!("  rate {rate} messages/s:");
        let c = conv.clone();
        let sender = Sender {
            dev: devs[0].clone(),
            offset: Duration::ZERO,
            period,
            frame: Arc::new(move |t, k| msg_send(&c, t, k, 0)),
        };
        let mut d = window(
            base,
            &devs,
            vec![sender],
            args.seconds,
            (m - 1) as u64,
            true,
            &counters,
            pid,
        )
        .await;
        let tpl = template.clone();
        let sender = Sender {
            dev: rdevs[0].clone(),
            offset: Duration::ZERO,
            period,
            frame: Arc::new(move |t, _| tpl.frame(t, 0)),
        };
        let mut r = window(
            base,
            &rdevs,
            vec![sender],
            args.seconds,
            (m - 1) as u64,
            false,
            &counters,
            relay.pid(),
        )
        .await;
        let (rd, _) = line("relay", &mut r);
        let (dd, _) = line("dure ", &mut d);
        let (rs, ds) = (r.got.spread().summary(), d.got.spread().summary());
        println!(
            "  first to last member, per message: relay {} | dure {}",
            fmt_summary(&rs),
            fmt_summary(&ds)
        );
        println!(
            "  dure / relay: delivery p50 {:.2}x, p99 {:.2}x, max {:.2}x; first-to-last p50 {:.2}x; server CPU per delivery {:.2}x",
            ratio(ms(&dd, "p50"), ms(&rd, "p50")),
            ratio(ms(&dd, "p99"), ms(&rd, "p99")),
            ratio(ms(&dd, "max"), ms(&rd, "max")),
            ratio(ms(&ds, "p50"), ms(&rs, "p50")),
            ratio(
                d.cpu_per_delivery().unwrap_or(f64::NAN),
                r.cpu_per_delivery().unwrap_or(f64::NAN)
            ),
        );
        out.push(json!({"rate": rate, "dure": d.json(), "relay": r.json()}));
    }
    let complaints = report_complaints("fanout", &server.dure);
    drop(devs);
    drop(rdevs);
    Ok(
        json!({"scenario": "msg-fanout", "storage": args.storage, "members": m,
        "frame_bytes": template.head.len() + template.tail.len() + client_ref(0, 0).len(),
        "sample_frame": format!("{}{}{}", template.head, client_ref(0, 0), template.tail),
        "dure_rss_kib_connected": rss, "runs": out, "server_log": complaints}),
    )
}

async fn many(
    args: &Args,
    idp: &TestIdp,
    tokens: &[String],
    base: Instant,
    convs: usize,
) -> Res<Value> {
    let users = convs * 2;
    println!(
        "many: {convs} direct conversations x 2 members ({users} people), {} message(s)/s in each, {} s",
        args.conv_rate, args.seconds
    );
    let counters = Arc::new(Counters::default());
    let server = start_dure(idp, args, users).await?;
    let pid = server.dure.pid();
    let devs = connect_dure(args, &server.base, tokens, 0..users, base, &counters).await?;
    let t0 = Instant::now();
    let ids: Vec<String> = futures_util::stream::iter((0..convs).map(|i| {
        let dev = devs[2 * i].clone();
        async move {
            let v = dev
                .request(
                    "conv.create",
                    json!({"kind": "direct", "user": load_login(2 * i + 1)}),
                )
                .await?;
            Ok::<_, BoxError>(
                v["conversation"]["id"]
                    .as_str()
                    .ok_or("no conversation id")?
                    .to_owned(),
            )
        }
    }))
    .buffered(16)
    .collect::<Vec<_>>()
    .await
    .into_iter()
    .collect::<Res<_>>()?;
    println!(
        "  {convs} conv.create (direct): {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    let template = capture_template(&devs[0], 0, &devs[1], &ids[0]).await?;
    let rss = pid.and_then(rss_kib).unwrap_or(0);
    let convs_dir = server.data.join("objects/conversations");
    let fs = args.storage == "fs";
    let logs_before = count_logs(&convs_dir);
    // Each conversation: one message per period, its two members in turn, so each person
    // posts every second period; conversations spread evenly over the period.
    let period = Duration::from_secs_f64(1.0 / args.conv_rate);
    let senders = |relay_devs: Option<(&[Dev], &Template)>| -> Vec<Sender> {
        let mut out = Vec::new();
        for (i, conv) in ids.iter().enumerate() {
            for side in 0..2 {
                let idx = 2 * i + side;
                let offset = period.mul_f64(i as f64 / convs as f64) + period * side as u32;
                let (dev, frame): (Dev, Arc<dyn Fn(u64, u64) -> Message + Send + Sync>) =
                    match relay_devs {
                        None => {
                            let c = conv.clone();
                            (
                                devs[idx].clone(),
                                Arc::new(move |t, k| msg_send(&c, t, k, idx)),
                            )
                        }
                        Some((r, tpl)) => {
                            let tpl = tpl.clone();
                            (r[idx].clone(), Arc::new(move |t, _| tpl.frame(t, idx)))
                        }
                    };
                out.push(Sender {
                    dev,
                    offset,
                    period: period * 2,
                    frame,
                });
            }
        }
        out
    };
    let mut d = window(
        base,
        &devs,
        senders(None),
        args.seconds,
        1,
        true,
        &counters,
        pid,
    )
    .await;
    let objects = fs.then(|| count_logs(&convs_dir).saturating_sub(logs_before));
    let relay = start_relay().await?;
    let rdevs = connect_relay(
        args,
        relay.port,
        users,
        |i| format!("c{}", i / 2),
        base,
        &counters,
    )
    .await?;
    let mut r = window(
        base,
        &rdevs,
        senders(Some((&rdevs, &template))),
        args.seconds,
        1,
        false,
        &counters,
        relay.pid(),
    )
    .await;
    let (rd, _) = line("relay", &mut r);
    let (dd, _) = line("dure ", &mut d);
    println!(
        "  dure / relay: delivery p50 {:.2}x, p99 {:.2}x; server CPU {:.2}x (per message {:.2}x)",
        ratio(ms(&dd, "p50"), ms(&rd, "p50")),
        ratio(ms(&dd, "p99"), ms(&rd, "p99")),
        ratio(
            d.server_cpu.unwrap_or(f64::NAN),
            r.server_cpu.unwrap_or(f64::NAN)
        ),
        ratio(
            d.cpu_per_delivery().unwrap_or(f64::NAN),
            r.cpu_per_delivery().unwrap_or(f64::NAN)
        ),
    );
    if let Some(o) = objects {
        println!(
            "  dure log objects written: {o} for {} messages ({:.0} writes/s, {:.2} messages per write)",
            d.got.acked,
            o as f64 / d.wall,
            d.got.acked as f64 / o.max(1) as f64
        );
    }
    let complaints = report_complaints("many", &server.dure);
    Ok(
        json!({"scenario": "msg-many", "storage": args.storage, "conversations": convs,
        "conv_rate": args.conv_rate, "dure_rss_kib_connected": rss, "log_objects": objects,
        "dure": d.json(), "relay": r.json(), "server_log": complaints}),
    )
}

/// Files under `dir` (0 when it does not exist).
fn count_files(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|it| {
            it.filter_map(Result::ok)
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .count() as u64
        })
        .unwrap_or(0)
}

/// Log objects of every conversation under `convs` (`…/conversations/{id}/log/*`).
fn count_logs(convs: &Path) -> u64 {
    std::fs::read_dir(convs)
        .map(|it| {
            it.filter_map(Result::ok)
                .map(|e| count_files(&e.path().join("log")))
                .sum()
        })
        .unwrap_or(0)
}

async fn writes(args: &Args, idp: &TestIdp, tokens: &[String], base: Instant) -> Res<Value> {
    let w = args.writers.max(1);
    println!(
        "writes: one conversation, {w} members posting, {} s per rate, storage {}",
        args.seconds, args.storage
    );
    let counters = Arc::new(Counters::default());
    let server = start_dure(idp, args, w).await?;
    let pid = server.dure.pid();
    let devs = connect_dure(args, &server.base, tokens, 0..w, base, &counters).await?;
    let members: Vec<String> = (1..w).map(load_login).collect();
    let mut out = Vec::new();
    for &rate in &args.busy_rates {
        let created = devs[0]
            .request(
                "conv.create",
                json!({"kind": "group", "title": format!("busy {rate}"), "members": members}),
            )
            .await?;
        let conv = created["conversation"]["id"]
            .as_str()
            .ok_or("no conversation id")?
            .to_owned();
        // Let the creation entry be written before counting.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let log_dir = server
            .data
            .join("objects/conversations")
            .join(&conv)
            .join("log");
        let fs = args.storage == "fs";
        let before = count_files(&log_dir);
        let period = Duration::from_secs_f64(w as f64 / rate);
        let senders = (0..w)
            .map(|i| {
                let c = conv.clone();
                Sender {
                    dev: devs[i].clone(),
                    offset: period.mul_f64(i as f64 / w as f64),
                    period,
                    frame: Arc::new(move |t, k| msg_send(&c, t, k, i)),
                }
            })
            .collect();
        let mut d = window(
            base,
            &devs,
            senders,
            args.seconds,
            (w - 1) as u64,
            true,
            &counters,
            pid,
        )
        .await;
        let objects = fs.then(|| count_files(&log_dir).saturating_sub(before));
        let a = d.got.ack.summary();
        let acked = d.got.acked;
        let per_write = objects.map(|o| acked as f64 / o.max(1) as f64);
        let writes_per_s = objects.map(|o| o as f64 / d.wall);
        println!(
            "  {rate} messages/s ({} acked, {:.0}/s): ack {} | log objects written {} ({}/s) | messages per write {} | server CPU {:.1}%{}",
            acked,
            acked as f64 / d.wall,
            fmt_summary(&a),
            objects.map_or("n/a (memory)".to_owned(), |o| o.to_string()),
            writes_per_s.map_or("-".to_owned(), |v| format!("{v:.1}")),
            per_write.map_or("-".to_owned(), |v| format!("{v:.2}")),
            d.server_cpu.unwrap_or(f64::NAN),
            if d.got.errors.is_empty() {
                String::new()
            } else {
                format!(" | errors {:?}", d.got.errors)
            }
        );
        out.push(
            json!({"rate": rate, "log_objects": objects, "writes_per_s": writes_per_s,
            "messages_per_write": per_write, "dure": d.json()}),
        );
    }
    let complaints = report_complaints("writes", &server.dure);
    Ok(
        json!({"scenario": "msg-writes", "storage": args.storage, "writers": w, "runs": out,
        "server_log": complaints}),
    )
}

// ---- main ---------------------------------------------------------------------------------

async fn mint(args: &Args, idp: &TestIdp, n: usize) -> Res<Vec<String>> {
    let t0 = Instant::now();
    let done = AtomicU64::new(0);
    let mut got: Vec<(usize, String)> = futures_util::stream::iter((0..n).map(|i| {
        let done = &done;
        async move {
            let t = idp.access_token(&load_login(i)).await?;
            let k = done.fetch_add(1, Ordering::Relaxed) + 1;
            if k.is_multiple_of(500) {
                eprintln!(
                    "dure-msg-bench: {k}/{n} tokens ({:.0}/s)",
                    k as f64 / t0.elapsed().as_secs_f64()
                );
            }
            Ok::<_, BoxError>((i, t.access_token))
        }
    }))
    .buffer_unordered(args.mint_concurrency.max(1))
    .collect::<Vec<_>>()
    .await
    .into_iter()
    .collect::<Res<_>>()?;
    got.sort_by_key(|(i, _)| *i);
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "{n} access tokens minted in {secs:.1} s ({:.0}/s)",
        n as f64 / secs
    );
    Ok(got.into_iter().map(|(_, t)| t).collect())
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    let base = Instant::now();
    let mut people = 0;
    if args.runs("fanout") {
        people = people.max(args.members);
    }
    if args.runs("many") {
        people = people.max(2 * args.conversations.iter().copied().max().unwrap_or(0));
    }
    if args.runs("writes") {
        people = people.max(args.writers);
    }
    if people == 0 {
        return Err("nothing to run: --scenario fanout, many, writes or all".into());
    }
    if people > 100_000 {
        return Err("at most 100,000 load accounts".into());
    }
    // Our sockets to Dure and to the relay are open at once in a run, and both servers
    // inherit this limit.
    let want = (people * 2 + 1024) as u64 * 2;
    let got = raise_nofile(want);
    if got < want {
        eprintln!("dure-msg-bench: open-files limit {got} is below {want}; the run may fail");
    }
    // Tokens outlive the whole run: minted once, used by every scenario.
    let idp = TestIdp::start(IdpOptions {
        access_ttl: Duration::from_secs(6 * 3600),
        id_ttl: Duration::from_secs(6 * 3600),
        ..IdpOptions::default()
    })
    .await?;
    let tokens = mint(&args, &idp, people).await?;
    let mut results = Vec::new();
    if args.runs("fanout") {
        results.push(fanout(&args, &idp, &tokens, base).await?);
    }
    if args.runs("many") {
        for &c in &args.conversations {
            results.push(many(&args, &idp, &tokens, base, c).await?);
        }
    }
    if args.runs("writes") {
        results.push(writes(&args, &idp, &tokens, base).await?);
    }
    for r in results {
        println!("RESULT {r}");
    }
    Ok(())
}
