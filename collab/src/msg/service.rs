//! [`Messaging`]: the conversations of one server. It keeps the loaded conversations' owners,
//! every signed-in user's sessions (for delivery and presence) and users' own state (their
//! conversations, read markers, archive flags), and answers the requests that are not one
//! conversation's business (list, create, history, search, read markers, presence).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use dure_storage::{PutCondition, Store, StoreError, Version};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::config::MsgConfig;
use super::history;
use super::hooks::{MsgAudit, MsgHooks};
use super::input::{self, Bad};
use super::layout::{self, ConvMeta, Kind, Member, MemberRole, UserConv, UserState};
use super::meeting::{Audience, MeetingSeed};
use super::owner::{self, Command, ConvHandle, Snapshot};
use super::presence::People;
use crate::rt::RtUser;
use crate::rt::hub::{Shared, now_ms, random_id};
use crate::rt::limits::Bucket;
use crate::rt::responder::Responder;
use crate::rt::session::Session;

/// Store reads in flight for history pages and searches, across the server.
const READS: usize = 16;
/// Searches at once, across the server (each reads up to `msg_search_scan_bytes` per
/// conversation).
const SEARCHES: usize = 2;
/// Conversations loaded at once while one list is built.
const LIST_LOADS: usize = 8;
/// Users' own states kept in memory (each at most `layout::USER_MAX_BYTES`, typically a few
/// KB): past this, states nobody is using are forgotten and read again when needed, so a
/// server that has seen every employee does not hold them all.
const STATES_CACHED: usize = 10_000;

type StateSlot = Arc<tokio::sync::Mutex<Option<(UserState, Option<Version>)>>>;

pub struct Messaging {
    pub(crate) store: Store,
    pub(crate) cfg: MsgConfig,
    pub(crate) hooks: Arc<dyn MsgHooks>,
    pub(crate) writes: Arc<Semaphore>,
    pub(crate) reads: Arc<Semaphore>,
    searches: Arc<Semaphore>,
    convs: Mutex<HashMap<String, ConvHandle>>,
    pub(crate) people: Mutex<People>,
    states: Mutex<HashMap<String, StateSlot>>,
    posts: Mutex<HashMap<String, Bucket>>,
    /// The people in the call of each live meeting, by the meeting's conversation id.
    audiences: Mutex<HashMap<String, Audience>>,
    stored: AtomicU64,
}

impl std::fmt::Debug for Messaging {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Messaging").finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Map inserts and removes only: a poisoned lock still holds a whole map.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The id of the direct conversation of two people: the same whoever starts it.
pub fn direct_id(a: &str, b: &str) -> String {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    let mut h = Sha256::new();
    h.update(b"dure.direct\0");
    h.update(lo.as_bytes());
    h.update(b"\0");
    h.update(hi.as_bytes());
    let digest = h.finalize();
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("d{hex}")
}

impl Messaging {
    pub fn new(store: Store, cfg: MsgConfig, hooks: Arc<dyn MsgHooks>) -> Self {
        Messaging {
            writes: Arc::new(Semaphore::new(cfg.store_writes.max(1))),
            reads: Arc::new(Semaphore::new(READS)),
            searches: Arc::new(Semaphore::new(SEARCHES)),
            store,
            cfg,
            hooks,
            convs: Mutex::new(HashMap::new()),
            people: Mutex::new(People::default()),
            states: Mutex::new(HashMap::new()),
            posts: Mutex::new(HashMap::new()),
            audiences: Mutex::new(HashMap::new()),
            stored: AtomicU64::new(0),
        }
    }

    /// Messages stored since start (for metrics).
    pub fn messages_stored(&self) -> u64 {
        self.stored.load(Ordering::Relaxed)
    }

    /// Conversations with a live owner.
    pub fn loaded_conversations(&self) -> usize {
        lock(&self.convs).len()
    }

    pub(crate) fn observed_message(&self) {
        self.stored.fetch_add(1, Ordering::Relaxed);
    }

    /// The owner of a conversation, started if there is none (`None` only if this is not the
    /// hub's messaging). With a seed, a meeting's conversation is created if it does not
    /// exist.
    fn conv(
        &self,
        shared: &Arc<Shared>,
        id: &str,
        seed: Option<&MeetingSeed>,
    ) -> Option<ConvHandle> {
        let ms = shared.msg.clone()?;
        let mut convs = lock(&self.convs);
        if let Some(h) = convs.get(id) {
            return Some(h.clone());
        }
        let h = owner::spawn(shared.clone(), ms, id.to_owned(), seed.cloned());
        convs.insert(id.to_owned(), h.clone());
        Some(h)
    }

    /// Queues a command without waiting (for a meeting's owner, which must never wait on a
    /// conversation); gives it back when the conversation's queue is full.
    // The refused command comes back whole so its responder can answer; it is moved, not
    // copied, and this is not a hot error path.
    #[allow(clippy::result_large_err)]
    pub(crate) fn try_send(
        &self,
        shared: &Arc<Shared>,
        id: &str,
        seed: Option<&MeetingSeed>,
        mut cmd: Command,
    ) -> Result<(), Command> {
        for _ in 0..3 {
            let Some(h) = self.conv(shared, id, seed) else {
                return Err(cmd);
            };
            match h.try_send(cmd) {
                Ok(()) => return Ok(()),
                Err(mpsc::error::TrySendError::Full(c)) => return Err(c),
                // That owner retired meanwhile: the next try starts a new one.
                Err(mpsc::error::TrySendError::Closed(c)) => cmd = c,
            }
        }
        Err(cmd)
    }

    pub(crate) fn set_audience(&self, id: &str, audience: Audience) {
        lock(&self.audiences).insert(id.to_owned(), audience);
    }

    /// Removes a meeting's audience if it is still this one (a newer owner of the same
    /// meeting may have registered its own).
    pub(crate) fn clear_audience(&self, id: &str, audience: &Audience) {
        let mut all = lock(&self.audiences);
        if all.get(id).is_some_and(|a| Arc::ptr_eq(a, audience)) {
            all.remove(id);
        }
    }

    pub(crate) fn audience(&self, id: &str) -> Option<Audience> {
        lock(&self.audiences).get(id).cloned()
    }

    /// An owner retires: removed from the map while nothing is queued for it (then closed,
    /// so a sender holding an old handle gets its command back and starts a new owner).
    /// `force` retires even with commands queued (the conversation does not exist).
    pub(crate) fn retire(&self, id: &str, rx: &mut mpsc::Receiver<Command>, force: bool) -> bool {
        let mut convs = lock(&self.convs);
        if !force && !rx.is_empty() {
            return false;
        }
        convs.remove(id);
        rx.close();
        true
    }

    /// Hands a command to the conversation's owner, starting one if needed.
    async fn send(&self, shared: &Arc<Shared>, id: &str, mut cmd: Command) -> Result<(), Command> {
        for _ in 0..3 {
            let Some(h) = self.conv(shared, id, None) else {
                return Err(cmd);
            };
            match h.send(cmd).await {
                Ok(()) => return Ok(()),
                Err(c) => cmd = c,
            }
        }
        Err(cmd)
    }

    async fn snapshot(&self, shared: &Arc<Shared>, id: &str, user_id: &str) -> Option<Snapshot> {
        let (reply, rx) = oneshot::channel();
        let cmd = Command::Snapshot {
            user_id: user_id.to_owned(),
            reply,
        };
        self.send(shared, id, cmd).await.ok()?;
        rx.await.ok().flatten()
    }

    async fn view(&self, shared: &Arc<Shared>, id: &str, user_id: &str) -> Option<Value> {
        let state = self.user_conv(user_id, id).await.unwrap_or_default();
        let (reply, rx) = oneshot::channel();
        let cmd = Command::View {
            user_id: user_id.to_owned(),
            state,
            reply,
        };
        self.send(shared, id, cmd).await.ok()?;
        rx.await.ok().flatten()
    }

    /// Sends an event to every connected device of these users.
    pub(crate) fn deliver<'a>(
        &self,
        users: impl Iterator<Item = &'a str>,
        kind: &str,
        data: &Value,
    ) {
        let sessions = lock(&self.people).sessions_of(users);
        if sessions.is_empty() {
            return;
        }
        let encoded = data.to_string();
        for s in sessions {
            s.emit_encoded(kind, &encoded);
        }
    }

    /// [`Messaging::deliver`] with the data already encoded.
    pub(crate) fn deliver_encoded<'a>(
        &self,
        users: impl Iterator<Item = &'a str>,
        kind: &str,
        data: &str,
    ) {
        for s in lock(&self.people).sessions_of(users) {
            s.emit_encoded(kind, data);
        }
    }

    /// Whether the user has a session (connected, or in its resume window).
    pub(crate) fn is_connected(&self, user_id: &str) -> bool {
        !lock(&self.people)
            .sessions_of(std::iter::once(user_id))
            .is_empty()
    }

    /// Registers a signed-in session for delivery; its presence is published once its
    /// socket is attached ([`Messaging::presence_touched`]).
    pub(crate) fn session_started(&self, session: &Arc<Session>) {
        lock(&self.people).add(session);
    }

    pub(crate) fn session_finished(&self, session: &Session) {
        let changed = lock(&self.people).remove(session);
        self.publish(changed);
    }

    /// A session joined or left a meeting: its user's presence may have changed.
    pub(crate) fn presence_touched(&self, session: &Session) {
        let changed = lock(&self.people).touch(session);
        self.publish(changed);
    }

    fn publish(&self, changed: Option<(String, &'static str, Vec<Arc<Session>>)>) {
        if let Some((user, state, watchers)) = changed {
            let data = json!({"user_id": user, "state": state});
            for s in watchers {
                s.emit("presence", &data);
            }
        }
    }

    fn state_slot(&self, user_id: &str) -> StateSlot {
        let mut states = lock(&self.states);
        if states.len() >= STATES_CACHED && !states.contains_key(user_id) {
            // Forget states nobody is using until a quarter of the room is free: the store
            // holds them, so a forgotten one costs one read when next needed. A slot in use
            // (its `Arc` held by a request) stays, so two requests never hold two slots.
            let mut excess = states.len() - STATES_CACHED * 3 / 4;
            states.retain(|_, slot| {
                if excess == 0 || Arc::strong_count(slot) > 1 {
                    return true;
                }
                excess -= 1;
                false
            });
        }
        states.entry(user_id.to_owned()).or_default().clone()
    }

    /// Users' states held in memory now (for tests and metrics).
    pub fn cached_user_states(&self) -> usize {
        lock(&self.states).len()
    }

    async fn user_state(&self, user_id: &str) -> Result<UserState, StoreError> {
        let slot = self.state_slot(user_id);
        let mut g = slot.lock().await;
        if g.is_none() {
            *g = Some(layout::read_user(&self.store, user_id).await?);
        }
        Ok(g.as_ref().map(|(s, _)| s.clone()).unwrap_or_default())
    }

    pub(crate) async fn user_conv(&self, user_id: &str, conv: &str) -> Option<UserConv> {
        self.user_state(user_id)
            .await
            .ok()?
            .conversations
            .get(conv)
            .cloned()
    }

    /// Applies `change` to the user's state and stores it (if-match; a lost race reads
    /// again). `change` answers whether anything changed.
    async fn update_user(
        &self,
        user_id: &str,
        change: impl Fn(&mut UserState) -> Result<bool, Bad>,
    ) -> Result<UserState, Bad> {
        let slot = self.state_slot(user_id);
        let mut g = slot.lock().await;
        for _ in 0..4 {
            if g.is_none() {
                *g = Some(
                    layout::read_user(&self.store, user_id)
                        .await
                        .map_err(|_| Bad::unavailable())?,
                );
            }
            let Some((state, version)) = g.as_ref() else {
                return Err(Bad::unavailable());
            };
            let mut next = state.clone();
            if !change(&mut next)? {
                return Ok(next);
            }
            match layout::write_user(&self.store, user_id, &next, version.clone()).await {
                Ok(v) => {
                    *g = Some((next.clone(), Some(v)));
                    return Ok(next);
                }
                // Another process changed it: read again.
                Err(StoreError::ConditionFailed { .. }) => *g = None,
                Err(e) => {
                    tracing::warn!(error = %e, "messaging user state not stored");
                    return Err(Bad::unavailable());
                }
            }
        }
        Err(Bad::unavailable())
    }

    /// Adds a conversation to a user's list, within `max_conversations_per_user`.
    pub(crate) async fn remember_conversation(&self, user_id: &str, conv: &str) -> Result<(), Bad> {
        let max = self.cfg.max_conversations_per_user;
        self.update_user(user_id, |s| {
            if s.conversations.contains_key(conv) {
                return Ok(false);
            }
            if s.conversations.len() >= max {
                return Err(Bad::new(
                    "quota_exceeded",
                    format!("a user may be in at most {max} conversations"),
                ));
            }
            s.conversations.insert(conv.to_owned(), UserConv::default());
            Ok(true)
        })
        .await
        .map(|_| ())
    }

    pub(crate) async fn forget_conversation(&self, user_id: &str, conv: &str) {
        let r = self
            .update_user(user_id, |s| Ok(s.conversations.remove(conv).is_some()))
            .await;
        if let Err(e) = r {
            tracing::warn!(conversation = %conv, error = %e.message, "conversation left in a user's list");
        }
    }

    /// Takes one of the user's posting tokens (`msg_posts_per_second`, burst four times that).
    pub(crate) fn may_post(&self, user_id: &str) -> bool {
        let rate = self.cfg.posts_per_second;
        let mut posts = lock(&self.posts);
        if posts.len() > 10_000 {
            // Buckets of people who posted long ago are full again: forgetting them changes
            // nothing.
            posts.clear();
        }
        posts
            .entry(user_id.to_owned())
            .or_insert_with(|| Bucket::new(rate, rate.saturating_mul(4)))
            .take()
    }

    /// Checks and claims the files a message attaches: uploaded by the sender to this
    /// conversation and not attached before.
    async fn claim_files(
        &self,
        conv: &str,
        user_id: &str,
        ids: &[String],
    ) -> Result<Vec<layout::Attachment>, Bad> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let got = layout::read_file_meta(&self.store, conv, id)
                .await
                .map_err(|_| Bad::unavailable())?;
            let Some((mut meta, version)) = got else {
                return Err(Bad::new("not_found", format!("no such file: {id}")));
            };
            if meta.uploader != user_id || meta.attached_seq.is_some() {
                return Err(Bad::new(
                    "forbidden",
                    format!("file {id} is not yours to attach"),
                ));
            }
            // Claimed before the message is written, so the retention task never removes a
            // file a stored message names.
            meta.attached_seq = Some(0);
            match layout::write_file_meta(&self.store, conv, &meta, PutCondition::IfMatch(version))
                .await
            {
                Ok(_) => out.push(meta.attachment()),
                Err(StoreError::ConditionFailed { .. }) => {
                    return Err(Bad::new(
                        "forbidden",
                        format!("file {id} is already attached"),
                    ));
                }
                Err(_) => return Err(Bad::unavailable()),
            }
        }
        Ok(out)
    }

    async fn create(
        &self,
        shared: &Arc<Shared>,
        user: &RtUser,
        data: &Map<String, Value>,
    ) -> Result<Value, Bad> {
        let now = now_ms();
        let me = Member {
            user_id: user.id.clone(),
            name: user.name.clone(),
            role: MemberRole::Admin,
            since: now,
        };
        let meta = match data.get("kind").and_then(Value::as_str) {
            Some("direct") => {
                let other = input::user(data, "user")?;
                if other == user.id {
                    return Err(Bad::request("a direct conversation is with someone else"));
                }
                let Some(name) = self.hooks.user_name(&other) else {
                    return Err(Bad::new("not_found", format!("no such user: {other}")));
                };
                let id = direct_id(&user.id, &other);
                match layout::read_meta(&self.store, &id).await {
                    Ok(Some(_)) => {
                        self.remember_conversation(&user.id, &id).await?;
                        self.remember_conversation(&other, &id).await?;
                        let view = self
                            .view(shared, &id, &user.id)
                            .await
                            .ok_or_else(Bad::unavailable)?;
                        return Ok(json!({"conversation": view, "created": false}));
                    }
                    Ok(None) => {}
                    Err(_) => return Err(Bad::unavailable()),
                }
                let them = Member {
                    user_id: other,
                    name,
                    role: MemberRole::Admin,
                    since: now,
                };
                ConvMeta::new(id, Kind::Direct, None, vec![me, them], &user.id, now)
            }
            Some("group") => {
                let title = input::title(data)?;
                let others = input::user_list(data, "members", self.cfg.max_conversation_members)?;
                let mut members = vec![me];
                for u in others {
                    if u == user.id {
                        continue;
                    }
                    let Some(name) = self.hooks.user_name(&u) else {
                        return Err(Bad::new("not_found", format!("no such user: {u}")));
                    };
                    members.push(Member {
                        user_id: u,
                        name,
                        role: MemberRole::Member,
                        since: now,
                    });
                }
                if members.len() > self.cfg.max_conversation_members {
                    return Err(Bad::new(
                        "quota_exceeded",
                        format!(
                            "a conversation has at most {} members",
                            self.cfg.max_conversation_members
                        ),
                    ));
                }
                let id = format!("g{}", random_id(16));
                ConvMeta::new(id, Kind::Group, Some(title), members, &user.id, now)
            }
            _ => return Err(Bad::request("kind must be direct or group")),
        };
        let id = meta.id.clone();
        // Everyone's list first (it holds their quota), undone if anything fails.
        let mut indexed: Vec<&str> = Vec::new();
        for m in &meta.members {
            if let Err(e) = self.remember_conversation(&m.user_id, &id).await {
                for u in indexed {
                    self.forget_conversation(u, &id).await;
                }
                return Err(e);
            }
            indexed.push(&m.user_id);
        }
        match layout::write_meta(&self.store, &meta, PutCondition::IfAbsent).await {
            Ok(_) => {}
            // The other person started the same direct conversation a moment ago.
            Err(StoreError::ConditionFailed { .. }) if meta.kind == Kind::Direct => {
                let view = self
                    .view(shared, &id, &user.id)
                    .await
                    .ok_or_else(Bad::unavailable)?;
                return Ok(json!({"conversation": view, "created": false}));
            }
            Err(e) => {
                tracing::warn!(conversation = %id, error = %e, "conversation not created");
                for u in indexed {
                    self.forget_conversation(u, &id).await;
                }
                return Err(Bad::unavailable());
            }
        }
        self.hooks.audit(MsgAudit {
            action: "conversation.create",
            conversation: id.clone(),
            actor: user.id.clone(),
            target: None,
            detail: meta.title.clone(),
        });
        let _ = self
            .send(
                shared,
                &id,
                Command::Created {
                    by: user.id.clone(),
                },
            )
            .await;
        let view = self
            .view(shared, &id, &user.id)
            .await
            .ok_or_else(Bad::unavailable)?;
        Ok(json!({"conversation": view, "created": true}))
    }

    async fn list(
        &self,
        shared: &Arc<Shared>,
        user: &RtUser,
        data: &Map<String, Value>,
    ) -> Result<Value, Bad> {
        use futures_util::StreamExt;
        let archived = data
            .get("archived")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let state = self
            .user_state(&user.id)
            .await
            .map_err(|_| Bad::unavailable())?;
        let ids: Vec<String> = state
            .conversations
            .iter()
            .filter(|(_, c)| c.archived == archived)
            .map(|(id, _)| id.clone())
            .collect();
        let mut views: Vec<Value> = futures_util::stream::iter(ids)
            .map(|id| async move { self.view(shared, &id, &user.id).await })
            .buffer_unordered(LIST_LOADS)
            .filter_map(|v| async move { v })
            .collect()
            .await;
        views.sort_by_key(|v| std::cmp::Reverse(v["last_at"].as_u64().unwrap_or(0)));
        Ok(json!({ "conversations": views }))
    }

    /// The marker clamped to the log's end and the unread counts there; `not_found` for a
    /// non-member.
    async fn unread_at(
        &self,
        shared: &Arc<Shared>,
        conv: &str,
        user_id: &str,
        read_seq: u64,
    ) -> Result<(u64, owner::Unread), Bad> {
        let (reply, rx) = oneshot::channel();
        let cmd = Command::Unread {
            user_id: user_id.to_owned(),
            read_seq,
            reply,
        };
        self.send(shared, conv, cmd)
            .await
            .map_err(|_| Bad::unavailable())?;
        rx.await
            .ok()
            .flatten()
            .ok_or_else(|| Bad::new("not_found", "no such conversation".to_owned()))
    }

    async fn mark_read(
        &self,
        shared: &Arc<Shared>,
        user: &RtUser,
        data: &Map<String, Value>,
    ) -> Result<Value, Bad> {
        let conv = input::conversation(data)?;
        let seq = input::req_seq(data, "seq")?;
        self.mark_read_at(shared, &user.id, &conv, seq).await
    }

    /// Moves the user's read marker up to `seq` (at most the conversation's last) and tells
    /// their devices.
    pub(crate) async fn mark_read_at(
        &self,
        shared: &Arc<Shared>,
        user_id: &str,
        conv: &str,
        seq: u64,
    ) -> Result<Value, Bad> {
        let (read, _) = self.unread_at(shared, conv, user_id, seq).await?;
        // Markers only rise: a device that was behind cannot make others unread again.
        let state = self
            .update_user(user_id, |s| {
                let c = s.conversations.entry(conv.to_owned()).or_default();
                if c.read_seq >= read {
                    return Ok(false);
                }
                c.read_seq = read;
                Ok(true)
            })
            .await?;
        let read = state.conversations.get(conv).map_or(read, |c| c.read_seq);
        let (read, unread) = self.unread_at(shared, conv, user_id, read).await?;
        let event = json!({
            "conversation": conv, "read_seq": read, "unread": unread.count,
            "unread_more": unread.more, "unread_mentions": unread.mentions,
        });
        self.deliver(std::iter::once(user_id), "conv.read", &event);
        Ok(json!({"read_seq": read, "unread": unread.count}))
    }

    async fn archive(
        &self,
        shared: &Arc<Shared>,
        user: &RtUser,
        data: &Map<String, Value>,
    ) -> Result<Value, Bad> {
        let conv = input::conversation(data)?;
        let archived = data
            .get("archived")
            .and_then(Value::as_bool)
            .ok_or_else(|| Bad::request("archived must be true or false"))?;
        if self.snapshot(shared, &conv, &user.id).await.is_none() {
            return Err(Bad::new("not_found", "no such conversation".to_owned()));
        }
        self.update_user(&user.id, |s| {
            let c = s.conversations.entry(conv.clone()).or_default();
            if c.archived == archived {
                return Ok(false);
            }
            c.archived = archived;
            Ok(true)
        })
        .await?;
        if let Some(view) = self.view(shared, &conv, &user.id).await {
            self.deliver(
                std::iter::once(user.id.as_str()),
                "conv.updated",
                &json!({ "conversation": view }),
            );
        }
        Ok(json!({}))
    }

    async fn history(
        &self,
        shared: &Arc<Shared>,
        user: &RtUser,
        data: &Map<String, Value>,
    ) -> Result<Value, Bad> {
        let conv = input::conversation(data)?;
        let before = input::opt_seq(data, "before")?;
        let after = input::opt_seq(data, "after")?;
        if before.is_some() && after.is_some() {
            return Err(Bad::request("page with before or after, not both"));
        }
        let limit = input::limit(data, 50, 100)?;
        let Some(snap) = self.snapshot(shared, &conv, &user.id).await else {
            return Err(Bad::new("not_found", "no such conversation".to_owned()));
        };
        let Ok(_permit) = self.reads.clone().try_acquire_owned() else {
            return Err(Bad::new(
                "rate_limited",
                "too many history reads at once; try again".to_owned(),
            ));
        };
        let (entries, more) = history::page(&self.store, &conv, &snap, before, after, limit)
            .await
            .map_err(|e| {
                tracing::warn!(conversation = %conv, error = %e, "conversation history unreadable");
                Bad::unavailable()
            })?;
        Ok(json!({"entries": entries, "more": more, "last_seq": snap.last_seq}))
    }

    async fn search(
        &self,
        shared: &Arc<Shared>,
        user: &RtUser,
        data: &Map<String, Value>,
    ) -> Result<Value, Bad> {
        let query = match data.get("query").and_then(Value::as_str).map(str::trim) {
            Some(q) if (2..=200).contains(&q.chars().count()) => q.to_lowercase(),
            _ => return Err(Bad::request("query must be 2 to 200 characters")),
        };
        let limit = input::limit(data, 20, 50)?;
        let convs: Vec<String> = match data.get("conversation") {
            None | Some(Value::Null) => self
                .user_state(&user.id)
                .await
                .map_err(|_| Bad::unavailable())?
                .conversations
                .into_keys()
                .collect(),
            Some(_) => vec![input::conversation(data)?],
        };
        let Ok(_permit) = self.searches.clone().try_acquire_owned() else {
            return Err(Bad::new(
                "rate_limited",
                "too many searches at once; try again".to_owned(),
            ));
        };
        let mut results = Vec::new();
        let mut truncated = false;
        for conv in convs {
            let Some(snap) = self.snapshot(shared, &conv, &user.id).await else {
                if data.get("conversation").is_some_and(|v| !v.is_null()) {
                    return Err(Bad::new("not_found", "no such conversation".to_owned()));
                }
                continue;
            };
            let (found, cut) = history::search(
                &self.store,
                &conv,
                &snap,
                &query,
                self.cfg.search_scan_bytes,
                limit - results.len(),
            )
            .await
            .map_err(|_| Bad::unavailable())?;
            truncated |= cut;
            results.extend(
                found
                    .into_iter()
                    .map(|m| json!({"conversation": conv, "message": layout::Entry::Message(m)})),
            );
            if results.len() >= limit {
                truncated = true;
                break;
            }
        }
        Ok(json!({"results": results, "truncated": truncated}))
    }

    fn doc_titles(&self, user: &RtUser, data: &Map<String, Value>) -> Result<Value, Bad> {
        let docs = input::user_list(data, "docs", 50)?;
        let titles: Map<String, Value> = docs
            .into_iter()
            .map(|d| {
                let t = self.hooks.doc_title(&d, user);
                (d, t.map_or(Value::Null, Value::String))
            })
            .collect();
        Ok(json!({ "titles": titles }))
    }

    fn presence(
        &self,
        session: &Arc<Session>,
        kind: &str,
        data: &Map<String, Value>,
    ) -> Result<Value, Bad> {
        if kind == "presence.set" {
            let away = match data.get("state").and_then(Value::as_str) {
                Some("online") => false,
                Some("away") => true,
                _ => return Err(Bad::request("state must be online or away")),
            };
            let changed = lock(&self.people).set_away(session, away);
            self.publish(changed);
            return Ok(json!({}));
        }
        let users = input::user_list(data, "users", 200)?;
        let now = lock(&self.people).watch(session, users);
        Ok(json!({ "presence": now }))
    }
}

/// Handles one messaging request from a socket; answers through the responder.
pub(crate) async fn handle(
    shared: &Arc<Shared>,
    session: Arc<Session>,
    kind: String,
    data: Map<String, Value>,
    r: Responder,
) {
    let Some(ms) = shared.msg.as_ref() else {
        return r.err("unknown_type", "messaging is not enabled on this server");
    };
    let Some(user) = session.principal.user().cloned() else {
        return r.err("forbidden", "messaging is for signed-in users");
    };
    let outcome = match kind.as_str() {
        "conv.list" => ms.list(shared, &user, &data).await,
        "conv.get" => match input::conversation(&data) {
            Ok(id) => ms
                .view(shared, &id, &user.id)
                .await
                .map(|v| json!({ "conversation": v }))
                .ok_or_else(|| Bad::new("not_found", "no such conversation".to_owned())),
            Err(e) => Err(e),
        },
        "conv.create" => ms.create(shared, &user, &data).await,
        "conv.archive" => ms.archive(shared, &user, &data).await,
        "msg.read" => ms.mark_read(shared, &user, &data).await,
        "msg.history" => ms.history(shared, &user, &data).await,
        "msg.search" => ms.search(shared, &user, &data).await,
        "doc.titles" => ms.doc_titles(&user, &data),
        "presence.set" | "presence.watch" => ms.presence(&session, &kind, &data),
        "msg.send" | "msg.edit" | "msg.delete" | "msg.typing" | "conv.rename" | "conv.add"
        | "conv.remove" | "conv.leave" | "conv.role" => {
            return to_owner(ms, shared, session, user, kind, data, r).await;
        }
        _ => Err(Bad::new("unknown_type", "no such request type".to_owned())),
    };
    match outcome {
        Ok(v) => r.ok(v),
        Err(e) => r.err(e.code, &e.message),
    }
}

async fn to_owner(
    ms: &Messaging,
    shared: &Arc<Shared>,
    session: Arc<Session>,
    user: RtUser,
    kind: String,
    data: Map<String, Value>,
    r: Responder,
) {
    let conv = match input::conversation(&data) {
        Ok(c) => c,
        Err(e) => return r.err(e.code, &e.message),
    };
    let mut attachments = Vec::new();
    if kind == "msg.send" {
        let ids = match input::attachment_ids(&data) {
            Ok(ids) => ids,
            Err(e) => return r.err(e.code, &e.message),
        };
        if !ids.is_empty() {
            // Membership first, so a non-member learns nothing about the files.
            if ms.snapshot(shared, &conv, &user.id).await.is_none() {
                return r.err("not_found", "no such conversation");
            }
            match ms.claim_files(&conv, &user.id, &ids).await {
                Ok(a) => attachments = a,
                Err(e) => return r.err(e.code, &e.message),
            }
        }
    }
    let cmd = Command::Request {
        user,
        session,
        kind,
        data,
        attachments,
        responder: r,
    };
    if let Err(Command::Request { responder, .. }) = ms.send(shared, &conv, cmd).await {
        responder.err("unavailable", "the conversation is restarting; try again");
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    struct NoHooks;

    impl MsgHooks for NoHooks {
        fn user_name(&self, _: &str) -> Option<String> {
            None
        }
        fn doc_title(&self, _: &str, _: &RtUser) -> Option<String> {
            None
        }
        fn audit(&self, _: MsgAudit) {}
    }

    #[tokio::test]
    async fn users_states_in_memory_are_bounded_and_a_forgotten_one_is_read_again() {
        let ms = Messaging::new(Store::memory(), MsgConfig::default(), Arc::new(NoHooks));
        let conv = format!("g{}", "0".repeat(32));
        for i in 0..STATES_CACHED + 500 {
            ms.remember_conversation(&format!("u{i}"), &conv)
                .await
                .unwrap();
            assert!(ms.cached_user_states() <= STATES_CACHED, "at user {i}");
        }
        // Some states were forgotten; the store still has them.
        let forgotten = (0..STATES_CACHED)
            .map(|i| format!("u{i}"))
            .find(|u| lock(&ms.states).get(u).is_none())
            .expect("a forgotten state");
        assert!(ms.user_conv(&forgotten, &conv).await.is_some());
        // An update after forgetting starts from what is stored, not from nothing.
        let gone = (0..STATES_CACHED)
            .map(|i| format!("u{i}"))
            .find(|u| lock(&ms.states).get(u).is_none())
            .expect("another forgotten state");
        let other = format!("g{}", "1".repeat(32));
        ms.remember_conversation(&gone, &other).await.unwrap();
        let state = ms.user_state(&gone).await.unwrap();
        assert_eq!(state.conversations.len(), 2);
    }
}
