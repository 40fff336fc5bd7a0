//! TURN credentials in coturn's REST form (`use-auth-secret`): the username is
//! `EXPIRY_UNIX_SECONDS:participant_id` and the credential base64(HMAC-SHA1(secret,
//! username)), so coturn checks them with the shared secret and nothing is stored.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::hmac;
use base64::Engine;
use dure_collab::meet::{IceServer, TurnGrant};

/// What the TURN settings resolve to.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TurnConfig {
    /// `turn:`/`turns:` URLs; credentials are minted for these.
    pub turn_urls: Vec<String>,
    /// `stun:`/`stuns:` URLs, listed without credentials.
    pub stun_urls: Vec<String>,
    /// Shared secrets; the first mints, the others are accepted by coturn during rotation.
    pub secrets: Vec<String>,
    pub ttl: Duration,
}

impl std::fmt::Debug for TurnConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secrets never reach a log.
        f.debug_struct("TurnConfig")
            .field("turn_urls", &self.turn_urls)
            .field("stun_urls", &self.stun_urls)
            .field("secrets", &self.secrets.len())
            .field("ttl", &self.ttl)
            .finish()
    }
}

/// The credential for `username` under `secret`.
pub fn credential(secret: &str, username: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret.as_bytes());
    let tag = hmac::sign(&key, username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(tag.as_ref())
}

impl TurnConfig {
    /// ICE servers for one participant at `now`: STUN as is, TURN with credentials valid for
    /// `ttl`. Empty when nothing is configured.
    pub fn grant_at(&self, participant_id: &str, now: SystemTime) -> TurnGrant {
        let mut ice_servers = Vec::new();
        if !self.stun_urls.is_empty() {
            ice_servers.push(IceServer {
                urls: self.stun_urls.clone(),
                username: None,
                credential: None,
            });
        }
        let mut expires_at = None;
        if let (false, Some(secret)) = (self.turn_urls.is_empty(), self.secrets.first()) {
            let expiry = now.duration_since(UNIX_EPOCH).unwrap_or_default() + self.ttl;
            let username = format!("{}:{participant_id}", expiry.as_secs());
            ice_servers.push(IceServer {
                urls: self.turn_urls.clone(),
                credential: Some(credential(secret, &username)),
                username: Some(username),
            });
            // Whole seconds, as coturn reads them: the grant never outlives the credential.
            expires_at = Some(expiry.as_secs() * 1000);
        }
        TurnGrant {
            ice_servers,
            expires_at,
        }
    }

    pub fn grant(&self, participant_id: &str) -> TurnGrant {
        self.grant_at(participant_id, SystemTime::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_matches_an_independent_hmac_sha1() {
        // printf '%s' '1700000600:p1' | openssl dgst -sha1 -hmac 'north-star' -binary | base64
        assert_eq!(
            credential("north-star", "1700000600:p1"),
            "/CQtCaeESNgXdRn6+yVkzDBUZEk="
        );
        // RFC 2202 test case 2.
        assert_eq!(
            credential("Jefe", "what do ya want for nothing?"),
            "7/zfauXrL6LSdBbV8YTfnCWafHk="
        );
    }

    #[test]
    fn grants_turn_with_expiry_and_stun_without_credentials() {
        let cfg = TurnConfig {
            turn_urls: vec!["turn:turn.example.gov:3478?transport=udp".into()],
            stun_urls: vec!["stun:stun.example.gov:3478".into()],
            secrets: vec!["north-star".into(), "old-one".into()],
            ttl: Duration::from_secs(600),
        };
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let g = cfg.grant_at("p1", now);
        assert_eq!(g.expires_at, Some(1_700_000_600_000));
        assert_eq!(g.ice_servers.len(), 2);
        assert_eq!(g.ice_servers[0].urls, cfg.stun_urls);
        assert_eq!(g.ice_servers[0].username, None);
        assert_eq!(g.ice_servers[0].credential, None);
        let turn = &g.ice_servers[1];
        assert_eq!(turn.username.as_deref(), Some("1700000600:p1"));
        assert_eq!(
            turn.credential.as_deref(),
            Some("/CQtCaeESNgXdRn6+yVkzDBUZEk=")
        );
        // STUN only: no credentials and nothing to refresh; nothing: empty.
        let stun = TurnConfig {
            stun_urls: vec!["stun:s:3478".into()],
            ..TurnConfig::default()
        };
        let g = stun.grant_at("p1", now);
        assert_eq!(g.ice_servers.len(), 1);
        assert_eq!(g.expires_at, None);
        assert_eq!(TurnConfig::default().grant("p"), TurnGrant::default());
        assert!(!format!("{cfg:?}").contains("north-star"));
    }
}
