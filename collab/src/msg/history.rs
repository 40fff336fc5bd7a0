//! Reading a conversation's log from the store: pages backwards and forwards from any
//! sequence (catch-up from a device's last one), and the bounded scan of a search.

use dure_storage::{Store, StoreError};

use super::layout::{self, Entry, Message};
use super::owner::Snapshot;
use super::writer::batch_of;

/// Up to `limit` entries, oldest first, and whether there are more in that direction.
/// With `after`: from `after + 1` forwards; otherwise backwards from below `before` (or the
/// end). Only entries up to the snapshot's last durable sequence are returned.
pub(crate) async fn page(
    store: &Store,
    conv: &str,
    snap: &Snapshot,
    before: Option<u64>,
    after: Option<u64>,
    limit: usize,
) -> Result<(Vec<Entry>, bool), StoreError> {
    let last = snap.last_seq;
    if let Some(after) = after {
        let start = batch_of(&snap.index, after + 1).unwrap_or(0);
        let mut out = Vec::new();
        for first in snap.index.iter().copied().filter(|f| *f >= start) {
            if first > last {
                break;
            }
            let key = layout::log_key(conv, first)?;
            // A batch removed by retention is skipped.
            let Some((b, _)) = layout::read_batch(store, &key, first).await? else {
                continue;
            };
            out.extend(
                b.entries
                    .into_iter()
                    .filter(|e| e.seq() > after && e.seq() <= last),
            );
            if out.len() > limit {
                break;
            }
        }
        let more = out.len() > limit;
        out.truncate(limit);
        return Ok((out, more));
    }
    let below = before.unwrap_or(last + 1).min(last + 1);
    let mut newest_first: Vec<Entry> = Vec::new();
    let mut reached_start = true;
    for first in snap.index.iter().rev().copied().filter(|f| *f < below) {
        if newest_first.len() >= limit {
            reached_start = false;
            break;
        }
        let key = layout::log_key(conv, first)?;
        let Some((b, _)) = layout::read_batch(store, &key, first).await? else {
            continue;
        };
        newest_first.extend(b.entries.into_iter().rev().filter(|e| e.seq() < below));
    }
    let more = newest_first.len() > limit || !reached_start;
    newest_first.truncate(limit);
    newest_first.reverse();
    Ok((newest_first, more))
}

/// Messages whose text holds `query` (already lowercase), newest first, reading at most
/// `scan_bytes` of stored entries; true as well when the scan stopped before the start.
pub(crate) async fn search(
    store: &Store,
    conv: &str,
    snap: &Snapshot,
    query: &str,
    scan_bytes: usize,
    limit: usize,
) -> Result<(Vec<Message>, bool), StoreError> {
    let mut found = Vec::new();
    let mut scanned = 0usize;
    for first in snap.index.iter().rev().copied() {
        if scanned >= scan_bytes || found.len() >= limit {
            return Ok((found, true));
        }
        let key = layout::log_key(conv, first)?;
        let Some((b, _)) = layout::read_batch(store, &key, first).await? else {
            continue;
        };
        for e in b.entries.into_iter().rev() {
            if let Entry::Message(m) = e {
                scanned += m.text.len() + 64;
                if !m.deleted && m.seq <= snap.last_seq && m.text.to_lowercase().contains(query) {
                    found.push(m);
                    if found.len() >= limit {
                        break;
                    }
                }
            }
        }
    }
    Ok((found, false))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::layout::{Author, Event};

    fn msg(text: &str) -> Entry {
        Entry::Message(Message {
            seq: 0,
            id: format!("m{text}"),
            at: 1,
            author: Author {
                user_id: "u".into(),
                name: "U".into(),
                participant: None,
                guest: false,
            },
            text: text.into(),
            client_ref: None,
            reply_to: None,
            mentions: vec![],
            docs: vec![],
            attachments: vec![],
            edited_at: None,
            deleted: false,
        })
    }

    /// A log of `n` messages in batches of the given sizes.
    async fn log(sizes: &[usize]) -> (Store, String, Snapshot) {
        let store = Store::memory();
        let conv = format!("g{}", "a".repeat(32));
        let mut seq = 1;
        let mut index = Vec::new();
        for size in sizes {
            let entries: Vec<Entry> = (0..*size)
                .map(|i| {
                    let mut e = msg(&format!("text {}", seq + i as u64));
                    e.set_seq(seq + i as u64);
                    e
                })
                .collect();
            index.push(seq);
            layout::append_batch(&store, &conv, entries).await.unwrap();
            seq += *size as u64;
        }
        let snap = Snapshot {
            index,
            last_seq: seq - 1,
        };
        (store, conv, snap)
    }

    fn seqs(entries: &[Entry]) -> Vec<u64> {
        entries.iter().map(Entry::seq).collect()
    }

    #[tokio::test]
    async fn pages_forwards_and_backwards_without_gaps_or_repeats() {
        let (store, conv, snap) = log(&[3, 1, 5, 2]).await;
        // Forwards from every starting point, in pages of 4: each sequence once, in order.
        for start in 0..=11 {
            let mut after = start;
            let mut got = Vec::new();
            loop {
                let (page, more) = page(&store, &conv, &snap, None, Some(after), 4)
                    .await
                    .unwrap();
                assert!(page.len() <= 4);
                if let Some(last) = page.last() {
                    after = last.seq();
                }
                got.extend(seqs(&page));
                if !more {
                    break;
                }
            }
            assert_eq!(got, ((start + 1)..=11).collect::<Vec<_>>(), "after {start}");
        }
        // Backwards from the end and from a middle point.
        let (p, more) = page(&store, &conv, &snap, None, None, 4).await.unwrap();
        assert_eq!(seqs(&p), [8, 9, 10, 11]);
        assert!(more);
        let (p, more) = page(&store, &conv, &snap, Some(5), None, 10).await.unwrap();
        assert_eq!(seqs(&p), [1, 2, 3, 4]);
        assert!(!more);
        // Nothing past the durable end is shown.
        let short = Snapshot {
            last_seq: 6,
            ..snap.clone()
        };
        let (p, _) = page(&store, &conv, &short, None, Some(4), 10)
            .await
            .unwrap();
        assert_eq!(seqs(&p), [5, 6]);
    }

    #[tokio::test]
    async fn search_is_bounded_by_the_scan_budget() {
        let (store, conv, snap) = log(&[3, 3, 3]).await;
        let (found, cut) = search(&store, &conv, &snap, "text", 1 << 20, 50)
            .await
            .unwrap();
        assert_eq!(found.len(), 9);
        assert!(!cut);
        // A budget of about one batch reads the newest batch only.
        let (found, cut) = search(&store, &conv, &snap, "text", 200, 50).await.unwrap();
        assert_eq!(found.iter().map(|m| m.seq).collect::<Vec<_>>(), [9, 8, 7]);
        assert!(cut);
    }

    #[tokio::test]
    async fn a_batch_is_checked_against_its_key() {
        let store = Store::memory();
        let conv = format!("g{}", "b".repeat(32));
        let mut a = msg("a");
        a.set_seq(1);
        let mut b = Entry::Event(Event {
            seq: 3,
            at: 1,
            by: "u".into(),
            action: "renamed".into(),
            users: vec![],
            title: None,
            role: None,
        });
        // Not consecutive: never written.
        assert!(
            layout::append_batch(&store, &conv, vec![a.clone(), b.clone()])
                .await
                .is_err()
        );
        b.set_seq(2);
        layout::append_batch(&store, &conv, vec![a.clone(), b])
            .await
            .unwrap();
        // The same first sequence again is refused (a second writer, or a retried write).
        assert!(matches!(
            layout::append_batch(&store, &conv, vec![a]).await,
            Err(StoreError::ConditionFailed { .. })
        ));
    }
}
