//! Single sign-on and access control against a real OpenID provider (node `oidc-provider`,
//! started by the harness) and the real `dure` binary: the browser flow over HTTP with a
//! cookie jar, bearer tokens, roles and shares, live sockets losing access, the audit log.

use std::time::Duration;

use dure_tests::browser::Browser;
use dure_tests::idp::{IdpOptions, KeyChoice, TestIdp, free_port, free_port_on_all_interfaces};
use dure_tests::server::{BoxError, Dure, temp_dir};
use dure_tests::yclient::{ConnectOptions, YClient};
use reqwest::Method;
use serde_json::{Value, json};

type R = Result<(), BoxError>;

const SCOPES: &str = "openid profile email groups offline_access";

struct Env {
    idp: TestIdp,
    dure: Dure,
    base: String,
    /// Dure's flags, its data directory and address, for a restart.
    flags: Vec<String>,
    data: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Env {
    async fn start(
        opts: impl FnOnce(IdpOptions) -> IdpOptions,
        extra: &[&str],
    ) -> Result<Env, BoxError> {
        Self::start_with_audience(opts, extra, true).await
    }

    /// `with_audience` false: Dure is not told the provider's API audience (`oidc_audience`
    /// unset, so it defaults to the client id).
    async fn start_with_audience(
        opts: impl FnOnce(IdpOptions) -> IdpOptions,
        extra: &[&str],
        with_audience: bool,
    ) -> Result<Env, BoxError> {
        let port = free_port()?;
        let base = format!("http://127.0.0.1:{port}");
        let idp = TestIdp::start(opts(IdpOptions::for_dure(&base))).await?;
        let dir = temp_dir()?;
        let data = dir.path().join("data");
        let mut flags: Vec<String> = idp.dure_flags();
        if !with_audience {
            let at = flags
                .iter()
                .position(|f| f == "--oidc-audience")
                .ok_or("no audience flag")?;
            flags.drain(at..at + 2);
        }
        for f in [
            "--public-url",
            &base,
            "--admin-group",
            "dure-admins",
            "--oidc-scopes",
            SCOPES,
            "--oidc-jwks-refetch-interval",
            "1s",
            "--log",
            "debug,hyper=info,reqwest=info,h2=info",
        ] {
            flags.push(f.to_owned());
        }
        flags.extend(extra.iter().map(|s| (*s).to_owned()));
        let args: Vec<&str> = flags.iter().map(String::as_str).collect();
        let dure = Dure::start_on(&data, &format!("127.0.0.1:{port}"), &args).await?;
        Ok(Env {
            idp,
            dure,
            base,
            flags,
            data,
            _dir: dir,
        })
    }

    /// Stops Dure and starts it again on the same data, address and flags.
    async fn restart_dure(&mut self) -> Result<(), BoxError> {
        self.dure.sigterm(Duration::from_secs(15)).await?;
        let listen = self.base.trim_start_matches("http://").to_owned();
        let args: Vec<&str> = self.flags.iter().map(String::as_str).collect();
        self.dure = Dure::start_on(&self.data, &listen, &args).await?;
        Ok(())
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn signed_in(&self, user: &str) -> Result<Browser, BoxError> {
        let b = Browser::new()?;
        let trace = b.login(&self.base, user).await?;
        let landing = trace.landing.as_ref().ok_or("no landing page")?;
        assert!(
            landing.status < 400,
            "landing after sign-in: {}",
            landing.status
        );
        Ok(b)
    }

    /// Cookie and Origin headers for a browser socket.
    fn browser_socket(&self, b: &Browser) -> Result<ConnectOptions, BoxError> {
        let cookie = b
            .cookie(&self.base, "dure_session")
            .ok_or("no session cookie")?;
        Ok(ConnectOptions {
            headers: vec![
                ("Cookie".into(), format!("dure_session={cookie}")),
                ("Origin".into(), self.base.clone()),
            ],
            ..ConnectOptions::default()
        })
    }

    fn token_socket(token: &str) -> ConnectOptions {
        ConnectOptions {
            headers: vec![(
                "Sec-WebSocket-Protocol".into(),
                format!("dure, dure-token.{token}"),
            )],
            ..ConnectOptions::default()
        }
    }

    fn ws(&self, doc: &str) -> String {
        self.dure.doc_url(doc, false)
    }

    async fn api(
        &self,
        b: &Browser,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value), BoxError> {
        let origin = self.base.clone();
        let resp = match body {
            Some(body) => {
                b.send_json(method, &self.url(path), Some(&origin), &body)
                    .await?
            }
            None => {
                b.request(
                    method,
                    &self.url(path),
                    &[("origin", origin.as_str())],
                    None,
                )
                .await?
            }
        };
        let v = serde_json::from_str(&resp.body).unwrap_or(Value::Null);
        Ok((resp.status, v))
    }

    async fn bearer(&self, token: &str, path: &str) -> Result<(u16, Value), BoxError> {
        let resp = reqwest::Client::new()
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await?;
        let status = resp.status().as_u16();
        let text = resp.text().await?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    /// Nothing secret in Dure's log: not the client secret, not any token or cookie given.
    fn assert_no_secrets(&self, secrets: &[&str]) {
        let logs = self.dure.logs();
        assert!(logs.contains("listening on"), "log was captured");
        for s in secrets.iter().chain([&self.idp.client_secret()]) {
            if s.len() >= 8 {
                assert!(
                    !logs.contains(s),
                    "a secret ({}…) appears in dure's log",
                    &s[..8]
                );
            }
        }
    }
}

async fn create_doc(env: &Env, b: &Browser, title: &str) -> Result<String, BoxError> {
    let (status, v) = env
        .api(b, Method::POST, "/api/docs", Some(json!({"title": title})))
        .await?;
    assert_eq!(status, 201, "create: {v}");
    Ok(v["id"].as_str().ok_or("no id")?.to_owned())
}

async fn role_of(env: &Env, b: &Browser, doc: &str) -> Result<(u16, Option<String>), BoxError> {
    let (status, v) = env
        .api(b, Method::GET, &format!("/api/docs/{doc}"), None)
        .await?;
    Ok((status, v["role"].as_str().map(str::to_owned)))
}

fn ids(v: &Value) -> Vec<String> {
    v["docs"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|d| d["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_shares_roles_and_audit() -> R {
    let env = Env::start(|o| o, &[]).await?;

    // The browser flow: PKCE (S256), nonce and state on the way out; the cookie on return.
    let alice = Browser::new()?;
    let trace = alice.login(&env.base, "alice").await?;
    for param in [
        "code_challenge=",
        "code_challenge_method=S256",
        "nonce=",
        "state=",
    ] {
        assert!(
            trace.authorize_url.contains(param),
            "authorize URL lacks {param}: {}",
            trace.authorize_url
        );
    }
    let set_cookie = trace
        .callback
        .set_cookie("dure_session")
        .ok_or("callback set no session cookie")?;
    let lower = set_cookie.to_lowercase();
    assert!(lower.contains("httponly"), "{set_cookie}");
    assert!(lower.contains("samesite=lax"), "{set_cookie}");
    assert!(
        !lower.contains("secure"),
        "loopback http cannot use Secure: {set_cookie}"
    );
    let (status, me) = env.api(&alice, Method::GET, "/api/me", None).await?;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["id"], "alice");
    assert_eq!(me["name"], "Alice Kim");
    assert_eq!(me["email"], "alice@example.gov");
    assert_eq!(me["groups"], json!(["finance"]));
    assert_eq!(me["admin"], false);
    assert_eq!(me["mode"], "oidc");

    let bob = env.signed_in("bob").await?;
    let carol = env.signed_in("carol").await?;
    let admin = env.signed_in("admin").await?;
    let anon = Browser::new()?;
    let (status, v) = env.api(&anon, Method::GET, "/api/me", None).await?;
    assert_eq!(status, 401, "{v}");
    assert_eq!(v["login"], "/auth/login");

    // A change without our Origin is refused (CSRF), with it accepted.
    let resp = alice
        .post_json(&env.url("/api/docs"), None, &json!({"title": "x"}))
        .await?;
    assert_eq!(resp.status, 403, "no Origin: {}", resp.body);
    let resp = alice
        .post_json(
            &env.url("/api/docs"),
            Some("https://evil.example"),
            &json!({"title": "x"}),
        )
        .await?;
    assert_eq!(resp.status, 403, "foreign Origin: {}", resp.body);
    let doc = create_doc(&env, &alice, "예산 2027 Budget").await?;

    // Nobody else sees it yet.
    assert_eq!(
        role_of(&env, &alice, &doc).await?,
        (200, Some("owner".into()))
    );
    assert_eq!(role_of(&env, &bob, &doc).await?.0, 403);
    let (_, list) = env.api(&bob, Method::GET, "/api/docs", None).await?;
    assert!(!ids(&list).contains(&doc));
    assert_eq!(role_of(&env, &bob, "NoSuchDocument123").await?.0, 404);

    // A group share reaches bob (finance), not carol (hr).
    let (status, v) = env
        .api(
            &alice,
            Method::POST,
            &format!("/api/docs/{doc}/shares"),
            Some(json!({"kind": "group", "id": "finance", "role": "viewer"})),
        )
        .await?;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        role_of(&env, &bob, &doc).await?,
        (200, Some("viewer".into()))
    );
    assert_eq!(role_of(&env, &carol, &doc).await?.0, 403);
    // A user share by e-mail.
    let (status, v) = env
        .api(
            &alice,
            Method::POST,
            &format!("/api/docs/{doc}/shares"),
            Some(json!({"kind": "user", "id": "carol@example.gov", "role": "editor"})),
        )
        .await?;
    assert_eq!(status, 200, "{v}");
    assert!(
        v["shares"].as_array().is_some_and(|s| s
            .iter()
            .any(|s| s["id"] == "carol" && s["role"] == "editor")),
        "{v}"
    );
    assert_eq!(
        role_of(&env, &carol, &doc).await?,
        (200, Some("editor".into()))
    );
    // Shares are shown to owners only.
    let (_, v) = env
        .api(&carol, Method::GET, &format!("/api/docs/{doc}"), None)
        .await?;
    assert!(v.get("shares").is_none(), "{v}");

    // Lists by scope.
    let (_, v) = env
        .api(&alice, Method::GET, "/api/docs?scope=mine", None)
        .await?;
    assert_eq!(ids(&v), vec![doc.clone()]);
    let (_, v) = env
        .api(&bob, Method::GET, "/api/docs?scope=shared", None)
        .await?;
    assert_eq!(ids(&v), vec![doc.clone()]);
    let (_, v) = env
        .api(&bob, Method::GET, "/api/docs?scope=mine", None)
        .await?;
    assert!(ids(&v).is_empty());
    let (_, v) = env
        .api(&bob, Method::GET, "/api/docs?q=budget", None)
        .await?;
    assert_eq!(ids(&v), vec![doc.clone()], "title search");
    let (_, v) = env
        .api(&bob, Method::GET, "/api/docs?q=nothing-like-it", None)
        .await?;
    assert!(ids(&v).is_empty());

    // Rights by role.
    let (status, _) = env
        .api(
            &carol,
            Method::PATCH,
            &format!("/api/docs/{doc}"),
            Some(json!({"title": "Budget (carol)"})),
        )
        .await?;
    assert_eq!(status, 200, "editor renames");
    let (status, _) = env
        .api(
            &bob,
            Method::PATCH,
            &format!("/api/docs/{doc}"),
            Some(json!({"title": "nope"})),
        )
        .await?;
    assert_eq!(status, 403, "viewer cannot rename");
    let (status, _) = env
        .api(
            &carol,
            Method::POST,
            &format!("/api/docs/{doc}/shares"),
            Some(json!({"kind": "org", "role": "editor"})),
        )
        .await?;
    assert_eq!(status, 403, "editor cannot share");
    let (status, _) = env
        .api(&carol, Method::DELETE, &format!("/api/docs/{doc}"), None)
        .await?;
    assert_eq!(status, 403, "editor cannot delete");
    let (status, v) = env
        .api(
            &alice,
            Method::POST,
            &format!("/api/docs/{doc}/shares"),
            Some(json!({"kind": "user", "id": "nobody@example.gov", "role": "viewer"})),
        )
        .await?;
    assert_eq!(status, 404, "unknown user: {v}");

    // Organisation-wide.
    let (_, v) = env
        .api(&admin, Method::GET, "/api/docs?scope=org", None)
        .await?;
    assert!(ids(&v).is_empty());
    let (status, _) = env
        .api(
            &alice,
            Method::POST,
            &format!("/api/docs/{doc}/shares"),
            Some(json!({"kind": "org", "role": "viewer"})),
        )
        .await?;
    assert_eq!(status, 200);
    let (_, v) = env
        .api(&admin, Method::GET, "/api/docs?scope=org", None)
        .await?;
    assert_eq!(ids(&v), vec![doc.clone()]);
    let (status, _) = env
        .api(
            &alice,
            Method::DELETE,
            &format!("/api/docs/{doc}/shares/org"),
            None,
        )
        .await?;
    assert_eq!(status, 200);
    assert_eq!(role_of(&env, &admin, &doc).await?.0, 403);
    let (status, _) = env
        .api(
            &alice,
            Method::DELETE,
            &format!("/api/docs/{doc}/shares/group/finance"),
            None,
        )
        .await?;
    assert_eq!(status, 200);
    assert_eq!(role_of(&env, &bob, &doc).await?.0, 403);

    // People directory for the sharing dialog.
    let (_, v) = env
        .api(&alice, Method::GET, "/api/users?q=car", None)
        .await?;
    assert_eq!(v["users"][0]["id"], "carol", "{v}");

    // A bearer token from the same provider works for the API.
    let tokens = env.idp.access_token("bob").await?;
    let (status, me) = env.bearer(&tokens.access_token, "/api/me").await?;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["id"], "bob");
    assert_eq!(me["groups"], json!(["finance"]));

    // Trash and restore.
    let (status, v) = env
        .api(&alice, Method::DELETE, &format!("/api/docs/{doc}"), None)
        .await?;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        role_of(&env, &carol, &doc).await?.0,
        404,
        "deleted is gone for others"
    );
    let (_, v) = env
        .api(&alice, Method::GET, "/api/docs?scope=trash", None)
        .await?;
    assert_eq!(ids(&v), vec![doc.clone()]);
    assert!(v["docs"][0]["purge_at"].is_string(), "{v}");
    let (status, _) = env
        .api(
            &carol,
            Method::POST,
            &format!("/api/docs/{doc}/restore"),
            None,
        )
        .await?;
    assert_eq!(status, 404, "only the owner restores");
    let (status, _) = env
        .api(
            &alice,
            Method::POST,
            &format!("/api/docs/{doc}/restore"),
            None,
        )
        .await?;
    assert_eq!(status, 200);
    assert_eq!(
        role_of(&env, &carol, &doc).await?,
        (200, Some("editor".into()))
    );

    // Sign-out ends the session here and offers the provider's end-session URL.
    let (status, v) = env.api(&bob, Method::POST, "/auth/logout", None).await?;
    assert_eq!(status, 200, "{v}");
    let end = v["redirect"].as_str().ok_or("no end-session redirect")?;
    assert!(end.starts_with(&env.idp.issuer()), "{end}");
    assert!(end.contains("id_token_hint="), "{end}");
    let back = bob.logout_at_idp(end).await?;
    assert!(
        back.starts_with(&env.base),
        "provider sent us back to {back}"
    );
    let (status, _) = env.api(&bob, Method::GET, "/api/me", None).await?;
    assert_eq!(status, 401, "signed out");

    // The audit log: administrators only, filtered.
    let (status, _) = env.api(&alice, Method::GET, "/api/audit", None).await?;
    assert_eq!(status, 403);
    let (status, v) = env
        .api(&admin, Method::GET, &format!("/api/audit?doc={doc}"), None)
        .await?;
    assert_eq!(status, 200, "{v}");
    let actions: Vec<&str> = v["events"]
        .as_array()
        .ok_or("events")?
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for a in ["create", "share", "rename", "revoke", "delete", "restore"] {
        assert!(actions.contains(&a), "no {a} in {actions:?}");
    }
    assert!(
        v["events"]
            .as_array()
            .ok_or("events")?
            .iter()
            .all(|e| e["doc"] == doc.as_str() && e["ip"] == "127.0.0.1")
    );
    let (_, v) = env
        .api(&admin, Method::GET, "/api/audit?user=bob", None)
        .await?;
    let bob_actions: Vec<&str> = v["events"]
        .as_array()
        .ok_or("events")?
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert!(
        bob_actions.contains(&"sign_in") && bob_actions.contains(&"sign_out"),
        "{bob_actions:?}"
    );
    assert!(
        v["events"]
            .as_array()
            .ok_or("events")?
            .iter()
            .all(|e| e["actor"]["id"] == "bob")
    );
    let (_, v) = env
        .api(
            &admin,
            Method::GET,
            "/api/audit?from=2001-01-01T00:00:00Z&to=2001-01-02T00:00:00Z",
            None,
        )
        .await?;
    assert_eq!(v["events"], json!([]), "time range");
    let (status, _) = env
        .api(&admin, Method::GET, "/api/audit?from=yesterday", None)
        .await?;
    assert_eq!(status, 400);

    let cookie = alice.cookie(&env.base, "dure_session").ok_or("cookie")?;
    env.assert_no_secrets(&[&cookie, &tokens.access_token, &tokens.id_token]);
    Ok(())
}

/// A token signed with the provider's own key but with `edit` applied to its claims.
async fn forged(
    env: &Env,
    header: Value,
    edit: impl FnOnce(&mut Value),
    key: KeyChoice,
) -> Result<String, BoxError> {
    let mut claims = env.idp.claims_for("alice", Duration::from_secs(300));
    edit(&mut claims);
    env.idp.sign(header, claims, key).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_tokens_are_checked() -> R {
    let mut env = Env::start(|o| o, &[]).await?;
    let now = dure_tests::idp::unix_now();
    let good = forged(&env, json!({}), |_| {}, KeyChoice::Current).await?;
    let (status, me) = env.bearer(&good, "/api/me").await?;
    assert_eq!(
        status, 200,
        "a well-formed token signed by the issuer: {me}"
    );

    let cases: Vec<(&str, String)> = vec![
        (
            "wrong issuer",
            forged(
                &env,
                json!({}),
                |c| c["iss"] = json!("https://other.example"),
                KeyChoice::Current,
            )
            .await?,
        ),
        (
            "wrong audience",
            forged(
                &env,
                json!({}),
                |c| c["aud"] = json!("urn:other"),
                KeyChoice::Current,
            )
            .await?,
        ),
        (
            "expired",
            forged(
                &env,
                json!({}),
                |c| {
                    c["exp"] = json!(now - 600);
                    c["iat"] = json!(now - 900)
                },
                KeyChoice::Current,
            )
            .await?,
        ),
        (
            "not yet valid",
            forged(
                &env,
                json!({}),
                |c| c["nbf"] = json!(now + 600),
                KeyChoice::Current,
            )
            .await?,
        ),
        ("bad signature", {
            let t = good.clone();
            let (head, sig) = t.rsplit_once('.').ok_or("jws")?;
            let mut sig: Vec<char> = sig.chars().collect();
            let i = sig.len() / 2;
            sig[i] = if sig[i] == 'A' { 'B' } else { 'A' };
            format!("{head}.{}", sig.into_iter().collect::<String>())
        }),
        (
            "signed by a key the issuer never published",
            forged(&env, json!({}), |_| {}, KeyChoice::Unpublished).await?,
        ),
        (
            "alg none",
            forged(&env, json!({"alg": "none"}), |_| {}, KeyChoice::Current).await?,
        ),
        (
            "HS256 keyed with the public key",
            forged(&env, json!({"alg": "HS256"}), |_| {}, KeyChoice::Current).await?,
        ),
        ("an ID token", env.idp.access_token("alice").await?.id_token),
        (
            "an ID token-shaped token for our audience",
            forged(
                &env,
                json!({"typ": "JWT"}),
                |c| c["nonce"] = json!("n-123"),
                KeyChoice::Current,
            )
            .await?,
        ),
        ("garbage", "not.a.token".to_owned()),
    ];
    for (what, token) in &cases {
        let (status, body) = env.bearer(token, "/api/me").await?;
        assert_eq!(status, 401, "{what} must be refused: {body}");
        assert_eq!(body["error"], "unauthenticated", "{what}: {body}");
    }

    // Key rotation: a token from a key the provider publishes only after a restart is refused
    // before and accepted after (unknown kid → bounded refetch of the JWKS).
    let rotated = forged(&env, json!({}), |_| {}, KeyChoice::Unpublished).await?;
    let (status, _) = env.bearer(&rotated, "/api/me").await?;
    assert_eq!(status, 401, "not published yet");
    env.idp.restart_rotated().await?;
    tokio::time::sleep(Duration::from_millis(1100)).await; // past the refetch interval
    let (status, body) = env.bearer(&rotated, "/api/me").await?;
    assert_eq!(status, 200, "after rotation the new key is fetched: {body}");
    // And the old key still works while published.
    let (status, _) = env.bearer(&good, "/api/me").await?;
    assert_eq!(status, 200);
    // Tokens from the real flow after rotation (signed by the new key).
    let fresh = env.idp.access_token("carol").await?;
    let (status, me) = env.bearer(&fresh.access_token, "/api/me").await?;
    assert_eq!((status, me["id"].as_str()), (200, Some("carol")));

    let mut secrets: Vec<&str> = cases.iter().map(|(_, t)| t.as_str()).collect();
    secrets.push(&good);
    secrets.push(&rotated);
    env.assert_no_secrets(&secrets);
    Ok(())
}

/// Issue 10 item 8: a JWT shaped like an ID token (audience the client id, no nonce, typed
/// `JWT`, as some providers issue refreshed ID tokens) is no bearer token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn id_token_shaped_tokens_are_no_bearer_tokens() -> R {
    // oidc_audience unset: it defaults to the client id, which is also an ID token's.
    let env = Env::start_with_audience(|o| o, &[], false).await?;
    let client = env.idp.client_id().to_owned();
    let id_like = forged(
        &env,
        json!({"typ": "JWT"}),
        |c| {
            c["aud"] = json!(client);
            c["azp"] = json!(client);
        },
        KeyChoice::Current,
    )
    .await?;
    let (status, body) = env.bearer(&id_like, "/api/me").await?;
    assert_eq!(status, 401, "ID-token-shaped token: {body}");
    assert!(
        body["message"].as_str().unwrap_or("").contains("at+jwt"),
        "{body}"
    );
    // Even typed at+jwt, a token meant only for the client id is refused while the operator
    // has not named the API audience.
    let for_client = forged(
        &env,
        json!({}),
        |c| c["aud"] = json!(client),
        KeyChoice::Current,
    )
    .await?;
    let (status, body) = env.bearer(&for_client, "/api/me").await?;
    assert_eq!(status, 401, "token for the client id only: {body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or("")
            .contains("oidc_audience"),
        "{body}"
    );
    drop(env);

    // Audience configured: access tokens must be typed at+jwt (RFC 9068).
    let env = Env::start(|o| o, &[]).await?;
    for (what, header, accepted) in [
        ("typ at+jwt", json!({}), true),
        (
            "typ application/at+jwt",
            json!({"typ": "application/at+jwt"}),
            true,
        ),
        ("typ JWT", json!({"typ": "JWT"}), false),
        ("no typ", json!({"typ": null}), false),
    ] {
        let token = forged(&env, header, |_| {}, KeyChoice::Current).await?;
        let (status, body) = env.bearer(&token, "/api/me").await?;
        assert_eq!(status == 200, accepted, "{what}: {status} {body}");
    }
    let real = env.idp.access_token("alice").await?;
    let (status, body) = env.bearer(&real.access_token, "/api/me").await?;
    assert_eq!(status, 200, "the provider's own access token: {body}");
    drop(env);

    // Opted out (a provider that does not type its access tokens): an untyped token for the
    // API audience passes, one that also names the client id (as an ID token does) not.
    let env = Env::start(|o| o, &["--oidc-bearer-require-at-jwt", "false"]).await?;
    let client = env.idp.client_id().to_owned();
    let untyped = forged(&env, json!({"typ": "JWT"}), |_| {}, KeyChoice::Current).await?;
    let (status, body) = env.bearer(&untyped, "/api/me").await?;
    assert_eq!(status, 200, "opted out, API audience: {body}");
    let both = forged(
        &env,
        json!({"typ": "JWT"}),
        |c| c["aud"] = json!([c["aud"].clone(), client]),
        KeyChoice::Current,
    )
    .await?;
    let (status, body) = env.bearer(&both, "/api/me").await?;
    assert_eq!(
        status, 401,
        "opted out, audience names the client id: {body}"
    );
    Ok(())
}

/// Issue 10 item 9: sharing by e-mail address trusts only an address the provider verified,
/// and an address two people have names nobody.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharing_by_email_needs_one_verified_owner() -> R {
    let env = Env::start(|o| o, &[]).await?;
    let bob = env.signed_in("bob").await?;
    // Eve's provider account claims alice's address, unverified.
    let eve = env.signed_in("eve").await?;
    let (_, me) = env.api(&eve, Method::GET, "/api/me", None).await?;
    assert_eq!(
        me["email"],
        Value::Null,
        "an unverified address is nobody's: {me}"
    );
    let doc = create_doc(&env, &bob, "Budget").await?;
    let shares = format!("/api/docs/{doc}/shares");
    let share = |who: &str| Some(json!({"kind": "user", "id": who, "role": "editor"}));
    let (status, v) = env
        .api(&bob, Method::POST, &shares, share("alice@example.gov"))
        .await?;
    assert_eq!(
        (status, v["error"].as_str()),
        (404, Some("unknown_user")),
        "{v}"
    );
    assert_eq!(
        role_of(&env, &eve, &doc).await?.0,
        403,
        "eve got alice's share"
    );
    let (_, found) = env
        .api(&bob, Method::GET, "/api/users?q=alice%40", None)
        .await?;
    assert_eq!(
        found["users"],
        json!([]),
        "eve found by alice's address: {found}"
    );

    // Alice signs in: her verified address now names her, and only her.
    let alice = env.signed_in("alice").await?;
    let (status, v) = env
        .api(&bob, Method::POST, &shares, share("Alice@Example.gov"))
        .await?;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        role_of(&env, &alice, &doc).await?.1.as_deref(),
        Some("editor")
    );
    assert_eq!(role_of(&env, &eve, &doc).await?.0, 403);

    // Two people on one address: refused rather than one of them picked.
    let dan = env.signed_in("dan").await?;
    let dana = env.signed_in("dana").await?;
    let (status, v) = env
        .api(&bob, Method::POST, &shares, share("ops@example.gov"))
        .await?;
    assert_eq!(
        (status, v["error"].as_str()),
        (409, Some("ambiguous_user")),
        "{v}"
    );
    assert!(
        v["message"].as_str().unwrap_or("").contains("2 people"),
        "{v}"
    );
    assert_eq!(role_of(&env, &dan, &doc).await?.0, 403);
    assert_eq!(role_of(&env, &dana, &doc).await?.0, 403);
    // By id it works.
    let (status, v) = env.api(&bob, Method::POST, &shares, share("dana")).await?;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        role_of(&env, &dana, &doc).await?.1.as_deref(),
        Some("editor")
    );
    assert_eq!(role_of(&env, &dan, &doc).await?.0, 403);
    Ok(())
}

/// Issue 10 item 10: `/api/users` is a search (2 characters or more, 20 answers at most,
/// rate-limited per user), not a list of everyone who ever signed in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_people_directory_is_a_bounded_search() -> R {
    let env = Env::start(|o| o, &["--user-search-rate-per-minute", "5"]).await?;
    let alice = env.signed_in("alice").await?;
    let bob = env.signed_in("bob").await?;
    // 25 more people sign in (with access tokens: each request records its caller).
    for i in 0..25 {
        let token = forged(
            &env,
            json!({}),
            |c| {
                c["sub"] = json!(format!("guest-{i:02}"));
                c["name"] = json!(format!("Guest {i:02}"));
                c["email"] = json!(format!("guest{i:02}@example.gov"));
                c["email_verified"] = json!(true);
            },
            KeyChoice::Current,
        )
        .await?;
        let (status, me) = env.bearer(&token, "/api/me").await?;
        assert_eq!(status, 200, "{me}");
    }
    for q in ["", "?q=", "?q=g", "?q=%20g%20"] {
        let (status, v) = env
            .api(&alice, Method::GET, &format!("/api/users{q}"), None)
            .await?;
        assert_eq!(status, 400, "{q:?} lists people: {v}");
        assert!(
            v["message"].as_str().unwrap_or("").contains("2 to 256"),
            "{v}"
        );
    }
    let (status, v) = env
        .api(&alice, Method::GET, "/api/users?q=gu", None)
        .await?;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["users"].as_array().map(Vec::len), Some(20), "{v}");
    let (_, v) = env
        .api(&alice, Method::GET, "/api/users?q=bo", None)
        .await?;
    assert_eq!(v["users"][0]["id"], "bob", "{v}");
    // Five searches a minute: the next ones wait (the two above counted).
    let mut refused = None;
    for _ in 0..4 {
        let resp = alice
            .request(
                Method::GET,
                &env.url("/api/users?q=gu"),
                &[("origin", env.base.as_str())],
                None,
            )
            .await?;
        if resp.status == 429 {
            refused = Some(resp);
            break;
        }
    }
    let refused = refused.ok_or("no search was refused")?;
    assert!(refused.header("retry-after").is_some(), "{}", refused.body);
    assert!(refused.body.contains("rate_limited"), "{}", refused.body);
    // Another user has their own budget.
    let (status, v) = env.api(&bob, Method::GET, "/api/users?q=al", None).await?;
    assert_eq!(status, 200, "{v}");
    Ok(())
}

/// A client whose requests leave from `ip` (any 127.x address is this machine's loopback).
fn client_from(ip: [u8; 4]) -> Result<reqwest::Client, BoxError> {
    Ok(reqwest::Client::builder()
        .local_address(std::net::IpAddr::from(ip))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()?)
}

/// Issue 10 item 7: starting sign-ins keeps nothing on the server, so a flood of them (more
/// than the 10,000 pending sign-ins that used to fill its table, from 170 addresses) blocks
/// nobody's sign-in; one address starting too many is slowed down, not the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_sign_in_starts_blocks_no_one() -> R {
    use futures_util::StreamExt;
    let env = Env::start(|o| o, &[]).await?;
    let login = env.url("/auth/login?return_to=/");
    let mut started = 0usize;
    for a in 2..172u8 {
        let client = client_from([127, 0, 0, a])?;
        let statuses: Vec<u16> = futures_util::stream::iter(0..60)
            .map(|_| {
                let (client, login) = (client.clone(), login.clone());
                async move {
                    client
                        .get(&login)
                        .send()
                        .await
                        .map(|r| r.status().as_u16())
                        .unwrap_or(0)
                }
            })
            .buffer_unordered(16)
            .collect()
            .await;
        for status in statuses {
            assert!(
                status == 303 || status == 302 || status == 307,
                "sign-in start from 127.0.0.{a} answered {status}"
            );
            started += 1;
        }
    }
    assert!(started > 10_000, "{started}");
    // Someone else signs in as usual.
    let alice = env.signed_in("alice").await?;
    let (status, me) = env.api(&alice, Method::GET, "/api/me", None).await?;
    assert_eq!((status, me["id"].as_str()), (200, Some("alice")), "{me}");

    // One address over its budget (login_rate_per_minute, 60) waits, told so plainly; the
    // provider is not blamed.
    let greedy = client_from([127, 0, 0, 250])?;
    let mut refused = None;
    for _ in 0..200 {
        let resp = greedy.get(&login).send().await?;
        if resp.status().as_u16() == 429 {
            refused = Some(resp);
            break;
        }
    }
    let refused = refused.ok_or("an address starting 200 sign-ins at once was never slowed")?;
    assert!(refused.headers().contains_key("retry-after"));
    let page = refused.text().await?;
    assert!(page.contains("from your address"), "{page}");
    assert!(!page.to_lowercase().contains("identity provider"), "{page}");
    let bob = env.signed_in("bob").await?;
    assert_eq!(env.api(&bob, Method::GET, "/api/me", None).await?.0, 200);

    // The browser keeps the sign-in state, sealed: the cookie is HttpOnly, SameSite=Lax,
    // short-lived, and shows none of what it holds (not even the state the URL carries).
    let b = Browser::new()?;
    let resp = b.get(&login).await?;
    let set = resp.set_cookie("dure_login").ok_or("no login cookie")?;
    let lower = set.to_lowercase();
    for attr in ["httponly", "samesite=lax", "max-age=600", "path=/auth"] {
        assert!(lower.contains(attr), "{attr} missing: {set}");
    }
    let state = resp.location_param("state").ok_or("no state")?;
    let nonce = resp.location_param("nonce").ok_or("no nonce")?;
    let value = b
        .cookie(&env.url("/auth/callback"), "dure_login")
        .ok_or("cookie")?;
    assert!(
        !value.contains(&state) && !value.contains(&nonce),
        "{value}"
    );
    // A cookie changed by one character is no sign-in state.
    let authorize = resp.location().ok_or("no location")?;
    let callback = b
        .through_idp(&Browser::with_login_hint(&authorize, "carol")?)
        .await?;
    let mut forged_cookie: Vec<char> = value.chars().collect();
    let i = forged_cookie.len() / 2;
    forged_cookie[i] = if forged_cookie[i] == 'A' { 'B' } else { 'A' };
    let forged_cookie: String = forged_cookie.into_iter().collect();
    let tampered = Browser::new()?;
    tampered.set_cookie(
        &env.url("/auth/callback"),
        &format!("dure_login={forged_cookie}; Path=/auth"),
    )?;
    let resp = tampered.finish(&callback).await?;
    assert_eq!(resp.status, 400, "tampered login cookie: {}", resp.body);
    assert!(resp.set_cookie("dure_session").is_none());
    let resp = b.finish(&callback).await?;
    assert!(resp.set_cookie("dure_session").is_some(), "{}", resp.body);
    Ok(())
}

/// Issue 10 item H: the provider's refresh and ID tokens are not readable in the store; the
/// secret key is created 0600 in the data directory and kept across restarts, and replacing
/// it costs a new sign-in, nothing worse.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_tokens_are_sealed_at_rest() -> R {
    let mut env = Env::start(
        |o| IdpOptions {
            access_ttl: Duration::from_secs(2),
            ..o
        },
        &[],
    )
    .await?;
    let alice = env.signed_in("alice").await?;
    let refresh_tokens = env.idp.issued_refresh_tokens()?;
    assert!(
        !refresh_tokens.is_empty(),
        "the provider issued a refresh token"
    );
    let sessions = env.data.join("objects/auth/sessions");
    let read_sessions = || -> Result<Vec<String>, BoxError> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&sessions)? {
            out.push(std::fs::read_to_string(entry?.path())?);
        }
        Ok(out)
    };
    let stored = read_sessions()?;
    assert_eq!(stored.len(), 1, "one session");
    for record in &stored {
        for token in &refresh_tokens {
            assert!(
                !record.contains(token.as_str()),
                "refresh token in the clear: {record}"
            );
        }
        // An ID token is a JWT: base64 of `{"`, which is `eyJ`.
        assert!(!record.contains("eyJ"), "a JWT in the clear: {record}");
        let v: Value = serde_json::from_str(record)?;
        assert!(v["sealed_refresh_token"].is_string(), "{record}");
        assert!(v.get("refresh_token").is_none(), "{record}");
    }
    let key_file = env.data.join("secret.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file)?.permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "secret.key mode {mode:o}");
    }

    // Restarted on the same key, the session refreshes (its sealed refresh token opens).
    env.restart_dure().await?;
    tokio::time::sleep(Duration::from_secs(3)).await; // past the access token's life
    let (status, me) = env.api(&alice, Method::GET, "/api/me", None).await?;
    assert_eq!(status, 200, "refreshed after a restart: {me}");
    assert!(
        env.dure.logs().contains("session refreshed"),
        "a refresh happened"
    );

    // A new key: the session cannot be refreshed any more and ends; signing in again works.
    std::fs::remove_file(&key_file)?;
    env.restart_dure().await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (status, v) = env.api(&alice, Method::GET, "/api/me", None).await?;
    assert_eq!(status, 401, "a session sealed with a lost key: {v}");
    let again = env.signed_in("alice").await?;
    assert_eq!(env.api(&again, Method::GET, "/api/me", None).await?.0, 200);
    Ok(())
}

/// Issue 10 item 11: a made-up session cookie sent again and again costs one store read (a
/// billed request on S3), not one per request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_session_cookie_is_looked_up_once() -> R {
    let moto = dure_tests::s3::MotoServer::start().await?;
    moto.create_bucket("dure-sessions").await?;
    let flags = moto.dure_flags("dure-sessions");
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let env = Env::start(|o| o, &flags).await?;
    let lookups = || moto.logs().matches("auth/sessions/").count();
    let before = lookups();
    let client = reqwest::Client::new();
    for _ in 0..20 {
        let resp = client
            .get(env.url("/api/me"))
            .header("cookie", "dure_session=made-up-cookie-value-0123456789")
            .send()
            .await?;
        assert_eq!(resp.status().as_u16(), 401);
    }
    // The store's request log is written as it answers; give it a moment.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let reads = lookups() - before;
    assert_eq!(
        reads,
        1,
        "store reads for 20 requests with one unknown cookie:\n{}",
        moto.logs()
    );
    // A real session still works (and is not taken for an unknown one).
    let alice = env.signed_in("alice").await?;
    assert_eq!(env.api(&alice, Method::GET, "/api/me", None).await?.0, 200);
    Ok(())
}

/// Issue 10 item 11: refetching the provider's keys (for a token naming an unknown key)
/// does not make requests with valid tokens wait while the provider hangs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_key_refetch_stalls_no_valid_token() -> R {
    let env = Env::start(|o| o, &[]).await?;
    let good = forged(&env, json!({}), |_| {}, KeyChoice::Current).await?;
    assert_eq!(env.bearer(&good, "/api/me").await?.0, 200);
    tokio::time::sleep(Duration::from_millis(1100)).await; // past the refetch interval
    env.idp.stall_jwks(Duration::from_secs(8)).await?;
    let unknown = forged(&env, json!({}), |_| {}, KeyChoice::Unpublished).await?;
    let refetching = {
        let url = env.url("/api/me");
        tokio::spawn(async move {
            reqwest::Client::new()
                .get(url)
                .bearer_auth(unknown)
                .send()
                .await
                .map(|r| r.status().as_u16())
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await; // the refetch hangs now
    let started = std::time::Instant::now();
    let (status, me) = env.bearer(&good, "/api/me").await?;
    let took = started.elapsed();
    assert_eq!(status, 200, "{me}");
    assert!(
        took < Duration::from_secs(4),
        "a valid token waited {took:?} for a hanging key refetch"
    );
    assert_eq!(refetching.await??, 401, "the unknown key stays unknown");
    Ok(())
}

/// Issue 10 item 11: behind a reverse proxy listed in `trusted_proxies`, the audit log names
/// the client the proxy forwarded (the rightmost address it did not add itself); from any
/// other peer the header is ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_names_the_client_behind_a_trusted_proxy() -> R {
    let env = Env::start(|o| o, &["--trusted-proxies", "127.0.0.1/32, ::1"]).await?;
    let alice = env.signed_in("alice").await?;
    let admin = env.signed_in("admin").await?;
    let cookie = alice.cookie(&env.base, "dure_session").ok_or("cookie")?;
    let create = |client: reqwest::Client, title: &'static str, xff: &'static str| {
        let (url, origin, cookie) = (env.url("/api/docs"), env.base.clone(), cookie.clone());
        async move {
            let resp = client
                .post(url)
                .header("origin", origin)
                .header("cookie", format!("dure_session={cookie}"))
                .header("x-forwarded-for", xff)
                .json(&json!({"title": title}))
                .send()
                .await?;
            let status = resp.status().as_u16();
            let v: Value = resp.json().await?;
            assert_eq!(status, 201, "{v}");
            Ok::<String, BoxError>(v["id"].as_str().ok_or("id")?.to_owned())
        }
    };
    // From the proxy (127.0.0.1): the client said it was 192.0.2.1, the proxy saw 198.51.100.7.
    let proxied = create(
        client_from([127, 0, 0, 1])?,
        "Proxied",
        "192.0.2.1, 198.51.100.7",
    )
    .await?;
    // Not from the proxy: the header is anyone's to write.
    let direct = create(client_from([127, 0, 0, 9])?, "Direct", "198.51.100.8").await?;
    let (status, v) = env
        .api(&admin, Method::GET, "/api/audit?user=alice", None)
        .await?;
    assert_eq!(status, 200, "{v}");
    let ip_of = |doc: &str| {
        v["events"].as_array().and_then(|events| {
            events
                .iter()
                .find(|e| e["action"] == "create" && e["doc"] == doc)
                .and_then(|e| e["ip"].as_str().map(str::to_owned))
        })
    };
    assert_eq!(ip_of(&proxied).as_deref(), Some("198.51.100.7"), "{v}");
    assert_eq!(ip_of(&direct).as_deref(), Some("127.0.0.9"), "{v}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_flow_attacks_are_refused() -> R {
    let env = Env::start(|o| o, &[]).await?;

    // State mismatch: the callback carries another state than this browser started with.
    let b = Browser::new()?;
    let authorize = b.start_login(&env.base, "/").await?;
    let callback = b
        .through_idp(&Browser::with_login_hint(&authorize, "alice")?)
        .await?;
    let tampered = replace_param(&callback, "state", "forged-state")?;
    let resp = b.finish(&tampered).await?;
    assert_eq!(resp.status, 400, "state mismatch: {}", resp.body);
    assert!(resp.set_cookie("dure_session").is_none());
    // The genuine callback still works once...
    let resp = b.finish(&callback).await?;
    assert!(
        resp.is_redirect(),
        "genuine callback: {} {}",
        resp.status,
        resp.body
    );
    assert!(resp.set_cookie("dure_session").is_some());
    // ...and a replay of it (same code, same state) is refused.
    let replay = Browser::new()?;
    let resp = replay.finish(&callback).await?;
    assert_eq!(resp.status, 400, "replayed callback: {}", resp.body);
    let resp = b.finish(&callback).await?;
    assert_eq!(
        resp.status, 400,
        "replayed callback in the same browser: {}",
        resp.body
    );

    // A replayed code with a fresh, valid state (code injection): the provider refuses it.
    let c = Browser::new()?;
    let authorize = c.start_login(&env.base, "/").await?;
    let fresh_state = dure_tests::browser::query_param(&authorize, "state").ok_or("state")?;
    let injected = replace_param(&callback, "state", &fresh_state)?;
    let resp = c.finish(&injected).await?;
    assert_eq!(resp.status, 400, "replayed code: {}", resp.body);
    assert!(resp.set_cookie("dure_session").is_none());

    // Nonce mismatch: the authorization request's nonce swapped (the ID token then carries
    // another nonce than the one bound to this sign-in).
    let d = Browser::new()?;
    let authorize = d.start_login(&env.base, "/").await?;
    let swapped = replace_param(&authorize, "nonce", "attacker-nonce")?;
    let callback = d
        .through_idp(&Browser::with_login_hint(&swapped, "alice")?)
        .await?;
    let resp = d.finish(&callback).await?;
    assert_eq!(resp.status, 400, "nonce mismatch: {}", resp.body);
    assert!(resp.body.to_lowercase().contains("nonce"), "{}", resp.body);
    assert!(resp.set_cookie("dure_session").is_none());

    // An open redirect through return_to is not possible: every way a browser would read as
    // another host (a tab or newline it drops, a backslash it reads as a slash, a scheme)
    // lands on Dure's home page, and a newline is no server error.
    for (return_to, lands) in [
        ("//evil.example/x", "/"),
        ("/\t/evil.example/phish", "/"),
        ("/\n/evil.example/phish", "/"),
        ("/\r\n/evil.example/phish", "/"),
        ("/\\evil.example/phish", "/"),
        ("https://evil.example/phish", "/"),
        ("/d/doc-1?view=1", "/d/doc-1?view=1"),
    ] {
        let e = Browser::new()?;
        let authorize = e.start_login(&env.base, return_to).await?;
        let callback = e
            .through_idp(&Browser::with_login_hint(&authorize, "bob")?)
            .await?;
        let resp = e.finish(&callback).await?;
        assert!(
            resp.is_redirect(),
            "return_to {return_to:?}: {} {}",
            resp.status,
            resp.body
        );
        // Resolved the way a browser resolves a Location (WHATWG URL rules).
        let raw = resp.header("location").ok_or("no Location")?;
        let target = url::Url::parse(&env.base)?.join(raw)?;
        assert_eq!(
            target.as_str(),
            format!("{}{lands}", env.base),
            "return_to {return_to:?} answered Location {raw:?}"
        );
    }
    env.assert_no_secrets(&[]);
    Ok(())
}

fn replace_param(url: &str, name: &str, value: &str) -> Result<String, BoxError> {
    let mut u = url::Url::parse(url)?;
    let pairs: Vec<(String, String)> = u
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == name {
                value.to_owned()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    u.query_pairs_mut().clear().extend_pairs(pairs);
    Ok(u.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_sockets_follow_access() -> R {
    let env = Env::start(|o| o, &[]).await?;
    let alice = env.signed_in("alice").await?;
    let bob = env.signed_in("bob").await?;
    let doc = create_doc(&env, &alice, "Live").await?;
    env.api(
        &alice,
        Method::POST,
        &format!("/api/docs/{doc}/shares"),
        Some(json!({"kind": "group", "id": "finance", "role": "viewer"})),
    )
    .await?;
    let wait = Duration::from_secs(10);

    // Cross-site WebSocket hijacking: bob's cookie from a foreign page is refused before the
    // upgrade; so is the cookie with no Origin at all.
    let mut foreign = env.browser_socket(&bob)?;
    foreign.headers[1].1 = "https://evil.example".into();
    match YClient::connect(&env.ws(&doc), foreign).await {
        Err(dure_tests::yclient::YError::Http(403)) => {}
        other => panic!(
            "foreign origin must get 403, got {:?}",
            other.map(|_| "connected")
        ),
    }
    let mut no_origin = env.browser_socket(&bob)?;
    no_origin.headers.truncate(1);
    assert!(matches!(
        YClient::connect(&env.ws(&doc), no_origin).await,
        Err(dure_tests::yclient::YError::Http(403))
    ));

    // No credentials: closed with 4401 (after the first-message grace, when nothing valid
    // comes); an unknown document: 4404.
    let anon = YClient::connect(&env.ws(&doc), ConnectOptions::default()).await?;
    let closed = anon.wait_closed(Duration::from_secs(15)).await?;
    assert_eq!(closed.map(|c| c.0), Some(4401));
    let lost = YClient::connect(&env.ws("NoSuchDoc"), env.browser_socket(&alice)?).await?;
    assert_eq!(lost.wait_closed(wait).await?.map(|c| c.0), Some(4404));

    // Alice edits; bob (viewer, by cookie) follows live; carol with a bearer token in the
    // subprotocol and no share gets 4403.
    let a = YClient::connect(
        &env.ws(&doc),
        ConnectOptions {
            ack: true,
            ..env.browser_socket(&alice)?
        },
    )
    .await?;
    a.wait_synced(wait).await?;
    let b = YClient::connect(&env.ws(&doc), env.browser_socket(&bob)?).await?;
    b.wait_synced(wait).await?;
    a.insert(0, "hello from alice")?;
    b.wait_text("hello from alice", wait).await?;
    let carol_token = env.idp.access_token("carol").await?.access_token;
    let c = YClient::connect(&env.ws(&doc), Env::token_socket(&carol_token)).await?;
    assert_eq!(c.wait_closed(wait).await?.map(|c| c.0), Some(4403));

    // The viewer's edit is refused with the auth message and reaches nobody.
    b.insert(0, "VIEWER WAS HERE ")?;
    b.wait_for("permission denied", wait, |c| c.auth_denied().is_some())
        .await?;
    a.insert(a.text_len(), "!")?;
    b.wait_for("alice's next edit", wait, |c| c.text().ends_with('!'))
        .await?;
    assert_eq!(
        a.text(),
        "hello from alice!",
        "viewer's edit must not reach others"
    );
    // A viewer still shows presence.
    b.set_awareness(r#"{"user":{"name":"Bob Lee"}}"#)?;
    a.wait_awareness(wait, |states| {
        states.values().any(|s| s.contains("Bob Lee"))
    })
    .await?;
    a.wait_acked(2, wait).await?;

    // A token given as the first message works too (editor via carol's user share).
    let (status, v) = env
        .api(
            &alice,
            Method::POST,
            &format!("/api/docs/{doc}/shares"),
            Some(json!({"kind": "user", "id": "carol", "role": "editor"})),
        )
        .await?;
    assert_eq!(status, 200, "carol is known from her token: {v}");
    let c2 = YClient::connect(
        &env.ws(&doc),
        ConnectOptions {
            sync: false,
            ..ConnectOptions::default()
        },
    )
    .await?;
    c2.send_message(tokio_tungstenite::tungstenite::Message::Text(
        json!({"token": carol_token}).to_string().into(),
    ))?;
    c2.send_raw(dure_tests::yclient::encode_sync_step1(&c2.state_vector()))?;
    c2.wait_text("hello from alice!", wait).await?;

    // Revoking bob's group share closes his live socket with 4403 within 5 s.
    let started = std::time::Instant::now();
    env.api(
        &alice,
        Method::DELETE,
        &format!("/api/docs/{doc}/shares/group/finance"),
        None,
    )
    .await?;
    assert_eq!(
        b.wait_closed(Duration::from_secs(5)).await?.map(|c| c.0),
        Some(4403)
    );
    assert!(started.elapsed() < Duration::from_secs(5));

    // Sign-out closes that session's sockets with 4401.
    let a2 = YClient::connect(&env.ws(&doc), env.browser_socket(&alice)?).await?;
    a2.wait_synced(wait).await?;
    // Deleting the document closes everyone with 4404 (alice's first socket, carol's).
    env.api(&alice, Method::DELETE, &format!("/api/docs/{doc}"), None)
        .await?;
    assert_eq!(
        a.wait_closed(Duration::from_secs(5)).await?.map(|c| c.0),
        Some(4404)
    );
    assert_eq!(
        c2.wait_closed(Duration::from_secs(5)).await?.map(|c| c.0),
        Some(4404)
    );
    assert_eq!(
        a2.wait_closed(Duration::from_secs(5)).await?.map(|c| c.0),
        Some(4404)
    );

    // Restored, reopened; then sign-out closes with 4401.
    env.api(
        &alice,
        Method::POST,
        &format!("/api/docs/{doc}/restore"),
        None,
    )
    .await?;
    let a3 = YClient::connect(&env.ws(&doc), env.browser_socket(&alice)?).await?;
    a3.wait_text("hello from alice!", wait).await?;
    let (status, _) = env.api(&alice, Method::POST, "/auth/logout", None).await?;
    assert_eq!(status, 200);
    assert_eq!(
        a3.wait_closed(Duration::from_secs(5)).await?.map(|c| c.0),
        Some(4401)
    );

    // What is stored is alice's text only.
    let admin = env.signed_in("admin").await?;
    let (_, v) = env
        .api(&admin, Method::GET, &format!("/api/audit?doc={doc}"), None)
        .await?;
    let mut openers: Vec<&str> = v["events"]
        .as_array()
        .ok_or("events")?
        .iter()
        .filter(|e| e["action"] == "open")
        .filter_map(|e| e["actor"]["id"].as_str())
        .collect();
    openers.sort_unstable();
    // Each person once: reconnects within ten minutes are not recorded again.
    assert_eq!(
        openers,
        vec!["alice", "bob", "carol"],
        "socket opens are audited: {v}"
    );
    env.assert_no_secrets(&[&carol_token]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_refresh_then_end() -> R {
    // Access tokens live 3 s: the session must refresh to stay; it ends after 12 s whatever.
    let env = Env::start(
        |o| IdpOptions {
            access_ttl: Duration::from_secs(3),
            ..o
        },
        &["--session-max-age", "12s"],
    )
    .await?;
    let alice = env.signed_in("alice").await?;
    let doc = create_doc(&env, &alice, "Refresh").await?;
    let started = std::time::Instant::now();
    let s = YClient::connect(&env.ws(&doc), env.browser_socket(&alice)?).await?;
    s.wait_synced(Duration::from_secs(10)).await?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (status, me) = env.api(&alice, Method::GET, "/api/me", None).await?;
    assert_eq!(status, 200, "refreshed past the access token's life: {me}");
    assert!(s.closed().is_none(), "socket survives the refresh");
    let closed = s.wait_closed(Duration::from_secs(15)).await?;
    let at = started.elapsed();
    assert_eq!(
        closed.map(|c| c.0),
        Some(4401),
        "closed when the session ended"
    );
    assert!(
        at >= Duration::from_secs(10) && at < Duration::from_secs(12 + 5),
        "closed at {at:?}"
    );
    let (status, _) = env.api(&alice, Method::GET, "/api/me", None).await?;
    assert_eq!(status, 401);
    assert!(
        env.dure.logs().contains("session refreshed"),
        "a refresh happened"
    );
    env.assert_no_secrets(&[]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trash_is_purged_after_retention() -> R {
    let env = Env::start(|o| o, &["--trash-retention", "6s", "--idle-unload", "1s"]).await?;
    let alice = env.signed_in("alice").await?;
    let doc = create_doc(&env, &alice, "Short-lived").await?;
    let a = YClient::connect(
        &env.ws(&doc),
        ConnectOptions {
            ack: true,
            ..env.browser_socket(&alice)?
        },
    )
    .await?;
    a.wait_synced(Duration::from_secs(10)).await?;
    a.insert(0, "soon gone")?;
    a.wait_acked(1, Duration::from_secs(10)).await?;
    env.api(&alice, Method::DELETE, &format!("/api/docs/{doc}"), None)
        .await?;
    // Checked at once: the retention (6 s) has not passed yet.
    let docs_dir = env.dure.data_dir.join("objects").join("docs").join(&doc);
    assert!(
        files_under(&docs_dir) > 0,
        "content kept while in the trash"
    );
    assert_eq!(
        a.wait_closed(Duration::from_secs(5)).await?.map(|c| c.0),
        Some(4404)
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (_, v) = env
            .api(&alice, Method::GET, "/api/docs?scope=trash", None)
            .await?;
        if !ids(&v).contains(&doc) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not purged within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(
        files_under(&docs_dir),
        0,
        "content purged (empty directories may stay)"
    );
    let (status, _) = env
        .api(
            &alice,
            Method::POST,
            &format!("/api/docs/{doc}/restore"),
            None,
        )
        .await?;
    assert_eq!(status, 404, "nothing left to restore");
    let admin = env.signed_in("admin").await?;
    let (_, v) = env
        .api(&admin, Method::GET, &format!("/api/audit?doc={doc}"), None)
        .await?;
    assert!(
        v["events"]
            .as_array()
            .ok_or("events")?
            .iter()
            .any(|e| e["action"] == "purge"),
        "{v}"
    );
    Ok(())
}

fn files_under(dir: &std::path::Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| {
            let p = e.path();
            if p.is_dir() { files_under(&p) } else { 1 }
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_problems_stop_the_start_with_a_clear_message() -> R {
    let dir = temp_dir()?;
    let idp = TestIdp::start(IdpOptions::default()).await?;
    let port = free_port()?;
    let dead = free_port()?;
    let base = format!("http://127.0.0.1:{port}");
    let run = |issuer: String, extra: Vec<String>| {
        let public = if extra.iter().any(|a| a == "--public-url") {
            Vec::new()
        } else {
            vec!["--public-url".to_owned(), base.clone()]
        };
        let mut args: Vec<String> = vec![
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--storage".into(),
            "memory".into(),
        ];
        args.extend(public);
        args.extend([
            "--oidc-issuer".to_owned(),
            issuer,
            "--oidc-client-id".to_owned(),
            "dure-web".to_owned(),
            "--oidc-client-secret".to_owned(),
            "dure-web-secret".to_owned(),
        ]);
        args.extend(extra);
        dure_tests::server::run_to_exit(dir.path(), &args, &[])
    };
    // Unreachable issuer.
    let (code, out) = run(format!("http://127.0.0.1:{dead}"), vec![])?;
    assert_ne!(code, Some(0), "{out}");
    assert!(
        out.contains("`oidc_issuer`") && out.contains("discovery failed"),
        "{out}"
    );
    // Metadata that does not match: the provider says 127.0.0.1, we were told localhost.
    let (code, out) = run(idp.issuer().replace("127.0.0.1", "localhost"), vec![])?;
    assert_ne!(code, Some(0), "{out}");
    assert!(
        out.contains("`oidc_issuer`") && out.to_lowercase().contains("issuer"),
        "{out}"
    );
    // Settings checked before anything starts.
    for (extra, setting) in [
        (vec!["--oidc-algorithms", "HS256"], "oidc_algorithms"),
        (vec!["--oidc-scopes", "profile email"], "oidc_scopes"),
        (
            vec!["--public-url", "http://docs.example.gov"],
            "public_url",
        ),
        (vec!["--allowed-origins", "not a url"], "allowed_origins"),
    ] {
        let extra: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
        let (code, out) = run(idp.issuer(), extra.clone())?;
        assert_eq!(code, Some(2), "{extra:?}: {out}");
        assert!(
            out.contains(&format!("`{setting}`")),
            "{extra:?} must name {setting}: {out}"
        );
        assert!(!out.contains("dure-web-secret"), "secret printed: {out}");
    }
    let (code, out) = dure_tests::server::run_to_exit(
        dir.path(),
        &[
            "--listen",
            "0.0.0.0:0",
            "--oidc-issuer",
            &idp.issuer(),
            "--oidc-client-id",
            "x",
        ],
        &[],
    )?;
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("`public_url`") || out.contains("`oidc_client_secret`"),
        "{out}"
    );
    // With a provider, a network address is allowed (here: all interfaces on a free port).
    // The port is chosen before Dure starts (its public URL names it), so another process on
    // this shared machine may take it in between: try a fresh port then, a few times.
    let data = dir.path().join("net");
    let mut attempt = 0;
    let dure = loop {
        attempt += 1;
        let any = free_port_on_all_interfaces()?;
        let public = format!("http://127.0.0.1:{any}");
        let mut flags = idp.dure_flags();
        flags.extend(["--public-url".to_owned(), public.clone()]);
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        match Dure::start_on(&data, &format!("0.0.0.0:{any}"), &flags).await {
            Ok(dure) => break dure,
            Err(e) if attempt < 5 && e.to_string().contains("Address already in use") => {}
            Err(e) => return Err(e),
        }
    };
    let (status, body) = dure.get("/readyz").await?;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("identity provider: ok"), "{body}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_mode_has_one_user_and_refuses_foreign_pages() -> R {
    let dir = temp_dir()?;
    let dure = Dure::start(&dir.path().join("data"), &[]).await?;
    let base = format!("http://{}", dure.addr);
    let b = Browser::new()?;
    let me = b.get(&format!("{base}/api/me")).await?;
    assert_eq!(me.status, 200);
    let me: Value = serde_json::from_str(&me.body)?;
    assert_eq!(
        (
            me["id"].as_str(),
            me["mode"].as_str(),
            me["admin"].as_bool()
        ),
        (Some("local"), Some("local"), Some(true))
    );
    let cfg: Value = serde_json::from_str(&b.get(&format!("{base}/api/config")).await?.body)?;
    assert_eq!(cfg["mode"], "local");
    assert_eq!(b.get(&format!("{base}/auth/login")).await?.status, 404);
    // The API works for the local user, from the app's own origin or a non-browser client.
    let resp = b
        .post_json(
            &format!("{base}/api/docs"),
            None,
            &json!({"title": "Notes"}),
        )
        .await?;
    assert_eq!(resp.status, 201, "{}", resp.body);
    let doc: Value = serde_json::from_str(&resp.body)?;
    let id = doc["id"].as_str().ok_or("id")?;
    let list: Value = serde_json::from_str(&b.get(&format!("{base}/api/docs")).await?.body)?;
    assert_eq!(ids(&list), vec![id.to_owned()]);
    // A page from elsewhere cannot drive the local user's documents.
    let resp = b
        .post_json(
            &format!("{base}/api/docs"),
            Some("https://evil.example"),
            &json!({}),
        )
        .await?;
    assert_eq!(resp.status, 403);
    let foreign = ConnectOptions {
        headers: vec![("Origin".into(), "https://evil.example".into())],
        ..ConnectOptions::default()
    };
    assert!(matches!(
        YClient::connect(&dure.doc_url(id, false), foreign).await,
        Err(dure_tests::yclient::YError::Http(403))
    ));
    // Same-origin browser pages and plain clients connect; any name is a document.
    let own = ConnectOptions {
        headers: vec![("Origin".into(), base.clone())],
        ..ConnectOptions::default()
    };
    let c = YClient::connect(&dure.doc_url(id, false), own).await?;
    c.wait_synced(Duration::from_secs(10)).await?;
    let plain =
        YClient::connect(&dure.doc_url("any-name", false), ConnectOptions::default()).await?;
    plain.wait_synced(Duration::from_secs(10)).await?;
    // Deleting closes live sockets with 4404.
    let resp = b
        .request(Method::DELETE, &format!("{base}/api/docs/{id}"), &[], None)
        .await?;
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(
        c.wait_closed(Duration::from_secs(5)).await?.map(|c| c.0),
        Some(4404)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_and_import_follow_roles() -> R {
    let env = Env::start(|o| o, &[]).await?;
    let alice = env.signed_in("alice").await?;
    let bob = env.signed_in("bob").await?;
    let carol = env.signed_in("carol").await?;
    let markdown = "# Plan 2027\n\nHello **world** and `code`.\n\n- [x] done\n- [ ] next\n";
    let origin = env.base.clone();
    let import = |b: &Browser, body: Vec<u8>, query: &'static str| {
        let url = env.url(&format!("/api/docs/import{query}"));
        let origin = origin.clone();
        let b = b.clone();
        async move {
            b.request(
                Method::POST,
                &url,
                &[("origin", origin.as_str())],
                Some(dure_tests::browser::Body::Raw {
                    content_type: "text/markdown".into(),
                    bytes: body,
                }),
            )
            .await
        }
    };
    let resp = import(&alice, markdown.as_bytes().to_vec(), "").await?;
    assert_eq!(resp.status, 201, "{}", resp.body);
    let meta: Value = serde_json::from_str(&resp.body)?;
    assert_eq!(meta["title"], "Plan 2027", "title from the first heading");
    assert_eq!(meta["role"], "owner");
    let doc = meta["id"].as_str().ok_or("id")?.to_owned();

    let export = |b: &Browser, format: &str| {
        let url = env.url(&format!("/api/docs/{doc}/export?format={format}"));
        let b = b.clone();
        async move { b.get(&url).await }
    };
    let md = export(&alice, "md").await?;
    assert_eq!(md.status, 200, "{}", md.body);
    assert_eq!(
        md.body, markdown,
        "import then export gives the same Markdown"
    );
    assert!(
        md.header("content-type")
            .is_some_and(|c| c.starts_with("text/markdown"))
    );
    let disposition = md.header("content-disposition").unwrap_or("").to_owned();
    assert!(
        disposition.contains("Plan 2027.md") || disposition.contains("Plan%202027.md"),
        "{disposition}"
    );
    assert_eq!(
        export(&carol, "md").await?.status,
        403,
        "no role, no export"
    );
    env.api(
        &alice,
        Method::POST,
        &format!("/api/docs/{doc}/shares"),
        Some(json!({"kind": "group", "id": "finance", "role": "viewer"})),
    )
    .await?;
    let html = export(&bob, "html").await?;
    assert_eq!(html.status, 200);
    assert!(
        html.body.contains("<strong>world</strong>")
            && html.body.contains("<title>Plan 2027</title>"),
        "{}",
        html.body
    );
    let txt = export(&bob, "txt").await?;
    assert!(txt.body.contains("Hello world and code."), "{}", txt.body);
    assert_eq!(export(&bob, "docx").await?.status, 400);

    // Bad input stores nothing.
    let before = env
        .api(&alice, Method::GET, "/api/docs?scope=mine", None)
        .await?
        .1;
    let resp = import(&alice, vec![0xff, 0xfe, 0x00, 0x41], "?title=bad").await?;
    assert_eq!(resp.status, 400, "{}", resp.body);
    // The server answers 413 without reading the rest and closes that connection: send it
    // from a browser of its own (same session) so alice's pooled connection is not the one
    // closed under her next request.
    let alice2 = Browser::new()?;
    let cookie = alice.cookie(&env.base, "dure_session").ok_or("cookie")?;
    alice2.set_cookie(&env.base, &format!("dure_session={cookie}; Path=/"))?;
    let resp = import(&alice2, vec![b'a'; 5 * 1024 * 1024], "?title=big").await?;
    assert_eq!(resp.status, 413, "over the import limit");
    let resp = import(&anon_browser()?, markdown.as_bytes().to_vec(), "").await?;
    assert_eq!(resp.status, 401);
    let after = env
        .api(&alice, Method::GET, "/api/docs?scope=mine", None)
        .await?
        .1;
    assert_eq!(ids(&before), ids(&after), "refused imports create nothing");
    Ok(())
}

fn anon_browser() -> Result<Browser, BoxError> {
    Browser::new()
}

/// A document socket that sends nothing (no cookie, no token).
async fn silent_socket(
    env: &Env,
) -> Result<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    tokio_tungstenite::tungstenite::Error,
> {
    tokio_tungstenite::connect_async(env.ws("AnyDoc"))
        .await
        .map(|(ws, _)| ws)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockets_without_credentials_wait_2s_and_are_capped_per_address() -> R {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::{Error as WsError, Message};
    let env = Env::start(|o| o, &["--max-unauthenticated-per-address", "3"]).await?;
    // Nothing sent: closed with 4401 after the 2 s auth_timeout (it was 10 s).
    let started = std::time::Instant::now();
    let mut silent = silent_socket(&env).await?;
    let close = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match silent.next().await {
                Some(Ok(Message::Close(f))) => return f.map(|f| u16::from(f.code)),
                Some(Ok(_)) => continue,
                _ => return None,
            }
        }
    })
    .await?;
    assert_eq!(close, Some(4401));
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(5),
        "closed after {took:?}"
    );
    // Three may wait at once from one address; the fourth is refused before the upgrade.
    let mut waiting = Vec::new();
    for _ in 0..3 {
        waiting.push(silent_socket(&env).await?);
    }
    match silent_socket(&env).await {
        Err(WsError::Http(resp)) => assert_eq!(resp.status().as_u16(), 429),
        other => panic!(
            "a fourth unauthenticated socket: {:?}",
            other.map(|_| "open")
        ),
    }
    // Sockets with credentials do not count.
    let token = env.idp.access_token("alice").await?.access_token;
    let with_token = YClient::connect(&env.ws("AnyDoc"), Env::token_socket(&token)).await;
    assert!(with_token.is_ok(), "{:?}", with_token.err());
    // Once the waiting ones are closed, the address may open more.
    for mut w in waiting {
        while let Ok(Some(Ok(_))) = tokio::time::timeout(Duration::from_secs(5), w.next()).await {}
    }
    assert!(silent_socket(&env).await.is_ok());
    Ok(())
}

/// Polls `/readyz` (each answer within 1 s, each 200) until its body satisfies `want`.
async fn ready_until(env: &Env, want: impl Fn(&str) -> bool) -> Result<String, BoxError> {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let started = std::time::Instant::now();
        let (status, body) = env.dure.get("/readyz").await?;
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(1),
            "readyz took {took:?}: {body}"
        );
        assert_eq!(
            status, 200,
            "an identity provider problem made the node unready: {body}"
        );
        if want(&body) {
            return Ok(body);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "readyz never said it: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identity_provider_outage_is_reported_and_the_node_stays_ready() -> R {
    let mut env = Env::start(|o| o, &["--health-check-interval", "500ms"]).await?;
    let alice = env.signed_in("alice").await?;
    ready_until(&env, |b| b.contains("identity provider: ok")).await?;
    env.idp.stop().await?;
    let body = ready_until(&env, |b| b.contains("identity provider: unreachable")).await?;
    assert!(body.starts_with("ready\n"), "{body}");
    // The signed-in session keeps working meanwhile.
    let (status, me) = env.api(&alice, Method::GET, "/api/me", None).await?;
    assert_eq!((status, me["id"].is_string()), (200, true), "{me}");
    env.idp.restart().await?;
    ready_until(&env, |b| b.contains("identity provider: ok")).await?;
    Ok(())
}
