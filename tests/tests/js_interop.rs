//! Real JS Yjs clients (npm `yjs` + `y-websocket` `WebsocketProvider`, in node) and Rust
//! yrs clients edit the same documents on the real `dure` binary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use dure_tests::jsclient::{ConnectOptions as JsOptions, JsDriver};
use dure_tests::server::{Dure, temp_dir};
use dure_tests::yclient::{ConnectOptions, YClient};
use serde_json::json;

const T: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_and_rust_clients_converge_on_text_and_awareness() {
    let dir = temp_dir().unwrap();
    let dure = Dure::start(&dir.path().join("data"), &[]).await.unwrap();
    let js = JsDriver::spawn()
        .await
        .expect("node driver (run infra/install-test-deps.sh)");
    let a = js
        .connect("a", &JsOptions::dure(dure.addr, "mixed"))
        .await
        .unwrap();
    let b = js
        .connect("b", &JsOptions::dure(dure.addr, "mixed"))
        .await
        .unwrap();
    a.wait_synced(T).await.unwrap();
    b.wait_synced(T).await.unwrap();
    // A 32-bit client id like Yjs draws (the driver reports ids as u32).
    let opts = ConnectOptions {
        client_id: Some(4_242_424),
        ..ConnectOptions::default()
    };
    let r = YClient::connect(&dure.doc_url("mixed", true), opts)
        .await
        .unwrap();
    r.wait_synced(T).await.unwrap();

    // Non-ASCII text on purpose: offsets are UTF-16 on both sides.
    a.insert(0, "안녕 ").await.unwrap();
    b.wait_text("안녕 ", T).await.unwrap();
    r.wait_text("안녕 ", T).await.unwrap();
    b.insert(3, "세계 🌍").await.unwrap();
    r.wait_text("안녕 세계 🌍", T).await.unwrap();
    r.insert(r.text_len(), "!").unwrap();
    a.wait_text("안녕 세계 🌍!", T).await.unwrap();
    // Concurrent edits from all three.
    a.insert(0, "[a]").await.unwrap();
    b.insert(0, "[b]").await.unwrap();
    r.insert(0, "[r]").unwrap();
    let want = loop {
        let t = r.text();
        if t.contains("[a]") && t.contains("[b]") {
            break t;
        }
        r.wait_for("all three edits", T, |c| c.text() != t)
            .await
            .unwrap();
    };
    a.wait_text(&want, T).await.unwrap();
    b.wait_text(&want, T).await.unwrap();
    r.wait_acked(r.sent_updates(), T)
        .await
        .expect("rust client acked");

    // Awareness both ways.
    a.set_awareness(json!({"user": {"name": "Ari", "color": "#1e88e5"}}))
        .await
        .unwrap();
    let a_id = u64::from(a.client_id());
    // The server binds the user fields to the signed-in identity (the local user here) and
    // keeps the rest: the name the client claimed never reaches the others.
    r.wait_awareness(T, |s| s.get(&a_id).is_some_and(|j| j.contains("#1e88e5")))
        .await
        .unwrap();
    let state = r.awareness_states()[&a_id].clone();
    assert!(
        state.contains("Local user"),
        "bound to the local user: {state}"
    );
    assert!(
        !state.contains("Ari"),
        "the claimed name is replaced: {state}"
    );
    r.set_awareness(r##"{"user":{"name":"Rust","color":"#43a047"}}"##)
        .unwrap();
    b.wait_awareness_present(4_242_424, T).await.unwrap();
    // A JS client leaving is removed for everyone.
    a.destroy().await.unwrap();
    r.wait_awareness(T, |s| !s.contains_key(&a_id))
        .await
        .expect("a's awareness removed");
    b.wait_awareness_gone(a_id as u32, T).await.unwrap();

    // And the store has it: a fresh JS client after a restart sees the same text.
    // Wait for the process to be gone: it holds the data directory's lock until then.
    let mut dure = dure;
    dure.kill9().await.unwrap();
    drop(dure);
    let dure = Dure::start(&dir.path().join("data"), &[]).await.unwrap();
    let c = js
        .connect("c", &JsOptions::dure(dure.addr, "mixed"))
        .await
        .unwrap();
    c.wait_text(&want, T).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_js_client_stays_connected() {
    let dir = temp_dir().unwrap();
    let dure = Dure::start(&dir.path().join("data"), &[]).await.unwrap();
    let js = JsDriver::spawn()
        .await
        .expect("node driver (run infra/install-test-deps.sh)");
    let idle = js
        .connect("idle", &JsOptions::dure(dure.addr, "quiet"))
        .await
        .unwrap();
    idle.wait_synced(T).await.unwrap();
    // y-websocket drops a connection that hears nothing for 30 s; stay idle past that.
    tokio::time::sleep(Duration::from_secs(40)).await;
    let status = idle.status().await.unwrap();
    assert!(status.connected, "{status:?}");
    assert_eq!(status.attempts, 1, "idle client reconnected: {status:?}");
    assert_eq!(status.closes, 0, "{status:?}");
    assert_eq!(status.watchdog_closes, 0, "{status:?}");
}
