//! HTTP routes, one module per area, each registering its own.

use axum::Router;

use crate::state::AppState;

mod api;
mod audit_api;
mod doc_socket;
mod docs_api;
mod health;
mod home;
mod sign_in;

pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(home::routes())
        .merge(health::routes())
        .merge(doc_socket::routes())
        .merge(sign_in::routes())
        .merge(docs_api::routes())
        .merge(audit_api::routes())
        .with_state(state)
}
