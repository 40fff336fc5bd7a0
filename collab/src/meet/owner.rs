//! The owner task of one live meeting: the only place its roster, lobby, lock and roles
//! change, so admission is decided in one order for everyone (nobody gets in by arriving
//! before the host, two hosts admitting at once admit once). Its chat is a conversation
//! (`crate::msg::meeting`): this owner decides who is in the call, the conversation stores,
//! numbers and shows the lines.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use tokio::sync::{mpsc, oneshot};

use super::directory::{Admission, Ban, Entry, MeetingAudit, MeetingInfo, Role};
use super::media::SignalRoute;
use super::requests::{BadField, opt_str, opt_u64, req_bool, req_str};
use crate::msg::layout::Author;
use crate::msg::meeting::MeetingChat;
use crate::rt::hub::{Shared, now_ms, random_id};
use crate::rt::limits::Bucket;
use crate::rt::responder::Responder;
use crate::rt::session::{MeetingLink, Session};

const SIGNAL_KINDS: [&str; 4] = ["offer", "answer", "candidate", "restart"];
/// Commands queued for one meeting; senders wait when it is full.
const QUEUE: usize = 256;

pub(crate) enum Command {
    Join {
        entry: Entry,
        name: String,
        session: Arc<Session>,
        responder: Responder,
        done: oneshot::Sender<JoinOutcome>,
    },
    Request {
        participant: String,
        kind: String,
        data: Map<String, Value>,
        responder: Responder,
    },
    /// The session's resume window passed without a new socket.
    Expire {
        participant: String,
        session: String,
    },
    /// Ended over HTTP (already marked in the store).
    End,
    InviteRevoked {
        invite_id: String,
    },
}

/// What became of a join: handled (answered), or the owner was retiring and the socket
/// should resolve and try again with a fresh owner.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum JoinOutcome {
    Done,
    Retry,
}

#[derive(Clone)]
pub(crate) struct MeetingHandle {
    tx: mpsc::Sender<Command>,
    pub(crate) id: u64,
}

impl MeetingHandle {
    /// Queues a command; gives it back when the owner has retired.
    pub(crate) async fn send(&self, cmd: Command) -> Result<(), Command> {
        self.tx.send(cmd).await.map_err(|e| e.0)
    }

    /// Queues a command without waiting (from non-async callers); waits in a task when full.
    pub(crate) fn post(&self, cmd: Command) {
        if let Err(mpsc::error::TrySendError::Full(cmd)) = self.tx.try_send(cmd) {
            let tx = self.tx.clone();
            tokio::spawn(async move {
                let _ = tx.send(cmd).await;
            });
        }
    }
}

struct Person {
    id: String,
    name: String,
    role: Role,
    guest: bool,
    user_id: Option<String>,
    invite_id: Option<String>,
    session: Arc<Session>,
    joined: bool,
    /// Unix ms when they started waiting.
    since: u64,
    /// Arrival order, for stable rosters.
    order: u64,
    audio: bool,
    video: bool,
    screen: bool,
    signals: Bucket,
    turn_refresh: Option<Instant>,
}

/// Starts the owner of a meeting and returns its handle.
pub(crate) fn spawn_owner(shared: Arc<Shared>, info: MeetingInfo, id: u64) -> MeetingHandle {
    let (tx, rx) = mpsc::channel(QUEUE);
    let handle = MeetingHandle { tx, id };
    let owner = Owner {
        shared: shared.clone(),
        handle: handle.clone(),
        chat: MeetingChat::open(&shared, &info.slug, &info.title),
        info,
        locked: false,
        ended: false,
        people: HashMap::new(),
        arrivals: 0,
    };
    shared.tracker.spawn(owner.run(rx));
    handle
}

struct Owner {
    shared: Arc<Shared>,
    handle: MeetingHandle,
    info: MeetingInfo,
    locked: bool,
    ended: bool,
    people: HashMap<String, Person>,
    arrivals: u64,
    /// `None` when messaging is off: the call then has no chat.
    chat: Option<MeetingChat>,
}

fn bad(r: Responder, e: BadField) {
    r.err("bad_request", &e.0);
}

impl Owner {
    async fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        self.shared.observer.meeting_active(true);
        let cancel = self.shared.cancel.clone();
        loop {
            let refresh = self.people.values().filter_map(|p| p.turn_refresh).min();
            let cmd = tokio::select! {
                cmd = rx.recv() => cmd,
                _ = sleep_until(refresh), if refresh.is_some() => {
                    self.refresh_turn();
                    continue;
                }
                _ = cancel.cancelled() => break,
            };
            let Some(cmd) = cmd else { break };
            self.handle(cmd).await;
            if (self.ended || self.people.is_empty()) && self.retire(&mut rx) {
                break;
            }
        }
        self.shared.observer.meeting_active(false);
    }

    /// Leaves the hub when nobody is left (or the meeting ended) and nothing is queued.
    /// Commands that slipped in before the channel closed are answered so no socket hangs.
    fn retire(&mut self, rx: &mut mpsc::Receiver<Command>) -> bool {
        {
            let mut meetings = self.shared.lock_meetings();
            if !self.ended && !rx.is_empty() {
                return false;
            }
            if meetings
                .get(&self.info.slug)
                .is_some_and(|h| h.id == self.handle.id)
            {
                meetings.remove(&self.info.slug);
            }
            rx.close();
        }
        while let Ok(cmd) = rx.try_recv() {
            match cmd {
                Command::Join {
                    responder, done, ..
                } => {
                    if self.ended {
                        responder.err("ended", "this meeting has ended");
                        let _ = done.send(JoinOutcome::Done);
                    } else {
                        responder.disarm();
                        let _ = done.send(JoinOutcome::Retry);
                    }
                }
                Command::Request { responder, .. } => {
                    responder.err("not_joined", "you are not in this meeting")
                }
                Command::Expire { .. } | Command::End | Command::InviteRevoked { .. } => {}
            }
        }
        for p in std::mem::take(&mut self.people).into_values() {
            self.chat_left(&p);
            p.session.leave_meeting(&p.id);
            self.shared.meeting_presence(&p.session);
        }
        if let Some(chat) = &self.chat {
            chat.close();
        }
        true
    }

    async fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::Join {
                entry,
                name,
                session,
                responder,
                done,
            } => {
                self.join(entry, name, session, responder).await;
                let _ = done.send(JoinOutcome::Done);
            }
            Command::Request {
                participant,
                kind,
                data,
                responder,
            } => self.request(participant, kind, data, responder).await,
            Command::Expire {
                participant,
                session,
            } => {
                if self
                    .people
                    .get(&participant)
                    .is_some_and(|p| p.session.id == session)
                {
                    self.depart(&participant);
                }
            }
            Command::End => {
                self.audit("meeting.end", None, None, None);
                self.end_all();
            }
            Command::InviteRevoked { invite_id } => {
                let waiting: Vec<String> = self
                    .people
                    .values()
                    .filter(|p| !p.joined && p.invite_id.as_deref() == Some(invite_id.as_str()))
                    .map(|p| p.id.clone())
                    .collect();
                for id in &waiting {
                    self.final_event(
                        id,
                        "meet.denied",
                        json!({"reason": "invite_revoked"}),
                        4403,
                        "denied",
                    );
                }
                if !waiting.is_empty() {
                    self.send_lobby();
                }
            }
        }
    }

    fn joined_count(&self) -> usize {
        self.people.values().filter(|p| p.joined).count()
    }

    async fn join(&mut self, entry: Entry, name: String, session: Arc<Session>, r: Responder) {
        if self.ended || entry.meeting.ended {
            r.err("ended", "this meeting has ended");
            return;
        }
        let host = entry.role.is_host();
        if self.locked && !host {
            r.err("locked", "this meeting is locked");
            return;
        }
        let direct = host || entry.admission == Admission::Direct;
        let cfg = &self.shared.cfg;
        if direct && self.joined_count() >= cfg.max_participants_per_meeting {
            r.err(
                "full",
                "this meeting has as many participants as it may have",
            );
            return;
        }
        if !direct && self.people.len() - self.joined_count() >= cfg.max_lobby_per_meeting {
            r.err("full", "too many people are waiting in this lobby");
            return;
        }
        if direct
            && let Some(invite) = &entry.invite_id
            && let Err(refusal) = self.shared.dir.burn_invite(&self.info.slug, invite).await
        {
            r.err(refusal.code(), &refusal.to_string());
            return;
        }
        let id = format!("p{}", random_id(8));
        self.arrivals += 1;
        let person = Person {
            id: id.clone(),
            name,
            role: entry.role,
            guest: entry.guest,
            user_id: session
                .principal
                .user()
                .map(|u| u.id.clone())
                .filter(|_| !entry.guest),
            invite_id: entry.invite_id.clone(),
            session: session.clone(),
            joined: false,
            since: now_ms(),
            order: self.arrivals,
            audio: false,
            video: false,
            screen: false,
            signals: Bucket::new(
                cfg.signals_per_second,
                cfg.signals_per_second.saturating_mul(2),
            ),
            turn_refresh: None,
        };
        session.set_meeting(Some(MeetingLink {
            participant: id.clone(),
            handle: self.handle.clone(),
        }));
        self.shared.meeting_presence(&session);
        r.ok(json!({
            "meeting": self.meeting_json(),
            "conversation": self.chat.as_ref().map(|c| c.id.clone()),
            "participant": {"id": id, "name": person.name, "role": person.role, "guest": person.guest},
            "state": if direct { "joined" } else { "lobby" },
        }));
        let detail = format!(
            "{} ({})",
            person.name,
            if direct { "joined" } else { "lobby" }
        );
        let actor_user = person.user_id.clone();
        self.people.insert(id.clone(), person);
        self.audit("meeting.join", actor_user, Some(id.clone()), Some(detail));
        if direct {
            self.entered(&id).await;
        } else {
            self.shared.observer.lobby(true);
            self.send_lobby();
        }
    }

    fn meeting_json(&self) -> Value {
        json!({
            "slug": self.info.slug,
            "title": self.info.title,
            "doc_id": self.info.doc_id,
            "locked": self.locked,
            "media": self.shared.media.name(),
        })
    }

    /// Someone is now in the call: credentials, the chat so far, and the new roster.
    async fn entered(&mut self, id: &str) {
        let Some(p) = self.people.get_mut(id) else {
            return;
        };
        p.joined = true;
        let session = p.session.clone();
        let host = p.role.is_host();
        let user = p
            .user_id
            .as_ref()
            .and_then(|_| session.principal.user().cloned());
        self.shared.observer.participant(true);
        self.issue_turn(id);
        if let Some(chat) = &self.chat {
            chat.entered(&self.shared, id, &session, user);
        }
        self.send_roster();
        if host {
            session.emit("meet.lobby", &self.lobby_json());
        }
    }

    fn issue_turn(&mut self, id: &str) {
        let grant = self.shared.dir.turn(id);
        let Some(p) = self.people.get_mut(id) else {
            return;
        };
        p.turn_refresh = grant.expires_at.map(|at| {
            let left = at.saturating_sub(now_ms());
            // Refreshed at 80 % of the lifetime, so a slow network still gets them in time.
            Instant::now()
                + Duration::from_millis(left.saturating_mul(8) / 10).max(Duration::from_secs(1))
        });
        if grant.ice_servers.iter().any(|s| s.credential.is_some()) {
            self.shared.observer.turn_issued();
        }
        p.session.emit(
            "meet.turn",
            &json!({"ice_servers": grant.ice_servers, "expires_at": grant.expires_at}),
        );
    }

    fn refresh_turn(&mut self) {
        let now = Instant::now();
        let due: Vec<String> = self
            .people
            .values()
            .filter(|p| p.joined && p.turn_refresh.is_some_and(|t| t <= now))
            .map(|p| p.id.clone())
            .collect();
        for id in due {
            self.issue_turn(&id);
        }
    }

    fn roster_json(&self) -> Value {
        let mut joined: Vec<&Person> = self.people.values().filter(|p| p.joined).collect();
        joined.sort_by_key(|p| p.order);
        let list: Vec<Value> = joined
            .iter()
            .map(|p| {
                json!({"id": p.id, "name": p.name, "role": p.role, "guest": p.guest,
                       "user_id": p.user_id, "audio": p.audio, "video": p.video, "screen": p.screen})
            })
            .collect();
        json!({"participants": list})
    }

    fn lobby_json(&self) -> Value {
        let mut waiting: Vec<&Person> = self.people.values().filter(|p| !p.joined).collect();
        waiting.sort_by_key(|p| p.order);
        let list: Vec<Value> = waiting
            .iter()
            .map(|p| json!({"id": p.id, "name": p.name, "guest": p.guest, "since": p.since}))
            .collect();
        json!({"waiting": list})
    }

    fn send_roster(&self) {
        let roster = self.roster_json();
        for p in self.people.values().filter(|p| p.joined) {
            p.session.emit("meet.roster", &roster);
        }
    }

    fn send_lobby(&self) {
        let lobby = self.lobby_json();
        for p in self
            .people
            .values()
            .filter(|p| p.joined && p.role.is_host())
        {
            p.session.emit("meet.lobby", &lobby);
        }
    }

    fn broadcast(&self, kind: &str, data: &Value) {
        for p in self.people.values().filter(|p| p.joined) {
            p.session.emit(kind, data);
        }
    }

    /// Someone is out of the call: their lines stop, and what the call showed them counts as
    /// read (else a signed-in person would find every line of the meeting unread in their
    /// list afterwards).
    fn chat_left(&self, p: &Person) {
        let Some(chat) = &self.chat else { return };
        chat.left(&p.id);
        if p.joined
            && p.user_id.is_some()
            && let Some(user) = p.session.principal.user()
        {
            chat.read_all(&self.shared, user);
        }
    }

    /// Takes someone out without a final event (they left, or their session expired).
    fn depart(&mut self, id: &str) {
        let Some(p) = self.people.remove(id) else {
            return;
        };
        self.chat_left(&p);
        p.session.leave_meeting(id);
        self.shared.meeting_presence(&p.session);
        if p.joined {
            self.shared.observer.participant(false);
            self.shared.media.left(&self.info.slug, id);
            self.send_roster();
        } else {
            self.shared.observer.lobby(false);
            self.send_lobby();
        }
    }

    /// Takes someone out with a last event, then closes their socket for good. The caller
    /// sends the roster or lobby that changed.
    fn final_event(&mut self, id: &str, kind: &str, data: Value, code: u16, reason: &str) {
        let Some(p) = self.people.remove(id) else {
            return;
        };
        self.chat_left(&p);
        if p.joined {
            self.shared.observer.participant(false);
            self.shared.media.left(&self.info.slug, id);
        } else {
            self.shared.observer.lobby(false);
        }
        p.session.emit(kind, &data);
        self.shared.finish_session(&p.session, code, reason);
    }

    fn end_all(&mut self) {
        self.ended = true;
        let ids: Vec<String> = self.people.keys().cloned().collect();
        for id in ids {
            self.final_event(&id, "meet.ended", json!({}), 1000, "ended");
        }
    }

    fn audit(
        &self,
        action: &'static str,
        actor_user: Option<String>,
        actor_participant: Option<String>,
        detail: Option<String>,
    ) {
        self.audit_on(action, actor_user, actor_participant, None, detail);
    }

    fn audit_on(
        &self,
        action: &'static str,
        actor_user: Option<String>,
        actor_participant: Option<String>,
        target: Option<String>,
        detail: Option<String>,
    ) {
        self.shared.dir.audit(MeetingAudit {
            action,
            slug: self.info.slug.clone(),
            actor_user,
            actor_participant,
            target,
            detail,
        });
    }

    async fn request(&mut self, pid: String, kind: String, data: Map<String, Value>, r: Responder) {
        let Some(me) = self.people.get(&pid) else {
            r.err("not_joined", "you are not in this meeting");
            return;
        };
        let (joined, host) = (me.joined, me.role.is_host());
        match kind.as_str() {
            "meet.leave" => {
                self.depart(&pid);
                r.ok(json!({}));
            }
            "meet.signal" if joined => self.signal(&pid, &data, r),
            "meet.media" if joined => self.media(&pid, &data, r),
            "meet.chat.send" if joined => self.chat_send(&pid, data, r),
            "meet.chat.history" if joined => self.chat_history(&data, r),
            "meet.signal" | "meet.media" | "meet.chat.send" | "meet.chat.history" => {
                r.err("not_admitted", "wait until a host admits you")
            }
            "meet.admit" | "meet.deny" | "meet.admit_all" | "meet.remove" | "meet.mute_request"
            | "meet.mute_all" | "meet.lock" | "meet.end" | "meet.role" => {
                if !(joined && host) {
                    r.err("forbidden", "only hosts may do this");
                } else {
                    self.host_control(&pid, &kind, &data, r).await;
                }
            }
            _ => r.err("unknown_type", "no such request"),
        }
    }

    fn signal(&mut self, from: &str, data: &Map<String, Value>, r: Responder) {
        let to = match req_str(data, "to", 64) {
            Ok(to) => to,
            Err(e) => return bad(r, e),
        };
        let kind = match req_str(data, "kind", 16) {
            Ok(k) if SIGNAL_KINDS.contains(&k.as_str()) => k,
            _ => {
                return r.err(
                    "bad_request",
                    "kind must be offer, answer, candidate or restart",
                );
            }
        };
        let Some(payload) = data.get("payload").filter(|p| p.is_object()) else {
            return r.err("bad_request", "payload must be an object");
        };
        if !self.people.get(&to).is_some_and(|p| p.joined) || to == from {
            return r.err("unknown_participant", "no such participant in this meeting");
        }
        let size = serde_json::to_string(payload).map_or(usize::MAX, |s| s.len());
        if size > self.shared.cfg.signal_bytes {
            return r.err("too_large", "the signal payload is over rt_signal_bytes");
        }
        if let Some(me) = self.people.get_mut(from)
            && !me.signals.take()
        {
            return r.err("rate_limited", "too many signals; slow down");
        }
        if let SignalRoute::Peer(target) = self.shared.media.route(&self.info.slug, from, &to)
            && let Some(peer) = self.people.get(&target)
        {
            peer.session.emit(
                "meet.signal",
                &json!({"from": from, "kind": kind, "payload": payload}),
            );
        }
        self.shared.observer.signal_relayed(&kind);
        r.ok(json!({}));
    }

    fn media(&mut self, id: &str, data: &Map<String, Value>, r: Responder) {
        let flags = (|| {
            Ok::<_, BadField>((
                req_bool(data, "audio")?,
                req_bool(data, "video")?,
                req_bool(data, "screen")?,
            ))
        })();
        let (audio, video, screen) = match flags {
            Ok(f) => f,
            Err(e) => return bad(r, e),
        };
        if let Some(p) = self.people.get_mut(id) {
            (p.audio, p.video, p.screen) = (audio, video, screen);
        }
        r.ok(json!({}));
        self.send_roster();
    }

    /// A line from the call: the conversation checks and stores it, and answers.
    fn chat_send(&mut self, id: &str, data: Map<String, Value>, r: Responder) {
        let (Some(chat), Some(p)) = (&self.chat, self.people.get(id)) else {
            return r.err("unavailable", "this server has no meeting chat");
        };
        let author = Author {
            user_id: p.user_id.clone().unwrap_or_default(),
            name: p.name.clone(),
            participant: Some(p.id.clone()),
            guest: p.user_id.is_none(),
        };
        chat.post(&self.shared, author, data, r);
    }

    fn chat_history(&self, data: &Map<String, Value>, r: Responder) {
        let (before, limit) = match (opt_u64(data, "before_seq"), opt_u64(data, "limit")) {
            (Ok(b), Ok(l)) => (b, l.unwrap_or(50)),
            (Err(e), _) | (_, Err(e)) => return bad(r, e),
        };
        if !(1..=100).contains(&limit) {
            return r.err("bad_request", "limit must be 1 to 100");
        }
        let Some(chat) = &self.chat else {
            return r.err("unavailable", "this server has no meeting chat");
        };
        chat.history(&self.shared, before, limit as usize, r);
    }

    async fn host_control(
        &mut self,
        actor: &str,
        kind: &str,
        data: &Map<String, Value>,
        r: Responder,
    ) {
        let actor_user = self.people.get(actor).and_then(|p| p.user_id.clone());
        let by = Some(actor.to_owned());
        let target = || req_str(data, "participant", 64);
        match kind {
            "meet.admit" => {
                let t = match target() {
                    Ok(t) => t,
                    Err(e) => return bad(r, e),
                };
                if self.people.get(&t).is_none_or(|p| p.joined) {
                    return r.err("unknown_participant", "nobody with this id is waiting");
                }
                match self.admit(&t).await {
                    Ok(()) => {
                        self.audit_on("meeting.admit", actor_user, by, Some(t), None);
                        r.ok(json!({}));
                    }
                    Err((code, msg)) => r.err(code, &msg),
                }
            }
            "meet.admit_all" => {
                let mut waiting: Vec<(u64, String)> = self
                    .people
                    .values()
                    .filter(|p| !p.joined)
                    .map(|p| (p.order, p.id.clone()))
                    .collect();
                waiting.sort();
                let mut admitted = 0;
                for (_, id) in waiting {
                    if self.admit(&id).await.is_ok() {
                        admitted += 1;
                        self.audit_on(
                            "meeting.admit",
                            actor_user.clone(),
                            by.clone(),
                            Some(id),
                            None,
                        );
                    }
                }
                r.ok(json!({"admitted": admitted}));
            }
            "meet.deny" => {
                let t = match target() {
                    Ok(t) => t,
                    Err(e) => return bad(r, e),
                };
                if self.people.get(&t).is_none_or(|p| p.joined) {
                    return r.err("unknown_participant", "nobody with this id is waiting");
                }
                self.final_event(
                    &t,
                    "meet.denied",
                    json!({"reason": "denied"}),
                    4403,
                    "denied",
                );
                self.send_lobby();
                self.audit_on("meeting.deny", actor_user, by, Some(t), None);
                r.ok(json!({}));
            }
            "meet.remove" => {
                let t = match target() {
                    Ok(t) => t,
                    Err(e) => return bad(r, e),
                };
                let reason = match opt_str(data, "reason", 200) {
                    Ok(reason) => reason,
                    Err(e) => return bad(r, e),
                };
                let Some(p) = self.people.get(&t).filter(|_| t != actor) else {
                    return r.err("unknown_participant", "no such participant in this meeting");
                };
                if p.role == Role::Host {
                    return r.err("forbidden", "a host cannot be removed");
                }
                let ban = Ban {
                    user_id: p.user_id.clone(),
                    invite_id: if p.guest { p.invite_id.clone() } else { None },
                };
                let was_joined = p.joined;
                if let Err(refusal) = self.shared.dir.ban(&self.info.slug, &ban).await {
                    return r.err(refusal.code(), &refusal.to_string());
                }
                self.final_event(
                    &t,
                    "meet.removed",
                    json!({"reason": reason}),
                    4403,
                    "removed",
                );
                if was_joined {
                    self.send_roster();
                } else {
                    self.send_lobby();
                }
                // Barred from the call, so from its chat as well.
                if let (Some(chat), Some(user)) = (&self.chat, &ban.user_id) {
                    chat.removed(&self.shared, user);
                }
                self.audit_on("meeting.remove", actor_user, by, Some(t), reason);
                r.ok(json!({}));
            }
            "meet.mute_request" => {
                let t = match target() {
                    Ok(t) => t,
                    Err(e) => return bad(r, e),
                };
                let kind = match req_str(data, "kind", 8) {
                    Ok(k) if k == "audio" || k == "video" => k,
                    _ => return r.err("bad_request", "kind must be audio or video"),
                };
                let Some(p) = self.people.get(&t).filter(|p| p.joined) else {
                    return r.err("unknown_participant", "no such participant in this meeting");
                };
                // A request only: the participant's client decides; nobody is unmuted remotely.
                p.session
                    .emit("meet.mute_request", &json!({"kind": kind, "by": actor}));
                r.ok(json!({}));
            }
            "meet.mute_all" => {
                for p in self
                    .people
                    .values()
                    .filter(|p| p.joined && !p.role.is_host() && p.id != actor)
                {
                    p.session
                        .emit("meet.mute_request", &json!({"kind": "audio", "by": actor}));
                }
                self.audit("meeting.mute_all", actor_user, by, None);
                r.ok(json!({}));
            }
            "meet.lock" => {
                let locked = match req_bool(data, "locked") {
                    Ok(l) => l,
                    Err(e) => return bad(r, e),
                };
                self.locked = locked;
                self.broadcast("meet.locked", &json!({"locked": locked}));
                self.audit(
                    if locked {
                        "meeting.lock"
                    } else {
                        "meeting.unlock"
                    },
                    actor_user,
                    by,
                    None,
                );
                r.ok(json!({}));
            }
            "meet.end" => {
                if let Err(e) = self.shared.dir.mark_ended(&self.info.slug).await {
                    tracing::warn!(slug = %self.info.slug, error = %e, "meeting end not stored");
                    return r.err("unavailable", "the meeting could not be ended; try again");
                }
                self.audit("meeting.end", actor_user, by, None);
                r.ok(json!({}));
                self.end_all();
            }
            "meet.role" => {
                let t = match target() {
                    Ok(t) => t,
                    Err(e) => return bad(r, e),
                };
                let role = match req_str(data, "role", 16).as_deref() {
                    Ok("cohost") => Role::Cohost,
                    Ok("participant") => Role::Participant,
                    _ => return r.err("bad_request", "role must be cohost or participant"),
                };
                let Some(p) = self.people.get_mut(&t).filter(|p| p.joined) else {
                    return r.err("unknown_participant", "no such participant in this meeting");
                };
                if p.role == Role::Host {
                    return r.err("forbidden", "a host's role cannot be changed");
                }
                p.role = role;
                let session = p.session.clone();
                self.broadcast("meet.role", &json!({"participant": t, "role": role}));
                self.send_roster();
                if role.is_host() {
                    session.emit("meet.lobby", &self.lobby_json());
                }
                self.audit_on(
                    "meeting.role",
                    actor_user,
                    by,
                    Some(t),
                    Some(format!("{role:?}").to_lowercase()),
                );
                r.ok(json!({}));
            }
            _ => r.err("unknown_type", "no such request"),
        }
    }

    /// Lets a waiting person in: their invite's use is burned now (a used-up invite denies).
    async fn admit(&mut self, id: &str) -> Result<(), (&'static str, String)> {
        if self.joined_count() >= self.shared.cfg.max_participants_per_meeting {
            return Err((
                "full",
                "this meeting has as many participants as it may have".to_owned(),
            ));
        }
        let invite = self.people.get(id).and_then(|p| p.invite_id.clone());
        if let Some(invite) = invite
            && let Err(refusal) = self.shared.dir.burn_invite(&self.info.slug, &invite).await
        {
            self.final_event(
                id,
                "meet.denied",
                json!({"reason": refusal.code()}),
                4403,
                "denied",
            );
            self.send_lobby();
            return Err((refusal.code(), refusal.to_string()));
        }
        let Some(p) = self.people.get(id) else {
            return Err((
                "unknown_participant",
                "nobody with this id is waiting".to_owned(),
            ));
        };
        self.shared.observer.lobby(false);
        p.session.emit("meet.admitted", &json!({}));
        self.entered(id).await;
        self.send_lobby();
        Ok(())
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
