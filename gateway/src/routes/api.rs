//! What the JSON API routes share: the error shape and the `Caller` extractor, which
//! authenticates every request (local user, session cookie with an allowed Origin for
//! changes, or a bearer token).

use std::borrow::Cow;
use std::sync::Arc;

use axum::Json;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tracing::{debug, error};

use crate::auth::{AuthFailure, Identity, Principal};
use crate::client_addr::ClientAddr;
use crate::docs::CatalogError;
use crate::error_code::ErrorCode;
use crate::state::AppState;

/// A JSON error: `{"error": "<code>", "message": "<sentence>"}`. Client mistakes may carry
/// a sentence written here about the request; server-side failures only ever carry their
/// code's generic sentence, and their detail is logged ([`ApiError::unavailable`],
/// [`ApiError::internal`]).
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: Cow<'static, str>,
}

impl ApiError {
    /// A client-caused error with a sentence about the request (never about the server).
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
    /// An error with its code's generic sentence.
    pub fn of(status: StatusCode, code: ErrorCode) -> Self {
        Self::new(status, code, code.message())
    }
    pub fn bad_request(m: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorCode::BadRequest, m)
    }
    pub fn forbidden(m: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::FORBIDDEN, ErrorCode::Forbidden, m)
    }
    pub fn conflict(m: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::CONFLICT, ErrorCode::Conflict, m)
    }
    pub fn not_found() -> Self {
        Self::of(StatusCode::NOT_FOUND, ErrorCode::NotFound)
    }
    /// The store (or another service) failed: `detail` is logged, the client gets 503 and
    /// the generic sentence (no key, path, bucket or endpoint).
    pub fn unavailable(detail: impl std::fmt::Display) -> Self {
        dure_collab::warn_limited!(error = %detail, code = "unavailable", "request failed: storage unavailable");
        Self::of(StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Unavailable)
    }
    /// A server bug or unreadable stored data: `detail` is logged at ERROR, the client gets
    /// 500 and the generic sentence.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        error!(error = %detail, code = "internal", "request failed: internal error");
        Self::of(StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({"error": self.code.as_str(), "message": self.message});
        if self.status == StatusCode::UNAUTHORIZED {
            body["login"] = json!("/auth/login");
        }
        (self.status, Json(body)).into_response()
    }
}

impl From<CatalogError> for ApiError {
    fn from(e: CatalogError) -> Self {
        match e {
            CatalogError::NotFound => ApiError::not_found(),
            CatalogError::Refused(m) => ApiError::new(StatusCode::CONFLICT, ErrorCode::Conflict, m),
            CatalogError::Store(e) => ApiError::unavailable(e),
            CatalogError::Corrupt(m) => {
                ApiError::internal(format!("stored metadata unreadable: {m}"))
            }
            e @ CatalogError::QuotaReached { .. } => ApiError::new(
                StatusCode::CONFLICT,
                ErrorCode::QuotaExceeded,
                e.to_string(),
            ),
        }
    }
}

pub fn auth_error(e: AuthFailure) -> ApiError {
    match e {
        AuthFailure::ForeignOrigin(_) => ApiError::forbidden(e.to_string()),
        AuthFailure::Missing => ApiError::of(StatusCode::UNAUTHORIZED, ErrorCode::Unauthenticated),
        // Dure's own sentence on what is wrong with the token or session (an integrator
        // needs to know a token must be at+jwt); never a store's or library's text.
        AuthFailure::Invalid(m) => {
            ApiError::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthenticated, m)
        }
    }
}

/// The authenticated caller of an API route, with the address it came from (for the audit
/// log).
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    pub ip: Option<String>,
}

impl Caller {
    pub fn identity(&self) -> &Arc<Identity> {
        &self.principal.identity
    }

    /// Records what this caller did to `doc` in the audit log.
    pub async fn audit(
        &self,
        state: &AppState,
        action: &str,
        doc: &str,
        detail: serde_json::Value,
    ) {
        state
            .audit
            .record(action, self.identity(), Some(doc), self.ip.clone(), detail)
            .await;
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let unsafe_method = !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
        let principal = state
            .auth
            .authenticate(&parts.headers, unsafe_method)
            .await
            .map_err(|e| {
                debug!(error = %e, path = %parts.uri.path(), "request not authenticated");
                auth_error(e)
            })?;
        let ip = match ClientAddr::from_request_parts(parts, state).await {
            Ok(client) => client.text(),
            Err(never) => match never {},
        };
        if !matches!(principal.via, crate::auth::Via::Local) {
            state.catalog.saw_user(&principal.identity).await;
        }
        Ok(Caller { principal, ip })
    }
}
