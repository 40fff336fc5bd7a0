//! Export of a stored document as Markdown, HTML or plain text, and import of a Markdown
//! file as a new document. Both work on the rich-text fragment the browser editor uses;
//! the desktop client and scripts use the same routes.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use dure_collab::richtext;
use dure_storage::DocId;
use serde::Deserialize;
use serde_json::json;

use super::api::{ApiError, Caller};
use super::docs_api::view;
use crate::docs::Role;
use crate::docs::meta::clean_title;
use crate::state::AppState;

/// Largest Markdown file accepted for import.
const MAX_IMPORT_BYTES: usize = 4 * 1024 * 1024;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/docs/{id}/export", get(export))
        .route(
            "/api/docs/import",
            post(import).layer(axum::extract::DefaultBodyLimit::max(MAX_IMPORT_BYTES)),
        )
}

#[derive(Deserialize)]
struct ExportQuery {
    format: Option<String>,
}

async fn export(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<ExportQuery>,
) -> Result<Response, ApiError> {
    let id: DocId = id.parse().map_err(|_| ApiError::not_found())?;
    let meta = match state.catalog.get(&id) {
        Some(m) if m.deleted_at.is_none() => Some(m),
        Some(_) => return Err(ApiError::not_found()),
        // Local mode: documents made by a plain Yjs client have no metadata.
        None if state.auth.is_local() => None,
        None => return Err(ApiError::not_found()),
    };
    if let Some(m) = &meta
        && m.role_of(caller.identity()).is_none()
    {
        return Err(ApiError::forbidden("you have no access to this document"));
    }
    let (ext, mime): (&str, &str) = match q.format.as_deref().unwrap_or("md") {
        "md" | "markdown" => ("md", "text/markdown; charset=utf-8"),
        "html" => ("html", "text/html; charset=utf-8"),
        "txt" | "text" => ("txt", "text/plain; charset=utf-8"),
        other => {
            return Err(ApiError::bad_request(format!(
                "unknown format {other:?}: expected md, html or txt"
            )));
        }
    };
    let doc = state
        .rooms
        .stored_doc(&id)
        .await
        .map_err(ApiError::unavailable)?;
    let title = meta.as_ref().map(|m| m.title.clone()).unwrap_or_default();
    let body = match ext {
        "md" => richtext::to_markdown(&doc),
        "html" => {
            let escaped = title
                .replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;");
            format!(
                "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{escaped}</title></head><body>\n{}\n</body></html>\n",
                richtext::to_html(&doc)
            )
        }
        _ => richtext::to_text(&doc),
    };
    let filename = download_name(
        if title.is_empty() {
            id.as_str()
        } else {
            &title
        },
        ext,
    );
    let mut resp = (StatusCode::OK, body).into_response();
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    if let Ok(v) = HeaderValue::from_str(&filename) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

/// `attachment; filename="…"; filename*=UTF-8''…` (RFC 6266), the ASCII fallback without
/// quotes or control characters.
fn download_name(title: &str, ext: &str) -> String {
    let ascii: String = title
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || " -_.,()".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::new();
    for b in format!("{title}.{ext}").bytes() {
        if b.is_ascii_alphanumeric() || b"-_.".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!(
        "attachment; filename=\"{}.{ext}\"; filename*=UTF-8''{encoded}",
        ascii.trim()
    )
}

#[derive(Deserialize)]
struct ImportQuery {
    title: Option<String>,
}

async fn import(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ImportQuery>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::bad_request("the Markdown file is not UTF-8 text"))?;
    let title = match q.title.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        Some(t) => t.to_owned(),
        // Untitled: the file's first heading names it.
        None => text
            .lines()
            .find_map(|l| l.trim_start().strip_prefix("# "))
            .map(|t| {
                t.trim()
                    .chars()
                    .take(crate::docs::meta::MAX_TITLE_CHARS)
                    .collect()
            })
            .unwrap_or_default(),
    };
    let title = clean_title(&title).map_err(ApiError::bad_request)?;
    // Parsing a few MiB takes a good fraction of a second: off the async threads.
    let owned = text.to_owned();
    let update = tokio::task::spawn_blocking(move || richtext::from_markdown(&owned))
        .await
        .map_err(|e| ApiError::unavailable(format!("import failed: {e}")))?
        .map_err(|e| ApiError::bad_request(format!("cannot import this Markdown: {e}")))?;
    let meta = state.catalog.create(caller.identity(), title).await?;
    let id: DocId = meta
        .id
        .parse()
        .map_err(|_| ApiError::unavailable("bad id"))?;
    // The content is stored before anyone can open the document: the first log entry.
    if let Err(e) = state
        .rooms
        .docs()
        .append(&id, 0, &[bytes::Bytes::from(update)])
        .await
    {
        let _ = state.catalog.remove(&id).await;
        return Err(ApiError::unavailable(format!("store: {e}")));
    }
    caller
        .audit(
            &state,
            "create",
            id.as_str(),
            json!({"title": meta.title, "imported": "markdown", "bytes": body.len()}),
        )
        .await;
    let retention = state.config.trash_retention.as_millis() as u64;
    Ok((
        StatusCode::CREATED,
        Json(view(&meta, Role::Owner, retention)),
    )
        .into_response())
}
