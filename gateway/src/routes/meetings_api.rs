//! The meetings API (`docs/realtime.md`, "HTTP API"): create, list, show, change and end
//! meetings, and make, list and revoke guest invites. Signed-in callers only; a meeting the
//! caller may not enter answers exactly like one that does not exist.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use dure_collab::meet::Role;
use dure_storage::{DocId, StoreError};
use serde_json::{Map, Value, json};

use super::api::{ApiError, Caller};
use super::docs_api::rfc3339;
use crate::auth::Via;
use crate::docs::meta::clean_title;
use crate::error_code::ErrorCode;
use crate::meetings::record::{Access, InviteRecord, Lobby, MAX_INVITED, MeetingMeta};
use crate::meetings::rules::Decision;
use crate::meetings::{MeetError, NewMeeting};
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/meetings", get(list).post(create))
        .route("/api/meetings/{slug}", get(show).patch(change))
        .route("/api/meetings/{slug}/end", post(end))
        .route(
            "/api/meetings/{slug}/invites",
            get(list_invites).post(create_invite),
        )
        .route("/api/meetings/{slug}/invites/{id}", delete(revoke_invite))
}

impl From<MeetError> for ApiError {
    fn from(e: MeetError) -> Self {
        match e {
            MeetError::NotFound => not_found(),
            MeetError::Forbidden(m) => ApiError::forbidden(m),
            MeetError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, ErrorCode::Conflict, m),
            MeetError::Quota(m) => ApiError::new(StatusCode::CONFLICT, ErrorCode::QuotaExceeded, m),
            MeetError::Store(e @ StoreError::Corrupt { .. }) => ApiError::internal(e),
            MeetError::Store(e) => ApiError::unavailable(e),
        }
    }
}

/// One body for unknown and forbidden meetings, so a slug's existence leaks nothing.
fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        ErrorCode::NotFound,
        "no such meeting",
    )
}

fn local(caller: &Caller) -> bool {
    matches!(caller.principal.via, Via::Local)
}

/// The meeting as the caller may see it: who is invited and who hosts only for hosts.
fn view(state: &AppState, m: &MeetingMeta, d: &Decision) -> Value {
    let host = d.role.is_host();
    let mut v = json!({
        "slug": m.slug,
        "url": format!("{}/m/{}", state.config.public_url, m.slug),
        "title": m.title,
        "starts_at": m.starts_at.map(rfc3339),
        "access": m.access,
        "lobby": m.lobby,
        "doc_id": m.doc_id,
        "created_by": m.created_by,
        "created_at": rfc3339(m.created_at),
        "ended": m.ended,
        "role": if host { "host" } else { "participant" },
    });
    if host {
        v["invited_users"] = json!(m.invited_users);
        v["invited_groups"] = json!(m.invited_groups);
        v["hosts"] = json!(m.hosts);
    }
    v
}

fn host_decision() -> Decision {
    Decision {
        role: Role::Host,
        admission: dure_collab::meet::Admission::Direct,
        guest: false,
        invite_id: None,
    }
}

fn body(b: Result<Json<Value>, JsonRejection>) -> Result<Map<String, Value>, ApiError> {
    match b {
        Ok(Json(Value::Object(m))) => Ok(m),
        Ok(_) => Err(ApiError::bad_request("the body must be a JSON object")),
        Err(e) => Err(ApiError::bad_request(format!(
            "the body is not valid JSON: {e}"
        ))),
    }
}

/// The fields a host may set, validated; `None` where the body did not name them.
#[derive(Default)]
struct Fields {
    title: Option<String>,
    starts_at: Option<Option<u64>>,
    access: Option<Access>,
    invited_users: Option<Vec<String>>,
    invited_groups: Option<Vec<String>>,
    lobby: Option<Lobby>,
    doc_id: Option<Option<String>>,
}

fn text_list(name: &str, v: &Value) -> Result<Vec<String>, ApiError> {
    let items = v
        .as_array()
        .ok_or_else(|| ApiError::bad_request(format!("{name} must be a list of strings")))?;
    if items.len() > MAX_INVITED {
        return Err(ApiError::bad_request(format!(
            "{name} may hold at most {MAX_INVITED} entries"
        )));
    }
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        let s = item
            .as_str()
            .map(str::trim)
            .filter(|s| !s.is_empty() && s.len() <= 256 && !s.chars().any(char::is_control))
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "{name} entries must be non-empty strings of at most 256 bytes"
                ))
            })?;
        if !out.iter().any(|o| o == s) {
            out.push(s.to_owned());
        }
    }
    Ok(out)
}

fn enum_field<T: serde::de::DeserializeOwned>(
    name: &str,
    v: &Value,
    expected: &str,
) -> Result<T, ApiError> {
    serde_json::from_value(v.clone())
        .map_err(|_| ApiError::bad_request(format!("{name} must be one of {expected}")))
}

fn fields(body: &Map<String, Value>, allow_doc: bool) -> Result<Fields, ApiError> {
    let mut f = Fields::default();
    for (k, v) in body {
        match k.as_str() {
            "title" => {
                let t = v
                    .as_str()
                    .ok_or_else(|| ApiError::bad_request("title must be a string"))?;
                let t = clean_title(t).map_err(ApiError::bad_request)?;
                if t.is_empty() {
                    return Err(ApiError::bad_request("title must not be empty"));
                }
                f.title = Some(t);
            }
            "starts_at" => {
                f.starts_at = Some(match v {
                    Value::Null => None,
                    Value::String(s) => {
                        let t = humantime::parse_rfc3339_weak(s.trim()).map_err(|_| {
                            ApiError::bad_request(
                                "starts_at must be an RFC 3339 time in UTC, like 2027-03-01T09:00:00Z",
                            )
                        })?;
                        Some(
                            t.duration_since(std::time::UNIX_EPOCH)
                                .map(|d| d.as_millis() as u64)
                                .unwrap_or(0),
                        )
                    }
                    _ => return Err(ApiError::bad_request("starts_at must be a string or null")),
                });
            }
            "access" => {
                f.access = Some(enum_field(k, v, "invited, organisation, guests")?);
            }
            "lobby" => {
                f.lobby = Some(enum_field(k, v, "guests, everyone_not_invited, everyone")?);
            }
            "invited_users" => f.invited_users = Some(text_list(k, v)?),
            "invited_groups" => f.invited_groups = Some(text_list(k, v)?),
            "doc_id" if allow_doc => {
                f.doc_id = Some(match v {
                    Value::Null => None,
                    Value::String(s) => Some(s.clone()),
                    _ => return Err(ApiError::bad_request("doc_id must be a string or null")),
                });
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown or unchangeable field {other:?}"
                )));
            }
        }
    }
    Ok(f)
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    b: Result<Json<Value>, JsonRejection>,
) -> Result<Response, ApiError> {
    let f = fields(&body(b)?, true)?;
    let title = f
        .title
        .ok_or_else(|| ApiError::bad_request("title is required"))?;
    let doc_id = f.doc_id.flatten();
    if let Some(id) = &doc_id {
        // Linking a document hands its editors and viewers a seat and its owners host
        // rights: only someone who may change the document may do that.
        let role = id
            .parse::<DocId>()
            .ok()
            .and_then(|id| state.catalog.get(&id))
            .and_then(|m| m.role_of(caller.identity()));
        if role.is_none_or(|r| r < crate::docs::Role::Editor) {
            return Err(ApiError::forbidden(
                "linking a document needs the editor or owner role on it",
            ));
        }
    }
    let meta = state
        .meetings
        .create(
            caller.identity(),
            NewMeeting {
                title,
                starts_at: f.starts_at.flatten(),
                access: f.access.unwrap_or(Access::Organisation),
                lobby: f.lobby.unwrap_or(Lobby::Guests),
                invited_users: f.invited_users.unwrap_or_default(),
                invited_groups: f.invited_groups.unwrap_or_default(),
                doc_id,
            },
        )
        .await?;
    audit(
        &state,
        &caller,
        "meeting.create",
        &meta.slug,
        json!({"title": meta.title}),
    )
    .await;
    Ok((
        StatusCode::CREATED,
        Json(view(&state, &meta, &host_decision())),
    )
        .into_response())
}

async fn audit(state: &AppState, caller: &Caller, action: &str, slug: &str, mut detail: Value) {
    detail["meeting"] = json!(slug);
    state
        .audit
        .record(action, caller.identity(), None, caller.ip.clone(), detail)
        .await;
}

async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    let found = state
        .meetings
        .list(caller.identity(), local(&caller))
        .await?;
    let meetings: Vec<Value> = found.iter().map(|(m, d)| view(&state, m, d)).collect();
    Ok(Json(json!({ "meetings": meetings })))
}

async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(slug): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (meta, d) = state
        .meetings
        .visible(&slug, caller.identity(), local(&caller))
        .await?;
    Ok(Json(view(&state, &meta, &d)))
}

async fn change(
    State(state): State<AppState>,
    caller: Caller,
    Path(slug): Path<String>,
    b: Result<Json<Value>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    state
        .meetings
        .hosted(&slug, caller.identity(), local(&caller))
        .await?;
    let raw = body(b)?;
    let f = fields(&raw, false)?;
    let meta = state
        .meetings
        .update(&slug, |m| {
            if let Some(t) = &f.title {
                m.title = t.clone();
            }
            if let Some(s) = f.starts_at {
                m.starts_at = s;
            }
            if let Some(a) = f.access {
                m.access = a;
            }
            if let Some(l) = f.lobby {
                m.lobby = l;
            }
            if let Some(u) = &f.invited_users {
                m.invited_users = u.clone();
            }
            if let Some(g) = &f.invited_groups {
                m.invited_groups = g.clone();
            }
            Ok(())
        })
        .await?;
    let changed: Vec<&String> = raw.keys().collect();
    audit(
        &state,
        &caller,
        "meeting.update",
        &slug,
        json!({"changed": changed}),
    )
    .await;
    Ok(Json(view(&state, &meta, &host_decision())))
}

async fn end(
    State(state): State<AppState>,
    caller: Caller,
    Path(slug): Path<String>,
) -> Result<Json<Value>, ApiError> {
    state
        .meetings
        .hosted(&slug, caller.identity(), local(&caller))
        .await?;
    let meta = state.meetings.end(&slug).await?;
    state.meeting_events.end_meeting(&slug);
    audit(&state, &caller, "meeting.end", &slug, json!({})).await;
    Ok(Json(view(&state, &meta, &host_decision())))
}

fn invite_view(inv: &InviteRecord) -> Value {
    json!({
        "id": inv.id,
        "label": inv.label,
        "expires_at": rfc3339(inv.expires_at),
        "max_uses": inv.max_uses,
        "uses": inv.uses,
        "revoked": inv.revoked,
    })
}

/// An optional integer field within `range`, or `default` when absent or null.
fn int_field(
    body: &Map<String, Value>,
    name: &str,
    range: std::ops::RangeInclusive<u64>,
    default: Option<u64>,
) -> Result<Option<u64>, ApiError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v
            .as_u64()
            .filter(|n| range.contains(n))
            .map(Some)
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "{name} must be a whole number from {} to {}",
                    range.start(),
                    range.end()
                ))
            }),
    }
}

async fn create_invite(
    State(state): State<AppState>,
    caller: Caller,
    Path(slug): Path<String>,
    b: Result<Json<Value>, JsonRejection>,
) -> Result<Response, ApiError> {
    let meta = state
        .meetings
        .hosted(&slug, caller.identity(), local(&caller))
        .await?;
    // An empty body means every default.
    let raw = match b {
        Err(JsonRejection::MissingJsonContentType(_)) => Map::new(),
        other => body(other)?,
    };
    if let Some(k) = raw
        .keys()
        .find(|k| !matches!(k.as_str(), "label" | "expires_in_minutes" | "max_uses"))
    {
        return Err(ApiError::bad_request(format!("unknown field {k:?}")));
    }
    let label = match raw.get("label") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => {
            let s = clean_title(s).map_err(|_| {
                ApiError::bad_request("label must be at most 200 characters, no control characters")
            })?;
            (!s.is_empty()).then_some(s)
        }
        Some(_) => return Err(ApiError::bad_request("label must be a string or null")),
    };
    let minutes =
        int_field(&raw, "expires_in_minutes", 1..=43_200, Some(10_080))?.unwrap_or(10_080);
    let max_uses = int_field(&raw, "max_uses", 1..=1000, None)?.map(|n| n as u32);
    if meta.access != Access::Guests {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::Conflict,
            "guest invites need the meeting's access set to \"guests\"",
        ));
    }
    if meta.ended {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::Conflict,
            "this meeting has ended",
        ));
    }
    let made = state
        .meetings
        .create_invite(&slug, label, minutes * 60_000, max_uses)
        .await?;
    audit(
        &state,
        &caller,
        "meeting.invite",
        &slug,
        json!({"invite": made.record.id, "label": made.record.label}),
    )
    .await;
    let mut v = invite_view(&made.record);
    v["secret"] = json!(made.secret);
    v["link"] = json!(format!(
        "{}/m/{}#invite={}",
        state.config.public_url, slug, made.secret
    ));
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

async fn list_invites(
    State(state): State<AppState>,
    caller: Caller,
    Path(slug): Path<String>,
) -> Result<Json<Value>, ApiError> {
    state
        .meetings
        .hosted(&slug, caller.identity(), local(&caller))
        .await?;
    let invites: Vec<Value> = state
        .meetings
        .invites(&slug)
        .await?
        .iter()
        .map(invite_view)
        .collect();
    Ok(Json(json!({ "invites": invites })))
}

async fn revoke_invite(
    State(state): State<AppState>,
    caller: Caller,
    Path((slug, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state
        .meetings
        .hosted(&slug, caller.identity(), local(&caller))
        .await?;
    state.meetings.revoke_invite(&slug, &id).await?;
    state.meeting_events.invite_revoked(&slug, &id);
    audit(
        &state,
        &caller,
        "meeting.invite_revoke",
        &slug,
        json!({"invite": id}),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}
