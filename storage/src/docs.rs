//! Document layout in the store.
//!
//! ```text
//! docs/{id}/log/{seq:016x}          one group commit: the update frames of a batch
//! docs/{id}/snapshot-{gen:016x}     merged state of every log entry below `log_from`
//! ```
//! Log entries are written if-absent, so two writers of one document can never overwrite each
//! other: the loser learns it and catches up. Compaction writes a new snapshot (if-absent,
//! next generation) and only then deletes what it merged; a crash between the two leaves
//! entries below the snapshot's `log_from`, which loading skips. Keys are zero-padded hex so
//! listing order is numeric order.

use std::fmt;
use std::str::FromStr;

use bytes::Bytes;

use crate::format::{self, Kind};
use crate::{Key, PutCondition, Store, StoreError};

const LOG_VERSION: u8 = 1;
const SNAPSHOT_VERSION: u8 = 1;
/// Snapshot body encoding tag: yrs update v2 of the whole state.
const STATE_YRS_V2: u64 = 2;

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

/// One stored group commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntry {
    pub seq: u64,
    /// yrs v1 updates, in the order they were applied.
    pub updates: Vec<Bytes>,
}

/// A document's merged state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub generation: u64,
    /// The first log sequence number *not* merged into this snapshot.
    pub log_from: u64,
    /// yrs update v2 encoding of the whole state.
    pub state_v2: Bytes,
}

/// What loading a document found.
#[derive(Clone, Debug, Default)]
pub struct LoadedLog {
    pub snapshot: Option<Snapshot>,
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

/// Document persistence on top of a [`Store`].
#[derive(Clone, Debug)]
pub struct DocStore {
    store: Store,
}

enum Item {
    Log(u64),
    Snapshot(u64),
}

fn parse_item(doc: &DocId, key: &str) -> Option<Item> {
    let rest = key.strip_prefix("docs/")?.strip_prefix(doc.as_str())?;
    if let Some(seq) = rest.strip_prefix("/log/") {
        return u64::from_str_radix(seq, 16).ok().map(Item::Log);
    }
    if let Some(generation) = rest.strip_prefix("/snapshot-") {
        return u64::from_str_radix(generation, 16).ok().map(Item::Snapshot);
    }
    None
}

impl DocStore {
    pub fn new(store: Store) -> Self {
        DocStore { store }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    fn log_key(doc: &DocId, seq: u64) -> Result<Key, StoreError> {
        Key::new(format!("docs/{doc}/log/{seq:016x}"))
    }

    fn snapshot_key(doc: &DocId, generation: u64) -> Result<Key, StoreError> {
        Key::new(format!("docs/{doc}/snapshot-{generation:016x}"))
    }

    /// Lists what the store holds for a document: snapshot generations and log sequence
    /// numbers, both ascending.
    async fn inventory(&self, doc: &DocId) -> Result<(Vec<u64>, Vec<u64>, u64), StoreError> {
        let listing = self.store.list(&format!("docs/{doc}/")).await?;
        let mut snapshots = Vec::new();
        let mut logs = Vec::new();
        let mut bytes = 0;
        for entry in listing {
            bytes += entry.size;
            match parse_item(doc, entry.key.as_str()) {
                Some(Item::Log(seq)) => logs.push(seq),
                Some(Item::Snapshot(generation)) => snapshots.push(generation),
                None => {}
            }
        }
        snapshots.sort_unstable();
        logs.sort_unstable();
        Ok((snapshots, logs, bytes))
    }

    /// Loads the newest snapshot and every log entry not merged into it.
    pub async fn load(&self, doc: &DocId) -> Result<LoadedLog, StoreError> {
        let (snapshots, logs, bytes) = self.inventory(doc).await?;
        let snapshot = match snapshots.last() {
            Some(&generation) => Some(self.read_snapshot(doc, generation).await?),
            None => None,
        };
        let log_from = snapshot.as_ref().map_or(0, |s| s.log_from);
        let mut entries = Vec::new();
        for &seq in logs.iter().filter(|&&s| s >= log_from) {
            match self.read_entry(doc, seq).await? {
                Some(entry) => entries.push(entry),
                // Deleted by a concurrent compaction after the listing: it is in a newer
                // snapshot, so start over rather than load a state with a hole.
                None => return Box::pin(self.load(doc)).await,
            }
        }
        let next_seq = logs.last().map_or(log_from, |&s| (s + 1).max(log_from));
        Ok(LoadedLog {
            snapshot,
            entries,
            next_seq,
            bytes,
            objects: snapshots.len() + logs.len(),
        })
    }

    /// Reads log entries with `seq >= from` (catching up after losing an if-absent race).
    pub async fn read_from(&self, doc: &DocId, from: u64) -> Result<Vec<LogEntry>, StoreError> {
        let (_, logs, _) = self.inventory(doc).await?;
        let mut out = Vec::new();
        for &seq in logs.iter().filter(|&&s| s >= from) {
            if let Some(entry) = self.read_entry(doc, seq).await? {
                out.push(entry);
            }
        }
        Ok(out)
    }

    async fn read_entry(&self, doc: &DocId, seq: u64) -> Result<Option<LogEntry>, StoreError> {
        let key = Self::log_key(doc, seq)?;
        let Some(object) = self.store.get(&key).await? else {
            return Ok(None);
        };
        decode_log_entry(key.as_str(), seq, &object.data).map(Some)
    }

    async fn read_snapshot(&self, doc: &DocId, generation: u64) -> Result<Snapshot, StoreError> {
        let key = Self::snapshot_key(doc, generation)?;
        let object = self
            .store
            .get(&key)
            .await?
            .ok_or_else(|| StoreError::Corrupt {
                key: key.to_string(),
                reason: "listed snapshot vanished".into(),
            })?;
        decode_snapshot(key.as_str(), generation, &object.data)
    }

    /// Appends a log entry at `seq`, if-absent. Returns the bytes written. A
    /// [`StoreError::ConditionFailed`] means another writer took that sequence number.
    pub async fn append(
        &self,
        doc: &DocId,
        seq: u64,
        updates: &[Bytes],
    ) -> Result<u64, StoreError> {
        let key = Self::log_key(doc, seq)?;
        let data = encode_log_entry(updates);
        let len = data.len() as u64;
        self.store
            .put(&key, Bytes::from(data), PutCondition::IfAbsent)
            .await?;
        Ok(len)
    }

    /// Writes a snapshot, if-absent at its generation.
    pub async fn write_snapshot(
        &self,
        doc: &DocId,
        snapshot: &Snapshot,
    ) -> Result<u64, StoreError> {
        let key = Self::snapshot_key(doc, snapshot.generation)?;
        let mut body = Vec::with_capacity(snapshot.state_v2.len() + 16);
        format::write_var(&mut body, snapshot.log_from);
        format::write_var(&mut body, STATE_YRS_V2);
        body.extend_from_slice(&snapshot.state_v2);
        let data = format::frame(Kind::Snapshot, SNAPSHOT_VERSION, &body);
        let len = data.len() as u64;
        self.store
            .put(&key, Bytes::from(data), PutCondition::IfAbsent)
            .await?;
        Ok(len)
    }

    /// Deletes what a snapshot made redundant: log entries below its `log_from` and older
    /// snapshots. Only call after the snapshot is stored.
    pub async fn delete_merged(&self, doc: &DocId, snapshot: &Snapshot) -> Result<(), StoreError> {
        let (snapshots, logs, _) = self.inventory(doc).await?;
        for seq in logs.into_iter().filter(|&s| s < snapshot.log_from) {
            self.store.delete(&Self::log_key(doc, seq)?).await?;
        }
        for generation in snapshots.into_iter().filter(|&g| g < snapshot.generation) {
            self.store
                .delete(&Self::snapshot_key(doc, generation)?)
                .await?;
        }
        Ok(())
    }

    /// Removes every object of a document.
    pub async fn purge(&self, doc: &DocId) -> Result<(), StoreError> {
        for entry in self.store.list(&format!("docs/{doc}/")).await? {
            self.store.delete(&entry.key).await?;
        }
        Ok(())
    }
}

fn encode_log_entry(updates: &[Bytes]) -> Vec<u8> {
    let mut body = Vec::with_capacity(updates.iter().map(|u| u.len() + 4).sum::<usize>() + 4);
    format::write_var(&mut body, updates.len() as u64);
    for update in updates {
        format::write_var(&mut body, update.len() as u64);
        body.extend_from_slice(update);
    }
    format::frame(Kind::LogEntry, LOG_VERSION, &body)
}

fn decode_log_entry(key: &str, seq: u64, data: &Bytes) -> Result<LogEntry, StoreError> {
    let corrupt = |reason: &str| StoreError::Corrupt {
        key: key.to_owned(),
        reason: reason.to_owned(),
    };
    let (version, mut body) = format::unframe(key, data, Kind::LogEntry)?;
    if version != LOG_VERSION {
        return Err(corrupt(&format!(
            "log format version {version} is not supported by this dure"
        )));
    }
    let count = format::read_var(&mut body).ok_or_else(|| corrupt("truncated header"))?;
    let mut updates = Vec::with_capacity(usize::try_from(count.min(1 << 20)).unwrap_or(0));
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
    Ok(LogEntry { seq, updates })
}

fn decode_snapshot(key: &str, generation: u64, data: &Bytes) -> Result<Snapshot, StoreError> {
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
    if encoding != STATE_YRS_V2 {
        return Err(corrupt(format!("unknown state encoding {encoding}")));
    }
    let start = data.len() - body.len();
    Ok(Snapshot {
        generation,
        log_from,
        state_v2: data.slice(start..),
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
        let data = Bytes::from(encode_log_entry(&updates));
        let entry = decode_log_entry("k", 7, &data).expect("decodes");
        assert_eq!(entry, LogEntry { seq: 7, updates });
        let truncated = data.slice(..data.len() - 1);
        assert!(decode_log_entry("k", 7, &truncated).is_err());
        let mut newer = data.to_vec();
        newer[5] = 99;
        let err = decode_log_entry("k", 7, &Bytes::from(newer)).expect_err("newer version");
        assert!(err.to_string().contains("version 99"));
    }
}
