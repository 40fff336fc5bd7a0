//! Scenarios shared by the black-box test files.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::time::{Duration, Instant};

use dure_tests::server::{Dure, temp_dir};
use dure_tests::yclient::{ConnectOptions, YClient};
use rand::{Rng, SeedableRng};
use yrs::updates::decoder::Decode;
use yrs::{ReadTxn, StateVector, Transact, Update};

pub const T: Duration = Duration::from_secs(15);

pub async fn client(dure: &Dure, doc: &str, ack: bool) -> YClient {
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
pub async fn read_text(dure: &Dure, doc: &str) -> String {
    let c = client(dure, doc, false).await;
    let t = c.text();
    c.close().await.ok();
    t
}

/// One kill -9 round: writers type tokens until a random moment, the server dies, every
/// token covered by an ack must be there after the restart, and all writers converge.
pub async fn kill_round(seed: u64, flags: &[String]) {
    println!("kill test seed={seed} (rerun one round with DURE_KILL_SEED={seed})");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let dir = temp_dir().unwrap();
    let data = dir.path().join("data");
    let args: Vec<&str> = flags.iter().map(String::as_str).collect();
    let mut dure = Dure::start(&data, &args).await.unwrap();
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

    let dure = Dure::start(&data, &args).await.unwrap();
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
