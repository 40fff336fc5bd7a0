//! The browser app in a real browser: the real `dure` serving its embedded app, Debian's
//! Chromium driven by playwright-core (`tests/e2e`). Each test starts the services, runs one
//! scenario of `tests/e2e/run.mjs` and checks what the browsers saw against what the server
//! stored. Screenshots land in `target/e2e-artifacts/`.
//!
//! The scenario talks to the test over a line protocol (see `tests/e2e/lib.mjs` and
//! `browser_runner`): `ASK what` asks the test to act on the services (pause the store…) and
//! answer `ok`; `RESULT json` hands over values to check. To add a scenario, write it in
//! `run.mjs` and start the services it needs here. Signed-in scenarios (the test identity
//! provider, several people, roles, sharing) are in `web_e2e_oidc.rs` and `oidc.mjs`.
//!
//! Needs node, `tests/e2e/node_modules` and `/usr/bin/chromium`: `infra/install-test-deps.sh`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod browser_runner;

use std::time::Duration;

use browser_runner::{Outcome, Scenario, artifacts_dir, field};
use dure_tests::s3::MotoServer;
use dure_tests::server::{Dure, temp_dir};
use dure_tests::yclient::ConnectOptions;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const T: Duration = Duration::from_secs(15);

/// Runs scenario `name` of `tests/e2e/run.mjs` against `dure`, answering its `ASK` lines with
/// `on_ask`.
async fn scenario(name: &str, dure: &Dure, on_ask: impl FnMut(&str)) -> Outcome {
    Scenario::new("run.mjs", name, &dure.http_url(""))
        .run(|| format!("--- dure ---\n{}", dure.logs()), on_ask)
        .await
}

/// The document's rich text as the server has it (Yjs XML of the field `default`).
async fn stored_xml(dure: &Dure, doc: &str) -> String {
    browser_runner::stored_xml(&dure.doc_url(doc, false), ConnectOptions::default(), T).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_browsers_edit_one_document_and_the_server_keeps_what_they_agree_on() {
    let dir = temp_dir().unwrap();
    let data = dir.path().join("data");
    let mut dure = Dure::start(&data, &[]).await.unwrap();
    let out = scenario("collab", &dure, |_| {}).await;
    let doc = field(&out.results[0], "doc").to_owned();
    let xml = field(&out.results[0], "xml").to_owned();
    assert!(
        xml.contains("Alpha writes here.") && xml.contains("Bravo answers."),
        "{xml}"
    );
    // Both browsers showed "Saved": a kill -9 now must lose nothing.
    dure.kill9().await.unwrap();
    let again = Dure::start(&data, &[]).await.unwrap();
    assert_eq!(
        stored_xml(&again, &doc).await,
        xml,
        "the browsers agree, the store does not"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saved_shows_only_once_the_store_has_the_edit() {
    let moto = MotoServer::start()
        .await
        .expect("moto server (run infra/install-test-deps.sh)");
    moto.create_bucket("dure-web").await.unwrap();
    let mut flags = moto.dure_flags("dure-web");
    flags.extend(["--s3-request-timeout".to_owned(), "2s".to_owned()]);
    let args: Vec<&str> = flags.iter().map(String::as_str).collect();
    let dir = temp_dir().unwrap();
    let dure = Dure::start(&dir.path().join("one"), &args).await.unwrap();
    let out = scenario("saved", &dure, |what| match what {
        "pause" => moto.pause().unwrap(),
        "resume" => moto.resume().unwrap(),
        other => panic!("unexpected ask {other}"),
    })
    .await;
    let doc = field(&out.results[0], "doc").to_owned();
    let xml = field(&out.results[0], "xml").to_owned();
    assert!(xml.contains("Typed while the store is down."), "{xml}");
    // What the browser called saved is in the bucket: another process loads it from there.
    drop(dure);
    let again = Dure::start(&dir.path().join("two"), &args).await.unwrap();
    assert_eq!(stored_xml(&again, &doc).await, xml);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_edits_survive_a_reload_and_reach_everyone_when_back_online() {
    let dir = temp_dir().unwrap();
    let dure = Dure::start(&dir.path().join("data"), &[]).await.unwrap();
    let out = scenario("offline", &dure, |_| {}).await;
    let doc = field(&out.results[0], "doc");
    let xml = field(&out.results[0], "xml");
    assert!(xml.contains("Written offline."), "{xml}");
    assert_eq!(stored_xml(&dure, doc).await, xml);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_list_creates_searches_renames_trashes_and_restores() {
    let dir = temp_dir().unwrap();
    let dure = Dure::start(&dir.path().join("data"), &[]).await.unwrap();
    let out = scenario("documents", &dure, |_| {}).await;
    let docs = out.results[0]["docs"].as_array().unwrap();
    let (status, body) = dure
        .get(&format!("/api/docs/{}", docs[0].as_str().unwrap()))
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"title\":\"Annual report 2026\""), "{body}");
    let (status, body) = dure
        .get(&format!("/api/docs/{}", docs[1].as_str().unwrap()))
        .await
        .unwrap();
    assert_eq!(status, 200, "restored document: {body}");
    assert!(body.contains("\"deleted_at\":null"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_screen_renders_in_english_korean_and_a_narrow_window() {
    let dir = temp_dir().unwrap();
    let dure = Dure::start(&dir.path().join("data"), &[]).await.unwrap();
    let out = scenario("tour", &dure, |_| {}).await;
    assert_eq!(out.results[0]["docs"].as_array().map(Vec::len), Some(4));
    for shot in [
        "document-list",
        "document-list-ko",
        "editor-two-cursors",
        "editor-ko",
        "sharing-dialog",
        "narrow-list",
        "narrow-editor",
    ] {
        let path = artifacts_dir().join(format!("{shot}.png"));
        assert!(path.is_file(), "{} was not written", path.display());
    }
}

/// GET with the response head kept (the harness's `http_get` drops it).
async fn get_raw(dure: &Dure, path: &str) -> (u16, String, String) {
    let mut s = tokio::net::TcpStream::connect(dure.addr).await.unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        dure.addr
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).await.unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head.to_ascii_lowercase(), body.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_answers_its_own_pages_and_never_the_servers_paths() {
    let dir = temp_dir().unwrap();
    let dure = Dure::start(&dir.path().join("data"), &[]).await.unwrap();
    for page in [
        "/",
        "/docs",
        "/docs?scope=mine",
        "/d/abc_DEF-1",
        "/m/some-meeting",
        "/index.html",
    ] {
        let (status, head, body) = get_raw(&dure, page).await;
        assert_eq!(status, 200, "{page}: {head}");
        assert!(body.contains("<div id=\"app\">"), "{page}: {body}");
        assert!(head.contains("cache-control: no-cache"), "{page}: {head}");
        let csp = head
            .lines()
            .find_map(|l| l.strip_prefix("content-security-policy: "))
            .unwrap_or_else(|| panic!("{page}: no CSP: {head}"));
        assert!(csp.contains("script-src 'self';"), "{csp}");
        assert!(
            csp.contains(&format!(
                "connect-src 'self' ws://{0} wss://{0};",
                dure.addr
            )),
            "{csp}"
        );
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    }
    // Its hashed script: long-lived, immutable, the right type.
    let (_, _, index) = get_raw(&dure, "/").await;
    let script = index
        .split('"')
        .find(|s| s.starts_with("/assets/") && s.ends_with(".js"))
        .expect("index.html names its script");
    let (status, head, _) = get_raw(&dure, script).await;
    assert_eq!(status, 200);
    assert!(head.contains("content-type: text/javascript"), "{head}");
    assert!(
        head.contains("cache-control: public, max-age=31536000, immutable"),
        "{head}"
    );
    let (status, head, _) = get_raw(&dure, "/sw.js").await;
    assert_eq!(status, 200);
    assert!(head.contains("cache-control: no-cache"), "{head}");
    // Missing files are 404s (never HTML under a script's name); server paths stay theirs.
    assert_eq!(get_raw(&dure, "/assets/nope-123.js").await.0, 404);
    let (status, _, body) = get_raw(&dure, "/api/no-such-endpoint").await;
    assert_eq!(status, 404);
    assert!(body.contains("not_found"), "{body}");
    for path in ["/healthz", "/api/config"] {
        let (status, _, body) = get_raw(&dure, path).await;
        assert_eq!(status, 200, "{path}");
        assert!(
            !body.contains("<div id=\"app\">"),
            "{path} answered with the app"
        );
    }
    assert_eq!(get_raw(&dure, "/metrics").await.0, 200);
}
