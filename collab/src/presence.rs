//! Awareness (presence) of a room: who is here, their cursor, name and colour.
//!
//! Same merge rule as y-protocols' awareness: an entry replaces the stored one when its
//! clock is higher, or equal with a `null` state (a removal). On top of that the room binds
//! each client id to the connection that first set it, so one connection cannot overwrite or
//! remove another's presence, and it removes a connection's states when it closes (yrs's
//! `Awareness` never expires anything by itself). The table is bounded: a connection may set
//! only a few client ids over its life, a room holds a bounded number of live states, and
//! removed entries are forgotten after the awareness timeout.
//!
//! Every state must be JSON (y-protocols clients `JSON.parse` each one, so one bad state
//! would make every other client throw), nested no deeper than the configured limit. When
//! the transport identified the connection, the room writes the authenticated id and name
//! into the state's `user` object (what the browser app shows on cursors and in the presence
//! list): a viewer cannot appear as someone else.

use std::collections::HashMap;
use std::time::Instant;

use bytes::{BufMut, Bytes, BytesMut};
use serde_json::{Map, Value};

use crate::ConnId;
use crate::protocol::{read_var, write_var};
use crate::validate::json_depth_within;

/// Yjs client ids are 53-bit (they must fit a JS number).
const MAX_CLIENT_ID: u64 = (1 << 53) - 1;
const NULL_STATE: &str = "null";

/// One entry of an awareness update.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub client: u64,
    pub clock: u32,
    /// JSON text of the state; `"null"` marks a removal.
    pub json: Box<str>,
}

impl Entry {
    fn is_removal(&self) -> bool {
        &*self.json == NULL_STATE
    }
}

/// Decodes a y-protocols awareness update. Refuses client ids beyond 53 bits, clocks beyond
/// 32 bits, empty states (not JSON) and text that is not UTF-8.
pub fn decode(mut buf: &[u8]) -> Option<Vec<Entry>> {
    let count = read_var(&mut buf)?;
    // Each entry takes at least 4 bytes (client, clock, length, one byte of JSON): bound the
    // allocation by what the frame can hold.
    if count > buf.len() as u64 / 4 {
        return None;
    }
    let mut out = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let client = read_var(&mut buf)?;
        let clock = u32::try_from(read_var(&mut buf)?).ok()?;
        let len = usize::try_from(read_var(&mut buf)?).ok()?;
        if client > MAX_CLIENT_ID || len == 0 || len > buf.len() {
            return None;
        }
        let (text, rest) = buf.split_at(len);
        buf = rest;
        out.push(Entry {
            client,
            clock,
            json: std::str::from_utf8(text).ok()?.into(),
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

/// Who a connection is, as the transport authenticated it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PresenceUser {
    /// Stable id (the identity provider's subject; `local` in local mode).
    pub id: String,
    /// Display name.
    pub name: String,
}

/// Why an awareness state was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("awareness state of client {client} is not JSON: {why}")]
    NotJson { client: u64, why: String },
    #[error("awareness state of client {client} nests deeper than {limit} levels")]
    TooDeep { client: u64, limit: usize },
}

/// Checks one state and binds it to `user`. Returns the text to store and relay: the
/// original when nothing changes, `null` for any spelling of null (a removal).
pub fn checked_state(
    entry: &Entry,
    max_depth: usize,
    user: Option<&PresenceUser>,
) -> Result<Box<str>, StateError> {
    if entry.is_removal() {
        return Ok(entry.json.clone());
    }
    if !json_depth_within(&entry.json, max_depth) {
        return Err(StateError::TooDeep {
            client: entry.client,
            limit: max_depth,
        });
    }
    let mut value: Value = serde_json::from_str(&entry.json).map_err(|e| StateError::NotJson {
        client: entry.client,
        why: e.to_string(),
    })?;
    let (Some(user), Value::Object(state)) = (user, &mut value) else {
        return Ok(if value.is_null() {
            NULL_STATE.into()
        } else {
            entry.json.clone()
        });
    };
    let fields = match state.get_mut("user") {
        Some(Value::Object(fields)) => fields,
        _ => {
            state.insert("user".into(), Value::Object(Map::new()));
            match state.get_mut("user") {
                Some(Value::Object(fields)) => fields,
                _ => return Ok(entry.json.clone()),
            }
        }
    };
    fields.insert("id".into(), Value::String(user.id.clone()));
    fields.insert("name".into(), Value::String(user.name.clone()));
    Ok(value.to_string().into_boxed_str())
}

/// Bounds of one room's table.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Distinct client ids one connection may set over its life (a Yjs client uses one).
    pub per_connection: usize,
    /// Live states in the room; new client ids beyond it are not taken.
    pub per_room: usize,
    /// Deepest nesting of a state's JSON.
    pub max_depth: usize,
}

/// Why an awareness update was refused as a whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("awareness update sets more than {limit} client ids on one connection")]
    TooManyClients { limit: usize },
    #[error(transparent)]
    State(#[from] StateError),
}

struct State {
    clock: u32,
    /// `None` once removed (kept for the awareness timeout so an older update cannot
    /// resurrect it).
    json: Option<Box<str>>,
    owner: Option<ConnId>,
    /// When it was last set or removed.
    renewed: Instant,
}

/// The awareness table of one room.
#[derive(Default)]
pub struct Presence {
    states: HashMap<u64, State>,
    /// The client ids each connection has set.
    claims: HashMap<ConnId, Vec<u64>>,
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
    /// Whether `conn` sending `e` would change the table (the y-protocols merge rule, plus
    /// ownership).
    fn takes(&self, conn: ConnId, e: &Entry) -> bool {
        match self.states.get(&e.client) {
            Some(s) if s.owner.is_some_and(|o| o != conn) => false,
            Some(s) => {
                e.clock > s.clock || (e.clock == s.clock && e.is_removal() && s.json.is_some())
            }
            None => !e.is_removal(),
        }
    }

    /// Applies `entries` sent by `conn` (identified as `user`, if the transport said).
    ///
    /// y-websocket clients relay the states of others along with their own, so entries that
    /// would not change the table are dropped first. Of the rest, each state must be JSON
    /// within the depth limit and is bound to `user`, and together they may not take the
    /// connection past its client ids: otherwise the whole update is refused, changing
    /// nothing.
    pub fn apply(
        &mut self,
        conn: ConnId,
        entries: Vec<Entry>,
        now: Instant,
        limits: Limits,
        user: Option<&PresenceUser>,
    ) -> Result<Applied, Refused> {
        let total = entries.len();
        let mut entries: Vec<Entry> = entries
            .into_iter()
            .filter(|e| self.takes(conn, e))
            .collect();
        let claimed = self.claims.get(&conn).map_or(&[][..], Vec::as_slice);
        let mut fresh: Vec<u64> = Vec::new();
        for e in entries.iter().filter(|e| !e.is_removal()) {
            if !claimed.contains(&e.client) && !fresh.contains(&e.client) {
                fresh.push(e.client);
            }
        }
        if claimed.len() + fresh.len() > limits.per_connection {
            return Err(Refused::TooManyClients {
                limit: limits.per_connection,
            });
        }
        let mut rewritten = false;
        for e in &mut entries {
            let json = checked_state(e, limits.max_depth, user)?;
            rewritten |= json != e.json;
            e.json = json;
        }
        let mut live = self.states.values().filter(|s| s.json.is_some()).count();
        let mut changed = Vec::with_capacity(total);
        for e in entries {
            let revives =
                !e.is_removal() && self.states.get(&e.client).is_none_or(|s| s.json.is_none());
            if revives && live >= limits.per_room {
                // The room is full: this client is not shown (its edits still apply).
                continue;
            }
            let before = changed.len();
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
                            if state.json.is_some() {
                                live = live.saturating_sub(1);
                            }
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
            if changed.len() > before {
                if revives {
                    live += 1;
                }
                if let Some(e) = changed.last()
                    && !e.is_removal()
                {
                    let claims = self.claims.entry(conn).or_default();
                    if !claims.contains(&e.client) {
                        claims.push(e.client);
                    }
                }
            }
        }
        let all = changed.len() == total && !rewritten;
        Ok(Applied { changed, all })
    }

    /// Removes every state `conn` owns; returns the removal entries to broadcast.
    pub fn remove_conn(&mut self, conn: ConnId, now: Instant) -> Vec<Entry> {
        self.claims.remove(&conn);
        self.remove_where(now, |s| s.owner == Some(conn))
    }

    /// Removes states not renewed since `before` (clients renew every 15 s), and forgets
    /// removed ones older than that.
    pub fn expire(&mut self, before: Instant, now: Instant) -> Vec<Entry> {
        let out = self.remove_where(now, |s| s.renewed < before);
        self.states
            .retain(|_, s| s.json.is_some() || s.renewed >= before);
        out
    }

    /// Entries kept, live or removed (for tests and metrics).
    pub fn len(&self) -> usize {
        self.states.len()
    }

    pub fn is_empty(&self) -> bool {
        self.states.is_empty()
    }

    fn remove_where(&mut self, now: Instant, pred: impl Fn(&State) -> bool) -> Vec<Entry> {
        let mut out = Vec::new();
        for (&client, state) in self.states.iter_mut() {
            if state.json.is_some() && pred(state) {
                state.clock = state.clock.wrapping_add(1);
                state.json = None;
                state.owner = None;
                state.renewed = now;
                out.push(Entry {
                    client,
                    clock: state.clock,
                    json: NULL_STATE.into(),
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
    encode(entries.iter().map(|e| (e.client, e.clock, &*e.json)))
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

    const LIMITS: Limits = Limits {
        per_connection: 4,
        per_room: 8,
        max_depth: 8,
    };

    fn apply(p: &mut Presence, conn: ConnId, entries: Vec<Entry>, now: Instant) -> Applied {
        p.apply(conn, entries, now, LIMITS, None).unwrap()
    }

    #[test]
    fn clocks_ownership_and_cleanup() {
        let now = Instant::now();
        let (a, b) = (ConnId(1), ConnId(2));
        let mut p = Presence::default();
        assert_eq!(
            apply(&mut p, a, vec![entry(10, 1, "{\"n\":\"a\"}")], now)
                .changed
                .len(),
            1
        );
        // Older clock ignored, newer applied.
        assert!(
            apply(&mut p, a, vec![entry(10, 0, "{}")], now)
                .changed
                .is_empty()
        );
        assert_eq!(
            apply(&mut p, a, vec![entry(10, 2, "{\"n\":\"a2\"}")], now)
                .changed
                .len(),
            1
        );
        // b cannot overwrite or remove a's state.
        let res = apply(
            &mut p,
            b,
            vec![entry(10, 9, "null"), entry(20, 1, "{}")],
            now,
        );
        assert_eq!(res.changed, vec![entry(20, 1, "{}")]);
        assert!(!res.all);
        assert!(p.full().is_some());
        let removed = p.remove_conn(a, now);
        assert_eq!(removed, vec![entry(10, 3, "null")]);
        assert!(p.full().is_some());
        // A removed state cannot be resurrected with an old clock.
        assert!(
            apply(&mut p, b, vec![entry(10, 2, "{}")], now)
                .changed
                .is_empty()
        );
    }

    #[test]
    fn client_ids_are_capped_per_connection_and_per_room() {
        let now = Instant::now();
        let mut p = Presence::default();
        let many: Vec<Entry> = (0..5).map(|c| entry(c, 1, "{}")).collect();
        assert_eq!(
            p.apply(ConnId(1), many, now, LIMITS, None).err(),
            Some(Refused::TooManyClients { limit: 4 })
        );
        assert!(p.is_empty(), "a refused update changes nothing");
        // Four ids, removed and replaced by a fifth: still five over the connection's life.
        let four: Vec<Entry> = (0..4).map(|c| entry(c, 1, "{}")).collect();
        apply(&mut p, ConnId(1), four, now);
        let gone: Vec<Entry> = (0..4).map(|c| entry(c, 2, "null")).collect();
        apply(&mut p, ConnId(1), gone, now);
        assert!(
            p.apply(ConnId(1), vec![entry(9, 1, "{}")], now, LIMITS, None)
                .is_err()
        );
        // Renewing its own ids is fine, and others' states relayed along (as y-websocket
        // clients do) claim nothing.
        apply(&mut p, ConnId(2), vec![entry(50, 1, "{}")], now);
        let relayed = vec![entry(0, 3, "{}"), entry(50, 1, "{}")];
        assert_eq!(apply(&mut p, ConnId(1), relayed, now).changed.len(), 1);
        // The room takes at most 8 live states; the ninth client is not shown.
        for conn in 3..=8 {
            apply(&mut p, ConnId(conn), vec![entry(100 + conn, 1, "{}")], now);
        }
        let res = apply(&mut p, ConnId(9), vec![entry(200, 1, "{}")], now);
        assert!(res.changed.is_empty());
        assert_eq!(p.full().map(|f| decode(&f).map(|e| e.len())), Some(Some(8)));
    }

    #[test]
    fn removed_entries_are_forgotten_after_the_timeout() {
        let t0 = Instant::now();
        let mut p = Presence::default();
        apply(&mut p, ConnId(1), vec![entry(1, 1, "{}")], t0);
        p.remove_conn(ConnId(1), t0);
        assert_eq!(p.len(), 1, "kept while an old update could resurrect it");
        let later = t0 + std::time::Duration::from_secs(61);
        assert!(
            p.expire(t0 + std::time::Duration::from_secs(1), later)
                .is_empty()
        );
        assert!(p.is_empty());
    }

    #[test]
    fn states_must_be_json_and_are_bound_to_the_user() {
        let bob = PresenceUser {
            id: "bob".into(),
            name: "Bob Lee".into(),
        };
        let spoof = entry(
            1,
            1,
            r##"{"user":{"id":"alice","name":"Alice Kim","color":"#f00"}}"##,
        );
        let bound: Value =
            serde_json::from_str(&checked_state(&spoof, 8, Some(&bob)).unwrap()).unwrap();
        assert_eq!(
            bound["user"],
            serde_json::json!({"id": "bob", "name": "Bob Lee", "color": "#f00"})
        );
        let bare: Value = serde_json::from_str(
            &checked_state(&entry(1, 1, r#"{"cursor":3}"#), 8, Some(&bob)).unwrap(),
        )
        .unwrap();
        assert_eq!(bare["user"]["name"], "Bob Lee");
        assert_eq!(bare["cursor"], 3);
        assert_eq!(checked_state(&spoof, 8, None).unwrap(), spoof.json);
        assert_eq!(
            &*checked_state(&entry(1, 1, " null "), 8, Some(&bob)).unwrap(),
            "null"
        );
        assert!(matches!(
            checked_state(&entry(1, 1, "{not json"), 8, None),
            Err(StateError::NotJson { client: 1, .. })
        ));
        assert!(matches!(
            checked_state(&entry(1, 1, "[[[[[[[[[1]]]]]]]]]"), 8, None),
            Err(StateError::TooDeep { limit: 8, .. })
        ));
    }
}
