//! Documents through both doors (socket and API) in local mode, and the limits on them:
//! one catalog for socket-made and API-made documents, the document size limit, documents,
//! sockets and open documents per user, and bounded Markdown import. In-process server on
//! port 0 with real WebSocket and HTTP clients.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use dure_collab::{protocol, richtext};
use dure_gateway::Config;
use dure_storage::{DocId, DocStore, Store};
use futures_util::SinkExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

mod common;

use common::{Running, Ws, close_of, next_event, wait_ack};

/// One HTTP/1.1 request; returns the status and the body.
async fn http(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    parse_response(&out)
}

fn parse_response(raw: &[u8]) -> (u16, String) {
    let text = String::from_utf8_lossy(raw).into_owned();
    let status = text
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {text:?}"));
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    (status, body)
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        body = &rest[n + 2..];
    }
    out
}

/// Whether a fresh socket is served (gets the room's sync step 1) or closed at once.
async fn open(srv: &Running, doc: &str) -> Result<Ws, (CloseCode, String)> {
    let mut ws = srv.connect(&format!("/ws/doc/{doc}?ack=1")).await;
    next_event(&mut ws).await.map(|_| ws)
}

async fn send_markdown(ws: &mut Ws, markdown: &str) {
    let update = richtext::from_markdown(markdown).expect("markdown");
    ws.send(Message::Binary(protocol::update(&update)))
        .await
        .expect("send");
}

async fn export_text(addr: SocketAddr, doc: &str) -> (u16, String) {
    http(
        addr,
        "GET",
        &format!("/api/docs/{doc}/export?format=txt"),
        b"",
    )
    .await
}

#[tokio::test]
async fn documents_made_by_a_socket_are_listed_and_unknown_ones_are_404_everywhere() {
    let srv = Running::start(Config::test()).await;
    let mut ws = open(&srv, "team-notes")
        .await
        .expect("created on first use");
    send_markdown(&mut ws, "hello from a plain Yjs client").await;
    wait_ack(&mut ws, 1).await;

    let (status, list) = http(srv.addr, "GET", "/api/docs", b"").await;
    assert_eq!(status, 200, "{list}");
    assert!(list.contains("\"id\":\"team-notes\""), "not listed: {list}");
    let (status, show) = http(srv.addr, "GET", "/api/docs/team-notes", b"").await;
    assert_eq!(status, 200, "{show}");
    assert!(show.contains("\"role\":\"owner\""), "{show}");
    let (status, text) = export_text(srv.addr, "team-notes").await;
    assert_eq!(
        (status, text.as_str()),
        (200, "hello from a plain Yjs client\n")
    );

    for path in ["/api/docs/never-made", "/api/docs/never-made/export"] {
        let (status, body) = http(srv.addr, "GET", path, b"").await;
        assert_eq!(status, 404, "{path}: {body}");
    }
    srv.stop().await;
}

#[tokio::test]
async fn content_stored_without_metadata_is_adopted_at_start() {
    // What a socket made before documents were registered on first use.
    let store = Store::memory();
    let id: DocId = "older-notes".parse().unwrap();
    let update = richtext::from_markdown("written long ago").unwrap();
    DocStore::new(store.clone())
        .append(&id, 0, &dure_storage::WriterId::random(), &[update.into()])
        .await
        .unwrap();
    let srv = Running::start_on(Config::test(), store).await;
    let (status, list) = http(srv.addr, "GET", "/api/docs", b"").await;
    assert_eq!(status, 200);
    assert!(
        list.contains("\"id\":\"older-notes\""),
        "not adopted: {list}"
    );
    let (status, text) = export_text(srv.addr, "older-notes").await;
    assert_eq!((status, text.as_str()), (200, "written long ago\n"));
    srv.stop().await;
}

#[tokio::test]
async fn an_update_past_the_size_limit_is_refused_and_nothing_stored_is_lost() {
    let mut cfg = Config::test();
    cfg.rooms.max_doc_bytes = 4096;
    let srv = Running::start(cfg).await;
    let mut alice = open(&srv, "sized").await.expect("alice");
    let mut bob = open(&srv, "sized").await.expect("bob");
    send_markdown(&mut alice, "first").await;
    wait_ack(&mut alice, 1).await;

    send_markdown(&mut alice, &"x".repeat(6000)).await;
    let (code, reason) = close_of(&mut alice).await;
    assert_eq!(u16::from(code), 4413, "{reason}");
    assert_eq!(reason, "document_too_large");

    // Bob is still served, and his small edit still fits.
    send_markdown(&mut bob, "second").await;
    wait_ack(&mut bob, 1).await;
    let (status, text) = export_text(srv.addr, "sized").await;
    assert_eq!(status, 200);
    let mut lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
    lines.sort_unstable();
    assert_eq!(lines, ["first", "second"], "{text}");
    srv.stop().await;
}

/// Retries while the server releases a closed socket's slot.
async fn open_eventually(srv: &Running, doc: &str) -> Ws {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match open(srv, doc).await {
            Ok(ws) => return ws,
            Err(close) if tokio::time::Instant::now() > deadline => {
                panic!("still refused: {close:?}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

#[tokio::test]
async fn sockets_and_open_documents_per_user_are_limited() {
    let mut cfg = Config::test();
    cfg.limits.max_sockets_per_user = 3;
    cfg.limits.max_rooms_per_user = 2;
    let srv = Running::start(cfg).await;
    let _a1 = open(&srv, "a").await.expect("a1");
    let mut a2 = open(&srv, "a").await.expect("a2: same document");
    let mut b1 = open(&srv, "b").await.expect("b1: second document");

    let (code, reason) = open(&srv, "a").await.expect_err("a fourth socket");
    assert_eq!(code, CloseCode::Again, "{reason}");
    assert_eq!(reason, "too_many_sockets");

    a2.close(None).await.unwrap();
    // A socket is free again, but a third document is one too many.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let (code, reason) = loop {
        let (code, reason) = open(&srv, "c").await.expect_err("a third document");
        if reason == "too_many_documents_open" || tokio::time::Instant::now() > deadline {
            break (code, reason);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(code, CloseCode::Again, "{reason}");
    assert_eq!(reason, "too_many_documents_open");

    b1.close(None).await.unwrap();
    let _c = open_eventually(&srv, "c").await;
    srv.stop().await;
}

#[tokio::test]
async fn documents_per_user_are_limited_through_every_door() {
    let mut cfg = Config::test();
    cfg.limits.max_docs_per_user = 2;
    let srv = Running::start(cfg).await;
    let _ws = open(&srv, "by-socket").await.expect("first, by socket");
    let (status, body) = http(srv.addr, "POST", "/api/docs", br#"{"title":"two"}"#).await;
    assert_eq!(status, 201, "{body}");

    let (status, body) = http(srv.addr, "POST", "/api/docs", br#"{"title":"three"}"#).await;
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("\"error\":\"quota_exceeded\""), "{body}");
    let (status, body) = http(srv.addr, "POST", "/api/docs/import", b"# three").await;
    assert_eq!(status, 409, "{body}");
    let (code, reason) = open(&srv, "third-by-socket").await.expect_err("refused");
    assert_eq!(u16::from(code), 4429, "{reason}");
    assert_eq!(reason, "quota_exceeded");
    // What exists stays usable.
    let _again = open(&srv, "by-socket").await.expect("existing document");
    srv.stop().await;
}

#[tokio::test]
async fn imports_are_bounded_with_clear_errors() {
    let mut cfg = Config::test();
    cfg.limits.import_max_bytes = 2048;
    cfg.limits.import.max_table_rows = 5;
    cfg.limits.import.max_nodes = 50;
    cfg.rooms.max_doc_bytes = 1500;
    let srv = Running::start(cfg).await;
    let addr = srv.addr;
    let import = |body: Vec<u8>| async move { http(addr, "POST", "/api/docs/import", &body).await };

    let (status, body) = import(vec![b'a'; 2049]).await;
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("\"error\":\"too_large\""), "{body}");

    let table = format!("| a |\n|---|\n{}", "| 1 |\n".repeat(5));
    let (status, body) = import(table.into_bytes()).await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body.contains("\"error\":\"import_refused\"") && body.contains("5 rows"),
        "{body}"
    );

    let (status, body) = import("- x\n".repeat(20).into_bytes()).await;
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("50 nodes"), "{body}");

    // Under every parse cap, but the document would outgrow max_doc_bytes.
    let (status, body) = import("y".repeat(2000).into_bytes()).await;
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("max_doc_bytes"), "{body}");

    let (status, body) = import(b"# Plan\n\n| a | b |\n|---|---|\n| 1 | 2 |\n".to_vec()).await;
    assert_eq!(status, 201, "{body}");
    srv.stop().await;
}

#[tokio::test]
async fn a_second_import_by_the_same_user_waits_for_the_first() {
    let srv = Running::start(Config::test()).await;
    // The first import's body arrives slowly: it holds the user's import meanwhile.
    let mut slow = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
    let body = b"# Slow\n\nupload\n";
    slow.write_all(
        format!(
            "POST /api/docs/import HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
            srv.addr,
            body.len()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    slow.write_all(&body[..4]).await.unwrap();
    // Give the slow request time to reach its handler first: a quick import running at
    // that moment would make the slow one the refused one.
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Not UTF-8: when not refused as busy, this one fails with 400 and creates nothing.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let (status, refusal) = loop {
        let (status, text) = http(srv.addr, "POST", "/api/docs/import", &[0xff, 0xfe]).await;
        if status != 400 || tokio::time::Instant::now() > deadline {
            break (status, text);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(status, 429, "{refusal}");
    assert!(refusal.contains("\"error\":\"import_busy\""), "{refusal}");

    slow.write_all(&body[4..]).await.unwrap();
    let mut out = Vec::new();
    slow.read_to_end(&mut out).await.unwrap();
    let (status, created) = parse_response(&out);
    assert_eq!(status, 201, "{created}");
    let (status, _) = http(srv.addr, "POST", "/api/docs/import", &[0xff, 0xfe]).await;
    assert_eq!(status, 400, "the user's import slot was released");
    srv.stop().await;
}
