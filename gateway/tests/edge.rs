//! The network edge against an in-process server on port 0 (issue 10): the Host check
//! (DNS rebinding), connection limits, header-read and idle timeouts. (The lingering close is
//! proven against the real binary: tests/tests/hostile.rs.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dure_gateway::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

mod common;

use common::Running;

/// A connection from `source` (any 127.x.y.z works on Linux: all of 127/8 is loopback).
async fn connect_from(source: [u8; 4], to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((source, 0))).unwrap();
    socket.connect(to).await.unwrap()
}

/// One request on a fresh connection; the status line's code and the body.
async fn request(addr: SocketAddr, source: [u8; 4], head: &str) -> (u16, String) {
    let mut s = connect_from(source, addr).await;
    s.write_all(head.as_bytes()).await.unwrap();
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut out))
        .await
        .expect("an answer within 5 s")
        .unwrap_or_else(|e| panic!("reading the answer to {head:?}: {e} (so far: {out:?})"));
    let code = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {out:?}"));
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (code, body.to_owned())
}

fn get(path: &str, host: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
}

/// Reads until the peer closes (EOF or reset); panics if it is still open after `limit`.
async fn closed_within(s: &mut TcpStream, limit: Duration) {
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => panic!("connection still open after {limit:?}"),
            Ok(Ok(0) | Err(_)) => return,
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn a_foreign_host_is_refused_before_any_route() {
    let srv = Running::start(Config::test()).await;
    let ours = srv.addr.to_string();
    let localhost = format!("localhost:{}", srv.addr.port());
    // The app's own names work.
    for host in [ours.as_str(), localhost.as_str()] {
        let (code, body) = request(srv.addr, [127, 0, 0, 1], &get("/api/docs", host)).await;
        assert_eq!(code, 200, "{host}: {body}");
    }
    // A rebinding page: its own name, no Origin. Lists, exports, sockets: all refused.
    for path in ["/api/docs", "/api/docs/notes/export", "/api/me", "/"] {
        let (code, body) = request(srv.addr, [127, 0, 0, 1], &get(path, "rebind.example")).await;
        assert_eq!(code, 421, "{path}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["error"], "unknown_host", "{body}");
        assert!(
            v["message"].as_str().unwrap().contains("allowed_hosts"),
            "{body}"
        );
    }
    let other_port = format!("127.0.0.1:{}", srv.addr.port() + 1);
    let (code, _) = request(srv.addr, [127, 0, 0, 1], &get("/api/docs", &other_port)).await;
    assert_eq!(code, 421, "the loopback name on another port is not us");
    let upgrade = "GET /ws/doc/notes HTTP/1.1\r\nHost: rebind.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    // (An upgrade request keeps the connection open after the answer: read its head only.)
    let mut s = connect_from([127, 0, 0, 1], srv.addr).await;
    s.write_all(upgrade.as_bytes()).await.unwrap();
    let mut head = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut head))
        .await
        .expect("an answer")
        .unwrap();
    assert!(
        head[..n].starts_with(b"HTTP/1.1 421"),
        "a socket for a foreign host: {}",
        String::from_utf8_lossy(&head[..n])
    );
    // Probes answer whatever the Host.
    for path in ["/healthz", "/readyz", "/metrics"] {
        let (code, body) = request(srv.addr, [127, 0, 0, 1], &get(path, "10.1.2.3")).await;
        assert_eq!(code, 200, "{path}: {body}");
    }
    srv.stop().await;
}

#[tokio::test]
async fn allowed_hosts_adds_names() {
    let mut cfg = Config::test();
    cfg.net.allowed_hosts = vec!["dure.internal".into()];
    let srv = Running::start(cfg).await;
    let (code, body) = request(srv.addr, [127, 0, 0, 1], &get("/api/docs", "dure.internal")).await;
    assert_eq!(code, 200, "{body}");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_headers_are_dropped_and_healthz_keeps_answering() {
    let mut cfg = Config::test();
    cfg.net.header_read_timeout = Duration::from_secs(1);
    cfg.net.max_connections_per_address = 50;
    let srv = Running::start(cfg).await;
    // 300 connections from one address, each stopping in the middle of its headers.
    let mut attack = Vec::new();
    for _ in 0..300 {
        let mut s = connect_from([127, 0, 0, 1], srv.addr).await;
        let _ = s
            .write_all(b"GET /api/docs HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await;
        attack.push(s);
    }
    // Another client is served meanwhile, at once.
    let started = Instant::now();
    let (code, body) = request(srv.addr, [127, 0, 0, 2], &get("/healthz", "x")).await;
    assert_eq!((code, body.as_str()), (200, "ok\n"));
    assert!(started.elapsed() < Duration::from_secs(2), "healthz waited");
    // Beyond 50 they were closed at once; the 50 held ones when their headers were late.
    for s in &mut attack {
        closed_within(s, Duration::from_secs(5)).await;
    }
    // Once the attacker lets go (the server lingers until then, still counting them), the
    // address's count comes back down and it is served again.
    drop(attack);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (code, _) = request(srv.addr, [127, 0, 0, 1], &get("/healthz", "x")).await;
    assert_eq!(code, 200);
    srv.stop().await;
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_after_the_header_timeout() {
    let mut cfg = Config::test();
    cfg.net.header_read_timeout = Duration::from_secs(1);
    let srv = Running::start(cfg).await;
    let mut silent = connect_from([127, 0, 0, 1], srv.addr).await;
    closed_within(&mut silent, Duration::from_secs(4)).await;
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_global_limit_new_connections_wait_for_a_free_place() {
    let mut cfg = Config::test();
    cfg.net.max_connections = 8;
    cfg.net.max_connections_per_address = 8;
    let srv = Running::start(cfg).await;
    let mut held = Vec::new();
    for i in 0..8 {
        held.push(connect_from([127, 0, 0, 10 + i], srv.addr).await);
    }
    // Give the server a moment to accept the eight.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut waiting = connect_from([127, 0, 0, 30], srv.addr).await;
    waiting
        .write_all(get("/healthz", "x").as_bytes())
        .await
        .unwrap();
    let mut buf = [0u8; 256];
    assert!(
        tokio::time::timeout(Duration::from_millis(500), waiting.read(&mut buf))
            .await
            .is_err(),
        "a ninth connection was served past max_connections"
    );
    drop(held.pop());
    let n = tokio::time::timeout(Duration::from_secs(5), waiting.read(&mut buf))
        .await
        .expect("served once a place was free")
        .unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_http2_connection_is_closed() {
    let mut cfg = Config::test();
    cfg.net.idle_timeout = Duration::from_secs(1);
    let srv = Running::start(cfg).await;
    // HTTP/2 with prior knowledge: the preface and an empty SETTINGS frame, then nothing.
    // (The header-read timeout is HTTP/1's; this one is held by the idle timeout alone.)
    let mut s = connect_from([127, 0, 0, 1], srv.addr).await;
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .unwrap();
    closed_within(&mut s, Duration::from_secs(5)).await;
    srv.stop().await;
}
