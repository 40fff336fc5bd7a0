//! The gateway's side of messaging: [`CatalogHooks`] answers the engine's questions (people's
//! names, who may see a document) from the catalog and records its audit events; the
//! retention task runs [`dure_collab::msg::retention`] on a timer.

use std::sync::Arc;
use std::time::Duration;

use dure_collab::msg::{MsgAudit, MsgHooks, RetentionPolicy};
use dure_collab::rt::RtUser;
use dure_storage::{DocId, Store};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::audit::AuditLog;
use crate::auth::Identity;
use crate::docs::Catalog;

pub struct CatalogHooks {
    pub catalog: Arc<Catalog>,
    pub audit: AuditLog,
}

impl MsgHooks for CatalogHooks {
    fn user_name(&self, user_id: &str) -> Option<String> {
        // Only by id: an e-mail address names a person to share with, not a member id.
        self.catalog
            .find_user(user_id)
            .ok()
            .filter(|u| u.id == user_id)
            .map(|u| u.name)
    }

    fn doc_title(&self, doc_id: &str, reader: &RtUser) -> Option<String> {
        let id: DocId = doc_id.parse().ok()?;
        let meta = self.catalog.get(&id)?;
        let who = Identity {
            id: reader.id.clone(),
            name: reader.name.clone(),
            email: reader.email.clone(),
            groups: reader.groups.clone(),
            admin: reader.local,
        };
        meta.role_of(&who).map(|_| meta.title.clone())
    }

    fn audit(&self, event: MsgAudit) {
        let who = Identity {
            id: event.actor.clone(),
            name: self
                .user_name(&event.actor)
                .unwrap_or_else(|| event.actor.clone()),
            email: None,
            groups: Vec::new(),
            admin: false,
        };
        let detail = json!({
            "conversation": event.conversation,
            "target": event.target,
            "detail": event.detail,
        });
        let log = self.audit.clone();
        // The engine calls this from its own tasks and must not wait on the store.
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move { log.record(event.action, &who, None, None, detail).await });
            }
            Err(_) => warn!(
                action = event.action,
                "messaging audit record dropped: no runtime"
            ),
        }
    }
}

/// Runs a retention pass every `interval` until cancelled. With no retention period set a
/// pass still removes files never attached to a message.
pub async fn retention_loop(
    store: Store,
    policy: RetentionPolicy,
    interval: Duration,
    cancel: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = cancel.cancelled() => return,
        }
        match dure_collab::msg::retention::pass(&store, &policy, dure_collab::msg::now_ms()).await {
            Ok(r) if r.batches + r.files > 0 => {
                info!(
                    batches = r.batches,
                    files = r.files,
                    "messaging retention removed old messages and files"
                )
            }
            Ok(_) => {}
            Err(e) => {
                warn!(error = %e, "messaging retention pass failed; next one in {interval:?}")
            }
        }
    }
}

/// The engine's limits from the configuration.
pub fn engine_config(config: &crate::config::Config) -> dure_collab::msg::MsgConfig {
    let m = &config.msg;
    if config.meet.chat_store_writes.is_some() {
        tracing::warn!(
            "chat_store_writes is deprecated: meeting chat is a conversation now; set msg_store_writes instead"
        );
    }
    dure_collab::msg::MsgConfig {
        max_message_chars: m.max_message_chars,
        max_conversations_per_user: m.max_conversations_per_user,
        max_conversation_members: m.max_conversation_members,
        posts_per_second: m.msg_posts_per_second,
        search_scan_bytes: m.msg_search_scan_bytes,
        // `chat_store_writes` from before meeting chat was a conversation still counts.
        store_writes: m
            .msg_store_writes
            .or(config.meet.chat_store_writes)
            .unwrap_or_else(|| m.store_writes(&config.storage)),
        ..dure_collab::msg::MsgConfig::default()
    }
}

/// The retention periods from the configuration.
pub fn retention_policy(config: &crate::config::Config) -> RetentionPolicy {
    RetentionPolicy {
        direct: config.msg.retention_direct,
        group: config.msg.retention_group,
        meeting: config.msg.retention_meeting,
    }
}
