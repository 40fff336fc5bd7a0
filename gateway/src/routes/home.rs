//! The landing page, until the browser app is served here.

use axum::Router;
use axum::response::Html;
use axum::routing::get;

use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/", get(home))
}

async fn home() -> Html<&'static str> {
    Html(concat!(
        "<!doctype html><meta charset=utf-8><title>Dure</title>",
        "<h1>Dure is running</h1>",
        "<p>Connect a Yjs client (y-websocket <code>WebsocketProvider</code>) to ",
        "<code>ws://HOST/ws/doc</code> with a document name, for example room <code>notes</code> ",
        "is <code>ws://HOST/ws/doc/notes</code>.</p>",
        "<p>Health: <a href=/healthz>/healthz</a>, <a href=/readyz>/readyz</a>, ",
        "<a href=/metrics>/metrics</a>.</p>"
    ))
}
