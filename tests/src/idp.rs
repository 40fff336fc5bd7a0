//! A real OpenID provider for tests: `node tests/js/idp.mjs` (npm `oidc-provider`, see the
//! header of that script for everything it does) on a free loopback port.
//!
//! - Issuer `http://127.0.0.1:PORT`, exactly ([`TestIdp::issuer`]).
//! - Client `dure-web` (confidential, PKCE required) for Dure; client `dure-cli` (public,
//!   redirect `http://127.0.0.1:ANY/cb`) with which [`TestIdp::access_token`] obtains user
//!   tokens through the real authorization-code + PKCE flow.
//! - Users [`USERS`]: `alice`, `bob` (group `finance`), `carol` (`hr`), `admin`
//!   (`dure-admins`); `eve` (claims alice's address, unverified), `dan` and `dana` (one
//!   shared verified address). Logins are non-interactive: the provider signs in the account named by
//!   the authorization request's `login_hint`.
//! - Load accounts, for benchmarks that need many people: any login matching `^load[0-9]{1,5}$`
//!   ([`load_login`]) is an account too, name `Load N`, email `loadN@example.gov` (verified),
//!   no groups; not in [`USERS`]. The provider keeps their sessions and tokens in memory only
//!   (they do not survive [`TestIdp::restart`]).
//! - Access tokens: RS256 JWTs, header `typ: at+jwt`, `aud` = the audience (`urn:dure`),
//!   with `name`, `email`, `email_verified`, `groups`. ID tokens carry the same claims.
//! - [`TestIdp::sign`] forges tokens with the provider's signing key or with a key it does
//!   not publish; [`TestIdp::restart_rotated`] rotates keys (the unpublished key becomes the
//!   signing key, the old one stays published) on the same port. Sessions, grants and refresh
//!   tokens survive restarts (they are kept in a state file).
//!
//! Needs node and `tests/js/node_modules`: run `infra/install-test-deps.sh` once.
//!
//! ```no_run
//! # async fn demo() -> dure_tests::idp::Result<()> {
//! use dure_tests::idp::{IdpOptions, TestIdp, free_port};
//!
//! let port = free_port()?; // Dure's, chosen before either starts
//! let public_url = format!("http://127.0.0.1:{port}");
//! let idp = TestIdp::start(IdpOptions::for_dure(&public_url)).await?;
//! let flags = idp.dure_flags(); // --oidc-issuer … --oidc-client-id … …
//! let tokens = idp.access_token("alice").await?;
//! # let _ = (flags, tokens); Ok(())
//! # }
//! ```

use std::collections::VecDeque;
use std::fmt;
use std::net::{Ipv4Addr, TcpListener};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;
use reqwest::Url;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;

use crate::browser::Browser;
use crate::jsclient::{JsDriver, NODE_ENV};
pub use crate::server::BoxError;

/// Result of the harness calls.
pub type Result<T, E = BoxError> = std::result::Result<T, E>;

/// The confidential client Dure signs in with (default `client_id`).
pub const WEB_CLIENT_ID: &str = "dure-web";
/// Its default secret.
pub const WEB_CLIENT_SECRET: &str = "dure-web-secret";
/// The public client the harness obtains user tokens with.
pub const CLI_CLIENT_ID: &str = "dure-cli";
/// The default audience (resource indicator) of access tokens.
pub const AUDIENCE: &str = "urn:dure";
/// The scopes the harness requests.
pub const SCOPES: &str = "openid profile email groups offline_access";

/// A user the provider knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TestUser {
    /// Login name, `login_hint` and `sub`.
    pub login: &'static str,
    pub name: &'static str,
    pub email: &'static str,
    /// The provider's `email_verified`.
    pub email_verified: bool,
    pub groups: &'static [&'static str],
}

/// The provider's users (the same table as in `tests/js/idp.mjs`).
pub const USERS: [TestUser; 7] = [
    TestUser {
        login: "alice",
        name: "Alice Kim",
        email: "alice@example.gov",
        email_verified: true,
        groups: &["finance"],
    },
    TestUser {
        login: "bob",
        name: "Bob Lee",
        email: "bob@example.gov",
        email_verified: true,
        groups: &["finance"],
    },
    TestUser {
        login: "carol",
        name: "Carol Park",
        email: "carol@example.gov",
        email_verified: true,
        groups: &["hr"],
    },
    TestUser {
        login: "admin",
        name: "Admin Choi",
        email: "admin@example.gov",
        email_verified: true,
        groups: &["dure-admins"],
    },
    // Claims alice's address; the provider has not verified it.
    TestUser {
        login: "eve",
        name: "Eve Moss",
        email: "alice@example.gov",
        email_verified: false,
        groups: &[],
    },
    // Two people on one verified, shared mailbox.
    TestUser {
        login: "dan",
        name: "Dan Reyes",
        email: "ops@example.gov",
        email_verified: true,
        groups: &[],
    },
    TestUser {
        login: "dana",
        name: "Dana Ito",
        email: "ops@example.gov",
        email_verified: true,
        groups: &[],
    },
];

/// The user whose login name is `login`.
pub fn user(login: &str) -> Option<&'static TestUser> {
    USERS.iter().find(|u| u.login == login)
}

/// The login of load account `n` (`load{n}`, `n` below 100,000): see the module comment.
pub fn load_login(n: usize) -> String {
    debug_assert!(n < 100_000, "load accounts are load0 … load99999");
    format!("load{n}")
}

/// How long node may take to load the provider and generate keys.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the provider may take to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a restart keeps retrying to bind the previous port (freed by the exit).
const REBIND_FOR: Duration = Duration::from_secs(5);
/// Any single request to the provider.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// Lines of the provider's output kept for [`TestIdp::logs`].
const LOG_LINES: usize = 2000;
/// Packages `idp.mjs` imports; checked before spawning for a clear error.
const PACKAGES: [&str; 2] = ["oidc-provider", "jose"];
const INSTALL_HINT: &str = "run `infra/install-test-deps.sh js` (as root, from the repository root; `node` step too if node is missing)";

/// How the provider is configured. [`Default`]: client `dure-web` accepting any loopback
/// port on `/auth/callback`, audience `urn:dure`, access tokens 5 min, ID tokens 10 min,
/// refresh tokens 1 day.
#[derive(Debug, Clone)]
pub struct IdpOptions {
    pub client_id: String,
    pub client_secret: String,
    /// Exact redirect URIs of the web client; empty: any port of
    /// `http://127.0.0.1/auth/callback`.
    pub redirect_uris: Vec<String>,
    /// Exact post-logout redirect URIs of the web client; empty with empty `redirect_uris`:
    /// any port of `http://127.0.0.1/`.
    pub post_logout_redirect_uris: Vec<String>,
    pub audience: String,
    pub access_ttl: Duration,
    pub id_ttl: Duration,
    /// Zero: no refresh tokens at all.
    pub refresh_ttl: Duration,
}

impl Default for IdpOptions {
    fn default() -> Self {
        IdpOptions {
            client_id: WEB_CLIENT_ID.to_owned(),
            client_secret: WEB_CLIENT_SECRET.to_owned(),
            redirect_uris: Vec::new(),
            post_logout_redirect_uris: Vec::new(),
            audience: AUDIENCE.to_owned(),
            access_ttl: Duration::from_secs(300),
            id_ttl: Duration::from_secs(600),
            refresh_ttl: Duration::from_secs(86_400),
        }
    }
}

impl IdpOptions {
    /// For a Dure served at `public_url` (`http://127.0.0.1:PORT`, no trailing slash): redirect
    /// URI `{public_url}/auth/callback`, post-logout redirect URIs `{public_url}/` and
    /// `{public_url}`.
    pub fn for_dure(public_url: &str) -> Self {
        let base = public_url.trim_end_matches('/');
        IdpOptions {
            redirect_uris: vec![format!("{base}/auth/callback")],
            post_logout_redirect_uris: vec![format!("{base}/"), base.to_owned()],
            ..IdpOptions::default()
        }
    }
}

/// Which key [`TestIdp::sign`] signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyChoice {
    /// The provider's current signing key (published; its kid).
    Current,
    /// A key the provider holds but does not publish (its own kid). After
    /// [`TestIdp::restart_rotated`] it is a new one.
    Unpublished,
}

/// How a client authenticates at the token endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientAuth {
    /// A public client: `client_id` in the form.
    Public { client_id: String },
    /// `client_secret_basic`: HTTP Basic with the form-encoded id and secret.
    Basic {
        client_id: String,
        client_secret: String,
    },
    /// `client_secret_post`: both in the form.
    Post {
        client_id: String,
        client_secret: String,
    },
}

impl ClientAuth {
    pub fn client_id(&self) -> &str {
        match self {
            ClientAuth::Public { client_id }
            | ClientAuth::Basic { client_id, .. }
            | ClientAuth::Post { client_id, .. } => client_id,
        }
    }
}

/// A token endpoint answer.
#[derive(Debug, Clone, Deserialize)]
pub struct Tokens {
    pub access_token: String,
    /// Present whenever `openid` was granted (always, for the harness's requests).
    pub id_token: String,
    /// Present unless refresh tokens are off (`refresh_ttl` zero).
    pub refresh_token: Option<String>,
    pub token_type: String,
    pub expires_in: Option<u64>,
    pub scope: Option<String>,
}

/// The running provider. Dropping it kills the process.
pub struct TestIdp {
    opts: IdpOptions,
    port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
    log: Arc<Mutex<VecDeque<String>>>,
    http: reqwest::Client,
}

impl fmt::Debug for TestIdp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestIdp")
            .field("issuer", &self.issuer())
            .field("client_id", &self.opts.client_id)
            .finish_non_exhaustive()
    }
}

impl TestIdp {
    /// Starts the provider on a free loopback port with fresh keys; waits until it serves.
    pub async fn start(opts: IdpOptions) -> Result<TestIdp> {
        let dir = tempfile::Builder::new().prefix("dure-idp-").tempdir()?;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(REQUEST_TIMEOUT)
            .build()?;
        let mut idp = TestIdp {
            opts,
            port: 0,
            child: None,
            dir,
            log: Arc::new(Mutex::new(VecDeque::new())),
            http,
        };
        // Port 0: the script binds a free port itself and prints it, so nothing can take the
        // port between choosing and binding it.
        let (child, port) = idp.spawn(0, false).await?;
        idp.child = Some(child);
        idp.port = port;
        Ok(idp)
    }

    /// `http://127.0.0.1:PORT`: the issuer string, byte for byte.
    pub fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The web client's id (Dure's `--oidc-client-id`).
    pub fn client_id(&self) -> &str {
        &self.opts.client_id
    }

    /// The web client's secret (Dure's `--oidc-client-secret`).
    pub fn client_secret(&self) -> &str {
        &self.opts.client_secret
    }

    pub fn audience(&self) -> &str {
        &self.opts.audience
    }

    pub fn options(&self) -> &IdpOptions {
        &self.opts
    }

    /// The web client authenticating with `client_secret_basic` (as Dure does by default).
    pub fn web_auth(&self) -> ClientAuth {
        ClientAuth::Basic {
            client_id: self.opts.client_id.clone(),
            client_secret: self.opts.client_secret.clone(),
        }
    }

    /// The public `dure-cli` client.
    pub fn cli_auth(&self) -> ClientAuth {
        ClientAuth::Public {
            client_id: CLI_CLIENT_ID.to_owned(),
        }
    }

    /// `--oidc-issuer ISSUER --oidc-client-id ID --oidc-client-secret SECRET --oidc-audience
    /// AUD` for `dure` (add `--public-url`, `--listen` and `--admin-group` yourself).
    pub fn dure_flags(&self) -> Vec<String> {
        vec![
            "--oidc-issuer".to_owned(),
            self.issuer(),
            "--oidc-client-id".to_owned(),
            self.opts.client_id.clone(),
            "--oidc-client-secret".to_owned(),
            self.opts.client_secret.clone(),
            "--oidc-audience".to_owned(),
            self.opts.audience.clone(),
        ]
    }

    /// The keys file (`{"keys": [...], "unpublished": ..., "cookie_keys": [...]}`).
    pub fn keys_file(&self) -> PathBuf {
        self.dir.path().join("keys.json")
    }

    fn state_file(&self) -> PathBuf {
        self.dir.path().join("state.json")
    }

    /// Everything the provider printed (request log, notices, errors), all runs.
    pub fn logs(&self) -> String {
        lock(&self.log)
            .iter()
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Stops the provider (SIGTERM) and starts it again on the same port with rotated keys:
    /// the previously unpublished key signs from now on and is published first, the old keys
    /// stay published after it, and a new unpublished key is made (`idp.mjs --rotate`).
    /// Sessions, grants and refresh tokens are kept.
    pub async fn restart_rotated(&mut self) -> Result<()> {
        self.restart_with(true).await
    }

    /// Stops and starts the provider on the same port with the same keys and state.
    pub async fn restart(&mut self) -> Result<()> {
        self.restart_with(false).await
    }

    async fn restart_with(&mut self, rotate: bool) -> Result<()> {
        self.stop().await?;
        push_log(
            &self.log,
            format!(
                "--- harness: restarting{}",
                if rotate { " with --rotate" } else { "" }
            ),
        );
        // The script binds before it rotates the keys file, so a start that failed to bind
        // (the old process's port not released yet) is retried with the same flags.
        let deadline = tokio::time::Instant::now() + REBIND_FOR;
        loop {
            match self.spawn(self.port, rotate).await {
                Ok((child, _)) => {
                    self.child = Some(child);
                    return Ok(());
                }
                Err(e)
                    if tokio::time::Instant::now() < deadline
                        && e.to_string().contains("cannot listen") =>
                {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// SIGTERM, then waits for the exit (killing it after 10 s). Returns the exit code; `None`
    /// when it was not running.
    pub async fn stop(&mut self) -> Result<Option<i32>> {
        let Some(mut child) = self.child.take() else {
            return Ok(None);
        };
        if let Some(pid) = child.id() {
            // `unsafe` (libc::kill) is forbidden in this workspace: use the kill command.
            let _ = std::process::Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status();
        }
        match tokio::time::timeout(STOP_TIMEOUT, child.wait()).await {
            Ok(status) => Ok(status?.code()),
            Err(_) => {
                child.kill().await?;
                Err(format!(
                    "the provider did not exit within {STOP_TIMEOUT:?} of SIGTERM (killed)"
                )
                .into())
            }
        }
    }

    /// Spawns `node idp.mjs` on `port` (0: any) and waits for its "listening on" line.
    async fn spawn(&self, port: u16, rotate: bool) -> Result<(Child, u16)> {
        let dir = JsDriver::js_dir();
        let script = dir.join("idp.mjs");
        if !script.is_file() {
            return Err(format!("{} is missing", script.display()).into());
        }
        let missing: Vec<&str> = PACKAGES
            .iter()
            .copied()
            .filter(|p| {
                !dir.join("node_modules")
                    .join(p)
                    .join("package.json")
                    .is_file()
            })
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "the test OpenID provider needs {} in {}: {INSTALL_HINT}",
                missing.join(", "),
                dir.join("node_modules").display()
            )
            .into());
        }
        let node = std::env::var_os(NODE_ENV).unwrap_or_else(|| "node".into());
        let mut cmd = Command::new(&node);
        cmd.arg(&script)
            .arg("--port")
            .arg(port.to_string())
            .arg("--keys")
            .arg(self.keys_file())
            .arg("--state")
            .arg(self.state_file())
            .arg("--client-id")
            .arg(&self.opts.client_id)
            .arg("--client-secret")
            .arg(&self.opts.client_secret)
            .arg("--cli-client-id")
            .arg(CLI_CLIENT_ID)
            .arg("--audience")
            .arg(&self.opts.audience)
            .arg("--access-ttl")
            .arg(self.opts.access_ttl.as_secs().max(1).to_string())
            .arg("--id-ttl")
            .arg(self.opts.id_ttl.as_secs().max(1).to_string())
            .arg("--refresh-ttl")
            .arg(self.opts.refresh_ttl.as_secs().to_string());
        for uri in &self.opts.redirect_uris {
            cmd.arg("--redirect-uri").arg(uri);
        }
        for uri in &self.opts.post_logout_redirect_uris {
            cmd.arg("--post-logout-redirect-uri").arg(uri);
        }
        if rotate {
            cmd.arg("--rotate");
        }
        cmd.current_dir(&dir)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                format!(
                    "`{}` not found ({NODE_ENV} or PATH): {INSTALL_HINT}",
                    node.to_string_lossy()
                )
            } else {
                format!(
                    "starting {} {}: {e}",
                    node.to_string_lossy(),
                    script.display()
                )
            }
        })?;
        let (ready_tx, ready_rx) = oneshot::channel();
        if let Some(out) = child.stdout.take() {
            collect(out, self.log.clone(), Some(ready_tx));
        }
        if let Some(err) = child.stderr.take() {
            collect(err, self.log.clone(), None);
        }
        let issuer = tokio::select! {
            ready = ready_rx => ready.ok(),
            _ = tokio::time::sleep(START_TIMEOUT) => None,
        };
        let Some(issuer) = issuer else {
            let _ = child.start_kill();
            let status = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
            // Let the readers catch up with what node printed before dying.
            tokio::time::sleep(Duration::from_millis(200)).await;
            let status = match status {
                Ok(Ok(s)) => s.to_string(),
                _ => "exit status unknown".to_owned(),
            };
            return Err(format!(
                "the test OpenID provider did not start ({status}); its output:\n{}",
                self.logs()
            )
            .into());
        };
        let bound = issuer
            .rsplit(':')
            .next()
            .and_then(|p| p.parse::<u16>().ok())
            .ok_or_else(|| format!("unexpected issuer line from idp.mjs: {issuer:?}"))?;
        if port != 0 && bound != port {
            return Err(format!("idp.mjs listened on {bound}, not on port {port}").into());
        }
        Ok((child, bound))
    }

    fn read_keys_file(&self) -> Result<Value> {
        let text = std::fs::read_to_string(self.keys_file())
            .map_err(|e| format!("reading {}: {e}", self.keys_file().display()))?;
        Ok(serde_json::from_str(&text)?)
    }

    /// The kid of the key that signs now (the first published one).
    pub fn signing_kid(&self) -> Result<String> {
        let keys = self.read_keys_file()?;
        keys["keys"][0]["kid"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| "keys file without keys[0].kid".into())
    }

    /// The kid of the key [`KeyChoice::Unpublished`] signs with.
    pub fn unpublished_kid(&self) -> Result<String> {
        let keys = self.read_keys_file()?;
        keys["unpublished"]["kid"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| "keys file without unpublished.kid".into())
    }

    /// GET and parse JSON; fails on a non-2xx answer.
    async fn get_json(&self, url: &str) -> Result<Value> {
        let resp = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        let status = resp.status();
        let body = resp.text().await?;
        if !status.is_success() {
            return Err(format!("GET {url} answered {status}: {body}").into());
        }
        serde_json::from_str(&body).map_err(|e| format!("GET {url}: not JSON ({e}): {body}").into())
    }

    /// The discovery document (`/.well-known/openid-configuration`).
    pub async fn discovery(&self) -> Result<Value> {
        self.get_json(&format!(
            "{}/.well-known/openid-configuration",
            self.issuer()
        ))
        .await
    }

    async fn endpoint(&self, name: &str) -> Result<String> {
        self.discovery().await?[name]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("discovery has no {name}").into())
    }

    /// The public JWKS the provider publishes (`/__test/keys`, the same as its `jwks_uri`).
    pub async fn jwks(&self) -> Result<Value> {
        self.get_json(&format!("{}/__test/keys", self.issuer()))
            .await
    }

    /// The kids of the published keys, signing key first.
    pub async fn published_kids(&self) -> Result<Vec<String>> {
        Ok(self.jwks().await?["keys"]
            .as_array()
            .map(|keys| {
                keys.iter()
                    .filter_map(|k| k["kid"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// A compact JWS over `claims` (used exactly as given), signed with `key`. Header defaults
    /// `{"alg": "RS256", "typ": "at+jwt", "kid": <the key's kid>}`; members of `header`
    /// override them and a `null` member removes one. `"alg": "none"` gives an unsigned
    /// `header.payload.`; an `HS*` alg is keyed with the key's public SPKI PEM (algorithm
    /// confusion); `RS*`/`PS*` sign with the RSA key.
    pub async fn sign(&self, header: Value, claims: Value, key: KeyChoice) -> Result<String> {
        let key = match key {
            KeyChoice::Current => "current",
            KeyChoice::Unpublished => "unpublished",
        };
        let url = format!("{}/__test/sign", self.issuer());
        let resp = self
            .http
            .post(&url)
            .json(&json!({ "header": header, "claims": claims, "key": key }))
            .send()
            .await
            .map_err(|e| format!("POST {url}: {e}"))?;
        let status = resp.status();
        let body: Value = resp.json().await?;
        match body["token"].as_str() {
            Some(token) if status.is_success() => Ok(token.to_owned()),
            _ => Err(format!("POST {url} answered {status}: {body}").into()),
        }
    }

    /// Every refresh token the provider has issued (and still holds), read from its state
    /// file: opaque tokens are stored under their own value (`RefreshToken:<token>`).
    pub fn issued_refresh_tokens(&self) -> Result<Vec<String>> {
        let text = std::fs::read_to_string(self.state_file())?;
        let records: serde_json::Map<String, Value> = serde_json::from_str(&text)?;
        Ok(records
            .keys()
            .filter_map(|k| k.strip_prefix("RefreshToken:"))
            .map(str::to_owned)
            .collect())
    }

    /// Makes the provider's JWKS endpoint answer only after `for_how_long` (from now on, for
    /// that long): a provider hanging while Dure fetches its keys.
    pub async fn stall_jwks(&self, for_how_long: Duration) -> Result<()> {
        let url = format!("{}/__test/stall-jwks", self.issuer());
        let resp = self
            .http
            .post(&url)
            .json(&json!({ "ms": for_how_long.as_millis() as u64 }))
            .send()
            .await
            .map_err(|e| format!("POST {url}: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("POST {url} answered {}", resp.status()).into());
        }
        Ok(())
    }

    /// Claims like those of a real access token for `user` (iss, sub, aud, client_id, scope,
    /// iat, exp = now + `lifetime`, jti, name, email, groups), for [`TestIdp::sign`]. Unknown
    /// users get just iss/sub/aud/times.
    pub fn claims_for(&self, user_login: &str, lifetime: Duration) -> Value {
        let now = unix_now();
        let mut claims = json!({
            "iss": self.issuer(),
            "sub": user_login,
            "aud": self.opts.audience,
            "client_id": CLI_CLIENT_ID,
            "scope": "openid profile email groups",
            "iat": now,
            "exp": now + lifetime.as_secs(),
            "jti": random_b64(16),
        });
        if let Some(u) = user(user_login) {
            claims["name"] = json!(u.name);
            claims["email"] = json!(u.email);
            claims["email_verified"] = json!(u.email_verified);
            claims["groups"] = json!(u.groups);
        }
        claims
    }

    /// Tokens for `user` from the public `dure-cli` client, through the real authorization
    /// code + PKCE flow in a fresh cookie jar.
    pub async fn access_token(&self, user: &str) -> Result<Tokens> {
        let redirect_uri = format!("http://127.0.0.1:{}/cb", free_port()?);
        self.code_flow(&Browser::new()?, &self.cli_auth(), &redirect_uri, user)
            .await
    }

    /// The authorization code + PKCE flow for `user` as `client` in `browser` (whose provider
    /// session it reuses or sets): authorization request with state, nonce, S256 challenge and
    /// `login_hint=user`, the provider's redirects up to `redirect_uri` (never requested), then
    /// the code exchange. Checks `state`, `iss` and the ID token's `nonce`.
    pub async fn code_flow(
        &self,
        browser: &Browser,
        client: &ClientAuth,
        redirect_uri: &str,
        user: &str,
    ) -> Result<Tokens> {
        let verifier = random_b64(32);
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        let state = random_b64(16);
        let nonce = random_b64(16);
        let mut url = Url::parse(&self.endpoint("authorization_endpoint").await?)?;
        url.query_pairs_mut()
            .append_pair("client_id", client.client_id())
            .append_pair("response_type", "code")
            .append_pair("scope", SCOPES)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256")
            .append_pair("state", &state)
            .append_pair("nonce", &nonce)
            .append_pair("login_hint", user);
        let back = browser.through_idp(url.as_str()).await.map_err(|e| {
            format!(
                "signing in {user:?} at the provider: {e}\nprovider log:\n{}",
                self.logs()
            )
        })?;
        let back = Url::parse(&back)?;
        let param = |name: &str| {
            back.query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        };
        if let Some(error) = param("error") {
            return Err(format!(
                "the provider refused the authorization: {error}: {}",
                param("error_description").unwrap_or_default()
            )
            .into());
        }
        if param("state").as_deref() != Some(state.as_str()) {
            return Err(format!("state not returned intact: {back}").into());
        }
        if param("iss") != Some(self.issuer()) {
            return Err(
                format!("iss missing or wrong in the authorization response: {back}").into(),
            );
        }
        let code = param("code").ok_or_else(|| format!("no code in {back}"))?;
        let (status, body) = self
            .token_request(
                client,
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", redirect_uri),
                    ("code_verifier", &verifier),
                ],
            )
            .await?;
        if status != 200 {
            return Err(format!("code exchange answered {status}: {body}").into());
        }
        let tokens: Tokens = serde_json::from_value(body.clone())
            .map_err(|e| format!("unexpected token response ({e}): {body}"))?;
        let (_, id_claims) = decode_jwt(&tokens.id_token)?;
        if id_claims["nonce"].as_str() != Some(nonce.as_str()) {
            return Err(format!("ID token nonce mismatch: {id_claims}").into());
        }
        Ok(tokens)
    }

    /// Exchanges a refresh token (`grant_type=refresh_token`) as `client`.
    pub async fn refresh(&self, client: &ClientAuth, refresh_token: &str) -> Result<Tokens> {
        let (status, body) = self
            .token_request(
                client,
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", refresh_token),
                ],
            )
            .await?;
        if status != 200 {
            return Err(format!("refresh answered {status}: {body}").into());
        }
        serde_json::from_value(body.clone())
            .map_err(|e| format!("unexpected token response ({e}): {body}").into())
    }

    /// A raw token endpoint request authenticated as `client`: the status and the JSON body
    /// (for asserting refusals).
    pub async fn token_request(
        &self,
        client: &ClientAuth,
        params: &[(&str, &str)],
    ) -> Result<(u16, Value)> {
        let url = self.endpoint("token_endpoint").await?;
        let mut form: Vec<(&str, &str)> = params.to_vec();
        let mut req = self.http.post(&url);
        match client {
            ClientAuth::Public { client_id } => form.push(("client_id", client_id)),
            ClientAuth::Post {
                client_id,
                client_secret,
            } => {
                form.push(("client_id", client_id));
                form.push(("client_secret", client_secret));
            }
            ClientAuth::Basic {
                client_id,
                client_secret,
            } => {
                // RFC 6749 2.3.1: id and secret are form-encoded before Basic's base64.
                let credentials =
                    format!("{}:{}", form_encode(client_id), form_encode(client_secret));
                req = req.header(
                    "authorization",
                    format!(
                        "Basic {}",
                        base64::engine::general_purpose::STANDARD.encode(credentials)
                    ),
                );
            }
        }
        let resp = req
            .form(&form)
            .send()
            .await
            .map_err(|e| format!("POST {url}: {e}"))?;
        let status = resp.status().as_u16();
        let text = resp.text().await?;
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok((status, body))
    }

    /// The provider's end-session URL with `client_id`, `post_logout_redirect_uri`, `state`
    /// and, when given, `id_token_hint`. Walk it with [`Browser::logout_at_idp`].
    pub async fn end_session_url(
        &self,
        client_id: &str,
        post_logout_redirect_uri: &str,
        state: &str,
        id_token_hint: Option<&str>,
    ) -> Result<String> {
        let mut url = Url::parse(&self.endpoint("end_session_endpoint").await?)?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("client_id", client_id)
                .append_pair("post_logout_redirect_uri", post_logout_redirect_uri)
                .append_pair("state", state);
            if let Some(hint) = id_token_hint {
                q.append_pair("id_token_hint", hint);
            }
        }
        Ok(url.into())
    }
}

impl Drop for TestIdp {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
    }
}

/// A loopback port that was free a moment ago (bind `127.0.0.1:0`, read, drop): for a server
/// whose URL must be known before it starts, as Dure's public URL must be for the provider.
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

/// A port that was free on every interface a moment ago (bind `0.0.0.0:0`): for a server that
/// listens on all interfaces, where a port free on loopback alone may be taken elsewhere.
pub fn free_port_on_all_interfaces() -> Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::UNSPECIFIED, 0))?;
    Ok(listener.local_addr()?.port())
}

/// A JWT's header and payload, decoded without any verification.
pub fn decode_jwt(token: &str) -> Result<(Value, Value)> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(format!("not a compact JWS (three parts): {token:?}").into());
    };
    let part = |p: &str, what: &str| -> Result<Value> {
        let bytes = URL_SAFE_NO_PAD
            .decode(p)
            .map_err(|e| format!("JWT {what} is not base64url: {e}"))?;
        serde_json::from_slice(&bytes).map_err(|e| format!("JWT {what} is not JSON: {e}").into())
    };
    Ok((part(header, "header")?, part(payload, "payload")?))
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn random_b64(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

/// application/x-www-form-urlencoded encoding of one value.
fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(char::from(b));
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn collect(
    stream: impl AsyncRead + Unpin + Send + 'static,
    log: Arc<Mutex<VecDeque<String>>>,
    mut ready: Option<oneshot::Sender<String>>,
) {
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(issuer) = line.strip_prefix("listening on ")
                && let Some(tx) = ready.take()
            {
                let _ = tx.send(issuer.trim().to_owned());
            }
            push_log(&log, line);
        }
    });
}

fn push_log(log: &Mutex<VecDeque<String>>, line: String) {
    let mut l = lock(log);
    if l.len() == LOG_LINES {
        l.pop_front();
    }
    l.push_back(line);
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
