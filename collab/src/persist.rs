//! A room's persistence worker: writes each batch as one log entry, retries while the store
//! is down, catches up when another writer took a sequence number, and compacts in the
//! background.
//!
//! One write is in flight per room at a time; the room accumulates the next batch meanwhile
//! (group commit), so the number of store requests per document is bounded by the write
//! latency (or `commit_interval`), not by the update rate.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dure_storage::{DocId, DocStore, LoadedLog, Snapshot, StoreError};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};
use yrs::{ReadTxn, StateVector, Transact};

use crate::ConnId;
use crate::registry::Shared;

pub(crate) struct PersistJob {
    pub(crate) updates: Vec<Bytes>,
    pub(crate) arrivals: Vec<Instant>,
    pub(crate) acks: Vec<(ConnId, u64)>,
}

pub(crate) enum PersistEvent {
    /// The job's log entry is durable.
    Done { acks: Vec<(ConnId, u64)> },
    /// Entries another writer stored (found after losing an if-absent race).
    Foreign { updates: Vec<Bytes> },
}

/// A log entry not yet merged into a snapshot.
struct Unmerged {
    seq: u64,
    bytes: u64,
    updates: usize,
}

impl Unmerged {
    fn of(entry: &dure_storage::LogEntry) -> Self {
        Unmerged {
            seq: entry.seq,
            bytes: entry.updates.iter().map(|u| u.len() as u64).sum(),
            updates: entry.updates.len(),
        }
    }
}

/// Loading applies each stored update on its own (about 15 µs each for a fragmented text),
/// so a document whose log holds more updates than this is compacted even if it has few
/// entries: its next load then decodes one snapshot instead.
const COMPACT_AFTER_UPDATES: usize = 20_000;

/// A background compaction: how many objects it merged, if any.
type Compaction = JoinHandle<Result<Option<usize>, StoreError>>;

const BACKOFF_START: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

pub(crate) struct Worker {
    doc: DocId,
    shared: Arc<Shared>,
    next_seq: u64,
    /// The entries above the newest snapshot.
    unmerged: VecDeque<Unmerged>,
    events: mpsc::UnboundedSender<PersistEvent>,
    /// The running compaction and the sequence number it merges below.
    compaction: Option<(u64, Compaction)>,
    failing: bool,
}

impl Worker {
    pub(crate) fn new(
        doc: DocId,
        shared: Arc<Shared>,
        loaded: &LoadedLog,
        events: mpsc::UnboundedSender<PersistEvent>,
    ) -> Self {
        let unmerged = loaded.entries.iter().map(Unmerged::of).collect();
        Worker {
            doc,
            shared,
            next_seq: loaded.next_seq,
            unmerged,
            events,
            compaction: None,
            failing: false,
        }
    }

    pub(crate) async fn run(mut self, mut jobs: mpsc::Receiver<Box<PersistJob>>) {
        // A document loaded from a long log is compacted right away, not after more edits.
        self.maybe_compact().await;
        while let Some(job) = jobs.recv().await {
            self.write(*job).await;
            self.maybe_compact().await;
        }
        // Let a running compaction finish so the next load is fast; the shutdown deadline
        // still bounds it, and one cut short is harmless (it deletes nothing before its
        // snapshot is stored).
        if let Some((_, task)) = self.compaction.take() {
            let _ = task.await;
        }
        if self.failing {
            self.shared.observer.store_writer_state(false);
        }
    }

    async fn write(&mut self, job: PersistJob) {
        let mut backoff = BACKOFF_START;
        loop {
            let started = Instant::now();
            match self
                .shared
                .docs
                .append(&self.doc, self.next_seq, &job.updates)
                .await
            {
                Ok(bytes) => {
                    let observer = &self.shared.observer;
                    observer.persisted(bytes, started.elapsed());
                    let now = Instant::now();
                    for arrival in &job.arrivals {
                        observer.update_durable(now.duration_since(*arrival));
                    }
                    if self.failing {
                        self.failing = false;
                        observer.store_writer_state(false);
                        info!(doc = %self.doc, "store reachable again; pending updates written");
                    }
                    self.unmerged.push_back(Unmerged {
                        seq: self.next_seq,
                        bytes,
                        updates: job.updates.len(),
                    });
                    self.next_seq += 1;
                    let _ = self.events.send(PersistEvent::Done { acks: job.acks });
                    return;
                }
                Err(StoreError::ConditionFailed { .. }) => {
                    // Someone else wrote this sequence number: take their entries, then write
                    // ours after them.
                    match self.shared.docs.read_from(&self.doc, self.next_seq).await {
                        Ok(entries) if !entries.is_empty() => {
                            crate::warn_limited!(doc = %self.doc, seq = self.next_seq, found = entries.len(), "another writer appended to this document; catching up");
                            let mut updates = Vec::new();
                            for e in entries {
                                self.next_seq = self.next_seq.max(e.seq + 1);
                                self.unmerged.push_back(Unmerged::of(&e));
                                updates.extend(e.updates);
                            }
                            let _ = self.events.send(PersistEvent::Foreign { updates });
                            continue;
                        }
                        Ok(_) => {
                            // Compacted away meanwhile: reload the inventory.
                            if let Ok(loaded) = self.shared.docs.load(&self.doc).await {
                                self.next_seq = self.next_seq.max(loaded.next_seq);
                            }
                            continue;
                        }
                        Err(e) => self.failed(&e, &mut backoff).await,
                    }
                }
                Err(e) => self.failed(&e, &mut backoff).await,
            }
        }
    }

    /// Never gives up while holding updates: they are not acknowledged until written.
    async fn failed(&mut self, e: &StoreError, backoff: &mut Duration) {
        self.shared.observer.store_failed(e.is_retryable());
        if !self.failing {
            crate::warn_limited!(doc = %self.doc, error = %e, "store write failed; retrying (edits continue, \"saved\" waits)");
            self.failing = true;
            self.shared.observer.store_writer_state(true);
        } else {
            debug!(doc = %self.doc, error = %e, "store write failed again");
        }
        tokio::time::sleep(*backoff).await;
        *backoff = (*backoff * 2).min(BACKOFF_MAX);
    }

    async fn maybe_compact(&mut self) {
        if let Some((upto, task)) = &mut self.compaction {
            if !task.is_finished() {
                return;
            }
            let upto = *upto;
            match task.await {
                Ok(Ok(Some(removed))) => {
                    self.unmerged.retain(|u| u.seq >= upto);
                    self.shared.observer.compacted(removed);
                }
                Ok(Ok(None)) => {}
                Ok(Err(e)) => {
                    warn!(doc = %self.doc, error = %e, "compaction failed; will retry later")
                }
                Err(e) => warn!(doc = %self.doc, error = %e, "compaction task failed"),
            }
            self.compaction = None;
        }
        let cfg = &self.shared.cfg;
        let bytes: u64 = self.unmerged.iter().map(|u| u.bytes).sum();
        let updates: usize = self.unmerged.iter().map(|u| u.updates).sum();
        if self.unmerged.len() < cfg.compact_after_entries
            && bytes < cfg.compact_after_bytes
            && updates < COMPACT_AFTER_UPDATES
        {
            return;
        }
        let upto = self.next_seq;
        let (docs, doc) = (self.shared.docs.clone(), self.doc.clone());
        self.compaction = Some((upto, tokio::spawn(compact(docs, doc, upto))));
    }
}

/// Merges the newest snapshot and the log entries below `upto` into a new snapshot, then
/// deletes what it merged. Reads from the store rather than the room's document, so the
/// room never waits for it and the snapshot is built from exactly what is durable.
/// Returns how many objects it removed, or None when there was nothing to merge.
pub(crate) async fn compact(
    docs: DocStore,
    doc: DocId,
    upto: u64,
) -> Result<Option<usize>, StoreError> {
    let mut loaded = docs.load(&doc).await?;
    loaded.entries.retain(|e| e.seq < upto);
    if loaded.entries.is_empty() {
        return Ok(None);
    }
    let merged = loaded.entries.len() + usize::from(loaded.snapshot.is_some());
    let generation = loaded.snapshot.as_ref().map_or(0, |s| s.generation) + 1;
    let key = format!("docs/{doc}");
    let state = tokio::task::spawn_blocking(move || {
        let built = crate::room::build_doc(&loaded)
            .map_err(|reason| StoreError::Corrupt { key, reason })?;
        Ok::<_, StoreError>(
            built
                .transact()
                .encode_state_as_update_v2(&StateVector::default()),
        )
    })
    .await
    .map_err(|e| StoreError::Unavailable(format!("compaction task failed: {e}")))??;
    let snapshot = Snapshot {
        generation,
        log_from: upto,
        state_v2: Bytes::from(state),
    };
    docs.write_snapshot(&doc, &snapshot).await?;
    docs.delete_merged(&doc, &snapshot).await?;
    debug!(%doc, generation, upto, merged, "compacted");
    Ok(Some(merged))
}
