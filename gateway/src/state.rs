use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use dure_collab::Rooms;
use tokio_util::task::TaskTracker;

use crate::audit::AuditLog;
use crate::auth::Auth;
use crate::config::Config;
use crate::docs::Catalog;
use crate::docs::import_gate::ImportGate;
use crate::docs::open_quota::SocketQuotas;
use crate::metrics::Metrics;

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
}

#[cfg(test)]
impl AppState {
    /// A local-mode state on a memory store, as `Server::bind_with_store` builds it.
    pub async fn for_tests(config: Config) -> AppState {
        use dure_storage::{DocStore, Store};
        let store = Store::memory();
        let metrics = Arc::new(Metrics::new());
        let auth = Arc::new(Auth::new(&config, store.clone()).await.expect("auth"));
        let catalog = Arc::new(
            Catalog::load(store.clone(), auth.changes.clone())
                .await
                .expect("catalog"),
        );
        let rooms = Rooms::new(
            DocStore::new(store.clone()),
            config.rooms.clone(),
            metrics.clone(),
        );
        AppState {
            imports: Arc::new(ImportGate::new(config.limits.import_concurrency)),
            open: Arc::new(SocketQuotas::default()),
            config: Arc::new(config),
            rooms,
            metrics,
            accepting: Arc::new(AtomicBool::new(true)),
            sockets: TaskTracker::new(),
            auth,
            catalog,
            audit: AuditLog::new(store),
        }
    }
}
