//! A conversation's log writer: one task per loaded conversation, one store write at a time.
//! Entries that queue while a write is under way go together in the next one (group commit:
//! a busy conversation costs one object per write, not per message). The writer numbers the
//! entries as it writes them, so a write the store refused uses up no sequence and the log
//! stays without gaps. An edit or deletion first rewrites the batch holding its message,
//! then appends its own entry: once acknowledged, history shows the change and a device
//! catching up learns of it.

use std::sync::{Arc, Mutex};

use dure_storage::{Store, StoreError};
use tokio::sync::{Semaphore, mpsc};

use super::layout::{self, Entry, LOG_BATCH, Message};
use super::owner::{Command, ConvHandle};
use crate::rt::responder::Responder;

/// What to do to the target of an edit or deletion.
#[derive(Debug, Clone)]
pub(crate) enum Patch {
    Edit { text: String, at: u64 },
    Delete,
}

/// Why an op was not stored: an error code of `docs/messaging.md` and a message.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub code: &'static str,
    pub message: String,
}

impl Failure {
    fn store(e: &StoreError) -> Self {
        Failure {
            code: "unavailable",
            message: format!("the conversation could not be stored: {e}"),
        }
    }
}

pub(crate) enum WriteOp {
    Append {
        entry: Entry,
        responder: Option<Responder>,
    },
    Change {
        target: u64,
        /// Only the author may change a message.
        by: String,
        patch: Patch,
        entry: Entry,
        responder: Option<Responder>,
    },
}

/// One op's outcome, reported to the owner in log order.
pub(crate) struct Stored {
    pub result: Result<Entry, Failure>,
    /// The message as it is now, for an edit or deletion.
    pub patched: Option<Message>,
    pub responder: Option<Responder>,
}

/// The first sequence of every batch, oldest first; shared with history readers.
pub(crate) type BatchIndex = Arc<Mutex<Vec<u64>>>;

pub(crate) fn index_snapshot(index: &BatchIndex) -> Vec<u64> {
    index.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// The batch holding `seq`, by its first sequence.
pub(crate) fn batch_of(firsts: &[u64], seq: u64) -> Option<u64> {
    let i = firsts.partition_point(|f| *f <= seq);
    i.checked_sub(1).map(|i| firsts[i])
}

pub(crate) struct Writer {
    pub store: Store,
    pub conv: String,
    pub next_seq: u64,
    pub index: BatchIndex,
    pub permits: Arc<Semaphore>,
    pub owner: ConvHandle,
}

impl Writer {
    pub(crate) async fn run(mut self, mut rx: mpsc::Receiver<WriteOp>) {
        // A change met while gathering a batch waits for the next write (its patch first).
        let mut held: Option<WriteOp> = None;
        loop {
            let first = match held.take() {
                Some(op) => op,
                None => match rx.recv().await {
                    Some(op) => op,
                    None => break,
                },
            };
            // Bounded across conversations (`msg_store_writes`): writes wait here, and what
            // queues meanwhile joins the next batch.
            let Ok(_permit) = self.permits.clone().acquire_owned().await else {
                break;
            };
            let mut ops = Vec::new();
            let mut patched = None;
            match first {
                WriteOp::Append { entry, responder } => ops.push((entry, responder)),
                WriteOp::Change {
                    target,
                    by,
                    patch,
                    entry,
                    responder,
                } => match self.patch(target, &by, &patch).await {
                    Ok(m) => {
                        patched = Some(m);
                        ops.push((entry, responder));
                    }
                    Err(e) => {
                        if e.code == "unavailable" {
                            tracing::warn!(conversation = %self.conv, error = %e.message, "message change not stored");
                        }
                        self.report(Stored {
                            result: Err(e),
                            patched: None,
                            responder,
                        })
                        .await;
                        continue;
                    }
                },
            }
            // Group commit: appends that queued meanwhile go in the same write.
            while ops.len() < LOG_BATCH {
                match rx.try_recv() {
                    Ok(WriteOp::Append { entry, responder }) => ops.push((entry, responder)),
                    Ok(change) => {
                        held = Some(change);
                        break;
                    }
                    Err(_) => break,
                }
            }
            self.write(ops, patched).await;
        }
    }

    async fn write(&mut self, ops: Vec<(Entry, Option<Responder>)>, patched: Option<Message>) {
        let first = self.next_seq;
        let mut entries = Vec::with_capacity(ops.len());
        let mut responders = Vec::with_capacity(ops.len());
        for (i, (mut e, r)) in ops.into_iter().enumerate() {
            e.set_seq(first + i as u64);
            entries.push(e);
            responders.push(r);
        }
        let n = entries.len() as u64;
        let result = layout::append_batch(&self.store, &self.conv, entries.clone()).await;
        match &result {
            Ok(()) => {
                self.next_seq += n;
                self.index
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(first);
            }
            Err(e) => {
                tracing::warn!(conversation = %self.conv, error = %e, "conversation log write failed");
                if matches!(e, StoreError::ConditionFailed { .. }) {
                    // Someone else wrote these sequences: continue after what is stored.
                    self.resync().await;
                }
            }
        }
        let mut patched = patched;
        for (entry, responder) in entries.into_iter().zip(responders) {
            let stored = Stored {
                result: result.as_ref().map(|_| entry).map_err(Failure::store),
                patched: patched.take(),
                responder,
            };
            self.report(stored).await;
        }
    }

    async fn report(&self, stored: Stored) {
        // Awaited, not posted: reports reach the owner in log order. The owner never waits
        // on this task; once it is gone a dropped responder answers `internal`.
        let _ = self.owner.send(Command::Stored(stored)).await;
    }

    async fn resync(&mut self) {
        if let Ok(firsts) = layout::list_batches(&self.store, &self.conv).await
            && let Some((first, key)) = firsts.last()
            && let Ok(Some((batch, _))) = layout::read_batch(&self.store, key, *first).await
        {
            self.next_seq = batch.entries.last().map_or(self.next_seq, |e| e.seq() + 1);
            *self.index.lock().unwrap_or_else(|p| p.into_inner()) =
                firsts.iter().map(|(f, _)| *f).collect();
        }
    }

    /// Rewrites the batch holding message `target` with the change applied, if `by` wrote it.
    async fn patch(&self, target: u64, by: &str, patch: &Patch) -> Result<Message, Failure> {
        let firsts = index_snapshot(&self.index);
        let not_found = || Failure {
            code: "not_found",
            message: format!("no message {target} in this conversation"),
        };
        let first = batch_of(&firsts, target).ok_or_else(not_found)?;
        let key = layout::log_key(&self.conv, first).map_err(|e| Failure::store(&e))?;
        // One retry: only this writer rewrites batches, but a read may race a retention pass.
        for _ in 0..2 {
            let Some((mut batch, version)) = layout::read_batch(&self.store, &key, first)
                .await
                .map_err(|e| Failure::store(&e))?
            else {
                return Err(not_found());
            };
            let Some(Entry::Message(m)) = batch.entries.iter_mut().find(|e| e.seq() == target)
            else {
                return Err(not_found());
            };
            if m.author.user_id != by {
                return Err(Failure {
                    code: "forbidden",
                    message: "only the author may change a message".to_owned(),
                });
            }
            if m.deleted {
                return Err(Failure {
                    code: "not_found",
                    message: "this message was deleted".to_owned(),
                });
            }
            let removed: Vec<String> = match patch {
                Patch::Edit { text, at } => {
                    m.text = text.clone();
                    m.edited_at = Some(*at);
                    Vec::new()
                }
                Patch::Delete => {
                    m.text.clear();
                    m.mentions.clear();
                    m.docs.clear();
                    m.reply_to = None;
                    m.deleted = true;
                    m.attachments.drain(..).map(|a| a.id).collect()
                }
            };
            let now = m.clone();
            match layout::rewrite_batch(&self.store, &key, first, &batch, version).await {
                Ok(()) => {
                    for file in removed {
                        if let Err(e) = layout::delete_file(&self.store, &self.conv, &file).await {
                            tracing::warn!(conversation = %self.conv, file = %file, error = %e, "deleted message's file not removed");
                        }
                    }
                    return Ok(now);
                }
                Err(StoreError::ConditionFailed { .. }) => continue,
                Err(e) => return Err(Failure::store(&e)),
            }
        }
        Err(Failure::store(&StoreError::Unavailable(
            "the message's batch kept changing".to_owned(),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::batch_of;

    #[test]
    fn finds_the_batch_holding_a_sequence() {
        let firsts = [1, 4, 10];
        assert_eq!(batch_of(&firsts, 0), None);
        assert_eq!(batch_of(&firsts, 1), Some(1));
        assert_eq!(batch_of(&firsts, 3), Some(1));
        assert_eq!(batch_of(&firsts, 4), Some(4));
        assert_eq!(batch_of(&firsts, 99), Some(10));
    }
}
