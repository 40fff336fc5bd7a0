//! What `/readyz` answers from: the outcome of every store call (recorded by a wrapper
//! around the store) and of background probes of the store and the identity provider.
//! A readiness request reads this state and never waits on a dependency; probes run at
//! most once per `health_check_interval`, and the store is only probed when the document
//! path has not shown it answering lately (each S3 probe is a billed request).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use dure_storage::{Backend, Key, ListEntry, Object, PutCondition, Store, StoreError, Version};
use tokio::time::Instant;

use crate::state::AppState;

/// The last success and the last failure of one dependency.
#[derive(Debug, Default)]
pub struct Check {
    state: Mutex<CheckState>,
}

#[derive(Debug, Default)]
struct CheckState {
    last_ok: Option<Instant>,
    last_err: Option<(Instant, String)>,
}

/// What a check says now.
#[derive(Debug, PartialEq, Eq)]
pub enum Status {
    /// Nothing recorded yet.
    Unknown,
    Ok,
    /// Failing for `for_secs` (since the first failure after the last success).
    Failing {
        for_secs: u64,
        error: String,
    },
}

impl Check {
    pub fn ok(&self) {
        if let Ok(mut s) = self.state.lock() {
            s.last_ok = Some(Instant::now());
            s.last_err = None;
        }
    }

    pub fn failed(&self, error: impl Into<String>) {
        if let Ok(mut s) = self.state.lock() {
            let since = match &s.last_err {
                Some((since, _)) => *since,
                None => Instant::now(),
            };
            s.last_err = Some((since, error.into()));
        }
    }

    /// The state now; a dependency that has not answered for `stale` counts as failing
    /// even before a probe times out (a hung service accepts connections and says nothing).
    pub fn status(&self, stale: Duration) -> Status {
        let Ok(s) = self.state.lock() else {
            return Status::Unknown;
        };
        let now = Instant::now();
        match (&s.last_err, s.last_ok) {
            (Some((since, error)), _) => Status::Failing {
                for_secs: now.duration_since(*since).as_secs(),
                error: error.clone(),
            },
            (None, Some(ok)) if now.duration_since(ok) > stale => Status::Failing {
                for_secs: now.duration_since(ok).as_secs(),
                error: format!("no answer for {}s", now.duration_since(ok).as_secs()),
            },
            (None, Some(_)) => Status::Ok,
            (None, None) => Status::Unknown,
        }
    }

    /// Whether a probe is worth its cost: the last success is older than `interval`, or
    /// a failure is outstanding (to see the recovery).
    fn needs_probe(&self, interval: Duration) -> bool {
        let Ok(s) = self.state.lock() else {
            return true;
        };
        s.last_err.is_some() || s.last_ok.is_none_or(|ok| ok.elapsed() >= interval)
    }
}

/// The checks `/readyz` reports.
#[derive(Debug, Default)]
pub struct Readiness {
    pub store: Check,
    pub identity_provider: Check,
}

impl Readiness {
    /// `store` with every call's outcome recorded in [`Readiness::store`].
    pub fn track(self: &Arc<Self>, store: Store) -> Store {
        Store::new(Tracked {
            inner: store,
            readiness: self.clone(),
        })
    }
}

/// A store whose calls report to the readiness state.
struct Tracked {
    inner: Store,
    readiness: Arc<Readiness>,
}

impl Tracked {
    fn record<T>(&self, r: Result<T, StoreError>) -> Result<T, StoreError> {
        match &r {
            // The store answered, whatever it said about this one object.
            Ok(_)
            | Err(
                StoreError::ConditionFailed { .. }
                | StoreError::InvalidKey { .. }
                | StoreError::Corrupt { .. },
            ) => self.readiness.store.ok(),
            Err(e @ (StoreError::Unavailable(_) | StoreError::Misconfigured(_))) => {
                self.readiness.store.failed(e.to_string());
            }
        }
        r
    }
}

#[async_trait]
impl Backend for Tracked {
    async fn get(&self, key: &Key) -> Result<Option<Object>, StoreError> {
        self.record(self.inner.get(key).await)
    }
    async fn put(&self, key: &Key, data: Bytes, cond: PutCondition) -> Result<Version, StoreError> {
        self.record(self.inner.put(key, data, cond).await)
    }
    async fn list(&self, prefix: &str) -> Result<Vec<ListEntry>, StoreError> {
        self.record(self.inner.list(prefix).await)
    }
    async fn delete(&self, key: &Key) -> Result<(), StoreError> {
        self.record(self.inner.delete(key).await)
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.record(self.inner.ping().await)
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
}

/// Probes the store (when the document path has been quiet) and the identity provider
/// every `health_check_interval`, each bounded by that interval. Runs until aborted.
pub async fn probe(state: AppState) {
    let interval = state.config.net.health_check_interval;
    let readiness = state.readiness.clone();
    loop {
        tokio::time::sleep(interval).await;
        let store = async {
            if !readiness.store.needs_probe(interval) {
                return;
            }
            let ping = state.rooms.docs().store().ping();
            if tokio::time::timeout(interval, ping).await.is_err() {
                readiness.store.failed(format!(
                    "no answer within {}",
                    humantime::format_duration(interval)
                ));
            }
        };
        let idp = async {
            let Some(oidc) = &state.auth.oidc else {
                return;
            };
            match tokio::time::timeout(interval, oidc.ping()).await {
                Ok(Ok(())) => readiness.identity_provider.ok(),
                Ok(Err(e)) => {
                    dure_collab::warn_limited!(error = %e, "readiness: the identity provider is failing");
                    readiness.identity_provider.failed(e.to_string())
                }
                Err(_) => readiness.identity_provider.failed(format!(
                    "no answer within {}",
                    humantime::format_duration(interval)
                )),
            }
        };
        tokio::join!(store, idp);
    }
}
