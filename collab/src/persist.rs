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
use dure_storage::{
    Appended, DocId, DocStore, LoadedLog, Snapshot, StateEncoding, StoreError, WriterId,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

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
    /// What other writers stored that this room has not seen: their entries (found after
    /// losing an if-absent race), or after a fence the newest snapshot and the log
    /// above it. Applying is idempotent, so passing more than is new is harmless.
    Foreign {
        snapshot: Option<Snapshot>,
        updates: Vec<Bytes>,
    },
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

/// A background compaction.
type Compaction = JoinHandle<Result<Compacted, StoreError>>;

const BACKOFF_START: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

pub(crate) struct Worker {
    doc: DocId,
    shared: Arc<Shared>,
    /// Written into each log entry: recognises our own write when a retry finds it stored.
    writer: WriterId,
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
            writer: WriterId::random(),
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
        loop {
            // Wake when a compaction finishes, not only on the next write: one that lost a
            // race to another process's snapshot is retried at once, so a document that
            // went quiet still ends up compacted.
            let next = match &mut self.compaction {
                Some((_, task)) => tokio::select! {
                    job = jobs.recv() => Woke::Job(job),
                    done = task => Woke::Compacted(done),
                },
                None => Woke::Job(jobs.recv().await),
            };
            match next {
                Woke::Job(Some(job)) => self.write(*job).await,
                Woke::Job(None) => break,
                Woke::Compacted(done) => {
                    if let Some((upto, _)) = self.compaction.take() {
                        self.compaction_done(upto, done);
                    }
                }
            }
            self.maybe_compact().await;
        }
        // Let a running compaction finish, then merge the tail too, so the next load (after
        // a restart, or when the document is opened again) reads one snapshot instead of
        // replaying the log. Bounded: a store that stopped answering must not hold up the
        // unload or the shutdown, and a compaction cut short is harmless (it deletes nothing
        // before its snapshot is stored).
        let limit = self.shared.cfg.unload_compaction_timeout;
        let finish = async {
            if let Some((_, task)) = self.compaction.take() {
                let _ = task.await;
            }
            if !self.unmerged.is_empty() {
                let (docs, doc) = (self.shared.docs.clone(), self.doc.clone());
                match compact(docs, doc, self.next_seq).await {
                    Ok(Compacted::Merged(removed)) => self.shared.observer.compacted(removed),
                    Ok(_) => {}
                    Err(e) => {
                        warn!(doc = %self.doc, error = %e, "compaction at unload failed; the log stays as it is")
                    }
                }
            }
        };
        if !limit.is_zero() && tokio::time::timeout(limit, finish).await.is_err() {
            warn!(doc = %self.doc, ?limit, "compaction at unload cut short by unload_compaction_timeout");
        }
        if self.failing {
            self.shared.observer.store_writer_state(false);
        }
    }

    async fn write(&mut self, job: PersistJob) {
        let mut backoff = BACKOFF_START;
        loop {
            let started = Instant::now();
            let appended = self
                .shared
                .docs
                .append(&self.doc, self.next_seq, &self.writer, &job.updates)
                .await;
            match appended {
                Ok(Appended::Stored { bytes, own_earlier }) => {
                    if own_earlier {
                        info!(doc = %self.doc, seq = self.next_seq, "an earlier attempt of this write had reached the store; not writing it twice");
                    }
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
                    self.next_seq = self.next_seq.saturating_add(1);
                    let _ = self.events.send(PersistEvent::Done { acks: job.acks });
                    return;
                }
                Ok(Appended::Taken) => {
                    // Someone else wrote this sequence number: take their entries, then write
                    // ours after them.
                    match self.shared.docs.read_from(&self.doc, self.next_seq).await {
                        Ok(entries) if !entries.is_empty() => {
                            crate::warn_limited!(doc = %self.doc, seq = self.next_seq, found = entries.len(), "another writer appended to this document; catching up");
                            let mut updates = Vec::new();
                            for e in entries {
                                self.next_seq = self.next_seq.max(e.seq.saturating_add(1));
                                self.unmerged.push_back(Unmerged::of(&e));
                                if e.writer != Some(self.writer) {
                                    updates.extend(e.updates);
                                }
                            }
                            let _ = self.events.send(PersistEvent::Foreign {
                                snapshot: None,
                                updates,
                            });
                        }
                        // Compacted away meanwhile: what they wrote is in a snapshot now.
                        Ok(_) => {
                            if let Err(e) = self.reload().await {
                                self.failed(&e, &mut backoff).await;
                            }
                        }
                        Err(e) => self.failed(&e, &mut backoff).await,
                    }
                }
                Ok(Appended::Fenced { log_from }) => {
                    // Another process compacted past our sequence number: the entry we just
                    // stored would be skipped by every load. Nothing is acknowledged; take in
                    // the snapshot and write the batch again above it.
                    warn!(doc = %self.doc, seq = self.next_seq, log_from, "another process compacted this document past our next write; reloading and writing again above its snapshot");
                    if let Err(e) = self.reload().await {
                        self.failed(&e, &mut backoff).await;
                    }
                }
                Err(e) => self.failed(&e, &mut backoff).await,
            }
        }
    }

    /// Reads the document as the store has it now, passes it to the room and continues
    /// after its log.
    async fn reload(&mut self) -> Result<(), StoreError> {
        let loaded = self.shared.docs.load(&self.doc).await?;
        self.next_seq = loaded.next_seq;
        self.unmerged = loaded.entries.iter().map(Unmerged::of).collect();
        let updates = loaded
            .entries
            .into_iter()
            .filter(|e| e.writer != Some(self.writer))
            .flat_map(|e| e.updates)
            .collect();
        let _ = self.events.send(PersistEvent::Foreign {
            snapshot: loaded.snapshot,
            updates,
        });
        Ok(())
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
            let done = task.await;
            self.compaction = None;
            self.compaction_done(upto, done);
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

    fn compaction_done(
        &mut self,
        upto: u64,
        done: Result<Result<Compacted, StoreError>, tokio::task::JoinError>,
    ) {
        match done {
            Ok(Ok(Compacted::Merged(removed))) => {
                self.unmerged.retain(|u| u.seq >= upto);
                self.shared.observer.compacted(removed);
            }
            // Everything below `upto` is in a snapshot already (another process merged it).
            Ok(Ok(Compacted::NothingBelow)) => self.unmerged.retain(|u| u.seq >= upto),
            // Another process stored a snapshot of the same generation first; the entries
            // stay counted, so the next round merges them above that snapshot.
            Ok(Ok(Compacted::LostRace)) => {
                debug!(doc = %self.doc, upto, "another process's compaction came first; merging again above it")
            }
            Ok(Err(e)) => {
                warn!(doc = %self.doc, error = %e, "compaction failed; will retry later")
            }
            Err(e) => warn!(doc = %self.doc, error = %e, "compaction task failed"),
        }
    }
}

enum Woke {
    Job(Option<Box<PersistJob>>),
    Compacted(Result<Result<Compacted, StoreError>, tokio::task::JoinError>),
}

/// How a compaction ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Compacted {
    /// A snapshot was stored and this many objects merged into it were deleted.
    Merged(usize),
    /// No log entry below the bound was left to merge.
    NothingBelow,
    /// Another process stored a snapshot of the same generation first.
    LostRace,
}

/// Merges the newest snapshot and the log entries below `upto` into a new snapshot, then
/// deletes what it merged. Reads from the store rather than the room's document, so the
/// room never waits for it and the snapshot is built from exactly what is durable.
pub(crate) async fn compact(
    docs: DocStore,
    doc: DocId,
    upto: u64,
) -> Result<Compacted, StoreError> {
    let mut loaded = docs.load(&doc).await?;
    loaded.entries.retain(|e| e.seq < upto);
    if loaded.entries.is_empty() {
        return Ok(Compacted::NothingBelow);
    }
    let merged = loaded.entries.len() + usize::from(loaded.snapshot.is_some());
    let generation = loaded.snapshot.as_ref().map_or(0, |s| s.generation) + 1;
    let id = doc.clone();
    let state = tokio::task::spawn_blocking(move || crate::room::merged_state(&id, &loaded))
        .await
        .map_err(|e| StoreError::Unavailable(format!("compaction task failed: {e}")))??;
    let snapshot = Snapshot {
        generation,
        log_from: upto,
        encoding: StateEncoding::YrsV1,
        state: Bytes::from(state),
    };
    match docs.write_snapshot(&doc, &snapshot).await {
        Ok(_) => {}
        // Another process stored this very snapshot (same generation and log_from): it
        // deletes what it merged.
        Err(StoreError::ConditionFailed { .. }) => return Ok(Compacted::LostRace),
        Err(e) => return Err(e),
    }
    docs.delete_merged(&doc, &snapshot).await?;
    debug!(%doc, generation, upto, merged, "compacted");
    Ok(Compacted::Merged(merged))
}
