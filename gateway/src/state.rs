use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use dure_collab::Rooms;
use dure_storage::{DocStore, Store};
use tokio_util::task::TaskTracker;
use tracing::info;

use crate::audit::AuditLog;
use crate::auth::{Auth, Identity};
use crate::config::Config;
use crate::docs::Catalog;
use crate::docs::import_gate::ImportGate;
use crate::docs::open_quota::SocketQuotas;
use crate::edge::hosts::AllowedHosts;
use crate::edge::per_address::PerAddress;
use dure_collab::rt::RtHub;

use crate::meetings::{MeetingEvents, StoreDirectory};
use crate::messages::Files;
use crate::metrics::Metrics;
use crate::readiness::Readiness;
use crate::server::ServerError;

/// Everything a request handler needs, built once at start.
#[derive(Clone, Debug)]
pub struct AppState {
    pub config: Arc<Config>,
    pub rooms: Rooms,
    pub metrics: Arc<Metrics>,
    /// False once shutdown has begun (readiness turns red first).
    pub accepting: Arc<AtomicBool>,
    /// Socket tasks, joined at shutdown so their close frames go out.
    pub sockets: TaskTracker,
    pub auth: Arc<Auth>,
    pub catalog: Arc<Catalog>,
    pub audit: AuditLog,
    /// Markdown imports running (`import_concurrency`, one per user).
    pub imports: Arc<ImportGate>,
    /// Document sockets and documents each user has open.
    pub open: Arc<SocketQuotas>,
    /// The `Host` names requests may carry (DNS rebinding).
    pub hosts: Arc<AllowedHosts>,
    /// What `/readyz` answers from (store outcomes, background probes).
    pub readiness: Arc<Readiness>,
    /// Document sockets per source address still waiting for their first-message token.
    pub unauthenticated: Arc<PerAddress>,
    /// Meetings over the store: the HTTP API uses it directly, the realtime engine through
    /// `dure_collab::meet::MeetingDirectory`.
    pub meetings: Arc<StoreDirectory>,
    /// How the meetings API reaches live meeting sockets (end, revoke): the realtime hub.
    pub meeting_events: Arc<dyn MeetingEvents>,
    /// The realtime engine behind `/ws/rt`.
    pub rt: RtHub,
    /// Guest (anonymous) realtime sockets per source address.
    pub rt_anonymous: Arc<PerAddress>,
    /// Conversation files (uploads, downloads, thumbnails) over the store.
    pub files: Arc<Files>,
}

impl MeetingEvents for RtHub {
    fn end_meeting(&self, slug: &str) {
        RtHub::end_meeting(self, slug);
    }

    fn invite_revoked(&self, slug: &str, invite_id: &str) {
        RtHub::invite_revoked(self, slug, invite_id);
    }
}

impl AppState {
    /// Builds the state on `store`: identity, catalog (in local mode, content stored without
    /// metadata is registered for the local user), rooms, audit log and the per-user limits.
    pub async fn new(config: Config, store: Store) -> Result<AppState, ServerError> {
        let metrics = Arc::new(Metrics::new());
        let readiness = Arc::new(Readiness::default());
        let store = readiness.track(store);
        let auth = Arc::new(Auth::new(&config, store.clone()).await?);
        if auth.oidc.is_some() {
            // Discovery just succeeded.
            readiness.identity_provider.ok();
        }
        let catalog = Arc::new(Catalog::load(store.clone(), auth.changes.clone()).await?);
        if auth.is_local() {
            // One catalog for both ways of making a document: content a plain Yjs client
            // stored before documents were registered on first use gets its metadata now.
            let adopted = catalog.adopt_stored(&Identity::local()).await?;
            if adopted > 0 {
                info!(
                    adopted,
                    "documents without metadata registered for the local user"
                );
            }
        }
        let audit = AuditLog::new(store.clone());
        let meetings = Arc::new(StoreDirectory::new(
            store.clone(),
            catalog.clone(),
            audit.clone(),
            &config,
        ));
        let files = Arc::new(
            Files::new(store.clone(), &config.msg).counted_by(metrics.uploads_receiving.clone()),
        );
        let rooms = Rooms::new(
            DocStore::new(store.clone()),
            config.rooms.clone(),
            metrics.clone(),
        );
        let messaging = dure_collab::msg::Messaging::new(
            store.clone(),
            crate::conversations::engine_config(&config),
            Arc::new(crate::conversations::CatalogHooks {
                catalog: catalog.clone(),
                audit: audit.clone(),
            }),
        );
        let rt = RtHub::with_parts(
            config.rt_config(),
            meetings.clone(),
            metrics.clone(),
            Arc::new(dure_collab::meet::Mesh),
            Some(messaging),
        );
        Ok(AppState {
            imports: Arc::new(ImportGate::new(config.limits.import_concurrency)),
            open: Arc::new(SocketQuotas::default()),
            hosts: Arc::new(AllowedHosts::new(&config)),
            readiness,
            unauthenticated: Arc::new(PerAddress::default()),
            meetings,
            meeting_events: Arc::new(rt.clone()),
            rt,
            rt_anonymous: Arc::new(PerAddress::default()),
            files,
            config: Arc::new(config),
            rooms,
            metrics,
            accepting: Arc::new(AtomicBool::new(true)),
            sockets: TaskTracker::new(),
            auth,
            catalog,
            audit,
        })
    }

    /// A local-mode state on a memory store.
    #[cfg(test)]
    pub async fn for_tests(config: Config) -> AppState {
        AppState::new(config, Store::memory()).await.expect("state")
    }
}
