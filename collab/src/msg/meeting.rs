//! Each meeting's chat as one conversation (kind `meeting`): stored, numbered and delivered by
//! the same owner and log writer as every other conversation, so it has the same group
//! commit, durability and history. What differs is who may use it:
//!
//! - inside the call, the meeting's owner decides (guests included): it hands lines to the
//!   conversation with [`MeetingChat::post`] and keeps the [`Audience`], the sessions of the
//!   people in the call, to whom the conversation shows each stored line as `meet.chat`;
//! - outside it, membership decides as for a group: every signed-in person who entered the
//!   call becomes a member, so the chat is in their conversation list afterwards, with
//!   history, search and unread counts.
//!
//! The meeting side never waits on the conversation (commands are queued without waiting and
//! answered by the conversation), so a slow store delays chat, never signalling or admission.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

use dure_storage::{PutCondition, Store, StoreError, Version};

use super::history;
use super::layout::{self, Author, ConvMeta, Entry, Kind, LOG_BATCH, Message};
use super::owner::Command;
use super::service::Messaging;
use crate::rt::RtUser;
use crate::rt::hub::Shared;
use crate::rt::responder::Responder;
use crate::rt::session::Session;

/// Stored lines a newcomer to the call gets.
pub(crate) const BACKLOG: usize = 50;
/// Lines of a meeting's chat from before it was a conversation that are carried over.
const LEGACY_LINES: usize = 10_000;

/// The people in a live meeting's call: participant id to session.
pub(crate) type Audience = Arc<Mutex<HashMap<String, Arc<Session>>>>;

pub(crate) fn lock(a: &Audience) -> MutexGuard<'_, HashMap<String, Arc<Session>>> {
    // Inserts and removes only: a poisoned lock still holds a whole map.
    a.lock().unwrap_or_else(|p| p.into_inner())
}

/// What a meeting's conversation is created from when it does not exist yet.
#[derive(Clone, Debug)]
pub(crate) struct MeetingSeed {
    pub slug: String,
    pub title: String,
}

/// The id of a meeting's conversation: derived from the slug, so every node and every restart
/// finds the same one, and as unguessable as the slug.
pub fn meeting_conversation_id(slug: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"dure.meeting\0");
    h.update(slug.as_bytes());
    let digest = h.finalize();
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("m{hex}")
}

/// The meeting owner's end of its conversation.
pub(crate) struct MeetingChat {
    pub id: String,
    seed: MeetingSeed,
    audience: Audience,
    ms: Arc<Messaging>,
}

impl MeetingChat {
    /// Opens the chat of a live meeting (none when messaging is off) and registers its
    /// audience with the conversation.
    pub(crate) fn open(shared: &Shared, slug: &str, title: &str) -> Option<MeetingChat> {
        let ms = shared.msg.clone()?;
        let id = meeting_conversation_id(slug);
        let audience: Audience = Arc::default();
        ms.set_audience(&id, audience.clone());
        Some(MeetingChat {
            id,
            seed: MeetingSeed {
                slug: slug.to_owned(),
                title: title.to_owned(),
            },
            audience,
            ms,
        })
    }

    // The refused command comes back whole so its responder can answer; it is moved, not
    // copied, and this is not a hot error path.
    #[allow(clippy::result_large_err)]
    fn queue(&self, shared: &Arc<Shared>, cmd: Command) -> Result<(), Command> {
        self.ms.try_send(shared, &self.id, Some(&self.seed), cmd)
    }

    /// Someone entered the call: they see stored lines from now on, get the backlog, and a
    /// signed-in person becomes a member.
    pub(crate) fn entered(
        &self,
        shared: &Arc<Shared>,
        participant: &str,
        session: &Arc<Session>,
        user: Option<RtUser>,
    ) {
        lock(&self.audience).insert(participant.to_owned(), session.clone());
        if let Some(user) = user
            && self.queue(shared, Command::MeetingJoin { user }).is_err()
        {
            tracing::debug!(conversation = %self.id, "meeting chat busy: member not added");
        }
        let cmd = Command::MeetingBacklog {
            participant: participant.to_owned(),
            session: session.clone(),
        };
        if self.queue(shared, cmd).is_err() {
            tracing::debug!(conversation = %self.id, "meeting chat busy: no backlog sent");
        }
    }

    pub(crate) fn left(&self, participant: &str) {
        lock(&self.audience).remove(participant);
    }

    /// Marks everything stored so far read for a signed-in person leaving the call (the call
    /// showed it to them), in a task of its own.
    pub(crate) fn read_all(&self, shared: &Arc<Shared>, user: &RtUser) {
        let (ms, shared2, id, user_id) = (
            self.ms.clone(),
            shared.clone(),
            self.id.clone(),
            user.id.clone(),
        );
        shared.tracker.spawn(async move {
            if let Err(e) = ms.mark_read_at(&shared2, &user_id, &id, u64::MAX).await {
                tracing::debug!(conversation = %id, code = e.code, "meeting chat not marked read");
            }
        });
    }

    /// A host removed a signed-in person: the conversation is theirs no more either.
    pub(crate) fn removed(&self, shared: &Arc<Shared>, user_id: &str) {
        let cmd = Command::MeetingRemove {
            user_id: user_id.to_owned(),
        };
        if self.queue(shared, cmd).is_err() {
            tracing::warn!(conversation = %self.id, "meeting chat busy: removed person kept");
        }
    }

    /// A line from someone in the call (the meeting owner checked they are); answered once
    /// it is stored.
    pub(crate) fn post(
        &self,
        shared: &Arc<Shared>,
        author: Author,
        data: Map<String, Value>,
        r: Responder,
    ) {
        let cmd = Command::MeetingPost {
            author,
            data,
            responder: r,
        };
        if let Err(Command::MeetingPost { responder, .. }) = self.queue(shared, cmd) {
            responder.err("unavailable", "the meeting chat is busy; try again");
        }
    }

    /// Older lines for someone in the call, read in a task of its own.
    pub(crate) fn history(
        &self,
        shared: &Arc<Shared>,
        before: Option<u64>,
        limit: usize,
        r: Responder,
    ) {
        let Ok(permit) = self.ms.reads.clone().try_acquire_owned() else {
            return r.err(
                "rate_limited",
                "too many chat history reads at once; try again",
            );
        };
        let (reply, rx) = oneshot::channel();
        if self
            .queue(shared, Command::MeetingSnapshot { reply })
            .is_err()
        {
            return r.err("unavailable", "the meeting chat is busy; try again");
        }
        let (ms, id) = (self.ms.clone(), self.id.clone());
        shared.tracker.spawn(async move {
            let _permit = permit;
            let Ok(snap) = rx.await else {
                return r.err("unavailable", "the meeting chat cannot be read right now");
            };
            match history::page(&ms.store, &id, &snap, before, None, limit).await {
                Ok((entries, _)) => {
                    let messages: Vec<&Entry> =
                        entries.iter().filter(|e| e.message().is_some()).collect();
                    r.ok(json!({ "messages": messages }));
                }
                Err(e) => {
                    tracing::warn!(conversation = %id, error = %e, "meeting chat unreadable");
                    r.err("unavailable", "the meeting chat cannot be read right now");
                }
            }
        });
    }

    /// The meeting is over here: nobody is shown its lines from this owner any more.
    pub(crate) fn close(&self) {
        lock(&self.audience).clear();
        self.ms.clear_audience(&self.id, &self.audience);
    }
}

/// Shows a stored line to the people in the call (each once, encoded once).
pub(crate) fn show(audience: &Audience, entry: &Entry) {
    let Ok(data) = serde_json::to_string(entry) else {
        return;
    };
    for (participant, session) in lock(audience).iter() {
        // Someone who left or moved on keeps no stale seat here.
        if session
            .meeting()
            .is_some_and(|m| &m.participant == participant)
        {
            session.emit_encoded("meet.chat", &data);
        }
    }
}

/// Creates a meeting's conversation: with no members yet (they join as they enter the call)
/// and with the chat the meeting had before its chat was a conversation
/// (`meetings/{slug}/chat/`, the newest [`LEGACY_LINES`]), numbered from 1. The meta is
/// written last, if absent: a creation cut short is done again, whole, by the next owner
/// (its batches are the same and already there).
pub(crate) async fn create(
    shared: &Shared,
    store: &Store,
    id: &str,
    seed: &MeetingSeed,
) -> Result<(ConvMeta, Version), StoreError> {
    let old = match shared.dir.legacy_chat(&seed.slug, LEGACY_LINES).await {
        Ok(old) => old,
        Err(e) => {
            // Not created without it: a later try carries it over instead of losing it.
            return Err(StoreError::Unavailable(format!(
                "the meeting's earlier chat cannot be read: {e}"
            )));
        }
    };
    let entries: Vec<Entry> = old
        .into_iter()
        .enumerate()
        .map(|(i, m)| {
            Entry::Message(Message {
                seq: i as u64 + 1,
                id: m.id,
                at: m.at,
                author: Author {
                    guest: m.author.user_id.is_none(),
                    user_id: m.author.user_id.unwrap_or_default(),
                    name: m.author.name,
                    participant: Some(m.author.participant),
                },
                text: m.text,
                client_ref: m.client_ref,
                reply_to: None,
                mentions: Vec::new(),
                docs: Vec::new(),
                attachments: Vec::new(),
                edited_at: None,
                deleted: false,
            })
        })
        .collect();
    for chunk in entries.chunks(LOG_BATCH) {
        match layout::append_batch(store, id, chunk.to_vec()).await {
            Ok(()) | Err(StoreError::ConditionFailed { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    let mut meta = ConvMeta::new(
        id.to_owned(),
        Kind::Meeting,
        Some(seed.title.clone()),
        Vec::new(),
        "",
        crate::rt::hub::now_ms(),
    );
    meta.meeting = Some(seed.slug.clone());
    match layout::write_meta(store, &meta, PutCondition::IfAbsent).await {
        Ok(v) => Ok((meta, v)),
        Err(StoreError::ConditionFailed { .. }) => layout::read_meta(store, id)
            .await?
            .ok_or_else(|| StoreError::Unavailable("meeting conversation vanished".to_owned())),
        Err(e) => Err(e),
    }
}
