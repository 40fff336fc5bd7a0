//! One realtime socket's task: reads the client's frames in order, enforces the socket's
//! limits, answers the session requests itself and hands meeting requests to the meeting's
//! owner.

use std::net::IpAddr;
use std::sync::Arc;

use serde_json::{Map, Value, json};
use tokio::sync::{mpsc, oneshot};

use super::hub::{Shared, now_ms, random_id};
use super::limits::{Bucket, ErrorWindow};
use super::outbound::OutQueue;
use super::principal::Principal;
use super::responder::Responder;
use super::session::Session;
use super::wire::{self, Request, WireError};
use crate::meet::{Command, JoinOutcome, parse_join};

pub(crate) enum Inbound {
    Text(String),
    Binary,
}

/// What a handled frame means for the socket.
enum Next {
    Continue,
    Close(u16, &'static str),
}

struct Socket {
    shared: Arc<Shared>,
    who: Principal,
    out: Arc<OutQueue>,
    session: Option<(Arc<Session>, u64)>,
    rate: Bucket,
    errors: ErrorWindow,
}

pub(crate) async fn run(
    shared: Arc<Shared>,
    who: Principal,
    _addr: Option<IpAddr>,
    mut rx: mpsc::Receiver<Inbound>,
    out: Arc<OutQueue>,
) {
    shared.observer.socket_opened();
    let cfg = &shared.cfg;
    let idle = cfg.heartbeat * 3;
    let mut sock = Socket {
        rate: Bucket::new(
            cfg.messages_per_second,
            cfg.messages_per_second.saturating_mul(2),
        ),
        errors: ErrorWindow::new(cfg.max_errors_per_minute),
        shared: shared.clone(),
        who,
        out: out.clone(),
        session: None,
    };
    let closing = out.closing();
    let cancel = shared.cancel.clone();
    loop {
        let inbound = tokio::select! {
            // Queued closes (removed, slow reader, replaced, too large) end the reading.
            _ = closing.cancelled() => break,
            _ = cancel.cancelled() => {
                out.close(1012, "server restart");
                break;
            }
            got = tokio::time::timeout(idle, rx.recv()) => got,
        };
        let next = match inbound {
            Err(_) => Next::Close(4408, "idle"),
            Ok(None) => break,
            Ok(Some(Inbound::Binary)) => sock.fail(&WireError {
                code: "malformed",
                message: "binary frames are not part of this protocol".to_owned(),
                re: None,
            }),
            Ok(Some(Inbound::Text(text))) => sock.frame(text).await,
        };
        if let Next::Close(code, reason) = next {
            out.close(code, reason);
            break;
        }
    }
    // A final close (4403, 1000 after ended) has finished the session already; anything else
    // keeps the seat for the resume window.
    if let Some((session, attachment)) = sock.session.take()
        && session.detach(attachment)
    {
        shared.meeting_presence(&session);
        let shared2 = shared.clone();
        let window = shared.cfg.resume_window;
        shared.tracker.spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(window) => {}
                _ = shared2.cancel.cancelled() => return,
            }
            if session.still_detached_since(attachment) {
                shared2.expire(&session);
            }
        });
    }
    shared
        .observer
        .socket_closed(out.close_code().unwrap_or(1006));
}

/// Requests of messaging (`docs/messaging.md`).
fn is_messaging(kind: &str) -> bool {
    ["conv.", "msg.", "presence.", "doc."]
        .iter()
        .any(|p| kind.starts_with(p))
}

impl Socket {
    /// Sends an error; past the error allowance the socket is closed 1008.
    fn fail(&mut self, e: &WireError) -> Next {
        self.shared.observer.error_sent(e.code);
        self.out
            .push(wire::error(e.re.as_deref(), e.code, &e.message));
        if self.errors.record() {
            return Next::Close(1008, "too many errors");
        }
        Next::Continue
    }

    fn fail_re(&mut self, re: &str, code: &'static str, message: &str) -> Next {
        self.fail(&WireError {
            code,
            message: message.to_owned(),
            re: Some(re.to_owned()),
        })
    }

    async fn frame(&mut self, text: String) -> Next {
        let req = match wire::parse(&text) {
            Ok(r) => r,
            Err(e) => {
                if self.session.is_none() && e.code != "unsupported_version" {
                    self.fail(&e);
                    return Next::Close(4400, "hello_first");
                }
                return self.fail(&e);
            }
        };
        if !self.rate.take() {
            return self.fail(&WireError {
                code: "rate_limited",
                message: "too many messages; slow down".to_owned(),
                re: req.id,
            });
        }
        let Some(id) = req.id.clone() else {
            return self.fail(&WireError {
                code: "bad_request",
                message: "a request needs an id".to_owned(),
                re: None,
            });
        };
        let Some((session, _)) = self.session.clone() else {
            if req.kind != "hello" {
                self.fail_re(&id, "hello_first", "the first request must be hello");
                return Next::Close(4400, "hello_first");
            }
            return self.hello(&id, &req.data);
        };
        match req.kind.as_str() {
            "hello" => self.fail_re(&id, "bad_request", "hello was already said"),
            "ping" => {
                self.out.push(wire::ok(&id, json!({"at": now_ms()})));
                Next::Continue
            }
            "meet.join" => self.join(session, id, req).await,
            kind if kind.starts_with("meet.") => {
                let Some(link) = session.meeting() else {
                    return self.fail_re(&id, "not_joined", "join a meeting first");
                };
                let responder = Responder::new(session, id, self.shared.observer.clone());
                let cmd = Command::Request {
                    participant: link.participant,
                    kind: req.kind,
                    data: req.data,
                    responder,
                };
                if let Err(Command::Request { responder, .. }) = link.handle.send(cmd).await {
                    responder.err("not_joined", "you are not in this meeting");
                }
                Next::Continue
            }
            kind if is_messaging(kind) => {
                let responder = Responder::new(session.clone(), id, self.shared.observer.clone());
                crate::msg::service::handle(&self.shared, session, req.kind, req.data, responder)
                    .await;
                Next::Continue
            }
            _ => self.fail_re(&id, "unknown_type", "no such request type"),
        }
    }

    fn welcome(&self, session: &Session, resumed: bool) -> impl Fn(&str) -> String + use<> {
        let cfg = &self.shared.cfg;
        let user = session.principal.user().cloned();
        let data = json!({
            "session": session.id,
            "resume_token": session.token(),
            "resumed": resumed,
            "features": if self.shared.msg.is_some() { json!(["meet", "chat", "msg"]) } else { json!(["meet", "chat"]) },
            "heartbeat_ms": cfg.heartbeat.as_millis() as u64,
            "resume_window_ms": cfg.resume_window.as_millis() as u64,
            "limits": {
                "max_message_bytes": cfg.max_message_bytes,
                "messages_per_second": cfg.messages_per_second,
                "signal_bytes": cfg.signal_bytes,
            },
            "you": {
                "user_id": user.as_ref().map(|u| u.id.clone()),
                "name": user.as_ref().map(|u| u.name.clone()),
                "guest": user.is_none(),
            },
        });
        move |re: &str| wire::ok(re, data.clone())
    }

    fn hello(&mut self, id: &str, data: &Map<String, Value>) -> Next {
        if let Some(resume) = data.get("resume").and_then(Value::as_object) {
            let sid = resume.get("session").and_then(Value::as_str).unwrap_or("");
            let token = resume.get("token").and_then(Value::as_str).unwrap_or("");
            let last_seq = resume.get("last_seq").and_then(Value::as_u64).unwrap_or(0);
            // A session is resumed only by the principal that opened it.
            if let Some(s) = self.shared.session(sid).filter(|s| s.principal == self.who) {
                let welcome = self.welcome(&s, true)(id);
                if let Ok(n) = s.resume(token, last_seq, self.out.clone(), welcome) {
                    self.shared.meeting_presence(&s);
                    self.session = Some((s, n));
                    return Next::Continue;
                }
            }
        }
        let session = Arc::new(Session::new(
            random_id(16),
            random_id(32),
            self.who.clone(),
            self.shared.cfg.replay_bytes,
        ));
        self.shared.add_session(session.clone());
        let welcome = self.welcome(&session, false)(id);
        let n = session.attach(self.out.clone(), welcome);
        // Presence is decided once the socket is attached (before, the session looks away).
        self.shared.meeting_presence(&session);
        self.session = Some((session, n));
        Next::Continue
    }

    async fn join(&mut self, session: Arc<Session>, id: String, req: Request) -> Next {
        let join = match parse_join(&req.data) {
            Ok(j) => j,
            Err(e) => return self.fail_re(&id, "bad_request", &e.0),
        };
        if session.meeting().is_some() {
            return self.fail_re(
                &id,
                "already_joined",
                "this session is already in a meeting",
            );
        }
        // A retiring owner hands the join back; resolving again sees any change (ended).
        for _ in 0..3 {
            let entry = match self
                .shared
                .dir
                .resolve(&join.slug, &session.principal, join.invite.as_deref())
                .await
            {
                Ok(entry) => entry,
                Err(refusal) => return self.fail_re(&id, refusal.code(), &refusal.to_string()),
            };
            let name = match (session.principal.user(), &join.name) {
                (Some(user), _) if !entry.guest => user.name.clone(),
                (_, Some(name)) => name.clone(),
                (_, None) => return self.fail_re(&id, "bad_request", "a guest needs a name"),
            };
            let handle = self.shared.meeting(&entry.meeting);
            let (done, outcome) = oneshot::channel();
            let cmd = Command::Join {
                entry,
                name,
                session: session.clone(),
                responder: Responder::new(
                    session.clone(),
                    id.clone(),
                    self.shared.observer.clone(),
                ),
                done,
            };
            if let Err(Command::Join { responder, .. }) = handle.send(cmd).await {
                responder.disarm();
                continue;
            }
            if outcome.await == Ok(JoinOutcome::Done) {
                return Next::Continue;
            }
        }
        self.fail_re(&id, "unavailable", "the meeting is restarting; try again")
    }
}
