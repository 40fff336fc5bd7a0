//! Structural checks of client bytes before yrs decodes them.
//!
//! yrs decodes nested `Any` values recursively with no depth limit (a 15 KB update nesting
//! arrays 7,500 deep overflows a thread's stack and aborts the process, which `catch_unwind`
//! cannot catch) and reserves capacity from the counts an input declares (8 bytes declaring
//! 2^28 state-vector entries reserve over 500 MB). These checks walk the same lib0 v1 layout
//! yrs reads (`Update::decode`, `ItemContent::decode`, `Any::decode`, `IdSet::decode`,
//! `StateVector::decode`), reading every varint exactly as yrs does so that both see the same
//! structure, and refuse an input before yrs sees it when:
//! - a declared count or length is more than the bytes left could hold (each counted element
//!   takes at least one byte), so no reservation exceeds a small multiple of the input;
//! - `Any` values or JSON texts (embeds, formats) nest deeper than the configured limit;
//! - anything is truncated, unknown, not UTF-8, or followed by trailing bytes.
//!
//! Passing the check does not mean yrs will accept the update; it means decoding it is
//! bounded in stack and memory.

/// Why bytes were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("truncated at byte {0}")]
    Truncated(usize),
    #[error("overlong variable-length integer at byte {0}")]
    VarInt(usize),
    #[error("{what} declares {declared} entries but only {left} bytes follow")]
    Count {
        what: &'static str,
        declared: u64,
        left: usize,
    },
    #[error("values nest deeper than {limit} levels")]
    TooDeep { limit: usize },
    #[error("unknown {what} tag {tag} at byte {at}")]
    Unknown {
        what: &'static str,
        tag: u8,
        at: usize,
    },
    #[error("text is not UTF-8 at byte {0}")]
    Utf8(usize),
    #[error("an embedded JSON text is not JSON: {0}")]
    Json(String),
    #[error("{0} trailing bytes")]
    Trailing(usize),
}

// lib0 v1 / yrs block layout.
const BLOCK_GC: u8 = 0;
const BLOCK_SKIP: u8 = 10;
const HAS_ORIGIN: u8 = 0b1000_0000;
const HAS_RIGHT_ORIGIN: u8 = 0b0100_0000;
const HAS_PARENT_SUB: u8 = 0b0010_0000;
const CONTENT_DELETED: u8 = 1;
const CONTENT_JSON: u8 = 2;
const CONTENT_BINARY: u8 = 3;
const CONTENT_STRING: u8 = 4;
const CONTENT_EMBED: u8 = 5;
const CONTENT_FORMAT: u8 = 6;
const CONTENT_TYPE: u8 = 7;
const CONTENT_ANY: u8 = 8;
const CONTENT_DOC: u8 = 9;
const TYPE_XML_ELEMENT: u8 = 3;
/// Type refs yrs 0.28 decodes without the `weak` feature: array, map, text, XML element,
/// fragment, hook, XML text, subdocument, undefined.
const KNOWN_TYPES: &[u8] = &[0, 1, 2, 3, 4, 5, 6, 9, 15];

/// Checks a yrs v1 update (the payload of sync step 2 and update messages).
pub fn update_v1(bytes: &[u8], max_depth: usize) -> Result<(), Invalid> {
    let mut s = Scan {
        buf: bytes,
        pos: 0,
        max_depth,
    };
    s.update()?;
    s.finish()
}

/// Checks a v1 state vector (the payload of sync step 1).
pub fn state_vector_v1(bytes: &[u8]) -> Result<(), Invalid> {
    let mut s = Scan {
        buf: bytes,
        pos: 0,
        max_depth: 0,
    };
    // Each entry is a client id and a clock: at least two bytes.
    let n = s.count("state vector", 2)?;
    for _ in 0..n {
        s.var_u64()?;
        s.var_u32()?;
    }
    s.finish()
}

/// Whether a JSON text nests arrays and objects at most `max_depth` deep. Brackets inside
/// strings do not count. Says nothing about whether the text is valid JSON; it bounds what a
/// recursive parser would do with it.
pub fn json_depth_within(text: &str, max_depth: usize) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for b in text.bytes() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max_depth {
                    return false;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    true
}

struct Scan<'a> {
    buf: &'a [u8],
    pos: usize,
    max_depth: usize,
}

impl Scan<'_> {
    fn left(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn finish(&self) -> Result<(), Invalid> {
        match self.left() {
            0 => Ok(()),
            n => Err(Invalid::Trailing(n)),
        }
    }

    fn u8(&mut self) -> Result<u8, Invalid> {
        let b = *self.buf.get(self.pos).ok_or(Invalid::Truncated(self.pos))?;
        self.pos += 1;
        Ok(b)
    }

    fn skip(&mut self, n: usize) -> Result<(), Invalid> {
        if n > self.left() {
            return Err(Invalid::Truncated(self.buf.len()));
        }
        self.pos += n;
        Ok(())
    }

    /// An unsigned varint as yrs reads a `u64`: 7 bits a byte, at most 11 bytes, high bits
    /// wrapping.
    fn var_u64(&mut self) -> Result<u64, Invalid> {
        let start = self.pos;
        let mut n: u64 = 0;
        let mut shift: u32 = 0;
        loop {
            let b = self.u8()?;
            n |= u64::from(b & 0x7f).wrapping_shl(shift);
            shift += 7;
            if b < 0x80 {
                return Ok(n);
            }
            if shift > 70 {
                return Err(Invalid::VarInt(start));
            }
        }
    }

    /// An unsigned varint as yrs reads a `u32` (same length rule, wrapping into 32 bits).
    fn var_u32(&mut self) -> Result<u32, Invalid> {
        let start = self.pos;
        let mut n: u32 = 0;
        let mut shift: u32 = 0;
        loop {
            let b = self.u8()?;
            n |= u32::from(b & 0x7f).wrapping_shl(shift);
            shift += 7;
            if b < 0x80 {
                return Ok(n);
            }
            if shift > 70 {
                return Err(Invalid::VarInt(start));
            }
        }
    }

    /// A signed varint (`Any` integers): 6 bits in the first byte, then 7 a byte.
    fn var_i64(&mut self) -> Result<(), Invalid> {
        let start = self.pos;
        let mut b = self.u8()?;
        let mut bits = 6;
        while b >= 0x80 {
            b = self.u8()?;
            bits += 7;
            if b >= 0x80 && bits > 70 {
                return Err(Invalid::VarInt(start));
            }
        }
        Ok(())
    }

    /// A declared count whose elements take at least `min_bytes` each.
    fn count_of(
        &self,
        what: &'static str,
        declared: u64,
        min_bytes: usize,
    ) -> Result<u64, Invalid> {
        let left = self.left();
        if declared > (left / min_bytes) as u64 {
            return Err(Invalid::Count {
                what,
                declared,
                left,
            });
        }
        Ok(declared)
    }

    fn count(&mut self, what: &'static str, min_bytes: usize) -> Result<u64, Invalid> {
        let declared = self.var_u32()?;
        self.count_of(what, u64::from(declared), min_bytes)
    }

    fn buf_len(&mut self) -> Result<usize, Invalid> {
        let len = self.var_u32()? as usize;
        self.skip(len)?;
        Ok(len)
    }

    fn string(&mut self) -> Result<&str, Invalid> {
        let start = self.pos;
        let len = self.var_u32()? as usize;
        let from = self.pos;
        self.skip(len)?;
        std::str::from_utf8(&self.buf[from..from + len]).map_err(|_| Invalid::Utf8(start))
    }

    fn json(&mut self) -> Result<(), Invalid> {
        let max_depth = self.max_depth;
        let text = self.string()?;
        if !json_depth_within(text, max_depth) {
            return Err(Invalid::TooDeep { limit: max_depth });
        }
        Ok(())
    }

    fn id(&mut self) -> Result<(), Invalid> {
        self.var_u64()?;
        self.var_u32()?;
        Ok(())
    }

    fn update(&mut self) -> Result<(), Invalid> {
        // A client's section: block count, client id, first clock.
        let clients = self.count("update clients", 3)?;
        for _ in 0..clients {
            // A block is at least an info byte and one more.
            let blocks = self.var_u32()?;
            self.var_u64()?;
            self.var_u32()?;
            let blocks = self.count_of("client blocks", u64::from(blocks), 2)?;
            for _ in 0..blocks {
                self.block()?;
            }
        }
        self.delete_set()
    }

    fn delete_set(&mut self) -> Result<(), Invalid> {
        // A client id and a range count, then ranges of a clock and a length.
        let clients = self.count("delete set clients", 2)?;
        for _ in 0..clients {
            self.var_u64()?;
            let ranges = self.count("delete ranges", 2)?;
            for _ in 0..ranges {
                self.var_u32()?;
                self.var_u32()?;
            }
        }
        Ok(())
    }

    fn block(&mut self) -> Result<(), Invalid> {
        let at = self.pos;
        let info = self.u8()?;
        match info {
            BLOCK_GC | BLOCK_SKIP => {
                self.var_u32()?;
                return Ok(());
            }
            _ => {}
        }
        if info & HAS_ORIGIN != 0 {
            self.id()?;
        }
        if info & HAS_RIGHT_ORIGIN != 0 {
            self.id()?;
        }
        if info & (HAS_ORIGIN | HAS_RIGHT_ORIGIN) == 0 {
            if self.var_u32()? == 1 {
                self.string()?;
            } else {
                self.id()?;
            }
            if info & HAS_PARENT_SUB != 0 {
                self.string()?;
            }
        }
        self.content(info & 0b1111, at)
    }

    fn content(&mut self, tag: u8, at: usize) -> Result<(), Invalid> {
        match tag {
            CONTENT_DELETED => {
                self.var_u32()?;
            }
            CONTENT_JSON => {
                // yrs reads one more string than the declared count.
                let n = self.var_u32()?;
                let n = self.count_of("JSON content", u64::from(n) + 1, 1)?;
                for _ in 0..n {
                    self.string()?;
                }
            }
            CONTENT_BINARY => {
                self.buf_len()?;
            }
            CONTENT_STRING => {
                self.string()?;
            }
            CONTENT_EMBED => self.json()?,
            CONTENT_FORMAT => {
                self.string()?;
                self.json()?;
            }
            CONTENT_TYPE => {
                let at = self.pos;
                let t = self.u8()?;
                if !KNOWN_TYPES.contains(&t) {
                    return Err(Invalid::Unknown {
                        what: "type",
                        tag: t,
                        at,
                    });
                }
                if t == TYPE_XML_ELEMENT {
                    self.string()?;
                }
            }
            CONTENT_ANY => {
                let n = self.count("any content", 1)?;
                for _ in 0..n {
                    self.any(1)?;
                }
            }
            CONTENT_DOC => {
                self.string()?;
                self.any(1)?;
            }
            tag => {
                return Err(Invalid::Unknown {
                    what: "content",
                    tag,
                    at,
                });
            }
        }
        Ok(())
    }

    /// One `Any` value at nesting level `depth` (1 for a top-level value).
    fn any(&mut self, depth: usize) -> Result<(), Invalid> {
        if depth > self.max_depth {
            return Err(Invalid::TooDeep {
                limit: self.max_depth,
            });
        }
        let at = self.pos;
        match self.u8()? {
            127 | 126 | 121 | 120 => {}
            125 => self.var_i64()?,
            124 => self.skip(4)?,
            123 | 122 => self.skip(8)?,
            119 => {
                self.string()?;
            }
            118 => {
                // Each entry is a key and a value: at least two bytes.
                let n = self.var_u64()?;
                let n = self.count_of("map", n, 2)?;
                for _ in 0..n {
                    self.string()?;
                    self.any(depth + 1)?;
                }
            }
            117 => {
                let n = self.var_u64()?;
                let n = self.count_of("array", n, 1)?;
                for _ in 0..n {
                    self.any(depth + 1)?;
                }
            }
            116 => {
                self.buf_len()?;
            }
            tag => {
                return Err(Invalid::Unknown {
                    what: "value",
                    tag,
                    at,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use yrs::updates::encoder::Encode;
    use yrs::{Any, Array, Doc, Map, ReadTxn, StateVector, Text, Transact};

    const DEPTH: usize = 64;

    fn sample_update() -> Vec<u8> {
        let doc = Doc::new();
        let text = doc.get_or_insert_text("t");
        let map = doc.get_or_insert_map("m");
        let arr = doc.get_or_insert_array("a");
        let mut txn = doc.transact_mut();
        text.insert(&mut txn, 0, "héllo");
        text.remove_range(&mut txn, 1, 2);
        map.insert(&mut txn, "k", Any::from(vec![Any::from(1.5), Any::Null]));
        arr.insert(&mut txn, 0, "x");
        drop(txn);
        doc.transact()
            .encode_state_as_update_v1(&StateVector::default())
    }

    /// `[117, 1]` repeated, then null: arrays nested `levels` deep in one Any item.
    fn nested(levels: usize) -> Vec<u8> {
        // One client, one block, client 1, clock 0; item with parent named "a", Any content
        // of one value.
        let mut u = vec![1, 1, 1, 0, CONTENT_ANY, 1, 1, b'a', 1];
        for _ in 0..levels {
            u.extend_from_slice(&[117, 1]);
        }
        u.push(126);
        u.extend_from_slice(&[0]);
        u
    }

    #[test]
    fn accepts_what_yrs_encodes() {
        update_v1(&sample_update(), DEPTH).unwrap();
        update_v1(&[0, 0], DEPTH).unwrap();
        let doc = Doc::new();
        doc.get_or_insert_text("t")
            .insert(&mut doc.transact_mut(), 0, "x");
        state_vector_v1(&doc.transact().state_vector().encode_v1()).unwrap();
        state_vector_v1(&[0]).unwrap();
    }

    #[test]
    fn bounds_nesting() {
        update_v1(&nested(DEPTH - 1), DEPTH).unwrap();
        assert_eq!(
            update_v1(&nested(7_500), DEPTH),
            Err(Invalid::TooDeep { limit: DEPTH })
        );
        assert!(json_depth_within(r#"{"a":["[[[[",{}]}"#, 3));
        assert!(!json_depth_within("[[[[]]]]", 3));
    }

    #[test]
    fn refuses_counts_the_input_cannot_hold() {
        // 2^28 state vector entries in 8 bytes.
        let sv = [0x80, 0x80, 0x80, 0x80, 0x01, 0, 0, 0];
        assert!(matches!(state_vector_v1(&sv), Err(Invalid::Count { .. })));
        // An update declaring 2^28 clients.
        assert!(matches!(
            update_v1(&[0x80, 0x80, 0x80, 0x80, 0x01, 0, 0], DEPTH),
            Err(Invalid::Count { .. })
        ));
        // An Any array declaring far more values than bytes.
        let mut u = vec![
            1,
            1,
            1,
            0,
            CONTENT_ANY,
            1,
            1,
            b'a',
            1,
            117,
            0xff,
            0xff,
            0x7f,
        ];
        u.push(126);
        assert!(matches!(update_v1(&u, DEPTH), Err(Invalid::Count { .. })));
    }

    #[test]
    fn refuses_truncation_and_trailing_bytes() {
        let u = sample_update();
        for cut in 0..u.len() {
            assert!(
                update_v1(&u[..cut], DEPTH).is_err(),
                "prefix of {cut} bytes"
            );
        }
        let mut long = u.clone();
        long.push(0);
        assert_eq!(update_v1(&long, DEPTH), Err(Invalid::Trailing(1)));
    }
}
