//! What is stored for a meeting: `meetings/{slug}/meta` and `meetings/{slug}/invites` (JSON
//! objects with a format marker, updated with if-match), `meetings/{slug}/chat/{seq:020}`
//! (a batch of consecutive messages keyed by its first sequence, written if-absent), and the
//! per-user and per-group indexes that list a person's meetings. Every read is size-capped
//! before it is parsed.

use base64::Engine;
use bytes::Bytes;
use dure_collab::meet::Ban;
use dure_storage::{Key, PutCondition, Store, StoreError, Version};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Marker of the meta object; a reader refuses anything else rather than guess.
pub const META_FORMAT: &str = "dure.meeting.meta";
pub const INVITES_FORMAT: &str = "dure.meeting.invites";
pub const INDEX_FORMAT: &str = "dure.meeting.index";
pub const FORMAT_VERSION: u8 = 1;

/// Largest meta object read: invited lists and bans are capped far below this.
pub const META_MAX_BYTES: usize = 1024 * 1024;
/// Largest invites object read (`max_invites_per_meeting` is at most 10,000).
pub const INVITES_MAX_BYTES: usize = 4 * 1024 * 1024;
/// Largest index object read.
pub const INDEX_MAX_BYTES: usize = 1024 * 1024;
/// Marker of a chat batch object.
pub const CHAT_FORMAT: &str = "dure.meeting.chat";
/// Largest chat object read or written: a full batch of the largest messages, so that no
/// line can make a batch holding other people's lines too large. A message's 4,000 characters
/// encode to at most 24 KB of JSON (6 bytes for an escaped control character), its
/// 64-character name to under 400 bytes, ids and numbers to little more.
pub const CHAT_MAX_BYTES: usize = dure_collab::meet::CHAT_BATCH * 32 * 1024;
/// Entries one index object keeps; the oldest are dropped beyond (they stay reachable by
/// link, they are only no longer listed).
pub const INDEX_MAX_ENTRIES: usize = 1000;
/// Bans kept per meeting (a meeting holds at most a few hundred people).
pub const MAX_BANS: usize = 2000;
/// Invited users and invited groups per meeting, each.
pub const MAX_INVITED: usize = 500;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    Invited,
    Organisation,
    Guests,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lobby {
    Guests,
    EveryoneNotInvited,
    Everyone,
}

/// `meetings/{slug}/meta`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeetingMeta {
    pub format: String,
    pub v: u8,
    pub slug: String,
    pub title: String,
    /// Unix milliseconds.
    pub starts_at: Option<u64>,
    pub access: Access,
    pub lobby: Lobby,
    #[serde(default)]
    pub invited_users: Vec<String>,
    #[serde(default)]
    pub invited_groups: Vec<String>,
    pub doc_id: Option<String>,
    /// The creator first; users made host later follow.
    pub hosts: Vec<String>,
    pub created_by: String,
    /// Unix milliseconds.
    pub created_at: u64,
    #[serde(default)]
    pub ended: bool,
    #[serde(default)]
    pub bans: Vec<Ban>,
}

impl MeetingMeta {
    pub fn is_host(&self, user: &str) -> bool {
        self.created_by == user || self.hosts.iter().any(|h| h == user)
    }

    pub fn is_invited(&self, user: &str, groups: &[String]) -> bool {
        self.invited_users.iter().any(|u| u == user)
            || self
                .invited_groups
                .iter()
                .any(|g| groups.iter().any(|m| m == g))
    }

    pub fn user_banned(&self, user: &str) -> bool {
        self.bans.iter().any(|b| b.user_id.as_deref() == Some(user))
    }

    pub fn invite_banned(&self, invite: &str) -> bool {
        self.bans
            .iter()
            .any(|b| b.invite_id.as_deref() == Some(invite))
    }

    fn check(self) -> Result<Self, String> {
        if self.format != META_FORMAT || self.v != FORMAT_VERSION {
            return Err(format!("format {:?} v{}", self.format, self.v));
        }
        Ok(self)
    }
}

/// One guest invite. The secret itself is never stored, only its SHA-256.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteRecord {
    pub id: String,
    /// base64url of SHA-256 of the secret as given to the guest.
    pub secret_sha256: String,
    pub label: Option<String>,
    /// Unix milliseconds.
    pub created_at: u64,
    pub expires_at: u64,
    pub max_uses: Option<u32>,
    pub uses: u32,
    pub revoked: bool,
}

/// `meetings/{slug}/invites`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteSet {
    pub format: String,
    pub v: u8,
    pub invites: Vec<InviteRecord>,
}

impl Default for InviteSet {
    fn default() -> Self {
        InviteSet {
            format: INVITES_FORMAT.to_owned(),
            v: FORMAT_VERSION,
            invites: Vec::new(),
        }
    }
}

/// One row of a person's index of meetings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexEntry {
    pub slug: String,
    pub created_at: u64,
    /// This person created it (counts against `max_meetings_per_user` while not ended).
    #[serde(default)]
    pub created: bool,
    #[serde(default)]
    pub ended: bool,
}

/// `meetings-index/users/{b64 id}` and `meetings-index/groups/{b64 name}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeetingIndex {
    pub format: String,
    pub v: u8,
    pub entries: Vec<IndexEntry>,
}

impl Default for MeetingIndex {
    fn default() -> Self {
        MeetingIndex {
            format: INDEX_FORMAT.to_owned(),
            v: FORMAT_VERSION,
            entries: Vec::new(),
        }
    }
}

pub fn meta_key(slug: &str) -> Result<Key, StoreError> {
    Key::new(format!("meetings/{slug}/meta"))
}

pub fn invites_key(slug: &str) -> Result<Key, StoreError> {
    Key::new(format!("meetings/{slug}/invites"))
}

pub fn chat_prefix(slug: &str) -> String {
    format!("meetings/{slug}/chat/")
}

pub fn chat_key(slug: &str, seq: u64) -> Result<Key, StoreError> {
    Key::new(format!("meetings/{slug}/chat/{seq:020}"))
}

/// `meetings/{slug}/chat/{first_seq:020}`: messages written together, oldest first.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ChatBatch {
    pub format: String,
    pub v: u8,
    pub messages: Vec<dure_collab::meet::ChatMessage>,
}

impl ChatBatch {
    pub fn new(messages: Vec<dure_collab::meet::ChatMessage>) -> Self {
        ChatBatch {
            format: CHAT_FORMAT.to_owned(),
            v: FORMAT_VERSION,
            messages,
        }
    }

    /// Checks what was read against its key: the marker, at most a batch, consecutive
    /// sequences from the key's. Anything else is damage, not something to guess around.
    pub fn check(&self, key: &Key, first_seq: u64) -> Result<(), StoreError> {
        let corrupt = |reason: String| StoreError::Corrupt {
            key: key.to_string(),
            reason,
        };
        if self.format != CHAT_FORMAT || self.v != FORMAT_VERSION {
            return Err(corrupt(format!(
                "not a chat batch ({} v{})",
                self.format, self.v
            )));
        }
        if self.messages.is_empty() || self.messages.len() > dure_collab::meet::CHAT_BATCH {
            return Err(corrupt(format!(
                "{} messages in one batch",
                self.messages.len()
            )));
        }
        for (i, m) in self.messages.iter().enumerate() {
            if m.seq != first_seq + i as u64 {
                return Err(corrupt(format!("sequence {} at position {i}", m.seq)));
            }
        }
        Ok(())
    }
}

/// Ids and group names may hold any character; the key segment is their base64url (as
/// `meta/users/` does).
pub fn user_index_key(user: &str) -> Result<Key, StoreError> {
    Key::new(format!(
        "meetings-index/users/{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(user)
    ))
}

pub fn group_index_key(group: &str) -> Result<Key, StoreError> {
    Key::new(format!(
        "meetings-index/groups/{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(group)
    ))
}

/// Reads a JSON object of at most `cap` bytes. A larger or unparsable one is `Corrupt`: the
/// store holds only what Dure wrote, so either means damage or tampering, never a guess.
pub async fn read_json<T: DeserializeOwned>(
    store: &Store,
    key: &Key,
    cap: usize,
) -> Result<Option<(T, Version)>, StoreError> {
    let Some(obj) = store.get(key).await? else {
        return Ok(None);
    };
    if obj.data.len() > cap {
        return Err(StoreError::Corrupt {
            key: key.to_string(),
            reason: format!("{} bytes, more than the {cap} allowed", obj.data.len()),
        });
    }
    let value = serde_json::from_slice(&obj.data).map_err(|e| StoreError::Corrupt {
        key: key.to_string(),
        reason: e.to_string(),
    })?;
    Ok(Some((value, obj.version)))
}

pub async fn read_meta(
    store: &Store,
    slug: &str,
) -> Result<Option<(MeetingMeta, Version)>, StoreError> {
    let key = meta_key(slug)?;
    match read_json::<MeetingMeta>(store, &key, META_MAX_BYTES).await? {
        None => Ok(None),
        Some((m, v)) => {
            let m = m.check().map_err(|reason| StoreError::Corrupt {
                key: key.to_string(),
                reason,
            })?;
            Ok(Some((m, v)))
        }
    }
}

pub async fn read_invites(
    store: &Store,
    slug: &str,
) -> Result<Option<(InviteSet, Version)>, StoreError> {
    let key = invites_key(slug)?;
    match read_json::<InviteSet>(store, &key, INVITES_MAX_BYTES).await? {
        Some((set, _)) if set.format != INVITES_FORMAT || set.v != FORMAT_VERSION => {
            Err(StoreError::Corrupt {
                key: key.to_string(),
                reason: format!("format {:?} v{}", set.format, set.v),
            })
        }
        other => Ok(other),
    }
}

pub fn encode<T: Serialize>(value: &T) -> Result<Bytes, StoreError> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|e| StoreError::Corrupt {
            key: String::new(),
            reason: format!("unencodable: {e}"),
        })
}

/// Outcome of one step of a compare-and-swap loop.
pub enum Change<T> {
    /// Write this.
    Write(T),
    /// Nothing to write; the loop ends with this value.
    Keep(T),
}

/// How often an if-match update starts again when another writer got there first. High
/// enough that a burst of joins burning one invite all get an answer.
const CAS_ATTEMPTS: usize = 64;

/// Reads `key`, applies `f` and writes back with if-match (if-absent when missing), again
/// from what is stored whenever someone else wrote in between. `f` may refuse with `E`.
pub async fn update_json<T, E>(
    store: &Store,
    key: &Key,
    cap: usize,
    mut f: impl FnMut(Option<T>) -> Result<Change<T>, E>,
) -> Result<Result<T, E>, StoreError>
where
    T: Serialize + DeserializeOwned,
{
    for attempt in 0..CAS_ATTEMPTS {
        let current = read_json::<T>(store, key, cap).await?;
        let (value, version) = match current {
            Some((v, ver)) => (Some(v), Some(ver)),
            None => (None, None),
        };
        let next = match f(value) {
            Err(e) => return Ok(Err(e)),
            Ok(Change::Keep(v)) => return Ok(Ok(v)),
            Ok(Change::Write(v)) => v,
        };
        let cond = match version {
            Some(v) => PutCondition::IfMatch(v),
            None => PutCondition::IfAbsent,
        };
        match store.put(key, encode(&next)?, cond).await {
            Ok(_) => return Ok(Ok(next)),
            Err(StoreError::ConditionFailed { .. }) => {
                // Lost the race: back off a little (more each time) so a crowd spreads out.
                if attempt > 2 {
                    let ms = rand::random_range(0..(attempt as u64).min(20));
                    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                } else {
                    tokio::task::yield_now().await;
                }
            }
            Err(e) => return Err(e),
        }
    }
    Err(StoreError::Unavailable(format!(
        "{key} kept changing under {CAS_ATTEMPTS} attempts"
    )))
}
