//! Browser sign-in: `/auth/login`, `/auth/callback`, `/auth/logout`; and `/api/me`,
//! `/api/config`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use tracing::info;

use super::api::{ApiError, Caller};
use crate::auth::session::SessionKey;
use crate::auth::{cookie_value, session_cookie};
use crate::state::AppState;

/// Binds a started sign-in to the browser that started it.
const LOGIN_COOKIE: &str = "dure_login";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/auth/login", get(login))
        .route("/auth/callback", get(callback))
        .route("/auth/logout", post(logout))
        .route("/api/me", get(me))
        .route("/api/config", get(config))
}

/// Only same-site paths: an open redirect after sign-in would hand phishing a trusted link.
fn safe_return_to(v: Option<&String>) -> String {
    match v {
        Some(p) if p.starts_with('/') && !p.starts_with("//") && !p.contains('\\') => p.clone(),
        _ => "/".into(),
    }
}

fn error_page(status: StatusCode, message: &str) -> Response {
    let escaped = message
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    (
        status,
        Html(format!(
            "<!doctype html><meta charset=utf-8><title>Sign-in failed — Dure</title>\
             <body style=\"font-family:system-ui;max-width:36rem;margin:4rem auto\">\
             <h1>Sign-in failed</h1><p>{escaped}</p><p><a href=\"/auth/login\">Try again</a></p>"
        )),
    )
        .into_response()
}

async fn login(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(oidc) = &state.auth.oidc else {
        return (StatusCode::NOT_FOUND, "local mode: there is no sign-in\n").into_response();
    };
    let return_to = safe_return_to(q.get("return_to"));
    let hint = q
        .get("login_hint")
        .map(String::as_str)
        .filter(|h| !h.is_empty() && h.len() <= 256 && !h.chars().any(char::is_control));
    match oidc.start_login(return_to, hint).await {
        Ok((url, csrf)) => {
            let cookie = cookie::Cookie::build((LOGIN_COOKIE, csrf))
                .http_only(true)
                .secure(state.auth.secure_cookies)
                .same_site(cookie::SameSite::Lax)
                .path("/auth")
                .max_age(cookie::time::Duration::minutes(10))
                .build()
                .to_string();
            let mut resp = Redirect::to(&url).into_response();
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                resp.headers_mut().append(header::SET_COOKIE, v);
            }
            resp.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            resp
        }
        Err(e) => error_page(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
}

async fn callback(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(oidc) = &state.auth.oidc else {
        return (StatusCode::NOT_FOUND, "local mode: there is no sign-in\n").into_response();
    };
    if let Some(err) = q.get("error") {
        let desc = q.get("error_description").map(String::as_str).unwrap_or("");
        dure_collab::warn_limited!(error = %err, "the identity provider refused the sign-in");
        return error_page(
            StatusCode::BAD_REQUEST,
            &format!("The identity provider said: {err} {desc}"),
        );
    }
    let (Some(code), Some(csrf)) = (q.get("code"), q.get("state")) else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "The sign-in response is missing its code or state.",
        );
    };
    let cookie_state = cookie_value(&headers, LOGIN_COOKIE);
    let signed = match oidc.finish_login(code, csrf, cookie_state.as_deref()).await {
        Ok(s) => s,
        Err(e) => {
            dure_collab::warn_limited!(error = %e, "sign-in refused");
            return error_page(StatusCode::BAD_REQUEST, &e.to_string());
        }
    };
    let Some(sessions) = &state.auth.sessions else {
        return error_page(StatusCode::INTERNAL_SERVER_ERROR, "sessions unavailable");
    };
    let (cookie, _key, record) = match sessions.create(&signed).await {
        Ok(s) => s,
        Err(e) => return error_page(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    };
    state.catalog.saw_user(&record.identity).await;
    info!(user = %record.identity.id, "signed in");
    state
        .audit
        .record(
            "sign_in",
            &record.identity,
            None,
            Some(peer.ip().to_string()),
            json!({}),
        )
        .await;
    let max_age = Duration::from_secs(record.ends_at.saturating_sub(record.created_at));
    let mut resp = Redirect::to(&signed.return_to).into_response();
    for c in [
        state.auth.cookie_header(&cookie, max_age),
        // The one-time login state is spent.
        format!("{LOGIN_COOKIE}=; Path=/auth; Max-Age=0; HttpOnly; SameSite=Lax"),
    ] {
        if let Ok(v) = HeaderValue::from_str(&c) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

async fn logout(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let (Some(oidc), Some(sessions)) = (&state.auth.oidc, &state.auth.sessions) else {
        return (StatusCode::NOT_FOUND, "local mode: there is no sign-out\n").into_response();
    };
    // Cross-site sign-out is a nuisance attack: only from our own pages.
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    if !origin.is_some_and(|o| state.auth.origin_allowed(o)) {
        return ApiError::forbidden("sign-out must come from the app's own origin").into_response();
    }
    let mut redirect = None;
    if let Some(cookie) = session_cookie(&headers) {
        let key = SessionKey::of_cookie(&cookie);
        if let Some(record) = sessions.end(&key).await {
            state.auth.changes.session_ended(&key);
            info!(user = %record.identity.id, "signed out");
            state
                .audit
                .record(
                    "sign_out",
                    &record.identity,
                    None,
                    Some(peer.ip().to_string()),
                    json!({}),
                )
                .await;
            redirect = oidc.end_session_url(
                record.id_token.as_deref(),
                &format!("{}/", state.auth.public_url),
            );
        }
    }
    let mut resp = Json(json!({ "redirect": redirect })).into_response();
    let clear = format!(
        "{}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax{}",
        crate::auth::session::COOKIE,
        if state.auth.secure_cookies {
            "; Secure"
        } else {
            ""
        }
    );
    if let Ok(v) = HeaderValue::from_str(&clear) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

async fn me(State(state): State<AppState>, caller: Caller) -> Json<serde_json::Value> {
    let id = caller.identity();
    Json(json!({
        "id": id.id,
        "name": id.name,
        "email": id.email,
        "groups": id.groups,
        "admin": id.admin,
        "mode": if state.auth.is_local() { "local" } else { "oidc" },
    }))
}

async fn config(State(state): State<AppState>) -> Json<serde_json::Value> {
    let local = state.auth.is_local();
    Json(json!({
        "mode": if local { "local" } else { "oidc" },
        "login": if local { None } else { Some("/auth/login") },
    }))
}
