//! The owner task of one loaded conversation: the only place its members, title and roles
//! change and its messages are ordered, so every member sees one order and a removed member
//! loses access at the next request. The log writer (writer.rs) stores; the owner answers and
//! delivers once an entry is durable.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dure_storage::{PutCondition, Version};
use serde_json::{Map, Value, json};
use tokio::sync::{mpsc, oneshot};

use super::hooks::MsgAudit;
use super::input::{self, Bad};
use super::layout::{self, Author, ConvMeta, Entry, Event, Kind, Member, MemberRole, Message};
use super::meeting::MeetingSeed;
use super::service::Messaging;
use super::writer::{BatchIndex, Patch, Stored, WriteOp, Writer};
use crate::rt::RtUser;
use crate::rt::hub::{Shared, now_ms, random_id};
use crate::rt::responder::Responder;
use crate::rt::session::Session;

/// Commands queued for one conversation; senders wait when it is full.
const QUEUE: usize = 256;
/// Ops waiting for the writer; past this, senders get `unavailable`.
const WRITE_QUEUE: usize = 256;
/// Durable entries kept in memory: the newest for unread counts and previews.
pub(crate) const RECENT: usize = 200;
/// Entries read at load to fill the cache.
const LOAD_BATCHES: usize = 8;
/// One typing notice relayed per socket and conversation in this time.
const TYPING_EVERY: Duration = Duration::from_secs(3);

// Commands are built once and moved through the queue; the large variant is the common one.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Command {
    Request {
        user: RtUser,
        session: Arc<Session>,
        kind: String,
        data: Map<String, Value>,
        /// Attachments already checked and claimed by the caller.
        attachments: Vec<layout::Attachment>,
        responder: Responder,
    },
    Stored(Stored),
    /// The conversation as `user_id` sees it, given their read marker and archive flag.
    View {
        user_id: String,
        state: layout::UserConv,
        reply: oneshot::Sender<Option<Value>>,
    },
    /// What a reader of the log needs, if `user_id` is a member.
    Snapshot {
        user_id: String,
        reply: oneshot::Sender<Option<Snapshot>>,
    },
    /// Unread counts at a new read marker, if `user_id` is a member.
    Unread {
        user_id: String,
        read_seq: u64,
        reply: oneshot::Sender<Option<(u64, Unread)>>,
    },
    /// A conversation created by the service: append its `created` entry.
    Created {
        by: String,
    },
    /// A line from someone in a meeting's call, already let in by the meeting's owner.
    MeetingPost {
        author: Author,
        data: Map<String, Value>,
        responder: Responder,
    },
    /// A signed-in person entered the meeting's call: they become a member.
    MeetingJoin {
        user: RtUser,
    },
    /// A host removed a signed-in person from the meeting.
    MeetingRemove {
        user_id: String,
    },
    /// Someone entered the call: send them the newest stored lines.
    MeetingBacklog {
        participant: String,
        session: Arc<Session>,
    },
    /// What a history read for someone in the call needs.
    MeetingSnapshot {
        reply: oneshot::Sender<Snapshot>,
    },
}

/// What a history read or a search needs from the owner.
#[derive(Clone)]
pub(crate) struct Snapshot {
    pub index: Vec<u64>,
    pub last_seq: u64,
}

#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Unread {
    pub count: usize,
    pub mentions: usize,
    /// More than the cache could count.
    pub more: bool,
}

#[derive(Clone)]
pub(crate) struct ConvHandle {
    tx: mpsc::Sender<Command>,
}

impl ConvHandle {
    /// Queues a command; gives it back when the owner has retired.
    pub(crate) async fn send(&self, cmd: Command) -> Result<(), Command> {
        self.tx.send(cmd).await.map_err(|e| e.0)
    }

    // The refused command comes back whole so its responder can answer; it is moved, not
    // copied, and this is not a hot error path.
    #[allow(clippy::result_large_err)]
    pub(crate) fn try_send(&self, cmd: Command) -> Result<(), mpsc::error::TrySendError<Command>> {
        self.tx.try_send(cmd)
    }
}

/// Starts the owner of conversation `id`; it loads the conversation first and serves the
/// commands queued meanwhile (answering `not_found` if it does not exist).
/// With a seed, a meeting's conversation that does not exist yet is created.
pub(crate) fn spawn(
    shared: Arc<Shared>,
    ms: Arc<Messaging>,
    id: String,
    seed: Option<MeetingSeed>,
) -> ConvHandle {
    let (tx, rx) = mpsc::channel(QUEUE);
    let handle = ConvHandle { tx };
    shared
        .tracker
        .spawn(run(shared.clone(), ms, id, seed, handle.clone(), rx));
    handle
}

struct Owner {
    shared: Arc<Shared>,
    msg: Arc<Messaging>,
    id: String,
    meta: ConvMeta,
    version: Version,
    last_seq: u64,
    recent: VecDeque<Entry>,
    writer: mpsc::Sender<WriteOp>,
    index: BatchIndex,
    typing: HashMap<String, Instant>,
    in_flight: usize,
}

async fn run(
    shared: Arc<Shared>,
    ms: Arc<Messaging>,
    id: String,
    seed: Option<MeetingSeed>,
    handle: ConvHandle,
    mut rx: mpsc::Receiver<Command>,
) {
    let mut owner = match load(&shared, &ms, &id, seed, handle).await {
        Ok(Some(o)) => o,
        outcome => {
            // Unknown or unreadable: answer what queued, then retire.
            let (code, message) = match outcome {
                Err(e) => {
                    tracing::warn!(conversation = %id, error = %e, "conversation unavailable");
                    ("unavailable", "the conversation cannot be read right now")
                }
                _ => ("not_found", "no such conversation"),
            };
            ms.retire(&id, &mut rx, true);
            while let Ok(cmd) = rx.try_recv() {
                refuse(cmd, code, message);
            }
            return;
        }
    };
    let idle = ms.cfg.idle_unload;
    let cancel = shared.cancel.clone();
    loop {
        let cmd = tokio::select! {
            cmd = rx.recv() => cmd,
            _ = tokio::time::sleep(idle), if owner.in_flight == 0 => {
                if ms.retire(&id, &mut rx, false) {
                    // Commands that raced the retirement are still served.
                    while let Ok(cmd) = rx.try_recv() {
                        owner.command(cmd).await;
                    }
                    break;
                }
                continue;
            }
            _ = cancel.cancelled(), if owner.in_flight == 0 => break,
        };
        let Some(cmd) = cmd else { break };
        owner.command(cmd).await;
    }
}

fn refuse(cmd: Command, code: &'static str, message: &str) {
    match cmd {
        Command::Request { responder, .. } => responder.err(code, message),
        Command::Stored(s) => {
            if let Some(r) = s.responder {
                r.err("unavailable", "the conversation closed; try again");
            }
        }
        Command::View { reply, .. } => {
            let _ = reply.send(None);
        }
        Command::Snapshot { reply, .. } => {
            let _ = reply.send(None);
        }
        Command::Unread { reply, .. } => {
            let _ = reply.send(None);
        }
        Command::MeetingPost { responder, .. } => responder.err(code, message),
        // A dropped reply answers the waiting reader `unavailable`.
        Command::MeetingSnapshot { .. } => {}
        Command::Created { .. }
        | Command::MeetingJoin { .. }
        | Command::MeetingRemove { .. }
        | Command::MeetingBacklog { .. } => {}
    }
}

async fn load(
    shared: &Arc<Shared>,
    ms: &Arc<Messaging>,
    id: &str,
    seed: Option<MeetingSeed>,
    handle: ConvHandle,
) -> Result<Option<Owner>, dure_storage::StoreError> {
    let m = ms.as_ref();
    let mut found = layout::read_meta(&m.store, id).await?;
    if found.is_none()
        && let Some(seed) = seed
    {
        found = Some(super::meeting::create(shared, &m.store, id, &seed).await?);
    }
    let Some((meta, version)) = found else {
        return Ok(None);
    };
    let batches = layout::list_batches(&m.store, id).await?;
    let mut recent: VecDeque<Entry> = VecDeque::new();
    for (first, key) in batches.iter().rev().take(LOAD_BATCHES) {
        if let Some((b, _)) = layout::read_batch(&m.store, key, *first).await? {
            for e in b.entries.into_iter().rev() {
                recent.push_front(e);
            }
        }
        if recent.len() >= RECENT {
            break;
        }
    }
    while recent.len() > RECENT {
        recent.pop_front();
    }
    let last_seq = recent.back().map_or(0, Entry::seq);
    let index: BatchIndex = Arc::new(std::sync::Mutex::new(
        batches.iter().map(|(f, _)| *f).collect(),
    ));
    let (wtx, wrx) = mpsc::channel(WRITE_QUEUE);
    let writer = Writer {
        store: m.store.clone(),
        conv: id.to_owned(),
        next_seq: last_seq + 1,
        index: index.clone(),
        permits: m.writes.clone(),
        owner: handle,
    };
    shared.tracker.spawn(writer.run(wrx));
    Ok(Some(Owner {
        shared: shared.clone(),
        msg: ms.clone(),
        id: id.to_owned(),
        meta,
        version,
        last_seq,
        recent,
        writer: wtx,
        index,
        typing: HashMap::new(),
        in_flight: 0,
    }))
}

fn bad(r: Responder, e: Bad) {
    r.err(e.code, &e.message);
}

impl Owner {
    fn ms(&self) -> &Messaging {
        &self.msg
    }

    fn members(&self) -> impl Iterator<Item = &str> {
        self.meta.members.iter().map(|m| m.user_id.as_str())
    }

    async fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Request {
                user,
                session,
                kind,
                data,
                attachments,
                responder,
            } => {
                let Some(member) = self.meta.member(&user.id).cloned() else {
                    return responder.err("not_found", "no such conversation");
                };
                self.request(
                    &user,
                    &session,
                    member,
                    &kind,
                    &data,
                    attachments,
                    responder,
                )
                .await;
            }
            Command::Stored(s) => self.stored(s),
            Command::View {
                user_id,
                state,
                reply,
            } => {
                let view = self
                    .meta
                    .member(&user_id)
                    .is_some()
                    .then(|| self.view(&user_id, &state));
                let _ = reply.send(view);
            }
            Command::Snapshot { user_id, reply } => {
                let snap = self.meta.member(&user_id).is_some().then(|| Snapshot {
                    index: super::writer::index_snapshot(&self.index),
                    last_seq: self.last_seq,
                });
                let _ = reply.send(snap);
            }
            Command::Unread {
                user_id,
                read_seq,
                reply,
            } => {
                let got = self.meta.member(&user_id).is_some().then(|| {
                    let read = read_seq.min(self.last_seq);
                    (read, self.unread(&user_id, read))
                });
                let _ = reply.send(got);
            }
            Command::Created { by } => {
                // The creator has the view in the answer; the others learn of it here.
                self.announce(Some(&by)).await;
                let users = self.members().map(str::to_owned).collect();
                self.append_event(&by, "created", users, self.meta.title.clone(), None, None);
            }
            Command::MeetingPost {
                author,
                data,
                responder,
            } => self.meeting_post(author, &data, responder),
            Command::MeetingJoin { user } => self.meeting_join(user).await,
            Command::MeetingRemove { user_id } => self.meeting_remove(&user_id).await,
            Command::MeetingBacklog {
                participant,
                session,
            } => {
                let messages: Vec<&Entry> = self
                    .recent
                    .iter()
                    .filter(|e| e.message().is_some())
                    .rev()
                    .take(super::meeting::BACKLOG)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                // Only if they are still in the call (they may have left while this queued).
                if session
                    .meeting()
                    .is_some_and(|m| m.participant == participant)
                {
                    session.emit("meet.chat.backlog", &json!({ "messages": messages }));
                }
            }
            Command::MeetingSnapshot { reply } => {
                let _ = reply.send(Snapshot {
                    index: super::writer::index_snapshot(&self.index),
                    last_seq: self.last_seq,
                });
            }
        }
    }

    /// A line from the call: checked like any message, but the meeting's owner has already
    /// decided that its author may post (guests included).
    fn meeting_post(&mut self, author: Author, data: &Map<String, Value>, r: Responder) {
        if self.meta.kind != Kind::Meeting {
            return r.err("not_found", "no such conversation");
        }
        let parsed = match input::parse_send(data, &self.ms().cfg, &self.meta, self.last_seq) {
            Ok(p) => p,
            Err(e) => return bad(r, e),
        };
        if parsed.text.trim().is_empty() {
            return r.err("bad_request", "text must not be blank");
        }
        // Guests are counted by their participant id.
        let poster = author
            .participant
            .clone()
            .filter(|_| author.user_id.is_empty())
            .unwrap_or_else(|| author.user_id.clone());
        if !self.ms().may_post(&poster) {
            return r.err("rate_limited", "too many messages; slow down");
        }
        let entry = Entry::Message(Message {
            seq: 0,
            id: format!("m{}", random_id(16)),
            at: now_ms(),
            author,
            text: parsed.text,
            client_ref: parsed.client_ref,
            reply_to: parsed.reply_to,
            mentions: parsed.mentions,
            docs: parsed.docs,
            attachments: Vec::new(),
            edited_at: None,
            deleted: false,
        });
        self.queue(WriteOp::Append {
            entry,
            responder: Some(r),
        });
    }

    /// A signed-in person in the call becomes a member (listed, with history and unread
    /// counts afterwards). Their own list first: it holds their quota; past it they still
    /// chat in the call, the conversation is just not in their list.
    async fn meeting_join(&mut self, user: RtUser) {
        if self.meta.kind != Kind::Meeting || self.meta.member(&user.id).is_some() {
            return;
        }
        let msg = self.msg.clone();
        let ms = msg.as_ref();
        if self.meta.members.len() >= ms.cfg.max_conversation_members {
            tracing::debug!(conversation = %self.id, "meeting chat has as many members as it may have");
            return;
        }
        if let Err(e) = ms.remember_conversation(&user.id, &self.id).await {
            tracing::debug!(conversation = %self.id, code = e.code, "meeting chat not added to a user's list");
            return;
        }
        let member = Member {
            user_id: user.id.clone(),
            name: user.name.clone(),
            role: MemberRole::Member,
            since: now_ms(),
        };
        let result = self
            .write_meta(|m| {
                if m.member(&member.user_id).is_none() {
                    m.members.push(member.clone());
                }
                Ok(())
            })
            .await;
        if result.is_err() {
            ms.forget_conversation(&user.id, &self.id).await;
            return;
        }
        // Only the newcomer is told: telling everyone of every arrival would cost a
        // 150-person meeting 150 events per join.
        let common = self.view_common().to_string();
        self.announce_to(&common, &user.id).await;
    }

    async fn meeting_remove(&mut self, user_id: &str) {
        if self.meta.kind != Kind::Meeting || self.meta.member(user_id).is_none() {
            return;
        }
        let target = user_id.to_owned();
        if self
            .write_meta(|m| {
                m.members.retain(|x| x.user_id != target);
                Ok(())
            })
            .await
            .is_err()
        {
            tracing::warn!(conversation = %self.id, "a person removed from a meeting is still a member of its chat");
            return;
        }
        let ms = self.ms();
        ms.forget_conversation(user_id, &self.id).await;
        ms.deliver(
            std::iter::once(user_id),
            "conv.removed",
            &json!({"conversation": self.id, "reason": "removed"}),
        );
    }

    /// Unread messages by others above `read_seq`, counted in the cache.
    fn unread(&self, user_id: &str, read_seq: u64) -> Unread {
        let mut u = Unread::default();
        let oldest = self.recent.front().map_or(1, Entry::seq);
        u.more = read_seq + 1 < oldest;
        for e in self.recent.iter().rev() {
            if e.seq() <= read_seq {
                break;
            }
            if let Entry::Message(m) = e
                && m.author.user_id != user_id
                && !m.deleted
            {
                u.count += 1;
                if m.mentions.iter().any(|x| x == user_id) {
                    u.mentions += 1;
                }
            }
        }
        u
    }

    /// What every member's view shares, encoded once (a large group's member list is most
    /// of it).
    fn view_common(&self) -> Value {
        // Messages travel as log entries everywhere (with `kind`), so clients handle one shape.
        let last_message = self
            .recent
            .iter()
            .rev()
            .find(|e| matches!(e, Entry::Message(_)));
        json!({
            "id": self.meta.id,
            "kind": self.meta.kind,
            "title": self.meta.title,
            "members": self.meta.members.iter().map(|m| json!({
                "user_id": m.user_id, "name": m.name, "role": m.role,
            })).collect::<Vec<_>>(),
            "meeting": self.meta.meeting,
            "created_by": self.meta.created_by,
            "created_at": self.meta.created_at,
            "last_seq": self.last_seq,
            "last_at": self.recent.back().map_or(self.meta.created_at, Entry::at),
            "last_message": last_message,
        })
    }

    /// What is the reader's own: their marker, unread counts, archive flag and role.
    fn view_own(&self, user_id: &str, state: &layout::UserConv) -> Value {
        let read_seq = state.read_seq.min(self.last_seq);
        let unread = self.unread(user_id, read_seq);
        json!({
            "read_seq": read_seq,
            "unread": unread.count,
            "unread_more": unread.more,
            "unread_mentions": unread.mentions,
            "archived": state.archived,
            "role": self.meta.member(user_id).map(|m| m.role),
        })
    }

    fn view(&self, user_id: &str, state: &layout::UserConv) -> Value {
        let mut v = self.view_common();
        if let (Some(map), Value::Object(own)) = (v.as_object_mut(), self.view_own(user_id, state))
        {
            map.extend(own);
        }
        v
    }

    #[allow(clippy::too_many_arguments)]
    async fn request(
        &mut self,
        user: &RtUser,
        session: &Arc<Session>,
        member: Member,
        kind: &str,
        data: &Map<String, Value>,
        attachments: Vec<layout::Attachment>,
        r: Responder,
    ) {
        match kind {
            "msg.send" => self.send(user, data, attachments, r),
            "msg.edit" | "msg.delete" => self.change(user, kind, data, r),
            "msg.typing" => {
                self.typing(user, session);
                r.ok(json!({}));
            }
            "conv.rename" | "conv.add" | "conv.remove" | "conv.leave" | "conv.role" => {
                if self.meta.kind == Kind::Direct {
                    return r.err("bad_request", "a direct conversation has fixed members");
                }
                // Its members are the people who entered the call, its title the meeting's.
                if self.meta.kind == Kind::Meeting && kind != "conv.leave" {
                    return r.err("bad_request", "a meeting's chat follows its meeting");
                }
                if kind != "conv.leave" && member.role != MemberRole::Admin {
                    return r.err("forbidden", "only admins of this conversation may do that");
                }
                if let Err(e) = self.membership(user, kind, data, r).await {
                    tracing::debug!(conversation = %self.id, code = e.code, "membership change refused");
                }
            }
            _ => r.err("unknown_type", "no such request type"),
        }
    }

    fn queue(&mut self, op: WriteOp) {
        match self.writer.try_send(op) {
            Ok(()) => self.in_flight += 1,
            Err(e) => {
                let op = match e {
                    mpsc::error::TrySendError::Full(op) | mpsc::error::TrySendError::Closed(op) => {
                        op
                    }
                };
                let r = match op {
                    WriteOp::Append { responder, .. } | WriteOp::Change { responder, .. } => {
                        responder
                    }
                };
                if let Some(r) = r {
                    r.err("unavailable", "the conversation is busy; try again");
                }
            }
        }
    }

    fn send(
        &mut self,
        user: &RtUser,
        data: &Map<String, Value>,
        attachments: Vec<layout::Attachment>,
        r: Responder,
    ) {
        let parsed = match input::parse_send(data, &self.ms().cfg, &self.meta, self.last_seq) {
            Ok(p) => p,
            Err(e) => return bad(r, e),
        };
        if parsed.text.is_empty() && attachments.is_empty() {
            return r.err("bad_request", "a message needs text or an attachment");
        }
        // Counted once the message is known to be valid: a refused one costs nothing.
        if !self.ms().may_post(&user.id) {
            return r.err("rate_limited", "too many messages; slow down");
        }
        let entry = Entry::Message(Message {
            seq: 0,
            id: format!("m{}", random_id(16)),
            at: now_ms(),
            author: Author {
                user_id: user.id.clone(),
                name: user.name.clone(),
                participant: None,
                guest: false,
            },
            text: parsed.text,
            client_ref: parsed.client_ref,
            reply_to: parsed.reply_to,
            mentions: parsed.mentions,
            docs: parsed.docs,
            attachments,
            edited_at: None,
            deleted: false,
        });
        self.queue(WriteOp::Append {
            entry,
            responder: Some(r),
        });
    }

    fn change(&mut self, user: &RtUser, kind: &str, data: &Map<String, Value>, r: Responder) {
        let target = match input::req_seq(data, "seq") {
            Ok(s) if s <= self.last_seq => s,
            Ok(_) => return r.err("not_found", "no such message"),
            Err(e) => return bad(r, e),
        };
        let at = now_ms();
        let change = layout::Change {
            seq: 0,
            at,
            by: user.id.clone(),
            target,
        };
        let (patch, entry) = if kind == "msg.edit" {
            let text = match input::text(data, self.ms().cfg.max_message_chars) {
                Ok(t) if !t.is_empty() => t,
                Ok(_) => return r.err("bad_request", "an edit needs text; delete instead"),
                Err(e) => return bad(r, e),
            };
            (Patch::Edit { text, at }, Entry::Edit(change))
        } else {
            (Patch::Delete, Entry::Delete(change))
        };
        if !self.ms().may_post(&user.id) {
            return r.err("rate_limited", "too many messages; slow down");
        }
        self.queue(WriteOp::Change {
            target,
            by: user.id.clone(),
            patch,
            entry,
            responder: Some(r),
        });
    }

    fn typing(&mut self, user: &RtUser, session: &Arc<Session>) {
        let now = Instant::now();
        if self.typing.len() > 1000 {
            self.typing
                .retain(|_, at| now.duration_since(*at) < TYPING_EVERY);
        }
        if let Some(at) = self.typing.get(&session.id)
            && now.duration_since(*at) < TYPING_EVERY
        {
            return;
        }
        self.typing.insert(session.id.clone(), now);
        let data = json!({"conversation": self.id, "user_id": user.id, "name": user.name});
        let others = self.members().filter(|m| *m != user.id);
        self.ms().deliver(others, "msg.typing", &data);
    }

    fn append_event(
        &mut self,
        by: &str,
        action: &str,
        users: Vec<String>,
        title: Option<String>,
        role: Option<String>,
        r: Option<Responder>,
    ) {
        let entry = Entry::Event(Event {
            seq: 0,
            at: now_ms(),
            by: by.to_owned(),
            action: action.to_owned(),
            users,
            title,
            role,
        });
        self.queue(WriteOp::Append {
            entry,
            responder: r,
        });
    }

    /// Writes the meta with `change` applied; on a lost race, reads it again and retries.
    async fn write_meta(
        &mut self,
        change: impl Fn(&mut ConvMeta) -> Result<(), Bad>,
    ) -> Result<(), Bad> {
        for _ in 0..3 {
            let mut next = self.meta.clone();
            change(&mut next)?;
            match layout::write_meta(
                &self.ms().store,
                &next,
                PutCondition::IfMatch(self.version.clone()),
            )
            .await
            {
                Ok(v) => {
                    self.meta = next;
                    self.version = v;
                    return Ok(());
                }
                Err(dure_storage::StoreError::ConditionFailed { .. }) => {
                    match layout::read_meta(&self.ms().store, &self.id).await {
                        Ok(Some((m, v))) => {
                            self.meta = m;
                            self.version = v;
                        }
                        _ => return Err(Bad::unavailable()),
                    }
                }
                Err(e) => {
                    tracing::warn!(conversation = %self.id, error = %e, "conversation meta not stored");
                    return Err(Bad::unavailable());
                }
            }
        }
        Err(Bad::unavailable())
    }

    async fn membership(
        &mut self,
        user: &RtUser,
        kind: &str,
        data: &Map<String, Value>,
        r: Responder,
    ) -> Result<(), Bad> {
        let outcome = self.membership_inner(user, kind, data).await;
        match outcome {
            Ok(Changed {
                action,
                users,
                title,
                role,
                removed,
                added,
            }) => {
                for u in &users {
                    self.ms().hooks.audit(MsgAudit {
                        action: audit_action(&action),
                        conversation: self.id.clone(),
                        actor: user.id.clone(),
                        target: Some(u.clone()),
                        detail: role.clone().or_else(|| title.clone()),
                    });
                }
                if users.is_empty() {
                    self.ms().hooks.audit(MsgAudit {
                        action: audit_action(&action),
                        conversation: self.id.clone(),
                        actor: user.id.clone(),
                        target: None,
                        detail: title.clone(),
                    });
                }
                let ms = self.ms();
                for (u, reason) in &removed {
                    ms.forget_conversation(u, &self.id).await;
                    ms.deliver(
                        std::iter::once(u.as_str()),
                        "conv.removed",
                        &json!({"conversation": self.id, "reason": reason}),
                    );
                }
                let _ = added;
                self.announce(None).await;
                self.append_event(&user.id, &action, users, title, role, Some(r));
                Ok(())
            }
            Err(e) => {
                r.err(e.code, &e.message);
                Err(e)
            }
        }
    }

    /// Sends every member's devices the conversation as that member sees it.
    /// `except` (who made the change and was answered) is not told.
    async fn announce(&self, except: Option<&str>) {
        // The shared part is encoded once and each member's own fields spliced in: with
        // every view built whole, announcing to a 1,000-member group took seconds.
        let common = self.view_common().to_string();
        for m in &self.meta.members {
            if except != Some(m.user_id.as_str()) {
                self.announce_to(&common, &m.user_id).await;
            }
        }
    }

    /// Sends one member's devices the conversation, given its shared part encoded.
    async fn announce_to(&self, common: &str, user_id: &str) {
        let ms = self.ms();
        let Some(open) = common.strip_suffix('}') else {
            return;
        };
        if !ms.is_connected(user_id) {
            return;
        }
        let state = ms.user_conv(user_id, &self.id).await.unwrap_or_default();
        let own = self.view_own(user_id, &state).to_string();
        let own = own.strip_prefix('{').unwrap_or(&own);
        let data = format!(r#"{{"conversation":{open},{own}}}"#);
        ms.deliver_encoded(std::iter::once(user_id), "conv.updated", &data);
    }

    async fn membership_inner(
        &mut self,
        user: &RtUser,
        kind: &str,
        data: &Map<String, Value>,
    ) -> Result<Changed, Bad> {
        let now = now_ms();
        match kind {
            "conv.rename" => {
                let title = input::title(data)?;
                let t = title.clone();
                self.write_meta(|m| {
                    m.title = Some(t.clone());
                    Ok(())
                })
                .await?;
                Ok(Changed::new("renamed", Vec::new()).title(title))
            }
            "conv.add" => {
                let users = input::user_list(data, "users", 100)?;
                let msg = self.msg.clone();
                let ms = msg.as_ref();
                let mut new = Vec::new();
                for u in users {
                    if self.meta.member(&u).is_some() || new.iter().any(|m: &Member| m.user_id == u)
                    {
                        continue;
                    }
                    let Some(name) = ms.hooks.user_name(&u) else {
                        return Err(Bad::new("not_found", format!("no such user: {u}")));
                    };
                    new.push(Member {
                        user_id: u,
                        name,
                        role: MemberRole::Member,
                        since: now,
                    });
                }
                if self.meta.members.len() + new.len() > ms.cfg.max_conversation_members {
                    return Err(Bad::new(
                        "quota_exceeded",
                        format!(
                            "a conversation has at most {} members",
                            ms.cfg.max_conversation_members
                        ),
                    ));
                }
                // Each newcomer's own list first (it holds their quota); undone if the meta
                // write fails.
                let mut indexed = Vec::new();
                for m in &new {
                    match ms.remember_conversation(&m.user_id, &self.id).await {
                        Ok(()) => indexed.push(m.user_id.clone()),
                        Err(e) => {
                            for u in &indexed {
                                ms.forget_conversation(u, &self.id).await;
                            }
                            return Err(e);
                        }
                    }
                }
                let added = new.clone();
                if let Err(e) = self
                    .write_meta(|m| {
                        for a in &added {
                            if m.member(&a.user_id).is_none() {
                                m.members.push(a.clone());
                            }
                        }
                        Ok(())
                    })
                    .await
                {
                    for u in &indexed {
                        ms.forget_conversation(u, &self.id).await;
                    }
                    return Err(e);
                }
                let ids: Vec<String> = new.into_iter().map(|m| m.user_id).collect();
                Ok(Changed::new("added", ids.clone()).added(ids))
            }
            "conv.remove" | "conv.leave" => {
                let target = if kind == "conv.leave" {
                    user.id.clone()
                } else {
                    input::user(data, "user")?
                };
                let Some(t) = self.meta.member(&target).cloned() else {
                    return Err(Bad::new("not_found", "not a member".to_owned()));
                };
                let admins = self
                    .meta
                    .members
                    .iter()
                    .filter(|m| m.role == MemberRole::Admin)
                    .count();
                if kind == "conv.remove" && t.role == MemberRole::Admin && admins == 1 {
                    return Err(Bad::new(
                        "forbidden",
                        "the last admin cannot be removed; they may leave".to_owned(),
                    ));
                }
                let target2 = target.clone();
                self.write_meta(|m| {
                    m.members.retain(|x| x.user_id != target2);
                    // The last admin leaving hands over to the longest-standing member
                    // (a meeting's chat has no admins: the meeting's hosts run it).
                    if m.kind == Kind::Group
                        && !m.members.iter().any(|x| x.role == MemberRole::Admin)
                        && let Some(oldest) = m.members.iter_mut().min_by_key(|x| x.since)
                    {
                        oldest.role = MemberRole::Admin;
                    }
                    Ok(())
                })
                .await?;
                let action = if kind == "conv.leave" {
                    "left"
                } else {
                    "removed"
                };
                let mut c = Changed::new(action, vec![target.clone()]);
                c.removed.push((target, action.to_owned()));
                Ok(c)
            }
            "conv.role" => {
                let target = input::user(data, "user")?;
                let role = match data.get("role").and_then(Value::as_str) {
                    Some("admin") => MemberRole::Admin,
                    Some("member") => MemberRole::Member,
                    _ => return Err(Bad::request("role must be admin or member")),
                };
                let Some(t) = self.meta.member(&target).cloned() else {
                    return Err(Bad::new("not_found", "not a member".to_owned()));
                };
                let admins = self
                    .meta
                    .members
                    .iter()
                    .filter(|m| m.role == MemberRole::Admin)
                    .count();
                if t.role == MemberRole::Admin && role == MemberRole::Member && admins == 1 {
                    return Err(Bad::new(
                        "forbidden",
                        "a conversation keeps at least one admin".to_owned(),
                    ));
                }
                let target2 = target.clone();
                self.write_meta(|m| {
                    if let Some(x) = m.members.iter_mut().find(|x| x.user_id == target2) {
                        x.role = role;
                    }
                    Ok(())
                })
                .await?;
                let name = if role == MemberRole::Admin {
                    "admin"
                } else {
                    "member"
                };
                Ok(Changed::new("role", vec![target]).role(name))
            }
            _ => Err(Bad::new("unknown_type", "no such request type".to_owned())),
        }
    }

    fn stored(&mut self, s: Stored) {
        self.in_flight = self.in_flight.saturating_sub(1);
        let entry = match s.result {
            Ok(e) => e,
            Err(f) => {
                if let Some(r) = s.responder {
                    r.err(f.code, &f.message);
                }
                return;
            }
        };
        self.last_seq = self.last_seq.max(entry.seq());
        if let Some(m) = &s.patched
            && let Some(slot) = self.recent.iter_mut().find(|e| e.seq() == m.seq)
        {
            *slot = Entry::Message(m.clone());
        }
        self.recent.push_back(entry.clone());
        while self.recent.len() > RECENT {
            self.recent.pop_front();
        }
        let ms = self.ms();
        match &entry {
            Entry::Message(m) => {
                ms.observed_message();
                let data = json!({"conversation": self.id, "message": &entry});
                ms.deliver(self.members(), "msg.new", &data);
                let mentioned = m
                    .mentions
                    .iter()
                    .map(String::as_str)
                    .filter(|u| *u != m.author.user_id);
                ms.deliver(mentioned, "msg.mention", &data);
                if self.meta.kind == Kind::Meeting {
                    self.shared.observer.chat_message();
                    if let Some(audience) = ms.audience(&self.id) {
                        super::meeting::show(&audience, &entry);
                    }
                }
                if let Some(r) = s.responder {
                    r.ok(json!({"id": m.id, "seq": m.seq, "at": m.at}));
                }
            }
            Entry::Edit(c) | Entry::Delete(c) => {
                if matches!(entry, Entry::Delete(_)) {
                    ms.hooks.audit(MsgAudit {
                        action: "message.delete",
                        conversation: self.id.clone(),
                        actor: c.by.clone(),
                        target: None,
                        detail: Some(c.target.to_string()),
                    });
                }
                let now = s.patched.clone().map(Entry::Message);
                let data = json!({"conversation": self.id, "entry": entry, "message": now});
                ms.deliver(self.members(), "msg.changed", &data);
                // The call shows the message as it is now (same id: clients replace it).
                if self.meta.kind == Kind::Meeting
                    && let (Some(audience), Some(m)) = (ms.audience(&self.id), &now)
                {
                    super::meeting::show(&audience, m);
                }
                if let Some(r) = s.responder {
                    r.ok(json!({"seq": c.seq}));
                }
            }
            Entry::Event(ev) => {
                let data = json!({"conversation": self.id, "entry": entry});
                ms.deliver(self.members(), "conv.entry", &data);
                if let Some(r) = s.responder {
                    r.ok(json!({"seq": ev.seq}));
                }
            }
        }
    }
}

fn audit_action(action: &str) -> &'static str {
    match action {
        "renamed" => "conversation.rename",
        "added" => "conversation.add",
        "removed" => "conversation.remove",
        "left" => "conversation.leave",
        "role" => "conversation.role",
        _ => "conversation.create",
    }
}

/// A membership change as made, for the log, the audit and the announcements.
struct Changed {
    action: String,
    users: Vec<String>,
    title: Option<String>,
    role: Option<String>,
    /// Users no longer members, with the reason they are told.
    removed: Vec<(String, String)>,
    added: Vec<String>,
}

impl Changed {
    fn new(action: &str, users: Vec<String>) -> Self {
        Changed {
            action: action.to_owned(),
            users,
            title: None,
            role: None,
            removed: Vec::new(),
            added: Vec::new(),
        }
    }
    fn title(mut self, t: String) -> Self {
        self.title = Some(t);
        self
    }
    fn role(mut self, r: &str) -> Self {
        self.role = Some(r.to_owned());
        self
    }
    fn added(mut self, a: Vec<String>) -> Self {
        self.added = a;
        self
    }
}
