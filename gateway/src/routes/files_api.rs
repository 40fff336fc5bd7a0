//! Conversation files over HTTP (`docs/messaging.md`, "Files (HTTP)"): upload the raw bytes,
//! download them as an attachment, and fetch a thumbnail. Members only; for anyone else a
//! conversation answers exactly like one that does not exist.

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::{Bytes, BytesMut};
use dure_collab::msg::layout::FilePart;
use dure_storage::StoreError;
use futures_util::StreamExt;
use serde::Deserialize;

use super::api::{ApiError, Caller};
use crate::error_code::ErrorCode;
use crate::messages::files::{clean_name, content_disposition, served_type};
use crate::messages::sniff::{Refusal, claimed_type};
use crate::messages::upload_gate::UploadBusy;
use crate::messages::{FileError, Files};
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        // The body is read by the handler, within `max_attachment_bytes`, once the caller is
        // known to be a member.
        .route("/api/conversations/{id}/files", post(upload))
        .route("/api/conversations/{id}/files/{file}", get(download))
        .route(
            "/api/conversations/{id}/files/{file}/thumbnail",
            get(thumbnail),
        )
}

/// One body for unknown conversations, conversations the caller is not in, and their files.
fn no_conversation() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        ErrorCode::NotFound,
        "no such conversation",
    )
}

fn no_file() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, "no such file")
}

fn too_large(max: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::TooLarge,
        format!("the file is larger than {max} bytes (max_attachment_bytes)"),
    )
}

fn store_error(e: StoreError) -> ApiError {
    match e {
        e @ (StoreError::Corrupt { .. } | StoreError::InvalidKey { .. }) => ApiError::internal(e),
        e => ApiError::unavailable(e),
    }
}

/// Maps a file error; `not_found` is the caller's to choose (conversation or file).
fn file_error(e: FileError, not_found: fn() -> ApiError) -> ApiError {
    match e {
        FileError::NotFound => not_found(),
        FileError::BadName(m) => ApiError::bad_request(m),
        FileError::Refused(Refusal::Mismatch(m)) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::TypeMismatch,
            m,
        ),
        FileError::Refused(Refusal::NotAllowed(m)) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::TypeNotAllowed,
            m,
        ),
        FileError::TooManyPixels(e) => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::TooLarge,
            format!("{e} (max_image_pixels)"),
        ),
        FileError::Store(e) => store_error(e),
    }
}

#[derive(Deserialize)]
struct UploadQuery {
    name: Option<String>,
}

/// The most buffer reserved for an upload before its bytes arrive.
const PREALLOCATE_MAX: usize = 1024 * 1024;

/// Reads the body, never holding more than `max` bytes of it; more is 413.
async fn read_body(headers: &HeaderMap, body: Body, max: usize) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        discard(body, max).await;
        return Err(too_large(max));
    }
    // A declared length is only a hint for the buffer, and a bounded one: chunked bodies
    // have none, a body may end early, and a client declaring the limit and sending nothing
    // must not hold that much memory.
    let hint = declared
        .map_or(0, |n| n as usize)
        .min(max)
        .min(PREALLOCATE_MAX);
    let mut buf = BytesMut::with_capacity(hint);
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|_| ApiError::bad_request("the upload broke off before its end"))?;
        if buf.len() + chunk.len() > max {
            drop(buf);
            discard(Body::from_stream(stream), max).await;
            return Err(too_large(max));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// Reads and drops up to `max` more bytes of a body that will be refused, for at most 2 s,
/// so the answer reaches a client that is still sending (closing with much input unread
/// makes the kernel answer with a reset, and the client sees a broken connection instead).
async fn discard(body: Body, max: usize) {
    let drain = async {
        let mut stream = body.into_data_stream();
        let mut read = 0usize;
        while read <= max {
            match stream.next().await {
                Some(Ok(chunk)) => read += chunk.len(),
                _ => break,
            }
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), drain).await;
}

async fn upload(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    query: Result<Query<UploadQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let files: &Files = &state.files;
    let user = &caller.identity().id;
    // Membership first: whoever is not a member learns nothing else, not even whether the
    // name would do.
    if let Err(e) = files.conversation_of(&id, user).await {
        discard(body, files.max_bytes).await;
        return Err(file_error(e, no_conversation));
    }
    let raw_name = match query {
        Ok(Query(UploadQuery { name: Some(n) })) => n,
        Ok(_) => {
            discard(body, files.max_bytes).await;
            return Err(ApiError::bad_request("the file name is missing (?name=)"));
        }
        Err(e) => {
            discard(body, files.max_bytes).await;
            return Err(ApiError::bad_request(format!(
                "the query is not valid: {e}"
            )));
        }
    };
    let name = match clean_name(&raw_name) {
        Ok(n) => n,
        Err(e) => {
            discard(body, files.max_bytes).await;
            return Err(file_error(e, no_conversation));
        }
    };
    let claimed = claimed_type(
        headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
    );
    // Counted while the body is received and checked: each one is held in memory.
    let _ticket = match files.uploads.enter(user) {
        Ok(t) => t,
        Err(busy) => {
            discard(body, files.max_bytes).await;
            let (status, code) = match busy {
                UploadBusy::User(_) => (StatusCode::TOO_MANY_REQUESTS, ErrorCode::RateLimited),
                UploadBusy::Server(_) => (StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Unavailable),
            };
            return Err(ApiError::new(status, code, busy.to_string()));
        }
    };
    let data = read_body(&headers, body, files.max_bytes).await?;
    let meta = files
        .upload(&id, user, &name, claimed.as_deref(), data)
        .await
        .map_err(|e| file_error(e, no_conversation))?;
    Ok((StatusCode::CREATED, Json(meta.attachment())).into_response())
}

/// The headers every file response carries: never sniffed, never cached outside the
/// member's browser, and sandboxed should a browser render it anyway.
fn guarded(content_type: &str, disposition: &str, data: Bytes) -> Response {
    let mut resp = (StatusCode::OK, data).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(content_type)
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    if let Ok(v) = HeaderValue::from_str(disposition) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox"),
    );
    resp
}

async fn download(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, file)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let files: &Files = &state.files;
    files
        .conversation_of(&id, &caller.identity().id)
        .await
        .map_err(|e| file_error(e, no_conversation))?;
    let stored = files
        .read(&id, &file, FilePart::Data)
        .await
        .map_err(|e| file_error(e, no_file))?;
    Ok(guarded(
        &served_type(&stored.meta.content_type),
        &content_disposition(&stored.meta.name),
        stored.data,
    ))
}

async fn thumbnail(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, file)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let files: &Files = &state.files;
    files
        .conversation_of(&id, &caller.identity().id)
        .await
        .map_err(|e| file_error(e, no_conversation))?;
    let stored = files
        .read(&id, &file, FilePart::Thumb)
        .await
        .map_err(|e| file_error(e, no_file))?;
    Ok(guarded("image/png", "inline", stored.data))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use axum::body::to_bytes;
    use dure_collab::msg::layout::{self, ConvMeta, Kind, Member, MemberRole};
    use dure_storage::PutCondition;
    use serde_json::Value;
    use tower_service::Service;

    const CONV: &str = "g0123456789abcdef0123456789abcdef";

    async fn state_with(config: Config, members: &[&str]) -> AppState {
        let state = AppState::for_tests(config).await;
        let meta = ConvMeta::new(
            CONV.to_owned(),
            Kind::Group,
            Some("t".into()),
            members
                .iter()
                .map(|m| Member {
                    user_id: (*m).to_owned(),
                    name: (*m).to_owned(),
                    role: MemberRole::Admin,
                    since: 0,
                })
                .collect(),
            "local",
            0,
        );
        layout::write_meta(state.files.store(), &meta, PutCondition::IfAbsent)
            .await
            .expect("meta");
        state
    }

    async fn call(
        state: &AppState,
        method: &str,
        uri: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> (StatusCode, HeaderMap, Bytes) {
        let mut router = super::super::router(state.clone());
        let mut req = axum::http::Request::builder()
            .method(method)
            .uri(uri)
            .header(header::HOST, "127.0.0.1:8080");
        if let Some(ct) = content_type {
            req = req.header(header::CONTENT_TYPE, ct);
        }
        let req = req.body(Body::from(body)).expect("request");
        let resp = router.call(req).await.expect("infallible");
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = to_bytes(resp.into_body(), usize::MAX).await.expect("body");
        (status, headers, body)
    }

    fn json(body: &Bytes) -> Value {
        serde_json::from_slice(body).expect("json")
    }

    fn png(width: u32, height: u32) -> Vec<u8> {
        let mut out = Vec::new();
        image::DynamicImage::new_rgb8(width, height)
            .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
            .expect("encode");
        out
    }

    #[tokio::test]
    async fn upload_download_and_thumbnail_with_their_headers() {
        let state = state_with(Config::test(), &["local"]).await;
        let files = format!("/api/conversations/{CONV}/files");
        let (status, _, body) = call(
            &state,
            "POST",
            &format!("{files}?name=%EB%B3%B4%EA%B3%A0.png"),
            Some("image/png"),
            png(640, 480),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body:?}");
        let v = json(&body);
        assert_eq!(v["name"], "보고.png");
        assert_eq!(v["type"], "image/png");
        assert_eq!(v["thumbnail"], true);
        let id = v["id"].as_str().expect("id");
        let (status, h, body) = call(&state, "GET", &format!("{files}/{id}"), None, vec![]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, Bytes::from(png(640, 480)));
        assert_eq!(h[header::CONTENT_TYPE], "image/png");
        assert_eq!(
            h[header::CONTENT_DISPOSITION],
            "attachment; filename=\"__.png\"; filename*=UTF-8''%EB%B3%B4%EA%B3%A0.png"
        );
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(h[header::CACHE_CONTROL], "private, no-store");
        assert_eq!(h[header::CONTENT_SECURITY_POLICY], "sandbox");
        let (status, h, body) = call(
            &state,
            "GET",
            &format!("{files}/{id}/thumbnail"),
            None,
            vec![],
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(h[header::CONTENT_TYPE], "image/png");
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        let thumb = image::load_from_memory(&body).expect("png");
        assert_eq!((thumb.width(), thumb.height()), (320, 240));
        // Text: no thumbnail, served with its charset.
        let (status, _, body) = call(
            &state,
            "POST",
            &format!("{files}?name=notes.txt"),
            None,
            b"hello".to_vec(),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
        let v = json(&body);
        assert_eq!(
            (v["type"].as_str(), v["thumbnail"].as_bool()),
            (Some("text/plain"), Some(false))
        );
        let id = v["id"].as_str().expect("id");
        let (_, h, _) = call(&state, "GET", &format!("{files}/{id}"), None, vec![]).await;
        assert_eq!(h[header::CONTENT_TYPE], "text/plain; charset=utf-8");
        let (status, _, body) = call(
            &state,
            "GET",
            &format!("{files}/{id}/thumbnail"),
            None,
            vec![],
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(json(&body)["error"], "not_found");
    }

    #[tokio::test]
    async fn refusals_carry_their_codes() {
        let mut config = Config::test();
        config.msg.max_attachment_bytes = 4096;
        config.msg.max_image_pixels = 10_000;
        let state = state_with(config, &["local"]).await;
        let files = format!("/api/conversations/{CONV}/files");
        let huge = {
            // A valid PNG whose header declares 101×100 pixels: over the 10,000 allowed.
            png(101, 100)
        };
        for (name, ct, body, status, code) in [
            (
                "x.png",
                Some("image/png"),
                b"<html></html>".to_vec(),
                415,
                "type_mismatch",
            ),
            (
                "x.pdf",
                Some("application/octet-stream"),
                png(2, 2),
                415,
                "type_mismatch",
            ),
            (
                "a.out",
                None,
                b"\x7fELF\x02\x01\x01\0\0\0\0\0".to_vec(),
                415,
                "type_not_allowed",
            ),
            (
                "x.png",
                Some("image/png"),
                vec![0x89; 4097],
                413,
                "too_large",
            ),
            ("x.png", Some("image/png"), huge, 413, "too_large"),
            ("", None, b"x".to_vec(), 400, "bad_request"),
            ("a%0Ab.txt", None, b"x".to_vec(), 400, "bad_request"),
        ] {
            let (got, _, resp) =
                call(&state, "POST", &format!("{files}?name={name}"), ct, body).await;
            assert_eq!(got.as_u16(), status, "{name}: {resp:?}");
            assert_eq!(json(&resp)["error"], code, "{name}");
        }
        let (got, _, _) = call(&state, "POST", &files, None, b"x".to_vec()).await;
        assert_eq!(got, StatusCode::BAD_REQUEST, "no name");
        // Nothing refused was stored.
        let left = state
            .files
            .store()
            .list(&layout::files_prefix(CONV))
            .await
            .expect("list");
        assert!(left.is_empty(), "{left:?}");
    }

    #[tokio::test]
    async fn non_members_and_unknown_ids_get_the_same_not_found() {
        // The local user is not among the members.
        let state = state_with(Config::test(), &["someone-else"]).await;
        let mut bodies = Vec::new();
        for (method, uri) in [
            (
                "POST",
                format!("/api/conversations/{CONV}/files?name=a.txt"),
            ),
            (
                "GET",
                format!("/api/conversations/{CONV}/files/f0123456789abcdef0123456789abcdef"),
            ),
            (
                "GET",
                format!(
                    "/api/conversations/{CONV}/files/f0123456789abcdef0123456789abcdef/thumbnail"
                ),
            ),
            (
                "POST",
                "/api/conversations/g00000000000000000000000000000000/files?name=a.txt".into(),
            ),
            ("GET", "/api/conversations/nope/files/nope".into()),
        ] {
            let (status, _, body) = call(&state, method, &uri, None, b"x".to_vec()).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{method} {uri}");
            bodies.push(body);
        }
        assert!(bodies.windows(2).all(|w| w[0] == w[1]), "{bodies:?}");
        // A member asking for a file that is not there, or by a malformed id.
        let state = state_with(Config::test(), &["local"]).await;
        for file in [
            "f0123456789abcdef0123456789abcdef",
            "..",
            "F0123456789ABCDEF0123456789ABCDEF",
        ] {
            let (status, _, body) = call(
                &state,
                "GET",
                &format!("/api/conversations/{CONV}/files/{file}"),
                None,
                vec![],
            )
            .await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{file}");
            assert_eq!(json(&body)["message"], "no such file");
        }
    }
}
