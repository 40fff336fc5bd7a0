//! The S3 backend against real S3 servers: moto (conformance, fencing, faults) and s3s-fs
//! (signature checks). Both are started here as child processes; install them with
//! `infra/install-test-deps.sh s3 s3s`. A missing server fails the test, it never skips.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{Ipv4Addr, TcpListener};
use std::time::{Duration, Instant};

use bytes::Bytes;
use dure_storage::{Key, PutCondition, Store, StoreError};
use dure_storage_s3::{MULTIPART_THRESHOLD, PART_SIZE, S3Backend, S3Config, S3Credentials};
use dure_tests::s3::{MOTO_ACCESS_KEY_ID, MOTO_SECRET_ACCESS_KEY, MotoServer, REGION, S3sFsServer};

/// Generous: several moto servers and 32 racing writers share two cores in these tests.
const TIMEOUT: Duration = Duration::from_secs(20);

/// What a failing request may take beyond its request timeout (scheduling on a busy box).
const SLACK: Duration = Duration::from_secs(2);

fn config(endpoint: &str, bucket: &str, key: &str, secret: &str) -> S3Config {
    S3Config {
        region: REGION.to_owned(),
        endpoint: Some(endpoint.to_owned()),
        path_style: true,
        credentials: S3Credentials::Static {
            access_key_id: key.to_owned(),
            secret_access_key: secret.into(),
            session_token: None,
        },
        request_timeout: TIMEOUT,
        ..S3Config::new(bucket)
    }
}

fn moto_config(moto: &MotoServer, bucket: &str) -> S3Config {
    config(
        &moto.endpoint(),
        bucket,
        MOTO_ACCESS_KEY_ID,
        MOTO_SECRET_ACCESS_KEY,
    )
}

async fn moto_with_bucket(bucket: &str) -> MotoServer {
    let moto = MotoServer::start().await.expect("start moto");
    moto.create_bucket(bucket).await.expect("create bucket");
    moto
}

fn key(k: &str) -> Key {
    Key::new(k).expect("key")
}

/// Bytes that differ along their length, so that a misplaced part would show.
fn pattern(len: usize, seed: u32) -> Bytes {
    (0..len)
        .map(|i| ((i as u32).wrapping_mul(31).wrapping_add(seed) % 251) as u8)
        .collect::<Vec<u8>>()
        .into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_backend_conforms_on_moto() {
    let moto = moto_with_bucket("dure-conf").await;
    let backend = S3Backend::connect(moto_config(&moto, "dure-conf"))
        .await
        .expect("connect");
    let store = Store::new(backend);
    dure_storage::conformance::run(&store, "conf")
        .await
        .expect("S3 backend on moto");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn key_prefix_isolates_and_is_stripped() {
    let moto = moto_with_bucket("dure-prefixed").await;
    let prefixed = S3Backend::connect(S3Config {
        prefix: Some("/deploy/a/".into()),
        ..moto_config(&moto, "dure-prefixed")
    })
    .await
    .expect("connect with prefix");
    let described = dure_storage::Backend::describe(&prefixed);
    assert!(
        described.starts_with("s3://dure-prefixed/deploy/a @ http://127.0.0.1:"),
        "{described}"
    );
    assert!(!described.contains(MOTO_SECRET_ACCESS_KEY), "{described}");
    let prefixed = Store::new(prefixed);
    dure_storage::conformance::run(&prefixed, "conf")
        .await
        .expect("S3 backend with a key prefix");

    let whole = Store::new(
        S3Backend::connect(moto_config(&moto, "dure-prefixed"))
            .await
            .expect("connect without prefix"),
    );
    prefixed
        .put(
            &key("docs/x/log/1"),
            Bytes::from_static(b"p"),
            PutCondition::None,
        )
        .await
        .expect("put");
    whole
        .put(
            &key("docs/x/log/2"),
            Bytes::from_static(b"w"),
            PutCondition::None,
        )
        .await
        .expect("put");
    let seen_inside: Vec<String> = prefixed
        .list("docs/")
        .await
        .expect("list")
        .into_iter()
        .map(|e| e.key.to_string())
        .collect();
    assert_eq!(
        seen_inside,
        ["docs/x/log/1"],
        "the prefix must be stripped and isolate"
    );
    let seen_outside: Vec<String> = whole
        .list("deploy/")
        .await
        .expect("list")
        .into_iter()
        .map(|e| e.key.to_string())
        .collect();
    assert_eq!(seen_outside, ["deploy/a/docs/x/log/1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_bucket_is_misconfigured_and_names_it() {
    let moto = MotoServer::start().await.expect("start moto");
    let err = S3Backend::connect(moto_config(&moto, "no-such-bucket"))
        .await
        .expect_err("connect to a missing bucket");
    eprintln!("missing bucket: {err}");
    match err {
        StoreError::Misconfigured(m) => assert!(
            m.contains("bucket \"no-such-bucket\" does not exist (setting s3_bucket (--s3-bucket, DURE_S3_BUCKET))"),
            "{m}"
        ),
        other => panic!("expected Misconfigured, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_endpoint_is_unavailable_within_the_timeout() {
    // A port nobody listens on: connections are refused at once.
    let port = {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        l.local_addr().expect("addr").port()
    };
    let request_timeout = Duration::from_secs(2);
    let cfg = S3Config {
        request_timeout,
        ..config(&format!("http://127.0.0.1:{port}"), "dure", "k", "s")
    };
    let started = Instant::now();
    let err = S3Backend::connect(cfg).await.expect_err("connect");
    eprintln!("refused port, after {:?}: {err}", started.elapsed());
    assert!(
        started.elapsed() < request_timeout + SLACK,
        "took {:?}",
        started.elapsed()
    );
    match &err {
        StoreError::Unavailable(m) => assert!(m.contains("s3_endpoint"), "{m}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(err.is_retryable());

    // A server that accepts connections and never answers.
    let silent = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let cfg = S3Config {
        request_timeout,
        ..config(
            &format!("http://{}", silent.local_addr().expect("addr")),
            "dure",
            "k",
            "s",
        )
    };
    let started = Instant::now();
    let err = S3Backend::connect(cfg).await.expect_err("connect");
    let took = started.elapsed();
    eprintln!("silent server, after {took:?}: {err}");
    assert!(took < request_timeout + SLACK, "took {took:?}");
    assert!(
        matches!(&err, StoreError::Unavailable(m) if m.contains("s3_endpoint")),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_server_is_unavailable_within_the_timeout_then_recovers() {
    let moto = moto_with_bucket("dure-paused").await;
    let request_timeout = Duration::from_secs(2);
    let store = Store::new(
        S3Backend::connect(S3Config {
            request_timeout,
            ..moto_config(&moto, "dure-paused")
        })
        .await
        .expect("connect"),
    );
    let k = key("docs/p/log/0");
    store
        .put(&k, Bytes::from_static(b"before"), PutCondition::None)
        .await
        .expect("put before pause");

    moto.pause().expect("pause moto");
    let started = Instant::now();
    let put = store
        .put(
            &key("docs/p/log/1"),
            Bytes::from_static(b"during"),
            PutCondition::IfAbsent,
        )
        .await;
    let took = started.elapsed();
    eprintln!("put to a paused server, after {took:?}: {put:?}");
    assert!(matches!(put, Err(StoreError::Unavailable(_))), "{put:?}");
    assert!(took < request_timeout + SLACK, "put took {took:?}");
    let started = Instant::now();
    let get = store.get(&k).await;
    assert!(matches!(get, Err(StoreError::Unavailable(_))), "{get:?}");
    assert!(
        started.elapsed() < request_timeout + SLACK,
        "get took {:?}",
        started.elapsed()
    );
    let ping = store.ping().await;
    assert!(matches!(ping, Err(StoreError::Unavailable(_))), "{ping:?}");

    moto.resume().expect("resume moto");
    let got = store
        .get(&k)
        .await
        .expect("get after resume")
        .expect("object");
    assert_eq!(got.data, Bytes::from_static(b"before"));
    store
        .put(
            &key("docs/p/log/2"),
            Bytes::from_static(b"after"),
            PutCondition::IfAbsent,
        )
        .await
        .expect("put after resume");
    store.ping().await.expect("ping after resume");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_objects_go_up_in_parts_with_conditions() {
    let bucket = "dure-multipart";
    let moto = moto_with_bucket(bucket).await;
    let store = Store::new(
        S3Backend::connect(moto_config(&moto, bucket))
            .await
            .expect("connect"),
    );
    // Two full parts and a short last one.
    let len = 2 * PART_SIZE + 1024 * 1024 + 7;
    assert!(len > MULTIPART_THRESHOLD);
    let k = key("docs/big/snapshot-0000000000000001");
    let first = pattern(len, 1);
    let v1 = store
        .put(&k, first.clone(), PutCondition::IfAbsent)
        .await
        .expect("multipart if-absent on a new key");
    let got = store.get(&k).await.expect("get").expect("object");
    assert!(got.data == first, "multipart object came back different");
    assert_eq!(got.version, v1, "get must report the version put returned");
    let listed = store.list("docs/big/").await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].size, len as u64);

    let lost = store.put(&k, pattern(len, 2), PutCondition::IfAbsent).await;
    assert!(
        matches!(lost, Err(StoreError::ConditionFailed { .. })),
        "multipart if-absent on an existing key: {lost:?}"
    );
    let v2 = store
        .put(&k, pattern(len, 3), PutCondition::IfMatch(v1.clone()))
        .await
        .expect("multipart if-match with the current version");
    assert_ne!(v1, v2);
    let stale = store
        .put(&k, pattern(len, 4), PutCondition::IfMatch(v1))
        .await;
    assert!(
        matches!(stale, Err(StoreError::ConditionFailed { .. })),
        "multipart if-match with a stale version: {stale:?}"
    );
    let got = store.get(&k).await.expect("get").expect("object");
    assert!(
        got.data == pattern(len, 3),
        "a failed conditional multipart put changed the object"
    );
    assert_eq!(
        moto.open_multipart_uploads(bucket)
            .await
            .expect("list uploads"),
        0,
        "failed multipart uploads must be aborted"
    );
    store.delete(&k).await.expect("delete");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_secret_key_is_refused_by_a_signature_checking_server() {
    let s3s = S3sFsServer::start("dure-access", "dure-secret-key")
        .await
        .expect("start s3s-fs");
    s3s.create_bucket("dure-signed").expect("create bucket");

    let err = S3Backend::connect(config(
        &s3s.endpoint(),
        "dure-signed",
        "dure-access",
        "wrong-secret",
    ))
    .await
    .expect_err("connect with a wrong secret");
    eprintln!("wrong secret: {err}");
    match &err {
        StoreError::Misconfigured(m) => {
            assert!(m.contains("refused the credentials"), "{m}");
            assert!(m.contains("s3_secret_access_key"), "{m}");
            assert!(!m.contains("wrong-secret"), "the secret leaked into {m}");
        }
        other => panic!("expected Misconfigured, got {other:?}"),
    }

    // The right key works end to end (signatures, bodies, listing).
    let store = Store::new(
        S3Backend::connect(config(
            &s3s.endpoint(),
            "dure-signed",
            "dure-access",
            "dure-secret-key",
        ))
        .await
        .expect("connect with the right key"),
    );
    let k = key("docs/s/log/0");
    let v = store
        .put(&k, Bytes::from_static(b"signed"), PutCondition::IfAbsent)
        .await
        .expect("put");
    let got = store.get(&k).await.expect("get").expect("object");
    assert_eq!(got.data, Bytes::from_static(b"signed"));
    assert_eq!(got.version, v);
    assert_eq!(store.list("docs/").await.expect("list").len(), 1);
    store.delete(&k).await.expect("delete");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_multipart_if_absent_writers_have_one_winner() {
    let bucket = "dure-multipart-race";
    let moto = moto_with_bucket(bucket).await;
    let store = Store::new(
        S3Backend::connect(moto_config(&moto, bucket))
            .await
            .expect("connect"),
    );
    let k = key("docs/race/snapshot-0000000000000001");
    // Started together, the writers pass the HEAD pre-check; the If-None-Match of
    // CompleteMultipartUpload must then let exactly one of them through.
    let len = MULTIPART_THRESHOLD + 1024 * 1024;
    let mut tasks = Vec::new();
    for i in 0..4u32 {
        let (store, k) = (store.clone(), k.clone());
        tasks.push(tokio::spawn(async move {
            (
                i,
                store.put(&k, pattern(len, i), PutCondition::IfAbsent).await,
            )
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        match t.await.expect("join") {
            (i, Ok(_)) => winners.push(i),
            (_, Err(StoreError::ConditionFailed { .. })) => {}
            (_, Err(e)) => panic!("a racing multipart writer failed oddly: {e}"),
        }
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    let got = store.get(&k).await.expect("get").expect("object");
    assert!(
        got.data == pattern(len, winners[0]),
        "stored bytes are not the winner's"
    );
    assert_eq!(
        moto.open_multipart_uploads(bucket)
            .await
            .expect("list uploads"),
        0,
        "the losers' uploads must be aborted"
    );
}

/// Issue 10 item 13: merged objects go in one DeleteObjects request per 1,000 keys, not one
/// DELETE each.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn delete_many_sends_one_request_per_thousand_keys() {
    let moto = moto_with_bucket("dure-batch").await;
    let store = Store::new(
        S3Backend::connect(moto_config(&moto, "dure-batch"))
            .await
            .expect("connect"),
    );
    let mut keys = Vec::new();
    for i in 0..2100u32 {
        let k = key(&format!("batch/{i:05}"));
        if i % 7 != 0 {
            store
                .put(&k, Bytes::from_static(b"x"), PutCondition::None)
                .await
                .expect("put");
        }
        keys.push(k);
    }
    store.delete_many(&keys).await.expect("delete_many");
    assert!(store.list("batch/").await.expect("list").is_empty());
    let logs = moto.logs();
    assert_eq!(
        moto.requests_logged("POST /dure-batch/?delete"),
        3,
        "expected 3 DeleteObjects requests for 2,100 keys:\n{logs}"
    );
    assert_eq!(
        moto.requests_logged("DELETE /dure-batch/batch/"),
        0,
        "keys were deleted one by one:\n{logs}"
    );
}
