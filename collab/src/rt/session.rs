//! A realtime session: what outlives one socket. It numbers the events sent to the client,
//! keeps the newest of them (bounded in bytes) for replay after a drop, and holds the seat in
//! a meeting while the client reconnects.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::outbound::OutQueue;
use super::principal::Principal;
use super::wire;
use crate::meet::MeetingHandle;

/// The meeting a session takes part in.
#[derive(Clone)]
pub(crate) struct MeetingLink {
    pub participant: String,
    pub handle: MeetingHandle,
}

struct State {
    next_seq: u64,
    replay: VecDeque<(u64, String)>,
    replay_bytes: usize,
    /// The socket currently attached, and its number (attachments count up).
    out: Option<(u64, Arc<OutQueue>)>,
    attachments: u64,
    meeting: Option<MeetingLink>,
    /// Over: removed, denied, ended or expired; never resumed.
    finished: bool,
}

pub(crate) struct Session {
    pub id: String,
    token: String,
    pub principal: Principal,
    replay_limit: usize,
    state: Mutex<State>,
}

/// Why a resume was refused (the client gets a fresh session instead).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ResumeRefused {
    WrongToken,
    Finished,
    /// The replay buffer no longer reaches back to the client's last event.
    Gap,
}

impl Session {
    pub(crate) fn new(
        id: String,
        token: String,
        principal: Principal,
        replay_limit: usize,
    ) -> Self {
        Session {
            id,
            token,
            principal,
            replay_limit,
            state: Mutex::new(State {
                next_seq: 1,
                replay: VecDeque::new(),
                replay_bytes: 0,
                out: None,
                attachments: 0,
                meeting: None,
                finished: false,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Every update under this lock is a few field writes; a poisoned lock is still whole.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn token(&self) -> &str {
        &self.token
    }

    /// Attaches a fresh socket; returns its attachment number.
    pub(crate) fn attach(&self, out: Arc<OutQueue>, welcome: String) -> u64 {
        let mut s = self.lock();
        s.attachments += 1;
        let n = s.attachments;
        out.push(welcome);
        s.out = Some((n, out));
        n
    }

    /// Attaches a socket that resumes after `last_seq`: the welcome, then every later event in
    /// order, with nothing interleaved (the lock is held throughout). The socket attached
    /// before, if any, is closed 4409.
    pub(crate) fn resume(
        &self,
        token: &str,
        last_seq: u64,
        out: Arc<OutQueue>,
        welcome: String,
    ) -> Result<u64, ResumeRefused> {
        if !constant_time_eq(token.as_bytes(), self.token.as_bytes()) {
            return Err(ResumeRefused::WrongToken);
        }
        let mut s = self.lock();
        if s.finished {
            return Err(ResumeRefused::Finished);
        }
        if last_seq >= s.next_seq {
            return Err(ResumeRefused::Gap);
        }
        let oldest = s.replay.front().map_or(s.next_seq, |(seq, _)| *seq);
        if last_seq + 1 < oldest {
            return Err(ResumeRefused::Gap);
        }
        if let Some((_, old)) = s.out.take() {
            old.close(4409, "resumed on another socket");
        }
        out.push(welcome);
        for (seq, frame) in &s.replay {
            if *seq > last_seq {
                out.push(frame.clone());
            }
        }
        s.attachments += 1;
        let n = s.attachments;
        s.out = Some((n, out));
        Ok(n)
    }

    /// The socket with this attachment number went away. True when the session still holds a
    /// seat (the caller starts the resume window).
    pub(crate) fn detach(&self, attachment: u64) -> bool {
        let mut s = self.lock();
        if s.out.as_ref().is_some_and(|(n, _)| *n == attachment) {
            s.out = None;
        }
        !s.finished && s.out.is_none()
    }

    /// Whether a socket is attached now (a session in its resume window has none).
    pub(crate) fn attached(&self) -> bool {
        self.lock().out.is_some()
    }

    /// Still without a socket since attachment `attachment` left, and not finished.
    pub(crate) fn still_detached_since(&self, attachment: u64) -> bool {
        let s = self.lock();
        !s.finished && s.out.is_none() && s.attachments == attachment
    }

    /// Sends a reply (no sequence number, not replayed) to the attached socket, if any.
    pub(crate) fn reply(&self, frame: String) {
        let s = self.lock();
        if let Some((_, out)) = &s.out {
            out.push(frame);
        }
    }

    /// Sends an event: numbered, kept for replay, and written to the attached socket.
    pub(crate) fn emit(&self, kind: &str, data: &Value) {
        self.emit_encoded(kind, &data.to_string());
    }

    /// [`Session::emit`] with `data` already encoded as JSON (one encoding for many sessions).
    pub(crate) fn emit_encoded(&self, kind: &str, data: &str) {
        let mut s = self.lock();
        if s.finished {
            return;
        }
        let seq = s.next_seq;
        s.next_seq += 1;
        let frame = wire::event_encoded(kind, seq, data);
        if let Some((_, out)) = &s.out {
            // A reader too far behind is closed by its queue; the replay below still holds
            // the event for its resume.
            out.push(frame.clone());
        }
        s.replay_bytes += frame.len();
        s.replay.push_back((seq, frame));
        while s.replay_bytes > self.replay_limit {
            match s.replay.pop_front() {
                Some((_, f)) => s.replay_bytes -= f.len(),
                None => break,
            }
        }
    }

    /// Ends the session after its last event: the socket is closed with `code` and the
    /// session can no longer be resumed.
    pub(crate) fn finish(&self, code: u16, reason: &str) {
        let mut s = self.lock();
        s.finished = true;
        s.meeting = None;
        if let Some((_, out)) = s.out.take() {
            out.close(code, reason);
        }
    }

    pub(crate) fn meeting(&self) -> Option<MeetingLink> {
        self.lock().meeting.clone()
    }

    pub(crate) fn set_meeting(&self, link: Option<MeetingLink>) {
        self.lock().meeting = link;
    }

    /// Clears the meeting link if it is still this participant's.
    pub(crate) fn leave_meeting(&self, participant: &str) {
        let mut s = self.lock();
        if s.meeting
            .as_ref()
            .is_some_and(|m| m.participant == participant)
        {
            s.meeting = None;
        }
    }

    /// The last event number sent.
    #[cfg(test)]
    pub(crate) fn last_seq(&self) -> u64 {
        self.lock().next_seq - 1
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    // Timing reveals the length only, which is fixed for our tokens.
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rt::outbound::Outgoing;

    fn session(limit: usize) -> Session {
        Session::new("s".into(), "t".into(), Principal::Anonymous, limit)
    }

    async fn frames(q: &OutQueue) -> Vec<String> {
        q.close(1000, "");
        let mut v = Vec::new();
        while let Some(Outgoing::Frame(f)) = q.next().await {
            v.push(f);
        }
        v
    }

    #[tokio::test]
    async fn resume_replays_exactly_the_missed_events() {
        let s = session(1 << 20);
        let first = Arc::new(OutQueue::new(1 << 20));
        let n = s.attach(first.clone(), "w1".into());
        s.emit("a", &Value::Null);
        assert!(s.detach(n));
        s.emit("b", &Value::Null);
        s.emit("c", &Value::Null);
        let second = Arc::new(OutQueue::new(1 << 20));
        assert_eq!(
            s.resume("x", 1, second.clone(), "w2".into()),
            Err(ResumeRefused::WrongToken)
        );
        s.resume("t", 1, second.clone(), "w2".into()).unwrap();
        let got = frames(&second).await;
        assert_eq!(got[0], "w2");
        assert!(got[1].contains("\"seq\":2") && got[1].contains("\"b\""));
        assert!(got[2].contains("\"seq\":3"));
        assert_eq!(got.len(), 3);
    }

    #[tokio::test]
    async fn a_gap_past_the_replay_buffer_is_refused() {
        let s = session(100);
        for _ in 0..10 {
            s.emit("event", &serde_json::json!({"pad": "xxxxxxxxxxxxxxxxxxxx"}));
        }
        assert_eq!(s.last_seq(), 10);
        let q = Arc::new(OutQueue::new(1 << 20));
        assert_eq!(
            s.resume("t", 0, q.clone(), "w".into()),
            Err(ResumeRefused::Gap)
        );
        assert_eq!(
            s.resume("t", 11, q.clone(), "w".into()),
            Err(ResumeRefused::Gap)
        );
        assert!(s.resume("t", 9, q, "w".into()).is_ok());
        s.finish(1000, "");
        let q = Arc::new(OutQueue::new(1 << 20));
        assert_eq!(
            s.resume("t", 10, q, "w".into()),
            Err(ResumeRefused::Finished)
        );
    }
}
