//! `hot-room` and `many-rooms`: clients typing into shared texts at a fixed rate, measuring how
//! long each update takes to reach every other client of its room.
//!
//! Each client owns a yrs doc kept in sync by the updates it receives and types 1-3 characters
//! at a random position (sometimes replacing one) per tick, one transaction, one frame. The
//! sender records the send instant under the key (client id, clock of the first inserted item);
//! receivers decode every update, take the clock ranges it inserts per client and look the keys
//! up. The key survives a server that re-encodes or merges updates, and a relay that forwards
//! bytes unchanged.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use clap::Args;
use dure_tests::yclient::{ConnectOptions, Event, EventHook, YClient};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value, json};
use yrs::{ReadTxn, Transact};

use crate::common::{
    CpuWindow, Res, Samples, Target, bounded, fail, fmt_summary, print_result, round3, rss_kib,
};

/// Client ids are `CLIENT_ID_BASE + index`, so a receiver finds the sender's records by index.
const CLIENT_ID_BASE: u64 = 1_000_000;

#[derive(Args, Debug, Clone)]
pub struct RoomArgs {
    #[command(flatten)]
    pub target: Target,
    /// Number of rooms (documents).
    #[arg(long)]
    pub rooms: Option<usize>,
    /// Clients per room.
    #[arg(long)]
    pub clients: Option<usize>,
    /// Updates per second sent by each client.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Length of the measurement window.
    #[arg(long, default_value_t = 20)]
    pub seconds: u64,
    /// Typing before the window (not measured).
    #[arg(long, default_value_t = 3)]
    pub warmup: u64,
    /// Connect with `ack=1` and measure the time from sending an update to its save ack.
    #[arg(long)]
    pub ack: bool,
    /// Longest wait for late deliveries and acks after the window.
    #[arg(long, default_value_t = 10)]
    pub drain: u64,
    /// Seed of the typing (positions and characters).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// The shape of a room scenario once defaults are applied.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub rooms: usize,
    pub clients: usize,
    pub rate: f64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Sends of one client during the window: (clock, instant), in clock order.
type SendLog = Mutex<Vec<(u32, Instant)>>;

#[derive(Default)]
struct Received {
    /// Per sender client id: clocks below this were already counted.
    watermark: HashMap<u64, u32>,
    latency: Samples,
    delivered: u64,
}

#[derive(Default)]
struct Acks {
    /// (seq, sent at, inside the window) of frames not acked yet.
    pending: VecDeque<(u64, Instant, bool)>,
    acked: u64,
    latency: Samples,
}

impl Acks {
    fn ack(&mut self, n: u64, at: Instant) {
        self.acked = self.acked.max(n);
        while let Some(&(seq, sent, measured)) = self.pending.front() {
            if seq > n {
                break;
            }
            if measured {
                self.latency.push(at.saturating_duration_since(sent));
            }
            self.pending.pop_front();
        }
    }

    fn sent(&mut self, seq: u64, at: Instant, measured: bool) {
        if self.acked >= seq {
            // The ack overtook our bookkeeping; count it as arriving now.
            if measured {
                self.latency.push(at.elapsed());
            }
        } else {
            self.pending.push_back((seq, at, measured));
        }
    }
}

struct Shared {
    measuring: AtomicBool,
    sends: Vec<SendLog>,
    received: Vec<Mutex<Received>>,
    acks: Vec<Mutex<Acks>>,
    measured_sends: AtomicU64,
}

impl Shared {
    fn on_update(&self, me: usize, update: &yrs::Update, at: Instant) {
        let insertions = update.insertions(true);
        let mut rx = lock(&self.received[me]);
        let rx = &mut *rx;
        for (client, ranges) in insertions.iter() {
            let id = client.get();
            let Some(idx) = id.checked_sub(CLIENT_ID_BASE).map(|i| i as usize) else {
                continue;
            };
            if idx == me || idx >= self.sends.len() {
                continue;
            }
            let sends = lock(&self.sends[idx]);
            let watermark = rx.watermark.entry(id).or_insert(0);
            for range in ranges.iter() {
                let from = range.start.max(*watermark);
                if from >= range.end {
                    continue;
                }
                let first = sends.partition_point(|(clock, _)| *clock < from);
                for (_, sent) in sends[first..]
                    .iter()
                    .take_while(|(clock, _)| *clock < range.end)
                {
                    rx.latency.push(at.saturating_duration_since(*sent));
                    rx.delivered += 1;
                }
                *watermark = range.end;
            }
        }
    }

    fn delivered(&self) -> u64 {
        self.received.iter().map(|r| lock(r).delivered).sum()
    }

    fn acks_pending(&self) -> usize {
        self.acks
            .iter()
            .map(|a| lock(a).pending.iter().filter(|p| p.2).count())
            .sum()
    }
}

/// Runs the scenario and prints its figures and result line.
pub async fn run(scenario: &str, args: RoomArgs, shape: Shape) -> Res<()> {
    let target = &args.target;
    let total = shape.rooms * shape.clients;
    let prefix = target.prefix(scenario);
    let shared = Arc::new(Shared {
        measuring: AtomicBool::new(false),
        sends: (0..total).map(|_| Mutex::new(Vec::new())).collect(),
        received: (0..total).map(|_| Mutex::default()).collect(),
        acks: (0..total).map(|_| Mutex::default()).collect(),
        measured_sends: AtomicU64::new(0),
    });
    println!(
        "{scenario} against {} ({}): {} rooms x {} clients, {} updates/s each, {} s window",
        target.label, target.url, shape.rooms, shape.clients, shape.rate, args.seconds
    );

    // Connect every client; client i is in room i / clients.
    let connect_started = Instant::now();
    let connects = (0..total)
        .map(|i| {
            let shared = shared.clone();
            let url = target.doc_url(&target.doc_id(&prefix, i / shape.clients));
            let hook: EventHook = Arc::new(move |event| match event {
                Event::Update {
                    update, received, ..
                } => shared.on_update(i, update, received),
                Event::Ack { n, received } => lock(&shared.acks[i]).ack(n, received),
            });
            let opts = ConnectOptions {
                ack: args.ack,
                sync: !target.no_sync,
                client_id: Some(CLIENT_ID_BASE + i as u64),
                on_event: Some(hook),
                ..Default::default()
            };
            let sync = !target.no_sync;
            async move {
                let client = YClient::connect(&url, opts).await?;
                if sync {
                    client.wait_synced(Duration::from_secs(30)).await?;
                }
                Ok::<_, dure_tests::yclient::YError>(client)
            }
        })
        .collect();
    let clients: Vec<YClient> = bounded(64, connects)
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    let clients: Arc<Vec<YClient>> = Arc::new(clients);
    println!(
        "connected {total} clients in {:.2} s",
        connect_started.elapsed().as_secs_f64()
    );

    // Typing: every client on its own timer with a random phase.
    let start = tokio::time::Instant::now() + Duration::from_millis(200);
    let window_start = start + Duration::from_secs(args.warmup);
    let end = window_start + Duration::from_secs(args.seconds);
    let period = Duration::from_secs_f64(1.0 / shape.rate.max(0.001));
    let mut typists = Vec::with_capacity(total);
    for i in 0..total {
        let clients = clients.clone();
        let shared = shared.clone();
        let ack = args.ack;
        let mut rng = StdRng::seed_from_u64(args.seed.wrapping_mul(1_000_003) + i as u64);
        let phase = period.mul_f64(rng.random::<f64>());
        typists.push(tokio::spawn(async move {
            let mut cursor = 0;
            let mut ticker = tokio::time::interval_at(start + phase, period);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                if tokio::time::Instant::now() >= end {
                    return Ok::<(), dure_tests::yclient::YError>(());
                }
                type_once(&clients[i], i, &shared, &mut rng, &mut cursor, ack)?;
            }
        }));
    }

    tokio::time::sleep_until(window_start).await;
    shared.measuring.store(true, Ordering::SeqCst);
    let server_cpu = CpuWindow::start(target.server_pid);
    let own_cpu = CpuWindow::start_self();
    tokio::time::sleep_until(end).await;
    shared.measuring.store(false, Ordering::SeqCst);
    let server_cpu_pct = server_cpu.and_then(|w| w.percent());
    let own_cpu_pct = own_cpu.and_then(|w| w.percent());
    let server_rss = target.server_pid.and_then(rss_kib);
    let mut typing_errors = Vec::new();
    for t in typists {
        match t.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => typing_errors.push(e.to_string()),
            Err(e) => typing_errors.push(e.to_string()),
        }
    }

    // Late deliveries and acks.
    let sent = shared.measured_sends.load(Ordering::SeqCst);
    let expected = sent * (shape.clients as u64 - 1);
    let drain_until = Instant::now() + Duration::from_secs(args.drain);
    while Instant::now() < drain_until
        && (shared.delivered() < expected || (args.ack && shared.acks_pending() > 0))
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let delivered = shared.delivered();

    let mut latency = Samples::default();
    let mut ack_latency = Samples::default();
    for i in 0..total {
        latency.extend(std::mem::take(&mut lock(&shared.received[i]).latency));
        ack_latency.extend(std::mem::take(&mut lock(&shared.acks[i]).latency));
    }
    let acks_missing = shared.acks_pending();
    let latency = latency.summary();
    let ack_latency = ack_latency.summary();

    // Every room must have converged.
    let mut diverged_rooms = 0;
    for room in clients.chunks(shape.clients) {
        let first = room[0].text();
        if room.iter().skip(1).any(|c| c.text() != first) {
            diverged_rooms += 1;
        }
    }
    let client_errors: Vec<String> = clients.iter().flat_map(|c| c.errors()).collect();
    let ended = clients.iter().filter(|c| c.is_ended()).count();
    let closes: Vec<String> = clients
        .iter()
        .filter_map(|c| c.closed())
        .map(|(code, reason)| format!("{code} {reason}"))
        .collect();
    let text_len = clients.first().map_or(0, |c| c.text_len());
    let doc_blocks = clients.first().map_or(0, |c| {
        let sv = c.doc().transact().state_vector();
        sv.iter().map(|(_, clock)| u64::from(*clock)).sum::<u64>()
    });
    close_all(&clients).await;

    let lost = expected.saturating_sub(delivered);
    println!(
        "sent {sent} updates in the window; deliveries expected {expected}, received {delivered}, lost {lost}"
    );
    println!("update latency to other clients: {}", fmt_summary(&latency));
    if args.ack {
        println!(
            "send-to-ack latency: {} (unacked {acks_missing})",
            fmt_summary(&ack_latency)
        );
    }
    println!(
        "server CPU {} of one core, RSS {} KiB; load generator CPU {}",
        fmt_pct(server_cpu_pct),
        server_rss.map_or("-".into(), |v| v.to_string()),
        fmt_pct(own_cpu_pct)
    );
    println!(
        "rooms diverged: {diverged_rooms}; text length in room 0: {text_len} (items {doc_blocks}); \
         connections ended: {ended}; client errors: {}; typing errors: {}",
        client_errors.len(),
        typing_errors.len()
    );
    for e in client_errors.iter().chain(&typing_errors).take(5) {
        println!("  error: {e}");
    }
    for c in closes.iter().take(5) {
        println!("  closed by server: {c}");
    }

    let mut fields = Map::new();
    fields.insert("rooms".into(), shape.rooms.into());
    fields.insert("clients_per_room".into(), shape.clients.into());
    fields.insert("rate".into(), shape.rate.into());
    fields.insert("seconds".into(), args.seconds.into());
    fields.insert("warmup".into(), args.warmup.into());
    fields.insert("sent".into(), sent.into());
    fields.insert("expected_deliveries".into(), expected.into());
    fields.insert("delivered".into(), delivered.into());
    fields.insert("lost".into(), lost.into());
    fields.insert("latency_ms".into(), latency);
    if args.ack {
        fields.insert("ack_latency_ms".into(), ack_latency);
        fields.insert("acks_missing".into(), acks_missing.into());
    }
    fields.insert("server_cpu_pct".into(), opt_f64(server_cpu_pct));
    fields.insert("server_rss_kib".into(), json!(server_rss));
    fields.insert("loadgen_cpu_pct".into(), opt_f64(own_cpu_pct));
    fields.insert("diverged_rooms".into(), diverged_rooms.into());
    fields.insert("connections_ended".into(), ended.into());
    fields.insert(
        "errors".into(),
        (client_errors.len() + typing_errors.len()).into(),
    );
    fields.insert(
        "ok".into(),
        (lost == 0 && diverged_rooms == 0 && ended == 0).into(),
    );
    print_result(scenario, target, fields);
    if sent == 0 {
        return Err(fail("no update was sent"));
    }
    Ok(())
}

/// Where typists type: yrs finds a text index by walking the items from the start, so the
/// load generator keeps its cursors within the first units of the text to stay cheap. (The
/// server applies updates by item id, so the position does not change its work.)
const TYPING_WINDOW: u32 = 64;

/// One keystroke burst: 1-3 characters at the typist's cursor, which then moves past them;
/// sometimes the cursor jumps elsewhere and sometimes a character is replaced.
fn type_once(
    client: &YClient,
    me: usize,
    shared: &Shared,
    rng: &mut StdRng,
    cursor: &mut u32,
    ack: bool,
) -> Result<(), dure_tests::yclient::YError> {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz     ";
    let len = client.text_len();
    if *cursor > TYPING_WINDOW || rng.random_bool(0.1) {
        *cursor = rng.random_range(0..=len.min(TYPING_WINDOW));
    }
    let replace = len > 0 && rng.random_bool(0.1);
    let pos = if replace {
        (*cursor).min(len - 1)
    } else {
        (*cursor).min(len)
    };
    let n = rng.random_range(1..=3);
    *cursor = pos + n;
    let chunk: String = (0..n)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect();
    // Only this task creates items with our client id, so the next clock is known before the
    // edit: record the instant first, so a fast delivery always finds it.
    let clock = client
        .doc()
        .transact()
        .state_vector()
        .get(&client.doc().client_id());
    let measured = shared.measuring.load(Ordering::SeqCst);
    let sent_at = Instant::now();
    if measured {
        lock(&shared.sends[me]).push((clock, sent_at));
        shared.measured_sends.fetch_add(1, Ordering::Relaxed);
    }
    let update = client.splice(pos, u32::from(replace), &chunk)?;
    if ack {
        lock(&shared.acks[me]).sent(update.seq, sent_at, measured);
    }
    Ok(())
}

/// Closes every client (best effort, bounded).
pub async fn close_all(clients: &[YClient]) {
    let closes = clients
        .iter()
        .map(|c| tokio::time::timeout(Duration::from_secs(5), c.close()))
        .collect();
    let _ = bounded(256, closes).await;
}

fn fmt_pct(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.1}%"))
}

fn opt_f64(v: Option<f64>) -> Value {
    v.map_or(Value::Null, |v| round3(v).into())
}
