//! `trace-replay` and `load-time`: a real editing trace sent as fast as the socket takes it,
//! then the same document loaded by a restarted server.
//!
//! Trace format (see `shared/data/traces/README.md`): gzip JSON
//! `{startContent, endContent, txns: [{patches: [[pos, del, ins], ...]}]}`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use dure_tests::yclient::{ConnectOptions, YClient, encode_update};
use serde::Deserialize;
use serde_json::{Map, Value};
use yrs::{ClientID, Doc, GetString, OffsetKind, Options, ReadTxn, Text, Transact};

use crate::common::{CpuWindow, Res, Target, fail, http_get, print_result, read_gz_json, round3};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Trace {
    start_content: String,
    end_content: String,
    txns: Vec<Txn>,
}

#[derive(Deserialize)]
struct Txn {
    patches: Vec<(u32, u32, String)>,
}

#[derive(Args, Debug, Clone)]
pub struct TraceArgs {
    #[command(flatten)]
    pub target: Target,
    /// The trace file.
    #[arg(long, default_value = "../shared/data/traces/automerge-paper.json.gz")]
    pub trace: PathBuf,
    /// Document id (pass the same one to `load-time`).
    #[arg(long)]
    pub doc: Option<String>,
    /// Sender connects with `ack=1`; also report the time until every frame is acked.
    #[arg(long)]
    pub ack: bool,
    /// Deadline for the receiver to have the final text.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
}

/// Client id of the generated updates.
const TRACE_CLIENT: u64 = 7_777_777;

/// One v1 update per trace transaction, from a local doc (not timed).
fn generate(trace: &Trace) -> Res<(Vec<Vec<u8>>, u32)> {
    let mut options = Options::with_client_id(ClientID::new(TRACE_CLIENT));
    options.offset_kind = OffsetKind::Utf16;
    let doc = Doc::with_options(options);
    let text = doc.get_or_insert_text("text");
    let updates = Arc::new(Mutex::new(Vec::with_capacity(trace.txns.len() + 1)));
    {
        let updates = updates.clone();
        doc.observe_update_v1("trace", move |_, event| {
            if let Ok(mut u) = updates.lock() {
                u.push(event.update.clone());
            }
        })?;
    }
    if !trace.start_content.is_empty() {
        text.insert(&mut doc.transact_mut(), 0, &trace.start_content);
    }
    for (n, txn) in trace.txns.iter().enumerate() {
        let mut t = doc.transact_mut();
        for (pos, del, ins) in &txn.patches {
            if pos.saturating_add(*del) > text.len(&t) {
                return Err(fail(format!("transaction {n}: patch outside the text")));
            }
            if *del > 0 {
                text.remove_range(&mut t, *pos, *del);
            }
            if !ins.is_empty() {
                text.insert(&mut t, *pos, ins);
            }
        }
    }
    let final_clock = doc
        .transact()
        .state_vector()
        .get(&ClientID::new(TRACE_CLIENT));
    if text.get_string(&doc.transact()) != trace.end_content {
        return Err(fail("the local replay does not give endContent"));
    }
    let updates = std::mem::take(&mut *updates.lock().map_err(|_| fail("poisoned"))?);
    Ok((updates, final_clock))
}

/// Generating the updates takes yrs about 20 s here (it finds each index by walking the text),
/// so they are kept in the temp directory, keyed by the trace's size and modification time.
fn cache_path(trace: &Path) -> Option<PathBuf> {
    let meta = std::fs::metadata(trace).ok()?;
    let mtime = meta
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs();
    let name = trace.file_name()?.to_string_lossy();
    Some(std::env::temp_dir().join(format!(
        "dure-load-{CACHE_VERSION}-{TRACE_CLIENT}-{name}-{}-{mtime}.updates",
        meta.len()
    )))
}

/// Bumped whenever the generated updates would change.
const CACHE_VERSION: u32 = 1;

/// Cache format: `final_clock: u32 LE`, then per update `len: u32 LE, bytes`.
fn write_cache(path: &Path, updates: &[Vec<u8>], final_clock: u32) -> std::io::Result<()> {
    let mut out = Vec::with_capacity(updates.iter().map(|u| u.len() + 4).sum::<usize>() + 4);
    out.extend_from_slice(&final_clock.to_le_bytes());
    for u in updates {
        let len = u32::try_from(u.len()).map_err(std::io::Error::other)?;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(u);
    }
    // Write then rename, so a concurrent reader never sees half a file.
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, out)?;
    std::fs::rename(tmp, path)
}

fn read_cache(path: &Path) -> Option<(Vec<Vec<u8>>, u32)> {
    let data = std::fs::read(path).ok()?;
    let u32_at = |at: usize| -> Option<u32> {
        Some(u32::from_le_bytes(data.get(at..at + 4)?.try_into().ok()?))
    };
    let final_clock = u32_at(0)?;
    let mut updates = Vec::new();
    let mut at = 4;
    while at < data.len() {
        let len = u32_at(at)? as usize;
        updates.push(data.get(at + 4..at + 4 + len)?.to_vec());
        at += 4 + len;
    }
    Some((updates, final_clock))
}

pub async fn replay(args: TraceArgs) -> Res<()> {
    let target = &args.target;
    let trace: Trace = read_gz_json(&args.trace)?;
    let doc = args
        .doc
        .clone()
        .unwrap_or_else(|| target.doc_id(&target.prefix("trace"), 0));
    let url = target.doc_url(&doc);
    let timeout = Duration::from_secs(args.timeout);

    let generated = Instant::now();
    let cache = cache_path(&args.trace);
    let (updates, final_clock, how) = match cache.as_deref().and_then(read_cache) {
        Some((updates, clock)) => (updates, clock, "read from the cache"),
        None => {
            let (updates, clock) = generate(&trace)?;
            if let Some(path) = &cache
                && let Err(e) = write_cache(path, &updates, clock)
            {
                println!("  cannot cache the updates in {}: {e}", path.display());
            }
            (updates, clock, "generated")
        }
    };
    let frames: Vec<Vec<u8>> = updates.iter().map(|u| encode_update(u)).collect();
    let bytes: usize = frames.iter().map(Vec::len).sum();
    println!(
        "trace-replay against {} ({}): {} frames ({bytes} bytes) from {} {how} in {:.2} s; doc {doc}",
        target.label,
        target.url,
        frames.len(),
        args.trace.display(),
        generated.elapsed().as_secs_f64()
    );
    drop(updates);

    let sync = !target.no_sync;
    let connect = |ack: bool| {
        let url = url.clone();
        async move {
            let c = YClient::connect(
                &url,
                ConnectOptions {
                    ack,
                    sync,
                    ..Default::default()
                },
            )
            .await?;
            if sync {
                c.wait_synced(timeout).await?;
            }
            Ok::<_, dure_tests::yclient::YError>(c)
        }
    };
    let a = connect(args.ack).await?;
    let b = connect(false).await?;
    let end = trace.end_content.as_str();
    let end_len = u32::try_from(end.encode_utf16().count())?;
    let trace_client = ClientID::new(TRACE_CLIENT);

    let cpu = CpuWindow::start(target.server_pid);
    let started = Instant::now();
    let n_frames = frames.len() as u64;
    for frame in frames {
        a.send_raw(frame)?;
    }
    let waited = b
        .wait_for("the trace's final text", timeout, |c| {
            c.state_vector().get(&trace_client) >= final_clock
                && c.text_len() == end_len
                && c.text() == end
        })
        .await;
    let replay_secs = started.elapsed().as_secs_f64();
    let equal = waited.is_ok() || b.text() == end;
    let acked_secs = if args.ack {
        let want = a.sent_updates();
        a.wait_acked(want, timeout)
            .await
            .ok()
            .map(|()| started.elapsed().as_secs_f64())
    } else {
        None
    };
    let cpu_pct = cpu.and_then(|c| c.percent());
    let errors: Vec<String> = a.errors().into_iter().chain(b.errors()).collect();
    let closes: Vec<(u16, String)> = [a.closed(), b.closed()].into_iter().flatten().collect();
    println!(
        "receiver had the final text after {replay_secs:.3} s: {}; sent {n_frames} frames{}",
        if equal { "equal" } else { "NOT equal" },
        acked_secs.map_or(String::new(), |s| format!(", all acked after {s:.3} s"))
    );
    if let Err(e) = &waited {
        println!(
            "  wait: {e}; receiver has {} of {end_len} units",
            b.text_len()
        );
    }
    for e in errors.iter().take(5) {
        println!("  error: {e}");
    }
    for (code, reason) in &closes {
        println!("  closed by server: {code} {reason}");
    }
    a.close().await?;
    b.close().await?;

    let mut fields = Map::new();
    fields.insert("doc".into(), doc.into());
    fields.insert("frames".into(), n_frames.into());
    fields.insert("bytes".into(), bytes.into());
    fields.insert("replay_seconds".into(), round3(replay_secs).into());
    fields.insert("text_equal".into(), equal.into());
    fields.insert(
        "acked_seconds".into(),
        acked_secs.map_or(Value::Null, |s| round3(s).into()),
    );
    fields.insert(
        "server_cpu_pct".into(),
        cpu_pct.map_or(Value::Null, |v| round3(v).into()),
    );
    fields.insert("errors".into(), errors.len().into());
    fields.insert("ok".into(), (equal && errors.is_empty()).into());
    print_result("trace-replay", target, fields);
    if !equal {
        return Err(fail("the receiver's text differs from endContent"));
    }
    Ok(())
}

#[derive(Args, Debug, Clone)]
pub struct LoadArgs {
    #[command(flatten)]
    pub target: Target,
    /// The trace file (its endContent is the expected text).
    #[arg(long, default_value = "../shared/data/traces/automerge-paper.json.gz")]
    pub trace: PathBuf,
    /// Document id written by `trace-replay`.
    #[arg(long)]
    pub doc: String,
    /// Deadline for the full text.
    #[arg(long, default_value_t = 60)]
    pub timeout: u64,
}

pub async fn load_time(args: LoadArgs) -> Res<()> {
    let target = &args.target;
    if target.no_sync {
        return Err(fail("load-time needs a server that syncs (not a relay)"));
    }
    let trace: Trace = read_gz_json(&args.trace)?;
    let end = trace.end_content;
    let started = Instant::now();
    let client = YClient::connect(&target.doc_url(&args.doc), ConnectOptions::default()).await?;
    let result = client
        .wait_text(&end, Duration::from_secs(args.timeout))
        .await;
    let secs = started.elapsed().as_secs_f64();
    let equal = result.is_ok();
    println!(
        "load-time against {} ({}): connect to full text of {} in {:.1} ms ({})",
        target.label,
        target.url,
        args.doc,
        secs * 1000.0,
        if equal { "equal" } else { "NOT equal" }
    );
    // What a client downloads to sync this document, and the compact (v2) encoding a
    // snapshot uses: the reference for "bytes stored per document".
    let (state_v1, state_v2) = {
        let txn = client.doc().transact();
        let empty = yrs::StateVector::default();
        (
            txn.encode_state_as_update_v1(&empty).len(),
            txn.encode_state_as_update_v2(&empty).len(),
        )
    };
    println!("  encoded state: {state_v1} bytes (v1), {state_v2} bytes (v2)");
    client.close().await?;

    // The server's own figure, if it exports one.
    let metrics_url = format!("{}/metrics", target.http_base());
    let mut server_load: Option<f64> = None;
    match http_get(&metrics_url).await {
        Ok(body) => {
            let mut sum = None;
            let mut count = None;
            for line in body
                .lines()
                .filter(|l| l.starts_with("dure_room_load_seconds"))
            {
                if !line.starts_with("dure_room_load_seconds_bucket") {
                    println!("  {line}");
                }
                let value = line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok());
                if line.starts_with("dure_room_load_seconds_sum") {
                    sum = value;
                } else if line.starts_with("dure_room_load_seconds_count") {
                    count = value;
                }
            }
            if let (Some(sum), Some(count)) = (sum, count)
                && count > 0.0
            {
                server_load = Some(sum / count);
                println!(
                    "  server's mean room load: {:.1} ms over {count} loads",
                    sum / count * 1000.0
                );
            }
        }
        Err(e) => println!("  no metrics: {e}"),
    }

    let mut fields = Map::new();
    fields.insert("doc".into(), args.doc.clone().into());
    fields.insert("load_ms".into(), round3(secs * 1000.0).into());
    fields.insert("state_v1_bytes".into(), state_v1.into());
    fields.insert("state_v2_bytes".into(), state_v2.into());
    fields.insert("text_equal".into(), equal.into());
    fields.insert(
        "server_room_load_ms".into(),
        server_load.map_or(Value::Null, |s| round3(s * 1000.0).into()),
    );
    fields.insert("ok".into(), equal.into());
    print_result("load-time", target, fields);
    result.map_err(|e| fail(e.to_string()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use yrs::Update;
    use yrs::updates::decoder::Decode;

    #[test]
    fn generated_updates_rebuild_the_text_and_survive_the_cache() {
        let trace = Trace {
            start_content: "hello".into(),
            end_content: "hXY world!".into(),
            txns: vec![
                Txn {
                    patches: vec![(5, 0, " world".into())],
                },
                Txn {
                    patches: vec![(1, 4, "XY".into()), (9, 0, "!".into())],
                },
            ],
        };
        let (updates, final_clock) = generate(&trace).unwrap();
        assert_eq!(updates.len(), 3);

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache");
        write_cache(&path, &updates, final_clock).unwrap();
        let (cached, clock) = read_cache(&path).unwrap();
        assert_eq!(
            (cached.as_slice(), clock),
            (updates.as_slice(), final_clock)
        );

        let doc = Doc::new();
        let text = doc.get_or_insert_text("text");
        for u in cached {
            doc.transact_mut()
                .apply_update(Update::decode_v1(&u).unwrap())
                .unwrap();
        }
        assert_eq!(text.get_string(&doc.transact()), trace.end_content);
    }

    #[test]
    fn rejects_a_patch_outside_the_text() {
        let trace = Trace {
            start_content: String::new(),
            end_content: String::new(),
            txns: vec![Txn {
                patches: vec![(3, 0, "x".into())],
            }],
        };
        assert!(generate(&trace).is_err());
    }
}
