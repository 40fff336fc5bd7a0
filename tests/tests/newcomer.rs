//! What a newcomer meets first is true: the README names the prerequisites the build and the
//! tests really have, `tests/run` raises the open-file limit like `.ci/run`, and the slow
//! installs show their progress.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap()
}

#[test]
fn the_readme_names_the_prerequisites_the_workspace_declares() {
    let cargo = read("Cargo.toml");
    let rust_version = cargo
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = \""))
        .and_then(|v| v.strip_suffix('"'))
        .expect("workspace rust-version");
    let readme = read("README.md");
    let prereq = readme
        .split("## Prerequisites")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("a Prerequisites section in the README");
    assert!(
        prereq.contains(&format!("Rust {rust_version}")),
        "the README must name rust-version {rust_version}: {prereq}"
    );
    for needed in [
        "C compiler",
        "aws-lc-sys",
        "root",
        "apt-get",
        "~/.cache/dure-test-tools",
    ] {
        assert!(prereq.contains(needed), "prerequisites lack {needed:?}");
    }
    // And it comes before the first command that needs it.
    assert!(readme.find("## Prerequisites") < readme.find("cargo run --release"));
}

#[test]
fn tests_run_raises_the_open_file_limit_before_testing() {
    let run = read("tests/run");
    let ulimit = run.find("ulimit -n").expect("tests/run raises ulimit -n");
    let tests = run.rfind("cargo test --release").unwrap();
    assert!(ulimit < tests);
    // And it works as a shell would run it (no error where raising is refused).
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(
            run.lines()
                .find(|l| l.trim_start().starts_with("ulimit -n"))
                .unwrap()
                .to_owned()
                + " && ulimit -n",
        )
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn slow_installs_show_their_progress() {
    let script = read("infra/install-test-deps.sh");
    for install in ["cargo install \"s3s-fs", "/bin/pip\" install"] {
        let line = script
            .lines()
            .find(|l| l.contains(install))
            .unwrap_or_else(|| panic!("{install} not found"));
        assert!(
            !line.contains("--quiet") && !line.contains(" -q"),
            "{install} runs quiet for minutes: {line}"
        );
    }
}
