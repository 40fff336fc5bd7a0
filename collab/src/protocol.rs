//! The y-websocket wire protocol (y-protocols `sync` and `awareness`, lib0 v1 encoding),
//! plus Dure's durable-acknowledgement message.
//!
//! <https://github.com/yjs/y-protocols/blob/master/PROTOCOL.md>. One message per frame:
//! the JS client reads exactly one message from each WebSocket frame, so the encoders here
//! produce one complete frame each, and the decoder refuses trailing bytes.

use bytes::{BufMut, Bytes, BytesMut};

pub const MSG_SYNC: u64 = 0;
pub const MSG_AWARENESS: u64 = 1;
pub const MSG_AUTH: u64 = 2;
pub const MSG_QUERY_AWARENESS: u64 = 3;
/// Dure extension: `varUint(100) · varUint(n)`, sent only to connections that asked with
/// `ack=1`: n update-bearing frames of this connection are durable.
pub const MSG_SAVED: u64 = 100;

const SYNC_STEP1: u64 = 0;
const SYNC_STEP2: u64 = 1;
const SYNC_UPDATE: u64 = 2;

/// A decoded client frame. Payloads are zero-copy slices of the frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientMessage {
    SyncStep1 { state_vector: Bytes },
    SyncStep2 { update: Bytes },
    Update { update: Bytes },
    Awareness { update: Bytes },
    QueryAwareness,
}

/// Why a frame is not a protocol message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("empty frame")]
    Empty,
    #[error("truncated message")]
    Truncated,
    #[error("unknown message type {0}")]
    UnknownType(u64),
    #[error("unknown sync message type {0}")]
    UnknownSyncType(u64),
    #[error("trailing bytes after the message")]
    Trailing,
}

struct Reader<'a> {
    frame: &'a Bytes,
    pos: usize,
}

impl Reader<'_> {
    fn var(&mut self) -> Result<u64, DecodeError> {
        let mut n: u64 = 0;
        let mut shift = 0;
        loop {
            let b = *self.frame.get(self.pos).ok_or(DecodeError::Truncated)?;
            self.pos += 1;
            if shift >= 64 {
                return Err(DecodeError::Truncated);
            }
            n |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(n);
            }
            shift += 7;
        }
    }

    fn buf(&mut self) -> Result<Bytes, DecodeError> {
        let len = usize::try_from(self.var()?).map_err(|_| DecodeError::Truncated)?;
        let end = self.pos.checked_add(len).ok_or(DecodeError::Truncated)?;
        if end > self.frame.len() {
            return Err(DecodeError::Truncated);
        }
        let out = self.frame.slice(self.pos..end);
        self.pos = end;
        Ok(out)
    }

    fn finish(self) -> Result<(), DecodeError> {
        if self.pos == self.frame.len() {
            Ok(())
        } else {
            Err(DecodeError::Trailing)
        }
    }
}

/// Decodes one client frame.
pub fn decode(frame: &Bytes) -> Result<ClientMessage, DecodeError> {
    if frame.is_empty() {
        return Err(DecodeError::Empty);
    }
    let mut r = Reader { frame, pos: 0 };
    let msg = match r.var()? {
        MSG_SYNC => match r.var()? {
            SYNC_STEP1 => ClientMessage::SyncStep1 {
                state_vector: r.buf()?,
            },
            SYNC_STEP2 => ClientMessage::SyncStep2 { update: r.buf()? },
            SYNC_UPDATE => ClientMessage::Update { update: r.buf()? },
            other => return Err(DecodeError::UnknownSyncType(other)),
        },
        MSG_AWARENESS => ClientMessage::Awareness { update: r.buf()? },
        MSG_QUERY_AWARENESS => ClientMessage::QueryAwareness,
        other => return Err(DecodeError::UnknownType(other)),
    };
    r.finish()?;
    Ok(msg)
}

pub fn write_var(out: &mut BytesMut, mut n: u64) {
    while n >= 0x80 {
        out.put_u8((n as u8) | 0x80);
        n >>= 7;
    }
    out.put_u8(n as u8);
}

fn frame_with(prefix: &[u64], payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(payload.len() + prefix.len() + 5);
    for &p in prefix {
        write_var(&mut out, p);
    }
    write_var(&mut out, payload.len() as u64);
    out.put_slice(payload);
    out.freeze()
}

pub fn sync_step1(state_vector: &[u8]) -> Bytes {
    frame_with(&[MSG_SYNC, SYNC_STEP1], state_vector)
}

pub fn sync_step2(update: &[u8]) -> Bytes {
    frame_with(&[MSG_SYNC, SYNC_STEP2], update)
}

pub fn update(update: &[u8]) -> Bytes {
    frame_with(&[MSG_SYNC, SYNC_UPDATE], update)
}

pub fn awareness(update: &[u8]) -> Bytes {
    frame_with(&[MSG_AWARENESS], update)
}

pub fn saved(n: u64) -> Bytes {
    let mut out = BytesMut::with_capacity(11);
    write_var(&mut out, MSG_SAVED);
    write_var(&mut out, n);
    out.freeze()
}

/// Reads a `varUint` from the front of `buf`, advancing it.
pub fn read_var(buf: &mut &[u8]) -> Option<u64> {
    let mut n: u64 = 0;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = buf.split_first()?;
        *buf = rest;
        n |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(n);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_each_message() {
        let cases = [
            (
                sync_step1(b"sv"),
                ClientMessage::SyncStep1 {
                    state_vector: Bytes::from_static(b"sv"),
                },
            ),
            (
                sync_step2(b"u2"),
                ClientMessage::SyncStep2 {
                    update: Bytes::from_static(b"u2"),
                },
            ),
            (
                update(b"u"),
                ClientMessage::Update {
                    update: Bytes::from_static(b"u"),
                },
            ),
            (
                awareness(b"aw"),
                ClientMessage::Awareness {
                    update: Bytes::from_static(b"aw"),
                },
            ),
            (Bytes::from_static(&[3]), ClientMessage::QueryAwareness),
        ];
        for (frame, want) in cases {
            assert_eq!(decode(&frame), Ok(want));
        }
    }

    #[test]
    fn matches_y_protocols_bytes() {
        // y-protocols: writeVarUint(0) writeVarUint(2) writeVarUint8Array(update)
        assert_eq!(&update(&[7, 8])[..], &[0, 2, 2, 7, 8]);
        assert_eq!(&saved(300)[..], &[100, 0xac, 0x02]);
    }

    #[test]
    fn refuses_malformed_frames() {
        assert_eq!(decode(&Bytes::new()), Err(DecodeError::Empty));
        assert_eq!(
            decode(&Bytes::from_static(&[0, 2, 5, 1])),
            Err(DecodeError::Truncated)
        );
        assert_eq!(
            decode(&Bytes::from_static(&[0, 9, 0])),
            Err(DecodeError::UnknownSyncType(9))
        );
        assert_eq!(
            decode(&Bytes::from_static(&[42])),
            Err(DecodeError::UnknownType(42))
        );
        assert_eq!(
            decode(&Bytes::from_static(&[3, 3])),
            Err(DecodeError::Trailing)
        );
        assert_eq!(
            decode(&Bytes::from_static(&[0xff; 12])),
            Err(DecodeError::Truncated)
        );
    }
}
