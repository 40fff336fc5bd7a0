//! The document size limit (`RoomConfig::max_doc_bytes`): an update that would grow a
//! document past it is refused before it is applied, so nothing stored changes and the
//! sender is told.
//!
//! The size is the document's state encoded as a Yjs v1 update (what a new client
//! downloads). Encoding it on every update would cost as much as the document, so the room
//! keeps an upper estimate (the stored bytes at load plus every update applied since, which
//! only over-counts: updates overlap and compaction shrinks) and encodes the real size only
//! when the estimate crosses the limit.

use yrs::{Doc, ReadTxn, StateVector, Transact};

#[derive(Debug)]
pub(crate) struct SizeLimit {
    limit: u64,
    estimate: u64,
}

impl SizeLimit {
    pub(crate) fn new(limit: u64, stored_bytes: u64) -> Self {
        SizeLimit {
            limit,
            estimate: stored_bytes,
        }
    }

    /// Whether an update of `incoming` bytes may be applied to `doc`. An update can add at
    /// most its own length to the encoded state.
    pub(crate) fn admits(&mut self, doc: &Doc, incoming: usize) -> bool {
        let incoming = incoming as u64;
        if self.estimate.saturating_add(incoming) <= self.limit {
            return true;
        }
        self.estimate = doc
            .transact()
            .encode_state_as_update_v1(&StateVector::default())
            .len() as u64;
        self.estimate.saturating_add(incoming) <= self.limit
    }

    /// Records an applied update.
    pub(crate) fn applied(&mut self, bytes: usize) {
        self.estimate = self.estimate.saturating_add(bytes as u64);
    }

    pub(crate) fn limit(&self) -> u64 {
        self.limit
    }
}

#[cfg(test)]
mod tests {
    use yrs::{GetString, Text, Transact};

    use super::*;

    fn text_update(doc: &Doc, s: &str) -> Vec<u8> {
        let text = doc.get_or_insert_text("t");
        let before = doc.transact().state_vector();
        text.push(&mut doc.transact_mut(), s);
        doc.transact().encode_state_as_update_v1(&before)
    }

    #[test]
    fn refuses_what_would_pass_the_limit_and_corrects_an_over_estimate() {
        let doc = Doc::new();
        let first = text_update(&doc, &"a".repeat(100));
        // Loaded with an over-estimate (say, log entries that a compaction merged).
        let mut limit = SizeLimit::new(300, 250);
        // 250 + 120 > 300 by the estimate, but the real state is about 120 bytes.
        assert!(limit.admits(&doc, 120));
        limit.applied(first.len());
        let real = doc
            .transact()
            .encode_state_as_update_v1(&StateVector::default())
            .len();
        assert!(!limit.admits(&doc, 300 - real + 1));
        assert!(limit.admits(&doc, 300 - real));
        assert_eq!(
            doc.get_or_insert_text("t")
                .get_string(&doc.transact())
                .len(),
            100
        );
    }
}
