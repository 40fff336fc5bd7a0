//! The documents API: create, list, rename, share, revoke, trash, restore; and the people
//! directory for the sharing dialog. Every route checks the caller's role.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use dure_storage::DocId;
use serde::Deserialize;
use serde_json::{Value, json};

use super::api::{ApiError, Caller};
use crate::auth::Identity;
use crate::docs::catalog::{FindUser, now_ms};
use crate::docs::meta::clean_title;
use crate::docs::{DocMeta, Role, Share, ShareKind};
use crate::error_code::ErrorCode;
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/docs", get(list).post(create))
        .route("/api/docs/{id}", get(show).patch(rename).delete(trash))
        .route("/api/docs/{id}/restore", post(restore))
        .route("/api/docs/{id}/shares", post(share))
        .route("/api/docs/{id}/shares/org", delete(revoke_org))
        .route("/api/docs/{id}/shares/{kind}/{subject}", delete(revoke))
        .route("/api/users", get(users))
}

/// Metadata as the caller may see it: shares only for owners.
pub fn view(meta: &DocMeta, role: Role, retention_ms: u64) -> Value {
    let mut v = json!({
        "id": meta.id,
        "title": meta.title,
        "owner": meta.owner,
        "role": role,
        "created_at": rfc3339(meta.created_at),
        "updated_at": rfc3339(meta.updated_at),
        "deleted_at": meta.deleted_at.map(rfc3339),
        "purge_at": meta.deleted_at.map(|d| rfc3339(d + retention_ms)),
        "org_wide": meta.org_wide(),
    });
    if role == Role::Owner {
        v["shares"] = json!(meta.shares);
    }
    v
}

pub fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms))
        .to_string()
}

fn doc_id(id: &str) -> Result<DocId, ApiError> {
    id.parse().map_err(|_| ApiError::not_found())
}

/// The document and the caller's role, or 404 (unknown) / 403 (exists, no access).
fn access(state: &AppState, id: &DocId, who: &Identity) -> Result<(Arc<DocMeta>, Role), ApiError> {
    let meta = state.catalog.get(id).ok_or_else(ApiError::not_found)?;
    if meta.deleted_at.is_some() {
        return Err(ApiError::not_found());
    }
    match meta.role_of(who) {
        Some(role) => Ok((meta, role)),
        None => Err(ApiError::forbidden("you have no access to this document")),
    }
}

fn need(role: Role, at_least: Role) -> Result<(), ApiError> {
    if role >= at_least {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "this needs the {at_least:?} role; you are {role:?}"
        )))
    }
}

fn retention_ms(state: &AppState) -> u64 {
    state.config.trash_retention.as_millis() as u64
}

#[derive(Deserialize)]
struct CreateBody {
    #[serde(default)]
    title: String,
    /// An id chosen by the client (the laptop client creates documents offline and gives
    /// them an id then). Creating it again is idempotent for its owner (200 with what is
    /// stored); an id that is someone else's is 409.
    #[serde(default)]
    id: Option<String>,
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    body: Option<Json<CreateBody>>,
) -> Result<Response, ApiError> {
    let body = body.map(|b| b.0);
    let chosen = body.as_ref().and_then(|b| b.id.clone());
    let title =
        clean_title(&body.map(|b| b.title).unwrap_or_default()).map_err(ApiError::bad_request)?;
    if let Some(id) = chosen {
        return create_with_id(&state, &caller, &id, title).await;
    }
    let meta = state
        .catalog
        .create(
            caller.identity(),
            title,
            state.config.limits.max_docs_per_user,
        )
        .await?;
    caller
        .audit(&state, "create", &meta.id, json!({"title": meta.title}))
        .await;
    Ok((
        StatusCode::CREATED,
        Json(view(&meta, Role::Owner, retention_ms(&state))),
    )
        .into_response())
}

/// `POST /api/docs` with `id`: registers that id for the caller, or answers with the
/// document if the caller already owns it (a retry after a lost answer).
async fn create_with_id(
    state: &AppState,
    caller: &Caller,
    id: &str,
    title: String,
) -> Result<Response, ApiError> {
    let doc: DocId = id.parse().map_err(|_| {
        ApiError::bad_request("id must be 1-128 characters of A-Z a-z 0-9 _ -".to_owned())
    })?;
    let who = caller.identity();
    if let Some(meta) = state.catalog.get(&doc) {
        if meta.owner.id == who.id && meta.deleted_at.is_none() {
            return Ok((
                StatusCode::OK,
                Json(view(&meta, Role::Owner, retention_ms(state))),
            )
                .into_response());
        }
        return Err(ApiError::conflict("a document with this id exists"));
    }
    let meta = state
        .catalog
        .register(&doc, who, state.config.limits.max_docs_per_user)
        .await?;
    if meta.owner.id != who.id {
        return Err(ApiError::conflict("a document with this id exists"));
    }
    let meta = if title.is_empty() || meta.title == title {
        meta
    } else {
        state
            .catalog
            .update(&doc, |m| {
                m.title = title.clone();
                Ok(())
            })
            .await?
    };
    caller
        .audit(state, "create", &meta.id, json!({"title": meta.title}))
        .await;
    Ok((
        StatusCode::CREATED,
        Json(view(&meta, Role::Owner, retention_ms(state))),
    )
        .into_response())
}

#[derive(Deserialize)]
struct ListQuery {
    scope: Option<String>,
    q: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let who = caller.identity();
    let scope = q.scope.as_deref().unwrap_or("all");
    let needle =
        q.q.as_deref()
            .map(str::to_lowercase)
            .filter(|s| !s.is_empty());
    let retention = retention_ms(&state);
    let mut docs: Vec<(Arc<DocMeta>, Role)> = Vec::new();
    for meta in state.catalog.all() {
        if let Some(n) = &needle
            && !meta.title.to_lowercase().contains(n)
        {
            continue;
        }
        let keep = match scope {
            "trash" => {
                meta.deleted_at.is_some() && meta.role_ignoring_trash(who) == Some(Role::Owner)
            }
            _ if meta.deleted_at.is_some() => false,
            "all" => meta.role_of(who).is_some(),
            "mine" => meta.owner.id == who.id,
            "shared" => meta.shared_with_user_or_group(who),
            "org" => meta.org_wide(),
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown scope {other:?}: expected all, mine, shared, org or trash"
                )));
            }
        };
        if keep && let Some(role) = meta.role_ignoring_trash(who) {
            docs.push((meta, role));
        }
    }
    docs.sort_by(|a, b| {
        b.0.updated_at
            .cmp(&a.0.updated_at)
            .then(a.0.id.cmp(&b.0.id))
    });
    let docs: Vec<Value> = docs.iter().map(|(m, r)| view(m, *r, retention)).collect();
    Ok(Json(json!({ "docs": docs })))
}

async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = doc_id(&id)?;
    let (meta, role) = access(&state, &id, caller.identity())?;
    Ok(Json(view(&meta, role, retention_ms(&state))))
}

#[derive(Deserialize)]
struct RenameBody {
    title: String,
}

async fn rename(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(body): Json<RenameBody>,
) -> Result<Json<Value>, ApiError> {
    let id = doc_id(&id)?;
    let (_, role) = access(&state, &id, caller.identity())?;
    need(role, Role::Editor)?;
    let title = clean_title(&body.title).map_err(ApiError::bad_request)?;
    let t = title.clone();
    let meta = state
        .catalog
        .update(&id, move |m| {
            m.title = t.clone();
            m.updated_at = now_ms();
            Ok(())
        })
        .await?;
    caller
        .audit(&state, "rename", id.as_str(), json!({"title": title}))
        .await;
    Ok(Json(view(&meta, role, retention_ms(&state))))
}

#[derive(Deserialize)]
struct ShareBody {
    kind: ShareKind,
    #[serde(default)]
    id: Option<String>,
    role: Role,
}

async fn share(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(body): Json<ShareBody>,
) -> Result<Json<Value>, ApiError> {
    let id = doc_id(&id)?;
    let (meta, role) = access(&state, &id, caller.identity())?;
    need(role, Role::Owner)?;
    let new = match body.kind {
        ShareKind::User => {
            let who = body.id.as_deref().map(str::trim).unwrap_or("");
            let user = state.catalog.find_user(who).map_err(|e| match e {
                FindUser::Unknown => ApiError::new(
                    StatusCode::NOT_FOUND,
                    ErrorCode::UnknownUser,
                    format!(
                        "nobody with the id or verified e-mail address {who:?} has signed in yet; they must sign in once"
                    ),
                ),
                FindUser::Ambiguous(_) => ApiError::new(
                    StatusCode::CONFLICT,
                    ErrorCode::AmbiguousUser,
                    format!("{e} ({who:?})"),
                ),
            })?;
            if user.id == meta.owner.id {
                return Err(ApiError::bad_request("the owner already has every right"));
            }
            Share {
                kind: ShareKind::User,
                id: Some(user.id),
                name: Some(user.name),
                email: user.email,
                role: body.role,
            }
        }
        ShareKind::Group => {
            let g = body.id.as_deref().map(str::trim).unwrap_or("");
            if g.is_empty() || g.len() > 256 || g.chars().any(char::is_control) {
                return Err(ApiError::bad_request("a group share needs a group name"));
            }
            Share {
                kind: ShareKind::Group,
                id: Some(g.to_owned()),
                name: None,
                email: None,
                role: body.role,
            }
        }
        ShareKind::Org => {
            if body.role == Role::Owner {
                return Err(ApiError::bad_request(
                    "the whole organisation cannot own a document",
                ));
            }
            Share {
                kind: ShareKind::Org,
                id: None,
                name: None,
                email: None,
                role: body.role,
            }
        }
    };
    let detail = json!({"kind": new.kind, "id": new.id, "role": new.role});
    let meta = state
        .catalog
        .update(&id, move |m| {
            m.shares.retain(|s| !(s.kind == new.kind && s.id == new.id));
            m.shares.push(new.clone());
            Ok(())
        })
        .await?;
    caller.audit(&state, "share", id.as_str(), detail).await;
    Ok(Json(view(&meta, role, retention_ms(&state))))
}

async fn revoke_org(
    state: State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    revoke_share(state, caller, id, ShareKind::Org, None).await
}

async fn revoke(
    state: State<AppState>,
    caller: Caller,
    Path((id, kind, subject)): Path<(String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    let kind = match kind.as_str() {
        "user" => ShareKind::User,
        "group" => ShareKind::Group,
        _ => return Err(ApiError::bad_request("kind must be user, group or org")),
    };
    revoke_share(state, caller, id, kind, Some(subject)).await
}

async fn revoke_share(
    State(state): State<AppState>,
    caller: Caller,
    id: String,
    kind: ShareKind,
    subject: Option<String>,
) -> Result<Json<Value>, ApiError> {
    let id = doc_id(&id)?;
    let (meta, role) = access(&state, &id, caller.identity())?;
    need(role, Role::Owner)?;
    if !meta
        .shares
        .iter()
        .any(|s| s.kind == kind && s.id == subject)
    {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            "no such share",
        ));
    }
    let detail = json!({"kind": kind, "id": subject});
    let meta = state
        .catalog
        .update(&id, move |m| {
            m.shares.retain(|s| !(s.kind == kind && s.id == subject));
            Ok(())
        })
        .await?;
    caller.audit(&state, "revoke", id.as_str(), detail).await;
    Ok(Json(view(&meta, role, retention_ms(&state))))
}

async fn trash(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = doc_id(&id)?;
    let (_, role) = access(&state, &id, caller.identity())?;
    need(role, Role::Owner)?;
    let meta = state
        .catalog
        .update(&id, |m| {
            m.deleted_at = Some(now_ms());
            Ok(())
        })
        .await?;
    caller.audit(&state, "delete", id.as_str(), json!({})).await;
    Ok(Json(view(&meta, role, retention_ms(&state))))
}

async fn restore(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = doc_id(&id)?;
    let meta = state.catalog.get(&id).ok_or_else(ApiError::not_found)?;
    if meta.deleted_at.is_none() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::Conflict,
            "the document is not in the trash",
        ));
    }
    if meta.role_ignoring_trash(caller.identity()) != Some(Role::Owner) {
        return Err(ApiError::not_found());
    }
    let meta = state
        .catalog
        .update(&id, |m| {
            m.deleted_at = None;
            Ok(())
        })
        .await?;
    caller
        .audit(&state, "restore", id.as_str(), json!({}))
        .await;
    Ok(Json(view(&meta, Role::Owner, retention_ms(&state))))
}

#[derive(Deserialize)]
struct UsersQuery {
    q: Option<String>,
}

/// Shortest people search: the directory is found by a name or address someone knows, not
/// listed whole.
const USER_SEARCH_MIN_CHARS: usize = 2;
/// Longest people search.
const USER_SEARCH_MAX_CHARS: usize = 256;
/// Most people one search answers.
const USER_SEARCH_RESULTS: usize = 20;

async fn users(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<UsersQuery>,
) -> Result<Response, ApiError> {
    let q = q.q.as_deref().map(str::trim).unwrap_or("");
    let chars = q.chars().count();
    if !(USER_SEARCH_MIN_CHARS..=USER_SEARCH_MAX_CHARS).contains(&chars) {
        return Err(ApiError::bad_request(format!(
            "search people with `q`: {USER_SEARCH_MIN_CHARS} to {USER_SEARCH_MAX_CHARS} characters of a name, e-mail address or id"
        )));
    }
    if let Err(wait) = state.auth.user_search_limit.check(&caller.identity().id) {
        let mut resp = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::RateLimited,
            format!(
                "too many people searches; try again in {} s (user_search_rate_per_minute)",
                wait.as_secs()
            ),
        )
        .into_response();
        resp.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(wait.as_secs()));
        return Ok(resp);
    }
    let users: Vec<Value> = state
        .catalog
        .search_users(q, USER_SEARCH_RESULTS)
        .into_iter()
        .map(|u| json!({"id": u.id, "name": u.name, "email": u.email.filter(|_| u.email_verified)}))
        .collect();
    Ok(Json(json!({ "users": users })).into_response())
}
