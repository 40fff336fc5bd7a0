//! Document layout in the store.
//!
//! ```text
//! docs/{id}/log/{seq:016x}                       one group commit: a batch's updates
//! docs/{id}/snapshot-{gen:016x}-{log_from:016x}  merged state of the log below `log_from`
//! ```
//! Log entries are written if-absent, so two writers of one document can never overwrite each
//! other: the loser learns it and catches up. Compaction writes a new snapshot (if-absent,
//! next generation) and only then deletes what it merged; a crash between the two leaves
//! entries below the snapshot's `log_from`, which loading skips. Keys are zero-padded hex so
//! listing order is numeric order.
//!
//! **The fence.** Deleting merged entries frees their keys, and a writer that fell behind
//! (another process compacted meanwhile) would create them again if-absent, successfully, and
//! load would skip them: an acknowledged edit lost. So [`DocStore::append`] only reports an
//! entry stored once a listing of the snapshots, made after the write, shows no snapshot whose
//! `log_from` is above it (the snapshot key carries `log_from`, so one LIST suffices). If one
//! shows up, the entry is [`Appended::Fenced`] and the writer writes its batch again above
//! the fence. This is enough because sequence numbers are dense (each writer writes at one
//! past the highest it has seen), the newest snapshot is the one with the highest `log_from`
//! and is never deleted, and entries are only deleted once a snapshot covering them is
//! stored: a snapshot stored after that listing with `log_from` above the entry was built
//! from a load that already saw the entry.
//! Snapshots written by older versions (`snapshot-{gen:016x}`) are still read; their
//! `log_from` comes from the object itself.

use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use tokio::task::JoinSet;

use crate::format::{self, Kind};
use crate::{Key, PutCondition, Store, StoreError};

/// v1: count, updates. v2: the writer id first (to recognise one's own entry after a
/// timed-out write landed anyway).
const LOG_VERSION: u8 = 2;
const LOG_VERSION_NO_WRITER: u8 = 1;
const SNAPSHOT_VERSION: u8 = 1;
/// Snapshot body encoding tags.
const STATE_YRS_V1: u64 = 1;
const STATE_YRS_V2: u64 = 2;
/// Log entries read at once when loading a document (one GET each).
pub const LOAD_CONCURRENCY: usize = 16;
/// Loads started over because a concurrent compaction deleted an entry after the listing.
const LOAD_ATTEMPTS: usize = 8;

/// A document id: 1-128 characters of `A-Za-z0-9_-`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DocId(String);

/// Why a string is not a document id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocIdError {
    #[error("document id is empty")]
    Empty,
    #[error("document id is longer than 128 characters")]
    TooLong,
    #[error("document id may only contain A-Z, a-z, 0-9, '_' and '-'")]
    BadChar,
}

impl DocId {
    pub const MAX_LEN: usize = 128;

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for DocId {
    type Err = DocIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(DocIdError::Empty);
        }
        if s.len() > Self::MAX_LEN {
            return Err(DocIdError::TooLong);
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(DocIdError::BadChar);
        }
        Ok(DocId(s.to_owned()))
    }
}

impl fmt::Display for DocId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for DocId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DocId({})", self.0)
    }
}

/// Who wrote a log entry: random per persistence worker, so that a writer recognises its own
/// entry when a write that timed out reached the store after all.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct WriterId(pub [u8; 16]);

impl WriterId {
    /// A fresh id. Hashing with std's randomly keyed hasher (seeded from the OS once per
    /// process) over a counter, the time and the pid is unique enough for telling writers of
    /// one document apart, and needs no extra dependency.
    pub fn random() -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let mut out = [0u8; 16];
        for (i, half) in out.chunks_mut(8).enumerate() {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(n);
            h.write_u128(now);
            h.write_u32(std::process::id());
            h.write_usize(i);
            half.copy_from_slice(&h.finish().to_le_bytes());
        }
        WriterId(out)
    }
}

impl fmt::Debug for WriterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WriterId(")?;
        for b in &self.0[..4] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "…)")
    }
}

/// One stored group commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntry {
    pub seq: u64,
    /// Who wrote it (None for entries written before writer ids existed).
    pub writer: Option<WriterId>,
    /// yrs v1 updates, in the order they were applied.
    pub updates: Vec<Bytes>,
}

/// How a snapshot's state is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateEncoding {
    /// A yrs v1 update: what Dure writes. Its layout lets every declared count be checked
    /// against the bytes present before yrs decodes it (v2's run-length columns do not).
    YrsV1,
    /// A yrs v2 update: what earlier versions wrote; still read.
    YrsV2,
}

/// A document's merged state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub generation: u64,
    /// The first log sequence number *not* merged into this snapshot.
    pub log_from: u64,
    pub encoding: StateEncoding,
    /// The whole state as one update.
    pub state: Bytes,
}

/// What loading a document found.
#[derive(Clone, Debug, Default)]
pub struct LoadedLog {
    pub snapshot: Option<Snapshot>,
    /// The key the snapshot was read from (for error messages).
    pub snapshot_key: Option<String>,
    /// Log entries at or above the snapshot's `log_from`, in order.
    pub entries: Vec<LogEntry>,
    /// The sequence number the next append must use.
    pub next_seq: u64,
    /// Total bytes of the objects read.
    pub bytes: u64,
    /// Number of objects the document has in the store (for compaction decisions).
    pub objects: usize,
}

impl LoadedLog {
    /// Whether the store holds nothing for this document.
    pub fn is_empty(&self) -> bool {
        self.snapshot.is_none() && self.entries.is_empty()
    }
}

/// How an append ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Appended {
    /// Stored at the sequence number, and no snapshot fences it: every later load sees it.
    /// `own_earlier` is true when an earlier attempt of this very write (one that timed out)
    /// had landed and this one found it there.
    Stored { bytes: u64, own_earlier: bool },
    /// Another writer's entry holds the sequence number: read it and write after it.
    Taken,
    /// The entry is stored but a snapshot with this `log_from` above it exists, so loads
    /// skip it (a compaction by another process freed the key). Reload from the snapshot and
    /// write the batch again at or above `log_from`.
    Fenced { log_from: u64 },
}

/// Document persistence on top of a [`Store`].
#[derive(Clone, Debug)]
pub struct DocStore {
    store: Store,
}

/// Ordered by `log_from`, then generation: the newest snapshot is the one that covers the
/// most of the log. (Two compactions of one generation by two processes can both store theirs
/// under different `log_from`s; each holds every entry below its own `log_from`, so the higher
/// one is the better, whatever generation a later compaction gave its own.) Keys written
/// before `log_from` was in the key (None) sort first: every later snapshot starts above them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct SnapshotName {
    /// In the key since the fence; None for keys written before it.
    log_from: Option<u64>,
    generation: u64,
}

enum Item {
    Log(u64),
    Snapshot(SnapshotName),
}

fn parse_hex(s: &str) -> Option<u64> {
    if s.len() != 16 {
        return None;
    }
    u64::from_str_radix(s, 16).ok()
}

fn parse_item(doc: &DocId, key: &str) -> Option<Item> {
    let rest = key.strip_prefix("docs/")?.strip_prefix(doc.as_str())?;
    if let Some(seq) = rest.strip_prefix("/log/") {
        return parse_hex(seq).map(Item::Log);
    }
    let name = rest.strip_prefix("/snapshot-")?;
    let (generation, log_from) = match name.split_once('-') {
        Some((g, l)) => (parse_hex(g)?, Some(parse_hex(l)?)),
        None => (parse_hex(name)?, None),
    };
    Some(Item::Snapshot(SnapshotName {
        generation,
        log_from,
    }))
}

/// The key of a log entry (also for error messages of the layers above).
pub fn log_key(doc: &DocId, seq: u64) -> String {
    format!("docs/{doc}/log/{seq:016x}")
}

fn snapshot_key_of(doc: &DocId, name: SnapshotName) -> String {
    match name.log_from {
        Some(l) => format!("docs/{doc}/snapshot-{:016x}-{l:016x}", name.generation),
        None => format!("docs/{doc}/snapshot-{:016x}", name.generation),
    }
}

/// What the store holds for one document.
struct Inventory {
    /// Ascending by (log_from, generation): the last is the newest.
    snapshots: Vec<SnapshotName>,
    /// Ascending.
    logs: Vec<u64>,
    bytes: u64,
}

impl DocStore {
    pub fn new(store: Store) -> Self {
        DocStore { store }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    fn key(name: String) -> Result<Key, StoreError> {
        Key::new(name)
    }

    async fn inventory(&self, doc: &DocId, prefix: &str) -> Result<Inventory, StoreError> {
        let listing = self.store.list(prefix).await?;
        let mut inv = Inventory {
            snapshots: Vec::new(),
            logs: Vec::new(),
            bytes: 0,
        };
        for entry in listing {
            inv.bytes += entry.size;
            match parse_item(doc, entry.key.as_str()) {
                Some(Item::Log(seq)) => inv.logs.push(seq),
                Some(Item::Snapshot(name)) => inv.snapshots.push(name),
                None => {}
            }
        }
        inv.snapshots.sort_unstable();
        inv.logs.sort_unstable();
        Ok(inv)
    }

    /// Loads the newest snapshot and every log entry not merged into it. Entries are read
    /// with up to [`LOAD_CONCURRENCY`] GETs at once.
    pub async fn load(&self, doc: &DocId) -> Result<LoadedLog, StoreError> {
        for _ in 0..LOAD_ATTEMPTS {
            if let Some(loaded) = self.try_load(doc).await? {
                return Ok(loaded);
            }
        }
        Err(StoreError::Unavailable(format!(
            "document {doc} kept changing while it was loaded ({LOAD_ATTEMPTS} attempts)"
        )))
    }

    /// None when a listed object vanished (a concurrent compaction): start over rather than
    /// load a state with a hole.
    async fn try_load(&self, doc: &DocId) -> Result<Option<LoadedLog>, StoreError> {
        let inv = self.inventory(doc, &format!("docs/{doc}/")).await?;
        let (snapshot, snapshot_key) = match inv.snapshots.last() {
            Some(&name) => match self.read_snapshot(doc, name).await? {
                Some(s) => (Some(s), Some(snapshot_key_of(doc, name))),
                None => return Ok(None),
            },
            None => (None, None),
        };
        let log_from = snapshot.as_ref().map_or(0, |s| s.log_from);
        let wanted: Vec<u64> = inv
            .logs
            .iter()
            .copied()
            .filter(|&s| s >= log_from)
            .collect();
        let Some(entries) = self.read_entries(doc, &wanted).await? else {
            return Ok(None);
        };
        let next_seq = inv
            .logs
            .last()
            .map_or(log_from, |&s| s.saturating_add(1).max(log_from));
        Ok(Some(LoadedLog {
            snapshot,
            snapshot_key,
            entries,
            next_seq,
            bytes: inv.bytes,
            objects: inv.snapshots.len() + inv.logs.len(),
        }))
    }

    /// Reads the given entries concurrently, in order. None if one of them is gone.
    async fn read_entries(
        &self,
        doc: &DocId,
        seqs: &[u64],
    ) -> Result<Option<Vec<LogEntry>>, StoreError> {
        let mut slots: Vec<Option<LogEntry>> = vec![None; seqs.len()];
        let mut tasks = JoinSet::new();
        let mut next = 0;
        let mut missing = false;
        loop {
            while next < seqs.len() && tasks.len() < LOAD_CONCURRENCY && !missing {
                let (this, doc, seq, i) = (self.clone(), doc.clone(), seqs[next], next);
                tasks.spawn(async move { (i, this.read_entry(&doc, seq).await) });
                next += 1;
            }
            let Some(joined) = tasks.join_next().await else {
                break;
            };
            let (i, result) = joined
                .map_err(|e| StoreError::Unavailable(format!("log read task failed: {e}")))?;
            match result? {
                Some(entry) => slots[i] = Some(entry),
                None => missing = true,
            }
        }
        if missing {
            return Ok(None);
        }
        Ok(Some(slots.into_iter().flatten().collect()))
    }

    /// Reads log entries with `seq >= from` (catching up after losing an if-absent race).
    pub async fn read_from(&self, doc: &DocId, from: u64) -> Result<Vec<LogEntry>, StoreError> {
        let inv = self.inventory(doc, &format!("docs/{doc}/log/")).await?;
        let wanted: Vec<u64> = inv.logs.into_iter().filter(|&s| s >= from).collect();
        let mut out = Vec::new();
        for seq in wanted {
            if let Some(entry) = self.read_entry(doc, seq).await? {
                out.push(entry);
            }
        }
        Ok(out)
    }

    async fn read_entry(&self, doc: &DocId, seq: u64) -> Result<Option<LogEntry>, StoreError> {
        let key = Self::key(log_key(doc, seq))?;
        let Some(object) = self.store.get(&key).await? else {
            return Ok(None);
        };
        decode_log_entry(key.as_str(), seq, &object.data).map(Some)
    }

    async fn read_snapshot(
        &self,
        doc: &DocId,
        name: SnapshotName,
    ) -> Result<Option<Snapshot>, StoreError> {
        let key = Self::key(snapshot_key_of(doc, name))?;
        let Some(object) = self.store.get(&key).await? else {
            return Ok(None);
        };
        let snapshot = decode_snapshot(key.as_str(), name.generation, &object.data)?;
        if name.log_from.is_some_and(|l| l != snapshot.log_from) {
            return Err(StoreError::Corrupt {
                key: key.to_string(),
                reason: format!(
                    "holds log_from {} but its key says otherwise",
                    snapshot.log_from
                ),
            });
        }
        Ok(Some(snapshot))
    }

    /// The highest `log_from` of the document's snapshots (0 without one): sequence numbers
    /// below it are fenced off. One LIST of the snapshot keys (plus a GET for a snapshot
    /// written before `log_from` was part of its key).
    pub async fn fence(&self, doc: &DocId) -> Result<u64, StoreError> {
        for _ in 0..LOAD_ATTEMPTS {
            let inv = self
                .inventory(doc, &format!("docs/{doc}/snapshot-"))
                .await?;
            let named = inv.snapshots.iter().filter_map(|s| s.log_from).max();
            let legacy = inv.snapshots.iter().rev().find(|s| s.log_from.is_none());
            let Some(&legacy) = legacy else {
                return Ok(named.unwrap_or(0));
            };
            match self.read_snapshot(doc, legacy).await? {
                Some(s) => return Ok(named.unwrap_or(0).max(s.log_from)),
                None => continue, // replaced meanwhile: list again
            }
        }
        Err(StoreError::Unavailable(format!(
            "the snapshots of {doc} kept changing while their fence was read"
        )))
    }

    /// Appends a log entry at `seq`, if-absent, and reports it stored only once no snapshot
    /// fences it (see the module docs).
    pub async fn append(
        &self,
        doc: &DocId,
        seq: u64,
        writer: &WriterId,
        updates: &[Bytes],
    ) -> Result<Appended, StoreError> {
        let key = Self::key(log_key(doc, seq))?;
        let data = Bytes::from(encode_log_entry(writer, updates));
        let bytes = data.len() as u64;
        let own_earlier = match self
            .store
            .put(&key, data.clone(), PutCondition::IfAbsent)
            .await
        {
            Ok(_) => false,
            Err(StoreError::ConditionFailed { .. }) => match self.store.get(&key).await? {
                // Byte for byte what we write, writer id included: an earlier attempt of
                // this write that the store applied although we saw it fail.
                Some(object) if object.data == data => true,
                Some(_) => return Ok(Appended::Taken),
                // Deleted since: a compaction merged it, hence a fence above it.
                None => {
                    let log_from = self.fence(doc).await?;
                    return Ok(if log_from > seq {
                        Appended::Fenced { log_from }
                    } else {
                        Appended::Taken
                    });
                }
            },
            Err(e) => return Err(e),
        };
        let log_from = self.fence(doc).await?;
        if log_from > seq {
            return Ok(Appended::Fenced { log_from });
        }
        Ok(Appended::Stored { bytes, own_earlier })
    }

    /// Writes a snapshot, if-absent at its generation and `log_from`. A
    /// [`StoreError::ConditionFailed`] means another compaction stored the same one.
    pub async fn write_snapshot(
        &self,
        doc: &DocId,
        snapshot: &Snapshot,
    ) -> Result<u64, StoreError> {
        let key = Self::key(snapshot_key_of(
            doc,
            SnapshotName {
                generation: snapshot.generation,
                log_from: Some(snapshot.log_from),
            },
        ))?;
        let data = encode_snapshot(snapshot);
        let len = data.len() as u64;
        self.store
            .put(&key, Bytes::from(data), PutCondition::IfAbsent)
            .await?;
        Ok(len)
    }

    /// Deletes what a snapshot made redundant: log entries below its `log_from` and older
    /// snapshots, in batches ([`Store::delete_many`]). Only call after the snapshot is stored.
    pub async fn delete_merged(&self, doc: &DocId, snapshot: &Snapshot) -> Result<(), StoreError> {
        let inv = self.inventory(doc, &format!("docs/{doc}/")).await?;
        let this = SnapshotName {
            generation: snapshot.generation,
            log_from: Some(snapshot.log_from),
        };
        let mut keys = Vec::new();
        for seq in inv.logs.into_iter().filter(|&s| s < snapshot.log_from) {
            keys.push(Self::key(log_key(doc, seq))?);
        }
        for name in inv.snapshots.into_iter().filter(|&n| n < this) {
            keys.push(Self::key(snapshot_key_of(doc, name))?);
        }
        self.store.delete_many(&keys).await
    }

    /// Removes every object of a document.
    pub async fn purge(&self, doc: &DocId) -> Result<(), StoreError> {
        let keys: Vec<Key> = self
            .store
            .list(&format!("docs/{doc}/"))
            .await?
            .into_iter()
            .map(|e| e.key)
            .collect();
        self.store.delete_many(&keys).await
    }
}

fn encode_log_entry(writer: &WriterId, updates: &[Bytes]) -> Vec<u8> {
    let mut body = Vec::with_capacity(updates.iter().map(|u| u.len() + 4).sum::<usize>() + 24);
    body.extend_from_slice(&writer.0);
    format::write_var(&mut body, updates.len() as u64);
    for update in updates {
        format::write_var(&mut body, update.len() as u64);
        body.extend_from_slice(update);
    }
    format::frame(Kind::LogEntry, LOG_VERSION, &body)
}

fn encode_snapshot(snapshot: &Snapshot) -> Vec<u8> {
    let mut body = Vec::with_capacity(snapshot.state.len() + 16);
    format::write_var(&mut body, snapshot.log_from);
    let tag = match snapshot.encoding {
        StateEncoding::YrsV1 => STATE_YRS_V1,
        StateEncoding::YrsV2 => STATE_YRS_V2,
    };
    format::write_var(&mut body, tag);
    body.extend_from_slice(&snapshot.state);
    format::frame(Kind::Snapshot, SNAPSHOT_VERSION, &body)
}

/// Decodes a stored log entry. Every declared count and length is checked against the bytes
/// that are there before anything is reserved; any fault is [`StoreError::Corrupt`] naming
/// `key`.
pub fn decode_log_entry(key: &str, seq: u64, data: &Bytes) -> Result<LogEntry, StoreError> {
    let corrupt = |reason: &str| StoreError::Corrupt {
        key: key.to_owned(),
        reason: reason.to_owned(),
    };
    let (version, mut body) = format::unframe(key, data, Kind::LogEntry)?;
    let writer = match version {
        LOG_VERSION => {
            let (id, rest) = body
                .split_first_chunk::<16>()
                .ok_or_else(|| corrupt("truncated writer id"))?;
            body = rest;
            Some(WriterId(*id))
        }
        LOG_VERSION_NO_WRITER => None,
        _ => {
            return Err(corrupt(&format!(
                "log format version {version} is not supported by this dure"
            )));
        }
    };
    let count = format::read_var(&mut body).ok_or_else(|| corrupt("truncated header"))?;
    // Each update takes at least its one-byte length: a count beyond the bytes left is a lie.
    if count > body.len() as u64 {
        return Err(corrupt("declares more updates than it has bytes"));
    }
    let mut updates = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    let base = data.len() - body.len();
    let mut offset = base;
    for _ in 0..count {
        let before = body.len();
        let update = format::read_bytes(&mut body).ok_or_else(|| corrupt("truncated update"))?;
        let header = before - body.len() - update.len();
        let start = offset + header;
        updates.push(data.slice(start..start + update.len()));
        offset = start + update.len();
    }
    if !body.is_empty() {
        return Err(corrupt("trailing bytes"));
    }
    Ok(LogEntry {
        seq,
        writer,
        updates,
    })
}

/// Decodes a stored snapshot's header; the state itself is yrs's to decode.
pub fn decode_snapshot(key: &str, generation: u64, data: &Bytes) -> Result<Snapshot, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        key: key.to_owned(),
        reason,
    };
    let (version, mut body) = format::unframe(key, data, Kind::Snapshot)?;
    if version != SNAPSHOT_VERSION {
        return Err(corrupt(format!(
            "snapshot format version {version} is not supported by this dure"
        )));
    }
    let log_from = format::read_var(&mut body).ok_or_else(|| corrupt("truncated header".into()))?;
    let encoding = format::read_var(&mut body).ok_or_else(|| corrupt("truncated header".into()))?;
    let encoding = match encoding {
        STATE_YRS_V1 => StateEncoding::YrsV1,
        STATE_YRS_V2 => StateEncoding::YrsV2,
        other => return Err(corrupt(format!("unknown state encoding {other}"))),
    };
    let start = data.len() - body.len();
    Ok(Snapshot {
        generation,
        log_from,
        encoding,
        state: data.slice(start..),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doc_ids() {
        assert!("a".parse::<DocId>().is_ok());
        assert!("Team_notes-2026".parse::<DocId>().is_ok());
        assert_eq!("".parse::<DocId>(), Err(DocIdError::Empty));
        assert_eq!("a/b".parse::<DocId>(), Err(DocIdError::BadChar));
        assert_eq!("a.b".parse::<DocId>(), Err(DocIdError::BadChar));
        assert_eq!("x".repeat(129).parse::<DocId>(), Err(DocIdError::TooLong));
        assert!("x".repeat(128).parse::<DocId>().is_ok());
    }

    #[test]
    fn log_entry_round_trip_and_corruption() {
        let updates = vec![
            Bytes::from_static(b"one"),
            Bytes::new(),
            Bytes::from_static(b"three"),
        ];
        let writer = WriterId::random();
        let data = Bytes::from(encode_log_entry(&writer, &updates));
        let entry = decode_log_entry("k", 7, &data).expect("decodes");
        assert_eq!(
            entry,
            LogEntry {
                seq: 7,
                writer: Some(writer),
                updates
            }
        );
        let truncated = data.slice(..data.len() - 1);
        assert!(decode_log_entry("k", 7, &truncated).is_err());
        let mut newer = data.to_vec();
        newer[5] = 99;
        let err = decode_log_entry("k", 7, &Bytes::from(newer)).expect_err("newer version");
        assert!(err.to_string().contains("version 99"));
    }

    #[test]
    fn version_1_entries_without_writer_still_load() {
        let mut body = vec![1u8, 2];
        body.extend_from_slice(b"hi");
        let data = Bytes::from(format::frame(Kind::LogEntry, 1, &body));
        let entry = decode_log_entry("k", 3, &data).expect("v1 decodes");
        assert_eq!(entry.writer, None);
        assert_eq!(entry.updates, vec![Bytes::from_static(b"hi")]);
    }

    /// Counts GETs in flight, each held for a moment, to see how many a load runs at once.
    struct SlowGets {
        inner: crate::memory::MemoryBackend,
        in_flight: std::sync::atomic::AtomicUsize,
        most: std::sync::atomic::AtomicUsize,
    }

    #[async_trait::async_trait]
    impl crate::Backend for SlowGets {
        async fn get(&self, key: &Key) -> Result<Option<crate::Object>, StoreError> {
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.most.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            self.inner.get(key).await
        }
        async fn put(
            &self,
            key: &Key,
            data: Bytes,
            cond: PutCondition,
        ) -> Result<crate::Version, StoreError> {
            self.inner.put(key, data, cond).await
        }
        async fn list(&self, prefix: &str) -> Result<Vec<crate::ListEntry>, StoreError> {
            self.inner.list(prefix).await
        }
        async fn delete(&self, key: &Key) -> Result<(), StoreError> {
            self.inner.delete(key).await
        }
        async fn ping(&self) -> Result<(), StoreError> {
            Ok(())
        }
        fn describe(&self) -> String {
            "slow gets".into()
        }
    }

    /// Issue 10 item 13: a log tail is read with concurrent GETs, not one at a time (534
    /// entries at 20 ms each took 12 s), and still comes back whole and in order.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn load_reads_log_entries_concurrently_and_in_order() {
        let backend = std::sync::Arc::new(SlowGets {
            inner: crate::memory::MemoryBackend::default(),
            in_flight: Default::default(),
            most: Default::default(),
        });
        let docs = DocStore::new(Store::from_arc(backend.clone()));
        let doc: DocId = "tail".parse().expect("id");
        let me = WriterId::random();
        for seq in 0..100u64 {
            let update = Bytes::from(seq.to_le_bytes().to_vec());
            docs.append(&doc, seq, &me, &[update])
                .await
                .expect("append");
        }
        backend.most.store(0, Ordering::SeqCst);
        let loaded = docs.load(&doc).await.expect("load");
        let seqs: Vec<u64> = loaded.entries.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, (0..100).collect::<Vec<_>>());
        for e in &loaded.entries {
            assert_eq!(e.updates, vec![Bytes::from(e.seq.to_le_bytes().to_vec())]);
        }
        let most = backend.most.load(Ordering::SeqCst);
        assert!(
            most > 1 && most <= LOAD_CONCURRENCY,
            "{most} GETs at once (want 2..={LOAD_CONCURRENCY})"
        );
    }

    #[test]
    fn writer_ids_differ() {
        assert_ne!(WriterId::random(), WriterId::random());
    }

    #[test]
    fn snapshot_keys_parse_old_and_new() {
        let doc: DocId = "d".parse().expect("id");
        let new = snapshot_key_of(
            &doc,
            SnapshotName {
                generation: 3,
                log_from: Some(40),
            },
        );
        assert!(matches!(
            parse_item(&doc, &new),
            Some(Item::Snapshot(SnapshotName {
                generation: 3,
                log_from: Some(40)
            }))
        ));
        assert!(matches!(
            parse_item(&doc, "docs/d/snapshot-0000000000000002"),
            Some(Item::Snapshot(SnapshotName {
                generation: 2,
                log_from: None
            }))
        ));
        assert!(parse_item(&doc, "docs/d/snapshot-2").is_none());
        assert!(parse_item(&doc, "docs/d/log/zz").is_none());
    }
}
