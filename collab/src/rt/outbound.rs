//! One realtime socket's outbound queue, bounded in bytes, ending in one close.
//!
//! Events for a session are produced by other tasks (the meeting's owner), so a reader that
//! stops reading must not make them buffer without end: past `rt_outbound_bytes` the queue
//! is dropped and the socket closed with 1008 `slow_reader` (the session stays resumable from
//! its own, separately bounded, replay buffer).

use std::collections::VecDeque;
use std::sync::Mutex;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// What the transport writes next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outgoing {
    /// A text frame.
    Frame(String),
    /// Send this close frame, then stop.
    Close { code: u16, reason: String },
}

#[derive(Default)]
struct State {
    frames: VecDeque<String>,
    bytes: usize,
    close: Option<(u16, String)>,
    /// The close has been handed to the transport.
    done: bool,
}

pub(crate) struct OutQueue {
    state: Mutex<State>,
    wake: Notify,
    /// Fired when a close is queued, so the socket's task stops reading.
    closing: CancellationToken,
    max_bytes: usize,
}

impl OutQueue {
    pub(crate) fn new(max_bytes: usize) -> Self {
        OutQueue {
            state: Mutex::new(State::default()),
            wake: Notify::new(),
            closing: CancellationToken::new(),
            max_bytes,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the queue inconsistent (every update is
        // a single push or pop), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a frame; false when the queue is closing or the reader fell too far behind
    /// (then the socket is closed 1008).
    pub(crate) fn push(&self, frame: String) -> bool {
        let mut s = self.lock();
        if s.close.is_some() || s.done {
            return false;
        }
        if s.bytes > 0 && s.bytes + frame.len() > self.max_bytes {
            s.frames.clear();
            s.bytes = 0;
            s.close = Some((1008, "slow_reader".to_owned()));
            drop(s);
            self.closing.cancel();
            self.wake.notify_one();
            return false;
        }
        s.bytes += frame.len();
        s.frames.push_back(frame);
        drop(s);
        self.wake.notify_one();
        true
    }

    /// Queues the close after the frames already queued. The first close wins.
    pub(crate) fn close(&self, code: u16, reason: &str) {
        let mut s = self.lock();
        if s.close.is_none() && !s.done {
            s.close = Some((code, reason.to_owned()));
        }
        drop(s);
        self.closing.cancel();
        self.wake.notify_one();
    }

    pub(crate) fn closing(&self) -> CancellationToken {
        self.closing.clone()
    }

    #[cfg(test)]
    pub(crate) fn is_closing(&self) -> bool {
        self.closing.is_cancelled()
    }

    /// The close code queued, if any.
    pub(crate) fn close_code(&self) -> Option<u16> {
        self.lock().close.as_ref().map(|(c, _)| *c)
    }

    /// The next thing to write; `None` after the close was handed out.
    pub(crate) async fn next(&self) -> Option<Outgoing> {
        loop {
            {
                let mut s = self.lock();
                if let Some(frame) = s.frames.pop_front() {
                    s.bytes -= frame.len();
                    return Some(Outgoing::Frame(frame));
                }
                if let Some((code, reason)) = s.close.take() {
                    s.done = true;
                    return Some(Outgoing::Close { code, reason });
                }
                if s.done {
                    return None;
                }
            }
            // notify_one keeps a permit when nobody waits, so a push between the check above
            // and this await is not lost (there is one reader).
            self.wake.notified().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_then_close_then_nothing() {
        let q = OutQueue::new(100);
        assert!(q.push("a".into()));
        q.close(1000, "bye");
        assert!(!q.push("b".into()));
        assert_eq!(q.next().await, Some(Outgoing::Frame("a".into())));
        assert_eq!(
            q.next().await,
            Some(Outgoing::Close {
                code: 1000,
                reason: "bye".into()
            })
        );
        assert_eq!(q.next().await, None);
    }

    #[tokio::test]
    async fn a_reader_too_far_behind_is_closed_slow_reader() {
        let q = OutQueue::new(10);
        assert!(
            q.push("x".repeat(30)),
            "one big frame into an empty queue passes"
        );
        assert!(!q.push("y".into()));
        assert!(q.is_closing());
        assert_eq!(
            q.next().await,
            Some(Outgoing::Close {
                code: 1008,
                reason: "slow_reader".into()
            })
        );
    }
}
