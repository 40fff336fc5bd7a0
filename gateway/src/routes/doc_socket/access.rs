//! Access control on a live document socket: who may join, read-only enforcement for
//! viewers, and closing the socket when access is revoked, the document deleted or the
//! session ended (event-driven through the change bus; expiry by timer).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use dure_collab::DocId;
use tokio::sync::broadcast;
use tracing::debug;

use super::{Close, code};
use crate::auth::{Identity, Principal, Via};
use crate::docs::Role;
use crate::docs::catalog::now_ms;
use crate::docs::open_quota::{QuotaRefusal, Slot};
use crate::error_code::ErrorCode;
use crate::state::AppState;

pub enum Admission {
    Role(Role),
    Refuse(u16, String, ErrorCode),
}

/// The role `who` has on `doc`, or the close that refuses them.
pub fn admit(state: &AppState, doc: &DocId, who: &Identity) -> Admission {
    match state.catalog.get(doc) {
        Some(meta) if meta.deleted_at.is_some() => Admission::Refuse(
            code::NOT_FOUND,
            "this document was deleted".into(),
            ErrorCode::NotFound,
        ),
        Some(meta) => match meta.role_of(who) {
            Some(role) => Admission::Role(role),
            None => Admission::Refuse(
                code::FORBIDDEN,
                "you have no access to this document".into(),
                ErrorCode::Forbidden,
            ),
        },
        // Local mode keeps y-websocket's "a name is a document": created on first use.
        None if state.auth.is_local() => Admission::Role(Role::Owner),
        None => Admission::Refuse(
            code::NOT_FOUND,
            "no such document".into(),
            ErrorCode::NotFound,
        ),
    }
}

/// Local mode keeps y-websocket's "a name is a document": a socket to an unknown name
/// registers it in the catalog first, so that it is listed and exportable like a document
/// made in the app. With sign-in, documents are made through the API only.
pub async fn create_on_first_use(
    state: &AppState,
    doc: &DocId,
    principal: &Principal,
) -> Result<(), Close> {
    if !state.auth.is_local() || state.catalog.get(doc).is_some() {
        return Ok(());
    }
    let max = state.config.limits.max_docs_per_user;
    match Box::pin(state.catalog.register(doc, &principal.identity, max)).await {
        Ok(_) => Ok(()),
        Err(e @ crate::docs::CatalogError::QuotaReached { .. }) => {
            Err((code::QUOTA, e.to_string(), ErrorCode::QuotaExceeded))
        }
        Err(e) => Err((
            code::INTERNAL,
            format!("could not register the document: {e}"),
            ErrorCode::Unavailable,
        )),
    }
}

/// The socket's place in its user's quotas (`max_sockets_per_user`,
/// `max_rooms_per_user`), held for the life of the socket. Over a quota the socket is
/// closed with 1013: retryable, since the quota frees up as other sockets close.
pub fn take_slot(state: &AppState, doc: &DocId, principal: &Principal) -> Result<Slot, Close> {
    let limits = &state.config.limits;
    state
        .open
        .acquire(
            &principal.identity.id,
            doc,
            limits.max_sockets_per_user,
            limits.max_rooms_per_user,
        )
        .map_err(|e| {
            let code = match e {
                QuotaRefusal::Sockets(_) => ErrorCode::TooManySockets,
                QuotaRefusal::Rooms(_) => ErrorCode::TooManyDocumentsOpen,
            };
            (code::TRY_AGAIN, e.to_string(), code)
        })
}

/// Whether a viewer's frame must be refused: a sync step 2 or update that changes
/// something. The empty update (`[0, 0]`) that an up-to-date client answers to the server's
/// step 1 passes. Decoded with the engine's own decoder so that no encoding trick (a
/// padded varint, say) reads differently here and in the room. Malformed frames pass: the
/// room closes the socket for them.
pub fn refused_for_viewer(frame: &bytes::Bytes) -> bool {
    use dure_collab::protocol::{ClientMessage, decode};
    match decode(frame) {
        Ok(ClientMessage::SyncStep2 { update } | ClientMessage::Update { update }) => {
            update.as_ref() != [0, 0]
        }
        _ => false,
    }
}

/// A cheap guess that a frame edits (for "recently edited"; not a security decision).
pub fn looks_like_edit(frame: &[u8]) -> bool {
    matches!(frame, [0, 1 | 2, ..]) && frame.len() > 5
}

/// The y-protocols auth message "permission denied": `varUint(2) · varUint(0) ·
/// varString(reason)`.
pub fn permission_denied(reason: &str) -> bytes::Bytes {
    let mut out = vec![2u8, 0];
    let mut n = reason.len();
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(b);
            break;
        }
        out.push(b | 0x80);
    }
    out.extend_from_slice(reason.as_bytes());
    out.into()
}

/// The change subscriptions of one socket: its document, and its session if it has one.
pub struct Watch {
    doc: broadcast::Receiver<()>,
    session: Option<broadcast::Receiver<()>>,
}

impl Watch {
    pub fn new(state: &AppState, doc: &DocId, principal: &Principal) -> Self {
        let session = match &principal.via {
            Via::Session(key) => Some(state.auth.changes.watch_session(key)),
            Via::Local | Via::Bearer => None,
        };
        Watch {
            doc: state.auth.changes.watch_doc(doc),
            session,
        }
    }
}

/// Runs for the life of the socket; resolves with the close to send when access ends.
/// Downgrades to viewer (or upgrades) switch `writable` in place.
pub async fn watch_access(
    state: &AppState,
    doc: &DocId,
    mut principal: Principal,
    mut watch: Watch,
    writable: &AtomicBool,
) -> Close {
    loop {
        let wake = principal.check_at.map(|t| {
            let left = t
                .duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO);
            tokio::time::Instant::now() + left
        });
        tokio::select! {
            () = sleep_until_opt(wake) => {
                // Boxed: a refresh goes to the provider (HTTP client futures of several KiB),
                // which must not sit inline in every socket's task while it idles.
                match Box::pin(state.auth.recheck(&principal)).await {
                    Ok(p) => principal = p,
                    Err(e) => return (code::UNAUTHORIZED, format!("signed out: {e}"), ErrorCode::Unauthenticated),
                }
            }
            msg = watch.doc.recv() => {
                if let Err(broadcast::error::RecvError::Closed) = msg {
                    // The topic was pruned (no sender side left): subscribe again.
                    watch.doc = state.auth.changes.watch_doc(doc);
                }
            }
            Some(msg) = recv_opt(watch.session.as_mut()) => {
                match msg {
                    Err(broadcast::error::RecvError::Closed) => {
                        if let Via::Session(key) = &principal.via {
                            watch.session = Some(state.auth.changes.watch_session(key));
                        }
                        continue;
                    }
                    _ => return (code::UNAUTHORIZED, "signed out".into(), ErrorCode::Unauthenticated),
                }
            }
        }
        // Something changed (or a session was refreshed): look at the role again.
        match admit(state, doc, &principal.identity) {
            Admission::Role(role) => {
                let w = role >= Role::Editor;
                if writable.swap(w, Ordering::AcqRel) != w {
                    debug!(?role, "role changed on a live socket");
                }
            }
            Admission::Refuse(code, reason, label) => return (code, reason, label),
        }
    }
}

async fn recv_opt(
    rx: Option<&mut broadcast::Receiver<()>>,
) -> Option<Result<(), broadcast::error::RecvError>> {
    match rx {
        Some(rx) => Some(rx.recv().await),
        None => std::future::pending().await,
    }
}

async fn sleep_until_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Marks the document as recently edited (for "recent" lists), at most once a minute.
pub async fn touch(state: &AppState, doc: &DocId) {
    let Some(meta) = state.catalog.get(doc) else {
        return;
    };
    if now_ms().saturating_sub(meta.updated_at) < 60_000 || meta.deleted_at.is_some() {
        return;
    }
    if let Err(e) = state
        .catalog
        .update(doc, |m| {
            m.updated_at = now_ms();
            Ok(())
        })
        .await
    {
        debug!(error = %e, "could not mark the document as edited");
    }
}
