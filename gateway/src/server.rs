//! Building and running the server, and the ordered shutdown.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use dure_storage::{Store, fs::FsBackend};
use tokio::net::{TcpListener, TcpSocket};
use tracing::{info, warn};

use crate::config::{Config, StorageBackend};
use crate::metrics_listen::MetricsListener;
use crate::routes;
use crate::state::AppState;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("storage: {0}")]
    Storage(#[from] dure_storage::StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{0}")]
    Identity(#[from] crate::auth::oidc::OidcError),
    #[error("document catalog: {0}")]
    Catalog(#[from] crate::docs::CatalogError),
}

/// A bound, not yet running server.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    state: AppState,
    /// `/metrics` on its own address (`metrics_listen`), if set.
    metrics: Option<MetricsListener>,
}

impl Server {
    /// Opens the store and binds the listener.
    pub async fn bind(config: Config) -> Result<Self, ServerError> {
        let store = match &config.storage {
            StorageBackend::Fs => Store::new(FsBackend::open(&config.data_dir)?),
            StorageBackend::Memory => Store::memory(),
            StorageBackend::S3(s3) => {
                Store::new(dure_storage_s3::S3Backend::connect(s3.as_ref().clone()).await?)
            }
        };
        Self::bind_with_store(config, store).await
    }

    /// Like [`Server::bind`] with a given store (tests inject slow or failing stores).
    pub async fn bind_with_store(mut config: Config, store: Store) -> Result<Self, ServerError> {
        let listener = listen(config.listen).map_err(|source| ServerError::Bind {
            addr: config.listen,
            source,
        })?;
        if let Ok(addr) = listener.local_addr() {
            // Port 0 resolved: the Host check needs the port actually bound.
            config.listen = addr;
        }
        if config.public_url_derived
            && let Ok(addr) = listener.local_addr()
        {
            // Unset public URL: it is wherever we actually listen (port 0 included).
            let derived_origins =
                config.allowed_origins == crate::config::default_origins(&config.public_url);
            config.public_url = format!("http://{addr}");
            if derived_origins {
                config.allowed_origins = crate::config::default_origins(&config.public_url);
            }
        }
        let metrics = match config.metrics_listen {
            Some(addr) => Some(
                MetricsListener::bind(addr)
                    .await
                    .map_err(|source| ServerError::Bind { addr, source })?,
            ),
            None => None,
        };
        let state = AppState::new(config, store).await?;
        Ok(Server {
            listener,
            state,
            metrics,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or(self.state.config.listen)
    }

    /// Where `/metrics` is served when `metrics_listen` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(MetricsListener::local_addr)
    }

    pub fn store_description(&self) -> String {
        self.state.rooms.docs().store().describe()
    }

    /// Serves until `shutdown` resolves, then: not ready → stop accepting → flush every room
    /// and close its sockets with 1012 → wait for the sockets → return. Bounded by the
    /// configured shutdown timeout.
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        let Server {
            listener,
            state,
            metrics,
        } = self;
        let metrics_task = metrics.map(|m| m.serve(state.metrics.clone()));
        let app = routes::router(state.clone());
        let stop = tokio_util::sync::CancellationToken::new();
        let accepting = state.accepting.clone();
        let serve = tokio::spawn(crate::edge::listener::serve(
            listener,
            app,
            state.config.net.clone(),
            state.metrics.clone(),
            stop.clone(),
        ));
        let trash = tokio::spawn(crate::docs::trash::run(state.clone()));
        let probes = tokio::spawn(crate::readiness::probe(state.clone()));
        let retention_stop = tokio_util::sync::CancellationToken::new();
        let retention = tokio::spawn(crate::conversations::retention_loop(
            state.files.store().clone(),
            crate::conversations::retention_policy(&state.config),
            state.config.msg.retention_interval,
            retention_stop.clone(),
        ));
        shutdown.await;
        retention_stop.cancel();
        retention.abort();
        trash.abort();
        probes.abort();
        let deadline = state.config.shutdown_timeout;
        let started = tokio::time::Instant::now();
        info!("shutting down: flushing documents and closing connections (deadline {deadline:?})");
        accepting.store(false, Ordering::Release);
        stop.cancel();
        // Realtime sockets close 1012 (clients resume elsewhere) while documents flush.
        let (flushed, ()) =
            tokio::join!(state.rooms.shutdown(deadline), state.rt.shutdown(deadline));
        if !flushed {
            warn!(
                "shutdown deadline passed before every document was flushed (store unreachable?)"
            );
        }
        state.sockets.close();
        let left = deadline.saturating_sub(started.elapsed());
        let _ = tokio::time::timeout(left, state.sockets.wait()).await;
        let _ = tokio::time::timeout(deadline.saturating_sub(started.elapsed()), serve).await;
        if let Some(task) = metrics_task {
            task.abort();
        }
        info!(
            took_ms = started.elapsed().as_millis() as u64,
            flushed, "stopped"
        );
        Ok(())
    }
}

/// Binds with a listen backlog sized for a room's worth of clients reconnecting at once
/// (the default of 128 overflows when a few hundred connect together, and the kernel then
/// makes the extra ones retry their SYN a second later).
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

const LISTEN_BACKLOG: u32 = 4096;
