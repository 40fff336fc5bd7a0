//! `/api/audit`: the audit log, for administrators only.

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::api::{ApiError, Caller};
use crate::audit::AuditQuery;
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/audit", get(audit))
}

#[derive(Deserialize)]
struct Q {
    user: Option<String>,
    doc: Option<String>,
    from: Option<String>,
    to: Option<String>,
    limit: Option<usize>,
}

fn time_ms(name: &str, v: &str) -> Result<u64, ApiError> {
    humantime::parse_rfc3339_weak(v)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as u64)
        .ok_or_else(|| ApiError::bad_request(format!("`{name}` is not an RFC 3339 time: {v:?}")))
}

async fn audit(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<Q>,
) -> Result<Json<Value>, ApiError> {
    if !caller.identity().admin {
        return Err(ApiError::forbidden("the audit log is for administrators"));
    }
    let query = AuditQuery {
        user: q.user,
        doc: q.doc,
        from_ms: q.from.as_deref().map(|v| time_ms("from", v)).transpose()?,
        to_ms: q.to.as_deref().map(|v| time_ms("to", v)).transpose()?,
        limit: q.limit.unwrap_or(200).clamp(1, 1000),
    };
    let events = state
        .audit
        .query(&query)
        .await
        .map_err(ApiError::unavailable)?;
    Ok(Json(json!({ "events": events })))
}
