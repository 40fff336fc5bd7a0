//! HTTP routes, one module per area, each registering its own.

use axum::Router;

use crate::state::AppState;

mod doc_socket;
mod health;
mod home;

pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(home::routes())
        .merge(health::routes())
        .merge(doc_socket::routes())
        .with_state(state)
}
