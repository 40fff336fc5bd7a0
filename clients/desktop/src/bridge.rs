//! One document's sync: a connection to the local replica (Dure in local mode, in this
//! process) and, when needed, one to the server, with a mirror `yrs::Doc` between them.
//!
//! What comes from one side is applied to the mirror; only what changed the mirror goes to
//! the other side (both servers echo updates to their sender, so relaying bytes blindly
//! would loop). Local edits count as waiting until the server's save acknowledgement covers
//! the frame that carried them: the frames are counted per server connection as the server
//! counts them (sync step 2 and updates), and a reconnection re-sends whatever the server
//! lacks in its sync step 2, which then covers every edit still waiting.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tracing::{debug, info, warn};
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{Doc, ReadTxn, StateVector, Transact, Update};

use crate::account::{AccountError, Tokens};
use crate::board::{Shared, now_ms};
use crate::wire::{self, Msg};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Largest frame taken from either side.
const MAX_FRAME: usize = 64 << 20;
/// A server connection with nothing to do for this long is closed (its place goes to
/// another document).
const IDLE_DISCONNECT: Duration = Duration::from_secs(20);
/// While access is lost, the kept copy is rewritten this long after the last local edit.
const KEPT_COPY_DELAY: Duration = Duration::from_millis(500);
/// The local replica taking longer than this to send a document's stored state is logged.
const SLOW_LOAD: Duration = Duration::from_secs(30);
/// A settled connection idle this long gives its place to a document waiting for one.
const YIELD_AFTER: Duration = Duration::from_millis(500);

#[derive(Clone, Debug)]
pub struct Ctx {
    pub local_ws: String,
    pub local_http: String,
    pub server_ws: String,
    pub tokens: Tokens,
    pub board: Shared,
    /// Server connections open at once.
    pub live: Arc<Semaphore>,
    /// Bridges waiting for a place in `live`: while any wait, a settled connection gives its
    /// place up at once instead of after `IDLE_DISCONNECT` (a first sync of hundreds of
    /// documents would otherwise take 20 s per `max_live` of them).
    pub queued: Arc<std::sync::atomic::AtomicUsize>,
    /// Bumped when the laptop woke up or the network came back: retry at once.
    pub wake: watch::Receiver<u64>,
    pub data_dir: std::path::PathBuf,
}

/// Why the server connection ended.
enum Ended {
    Idle,
    AccessLost,
    Unauthorized,
    Failed(String),
}

pub async fn run(ctx: Ctx, id: String, mut kick: watch::Receiver<u64>) {
    let mirror = Doc::new();
    let changes: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
    {
        let changes = changes.clone();
        // Keyed observer: it lives as long as the mirror does, which is this task.
        if let Err(e) = mirror.observe_update_v1("bridge", move |_, e| {
            if let Ok(mut c) = changes.lock() {
                c.push(e.update.clone());
            }
        }) {
            warn!(doc = %id, error = %e, "cannot watch the mirror document; not syncing it");
            return;
        }
    }
    let mut local = loop {
        match connect_local(&ctx, &id).await {
            Ok(ws) => break ws,
            Err(e) => {
                warn!(doc = %id, error = %e, "cannot open the local replica; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    let mut s = Sync {
        ctx: ctx.clone(),
        id: id.clone(),
        mirror,
        changes,
        loaded: false,
        sent: 0,
        queue: VecDeque::new(),
        unsent: ctx.board.with_doc(&id, |d| d.waiting),
        remote_synced: false,
        handshake_sent: false,
        last_activity: Instant::now(),
    };
    let sv = s.sv();
    if local.send(Message::binary(wire::step1(&sv))).await.is_err() {
        return;
    }
    // The replica's copy is loaded before any server session: a session begun first would
    // answer the server's sync step 1 from an empty mirror, call the document settled, and
    // never send the server what only this laptop has (a document made here, edits left
    // waiting by an earlier run).
    let started = Instant::now();
    let mut warned = false;
    while !s.loaded {
        let next = tokio::time::timeout(Duration::from_secs(5), local.next()).await;
        match next {
            Ok(Some(Ok(msg))) => {
                if s.on_local_frame(&msg, &mut local, None).await.is_err() {
                    return;
                }
            }
            Ok(_) => return,
            Err(_) if !warned && started.elapsed() >= SLOW_LOAD => {
                warned = true;
                warn!(doc = %id, "the local replica is slow to send the document; still waiting");
            }
            Err(_) => {}
        }
    }
    let mut failures: u32 = 0;
    let mut retry_at: Option<Instant> = Some(Instant::now());
    let mut wake = ctx.wake.clone();
    // While access is lost, local edits still go into the kept copy, a moment after the last.
    let mut refresh_copy_at: Option<Instant> = None;
    loop {
        let access_lost = ctx.board.with_doc(&id, |d| d.access_lost);
        let need_remote = !access_lost && retry_at.is_some_and(|t| t <= Instant::now());
        if need_remote {
            retry_at = None;
            ctx.queued.fetch_add(1, Ordering::Relaxed);
            let permit = ctx.live.clone().acquire_owned().await;
            ctx.queued.fetch_sub(1, Ordering::Relaxed);
            let Ok(_permit) = permit else { return };
            match s.session(&mut local, &mut kick).await {
                Ok(Ended::Idle) => {
                    failures = 0;
                }
                Ok(Ended::AccessLost) => {
                    s.lost().await;
                }
                Ok(Ended::Unauthorized) => {
                    ctx.tokens.expire_now().await;
                    failures += 1;
                    retry_at = Some(Instant::now() + backoff(failures));
                }
                Ok(Ended::Failed(why)) => {
                    debug!(doc = %id, %why, "server connection ended");
                    failures += 1;
                    retry_at = Some(Instant::now() + backoff(failures));
                }
                Err(LocalGone) => return,
            }
            ctx.board.with_doc(&id, |d| d.live = false);
            continue;
        }
        let sleep_until = retry_at.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            msg = local.next() => {
                let Some(Ok(msg)) = msg else { return };
                let before = s.sv();
                if s.on_local_frame(&msg, &mut local, None).await.is_err() { return }
                if access_lost {
                    // No server to retry (that would spin): the kept copy takes the edit.
                    if s.sv() != before {
                        refresh_copy_at = Some(Instant::now() + KEPT_COPY_DELAY);
                    }
                } else if s.unsent > 0 && retry_at.is_none() {
                    retry_at = Some(Instant::now());
                }
            }
            _ = tokio::time::sleep_until(refresh_copy_at.unwrap_or(sleep_until)), if refresh_copy_at.is_some() => {
                refresh_copy_at = None;
                s.keep_local_copy().await;
            }
            r = kick.changed() => {
                if r.is_err() { return }
                ctx.board.with_doc(&id, |d| d.access_lost = false);
                retry_at = Some(Instant::now());
            }
            r = wake.changed() => {
                if r.is_err() { return }
                failures = 0;
                if retry_at.is_some() { retry_at = Some(Instant::now()); }
            }
            _ = tokio::time::sleep_until(sleep_until) => {}
        }
    }
}

/// The local replica went away (the process is stopping).
struct LocalGone;

/// Exponential backoff with jitter: 1 s doubling to 60 s, each ×0.5–1.5.
fn backoff(failures: u32) -> Duration {
    let base = 2f64
        .powi(failures.saturating_sub(1).min(6) as i32)
        .min(60.0);
    let jitter = 0.5 + rand::random::<f64>();
    Duration::from_secs_f64(base * jitter)
}

struct Sync {
    ctx: Ctx,
    id: String,
    mirror: Doc,
    changes: Arc<Mutex<Vec<Vec<u8>>>>,
    /// The local replica's first sync step 2 (the document as stored) has been applied.
    loaded: bool,
    /// Update-bearing frames sent on the current server connection.
    sent: u64,
    /// (frame number, local edits it carries) not yet acknowledged.
    queue: VecDeque<(u64, u64)>,
    /// Local edits not sent on the current connection (the next sync step 2 carries them).
    unsent: u64,
    /// The server's sync step 2 has been applied on this connection.
    remote_synced: bool,
    /// Our sync step 2 went to the server on this connection.
    handshake_sent: bool,
    last_activity: Instant,
}

impl Sync {
    fn sv(&self) -> Vec<u8> {
        self.mirror.transact().state_vector().encode_v1()
    }

    fn diff(&self, sv: &[u8]) -> Vec<u8> {
        let sv = StateVector::decode_v1(sv).unwrap_or_default();
        self.mirror.transact().encode_state_as_update_v1(&sv)
    }

    /// Applies an update to the mirror; returns what it changed.
    fn apply(&self, update: &[u8]) -> Result<Vec<Vec<u8>>, String> {
        let u = Update::decode_v1(update).map_err(|e| e.to_string())?;
        let applied = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut txn = self.mirror.transact_mut();
            txn.apply_update(u).map_err(|e| e.to_string())
        }));
        match applied {
            Ok(r) => r?,
            Err(_) => return Err("yrs panicked applying an update".into()),
        }
        Ok(std::mem::take(
            &mut *self.changes.lock().unwrap_or_else(|p| p.into_inner()),
        ))
    }

    fn edits_waiting(&self) -> u64 {
        self.unsent + self.queue.iter().map(|(_, n)| n).sum::<u64>()
    }

    fn publish(&self) {
        let waiting = self.edits_waiting();
        self.ctx.board.with_doc(&self.id, |d| {
            d.waiting = waiting;
            d.export_dirty = true;
        });
    }

    /// A frame from the local replica. `remote`: the server connection, when open.
    async fn on_local_frame(
        &mut self,
        msg: &Message,
        local: &mut Ws,
        remote: Option<&mut Ws>,
    ) -> Result<(), LocalGone> {
        let bytes = match msg {
            Message::Binary(b) => b,
            Message::Close(_) => return Err(LocalGone),
            _ => return Ok(()),
        };
        let (update, is_step2) = match wire::decode(bytes) {
            Ok(Msg::Step1(sv)) => {
                let diff = self.diff(&sv);
                return local
                    .send(Message::binary(wire::step2(&diff)))
                    .await
                    .map_err(|_| LocalGone);
            }
            Ok(Msg::Step2(u)) => (u, true),
            Ok(Msg::Update(u)) => (u, false),
            _ => return Ok(()),
        };
        let changed = match self.apply(&update) {
            Ok(c) => c,
            Err(e) => {
                warn!(doc = %self.id, error = %e, "the local replica sent an update yrs refused");
                return Ok(());
            }
        };
        if is_step2 && !self.loaded {
            // The document as the replica stored it: not an edit.
            self.loaded = true;
            return Ok(());
        }
        if changed.is_empty() {
            return Ok(());
        }
        self.last_activity = Instant::now();
        match remote {
            Some(ws) if self.handshake_sent => {
                for c in changed {
                    self.sent += 1;
                    self.queue.push_back((self.sent, 1));
                    if ws.send(Message::binary(wire::update(&c))).await.is_err() {
                        break;
                    }
                }
            }
            _ => self.unsent += changed.len() as u64,
        }
        self.publish();
        if self.ctx.board.with_doc(&self.id, |d| d.access_lost) {
            self.keep_local_copy().await;
        }
        Ok(())
    }

    /// One connection to the server: handshake, live relay both ways, acks; ends when idle,
    /// refused or broken.
    async fn session(
        &mut self,
        local: &mut Ws,
        kick: &mut watch::Receiver<u64>,
    ) -> Result<Ended, LocalGone> {
        let token = match self.ctx.tokens.bearer().await {
            Ok(t) => t,
            Err(AccountError::SignInAgain) | Err(AccountError::NotSignedIn) => {
                // Not a loop: wait for a new sign-in (the kick after `login`) or a restart.
                return Ok(Ended::Failed("sign in again".into()));
            }
            Err(e) => {
                self.ctx.board.lock().server_reachable = false;
                return Ok(Ended::Failed(e.to_string()));
            }
        };
        let mut remote = match connect_server(&self.ctx, &self.id, &token).await {
            Ok(ws) => ws,
            Err(Refused::AccessLost) => return Ok(Ended::AccessLost),
            Err(Refused::Unauthorized) => return Ok(Ended::Unauthorized),
            Err(Refused::Other(e)) => {
                self.ctx.board.lock().server_reachable = false;
                return Ok(Ended::Failed(e));
            }
        };
        self.ctx.board.lock().server_reachable = true;
        self.ctx.board.with_doc(&self.id, |d| d.live = true);
        // Edits sent on an earlier connection that were never acknowledged: this connection's
        // sync step 2 carries them again.
        self.unsent += self.queue.drain(..).map(|(_, n)| n).sum::<u64>();
        self.sent = 0;
        self.remote_synced = false;
        self.handshake_sent = false;
        if remote
            .send(Message::binary(wire::step1(&self.sv())))
            .await
            .is_err()
        {
            return Ok(Ended::Failed("send".into()));
        }
        self.last_activity = Instant::now();
        let mut tick = tokio::time::interval(YIELD_AFTER);
        loop {
            tokio::select! {
                msg = local.next() => {
                    let Some(Ok(msg)) = msg else { return Err(LocalGone) };
                    self.on_local_frame(&msg, local, Some(&mut remote)).await?;
                }
                msg = remote.next() => {
                    match msg {
                        Some(Ok(Message::Binary(b))) => {
                            if let Some(end) = self.on_server_frame(&b, local, &mut remote).await? {
                                return Ok(end);
                            }
                        }
                        Some(Ok(Message::Close(frame))) => {
                            let code = frame.as_ref().map(|f| u16::from(f.code)).unwrap_or(1005);
                            return Ok(match code {
                                4403 | 4404 => Ended::AccessLost,
                                4401 => Ended::Unauthorized,
                                _ => Ended::Failed(format!("closed {code}")),
                            });
                        }
                        Some(Ok(_)) => {}
                        Some(Err(e)) => return Ok(Ended::Failed(e.to_string())),
                        None => return Ok(Ended::Failed("connection ended".into())),
                    }
                }
                r = kick.changed() => {
                    if r.is_err() { return Err(LocalGone) }
                    self.last_activity = Instant::now();
                }
                _ = tick.tick() => {
                    let settled = self.remote_synced && self.edits_waiting() == 0;
                    let others_wait = self.ctx.queued.load(Ordering::Relaxed) > 0;
                    let idle = self.last_activity.elapsed();
                    if settled && (idle > IDLE_DISCONNECT || (others_wait && idle >= YIELD_AFTER)) {
                        let _ = remote.close(None).await;
                        return Ok(Ended::Idle);
                    }
                }
            }
        }
    }

    /// A frame from the server; `Some` ends the connection.
    async fn on_server_frame(
        &mut self,
        bytes: &[u8],
        local: &mut Ws,
        remote: &mut Ws,
    ) -> Result<Option<Ended>, LocalGone> {
        match wire::decode(bytes) {
            Ok(Msg::Step1(sv)) => {
                let diff = self.diff(&sv);
                self.sent += 1;
                // Everything waiting is in this diff.
                let carried = std::mem::take(&mut self.unsent);
                self.queue.push_back((self.sent, carried));
                self.handshake_sent = true;
                if remote
                    .send(Message::binary(wire::step2(&diff)))
                    .await
                    .is_err()
                {
                    return Ok(Some(Ended::Failed("send".into())));
                }
            }
            Ok(Msg::Step2(u)) | Ok(Msg::Update(u)) => {
                let step2 = matches!(wire::decode(bytes), Ok(Msg::Step2(_)));
                let changed = match self.apply(&u) {
                    Ok(c) => c,
                    Err(e) => {
                        warn!(doc = %self.id, error = %e, "the server sent an update yrs refused");
                        return Ok(Some(Ended::Failed(e)));
                    }
                };
                if !changed.is_empty() {
                    self.last_activity = Instant::now();
                    for c in changed {
                        local
                            .send(Message::binary(wire::update(&c)))
                            .await
                            .map_err(|_| LocalGone)?;
                    }
                    self.ctx.board.with_doc(&self.id, |d| d.export_dirty = true);
                }
                if step2 {
                    self.remote_synced = true;
                    self.settle();
                }
            }
            Ok(Msg::Ack(n)) => {
                while self.queue.front().is_some_and(|(f, _)| *f <= n) {
                    self.queue.pop_front();
                }
                self.publish();
                self.settle();
            }
            Ok(Msg::Denied) => {
                // A viewer: the server will not take our edits; keep them where they can be found.
                self.ctx.board.with_doc(&self.id, |d| d.access_lost = true);
                self.keep_local_copy().await;
                return Ok(Some(Ended::AccessLost));
            }
            _ => {}
        }
        Ok(None)
    }

    /// In sync: the server's state is applied and every edit acknowledged.
    fn settle(&self) {
        if !self.remote_synced || self.edits_waiting() > 0 {
            return;
        }
        let mut b = self.ctx.board.lock();
        let mut first = false;
        if let Some(d) = b.docs.get_mut(&self.id) {
            first = d.in_first_sync && d.last_sync_ms.is_none();
            d.last_sync_ms = Some(now_ms());
            d.on_server = true;
        }
        if first {
            b.first_sync_done += 1;
        }
    }

    /// Access is gone: stop syncing, keep what this laptop has in a file the user can find.
    async fn lost(&mut self) {
        info!(doc = %self.id, "access to the document was lost; local edits are kept");
        self.ctx.board.with_doc(&self.id, |d| d.access_lost = true);
        self.keep_local_copy().await;
    }

    async fn keep_local_copy(&self) {
        let dir = self.ctx.data_dir.join("access-lost");
        let url = format!(
            "{}/api/docs/{}/export?format=md",
            self.ctx.local_http, self.id
        );
        let body = match reqwest::get(&url).await {
            Ok(r) if r.status().is_success() => r.bytes().await.ok(),
            _ => None,
        };
        let Some(body) = body else {
            warn!(doc = %self.id, "could not export the local copy of a lost document");
            return;
        };
        let path = dir.join(format!("{}.md", self.id));
        let written =
            crate::files::private_dir(&dir).and_then(|()| crate::files::write_plain(&path, &body));
        match written {
            Ok(()) => {
                let shown = path.display().to_string();
                self.ctx
                    .board
                    .with_doc(&self.id, |d| d.kept_in = Some(shown));
            }
            Err(e) => warn!(doc = %self.id, error = %e, "could not keep the local copy"),
        }
    }
}

enum Refused {
    AccessLost,
    Unauthorized,
    Other(String),
}

async fn connect_local(ctx: &Ctx, id: &str) -> Result<Ws, String> {
    let url = format!("{}/ws/doc/{id}?ack=1", ctx.local_ws);
    let cfg = ws_config();
    let (ws, _) = tokio_tungstenite::connect_async_with_config(url, Some(cfg), false)
        .await
        .map_err(|e| e.to_string())?;
    Ok(ws)
}

async fn connect_server(ctx: &Ctx, id: &str, token: &str) -> Result<Ws, Refused> {
    let url = format!("{}/ws/doc/{id}?ack=1", ctx.server_ws);
    let mut req = url
        .into_client_request()
        .map_err(|e| Refused::Other(e.to_string()))?;
    let protocols = format!("dure, dure-token.{token}");
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        protocols
            .parse()
            .map_err(|_| Refused::Other("token is not a header value".into()))?,
    );
    let connect = tokio_tungstenite::connect_async_with_config(req, Some(ws_config()), false);
    match tokio::time::timeout(Duration::from_secs(20), connect).await {
        Err(_) => Err(Refused::Other("timed out".into())),
        Ok(Ok((ws, _))) => Ok(ws),
        Ok(Err(WsError::Http(resp))) => Err(match resp.status().as_u16() {
            403 | 404 => Refused::AccessLost,
            401 => Refused::Unauthorized,
            s => Refused::Other(format!("HTTP {s}")),
        }),
        Ok(Err(e)) => Err(Refused::Other(e.to_string())),
    }
}

fn ws_config() -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
    tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(Some(MAX_FRAME))
        .max_frame_size(Some(MAX_FRAME))
}
