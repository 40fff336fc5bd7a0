//! What messaging keeps in the store (`docs/messaging.md`, "Store layout"): a conversation's
//! meta, its log in batches keyed by the first sequence, its files, and each user's own state
//! (conversations, read markers, archive flags). Every read is size-capped before it is parsed
//! and checked against its key; anything else is damage, reported, never guessed around.

use std::collections::BTreeMap;

use bytes::Bytes;
use dure_storage::{Key, PutCondition, Store, StoreError, Version};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub const META_FORMAT: &str = "dure.conversation";
pub const LOG_FORMAT: &str = "dure.conversation.log";
pub const FILE_FORMAT: &str = "dure.conversation.file";
pub const USER_FORMAT: &str = "dure.msg.user";
pub const FORMAT_VERSION: u8 = 1;

/// Entries written together at most (one object per group commit).
pub const LOG_BATCH: usize = 32;
/// Largest meta object: `max_conversation_members` is at most 10,000 members of a few
/// hundred bytes each.
pub const META_MAX_BYTES: usize = 4 * 1024 * 1024;
/// Largest log batch: 32 of the largest entries (a message's 8,000 characters encode to at
/// most 48 KB of JSON; mentions, documents and attachments are capped to a few KB).
pub const LOG_MAX_BYTES: usize = LOG_BATCH * 72 * 1024;
/// Largest user state object (1,000 conversations of under 100 bytes each, with room).
pub const USER_MAX_BYTES: usize = 1024 * 1024;
/// Largest file meta object.
pub const FILE_META_MAX_BYTES: usize = 16 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Direct,
    Group,
    /// A meeting's chat: members are the signed-in people who entered the call.
    Meeting,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberRole {
    Admin,
    Member,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub user_id: String,
    pub name: String,
    pub role: MemberRole,
    /// Unix ms when they joined.
    pub since: u64,
}

/// `conversations/{id}/meta`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConvMeta {
    pub format: String,
    pub v: u8,
    pub id: String,
    pub kind: Kind,
    pub title: Option<String>,
    pub members: Vec<Member>,
    pub created_by: String,
    pub created_at: u64,
    /// The meeting's slug, for a meeting conversation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meeting: Option<String>,
}

impl ConvMeta {
    pub fn new(
        id: String,
        kind: Kind,
        title: Option<String>,
        members: Vec<Member>,
        by: &str,
        at: u64,
    ) -> Self {
        ConvMeta {
            format: META_FORMAT.to_owned(),
            v: FORMAT_VERSION,
            id,
            kind,
            title,
            members,
            created_by: by.to_owned(),
            created_at: at,
            meeting: None,
        }
    }

    pub fn member(&self, user_id: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.user_id == user_id)
    }

    fn check(&self, key: &Key, id: &str) -> Result<(), StoreError> {
        if self.format != META_FORMAT || self.v != FORMAT_VERSION || self.id != id {
            return Err(corrupt(
                key,
                format!("not the meta of {id} ({} v{})", self.format, self.v),
            ));
        }
        Ok(())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Author {
    /// Empty (and left out of the JSON) for a meeting guest, who is not signed in.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user_id: String,
    pub name: String,
    /// The meeting participant who posted it from inside the call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub participant: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub guest: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub id: String,
    pub name: String,
    pub size: u64,
    #[serde(rename = "type")]
    pub content_type: String,
    pub thumbnail: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub seq: u64,
    pub id: String,
    pub at: u64,
    pub author: Author,
    pub text: String,
    pub client_ref: Option<String>,
    pub reply_to: Option<u64>,
    pub mentions: Vec<String>,
    pub docs: Vec<String>,
    pub attachments: Vec<Attachment>,
    pub edited_at: Option<u64>,
    pub deleted: bool,
}

/// An edit or a deletion of the message at `target`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub seq: u64,
    pub at: u64,
    pub by: String,
    pub target: u64,
}

/// A membership or title change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub seq: u64,
    pub at: u64,
    pub by: String,
    /// `created`, `renamed`, `added`, `removed`, `left`, `role`.
    pub action: String,
    pub users: Vec<String>,
    pub title: Option<String>,
    pub role: Option<String>,
}

/// One log entry; the JSON form is both what is stored and what clients get.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Entry {
    Message(Message),
    Edit(Change),
    Delete(Change),
    Event(Event),
}

impl Entry {
    pub fn seq(&self) -> u64 {
        match self {
            Entry::Message(m) => m.seq,
            Entry::Edit(c) | Entry::Delete(c) => c.seq,
            Entry::Event(e) => e.seq,
        }
    }

    pub fn set_seq(&mut self, seq: u64) {
        match self {
            Entry::Message(m) => m.seq = seq,
            Entry::Edit(c) | Entry::Delete(c) => c.seq = seq,
            Entry::Event(e) => e.seq = seq,
        }
    }

    pub fn at(&self) -> u64 {
        match self {
            Entry::Message(m) => m.at,
            Entry::Edit(c) | Entry::Delete(c) => c.at,
            Entry::Event(e) => e.at,
        }
    }

    pub fn message(&self) -> Option<&Message> {
        match self {
            Entry::Message(m) => Some(m),
            _ => None,
        }
    }
}

/// `conversations/{id}/log/{first_seq:020}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LogBatch {
    pub format: String,
    pub v: u8,
    pub entries: Vec<Entry>,
}

impl LogBatch {
    pub fn new(entries: Vec<Entry>) -> Self {
        LogBatch {
            format: LOG_FORMAT.to_owned(),
            v: FORMAT_VERSION,
            entries,
        }
    }

    /// The marker, at most a batch, consecutive sequences from the key's.
    pub fn check(&self, key: &Key, first_seq: u64) -> Result<(), StoreError> {
        if self.format != LOG_FORMAT || self.v != FORMAT_VERSION {
            return Err(corrupt(
                key,
                format!("not a log batch ({} v{})", self.format, self.v),
            ));
        }
        if self.entries.is_empty() || self.entries.len() > LOG_BATCH {
            return Err(corrupt(
                key,
                format!("{} entries in one batch", self.entries.len()),
            ));
        }
        for (i, e) in self.entries.iter().enumerate() {
            if e.seq() != first_seq + i as u64 {
                return Err(corrupt(
                    key,
                    format!(
                        "entry {i} has sequence {}, not {}",
                        e.seq(),
                        first_seq + i as u64
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// One conversation in a user's state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserConv {
    pub read_seq: u64,
    pub archived: bool,
}

/// `msg-users/{hex user id}`: the user's conversations with read markers and archive flags.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserState {
    pub format: String,
    pub v: u8,
    pub conversations: BTreeMap<String, UserConv>,
}

impl Default for UserState {
    fn default() -> Self {
        UserState {
            format: USER_FORMAT.to_owned(),
            v: FORMAT_VERSION,
            conversations: BTreeMap::new(),
        }
    }
}

/// `conversations/{id}/files/{file}/meta`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileMeta {
    pub format: String,
    pub v: u8,
    pub id: String,
    pub name: String,
    pub size: u64,
    #[serde(rename = "type")]
    pub content_type: String,
    pub uploader: String,
    pub at: u64,
    pub thumbnail: bool,
    /// The message it was attached to; `None` until then (the retention task removes files
    /// left unattached).
    pub attached_seq: Option<u64>,
}

impl FileMeta {
    pub fn attachment(&self) -> Attachment {
        Attachment {
            id: self.id.clone(),
            name: self.name.clone(),
            size: self.size,
            content_type: self.content_type.clone(),
            thumbnail: self.thumbnail,
        }
    }
}

/// Which part of a stored file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FilePart {
    Data,
    Meta,
    Thumb,
}

fn corrupt(key: &Key, reason: String) -> StoreError {
    StoreError::Corrupt {
        key: key.to_string(),
        reason,
    }
}

fn is_hex_id(id: &str, prefix: &[char]) -> bool {
    let mut chars = id.chars();
    chars.next().is_some_and(|c| prefix.contains(&c))
        && id.len() == 33
        && chars.all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
}

/// `d…`, `g…` or `m…` (direct, group, meeting) followed by 32 lowercase hex digits.
pub fn is_conversation_id(id: &str) -> bool {
    is_hex_id(id, &['d', 'g', 'm'])
}

/// `f` followed by 32 lowercase hex digits.
pub fn is_file_id(id: &str) -> bool {
    is_hex_id(id, &['f'])
}

fn conv_key(id: &str, rest: &str) -> Result<Key, StoreError> {
    if !is_conversation_id(id) {
        return Err(StoreError::InvalidKey {
            key: id.to_owned(),
            reason: "not a conversation id",
        });
    }
    Key::new(format!("conversations/{id}/{rest}"))
}

pub fn meta_key(id: &str) -> Result<Key, StoreError> {
    conv_key(id, "meta")
}

pub fn log_prefix(id: &str) -> String {
    format!("conversations/{id}/log/")
}

pub fn log_key(id: &str, first_seq: u64) -> Result<Key, StoreError> {
    conv_key(id, &format!("log/{first_seq:020}"))
}

pub fn files_prefix(id: &str) -> String {
    format!("conversations/{id}/files/")
}

pub fn file_key(id: &str, file: &str, part: FilePart) -> Result<Key, StoreError> {
    if !is_file_id(file) {
        return Err(StoreError::InvalidKey {
            key: file.to_owned(),
            reason: "not a file id",
        });
    }
    let part = match part {
        FilePart::Data => "data",
        FilePart::Meta => "meta",
        FilePart::Thumb => "thumb",
    };
    conv_key(id, &format!("files/{file}/{part}"))
}

pub fn user_key(user_id: &str) -> Result<Key, StoreError> {
    // Subjects may hold any character; the key segment is their hex.
    let hex: String = user_id.bytes().map(|b| format!("{b:02x}")).collect();
    Key::new(format!("msg-users/{hex}"))
}

pub async fn read_json<T: DeserializeOwned>(
    store: &Store,
    key: &Key,
    cap: usize,
) -> Result<Option<(T, Version)>, StoreError> {
    let Some(obj) = store.get(key).await? else {
        return Ok(None);
    };
    if obj.data.len() > cap {
        return Err(corrupt(
            key,
            format!("{} bytes, more than the {cap} allowed", obj.data.len()),
        ));
    }
    let value = serde_json::from_slice(&obj.data).map_err(|e| corrupt(key, e.to_string()))?;
    Ok(Some((value, obj.version)))
}

fn encode<T: Serialize>(value: &T, key: &Key, cap: usize) -> Result<Bytes, StoreError> {
    let body = serde_json::to_vec(value).map_err(|e| corrupt(key, e.to_string()))?;
    if body.len() > cap {
        // What could not be read back is never written.
        return Err(corrupt(
            key,
            format!("{} bytes, more than the {cap} allowed", body.len()),
        ));
    }
    Ok(Bytes::from(body))
}

pub async fn read_meta(store: &Store, id: &str) -> Result<Option<(ConvMeta, Version)>, StoreError> {
    let key = meta_key(id)?;
    let got = read_json::<ConvMeta>(store, &key, META_MAX_BYTES).await?;
    if let Some((m, _)) = &got {
        m.check(&key, id)?;
    }
    Ok(got)
}

pub async fn write_meta(
    store: &Store,
    meta: &ConvMeta,
    cond: PutCondition,
) -> Result<Version, StoreError> {
    let key = meta_key(&meta.id)?;
    let body = encode(meta, &key, META_MAX_BYTES)?;
    store.put(&key, body, cond).await
}

/// The log's batches, `(first_seq, key)`, oldest first.
pub async fn list_batches(store: &Store, id: &str) -> Result<Vec<(u64, Key)>, StoreError> {
    meta_key(id)?;
    let mut keys: Vec<(u64, Key)> = store
        .list(&log_prefix(id))
        .await?
        .into_iter()
        .filter_map(|e| {
            let first = e.key.as_str().rsplit('/').next()?.parse::<u64>().ok()?;
            Some((first, e.key))
        })
        .collect();
    keys.sort_by_key(|(first, _)| *first);
    Ok(keys)
}

pub async fn read_batch(
    store: &Store,
    key: &Key,
    first_seq: u64,
) -> Result<Option<(LogBatch, Version)>, StoreError> {
    let got = read_json::<LogBatch>(store, key, LOG_MAX_BYTES).await?;
    if let Some((b, _)) = &got {
        b.check(key, first_seq)?;
    }
    Ok(got)
}

/// Writes consecutive entries as one new batch; refused if that batch exists (a second
/// writer, or a retry of a write that landed).
pub async fn append_batch(store: &Store, id: &str, entries: Vec<Entry>) -> Result<(), StoreError> {
    let first = entries.first().map_or(0, Entry::seq);
    let key = log_key(id, first)?;
    let batch = LogBatch::new(entries);
    batch.check(&key, first)?;
    let body = encode(&batch, &key, LOG_MAX_BYTES)?;
    store
        .put(&key, body, PutCondition::IfAbsent)
        .await
        .map(|_| ())
}

/// Rewrites a batch read at `version` (an edit or deletion of one of its messages).
pub async fn rewrite_batch(
    store: &Store,
    key: &Key,
    first_seq: u64,
    batch: &LogBatch,
    version: Version,
) -> Result<(), StoreError> {
    batch.check(key, first_seq)?;
    let body = encode(batch, key, LOG_MAX_BYTES)?;
    store
        .put(key, body, PutCondition::IfMatch(version))
        .await
        .map(|_| ())
}

pub async fn read_user(
    store: &Store,
    user_id: &str,
) -> Result<(UserState, Option<Version>), StoreError> {
    let key = user_key(user_id)?;
    match read_json::<UserState>(store, &key, USER_MAX_BYTES).await? {
        None => Ok((UserState::default(), None)),
        Some((s, v)) => {
            if s.format != USER_FORMAT || s.v != FORMAT_VERSION {
                return Err(corrupt(
                    &key,
                    format!("not a user state ({} v{})", s.format, s.v),
                ));
            }
            Ok((s, Some(v)))
        }
    }
}

pub async fn write_user(
    store: &Store,
    user_id: &str,
    state: &UserState,
    version: Option<Version>,
) -> Result<Version, StoreError> {
    let key = user_key(user_id)?;
    let body = encode(state, &key, USER_MAX_BYTES)?;
    let cond = match version {
        Some(v) => PutCondition::IfMatch(v),
        None => PutCondition::IfAbsent,
    };
    store.put(&key, body, cond).await
}

pub async fn read_file_meta(
    store: &Store,
    id: &str,
    file: &str,
) -> Result<Option<(FileMeta, Version)>, StoreError> {
    let key = file_key(id, file, FilePart::Meta)?;
    let got = read_json::<FileMeta>(store, &key, FILE_META_MAX_BYTES).await?;
    if let Some((m, _)) = &got
        && (m.format != FILE_FORMAT || m.v != FORMAT_VERSION || m.id != file)
    {
        return Err(corrupt(&key, "not this file's meta".to_owned()));
    }
    Ok(got)
}

pub async fn write_file_meta(
    store: &Store,
    id: &str,
    meta: &FileMeta,
    cond: PutCondition,
) -> Result<Version, StoreError> {
    let key = file_key(id, &meta.id, FilePart::Meta)?;
    let body = encode(meta, &key, FILE_META_MAX_BYTES)?;
    store.put(&key, body, cond).await
}

/// Removes a file's data, thumbnail and meta (missing parts included).
pub async fn delete_file(store: &Store, id: &str, file: &str) -> Result<(), StoreError> {
    let keys = [
        file_key(id, file, FilePart::Data)?,
        file_key(id, file, FilePart::Thumb)?,
        file_key(id, file, FilePart::Meta)?,
    ];
    store.delete_many(&keys).await
}
