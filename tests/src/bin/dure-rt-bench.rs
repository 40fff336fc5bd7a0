//! `dure-rt-bench`: meeting signalling under load, against the relay floor in the same run.
//!
//! Starts `ws-relay` (the bare WebSocket broadcast relay the document benchmarks use as their
//! floor) and then `dure` in local mode with TURN configured, both from the build directory,
//! on free loopback ports, and runs the same shape against each: MEETINGS rooms of 4
//! participants, each sending, RATE times a second, one ICE candidate to each of its 3 peers
//! (through the relay: one frame broadcast to the 3), and a chat message every 5 s. It prints
//! delivery latency percentiles, server CPU, the time from a host's `meet.admit` to the
//! guest's TURN credentials, and server memory per idle participant.
//!
//! `dure-rt-bench [--meetings 500] [--rate 2] [--seconds 20] [--idle 2000] [--storage fs]`

#[path = "dure_load/common.rs"]
#[allow(dead_code)]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use common::{CpuWindow, Samples, fmt_summary, raise_nofile, rss_kib};
use dure_tests::rt_client::{Auth, RtClient};
use dure_tests::server::{Dure, temp_dir};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Parser, Debug)]
#[command(about = "Meeting signalling benchmark against the relay floor")]
struct Args {
    #[arg(long, default_value_t = 500)]
    meetings: usize,
    /// Candidates per second each participant sends to each peer.
    #[arg(long, default_value_t = 2.0)]
    rate: f64,
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Idle participants added at the end, for memory per participant.
    #[arg(long, default_value_t = 2000)]
    idle: usize,
    /// Dure's storage backend (`fs`, the default deployment, or `memory` to see what the
    /// durable chat writes cost).
    #[arg(long, default_value = "fs")]
    storage: String,
}

/// A payload the size of a real host candidate.
fn candidate(t: u64) -> Value {
    json!({"candidate": "candidate:1467250027 1 udp 2122260223 192.168.1.20 46243 typ host generation 0 ufrag Wm9u network-id 1",
           "sdpMid": "0", "sdpMLineIndex": 0, "t": t})
}

fn since(base: Instant) -> u64 {
    base.elapsed().as_micros() as u64
}

fn sibling(name: &str) -> Result<std::path::PathBuf, BoxError> {
    let exe = std::env::current_exe()?;
    let dir = exe.parent().ok_or("no exe dir")?;
    let p = dir.join(name);
    if p.is_file() {
        Ok(p)
    } else {
        Err(format!("{} not built next to this binary", p.display()).into())
    }
}

fn free_port() -> Result<u16, BoxError> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

struct Run {
    latency: Samples,
    chat: Samples,
    cpu: Option<f64>,
    delivered: u64,
}

/// The floor: the same traffic through ws-relay (binary frames, broadcast per room).
async fn relay_floor(args: &Args, base: Instant) -> Result<(Run, f64), BoxError> {
    let port = free_port()?;
    let mut child = tokio::process::Command::new(sibling("ws-relay")?)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .kill_on_drop(true)
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let pid = child.id().ok_or("no relay pid")?;
    let url = |room: usize| format!("ws://127.0.0.1:{port}/ws/doc/r{room}");
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let samples = Arc::new(Mutex::new((Samples::default(), Samples::default())));
    let delivered = Arc::new(AtomicU64::new(0));
    let mut sinks = Vec::new();
    let mut readers = Vec::new();
    for room in 0..args.meetings {
        for _ in 0..4 {
            let (ws, _) = tokio_tungstenite::connect_async(url(room)).await?;
            let (sink, mut stream) = ws.split();
            sinks.push(sink);
            let (samples, delivered) = (samples.clone(), delivered.clone());
            readers.push(tokio::spawn(async move {
                let mut local = (Samples::default(), Samples::default());
                while let Some(Ok(msg)) = stream.next().await {
                    if let Message::Binary(b) = msg
                        && let Ok(v) = serde_json::from_slice::<Value>(&b)
                        && let Some(t) = v["t"].as_u64()
                    {
                        let d = Duration::from_micros(since(base).saturating_sub(t));
                        if v["chat"] == true {
                            local.1.push(d);
                        } else {
                            local.0.push(d);
                        }
                        delivered.fetch_add(1, Ordering::Relaxed);
                    }
                }
                let mut s = samples.lock().await;
                s.0.extend(local.0);
                s.1.extend(local.1);
            }));
        }
    }
    let cpu = CpuWindow::start(Some(pid));
    drive(args, base, sinks, |t, chat| {
        // The same ticks as the Dure run: a candidate every tick, plus a chat line.
        let mut out = vec![candidate(t)];
        if chat {
            out.push(json!({"chat": true, "text": "a chat line of ordinary length for a meeting", "t": t}));
        }
        out.into_iter()
            .map(|v| Message::Binary(serde_json::to_vec(&v).unwrap_or_default().into()))
            .collect()
    })
    .await;
    let cpu = cpu.and_then(|c| c.percent());
    let rss_before = rss_kib(pid).unwrap_or(0);
    let mut idle = Vec::new();
    for i in 0..args.idle {
        idle.push(tokio_tungstenite::connect_async(url(args.meetings + i / 4)).await?);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let per_idle =
        (rss_kib(pid).unwrap_or(0).saturating_sub(rss_before)) as f64 / args.idle.max(1) as f64;
    drop(idle);
    let _ = child.kill().await;
    for r in readers {
        let _ = tokio::time::timeout(Duration::from_secs(5), r).await;
    }
    let s = samples.lock().await.clone();
    Ok((
        Run {
            latency: s.0,
            chat: s.1,
            cpu,
            delivered: delivered.load(Ordering::Relaxed),
        },
        per_idle,
    ))
}

type Sink = futures_util::stream::SplitSink<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    Message,
>;

/// Each sink sends `frames(t, chat)` RATE times a second for SECONDS, with a chat line every
/// 5 s, starting at staggered offsets.
async fn drive(
    args: &Args,
    base: Instant,
    sinks: Vec<Sink>,
    frames: impl Fn(u64, bool) -> Vec<Message> + Send + Sync + Clone + 'static,
) {
    let period = Duration::from_secs_f64(1.0 / args.rate);
    let until = Instant::now() + Duration::from_secs(args.seconds);
    let n = sinks.len();
    let mut tasks = Vec::new();
    for (i, mut sink) in sinks.into_iter().enumerate() {
        let frames = frames.clone();
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(period.mul_f64(i as f64 / n as f64)).await;
            let mut tick = tokio::time::interval(period);
            let mut k = 0u64;
            let every = (5.0 / period.as_secs_f64()).round().max(1.0) as u64;
            while Instant::now() < until {
                tick.tick().await;
                k += 1;
                let chat = k.is_multiple_of(every);
                for m in frames(since(base), chat) {
                    if sink.send(m).await.is_err() {
                        return;
                    }
                }
            }
            // Let the last deliveries arrive before the readers are stopped.
            tokio::time::sleep(Duration::from_secs(1)).await;
            let _ = sink.close().await;
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

/// One participant of the Dure run: its socket, split, and the peers' ids.
async fn dure_run(args: &Args, base: Instant) -> Result<(Run, f64, Samples), BoxError> {
    let dir = temp_dir()?;
    let total = (args.meetings + args.idle) * 4 + 1000;
    let limit = total.to_string();
    let dure = Dure::start(
        &dir.path().join("data"),
        &[
            "--max-connections",
            &limit,
            "--max-connections-per-address",
            &limit,
            "--max-sockets-per-user",
            &limit,
            "--max-meetings-per-user",
            &limit,
            "--rt-messages-per-second",
            "200",
            "--rt-signals-per-second",
            "200",
            "--turn-urls",
            "turn:127.0.0.1:3478",
            "--turn-secret",
            "bench-secret",
            "--storage",
            &args.storage,
        ],
    )
    .await?;
    let pid = dure.pid().ok_or("no dure pid")?;
    let http = reqwest::Client::new();
    let origin = dure.http_url("");
    let origin = origin.trim_end_matches('/').to_owned();
    let api = |path: &str| format!("{origin}{path}");
    let mut admit = Samples::default();
    let mut sinks = Vec::new();
    let mut readers = Vec::new();
    let samples = Arc::new(Mutex::new((Samples::default(), Samples::default())));
    let delivered = Arc::new(AtomicU64::new(0));
    let mut peers_of: Vec<Vec<String>> = Vec::new();
    for m in 0..args.meetings {
        let v: Value = http
            .post(api("/api/meetings"))
            .header("Origin", &origin)
            .json(&json!({"title": format!("bench {m}"), "access": "guests"}))
            .send()
            .await?
            .json()
            .await?;
        let slug = v["slug"]
            .as_str()
            .ok_or_else(|| format!("create: {v}"))?
            .to_owned();
        let inv: Value = http
            .post(api(&format!("/api/meetings/{slug}/invites")))
            .header("Origin", &origin)
            .json(&json!({}))
            .send()
            .await?
            .json()
            .await?;
        let secret = inv["secret"]
            .as_str()
            .ok_or_else(|| format!("invite: {inv}"))?
            .to_owned();
        let mut clients = Vec::new();
        let mut ids = Vec::new();
        for _ in 0..3 {
            let mut c = RtClient::connect(&origin, &Auth::None).await?;
            let j = c.ok("meet.join", json!({"slug": slug})).await?;
            ids.push(
                j["participant"]["id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            );
            clients.push(c);
        }
        let mut guest = RtClient::connect(&origin, &Auth::None).await?;
        let j = guest
            .ok(
                "meet.join",
                json!({"slug": slug, "invite": secret, "name": "Guest"}),
            )
            .await?;
        let gid = j["participant"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        clients[0].event("meet.lobby").await?;
        let t0 = Instant::now();
        clients[0]
            .ok("meet.admit", json!({"participant": gid}))
            .await?;
        guest.event("meet.turn").await?;
        admit.push(t0.elapsed());
        ids.push(gid);
        clients.push(guest);
        for (i, c) in clients.into_iter().enumerate() {
            peers_of.push(
                ids.iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .map(|(_, id)| id.clone())
                    .collect(),
            );
            let (sink, stream) = c.into_split();
            sinks.push(sink);
            let (samples, delivered) = (samples.clone(), delivered.clone());
            readers.push(tokio::spawn(read_events(stream, base, samples, delivered)));
        }
    }
    let cpu = CpuWindow::start(Some(pid));
    // Each sink gets its own peers: drive() hands frames by index, so wrap per sink.
    let peers = Arc::new(peers_of);
    let counter = Arc::new(AtomicU64::new(0));
    let mut wrapped = Vec::new();
    for (i, s) in sinks.into_iter().enumerate() {
        wrapped.push((i, s));
    }
    drive_dure(args, base, wrapped, peers, counter).await;
    let cpu = cpu.and_then(|c| c.percent());
    let rss_before = rss_kib(pid).unwrap_or(0);
    let mut idle = Vec::new();
    let mut slug = String::new();
    for i in 0..args.idle {
        if i % 4 == 0 {
            let v: Value = http
                .post(api("/api/meetings"))
                .header("Origin", &origin)
                .json(&json!({"title": "idle"}))
                .send()
                .await?
                .json()
                .await?;
            slug = v["slug"].as_str().unwrap_or_default().to_owned();
        }
        let mut c = RtClient::connect(&origin, &Auth::None).await?;
        c.ok("meet.join", json!({"slug": slug})).await?;
        idle.push(c);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let per_idle =
        (rss_kib(pid).unwrap_or(0).saturating_sub(rss_before)) as f64 / args.idle.max(1) as f64;
    drop(idle);
    drop(dure);
    for r in readers {
        let _ = tokio::time::timeout(Duration::from_secs(5), r).await;
    }
    let s = samples.lock().await.clone();
    Ok((
        Run {
            latency: s.0,
            chat: s.1,
            cpu,
            delivered: delivered.load(Ordering::Relaxed),
        },
        per_idle,
        admit,
    ))
}

async fn read_events(
    mut stream: dure_tests::rt_client::RtStream,
    base: Instant,
    samples: Arc<Mutex<(Samples, Samples)>>,
    delivered: Arc<AtomicU64>,
) {
    let mut local = (Samples::default(), Samples::default());
    while let Some(Ok(msg)) = stream.next().await {
        let Message::Text(t) = msg else { continue };
        let Ok(v) = serde_json::from_str::<Value>(t.as_str()) else {
            continue;
        };
        let (sent, chat) = match v["type"].as_str() {
            Some("meet.signal") => (v["data"]["payload"]["t"].as_u64(), false),
            Some("meet.chat") => (
                v["data"]["text"]
                    .as_str()
                    .and_then(|s| s.rsplit(' ').next())
                    .and_then(|s| s.parse().ok()),
                true,
            ),
            _ => (None, false),
        };
        if let Some(sent) = sent {
            let d = Duration::from_micros(since(base).saturating_sub(sent));
            if chat {
                local.1.push(d)
            } else {
                local.0.push(d)
            }
            delivered.fetch_add(1, Ordering::Relaxed);
        }
    }
    let mut s = samples.lock().await;
    s.0.extend(local.0);
    s.1.extend(local.1);
}

async fn drive_dure(
    args: &Args,
    base: Instant,
    sinks: Vec<(usize, Sink)>,
    peers: Arc<Vec<Vec<String>>>,
    ids: Arc<AtomicU64>,
) {
    let period = Duration::from_secs_f64(1.0 / args.rate);
    let until = Instant::now() + Duration::from_secs(args.seconds);
    let n = sinks.len();
    let mut tasks = Vec::new();
    for (i, mut sink) in sinks {
        let peers = peers.clone();
        let ids = ids.clone();
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(period.mul_f64(i as f64 / n as f64)).await;
            let mut tick = tokio::time::interval(period);
            let mut k = 0u64;
            let every = (5.0 / period.as_secs_f64()).round().max(1.0) as u64;
            while Instant::now() < until {
                tick.tick().await;
                k += 1;
                let mut frames = Vec::new();
                for to in &peers[i] {
                    let id = ids.fetch_add(1, Ordering::Relaxed);
                    frames.push(json!({"v": 1, "id": id.to_string(), "type": "meet.signal",
                        "data": {"to": to, "kind": "candidate", "payload": candidate(since(base))}}));
                }
                if k.is_multiple_of(every) {
                    let id = ids.fetch_add(1, Ordering::Relaxed);
                    frames.push(json!({"v": 1, "id": id.to_string(), "type": "meet.chat.send",
                        "data": {"text": format!("a chat line of ordinary length for a meeting {}", since(base))}}));
                }
                for f in frames {
                    if sink.send(Message::Text(f.to_string().into())).await.is_err() {
                        return;
                    }
                }
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            let _ = sink.close().await;
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

fn row(name: &str, r: &mut Run) -> (Value, Value) {
    let l = r.latency.summary();
    let c = r.chat.summary();
    println!(
        "{name}: candidates {} | chat {} | server CPU {:.1}% | delivered {}",
        fmt_summary(&l),
        fmt_summary(&c),
        r.cpu.unwrap_or(f64::NAN),
        r.delivered
    );
    (l, c)
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    let want = ((args.meetings + args.idle) * 4 * 2 + 1024) as u64;
    let got = raise_nofile(want);
    if got < want {
        eprintln!("dure-rt-bench: open-files limit {got} is below {want}; the run may fail");
    }
    let base = Instant::now();
    let (mut relay, relay_idle) = relay_floor(&args, base).await?;
    let (mut dure, dure_idle, mut admit) = dure_run(&args, base).await?;
    println!(
        "{} meetings x 4 participants, {} candidates/s to each peer, {} s",
        args.meetings, args.rate, args.seconds
    );
    let (rl, _) = row("relay", &mut relay);
    let (dl, dc) = row("dure ", &mut dure);
    let ratio = |a: &Value, b: &Value, k: &str| match (a[k].as_f64(), b[k].as_f64()) {
        (Some(a), Some(b)) if b > 0.0 => a / b,
        _ => f64::NAN,
    };
    println!(
        "dure / relay: candidate p99 {:.2}x, CPU {:.2}x",
        ratio(&dl, &rl, "p99"),
        dure.cpu.unwrap_or(f64::NAN) / relay.cpu.unwrap_or(f64::NAN)
    );
    println!(
        "admit to TURN credentials: {}",
        fmt_summary(&admit.summary())
    );
    println!(
        "memory per idle participant: dure {dure_idle:.1} KiB, relay connection {relay_idle:.1} KiB ({:.2}x)",
        dure_idle / relay_idle
    );
    println!(
        "RESULT {}",
        json!({"scenario": "rt-signalling", "relay": rl, "dure": dl, "dure_chat": dc,
               "relay_cpu": relay.cpu, "dure_cpu": dure.cpu, "admit_to_turn": admit.summary(),
               "idle_kib": {"dure": dure_idle, "relay": relay_idle}})
    );
    Ok(())
}
