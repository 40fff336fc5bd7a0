//! One document room: the task that owns a loaded document.
//!
//! Life: load (snapshot + log, decoded off the async threads) → serve → unload when idle or
//! shut down, always after a final flush. Serving: each update is applied and fanned out at
//! once; it also joins the current batch, which goes to the persistence worker as soon as
//! the previous write returned (group commit). When a write returns, each connection that
//! asked for acks is told how many of its update frames are durable.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dure_storage::docs::log_key;
use dure_storage::{DocId, LoadedLog, Snapshot, StateEncoding, StoreError};
use tokio::sync::{mpsc, oneshot};
use tokio::time::sleep_until;
use tracing::{debug, error, info, warn};
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{Doc, OffsetKind, Options, ReadTxn, StateVector, Transact, Update};

use crate::connection::LeaveGuard;
use crate::decode_stack::with_stack;
use crate::outbox::{Outbox, Refused, outbox};
use crate::persist::{PersistEvent, PersistJob, Worker};
use crate::presence::{self, Presence, PresenceUser};
use crate::protocol::{self, ClientMessage};
use crate::registry::Shared;
use crate::size_limit::SizeLimit;
use crate::validate;
use crate::{
    CloseReason, ConnId, Connection, ConnectionReceiver, ConnectionSender, JoinError, JoinOptions,
};

/// Messages that change membership: unbounded, since there is at most one join and one
/// leave per connection (and a leave must never be lost to a full queue).
pub(crate) enum Control {
    Join {
        opts: JoinOptions,
        reply: oneshot::Sender<Result<Connection, JoinError>>,
    },
    Leave(ConnId),
    Shutdown,
}

/// What a connection's transport sends the room, in order.
pub(crate) struct Inbound {
    pub(crate) conn: ConnId,
    pub(crate) msg: InboundMsg,
}

pub(crate) enum InboundMsg {
    /// A received frame.
    Frame(Bytes),
    /// Who the connection is (binds its presence).
    Identify(PresenceUser),
}

/// Capacity of the room's shared inbound queue (frames from all its connections).
const INBOUND_QUEUE: usize = 4096;
const TICK_IDLE: Duration = Duration::from_secs(1);
const TICK_BUSY: Duration = Duration::from_millis(50);
/// An empty v1 update (no structs, empty delete set): what a fresh client answers to
/// sync step 1.
const EMPTY_UPDATE_V1: &[u8] = &[0, 0];

struct Lag {
    since: Instant,
    /// Everything at or above this state vector may not have reached the client.
    state_vector: StateVector,
    /// The frame that did not fit answered sync step 1: catch up with a sync step 2 (what
    /// y-websocket clients wait for to call themselves synced).
    step2: bool,
}

struct ConnState {
    frames: Outbox,
    close: Option<oneshot::Sender<CloseReason>>,
    wants_ack: bool,
    /// Update-bearing frames received.
    updates_received: u64,
    /// Highest "saved" count sent.
    acked: u64,
    /// Highest "saved" count known durable (may exceed `acked` while the queue is full).
    durable: u64,
    lag: Option<Lag>,
    aw_tokens: f64,
    aw_refilled: Instant,
    /// Newest awareness payload held back by the rate limit.
    aw_deferred: Option<(Bytes, Bytes)>,
    /// The authenticated user its presence is bound to.
    user: Option<PresenceUser>,
    /// Newest sync step 1 waiting for the previous answer to be written.
    step1_deferred: Option<StateVector>,
    /// A query-awareness waiting for the previous answer or for the rate limit.
    query_deferred: bool,
}

#[derive(Default)]
struct Batch {
    updates: Vec<Bytes>,
    arrivals: Vec<Instant>,
    acks: HashMap<ConnId, u64>,
}

impl Batch {
    fn is_empty(&self) -> bool {
        self.updates.is_empty() && self.acks.is_empty()
    }
}

pub(crate) struct Room {
    id: DocId,
    generation: u64,
    shared: Arc<Shared>,
    doc: Doc,
    conns: HashMap<ConnId, ConnState>,
    presence: Presence,
    batch: Batch,
    in_flight: bool,
    last_commit: Option<Instant>,
    /// Jobs are boxed: a tokio channel allocates a 32-slot block up front, per room.
    jobs: Option<mpsc::Sender<Box<PersistJob>>>,
    inbound_tx: mpsc::Sender<Inbound>,
    control_tx: mpsc::UnboundedSender<Control>,
    /// Sync step 2 for an empty state vector (what every fresh client asks for).
    full_state: Option<Bytes>,
    idle_since: Instant,
    shutting_down: bool,
    failed: Option<String>,
    size: SizeLimit,
}

pub(crate) struct Channels {
    pub(crate) control_tx: mpsc::UnboundedSender<Control>,
    pub(crate) control_rx: mpsc::UnboundedReceiver<Control>,
}

impl Channels {
    pub(crate) fn new() -> Self {
        let (control_tx, control_rx) = mpsc::unbounded_channel();
        Channels {
            control_tx,
            control_rx,
        }
    }
}

fn new_doc() -> Doc {
    Doc::with_options(Options {
        offset_kind: OffsetKind::Utf16,
        ..Options::default()
    })
}

/// Rebuilds a document from what the store holds. Stored bytes are checked like a client's
/// before yrs decodes them (the store is not trusted either), and every error names the
/// object it came from.
pub(crate) fn build_doc(id: &DocId, loaded: &LoadedLog) -> Result<Doc, String> {
    let doc = new_doc();
    with_stack(|| {
        catch_unwind(AssertUnwindSafe(|| -> Result<(), String> {
            let mut txn = doc.transact_mut();
            if let Some(snapshot) = &loaded.snapshot {
                let key = loaded.snapshot_key.as_deref().unwrap_or("the snapshot");
                let update =
                    decode_state(snapshot).map_err(|e| format!("{key} is unreadable: {e}"))?;
                txn.apply_update(update)
                    .map_err(|e| format!("{key} was refused: {e}"))?;
            }
            for entry in &loaded.entries {
                for update in &entry.updates {
                    let key = || log_key(id, entry.seq);
                    validate::update_v1(update, crate::MAX_NESTING_DEPTH_LIMIT)
                        .map_err(|e| format!("{} is unreadable: {e}", key()))?;
                    let update = Update::decode_v1(update)
                        .map_err(|e| format!("{} is unreadable: {e}", key()))?;
                    txn.apply_update(update)
                        .map_err(|e| format!("{} was refused: {e}", key()))?;
                }
            }
            Ok(())
        }))
    })
    .map_err(|_| format!("decoding docs/{id} panicked"))??;
    Ok(doc)
}

/// Describes updates the document holds back because what they build on is missing (a
/// hole in the stored log), if any.
pub(crate) fn hole(doc: &Doc) -> Option<String> {
    let txn = doc.transact();
    let store = txn.store();
    if !txn.has_missing_updates() {
        return None;
    }
    let missing = store
        .pending_update()
        .map(|p| {
            p.missing
                .iter()
                .map(|(client, clock)| format!("client {client} from clock {clock}"))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    Some(if missing.is_empty() {
        "deletions of content it does not have".to_owned()
    } else {
        format!("updates missing for {missing}")
    })
}

/// Decodes a snapshot's state. A v1 state is checked like client input first; v2 (written by
/// earlier versions) cannot be: its run-length columns let a few bytes declare any count.
pub(crate) fn decode_state(snapshot: &Snapshot) -> Result<Update, String> {
    match snapshot.encoding {
        StateEncoding::YrsV1 => {
            validate::update_v1(&snapshot.state, crate::MAX_NESTING_DEPTH_LIMIT)
                .map_err(|e| e.to_string())?;
            Update::decode_v1(&snapshot.state).map_err(|e| e.to_string())
        }
        StateEncoding::YrsV2 => Update::decode_v2(&snapshot.state).map_err(|e| e.to_string()),
    }
}

/// The merged state of what the store holds, for a snapshot (yrs v1). A document with a
/// hole is refused (its held-back updates would be dropped), and a yrs panic is an error.
pub(crate) fn merged_state(id: &DocId, loaded: &LoadedLog) -> Result<Vec<u8>, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        key: format!("docs/{id}"),
        reason,
    };
    let doc = build_doc(id, loaded).map_err(corrupt)?;
    if let Some(hole) = hole(&doc) {
        return Err(corrupt(format!(
            "the stored log has a hole ({hole}); not compacting, nothing deleted"
        )));
    }
    let state = with_stack(|| {
        catch_unwind(AssertUnwindSafe(|| {
            doc.transact()
                .encode_state_as_update_v1(&StateVector::default())
        }))
    })
    .map_err(|_| corrupt("encoding the merged state panicked; not compacting".into()))?;
    with_stack(move || drop(doc));
    Ok(state)
}

/// Runs a room from load to exit.
pub(crate) async fn run(id: DocId, generation: u64, shared: Arc<Shared>, mut channels: Channels) {
    let started = Instant::now();
    let loaded = match shared.docs.load(&id).await {
        Ok(l) => l,
        Err(e) => {
            warn!(doc = %id, error = %e, "document could not be loaded from the store");
            refuse_all(
                &id,
                generation,
                &shared,
                &mut channels,
                JoinError::Unavailable(e.to_string()),
            );
            return;
        }
    };
    let bytes = loaded.bytes;
    let load_id = id.clone();
    let built =
        tokio::task::spawn_blocking(move || build_doc(&load_id, &loaded).map(|doc| (doc, loaded)))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r);
    let (doc, loaded) = match built {
        Ok(v) => v,
        Err(e) => {
            warn!(doc = %id, error = %e, "stored document is unreadable; refusing to serve it");
            refuse_all(
                &id,
                generation,
                &shared,
                &mut channels,
                JoinError::Unavailable(e),
            );
            return;
        }
    };
    if let Some(hole) = hole(&doc) {
        // Served as far as it goes (nothing stored is changed or dropped; compaction refuses
        // it), and said once.
        warn!(doc = %id, %hole, "the stored log of this document has a hole");
    }
    shared.observer.room_loaded(started.elapsed(), bytes);
    debug!(doc = %id, ms = started.elapsed().as_millis() as u64, bytes, "room loaded");

    let (events_tx, mut events_rx) = mpsc::unbounded_channel();
    let (jobs_tx, jobs_rx) = mpsc::channel(1);
    let worker = Worker::new(id.clone(), shared.clone(), &loaded, events_tx);
    let worker_task = tokio::spawn(worker.run(jobs_rx));
    let (inbound_tx, mut inbound_rx) = mpsc::channel(INBOUND_QUEUE);

    let shared_max_doc_bytes = shared.cfg.max_doc_bytes;
    let mut room = Room {
        id,
        generation,
        shared,
        doc,
        conns: HashMap::new(),
        presence: Presence::default(),
        batch: Batch::default(),
        in_flight: false,
        last_commit: None,
        jobs: Some(jobs_tx),
        inbound_tx,
        control_tx: channels.control_tx.clone(),
        full_state: None,
        idle_since: Instant::now(),
        shutting_down: false,
        failed: None,
        size: SizeLimit::new(shared_max_doc_bytes, bytes),
    };
    // Grows on the first busy moment; an idle room keeps no batch buffer.
    let mut frames = Vec::new();
    let mut next_tick = Instant::now() + TICK_IDLE;
    loop {
        let commit_at = room.commit_due_at();
        tokio::select! {
            biased;
            Some(ev) = events_rx.recv() => room.on_persist_event(ev),
            Some(ctrl) = channels.control_rx.recv() => {
                let shutdown = matches!(ctrl, Control::Shutdown);
                room.on_control(ctrl);
                if shutdown {
                    // Frames that reached us before the signal are applied and flushed;
                    // later ones are not read (their senders get no ack and resend).
                    while let Ok(inbound) = inbound_rx.try_recv() {
                        room.on_inbound(inbound);
                    }
                }
            }
            n = inbound_rx.recv_many(&mut frames, 64), if !room.shutting_down => {
                if n == 0 { break; }
                for inbound in frames.drain(..) {
                    room.on_inbound(inbound);
                }
            }
            _ = sleep_until(commit_at.unwrap_or(next_tick).into()), if commit_at.is_some() => {}
            _ = sleep_until(next_tick.into()) => {
                room.on_tick();
                next_tick = Instant::now() + if room.busy() { TICK_BUSY } else { TICK_IDLE };
            }
        }
        room.maybe_commit();
        if room.ready_to_exit() {
            break;
        }
    }
    room.exit(&mut channels).await;
    drop(room.jobs.take());
    let _ = worker_task.await;
    // Dropping nested values recurses as deep as decoding them.
    with_stack(move || drop(room));
}

/// Load failed: remove ourselves and tell every waiting join why.
fn refuse_all(
    id: &DocId,
    generation: u64,
    shared: &Shared,
    channels: &mut Channels,
    err: JoinError,
) {
    shared.remove_room(id, generation);
    while let Ok(ctrl) = channels.control_rx.try_recv() {
        if let Control::Join { reply, .. } = ctrl {
            let _ = reply.send(Err(err.clone()));
        }
    }
}

impl Room {
    fn busy(&self) -> bool {
        self.conns.values().any(|c| {
            c.lag.is_some()
                || c.aw_deferred.is_some()
                || c.step1_deferred.is_some()
                || c.query_deferred
                || c.durable > c.acked
        })
    }

    // ---- membership ----

    fn on_control(&mut self, ctrl: Control) {
        match ctrl {
            Control::Join { opts, reply } => {
                if self.shutting_down || self.failed.is_some() {
                    let _ = reply.send(Err(JoinError::ShuttingDown));
                    return;
                }
                let conn = self.join(opts);
                // The joiner may have given up (timeout); then the guard leaves again.
                let _ = reply.send(Ok(conn));
            }
            Control::Leave(conn) => {
                if self.conns.remove(&conn).is_some() {
                    self.forget(conn);
                }
            }
            Control::Shutdown => self.shutting_down = true,
        }
    }

    fn join(&mut self, opts: JoinOptions) -> Connection {
        let id = self.shared.next_conn_id();
        let cfg = &self.shared.cfg;
        let (frames_tx, frames_rx) = outbox(cfg.outbound_queue.max(4), cfg.outbound_queue_bytes);
        let (close_tx, close_rx) = oneshot::channel();
        // Sync step 1 first (y-websocket servers open with it), then who is here.
        let sv = self.doc.transact().state_vector().encode_v1();
        let _ = frames_tx.push(protocol::sync_step1(&sv));
        if let Some(full) = self.presence.full() {
            let _ = frames_tx.push(protocol::awareness(&full));
        }
        let now = Instant::now();
        self.conns.insert(
            id,
            ConnState {
                frames: frames_tx,
                close: Some(close_tx),
                wants_ack: opts.ack,
                updates_received: 0,
                acked: 0,
                durable: 0,
                lag: None,
                aw_tokens: self.shared.cfg.awareness_burst,
                aw_refilled: now,
                aw_deferred: None,
                user: None,
                step1_deferred: None,
                query_deferred: false,
            },
        );
        let guard = Arc::new(LeaveGuard {
            id,
            control: self.control_tx.clone(),
        });
        Connection {
            id,
            sender: ConnectionSender {
                id,
                inbound: self.inbound_tx.clone(),
                _guard: guard.clone(),
            },
            receiver: ConnectionReceiver {
                frames: frames_rx,
                close: close_rx,
                pending_close: None,
                _guard: guard,
            },
        }
    }

    /// Ends a connection from the room's side.
    fn close(&mut self, conn: ConnId, reason: CloseReason) {
        let Some(mut state) = self.conns.remove(&conn) else {
            return;
        };
        debug!(doc = %self.id, %conn, reason = %reason, "closing connection");
        self.shared.observer.connection_closed(&reason);
        if let Some(tx) = state.close.take() {
            let _ = tx.send(reason);
        }
        self.forget(conn);
    }

    /// Cleans up after a connection that is gone: its presence, its pending acks.
    fn forget(&mut self, conn: ConnId) {
        self.batch.acks.remove(&conn);
        let removed = self.presence.remove_conn(conn, Instant::now());
        if !removed.is_empty() {
            let frame = protocol::awareness(&presence::encode_entries(&removed));
            self.broadcast(None, &frame, None);
        }
        if self.conns.is_empty() {
            self.idle_since = Instant::now();
        }
    }

    // ---- frames ----

    fn on_inbound(&mut self, Inbound { conn, msg }: Inbound) {
        match msg {
            InboundMsg::Frame(frame) => self.on_frame(conn, frame),
            InboundMsg::Identify(user) => {
                if let Some(state) = self.conns.get_mut(&conn) {
                    state.user = Some(user);
                }
            }
        }
    }

    fn on_frame(&mut self, conn: ConnId, frame: Bytes) {
        if !self.conns.contains_key(&conn) {
            return; // closed while its frames were queued
        }
        match protocol::decode(&frame) {
            Err(e) => self.close(conn, CloseReason::Malformed(e.to_string())),
            Ok(ClientMessage::SyncStep1 { state_vector }) => {
                self.on_sync_step1(conn, &state_vector)
            }
            Ok(ClientMessage::SyncStep2 { update }) => self.on_update(conn, &frame, update, true),
            Ok(ClientMessage::Update { update }) => self.on_update(conn, &frame, update, false),
            Ok(ClientMessage::Awareness { update }) => self.on_awareness(conn, frame, update),
            Ok(ClientMessage::QueryAwareness) => self.on_query_awareness(conn),
        }
    }

    fn on_sync_step1(&mut self, conn: ConnId, sv: &[u8]) {
        // Counts are checked against the bytes before yrs reserves anything for them.
        let decoded = validate::state_vector_v1(sv)
            .map_err(|e| e.to_string())
            .and_then(|()| StateVector::decode_v1(sv).map_err(|e| e.to_string()));
        let sv = match decoded {
            Ok(sv) => sv,
            Err(e) => {
                self.close(
                    conn,
                    CloseReason::Malformed(format!("bad state vector: {e}")),
                );
                return;
            }
        };
        let Some(state) = self.conns.get_mut(&conn) else {
            return;
        };
        // One answer at a time: a client that asks again and again without reading gets
        // the newest question answered once the previous answer was written.
        if state.lag.is_some() || state.frames.reply_outstanding() {
            state.step1_deferred = Some(sv);
            return;
        }
        self.answer_step1(conn, sv);
    }

    fn answer_step1(&mut self, conn: ConnId, sv: StateVector) {
        let reply = if sv.is_empty() {
            self.full_state_frame()
        } else {
            let doc = &self.doc;
            protocol::sync_step2(&with_stack(|| {
                doc.transact().encode_state_as_update_v1(&sv)
            }))
        };
        let Some(state) = self.conns.get_mut(&conn) else {
            return;
        };
        if state.frames.push_reply(reply) == Err(Refused::Full) {
            // Catch it up from what it said it has, once its queue drains.
            state.lag = Some(Lag {
                since: Instant::now(),
                state_vector: sv,
                step2: true,
            });
        }
    }

    fn on_query_awareness(&mut self, conn: ConnId) {
        let cfg = &self.shared.cfg;
        let Some(state) = self.conns.get_mut(&conn) else {
            return;
        };
        refill(state, cfg.awareness_rate, cfg.awareness_burst);
        // Rate-limited with awareness updates, and one answer at a time.
        if state.aw_tokens < 1.0 || state.lag.is_some() || state.frames.reply_outstanding() {
            state.query_deferred = true;
            return;
        }
        state.aw_tokens -= 1.0;
        self.answer_query(conn);
    }

    fn answer_query(&mut self, conn: ConnId) {
        let Some(full) = self.presence.full() else {
            return;
        };
        if let Some(state) = self.conns.get_mut(&conn) {
            // A full queue drops it: the resync that follows carries the presence states.
            let _ = state.frames.push_reply(protocol::awareness(&full));
        }
    }

    fn full_state_frame(&mut self) -> Bytes {
        if let Some(frame) = &self.full_state {
            return frame.clone();
        }
        let doc = &self.doc;
        let update = with_stack(|| {
            doc.transact()
                .encode_state_as_update_v1(&StateVector::default())
        });
        let frame = protocol::sync_step2(&update);
        self.full_state = Some(frame.clone());
        frame
    }

    fn on_update(&mut self, conn: ConnId, frame: &Bytes, update: Bytes, step2: bool) {
        let Some(state) = self.conns.get_mut(&conn) else {
            return;
        };
        state.updates_received += 1;
        let n = state.updates_received;
        if update.as_ref() != EMPTY_UPDATE_V1 {
            // Bounded before yrs sees it: nesting (yrs recurses without limit) and every
            // declared count (yrs reserves what they say).
            if let Err(e) = validate::update_v1(&update, self.shared.cfg.max_nesting_depth) {
                self.close(conn, CloseReason::InvalidUpdate(e.to_string()));
                return;
            }
            let decoded = match with_stack(|| catch_unwind(|| Update::decode_v1(&update))) {
                Ok(Ok(u)) => u,
                Ok(Err(e)) => {
                    self.close(conn, CloseReason::InvalidUpdate(e.to_string()));
                    return;
                }
                Err(_) => {
                    self.close(
                        conn,
                        CloseReason::InvalidUpdate("undecodable update".into()),
                    );
                    return;
                }
            };
            if !self.size.admits(&self.doc, update.len()) {
                let limit = self.size.limit();
                self.close(conn, CloseReason::DocumentTooLarge { limit });
                return;
            }
            let doc = &self.doc;
            let applied = with_stack(|| {
                catch_unwind(AssertUnwindSafe(|| {
                    doc.transact_mut().apply_update(decoded)
                }))
            });
            match applied {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    self.close(conn, CloseReason::InvalidUpdate(e.to_string()));
                    return;
                }
                Err(_) => {
                    // yrs panicked half-way through a transaction: the in-memory document can
                    // no longer be trusted. Persist what was valid, close everyone (they
                    // reconnect), and let the next join reload from the store.
                    // The panic hook logged the message at ERROR already.
                    error!(doc = %self.id, %conn, "update made yrs panic; restarting the room");
                    self.close(
                        conn,
                        CloseReason::InvalidUpdate("update could not be applied".into()),
                    );
                    self.failed = Some("internal error applying an update".into());
                    return;
                }
            }
            self.shared.observer.update_applied(update.len());
            self.size.applied(update.len());
            self.full_state = None;
            let out = if step2 {
                protocol::update(&update)
            } else {
                frame.clone()
            };
            self.broadcast(Some(conn), &out, Some(&update));
            self.batch.updates.push(update);
            self.batch.arrivals.push(Instant::now());
        }
        self.batch.acks.insert(conn, n);
    }

    fn on_awareness(&mut self, conn: ConnId, frame: Bytes, update: Bytes) {
        let cfg = &self.shared.cfg;
        if frame.len() > cfg.awareness_max_bytes {
            let reason = CloseReason::AwarenessTooLarge {
                size: frame.len(),
                limit: cfg.awareness_max_bytes,
            };
            self.close(conn, reason);
            return;
        }
        let Some(state) = self.conns.get_mut(&conn) else {
            return;
        };
        refill(state, cfg.awareness_rate, cfg.awareness_burst);
        if state.aw_tokens < 1.0 {
            // Over the rate: keep only the newest, apply it when tokens return.
            state.aw_deferred = Some((frame, update));
            return;
        }
        state.aw_tokens -= 1.0;
        self.apply_awareness(conn, frame, &update);
    }

    fn apply_awareness(&mut self, conn: ConnId, frame: Bytes, update: &[u8]) {
        let Some(entries) = presence::decode(update) else {
            self.close(
                conn,
                CloseReason::Malformed("invalid awareness update".into()),
            );
            return;
        };
        let cfg = &self.shared.cfg;
        let limits = presence::Limits {
            per_connection: cfg.awareness_clients_per_connection,
            per_room: cfg.awareness_clients_per_room,
            max_depth: cfg.max_nesting_depth,
        };
        let user = self.conns.get(&conn).and_then(|c| c.user.as_ref());
        let applied = match self
            .presence
            .apply(conn, entries, Instant::now(), limits, user)
        {
            Ok(applied) => applied,
            Err(e) => {
                // Never relayed: y-protocols clients would throw on a state that is not JSON.
                self.close(conn, CloseReason::Malformed(e.to_string()));
                return;
            }
        };
        if applied.changed.is_empty() {
            return;
        }
        let out = if applied.all {
            frame
        } else {
            protocol::awareness(&presence::encode_entries(&applied.changed))
        };
        // Echo to the sender too: y-websocket clients count it as a sign of life.
        self.broadcast(None, &out, None);
    }

    // ---- fan-out ----

    /// Sends `frame` to every connection but `except`. `update` is the update payload it
    /// carries, if any: a connection whose queue is full is then resynced from before it.
    fn broadcast(&mut self, except: Option<ConnId>, frame: &Bytes, update: Option<&Bytes>) {
        let mut lag_sv: Option<StateVector> = None;
        for (&id, state) in self.conns.iter_mut() {
            if Some(id) == except || state.lag.is_some() {
                continue;
            }
            match state.frames.push(frame.clone()) {
                Ok(()) => {}
                Err(Refused::Full) => {
                    let sv = lag_sv
                        .get_or_insert_with(|| state_vector_before(&self.doc, update))
                        .clone();
                    start_lag(state, sv);
                }
                // Receiver gone: the leave message is on its way.
                Err(Refused::Closed) => {}
            }
        }
    }

    // ---- persistence ----

    fn commit_due_at(&self) -> Option<Instant> {
        if self.in_flight || self.batch.updates.is_empty() {
            return None;
        }
        let interval = self.shared.cfg.commit_interval;
        if self.shutting_down || self.failed.is_some() {
            return None; // flush now, whatever the interval
        }
        match self.last_commit {
            Some(last) if !interval.is_zero() && last + interval > Instant::now() => {
                Some(last + interval)
            }
            _ => None,
        }
    }

    fn maybe_commit(&mut self) {
        if self.in_flight || self.batch.is_empty() || self.commit_due_at().is_some() {
            return;
        }
        let batch = std::mem::take(&mut self.batch);
        let acks: Vec<(ConnId, u64)> = batch.acks.into_iter().collect();
        if batch.updates.is_empty() {
            // Only empty updates: durable as soon as everything before them is.
            self.deliver_acks(&acks);
            return;
        }
        let Some(jobs) = &self.jobs else { return };
        let job = Box::new(PersistJob {
            updates: batch.updates,
            arrivals: batch.arrivals,
            acks,
        });
        if jobs.try_send(job).is_ok() {
            self.in_flight = true;
            self.last_commit = Some(Instant::now());
        } else {
            warn!(doc = %self.id, "persistence worker is gone; room failing");
            self.failed = Some("persistence stopped".into());
        }
    }

    fn on_persist_event(&mut self, ev: PersistEvent) {
        match ev {
            PersistEvent::Done { acks } => {
                self.in_flight = false;
                self.deliver_acks(&acks);
            }
            PersistEvent::Foreign { snapshot, updates } => {
                // What other writers stored: take it in and pass it on.
                if let Some(snapshot) = snapshot {
                    self.apply_foreign_snapshot(&snapshot);
                }
                for update in updates {
                    let doc = &self.doc;
                    let ok = validate::update_v1(&update, crate::MAX_NESTING_DEPTH_LIMIT).is_ok()
                        && with_stack(|| match Update::decode_v1(&update) {
                            Ok(u) => catch_unwind(AssertUnwindSafe(|| {
                                doc.transact_mut().apply_update(u)
                            }))
                            .is_ok_and(|r| r.is_ok()),
                            Err(_) => false,
                        });
                    if !ok {
                        crate::warn_limited!(doc = %self.id, "skipping an unreadable update from another writer");
                        continue;
                    }
                    self.full_state = None;
                    self.broadcast(None, &protocol::update(&update), Some(&update));
                }
            }
        }
    }

    /// Applies another process's snapshot (found behind a fence) and sends connections what
    /// it added: the diff from the state before, not the whole snapshot.
    fn apply_foreign_snapshot(&mut self, snapshot: &Snapshot) {
        let doc = &self.doc;
        let diff = with_stack(|| {
            catch_unwind(AssertUnwindSafe(|| {
                let before = doc.transact().state_vector();
                let update = decode_state(snapshot).ok()?;
                doc.transact_mut().apply_update(update).ok()?;
                Some(doc.transact().encode_state_as_update_v1(&before))
            }))
        });
        match diff {
            Ok(Some(diff)) => {
                self.full_state = None;
                let diff = Bytes::from(diff);
                self.broadcast(None, &protocol::update(&diff), Some(&diff));
            }
            Ok(None) => {
                warn!(doc = %self.id, "skipping an unreadable snapshot from another writer")
            }
            Err(_) => {
                warn!(doc = %self.id, "another writer's snapshot made yrs panic; restarting the room");
                self.failed = Some("internal error applying a snapshot".into());
            }
        }
    }

    fn deliver_acks(&mut self, acks: &[(ConnId, u64)]) {
        for &(conn, n) in acks {
            if let Some(state) = self.conns.get_mut(&conn) {
                state.durable = state.durable.max(n);
                flush_ack(state, &*self.shared.observer);
            }
        }
    }

    // ---- housekeeping ----

    fn on_tick(&mut self) {
        let now = Instant::now();
        let cfg = self.shared.cfg.clone();
        let mut to_close = Vec::new();
        let mut to_resync = Vec::new();
        let mut deferred = Vec::new();
        let mut step1s = Vec::new();
        let mut queries = Vec::new();
        for (&id, state) in self.conns.iter_mut() {
            if state.frames.is_closed() {
                to_close.push((id, None));
                continue;
            }
            if let Some(lag) = &state.lag {
                if state.frames.drained_to_half() {
                    to_resync.push(id);
                } else if now.duration_since(lag.since) > cfg.slow_reader_timeout {
                    to_close.push((id, Some(CloseReason::SlowReader)));
                }
                continue;
            }
            flush_ack(state, &*self.shared.observer);
            if state.aw_deferred.is_some() {
                refill(state, cfg.awareness_rate, cfg.awareness_burst);
                if state.aw_tokens >= 1.0 {
                    state.aw_tokens -= 1.0;
                    if let Some(d) = state.aw_deferred.take() {
                        deferred.push((id, d));
                    }
                }
            }
            if !state.frames.reply_outstanding() {
                if let Some(sv) = state.step1_deferred.take() {
                    step1s.push((id, sv));
                } else if state.query_deferred {
                    refill(state, cfg.awareness_rate, cfg.awareness_burst);
                    if state.aw_tokens >= 1.0 {
                        state.aw_tokens -= 1.0;
                        state.query_deferred = false;
                        queries.push(id);
                    }
                }
            }
        }
        for (id, reason) in to_close {
            match reason {
                Some(r) => self.close(id, r),
                None => {
                    if self.conns.remove(&id).is_some() {
                        self.forget(id);
                    }
                }
            }
        }
        for id in to_resync {
            self.resync(id);
        }
        for (id, (frame, update)) in deferred {
            self.apply_awareness(id, frame, &update);
        }
        for (id, sv) in step1s {
            self.answer_step1(id, sv);
        }
        for id in queries {
            self.answer_query(id);
        }
        let expired = self.presence.expire(now - cfg.awareness_timeout, now);
        if !expired.is_empty() {
            let frame = protocol::awareness(&presence::encode_entries(&expired));
            self.broadcast(None, &frame, None);
        }
    }

    /// Catches a slow reader up with one diff, then presence and its ack.
    fn resync(&mut self, conn: ConnId) {
        let Some(state) = self.conns.get_mut(&conn) else {
            return;
        };
        let Some(lag) = state.lag.take() else { return };
        let doc = &self.doc;
        let diff = with_stack(|| doc.transact().encode_state_as_update_v1(&lag.state_vector));
        let catch_up = if lag.step2 {
            state.frames.push_reply(protocol::sync_step2(&diff))
        } else {
            state.frames.push(protocol::update(&diff))
        };
        if catch_up.is_err() {
            state.lag = Some(lag);
            return;
        }
        let mut frames = Vec::new();
        if let Some(full) = self.presence.full() {
            frames.push(protocol::awareness(&full));
        }
        debug!(doc = %self.id, %conn, bytes = diff.len(), "resyncing a slow reader");
        for frame in frames {
            if state.frames.push(frame).is_err() {
                // Room for half a queue was there a moment ago; if not, stay lagging.
                state.lag = Some(lag);
                return;
            }
        }
        flush_ack(state, &*self.shared.observer);
    }

    fn ready_to_exit(&mut self) -> bool {
        let flushed = self.batch.is_empty() && !self.in_flight;
        if !flushed {
            return false;
        }
        if self.shutting_down || self.failed.is_some() {
            return true;
        }
        self.conns.is_empty() && self.idle_since.elapsed() >= self.shared.cfg.idle_unload
    }

    /// Final step: close whoever is left, leave the registry, refuse late joins.
    async fn exit(&mut self, channels: &mut Channels) {
        let reason = match &self.failed {
            Some(why) => CloseReason::RoomFailed(why.clone()),
            None => CloseReason::Restart,
        };
        let ids: Vec<ConnId> = self.conns.keys().copied().collect();
        for id in ids {
            self.close(id, reason.clone());
        }
        self.shared.remove_room(&self.id, self.generation);
        // Joins that raced with our removal: the joiner retries and loads a fresh room
        // (everything is flushed, so it sees every acknowledged update).
        while let Ok(ctrl) = channels.control_rx.try_recv() {
            if let Control::Join { reply, .. } = ctrl {
                let _ = reply.send(Err(if self.shutting_down {
                    JoinError::ShuttingDown
                } else {
                    JoinError::Retry
                }));
            }
        }
        if self.shutting_down {
            info!(doc = %self.id, "room flushed for shutdown");
        } else {
            debug!(doc = %self.id, "room unloaded");
        }
        self.shared.observer.room_unloaded();
    }
}

fn refill(state: &mut ConnState, rate: f64, burst: f64) {
    let now = Instant::now();
    let elapsed = now.duration_since(state.aw_refilled).as_secs_f64();
    state.aw_tokens = (state.aw_tokens + elapsed * rate).min(burst);
    state.aw_refilled = now;
}

fn flush_ack(state: &mut ConnState, observer: &dyn crate::Observer) {
    if !state.wants_ack || state.durable <= state.acked || state.lag.is_some() {
        return;
    }
    if state.frames.push(protocol::saved(state.durable)).is_ok() {
        state.acked = state.durable;
        observer.ack_sent();
    }
}

fn start_lag(state: &mut ConnState, state_vector: StateVector) {
    state.lag = Some(Lag {
        since: Instant::now(),
        state_vector,
        step2: false,
    });
}

/// The document's state vector lowered to where `update` starts, so that a diff from it
/// includes `update` itself.
fn state_vector_before(doc: &Doc, update: Option<&Bytes>) -> StateVector {
    let mut sv = doc.transact().state_vector();
    if let Some(update) = update.and_then(|u| with_stack(|| Update::decode_v1(u).ok())) {
        // Lower each client the update touches to where the update starts. A client the
        // document has never seen is absent from `sv`, which already means "send all of it".
        for (client, clock) in update.state_vector_lower().iter() {
            if sv.get(client) > 0 {
                sv.set_min(*client, *clock);
            }
        }
    }
    sv
}
