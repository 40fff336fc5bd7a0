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
