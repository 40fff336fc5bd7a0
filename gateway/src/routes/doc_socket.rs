//! `/ws/doc/{doc_id}`: the y-websocket endpoint. This adapter only frames, pings and maps
//! the engine's outcomes to close codes; the room does the protocol.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use bytes::Bytes;
use dure_collab::warn_limited;
use dure_collab::{
    CloseReason, ConnectionReceiver, ConnectionSender, DocId, JoinError, JoinOptions, Outgoing,
    PresenceUser,
};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::watch;
use tokio::time::{Instant, timeout};
use tracing::{Instrument, debug, info_span, warn};

use crate::auth::{AuthFailure, Principal, subprotocol_token};
use crate::client_addr::ClientAddr;
use crate::docs::Role;
use crate::edge::per_address::AddressSlot;
use crate::error_code::{self, ErrorCode};
use crate::state::AppState;

mod access;
use access::{
    Admission, admit, looks_like_edit, permission_denied, refused_for_viewer, watch_access,
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/ws/doc/{doc_id}", any(doc_socket))
        // Anything with more path segments is not a document id either.
        .route("/ws/doc/{doc_id}/{*rest}", any(bad_doc_path))
}

/// WebSocket close codes Dure uses. 4400-4499 are final (y-websocket does not retry them);
/// the others are retried by clients.
mod code {
    pub const PROTOCOL_ERROR: u16 = 1002;
    pub const UNSUPPORTED_DATA: u16 = 1003;
    pub const INVALID_PAYLOAD: u16 = 1007;
    pub const TOO_BIG: u16 = 1009;
    pub const INTERNAL: u16 = 1011;
    pub const RESTART: u16 = 1012;
    pub const TRY_AGAIN: u16 = 1013;
    pub const UNAUTHORIZED: u16 = 4401;
    pub const FORBIDDEN: u16 = 4403;
    pub const NOT_FOUND: u16 = 4404;
    /// Final: resending the refused update would be refused again.
    pub const DOCUMENT_TOO_LARGE: u16 = 4413;
    /// Final: the user owns as many documents as allowed (local mode, created on first use).
    pub const QUOTA: u16 = 4429;
}

fn close_code(reason: &CloseReason) -> u16 {
    match reason {
        CloseReason::Malformed(_) => code::PROTOCOL_ERROR,
        CloseReason::InvalidUpdate(_) => code::INVALID_PAYLOAD,
        CloseReason::AwarenessTooLarge { .. } => code::TOO_BIG,
        CloseReason::SlowReader => code::TRY_AGAIN,
        CloseReason::Restart => code::RESTART,
        CloseReason::RoomFailed(_) => code::INTERNAL,
        CloseReason::DocumentTooLarge { .. } => code::DOCUMENT_TOO_LARGE,
    }
}

const READ_BUFFER: usize = 2048;

async fn bad_doc_path() -> Response {
    (
        StatusCode::BAD_REQUEST,
        "invalid document id: may only contain A-Z, a-z, 0-9, '_' and '-'\n",
    )
        .into_response()
}

/// How the socket will prove who it is, decided from the upgrade request.
enum Credentials {
    /// Already checked (local mode, session cookie, Authorization or subprotocol token).
    Checked(Result<Principal, AuthFailure>),
    /// Nothing offered: the first message must be `{"token": "…"}`. The slot counts the
    /// socket against `max_unauthenticated_per_address` until then.
    FirstMessage(AddressSlot),
}

#[allow(clippy::too_many_arguments)]
async fn doc_socket(
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
    Path(doc_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    client: ClientAddr,
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Response {
    let doc: DocId = match doc_id.parse() {
        Ok(d) => d,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("invalid document id: {e}\n"),
            )
                .into_response();
        }
    };
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => return rejection.into_response(),
    };
    let (protocol_token, offers_dure) = subprotocol_token(&headers);
    let credentials = if state.auth.is_local() {
        Credentials::Checked(state.auth.authenticate(&headers, true).await)
    } else if let Some(token) = protocol_token {
        Credentials::Checked(state.auth.verify_token(&token).await)
    } else {
        match state.auth.authenticate(&headers, true).await {
            Err(AuthFailure::Missing) => {
                let limit = state.config.net.max_unauthenticated_per_address;
                match state.unauthenticated.try_acquire(peer.ip(), limit) {
                    Some(slot) => Credentials::FirstMessage(slot),
                    None => {
                        debug!(%peer, "too many sockets waiting to authenticate from this address");
                        state.metrics.closed("unauthenticated_per_address");
                        return (
                            StatusCode::TOO_MANY_REQUESTS,
                            format!(
                                "too many sockets from your address are waiting to authenticate (max_unauthenticated_per_address = {limit}); send credentials\n"
                            ),
                        )
                            .into_response();
                    }
                }
            }
            other => Credentials::Checked(other),
        }
    };
    // Cross-site WebSocket hijacking: a page from another origin riding on the cookie (or on
    // loopback in local mode) is refused before the upgrade.
    if let Credentials::Checked(Err(AuthFailure::ForeignOrigin(origin))) = &credentials {
        warn_limited!(%peer, origin = %origin, "WebSocket from a foreign origin refused");
        state.metrics.closed(ErrorCode::ForeignOrigin.as_str());
        return (
            StatusCode::FORBIDDEN,
            format!("origin {origin} may not open documents here\n"),
        )
            .into_response();
    }
    let opts = JoinOptions {
        ack: query.get("ack").is_some_and(|v| v == "1" || v == "true"),
    };
    let max = state.config.max_frame_bytes;
    let sockets = state.sockets.clone();
    let ws = if offers_dure {
        ws.protocols(["dure"])
    } else {
        ws
    };
    // tungstenite allocates its read buffer eagerly (128 KiB by default): with thousands of
    // mostly idle sockets that would dominate memory. Frames larger than this still work;
    // the buffer grows for them.
    ws.max_message_size(max)
        .max_frame_size(max)
        .read_buffer_size(READ_BUFFER)
        .on_upgrade(move |socket| {
            let span = info_span!("conn", doc = %doc, %peer, conn = tracing::field::Empty, user = tracing::field::Empty);
            sockets.track_future(
                serve(socket, doc, opts, state, credentials, client).instrument(span),
            )
        })
}

/// Reads the first-message credentials: a text frame `{"token": "<JWT>"}`, within `limit`.
async fn first_message_token(socket: &mut WebSocket, limit: Duration) -> Result<String, String> {
    let msg = match timeout(limit, socket.next()).await {
        Err(_) => {
            return Err(format!(
                "no credentials within {}",
                humantime::format_duration(limit)
            ));
        }
        Ok(None | Some(Err(_))) => return Err("closed before authenticating".into()),
        Ok(Some(Ok(m))) => m,
    };
    let Message::Text(text) = msg else {
        return Err(
            "authenticate first: send {\"token\": \"…\"} as a text frame, or sign in".into(),
        );
    };
    let v: serde_json::Value = serde_json::from_str(text.as_str())
        .map_err(|_| "the first message is not JSON".to_owned())?;
    v.get("token")
        .and_then(|t| t.as_str())
        .map(str::to_owned)
        .ok_or_else(|| "the first message has no token".into())
}

async fn serve(
    mut socket: WebSocket,
    doc: DocId,
    opts: JoinOptions,
    state: AppState,
    credentials: Credentials,
    client: ClientAddr,
) {
    let principal = match credentials {
        Credentials::Checked(r) => r.map_err(|e| e.to_string()),
        // Boxed: rare paths with large futures must not enlarge every socket's task.
        Credentials::FirstMessage(slot) => {
            let limit = state.config.net.auth_timeout;
            let token = Box::pin(first_message_token(&mut socket, limit)).await;
            // Counted as waiting until the token arrived (or did not).
            drop(slot);
            match token {
                Ok(token) => Box::pin(state.auth.verify_token(&token))
                    .await
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e),
            }
        }
    };
    let principal = match principal {
        Ok(p) => p,
        Err(reason) => {
            debug!(reason = %reason, "socket not authenticated");
            state.metrics.closed(ErrorCode::Unauthenticated.as_str());
            let _ = socket
                .send(close_message(
                    code::UNAUTHORIZED,
                    ErrorCode::Unauthenticated,
                ))
                .await;
            return;
        }
    };
    tracing::Span::current().record("user", tracing::field::display(&principal.identity.id));
    if !state.auth.is_local() {
        Box::pin(state.catalog.saw_user(&principal.identity)).await;
    }
    let _slot = match access::take_slot(&state, &doc, &principal) {
        Ok(slot) => slot,
        Err((code, reason, label)) => {
            debug!(reason = %reason, "socket over quota");
            state.metrics.closed(label.as_str());
            let _ = socket.send(close_message(code, label)).await;
            return;
        }
    };
    if let Err((code, reason, label)) = access::create_on_first_use(&state, &doc, &principal).await
    {
        debug!(reason = %reason, "document not registered");
        state.metrics.closed(label.as_str());
        let _ = socket.send(close_message(code, label)).await;
        return;
    }
    // Listen for access changes before checking access, so none slips in between.
    let changes = access::Watch::new(&state, &doc, &principal);
    let role = match admit(&state, &doc, &principal.identity) {
        Admission::Role(role) => role,
        Admission::Refuse(code, reason, label) => {
            debug!(reason = %reason, "socket refused");
            state.metrics.closed(label.as_str());
            let _ = socket.send(close_message(code, label)).await;
            return;
        }
    };
    if !state.auth.is_local() && state.audit.first_open(&principal.identity.id, &doc) {
        // Off the connect path: the socket does not wait for the audit write.
        let (audit, who) = (state.audit.clone(), principal.identity.clone());
        let (doc_id, ip) = (doc.to_string(), client.text());
        tokio::spawn(async move {
            audit
                .record(
                    "open",
                    &who,
                    Some(&doc_id),
                    ip,
                    serde_json::json!({"role": role}),
                )
                .await;
        });
    }
    let writable = Arc::new(AtomicBool::new(role >= Role::Editor));
    let conn = match timeout(Duration::from_secs(30), state.rooms.join(&doc, opts)).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => {
            let (code, label) = match e {
                JoinError::ShuttingDown => (code::RESTART, ErrorCode::Restart),
                JoinError::Unavailable(_) | JoinError::Retry => {
                    (code::INTERNAL, ErrorCode::Unavailable)
                }
            };
            warn_limited!(error = %e, "refusing connection");
            state.metrics.closed(label.as_str());
            let _ = socket.send(close_message(code, label)).await;
            return;
        }
        Err(_) => {
            warn!("document took too long to load; refusing connection");
            state.metrics.closed(ErrorCode::Unavailable.as_str());
            let _ = socket
                .send(close_message(code::INTERNAL, ErrorCode::Unavailable))
                .await;
            return;
        }
    };
    tracing::Span::current().record("conn", tracing::field::display(conn.id));
    debug!("connected");
    state.metrics.connections.inc();
    state.metrics.connections_total.inc();

    let (mut sink, mut stream) = socket.split();
    let (sender, mut receiver) = (conn.sender, conn.receiver);
    // Presence shows who is really here: the room writes this identity into awareness.
    let user = PresenceUser {
        id: principal.identity.id.clone(),
        name: principal.identity.name.clone(),
    };
    if sender.identify(user).await.is_err() {
        debug!("room closed before the connection was identified");
    }
    let ping = state.config.ping_interval;
    // Answers that only this socket gets (permission denied), written by the writer.
    // A watch, not an mpsc: it allocates a few bytes instead of a 32-slot block per socket,
    // and these notices are rare (the newest one is enough).
    let (direct_tx, mut direct_rx) = watch::channel::<Option<Bytes>>(None);
    let wrote = AtomicBool::new(false);
    let ended = tokio::select! {
        r = read_loop(&mut stream, &sender, ping, &writable, &direct_tx, &wrote) => r,
        () = write_loop(&mut sink, &mut receiver, &mut direct_rx, ping) => None,
        c = watch_access(&state, &doc, principal, changes, &writable) => Some(c),
    };
    if let Some((code, reason, label)) = ended {
        warn_limited!(code, error = %label, reason = %reason, "closing connection");
        state.metrics.closed(label.as_str());
        let _ = sink.send(close_message(code, label)).await;
    }
    // Give the peer a moment to read the close frame and answer before the TCP connection
    // goes (a no-op when the peer already left).
    let _ = timeout(Duration::from_secs(1), async {
        while let Some(Ok(_)) = stream.next().await {}
    })
    .await;
    drop((sender, receiver));
    state.metrics.connections.dec();
    if wrote.load(Ordering::Relaxed) {
        Box::pin(access::touch(&state, &doc)).await;
    }
    debug!("disconnected");
}

/// A close to send: the close code, the detail (for the log only) and the stable code sent
/// as the close reason.
type Close = (u16, String, ErrorCode);

/// Reads frames into the room. Returns a close to send when the peer broke the rules,
/// `None` when the peer left.
async fn read_loop(
    stream: &mut SplitStream<WebSocket>,
    sender: &ConnectionSender,
    ping: Duration,
    writable: &AtomicBool,
    direct: &watch::Sender<Option<Bytes>>,
    wrote: &AtomicBool,
) -> Option<Close> {
    let silence = ping * 2 + Duration::from_secs(5);
    loop {
        let msg = match timeout(silence, stream.next()).await {
            Err(_) => {
                debug!("peer silent past two ping intervals; dropping");
                return None;
            }
            Ok(None) => return None,
            Ok(Some(Ok(msg))) => msg,
            Ok(Some(Err(e))) => return frame_error(e),
        };
        match msg {
            Message::Binary(frame) => {
                if !writable.load(Ordering::Acquire) {
                    if refused_for_viewer(&frame) {
                        // A viewer's edit reaches neither the room nor the store; the client
                        // is told (y-protocols auth message) and stays connected.
                        direct.send_replace(Some(permission_denied(
                            "you can view this document but not edit it",
                        )));
                        continue;
                    }
                } else if looks_like_edit(&frame) {
                    wrote.store(true, Ordering::Relaxed);
                }
                if sender.send(frame).await.is_err() {
                    // The room closed us; the writer is sending the close frame.
                    std::future::pending::<()>().await;
                }
            }
            Message::Text(_) => {
                return Some((
                    code::UNSUPPORTED_DATA,
                    "text frames are not part of the protocol; send binary".into(),
                    ErrorCode::TextFrame,
                ));
            }
            Message::Close(_) => return None,
            Message::Ping(_) | Message::Pong(_) => {}
        }
    }
}

fn frame_error(e: axum::Error) -> Option<Close> {
    let inner = e.into_inner();
    match inner.downcast_ref::<tungstenite::Error>() {
        Some(tungstenite::Error::Capacity(c)) => Some((
            code::TOO_BIG,
            format!("frame too large: {c}"),
            ErrorCode::FrameTooLarge,
        )),
        Some(tungstenite::Error::Protocol(p)) => Some((
            code::PROTOCOL_ERROR,
            format!("websocket protocol error: {p}"),
            ErrorCode::ProtocolError,
        )),
        _ => {
            debug!(error = %inner, "socket error");
            None
        }
    }
}

/// Writes the room's frames, batching whatever is already queued into one flush, and pings.
async fn write_loop(
    sink: &mut SplitSink<WebSocket, Message>,
    receiver: &mut ConnectionReceiver,
    direct: &mut watch::Receiver<Option<Bytes>>,
    ping: Duration,
) {
    let mut next_ping = Instant::now() + ping;
    loop {
        let out = tokio::select! {
            out = receiver.next() => out,
            Ok(()) = direct.changed() => {
                let notice = direct.borrow_and_update().clone();
                if let Some(frame) = notice
                    && sink.send(Message::Binary(frame)).await.is_err()
                {
                    return;
                }
                continue;
            }
            () = tokio::time::sleep_until(next_ping) => {
                next_ping = Instant::now() + ping;
                if sink.send(Message::Ping(Default::default())).await.is_err() {
                    return;
                }
                continue;
            }
        };
        match out {
            Outgoing::Frame(frame) => {
                if sink.feed(Message::Binary(frame)).await.is_err() {
                    return;
                }
                let mut batched = 0;
                while batched < 256 {
                    let Some(frame) = receiver.try_next() else {
                        break;
                    };
                    if sink.feed(Message::Binary(frame)).await.is_err() {
                        return;
                    }
                    batched += 1;
                }
                if sink.flush().await.is_err() {
                    return;
                }
            }
            Outgoing::Close(reason) => {
                // The detail (a yrs message, a limit) is for the log; the client gets the code.
                debug!(reason = %reason, "the room closed the connection");
                let _ = sink
                    .send(close_message(
                        close_code(&reason),
                        error_code::of_close(&reason),
                    ))
                    .await;
                return;
            }
        }
    }
}

/// A close frame whose reason is the stable code (short ASCII: it fits the 123 bytes a
/// close reason may hold).
fn close_message(code: u16, reason: ErrorCode) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.as_str().into(),
    }))
}
