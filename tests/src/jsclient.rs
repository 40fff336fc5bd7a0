//! Real JS Yjs clients (`yjs` + `y-websocket`'s `WebsocketProvider`) driven through node.
//!
//! [`JsDriver::spawn`] starts `node tests/js/driver.mjs`, a long-lived process that holds any
//! number of named clients and is controlled with JSON lines over stdin/stdout (see the header
//! of `tests/js/driver.mjs` for the wire format). Requests run concurrently in the driver, so
//! several `wait_*` calls may be in flight at once (e.g. under `tokio::join!`).
//!
//! Text indexes and lengths are UTF-16 code units, as Yjs counts them.
//!
//! Needs node and `tests/js/node_modules`: run `infra/install-test-deps.sh` once.
//!
//! ```no_run
//! # async fn demo(addr: std::net::SocketAddr) -> dure_tests::jsclient::Result<()> {
//! use std::time::Duration;
//! use dure_tests::jsclient::{ConnectOptions, JsDriver};
//!
//! let driver = JsDriver::spawn().await?;
//! let a = driver.connect("a", &ConnectOptions::dure(addr, "notes")).await?;
//! let b = driver.connect("b", &ConnectOptions::dure(addr, "notes")).await?;
//! a.wait_synced(Duration::from_secs(5)).await?;
//! a.insert(0, "hello").await?;
//! b.wait_text("hello", Duration::from_secs(5)).await?;
//! driver.quit().await?;
//! # Ok(())
//! # }
//! ```

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Environment variable naming the node binary to use instead of `node` from `PATH`.
pub const NODE_ENV: &str = "DURE_NODE";

/// The packages `driver.mjs` imports; their presence is checked before spawning.
const PACKAGES: [&str; 4] = ["yjs", "y-websocket", "y-protocols", "ws"];

/// How long node may take to load the driver and its packages.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// Added to a request's own timeout before the Rust side gives up on an answer.
const ANSWER_SLACK: Duration = Duration::from_secs(10);

/// Pushed events kept for [`JsDriver::events`]; older ones are dropped.
const EVENT_LOG_CAPACITY: usize = 4096;

/// Lines of the driver's stderr kept for error messages.
const STDERR_TAIL_LINES: usize = 60;

const INSTALL_HINT: &str = "run infra/install-test-deps.sh (as root, from the repository root)";

/// Result of every driver call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong talking to the JS driver.
#[derive(Debug)]
pub enum Error {
    /// node or the npm packages are missing.
    Setup(String),
    /// Starting the driver or writing to it failed.
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The driver answered with an error: a bad argument, an unknown client, a wait that timed
    /// out (the message then shows the state it saw).
    Command {
        /// The command and, where there is one, the client it was for.
        context: String,
        /// The driver's message.
        message: String,
    },
    /// The driver exited, stopped answering, or answered something unexpected.
    Driver(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Setup(msg) => write!(f, "JS test clients unavailable: {msg}"),
            Error::Io { context, source } => write!(f, "js driver: {context}: {source}"),
            Error::Command { context, message } => write!(f, "js driver {context}: {message}"),
            Error::Driver(msg) => write!(f, "js driver: {msg}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Versions the driver reported when it started.
#[derive(Debug, Clone, Deserialize)]
pub struct DriverInfo {
    /// `process.versions.node`.
    pub node: String,
    /// Package name → version found in `tests/js/node_modules`.
    pub versions: BTreeMap<String, Option<String>>,
}

/// How a client connects. The provider's URL is `url + "/" + doc + "?" + params`, exactly as
/// y-websocket builds it (the room name is not escaped; parameter keys and values are).
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectOptions {
    /// Server URL without the room, e.g. `ws://127.0.0.1:4000/ws/doc`.
    pub url: String,
    /// Room (document) name.
    pub doc: String,
    /// Query parameters added to every connection attempt.
    pub params: BTreeMap<String, String>,
    /// `Sec-WebSocket-Protocol` values offered, as a browser can.
    pub protocols: Vec<String>,
    /// Extra HTTP headers on the upgrade request (a browser cannot send these).
    pub headers: BTreeMap<String, String>,
    /// Local awareness state set before the first connection (y-websocket's default is `{}`;
    /// `Value::Null` connects without a state).
    pub awareness: Option<Value>,
    /// y-websocket's `maxBackoffTime` (default 2.5 s).
    pub max_backoff: Option<Duration>,
}

impl ConnectOptions {
    /// Connects to room `doc` under server URL `url`.
    pub fn new(url: impl Into<String>, doc: impl Into<String>) -> Self {
        ConnectOptions {
            url: url.into(),
            doc: doc.into(),
            params: BTreeMap::new(),
            protocols: Vec::new(),
            headers: BTreeMap::new(),
            awareness: None,
            max_backoff: None,
        }
    }

    /// Document `doc` on a Dure server listening on `addr`: `ws://ADDR/ws/doc/DOC`.
    pub fn dure(addr: SocketAddr, doc: impl Into<String>) -> Self {
        Self::new(format!("ws://{addr}/ws/doc"), doc)
    }

    /// Adds a query parameter.
    pub fn param(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.params.insert(key.into(), value.into());
        self
    }

    /// Offers a WebSocket subprotocol.
    pub fn protocol(mut self, protocol: impl Into<String>) -> Self {
        self.protocols.push(protocol.into());
        self
    }

    /// Adds an HTTP header to the upgrade request.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.insert(name.into(), value.into());
        self
    }

    /// Sets the awareness state announced on connect.
    pub fn awareness(mut self, state: Value) -> Self {
        self.awareness = Some(state);
        self
    }

    /// Caps y-websocket's reconnect backoff.
    pub fn max_backoff(mut self, max: Duration) -> Self {
        self.max_backoff = Some(max);
        self
    }

    fn to_args(&self, client: &str) -> Value {
        let mut args = json!({
            "client": client,
            "url": self.url,
            "doc": self.doc,
            "params": self.params,
            "protocols": self.protocols,
            "headers": self.headers,
        });
        if let Some(obj) = args.as_object_mut() {
            if let Some(state) = &self.awareness {
                obj.insert("awareness".into(), state.clone());
            }
            if let Some(max) = self.max_backoff {
                obj.insert("maxBackoffMs".into(), json!(millis(max)));
            }
        }
        args
    }
}

/// A WebSocket close as the client saw it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CloseInfo {
    /// Close code (1005: none given, 1006: connection dropped without a close frame).
    pub code: u16,
    /// Close reason.
    pub reason: String,
    /// Whether the closing handshake completed.
    #[serde(default)]
    pub was_clean: bool,
}

/// A client's connection state and counters since it was created.
///
/// `attempts` counts sockets opened (the first try and every retry), so an idle client that
/// stays connected keeps `attempts == 1` and `closes == 0`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// The socket is open.
    pub connected: bool,
    /// A socket is being opened.
    pub connecting: bool,
    /// The provider received sync step 2 on the current connection.
    pub synced: bool,
    /// The provider wants to be connected (false after `disconnect` or a terminal close).
    pub should_connect: bool,
    /// The URL the provider connects to.
    pub url: Option<String>,
    /// y-websocket's backoff counter (reset once a connection syncs).
    pub unsuccessful_reconnects: u32,
    /// `connecting` status events: sockets created.
    pub attempts: u32,
    /// `connected` status events: sockets that opened.
    pub opens: u32,
    /// `disconnected` status events: open sockets that closed.
    pub disconnects: u32,
    /// Sockets closed, for any reason (`server_closes + local_closes`).
    pub closes: u32,
    /// Sockets closed by the server or the network.
    pub server_closes: u32,
    /// Sockets closed by the client itself (`disconnect`, or the watchdog).
    pub local_closes: u32,
    /// Sockets the client closed because it received nothing for 30 s.
    pub watchdog_closes: u32,
    /// WebSocket error events (e.g. `Unexpected server response: 401` on a refused upgrade).
    pub connection_errors: u32,
    /// WebSocket messages received.
    pub messages_received: u64,
    /// Bytes of WebSocket messages received.
    pub bytes_received: u64,
    /// WebSocket messages sent.
    pub messages_sent: u64,
    /// Bytes of WebSocket messages sent.
    pub bytes_sent: u64,
    /// Milliseconds since the last message arrived, if any did.
    pub ms_since_last_message: Option<u64>,
    /// The last close by the server or network.
    pub last_close: Option<CloseInfo>,
    /// Set when the provider gave up for good (by default, close codes 4400-4499).
    pub terminal_close: Option<CloseInfo>,
    /// The last WebSocket error message.
    pub last_error: Option<String>,
}

impl Status {
    /// Sockets opened after the first one.
    pub fn reconnects(&self) -> u32 {
        self.attempts.saturating_sub(1)
    }
}

/// The driver's answer to one request.
enum Reply {
    Ok(Value),
    Err(String),
    /// stdout closed before the answer came.
    Exited,
}

/// Requests waiting for an answer; `exited` is set (under the same lock) once stdout closed,
/// so no request can be registered after the reader drained the map.
#[derive(Default)]
struct Pending {
    waiting: HashMap<u64, oneshot::Sender<Reply>>,
    exited: bool,
}

#[derive(Default)]
struct Shared {
    pending: Mutex<Pending>,
    events: Mutex<VecDeque<Value>>,
    stderr_tail: Mutex<VecDeque<String>>,
    ready: Mutex<Option<oneshot::Sender<Value>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    fn stderr_tail(&self) -> String {
        let tail = lock(&self.stderr_tail);
        if tail.is_empty() {
            "(driver stderr empty)".to_owned()
        } else {
            format!(
                "driver stderr (last lines):\n{}",
                tail.iter().cloned().collect::<Vec<_>>().join("\n")
            )
        }
    }

    fn handle_line(&self, line: &str) {
        let msg: Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(e) => {
                eprintln!("[js-driver] unparsable stdout line ({e}): {line}");
                return;
            }
        };
        if let Some(id) = msg.get("id").and_then(Value::as_u64) {
            let reply = match msg.get("error") {
                Some(err) => {
                    Reply::Err(err.as_str().map_or_else(|| err.to_string(), str::to_owned))
                }
                None => Reply::Ok(msg.get("result").cloned().unwrap_or(Value::Null)),
            };
            if let Some(tx) = lock(&self.pending).waiting.remove(&id) {
                // The requester may have timed out and gone; nothing to do then.
                let _ = tx.send(reply);
            }
        } else if msg.get("event").and_then(Value::as_str) == Some("ready") {
            if let Some(tx) = lock(&self.ready).take() {
                let _ = tx.send(msg);
            }
        } else if msg.get("event").is_some() {
            let mut events = lock(&self.events);
            if events.len() == EVENT_LOG_CAPACITY {
                events.pop_front();
            }
            events.push_back(msg);
        } else {
            eprintln!("[js-driver] unexpected stdout line: {line}");
        }
    }

    fn stdout_closed(&self) {
        // Wakes a `spawn` still waiting for the ready line.
        drop(lock(&self.ready).take());
        let mut pending = lock(&self.pending);
        pending.exited = true;
        for (_, tx) in pending.waiting.drain() {
            let _ = tx.send(Reply::Exited);
        }
    }
}

async fn read_stdout(shared: Arc<Shared>, stdout: impl AsyncRead + Unpin) {
    let mut lines = BufReader::new(stdout).lines();
    loop {
        match lines.next_line().await {
            Ok(Some(line)) => shared.handle_line(&line),
            Ok(None) => break,
            Err(e) => {
                eprintln!("[js-driver] reading stdout: {e}");
                break;
            }
        }
    }
    shared.stdout_closed();
}

async fn read_stderr(shared: Arc<Shared>, stderr: impl AsyncRead + Unpin) {
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        eprintln!("[js-driver] {line}");
        let mut tail = lock(&shared.stderr_tail);
        if tail.len() == STDERR_TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(line);
    }
}

struct Inner {
    stdin: tokio::sync::Mutex<ChildStdin>,
    child: tokio::sync::Mutex<Child>,
    next_id: AtomicU64,
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
    info: DriverInfo,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The child itself is killed by `kill_on_drop`.
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Inner {
    async fn request(&self, context: &str, cmd: &str, args: Value) -> Result<Value> {
        let mut obj = match args {
            Value::Object(obj) => obj,
            Value::Null => Map::new(),
            other => {
                return Err(Error::Driver(format!(
                    "{context}: arguments must be a JSON object, got {other}"
                )));
            }
        };
        let wait = obj
            .get("timeoutMs")
            .and_then(Value::as_u64)
            .map_or(Duration::ZERO, Duration::from_millis);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        obj.insert("id".into(), json!(id));
        obj.insert("cmd".into(), json!(cmd));
        let mut line = Value::Object(obj).to_string();
        line.push('\n');

        let (tx, rx) = oneshot::channel();
        {
            let mut pending = lock(&self.shared.pending);
            if pending.exited {
                return Err(self.exited_error(context));
            }
            pending.waiting.insert(id, tx);
        }
        let written = {
            let mut stdin = self.stdin.lock().await;
            match stdin.write_all(line.as_bytes()).await {
                Ok(()) => stdin.flush().await,
                Err(e) => Err(e),
            }
        };
        if let Err(source) = written {
            lock(&self.shared.pending).waiting.remove(&id);
            return Err(Error::Io {
                context: format!("sending {context}; {}", self.shared.stderr_tail()),
                source,
            });
        }
        let limit = wait + ANSWER_SLACK;
        match tokio::time::timeout(limit, rx).await {
            Ok(Ok(Reply::Ok(value))) => Ok(value),
            Ok(Ok(Reply::Err(message))) => Err(Error::Command {
                context: context.to_owned(),
                message,
            }),
            Ok(Ok(Reply::Exited) | Err(_)) => Err(self.exited_error(context)),
            Err(_) => {
                lock(&self.shared.pending).waiting.remove(&id);
                Err(Error::Driver(format!(
                    "no answer to {context} within {limit:?}; {}",
                    self.shared.stderr_tail()
                )))
            }
        }
    }

    fn exited_error(&self, context: &str) -> Error {
        Error::Driver(format!(
            "exited before answering {context}; {}",
            self.shared.stderr_tail()
        ))
    }

    async fn call<T: DeserializeOwned>(&self, context: &str, cmd: &str, args: Value) -> Result<T> {
        let value = self.request(context, cmd, args).await?;
        serde_json::from_value(value.clone())
            .map_err(|e| Error::Driver(format!("{context}: unexpected answer {value}: {e}")))
    }
}

/// A running `node tests/js/driver.mjs`. Dropping it kills the process; [`JsDriver::quit`]
/// closes the clients' sockets first.
pub struct JsDriver {
    inner: Arc<Inner>,
}

impl fmt::Debug for JsDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsDriver")
            .field("info", &self.inner.info)
            .finish_non_exhaustive()
    }
}

impl JsDriver {
    /// The directory holding `driver.mjs`, `package.json` and `node_modules`.
    pub fn js_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("js")
    }

    /// Starts the driver and waits until it has loaded its packages.
    pub async fn spawn() -> Result<JsDriver> {
        let dir = Self::js_dir();
        let script = dir.join("driver.mjs");
        if !script.is_file() {
            return Err(Error::Setup(format!("{} is missing", script.display())));
        }
        let missing: Vec<&str> = PACKAGES
            .iter()
            .copied()
            .filter(|pkg| {
                !dir.join("node_modules")
                    .join(pkg)
                    .join("package.json")
                    .is_file()
            })
            .collect();
        if !missing.is_empty() {
            return Err(Error::Setup(format!(
                "{} lacks {}: {INSTALL_HINT}",
                dir.join("node_modules").display(),
                missing.join(", ")
            )));
        }
        let node = std::env::var_os(NODE_ENV).unwrap_or_else(|| "node".into());

        let mut child = Command::new(&node)
            .arg(&script)
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| {
                if source.kind() == std::io::ErrorKind::NotFound {
                    Error::Setup(format!(
                        "`{}` not found ({NODE_ENV} or PATH): {INSTALL_HINT}",
                        node.to_string_lossy()
                    ))
                } else {
                    Error::Io {
                        context: format!(
                            "starting {} {}",
                            node.to_string_lossy(),
                            script.display()
                        ),
                        source,
                    }
                }
            })?;

        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(Error::Driver("child stdio was not piped".into()));
        };

        let shared = Arc::new(Shared::default());
        let (ready_tx, ready_rx) = oneshot::channel();
        *lock(&shared.ready) = Some(ready_tx);
        let stdout_task = tokio::spawn(read_stdout(shared.clone(), stdout));
        let stderr_task = tokio::spawn(read_stderr(shared.clone(), stderr));

        let ready = match tokio::time::timeout(READY_TIMEOUT, ready_rx).await {
            Ok(Ok(ready)) => ready,
            outcome => {
                let what = if outcome.is_err() {
                    format!("did not start within {READY_TIMEOUT:?}")
                } else {
                    "exited while starting".to_owned()
                };
                let _ = child.start_kill();
                let status = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
                // Let the stderr reader catch up with what node printed before dying.
                let _ = tokio::time::timeout(Duration::from_secs(2), stderr_task).await;
                stdout_task.abort();
                let status = match status {
                    Ok(Ok(status)) => describe_exit(status),
                    _ => "exit status unknown".to_owned(),
                };
                return Err(Error::Driver(format!(
                    "{} {what} ({status}); {}",
                    script.display(),
                    shared.stderr_tail()
                )));
            }
        };
        let info: DriverInfo = serde_json::from_value(ready.clone())
            .map_err(|e| Error::Driver(format!("unexpected ready line {ready}: {e}")))?;

        Ok(JsDriver {
            inner: Arc::new(Inner {
                stdin: tokio::sync::Mutex::new(stdin),
                child: tokio::sync::Mutex::new(child),
                next_id: AtomicU64::new(1),
                shared,
                tasks: vec![stdout_task, stderr_task],
                info,
            }),
        })
    }

    /// node and package versions the driver runs with.
    pub fn info(&self) -> &DriverInfo {
        &self.inner.info
    }

    /// Creates client `name` and starts connecting it; does not wait for the connection
    /// (use [`JsClient::wait_synced`]). Fails if `name` is taken.
    pub async fn connect(&self, name: &str, opts: &ConnectOptions) -> Result<JsClient> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Connected {
            client_id: u32,
            url: String,
        }
        let context = format!("connect (client {name})");
        let connected: Connected = self
            .inner
            .call(&context, "connect", opts.to_args(name))
            .await?;
        Ok(JsClient {
            inner: self.inner.clone(),
            name: name.to_owned(),
            client_id: connected.client_id,
            url: connected.url,
        })
    }

    /// Names of the clients the driver holds.
    pub async fn clients(&self) -> Result<Vec<String>> {
        self.inner.call("list", "list", Value::Null).await
    }

    /// Sends any command; `args` is a JSON object (or null). For commands without a typed
    /// helper.
    pub async fn request(&self, cmd: &str, args: Value) -> Result<Value> {
        self.inner.request(cmd, cmd, args).await
    }

    /// Events pushed by the driver so far (status changes, closes, errors), oldest first; at
    /// most the last 4096.
    pub fn events(&self) -> Vec<Value> {
        lock(&self.inner.shared.events).iter().cloned().collect()
    }

    /// Like [`JsDriver::events`], and clears the log.
    pub fn take_events(&self) -> Vec<Value> {
        lock(&self.inner.shared.events).drain(..).collect()
    }

    /// Destroys every client (closing their sockets) and waits for node to exit.
    pub async fn quit(self) -> Result<()> {
        // The driver may already be gone; exiting is what we want either way.
        let _ = self.inner.request("quit", "quit", Value::Null).await;
        let mut child = self.inner.child.lock().await;
        match tokio::time::timeout(Duration::from_secs(5), child.wait()).await {
            Ok(Ok(status)) if status.success() => Ok(()),
            Ok(Ok(status)) => Err(Error::Driver(format!(
                "exited with {}; {}",
                describe_exit(status),
                self.inner.shared.stderr_tail()
            ))),
            Ok(Err(source)) => Err(Error::Io {
                context: "waiting for node to exit".into(),
                source,
            }),
            Err(_) => {
                let _ = child.start_kill();
                Err(Error::Driver(
                    "did not exit within 5 s of quit; killed".into(),
                ))
            }
        }
    }
}

fn describe_exit(status: ExitStatus) -> String {
    match status.code() {
        Some(code) => format!("exit code {code}"),
        None => format!("{status}"),
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// One JS client: a `Y.Doc` with a `WebsocketProvider`, text in `ydoc.getText('text')`.
/// Cloning gives another handle to the same client.
#[derive(Clone)]
pub struct JsClient {
    inner: Arc<Inner>,
    name: String,
    client_id: u32,
    url: String,
}

impl fmt::Debug for JsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsClient")
            .field("name", &self.name)
            .field("client_id", &self.client_id)
            .field("url", &self.url)
            .finish()
    }
}

impl JsClient {
    /// The name given at connect.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The Yjs client id (`ydoc.clientID`), which keys its awareness state.
    pub fn client_id(&self) -> u32 {
        self.client_id
    }

    /// The URL the provider connects to.
    pub fn url(&self) -> &str {
        &self.url
    }

    async fn call<T: DeserializeOwned>(&self, cmd: &str, mut args: Value) -> Result<T> {
        if let Some(obj) = args.as_object_mut() {
            obj.insert("client".into(), json!(self.name));
        } else {
            args = json!({ "client": self.name });
        }
        let context = format!("{cmd} (client {})", self.name);
        self.inner.call(&context, cmd, args).await
    }

    /// Inserts `text` at UTF-16 offset `index`.
    pub async fn insert(&self, index: usize, text: &str) -> Result<()> {
        self.call::<Value>("insert", json!({ "index": index, "text": text }))
            .await
            .map(drop)
    }

    /// Deletes `len` UTF-16 units at `index`.
    pub async fn delete(&self, index: usize, len: usize) -> Result<()> {
        self.call::<Value>("delete", json!({ "index": index, "len": len }))
            .await
            .map(drop)
    }

    /// The current text.
    pub async fn text(&self) -> Result<String> {
        self.call("text", Value::Null).await
    }

    /// Waits until the text equals `text`; the error shows the text it had.
    pub async fn wait_text(&self, text: &str, timeout: Duration) -> Result<()> {
        self.call::<Value>(
            "waitText",
            json!({ "text": text, "timeoutMs": millis(timeout) }),
        )
        .await
        .map(drop)
    }

    /// Whether the current connection has synced.
    pub async fn synced(&self) -> Result<bool> {
        self.call("synced", Value::Null).await
    }

    /// Waits until the current connection has synced (received sync step 2).
    pub async fn wait_synced(&self, timeout: Duration) -> Result<()> {
        self.call::<Value>("waitSynced", json!({ "timeoutMs": millis(timeout) }))
            .await
            .map(drop)
    }

    /// Connection state and counters.
    pub async fn status(&self) -> Result<Status> {
        self.call("status", Value::Null).await
    }

    /// Waits until the status matches `pattern`, a partial status in the driver's camelCase
    /// field names where each value must be equal or, written `{"atLeast": n}`, at least `n`:
    /// e.g. `json!({"connected": false, "closes": {"atLeast": 2}})`.
    pub async fn wait_status(&self, pattern: Value, timeout: Duration) -> Result<Status> {
        self.call(
            "waitStatus",
            json!({ "match": pattern, "timeoutMs": millis(timeout) }),
        )
        .await
    }

    /// Waits until the socket is open.
    pub async fn wait_connected(&self, timeout: Duration) -> Result<Status> {
        self.wait_status(json!({ "connected": true }), timeout)
            .await
    }

    /// Waits until at least `count` sockets of this client have closed.
    pub async fn wait_closes(&self, count: u32, timeout: Duration) -> Result<Status> {
        self.wait_status(json!({ "closes": { "atLeast": count } }), timeout)
            .await
    }

    /// Waits until the provider gives up reconnecting (by default after a close code in
    /// 4400-4499) and returns that close.
    pub async fn wait_terminal_close(&self, timeout: Duration) -> Result<CloseInfo> {
        let status = self
            .wait_status(
                json!({ "shouldConnect": false, "connected": false }),
                timeout,
            )
            .await?;
        match status.terminal_close {
            Some(close) => Ok(close),
            None => Err(Error::Command {
                context: format!("wait_terminal_close (client {})", self.name),
                message: format!("the client stopped without a terminal close: {status:?}"),
            }),
        }
    }

    /// Replaces the local awareness state (`setLocalState`); `Value::Null` removes it, which
    /// tells the others this client left.
    pub async fn set_awareness(&self, state: Value) -> Result<()> {
        self.call::<Value>("setAwareness", json!({ "state": state }))
            .await
            .map(drop)
    }

    /// Sets one field of the local awareness state (`setLocalStateField`).
    pub async fn set_awareness_field(&self, field: &str, value: Value) -> Result<()> {
        self.call::<Value>(
            "setAwarenessField",
            json!({ "field": field, "value": value }),
        )
        .await
        .map(drop)
    }

    /// Every awareness state this client sees, its own included, by client id.
    pub async fn awareness(&self) -> Result<HashMap<u32, Value>> {
        self.call("awareness", Value::Null).await
    }

    /// Waits until client `client_id`'s awareness state equals `state`; returns all states.
    pub async fn wait_awareness(
        &self,
        client_id: u32,
        state: &Value,
        timeout: Duration,
    ) -> Result<HashMap<u32, Value>> {
        self.call(
            "waitAwareness",
            json!({ "clientId": client_id, "state": state, "timeoutMs": millis(timeout) }),
        )
        .await
    }

    /// Waits until client `client_id` has an awareness state; returns all states.
    pub async fn wait_awareness_present(
        &self,
        client_id: u32,
        timeout: Duration,
    ) -> Result<HashMap<u32, Value>> {
        self.call(
            "waitAwareness",
            json!({ "clientId": client_id, "present": true, "timeoutMs": millis(timeout) }),
        )
        .await
    }

    /// Waits until client `client_id` has no awareness state; returns all states.
    pub async fn wait_awareness_gone(
        &self,
        client_id: u32,
        timeout: Duration,
    ) -> Result<HashMap<u32, Value>> {
        self.call(
            "waitAwareness",
            json!({ "clientId": client_id, "present": false, "timeoutMs": millis(timeout) }),
        )
        .await
    }

    /// The whole document as a Yjs v1 update (`Y.encodeStateAsUpdate`).
    pub async fn encode_state(&self) -> Result<Vec<u8>> {
        self.call("encodeState", Value::Null).await
    }

    /// Closes the socket and stops reconnecting (`provider.disconnect()`); edits made meanwhile
    /// are sent on [`JsClient::reconnect`].
    pub async fn disconnect(&self) -> Result<()> {
        self.call::<Value>("disconnect", Value::Null)
            .await
            .map(drop)
    }

    /// Connects again (`provider.connect()`), also after a terminal close.
    pub async fn reconnect(&self) -> Result<()> {
        self.call::<Value>("reconnect", Value::Null).await.map(drop)
    }

    /// Destroys the provider and the doc and frees the name.
    pub async fn destroy(self) -> Result<()> {
        self.call::<Value>("destroy", Value::Null).await.map(drop)
    }
}
