use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use dure_collab::Rooms;
use tokio_util::task::TaskTracker;

use crate::audit::AuditLog;
use crate::auth::Auth;
use crate::config::Config;
use crate::docs::Catalog;
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
}
