//! In-process server on port 0, driven by real WebSocket clients: the gateway's own work
//! (routing, frame limits, close codes, acks on the wire, health and metrics).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use dure_collab::protocol;
use dure_gateway::Config;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

mod common;

use common::{Running, close_of, wait_ack};

fn text_update(client: u64, s: &str) -> Vec<u8> {
    use yrs::{Text, Transact};
    let doc = yrs::Doc::with_client_id(client);
    let text = doc.get_or_insert_text("text");
    let mut txn = doc.transact_mut();
    text.insert(&mut txn, 0, s);
    txn.encode_update_v1()
}

#[tokio::test]
async fn bad_frames_get_clear_close_codes_and_others_go_on() {
    let mut cfg = Config::test();
    cfg.max_frame_bytes = 4096;
    let srv = Running::start(cfg).await;
    let mut good = srv.connect("/ws/doc/bad-input?ack=1").await;
    good.send(Message::Binary(protocol::update(&text_update(1, "stays"))))
        .await
        .unwrap();
    wait_ack(&mut good, 1).await;

    let cases: Vec<(Message, CloseCode)> = vec![
        (Message::Binary(vec![0u8; 5000].into()), CloseCode::Size),
        (Message::Binary(vec![0, 7, 0].into()), CloseCode::Protocol),
        (
            Message::Binary(protocol::update(&[0xff, 0xff, 0xff, 0x01, 0x03])),
            CloseCode::Invalid,
        ),
        (Message::Text("hello".into()), CloseCode::Unsupported),
    ];
    for (msg, want) in cases {
        let mut bad = srv.connect("/ws/doc/bad-input").await;
        bad.send(msg.clone()).await.unwrap();
        let (code, reason) = close_of(&mut bad).await;
        assert_eq!(code, want, "for {msg:?}: reason {reason:?}");
        assert!(!reason.is_empty(), "close must carry a reason");
    }
    // The room and the good client are untouched.
    good.send(Message::Binary(protocol::update(&text_update(2, "more"))))
        .await
        .unwrap();
    wait_ack(&mut good, 2).await;
    let metrics = reqwest_get(srv.addr, "/metrics").await;
    assert!(
        metrics.contains("dure_closes_total{reason=\"frame_too_large\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("dure_closes_total{reason=\"malformed\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("dure_acks_sent_total"), "{metrics}");
    srv.stop().await;
}

#[tokio::test]
async fn invalid_doc_ids_are_refused_before_upgrade() {
    let srv = Running::start(Config::test()).await;
    for path in [
        "/ws/doc/a.b",
        "/ws/doc/a%20b",
        "/ws/doc/a/b",
        &format!("/ws/doc/{}", "x".repeat(129)),
    ] {
        let err = connect_async(format!("ws://{}{path}", srv.addr))
            .await
            .expect_err(path);
        match err {
            tokio_tungstenite::tungstenite::Error::Http(resp) => {
                assert_eq!(resp.status(), 400, "{path}");
                let body =
                    String::from_utf8_lossy(resp.body().as_deref().unwrap_or_default()).to_string();
                assert!(body.contains("invalid document id"), "{path}: {body}");
            }
            other => panic!("{path}: {other}"),
        }
    }
    srv.stop().await;
}

#[tokio::test]
async fn plain_clients_never_see_acks_and_shutdown_closes_with_1012() {
    let srv = Running::start(Config::test()).await;
    let mut plain = srv.connect("/ws/doc/plain").await;
    let mut acker = srv.connect("/ws/doc/plain?ack=1").await;
    plain
        .send(Message::Binary(protocol::update(&text_update(3, "x"))))
        .await
        .unwrap();
    acker
        .send(Message::Binary(protocol::update(&text_update(4, "y"))))
        .await
        .unwrap();
    wait_ack(&mut acker, 1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stop = srv.stop();
    let (plain_close, acker_close, ()) = tokio::join!(
        async {
            let mut seen_ack = false;
            loop {
                match plain.next().await {
                    Some(Ok(Message::Binary(b))) if b.first() == Some(&100) => seen_ack = true,
                    Some(Ok(Message::Close(f))) => return (f.map(|f| f.code), seen_ack),
                    Some(Ok(_)) => {}
                    _ => return (None, seen_ack),
                }
            }
        },
        close_of(&mut acker),
        stop
    );
    assert_eq!(plain_close.0, Some(CloseCode::Restart));
    assert!(
        !plain_close.1,
        "a client without ack=1 received message 100"
    );
    assert_eq!(acker_close.0, CloseCode::Restart);
}

async fn reqwest_get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

#[tokio::test]
async fn health_and_readiness() {
    let srv = Running::start(Config::test()).await;
    assert!(
        reqwest_get(srv.addr, "/healthz")
            .await
            .starts_with("HTTP/1.1 200")
    );
    let ready = reqwest_get(srv.addr, "/readyz").await;
    assert!(
        ready.starts_with("HTTP/1.1 200") && ready.contains("store: ok"),
        "{ready}"
    );
    srv.stop().await;
}
