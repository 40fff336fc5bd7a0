//! What the JSON API routes share: the error shape and the `Caller` extractor, which
//! authenticates every request (local user, session cookie with an allowed Origin for
//! changes, or a bearer token).

use std::sync::Arc;

use axum::Json;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tracing::debug;

use crate::auth::{AuthFailure, Identity, Principal};
use crate::client_addr::ClientAddr;
use crate::docs::CatalogError;
use crate::state::AppState;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
    pub fn bad_request(m: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", m)
    }
    pub fn forbidden(m: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", m)
    }
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "no such document")
    }
    pub fn unavailable(m: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", m)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({"error": self.code, "message": self.message});
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
            CatalogError::Refused(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
            CatalogError::Store(e) => ApiError::unavailable(format!("store: {e}")),
            CatalogError::Corrupt(m) => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", m)
            }
            e @ CatalogError::QuotaReached { .. } => {
                ApiError::new(StatusCode::CONFLICT, "quota_exceeded", e.to_string())
            }
        }
    }
}

pub fn auth_error(e: AuthFailure) -> ApiError {
    match e {
        AuthFailure::ForeignOrigin(_) => ApiError::forbidden(e.to_string()),
        AuthFailure::Missing => {
            ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", "sign in first")
        }
        AuthFailure::Invalid(m) => ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", m),
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
