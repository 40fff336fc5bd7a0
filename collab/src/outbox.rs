//! One connection's outbound queue, bounded in frames and in bytes.
//!
//! A frame cap alone lets a client that never reads pin `frames × largest frame` bytes (1,024
//! answers of a 1 MB document are a gigabyte), so the room also counts the bytes queued: a
//! frame is refused when it would take the queue past the byte limit, unless the queue is
//! empty (a single frame larger than the limit, a big document's sync step 2, must still get
//! through). The queue also counts the *replies* it holds (answers to sync step 1 and
//! query-awareness), so the room answers one at a time per connection.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use tokio::sync::mpsc;

struct Queued {
    frame: Bytes,
    reply: bool,
}

#[derive(Default)]
struct Counters {
    bytes: AtomicUsize,
    replies: AtomicUsize,
}

/// Why a frame was not queued.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Over the frame or byte limit: the connection is behind.
    Full,
    /// The transport is gone.
    Closed,
}

/// The room's end.
pub(crate) struct Outbox {
    tx: mpsc::Sender<Queued>,
    counters: Arc<Counters>,
    max_bytes: usize,
}

/// The transport's end.
pub(crate) struct Inbox {
    rx: mpsc::Receiver<Queued>,
    counters: Arc<Counters>,
}

pub(crate) fn outbox(max_frames: usize, max_bytes: usize) -> (Outbox, Inbox) {
    let (tx, rx) = mpsc::channel(max_frames);
    let counters = Arc::new(Counters::default());
    (
        Outbox {
            tx,
            counters: counters.clone(),
            max_bytes,
        },
        Inbox { rx, counters },
    )
}

impl Outbox {
    /// Queues a frame the room sends on its own (updates, presence, acks).
    pub(crate) fn push(&self, frame: Bytes) -> Result<(), Refused> {
        self.enqueue(frame, false)
    }

    /// Queues the answer to a request of this connection.
    pub(crate) fn push_reply(&self, frame: Bytes) -> Result<(), Refused> {
        self.enqueue(frame, true)
    }

    fn enqueue(&self, frame: Bytes, reply: bool) -> Result<(), Refused> {
        let len = frame.len();
        // Only the transport lowers the count, so it can only be lower by the time we add.
        let queued = self.counters.bytes.load(Ordering::Acquire);
        if queued > 0 && queued.saturating_add(len) > self.max_bytes {
            return Err(Refused::Full);
        }
        // Counted before the frame is visible, so the transport never subtracts first.
        self.counters.bytes.fetch_add(len, Ordering::AcqRel);
        if reply {
            self.counters.replies.fetch_add(1, Ordering::AcqRel);
        }
        match self.tx.try_send(Queued { frame, reply }) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.counters.bytes.fetch_sub(len, Ordering::AcqRel);
                if reply {
                    self.counters.replies.fetch_sub(1, Ordering::AcqRel);
                }
                Err(match e {
                    mpsc::error::TrySendError::Full(_) => Refused::Full,
                    mpsc::error::TrySendError::Closed(_) => Refused::Closed,
                })
            }
        }
    }

    /// Whether an answer to this connection is still waiting to be written.
    pub(crate) fn reply_outstanding(&self) -> bool {
        self.counters.replies.load(Ordering::Acquire) > 0
    }

    /// Whether at most half the frames and half the bytes are queued.
    pub(crate) fn drained_to_half(&self) -> bool {
        self.tx.capacity() * 2 >= self.tx.max_capacity()
            && self.counters.bytes.load(Ordering::Acquire) * 2 <= self.max_bytes
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

impl Inbox {
    pub(crate) async fn recv(&mut self) -> Option<Bytes> {
        let queued = self.rx.recv().await?;
        Some(self.taken(queued))
    }

    pub(crate) fn try_recv(&mut self) -> Option<Bytes> {
        let queued = self.rx.try_recv().ok()?;
        Some(self.taken(queued))
    }

    fn taken(&self, queued: Queued) -> Bytes {
        self.counters
            .bytes
            .fetch_sub(queued.frame.len(), Ordering::AcqRel);
        if queued.reply {
            self.counters.replies.fetch_sub(1, Ordering::AcqRel);
        }
        queued.frame
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(n: usize) -> Bytes {
        Bytes::from(vec![0u8; n])
    }

    #[tokio::test]
    async fn bounded_in_bytes_but_one_big_frame_passes() {
        let (out, mut inbox) = outbox(16, 100);
        out.push(frame(250)).unwrap();
        assert_eq!(out.push(frame(1)), Err(Refused::Full));
        assert!(!out.drained_to_half());
        assert_eq!(inbox.recv().await.map(|f| f.len()), Some(250));
        out.push(frame(60)).unwrap();
        assert_eq!(out.push(frame(41)), Err(Refused::Full));
        out.push(frame(40)).unwrap();
        assert_eq!(inbox.try_recv().map(|f| f.len()), Some(60));
        assert!(out.drained_to_half());
    }

    #[tokio::test]
    async fn counts_replies_until_taken() {
        let (out, mut inbox) = outbox(4, 1000);
        out.push(frame(1)).unwrap();
        out.push_reply(frame(2)).unwrap();
        assert!(out.reply_outstanding());
        inbox.recv().await;
        assert!(out.reply_outstanding());
        inbox.recv().await;
        assert!(!out.reply_outstanding());
        for _ in 0..4 {
            out.push(frame(1)).unwrap();
        }
        assert_eq!(out.push_reply(frame(1)), Err(Refused::Full));
        assert!(
            !out.reply_outstanding(),
            "a refused reply is not outstanding"
        );
        drop(inbox);
        assert_eq!(out.push(frame(1)), Err(Refused::Closed));
    }
}
