//! Who is asking, and may they: local mode, browser sessions (OIDC), bearer access tokens,
//! the Origin allow-list, and the bus that tells live sockets when access changed.

pub mod bearer;
pub mod changes;
pub mod identity;
pub mod jwks;
pub mod oidc;
pub mod sealing;
pub mod session;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::http::{HeaderMap, header};
use dure_storage::Store;

pub use identity::Identity;
use oidc::Oidc;
use session::{SessionKey, Sessions};

use crate::config::Config;
use crate::rate_limit::RateLimit;

/// How a request proved who it is.
#[derive(Clone, Debug)]
pub enum Via {
    Local,
    Session(SessionKey),
    Bearer,
}

#[derive(Clone, Debug)]
pub struct Principal {
    pub identity: Arc<Identity>,
    pub via: Via,
    /// When this proof must be looked at again (token or session expiry); `None` in local
    /// mode.
    pub check_at: Option<SystemTime>,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthFailure {
    #[error("not signed in")]
    Missing,
    #[error("{0}")]
    Invalid(String),
    #[error("requests from origin {0:?} may not use this session")]
    ForeignOrigin(String),
}

/// The one local-mode identity, shared (not allocated per request or socket).
static LOCAL_USER: std::sync::LazyLock<Arc<Identity>> =
    std::sync::LazyLock::new(|| Arc::new(Identity::local()));

pub struct Auth {
    pub oidc: Option<Arc<Oidc>>,
    pub sessions: Option<Sessions>,
    bearer: Option<bearer::BearerVerifier>,
    pub changes: Arc<changes::ChangeBus>,
    pub allowed_origins: Vec<String>,
    pub secure_cookies: bool,
    pub public_url: String,
    /// Sign-ins started per client address (`login_rate_per_minute`).
    pub login_limit: RateLimit,
    /// People searches per user (`user_search_rate_per_minute`).
    pub user_search_limit: RateLimit,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("oidc", &self.oidc.is_some())
            .finish_non_exhaustive()
    }
}

impl Auth {
    /// Sets up sign-in: discovers the provider when one is configured.
    pub async fn new(config: &Config, store: Store) -> Result<Self, oidc::OidcError> {
        let changes = Arc::new(changes::ChangeBus::default());
        let (oidc, sessions, bearer) = match &config.oidc {
            Some(oc) => {
                let seal = Arc::new(sealing::SealKey::for_config(config).map_err(|e| {
                    oidc::OidcError::Setting {
                        setting: "secret_key_file",
                        reason: e.to_string(),
                    }
                })?);
                let oidc = Oidc::discover(oc.clone(), seal.clone()).await?;
                let sessions = Sessions::new(store, oidc.clone(), seal, oc.session_max_age);
                let bearer = bearer::BearerVerifier {
                    issuer: oc.issuer.clone(),
                    audience: oc.audience.clone(),
                    audience_explicit: oc.audience_explicit,
                    client_id: oc.client_id.clone(),
                    require_at_jwt: oc.bearer_require_at_jwt,
                    algorithms: oc.algorithms.clone(),
                    groups_claim: oc.groups_claim.clone(),
                    admin_group: oc.admin_group.clone(),
                };
                (Some(oidc), Some(sessions), Some(bearer))
            }
            None => (None, None, None),
        };
        Ok(Auth {
            oidc,
            sessions,
            bearer,
            changes,
            allowed_origins: config.allowed_origins.clone(),
            secure_cookies: config.public_url.starts_with("https://"),
            public_url: config.public_url.clone(),
            login_limit: RateLimit::per_minute(config.access.login_rate_per_minute),
            user_search_limit: RateLimit::per_minute(config.access.user_search_rate_per_minute),
        })
    }

    pub fn is_local(&self) -> bool {
        self.oidc.is_none()
    }

    pub fn origin_allowed(&self, origin: &str) -> bool {
        self.allowed_origins.iter().any(|o| o == origin)
    }

    /// Authenticates a request from its headers. `needs_origin`: the request changes
    /// something or opens a socket, so ambient credentials (the session cookie, or simply
    /// being on loopback in local mode) count only from an allowed Origin.
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
        needs_origin: bool,
    ) -> Result<Principal, AuthFailure> {
        let origin = headers
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let foreign = |o: &Option<String>| match o {
            Some(o) if !self.origin_allowed(o) => Some(o.clone()),
            _ => None,
        };
        if self.is_local() {
            // A web page elsewhere must not drive the local user's documents through the
            // browser (cross-site requests and WebSocket hijacking).
            if let Some(o) = foreign(&origin) {
                return Err(AuthFailure::ForeignOrigin(o));
            }
            return Ok(Principal {
                identity: LOCAL_USER.clone(),
                via: Via::Local,
                check_at: None,
            });
        }
        if let Some(token) = bearer_token(headers) {
            return self.verify_token(&token).await;
        }
        if let Some(cookie) = session_cookie(headers) {
            if needs_origin {
                match &origin {
                    None => return Err(AuthFailure::ForeignOrigin("(none)".into())),
                    Some(o) if !self.origin_allowed(o) => {
                        return Err(AuthFailure::ForeignOrigin(o.clone()));
                    }
                    Some(_) => {}
                }
            }
            return self.session(&SessionKey::of_cookie(&cookie)).await;
        }
        Err(AuthFailure::Missing)
    }

    pub async fn session(&self, key: &SessionKey) -> Result<Principal, AuthFailure> {
        let sessions = self.sessions.as_ref().ok_or(AuthFailure::Missing)?;
        let record = sessions.current(key).await.map_err(|e| {
            // The detail may be the store's (a key, a bucket): the log has it.
            tracing::debug!(error = %e, "session not usable");
            AuthFailure::Invalid("the session has ended or cannot be read; sign in again".into())
        })?;
        Ok(Principal {
            identity: Arc::new(record.identity.clone()),
            via: Via::Session(key.clone()),
            check_at: Some(record.next_check()),
        })
    }

    pub async fn verify_token(&self, token: &str) -> Result<Principal, AuthFailure> {
        let (Some(verifier), Some(oidc)) = (&self.bearer, &self.oidc) else {
            return Err(AuthFailure::Missing);
        };
        let verified = verifier
            .verify(token, &oidc.jwks)
            .await
            .map_err(|e| AuthFailure::Invalid(e.to_string()))?;
        Ok(Principal {
            identity: Arc::new(verified.identity),
            via: Via::Bearer,
            check_at: Some(verified.expires_at),
        })
    }

    /// Looks at a principal again when its `check_at` came: a session is refreshed (and may
    /// have ended), a bearer token simply expired.
    pub async fn recheck(&self, principal: &Principal) -> Result<Principal, AuthFailure> {
        match &principal.via {
            Via::Local => Ok(principal.clone()),
            Via::Session(key) => self.session(key).await,
            Via::Bearer => Err(AuthFailure::Invalid("token expired".into())),
        }
    }

    pub fn cookie_header(&self, value: &str, max_age: Duration) -> String {
        cookie::Cookie::build((session::COOKIE, value.to_owned()))
            .http_only(true)
            .secure(self.secure_cookies)
            .same_site(cookie::SameSite::Lax)
            .path("/")
            .max_age(cookie::time::Duration::seconds(
                i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX),
            ))
            .build()
            .to_string()
    }
}

/// `Authorization: Bearer …`.
pub fn bearer_token(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
        .filter(|t| !t.is_empty())
}

/// The value of the cookie `name`.
pub fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
}

pub fn session_cookie(headers: &HeaderMap) -> Option<String> {
    cookie_value(headers, session::COOKIE).filter(|v| !v.is_empty())
}

/// The token offered as a WebSocket subprotocol `dure-token.<JWT>`, and whether the client
/// offered `dure` (the protocol the server then selects).
pub fn subprotocol_token(headers: &HeaderMap) -> (Option<String>, bool) {
    let mut token = None;
    let mut dure = false;
    for v in headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
    {
        for p in v.split(',').map(str::trim) {
            if p == "dure" {
                dure = true;
            } else if let Some(t) = p.strip_prefix("dure-token.") {
                token = Some(t.to_owned());
            }
        }
    }
    (token, dure)
}
