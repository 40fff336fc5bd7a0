//! Browser sign-in: `/auth/login`, `/auth/callback`, `/auth/logout`; and `/api/me`,
//! `/api/config`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use tracing::info;

use super::api::{ApiError, Caller};
use crate::auth::oidc::{LOGIN_TTL, OidcError};
use crate::auth::session::SessionKey;
use crate::auth::{cookie_value, session_cookie};
use crate::client_addr::ClientAddr;
use crate::state::AppState;

/// Binds a started sign-in to the browser that started it: it holds the sign-in's state,
/// PKCE verifier, nonce and return address, sealed with the server's key.
const LOGIN_COOKIE: &str = "dure_login";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/auth/login", get(login))
        .route("/auth/callback", get(callback))
        .route("/auth/logout", post(logout))
        .route("/api/me", get(me))
        .route("/api/config", get(config))
}

/// Where to send the browser after sign-in: `return_to` resolved against `public_url` the way
/// a browser resolves a `Location` (WHATWG URL rules: tabs and newlines dropped, a backslash read
/// as `/` in http(s) URLs), kept only when it stays on Dure's own origin, and answered as an
/// absolute URL so that no browser can read it as another host (`/\t/evil.example` is
/// `//evil.example` to a browser). Anything else signs in to the home page: an open redirect
/// after sign-in would hand phishing a trusted link.
pub fn safe_return_to(public_url: &str, v: Option<&str>) -> String {
    let home = format!("{}/", public_url.trim_end_matches('/'));
    let Ok(base) = url::Url::parse(&home) else {
        return "/".into();
    };
    let Some(raw) = v.filter(|r| !r.is_empty() && r.len() <= MAX_RETURN_TO) else {
        return base.into();
    };
    match base.join(raw) {
        Ok(target) if target.origin() == base.origin() && target.username().is_empty() => {
            target.into()
        }
        _ => base.into(),
    }
}

/// Longest `return_to` kept (a document link with a query is far shorter; it travels in the
/// login cookie, which browsers keep only up to 4 KiB).
const MAX_RETURN_TO: usize = 1024;

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
    client: ClientAddr,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(oidc) = &state.auth.oidc else {
        return (StatusCode::NOT_FOUND, "local mode: there is no sign-in\n").into_response();
    };
    // Starting a sign-in costs the server nothing it keeps, but each one is a page and a
    // provider round trip: one address gets a generous budget, not an unbounded one.
    if let Some(ip) = client.0
        && let Err(wait) = state.auth.login_limit.check(&rate_key(ip))
    {
        let mut resp = error_page(
            StatusCode::TOO_MANY_REQUESTS,
            &format!(
                "Too many sign-ins were started from your address. Wait {} seconds and try again.",
                wait.as_secs()
            ),
        );
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(wait.as_secs()));
        return resp;
    }
    let return_to = safe_return_to(
        &state.auth.public_url,
        q.get("return_to").map(String::as_str),
    );
    let hint = q
        .get("login_hint")
        .map(String::as_str)
        .filter(|h| !h.is_empty() && h.len() <= 256 && !h.chars().any(char::is_control));
    match oidc.start_login(return_to, hint).await {
        Ok((url, sealed)) => {
            let cookie = cookie::Cookie::build((LOGIN_COOKIE, sealed))
                .http_only(true)
                .secure(state.auth.secure_cookies)
                .same_site(cookie::SameSite::Lax)
                .path("/auth")
                .max_age(cookie::time::Duration::seconds(
                    i64::try_from(LOGIN_TTL.as_secs()).unwrap_or(600),
                ))
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
        // The detail (the provider's address, the error chain) goes to the log, not the page.
        Err(e @ OidcError::Unreachable(_)) => {
            dure_collab::warn_limited!(error = %e, "sign-in could not start");
            error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "The identity provider is not answering right now. Try again in a minute.",
            )
        }
        Err(e) => {
            dure_collab::warn_limited!(error = %e, "sign-in could not start");
            error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Sign-in could not start on this server; its log has the details.",
            )
        }
    }
}

/// The budget a source address draws on: an IPv6 client usually holds a whole /64.
fn rate_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            let mut seg = v6.segments();
            seg[4..].fill(0);
            IpAddr::from(seg)
        }
    }
}

async fn callback(
    State(state): State<AppState>,
    client: ClientAddr,
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
    let login_cookie = cookie_value(&headers, LOGIN_COOKIE);
    let signed = match oidc.finish_login(code, csrf, login_cookie.as_deref()).await {
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
        Err(e) => {
            dure_collab::warn_limited!(error = %e, "could not store a new session");
            return error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Signed in, but this server could not store the session right now (its storage is not answering). Try again in a minute.",
            );
        }
    };
    state.catalog.saw_user(&record.identity).await;
    info!(user = %record.identity.id, "signed in");
    state
        .audit
        .record("sign_in", &record.identity, None, client.text(), json!({}))
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

async fn logout(State(state): State<AppState>, client: ClientAddr, headers: HeaderMap) -> Response {
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
                .record("sign_out", &record.identity, None, client.text(), json!({}))
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
    // What the laptop client needs to sign in by itself (RFC 8252: the provider, a public
    // client, the scopes and the audience its access tokens must carry here).
    let desktop = state.config.oidc.as_ref().and_then(|o| {
        o.desktop_client_id.as_ref().map(|client_id| {
            json!({
                "issuer": o.issuer,
                "client_id": client_id,
                "scopes": o.scopes.join(" "),
                "audience": o.audience,
            })
        })
    });
    Json(json!({
        "mode": if local { "local" } else { "oidc" },
        "login": if local { None } else { Some("/auth/login") },
        "desktop": desktop,
    }))
}

#[cfg(test)]
mod tests {
    use super::safe_return_to;

    const BASE: &str = "https://docs.example.gov";

    #[test]
    fn return_to_stays_on_our_origin() {
        for (given, expected) in [
            (
                Some("/d/abc?x=1#top"),
                "https://docs.example.gov/d/abc?x=1#top",
            ),
            (Some("d/abc"), "https://docs.example.gov/d/abc"),
            (None, "https://docs.example.gov/"),
            (Some(""), "https://docs.example.gov/"),
            // Browsers drop tabs and newlines and read a backslash as a slash: each of these
            // is `//evil.example/…` to them.
            (Some("/\t/evil.example/phish"), "https://docs.example.gov/"),
            (Some("/\n/evil.example/phish"), "https://docs.example.gov/"),
            (Some("/\\evil.example"), "https://docs.example.gov/"),
            (Some("\\\\evil.example"), "https://docs.example.gov/"),
            (Some("//evil.example"), "https://docs.example.gov/"),
            (Some("https://evil.example/"), "https://docs.example.gov/"),
            (
                Some("http://docs.example.gov/"),
                "https://docs.example.gov/",
            ),
            (
                Some("https://user@docs.example.gov/"),
                "https://docs.example.gov/",
            ),
            (Some("javascript:alert(1)"), "https://docs.example.gov/"),
            // Same origin, path starting with two slashes: absolute, so still ours.
            (
                Some("/.//evil.example"),
                "https://docs.example.gov//evil.example",
            ),
        ] {
            assert_eq!(safe_return_to(BASE, given), expected, "{given:?}");
        }
        let long = format!("/{}", "a".repeat(5000));
        assert_eq!(
            safe_return_to(BASE, Some(&long)),
            "https://docs.example.gov/"
        );
    }
}
