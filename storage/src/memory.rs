//! In-memory backend: for tests and for a throwaway server. Same semantics as the others,
//! except that nothing survives the process.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;

use crate::{Backend, Key, ListEntry, Object, PutCondition, StoreError, Version};

type Objects = BTreeMap<String, (Bytes, Version)>;

#[derive(Default)]
pub struct MemoryBackend {
    objects: Mutex<Objects>,
    next_version: AtomicU64,
}

impl MemoryBackend {
    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Objects>, StoreError> {
        self.objects
            .lock()
            .map_err(|_| StoreError::Unavailable("memory store lock poisoned".into()))
    }
}

#[async_trait]
impl Backend for MemoryBackend {
    async fn get(&self, key: &Key) -> Result<Option<Object>, StoreError> {
        Ok(self
            .lock()?
            .get(key.as_str())
            .map(|(data, version)| Object {
                data: data.clone(),
                version: version.clone(),
            }))
    }

    async fn put(&self, key: &Key, data: Bytes, cond: PutCondition) -> Result<Version, StoreError> {
        let mut objects = self.lock()?;
        let current = objects.get(key.as_str()).map(|(_, v)| v);
        let allowed = match (&cond, current) {
            (PutCondition::None, _) => true,
            (PutCondition::IfAbsent, existing) => existing.is_none(),
            (PutCondition::IfMatch(want), Some(have)) => want == have,
            (PutCondition::IfMatch(_), None) => false,
        };
        if !allowed {
            return Err(StoreError::ConditionFailed {
                key: key.to_string(),
            });
        }
        let version = Version(format!(
            "m{}",
            self.next_version.fetch_add(1, Ordering::Relaxed)
        ));
        objects.insert(key.as_str().to_owned(), (data, version.clone()));
        Ok(version)
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ListEntry>, StoreError> {
        let objects = self.lock()?;
        let mut out = Vec::new();
        for (key, (data, _)) in objects.range(prefix.to_owned()..) {
            if !key.starts_with(prefix) {
                break;
            }
            out.push(ListEntry {
                key: Key::new(key.clone())?,
                size: data.len() as u64,
            });
        }
        Ok(out)
    }

    async fn delete(&self, key: &Key) -> Result<(), StoreError> {
        self.lock()?.remove(key.as_str());
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn describe(&self) -> String {
        "memory".to_owned()
    }
}
