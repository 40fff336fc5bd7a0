//! A scripted browser for sign-in tests: one cookie jar, redirects followed by hand.
//!
//! [`Browser`] talks to Dure and to the OpenID provider ([`crate::idp::TestIdp`]) the way a
//! browser does (cookies kept per site and path, `Location` resolved against the request
//! URL) but never follows a redirect by itself, so every hop is visible and each step can be
//! tampered with. Every request it makes is recorded ([`Browser::history`]).
//!
//! Sign-in against Dure (see `docs/api.md`): `GET /auth/login?return_to=/` redirects to the
//! provider's authorization URL; the test provider signs in the account named by
//! `login_hint`, which [`Browser::login`] appends; the provider redirects back to
//! `/auth/callback?code&state&iss`, which sets `dure_session` and redirects to `return_to`.
//!
//! ```no_run
//! # async fn demo(dure: &str) -> dure_tests::browser::Result<()> {
//! use dure_tests::browser::Browser;
//!
//! let browser = Browser::new()?;
//! let trace = browser.login(dure, "alice").await?;
//! assert!(browser.cookie(dure, "dure_session").is_some(), "{trace}");
//!
//! // The same, one step at a time:
//! let other = Browser::new()?;
//! let authorize = other.start_login(dure, "/").await?;
//! let callback = other.through_idp(&Browser::with_login_hint(&authorize, "bob")?).await?;
//! let answer = other.finish(&callback).await?;
//! assert!(answer.is_redirect());
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use reqwest::cookie::{CookieStore, Jar};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, Url};
use serde::de::DeserializeOwned;

pub use crate::server::BoxError;

/// Result of the browser's calls.
pub type Result<T, E = BoxError> = std::result::Result<T, E>;

/// Redirects followed at most by one walk ([`Browser::follow`]); the provider's sign-in takes
/// about five.
pub const MAX_HOPS: usize = 20;

/// Any single request: generous, as the machine running the tests may be busy.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// Body bytes shown in error messages.
const BODY_EXCERPT: usize = 600;

/// One answer, body read in full.
#[derive(Debug, Clone)]
pub struct Response {
    /// The method of the request.
    pub method: String,
    /// The URL requested.
    pub url: String,
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl Response {
    /// 301, 302, 303, 307 or 308 with a `Location`.
    pub fn is_redirect(&self) -> bool {
        matches!(self.status, 301 | 302 | 303 | 307 | 308) && self.headers.contains_key("location")
    }

    /// The `Location` header resolved against the request URL (relative ones made absolute).
    pub fn location(&self) -> Option<String> {
        let raw = self.headers.get("location")?.to_str().ok()?;
        let base = Url::parse(&self.url).ok()?;
        base.join(raw).ok().map(String::from)
    }

    /// A header's value as text (the first one when repeated).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)?.to_str().ok()
    }

    /// Every `Set-Cookie` header, whole (attributes included).
    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect()
    }

    /// The `Set-Cookie` header setting cookie `name`, whole, for checking its attributes.
    pub fn set_cookie(&self, name: &str) -> Option<String> {
        self.set_cookies().into_iter().find(|c| {
            c.split_once('=')
                .is_some_and(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        })
    }

    /// The body parsed as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_str(&self.body).map_err(|e| {
            format!(
                "{} {} answered {} with a body that is not the JSON expected ({e}): {}",
                self.method,
                self.url,
                self.status,
                excerpt(&self.body)
            )
            .into()
        })
    }

    /// The query parameter `name` of this response's `Location`.
    pub fn location_param(&self, name: &str) -> Option<String> {
        query_param(&self.location()?, name)
    }

    fn describe(&self) -> String {
        format!(
            "{} {} -> {}{}: {}",
            self.method,
            self.url,
            self.status,
            self.location()
                .map(|l| format!(" (Location: {l})"))
                .unwrap_or_default(),
            excerpt(&self.body)
        )
    }
}

/// One request the browser made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    pub method: String,
    pub url: String,
    pub status: u16,
    /// Where it redirected to, resolved to an absolute URL.
    pub location: Option<String>,
}

impl fmt::Display for Hop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} -> {}", self.method, self.url, self.status)?;
        if let Some(l) = &self.location {
            write!(f, " -> {l}")?;
        }
        Ok(())
    }
}

/// What [`Browser::login`] went through.
#[derive(Debug, Clone)]
pub struct LoginTrace {
    /// Every request, in order: Dure's login, the provider's hops, the callback, the landing.
    pub hops: Vec<Hop>,
    /// The provider's authorization URL as Dure built it (before `login_hint` was added).
    pub authorize_url: String,
    /// Dure's callback URL the provider redirected to (code, state, iss).
    pub callback_url: String,
    /// Dure's answer to the callback (the redirect to `return_to`, setting `dure_session`).
    pub callback: Response,
    /// The page the callback redirected to, fetched once (not followed further).
    pub landing: Option<Response>,
}

impl fmt::Display for LoginTrace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, hop) in self.hops.iter().enumerate() {
            writeln!(f, "{i:2}. {hop}")?;
        }
        Ok(())
    }
}

/// A browser: own cookie jar, no automatic redirects, no proxy, history of every request.
#[derive(Clone)]
pub struct Browser {
    client: reqwest::Client,
    jar: Arc<Jar>,
    history: Arc<Mutex<Vec<Hop>>>,
}

impl fmt::Debug for Browser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Browser")
            .field("requests", &lock(&self.history).len())
            .finish_non_exhaustive()
    }
}

impl Browser {
    /// A browser with an empty cookie jar.
    pub fn new() -> Result<Browser> {
        let jar = Arc::new(Jar::default());
        let client = reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .redirect(reqwest::redirect::Policy::none())
            // Loopback services only: a proxy from the environment must not see these.
            .no_proxy()
            .timeout(REQUEST_TIMEOUT)
            .user_agent("dure-tests-browser")
            .build()?;
        Ok(Browser {
            client,
            jar,
            history: Arc::new(Mutex::new(Vec::new())),
        })
    }

    /// Any request. `headers` are added as given (e.g. `Origin`, `Authorization`).
    pub async fn request(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<Body>,
    ) -> Result<Response> {
        let parsed = Url::parse(url).map_err(|e| format!("bad URL {url:?}: {e}"))?;
        let mut req = self.client.request(method.clone(), parsed);
        for (name, value) in headers {
            req = req.header(
                HeaderName::from_bytes(name.as_bytes())?,
                HeaderValue::from_str(value)?,
            );
        }
        req = match body {
            None => req,
            Some(Body::Json(v)) => req.json(&v),
            Some(Body::Form(pairs)) => req.form(&pairs),
            Some(Body::Raw {
                content_type,
                bytes,
            }) => req.header("content-type", content_type).body(bytes),
        };
        let resp = req
            .send()
            .await
            .map_err(|e| format!("{method} {url}: {e}"))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp
            .text()
            .await
            .map_err(|e| format!("{method} {url}: reading the body: {e}"))?;
        let response = Response {
            method: method.to_string(),
            url: url.to_owned(),
            status,
            headers,
            body,
        };
        lock(&self.history).push(Hop {
            method: response.method.clone(),
            url: response.url.clone(),
            status,
            location: response.location(),
        });
        Ok(response)
    }

    pub async fn get(&self, url: &str) -> Result<Response> {
        self.request(Method::GET, url, &[], None).await
    }

    /// GET with extra headers.
    pub async fn get_with(&self, url: &str, headers: &[(&str, &str)]) -> Result<Response> {
        self.request(Method::GET, url, headers, None).await
    }

    /// POST of a JSON body, with `Origin: origin` when given (Dure requires an allowed Origin
    /// on cookie-authenticated changes).
    pub async fn post_json(
        &self,
        url: &str,
        origin: Option<&str>,
        body: &serde_json::Value,
    ) -> Result<Response> {
        self.send_json(Method::POST, url, origin, body).await
    }

    /// POST, PATCH, PUT or DELETE of a JSON body, with `Origin` when given.
    pub async fn send_json(
        &self,
        method: Method,
        url: &str,
        origin: Option<&str>,
        body: &serde_json::Value,
    ) -> Result<Response> {
        let headers: Vec<(&str, &str)> = origin.map(|o| ("origin", o)).into_iter().collect();
        self.request(method, url, &headers, Some(Body::Json(body.clone())))
            .await
    }

    /// POST without a body (e.g. `/auth/logout`), with `Origin` when given.
    pub async fn post_empty(&self, url: &str, origin: Option<&str>) -> Result<Response> {
        let headers: Vec<(&str, &str)> = origin.map(|o| ("origin", o)).into_iter().collect();
        self.request(Method::POST, url, &headers, None).await
    }

    /// GETs `url` and follows redirects until `stop(url)` holds for a redirect target, which
    /// is returned without being requested. Fails on an answer that is not a redirect, or after
    /// [`MAX_HOPS`]. `stop` is not applied to `url` itself.
    pub async fn follow(&self, url: &str, stop: impl Fn(&str) -> bool) -> Result<String> {
        let mut next = url.to_owned();
        for _ in 0..MAX_HOPS {
            let resp = self.get(&next).await?;
            let Some(location) = resp.location().filter(|_| resp.is_redirect()) else {
                return Err(format!("expected a redirect: {}", resp.describe()).into());
            };
            if stop(&location) {
                return Ok(location);
            }
            next = location;
        }
        Err(format!("more than {MAX_HOPS} redirects from {url}").into())
    }

    /// Signs `user` in to Dure at `dure_base` (e.g. `http://127.0.0.1:4000`) with
    /// `return_to=/`: Dure's login, the provider (with `login_hint=user`), the callback, and one
    /// GET of the page the callback redirects to. Fails when a step does not redirect as it
    /// should; check the session cookie with [`Browser::cookie`].
    pub async fn login(&self, dure_base: &str, user: &str) -> Result<LoginTrace> {
        let first = lock(&self.history).len();
        let authorize_url = self.start_login(dure_base, "/").await?;
        let callback_url = self
            .through_idp(&Self::with_login_hint(&authorize_url, user)?)
            .await?;
        let callback = self.finish(&callback_url).await?;
        let Some(target) = callback.location().filter(|_| callback.is_redirect()) else {
            return Err(format!(
                "Dure's callback did not redirect: {}\n(history: {})",
                callback.describe(),
                self.history_since(first)
            )
            .into());
        };
        let landing = Some(self.get(&target).await?);
        Ok(LoginTrace {
            hops: lock(&self.history)[first..].to_vec(),
            authorize_url,
            callback_url,
            callback,
            landing,
        })
    }

    /// `GET {dure_base}/auth/login?return_to=…`; returns the authorization URL Dure redirects to
    /// (fails when it does not redirect).
    pub async fn start_login(&self, dure_base: &str, return_to: &str) -> Result<String> {
        let mut url = Url::parse(&format!("{}/auth/login", dure_base.trim_end_matches('/')))?;
        url.query_pairs_mut().append_pair("return_to", return_to);
        let resp = self.get(url.as_str()).await?;
        match resp.location() {
            Some(location) if resp.is_redirect() => Ok(location),
            _ => Err(format!("Dure's login did not redirect: {}", resp.describe()).into()),
        }
    }

    /// `authorize_url` with `login_hint=user` added (replacing one already there).
    pub fn with_login_hint(authorize_url: &str, user: &str) -> Result<String> {
        let mut url = Url::parse(authorize_url)?;
        let kept: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(k, _)| k != "login_hint")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        url.query_pairs_mut()
            .clear()
            .extend_pairs(kept)
            .append_pair("login_hint", user);
        Ok(url.into())
    }

    /// Follows the provider's redirects from `authorize_url` until one leaves the provider
    /// (another scheme, host or port than `authorize_url`'s): that URL, the client's
    /// redirect_uri with `code`, `state` and `iss` (or `error`), is returned unrequested.
    pub async fn through_idp(&self, authorize_url: &str) -> Result<String> {
        let idp = Url::parse(authorize_url)?.origin();
        self.follow(authorize_url, |u| {
            Url::parse(u).map_or(true, |parsed| parsed.origin() != idp)
        })
        .await
    }

    /// GETs Dure's callback URL; returns Dure's answer (not followed).
    pub async fn finish(&self, callback_url: &str) -> Result<Response> {
        self.get(callback_url).await
    }

    /// Walks the provider's end-session URL (from Dure's `POST /auth/logout`) until it leaves
    /// the provider; returns where it went (the post-logout redirect URI, with `state`).
    pub async fn logout_at_idp(&self, end_session_url: &str) -> Result<String> {
        self.through_idp(end_session_url).await
    }

    /// The value of cookie `name` this browser would send to `url`.
    pub fn cookie(&self, url: &str, name: &str) -> Option<String> {
        let url = Url::parse(url).ok()?;
        let header = self.jar.cookies(&url)?;
        header.to_str().ok()?.split(';').find_map(|pair| {
            let (n, v) = pair.trim().split_once('=')?;
            (n == name).then(|| v.to_owned())
        })
    }

    /// Stores a cookie as if `url` had sent `Set-Cookie: set_cookie` (to plant or replace one).
    pub fn set_cookie(&self, url: &str, set_cookie: &str) -> Result<()> {
        self.jar.add_cookie_str(set_cookie, &Url::parse(url)?);
        Ok(())
    }

    /// Every request made so far.
    pub fn history(&self) -> Vec<Hop> {
        lock(&self.history).clone()
    }

    fn history_since(&self, first: usize) -> String {
        lock(&self.history)[first..]
            .iter()
            .map(Hop::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// A request body.
#[derive(Debug, Clone)]
pub enum Body {
    Json(serde_json::Value),
    /// `application/x-www-form-urlencoded`.
    Form(Vec<(String, String)>),
    Raw {
        content_type: String,
        bytes: Vec<u8>,
    },
}

/// The first value of query parameter `name` in `url`.
pub fn query_param(url: &str, name: &str) -> Option<String> {
    Url::parse(url)
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn excerpt(body: &str) -> String {
    let mut end = body.len().min(BODY_EXCERPT);
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    if end < body.len() {
        format!("{}…", &body[..end])
    } else {
        body.to_owned()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking test thread must not hide the history from the others.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
