//! The realtime engine end to end through its transport seam (`RtHub::connect`), with an
//! in-memory meeting directory and messaging over an in-memory store: sessions, resume,
//! limits, lobby and admission, signalling, chat (a conversation per meeting), TURN refresh
//! and host controls, as `docs/realtime.md` and `docs/messaging.md` state them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};

use async_trait::async_trait;
use bytes::Bytes;
use dure_collab::meet::{
    Admission, Ban, ChatAuthor, ChatMessage, Entry, IceServer, MeetingAudit, MeetingDirectory,
    MeetingInfo, Mesh, Refusal, Role, TurnGrant,
};
use dure_collab::msg::{Messaging, MsgAudit, MsgConfig, MsgHooks, meeting_conversation_id};
use dure_collab::rt::{NoopRtObserver, Outgoing, Principal, RtConfig, RtHub, RtSocket, RtUser};
use dure_storage::memory::MemoryBackend;
use dure_storage::{Backend, Key, ListEntry, Object, PutCondition, Store, StoreError, Version};
use serde_json::{Value, json};

#[derive(Default)]
struct Invite {
    id: String,
    uses: u32,
    max: Option<u32>,
    revoked: bool,
}

#[derive(Default)]
struct Meeting {
    title: String,
    hosts: Vec<String>,
    /// Users other than hosts wait too.
    lobby_everyone: bool,
    invites: HashMap<String, Invite>,
    bans: Vec<Ban>,
    /// Chat stored the way meetings kept it before it was a conversation.
    legacy_chat: Vec<ChatMessage>,
    ended: bool,
}

#[derive(Default)]
struct MemDirectory {
    meetings: Mutex<HashMap<String, Meeting>>,
    audit: Mutex<Vec<MeetingAudit>>,
    /// TURN credentials' lifetime; none configured when `None`.
    turn_ttl_ms: Option<u64>,
}

/// The in-memory store with conversation log writes that can be held up or refused: a store
/// that is slow or down, as the log writer sees it.
#[derive(Default)]
struct LogStore {
    inner: MemoryBackend,
    /// When set, each log write waits for a permit.
    gate: Mutex<Option<Arc<tokio::sync::Semaphore>>>,
    /// When set, log writes fail.
    fails: AtomicBool,
    /// Log writes in progress now, and the most seen at once.
    writing: AtomicUsize,
    writing_peak: AtomicUsize,
    /// Log writes made (each may hold several entries).
    batches: AtomicUsize,
}

#[async_trait]
impl Backend for LogStore {
    async fn get(&self, key: &Key) -> Result<Option<Object>, StoreError> {
        self.inner.get(key).await
    }

    async fn put(&self, key: &Key, data: Bytes, cond: PutCondition) -> Result<Version, StoreError> {
        if !key.as_str().contains("/log/") {
            return self.inner.put(key, data, cond).await;
        }
        self.batches.fetch_add(1, SeqCst);
        let now = self.writing.fetch_add(1, SeqCst) + 1;
        self.writing_peak.fetch_max(now, SeqCst);
        let gate = self.gate.lock().unwrap().clone();
        if let Some(gate) = gate {
            gate.acquire().await.unwrap().forget();
        }
        self.writing.fetch_sub(1, SeqCst);
        if self.fails.load(SeqCst) {
            return Err(StoreError::Unavailable("store down".into()));
        }
        self.inner.put(key, data, cond).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ListEntry>, StoreError> {
        self.inner.list(prefix).await
    }

    async fn delete(&self, key: &Key) -> Result<(), StoreError> {
        self.inner.delete(key).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }

    fn describe(&self) -> String {
        "memory (log writes gated)".to_owned()
    }
}

struct Hooks;

impl MsgHooks for Hooks {
    fn user_name(&self, user_id: &str) -> Option<String> {
        Some(format!("User {user_id}"))
    }
    fn doc_title(&self, _doc_id: &str, _reader: &RtUser) -> Option<String> {
        None
    }
    fn audit(&self, _event: MsgAudit) {}
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[async_trait]
impl MeetingDirectory for MemDirectory {
    async fn resolve(
        &self,
        slug: &str,
        who: &Principal,
        invite: Option<&str>,
    ) -> Result<Entry, Refusal> {
        let meetings = self.meetings.lock().unwrap();
        let m = meetings.get(slug).ok_or(Refusal::NotFound)?;
        if m.ended {
            return Err(Refusal::Ended);
        }
        let info = MeetingInfo {
            slug: slug.to_owned(),
            title: m.title.clone(),
            doc_id: None,
            ended: false,
        };
        let entry = |role, admission, invite_id, guest| Entry {
            meeting: info.clone(),
            role,
            admission,
            invite_id,
            guest,
        };
        match (who, invite) {
            (Principal::User(u), None) => {
                if m.bans.iter().any(|b| b.user_id.as_deref() == Some(&u.id)) {
                    return Err(Refusal::Removed);
                }
                if m.hosts.contains(&u.id) {
                    Ok(entry(Role::Host, Admission::Direct, None, false))
                } else if m.lobby_everyone {
                    Ok(entry(Role::Participant, Admission::Lobby, None, false))
                } else {
                    Ok(entry(Role::Participant, Admission::Direct, None, false))
                }
            }
            (_, Some(secret)) => {
                let inv = m.invites.get(secret).ok_or(Refusal::NotFound)?;
                if inv.revoked {
                    return Err(Refusal::InviteRevoked);
                }
                if inv.max.is_some_and(|max| inv.uses >= max) {
                    return Err(Refusal::InviteUsedUp);
                }
                if m.bans
                    .iter()
                    .any(|b| b.invite_id.as_deref() == Some(&inv.id))
                {
                    return Err(Refusal::Removed);
                }
                Ok(entry(
                    Role::Participant,
                    Admission::Lobby,
                    Some(inv.id.clone()),
                    true,
                ))
            }
            (Principal::Anonymous, None) => Err(Refusal::NotFound),
        }
    }

    async fn burn_invite(&self, slug: &str, invite_id: &str) -> Result<(), Refusal> {
        let mut meetings = self.meetings.lock().unwrap();
        let m = meetings.get_mut(slug).ok_or(Refusal::NotFound)?;
        let inv = m
            .invites
            .values_mut()
            .find(|i| i.id == invite_id)
            .ok_or(Refusal::NotFound)?;
        if inv.revoked {
            return Err(Refusal::InviteRevoked);
        }
        if inv.max.is_some_and(|max| inv.uses >= max) {
            return Err(Refusal::InviteUsedUp);
        }
        inv.uses += 1;
        Ok(())
    }

    async fn ban(&self, slug: &str, ban: &Ban) -> Result<(), Refusal> {
        let mut meetings = self.meetings.lock().unwrap();
        meetings
            .get_mut(slug)
            .ok_or(Refusal::NotFound)?
            .bans
            .push(ban.clone());
        Ok(())
    }

    async fn legacy_chat(&self, slug: &str, limit: usize) -> Result<Vec<ChatMessage>, String> {
        let meetings = self.meetings.lock().unwrap();
        let chat = &meetings.get(slug).ok_or("no meeting")?.legacy_chat;
        Ok(chat[chat.len().saturating_sub(limit)..].to_vec())
    }

    async fn mark_ended(&self, slug: &str) -> Result<(), String> {
        let mut meetings = self.meetings.lock().unwrap();
        meetings.get_mut(slug).ok_or("no meeting")?.ended = true;
        Ok(())
    }

    fn turn(&self, participant_id: &str) -> TurnGrant {
        match self.turn_ttl_ms {
            None => TurnGrant::default(),
            Some(ttl) => {
                let expires = now_ms() + ttl;
                TurnGrant {
                    ice_servers: vec![IceServer {
                        urls: vec!["turn:127.0.0.1:3478".into()],
                        username: Some(format!("{}:{participant_id}", expires / 1000)),
                        credential: Some("c".into()),
                    }],
                    expires_at: Some(expires),
                }
            }
        }
    }

    fn audit(&self, event: MeetingAudit) {
        self.audit.lock().unwrap().push(event);
    }
}

fn user(id: &str) -> Principal {
    Principal::User(RtUser {
        id: id.into(),
        name: format!("User {id}"),
        email: None,
        groups: vec![],
        local: false,
    })
}

struct Fixture {
    hub: RtHub,
    dir: Arc<MemDirectory>,
    store: Arc<LogStore>,
}

/// A meeting `m1` hosted by `host` with invite secrets `inv` (unlimited) and `once` (one use),
/// and a meeting `m2` hosted by `other`.
fn fixture(cfg: RtConfig, turn_ttl_ms: Option<u64>) -> Fixture {
    fixture_with(cfg, turn_ttl_ms, MsgConfig::default(), |_| {})
}

fn fixture_with(
    cfg: RtConfig,
    turn_ttl_ms: Option<u64>,
    msg: MsgConfig,
    prepare: impl FnOnce(&mut HashMap<String, Meeting>),
) -> Fixture {
    let dir = Arc::new(MemDirectory {
        turn_ttl_ms,
        ..Default::default()
    });
    {
        let mut m = dir.meetings.lock().unwrap();
        let mut invites = HashMap::new();
        invites.insert(
            "inv".to_owned(),
            Invite {
                id: "i1".into(),
                ..Default::default()
            },
        );
        invites.insert(
            "once".to_owned(),
            Invite {
                id: "i2".into(),
                max: Some(1),
                ..Default::default()
            },
        );
        m.insert(
            "m1".into(),
            Meeting {
                title: "Weekly".into(),
                hosts: vec!["host".into()],
                invites,
                ..Default::default()
            },
        );
        m.insert(
            "m2".into(),
            Meeting {
                title: "Other".into(),
                hosts: vec!["other".into()],
                lobby_everyone: true,
                ..Default::default()
            },
        );
    }
    prepare(&mut dir.meetings.lock().unwrap());
    let store = Arc::new(LogStore::default());
    let messaging = Messaging::new(Store::from_arc(store.clone()), msg, Arc::new(Hooks));
    let hub = RtHub::with_parts(
        cfg,
        dir.clone(),
        Arc::new(NoopRtObserver),
        Arc::new(Mesh),
        Some(messaging),
    );
    Fixture { hub, dir, store }
}

const WAIT: Duration = Duration::from_secs(5);

struct Client {
    sock: RtSocket,
    events: Vec<Value>,
    next_id: u64,
    last_seq: u64,
    session: Option<(String, String)>,
}

impl Client {
    fn open(hub: &RtHub, who: Principal) -> Client {
        Client {
            sock: hub.connect(who, None),
            events: vec![],
            next_id: 0,
            last_seq: 0,
            session: None,
        }
    }

    async fn hello(hub: &RtHub, who: Principal) -> Client {
        let mut c = Client::open(hub, who);
        let w = c.ok("hello", json!({"features": ["meet"]})).await;
        assert_eq!(w["resumed"], false);
        c.session = Some((
            w["session"].as_str().unwrap().into(),
            w["resume_token"].as_str().unwrap().into(),
        ));
        c
    }

    async fn raw(&mut self, text: &str) {
        self.sock.sender.send(text.to_owned()).await;
    }

    /// The next frame, or the close as `{"close": code}`.
    async fn frame(&mut self) -> Value {
        match tokio::time::timeout(WAIT, self.sock.receiver.next()).await {
            Ok(Some(Outgoing::Frame(f))) => {
                let v: Value = serde_json::from_str(&f).unwrap();
                if let Some(seq) = v["seq"].as_u64() {
                    assert_eq!(seq, self.last_seq + 1, "events numbered in order: {v}");
                    self.last_seq = seq;
                }
                v
            }
            Ok(Some(Outgoing::Close { code, reason })) => json!({"close": code, "reason": reason}),
            Ok(None) => json!({"close": "none"}),
            Err(_) => panic!("no frame within {WAIT:?}"),
        }
    }

    /// Sends a request and returns its reply, keeping events that come first.
    async fn req(&mut self, kind: &str, data: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id.to_string();
        let text = json!({"v": 1, "type": kind, "id": id, "data": data}).to_string();
        self.raw(&text).await;
        loop {
            let f = self.frame().await;
            if f["re"] == id.as_str() {
                return f;
            }
            assert!(
                f.get("close").is_none(),
                "closed while waiting for {kind}: {f}"
            );
            self.events.push(f);
        }
    }

    async fn ok(&mut self, kind: &str, data: Value) -> Value {
        let r = self.req(kind, data).await;
        assert_eq!(r["type"], "ok", "{kind} failed: {r}");
        r["data"].clone()
    }

    async fn err(&mut self, kind: &str, data: Value) -> String {
        let r = self.req(kind, data).await;
        assert_eq!(r["type"], "error", "{kind} should fail: {r}");
        r["data"]["code"].as_str().unwrap().to_owned()
    }

    /// The reply to the request sent with `id` (frames read meanwhile are kept).
    async fn reply(&mut self, id: &str) -> Value {
        if let Some(i) = self.events.iter().position(|e| e["re"] == id) {
            return self.events.remove(i);
        }
        loop {
            let f = self.frame().await;
            if f["re"] == id {
                return f;
            }
            self.events.push(f);
        }
    }

    /// The next event of this type (earlier ones of other types are kept).
    async fn event(&mut self, kind: &str) -> Value {
        if let Some(i) = self.events.iter().position(|e| e["type"] == kind) {
            return self.events.remove(i)["data"].clone();
        }
        loop {
            let f = self.frame().await;
            if f["type"] == kind {
                return f["data"].clone();
            }
            assert!(
                f.get("close").is_none(),
                "closed while waiting for {kind}: {f}"
            );
            self.events.push(f);
        }
    }

    /// Reads until the close and returns its code.
    async fn closed(&mut self) -> Value {
        loop {
            let f = self.frame().await;
            if let Some(code) = f.get("close") {
                return code.clone();
            }
            self.events.push(f);
        }
    }

    fn has_event(&self, kind: &str) -> bool {
        self.events.iter().any(|e| e["type"] == kind)
    }
}

/// The texts of a list of messages or log entries.
fn texts(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|e| e["text"].as_str().unwrap().to_owned())
        .collect()
}

/// [`host_and_guest`] with the guest admitted.
async fn host_and_admitted_guest(f: &Fixture) -> (Client, Client, String, String) {
    let (mut host, mut guest, host_id, guest_id) = host_and_guest(f).await;
    host.ok("meet.admit", json!({"participant": guest_id}))
        .await;
    guest.event("meet.admitted").await;
    (host, guest, host_id, guest_id)
}

async fn host_and_guest(f: &Fixture) -> (Client, Client, String, String) {
    let mut host = Client::hello(&f.hub, user("host")).await;
    let j = host.ok("meet.join", json!({"slug": "m1"})).await;
    assert_eq!(j["state"], "joined");
    assert_eq!(j["participant"]["role"], "host");
    assert_eq!(j["meeting"]["media"], "mesh");
    let host_id = j["participant"]["id"].as_str().unwrap().to_owned();
    let mut guest = Client::hello(&f.hub, Principal::Anonymous).await;
    let j = guest
        .ok(
            "meet.join",
            json!({"slug": "m1", "invite": "inv", "name": "Guest Park"}),
        )
        .await;
    assert_eq!(j["state"], "lobby");
    assert_eq!(j["participant"]["guest"], true);
    let guest_id = j["participant"]["id"].as_str().unwrap().to_owned();
    (host, guest, host_id, guest_id)
}

#[tokio::test]
async fn hello_comes_first_and_envelope_errors_have_codes() {
    let f = fixture(RtConfig::default(), None);
    let mut c = Client::open(&f.hub, user("a"));
    assert_eq!(c.err("ping", json!({})).await, "hello_first");
    assert_eq!(c.closed().await, 4400);

    let mut c = Client::hello(&f.hub, user("a")).await;
    let pong = c.ok("ping", json!({})).await;
    assert!(pong["at"].as_u64().unwrap() > 0);
    assert_eq!(c.err("nope.what", json!({})).await, "unknown_type");
    c.raw(r#"{"v":2,"id":"x","type":"ping"}"#).await;
    let e = c.frame().await;
    assert_eq!(
        (&e["re"], &e["data"]["code"]),
        (&json!("x"), &json!("unsupported_version"))
    );
    c.raw("{not json").await;
    assert_eq!(c.frame().await["data"]["code"], "malformed");
    c.raw(&format!("{}{}", "[".repeat(40), "]".repeat(40)))
        .await;
    assert_eq!(c.frame().await["data"]["code"], "malformed");
    c.sock.sender.send_binary().await;
    assert_eq!(c.frame().await["data"]["code"], "malformed");
    // The socket survives all of that.
    c.ok("ping", json!({})).await;
    assert_eq!(c.err("meet.signal", json!({})).await, "not_joined");
}

#[tokio::test]
async fn an_oversized_frame_closes_1009_and_an_error_flood_closes_1008() {
    let cfg = RtConfig {
        max_message_bytes: 1024,
        ..RtConfig::default()
    };
    let f = fixture(cfg, None);
    let mut c = Client::hello(&f.hub, user("a")).await;
    c.raw(&format!(
        r#"{{"v":1,"id":"1","type":"ping","data":{{"x":"{}"}}}}"#,
        "y".repeat(2000)
    ))
    .await;
    assert_eq!(c.closed().await, 1009);

    let mut c = Client::hello(&f.hub, user("a")).await;
    for _ in 0..21 {
        c.raw("garbage").await;
    }
    assert_eq!(c.closed().await, 1008);
}

#[tokio::test]
async fn a_request_flood_is_rate_limited_then_closed() {
    let cfg = RtConfig {
        messages_per_second: 5,
        ..RtConfig::default()
    };
    let f = fixture(cfg, None);
    let mut c = Client::hello(&f.hub, user("a")).await;
    let mut limited = 0;
    let mut closed = None;
    for i in 0..200 {
        c.raw(&format!(r#"{{"v":1,"id":"{i}","type":"ping"}}"#))
            .await;
        let fr = c.frame().await;
        if fr["data"]["code"] == "rate_limited" {
            limited += 1;
        }
        if let Some(code) = fr.get("close") {
            closed = Some(code.clone());
            break;
        }
    }
    assert!(limited > 0, "a flood gets rate_limited errors");
    if closed.is_none() {
        closed = Some(c.closed().await);
    }
    assert_eq!(closed, Some(json!(1008)));
}

#[tokio::test]
async fn the_lobby_holds_guests_until_a_host_admits_them() {
    let f = fixture(RtConfig::default(), Some(600_000));
    let (mut host, mut guest, host_id, guest_id) = host_and_guest(&f).await;
    // The host saw an empty lobby on entering, then the guest arrive.
    assert_eq!(host.event("meet.lobby").await["waiting"], json!([]));
    let lobby = host.event("meet.lobby").await;
    assert_eq!(lobby["waiting"][0]["id"], guest_id.as_str());
    assert_eq!(lobby["waiting"][0]["name"], "Guest Park");

    // Waiting: no signalling, no chat, no TURN.
    let sig = json!({"to": host_id, "kind": "offer", "payload": {"sdp": "x"}});
    assert_eq!(guest.err("meet.signal", sig.clone()).await, "not_admitted");
    assert_eq!(
        guest.err("meet.chat.send", json!({"text": "hi"})).await,
        "not_admitted"
    );
    assert_eq!(
        guest
            .err("meet.admit", json!({"participant": guest_id}))
            .await,
        "forbidden"
    );
    assert!(!guest.has_event("meet.turn"), "no TURN in the lobby");
    // The host cannot signal a waiting guest either.
    let to_guest = json!({"to": guest_id, "kind": "offer", "payload": {"sdp": "x"}});
    assert_eq!(
        host.err("meet.signal", to_guest.clone()).await,
        "unknown_participant"
    );

    host.ok("meet.admit", json!({"participant": guest_id}))
        .await;
    guest.event("meet.admitted").await;
    let turn = guest.event("meet.turn").await;
    let username = turn["ice_servers"][0]["username"].as_str().unwrap();
    assert!(username.ends_with(&format!(":{guest_id}")));
    guest.event("meet.chat.backlog").await;
    let roster = guest.event("meet.roster").await;
    assert_eq!(roster["participants"].as_array().unwrap().len(), 2);

    // Now both ways, to that participant only.
    guest.ok("meet.signal", sig).await;
    let got = host.event("meet.signal").await;
    assert_eq!(
        (&got["from"], &got["kind"]),
        (&json!(guest_id), &json!("offer"))
    );
    host.ok("meet.signal", to_guest).await;
    assert_eq!(guest.event("meet.signal").await["from"], host_id.as_str());
    let audit = f.dir.audit.lock().unwrap();
    assert!(
        audit
            .iter()
            .any(|a| a.action == "meeting.admit" && a.target.as_deref() == Some(&guest_id))
    );
}

#[tokio::test]
async fn signals_are_bounded_and_addressed_within_one_meeting() {
    let cfg = RtConfig {
        signal_bytes: 256,
        signals_per_second: 3,
        ..RtConfig::default()
    };
    let f = fixture(cfg, None);
    let mut a = Client::hello(&f.hub, user("host")).await;
    a.ok("meet.join", json!({"slug": "m1"})).await;
    let mut b = Client::hello(&f.hub, user("b")).await;
    let b_id = b.ok("meet.join", json!({"slug": "m1"})).await["participant"]["id"].clone();
    let mut other = Client::hello(&f.hub, user("other")).await;
    let other_id = other.ok("meet.join", json!({"slug": "m2"})).await["participant"]["id"].clone();

    let to_other = json!({"to": other_id, "kind": "offer", "payload": {}});
    assert_eq!(
        a.err("meet.signal", to_other).await,
        "unknown_participant",
        "a peer in another meeting cannot be addressed"
    );
    let big = json!({"to": b_id, "kind": "candidate", "payload": {"c": "x".repeat(300)}});
    assert_eq!(a.err("meet.signal", big).await, "too_large");
    let bad_kind = json!({"to": b_id, "kind": "bye", "payload": {}});
    assert_eq!(a.err("meet.signal", bad_kind).await, "bad_request");
    let no_payload = json!({"to": b_id, "kind": "offer", "payload": "s"});
    assert_eq!(a.err("meet.signal", no_payload).await, "bad_request");
    let ok = json!({"to": b_id, "kind": "candidate", "payload": {"c": 1}});
    let mut limited = false;
    for _ in 0..10 {
        let r = a.req("meet.signal", ok.clone()).await;
        if r["data"]["code"] == "rate_limited" {
            limited = true;
            break;
        }
    }
    assert!(limited, "signals per participant are rate limited");
    assert_eq!(b.event("meet.signal").await["kind"], "candidate");
    assert!(!other.has_event("meet.signal"));
}

#[tokio::test]
async fn removal_is_final_and_the_invite_cannot_bring_them_back() {
    let f = fixture(RtConfig::default(), None);
    let (mut host, mut guest, _, guest_id) = host_and_admitted_guest(&f).await;
    host.ok(
        "meet.remove",
        json!({"participant": guest_id, "reason": "wrong meeting"}),
    )
    .await;
    assert_eq!(guest.event("meet.removed").await["reason"], "wrong meeting");
    assert_eq!(guest.closed().await, 4403);
    let roster = host.event("meet.roster").await;
    let _ = roster;
    let mut again = Client::hello(&f.hub, Principal::Anonymous).await;
    let code = again
        .err(
            "meet.join",
            json!({"slug": "m1", "invite": "inv", "name": "Guest Park"}),
        )
        .await;
    assert_eq!(code, "removed");
}

#[tokio::test]
async fn a_used_up_invite_is_burned_at_admission_once() {
    let f = fixture(RtConfig::default(), None);
    let mut host = Client::hello(&f.hub, user("host")).await;
    host.ok("meet.join", json!({"slug": "m1"})).await;
    let mut g1 = Client::hello(&f.hub, Principal::Anonymous).await;
    let g1_id = g1
        .ok(
            "meet.join",
            json!({"slug": "m1", "invite": "once", "name": "One"}),
        )
        .await["participant"]["id"]
        .clone();
    let mut g2 = Client::hello(&f.hub, Principal::Anonymous).await;
    let g2_id = g2
        .ok(
            "meet.join",
            json!({"slug": "m1", "invite": "once", "name": "Two"}),
        )
        .await["participant"]["id"]
        .clone();
    host.ok("meet.admit", json!({"participant": g1_id})).await;
    g1.event("meet.admitted").await;
    assert_eq!(
        host.err("meet.admit", json!({"participant": g2_id})).await,
        "invite_used_up"
    );
    assert_eq!(g2.event("meet.denied").await["reason"], "invite_used_up");
    assert_eq!(g2.closed().await, 4403);
    let mut g3 = Client::hello(&f.hub, Principal::Anonymous).await;
    let code = g3
        .err(
            "meet.join",
            json!({"slug": "m1", "invite": "once", "name": "Three"}),
        )
        .await;
    assert_eq!(code, "invite_used_up");
}

#[tokio::test]
async fn a_revoked_invite_refuses_whoever_waits_on_it() {
    let f = fixture(RtConfig::default(), None);
    let (_host, mut guest, _, _) = host_and_guest(&f).await;
    f.dir
        .meetings
        .lock()
        .unwrap()
        .get_mut("m1")
        .unwrap()
        .invites
        .get_mut("inv")
        .unwrap()
        .revoked = true;
    f.hub.invite_revoked("m1", "i1");
    assert_eq!(guest.event("meet.denied").await["reason"], "invite_revoked");
    assert_eq!(guest.closed().await, 4403);
}

#[tokio::test]
async fn a_locked_meeting_refuses_newcomers_but_not_hosts() {
    let f = fixture(RtConfig::default(), None);
    let mut host = Client::hello(&f.hub, user("host")).await;
    host.ok("meet.join", json!({"slug": "m1"})).await;
    let mut b = Client::hello(&f.hub, user("b")).await;
    b.ok("meet.join", json!({"slug": "m1"})).await;
    assert_eq!(
        b.err("meet.lock", json!({"locked": true})).await,
        "forbidden"
    );
    host.ok("meet.lock", json!({"locked": true})).await;
    assert_eq!(b.event("meet.locked").await["locked"], true);
    let mut c = Client::hello(&f.hub, user("c")).await;
    assert_eq!(c.err("meet.join", json!({"slug": "m1"})).await, "locked");
    let mut host2 = Client::hello(&f.hub, user("host")).await;
    host2.ok("meet.join", json!({"slug": "m1"})).await;
    host.ok("meet.lock", json!({"locked": false})).await;
    c.ok("meet.join", json!({"slug": "m1"})).await;
}

#[tokio::test]
async fn unknown_slugs_and_missing_invites_are_one_answer() {
    let f = fixture(RtConfig::default(), None);
    let mut c = Client::hello(&f.hub, Principal::Anonymous).await;
    let unknown = c
        .req("meet.join", json!({"slug": "nope", "name": "X"}))
        .await;
    let forbidden = c.req("meet.join", json!({"slug": "m1", "name": "X"})).await;
    assert_eq!(unknown["data"], forbidden["data"]);
    assert_eq!(unknown["data"]["code"], "not_found");
    assert_eq!(
        c.err("meet.join", json!({"slug": "m1", "invite": "inv"}))
            .await,
        "bad_request",
        "a guest needs a name"
    );
}

#[tokio::test]
async fn chat_is_stamped_stored_and_shown_to_later_joiners() {
    let f = fixture(RtConfig::default(), None);
    let mut a = Client::hello(&f.hub, user("host")).await;
    a.ok("meet.join", json!({"slug": "m1"})).await;
    let mut b = Client::hello(&f.hub, user("b")).await;
    b.ok("meet.join", json!({"slug": "m1"})).await;
    for i in 1..=3 {
        let r = a
            .ok(
                "meet.chat.send",
                json!({"text": format!("hello {i}"), "client_ref": format!("r{i}")}),
            )
            .await;
        assert_eq!(r["seq"], i);
    }
    let m = b.event("meet.chat").await;
    assert_eq!(
        (&m["text"], &m["author"]["user_id"], &m["client_ref"]),
        (&json!("hello 1"), &json!("host"), &json!("r1"))
    );
    assert_eq!(
        a.err("meet.chat.send", json!({"text": "   "})).await,
        "bad_request"
    );
    assert_eq!(
        a.err("meet.chat.send", json!({"text": "x".repeat(8001)}))
            .await,
        "too_large",
        "max_message_chars, as in every conversation"
    );
    assert_eq!(
        a.err("meet.chat.send", json!({"text": 5})).await,
        "bad_request"
    );
    let mut c = Client::hello(&f.hub, user("c")).await;
    c.ok("meet.join", json!({"slug": "m1"})).await;
    let backlog = c.event("meet.chat.backlog").await;
    let texts = texts(&backlog["messages"]);
    assert_eq!(texts, ["hello 1", "hello 2", "hello 3"]);
    let older = c
        .ok("meet.chat.history", json!({"before_seq": 3, "limit": 1}))
        .await;
    assert_eq!(older["messages"][0]["text"], "hello 2");
    assert_eq!(
        c.err("meet.chat.history", json!({"limit": 0})).await,
        "bad_request"
    );
}

#[tokio::test]
async fn a_slow_chat_store_holds_up_chat_only_and_a_failed_write_is_refused() {
    let f = fixture(RtConfig::default(), None);
    let mut a = Client::hello(&f.hub, user("host")).await;
    let conv = a.ok("meet.join", json!({"slug": "m1"})).await["conversation"].clone();
    let mut b = Client::hello(&f.hub, user("b")).await;
    let b_id = b.ok("meet.join", json!({"slug": "m1"})).await["participant"]["id"].clone();
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    *f.store.gate.lock().unwrap() = Some(gate.clone());

    // The chat line waits for the store; the signal after it does not wait for the chat.
    a.raw(
        &json!({"v": 1, "type": "meet.chat.send", "id": "chat1", "data": {"text": "slow"}})
            .to_string(),
    )
    .await;
    let sig = json!({"to": b_id, "kind": "candidate", "payload": {"candidate": "c"}});
    let reply = a.req("meet.signal", sig).await;
    assert_eq!(reply["type"], "ok", "{reply}");
    assert!(
        !a.events.iter().any(|e| e["re"] == "chat1"),
        "the chat is not answered before it is stored"
    );
    // Two more lines queue behind the first write and go to the store together.
    for id in ["chat2", "chat3"] {
        a.raw(
            &json!({"v": 1, "type": "meet.chat.send", "id": id, "data": {"text": id}}).to_string(),
        )
        .await;
    }
    let got = b.event("meet.signal").await;
    assert_eq!(got["payload"]["candidate"], "c");
    assert!(!b.events.iter().any(|e| e["type"] == "meet.chat"));
    // A newcomer meanwhile is let in at once; the backlog holds what is stored.
    let mut c = Client::hello(&f.hub, user("c")).await;
    c.ok("meet.join", json!({"slug": "m1"})).await;
    assert_eq!(c.event("meet.chat.backlog").await["messages"], json!([]));

    gate.add_permits(1);
    let stored = a.reply("chat1").await;
    assert_eq!(
        (&stored["type"], &stored["data"]["seq"]),
        (&json!("ok"), &json!(1))
    );
    assert_eq!(b.event("meet.chat").await["text"], "slow");
    assert_eq!(c.event("meet.chat").await["text"], "slow");
    gate.add_permits(1);
    for (id, seq) in [("chat2", 2), ("chat3", 3)] {
        let r = a.reply(id).await;
        assert_eq!(r["data"]["seq"], seq, "{r}");
        assert_eq!(b.event("meet.chat").await["text"], id, "in order");
    }
    assert_eq!(f.store.batches.load(SeqCst), 2, "three lines, two writes");
    *f.store.gate.lock().unwrap() = None;

    // A write the store refuses is answered `unavailable`, shown to nobody, and the chat
    // goes on once the store is back, with the next sequence (a refused write uses none).
    f.store.fails.store(true, SeqCst);
    assert_eq!(
        a.err("meet.chat.send", json!({"text": "lost"})).await,
        "unavailable"
    );
    f.store.fails.store(false, SeqCst);
    let r = a.ok("meet.chat.send", json!({"text": "back"})).await;
    assert_eq!(r["seq"], 4, "{r}");
    let next = b.event("meet.chat").await;
    assert_eq!(next["text"], "back", "the refused line was never shown");
    // What is stored is the conversation's log, as its members read it.
    let history = a
        .ok("msg.history", json!({"conversation": conv, "after": 0}))
        .await;
    let texts = texts(&history["entries"]);
    assert_eq!(texts, ["slow", "chat2", "chat3", "back"]);
}

#[tokio::test]
async fn msg_store_writes_bounds_chat_writes_across_meetings() {
    let msg = MsgConfig {
        store_writes: 1,
        ..MsgConfig::default()
    };
    let f = fixture_with(RtConfig::default(), None, msg, |_| {});
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    *f.store.gate.lock().unwrap() = Some(gate.clone());
    let mut a = Client::hello(&f.hub, user("host")).await;
    a.ok("meet.join", json!({"slug": "m1"})).await;
    let mut b = Client::hello(&f.hub, user("other")).await;
    b.ok("meet.join", json!({"slug": "m2"})).await;
    for c in [&mut a, &mut b] {
        c.raw(
            &json!({"v": 1, "type": "meet.chat.send", "id": "w", "data": {"text": "hi"}})
                .to_string(),
        )
        .await;
    }
    // Both meetings' writers have their line; only one may be at the store.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(f.store.writing.load(SeqCst), 1);
    gate.add_permits(2);
    for c in [&mut a, &mut b] {
        let r = c.reply("w").await;
        assert_eq!(r["type"], "ok", "{r}");
    }
    assert_eq!(f.store.writing_peak.load(SeqCst), 1);
}

#[tokio::test]
async fn a_meeting_chat_is_a_conversation_of_its_signed_in_participants() {
    let f = fixture(RtConfig::default(), None);
    let (mut host, mut guest, _, guest_id) = host_and_admitted_guest(&f).await;
    let mut b = Client::hello(&f.hub, user("b")).await;
    let joined = b.ok("meet.join", json!({"slug": "m1"})).await;
    let conv = joined["conversation"].as_str().unwrap().to_owned();
    assert_eq!(conv, meeting_conversation_id("m1"));
    b.ok("meet.chat.send", json!({"text": "from b"})).await;
    guest
        .ok("meet.chat.send", json!({"text": "from the guest"}))
        .await;
    let line = host.event("meet.chat").await;
    assert_eq!(
        (&line["kind"], &line["author"]["user_id"]),
        (&json!("message"), &json!("b"))
    );
    let line = host.event("meet.chat").await;
    assert_eq!(line["author"]["guest"], true, "{line}");
    assert!(line["author"].get("user_id").is_none(), "{line}");
    assert_eq!(line["author"]["participant"], guest_id.as_str());

    // Signed-in participants are its members; the guest is not (and cannot be).
    let list = b.ok("conv.list", json!({})).await;
    let mine = list["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == conv.as_str())
        .cloned()
        .expect("the meeting's chat is in b's list");
    assert_eq!(
        (&mine["kind"], &mine["title"], &mine["meeting"]),
        (&json!("meeting"), &json!("Weekly"), &json!("m1"))
    );
    let mut members: Vec<&str> = mine["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["user_id"].as_str().unwrap())
        .collect();
    members.sort();
    assert_eq!(members, ["b", "host"]);
    // A member posts from the Messages page: the people in the call see it.
    host.ok(
        "msg.send",
        json!({"conversation": conv, "text": "from messages"}),
    )
    .await;
    assert_eq!(guest.event("meet.chat").await["text"], "from b");
    assert_eq!(guest.event("meet.chat").await["text"], "from the guest");
    assert_eq!(guest.event("meet.chat").await["text"], "from messages");
    // Its members and title follow the meeting.
    assert_eq!(
        host.err("conv.rename", json!({"conversation": conv, "title": "X"}))
            .await,
        "bad_request"
    );
    assert_eq!(
        host.err("conv.add", json!({"conversation": conv, "users": ["c"]}))
            .await,
        "bad_request"
    );
    // Someone who never entered the call cannot read it.
    let mut c = Client::hello(&f.hub, user("c")).await;
    assert_eq!(
        c.err("msg.history", json!({"conversation": conv})).await,
        "not_found"
    );
    assert_eq!(
        c.err("msg.send", json!({"conversation": conv, "text": "hi"}))
            .await,
        "not_found"
    );

    // After the call, b reads it from the conversation; what the call showed counts as read.
    b.ok("meet.leave", json!({})).await;
    let read = b.event("conv.read").await;
    assert_eq!(
        (&read["conversation"], &read["read_seq"], &read["unread"]),
        (&json!(conv), &json!(3), &json!(0))
    );
    let history = b.ok("msg.history", json!({"conversation": conv})).await;
    let texts = texts(&history["entries"]);
    assert_eq!(texts, ["from b", "from the guest", "from messages"]);
    // The call no longer shows b its lines.
    host.ok("meet.chat.send", json!({"text": "after b left"}))
        .await;
    // b still gets it as a member, but not as someone in the call.
    while b.event("msg.new").await["message"]["text"] != "after b left" {}
    b.ok("ping", json!({})).await;
    assert!(
        !b.events
            .iter()
            .any(|e| e["type"] == "meet.chat" && e["data"]["text"] == "after b left"),
        "shown in a call b left"
    );

    // A signed-in person the host removes from the meeting loses its chat too.
    let mut d = Client::hello(&f.hub, user("d")).await;
    let d_id = d.ok("meet.join", json!({"slug": "m1"})).await["participant"]["id"].clone();
    d.event("meet.chat.backlog").await;
    host.ok("meet.remove", json!({"participant": d_id})).await;
    let mut d = Client::hello(&f.hub, user("d")).await;
    let mut gone = false;
    for _ in 0..50 {
        if d.req("msg.history", json!({"conversation": conv})).await["data"]["code"] == "not_found"
        {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(gone, "a removed participant still reads the meeting's chat");
}

#[tokio::test]
async fn a_meetings_earlier_chat_is_carried_into_its_conversation() {
    let f = fixture_with(RtConfig::default(), None, MsgConfig::default(), |m| {
        let m1 = m.get_mut("m1").unwrap();
        m1.legacy_chat = (1..=40)
            .map(|seq| ChatMessage {
                id: format!("c{seq}"),
                seq,
                at: seq,
                author: ChatAuthor {
                    participant: "p1".into(),
                    name: if seq % 2 == 0 { "Guest" } else { "User host" }.into(),
                    user_id: (seq % 2 == 1).then(|| "host".to_owned()),
                },
                text: format!("old {seq}"),
                client_ref: None,
            })
            .collect();
    });
    let mut a = Client::hello(&f.hub, user("host")).await;
    let conv = a.ok("meet.join", json!({"slug": "m1"})).await["conversation"].clone();
    let backlog = a.event("meet.chat.backlog").await;
    let texts = texts(&backlog["messages"]);
    assert_eq!(texts.len(), 40);
    assert_eq!((texts[0].as_str(), texts[39].as_str()), ("old 1", "old 40"));
    assert_eq!(backlog["messages"][1]["author"]["guest"], true);
    // The conversation carries on after them.
    let r = a.ok("meet.chat.send", json!({"text": "new"})).await;
    assert_eq!(r["seq"], 41);
    let page = a
        .ok(
            "msg.history",
            json!({"conversation": conv, "before": 41, "limit": 5}),
        )
        .await;
    assert_eq!(page["entries"][4]["text"], "old 40");
    assert_eq!(page["more"], true);
}

#[tokio::test]
async fn resume_keeps_the_seat_and_replays_missed_events() {
    let f = fixture(RtConfig::default(), None);
    let mut a = Client::hello(&f.hub, user("host")).await;
    a.ok("meet.join", json!({"slug": "m1"})).await;
    let mut b = Client::hello(&f.hub, user("b")).await;
    let b_id = b.ok("meet.join", json!({"slug": "m1"})).await["participant"]["id"].clone();
    // Drain b's entry events so last_seq is what b has seen.
    b.event("meet.roster").await;
    let (session, token) = b.session.clone().unwrap();
    let seen = b.last_seq;
    drop(b);
    a.ok("meet.chat.send", json!({"text": "while you were away"}))
        .await;

    // A wrong token gets a fresh session, not the seat.
    let mut thief = Client::open(&f.hub, user("b"));
    let w = thief
        .ok(
            "hello",
            json!({"resume": {"session": session, "token": "x", "last_seq": seen}}),
        )
        .await;
    assert_eq!(w["resumed"], false);
    // Another principal with the right token does not get it either.
    let mut other = Client::open(&f.hub, user("c"));
    let w = other
        .ok(
            "hello",
            json!({"resume": {"session": session, "token": token, "last_seq": seen}}),
        )
        .await;
    assert_eq!(w["resumed"], false);

    let mut b = Client::open(&f.hub, user("b"));
    b.last_seq = seen;
    let w = b
        .ok(
            "hello",
            json!({"resume": {"session": session, "token": token, "last_seq": seen}}),
        )
        .await;
    assert_eq!(w["resumed"], true);
    assert_eq!(w["session"], session.as_str());
    assert_eq!(b.event("meet.chat").await["text"], "while you were away");
    // Still in the meeting with the same id: a signal reaches it.
    let sig = json!({"to": b_id, "kind": "candidate", "payload": {"c": 1}});
    a.ok("meet.signal", sig).await;
    b.event("meet.signal").await;
}

#[tokio::test]
async fn a_session_not_resumed_in_time_leaves_the_meeting() {
    let cfg = RtConfig {
        resume_window: Duration::from_millis(200),
        ..RtConfig::default()
    };
    let f = fixture(cfg, None);
    let mut a = Client::hello(&f.hub, user("host")).await;
    a.ok("meet.join", json!({"slug": "m1"})).await;
    let mut b = Client::hello(&f.hub, user("b")).await;
    b.ok("meet.join", json!({"slug": "m1"})).await;
    let roster = a.event("meet.roster").await;
    assert_eq!(roster["participants"].as_array().unwrap().len(), 1);
    let roster = a.event("meet.roster").await;
    assert_eq!(roster["participants"].as_array().unwrap().len(), 2);
    drop(b);
    let roster = a.event("meet.roster").await;
    assert_eq!(roster["participants"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn an_idle_socket_is_closed_4408() {
    let cfg = RtConfig {
        heartbeat: Duration::from_millis(100),
        ..RtConfig::default()
    };
    let f = fixture(cfg, None);
    let mut a = Client::hello(&f.hub, user("a")).await;
    assert_eq!(a.closed().await, 4408);
}

#[tokio::test]
async fn turn_credentials_are_refreshed_before_they_expire() {
    let f = fixture(RtConfig::default(), Some(1_500));
    let mut a = Client::hello(&f.hub, user("host")).await;
    a.ok("meet.join", json!({"slug": "m1"})).await;
    let first = a.event("meet.turn").await;
    let second = a.event("meet.turn").await;
    assert!(second["expires_at"].as_u64() > first["expires_at"].as_u64());
}

#[tokio::test]
async fn ending_closes_everyone_and_later_joins_are_refused() {
    let f = fixture(RtConfig::default(), None);
    let (mut host, mut guest, _, _) = host_and_guest(&f).await;
    let mut b = Client::hello(&f.hub, user("b")).await;
    b.ok("meet.join", json!({"slug": "m1"})).await;
    host.ok("meet.end", json!({})).await;
    for c in [&mut host, &mut guest, &mut b] {
        c.event("meet.ended").await;
        assert_eq!(c.closed().await, 1000);
    }
    let mut late = Client::hello(&f.hub, user("b")).await;
    assert_eq!(late.err("meet.join", json!({"slug": "m1"})).await, "ended");
    for _ in 0..50 {
        if f.hub.live_meetings() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(f.hub.live_meetings(), 0, "the owner task retires");
}

#[tokio::test]
async fn cohosts_get_host_controls_and_mute_is_only_a_request() {
    let f = fixture(RtConfig::default(), None);
    let mut host = Client::hello(&f.hub, user("host")).await;
    let host_id = host.ok("meet.join", json!({"slug": "m1"})).await["participant"]["id"].clone();
    let mut b = Client::hello(&f.hub, user("b")).await;
    let b_id = b.ok("meet.join", json!({"slug": "m1"})).await["participant"]["id"].clone();
    let mut c = Client::hello(&f.hub, user("c")).await;
    let c_id = c.ok("meet.join", json!({"slug": "m1"})).await["participant"]["id"].clone();
    assert_eq!(
        b.err(
            "meet.mute_request",
            json!({"participant": c_id, "kind": "audio"})
        )
        .await,
        "forbidden"
    );
    host.ok("meet.role", json!({"participant": b_id, "role": "cohost"}))
        .await;
    assert_eq!(c.event("meet.role").await["role"], "cohost");
    b.ok(
        "meet.mute_request",
        json!({"participant": c_id, "kind": "audio"}),
    )
    .await;
    let m = c.event("meet.mute_request").await;
    assert_eq!((&m["kind"], &m["by"]), (&json!("audio"), &b_id));
    assert_eq!(
        b.err("meet.remove", json!({"participant": host_id})).await,
        "forbidden",
        "a cohost cannot remove the host"
    );
    assert_eq!(
        b.err(
            "meet.role",
            json!({"participant": host_id, "role": "participant"})
        )
        .await,
        "forbidden"
    );
    c.ok(
        "meet.media",
        json!({"audio": false, "video": true, "screen": false}),
    )
    .await;
    let roster = host.event("meet.roster").await;
    let _ = roster;
}

#[tokio::test]
async fn nobody_is_admitted_while_no_host_is_there() {
    let f = fixture(RtConfig::default(), None);
    let mut w = Client::hello(&f.hub, user("w")).await;
    let j = w.ok("meet.join", json!({"slug": "m2"})).await;
    assert_eq!(j["state"], "lobby");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut host = Client::hello(&f.hub, user("other")).await;
    host.ok("meet.join", json!({"slug": "m2"})).await;
    let lobby = host.event("meet.lobby").await;
    assert_eq!(lobby["waiting"].as_array().unwrap().len(), 1);
    assert!(!w.has_event("meet.admitted"));
    assert_eq!(host.ok("meet.admit_all", json!({})).await["admitted"], 1);
    w.event("meet.admitted").await;
}

#[tokio::test]
async fn a_reader_that_stops_reading_is_closed_slow_reader() {
    let cfg = RtConfig {
        outbound_bytes: 4096,
        ..RtConfig::default()
    };
    // Chat posting limits out of the way: the socket's queue is what is tested.
    let msg = MsgConfig {
        posts_per_second: 1000,
        ..MsgConfig::default()
    };
    let f = fixture_with(cfg, None, msg, |_| {});
    let mut a = Client::hello(&f.hub, user("host")).await;
    a.ok("meet.join", json!({"slug": "m1"})).await;
    let mut b = Client::hello(&f.hub, user("b")).await;
    b.ok("meet.join", json!({"slug": "m1"})).await;
    // b never reads while a chats: b's queue passes its bound.
    for i in 0..40 {
        a.ok(
            "meet.chat.send",
            json!({"text": format!("{i} {}", "x".repeat(200))}),
        )
        .await;
    }
    assert_eq!(b.closed().await, 1008);
    // a is unaffected.
    a.ok("ping", json!({})).await;
}

#[tokio::test]
async fn shutdown_closes_sockets_1012() {
    let f = fixture(RtConfig::default(), None);
    let mut a = Client::hello(&f.hub, user("a")).await;
    f.hub.shutdown(Duration::from_secs(2)).await;
    assert_eq!(a.closed().await, 1012);
}
