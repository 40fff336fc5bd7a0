//! `/ws/rt`: the realtime socket (meetings now, messaging next). This adapter authenticates
//! the upgrade, counts the socket against its owner's limits and pumps text frames between
//! the WebSocket and `dure_collab::rt`, which does the protocol (`docs/realtime.md`).

use std::net::SocketAddr;

use axum::Router;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use dure_collab::rt::{Outgoing, Principal as RtPrincipal, RtReceiver, RtSender, RtUser};
use dure_collab::warn_limited;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::time::{Duration, timeout};
use tracing::{Instrument, debug, info_span};

use crate::auth::{AuthFailure, Principal, subprotocol_token};
use crate::client_addr::ClientAddr;
use crate::docs::open_quota::Slot;
use crate::edge::per_address::AddressSlot;
use crate::error_code::ErrorCode;
use crate::state::AppState;

/// The subprotocol a client offers to carry its bearer token (`dure.rt, dure-token.JWT`).
const SUBPROTOCOL: &str = "dure.rt";
/// tungstenite's read buffer per socket; larger frames grow it (see doc_socket.rs).
const READ_BUFFER: usize = 2048;

pub fn routes() -> Router<AppState> {
    Router::new().route("/ws/rt", any(rt_socket))
}

fn refuse(status: StatusCode, code: ErrorCode, message: String) -> Response {
    crate::routes::api::ApiError::new(status, code, message).into_response()
}

/// What keeps the socket counted against its limits while it is open.
enum Counted {
    User(#[allow(dead_code)] Slot),
    Anonymous(#[allow(dead_code)] AddressSlot),
}

async fn rt_socket(
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    client: ClientAddr,
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Response {
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => return rejection.into_response(),
    };
    let offers = headers
        .get_all(axum::http::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|p| p.trim() == SUBPROTOCOL));
    let (token, _) = subprotocol_token(&headers);
    let checked = match token {
        Some(token) if !state.auth.is_local() => state.auth.verify_token(&token).await,
        _ => state.auth.authenticate(&headers, true).await,
    };
    let principal = match checked {
        Ok(p) => Some(p),
        // No credentials at all: a guest, who may only join with an invite.
        Err(AuthFailure::Missing) => None,
        Err(AuthFailure::ForeignOrigin(origin)) => {
            warn_limited!(%peer, origin = %origin, "realtime socket from a foreign origin refused");
            return refuse(
                StatusCode::FORBIDDEN,
                ErrorCode::ForeignOrigin,
                format!("origin {origin} may not open realtime sockets here"),
            );
        }
        Err(AuthFailure::Invalid(reason)) => {
            debug!(%peer, reason = %reason, "realtime socket with bad credentials refused");
            return refuse(
                StatusCode::UNAUTHORIZED,
                ErrorCode::Unauthenticated,
                "these credentials are not valid; sign in again".to_owned(),
            );
        }
    };
    let limits = &state.config.limits;
    let counted = match &principal {
        Some(p) => match state
            .open
            .acquire_socket(&p.identity.id, limits.max_sockets_per_user)
        {
            Ok(slot) => Counted::User(slot),
            Err(e) => {
                return refuse(
                    StatusCode::TOO_MANY_REQUESTS,
                    ErrorCode::TooManySockets,
                    e.to_string(),
                );
            }
        },
        // Guests have no user to count against: their sockets count per address, with the
        // per-user limit.
        None => match state
            .rt_anonymous
            .try_acquire(peer.ip(), limits.max_sockets_per_user)
        {
            Some(slot) => Counted::Anonymous(slot),
            None => {
                return refuse(
                    StatusCode::TOO_MANY_REQUESTS,
                    ErrorCode::TooManySockets,
                    format!(
                        "too many guest sockets from your address (max_sockets_per_user = {})",
                        limits.max_sockets_per_user
                    ),
                );
            }
        },
    };
    if let Some(p) = &principal
        && !state.auth.is_local()
    {
        // Known people can be added to conversations; a socket is how many first arrive.
        Box::pin(state.catalog.saw_user(&p.identity)).await;
    }
    let who = match &principal {
        Some(p) => RtPrincipal::User(rt_user(p, state.auth.is_local())),
        None => RtPrincipal::Anonymous,
    };
    let max = state.rt.config().max_message_bytes;
    let ws = if offers {
        ws.protocols([SUBPROTOCOL])
    } else {
        ws
    };
    let sockets = state.sockets.clone();
    ws.max_message_size(max)
        .max_frame_size(max)
        .read_buffer_size(READ_BUFFER)
        .on_upgrade(move |socket| {
            let span = info_span!("rt", %peer, user = principal.as_ref().map(|p| p.identity.id.as_str()).unwrap_or("-"));
            sockets.track_future(serve(socket, state, who, client, counted).instrument(span))
        })
}

fn rt_user(p: &Principal, local: bool) -> RtUser {
    RtUser {
        id: p.identity.id.clone(),
        name: p.identity.name.clone(),
        email: p.identity.email.clone(),
        groups: p.identity.groups.clone(),
        local,
    }
}

async fn serve(
    socket: WebSocket,
    state: AppState,
    who: RtPrincipal,
    client: ClientAddr,
    counted: Counted,
) {
    let rt = state.rt.connect(who, client.0);
    let (mut sink, mut stream) = socket.split();
    let (sender, mut receiver) = (rt.sender, rt.receiver);
    tokio::select! {
        flush = read_loop(&mut stream, &sender) => {
            if flush {
                let _ = timeout(Duration::from_secs(1), write_loop(&mut sink, &mut receiver)).await;
            }
        }
        () = write_loop(&mut sink, &mut receiver) => {
            // The close went out: give the peer a moment to answer it.
            let _ = timeout(Duration::from_secs(1), async {
                while let Some(Ok(_)) = stream.next().await {}
            })
            .await;
        }
    }
    drop((sender, receiver, counted));
    debug!("realtime socket closed");
}

/// Reads frames into the engine until the client leaves; true when the engine queued a close
/// that must still be written (a frame over the size limit).
async fn read_loop(stream: &mut SplitStream<WebSocket>, sender: &RtSender) -> bool {
    while let Some(msg) = stream.next().await {
        match msg {
            Ok(Message::Text(text)) => sender.send(text.as_str().to_owned()).await,
            Ok(Message::Binary(_)) => sender.send_binary().await,
            Ok(Message::Close(_)) => return false,
            Ok(Message::Ping(_) | Message::Pong(_)) => {}
            Err(e) => {
                let inner = e.into_inner();
                debug!(error = %inner, "realtime socket error");
                if let Some(tungstenite::Error::Capacity(_)) =
                    inner.downcast_ref::<tungstenite::Error>()
                {
                    // Over rt_max_message_bytes (tungstenite stopped reading it).
                    sender.too_large();
                    return true;
                }
                return false;
            }
        }
    }
    false
}

async fn write_loop(sink: &mut SplitSink<WebSocket, Message>, receiver: &mut RtReceiver) {
    while let Some(out) = receiver.next().await {
        match out {
            Outgoing::Frame(text) => {
                if sink.send(Message::Text(text.into())).await.is_err() {
                    return;
                }
            }
            Outgoing::Close { code, reason } => {
                let _ = sink
                    .send(Message::Close(Some(CloseFrame {
                        code,
                        reason: reason.into(),
                    })))
                    .await;
                return;
            }
        }
    }
}
