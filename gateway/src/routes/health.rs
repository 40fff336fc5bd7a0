//! Liveness, readiness and metrics.

use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::readiness::Status;
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready when accepting connections and the store answers; answered at once from the
/// state the store path and the background probes keep (never a live call, so a probe is
/// never late because a dependency is). The identity provider is reported but does not
/// make the node unready: signed-in sessions and bearer tokens keep working without it,
/// and taking every node out of the load balancer would stop them too.
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let accepting = state.accepting.load(Ordering::Acquire);
    let stale = state.config.net.health_check_interval * 3;
    let (store_ok, store_line) = match state.readiness.store.status(stale) {
        // The error itself (bucket, endpoint, path) is in the log: this body is public.
        Status::Failing { for_secs, .. } => (
            false,
            format!("store: unreachable for {for_secs}s (details in the log)"),
        ),
        _ if state.metrics.store_failing() => {
            (false, "store: failing writes (retrying)".to_owned())
        }
        Status::Ok => (true, "store: ok".to_owned()),
        Status::Unknown => (false, "store: not checked yet".to_owned()),
    };
    let idp_line = match &state.auth.oidc {
        None => "identity provider: none (local mode)".to_owned(),
        Some(_) => match state.readiness.identity_provider.status(stale) {
            Status::Ok => "identity provider: ok".to_owned(),
            Status::Unknown => "identity provider: not checked yet".to_owned(),
            Status::Failing { for_secs, .. } => format!(
                "identity provider: unreachable for {for_secs}s (details in the log; still ready: existing sessions and tokens keep working; new sign-ins fail)"
            ),
        },
    };
    let ready = accepting && store_ok;
    let body = format!(
        "{}\n{store_line}\n{idp_line}\nshutdown: {}\n",
        if ready { "ready" } else { "not ready" },
        if accepting { "no" } else { "in progress" }
    );
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, body)
}

/// `/metrics` on the main listener, unless `metrics_listen` moved it to its own.
async fn metrics(State(state): State<AppState>) -> Response {
    if state.config.metrics_listen.is_some() {
        return (StatusCode::NOT_FOUND, "not found\n").into_response();
    }
    crate::metrics_listen::response(&state.metrics).into_response()
}
