//! Liveness, readiness and metrics.

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

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

/// Ready when accepting connections and the store answers. Reports each check.
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let accepting = state.accepting.load(Ordering::Acquire);
    let store =
        tokio::time::timeout(Duration::from_secs(2), state.rooms.docs().store().ping()).await;
    let store_ok = matches!(store, Ok(Ok(()))) && !state.metrics.store_failing();
    let store_line = match store {
        Ok(Ok(())) if state.metrics.store_failing() => {
            "store: failing writes (retrying)".to_owned()
        }
        Ok(Ok(())) => "store: ok".to_owned(),
        Ok(Err(e)) => format!("store: unreachable: {e}"),
        Err(_) => "store: unreachable: no answer within 2s".to_owned(),
    };
    let (idp_ok, idp_line) = match &state.auth.oidc {
        None => (true, "identity provider: none (local mode)".to_owned()),
        Some(oidc) => match oidc.ping().await {
            Ok(()) => (true, "identity provider: ok".to_owned()),
            Err(e) => (false, format!("identity provider: {e}")),
        },
    };
    let store_ok = store_ok && idp_ok;
    let body = format!(
        "{}\n{store_line}\n{idp_line}\nshutdown: {}\n",
        if accepting && store_ok {
            "ready"
        } else {
            "not ready"
        },
        if accepting { "no" } else { "in progress" }
    );
    let status = if accepting && store_ok {
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
