//! `connect-storm`: a document of 100 KB, then many clients connecting at once; time from
//! connect start to having the full text.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use dure_tests::yclient::{ConnectOptions, YClient};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Map;
use tokio::sync::Barrier;

use crate::common::{
    CpuWindow, Res, Samples, Target, fail, fmt_summary, print_result, raise_nofile, round3,
};
use crate::rooms::close_all;

#[derive(Args, Debug, Clone)]
pub struct StormArgs {
    #[command(flatten)]
    pub target: Target,
    /// Clients connecting at once.
    #[arg(long, default_value_t = 200)]
    pub clients: usize,
    /// Size of the seeded text in bytes (ASCII).
    #[arg(long, default_value_t = 100 * 1024)]
    pub bytes: usize,
    /// The text is typed in this many updates.
    #[arg(long, default_value_t = 10)]
    pub chunks: usize,
    /// Deadline for every client to be synced.
    #[arg(long, default_value_t = 60)]
    pub timeout: u64,
}

/// Pseudo-random words, deterministic.
fn seed_text(bytes: usize) -> String {
    let mut rng = StdRng::seed_from_u64(7);
    let mut text = String::with_capacity(bytes + 16);
    while text.len() < bytes {
        let word_len = rng.random_range(1..=9);
        for _ in 0..word_len {
            text.push(char::from(b'a' + rng.random_range(0..26u8)));
        }
        text.push(if rng.random_bool(0.05) { '\n' } else { ' ' });
    }
    text.truncate(bytes);
    text
}

pub async fn run(args: StormArgs) -> Res<()> {
    let target = &args.target;
    if target.no_sync {
        return Err(fail(
            "connect-storm needs a server that syncs (not a relay)",
        ));
    }
    raise_nofile(args.clients as u64 + 256);
    let doc = target.doc_id(&target.prefix("storm"), 0);
    let url = target.doc_url(&doc);
    let timeout = Duration::from_secs(args.timeout);
    let text = Arc::new(seed_text(args.bytes));
    println!(
        "connect-storm against {} ({}): {} bytes in {doc}, {} clients at once",
        target.label,
        target.url,
        text.len(),
        args.clients
    );

    // Seed: type the text in a few big updates and wait until it is stored (or visible).
    let seeder = YClient::connect(
        &url,
        ConnectOptions {
            ack: true,
            ..Default::default()
        },
    )
    .await?;
    seeder.wait_synced(timeout).await?;
    let chunk = text.len().div_ceil(args.chunks.max(1));
    let mut at = 0;
    while at < text.len() {
        let end = (at + chunk).min(text.len());
        let index = u32::try_from(at)?;
        seeder.insert(index, &text[at..end])?;
        at = end;
    }
    let seeded_at = Instant::now();
    let stored = match seeder
        .wait_acked(seeder.sent_updates(), Duration::from_secs(10))
        .await
    {
        Ok(()) => "acked",
        Err(_) => {
            let check = YClient::connect(&url, ConnectOptions::default()).await?;
            check.wait_text(&text, timeout).await?;
            check.close().await?;
            "seen by a second client"
        }
    };
    println!(
        "seeded in {:.3} s ({stored})",
        seeded_at.elapsed().as_secs_f64()
    );

    // The storm: every task connects when all are ready.
    let barrier = Arc::new(Barrier::new(args.clients));
    let cpu = CpuWindow::start(target.server_pid);
    let own_cpu = CpuWindow::start_self();
    let tasks: Vec<_> = (0..args.clients)
        .map(|_| {
            let barrier = barrier.clone();
            let url = url.clone();
            let text = text.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                let started = Instant::now();
                let opts = ConnectOptions {
                    connect_timeout: timeout,
                    ..Default::default()
                };
                let client = YClient::connect(&url, opts).await?;
                let opened = started.elapsed();
                client.wait_text(&text, timeout).await?;
                Ok::<_, dure_tests::yclient::YError>((started.elapsed(), opened, client))
            })
        })
        .collect();
    let mut samples = Samples::default();
    let mut opened = Samples::default();
    let mut clients = Vec::new();
    let mut failures = Vec::new();
    for t in tasks {
        match t.await {
            Ok(Ok((took, open, client))) => {
                samples.push(took);
                opened.push(open);
                clients.push(client);
            }
            Ok(Err(e)) => failures.push(e.to_string()),
            Err(e) => failures.push(e.to_string()),
        }
    }
    let cpu_pct = cpu.and_then(|c| c.percent());
    let own_cpu_pct = own_cpu.and_then(|c| c.percent());
    let summary = samples.summary();
    let opened = opened.summary();
    println!(
        "{} of {} clients synced; connect-to-full-text {}",
        clients.len(),
        args.clients,
        fmt_summary(&summary)
    );
    println!(
        "  of which the WebSocket handshake: {}",
        fmt_summary(&opened)
    );
    for f in failures.iter().take(5) {
        println!("  failure: {f}");
    }
    let pct = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.0}%"));
    println!(
        "during the storm: server CPU {}, load generator CPU {} (of one core)",
        pct(cpu_pct),
        pct(own_cpu_pct)
    );
    close_all(&clients).await;
    seeder.close().await?;

    let mut fields = Map::new();
    fields.insert("clients".into(), args.clients.into());
    fields.insert("bytes".into(), text.len().into());
    fields.insert("synced".into(), clients.len().into());
    fields.insert("failed".into(), failures.len().into());
    fields.insert("sync_ms".into(), summary);
    fields.insert("handshake_ms".into(), opened);
    fields.insert(
        "server_cpu_pct".into(),
        cpu_pct.map_or(serde_json::Value::Null, |v| round3(v).into()),
    );
    fields.insert(
        "loadgen_cpu_pct".into(),
        own_cpu_pct.map_or(serde_json::Value::Null, |v| round3(v).into()),
    );
    fields.insert("ok".into(), failures.is_empty().into());
    print_result("connect-storm", target, fields);
    if !failures.is_empty() {
        return Err(fail(format!("{} clients did not sync", failures.len())));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    #[test]
    fn seed_text_is_exact() {
        let t = super::seed_text(1000);
        assert_eq!(t.len(), 1000);
        assert!(t.is_ascii());
    }
}
