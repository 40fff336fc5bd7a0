//! `idle`: many connections that do nothing once synced; the server's memory per connection.

use std::time::{Duration, Instant};

use clap::Args;
use dure_tests::yclient::{ConnectOptions, YClient, YError};
use serde_json::{Map, json};

use crate::common::{Res, Target, bounded, fail, print_result, raise_nofile, round3, rss_kib};
use crate::rooms::close_all;

#[derive(Args, Debug, Clone)]
pub struct IdleArgs {
    #[command(flatten)]
    pub target: Target,
    /// Connections to open.
    #[arg(long, default_value_t = 10_000)]
    pub connections: usize,
    /// Documents they spread over.
    #[arg(long, default_value_t = 1_000)]
    pub docs: usize,
    /// Connections opened before the "before" memory reading (so the runtime is warm).
    #[arg(long, default_value_t = 10)]
    pub warmup: usize,
    /// How long to hold the connections once all are synced.
    #[arg(long, default_value_t = 5)]
    pub hold: u64,
    /// Connection attempts in flight at once.
    #[arg(long, default_value_t = 128)]
    pub parallel: usize,
}

async fn open(target: &Target, doc: String) -> Result<YClient, YError> {
    let opts = ConnectOptions {
        sync: !target.no_sync,
        // Idle connections: the client side stays small too.
        read_buffer_size: 4096,
        connect_timeout: Duration::from_secs(30),
        ..Default::default()
    };
    let client = YClient::connect(&target.doc_url(&doc), opts).await?;
    if !target.no_sync {
        client.wait_synced(Duration::from_secs(60)).await?;
    }
    Ok(client)
}

pub async fn run(args: IdleArgs) -> Res<()> {
    let target = &args.target;
    let pid = target
        .server_pid
        .ok_or_else(|| fail("idle needs --server-pid to read the server's memory"))?;
    let nofile = raise_nofile(args.connections as u64 + args.warmup as u64 + 256);
    if nofile < (args.connections + args.warmup + 64) as u64 {
        return Err(fail(format!(
            "open-files limit {nofile} is too low for {} connections (raise ulimit -n)",
            args.connections
        )));
    }
    let prefix = target.prefix("idle");
    let docs = args.docs.max(1);
    println!(
        "idle against {} ({}): {} connections over {docs} documents",
        target.label, target.url, args.connections
    );

    let warm = (0..args.warmup)
        .map(|i| open(target, target.doc_id(&prefix, docs + i)))
        .collect();
    let warm: Vec<YClient> = bounded(args.parallel, warm)
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = rss_kib(pid).ok_or_else(|| fail("cannot read the server's RSS"))?;

    let started = Instant::now();
    let opens = (0..args.connections)
        .map(|i| open(target, target.doc_id(&prefix, i % docs)))
        .collect();
    let results = bounded(args.parallel, opens).await;
    let connect_secs = started.elapsed().as_secs_f64();
    let mut clients = Vec::with_capacity(results.len());
    let mut failures = Vec::new();
    for r in results {
        match r {
            Ok(c) => clients.push(c),
            Err(e) => failures.push(e.to_string()),
        }
    }
    println!(
        "{} connections synced in {connect_secs:.2} s ({} failed)",
        clients.len(),
        failures.len()
    );
    for f in failures.iter().take(5) {
        println!("  failure: {f}");
    }

    // Let allocations settle, then read memory mid-hold.
    let hold = Duration::from_secs(args.hold.max(2));
    tokio::time::sleep(hold / 2).await;
    let after = rss_kib(pid).ok_or_else(|| fail("cannot read the server's RSS"))?;
    tokio::time::sleep(hold - hold / 2).await;
    let ended = clients.iter().filter(|c| c.is_ended()).count();
    let held = clients.len();
    let per_conn = if held > 0 {
        after.saturating_sub(before) as f64 / held as f64
    } else {
        0.0
    };
    println!(
        "server RSS {before} KiB before, {after} KiB with {held} idle connections: {per_conn:.2} KiB per connection; {ended} dropped during the hold"
    );
    close_all(&clients).await;
    close_all(&warm).await;

    let mut fields = Map::new();
    fields.insert("connections".into(), args.connections.into());
    fields.insert("docs".into(), docs.into());
    fields.insert("synced".into(), held.into());
    fields.insert("failed".into(), failures.len().into());
    fields.insert("dropped".into(), ended.into());
    fields.insert("connect_seconds".into(), round3(connect_secs).into());
    fields.insert("rss_before_kib".into(), before.into());
    fields.insert("rss_after_kib".into(), after.into());
    fields.insert("kib_per_connection".into(), json!(round3(per_conn)));
    fields.insert(
        "ok".into(),
        (failures.is_empty() && ended == 0 && held == args.connections).into(),
    );
    print_result("idle", target, fields);
    Ok(())
}
