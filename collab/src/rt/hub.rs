//! The realtime hub: sessions by id, live meetings by slug, and the tasks behind them.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rand::Rng;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::config::RtConfig;
use super::observer::RtObserver;
use super::outbound::{OutQueue, Outgoing};
use super::principal::Principal;
use super::session::Session;
use super::socket::{self, Inbound};
use crate::meet::{
    Command, MediaBackend, MeetingDirectory, MeetingHandle, MeetingInfo, Mesh, spawn_owner,
};

/// Frames a socket may have queued inbound before its transport waits: with
/// `rt_max_message_bytes` each, this bounds a socket's inbound bytes.
const INBOUND_FRAMES: usize = 8;

/// What the socket tasks and meeting owners share.
pub(crate) struct Shared {
    pub cfg: RtConfig,
    pub dir: Arc<dyn MeetingDirectory>,
    pub observer: Arc<dyn RtObserver>,
    pub media: Arc<dyn MediaBackend>,
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    meetings: Mutex<HashMap<String, MeetingHandle>>,
    pub tracker: TaskTracker,
    pub cancel: CancellationToken,
    next_meeting: AtomicU64,
    /// Conversations, when messaging is on.
    pub msg: Option<Arc<crate::msg::Messaging>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Map inserts and removes only: a poisoned lock still holds a whole map.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    pub(crate) fn lock_meetings(&self) -> MutexGuard<'_, HashMap<String, MeetingHandle>> {
        lock(&self.meetings)
    }

    /// The live owner of a meeting, started if there is none.
    pub(crate) fn meeting(self: &Arc<Self>, info: &MeetingInfo) -> MeetingHandle {
        let mut meetings = self.lock_meetings();
        if let Some(h) = meetings.get(&info.slug) {
            return h.clone();
        }
        let id = self.next_meeting.fetch_add(1, Ordering::Relaxed);
        let h = spawn_owner(self.clone(), info.clone(), id);
        meetings.insert(info.slug.clone(), h.clone());
        h
    }

    pub(crate) fn add_session(&self, s: Arc<Session>) {
        if let Some(msg) = &self.msg {
            msg.session_started(&s);
        }
        lock(&self.sessions).insert(s.id.clone(), s);
    }

    /// A session entered or left a meeting, lost or regained its socket: its user's
    /// presence may have changed.
    pub(crate) fn meeting_presence(&self, s: &Session) {
        if let Some(msg) = &self.msg {
            msg.presence_touched(s);
        }
    }

    pub(crate) fn session(&self, id: &str) -> Option<Arc<Session>> {
        lock(&self.sessions).get(id).cloned()
    }

    /// Ends a session for good (after its final event) and forgets it.
    pub(crate) fn finish_session(&self, s: &Session, code: u16, reason: &str) {
        s.finish(code, reason);
        lock(&self.sessions).remove(&s.id);
        if let Some(msg) = &self.msg {
            msg.session_finished(s);
        }
    }

    /// The resume window passed with no new socket: the seat is given up.
    pub(crate) fn expire(&self, s: &Arc<Session>) {
        if let Some(link) = s.meeting() {
            link.handle.post(Command::Expire {
                participant: link.participant,
                session: s.id.clone(),
            });
        }
        self.finish_session(s, 1000, "expired");
    }
}

/// Unix milliseconds now.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `bytes` random bytes as lowercase hex.
pub(crate) fn random_id(bytes: usize) -> String {
    let mut rng = rand::rng();
    (0..bytes)
        .map(|_| format!("{:02x}", rng.random::<u8>()))
        .collect()
}

/// The engine of `/ws/rt`. Cheap to clone.
#[derive(Clone)]
pub struct RtHub {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for RtHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RtHub").finish_non_exhaustive()
    }
}

/// One socket's two ends, for the transport.
pub struct RtSocket {
    pub sender: RtSender,
    pub receiver: RtReceiver,
}

/// Frames from the client. Dropping it tells the engine the client went away.
pub struct RtSender {
    tx: mpsc::Sender<Inbound>,
    out: Arc<OutQueue>,
    max: usize,
}

impl RtSender {
    /// Hands over one text frame; waits while the socket's earlier frames are handled. A frame
    /// over `rt_max_message_bytes` closes the socket with 1009 instead.
    pub async fn send(&self, text: String) {
        if text.len() > self.max {
            self.out.close(1009, "message too large");
            return;
        }
        let _ = self.tx.send(Inbound::Text(text)).await;
    }

    /// The transport refused a frame over `rt_max_message_bytes` before reading it all:
    /// the socket is closed with 1009.
    pub fn too_large(&self) {
        self.out.close(1009, "message too large");
    }

    /// A binary frame arrived (refused with `malformed`).
    pub async fn send_binary(&self) {
        let _ = self.tx.send(Inbound::Binary).await;
    }
}

/// What to write to the client, in order, ending with one close.
pub struct RtReceiver {
    out: Arc<OutQueue>,
}

impl RtReceiver {
    /// The next frame or the close; `None` after the close.
    pub async fn next(&mut self) -> Option<Outgoing> {
        self.out.next().await
    }
}

impl RtHub {
    pub fn new(
        cfg: RtConfig,
        dir: Arc<dyn MeetingDirectory>,
        observer: Arc<dyn RtObserver>,
    ) -> Self {
        Self::with_media(cfg, dir, observer, Arc::new(Mesh))
    }

    pub fn with_media(
        cfg: RtConfig,
        dir: Arc<dyn MeetingDirectory>,
        observer: Arc<dyn RtObserver>,
        media: Arc<dyn MediaBackend>,
    ) -> Self {
        Self::with_parts(cfg, dir, observer, media, None)
    }

    /// The hub with messaging (`docs/messaging.md`) on the same sockets.
    pub fn with_parts(
        cfg: RtConfig,
        dir: Arc<dyn MeetingDirectory>,
        observer: Arc<dyn RtObserver>,
        media: Arc<dyn MediaBackend>,
        msg: Option<crate::msg::Messaging>,
    ) -> Self {
        RtHub {
            shared: Arc::new(Shared {
                msg: msg.map(Arc::new),
                cfg,
                dir,
                observer,
                media,
                sessions: Mutex::new(HashMap::new()),
                meetings: Mutex::new(HashMap::new()),
                tracker: TaskTracker::new(),
                cancel: CancellationToken::new(),
                next_meeting: AtomicU64::new(1),
            }),
        }
    }

    pub fn config(&self) -> &RtConfig {
        &self.shared.cfg
    }

    /// A new socket for `who` (as the transport authenticated it).
    pub fn connect(&self, who: Principal, addr: Option<IpAddr>) -> RtSocket {
        let out = Arc::new(OutQueue::new(self.shared.cfg.outbound_bytes));
        let (tx, rx) = mpsc::channel(INBOUND_FRAMES);
        if self.shared.cancel.is_cancelled() {
            out.close(1012, "server restart");
        } else {
            self.shared
                .tracker
                .spawn(socket::run(self.shared.clone(), who, addr, rx, out.clone()));
        }
        RtSocket {
            sender: RtSender {
                tx,
                out: out.clone(),
                max: self.shared.cfg.max_message_bytes,
            },
            receiver: RtReceiver { out },
        }
    }

    /// Closes every socket with 1012 (the client resumes elsewhere) and waits for the tasks,
    /// at most `deadline`.
    pub async fn shutdown(&self, deadline: Duration) {
        self.shared.cancel.cancel();
        self.shared.tracker.close();
        let _ = tokio::time::timeout(deadline, self.shared.tracker.wait()).await;
    }

    /// The meeting was ended over HTTP: live participants get `meet.ended`.
    pub fn end_meeting(&self, slug: &str) {
        let handle = self.shared.lock_meetings().get(slug).cloned();
        if let Some(h) = handle {
            h.post(Command::End);
        }
    }

    /// An invite was revoked: whoever waits in the lobby on it is refused at once.
    pub fn invite_revoked(&self, slug: &str, invite_id: &str) {
        let handle = self.shared.lock_meetings().get(slug).cloned();
        if let Some(h) = handle {
            h.post(Command::InviteRevoked {
                invite_id: invite_id.to_owned(),
            });
        }
    }

    /// Meetings with a live owner.
    pub fn live_meetings(&self) -> usize {
        self.shared.lock_meetings().len()
    }

    /// Messaging, when it is on.
    pub fn messaging(&self) -> Option<&crate::msg::Messaging> {
        self.shared.msg.as_deref()
    }
}
