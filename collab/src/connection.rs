//! The transport's side of a room membership.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use crate::outbox::Inbox;
use crate::presence::PresenceUser;
use crate::room::{Control, Inbound, InboundMsg};

/// A connection id, unique within the process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "c{}", self.0)
    }
}

/// Why the room ended a connection. The gateway maps each to a WebSocket close code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// The frame is not a y-protocols message.
    Malformed(String),
    /// yrs refused the update.
    InvalidUpdate(String),
    /// An awareness message over the configured size.
    AwarenessTooLarge { size: usize, limit: usize },
    /// The connection's outbound queue stayed full past the slow-reader timeout.
    SlowReader,
    /// The server is shutting down: reconnect (elsewhere).
    Restart,
    /// The room failed (an internal error); the client may reconnect and the document is
    /// reloaded from the store.
    RoomFailed(String),
    /// The update would have grown the document past `max_doc_bytes`; it was not applied.
    DocumentTooLarge { limit: u64 },
}

impl CloseReason {
    /// Whether the transport should close at once, dropping frames still queued.
    pub fn is_urgent(&self) -> bool {
        matches!(self, CloseReason::SlowReader)
    }

    /// A short stable label for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            CloseReason::Malformed(_) => "malformed",
            CloseReason::InvalidUpdate(_) => "invalid_update",
            CloseReason::AwarenessTooLarge { .. } => "awareness_too_large",
            CloseReason::SlowReader => "slow_reader",
            CloseReason::Restart => "restart",
            CloseReason::RoomFailed(_) => "room_failed",
            CloseReason::DocumentTooLarge { .. } => "document_too_large",
        }
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::Malformed(m) => write!(f, "malformed message: {m}"),
            CloseReason::InvalidUpdate(m) => write!(f, "update refused: {m}"),
            CloseReason::AwarenessTooLarge { size, limit } => {
                write!(f, "awareness update of {size} bytes exceeds {limit}")
            }
            CloseReason::SlowReader => f.write_str("connection too slow to keep up"),
            CloseReason::Restart => f.write_str("server restarting"),
            CloseReason::RoomFailed(m) => write!(f, "document failed: {m}"),
            CloseReason::DocumentTooLarge { limit } => write!(
                f,
                "document size limit of {limit} bytes reached; update not applied"
            ),
        }
    }
}

/// Sends `Leave` when the last half of a connection is dropped, so the room removes the
/// connection (and its awareness) as soon as the transport is gone.
pub(crate) struct LeaveGuard {
    pub(crate) id: ConnId,
    pub(crate) control: mpsc::UnboundedSender<Control>,
}

impl Drop for LeaveGuard {
    fn drop(&mut self) {
        let _ = self.control.send(Control::Leave(self.id));
    }
}

/// A joined connection: split it to read and write concurrently.
pub struct Connection {
    pub id: ConnId,
    pub sender: ConnectionSender,
    pub receiver: ConnectionReceiver,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Connection({})", self.id)
    }
}

/// The room is gone (shut down or failed); the transport should stop reading.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("room closed")]
pub struct RoomGone;

/// Pushes received frames into the room.
pub struct ConnectionSender {
    pub(crate) id: ConnId,
    pub(crate) inbound: mpsc::Sender<Inbound>,
    pub(crate) _guard: Arc<LeaveGuard>,
}

impl ConnectionSender {
    /// Hands one received frame to the room. Waits when the room is busy (backpressure
    /// to the socket).
    pub async fn send(&self, frame: Bytes) -> Result<(), RoomGone> {
        self.push(InboundMsg::Frame(frame)).await
    }

    /// Binds this connection's presence to the identity the transport authenticated: from
    /// then on the room overwrites the `user.id` and `user.name` of every awareness state it
    /// sets, so nobody can appear as someone else. Call it before the first [`send`]: it
    /// travels in the same queue as the frames, so it applies to every frame sent after it.
    ///
    /// [`send`]: ConnectionSender::send
    pub async fn identify(&self, user: PresenceUser) -> Result<(), RoomGone> {
        self.push(InboundMsg::Identify(user)).await
    }

    async fn push(&self, msg: InboundMsg) -> Result<(), RoomGone> {
        self.inbound
            .send(Inbound { conn: self.id, msg })
            .await
            .map_err(|_| RoomGone)
    }
}

/// What the transport must do next.
#[derive(Debug, PartialEq, Eq)]
pub enum Outgoing {
    Frame(Bytes),
    Close(CloseReason),
}

/// Yields the frames to write, then the reason the room closed the connection.
pub struct ConnectionReceiver {
    pub(crate) frames: Inbox,
    pub(crate) close: oneshot::Receiver<CloseReason>,
    /// A close already taken from `close` while frames were still queued.
    pub(crate) pending_close: Option<CloseReason>,
    pub(crate) _guard: Arc<LeaveGuard>,
}

impl ConnectionReceiver {
    /// The next frame to write, or the close. Frames queued before a close are delivered
    /// first (the final "saved" acks), except for urgent closes.
    pub async fn next(&mut self) -> Outgoing {
        if self.pending_close.is_none()
            && let Ok(reason) = self.close.try_recv()
        {
            self.pending_close = Some(reason);
        }
        if self
            .pending_close
            .as_ref()
            .is_some_and(CloseReason::is_urgent)
        {
            return Outgoing::Close(self.take_close().await);
        }
        match self.frames.recv().await {
            Some(frame) => Outgoing::Frame(frame),
            None => Outgoing::Close(self.take_close().await),
        }
    }

    /// A frame already queued, without waiting (to batch writes before a flush).
    pub fn try_next(&mut self) -> Option<Bytes> {
        self.frames.try_recv()
    }

    async fn take_close(&mut self) -> CloseReason {
        if let Some(reason) = self.pending_close.take() {
            // Keep answering the same close if asked again (never poll a spent oneshot).
            self.pending_close = Some(reason.clone());
            return reason;
        }
        let reason = (&mut self.close)
            .await
            .unwrap_or_else(|_| CloseReason::RoomFailed("room stopped".into()));
        self.pending_close = Some(reason.clone());
        reason
    }
}
