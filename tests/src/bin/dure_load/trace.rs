//! `trace-replay` and `load-time`: a real editing trace sent as fast as the socket takes it,
//! then the same document loaded by a restarted server.
//!
//! Trace format (see `shared/data/traces/README.md`): gzip JSON
//! `{startContent, endContent, txns: [{patches: [[pos, del, ins], ...]}]}`.

use std::path::PathBuf;
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
    let (updates, final_clock) = generate(&trace)?;
    let frames: Vec<Vec<u8>> = updates.iter().map(|u| encode_update(u)).collect();
    let bytes: usize = frames.iter().map(Vec::len).sum();
    println!(
        "trace-replay against {} ({}): {} frames ({bytes} bytes) from {} generated in {:.2} s; doc {doc}",
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
                println!("  {line}");
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
    fields.insert("text_equal".into(), equal.into());
    fields.insert(
        "server_room_load_ms".into(),
        server_load.map_or(Value::Null, |s| round3(s * 1000.0).into()),
    );
    fields.insert("ok".into(), equal.into());
    print_result("load-time", target, fields);
    result.map_err(|e| fail(e.to_string()))
}
