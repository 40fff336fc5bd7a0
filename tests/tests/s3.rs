//! The real `dure` binary on a real S3-compatible server (moto; s3s-fs where signatures
//! matter): kill -9, two writers on one bucket, an outage, broken settings.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{T, client, read_text};
use dure_tests::s3::{MotoServer, S3sFsServer};
use dure_tests::server::{Dure, run_to_exit, temp_dir};

fn args(flags: &[String]) -> Vec<&str> {
    flags.iter().map(String::as_str).collect()
}

async fn moto_with_bucket(bucket: &str) -> MotoServer {
    let moto = MotoServer::start()
        .await
        .expect("moto server (run infra/install-test-deps.sh)");
    moto.create_bucket(bucket).await.expect("create bucket");
    moto
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_on_s3_loses_nothing_acknowledged() {
    let moto = moto_with_bucket("dure-kill").await;
    let mut flags = moto.dure_flags("dure-kill");
    // Write as soon as the previous write returns, as on disk: the test is about acks.
    flags.extend(["--commit-interval".to_owned(), "0s".to_owned()]);
    let seeds: Vec<u64> = match std::env::var("DURE_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        Some(s) => vec![s],
        None => (0..2).map(|_| rand::random()).collect(),
    };
    for seed in seeds {
        common::kill_round(seed, &flags).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_on_one_bucket_fence_each_other_and_lose_nothing() {
    let moto = moto_with_bucket("dure-two").await;
    let mut flags = moto.dure_flags("dure-two");
    flags.extend(["--commit-interval".to_owned(), "0s".to_owned()]);
    let dir = temp_dir().unwrap();
    let one = Dure::start(&dir.path().join("one"), &args(&flags))
        .await
        .unwrap();
    let two = Dure::start(&dir.path().join("two"), &args(&flags))
        .await
        .unwrap();
    let a = client(&one, "shared", true).await;
    let b = client(&two, "shared", true).await;
    for i in 0..60 {
        a.insert(0, &format!("<a{i}>")).unwrap();
        b.insert(0, &format!("<b{i}>")).unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    a.wait_acked(a.sent_updates(), T).await.expect("a acked");
    b.wait_acked(b.sent_updates(), T).await.expect("b acked");
    let logs = format!("{}{}", one.logs(), two.logs());
    assert!(
        logs.contains("another writer appended"),
        "neither process was fenced:\n{logs}"
    );
    // Whatever either process acknowledged is in the bucket: a third process loads it all.
    let three = Dure::start(&dir.path().join("three"), &args(&flags))
        .await
        .unwrap();
    let text = read_text(&three, "shared").await;
    for i in 0..60 {
        assert!(
            text.contains(&format!("<a{i}>")) && text.contains(&format!("<b{i}>")),
            "edit {i} lost: {text}"
        );
    }
    // The fenced side took the other's entries in and passed them to its client.
    assert!(
        a.text().contains("<b") || b.text().contains("<a"),
        "no client saw the other process's edits"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn outage_keeps_editing_holds_acks_and_recovers() {
    let moto = moto_with_bucket("dure-outage").await;
    let mut flags = moto.dure_flags("dure-outage");
    flags.extend(["--s3-request-timeout".to_owned(), "2s".to_owned()]);
    let dir = temp_dir().unwrap();
    let dure = Dure::start(&dir.path().join("data"), &args(&flags))
        .await
        .unwrap();
    let a = client(&dure, "outage", true).await;
    let b = client(&dure, "outage", true).await;
    a.insert(0, "before ").unwrap();
    a.wait_acked(a.sent_updates(), T)
        .await
        .expect("acked before the outage");
    b.wait_text("before ", T).await.unwrap();
    b.wait_acked(b.sent_updates(), T)
        .await
        .expect("b acked before the outage");

    moto.pause().unwrap();
    let paused_at = Instant::now();
    let (a0, b0) = (a.acked(), b.acked());
    let mut i = 0;
    while paused_at.elapsed() < Duration::from_secs(20) {
        a.insert(a.text_len(), &format!("a{i} ")).unwrap();
        b.insert(0, &format!("b{i} ")).unwrap();
        i += 1;
        tokio::time::sleep(Duration::from_millis(250)).await;
        if i == 20 {
            let (code, body) = dure.get("/readyz").await.unwrap();
            assert_eq!(code, 503, "readyz during the outage: {body}");
            assert!(body.contains("store"), "{body}");
        }
    }
    // Clients kept seeing each other...
    a.wait_text_matches(T, |t| t.contains(&format!("b{} ", i - 1)))
        .await
        .expect("a sees b during the outage");
    // ...and nothing unsaved was acknowledged.
    assert_eq!(
        (a.acked(), b.acked()),
        (a0, b0),
        "acks were sent while the store was down"
    );

    moto.resume().unwrap();
    a.wait_acked(a.sent_updates(), Duration::from_secs(30))
        .await
        .expect("acks resume after the outage");
    b.wait_acked(b.sent_updates(), Duration::from_secs(30))
        .await
        .expect("acks resume after the outage");
    let deadline = Instant::now() + T;
    loop {
        let (code, body) = dure.get("/readyz").await.unwrap();
        if code == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "never ready again: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let want = a.text();
    b.wait_text(&want, T).await.unwrap();
    drop(dure);
    let again = Dure::start(&dir.path().join("data2"), &args(&flags))
        .await
        .unwrap();
    assert_eq!(
        read_text(&again, "outage").await,
        want,
        "the bucket lacks edits made during the outage"
    );
}

fn start_failure(flags: &[String]) -> String {
    let dir = temp_dir().unwrap();
    let data = dir.path().join("data");
    let mut args = vec![
        "--listen".to_owned(),
        "127.0.0.1:0".to_owned(),
        "--data-dir".to_owned(),
    ];
    args.push(data.to_string_lossy().into_owned());
    args.extend_from_slice(flags);
    let (code, text) = run_to_exit(dir.path(), &args, &[]).unwrap();
    assert_ne!(
        code,
        Some(0),
        "dure started with broken S3 settings: {text}"
    );
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_s3_settings_stop_dure_at_start_with_a_clear_message() {
    let moto = moto_with_bucket("dure-exists").await;
    let text = start_failure(&moto.dure_flags("no-such-bucket"));
    assert!(
        text.contains("no-such-bucket") && text.contains("does not exist"),
        "{text}"
    );

    // An endpoint where nothing listens.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let mut flags =
        dure_tests::s3::dure_flags(&format!("http://127.0.0.1:{port}"), "dure-exists", "k", "s");
    flags.extend(["--s3-request-timeout".to_owned(), "2s".to_owned()]);
    let started = Instant::now();
    let text = start_failure(&flags);
    assert!(text.contains("s3") && text.contains("endpoint"), "{text}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );

    // Wrong credentials, on a server that checks signatures.
    let s3s = S3sFsServer::start("right-key", "right-secret")
        .await
        .expect("s3s-fs (run infra/install-test-deps.sh)");
    s3s.create_bucket("signed").unwrap();
    let text = start_failure(&dure_tests::s3::dure_flags(
        &s3s.endpoint(),
        "signed",
        "right-key",
        "wrong-secret",
    ));
    assert!(text.to_lowercase().contains("credentials"), "{text}");
    assert!(
        !text.contains("wrong-secret"),
        "the secret was printed: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_that_cannot_be_loaded_is_refused_never_served_empty() {
    let moto = moto_with_bucket("dure-refuse").await;
    let mut flags = moto.dure_flags("dure-refuse");
    flags.extend(["--s3-request-timeout".to_owned(), "1s".to_owned()]);
    let dir = temp_dir().unwrap();
    let dure = Dure::start(&dir.path().join("data"), &args(&flags))
        .await
        .unwrap();
    let writer = client(&dure, "precious", true).await;
    writer.insert(0, "do not lose me").unwrap();
    writer.wait_acked(writer.sent_updates(), T).await.unwrap();
    writer.close().await.unwrap();
    drop(dure);

    // A fresh server must load the document from the store, which is not answering.
    let dure = Dure::start(&dir.path().join("data2"), &args(&flags))
        .await
        .unwrap();
    moto.pause().unwrap();
    let refused =
        dure_tests::yclient::YClient::connect(&dure.doc_url("precious", false), Default::default())
            .await
            .unwrap();
    let close = refused.wait_closed(T).await.expect("closed");
    let (code, reason) = close.expect("a close frame with a reason");
    assert_eq!(code, 1011, "{reason}");
    assert!(reason.contains("unavailable"), "{reason}");
    assert_eq!(refused.text(), "", "nothing may be served");
    moto.resume().unwrap();
    // Once the store answers, the document is served whole.
    let deadline = Instant::now() + T;
    loop {
        let c = dure_tests::yclient::YClient::connect(
            &dure.doc_url("precious", false),
            Default::default(),
        )
        .await
        .unwrap();
        if c.wait_text("do not lose me", Duration::from_secs(3))
            .await
            .is_ok()
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "document never served after the store came back"
        );
    }
}

/// `/readyz` on `dure`, and how long it took to answer.
async fn readyz_timed(dure: &Dure) -> (u16, String, Duration) {
    let started = Instant::now();
    let (code, body) = dure.get("/readyz").await.unwrap();
    (code, body, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readyz_answers_at_once_through_an_outage_and_recovers() {
    let moto = moto_with_bucket("dure-ready").await;
    let mut flags = moto.dure_flags("dure-ready");
    flags.extend(
        [
            "--health-check-interval",
            "500ms",
            "--s3-request-timeout",
            "2s",
        ]
        .map(str::to_owned),
    );
    let dir = temp_dir().unwrap();
    let dure = Dure::start(&dir.path().join("data"), &args(&flags))
        .await
        .unwrap();
    let (code, body, _) = readyz_timed(&dure).await;
    assert_eq!(code, 200, "{body}");
    // A hung S3: connections accepted, nothing answered. Probes of a 1 s period must still
    // get an answer, and soon that answer is "not ready" with the store named.
    moto.pause().unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let body = loop {
        let (code, body, took) = readyz_timed(&dure).await;
        assert!(
            took < Duration::from_secs(1),
            "readyz took {took:?}: {body}"
        );
        if code == 503 {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "still ready during the outage: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        body.starts_with("not ready") && body.contains("store: unreachable"),
        "{body}"
    );
    // Every answer during the outage is prompt, too.
    for _ in 0..5 {
        let (code, body, took) = readyz_timed(&dure).await;
        assert!(
            took < Duration::from_secs(1),
            "readyz took {took:?}: {body}"
        );
        assert_eq!(code, 503, "{body}");
    }
    moto.resume().unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (code, body, took) = readyz_timed(&dure).await;
        assert!(
            took < Duration::from_secs(1),
            "readyz took {took:?}: {body}"
        );
        if code == 200 {
            assert!(body.contains("store: ok"), "{body}");
            break;
        }
        assert!(Instant::now() < deadline, "never ready again: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
