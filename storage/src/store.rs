use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use crate::{Key, StoreError};

/// An opaque version token of a stored object (an ETag on S3, a content digest on files).
/// Only ever compared for equality, in if-match writes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Version(pub String);

/// A stored object with the version it had when read.
#[derive(Clone, Debug)]
pub struct Object {
    pub data: Bytes,
    pub version: Version,
}

/// One row of a listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListEntry {
    pub key: Key,
    pub size: u64,
}

/// The precondition of a put.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PutCondition {
    /// Write whatever is there.
    None,
    /// Write only if no object has this key (S3 `If-None-Match: *`). This is what fences a
    /// second writer: of two writers of one log entry, exactly one succeeds.
    IfAbsent,
    /// Write only if the object still has this version (S3 `If-Match`).
    IfMatch(Version),
}

/// What every backend implements. Invariants the conformance suite checks:
/// - a successful `put` is durable when it returns (fsync'd, or answered by the object store);
/// - conditional puts are atomic: of concurrent `IfAbsent` puts of one key exactly one wins,
///   the others get [`StoreError::ConditionFailed`];
/// - `list` returns every key under the prefix, sorted, and nothing else;
/// - `delete` of a missing key succeeds.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    async fn get(&self, key: &Key) -> Result<Option<Object>, StoreError>;
    async fn put(&self, key: &Key, data: Bytes, cond: PutCondition) -> Result<Version, StoreError>;
    async fn list(&self, prefix: &str) -> Result<Vec<ListEntry>, StoreError>;
    async fn delete(&self, key: &Key) -> Result<(), StoreError>;
    /// Deletes several keys (missing ones included). Backends with a batch delete override
    /// this (S3: one DeleteObjects request per 1,000 keys); the default deletes one by one.
    async fn delete_many(&self, keys: &[Key]) -> Result<(), StoreError> {
        for key in keys {
            self.delete(key).await?;
        }
        Ok(())
    }
    /// Checks that the backend answers (for readiness probes).
    async fn ping(&self) -> Result<(), StoreError>;
    /// A human description for logs: backend and location, never credentials.
    fn describe(&self) -> String;
}

/// The store handle the rest of Dure uses: cheap to clone, backend hidden behind it.
#[derive(Clone)]
pub struct Store {
    backend: Arc<dyn Backend>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Store({})", self.backend.describe())
    }
}

impl Store {
    pub fn new(backend: impl Backend) -> Self {
        Store {
            backend: Arc::new(backend),
        }
    }

    pub fn from_arc(backend: Arc<dyn Backend>) -> Self {
        Store { backend }
    }

    /// An in-memory store (tests and ephemeral use).
    pub fn memory() -> Self {
        Store::new(crate::memory::MemoryBackend::default())
    }

    pub async fn get(&self, key: &Key) -> Result<Option<Object>, StoreError> {
        self.backend.get(key).await
    }

    pub async fn put(
        &self,
        key: &Key,
        data: Bytes,
        cond: PutCondition,
    ) -> Result<Version, StoreError> {
        self.backend.put(key, data, cond).await
    }

    /// Lists keys starting with `prefix`, sorted. The prefix follows the key rules and may
    /// end with `/`.
    pub async fn list(&self, prefix: &str) -> Result<Vec<ListEntry>, StoreError> {
        if let Err(reason) = crate::key::check(prefix, true) {
            return Err(StoreError::InvalidKey {
                key: prefix.to_owned(),
                reason,
            });
        }
        self.backend.list(prefix).await
    }

    pub async fn delete(&self, key: &Key) -> Result<(), StoreError> {
        self.backend.delete(key).await
    }

    /// Deletes every key given; see [`Backend::delete_many`].
    pub async fn delete_many(&self, keys: &[Key]) -> Result<(), StoreError> {
        if keys.is_empty() {
            return Ok(());
        }
        self.backend.delete_many(keys).await
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        self.backend.ping().await
    }

    pub fn describe(&self) -> String {
        self.backend.describe()
    }
}
