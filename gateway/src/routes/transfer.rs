//! Export of a stored document as Markdown, HTML or plain text, and import of a Markdown
//! file as a new document. Both work on the rich-text fragment the browser editor uses;
//! the desktop client and scripts use the same routes.

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
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
use crate::error_code::ErrorCode;
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/docs/{id}/export", get(export))
        // The body is read by the handler, within `import_max_bytes`, once the import may run.
        .route("/api/docs/import", post(import))
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
    // One catalog: a document a plain Yjs client made is registered on first use, so what
    // is not in the catalog does not exist (404, as in the documents API).
    let meta = match state.catalog.get(&id) {
        Some(m) if m.deleted_at.is_none() => m,
        _ => return Err(ApiError::not_found()),
    };
    if meta.role_of(caller.identity()).is_none() {
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
    let title = meta.title.clone();
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

/// Reads at most `max` bytes of the request body; more is 413 before it is buffered.
async fn read_body(headers: &HeaderMap, body: Body, max: usize) -> Result<Vec<u8>, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::TooLarge,
            format!("the Markdown file is larger than {max} bytes (import_max_bytes)"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        discard(body, max).await;
        return Err(too_large());
    }
    // Without a length (chunked), the limit cuts the stream; any read error is reported
    // the same way, since the body did not arrive whole.
    axum::body::to_bytes(body, max)
        .await
        .map(|b| b.to_vec())
        .map_err(|_| too_large())
}

/// Reads and drops up to `max` bytes of a body that will be refused, for at most 2 s, so the
/// 413 reaches a client that is still sending: closing with much input unread makes the
/// kernel answer with a reset, and the client sees a broken connection instead of the answer.
async fn discard(body: Body, max: usize) {
    use futures_util::StreamExt;
    let drain = async {
        let mut stream = body.into_data_stream();
        let mut read = 0usize;
        while read < max {
            match stream.next().await {
                Some(Ok(chunk)) => read += chunk.len(),
                _ => break,
            }
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), drain).await;
}

fn import_refused(e: &richtext::ImportError) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::ImportRefused,
        format!("cannot import this Markdown: {e}"),
    )
}

async fn import(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ImportQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let limits = &state.config.limits;
    // Before the body is read: a refused import buffers nothing.
    let mut ticket = state
        .imports
        .try_begin(&caller.identity().id)
        .map_err(|e| {
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::ImportBusy,
                e.to_string(),
            )
        })?;
    state
        .catalog
        .check_quota(caller.identity(), limits.max_docs_per_user)?;
    let body = read_body(&headers, body, limits.import_max_bytes).await?;
    let bytes = body.len();
    let text = String::from_utf8(body)
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
    // Parsing a few MiB takes a good fraction of a second: off the async threads. The
    // ticket goes with the parse, so it is held until the parse ends even if the client
    // leaves.
    ticket.start_parse().map_err(|e| {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::ImportBusy,
            e.to_string(),
        )
    })?;
    let import_limits = limits.import;
    let update = tokio::task::spawn_blocking(move || {
        let _ticket = ticket;
        richtext::from_markdown_limited(&text, &import_limits)
    })
    .await
    .map_err(|e| ApiError::internal(format!("import task failed: {e}")))?
    .map_err(|e| import_refused(&e))?;
    let max_doc = state.config.rooms.max_doc_bytes;
    if update.len() as u64 > max_doc {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::TooLarge,
            format!(
                "the imported document would take {} bytes, more than the {max_doc} allowed (max_doc_bytes)",
                update.len()
            ),
        ));
    }
    let meta = state
        .catalog
        .create(caller.identity(), title, limits.max_docs_per_user)
        .await?;
    let id: DocId = meta
        .id
        .parse()
        .map_err(|_| ApiError::internal("the catalog made an invalid document id"))?;
    // The content is stored before anyone can open the document: the first log entry.
    let stored = state
        .rooms
        .docs()
        .append(
            &id,
            0,
            &dure_storage::WriterId::random(),
            &[bytes::Bytes::from(update)],
        )
        .await;
    let failure = match stored {
        Ok(dure_storage::Appended::Stored { .. }) => None,
        Ok(other) => Some(format!("the new document already had content ({other:?})")),
        Err(e) => Some(e.to_string()),
    };
    if let Some(failure) = failure {
        let _ = state.catalog.remove(&id).await;
        return Err(ApiError::unavailable(format!("store: {failure}")));
    }
    caller
        .audit(
            &state,
            "create",
            id.as_str(),
            json!({"title": meta.title, "imported": "markdown", "bytes": bytes}),
        )
        .await;
    let retention = state.config.trash_retention.as_millis() as u64;
    Ok((
        StatusCode::CREATED,
        Json(view(&meta, Role::Owner, retention)),
    )
        .into_response())
}
