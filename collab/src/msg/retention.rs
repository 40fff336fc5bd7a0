//! Retention (`retention_direct`, `retention_group`, `retention_meeting`): removes log batches whose newest entry is
//! older than the conversation type's period, with the files their messages carried, and files
//! uploaded but never attached within a day. A conversation's newest batch is always kept, so
//! its sequence numbering carries on where it was and devices catching up see no reuse.

use std::collections::BTreeMap;
use std::time::Duration;

use dure_storage::{Store, StoreError};

use super::layout::{self, Entry, Kind};

/// A file not attached to a message within this long is removed.
pub const UNATTACHED_FILE_TTL: Duration = Duration::from_secs(24 * 3600);

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// `None`: kept forever.
    pub direct: Option<Duration>,
    pub group: Option<Duration>,
    pub meeting: Option<Duration>,
}

impl RetentionPolicy {
    /// Whether any type has a period; the unattached-file sweep runs in every pass anyway.
    pub fn any(&self) -> bool {
        self.direct.is_some() || self.group.is_some() || self.meeting.is_some()
    }

    fn period(&self, kind: Kind) -> Option<Duration> {
        match kind {
            Kind::Direct => self.direct,
            Kind::Group => self.group,
            Kind::Meeting => self.meeting,
        }
    }
}

/// What one pass removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RetentionReport {
    pub batches: usize,
    pub files: usize,
}

#[derive(Default)]
struct Listed {
    batches: Vec<u64>,
    files: Vec<String>,
}

/// One pass over every conversation in the store, at `now` (unix ms).
pub async fn pass(
    store: &Store,
    policy: &RetentionPolicy,
    now: u64,
) -> Result<RetentionReport, StoreError> {
    let mut convs: BTreeMap<String, Listed> = BTreeMap::new();
    for e in store.list("conversations/").await? {
        let mut parts = e.key.as_str().split('/').skip(1);
        let (Some(id), Some(kind), rest) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let listed = convs.entry(id.to_owned()).or_default();
        match (kind, rest) {
            ("log", Some(first)) => {
                if let Ok(f) = first.parse() {
                    listed.batches.push(f);
                }
            }
            ("files", Some(file)) if parts.next() == Some("meta") => {
                listed.files.push(file.to_owned());
            }
            _ => {}
        }
    }
    let mut report = RetentionReport::default();
    for (id, mut listed) in convs {
        if !layout::is_conversation_id(&id) {
            continue;
        }
        let Some((meta, _)) = layout::read_meta(store, &id).await? else {
            continue;
        };
        if let Some(period) = policy.period(meta.kind) {
            let cutoff = now.saturating_sub(period.as_millis() as u64);
            listed.batches.sort_unstable();
            // The newest batch stays (see the module comment).
            listed.batches.pop();
            for first in listed.batches {
                let key = layout::log_key(&id, first)?;
                let Some((batch, _)) = layout::read_batch(store, &key, first).await? else {
                    continue;
                };
                if batch.entries.last().is_none_or(|e| e.at() >= cutoff) {
                    // Batches are in time order: nothing later is older.
                    break;
                }
                for e in &batch.entries {
                    if let Entry::Message(m) = e {
                        for a in &m.attachments {
                            layout::delete_file(store, &id, &a.id).await?;
                            report.files += 1;
                        }
                    }
                }
                store.delete(&key).await?;
                report.batches += 1;
            }
        }
        let file_cutoff = now.saturating_sub(UNATTACHED_FILE_TTL.as_millis() as u64);
        for file in listed.files {
            if let Ok(Some((f, _))) = layout::read_file_meta(store, &id, &file).await
                && f.attached_seq.is_none()
                && f.at < file_cutoff
            {
                layout::delete_file(store, &id, &file).await?;
                report.files += 1;
            }
        }
    }
    Ok(report)
}
