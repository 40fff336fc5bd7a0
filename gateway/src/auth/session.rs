//! Browser sessions: an opaque random id in an HttpOnly cookie, the record kept server-side
//! in the store (so sessions survive a restart) under the id's SHA-256, never the id itself.
//! A session lives while its provider tokens can be refreshed, up to `session_max_age`.
//! The provider's refresh and ID tokens in a record are sealed with the server's key
//! ([`super::sealing`]): reading the store does not give anyone a way to act as the user at
//! the provider. A record whose tokens no longer open (the key was replaced) lives until its
//! tokens expire, then ends: its person signs in again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use bytes::Bytes;
use dure_storage::{Key, PutCondition, Store};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tracing::{debug, warn};

use super::identity::Identity;
use super::oidc::{Oidc, OidcError, SignedIn};
use super::sealing::SealKey;

pub const COOKIE: &str = "dure_session";
/// When the provider cannot be reached to refresh, the session is kept this much longer
/// and refreshed again then (a provider outage must not sign everyone out at once).
const REFRESH_RETRY: Duration = Duration::from_secs(30);
/// How long a session key found absent is answered "no such session" without asking the
/// store again. Keys are 256 random bits chosen here, so a key absent now is only ever
/// created by [`Sessions::create`] on this server (which forgets it from the set).
const ABSENT_TTL: Duration = Duration::from_secs(60);
/// Most keys remembered as absent (about 100 bytes each); past it, expired ones are dropped,
/// and if all are fresh the set starts over (a flood of distinct cookies is what it is).
const MAX_ABSENT: usize = 10_000;

/// A session as the server works with it (tokens in the clear, in memory only).
#[derive(Clone, Debug)]
pub struct SessionRecord {
    pub identity: Identity,
    pub created_at: u64,
    /// Unix seconds when the provider tokens expire; refreshed then.
    pub tokens_expire: u64,
    /// Unix seconds when the session ends whatever happens.
    pub ends_at: u64,
    pub refresh_token: Option<String>,
    pub id_token: Option<String>,
}

/// Format version of stored session records: 1 held the tokens in the clear (read, then
/// written again sealed), 2 holds them sealed.
const RECORD_VERSION: u8 = 2;

/// A session as stored: `auth/sessions/{sha256 of the cookie}`, JSON.
#[derive(Serialize, Deserialize)]
struct StoredRecord {
    v: u8,
    identity: Identity,
    created_at: u64,
    tokens_expire: u64,
    ends_at: u64,
    /// Version 1 only: the tokens in the clear.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id_token: Option<String>,
    /// Version 2: sealed for this session ([`token_purpose`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sealed_refresh_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sealed_id_token: Option<String>,
}

/// Associated data of a sealed token: which token of which session, so a sealed value
/// copied into another record does not open there.
fn token_purpose(kind: &str, key: &SessionKey) -> String {
    format!("dure/session/{kind}/v1/{}", key.0)
}

impl SessionRecord {
    /// When this session must next be looked at: its token expiry or its end.
    pub fn next_check(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.tokens_expire.min(self.ends_at))
    }
}

/// A session handle: the hash of the cookie value (safe to log, to broadcast, to store).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SessionKey(pub String);

#[derive(Debug, thiserror::Error)]
pub enum SessionEnded {
    #[error("no such session")]
    Unknown,
    #[error("session ended")]
    Expired,
    #[error("session could not be refreshed: {0}")]
    RefreshRefused(String),
    #[error("store: {0}")]
    Store(String),
}

pub struct Sessions {
    store: Store,
    oidc: Arc<Oidc>,
    seal: Arc<SealKey>,
    max_age: Duration,
    cache: Mutex<HashMap<SessionKey, Arc<SessionRecord>>>,
    /// Keys recently found absent from the store, and when: a browser (or a script) sending
    /// a stale or made-up cookie over and over costs one store read (a billed request on
    /// S3) per [`ABSENT_TTL`], not one per request.
    absent: Mutex<HashMap<SessionKey, std::time::Instant>>,
    refreshing: Mutex<HashMap<SessionKey, Arc<tokio::sync::Mutex<()>>>>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions").finish_non_exhaustive()
    }
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl SessionKey {
    pub fn of_cookie(value: &str) -> Self {
        let digest = Sha256::digest(value.as_bytes());
        let mut hex = String::with_capacity(64);
        for b in digest {
            hex.push_str(&format!("{b:02x}"));
        }
        SessionKey(hex)
    }

    fn object(&self) -> Result<Key, SessionEnded> {
        Key::new(format!("auth/sessions/{}", self.0))
            .map_err(|e| SessionEnded::Store(e.to_string()))
    }
}

impl Sessions {
    pub fn new(store: Store, oidc: Arc<Oidc>, seal: Arc<SealKey>, max_age: Duration) -> Self {
        Sessions {
            store,
            oidc,
            seal,
            max_age,
            cache: Mutex::new(HashMap::new()),
            absent: Mutex::new(HashMap::new()),
            refreshing: Mutex::new(HashMap::new()),
        }
    }

    /// Creates a session for a finished sign-in; returns the cookie value.
    pub async fn create(
        &self,
        signed: &SignedIn,
    ) -> Result<(String, SessionKey, Arc<SessionRecord>), SessionEnded> {
        let mut raw = [0u8; 32];
        rand::rng().fill_bytes(&mut raw);
        let cookie = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
        let key = SessionKey::of_cookie(&cookie);
        let now = now_secs();
        let record = Arc::new(SessionRecord {
            identity: signed.identity.clone(),
            created_at: now,
            tokens_expire: secs(signed.tokens_expire),
            ends_at: now + self.max_age.as_secs(),
            refresh_token: signed.refresh_token.clone(),
            id_token: signed.id_token.clone(),
        });
        self.absent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key);
        self.save(&key, &record).await?;
        Ok((cookie, key, record))
    }

    async fn save(
        &self,
        key: &SessionKey,
        record: &Arc<SessionRecord>,
    ) -> Result<(), SessionEnded> {
        let seal = |kind: &str, token: &Option<String>| -> Result<Option<String>, SessionEnded> {
            token
                .as_deref()
                .map(|t| {
                    self.seal
                        .seal(&token_purpose(kind, key), t.as_bytes())
                        .map_err(|e| SessionEnded::Store(e.to_string()))
                })
                .transpose()
        };
        let stored = StoredRecord {
            v: RECORD_VERSION,
            identity: record.identity.clone(),
            created_at: record.created_at,
            tokens_expire: record.tokens_expire,
            ends_at: record.ends_at,
            refresh_token: None,
            id_token: None,
            sealed_refresh_token: seal("refresh_token", &record.refresh_token)?,
            sealed_id_token: seal("id_token", &record.id_token)?,
        };
        let body = serde_json::to_vec(&stored).map_err(|e| SessionEnded::Store(e.to_string()))?;
        self.store
            .put(&key.object()?, Bytes::from(body), PutCondition::None)
            .await
            .map_err(|e| SessionEnded::Store(e.to_string()))?;
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.clone(), record.clone());
        Ok(())
    }

    async fn load(&self, key: &SessionKey) -> Result<Arc<SessionRecord>, SessionEnded> {
        if let Some(r) = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
        {
            return Ok(r.clone());
        }
        if self.known_absent(key) {
            return Err(SessionEnded::Unknown);
        }
        let Some(obj) = self
            .store
            .get(&key.object()?)
            .await
            .map_err(|e| SessionEnded::Store(e.to_string()))?
        else {
            self.remember_absent(key);
            return Err(SessionEnded::Unknown);
        };
        let stored: StoredRecord =
            serde_json::from_slice(&obj.data).map_err(|e| SessionEnded::Store(e.to_string()))?;
        let open = |kind: &str, sealed: &Option<String>| {
            let sealed = sealed.as_deref()?;
            let token = self
                .seal
                .open(&token_purpose(kind, key), sealed)
                .and_then(|plain| String::from_utf8(plain).ok());
            if token.is_none() {
                warn!(session = %&key.0[..12], "a session token does not open with this key (was secret_key_file replaced?); the session ends when its tokens expire");
            }
            token
        };
        let (refresh_token, id_token) = match stored.v {
            1 => (stored.refresh_token, stored.id_token),
            RECORD_VERSION => (
                open("refresh_token", &stored.sealed_refresh_token),
                open("id_token", &stored.sealed_id_token),
            ),
            v => {
                return Err(SessionEnded::Store(format!(
                    "session record version {v} is newer than this server knows"
                )));
            }
        };
        let record = Arc::new(SessionRecord {
            identity: stored.identity,
            created_at: stored.created_at,
            tokens_expire: stored.tokens_expire,
            ends_at: stored.ends_at,
            refresh_token,
            id_token,
        });
        if stored.v == 1 {
            // Migrate: the tokens in the clear are replaced by sealed ones now.
            self.save(key, &record).await?;
        } else {
            self.cache
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key.clone(), record.clone());
        }
        Ok(record)
    }

    fn known_absent(&self, key: &SessionKey) -> bool {
        let absent = self.absent.lock().unwrap_or_else(|p| p.into_inner());
        absent.get(key).is_some_and(|at| at.elapsed() < ABSENT_TTL)
    }

    fn remember_absent(&self, key: &SessionKey) {
        let mut absent = self.absent.lock().unwrap_or_else(|p| p.into_inner());
        if absent.len() >= MAX_ABSENT {
            absent.retain(|_, at| at.elapsed() < ABSENT_TTL);
            if absent.len() >= MAX_ABSENT {
                absent.clear();
            }
        }
        absent.insert(key.clone(), std::time::Instant::now());
    }

    /// The session, refreshed with the provider if its tokens expired. An ended session is
    /// removed.
    pub async fn current(&self, key: &SessionKey) -> Result<Arc<SessionRecord>, SessionEnded> {
        let record = self.load(key).await?;
        let now = now_secs();
        if now >= record.ends_at {
            self.end(key).await;
            return Err(SessionEnded::Expired);
        }
        if now < record.tokens_expire {
            return Ok(record);
        }
        // One refresh per session at a time; the others wait and reuse its result.
        let lock = self
            .refreshing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key.clone())
            .or_default()
            .clone();
        let _guard = lock.lock().await;
        let record = self.load(key).await?;
        if now_secs() < record.tokens_expire {
            return Ok(record);
        }
        let Some(refresh_token) = record.refresh_token.clone() else {
            self.end(key).await;
            return Err(SessionEnded::Expired);
        };
        let result = self.oidc.refresh(&refresh_token, &record.identity).await;
        self.refreshing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
        match result {
            Ok(signed) => {
                let updated = Arc::new(SessionRecord {
                    identity: signed.identity,
                    tokens_expire: secs(signed.tokens_expire).min(record.ends_at),
                    refresh_token: signed.refresh_token,
                    id_token: signed.id_token.or_else(|| record.id_token.clone()),
                    ..(*record).clone()
                });
                debug!(session = %&key.0[..12], "session refreshed");
                self.save(key, &updated).await?;
                Ok(updated)
            }
            Err(OidcError::Unreachable(e)) => {
                warn!(error = %e, "identity provider unreachable; session kept for now, refresh retried");
                let updated = Arc::new(SessionRecord {
                    tokens_expire: (now_secs() + REFRESH_RETRY.as_secs()).min(record.ends_at),
                    ..(*record).clone()
                });
                self.save(key, &updated).await?;
                Ok(updated)
            }
            Err(e) => {
                self.end(key).await;
                Err(SessionEnded::RefreshRefused(e.to_string()))
            }
        }
    }

    /// Ends a session everywhere (cache and store). Returns the record it had.
    pub async fn end(&self, key: &SessionKey) -> Option<Arc<SessionRecord>> {
        let cached = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
        let record = match cached {
            Some(r) => Some(r),
            None => self.load(key).await.ok(),
        };
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
        if let Ok(obj) = key.object()
            && let Err(e) = self.store.delete(&obj).await
        {
            warn!(error = %e, "could not delete an ended session from the store");
        }
        record
    }
}
