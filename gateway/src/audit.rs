//! The audit log: who signed in or out, opened, created, renamed, shared, revoked, deleted,
//! restored or purged which document, when and from where. Append-only records in the
//! store, one object each, `audit/{YYYY-MM-DD}/{unix ms}-{random}`, written if-absent so a
//! record is never overwritten.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use dure_storage::{Key, PutCondition, Store};
use futures_util::StreamExt;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::error;

use crate::auth::Identity;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub id: String,
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// RFC 3339, UTC, milliseconds.
    pub at: String,
    pub at_ms: u64,
    pub action: String,
    pub actor: Actor,
    pub doc: Option<String>,
    pub ip: Option<String>,
    #[serde(default)]
    pub detail: Value,
}

#[derive(Clone, Debug)]
pub struct AuditLog {
    store: Store,
    /// When each (user, document) was last recorded as opened.
    opened: Arc<Mutex<HashMap<(String, String), Instant>>>,
}

/// A reconnect within this long of the last recorded open is not recorded again: laptops on
/// bad networks reconnect often, and the log is for people to read.
const OPEN_DEDUP: Duration = Duration::from_secs(600);

/// What a query asks for.
#[derive(Debug, Default)]
pub struct AuditQuery {
    pub user: Option<String>,
    pub doc: Option<String>,
    pub from_ms: Option<u64>,
    pub to_ms: Option<u64>,
    pub limit: usize,
}

const DAY_MS: u64 = 86_400_000;
/// A query without `from` looks back this far.
const DEFAULT_WINDOW_DAYS: u64 = 31;

fn day_of(ms: u64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(ms);
    humantime::format_rfc3339_millis(t).to_string()[..10].to_owned()
}

impl AuditLog {
    pub fn new(store: Store) -> Self {
        AuditLog {
            store,
            opened: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Whether this open of `doc` by `user` should be recorded (not within [`OPEN_DEDUP`] of
    /// the last recorded one).
    pub fn first_open(&self, user: &str, doc: &dure_storage::DocId) -> bool {
        let mut map = self.opened.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if map.len() > 100_000 {
            map.retain(|_, t| now.duration_since(*t) < OPEN_DEDUP);
        }
        let key = (user.to_owned(), doc.to_string());
        match map.get(&key) {
            Some(t) if now.duration_since(*t) < OPEN_DEDUP => false,
            _ => {
                map.insert(key, now);
                true
            }
        }
    }

    /// Appends a record. A failed write is retried in the background for a minute and
    /// logged loudly; the action it records has already happened.
    pub async fn record(
        &self,
        action: &str,
        who: &Identity,
        doc: Option<&str>,
        ip: Option<String>,
        detail: Value,
    ) {
        let at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let event = AuditEvent {
            at: humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(at_ms))
                .to_string(),
            at_ms,
            action: action.to_owned(),
            actor: Actor {
                id: who.id.clone(),
                name: who.name.clone(),
            },
            doc: doc.map(str::to_owned),
            ip,
            detail,
        };
        let mut rnd = [0u8; 6];
        rand::rng().fill_bytes(&mut rnd);
        let suffix: String = rnd.iter().map(|b| format!("{b:02x}")).collect();
        let key = match Key::new(format!("audit/{}/{at_ms:013}-{suffix}", day_of(at_ms))) {
            Ok(k) => k,
            Err(e) => {
                error!(error = %e, "audit key invalid");
                return;
            }
        };
        let body = match serde_json::to_vec(&event) {
            Ok(b) => Bytes::from(b),
            Err(e) => {
                error!(error = %e, "audit record unencodable");
                return;
            }
        };
        if let Err(e) = self
            .store
            .put(&key, body.clone(), PutCondition::IfAbsent)
            .await
        {
            dure_collab::warn_limited!(error = %e, action, "audit record not written yet; retrying in the background");
            let store = self.store.clone();
            tokio::spawn(async move {
                for delay in [1u64, 2, 4, 8, 15, 30] {
                    tokio::time::sleep(Duration::from_secs(delay)).await;
                    match store.put(&key, body.clone(), PutCondition::IfAbsent).await {
                        Ok(_) | Err(dure_storage::StoreError::ConditionFailed { .. }) => return,
                        Err(_) => {}
                    }
                }
                error!(key = %key, "audit record lost: the store refused it for a minute");
            });
        }
    }

    /// Newest first, filtered.
    pub async fn query(&self, q: &AuditQuery) -> Result<Vec<AuditEvent>, dure_storage::StoreError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let to = q.to_ms.unwrap_or(now);
        let from = q
            .from_ms
            .unwrap_or_else(|| to.saturating_sub(DEFAULT_WINDOW_DAYS * DAY_MS));
        let mut out = Vec::new();
        let first_day = from - from % DAY_MS;
        let mut day = to - to % DAY_MS;
        while day >= first_day {
            let prefix = format!("audit/{}/", day_of(day));
            let mut keys = self.store.list(&prefix).await?;
            keys.reverse();
            // Only records inside the window (the key starts with the time).
            let keys: Vec<Key> = keys
                .into_iter()
                .map(|e| e.key)
                .filter(|k| {
                    k.as_str()
                        .rsplit('/')
                        .next()
                        .and_then(|n| n.split('-').next())
                        .and_then(|ms| ms.parse::<u64>().ok())
                        .is_some_and(|ms| ms >= from && ms <= to)
                })
                .collect();
            let mut fetched = futures_util::stream::iter(keys.into_iter().map(|k| {
                let store = self.store.clone();
                async move { store.get(&k).await }
            }))
            .buffered(16);
            while let Some(got) = fetched.next().await {
                let Some(obj) = got? else { continue };
                let Ok(event) = serde_json::from_slice::<AuditEvent>(&obj.data) else {
                    continue;
                };
                if q.user.as_deref().is_some_and(|u| u != event.actor.id) {
                    continue;
                }
                if q.doc.is_some() && q.doc.as_deref() != event.doc.as_deref() {
                    continue;
                }
                out.push(event);
                if out.len() >= q.limit {
                    return Ok(out);
                }
            }
            if day < DAY_MS {
                break;
            }
            day -= DAY_MS;
        }
        Ok(out)
    }
}
