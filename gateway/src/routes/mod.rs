//! HTTP routes, one module per area, each registering its own.

use axum::Router;

use crate::state::AppState;

pub(crate) mod api;
mod app;
mod audit_api;
mod doc_socket;
mod docs_api;
mod files_api;
mod health;
mod meetings_api;
mod rt_socket;
mod sign_in;
mod transfer;

pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(health::routes())
        .merge(doc_socket::routes())
        .merge(sign_in::routes())
        .merge(docs_api::routes())
        .merge(meetings_api::routes())
        .merge(files_api::routes())
        .merge(rt_socket::routes())
        .merge(audit_api::routes())
        .merge(transfer::routes())
        // Last: the app's router carries the fallback (its index.html for app paths).
        .merge(app::routes())
        // A panic in a handler answers 500 with the stable error shape; the panic hook
        // (logging.rs) has logged it at ERROR.
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(panicked))
        // Outermost: a request for a host we do not serve reaches no route (DNS rebinding).
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::edge::hosts::check_host,
        ))
        .with_state(state)
}

fn panicked(_: Box<dyn std::any::Any + Send>) -> axum::response::Response {
    use axum::response::IntoResponse;
    api::ApiError::of(
        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
        crate::error_code::ErrorCode::Internal,
    )
    .into_response()
}
