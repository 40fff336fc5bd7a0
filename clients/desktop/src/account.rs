//! Signing in (RFC 8252: authorization code + PKCE through the system browser and a loopback
//! redirect), the tokens kept for this user only, silent refresh, and signing out.
//!
//! The provider, the public client and the audience come from the server's `/api/config`:
//! the user names only the server. The access token is the server's business to verify (it
//! does, signature and audience); this client only keeps it fresh.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use crate::files;

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("not signed in: run `dure-desktop login https://your-dure-server`")]
    NotSignedIn,
    #[error(
        "the sign-in has ended (refresh refused by the provider): sign in again with `dure-desktop login`"
    )]
    SignInAgain,
    #[error("the server or the provider cannot be reached: {0}")]
    Offline(String),
    #[error("{0}")]
    Other(String),
}

/// What `tokens.json` holds (0600, in the data directory).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Account {
    /// The Dure server, `https://host[:port]` without a trailing slash.
    pub server: String,
    pub issuer: String,
    pub client_id: String,
    pub token_endpoint: String,
    #[serde(default)]
    pub revocation_endpoint: Option<String>,
    pub access_token: String,
    /// Unix seconds.
    pub access_expires_at: u64,
    #[serde(default)]
    pub refresh_token: Option<String>,
    #[serde(default)]
    pub name: String,
    /// `signed_in`, or `sign_in_again` once the provider refused the refresh token.
    pub state: String,
}

pub fn tokens_path(data_dir: &Path) -> PathBuf {
    data_dir.join("tokens.json")
}

pub fn load(data_dir: &Path) -> Result<Account, AccountError> {
    let bytes = match std::fs::read(tokens_path(data_dir)) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(AccountError::NotSignedIn);
        }
        Err(e) => return Err(AccountError::Other(format!("cannot read the tokens: {e}"))),
    };
    serde_json::from_slice(&bytes).map_err(|e| {
        AccountError::Other(format!("the tokens file is damaged ({e}); sign in again"))
    })
}

fn save(data_dir: &Path, account: &Account) -> Result<(), AccountError> {
    let bytes =
        serde_json::to_vec_pretty(account).map_err(|e| AccountError::Other(e.to_string()))?;
    files::write_private(&tokens_path(data_dir), &bytes)
        .map_err(|e| AccountError::Other(format!("cannot store the tokens: {e}")))
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub fn http_client() -> Result<reqwest::Client, AccountError> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .map_err(|e| AccountError::Other(e.to_string()))
}

#[derive(Deserialize)]
struct ServerConfig {
    desktop: Option<DesktopConfig>,
}

#[derive(Deserialize)]
struct DesktopConfig {
    issuer: String,
    client_id: String,
    scopes: String,
    audience: String,
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    #[serde(default)]
    revocation_endpoint: Option<String>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    refresh_token: Option<String>,
}

fn random_b64(n: usize) -> String {
    let bytes: Vec<u8> = (0..n).map(|_| rand::random::<u8>()).collect();
    URL_SAFE_NO_PAD.encode(bytes)
}

async fn get_json<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    url: &str,
) -> Result<T, AccountError> {
    let resp = http
        .get(url)
        .send()
        .await
        .map_err(|e| AccountError::Offline(format!("{url}: {e}")))?;
    if !resp.status().is_success() {
        return Err(AccountError::Other(format!(
            "{url} answered {}",
            resp.status()
        )));
    }
    resp.json()
        .await
        .map_err(|e| AccountError::Other(format!("{url}: unexpected answer: {e}")))
}

/// `dure-desktop login SERVER`.
pub async fn login(data_dir: &Path, server: &str, open_browser: bool) -> Result<(), AccountError> {
    let server = server.trim().trim_end_matches('/').to_owned();
    let parsed = url::Url::parse(&server)
        .map_err(|e| AccountError::Other(format!("{server:?} is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "https" | "http") {
        return Err(AccountError::Other(
            "the server URL must be https://…".into(),
        ));
    }
    let http = http_client()?;
    let config: ServerConfig = get_json(&http, &format!("{server}/api/config")).await?;
    let desktop = config.desktop.ok_or_else(|| {
        AccountError::Other(
            "this server does not offer sign-in for the laptop client (its administrator sets oidc_desktop_client_id)".into(),
        )
    })?;
    let issuer = desktop.issuer.trim_end_matches('/').to_owned();
    let discovery: Discovery =
        get_json(&http, &format!("{issuer}/.well-known/openid-configuration")).await?;
    if discovery.issuer.trim_end_matches('/') != issuer {
        return Err(AccountError::Other(format!(
            "the provider calls itself {:?}, not {issuer:?}",
            discovery.issuer
        )));
    }
    // RFC 8252 7.3: a loopback redirect on a port of our choosing, IP literal, not localhost.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| AccountError::Other(format!("cannot listen on loopback: {e}")))?;
    let port = listener
        .local_addr()
        .map_err(|e| AccountError::Other(e.to_string()))?
        .port();
    let redirect_uri = format!("http://127.0.0.1:{port}/cb");
    let verifier = random_b64(32);
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let state = random_b64(16);
    let mut auth_url = url::Url::parse(&discovery.authorization_endpoint)
        .map_err(|e| AccountError::Other(format!("authorization endpoint: {e}")))?;
    {
        let mut q = auth_url.query_pairs_mut();
        q.append_pair("client_id", &desktop.client_id)
            .append_pair("response_type", "code")
            .append_pair("scope", &scopes_with_offline(&desktop.scopes))
            .append_pair("redirect_uri", &redirect_uri)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256")
            .append_pair("state", &state);
        // RFC 8707: ask for tokens meant for this server when its audience is a URI.
        if url::Url::parse(&desktop.audience).is_ok() {
            q.append_pair("resource", &desktop.audience);
        }
    }
    println!("sign in at: {auth_url}");
    if open_browser {
        // Best effort: the URL is printed for when no browser can be opened.
        let _ = std::process::Command::new("xdg-open")
            .arg(auth_url.as_str())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
    }
    let params = wait_for_redirect(listener, Duration::from_secs(300)).await?;
    if params.get("state").map(String::as_str) != Some(state.as_str()) {
        return Err(AccountError::Other(
            "the sign-in answer did not carry our state (another page's?): refused".into(),
        ));
    }
    if let Some(err) = params.get("error") {
        return Err(AccountError::Other(format!(
            "the provider refused: {err} {}",
            params.get("error_description").cloned().unwrap_or_default()
        )));
    }
    if let Some(iss) = params.get("iss")
        && iss.trim_end_matches('/') != issuer
    {
        return Err(AccountError::Other(
            "the sign-in answer came from another provider: refused".into(),
        ));
    }
    let code = params
        .get("code")
        .ok_or_else(|| AccountError::Other("no code in the sign-in answer".into()))?;
    let resp = http
        .post(&discovery.token_endpoint)
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", &redirect_uri),
            ("client_id", &desktop.client_id),
            ("code_verifier", &verifier),
        ])
        .send()
        .await
        .map_err(|e| AccountError::Offline(e.to_string()))?;
    let status = resp.status();
    if !status.is_success() {
        let body = resp.text().await.unwrap_or_default();
        return Err(AccountError::Other(format!(
            "the provider refused the code ({status}): {body}"
        )));
    }
    let tokens: TokenAnswer = resp
        .json()
        .await
        .map_err(|e| AccountError::Other(format!("unexpected token answer: {e}")))?;
    let mut account = Account {
        server: server.clone(),
        issuer,
        client_id: desktop.client_id,
        token_endpoint: discovery.token_endpoint,
        revocation_endpoint: discovery.revocation_endpoint,
        access_expires_at: now_secs() + tokens.expires_in.unwrap_or(300),
        access_token: tokens.access_token,
        refresh_token: tokens.refresh_token,
        name: String::new(),
        state: "signed_in".into(),
    };
    // Who we are, as the server sees the token (and proof that it accepts it).
    let me = http
        .get(format!("{server}/api/me"))
        .bearer_auth(&account.access_token)
        .send()
        .await
        .map_err(|e| AccountError::Offline(e.to_string()))?;
    if !me.status().is_success() {
        return Err(AccountError::Other(format!(
            "the server refused the provider's token ({}); is oidc_audience {:?} what the provider issues?",
            me.status(),
            desktop.audience
        )));
    }
    let me: serde_json::Value = me
        .json()
        .await
        .map_err(|e| AccountError::Other(e.to_string()))?;
    account.name = me["name"]
        .as_str()
        .or(me["user"]["name"].as_str())
        .or(me["id"].as_str())
        .unwrap_or("")
        .to_owned();
    files::private_dir(data_dir).map_err(|e| AccountError::Other(e.to_string()))?;
    save(data_dir, &account)?;
    println!("signed in as {}", account.name);
    Ok(())
}

fn scopes_with_offline(scopes: &str) -> String {
    let mut s: Vec<&str> = scopes.split_whitespace().collect();
    if !s.contains(&"openid") {
        s.insert(0, "openid");
    }
    if !s.contains(&"offline_access") {
        s.push("offline_access");
    }
    s.join(" ")
}

/// Serves `GET /cb` on the loopback listener until the browser comes back (or time is up).
async fn wait_for_redirect(
    listener: tokio::net::TcpListener,
    limit: Duration,
) -> Result<std::collections::HashMap<String, String>, AccountError> {
    use axum::extract::{Query, State};
    use axum::response::Html;
    type Params = std::collections::HashMap<String, String>;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Params>(1);
    async fn cb(
        State(tx): State<tokio::sync::mpsc::Sender<Params>>,
        Query(q): Query<Params>,
    ) -> Html<&'static str> {
        let _ = tx.try_send(q);
        Html(
            "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Dure</title></head><body><h1>Signed in</h1><p>You can close this tab and go back to Dure.</p></body></html>",
        )
    }
    let app = axum::Router::new()
        .route("/cb", axum::routing::get(cb))
        .with_state(tx);
    let stop = tokio_util::sync::CancellationToken::new();
    let stopped = stop.clone();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stopped.cancelled().await })
            .await;
    });
    let got = tokio::time::timeout(limit, rx.recv()).await;
    // Let the page reach the browser before the listener goes.
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.cancel();
    let _ = server.await;
    match got {
        Ok(Some(p)) => Ok(p),
        _ => Err(AccountError::Other(
            "nobody came back from the sign-in page within 5 minutes".into(),
        )),
    }
}

/// `dure-desktop logout`: the refresh token is revoked at the provider (best effort: offline,
/// it is deleted here anyway) and the tokens are deleted.
pub async fn logout(data_dir: &Path) -> Result<(), AccountError> {
    let account = load(data_dir)?;
    if let (Some(endpoint), Some(refresh)) = (&account.revocation_endpoint, &account.refresh_token)
    {
        let http = http_client()?;
        match http
            .post(endpoint)
            .form(&[
                ("token", refresh.as_str()),
                ("token_type_hint", "refresh_token"),
                ("client_id", account.client_id.as_str()),
            ])
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => eprintln!("the provider did not revoke the token ({})", r.status()),
            Err(e) => eprintln!("the provider cannot be reached to revoke the token: {e}"),
        }
    }
    std::fs::remove_file(tokens_path(data_dir))
        .map_err(|e| AccountError::Other(format!("cannot delete the tokens: {e}")))?;
    println!("signed out");
    Ok(())
}

/// The tokens while running: fresh access tokens on demand, one refresh at a time.
#[derive(Clone, Debug)]
pub struct Tokens {
    inner: Arc<Mutex<Account>>,
    data_dir: PathBuf,
    http: reqwest::Client,
}

impl Tokens {
    pub fn new(data_dir: &Path, account: Account) -> Result<Self, AccountError> {
        Ok(Tokens {
            inner: Arc::new(Mutex::new(account)),
            data_dir: data_dir.to_path_buf(),
            http: http_client()?,
        })
    }

    pub async fn state(&self) -> String {
        self.inner.lock().await.state.clone()
    }

    /// An access token valid for at least a minute, refreshed if needed.
    pub async fn bearer(&self) -> Result<String, AccountError> {
        let mut a = self.inner.lock().await;
        if a.state == "sign_in_again" {
            return Err(AccountError::SignInAgain);
        }
        if a.access_expires_at > now_secs() + 60 {
            return Ok(a.access_token.clone());
        }
        let Some(refresh) = a.refresh_token.clone() else {
            a.state = "sign_in_again".into();
            save(&self.data_dir, &a)?;
            return Err(AccountError::SignInAgain);
        };
        let resp = self
            .http
            .post(&a.token_endpoint)
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh.as_str()),
                ("client_id", a.client_id.as_str()),
            ])
            .send()
            .await
            .map_err(|e| AccountError::Offline(e.to_string()))?;
        let status = resp.status();
        if status.is_success() {
            let t: TokenAnswer = resp
                .json()
                .await
                .map_err(|e| AccountError::Other(format!("unexpected token answer: {e}")))?;
            a.access_token = t.access_token;
            a.access_expires_at = now_secs() + t.expires_in.unwrap_or(300);
            if let Some(r) = t.refresh_token {
                a.refresh_token = Some(r);
            }
            save(&self.data_dir, &a)?;
            return Ok(a.access_token.clone());
        }
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        if status.is_client_error() {
            // invalid_grant (revoked, expired) and the like: only a new sign-in helps; asking
            // again would loop.
            tracing::warn!(%status, error = %body["error"], "the provider refused the refresh token");
            a.state = "sign_in_again".into();
            save(&self.data_dir, &a)?;
            return Err(AccountError::SignInAgain);
        }
        Err(AccountError::Offline(format!(
            "the provider answered {status}"
        )))
    }

    /// The server refused the token before its time (revoked, keys rotated): refresh next.
    pub async fn expire_now(&self) {
        self.inner.lock().await.access_expires_at = 0;
    }
}
