//! All loaded rooms of the process: join (loading on first use), shutdown.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use dure_storage::{DocId, DocStore};
use tokio::sync::{mpsc, oneshot};
use tokio_util::task::TaskTracker;

use crate::room::{self, Channels, Control};
use crate::{ConnId, Connection, Observer, RoomConfig};

/// What a joining connection asks for.
#[derive(Clone, Debug, Default)]
pub struct JoinOptions {
    /// Send "saved" acknowledgements (message type 100).
    pub ack: bool,
}

/// Why a join failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JoinError {
    /// The document could not be loaded from the store; it is not served (never as empty).
    #[error("document unavailable: {0}")]
    Unavailable(String),
    /// The server is shutting down.
    #[error("server shutting down")]
    ShuttingDown,
    /// The room was unloading; internal, retried by [`Rooms::join`].
    #[error("room unloading, retry")]
    Retry,
}

struct Entry {
    control: mpsc::UnboundedSender<Control>,
    generation: u64,
}

pub(crate) struct Shared {
    pub(crate) docs: DocStore,
    pub(crate) cfg: RoomConfig,
    pub(crate) observer: Arc<dyn Observer>,
    rooms: Mutex<HashMap<DocId, Entry>>,
    next_conn: AtomicU64,
    next_generation: AtomicU64,
    closing: AtomicBool,
    tasks: TaskTracker,
}

impl Shared {
    pub(crate) fn next_conn_id(&self) -> ConnId {
        ConnId(self.next_conn.fetch_add(1, Ordering::Relaxed))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<DocId, Entry>> {
        // A panic while holding this lock cannot leave the map inconsistent (single inserts
        // and removes), so a poisoned lock is still usable.
        self.rooms.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Removes a room's entry if it is still the given incarnation.
    pub(crate) fn remove_room(&self, id: &DocId, generation: u64) {
        let mut rooms = self.lock();
        if rooms.get(id).is_some_and(|e| e.generation == generation) {
            rooms.remove(id);
        }
    }
}

/// The room registry. Cheap to clone.
#[derive(Clone)]
pub struct Rooms {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Rooms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Rooms({} loaded)", self.loaded())
    }
}

impl Rooms {
    pub fn new(docs: DocStore, cfg: RoomConfig, observer: Arc<dyn Observer>) -> Self {
        Rooms {
            shared: Arc::new(Shared {
                docs,
                cfg,
                observer,
                rooms: Mutex::new(HashMap::new()),
                next_conn: AtomicU64::new(1),
                next_generation: AtomicU64::new(1),
                closing: AtomicBool::new(false),
                tasks: TaskTracker::new(),
            }),
        }
    }

    /// Joins a document's room, loading it first if needed.
    pub async fn join(&self, doc: &DocId, opts: JoinOptions) -> Result<Connection, JoinError> {
        loop {
            if self.shared.closing.load(Ordering::Acquire) {
                return Err(JoinError::ShuttingDown);
            }
            let (reply_tx, reply_rx) = oneshot::channel();
            let control = self.room_control(doc);
            let join = Control::Join {
                opts: opts.clone(),
                reply: reply_tx,
            };
            if control.send(join).is_err() {
                tokio::task::yield_now().await;
                continue; // the room exited between lookup and send
            }
            match reply_rx.await {
                Ok(Ok(conn)) => return Ok(conn),
                Ok(Err(JoinError::Retry)) | Err(_) => {
                    tokio::task::yield_now().await;
                    continue;
                }
                Ok(Err(e)) => return Err(e),
            }
        }
    }

    fn room_control(&self, doc: &DocId) -> mpsc::UnboundedSender<Control> {
        let mut rooms = self.shared.lock();
        if let Some(entry) = rooms.get(doc)
            && !entry.control.is_closed()
        {
            return entry.control.clone();
        }
        let channels = Channels::new();
        let control = channels.control_tx.clone();
        let generation = self.shared.next_generation.fetch_add(1, Ordering::Relaxed);
        rooms.insert(
            doc.clone(),
            Entry {
                control: control.clone(),
                generation,
            },
        );
        drop(rooms);
        self.shared.tasks.spawn(room::run(
            doc.clone(),
            generation,
            self.shared.clone(),
            channels,
        ));
        control
    }

    /// Number of loaded rooms.
    pub fn loaded(&self) -> usize {
        self.shared.lock().len()
    }

    /// The document as the store holds it (what has been acknowledged as saved), rebuilt off
    /// the async threads. For exports: it does not load a room.
    pub async fn stored_doc(&self, doc: &DocId) -> Result<yrs::Doc, String> {
        let loaded = self
            .docs()
            .load(doc)
            .await
            .map_err(|e| format!("document unavailable: {e}"))?;
        let id = doc.clone();
        tokio::task::spawn_blocking(move || crate::room::build_doc(&id, &loaded))
            .await
            .map_err(|e| format!("document decoding failed: {e}"))?
    }

    /// Whether this document's room is loaded (has connections or is about to unload).
    pub fn is_loaded(&self, doc: &DocId) -> bool {
        self.shared.lock().contains_key(doc)
    }

    /// Flushes every room, closes every connection with "restart", and waits for the room
    /// tasks to end, at most `deadline`. Returns false if the deadline passed first.
    pub async fn shutdown(&self, deadline: Duration) -> bool {
        self.shared.closing.store(true, Ordering::Release);
        for entry in self.shared.lock().values() {
            let _ = entry.control.send(Control::Shutdown);
        }
        self.shared.tasks.close();
        tokio::time::timeout(deadline, self.shared.tasks.wait())
            .await
            .is_ok()
    }

    /// The store under the rooms (for readiness checks).
    pub fn docs(&self) -> &DocStore {
        &self.shared.docs
    }
}
