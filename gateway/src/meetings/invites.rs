//! Guest invites: a secret of 32 random bytes (base64url) shown once, stored as its SHA-256;
//! uses are counted in the meeting's one invites object by compare-and-swap.

use base64::Engine;
use dure_collab::meet::Refusal;
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::record::{InviteRecord, InviteSet};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// A new invite secret (what goes after `#invite=` in the link).
pub fn new_secret() -> String {
    let mut raw = [0u8; 32];
    rand::rng().fill_bytes(&mut raw);
    B64.encode(raw)
}

/// A new invite id: 72 random bits, enough to tell invites apart, not a credential.
pub fn new_id() -> String {
    let mut raw = [0u8; 9];
    rand::rng().fill_bytes(&mut raw);
    B64.encode(raw)
}

/// The stored form of a secret.
pub fn hash_secret(secret: &str) -> String {
    B64.encode(Sha256::digest(secret.as_bytes()))
}

/// Why an invite cannot be used now, if it cannot.
pub fn unusable(inv: &InviteRecord, now_ms: u64) -> Option<Refusal> {
    if inv.revoked {
        Some(Refusal::InviteRevoked)
    } else if inv.expires_at <= now_ms {
        Some(Refusal::InviteExpired)
    } else if inv.max_uses.is_some_and(|m| inv.uses >= m) {
        Some(Refusal::InviteUsedUp)
    } else {
        None
    }
}

/// Still counts against `max_invites_per_meeting`.
pub fn active(inv: &InviteRecord, now_ms: u64) -> bool {
    unusable(inv, now_ms).is_none()
}

impl InviteSet {
    /// The invite a secret opens, or `NotFound` (an unknown secret gets the same answer as an
    /// unknown meeting), or why it cannot be used.
    pub fn check_secret(&self, secret: &str, now_ms: u64) -> Result<&InviteRecord, Refusal> {
        let hash = hash_secret(secret);
        let inv = self
            .invites
            .iter()
            .find(|i| i.secret_sha256 == hash)
            .ok_or(Refusal::NotFound)?;
        match unusable(inv, now_ms) {
            Some(r) => Err(r),
            None => Ok(inv),
        }
    }

    /// Counts one use of invite `id`, or says why not.
    pub fn burn(&mut self, id: &str, now_ms: u64) -> Result<(), Refusal> {
        let inv = self
            .invites
            .iter_mut()
            .find(|i| i.id == id)
            .ok_or(Refusal::NotFound)?;
        if let Some(r) = unusable(inv, now_ms) {
            return Err(r);
        }
        inv.uses += 1;
        Ok(())
    }

    /// Drops invites that cannot be used any more and ended over a day ago, so the object
    /// stays bounded by about `max_invites_per_meeting` live ones.
    pub fn prune(&mut self, now_ms: u64) {
        const KEEP_MS: u64 = 86_400_000;
        self.invites.retain(|i| {
            active(i, now_ms)
                || (i.expires_at.saturating_add(KEEP_MS) > now_ms
                    && i.created_at.saturating_add(KEEP_MS) > now_ms)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invite(secret: &str, max_uses: Option<u32>) -> InviteRecord {
        InviteRecord {
            id: "i1".into(),
            secret_sha256: hash_secret(secret),
            label: None,
            created_at: 0,
            expires_at: 1000,
            max_uses,
            uses: 0,
            revoked: false,
        }
    }

    #[test]
    fn secrets_are_checked_by_hash_and_state() {
        let s = new_secret();
        assert_eq!(s.len(), 43);
        assert_ne!(hash_secret(&s), s);
        let mut set = InviteSet::default();
        set.invites.push(invite(&s, Some(1)));
        assert_eq!(
            set.check_secret(&s, 10).map(|i| i.id.clone()),
            Ok("i1".into())
        );
        assert_eq!(set.check_secret("other", 10).err(), Some(Refusal::NotFound));
        assert_eq!(
            set.check_secret(&s, 1000).err(),
            Some(Refusal::InviteExpired)
        );
        assert_eq!(set.burn("i1", 10), Ok(()));
        assert_eq!(set.check_secret(&s, 10).err(), Some(Refusal::InviteUsedUp));
        assert_eq!(set.burn("i1", 10), Err(Refusal::InviteUsedUp));
        set.invites[0].revoked = true;
        assert_eq!(set.check_secret(&s, 10).err(), Some(Refusal::InviteRevoked));
        assert_eq!(set.burn("nope", 10), Err(Refusal::NotFound));
    }
}
