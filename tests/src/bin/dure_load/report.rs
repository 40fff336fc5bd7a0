//! `report`: turns the result lines collected by `tests/bench` into `docs/benchmarks.md`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use clap::Args;
use serde_json::Value;

use crate::common::{Res, fail};

#[derive(Args, Debug, Clone)]
pub struct ReportArgs {
    /// File of result lines (`RESULT {json}` or bare JSON), as printed by the scenarios.
    #[arg(long)]
    pub results: PathBuf,
    /// Markdown file to write.
    #[arg(long, default_value = "docs/benchmarks.md")]
    pub out: PathBuf,
    /// The command that produced the results.
    #[arg(long, default_value = "tests/bench")]
    pub command: String,
    /// Date of the run.
    #[arg(long, default_value = "")]
    pub date: String,
    /// Git revision measured, if known.
    #[arg(long, default_value = "")]
    pub revision: String,
}

/// Results by (scenario, target label).
struct Results(HashMap<(String, String), Value>);

impl Results {
    fn get(&self, scenario: &str, target: &str, path: &[&str]) -> Option<&Value> {
        let mut v = self.0.get(&(scenario.to_owned(), target.to_owned()))?;
        for key in path {
            v = v.get(key)?;
        }
        (!v.is_null()).then_some(v)
    }

    fn num(&self, scenario: &str, target: &str, path: &[&str]) -> Option<f64> {
        self.get(scenario, target, path).and_then(Value::as_f64)
    }

    /// A parameter of a scenario, from whichever run recorded it.
    fn param(&self, scenario: &str, key: &str) -> Option<f64> {
        ["dure", "relay", "dure-ack"]
            .iter()
            .find_map(|t| self.num(scenario, t, &[key]))
    }

    /// A parameter formatted as an integer with thousands separators, or `default`.
    fn count(&self, scenario: &str, key: &str, default: &str) -> String {
        self.param(scenario, key)
            .map_or(default.to_owned(), |v| thousands(v.round() as u64))
    }

    fn has(&self, scenario: &str, target: &str) -> bool {
        self.0
            .contains_key(&(scenario.to_owned(), target.to_owned()))
    }
}

fn parse(text: &str) -> Results {
    let mut map = HashMap::new();
    for line in text.lines() {
        let json = line.strip_prefix("RESULT ").unwrap_or(line).trim();
        let Ok(v) = serde_json::from_str::<Value>(json) else {
            continue;
        };
        let (Some(s), Some(t)) = (
            v.get("scenario").and_then(Value::as_str),
            v.get("target").and_then(Value::as_str),
        ) else {
            continue;
        };
        map.insert((s.to_owned(), t.to_owned()), v);
    }
    Results(map)
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn fmt(v: Option<f64>, unit: &str) -> String {
    match v {
        None => "–".into(),
        Some(v) if v >= 100.0 => format!("{v:.0}{unit}"),
        Some(v) if v >= 10.0 => format!("{v:.1}{unit}"),
        Some(v) => format!("{v:.2}{unit}"),
    }
}

fn ratio(dure: Option<f64>, relay: Option<f64>) -> String {
    match (dure, relay) {
        (Some(d), Some(r)) if r > 0.0 => format!("{:.2}×", d / r),
        _ => "–".into(),
    }
}

/// ✅ when `value` is at most `limit`, ❌ when above, – when unmeasured.
fn verdict(value: Option<f64>, limit: f64) -> &'static str {
    match value {
        Some(v) if v <= limit => "✅",
        Some(_) => "❌",
        None => "–",
    }
}

/// One line of the targets table.
fn row(
    md: &mut String,
    name: &str,
    target: &str,
    dure: Option<f64>,
    relay: Option<f64>,
    unit: &str,
    ok: &str,
) {
    let _ = writeln!(
        md,
        "| {name} | {target} | {} | {} | {} | {ok} |",
        fmt(dure, unit),
        fmt(relay, unit),
        ratio(dure, relay)
    );
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).trim().to_owned())
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<f64>().ok())
        .map_or("?".into(), |kib| format!("{:.0}", kib / 1024.0 / 1024.0));
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{cores} cores (nproc), {model}, {mem_gib} GiB RAM, Linux {}",
        kernel.trim()
    )
}

pub fn run(args: ReportArgs) -> Res<()> {
    let text = std::fs::read_to_string(&args.results)
        .map_err(|e| fail(format!("{}: {e}", args.results.display())))?;
    let r = parse(&text);
    let md = render(&r, &args, &machine());
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, md)?;
    println!("wrote {}", args.out.display());
    Ok(())
}

fn render(r: &Results, args: &ReportArgs, machine: &str) -> String {
    let mut md = String::new();
    let p99 = |s: &str, t: &str| r.num(s, t, &["latency_ms", "p99"]);
    let cpu = |s: &str, t: &str| r.num(s, t, &["server_cpu_pct"]);
    let lost = |s: &str, t: &str| r.num(s, t, &["lost"]);
    let idle = |t: &str| r.num("idle", t, &["kib_per_connection"]);

    let _ = writeln!(md, "# Benchmarks\n");
    let _ = writeln!(
        md,
        "Generated by `tests/bench`{}{}. Every scenario ran against the baseline relay \
         (`ws-relay`: a bare WebSocket broadcast relay, no CRDT, no storage) and then Dure, in \
         the same run, with the load generator (`dure-load`) on the same machine over \
         loopback.\n",
        if args.date.is_empty() {
            String::new()
        } else {
            format!(" on {}", args.date)
        },
        if args.revision.is_empty() {
            String::new()
        } else {
            format!(" at revision `{}`", args.revision)
        },
    );
    let _ = writeln!(md, "- Machine: {machine}.");
    let _ = writeln!(md, "- Reproduce: `{}`\n", args.command);

    let _ = writeln!(md, "## Against the targets\n");
    let _ = writeln!(
        md,
        "| Figure | Target | Dure | Relay (floor) | Dure / relay | Met |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|");
    let hot = format!(
        "Hot room ({} clients × {} updates/s)",
        r.count("hot-room", "clients_per_room", "50"),
        r.count("hot-room", "rate", "10")
    );
    let many = format!(
        "{} rooms × {} clients × {} update/s",
        r.count("many-rooms", "rooms", "500"),
        r.count("many-rooms", "clients_per_room", "2"),
        r.count("many-rooms", "rate", "1")
    );
    let idle_n = r.count("idle", "connections", "10,000");
    let storm = format!(
        "Connect storm ({} clients, {} KB doc)",
        r.count("connect-storm", "clients", "200"),
        r.param("connect-storm", "bytes")
            .map_or("100".into(), |b| format!("{:.0}", b / 1024.0))
    );
    let frames = r.count("trace-replay", "frames", "259,778");
    let (d, rl) = (p99("hot-room", "dure"), p99("hot-room", "relay"));
    row(
        &mut md,
        &format!("{hot}: update latency p99"),
        "≤ 6 ms",
        d,
        rl,
        " ms",
        verdict(d, 6.0),
    );
    let (d, rl) = (cpu("hot-room", "dure"), cpu("hot-room", "relay"));
    row(
        &mut md,
        "Hot room: server CPU",
        "≤ 10% of one core",
        d,
        rl,
        "%",
        verdict(d, 10.0),
    );
    let (d, rl) = (lost("hot-room", "dure"), lost("hot-room", "relay"));
    let _ = writeln!(
        md,
        "| Hot room: lost deliveries | 0 | {} | {} | – | {} |",
        d.map_or("–".into(), |v| thousands(v as u64)),
        rl.map_or("–".into(), |v| thousands(v as u64)),
        verdict(d, 0.0)
    );
    let (d, rl) = (p99("many-rooms", "dure"), p99("many-rooms", "relay"));
    row(
        &mut md,
        &format!("{many}: latency p99"),
        "≤ 2 ms",
        d,
        rl,
        " ms",
        verdict(d, 2.0),
    );
    let d = r.num("hot-room", "dure-ack", &["ack_latency_ms", "p99"]);
    row(
        &mut md,
        "Hot room with `ack=1`: send-to-saved-ack p99",
        "≤ 50 ms",
        d,
        None,
        " ms",
        verdict(d, 50.0),
    );
    let (d, rl) = (idle("dure"), idle("relay"));
    row(
        &mut md,
        &format!("{idle_n} idle connections: server memory per connection"),
        "≤ 8 KiB",
        d,
        rl,
        " KiB",
        verdict(d, 8.0),
    );
    let d = r.num("connect-storm", "dure", &["sync_ms", "p99"]);
    row(
        &mut md,
        &format!("{storm}: connect-to-synced p99"),
        "≤ 100 ms",
        d,
        None,
        " ms",
        verdict(d, 100.0),
    );
    let d = r.num("trace-replay", "dure", &["replay_seconds"]);
    let equal = r
        .get("trace-replay", "dure", &["text_equal"])
        .and_then(Value::as_bool);
    let rl = r.num("trace-replay", "relay", &["replay_seconds"]);
    row(
        &mut md,
        &format!("Trace replay (automerge-paper, {frames} updates): first send to equal text"),
        "≤ 3 s, equal text",
        d,
        rl,
        " s",
        if equal == Some(false) {
            "❌"
        } else {
            verdict(d, 3.0)
        },
    );
    let d = r.num("load-time", "dure", &["load_ms"]);
    row(
        &mut md,
        "Load of that document after a restart: connect to full text",
        "≤ 50 ms",
        d,
        None,
        " ms",
        verdict(d, 50.0),
    );
    let _ = writeln!(
        md,
        "\n“–” in the relay column: the scenario needs the server's own sync (the relay keeps no \
         document), so there is no floor to compare with. Latencies include the load \
         generator's own work (every simulated client decodes and applies every update into its \
         yrs doc) on the same cores as the server: the relay row is the floor this harness can \
         measure on this machine, and Dure / relay is the figure that travels.\n"
    );

    let _ = writeln!(
        md,
        "## Peers, measured earlier on this machine (reference)\n"
    );
    let _ = writeln!(
        md,
        "| Server | Hot room p99 | Hot room CPU | 500 rooms p99 | Idle memory / connection |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|");
    let _ = writeln!(
        md,
        "| Dure (this run) | {} | {} | {} | {} |",
        fmt(p99("hot-room", "dure"), " ms"),
        fmt(cpu("hot-room", "dure"), "%"),
        fmt(p99("many-rooms", "dure"), " ms"),
        fmt(idle("dure"), " KiB")
    );
    let _ = writeln!(
        md,
        "| `@y/websocket-server` | 6.9 ms | 19% | 2.1 ms | 10.6 KiB |"
    );
    let _ = writeln!(
        md,
        "| `@hocuspocus/server` | 15.8 ms | 23% | 4.7 ms | 18.6 KiB |"
    );
    let _ = writeln!(
        md,
        "| Relay floor (this run) | {} | {} | {} | {} |\n",
        fmt(p99("hot-room", "relay"), " ms"),
        fmt(cpu("hot-room", "relay"), "%"),
        fmt(p99("many-rooms", "relay"), " ms"),
        fmt(idle("relay"), " KiB")
    );

    let _ = writeln!(md, "## Details\n");
    for (scenario, title) in [("hot-room", hot.as_str()), ("many-rooms", many.as_str())] {
        let _ = writeln!(md, "### {title}\n");
        let _ = writeln!(
            md,
            "| Server | p50 | p95 | p99 | max | deliveries (received / expected) | server CPU | server RSS | load generator CPU | diverged rooms |"
        );
        let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|");
        for t in ["relay", "dure", "dure-ack"] {
            if !r.has(scenario, t) {
                continue;
            }
            let l = |k: &str| fmt(r.num(scenario, t, &["latency_ms", k]), " ms");
            let _ = writeln!(
                md,
                "| {t} | {} | {} | {} | {} | {} / {} | {} | {} | {} | {} |",
                l("p50"),
                l("p95"),
                l("p99"),
                l("max"),
                r.num(scenario, t, &["delivered"]).unwrap_or(0.0),
                r.num(scenario, t, &["expected_deliveries"]).unwrap_or(0.0),
                fmt(r.num(scenario, t, &["server_cpu_pct"]), "%"),
                r.num(scenario, t, &["server_rss_kib"])
                    .map_or("–".into(), |v| format!("{:.1} MiB", v / 1024.0)),
                fmt(r.num(scenario, t, &["loadgen_cpu_pct"]), "%"),
                r.num(scenario, t, &["diverged_rooms"]).unwrap_or(0.0),
            );
        }
        if scenario == "hot-room" && r.has(scenario, "dure-ack") {
            let a = |k: &str| fmt(r.num(scenario, "dure-ack", &["ack_latency_ms", k]), " ms");
            let _ = writeln!(
                md,
                "\nWith `ack=1` (row dure-ack), send-to-saved-ack: p50 {}, p95 {}, p99 {}, max {}.",
                a("p50"),
                a("p95"),
                a("p99"),
                a("max")
            );
        }
        let _ = writeln!(md);
    }

    let _ = writeln!(md, "### Idle connections\n");
    let _ = writeln!(
        md,
        "| Server | connections synced | RSS before | RSS after | per connection | time to open all |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|");
    for t in ["relay", "dure"] {
        if !r.has("idle", t) {
            continue;
        }
        let _ = writeln!(
            md,
            "| {t} | {} | {} | {} | {} | {} |",
            r.num("idle", t, &["synced"]).unwrap_or(0.0),
            fmt(
                r.num("idle", t, &["rss_before_kib"]).map(|v| v / 1024.0),
                " MiB"
            ),
            fmt(
                r.num("idle", t, &["rss_after_kib"]).map(|v| v / 1024.0),
                " MiB"
            ),
            fmt(idle(t), " KiB"),
            fmt(r.num("idle", t, &["connect_seconds"]), " s"),
        );
    }

    let _ = writeln!(md, "\n### Connect storm, trace replay, load\n");
    let s = |k: &str| fmt(r.num("connect-storm", "dure", &["sync_ms", k]), " ms");
    let _ = writeln!(
        md,
        "- Connect storm: {} of {} clients synced; connect-to-full-text p50 {}, p99 {}, max {}; \
         of which the WebSocket handshake p50 {}, p99 {}.",
        r.num("connect-storm", "dure", &["synced"]).unwrap_or(0.0),
        r.num("connect-storm", "dure", &["clients"]).unwrap_or(0.0),
        s("p50"),
        s("p99"),
        s("max"),
        fmt(
            r.num("connect-storm", "dure", &["handshake_ms", "p50"]),
            " ms"
        ),
        fmt(
            r.num("connect-storm", "dure", &["handshake_ms", "p99"]),
            " ms"
        ),
    );
    for t in ["relay", "dure"] {
        if !r.has("trace-replay", t) {
            continue;
        }
        let _ = writeln!(
            md,
            "- Trace replay, {t}: {} frames, {} bytes; receiver equal after {}; text equal: {}{}; server CPU {}.",
            r.num("trace-replay", t, &["frames"]).unwrap_or(0.0),
            r.num("trace-replay", t, &["bytes"]).unwrap_or(0.0),
            fmt(r.num("trace-replay", t, &["replay_seconds"]), " s"),
            r.get("trace-replay", t, &["text_equal"])
                .and_then(Value::as_bool)
                .unwrap_or(false),
            r.num("trace-replay", t, &["acked_seconds"])
                .map_or(String::new(), |s| format!(
                    "; all saved (acked) after {s:.2} s"
                )),
            fmt(r.num("trace-replay", t, &["server_cpu_pct"]), "%"),
        );
    }
    let _ = writeln!(
        md,
        "- Load after restart: connect to full text {}{}.\n",
        fmt(r.num("load-time", "dure", &["load_ms"]), " ms"),
        r.num("load-time", "dure", &["server_room_load_ms"])
            .map_or(String::new(), |v| format!(
                "; the server's `dure_room_load_seconds` says {v:.1} ms"
            ))
    );

    let _ = writeln!(md, "## What each scenario does\n");
    let _ = writeln!(
        md,
        "- **hot-room**: 1 document, {} clients, each typing 1-3 characters {} times a second \
         into its own yrs doc (kept in sync by what it receives), one update frame per \
         keystroke burst, at a cursor near the start of the text that moves as it types and \
         sometimes jumps. {} s warm-up, then a {} s window. Latency is from the sender's edit \
         to each other client decoding the update (keyed by client id and clock, so it works on \
         the relay's unchanged bytes too); every update must reach every other client. Server \
         CPU is utime+stime from `/proc/PID/stat` over the window. With `ack=1` the same run \
         also times each update frame to the save ack covering it.\n\
         - **many-rooms**: the same with {many}.\n\
         - **idle**: {idle_n} connections over {} documents, opened 128 at a time, each waiting \
         for sync step 2 (on the relay: for the WebSocket handshake); server RSS \
         (`/proc/PID/status`) after 10 warm-up connections versus with all connections held.\n\
         - **connect-storm**: one document seeded with {} bytes of text (10 updates, waited for \
         their save ack); then {} clients connect at once; each is timed from connect start to \
         having the full text.\n\
         - **trace-replay**: the updates of a real editing trace are generated up front from a \
         local yrs doc (one per trace transaction, not timed); one client sends them all, one \
         frame each, as fast as the socket takes them, while a second client on the same \
         document receives; timed from the first send to the receiver's text equalling the \
         trace's `endContent`.\n\
         - **load-time**: the server is restarted on the same data directory; one client \
         connects to the replayed document; timed from connect start to the full text.\n",
        r.count("hot-room", "clients_per_room", "50"),
        r.count("hot-room", "rate", "10"),
        r.count("hot-room", "warmup", "3"),
        r.count("hot-room", "seconds", "20"),
        r.count("idle", "docs", "1,000"),
        r.count("connect-storm", "bytes", "102,400"),
        r.count("connect-storm", "clients", "200"),
    );

    let _ = writeln!(md, "## Credits\n");
    let _ = writeln!(
        md,
        "The editing trace `automerge-paper` is by Martin Kleppmann (automerge-perf), licensed \
         CC BY 4.0, in the form published by Joseph Gentle in josephg/editing-traces."
    );
    md
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn renders_results() {
        let text = concat!(
            "noise\n",
            "RESULT {\"scenario\":\"hot-room\",\"target\":\"dure\",\"latency_ms\":{\"p50\":1.0,\"p99\":5.0},\"server_cpu_pct\":12.0,\"lost\":0}\n",
            "RESULT {\"scenario\":\"hot-room\",\"target\":\"relay\",\"latency_ms\":{\"p50\":0.5,\"p99\":2.5},\"server_cpu_pct\":4.0,\"lost\":0}\n",
        );
        let r = parse(text);
        let args = ReportArgs {
            results: PathBuf::new(),
            out: PathBuf::new(),
            command: "tests/bench".into(),
            date: "2026-11-01".into(),
            revision: String::new(),
        };
        let md = render(&r, &args, "test machine");
        assert!(md.contains("| 5.00 ms | 2.50 ms | 2.00× | ✅ |"), "{md}");
        assert!(md.contains("| 12.0% | 4.00% | 3.00× | ❌ |"), "{md}");
        assert!(md.contains("on 2026-11-01"));
    }
}
