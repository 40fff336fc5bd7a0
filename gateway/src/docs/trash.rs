//! Emptying the trash: documents deleted longer ago than `trash_retention` are purged, their
//! content and then their metadata.

use std::time::Duration;

use dure_storage::DocId;
use serde_json::json;
use tracing::{info, warn};

use super::catalog::now_ms;
use crate::auth::Identity;
use crate::state::AppState;

/// How often the trash is looked at: often enough that a document goes soon after its
/// retention ends, never more than once a second.
pub fn sweep_interval(retention: Duration) -> Duration {
    (retention / 4).clamp(Duration::from_secs(1), Duration::from_secs(3600))
}

/// Purges what is due; returns how many documents went.
pub async fn sweep(state: &AppState) -> usize {
    let retention = state.config.trash_retention.as_millis() as u64;
    let now = now_ms();
    let due: Vec<_> = state
        .catalog
        .all()
        .into_iter()
        .filter(|m| m.deleted_at.is_some_and(|d| d + retention <= now))
        .collect();
    let mut purged = 0;
    for meta in due {
        let Ok(id) = meta.id.parse::<DocId>() else {
            continue;
        };
        if state.rooms.is_loaded(&id) {
            // Someone still has it open (a restore is racing): next time.
            continue;
        }
        if let Err(e) = state.rooms.docs().purge(&id).await {
            warn!(doc = %id, error = %e, "could not purge a document from the trash; will retry");
            continue;
        }
        if let Err(e) = state.catalog.remove(&id).await {
            warn!(doc = %id, error = %e, "purged content but not metadata; will retry");
            continue;
        }
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
