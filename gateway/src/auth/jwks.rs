//! The issuer's signing keys, fetched at start and refetched when a token names a key id we
//! do not know (key rotation), at most once per `refetch_interval` so that forged key ids
//! cannot turn Dure into a request amplifier against the provider.

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::jwk::JwkSet;
use openidconnect::core::CoreJsonWebKeySet;
use openidconnect::reqwest;
use tokio::sync::Mutex;
use tokio::time::Instant;
use tracing::{info, warn};

/// One fetched key set, in the two shapes its two users need.
#[derive(Debug)]
pub struct KeySet {
    /// For bearer access tokens (jsonwebtoken).
    pub jwt: JwkSet,
    /// For ID tokens (openidconnect's verifier).
    pub oidc: CoreJsonWebKeySet,
}

#[derive(Debug)]
pub struct Jwks {
    uri: String,
    http: reqwest::Client,
    refetch_interval: Duration,
    /// The keys every verification reads. Never locked across a fetch: a provider that
    /// hangs while being asked for new keys must not stall tokens signed by known ones.
    keys: std::sync::RwLock<Arc<KeySet>>,
    /// When keys were last fetched; held across a refetch, so concurrent refetchers share
    /// one fetch (and only they wait for it).
    fetched: Mutex<Instant>,
}

#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    #[error("fetching the provider's keys from {uri}: {reason}")]
    Fetch { uri: String, reason: String },
}

impl Jwks {
    pub async fn fetch(
        uri: String,
        http: reqwest::Client,
        refetch_interval: Duration,
    ) -> Result<Self, JwksError> {
        let keys = fetch_keys(&uri, &http).await?;
        Ok(Jwks {
            uri,
            http,
            refetch_interval,
            keys: std::sync::RwLock::new(Arc::new(keys)),
            fetched: Mutex::new(Instant::now()),
        })
    }

    pub async fn current(&self) -> Arc<KeySet> {
        self.keys.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The key set after a refetch, if one is allowed now; otherwise the current one.
    /// Concurrent refetchers share one fetch; readers of [`Jwks::current`] never wait for it.
    pub async fn refetch(&self) -> Arc<KeySet> {
        let mut fetched = self.fetched.lock().await;
        if fetched.elapsed() < self.refetch_interval {
            return self.current().await;
        }
        *fetched = Instant::now();
        match fetch_keys(&self.uri, &self.http).await {
            Ok(keys) => {
                info!(
                    keys = keys.jwt.keys.len(),
                    "refetched the identity provider's signing keys"
                );
                let keys = Arc::new(keys);
                *self.keys.write().unwrap_or_else(|p| p.into_inner()) = keys.clone();
                keys
            }
            Err(e) => {
                warn!(error = %e, "could not refetch the identity provider's keys");
                self.current().await
            }
        }
    }
}

async fn fetch_keys(uri: &str, http: &reqwest::Client) -> Result<KeySet, JwksError> {
    let err = |reason: String| JwksError::Fetch {
        uri: uri.to_owned(),
        reason,
    };
    let resp = http
        .get(uri)
        .header("accept", "application/json")
        .send()
        .await
        .map_err(|e| err(e.to_string()))?;
    if !resp.status().is_success() {
        return Err(err(format!("HTTP {}", resp.status())));
    }
    let body = resp.bytes().await.map_err(|e| err(e.to_string()))?;
    // Keys of a type jsonwebtoken does not know (e.g. encryption keys) must not make the
    // whole set unreadable: keep the ones that parse.
    let raw: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| err(format!("not JSON: {e}")))?;
    let list = raw
        .get("keys")
        .and_then(|k| k.as_array())
        .ok_or_else(|| err("no `keys` array".into()))?;
    let jwt = JwkSet {
        keys: list
            .iter()
            .filter_map(|k| serde_json::from_value(k.clone()).ok())
            .collect(),
    };
    let oidc: CoreJsonWebKeySet =
        serde_json::from_slice(&body).map_err(|e| err(format!("unreadable key set: {e}")))?;
    Ok(KeySet { jwt, oidc })
}
