//! The browser app (`clients/web`), embedded in the binary: `index.html` for the app's pages
//! (any GET path that is not an API, auth, socket or operations path and not a file), the
//! hashed assets with year-long immutable caching, and a strict Content-Security-Policy.
//!
//! The bundle is the committed `clients/web/dist`, so building `dure` needs no Node.js;
//! `clients/web/check-bundle.sh` checks that it matches the sources. rust-embed embeds it in
//! release builds (and reads the same folder from disk in debug builds, so a rebuilt bundle
//! shows without recompiling) and gives each file's SHA-256 for ETags.

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rust_embed::RustEmbed;

use crate::error_code::ErrorCode;
use crate::state::AppState;

#[derive(RustEmbed)]
#[folder = "../clients/web/dist/"]
struct Bundle;

/// Paths owned by the server, never answered with the app.
const RESERVED: [&str; 6] = ["api", "auth", "ws", "healthz", "readyz", "metrics"];

/// Hashed assets never change under one name.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// Everything else (index.html, sw.js, favicon) is revalidated on each use (ETag).
const REVALIDATE: &str = "no-cache";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        // A meeting link opens the app for every slug, existing or not (the page asks the
        // API or the socket, which decide who may see what).
        .route("/m/{slug}", get(index))
        .fallback(fallback)
}

async fn index(headers: HeaderMap) -> Response {
    serve_index(&headers)
}

async fn fallback(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let path = uri.path();
    let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
    if RESERVED.contains(&first) {
        return not_found(first == "api");
    }
    if method != Method::GET && method != Method::HEAD {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, "GET, HEAD")],
        )
            .into_response();
    }
    let name = path.trim_start_matches('/');
    if name == "index.html" {
        return serve_index(&headers);
    }
    if let Some(file) = Bundle::get(name) {
        let cache = if name.starts_with("assets/") {
            IMMUTABLE
        } else {
            REVALIDATE
        };
        return serve_file(&headers, name, file, cache);
    }
    // A missing file (it has an extension) is a 404, never the app: the HTML would be taken
    // for a script or style, and a service worker could cache it under the asset's name.
    let last = name.rsplit('/').next().unwrap_or("");
    if last.contains('.') {
        return not_found(false);
    }
    serve_index(&headers)
}

fn serve_index(headers: &HeaderMap) -> Response {
    let Some(file) = Bundle::get("index.html") else {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "the browser app is missing from this build (clients/web/dist)\n",
        )
            .into_response();
    };
    let mut res = serve_file(headers, "index.html", file, REVALIDATE);
    let h = res.headers_mut();
    if let Ok(csp) = HeaderValue::from_str(&content_security_policy(headers)) {
        h.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    res
}

/// Only this server: scripts and styles from the bundle (style attributes are allowed for
/// the editor's caret colours and table widths), the API and document sockets on the same
/// host, no frames, no plugins.
fn content_security_policy(headers: &HeaderMap) -> String {
    // 'self' covers ws(s) to the same host in CSP 3, but not in every browser yet: name the
    // host explicitly. The Host header only affects the answer to this one request.
    let sockets = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .map(|h| format!(" ws://{h} wss://{h}"))
        .unwrap_or_default();
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; style-src-attr 'unsafe-inline'; \
         img-src 'self' data: blob:; font-src 'self'; connect-src 'self'{sockets}; \
         worker-src 'self'; manifest-src 'self'; media-src 'self' blob:; object-src 'none'; \
         base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
}

fn serve_file(
    headers: &HeaderMap,
    name: &str,
    file: rust_embed::EmbeddedFile,
    cache: &'static str,
) -> Response {
    let etag = format!("\"{}\"", hex(&file.metadata.sha256_hash()[..16]));
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let status = if fresh {
        StatusCode::NOT_MODIFIED
    } else {
        StatusCode::OK
    };
    let body = if fresh {
        Body::empty()
    } else {
        Body::from(file.data)
    };
    let mut res = (status, body).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(name)),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    res
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "webp" => "image/webp",
        "woff2" => "font/woff2",
        "json" | "map" => "application/json",
        "webmanifest" => "application/manifest+json",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn not_found(json: bool) -> Response {
    if json {
        (
            StatusCode::NOT_FOUND,
            axum::Json(serde_json::json!({"error": ErrorCode::NotFound.as_str(), "message": "No such endpoint."})),
        )
            .into_response()
    } else {
        (StatusCode::NOT_FOUND, "not found\n").into_response()
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn the_bundle_has_an_index_whose_assets_are_embedded() {
        let index = Bundle::get("index.html").expect("index.html embedded");
        let html = String::from_utf8_lossy(&index.data).into_owned();
        let referenced: Vec<&str> = html
            .split('"')
            .filter(|s| s.starts_with("/assets/"))
            .collect();
        assert!(
            referenced.iter().any(|a| a.ends_with(".js")),
            "index.html loads no script: {html}"
        );
        for a in referenced {
            assert!(Bundle::get(&a[1..]).is_some(), "{a} is not embedded");
        }
        assert!(Bundle::get("sw.js").is_some());
    }

    #[test]
    fn csp_names_the_socket_host_and_refuses_odd_hosts() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("dure.example:8080"));
        let csp = content_security_policy(&h);
        assert!(csp.contains("connect-src 'self' ws://dure.example:8080 wss://dure.example:8080;"));
        assert!(csp.contains("script-src 'self';"));
        h.insert(header::HOST, HeaderValue::from_static("evil; script-src *"));
        assert!(content_security_policy(&h).contains("connect-src 'self';"));
    }

    #[test]
    fn content_types() {
        assert_eq!(
            content_type("assets/index-abc.js"),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("favicon.svg"), "image/svg+xml");
    }
}
