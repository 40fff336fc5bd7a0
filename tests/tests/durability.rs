//! The real `dure` binary on local disk: nothing acknowledged is lost on `kill -9`, SIGTERM
//! flushes, idle rooms unload and reload, a large document survives a restart.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

mod common;

use common::{T, client, read_text};
use dure_tests::server::{Dure, temp_dir};
use rand::{Rng, SeedableRng};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_loses_nothing_acknowledged() {
    let seeds: Vec<u64> = match std::env::var("DURE_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        Some(s) => vec![s],
        None => (0..4).map(|_| rand::random()).collect(),
    };
    for seed in seeds {
        common::kill_round(seed, &[]).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_flushes_every_room_and_closes_with_1012() {
    let dir = temp_dir().unwrap();
    let data = dir.path().join("data");
    // A long commit interval holds batches back: only the shutdown flush can write them.
    let mut dure = Dure::start(&data, &["--commit-interval", "30s"])
        .await
        .unwrap();
    let mut clients = Vec::new();
    for doc in ["term-a", "term-b", "term-c"] {
        let c = client(&dure, doc, true).await;
        c.insert(0, "first").expect("insert");
        clients.push((doc, c));
    }
    for (_, c) in &clients {
        c.wait_acked(c.sent_updates(), T)
            .await
            .expect("first write acked");
    }
    for (doc, c) in &clients {
        for i in 0..20 {
            c.insert(c.text_len(), &format!(" {doc}{i}"))
                .expect("insert");
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (_, c) in &clients {
        assert!(
            c.acked() < c.sent_updates(),
            "held-back batch was acknowledged before shutdown"
        );
    }
    let started = Instant::now();
    let code = dure
        .sigterm(Duration::from_secs(15))
        .await
        .expect("exit after SIGTERM");
    assert_eq!(code, Some(0), "logs:\n{}", dure.logs());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "shutdown took {:?}",
        started.elapsed()
    );
    for (doc, c) in &clients {
        let close = c.wait_closed(T).await.expect("closed");
        assert_eq!(close.map(|c| c.0), Some(1012), "{doc}");
        assert_eq!(
            c.acked(),
            c.sent_updates(),
            "{doc}: shutdown must flush and ack before closing"
        );
    }
    let dure = Dure::start(&data, &[]).await.unwrap();
    for (doc, c) in &clients {
        assert_eq!(read_text(&dure, doc).await, c.text(), "{doc}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_room_unloads_and_reloads() {
    let dir = temp_dir().unwrap();
    let dure = Dure::start(&dir.path().join("data"), &["--idle-unload", "300ms"])
        .await
        .unwrap();
    let c = client(&dure, "idle", true).await;
    c.insert(0, "still here after unload").expect("insert");
    c.wait_acked(c.sent_updates(), T).await.expect("acked");
    c.close().await.ok();
    let deadline = Instant::now() + T;
    loop {
        let (_, metrics) = dure.get("/metrics").await.unwrap();
        if metrics.lines().any(|l| l == "dure_rooms_loaded 0") {
            break;
        }
        assert!(Instant::now() < deadline, "room never unloaded:\n{metrics}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(read_text(&dure, "idle").await, "still here after unload");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn large_document_survives_restart() {
    let dir = temp_dir().unwrap();
    let data = dir.path().join("data");
    let mut dure = Dure::start(&data, &["--compact-after-entries", "50"])
        .await
        .unwrap();
    let c = client(&dure, "large", true).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for i in 0..2000u32 {
        let len = c.text_len();
        if i % 5 == 4 && len > 100 {
            c.delete(rng.random_range(0..len - 50), 20).expect("delete");
        } else {
            let line: String = (0..rng.random_range(50..250))
                .map(|_| rng.random_range(b'a'..=b'z') as char)
                .collect();
            c.insert(rng.random_range(0..=len), &line).expect("insert");
        }
    }
    c.wait_acked(c.sent_updates(), Duration::from_secs(60))
        .await
        .expect("all acked");
    let want = c.text();
    assert!(want.len() > 150_000, "document only {} bytes", want.len());
    dure.sigterm(T).await.expect("stop");
    let dure = Dure::start(&data, &[]).await.unwrap();
    let started = Instant::now();
    let got = read_text(&dure, "large").await;
    println!("reloaded {} chars in {:?}", got.len(), started.elapsed());
    assert_eq!(got, want);
}

/// The log entries and snapshots a document has in an fs data directory.
fn stored_objects(data: &std::path::Path, doc: &str) -> (usize, usize) {
    let dir = data.join("objects/docs").join(doc);
    let logs = std::fs::read_dir(dir.join("log")).map_or(0, |d| d.count());
    let snapshots = std::fs::read_dir(&dir).map_or(0, |d| {
        d.flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("snapshot-"))
            .count()
    });
    (logs, snapshots)
}

/// Issue 10 item 13: a document unloaded (idle or at shutdown) with a log tail is compacted
/// then, so the first load after a restart reads one snapshot instead of replaying the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unload_and_shutdown_compact_the_log_tail() {
    let dir = temp_dir().unwrap();
    let data = dir.path().join("data");
    let mut dure = Dure::start(
        &data,
        &["--idle-unload", "300ms", "--commit-interval", "0s"],
    )
    .await
    .unwrap();
    // Fewer entries than compact_after_entries: only the unload can merge them.
    let idle = client(&dure, "idle-tail", true).await;
    for i in 0..30 {
        idle.insert(idle.text_len(), &format!("i{i} ")).unwrap();
        idle.wait_acked(idle.sent_updates(), T).await.unwrap();
    }
    let want_idle = idle.text();
    assert!(stored_objects(&data, "idle-tail").0 >= 30);
    idle.close().await.ok();
    let deadline = Instant::now() + T;
    while stored_objects(&data, "idle-tail") != (0, 1) {
        assert!(
            Instant::now() < deadline,
            "idle unload left {:?} (log entries, snapshots)\n{}",
            stored_objects(&data, "idle-tail"),
            dure.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Held open until the shutdown.
    let open = client(&dure, "shutdown-tail", true).await;
    for i in 0..30 {
        open.insert(0, &format!("s{i} ")).unwrap();
        open.wait_acked(open.sent_updates(), T).await.unwrap();
    }
    let want_open = open.text();
    assert_eq!(dure.sigterm(T).await.unwrap(), Some(0), "{}", dure.logs());
    assert_eq!(
        stored_objects(&data, "shutdown-tail"),
        (0, 1),
        "shutdown left a log tail\n{}",
        dure.logs()
    );
    let dure = Dure::start(&data, &[]).await.unwrap();
    assert_eq!(read_text(&dure, "idle-tail").await, want_idle);
    assert_eq!(read_text(&dure, "shutdown-tail").await, want_open);
}

/// Issue 10 item H: the data directory holds sessions with refresh tokens and everyone's
/// documents: owner-only whatever the umask.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_directory_is_owner_only_under_umask_022() {
    use std::os::unix::fs::PermissionsExt;
    let dir = temp_dir().unwrap();
    let data = dir.path().join("data");
    let dure = Dure::start_with_umask(&data, "022", &[]).await.unwrap();
    let c = client(&dure, "private", true).await;
    c.insert(0, "not for other users").unwrap();
    c.wait_acked(c.sent_updates(), T).await.unwrap();
    let mut stack = vec![data.clone()];
    let mut seen = 0;
    while let Some(path) = stack.pop() {
        let meta = std::fs::metadata(&path).unwrap();
        let mode = meta.permissions().mode() & 0o777;
        if meta.is_dir() {
            assert_eq!(mode, 0o700, "{} is {mode:o}", path.display());
            stack.extend(
                std::fs::read_dir(&path)
                    .unwrap()
                    .flatten()
                    .map(|e| e.path()),
            );
        } else {
            assert_eq!(mode, 0o600, "{} is {mode:o}", path.display());
        }
        seen += 1;
    }
    assert!(seen >= 6, "only {seen} paths checked");
}
