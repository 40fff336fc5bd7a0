//! Awareness (presence) of a room: who is here, their cursor, name and colour.
//!
//! Same merge rule as y-protocols' awareness: an entry replaces the stored one when its
//! clock is higher, or equal with a `null` state (a removal). On top of that the room binds
//! each client id to the connection that first set it, so one connection cannot overwrite or
//! remove another's presence, and it removes a connection's states when it closes (yrs's
//! `Awareness` never expires anything by itself).

use std::collections::HashMap;
use std::time::Instant;

use bytes::{BufMut, Bytes, BytesMut};

use crate::ConnId;
use crate::protocol::{read_var, write_var};

/// Yjs client ids are 53-bit (they must fit a JS number).
const MAX_CLIENT_ID: u64 = (1 << 53) - 1;
const NULL_STATE: &str = "null";

/// One entry of an awareness update.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub client: u64,
    pub clock: u32,
    /// JSON text of the state; `"null"` marks a removal.
    pub json: String,
}

impl Entry {
    fn is_removal(&self) -> bool {
        self.json == NULL_STATE
    }
}

/// Decodes a y-protocols awareness update. Refuses client ids beyond 53 bits, clocks beyond
/// 32 bits and text that is not UTF-8.
pub fn decode(mut buf: &[u8]) -> Option<Vec<Entry>> {
    let count = read_var(&mut buf)?;
    // Each entry takes at least 3 bytes: bound the allocation by what the frame can hold.
    if count > buf.len() as u64 / 3 + 1 {
        return None;
    }
    let mut out = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let client = read_var(&mut buf)?;
        let clock = u32::try_from(read_var(&mut buf)?).ok()?;
        let len = usize::try_from(read_var(&mut buf)?).ok()?;
        if client > MAX_CLIENT_ID || len > buf.len() {
            return None;
        }
        let (text, rest) = buf.split_at(len);
        buf = rest;
        out.push(Entry {
            client,
            clock,
            json: std::str::from_utf8(text).ok()?.to_owned(),
        });
    }
    buf.is_empty().then_some(out)
}

pub fn encode<'a>(entries: impl IntoIterator<Item = (u64, u32, &'a str)>) -> Bytes {
    let entries: Vec<_> = entries.into_iter().collect();
    let mut out =
        BytesMut::with_capacity(16 + entries.iter().map(|e| e.2.len() + 12).sum::<usize>());
    write_var(&mut out, entries.len() as u64);
    for (client, clock, json) in entries {
        write_var(&mut out, client);
        write_var(&mut out, u64::from(clock));
        write_var(&mut out, json.len() as u64);
        out.put_slice(json.as_bytes());
    }
    out.freeze()
}

struct State {
    clock: u32,
    /// `None` once removed (kept so an older update cannot resurrect it).
    json: Option<String>,
    owner: Option<ConnId>,
    renewed: Instant,
}

/// The awareness table of one room.
#[derive(Default)]
pub struct Presence {
    states: HashMap<u64, State>,
}

/// The result of applying an update.
pub struct Applied {
    /// Entries that changed the table, to broadcast.
    pub changed: Vec<Entry>,
    /// Whether every entry of the update was taken as is (then the original frame can be
    /// broadcast instead of a re-encoded one).
    pub all: bool,
}

impl Presence {
    /// Applies `entries` sent by `conn`.
    pub fn apply(&mut self, conn: ConnId, entries: Vec<Entry>, now: Instant) -> Applied {
        let total = entries.len();
        let mut changed = Vec::with_capacity(total);
        for e in entries {
            match self.states.get_mut(&e.client) {
                Some(state) => {
                    if state.owner.is_some_and(|o| o != conn) {
                        // Someone else's presence: no impersonation, no removal.
                        continue;
                    }
                    let removal_now =
                        e.clock == state.clock && e.is_removal() && state.json.is_some();
                    if e.clock > state.clock || removal_now {
                        state.clock = e.clock;
                        state.renewed = now;
                        if e.is_removal() {
                            state.json = None;
                            state.owner = None;
                        } else {
                            state.json = Some(e.json.clone());
                            state.owner = Some(conn);
                        }
                        changed.push(e);
                    }
                }
                None => {
                    if e.is_removal() {
                        continue;
                    }
                    self.states.insert(
                        e.client,
                        State {
                            clock: e.clock,
                            json: Some(e.json.clone()),
                            owner: Some(conn),
                            renewed: now,
                        },
                    );
                    changed.push(e);
                }
            }
        }
        let all = changed.len() == total;
        Applied { changed, all }
    }

    /// Removes every state `conn` owns; returns the removal entries to broadcast.
    pub fn remove_conn(&mut self, conn: ConnId) -> Vec<Entry> {
        self.remove_where(|s| s.owner == Some(conn))
    }

    /// Removes states not renewed since `before` (clients renew every 15 s).
    pub fn expire(&mut self, before: Instant) -> Vec<Entry> {
        self.remove_where(|s| s.renewed < before)
    }

    fn remove_where(&mut self, pred: impl Fn(&State) -> bool) -> Vec<Entry> {
        let mut out = Vec::new();
        for (&client, state) in self.states.iter_mut() {
            if state.json.is_some() && pred(state) {
                state.clock = state.clock.wrapping_add(1);
                state.json = None;
                state.owner = None;
                out.push(Entry {
                    client,
                    clock: state.clock,
                    json: NULL_STATE.to_owned(),
                });
            }
        }
        out
    }

    /// The current states, encoded as an awareness update (None when nobody is present).
    pub fn full(&self) -> Option<Bytes> {
        let live: Vec<_> = self
            .states
            .iter()
            .filter_map(|(&c, s)| s.json.as_deref().map(|j| (c, s.clock, j)))
            .collect();
        (!live.is_empty()).then(|| encode(live))
    }
}

pub fn encode_entries(entries: &[Entry]) -> Bytes {
    encode(entries.iter().map(|e| (e.client, e.clock, e.json.as_str())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(client: u64, clock: u32, json: &str) -> Entry {
        Entry {
            client,
            clock,
            json: json.into(),
        }
    }

    #[test]
    fn codec_round_trip_and_refusals() {
        let entries = vec![entry(1, 2, "{\"a\":1}"), entry(MAX_CLIENT_ID, 0, "null")];
        let bytes = encode_entries(&entries);
        assert_eq!(decode(&bytes), Some(entries));
        assert_eq!(decode(&encode([(MAX_CLIENT_ID + 1, 0, "{}")])), None);
        assert_eq!(decode(&[5, 1]), None);
        let mut trailing = encode_entries(&[entry(1, 1, "{}")]).to_vec();
        trailing.push(0);
        assert_eq!(decode(&trailing), None);
    }

    #[test]
    fn clocks_ownership_and_cleanup() {
        let now = Instant::now();
        let (a, b) = (ConnId(1), ConnId(2));
        let mut p = Presence::default();
        assert_eq!(
            p.apply(a, vec![entry(10, 1, "{\"n\":\"a\"}")], now)
                .changed
                .len(),
            1
        );
        // Older clock ignored, newer applied.
        assert!(p.apply(a, vec![entry(10, 0, "{}")], now).changed.is_empty());
        assert_eq!(
            p.apply(a, vec![entry(10, 2, "{\"n\":\"a2\"}")], now)
                .changed
                .len(),
            1
        );
        // b cannot overwrite or remove a's state.
        let res = p.apply(b, vec![entry(10, 9, "null"), entry(20, 1, "{}")], now);
        assert_eq!(res.changed, vec![entry(20, 1, "{}")]);
        assert!(!res.all);
        assert!(p.full().is_some());
        let removed = p.remove_conn(a);
        assert_eq!(removed, vec![entry(10, 3, "null")]);
        assert!(p.full().is_some());
        // A removed state cannot be resurrected with an old clock.
        assert!(p.apply(b, vec![entry(10, 2, "{}")], now).changed.is_empty());
    }
}
