//! Hostile clients against the real binary (issue 10): one client must never take the
//! process down nor make it hold memory out of proportion to what it sent. Memory is read
//! from the child's /proc/PID/status.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{T, client};
use dure_tests::server::{Dure, temp_dir};
use dure_tests::yclient::{ConnectOptions, YClient};
use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;

const MB: u64 = 1024 * 1024;

/// (VmRSS, VmHWM) of the process, in bytes.
fn memory(dure: &Dure) -> (u64, u64) {
    let pid = dure.pid().expect("dure running");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
            .unwrap_or_else(|| panic!("{name} in {status}"))
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn var(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn framed(prefix: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut f = prefix.to_vec();
    var(&mut f, payload.len() as u64);
    f.extend_from_slice(payload);
    f
}

fn awareness(states: &[(u64, &str)]) -> Vec<u8> {
    let mut p = Vec::new();
    var(&mut p, states.len() as u64);
    for (client, json) in states {
        var(&mut p, *client);
        var(&mut p, 1);
        var(&mut p, json.len() as u64);
        p.extend_from_slice(json.as_bytes());
    }
    framed(&[1], &p)
}

async fn start() -> (tempfile::TempDir, Dure) {
    let dir = temp_dir().unwrap();
    let dure = Dure::start(&dir.path().join("data"), &[]).await.unwrap();
    (dir, dure)
}

async fn closed_code(c: &YClient) -> Option<u16> {
    c.wait_closed(T).await.unwrap().map(|(code, _)| code)
}

/// The process is alive and still serves edits.
async fn still_serves(dure: &Dure, doc: &str) {
    assert_eq!(
        dure.get("/healthz").await.unwrap().0,
        200,
        "{}",
        dure.logs()
    );
    let a = client(dure, doc, true).await;
    let b = client(dure, doc, false).await;
    a.insert(0, "still here ").unwrap();
    b.wait_text_matches(T, |t| t.starts_with("still here "))
        .await
        .unwrap();
    a.wait_acked(a.sent_updates(), T).await.unwrap();
}

#[tokio::test]
async fn deep_nesting_closes_the_sender_and_the_process_survives() {
    let (_dir, dure) = start().await;
    // One Any item nesting arrays 7,500 deep ([117,1] repeated, then null): 15 KB that
    // aborted the whole process.
    let mut update = vec![1, 1, 7, 0, 8, 1, 1, b'a', 1];
    for _ in 0..7_500 {
        update.extend_from_slice(&[117, 1]);
    }
    update.extend_from_slice(&[126, 0]);
    for prefix in [[0u8, 2], [0, 1]] {
        let bad = client(&dure, "deep", false).await;
        bad.send_raw(framed(&prefix, &update)).unwrap();
        assert_eq!(closed_code(&bad).await, Some(1007), "{:?}", bad.closed());
    }
    still_serves(&dure, "deep").await;
}

#[tokio::test]
async fn declared_counts_do_not_allocate_and_close_the_sender() {
    let (_dir, dure) = start().await;
    let c = client(&dure, "counts", false).await;
    drop(c);
    let (_, hwm_before) = memory(&dure);
    // 8 bytes declaring 2^28 state-vector entries (yrs reserved 537 MB), then tiny updates
    // declaring 2^28 clients and 2^31 blocks.
    let cases: [(Vec<u8>, u16); 3] = [
        (
            framed(&[0, 0], &[0x80, 0x80, 0x80, 0x80, 0x01, 1, 1, 1]),
            1002,
        ),
        (framed(&[0, 2], &[0x80, 0x80, 0x80, 0x80, 0x01, 0, 0]), 1007),
        (
            framed(&[0, 2], &[1, 0x80, 0x80, 0x80, 0x80, 0x08, 1, 0, 0, 1]),
            1007,
        ),
    ];
    for (frame, code) in cases {
        let bad = client(&dure, "counts", false).await;
        bad.send_raw(frame).unwrap();
        assert_eq!(closed_code(&bad).await, Some(code), "{:?}", bad.closed());
    }
    let (_, hwm_after) = memory(&dure);
    assert!(
        hwm_after - hwm_before < 64 * MB,
        "peak memory grew by {} MB",
        (hwm_after - hwm_before) / MB
    );
    still_serves(&dure, "counts").await;
}

#[tokio::test]
async fn sync_step1_from_a_client_that_never_reads_does_not_amplify() {
    let (_dir, dure) = start().await;
    let writer = client(&dure, "amp", true).await;
    writer.insert(0, &"m".repeat(1 << 20)).unwrap();
    writer.wait_acked(writer.sent_updates(), T).await.unwrap();
    let (rss_before, _) = memory(&dure);
    // 300 six-byte-ish sync step 1 frames on a 1 MB document, never reading the answers.
    let (ws, _) = tokio_tungstenite::connect_async(dure.doc_url("amp", false))
        .await
        .unwrap();
    let (mut sink, _never_read) = futures_util::StreamExt::split(ws);
    for _ in 0..300 {
        sink.send(Message::Binary(vec![0, 0, 1, 0].into()))
            .await
            .unwrap();
    }
    sink.flush().await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (rss_after, _) = memory(&dure);
    let grown = rss_after.saturating_sub(rss_before);
    // Before the fix this grew by about 800 MB (300 answers of 1 MB queued).
    assert!(grown < 100 * MB, "memory grew by {} MB", grown / MB);
    still_serves(&dure, "amp").await;
    drop(sink);
}

#[tokio::test]
async fn awareness_floods_and_bad_states_close_the_sender_only() {
    let (_dir, dure) = start().await;
    let watcher = client(&dure, "aw", false).await;
    // 4,500 client ids in one message (the report's flood, at 10 a second).
    let ids: Vec<(u64, &str)> = (1_000..5_500).map(|c| (c, "{}")).collect();
    let flood = client(&dure, "aw", false).await;
    flood.send_raw(awareness(&ids)).unwrap();
    assert_eq!(
        closed_code(&flood).await,
        Some(1002),
        "{:?}",
        flood.closed()
    );
    // States y-protocols clients cannot JSON.parse are never relayed.
    for bad_state in ["{not json", "undefined"] {
        let bad = client(&dure, "aw", false).await;
        bad.send_raw(awareness(&[(77, bad_state)])).unwrap();
        let (code, reason) = bad.wait_closed(T).await.unwrap().unwrap();
        assert_eq!(code, 1002);
        assert_eq!(reason, "malformed", "a stable code, no parser detail");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        watcher.awareness_states().is_empty(),
        "{:?}",
        watcher.awareness_states()
    );
    assert!(watcher.errors().is_empty(), "{:?}", watcher.errors());
    assert!(watcher.closed().is_none());
}

#[tokio::test]
async fn presence_shows_the_signed_in_user_not_what_the_client_claims() {
    let (_dir, dure) = start().await;
    let watcher = client(&dure, "who", false).await;
    let bob = YClient::connect(&dure.doc_url("who", false), ConnectOptions::default())
        .await
        .unwrap();
    bob.wait_synced(T).await.unwrap();
    bob.set_awareness(r##"{"user":{"id":"alice","name":"Alice Kim","color":"#f00"}}"##)
        .unwrap();
    let bob_id = bob.client_id();
    watcher
        .wait_awareness(T, |s| s.contains_key(&bob_id))
        .await
        .unwrap();
    let state: serde_json::Value =
        serde_json::from_str(&watcher.awareness_states()[&bob_id]).unwrap();
    // Local mode: everyone is the local user.
    assert_eq!(
        state["user"],
        serde_json::json!({"id": "local", "name": "Local user", "color": "#f00"})
    );
}

/// A connection from `source` (any 127.x.y.z is loopback on Linux).
async fn connect_from(source: [u8; 4], to: std::net::SocketAddr) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind(std::net::SocketAddr::from((source, 0)))
        .unwrap();
    socket.connect(to).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_descriptors_under_half_sent_headers_healthz_still_answers() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = temp_dir().unwrap();
    let dure = Dure::start(
        &dir.path().join("data"),
        &["--header-read-timeout", "2s", "--log", "info"],
    )
    .await
    .unwrap();
    // A descriptor limit far below max_connections, set on the running process: accepting
    // then fails with EMFILE once the attack holds every descriptor.
    let pid = dure.pid().unwrap().to_string();
    let status = std::process::Command::new("prlimit")
        .args(["--pid", &pid, "--nofile=256:256"])
        .status()
        .expect("prlimit (util-linux)");
    assert!(status.success(), "prlimit failed");
    // 300 connections, each stopping in the middle of its request headers.
    let mut attack = Vec::new();
    for _ in 0..300 {
        let mut s = connect_from([127, 0, 0, 1], dure.addr).await;
        let _ = s
            .write_all(b"GET /api/docs HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await;
        attack.push(s);
    }
    // A probe from elsewhere is answered once the late headers are dropped (2 s), however
    // many descriptors the attack took meanwhile.
    let mut probe = connect_from([127, 0, 0, 2], dure.addr).await;
    probe
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(15), probe.read_to_string(&mut answer))
        .await
        .unwrap_or_else(|_| panic!("healthz never answered:\n{}", dure.logs()))
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // Accept failures are logged, but not once per attempt.
    let logged = dure.logs().matches("cannot accept connections").count();
    assert!(
        logged <= 3,
        "accept failures logged {logged} times:\n{}",
        dure.logs()
    );
    drop(attack);
    still_serves(&dure, "after-emfile").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_64_mib_frame_gets_1009_while_the_client_is_still_sending() {
    use futures_util::StreamExt;
    let (_dir, dure) = start().await;
    for round in 0..3 {
        let (ws, _) = tokio_tungstenite::connect_async(dure.doc_url("big-frame", false))
            .await
            .unwrap();
        let mut ws = ws;
        // 64 MiB in one frame, over the default 8 MiB max_frame_bytes; the client writes it
        // all, then reads the answer. A server that closes with that input unread makes the
        // kernel reset the connection: the write fails, and a client that stops at the write
        // error (as browsers do) reports 1006 and never reads the 1009 close frame.
        let sent = ws
            .send(Message::Binary(vec![7u8; 64 * MB as usize].into()))
            .await;
        assert!(
            sent.is_ok(),
            "round {round}: the connection was reset while the client was still sending: {sent:?}"
        );
        let close = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                match ws.next().await {
                    Some(Ok(Message::Close(Some(f)))) => return Ok(u16::from(f.code)),
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => return Err(format!("socket error before the close: {e}")),
                    None => return Err("ended without a close frame".to_owned()),
                }
            }
        })
        .await
        .expect("a close within 20 s");
        assert_eq!(close, Ok(1009), "round {round}");
    }
    still_serves(&dure, "after-big-frame").await;
}
