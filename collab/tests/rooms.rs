//! Engine tests: rooms driven through in-process connections, no network.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{Client, doc_id};
use dure_collab::{CloseReason, NoopObserver, RoomConfig, Rooms, protocol};
use dure_storage::{DocStore, Store};
use rand::{Rng, SeedableRng};

const T: Duration = Duration::from_secs(5);

fn rooms_with(store: &Store, cfg: RoomConfig) -> Rooms {
    Rooms::new(DocStore::new(store.clone()), cfg, Arc::new(NoopObserver))
}

async fn stored_text(store: &Store, doc: &str) -> String {
    // A fresh registry on the same store: what a restarted server would load.
    let rooms = rooms_with(store, RoomConfig::default());
    let mut c = Client::join(&rooms, doc, 999, false).await;
    c.pump_for(Duration::from_millis(200)).await;
    let t = c.text();
    drop(c);
    rooms.shutdown(T).await;
    t
}

#[tokio::test]
async fn updates_fan_out_and_acks_count_durable_frames() {
    let store = Store::memory();
    let rooms = rooms_with(&store, RoomConfig::default());
    let mut a = Client::join(&rooms, "d1", 1, true).await;
    let mut b = Client::join(&rooms, "d1", 2, false).await;
    a.pump_for(Duration::from_millis(50)).await;
    b.pump_for(Duration::from_millis(50)).await;
    a.insert(0, "hello").await;
    a.insert(5, " world").await;
    assert!(
        b.pump_until(T, |c| c.text() == "hello world").await,
        "b got {:?}",
        b.text()
    );
    let sent = a.sent;
    assert!(
        a.pump_until(T, |c| c.acked == c.sent).await,
        "acked {} of {}",
        a.acked,
        sent
    );
    b.insert(0, ">").await;
    b.pump_for(Duration::from_millis(100)).await;
    assert_eq!(
        b.acked, 0,
        "a client without ack=1 must never see message 100"
    );
    assert!(a.pump_until(T, |c| c.text() == ">hello world").await);
    assert_eq!(stored_text(&store, "d1").await, ">hello world");
}

#[tokio::test]
async fn malformed_and_refused_frames_close_only_that_connection() {
    let store = Store::memory();
    let rooms = rooms_with(&store, RoomConfig::default());
    let mut good = Client::join(&rooms, "d2", 1, true).await;
    good.insert(0, "keep me").await;
    assert!(good.pump_until(T, |c| c.acked == c.sent).await);
    type Expect = fn(&CloseReason) -> bool;
    let cases: Vec<(Bytes, Expect)> = vec![
        (Bytes::from_static(&[0, 9, 0]), |r| {
            matches!(r, CloseReason::Malformed(_))
        }),
        (Bytes::from_static(&[77]), |r| {
            matches!(r, CloseReason::Malformed(_))
        }),
        (Bytes::from_static(&[0, 2, 5, 1, 2]), |r| {
            matches!(r, CloseReason::Malformed(_))
        }),
        (protocol::update(&[0xff, 0xff, 0xff, 0x01, 0x03]), |r| {
            matches!(r, CloseReason::InvalidUpdate(_))
        }),
        (protocol::sync_step1(&[0xff]), |r| {
            matches!(r, CloseReason::Malformed(_))
        }),
        (protocol::awareness(&[5, 1]), |r| {
            matches!(r, CloseReason::Malformed(_))
        }),
    ];
    for (i, (frame, expect)) in cases.into_iter().enumerate() {
        let mut bad = Client::join(&rooms, "d2", 10 + i as u64, false).await;
        bad.send_raw(frame.clone()).await;
        bad.pump_until(T, |c| c.closed.is_some()).await;
        let reason = bad
            .closed
            .clone()
            .unwrap_or_else(|| panic!("case {i}: not closed"));
        assert!(
            expect(&reason),
            "case {i} ({frame:?}): closed with {reason:?}"
        );
    }
    good.insert(7, "!").await;
    assert!(
        good.pump_until(T, |c| c.acked == c.sent).await,
        "the good client must go on"
    );
    assert!(good.closed.is_none());
    assert_eq!(stored_text(&store, "d2").await, "keep me!");
}

#[tokio::test]
async fn awareness_is_echoed_and_removed_when_a_connection_closes() {
    let rooms = rooms_with(&Store::memory(), RoomConfig::default());
    let mut a = Client::join(&rooms, "d3", 1, false).await;
    let mut b = Client::join(&rooms, "d3", 2, false).await;
    a.set_awareness(1, r#"{"user":"a"}"#).await;
    assert!(
        a.pump_until(T, |c| c.awareness.contains_key(&1)).await,
        "sender gets its own echo"
    );
    assert!(
        b.pump_until(T, |c| c
            .awareness
            .get(&1)
            .is_some_and(|s| s.contains("\"a\"")))
            .await
    );
    // b cannot impersonate or remove a.
    let mut forged = vec![1u8];
    common::write_var(&mut forged, 1);
    common::write_var(&mut forged, 50);
    common::write_var(&mut forged, 4);
    forged.extend_from_slice(b"null");
    b.send_raw(protocol::awareness(&forged)).await;
    b.pump_for(Duration::from_millis(100)).await;
    assert!(b.awareness.contains_key(&1), "a forged removal was applied");
    // A late joiner sees the current states.
    let mut c = Client::join(&rooms, "d3", 3, false).await;
    assert!(c.pump_until(T, |c| c.awareness.contains_key(&1)).await);
    drop(a);
    assert!(
        b.pump_until(T, |c| !c.awareness.contains_key(&1)).await,
        "a's state must go when a leaves"
    );
    assert!(c.pump_until(T, |c| !c.awareness.contains_key(&1)).await);
}

#[tokio::test]
async fn oversized_awareness_closes_and_bursts_are_coalesced() {
    let cfg = RoomConfig {
        awareness_max_bytes: 200,
        awareness_rate: 2.0,
        awareness_burst: 2.0,
        ..RoomConfig::default()
    };
    let rooms = rooms_with(&Store::memory(), cfg);
    let mut a = Client::join(&rooms, "d4", 1, false).await;
    let mut b = Client::join(&rooms, "d4", 2, false).await;
    for clock in 1..=20 {
        a.set_awareness(clock, &format!(r#"{{"cursor":{clock}}}"#))
            .await;
    }
    // Only the burst passes at once; the newest state arrives after refill, nothing older.
    assert!(
        b.pump_until(T, |c| c
            .awareness
            .get(&1)
            .is_some_and(|s| s.contains(":20}")))
            .await,
        "newest state must arrive: {:?}",
        b.awareness
    );
    assert!(
        b.frames_seen < 15,
        "rate limit did not hold: {} frames",
        b.frames_seen
    );
    a.set_awareness(21, &format!(r#"{{"big":"{}"}}"#, "x".repeat(300)))
        .await;
    a.pump_until(T, |c| c.closed.is_some()).await;
    assert!(
        matches!(a.closed, Some(CloseReason::AwarenessTooLarge { .. })),
        "{:?}",
        a.closed
    );
}

#[tokio::test]
async fn slow_reader_is_resynced_with_one_diff() {
    let cfg = RoomConfig {
        outbound_queue: 8,
        ..RoomConfig::default()
    };
    let rooms = rooms_with(&Store::memory(), cfg);
    let mut writer = Client::join(&rooms, "d5", 1, false).await;
    let mut slow = Client::join(&rooms, "d5", 2, false).await;
    slow.pump_for(Duration::from_millis(50)).await;
    writer.pump_for(Duration::from_millis(50)).await;
    // The slow client reads nothing while 200 updates go by: its queue (8) overflows.
    for i in 0..200u32 {
        writer.insert(i, "x").await;
    }
    writer.pump_for(Duration::from_millis(100)).await;
    let want = writer.text();
    assert_eq!(want.len(), 200);
    assert!(
        slow.pump_until(T, |c| c.text() == want).await,
        "slow reader not resynced: {} chars",
        slow.text().len()
    );
    assert!(
        slow.frames_seen < 40,
        "resync should be one diff, saw {} frames",
        slow.frames_seen
    );
    assert!(slow.closed.is_none());
}

#[tokio::test]
async fn slow_reader_that_never_reads_is_closed_with_a_retryable_reason() {
    let cfg = RoomConfig {
        outbound_queue: 4,
        slow_reader_timeout: Duration::from_millis(300),
        ..RoomConfig::default()
    };
    let rooms = rooms_with(&Store::memory(), cfg);
    let mut writer = Client::join(&rooms, "d6", 1, false).await;
    let mut stuck = Client::join(&rooms, "d6", 2, false).await;
    for i in 0..50u32 {
        writer.insert(i, "y").await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stuck.pump_until(T, |c| c.closed.is_some()).await;
    assert_eq!(stuck.closed, Some(CloseReason::SlowReader));
}

#[tokio::test]
async fn idle_room_unloads_after_flushing_and_reloads() {
    let store = Store::memory();
    let cfg = RoomConfig {
        idle_unload: Duration::from_millis(200),
        ..RoomConfig::default()
    };
    let rooms = rooms_with(&store, cfg);
    let mut a = Client::join(&rooms, "d7", 1, false).await;
    a.insert(0, "persist across unload").await;
    a.pump_for(Duration::from_millis(50)).await;
    drop(a);
    let deadline = tokio::time::Instant::now() + T;
    while rooms.loaded() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(rooms.loaded(), 0, "room did not unload");
    let mut b = Client::join(&rooms, "d7", 2, false).await;
    assert!(
        b.pump_until(T, |c| c.text() == "persist across unload")
            .await,
        "got {:?}",
        b.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_while_clients_write_keeps_everything_and_bounds_objects() {
    let store = Store::memory();
    let cfg = RoomConfig {
        compact_after_entries: 10,
        ..RoomConfig::default()
    };
    let rooms = rooms_with(&store, cfg);
    let mut a = Client::join(&rooms, "d8", 1, true).await;
    let mut b = Client::join(&rooms, "d8", 2, true).await;
    for i in 0..300u32 {
        a.insert(0, "a").await;
        if i % 3 == 0 {
            b.insert(0, "b").await;
        }
        if i % 20 == 0 {
            a.pump_for(Duration::from_millis(5)).await;
            b.pump_for(Duration::from_millis(5)).await;
        }
    }
    assert!(a.pump_until(T, |c| c.acked == c.sent).await);
    assert!(b.pump_until(T, |c| c.acked == c.sent).await);
    assert!(a.pump_until(T, |c| c.len() == 400).await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let objects = store.list("docs/d8/").await.unwrap();
    assert!(
        objects.iter().any(|o| o.key.as_str().contains("snapshot-")),
        "no snapshot written"
    );
    assert!(
        objects.len() < 40,
        "compaction left {} objects",
        objects.len()
    );
    let text = stored_text(&store, "d8").await;
    assert_eq!(text.len(), 400);
    assert_eq!(text.matches('b').count(), 100);
}

#[tokio::test]
async fn shutdown_flushes_acks_then_closes_with_restart() {
    let store = Store::memory();
    let rooms = rooms_with(&store, RoomConfig::default());
    let mut a = Client::join(&rooms, "d9", 1, true).await;
    for i in 0..50u32 {
        a.insert(i, "z").await;
    }
    let sent = a.sent;
    assert!(rooms.shutdown(T).await, "shutdown did not finish");
    a.pump_until(T, |c| c.closed.is_some()).await;
    assert_eq!(a.closed, Some(CloseReason::Restart));
    assert_eq!(
        a.acked, sent,
        "every update must be acknowledged before the restart close"
    );
    assert_eq!(stored_text(&store, "d9").await, "z".repeat(50));
}

#[tokio::test]
async fn a_document_that_cannot_be_loaded_is_refused_not_served_empty() {
    let store = Store::memory();
    let docs = DocStore::new(store.clone());
    docs.append(
        &doc_id("broken"),
        0,
        &dure_storage::WriterId::random(),
        &[Bytes::from_static(&[0xff, 0x00, 0x13])],
    )
    .await
    .unwrap();
    let rooms = rooms_with(&store, RoomConfig::default());
    let err = rooms
        .join(&doc_id("broken"), Default::default())
        .await
        .expect_err("must refuse");
    assert!(err.to_string().contains("unavailable"), "{err}");
    // Nothing was written over it.
    let listing = store.list("docs/broken/").await.unwrap();
    assert_eq!(listing.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn randomized_clients_converge() {
    let seed: u64 = std::env::var("DURE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    println!("randomized_clients_converge seed={seed} (rerun with DURE_SEED={seed})");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let store = Store::memory();
    let cfg = RoomConfig {
        outbound_queue: 16,
        ..RoomConfig::default()
    };
    let rooms = rooms_with(&store, cfg);
    let mut clients = Vec::new();
    for i in 0..5u64 {
        clients.push(Client::join(&rooms, "rand", 100 + i, true).await);
    }
    for _ in 0..400 {
        let c = &mut clients[rng.random_range(0..5)];
        let len = c.len();
        match rng.random_range(0..10) {
            0..=6 => {
                let pos = rng.random_range(0..=len);
                let s: String = (0..rng.random_range(1..4))
                    .map(|_| rng.random_range(b'a'..=b'z') as char)
                    .collect();
                c.insert(pos, &s).await;
            }
            7..=8 if len > 0 => {
                let pos = rng.random_range(0..len);
                let n = rng.random_range(1..=(len - pos).min(3));
                c.delete(pos, n).await;
            }
            _ => {
                let d = Duration::from_millis(rng.random_range(0..3));
                c.pump_for(d).await;
            }
        }
    }
    for c in clients.iter_mut() {
        assert!(
            c.pump_until(T, |c| c.acked == c.sent).await,
            "seed {seed}: not all acked"
        );
    }
    // Everyone converges on one text, equal to what the store holds.
    let mut texts = Vec::new();
    for c in clients.iter_mut() {
        c.pump_for(Duration::from_millis(300)).await;
        texts.push(c.text());
    }
    assert!(
        texts.windows(2).all(|w| w[0] == w[1]),
        "seed {seed}: diverged: {texts:?}"
    );
    assert_eq!(stored_text(&store, "rand").await, texts[0], "seed {seed}");
}
