//! Framing of every stored object: `DURE` marker, one kind byte, one version byte, body.
//!
//! The marker lets a reader refuse a foreign object instead of misreading it; the version
//! lets a future Dure read old formats (migrate on read) and refuse newer ones clearly.

use crate::StoreError;

pub const MAGIC: &[u8; 4] = b"DURE";
const HEADER_LEN: usize = 6;

/// What a stored object holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// A batch of document updates (one group commit).
    LogEntry = b'L',
    /// A document's merged state.
    Snapshot = b'S',
}

/// Prefixes `body` with the marker, kind and version.
pub fn frame(kind: Kind, version: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(MAGIC);
    out.push(kind as u8);
    out.push(version);
    out.extend_from_slice(body);
    out
}

/// Checks the header and returns the format version and the body.
pub fn unframe<'a>(key: &str, data: &'a [u8], kind: Kind) -> Result<(u8, &'a [u8]), StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        key: key.to_owned(),
        reason,
    };
    if data.len() < HEADER_LEN || &data[..4] != MAGIC {
        return Err(corrupt("missing DURE format marker".into()));
    }
    if data[4] != kind as u8 {
        return Err(corrupt(format!(
            "expected a {kind:?} object, found kind byte {:#x}",
            data[4]
        )));
    }
    Ok((data[5], &data[HEADER_LEN..]))
}

/// Appends an unsigned LEB128 integer.
pub fn write_var(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Reads an unsigned LEB128 integer from the front of `buf`, advancing it.
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

/// Reads a length-prefixed byte string from the front of `buf`, advancing it.
pub fn read_bytes<'a>(buf: &mut &'a [u8]) -> Option<&'a [u8]> {
    let len = usize::try_from(read_var(buf)?).ok()?;
    if buf.len() < len {
        return None;
    }
    let (head, rest) = buf.split_at(len);
    *buf = rest;
    Some(head)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip() {
        for n in [0, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
            let mut out = Vec::new();
            write_var(&mut out, n);
            let mut slice = out.as_slice();
            assert_eq!(read_var(&mut slice), Some(n));
            assert!(slice.is_empty());
        }
        assert_eq!(read_var(&mut [0x80u8].as_slice()), None);
    }

    #[test]
    fn refuses_foreign_and_wrong_kind() {
        let framed = frame(Kind::LogEntry, 1, b"x");
        assert_eq!(
            unframe("k", &framed, Kind::LogEntry).ok(),
            Some((1, &b"x"[..]))
        );
        assert!(unframe("k", &framed, Kind::Snapshot).is_err());
        assert!(unframe("k", b"{\"json\":1}", Kind::LogEntry).is_err());
        assert!(unframe("k", b"DUR", Kind::LogEntry).is_err());
    }
}
