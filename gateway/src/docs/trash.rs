//! Emptying the trash: documents deleted longer ago than `trash_retention` are purged, their
//! content and then their metadata.
//!
//! The sweep lists what looks due, then purges each one through
//! [`super::Catalog::purge_if_due`], which checks again under the lock that restore takes:
//! a document restored after the listing keeps its content.

use std::sync::Arc;
use std::time::Duration;

use dure_storage::DocId;
use serde_json::json;
use tracing::{info, warn};

use super::DocMeta;
use super::catalog::{PurgeError, now_ms};
use crate::auth::Identity;
use crate::state::AppState;

/// How often the trash is looked at: often enough that a document goes soon after its
/// retention ends, never more than once a second.
pub fn sweep_interval(retention: Duration) -> Duration {
    (retention / 4).clamp(Duration::from_secs(1), Duration::from_secs(3600))
}

/// Purges what is due; returns how many documents went.
pub async fn sweep(state: &AppState) -> usize {
    let due = due(state, now_ms());
    purge(state, due, now_ms()).await
}

/// What looks due at `now`. Only a candidate list: [`purge`] checks each again.
pub fn due(state: &AppState, now: u64) -> Vec<Arc<DocMeta>> {
    let retention = state.config.trash_retention.as_millis() as u64;
    state
        .catalog
        .all()
        .into_iter()
        .filter(|m| {
            m.deleted_at
                .is_some_and(|d| d.saturating_add(retention) <= now)
        })
        .collect()
}

/// Purges those of `candidates` that are still due at `now`; returns how many went.
pub async fn purge(state: &AppState, candidates: Vec<Arc<DocMeta>>, now: u64) -> usize {
    let retention = state.config.trash_retention.as_millis() as u64;
    let mut purged = 0;
    for candidate in candidates {
        let Ok(id) = candidate.id.parse::<DocId>() else {
            continue;
        };
        if state.rooms.is_loaded(&id) {
            // Someone still has it open (a restore is racing): next time.
            continue;
        }
        let docs = state.rooms.docs().clone();
        let target = id.clone();
        let purge_content = || async move { docs.purge(&target).await };
        let meta = match state
            .catalog
            .purge_if_due(&id, retention, now, purge_content)
            .await
        {
            Ok(Some(meta)) => meta,
            // Restored (or already gone) since the listing.
            Ok(None) => continue,
            Err(PurgeError::Content(e)) => {
                warn!(doc = %candidate.id, error = %e, "could not purge a document from the trash; will retry");
                continue;
            }
            Err(PurgeError::Metadata(e)) => {
                warn!(doc = %candidate.id, error = %e, "purged content but not metadata; will retry");
                continue;
            }
        };
        let system = Identity {
            id: "dure".into(),
            name: "Dure (trash retention)".into(),
            email: None,
            groups: Vec::new(),
            admin: true,
        };
        state
            .audit
            .record(
                "purge",
                &system,
                Some(id.as_str()),
                None,
                json!({"title": meta.title, "owner": meta.owner.id}),
            )
            .await;
        info!(doc = %id, "purged from the trash");
        purged += 1;
    }
    purged
}

pub async fn run(state: AppState) {
    let every = sweep_interval(state.config.trash_retention);
    loop {
        tokio::time::sleep(every).await;
        sweep(&state).await;
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::config::Config;

    /// A document with content, deleted long enough ago to be due.
    async fn trashed_doc(state: &AppState) -> DocId {
        let owner = Identity::local();
        let meta = state
            .catalog
            .create(&owner, "notes".into(), 10)
            .await
            .expect("create");
        let id: DocId = meta.id.parse().expect("id");
        state
            .rooms
            .docs()
            .append(
                &id,
                0,
                &dure_storage::WriterId::random(),
                &[Bytes::from_static(b"\x00\x00")],
            )
            .await
            .expect("content");
        state
            .catalog
            .update(&id, |m| {
                m.deleted_at = Some(1);
                Ok(())
            })
            .await
            .expect("trash");
        id
    }

    #[tokio::test]
    async fn a_restore_after_the_sweep_listed_a_document_keeps_it() {
        let mut config = Config::test();
        config.trash_retention = Duration::from_millis(1);
        let state = AppState::for_tests(config).await;
        let id = trashed_doc(&state).await;
        let listed = due(&state, now_ms());
        assert_eq!(listed.len(), 1, "the deleted document is due");
        // The owner restores it between the listing and the purge.
        state
            .catalog
            .update(&id, |m| {
                m.deleted_at = None;
                Ok(())
            })
            .await
            .expect("restore");
        assert_eq!(purge(&state, listed, now_ms()).await, 0);
        let kept = state.rooms.docs().load(&id).await.expect("load");
        assert_eq!(kept.entries.len(), 1, "the content survived");
        assert!(
            state
                .catalog
                .get(&id)
                .is_some_and(|m| m.deleted_at.is_none())
        );
    }

    #[tokio::test]
    async fn due_documents_go_content_first() {
        let mut config = Config::test();
        config.trash_retention = Duration::from_millis(1);
        let state = AppState::for_tests(config).await;
        let id = trashed_doc(&state).await;
        assert_eq!(sweep(&state).await, 1);
        assert!(state.rooms.docs().load(&id).await.expect("load").is_empty());
        assert!(state.catalog.get(&id).is_none());
    }
}
