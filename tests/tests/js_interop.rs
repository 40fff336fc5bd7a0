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

/// The README's "Connect a Yjs client" snippet, run as written (only the address and the
/// helper's path changed) with the pinned npm packages: y-websocket with `ack=1` through
/// `clients/y-dure-ack` sees Dure's acks, and nothing is logged as an error (without a
/// type-100 handler y-websocket logs `Unable to compute message` for every ack).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_snippet_runs_and_sees_acks_without_console_errors() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let readme = std::fs::read_to_string(repo.join("README.md")).unwrap();
    let snippet = readme
        .split("## Connect a Yjs client")
        .nth(1)
        .and_then(|s| s.split("```js\n").nth(1))
        .and_then(|s| s.split("```").next())
        .expect("the README has a js snippet under \"Connect a Yjs client\"");
    assert!(snippet.contains("ack: '1'"), "{snippet}");

    let dir = temp_dir().unwrap();
    let dure = Dure::start(&dir.path().join("data"), &[]).await.unwrap();
    let helper = url::Url::from_file_path(repo.join("clients/y-dure-ack/index.js")).unwrap();
    let program = format!(
        "{}\n{}",
        snippet
            .replace("ws://127.0.0.1:8080", &format!("ws://{}", dure.addr))
            .replace("from 'y-dure-ack'", &format!("from '{helper}'")),
        // Top-level code runs before any socket event: the capture sees every message.
        r#"
const errors = []
const consoleError = console.error
console.error = (...a) => { errors.push(a.join(' ')); consoleError(...a) }
let saved = 0
onSaved(provider, (n) => { saved = n })
const text = doc.getText('text')
provider.once('sync', () => {
  // Three edits, each its own update frame after the sync step 2 answer: four in all.
  for (const word of ['one ', 'two ', 'three']) text.insert(text.length, word)
})
const deadline = Date.now() + 10000
while (saved < 4 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
await new Promise((r) => setTimeout(r, 300))
provider.destroy()
process.stdout.write('RESULT ' + JSON.stringify({ saved, errors, text: text.toString() }) + '\n')
process.exit(0)
"#
    );
    // Run beside the pinned packages of tests/js (a node_modules link in a temp dir).
    let work = temp_dir().unwrap();
    std::os::unix::fs::symlink(
        JsDriver::js_dir().join("node_modules"),
        work.path().join("node_modules"),
    )
    .unwrap();
    let script = work.path().join("readme-snippet.mjs");
    std::fs::write(&script, program).unwrap();
    let node = std::env::var(dure_tests::jsclient::NODE_ENV).unwrap_or_else(|_| "node".into());
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new(node)
            .arg(&script)
            .current_dir(work.path())
            .output(),
    )
    .await
    .expect("the snippet ran for 30 s")
    .expect("node (run infra/install-test-deps.sh)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let result: serde_json::Value = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .map(|j| serde_json::from_str(j).unwrap())
        .unwrap_or_else(|| panic!("the snippet failed:\n{stdout}\n{stderr}"));
    assert_eq!(result["errors"], json!([]), "console.error: {stderr}");
    assert!(
        result["saved"].as_u64().unwrap_or(0) >= 4,
        "acks seen: {result}\n{stderr}"
    );
    assert_eq!(result["text"], "one two three");
    assert!(stdout.contains("update frames saved"), "{stdout}");
}
