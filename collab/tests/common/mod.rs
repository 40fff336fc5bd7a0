//! An in-process Yjs client for engine tests: a yrs document wired to a room connection,
//! no network.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use dure_collab::protocol;
use dure_collab::{CloseReason, Connection, DocId, JoinOptions, Outgoing, Rooms};
use tokio::time::timeout;
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{Doc, GetString, OffsetKind, Options, ReadTxn, StateVector, Text, Transact, Update};

pub struct Client {
    pub doc: Doc,
    pub conn: Connection,
    pub sent: u64,
    pub acked: u64,
    pub closed: Option<CloseReason>,
    pub awareness: HashMap<u64, String>,
    pub frames_seen: u64,
    pending: Vec<Bytes>,
}

pub fn doc_id(s: &str) -> DocId {
    s.parse().unwrap()
}

fn new_doc(client_id: u64) -> Doc {
    Doc::with_options(Options {
        client_id: yrs::block::ClientID::new(client_id),
        offset_kind: OffsetKind::Utf16,
        ..Options::default()
    })
}

fn read_var(buf: &mut &[u8]) -> u64 {
    let mut n = 0u64;
    let mut shift = 0;
    loop {
        let b = buf[0];
        *buf = &buf[1..];
        n |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return n;
        }
        shift += 7;
    }
}

fn read_buf<'a>(buf: &mut &'a [u8]) -> &'a [u8] {
    let len = read_var(buf) as usize;
    let (head, rest) = buf.split_at(len);
    *buf = rest;
    head
}

impl Client {
    pub async fn join(rooms: &Rooms, doc: &str, client_id: u64, ack: bool) -> Client {
        let conn = rooms
            .join(&doc_id(doc), JoinOptions { ack })
            .await
            .expect("join");
        let mut c = Client {
            doc: new_doc(client_id),
            conn,
            sent: 0,
            acked: 0,
            closed: None,
            awareness: HashMap::new(),
            frames_seen: 0,
            pending: Vec::new(),
        };
        // Handshake like y-websocket: send our state vector.
        let sv = c.doc.transact().state_vector().encode_v1();
        c.send_raw(protocol::sync_step1(&sv)).await;
        c
    }

    pub async fn send_raw(&mut self, frame: Bytes) {
        let _ = self.conn.sender.send(frame).await;
    }

    /// Inserts text locally and sends the update (one update-bearing frame).
    pub async fn insert(&mut self, index: u32, s: &str) {
        let update = {
            let text = self.doc.get_or_insert_text("text");
            let mut txn = self.doc.transact_mut();
            text.insert(&mut txn, index, s);
            txn.encode_update_v1()
        };
        self.sent += 1;
        self.send_raw(protocol::update(&update)).await;
    }

    pub async fn delete(&mut self, index: u32, len: u32) {
        let update = {
            let text = self.doc.get_or_insert_text("text");
            let mut txn = self.doc.transact_mut();
            text.remove_range(&mut txn, index, len);
            txn.encode_update_v1()
        };
        self.sent += 1;
        self.send_raw(protocol::update(&update)).await;
    }

    pub fn text(&self) -> String {
        let text = self.doc.get_or_insert_text("text");
        text.get_string(&self.doc.transact())
    }

    pub fn len(&self) -> u32 {
        let text = self.doc.get_or_insert_text("text");
        text.len(&self.doc.transact())
    }

    pub async fn set_awareness(&mut self, clock: u32, json: &str) {
        let client = self.doc.client_id().get();
        let mut payload = Vec::new();
        payload.push(1u8);
        write_var(&mut payload, client);
        write_var(&mut payload, u64::from(clock));
        write_var(&mut payload, json.len() as u64);
        payload.extend_from_slice(json.as_bytes());
        self.send_raw(protocol::awareness(&payload)).await;
    }

    fn handle(&mut self, frame: &[u8]) {
        self.frames_seen += 1;
        let mut buf = frame;
        match read_var(&mut buf) {
            0 => {
                let kind = read_var(&mut buf);
                let payload = read_buf(&mut buf);
                match kind {
                    0 => {
                        let sv = StateVector::decode_v1(payload).unwrap();
                        let diff = self.doc.transact().encode_state_as_update_v1(&sv);
                        // Answered at the next pump.
                        self.pending.push(protocol::sync_step2(&diff));
                    }
                    _ => {
                        let u = Update::decode_v1(payload).unwrap();
                        self.doc.transact_mut().apply_update(u).unwrap();
                    }
                }
            }
            1 => {
                let payload = read_buf(&mut buf);
                let mut p = payload;
                let n = read_var(&mut p);
                for _ in 0..n {
                    let id = read_var(&mut p);
                    let _clock = read_var(&mut p);
                    let json = std::str::from_utf8(read_buf(&mut p)).unwrap().to_owned();
                    if json == "null" {
                        self.awareness.remove(&id);
                    } else {
                        self.awareness.insert(id, json);
                    }
                }
            }
            100 => {
                let n = read_var(&mut buf);
                assert!(n >= self.acked, "ack went backwards: {n} < {}", self.acked);
                self.acked = n;
            }
            other => panic!("unexpected message type {other}"),
        }
    }

    /// Processes frames until `cond` holds or `limit` passes. Returns whether it held.
    pub async fn pump_until(
        &mut self,
        limit: Duration,
        mut cond: impl FnMut(&Client) -> bool,
    ) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            self.flush_replies().await;
            if cond(self) {
                return true;
            }
            if self.closed.is_some() {
                return false;
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match timeout(left, self.conn.receiver.next()).await {
                Err(_) => return cond(self),
                Ok(Outgoing::Frame(f)) => self.handle(&f),
                Ok(Outgoing::Close(r)) => self.closed = Some(r),
            }
        }
    }

    /// Handles the frames already queued, without waiting; returns their total size.
    pub fn handle_queued(&mut self) -> usize {
        let mut total = 0;
        while let Some(frame) = self.conn.receiver.try_next() {
            total += frame.len();
            self.handle(&frame);
        }
        total
    }

    /// Processes whatever arrives for `d`.
    pub async fn pump_for(&mut self, d: Duration) {
        self.pump_until(d, |_| false).await;
    }

    async fn flush_replies(&mut self) {
        for frame in std::mem::take(&mut self.pending) {
            self.sent += 1; // a sync step 2 is update-bearing
            self.send_raw(frame).await;
        }
    }
}

pub fn write_var(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}
