//! Sign-in with an OpenID Connect provider (`openidconnect`): discovery at start, the
//! authorization code flow with PKCE, nonce and state, ID token verification, userinfo,
//! refresh, and the provider's end-session URL.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreAuthenticationFlow, CoreErrorResponseType,
    CoreGenderClaim, CoreJsonWebKey, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm,
    CoreRevocableToken, CoreRevocationErrorResponse, CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AdditionalClaims, AuthorizationCode, Client, ClientId, CsrfToken, EmptyExtraTokenFields,
    EndpointMaybeSet, EndpointNotSet, EndpointSet, IdTokenFields, IssuerUrl, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, ProviderMetadataWithLogout,
    RedirectUrl, RefreshToken, Scope, StandardErrorResponse, StandardTokenResponse, TokenResponse,
    reqwest,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::identity::Identity;
use super::jwks::Jwks;
use super::sealing::SealKey;
use super::session::now_secs;
use crate::config::OidcConfig;

/// Every claim the provider sends beyond the standard ones (groups, roles…), kept as JSON so
/// the configured groups claim can be read whatever its name.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct ExtraClaims {
    #[serde(flatten)]
    rest: Map<String, Value>,
}
impl AdditionalClaims for ExtraClaims {}

type IdFields = IdTokenFields<
    ExtraClaims,
    EmptyExtraTokenFields,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;
type Tokens = StandardTokenResponse<IdFields, CoreTokenType>;
/// The client type after discovery, named once.
type OidcClient = Client<
    ExtraClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    Tokens,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// How long a started sign-in may take (the login cookie's life).
pub const LOGIN_TTL: Duration = Duration::from_secs(600);
/// Associated data of a sealed login cookie.
const LOGIN_PURPOSE: &str = "dure/login-state/v1";

#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error(
        "identity provider discovery failed for issuer {issuer} (setting `oidc_issuer`): {reason}"
    )]
    Discovery { issuer: String, reason: String },
    #[error("setting `{setting}`: {reason}")]
    Setting {
        setting: &'static str,
        reason: String,
    },
    #[error("this browser has no sign-in in progress, or it expired (10 minutes); start again")]
    UnknownState,
    #[error("sign-in state does not match this browser's")]
    StateMismatch,
    #[error("the identity provider refused the code: {0}")]
    CodeExchange(String),
    #[error("the ID token is invalid: {0}")]
    IdToken(String),
    #[error("refresh failed: {0}")]
    Refresh(String),
    #[error("the identity provider cannot be reached: {0}")]
    Unreachable(String),
    #[error("sign-in could not start on this server: {0}")]
    Local(String),
}

/// A started sign-in, kept by the browser that started it: sealed (encrypted and
/// authenticated with the server's key) in its HttpOnly login cookie, so the server keeps
/// nothing for sign-ins that are started and never finished.
#[derive(Serialize, Deserialize)]
struct LoginState {
    state: String,
    verifier: String,
    nonce: String,
    return_to: String,
    /// Unix seconds after which this sign-in is refused.
    expires: u64,
}

/// What a finished sign-in or refresh yields.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub identity: Identity,
    pub refresh_token: Option<String>,
    pub id_token: Option<String>,
    /// When the provider's tokens expire: the session is refreshed then.
    pub tokens_expire: SystemTime,
    pub return_to: String,
}

pub struct Oidc {
    pub config: OidcConfig,
    pub http: reqwest::Client,
    metadata: ProviderMetadataWithLogout,
    pub jwks: Jwks,
    seal: Arc<SealKey>,
}

impl std::fmt::Debug for Oidc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Oidc")
            .field("issuer", &self.config.issuer)
            .finish_non_exhaustive()
    }
}

impl Oidc {
    /// Discovers the provider. Fails with a message naming the setting when the issuer is
    /// unreachable or its metadata does not match what is configured.
    pub async fn discover(config: OidcConfig, seal: Arc<SealKey>) -> Result<Arc<Self>, OidcError> {
        let discovery = |reason: String| OidcError::Discovery {
            issuer: config.issuer.clone(),
            reason,
        };
        // No redirects: a provider endpoint answering with a redirect must not make Dure
        // send tokens or codes elsewhere (SSRF).
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| discovery(e.to_string()))?;
        let issuer = IssuerUrl::new(config.issuer.clone()).map_err(|e| discovery(e.to_string()))?;
        let metadata = ProviderMetadataWithLogout::discover_async(issuer, &http)
            .await
            .map_err(|e| discovery(error_chain(&e)))?;
        RedirectUrl::new(config.redirect_url.clone()).map_err(|e| OidcError::Setting {
            setting: "oidc_redirect_url",
            reason: e.to_string(),
        })?;
        if metadata.token_endpoint().is_none() {
            return Err(discovery("the provider has no token endpoint".into()));
        }
        let jwks = Jwks::fetch(
            metadata.jwks_uri().url().to_string(),
            http.clone(),
            config.jwks_refetch_interval,
        )
        .await
        .map_err(|e| discovery(e.to_string()))?;
        Ok(Arc::new(Oidc {
            config,
            http,
            metadata,
            jwks,
            seal,
        }))
    }

    async fn client(&self) -> Result<OidcClient, OidcError> {
        let keys = self.jwks.current().await;
        let metadata = self.metadata.clone().set_jwks(keys.oidc.clone());
        let redirect =
            RedirectUrl::new(self.config.redirect_url.clone()).map_err(|e| OidcError::Setting {
                setting: "oidc_redirect_url",
                reason: e.to_string(),
            })?;
        Ok(OidcClient::from_provider_metadata(
            metadata,
            ClientId::new(self.config.client_id.clone()),
            Some(self.config.client_secret.clone()),
        )
        .set_redirect_uri(redirect))
    }

    /// Starts a sign-in: returns the provider URL to send the browser to and the sealed login
    /// state the browser must present (in its login cookie) when it comes back.
    /// `login_hint` (an e-mail or user name the app already knows) is passed on to the
    /// provider, as OpenID Connect defines, to preselect the account.
    pub async fn start_login(
        &self,
        return_to: String,
        login_hint: Option<&str>,
    ) -> Result<(String, String), OidcError> {
        let client = self.client().await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut req = client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        );
        for scope in &self.config.scopes {
            if scope != "openid" {
                req = req.add_scope(Scope::new(scope.clone()));
            }
        }
        if let Some(hint) = login_hint {
            req = req.add_extra_param("login_hint", hint.to_owned());
        }
        let (url, state, nonce) = req.set_pkce_challenge(challenge).url();
        let login = LoginState {
            state: state.secret().clone(),
            verifier: verifier.secret().clone(),
            nonce: nonce.secret().clone(),
            return_to,
            expires: now_secs() + LOGIN_TTL.as_secs(),
        };
        let plain = serde_json::to_vec(&login).map_err(|e| OidcError::Local(e.to_string()))?;
        let cookie = self
            .seal
            .seal(LOGIN_PURPOSE, &plain)
            .map_err(|e| OidcError::Local(e.to_string()))?;
        Ok((url.to_string(), cookie))
    }

    /// Finishes a sign-in. `cookie` is the sealed state this browser started with; a callback
    /// carrying another state (login CSRF) is refused, and so is one without the cookie (the
    /// cookie is cleared once used; the provider refuses a code twice).
    pub async fn finish_login(
        &self,
        code: &str,
        state: &str,
        cookie: Option<&str>,
    ) -> Result<SignedIn, OidcError> {
        let login = cookie
            .and_then(|c| self.seal.open(LOGIN_PURPOSE, c))
            .and_then(|plain| serde_json::from_slice::<LoginState>(&plain).ok())
            .filter(|l| now_secs() < l.expires)
            .ok_or(OidcError::UnknownState)?;
        if !constant_time_eq(login.state.as_bytes(), state.as_bytes()) {
            return Err(OidcError::StateMismatch);
        }
        let client = self.client().await?;
        let tokens = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| OidcError::CodeExchange(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(login.verifier))
            .request_async(&self.http)
            .await
            .map_err(|e| OidcError::CodeExchange(error_chain(&e)))?;
        let nonce = Nonce::new(login.nonce);
        let mut signed = self.signed_in(&tokens, Some(&nonce), None).await?;
        signed.return_to = login.return_to;
        Ok(signed)
    }

    /// Uses a refresh token; the identity is read again (groups may have changed).
    pub async fn refresh(
        &self,
        refresh_token: &str,
        previous: &Identity,
    ) -> Result<SignedIn, OidcError> {
        let client = self.client().await?;
        let tokens = client
            .exchange_refresh_token(&RefreshToken::new(refresh_token.to_owned()))
            .map_err(|e| OidcError::Refresh(e.to_string()))?
            .request_async(&self.http)
            .await
            .map_err(|e| match e {
                openidconnect::RequestTokenError::Request(inner) => {
                    OidcError::Unreachable(error_chain(&inner))
                }
                other => OidcError::Refresh(error_chain(&other)),
            })?;
        let mut signed = self.signed_in(&tokens, None, Some(previous)).await?;
        if signed.refresh_token.is_none() {
            // Providers that do not rotate refresh tokens keep the old one valid.
            signed.refresh_token = Some(refresh_token.to_owned());
        }
        Ok(signed)
    }

    async fn signed_in(
        &self,
        tokens: &Tokens,
        nonce: Option<&Nonce>,
        previous: Option<&Identity>,
    ) -> Result<SignedIn, OidcError> {
        let mut claims = Map::new();
        let mut sub = previous.map(|p| p.id.clone());
        let mut id_token_raw = None;
        let mut id_exp = None;
        match tokens.id_token() {
            Some(id_token) => {
                let verified = self.verify_id_token(id_token, nonce).await?;
                let subject = verified.0;
                if let Some(prev) = &sub
                    && prev != &subject
                {
                    return Err(OidcError::IdToken(
                        "refreshed token names another user".into(),
                    ));
                }
                sub = Some(subject);
                claims = verified.1;
                id_exp = verified.2;
                id_token_raw = Some(id_token.to_string());
            }
            None if nonce.is_some() => {
                return Err(OidcError::IdToken("the provider sent no ID token".into()));
            }
            None => {}
        }
        let sub = sub.ok_or_else(|| OidcError::IdToken("no subject".into()))?;
        // Providers differ in what they put in the ID token (some only in userinfo): merge.
        if let Ok(client) = self.client().await
            && let Ok(req) = client.user_info(
                tokens.access_token().clone(),
                Some(openidconnect::SubjectIdentifier::new(sub.clone())),
            )
            && let Ok(info) = req
                .request_async::<ExtraClaims, _, CoreGenderClaim>(&self.http)
                .await
            && let Ok(Value::Object(info)) = serde_json::to_value(&info)
        {
            for (k, v) in info {
                claims.entry(k).or_insert(v);
            }
        }
        let mut identity = Identity::from_claims(
            &sub,
            &claims,
            &self.config.groups_claim,
            self.config.admin_group.as_deref(),
        );
        if let Some(prev) = previous
            && claims.is_empty()
        {
            identity = prev.clone();
        }
        let now = SystemTime::now();
        let tokens_expire = tokens
            .expires_in()
            .map(|d| now + d)
            .or(id_exp)
            .unwrap_or(now + Duration::from_secs(300));
        Ok(SignedIn {
            identity,
            refresh_token: tokens.refresh_token().map(|t| t.secret().clone()),
            id_token: id_token_raw,
            tokens_expire,
            return_to: String::new(),
        })
    }

    /// Verifies an ID token (signature, issuer, audience, expiry, nonce); on a signature
    /// failure the keys are refetched once (rotation) and it is tried again.
    async fn verify_id_token(
        &self,
        id_token: &openidconnect::IdToken<
            ExtraClaims,
            CoreGenderClaim,
            CoreJweContentEncryptionAlgorithm,
            CoreJwsSigningAlgorithm,
        >,
        nonce: Option<&Nonce>,
    ) -> Result<(String, Map<String, Value>, Option<SystemTime>), OidcError> {
        let mut refetched = false;
        loop {
            let client = self.client().await?;
            let verifier = client.id_token_verifier();
            let result = match nonce {
                Some(n) => id_token.claims(&verifier, n),
                // A refreshed ID token carries no new nonce to check.
                None => id_token.claims(&verifier, |_: Option<&Nonce>| Ok(())),
            };
            match result {
                Ok(claims) => {
                    let sub = claims.subject().to_string();
                    let exp = SystemTime::from(claims.expiration());
                    let map = match serde_json::to_value(claims) {
                        Ok(Value::Object(m)) => m,
                        _ => Map::new(),
                    };
                    return Ok((sub, map, Some(exp)));
                }
                Err(openidconnect::ClaimsVerificationError::SignatureVerification(e))
                    if !refetched =>
                {
                    tracing::debug!(error = %e, "ID token signature did not verify; refetching keys");
                    self.jwks.refetch().await;
                    refetched = true;
                }
                Err(e) => return Err(OidcError::IdToken(e.to_string())),
            }
        }
    }

    /// The provider's end-session URL for RP-initiated logout, if it offers one.
    pub fn end_session_url(&self, id_token: Option<&str>, post_logout: &str) -> Option<String> {
        let endpoint = self
            .metadata
            .additional_metadata()
            .end_session_endpoint
            .as_ref()?;
        let mut url = endpoint.url().clone();
        {
            let mut q = url.query_pairs_mut();
            if let Some(t) = id_token {
                q.append_pair("id_token_hint", t);
            }
            q.append_pair("client_id", &self.config.client_id);
            q.append_pair("post_logout_redirect_uri", post_logout);
        }
        Some(url.to_string())
    }

    /// Whether the provider answers (for readiness).
    pub async fn ping(&self) -> Result<(), OidcError> {
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.config.issuer.trim_end_matches('/')
        );
        let resp = self
            .http
            .get(&url)
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .map_err(|e| OidcError::Unreachable(error_chain(&e)))?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(OidcError::Unreachable(format!("HTTP {}", resp.status())))
        }
    }
}

/// Equality that takes as long whatever the first differing byte.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// An error and its sources on one line (reqwest hides the useful part in the source).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        src = s.source();
    }
    out
}
