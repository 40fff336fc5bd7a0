//! Start-up of the real binary: broken configuration is refused with a message naming the
//! setting, local mode stays on loopback, one data directory serves one process.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use dure_tests::server::{Dure, run_to_exit, temp_dir};

fn run(args: &[&str], dir: &std::path::Path) -> (Option<i32>, String) {
    run_to_exit(dir, args, &[]).unwrap()
}

#[test]
fn invalid_settings_are_named_and_refused() {
    let dir = temp_dir().unwrap();
    for (args, setting) in [
        (vec!["--listen", "0.0.0.0:8080"], "listen"),
        (vec!["--listen", "localhost"], "listen"),
        (vec!["--max-frame-bytes", "lots"], "max_frame_bytes"),
        (vec!["--idle-unload", "forever"], "idle_unload"),
        (vec!["--storage", "tape"], "storage"),
    ] {
        let (code, out) = run(&args, dir.path());
        assert_eq!(code, Some(2), "{args:?}: {out}");
        assert!(
            out.contains(&format!("`{setting}`")),
            "{args:?} must name {setting}: {out}"
        );
    }
    std::fs::write(
        dir.path().join("dure.toml"),
        "listen = \"127.0.0.1:0\"\nshutdown_timout = \"3s\"\n",
    )
    .unwrap();
    let (code, out) = run(&[], dir.path());
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("unknown setting `shutdown_timout`"), "{out}");
    let (code, out) = run(&["--help"], dir.path());
    assert_eq!(code, Some(0));
    assert!(
        out.contains("--data-dir") && out.contains("DURE_DATA_DIR"),
        "{out}"
    );
}

#[tokio::test]
async fn environment_configures_and_a_second_process_cannot_share_the_data_dir() {
    let dir = temp_dir().unwrap();
    let data = dir.path().join("data");
    let first = Dure::start(&data, &[]).await.unwrap();
    assert!(first.logs().contains("local mode"), "{}", first.logs());
    let (code, body) = first.get("/readyz").await.unwrap();
    assert_eq!(code, 200, "{body}");
    let no_args: [&str; 0] = [];
    let (code, text) = run_to_exit(
        dir.path(),
        &no_args,
        &[
            ("DURE_LISTEN", "127.0.0.1:0".as_ref()),
            ("DURE_DATA_DIR", data.as_os_str()),
        ],
    )
    .unwrap();
    assert_ne!(
        code,
        Some(0),
        "a second dure on one data directory must not start: {text}"
    );
    assert!(text.contains("in use by another dure process"), "{text}");
}

/// Runs `dure` to its exit with `NO_COLOR` unset and both streams piped (as under systemd,
/// Docker or a pipe to a file): (exit code, stdout, stderr).
fn run_without_no_color(dir: &std::path::Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = std::process::Command::new("timeout")
        .arg("60")
        .arg(dure_tests::server::dure_bin().unwrap())
        .args(args)
        .current_dir(dir)
        .env_remove("NO_COLOR")
        .env_remove("DURE_CONFIG")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_start_up_error_is_said_once_in_plain_text_and_fails_the_exit_code() {
    let dir = temp_dir().unwrap();
    // Something already listens on the port dure is told to use.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let data = dir.path().join("data");
    let (code, stdout, stderr) = run_without_no_color(
        dir.path(),
        &["--listen", &addr, "--data-dir", data.to_str().unwrap()],
    );
    let all = format!("{stdout}{stderr}");
    assert!(code.is_some_and(|c| c != 0), "exit {code:?}: {all}");
    assert_eq!(
        all.matches("cannot listen on").count(),
        1,
        "the error must be said exactly once:\n{all}"
    );
    assert!(
        stderr.contains("cannot listen on"),
        "errors go to stderr: {all}"
    );
    assert!(
        !all.contains('\u{1b}'),
        "colour codes written to a pipe:\n{all:?}"
    );
    // The same holds for a configuration error (before logging is set up).
    let (code, stdout, stderr) = run_without_no_color(dir.path(), &["--storage", "tape"]);
    assert_eq!(code, Some(2), "{stdout}{stderr}");
    assert_eq!(stderr.matches("`storage`").count(), 1, "{stderr}");
    assert!(!stderr.contains('\u{1b}'), "{stderr:?}");
}

#[test]
fn help_speaks_to_users_and_settings_are_named_in_every_form() {
    let dir = temp_dir().unwrap();
    let (code, out) = run(&["--help"], dir.path());
    assert_eq!(code, Some(0), "{out}");
    let first = out.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("Dure") && !out.contains("The dure binary"),
        "--help must open with a sentence for users, not the crate's doc: {first:?}"
    );
    let storage_help = out
        .split("--storage <BACKEND>")
        .nth(1)
        .and_then(|rest| rest.split("\n      --").next())
        .unwrap_or_default();
    // Clap may wrap the help text: compare with whitespace collapsed.
    let storage_help = storage_help
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        storage_help.contains("fs, memory or s3"),
        "--storage must list s3: {storage_help}"
    );
    // An error names the setting as the file, the flag and the environment spell it.
    let (code, out) = run(&["--storage", "s3"], dir.path());
    assert_eq!(code, Some(2), "{out}");
    for form in ["`s3_bucket`", "--s3-bucket", "DURE_S3_BUCKET"] {
        assert!(out.contains(form), "the error must name {form}: {out}");
    }
}

#[tokio::test]
async fn metrics_listen_moves_metrics_to_their_own_address() {
    let dir = temp_dir().unwrap();
    let dure = Dure::start(
        &dir.path().join("data"),
        &["--metrics-listen", "127.0.0.1:0"],
    )
    .await
    .unwrap();
    // The address is logged right after the main one.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let metrics_addr: std::net::SocketAddr = loop {
        let logs = dure.logs();
        if let Some(addr) = logs
            .split("metrics on http://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
        {
            break addr.parse().unwrap();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no metrics address logged:\n{logs}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_ne!(metrics_addr, dure.addr);
    let (code, body) = dure_tests::server::http_get(metrics_addr, "/metrics")
        .await
        .unwrap();
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("dure_connections"), "{body}");
    let (code, _) = dure.get("/metrics").await.unwrap();
    assert_eq!(code, 404, "/metrics must leave the main listener");
    let (code, _) = dure_tests::server::http_get(metrics_addr, "/readyz")
        .await
        .unwrap();
    assert_eq!(code, 404, "the metrics listener serves /metrics only");
    // Local mode keeps it on loopback, like `listen`.
    let (code, out) = run(&["--metrics-listen", "0.0.0.0:9090"], dir.path());
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("`metrics_listen`"), "{out}");
}
