//! Spawning the laptop client `dure-desktop` for black-box tests, and the server it syncs with.
//!
//! - [`desktop_bin`]: the binary, next to `dure` (`cargo build --release -p dure-desktop`).
//! - [`Desktop`]: `dure-desktop --data-dir D …`: [`Desktop::login`] signs a test user in with
//!   the scripted [`Browser`] (the program prints the authorization URL with `--no-browser`;
//!   the browser walks the provider and then requests the program's loopback redirect),
//!   [`Desktop::start`] runs `run` until [`Desktop::sigterm`] / [`Desktop::kill9`],
//!   [`Desktop::status`] runs `status --json`, [`Desktop::cmd`] runs any other subcommand.
//! - [`ServerEnv`]: the real `dure` with the real test OpenID provider (as
//!   [`crate::signed_in::SignedIn`], plus `--oidc-desktop-client-id dure-cli`), with provider
//!   options of the test's choosing, a stop and a restart on the same address and data, fresh
//!   bearer tokens per user, and the document API.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

use crate::browser::Browser;
use crate::idp::{CLI_CLIENT_ID, IdpOptions, SCOPES, TestIdp, free_port};
use crate::server::{Dure, find_bin, status_and_json, temp_dir};
use crate::yclient::{ConnectOptions, YClient};

pub use crate::server::BoxError;

/// Result of the harness calls.
pub type Result<T, E = BoxError> = std::result::Result<T, E>;

/// How long `run` may take to print `local app on …`.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a short subcommand (`status`, `logout`, `export`) may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// How long `login` may take to print its URL, and to exit once the browser came back.
const LOGIN_STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// The `dure-desktop` binary under test: `$DURE_DESKTOP_BIN`, else `dure-desktop` next to
/// this test's target dir (where `dure` is).
pub fn desktop_bin() -> Result<PathBuf> {
    find_bin(
        "dure-desktop",
        "DURE_DESKTOP_BIN",
        "cargo build --release -p dure-desktop` (tests/run builds every binary)",
    )
}

/// A `dure-desktop --data-dir D` command: no proxy from the environment (everything is on
/// loopback), `NO_COLOR=1`, stdin closed, output piped, killed when dropped.
pub fn command(data_dir: &Path) -> Result<Command> {
    let mut cmd = Command::new(desktop_bin()?);
    cmd.arg("--data-dir")
        .arg(data_dir)
        .env("NO_COLOR", "1")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost");
    for var in [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ] {
        cmd.env_remove(var);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    Ok(cmd)
}

/// What a subcommand that ran to its end did.
#[derive(Debug, Clone)]
pub struct Output {
    /// `None` when ended by a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// Both streams, for failure messages.
    pub fn describe(&self) -> String {
        format!(
            "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// What [`Desktop::login`] went through.
#[derive(Debug, Clone)]
pub struct LoginOutcome {
    /// The authorization URL the program printed (before `login_hint` was added).
    pub authorize_url: String,
    /// The program's loopback redirect URL the provider sent the browser to.
    pub callback_url: String,
    /// The program's answer to that redirect.
    pub callback_status: u16,
    pub callback_body: String,
    /// Everything the program printed.
    pub output: Output,
}

/// A running `dure-desktop … run` (or none, between [`Desktop::kill9`] and a new start).
pub struct Desktop {
    pub data_dir: PathBuf,
    child: Option<Child>,
    log: Arc<Mutex<String>>,
    /// `http://127.0.0.1:PORT` (no trailing slash): the embedded local server.
    pub local: Option<String>,
}

impl std::fmt::Debug for Desktop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Desktop")
            .field("data_dir", &self.data_dir)
            .field("local", &self.local)
            .field("running", &self.child.is_some())
            .finish_non_exhaustive()
    }
}

impl Desktop {
    /// `dure-desktop --data-dir D login SERVER --no-browser` signed in as `user` (a test
    /// provider login): reads the `sign in at: URL` line, walks the provider with
    /// `login_hint=user`, GETs the program's loopback redirect with the same browser, and
    /// waits for the exit. Fails unless the exit is 0, the redirect answered 200 and the
    /// program printed `signed in as <name>` (the user's name at the provider).
    pub async fn login(data_dir: &Path, server_base: &str, user: &str) -> Result<LoginOutcome> {
        let mut cmd = command(data_dir)?;
        cmd.arg("login").arg(server_base).arg("--no-browser");
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("starting dure-desktop login: {e}"))?;
        let out_log = Arc::new(Mutex::new(String::new()));
        let err_log = Arc::new(Mutex::new(String::new()));
        let (tx, mut rx) = mpsc::unbounded_channel();
        let out_task = child
            .stdout
            .take()
            .map(|s| tokio::spawn(pump(s, out_log.clone(), Some(tx))));
        let err_task = child
            .stderr
            .take()
            .map(|s| tokio::spawn(pump(s, err_log.clone(), None)));
        let printed = |child_status: &str| {
            format!(
                "dure-desktop login ({child_status})\n--- stdout\n{}\n--- stderr\n{}",
                snapshot(&out_log),
                snapshot(&err_log)
            )
        };

        // The one line with the authorization URL.
        let deadline = tokio::time::Instant::now() + LOGIN_STEP_TIMEOUT;
        let authorize_url = loop {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(line)) => {
                    if let Some(url) = line.trim().strip_prefix("sign in at:") {
                        break url.trim().to_owned();
                    }
                }
                Ok(None) => {
                    let status = child
                        .wait()
                        .await
                        .map(|s| s.to_string())
                        .unwrap_or_default();
                    return Err(format!(
                        "{}\nit never printed `sign in at: URL`",
                        printed(&status)
                    )
                    .into());
                }
                Err(_) => {
                    let _ = child.kill().await;
                    return Err(format!(
                        "{}\nno `sign in at: URL` line within {LOGIN_STEP_TIMEOUT:?}",
                        printed("killed")
                    )
                    .into());
                }
            }
        };

        let browser = Browser::new()?;
        let walk = async {
            let callback_url = browser
                .through_idp(&Browser::with_login_hint(&authorize_url, user)?)
                .await?;
            let answer = browser.get(&callback_url).await?;
            Ok::<_, BoxError>((callback_url, answer))
        };
        let (callback_url, answer) = match walk.await {
            Ok(x) => x,
            Err(e) => {
                let _ = child.kill().await;
                return Err(format!(
                    "the browser could not complete the sign-in at {authorize_url}: {e}\n{}",
                    printed("killed")
                )
                .into());
            }
        };

        let status = match tokio::time::timeout(LOGIN_STEP_TIMEOUT, child.wait()).await {
            Ok(s) => s?,
            Err(_) => {
                let _ = child.kill().await;
                return Err(format!(
                    "{}\nstill running {LOGIN_STEP_TIMEOUT:?} after the browser came back to {callback_url}",
                    printed("killed")
                )
                .into());
            }
        };
        for task in [out_task, err_task].into_iter().flatten() {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
        let output = Output {
            code: status.code(),
            stdout: snapshot(&out_log),
            stderr: snapshot(&err_log),
        };
        let outcome = LoginOutcome {
            authorize_url,
            callback_url,
            callback_status: answer.status,
            callback_body: answer.body,
            output,
        };
        if !outcome.output.success() {
            return Err(format!("dure-desktop login failed: {}", outcome.output.describe()).into());
        }
        if outcome.callback_status != 200 {
            return Err(format!(
                "the loopback redirect {} answered {}: {}\n{}",
                outcome.callback_url,
                outcome.callback_status,
                outcome.callback_body,
                outcome.output.describe()
            )
            .into());
        }
        let expected = match crate::idp::user(user) {
            Some(u) => format!("signed in as {}", u.name),
            None => "signed in as ".to_owned(),
        };
        if !outcome.output.stdout.contains(&expected) {
            return Err(format!(
                "dure-desktop login did not print {expected:?}: {}",
                outcome.output.describe()
            )
            .into());
        }
        Ok(outcome)
    }

    /// `dure-desktop --data-dir D run --listen 127.0.0.1:PORT --poll-interval 1s`; waits
    /// (20 s) for its `local app on http://127.0.0.1:PORT/` line.
    pub async fn start(data_dir: &Path, port: u16) -> Result<Desktop> {
        Self::start_with(data_dir, port, &["--poll-interval", "1s"]).await
    }

    /// Like [`Desktop::start`] with other flags after `run --listen 127.0.0.1:PORT`.
    pub async fn start_with(data_dir: &Path, port: u16, extra: &[&str]) -> Result<Desktop> {
        let mut cmd = command(data_dir)?;
        cmd.arg("run")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .args(extra);
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("starting dure-desktop run: {e}"))?;
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, mut rx) = mpsc::unbounded_channel();
        if let Some(out) = child.stdout.take() {
            tokio::spawn(pump(out, log.clone(), Some(tx.clone())));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(pump(err, log.clone(), Some(tx)));
        }
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        let local = loop {
            tokio::select! {
                line = tokio::time::timeout_at(deadline, rx.recv()) => match line {
                    Ok(Some(line)) => {
                        if let Some(rest) = line.split("local app on ").nth(1)
                            && let Some(url) = rest.split_whitespace().next()
                        {
                            break url.trim_end_matches('/').to_owned();
                        }
                    }
                    Ok(None) | Err(_) => {
                        let _ = child.kill().await;
                        return Err(format!(
                            "dure-desktop run did not print `local app on …` within {START_TIMEOUT:?}; its output:\n{}",
                            snapshot(&log)
                        )
                        .into());
                    }
                },
                status = child.wait() => {
                    // Let the readers catch up with its last words.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    return Err(format!(
                        "dure-desktop run exited ({}) before serving; its output:\n{}",
                        status.map(|s| s.to_string()).unwrap_or_default(),
                        snapshot(&log)
                    )
                    .into());
                }
            }
        };
        Ok(Desktop {
            data_dir: data_dir.to_path_buf(),
            child: Some(child),
            log,
            local: Some(local),
        })
    }

    /// The local server's base URL (`http://127.0.0.1:PORT`).
    pub fn local(&self) -> Result<&str> {
        self.local
            .as_deref()
            .ok_or_else(|| "this desktop is not running".into())
    }

    /// `ws://127.0.0.1:PORT/ws/doc/{doc}` of the local replica (add `ack` with
    /// [`ConnectOptions::ack`]).
    pub fn local_ws(&self, doc: &str) -> Result<String> {
        let base = self.local()?;
        let host = base
            .strip_prefix("http://")
            .ok_or_else(|| format!("unexpected local URL {base}"))?;
        Ok(format!("ws://{host}/ws/doc/{doc}"))
    }

    /// A Yjs client of the local replica's document (no credentials, no Origin), with save
    /// acknowledgements; returns once the local replica's sync step 2 arrived.
    pub async fn open_local(&self, doc: &str) -> Result<YClient> {
        let url = self.local_ws(doc)?;
        let c = YClient::connect(
            &url,
            ConnectOptions {
                ack: true,
                ..ConnectOptions::default()
            },
        )
        .await
        .map_err(|e| format!("connecting to {url}: {e}\n{}", self.logs()))?;
        c.wait_synced(Duration::from_secs(10))
            .await
            .map_err(|e| format!("{url}: {e}\n{}", self.logs()))?;
        Ok(c)
    }

    /// `GET {local}/api/docs`: the ids of the replica's documents.
    pub async fn local_doc_ids(&self) -> Result<Vec<String>> {
        let url = format!("{}/api/docs", self.local()?);
        let resp = http()?.get(&url).send().await?;
        let status = resp.status();
        let text = resp.text().await?;
        if !status.is_success() {
            return Err(format!("GET {url} answered {status}: {text}").into());
        }
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| format!("GET {url}: not JSON ({e}): {text}"))?;
        Ok(v["docs"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|d| d["id"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Waits until the local replica lists `doc` (never connect to a document before that:
    /// the local server would create it).
    pub async fn wait_listed(&self, doc: &str, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let mut last;
        loop {
            match self.local_doc_ids().await {
                Ok(ids) if ids.iter().any(|i| i == doc) => return Ok(()),
                Ok(ids) => last = format!("{} documents listed", ids.len()),
                Err(e) => last = e.to_string(),
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "the local replica did not list {doc} within {timeout:?} (last: {last})\n{}",
                    self.logs()
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// Everything `run` printed (stdout and stderr, interleaved by line).
    pub fn logs(&self) -> String {
        snapshot(&self.log)
    }

    /// SIGKILL, no goodbye; waits for the process to be gone.
    pub async fn kill9(&mut self) -> Result<()> {
        let mut child = self.child.take().ok_or("dure-desktop is not running")?;
        self.local = None;
        child.kill().await?;
        Ok(())
    }

    /// SIGTERM, then waits (at most 15 s) for the exit; returns the exit code.
    pub async fn sigterm(&mut self) -> Result<Option<i32>> {
        let mut child = self.child.take().ok_or("dure-desktop is not running")?;
        self.local = None;
        let pid = child.id().ok_or("dure-desktop already exited")?;
        // `unsafe` (libc::kill) is forbidden in this workspace: use the kill command.
        let ok = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()?
            .success();
        if !ok {
            return Err(format!("kill -TERM {pid} failed").into());
        }
        let limit = Duration::from_secs(15);
        match tokio::time::timeout(limit, child.wait()).await {
            Ok(status) => Ok(status?.code()),
            Err(_) => {
                let _ = child.kill().await;
                Err(format!(
                    "dure-desktop did not exit within {limit:?} of SIGTERM (killed); its output:\n{}",
                    self.logs()
                )
                .into())
            }
        }
    }

    /// Runs `dure-desktop --data-dir D ARGS…` to its end (60 s at most).
    pub async fn cmd(data_dir: &Path, args: &[&str]) -> Result<Output> {
        let mut cmd = command(data_dir)?;
        cmd.args(args);
        let child = cmd
            .spawn()
            .map_err(|e| format!("starting dure-desktop {}: {e}", args.join(" ")))?;
        let out = tokio::time::timeout(COMMAND_TIMEOUT, child.wait_with_output())
            .await
            .map_err(|_| {
                format!(
                    "dure-desktop {} still running after {COMMAND_TIMEOUT:?}",
                    args.join(" ")
                )
            })??;
        Ok(Output {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    /// `dure-desktop --data-dir D status --json`, parsed. Fails on a non-zero exit or output
    /// that is not one JSON value.
    pub async fn status(data_dir: &Path) -> Result<Value> {
        let out = Self::cmd(data_dir, &["status", "--json"]).await?;
        if !out.success() {
            return Err(format!("dure-desktop status --json failed: {}", out.describe()).into());
        }
        serde_json::from_str(out.stdout.trim()).map_err(|e| {
            format!(
                "dure-desktop status --json printed no JSON ({e}): {}",
                out.describe()
            )
            .into()
        })
    }

    /// `D/tokens.json`, parsed (the program's token store).
    pub fn tokens_file(data_dir: &Path) -> Result<Value> {
        let path = data_dir.join("tokens.json");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        Ok(serde_json::from_str(&text)?)
    }
}

/// The entry of document `id` in a `status --json` answer.
pub fn doc_status<'a>(status: &'a Value, id: &str) -> Option<&'a Value> {
    status["docs"]
        .as_array()?
        .iter()
        .find(|d| d["id"].as_str() == Some(id))
}

/// Runs `status --json` every 300 ms until `pred` holds for it (then returns it), at most
/// `timeout`. The failure names `what` and shows the last answer (or error).
pub async fn wait_status(
    data_dir: &Path,
    what: &str,
    timeout: Duration,
    mut pred: impl FnMut(&Value) -> bool,
) -> Result<Value> {
    let deadline = Instant::now() + timeout;
    let mut last;
    loop {
        match Desktop::status(data_dir).await {
            Ok(v) if pred(&v) => return Ok(v),
            Ok(v) => last = shorten(&v.to_string()),
            Err(e) => last = shorten(&e.to_string()),
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "status of {} never showed {what} within {timeout:?}; last: {last}",
                data_dir.display()
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn shorten(s: &str) -> String {
    const MAX: usize = 4000;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &s[..end], s.len())
}

fn http() -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()?)
}

fn snapshot(log: &Mutex<String>) -> String {
    log.lock().map(|l| l.clone()).unwrap_or_default()
}

/// Copies a child's output lines into `log` and, when given, sends each line to `lines`.
async fn pump(
    stream: impl tokio::io::AsyncRead + Unpin,
    log: Arc<Mutex<String>>,
    lines: Option<mpsc::UnboundedSender<String>>,
) {
    let mut reader = BufReader::new(stream).lines();
    while let Ok(Some(line)) = reader.next_line().await {
        if let Ok(mut l) = log.lock() {
            l.push_str(&line);
            l.push('\n');
        }
        if let Some(tx) = &lines {
            let _ = tx.send(line);
        }
    }
}

/// The real `dure` with the real test provider, signed-in users by bearer token, and what it
/// takes to stop it and start it again on the same address, data and flags.
pub struct ServerEnv {
    pub idp: TestIdp,
    /// `None` while stopped ([`ServerEnv::stop`]).
    pub dure: Option<Dure>,
    /// `http://127.0.0.1:PORT`, also the public URL.
    pub base: String,
    flags: Vec<String>,
    data: PathBuf,
    tokens: tokio::sync::Mutex<HashMap<String, (String, Instant)>>,
    http: reqwest::Client,
    /// Holds the server's data and, by convention, the desktops' ([`ServerEnv::desktop_dir`]).
    pub dir: tempfile::TempDir,
}

impl std::fmt::Debug for ServerEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerEnv")
            .field("base", &self.base)
            .field("running", &self.dure.is_some())
            .finish_non_exhaustive()
    }
}

impl ServerEnv {
    /// Starts the provider (`IdpOptions::for_dure`, changed by `opts`) and `dure` with the
    /// provider's flags, `--public-url`, `--oidc-scopes`, `--oidc-desktop-client-id dure-cli`
    /// and `extra`.
    pub async fn start(
        opts: impl FnOnce(IdpOptions) -> IdpOptions,
        extra: &[&str],
    ) -> Result<ServerEnv> {
        let port = free_port()?;
        let base = format!("http://127.0.0.1:{port}");
        let idp = TestIdp::start(opts(IdpOptions::for_dure(&base))).await?;
        let dir = temp_dir()?;
        let data = dir.path().join("data");
        let mut flags: Vec<String> = idp.dure_flags();
        flags.extend(
            [
                "--public-url",
                &base,
                "--oidc-scopes",
                SCOPES,
                "--oidc-desktop-client-id",
                CLI_CLIENT_ID,
            ]
            .iter()
            .chain(extra)
            .map(|s| (*s).to_owned()),
        );
        let args: Vec<&str> = flags.iter().map(String::as_str).collect();
        let dure = Dure::start_on(&data, &format!("127.0.0.1:{port}"), &args).await?;
        Ok(ServerEnv {
            idp,
            dure: Some(dure),
            base,
            flags,
            data,
            tokens: tokio::sync::Mutex::new(HashMap::new()),
            http: http()?,
            dir,
        })
    }

    /// A data directory for a desktop named `name` (not created: the program makes it).
    pub fn desktop_dir(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("desktop-{name}"))
    }

    pub fn dure(&self) -> Result<&Dure> {
        self.dure
            .as_ref()
            .ok_or_else(|| "the server is stopped".into())
    }

    pub fn server_logs(&self) -> String {
        self.dure.as_ref().map(Dure::logs).unwrap_or_default()
    }

    /// SIGTERM to `dure`; waits for its exit. Its data stays.
    pub async fn stop(&mut self) -> Result<()> {
        let mut dure = self.dure.take().ok_or("the server is already stopped")?;
        dure.sigterm(Duration::from_secs(15)).await?;
        Ok(())
    }

    /// Starts `dure` again on the same address, data directory and flags.
    pub async fn restart(&mut self) -> Result<()> {
        if self.dure.is_some() {
            self.stop().await?;
        }
        let listen = self.base.trim_start_matches("http://").to_owned();
        let args: Vec<&str> = self.flags.iter().map(String::as_str).collect();
        self.dure = Some(Dure::start_on(&self.data, &listen, &args).await?);
        Ok(())
    }

    /// An access token of `user` valid for at least 10 more seconds (a new one from the
    /// provider, through the real code flow, when the last is older).
    pub async fn token(&self, user: &str) -> Result<String> {
        let mut cache = self.tokens.lock().await;
        if let Some((token, until)) = cache.get(user)
            && *until > Instant::now() + Duration::from_secs(10)
        {
            return Ok(token.clone());
        }
        let fresh = self.idp.access_token(user).await?;
        let ttl = Duration::from_secs(
            fresh
                .expires_in
                .unwrap_or(self.idp.options().access_ttl.as_secs()),
        );
        // Obtained a moment ago: count from before the request to be safe.
        let until = Instant::now() + ttl.saturating_sub(Duration::from_secs(1));
        cache.insert(user.to_owned(), (fresh.access_token.clone(), until));
        Ok(fresh.access_token)
    }

    /// An API request as `user` (bearer token); returns the status and the JSON body
    /// (`Null` when empty, a string when not JSON).
    pub async fn api(
        &self,
        user: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value)> {
        let token = self.token(user).await?;
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method.clone(), &url).bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| format!("{method} {url}: {e}"))?;
        status_and_json(resp).await
    }

    /// `POST /api/docs {"title"}` as `user`; the new document's id.
    pub async fn create_doc(&self, user: &str, title: &str) -> Result<String> {
        let (status, v) = self
            .api(
                user,
                Method::POST,
                "/api/docs",
                Some(json!({ "title": title })),
            )
            .await?;
        if status != 201 {
            return Err(format!("POST /api/docs answered {status}: {v}").into());
        }
        v["id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("no id in {v}").into())
    }

    /// `user` is seen by the server once (`GET /api/me`), as after a first sign-in, so that
    /// documents can be shared with them.
    pub async fn seen(&self, user: &str) -> Result<()> {
        let (status, v) = self.api(user, Method::GET, "/api/me", None).await?;
        if status != 200 {
            return Err(format!("GET /api/me as {user} answered {status}: {v}").into());
        }
        Ok(())
    }

    /// `owner` shares `doc` with user `with` (`role`: editor or viewer).
    pub async fn share(&self, owner: &str, doc: &str, with: &str, role: &str) -> Result<()> {
        self.seen(with).await?;
        let (status, v) = self
            .api(
                owner,
                Method::POST,
                &format!("/api/docs/{doc}/shares"),
                Some(json!({"kind": "user", "id": with, "role": role})),
            )
            .await?;
        if status != 200 {
            return Err(format!("sharing {doc} with {with} answered {status}: {v}").into());
        }
        Ok(())
    }

    /// `owner` removes the share of `doc` with user `with`.
    pub async fn unshare(&self, owner: &str, doc: &str, with: &str) -> Result<()> {
        let (status, v) = self
            .api(
                owner,
                Method::DELETE,
                &format!("/api/docs/{doc}/shares/user/{with}"),
                None,
            )
            .await?;
        if status != 200 {
            return Err(format!("unsharing {doc} from {with} answered {status}: {v}").into());
        }
        Ok(())
    }

    /// A Yjs client of the server's document as `user` (token in `Sec-WebSocket-Protocol`),
    /// with save acknowledgements; returns once the server's sync step 2 arrived.
    pub async fn open_doc(&self, user: &str, doc: &str) -> Result<YClient> {
        let token = self.token(user).await?;
        let url = self.dure()?.doc_url(doc, false);
        let c = YClient::connect(
            &url,
            ConnectOptions {
                ack: true,
                headers: vec![(
                    "Sec-WebSocket-Protocol".into(),
                    format!("dure, dure-token.{token}"),
                )],
                ..ConnectOptions::default()
            },
        )
        .await
        .map_err(|e| format!("connecting to {url} as {user}: {e}"))?;
        c.wait_synced(Duration::from_secs(10))
            .await
            .map_err(|e| format!("{url} as {user}: {e}"))?;
        Ok(c)
    }

    /// The provider's revocation endpoint (from its discovery document).
    pub async fn revocation_endpoint(&self) -> Result<String> {
        self.idp.discovery().await?["revocation_endpoint"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| "the provider's discovery has no revocation_endpoint".into())
    }

    /// Revokes `token` (a refresh token of the public `dure-cli` client) at the provider:
    /// `POST revocation_endpoint token=…&token_type_hint=refresh_token&client_id=dure-cli`.
    pub async fn revoke(&self, token: &str) -> Result<()> {
        let url = self.revocation_endpoint().await?;
        let resp = self
            .http
            .post(&url)
            .form(&[
                ("token", token),
                ("token_type_hint", "refresh_token"),
                ("client_id", CLI_CLIENT_ID),
            ])
            .send()
            .await
            .map_err(|e| format!("POST {url}: {e}"))?;
        let status = resp.status();
        if !status.is_success() {
            let body = resp.text().await.unwrap_or_default();
            return Err(format!("POST {url} answered {status}: {body}").into());
        }
        Ok(())
    }

    /// Revokes every refresh token the provider holds (with it, its grant and the grant's
    /// other tokens), twice over in case one was issued meanwhile; returns how many.
    pub async fn revoke_all_refresh_tokens(&self) -> Result<usize> {
        let mut done = std::collections::HashSet::new();
        for _ in 0..2 {
            for t in self.idp.issued_refresh_tokens()? {
                if done.insert(t.clone()) {
                    self.revoke(&t).await?;
                }
            }
        }
        Ok(done.len())
    }
}
