//! The real `dure` binary on local disk: nothing acknowledged is lost on `kill -9`, SIGTERM
//! flushes, idle rooms unload and reload, a large document survives a restart.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::time::{Duration, Instant};

use dure_tests::server::{Dure, temp_dir};
use dure_tests::yclient::{ConnectOptions, YClient};
use rand::{Rng, SeedableRng};
use yrs::updates::decoder::Decode;
use yrs::{ReadTxn, StateVector, Transact, Update};

const T: Duration = Duration::from_secs(15);

async fn client(dure: &Dure, doc: &str, ack: bool) -> YClient {
    let c = YClient::connect(
        &dure.doc_url(doc, false),
        ConnectOptions {
            ack,
            ..Default::default()
        },
    )
    .await
    .expect("connect");
    c.wait_synced(T).await.expect("synced");
    c
}

/// Text of a document as a fresh client sees it.
async fn read_text(dure: &Dure, doc: &str) -> String {
    let c = client(dure, doc, false).await;
    let t = c.text();
    c.close().await.ok();
    t
}

/// One kill -9 round: writers type tokens until a random moment, the server dies, every
/// token covered by an ack must be there after the restart, and all writers converge.
async fn kill_round(seed: u64) {
    println!("kill test seed={seed} (rerun one round with DURE_KILL_SEED={seed})");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let dir = temp_dir().unwrap();
    let data = dir.path().join("data");
    let mut dure = Dure::start(&data, &[]).await.unwrap();
    let writers = 4;
    let mut clients = Vec::new();
    for _ in 0..writers {
        clients.push(client(&dure, "killed", true).await);
    }
    let kill_after = Duration::from_millis(rng.random_range(200..1500));
    // token, client index, seq of the frame that carried it
    let mut written: Vec<(String, usize, u64)> = Vec::new();
    let started = Instant::now();
    let mut k = 0u64;
    while started.elapsed() < kill_after {
        for (i, c) in clients.iter().enumerate() {
            let token = format!("<{i}.{k}>");
            // Only at either end, so no token is ever split by another's insert.
            let at = if rng.random_bool(0.5) {
                0
            } else {
                c.text_len()
            };
            let sent = c.insert(at, &token).expect("insert");
            written.push((token, i, sent.seq));
        }
        k += 1;
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..4))).await;
    }
    dure.kill9().await.unwrap();
    let acked: Vec<u64> = clients.iter().map(|c| c.acked()).collect();
    let must_have: Vec<&String> = written
        .iter()
        .filter(|(_, i, seq)| *seq <= acked[*i])
        .map(|(t, _, _)| t)
        .collect();
    println!(
        "seed={seed}: {} tokens written, {} acknowledged before kill -9 at {kill_after:?}",
        written.len(),
        must_have.len()
    );
    assert!(
        !must_have.is_empty(),
        "seed {seed}: nothing was acknowledged before the kill; the test proves nothing"
    );

    let dure = Dure::start(&data, &[]).await.unwrap();
    let text = read_text(&dure, "killed").await;
    let missing: Vec<&&String> = must_have
        .iter()
        .filter(|t| !text.contains(t.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "seed {seed}: acknowledged tokens lost after kill -9: {:?} (of {})",
        &missing[..missing.len().min(10)],
        must_have.len()
    );

    // Every writer reconnects with its replica (as y-websocket does) and all converge.
    let mut again = Vec::new();
    for old in &clients {
        let state = old
            .doc()
            .transact()
            .encode_state_as_update_v1(&StateVector::default());
        let c = client(&dure, "killed", true).await;
        c.edit(|txn, _| {
            txn.apply_update(Update::decode_v1(&state).expect("decode"))
                .expect("apply")
        });
        again.push(c);
    }
    let all: HashSet<&String> = written.iter().map(|(t, _, _)| t).collect();
    let reference = &again[0];
    reference
        .wait_for("all tokens", T, |c| {
            let t = c.text();
            all.iter().all(|tok| t.contains(tok.as_str()))
        })
        .await
        .unwrap_or_else(|e| panic!("seed {seed}: writers did not converge: {e}"));
    let final_text = reference.text();
    for c in &again {
        c.wait_text(&final_text, T)
            .await
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        let n = c.sent_updates();
        c.wait_acked(n, T)
            .await
            .unwrap_or_else(|e| panic!("seed {seed}: resent replica not acked: {e}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_loses_nothing_acknowledged() {
    let seeds: Vec<u64> = match std::env::var("DURE_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        Some(s) => vec![s],
        None => (0..4).map(|_| rand::random()).collect(),
    };
    for seed in seeds {
        kill_round(seed).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_flushes_every_room_and_closes_with_1012() {
    let dir = temp_dir().unwrap();
    let data = dir.path().join("data");
    // A long commit interval holds batches back: only the shutdown flush can write them.
    let mut dure = Dure::start(&data, &["--commit-interval", "30s"])
        .await
        .unwrap();
    let mut clients = Vec::new();
    for doc in ["term-a", "term-b", "term-c"] {
        let c = client(&dure, doc, true).await;
        c.insert(0, "first").expect("insert");
        clients.push((doc, c));
    }
    for (_, c) in &clients {
        c.wait_acked(c.sent_updates(), T)
            .await
            .expect("first write acked");
    }
    for (doc, c) in &clients {
        for i in 0..20 {
            c.insert(c.text_len(), &format!(" {doc}{i}"))
                .expect("insert");
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (_, c) in &clients {
        assert!(
            c.acked() < c.sent_updates(),
            "held-back batch was acknowledged before shutdown"
        );
    }
    let started = Instant::now();
    let code = dure
        .sigterm(Duration::from_secs(15))
        .await
        .expect("exit after SIGTERM");
    assert_eq!(code, Some(0), "logs:\n{}", dure.logs());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "shutdown took {:?}",
        started.elapsed()
    );
    for (doc, c) in &clients {
        let close = c.wait_closed(T).await.expect("closed");
        assert_eq!(close.map(|c| c.0), Some(1012), "{doc}");
        assert_eq!(
            c.acked(),
            c.sent_updates(),
            "{doc}: shutdown must flush and ack before closing"
        );
    }
    let dure = Dure::start(&data, &[]).await.unwrap();
    for (doc, c) in &clients {
        assert_eq!(read_text(&dure, doc).await, c.text(), "{doc}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_room_unloads_and_reloads() {
    let dir = temp_dir().unwrap();
    let dure = Dure::start(&dir.path().join("data"), &["--idle-unload", "300ms"])
        .await
        .unwrap();
    let c = client(&dure, "idle", true).await;
    c.insert(0, "still here after unload").expect("insert");
    c.wait_acked(c.sent_updates(), T).await.expect("acked");
    c.close().await.ok();
    let deadline = Instant::now() + T;
    loop {
        let (_, metrics) = dure.get("/metrics").await.unwrap();
        if metrics.lines().any(|l| l == "dure_rooms_loaded 0") {
            break;
        }
        assert!(Instant::now() < deadline, "room never unloaded:\n{metrics}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(read_text(&dure, "idle").await, "still here after unload");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn large_document_survives_restart() {
    let dir = temp_dir().unwrap();
    let data = dir.path().join("data");
    let mut dure = Dure::start(&data, &["--compact-after-entries", "50"])
        .await
        .unwrap();
    let c = client(&dure, "large", true).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for i in 0..2000u32 {
        let len = c.text_len();
        if i % 5 == 4 && len > 100 {
            c.delete(rng.random_range(0..len - 50), 20).expect("delete");
        } else {
            let line: String = (0..rng.random_range(50..250))
                .map(|_| rng.random_range(b'a'..=b'z') as char)
                .collect();
            c.insert(rng.random_range(0..=len), &line).expect("insert");
        }
    }
    c.wait_acked(c.sent_updates(), Duration::from_secs(60))
        .await
        .expect("all acked");
    let want = c.text();
    assert!(want.len() > 150_000, "document only {} bytes", want.len());
    dure.sigterm(T).await.expect("stop");
    let dure = Dure::start(&data, &[]).await.unwrap();
    let started = Instant::now();
    let got = read_text(&dure, "large").await;
    println!("reloaded {} chars in {:?}", got.len(), started.elapsed());
    assert_eq!(got, want);
}
