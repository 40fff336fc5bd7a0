//! Runs one browser scenario (`node tests/e2e/SCRIPT NAME BASE ARTIFACTS [ARGS…]`, Debian's
//! Chromium driven by playwright-core) and talks with it over the line protocol of
//! `tests/e2e/lib.mjs`: `ASK what` asks the test to act on the services and answer `ok`;
//! `RESULT json` hands over values to check. Shared by `web_e2e.rs` (local mode) and
//! `web_e2e_oidc.rs` (signed in through the test identity provider).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

/// One browser at a time: the machine has two cores, and Chromium is hungry.
static BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A whole scenario, browser start included (not the wait for another test's browser).
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(240);

pub fn e2e_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("e2e")
}

pub fn artifacts_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/e2e-artifacts")
}

fn chromium() -> PathBuf {
    std::env::var_os("DURE_CHROMIUM")
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

/// What a scenario handed back.
pub struct Outcome {
    pub results: Vec<Value>,
}

/// One run of a scenario.
pub struct Scenario<'a> {
    /// The script in `tests/e2e` (`run.mjs`, `oidc.mjs`).
    pub script: &'a str,
    pub name: &'a str,
    /// The app's URL without a trailing slash.
    pub base: &'a str,
    /// More arguments after the artifacts directory.
    pub args: Vec<String>,
}

impl<'a> Scenario<'a> {
    pub fn new(script: &'a str, name: &'a str, base: &'a str) -> Self {
        Scenario {
            script,
            name,
            base: base.trim_end_matches('/'),
            args: Vec::new(),
        }
    }

    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Runs it, answering its `ASK` lines with `on_ask`. On failure the panic message holds the
    /// scenario's error output and `diagnostics()` (the services' logs).
    pub async fn run(
        self,
        diagnostics: impl Fn() -> String,
        mut on_ask: impl FnMut(&str),
    ) -> Outcome {
        let name = self.name;
        let modules = e2e_dir().join("node_modules/playwright-core");
        assert!(
            modules.is_dir(),
            "{} is missing: run infra/install-test-deps.sh (step e2e)",
            modules.display()
        );
        assert!(
            chromium().is_file(),
            "{} is missing: run infra/install-test-deps.sh (step e2e installs Debian's chromium)",
            chromium().display()
        );
        let _one_browser = BROWSER.lock().await;
        std::fs::create_dir_all(artifacts_dir()).unwrap();
        let mut child = Command::new(std::env::var("DURE_NODE").unwrap_or_else(|_| "node".into()))
            .arg(self.script)
            .arg(name)
            .arg(self.base)
            .arg(artifacts_dir())
            .args(&self.args)
            .current_dir(e2e_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("node (run infra/install-test-deps.sh)");
        let mut stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let stderr_text = Arc::new(Mutex::new(String::new()));
        let mut stderr = child.stderr.take().unwrap();
        let sink = stderr_text.clone();
        let stderr_task = tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                let chunk = String::from_utf8_lossy(&buf[..n]).into_owned();
                eprint!("{chunk}");
                sink.lock().unwrap().push_str(&chunk);
            }
        });
        let mut results = Vec::new();
        let run = async {
            while let Some(line) = stdout.next_line().await.unwrap() {
                if let Some(what) = line.strip_prefix("ASK ") {
                    on_ask(what);
                    stdin.write_all(b"ok\n").await.unwrap();
                    stdin.flush().await.unwrap();
                } else if let Some(json) = line.strip_prefix("RESULT ") {
                    results.push(serde_json::from_str(json).unwrap());
                } else {
                    println!("{line}");
                }
            }
            child.wait().await.unwrap()
        };
        let status = tokio::time::timeout(SCENARIO_TIMEOUT, run)
            .await
            .unwrap_or_else(|_| {
                panic!("scenario {name} did not finish within {SCENARIO_TIMEOUT:?}")
            });
        let _ = stderr_task.await;
        assert!(
            status.success(),
            "scenario {name} failed ({status}); screenshots in {}\n{}\n{}",
            artifacts_dir().display(),
            stderr_text.lock().unwrap(),
            diagnostics()
        );
        Outcome { results }
    }
}

/// `v[key]` as a string; panics naming the key when it is missing.
pub fn field<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_else(|| panic!("no {key} in {v}"))
}

/// The rich text (Yjs XML of the editor's field `default`) as the server has it, read by a
/// Rust Yjs client connecting with `opts`.
pub async fn stored_xml(
    url: &str,
    opts: dure_tests::yclient::ConnectOptions,
    timeout: Duration,
) -> String {
    let c = dure_tests::yclient::YClient::connect(url, opts)
        .await
        .expect("connect");
    c.wait_synced(timeout).await.expect("synced");
    let fragment = c.doc().get_or_insert_xml_fragment("default");
    let xml = {
        let txn = yrs::Transact::transact(c.doc());
        yrs::GetString::get_string(&fragment, &txn)
    };
    c.close().await.ok();
    xml
}
