//! What the client knows of each document's sync, shared by the bridges and written to
//! `status.json` (what `dure-desktop status` reads, whether `run` is running or not).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use crate::files;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct DocState {
    pub title: String,
    /// The server knows this document (false: created here, not yet on the server).
    #[serde(default)]
    pub on_server: bool,
    /// Local edits not yet acknowledged as stored by the server.
    #[serde(default)]
    pub waiting: u64,
    /// Unix ms of the last time everything was in sync with the server.
    #[serde(default)]
    pub last_sync_ms: Option<u64>,
    #[serde(default)]
    pub access_lost: bool,
    /// Where local edits of a document we lost are kept.
    #[serde(default)]
    pub kept_in: Option<String>,
    /// Server `updated_at` last seen (RFC 3339), to tell when to look again.
    #[serde(default)]
    pub server_updated: Option<String>,
    /// Connected to the server right now.
    #[serde(skip)]
    pub live: bool,
    /// Changed since last exported.
    #[serde(skip)]
    pub export_dirty: bool,
    /// Counted in this run's first-sync total (a document made here or shared later is not).
    #[serde(skip)]
    pub in_first_sync: bool,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Board {
    pub server: Option<String>,
    pub account: String,
    pub local_url: Option<String>,
    pub pid: u32,
    /// Unix ms; `status` calls `run` running while this is fresh.
    pub heartbeat_ms: u64,
    pub server_reachable: bool,
    pub docs: BTreeMap<String, DocState>,
    pub first_sync_total: u64,
    pub first_sync_done: u64,
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join("status.json")
}

pub fn read(data_dir: &Path) -> Option<Board> {
    let bytes = std::fs::read(path(data_dir)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[derive(Clone, Debug)]
pub struct Shared {
    inner: Arc<Mutex<Board>>,
    file: PathBuf,
}

impl Shared {
    pub fn open(data_dir: &Path) -> Shared {
        let mut board = read(data_dir).unwrap_or_default();
        for d in board.docs.values_mut() {
            d.export_dirty = true;
        }
        Shared {
            inner: Arc::new(Mutex::new(board)),
            file: path(data_dir),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, Board> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn with_doc<R>(&self, id: &str, f: impl FnOnce(&mut DocState) -> R) -> R {
        let mut b = self.lock();
        f(b.docs.entry(id.to_owned()).or_default())
    }

    /// Writes the board (called about once a second by `run`).
    pub fn save(&self) -> std::io::Result<()> {
        let bytes = {
            let mut b = self.lock();
            b.heartbeat_ms = now_ms();
            serde_json::to_vec_pretty(&*b).map_err(std::io::Error::other)?
        };
        files::write_private(&self.file, &bytes)
    }
}

/// The one word `status` shows for a document.
pub fn state_word(d: &DocState, server_reachable: bool, running: bool) -> &'static str {
    if d.access_lost {
        "access_lost"
    } else if d.waiting > 0 || !d.on_server {
        "waiting"
    } else if !running || !server_reachable || d.last_sync_ms.is_none() {
        if d.last_sync_ms.is_none() && running && server_reachable {
            "syncing"
        } else {
            "offline"
        }
    } else {
        "synced"
    }
}
