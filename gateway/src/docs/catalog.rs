//! The catalog of documents and of people who signed in, kept in the store as small JSON
//! objects (`meta/docs/{id}`, `meta/users/{id}`) and held in memory for listing.
//!
//! Writes go through one lock and an if-match put, so a concurrent writer (another node on
//! the same bucket) is detected: the object is read again and the change reapplied.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use bytes::Bytes;
use dure_storage::{DocId, Key, PutCondition, Store, StoreError, Version};
use futures_util::StreamExt;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use tracing::warn;

use super::meta::{DocMeta, UserRef};
use crate::auth::Identity;
use crate::auth::changes::ChangeBus;

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("no such document")]
    NotFound,
    #[error("{0}")]
    Refused(String),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("stored metadata unreadable: {0}")]
    Corrupt(String),
    #[error("you own {limit} documents, the most allowed; delete some (and empty the trash) first")]
    QuotaReached { limit: usize },
}

/// Why a purge stopped: the content could not be deleted (nothing changed), or the content
/// went but the metadata could not (the next sweep finishes it).
#[derive(Debug, thiserror::Error)]
pub enum PurgeError<E> {
    #[error("content: {0}")]
    Content(E),
    #[error("metadata: {0}")]
    Metadata(CatalogError),
}

impl<E> From<StoreError> for PurgeError<E> {
    fn from(e: StoreError) -> Self {
        PurgeError::Metadata(e.into())
    }
}

/// Someone who signed in at least once, for the sharing dialog.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub email: Option<String>,
    /// The provider verified `email` (records written before Dure checked are not trusted
    /// until their person signs in again).
    #[serde(default)]
    pub email_verified: bool,
    /// Unix milliseconds.
    pub last_seen: u64,
}

/// Why a person could not be picked for a share.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FindUser {
    #[error("nobody with this id or verified e-mail address has signed in yet")]
    Unknown,
    #[error("{0} people signed in with this e-mail address; choose them by their id")]
    Ambiguous(usize),
}

struct Entry {
    meta: Arc<DocMeta>,
    version: Version,
}

pub struct Catalog {
    store: Store,
    docs: RwLock<HashMap<DocId, Entry>>,
    users: RwLock<HashMap<String, UserRecord>>,
    write: Mutex<()>,
    changes: Arc<ChangeBus>,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog").finish_non_exhaustive()
    }
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn doc_key(id: &DocId) -> Result<Key, StoreError> {
    Key::new(format!("meta/docs/{id}"))
}

fn user_key(id: &str) -> Result<Key, StoreError> {
    // Subjects may hold any character; the key segment is their base64url.
    Key::new(format!(
        "meta/users/{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id)
    ))
}

/// A new document id: 128 random bits, base64url (22 characters), unguessable so that a
/// link alone reveals nothing.
pub fn new_doc_id() -> Result<DocId, CatalogError> {
    let mut raw = [0u8; 16];
    rand::rng().fill_bytes(&mut raw);
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(raw)
        .parse()
        .map_err(|e| CatalogError::Corrupt(format!("{e}")))
}

impl Catalog {
    /// Loads every document's and user's metadata from the store.
    pub async fn load(store: Store, changes: Arc<ChangeBus>) -> Result<Self, CatalogError> {
        let mut docs = HashMap::new();
        let listed = store.list("meta/docs/").await?;
        let mut fetches = futures_util::stream::iter(listed.into_iter().map(|e| {
            let store = store.clone();
            async move { (e.key.clone(), store.get(&e.key).await) }
        }))
        .buffer_unordered(32);
        let mut loaded = Vec::new();
        while let Some(item) = fetches.next().await {
            loaded.push(item);
        }
        drop(fetches);
        for (key, got) in loaded {
            let Some(obj) = got? else { continue };
            let meta: DocMeta = serde_json::from_slice(&obj.data)
                .map_err(|e| CatalogError::Corrupt(format!("{key}: {e}")))?;
            let id: DocId = meta
                .id
                .parse()
                .map_err(|e| CatalogError::Corrupt(format!("{key}: {e}")))?;
            docs.insert(
                id,
                Entry {
                    meta: Arc::new(meta),
                    version: obj.version,
                },
            );
        }
        let mut users = HashMap::new();
        for e in store.list("meta/users/").await? {
            if let Some(obj) = store.get(&e.key).await? {
                match serde_json::from_slice::<UserRecord>(&obj.data) {
                    Ok(u) => {
                        users.insert(u.id.clone(), u);
                    }
                    Err(err) => warn!(key = %e.key, error = %err, "unreadable user record skipped"),
                }
            }
        }
        Ok(Catalog {
            store,
            docs: RwLock::new(docs),
            users: RwLock::new(users),
            write: Mutex::new(()),
            changes,
        })
    }

    pub fn get(&self, id: &DocId) -> Option<Arc<DocMeta>> {
        self.docs
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .map(|e| e.meta.clone())
    }

    pub fn all(&self) -> Vec<Arc<DocMeta>> {
        self.docs
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(|e| e.meta.clone())
            .collect()
    }

    /// Creates a document with a new id, owned by `owner` unless they already own
    /// `max_owned` documents.
    pub async fn create(
        &self,
        owner: &Identity,
        title: String,
        max_owned: usize,
    ) -> Result<Arc<DocMeta>, CatalogError> {
        let _w = self.write.lock().await;
        self.check_quota(owner, max_owned)?;
        for _ in 0..3 {
            let id = new_doc_id()?;
            match self.put_new(&id, owner, title.clone()).await {
                Ok(meta) => return Ok(meta),
                // 128 random bits do not collide; but if they did, draw again.
                Err(CatalogError::Store(StoreError::ConditionFailed { .. })) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(CatalogError::Refused(
            "could not allocate a document id".into(),
        ))
    }

    /// Registers a document under a name chosen by the client (local mode: a document is
    /// created on first use), so that it is listed and exportable like any other. Returns
    /// what the catalog holds if the document is known already.
    pub async fn register(
        &self,
        id: &DocId,
        owner: &Identity,
        max_owned: usize,
    ) -> Result<Arc<DocMeta>, CatalogError> {
        let _w = self.write.lock().await;
        if let Some(meta) = self.get(id) {
            return Ok(meta);
        }
        self.check_quota(owner, max_owned)?;
        match self.put_new(id, owner, id.to_string()).await {
            Err(CatalogError::Store(StoreError::ConditionFailed { .. })) => {
                // Stored but not in memory (written by another process): take it as it is.
                let obj = self
                    .store
                    .get(&doc_key(id)?)
                    .await?
                    .ok_or(CatalogError::NotFound)?;
                let meta: DocMeta = serde_json::from_slice(&obj.data)
                    .map_err(|e| CatalogError::Corrupt(e.to_string()))?;
                let meta = Arc::new(meta);
                self.docs.write().unwrap_or_else(|p| p.into_inner()).insert(
                    id.clone(),
                    Entry {
                        meta: meta.clone(),
                        version: obj.version,
                    },
                );
                Ok(meta)
            }
            other => other,
        }
    }

    /// Refuses when `owner` already owns `max_owned` documents.
    pub fn check_quota(&self, owner: &Identity, max_owned: usize) -> Result<(), CatalogError> {
        let owned = self
            .docs
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|e| e.meta.owner.id == owner.id)
            .count();
        if owned >= max_owned {
            return Err(CatalogError::QuotaReached { limit: max_owned });
        }
        Ok(())
    }

    /// Stores new metadata if-absent and adds it to memory. The caller holds `write`.
    async fn put_new(
        &self,
        id: &DocId,
        owner: &Identity,
        title: String,
    ) -> Result<Arc<DocMeta>, CatalogError> {
        let now = now_ms();
        let meta = DocMeta {
            v: 1,
            id: id.to_string(),
            title,
            owner: UserRef {
                id: owner.id.clone(),
                name: owner.name.clone(),
            },
            created_at: now,
            updated_at: now,
            deleted_at: None,
            shares: Vec::new(),
        };
        let body = serde_json::to_vec(&meta).map_err(|e| CatalogError::Corrupt(e.to_string()))?;
        let version = self
            .store
            .put(&doc_key(id)?, Bytes::from(body), PutCondition::IfAbsent)
            .await?;
        let meta = Arc::new(meta);
        self.docs.write().unwrap_or_else(|p| p.into_inner()).insert(
            id.clone(),
            Entry {
                meta: meta.clone(),
                version,
            },
        );
        Ok(meta)
    }

    /// Gives every document with stored content but no metadata to `owner` (local mode:
    /// documents a plain Yjs client made before the catalog registered them). Returns how
    /// many were adopted.
    pub async fn adopt_stored(&self, owner: &Identity) -> Result<usize, CatalogError> {
        let mut found = std::collections::BTreeSet::new();
        for entry in self.store.list("docs/").await? {
            if let Some(id) = entry
                .key
                .as_str()
                .strip_prefix("docs/")
                .and_then(|rest| rest.split('/').next())
                .and_then(|id| id.parse::<DocId>().ok())
            {
                found.insert(id);
            }
        }
        let mut adopted = 0;
        for id in found {
            if self.get(&id).is_none() {
                // Adoption is not creation: what exists is never refused by a quota.
                self.register(&id, owner, usize::MAX).await?;
                adopted += 1;
            }
        }
        Ok(adopted)
    }

    /// Runs `purge` (deleting the content) and then forgets the metadata, but only if the
    /// document is still in the trash and due (`deleted_at + retention <= now`): checked
    /// under the write lock that restore takes, so a restore either happens before (and the
    /// document stays) or waits until the document is gone. Returns what was purged.
    pub async fn purge_if_due<F, Fut, E>(
        &self,
        id: &DocId,
        retention_ms: u64,
        now: u64,
        purge: F,
    ) -> Result<Option<Arc<DocMeta>>, PurgeError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<(), E>>,
    {
        let _w = self.write.lock().await;
        let Some(meta) = self.get(id) else {
            return Ok(None);
        };
        if meta
            .deleted_at
            .is_none_or(|d| d.saturating_add(retention_ms) > now)
        {
            return Ok(None);
        }
        purge().await.map_err(PurgeError::Content)?;
        self.store
            .delete(&doc_key(id)?)
            .await
            .map_err(|e| PurgeError::Metadata(e.into()))?;
        self.docs
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        self.changes.doc_changed(id);
        Ok(Some(meta))
    }

    /// Changes a document's metadata with `f` and stores it (if-match). Live sockets hear of
    /// it through the change bus.
    pub async fn update(
        &self,
        id: &DocId,
        f: impl Fn(&mut DocMeta) -> Result<(), String>,
    ) -> Result<Arc<DocMeta>, CatalogError> {
        let _w = self.write.lock().await;
        let key = doc_key(id)?;
        let (mut meta, mut version) = {
            let docs = self.docs.read().unwrap_or_else(|p| p.into_inner());
            let e = docs.get(id).ok_or(CatalogError::NotFound)?;
            ((*e.meta).clone(), e.version.clone())
        };
        for attempt in 0..3 {
            let mut next = meta.clone();
            f(&mut next).map_err(CatalogError::Refused)?;
            let body =
                serde_json::to_vec(&next).map_err(|e| CatalogError::Corrupt(e.to_string()))?;
            match self
                .store
                .put(
                    &key,
                    Bytes::from(body),
                    PutCondition::IfMatch(version.clone()),
                )
                .await
            {
                Ok(v) => {
                    let next = Arc::new(next);
                    self.docs.write().unwrap_or_else(|p| p.into_inner()).insert(
                        id.clone(),
                        Entry {
                            meta: next.clone(),
                            version: v,
                        },
                    );
                    self.changes.doc_changed(id);
                    return Ok(next);
                }
                Err(StoreError::ConditionFailed { .. }) if attempt < 2 => {
                    // Someone else wrote it: start again from what is stored.
                    let obj = self.store.get(&key).await?.ok_or(CatalogError::NotFound)?;
                    meta = serde_json::from_slice(&obj.data)
                        .map_err(|e| CatalogError::Corrupt(e.to_string()))?;
                    version = obj.version;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(CatalogError::Refused(
            "metadata keeps changing; try again".into(),
        ))
    }

    /// Forgets a document's metadata (after its content was purged).
    pub async fn remove(&self, id: &DocId) -> Result<(), CatalogError> {
        let _w = self.write.lock().await;
        self.store.delete(&doc_key(id)?).await?;
        self.docs
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        self.changes.doc_changed(id);
        Ok(())
    }

    /// Records that someone signed in (name, e-mail), so owners can find them to share.
    /// Written only when something changed or a day passed.
    pub async fn saw_user(&self, who: &Identity) {
        let now = now_ms();
        let fresh = UserRecord {
            id: who.id.clone(),
            name: who.name.clone(),
            email: who.email.clone(),
            // Identity keeps only verified addresses.
            email_verified: who.email.is_some(),
            last_seen: now,
        };
        let stale = match self
            .users
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&who.id)
        {
            Some(u) => {
                u.name != fresh.name
                    || u.email != fresh.email
                    || u.email_verified != fresh.email_verified
                    || now - u.last_seen > 86_400_000
            }
            None => true,
        };
        if !stale {
            return;
        }
        let key = match user_key(&who.id) {
            Ok(k) => k,
            Err(e) => {
                dure_collab::warn_limited!(error = %e, "user id cannot be stored");
                return;
            }
        };
        match serde_json::to_vec(&fresh) {
            Ok(body) => {
                if let Err(e) = self
                    .store
                    .put(&key, Bytes::from(body), PutCondition::None)
                    .await
                {
                    dure_collab::warn_limited!(error = %e, "could not record the user");
                }
            }
            Err(e) => warn!(error = %e, "could not encode the user"),
        }
        self.users
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(fresh.id.clone(), fresh);
    }

    /// A user by id, or by verified e-mail address (case-insensitive) when exactly one
    /// person has it.
    pub fn find_user(&self, id_or_email: &str) -> Result<UserRecord, FindUser> {
        let users = self.users.read().unwrap_or_else(|p| p.into_inner());
        if let Some(u) = users.get(id_or_email) {
            return Ok(u.clone());
        }
        let mut found = users.values().filter(|u| {
            u.email_verified
                && u.email
                    .as_deref()
                    .is_some_and(|e| e.eq_ignore_ascii_case(id_or_email))
        });
        match (found.next(), found.count()) {
            (None, _) => Err(FindUser::Unknown),
            (Some(u), 0) => Ok(u.clone()),
            (Some(_), more) => Err(FindUser::Ambiguous(more + 1)),
        }
    }

    /// People whose name has a word starting with `q`, whose verified e-mail address starts
    /// with it, or whose id is `q` (case-insensitive); at most `limit`, by name.
    pub fn search_users(&self, q: &str, limit: usize) -> Vec<UserRecord> {
        let q = q.to_lowercase();
        if q.is_empty() {
            return Vec::new();
        }
        let users = self.users.read().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<UserRecord> = users
            .values()
            .filter(|u| {
                let name = u.name.to_lowercase();
                name.starts_with(&q)
                    || name.split_whitespace().any(|w| w.starts_with(&q))
                    || u.id.to_lowercase() == q
                    || (u.email_verified
                        && u.email
                            .as_deref()
                            .is_some_and(|e| e.to_lowercase().starts_with(&q)))
            })
            .cloned()
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.id.cmp(&b.id)));
        out.truncate(limit);
        out
    }
}
