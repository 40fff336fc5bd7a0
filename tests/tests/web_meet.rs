//! Meetings in a real browser: the real `dure` (local mode) serving its embedded app, two
//! Chromium contexts with fake cameras and microphones on the meeting page (`tests/e2e/meet.mjs`),
//! connected by the app's mesh WebRTC over `/ws/rt`. The scenario checks what the browsers saw
//! (video decoded both ways, chat, mute state, leaving); this test then checks what the server
//! kept. Screenshots land in `target/e2e-artifacts/`.
//!
//! Needs node, `tests/e2e/node_modules` and `/usr/bin/chromium`: `infra/install-test-deps.sh`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod browser_runner;

use browser_runner::{Scenario, field};
use dure_tests::server::{Dure, temp_dir};
use serde_json::Value;

async fn scenario(name: &str, dure: &Dure) -> Value {
    let out = Scenario::new("meet.mjs", name, &dure.http_url(""))
        .run(|| format!("--- dure ---\n{}", dure.logs()), |_| {})
        .await;
    out.results.into_iter().next().expect("a result")
}

async fn meeting(dure: &Dure, slug: &str) -> Value {
    let (status, body) = dure.get(&format!("/api/meetings/{slug}")).await.unwrap();
    assert_eq!(status, 200, "meeting {slug}: {body}");
    serde_json::from_str(&body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_browsers_meet_with_video_chat_mute_and_leave() {
    let dir = temp_dir().unwrap();
    let dure = Dure::start(&dir.path().join("data"), &[]).await.unwrap();
    let r = &scenario("pair", &dure).await;
    assert_ne!(field(r, "a"), field(r, "b"), "two participants");

    // The list's "New meeting" made a meeting the local user hosts, linked to no document.
    let m = meeting(&dure, field(r, "slug")).await;
    assert_eq!(m["role"], "host", "{m}");
    assert_eq!(m["doc_id"], Value::Null, "{m}");
    assert_eq!(m["ended"], false, "leaving is not ending: {m}");

    // The document's "Meet" linked its meeting to the document.
    let linked = meeting(&dure, field(r, "doc_slug")).await;
    assert_eq!(linked["doc_id"], field(r, "doc"), "{linked}");
    assert_eq!(linked["title"], "Meeting: Meeting notes", "{linked}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_with_an_invite_waits_is_admitted_and_can_be_removed() {
    let dir = temp_dir().unwrap();
    let dure = Dure::start(&dir.path().join("data"), &[]).await.unwrap();
    let r = &scenario("lobby", &dure).await;
    assert_ne!(field(r, "host"), field(r, "guest"), "two participants");
    let slug = field(r, "slug");
    // Asking for an invite opened the meeting to guests; admission used the invite once.
    assert_eq!(meeting(&dure, slug).await["access"], "guests");
    let (status, body) = dure
        .get(&format!("/api/meetings/{slug}/invites"))
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    let invites: Value = serde_json::from_str(&body).unwrap();
    let list = invites["invites"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{invites}");
    assert_eq!(list[0]["uses"], 1, "{invites}");
    assert!(
        !body.contains("secret"),
        "the listing never shows secrets: {body}"
    );
}
