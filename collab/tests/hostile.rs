//! Engine tests for hostile clients: one connection must never take the room (or the
//! process) down, nor make the server hold memory out of proportion to what it sent.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{Client, doc_id, write_var};
use dure_collab::{
    CloseReason, ConnectionReceiver, JoinOptions, NoopObserver, Outgoing, PresenceUser, RoomConfig,
    Rooms, protocol,
};
use dure_storage::{DocStore, Store};
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{Array, Doc, StateVector, Transact, Update};

const T: Duration = Duration::from_secs(5);

fn rooms_with(cfg: RoomConfig) -> Rooms {
    Rooms::new(DocStore::new(Store::memory()), cfg, Arc::new(NoopObserver))
}

/// An update holding one `Any` value nested `levels` arrays deep (`[117, 1]` repeated,
/// then null), as in the report: about 2 bytes a level.
fn nested_update(levels: usize) -> Vec<u8> {
    // One client (id 7, clock 0) with one item: parent named "a", Any content of one value.
    let mut u = vec![1, 1, 7, 0, 8, 1, 1, b'a', 1];
    for _ in 0..levels {
        u.extend_from_slice(&[117, 1]);
    }
    u.push(126);
    u.push(0); // empty delete set
    u
}

async fn closed_reason(c: &mut Client) -> CloseReason {
    c.pump_until(T, |c| c.closed.is_some()).await;
    c.closed.clone().expect("closed")
}

/// The good client still edits and is acknowledged.
async fn still_serves(good: &mut Client, at: u32) {
    good.insert(at, "!").await;
    assert!(
        good.pump_until(T, |c| c.acked == c.sent).await,
        "the room must go on serving"
    );
    assert!(good.closed.is_none());
}

#[tokio::test]
async fn deep_nesting_is_refused_before_yrs_decodes_it() {
    let rooms = rooms_with(RoomConfig::default());
    let mut good = Client::join(&rooms, "deep", 1, true).await;
    good.insert(0, "x").await;
    assert!(good.pump_until(T, |c| c.acked == c.sent).await);
    // 7,500 levels (15 KB) overflowed the stack and aborted the process.
    for frame in [
        protocol::update(&nested_update(7_500)),
        protocol::sync_step2(&nested_update(65)),
    ] {
        let mut bad = Client::join(&rooms, "deep", 2, false).await;
        bad.send_raw(frame).await;
        match closed_reason(&mut bad).await {
            CloseReason::InvalidUpdate(why) => assert!(why.contains("nest"), "{why}"),
            other => panic!("closed with {other:?}"),
        }
    }
    // Within the limit it is an ordinary update.
    let mut ok = Client::join(&rooms, "deep", 3, false).await;
    ok.send_raw(protocol::update(&nested_update(63))).await;
    ok.pump_for(Duration::from_millis(200)).await;
    assert!(ok.closed.is_none(), "{:?}", ok.closed);
    still_serves(&mut good, 1).await;
}

/// The backstop: even with the nesting limit at its maximum, decoding on a thread with a
/// small stack does not overflow it (the engine switches to a larger stack first).
#[test]
fn decoding_runs_on_a_guaranteed_stack() {
    let worker = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let rooms = rooms_with(RoomConfig {
                    max_nesting_depth: dure_collab::MAX_NESTING_DEPTH_LIMIT,
                    ..RoomConfig::default()
                });
                let mut a = Client::join(&rooms, "stack", 1, true).await;
                a.send_raw(protocol::update(&nested_update(990))).await;
                a.sent += 1;
                let acked = a.pump_until(T, |c| c.acked == c.sent).await;
                // A second connection is sent the document (encoding recurses as deep); it
                // only looks at the frame, since decoding it here would need the stack.
                let mut b = rooms
                    .join(&doc_id("stack"), JoinOptions::default())
                    .await
                    .unwrap();
                let empty = StateVector::default().encode_v1();
                b.sender.send(protocol::sync_step1(&empty)).await.unwrap();
                let mut got_state = false;
                while let Ok(Outgoing::Frame(f)) = tokio::time::timeout(T, b.receiver.next()).await
                {
                    if is_step2(&f) {
                        got_state = f.len() > 990 * 2;
                        break;
                    }
                }
                let a_closed = a.closed.clone();
                drop((a, b));
                // Unloading drops the document, which recurses as deep too.
                assert!(rooms.shutdown(T).await);
                (acked && got_state, a_closed)
            })
        })
        .unwrap();
    let (served, a_closed) = worker.join().expect("no stack overflow");
    assert!(served, "the deep update was applied, stored and sent on");
    assert_eq!(a_closed, None);
}

#[tokio::test]
async fn declared_counts_beyond_the_input_are_refused() {
    let rooms = rooms_with(RoomConfig::default());
    let mut good = Client::join(&rooms, "counts", 1, true).await;
    good.insert(0, "x").await;
    assert!(good.pump_until(T, |c| c.acked == c.sent).await);
    let cases = [
        // 8 bytes declaring 2^28 state-vector entries (yrs reserved 537 MB).
        (
            protocol::sync_step1(&[0x80, 0x80, 0x80, 0x80, 0x01, 1, 1, 1]),
            true,
        ),
        // 2^28 update clients in 7 bytes.
        (
            protocol::update(&[0x80, 0x80, 0x80, 0x80, 0x01, 0, 0]),
            false,
        ),
        // A client section declaring 2^31 blocks.
        (
            protocol::update(&[1, 0x80, 0x80, 0x80, 0x80, 0x08, 1, 0, 0, 1]),
            false,
        ),
    ];
    for (i, (frame, malformed)) in cases.into_iter().enumerate() {
        let mut bad = Client::join(&rooms, "counts", 10 + i as u64, false).await;
        bad.send_raw(frame).await;
        let reason = closed_reason(&mut bad).await;
        let text = reason.to_string();
        assert!(text.contains("declares"), "case {i}: {text}");
        assert_eq!(
            matches!(reason, CloseReason::Malformed(_)),
            malformed,
            "case {i}: {reason:?}"
        );
    }
    still_serves(&mut good, 1).await;
}

/// Frames queued for a connection right now, without waiting.
fn drain(r: &mut ConnectionReceiver) -> Vec<Bytes> {
    std::iter::from_fn(|| r.try_next()).collect()
}

fn is_step2(f: &Bytes) -> bool {
    f.starts_with(&[0, 1])
}

#[tokio::test]
async fn sync_step1_is_answered_one_at_a_time() {
    let rooms = rooms_with(RoomConfig::default());
    let mut writer = Client::join(&rooms, "amp", 1, true).await;
    writer.insert(0, &"y".repeat(200_000)).await;
    assert!(writer.pump_until(T, |c| c.acked == c.sent).await);
    // A connection that asks 300 times and reads nothing.
    let mut greedy = rooms
        .join(&doc_id("amp"), JoinOptions::default())
        .await
        .unwrap();
    let empty = StateVector::default().encode_v1();
    for _ in 0..300 {
        greedy
            .sender
            .send(protocol::sync_step1(&empty))
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let answers = drain(&mut greedy.receiver)
        .iter()
        .filter(|f| is_step2(f))
        .count();
    assert_eq!(answers, 1, "one answer outstanding, not {answers}");
    // Once it was written, the newest question is answered; the other 298 were coalesced.
    let next = tokio::time::timeout(T, greedy.receiver.next())
        .await
        .unwrap();
    assert!(
        matches!(&next, Outgoing::Frame(f) if is_step2(f)),
        "{next:?}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        drain(&mut greedy.receiver)
            .iter()
            .filter(|f| is_step2(f))
            .count(),
        0
    );
    drop(greedy);
    still_serves(&mut writer, 0).await;
}

#[tokio::test]
async fn outbound_queues_are_bounded_in_bytes() {
    let limit = 64 * 1024;
    let rooms = rooms_with(RoomConfig {
        outbound_queue_bytes: limit,
        ..RoomConfig::default()
    });
    let mut writer = Client::join(&rooms, "bytes", 1, true).await;
    writer.pump_for(Duration::from_millis(50)).await;
    let mut idle = Client::join(&rooms, "bytes", 2, false).await;
    idle.pump_for(Duration::from_millis(50)).await;
    // 40 updates of 10 KB: 400 KB, far below the frame cap of 1,024.
    for i in 0..40 {
        writer.insert(i * 10_000, &"z".repeat(10_000)).await;
    }
    assert!(writer.pump_until(T, |c| c.acked == c.sent).await);
    let queued = idle.handle_queued();
    assert!(
        queued <= limit,
        "{queued} bytes queued for a {limit}-byte queue"
    );
    // Behind, it is caught up with one diff once it reads.
    assert!(
        idle.pump_until(T, |c| c.len() == 400_000).await,
        "caught up to {} of 400000",
        idle.len()
    );
}

fn awareness_of(clients: impl IntoIterator<Item = u64>, json: &str) -> Bytes {
    let clients: Vec<u64> = clients.into_iter().collect();
    let mut p = Vec::new();
    write_var(&mut p, clients.len() as u64);
    for c in clients {
        write_var(&mut p, c);
        write_var(&mut p, 1);
        write_var(&mut p, json.len() as u64);
        p.extend_from_slice(json.as_bytes());
    }
    protocol::awareness(&p)
}

#[tokio::test]
async fn awareness_client_ids_are_capped_per_connection_and_room() {
    let rooms = rooms_with(RoomConfig {
        awareness_clients_per_room: 3,
        ..RoomConfig::default()
    });
    let mut watcher = Client::join(&rooms, "aw", 1, false).await;
    // 4,500 client ids in one message (the report's flood).
    let mut flood = Client::join(&rooms, "aw", 2, false).await;
    flood.send_raw(awareness_of(1_000..5_500, "{}")).await;
    match closed_reason(&mut flood).await {
        CloseReason::Malformed(why) => assert!(why.contains("client ids"), "{why}"),
        other => panic!("closed with {other:?}"),
    }
    watcher.pump_for(Duration::from_millis(100)).await;
    assert!(watcher.awareness.is_empty(), "nothing of the flood relayed");
    // The room holds three live states; a fourth client is not shown.
    let mut present = Vec::new();
    for id in 10..14 {
        let mut c = Client::join(&rooms, "aw", id, false).await;
        c.set_awareness(1, r#"{"n":1}"#).await;
        c.pump_for(Duration::from_millis(50)).await;
        present.push(c);
    }
    watcher.pump_for(Duration::from_millis(200)).await;
    assert_eq!(watcher.awareness.len(), 3, "{:?}", watcher.awareness);
    assert!(!watcher.awareness.contains_key(&13));
    assert!(present.iter().all(|c| c.closed.is_none()));
}

#[tokio::test]
async fn query_awareness_is_rate_limited_and_answered_one_at_a_time() {
    let rooms = rooms_with(RoomConfig::default());
    let mut here = Client::join(&rooms, "qa", 1, false).await;
    here.set_awareness(1, r#"{"n":"here"}"#).await;
    here.pump_until(T, |c| !c.awareness.is_empty()).await;
    let mut asker = Client::join(&rooms, "qa", 2, false).await;
    asker.pump_for(Duration::from_millis(100)).await;
    for _ in 0..200 {
        asker.send_raw(Bytes::from_static(&[3])).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let answers = drain(&mut asker.conn.receiver)
        .iter()
        .filter(|f| f[0] == 1)
        .count();
    assert_eq!(answers, 1, "{answers} presence answers queued");
}

#[tokio::test]
async fn awareness_that_is_not_json_closes_the_sender_and_is_not_relayed() {
    let rooms = rooms_with(RoomConfig::default());
    let mut watcher = Client::join(&rooms, "json", 1, false).await;
    let deep = format!("{}1{}", "[".repeat(100), "]".repeat(100));
    for (i, bad) in ["{not json", "undefined", &deep].into_iter().enumerate() {
        let mut c = Client::join(&rooms, "json", 10 + i as u64, false).await;
        c.set_awareness(1, bad).await;
        match closed_reason(&mut c).await {
            CloseReason::Malformed(why) => {
                assert!(why.contains("not JSON") || why.contains("deeper"), "{why}")
            }
            other => panic!("{bad}: closed with {other:?}"),
        }
    }
    watcher.pump_for(Duration::from_millis(100)).await;
    assert!(watcher.awareness.is_empty(), "{:?}", watcher.awareness);
}

#[tokio::test]
async fn presence_carries_the_authenticated_user() {
    let rooms = rooms_with(RoomConfig::default());
    let mut alice = Client::join(&rooms, "who", 1, false).await;
    let mut bob = Client::join(&rooms, "who", 2, false).await;
    for (c, id, name) in [(&alice, "alice", "Alice Kim"), (&bob, "bob", "Bob Lee")] {
        c.conn
            .sender
            .identify(PresenceUser {
                id: id.into(),
                name: name.into(),
            })
            .await
            .unwrap();
    }
    bob.set_awareness(
        1,
        r##"{"user":{"id":"alice","name":"Alice Kim","color":"#f00"}}"##,
    )
    .await;
    assert!(alice.pump_until(T, |c| c.awareness.contains_key(&2)).await);
    let state: serde_json::Value = serde_json::from_str(&alice.awareness[&2]).unwrap();
    assert_eq!(
        state["user"],
        serde_json::json!({"id": "bob", "name": "Bob Lee", "color": "#f00"})
    );
    bob.pump_for(Duration::from_millis(50)).await;
}

#[test]
fn hand_built_updates_have_the_yrs_layout() {
    let u = nested_update(3);
    dure_collab::validate::update_v1(&u, 64).unwrap();
    let decoded = Update::decode_v1(&u).unwrap();
    let doc = Doc::new();
    doc.transact_mut().apply_update(decoded).unwrap();
    let arr = doc.get_or_insert_array("a");
    assert_eq!(arr.len(&doc.transact()), 1);
}
