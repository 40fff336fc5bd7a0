//! `metrics_listen`: `/metrics` on a listener of its own, so that Prometheus can scrape an
//! address that is not published to users (a pod port, a management network). When it is
//! set, the main listener no longer serves `/metrics` (routes/health.rs); unset, nothing
//! changes.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tracing::warn;

use crate::metrics::Metrics;

/// The bound metrics listener (bound at start, so a taken port stops dure at once).
#[derive(Debug)]
pub struct MetricsListener {
    listener: TcpListener,
}

impl MetricsListener {
    pub async fn bind(addr: SocketAddr) -> std::io::Result<Self> {
        Ok(MetricsListener {
            listener: TcpListener::bind(addr).await?,
        })
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Serves `/metrics` (and nothing else) until the returned task is aborted.
    pub fn serve(self, metrics: Arc<Metrics>) -> JoinHandle<()> {
        let app = Router::new()
            .route("/metrics", get(encode))
            .with_state(metrics);
        tokio::spawn(async move {
            if let Err(e) = axum::serve(self.listener, app).await {
                warn!(error = %e, "the metrics listener failed");
            }
        })
    }
}

/// The OpenMetrics text of every metric (shared with the main listener's `/metrics`).
pub fn response(metrics: &Metrics) -> impl IntoResponse + use<> {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics.encode(),
    )
}

async fn encode(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    response(&metrics)
}
