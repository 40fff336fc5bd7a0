//! The test OpenID provider (`tests/js/idp.mjs`) and its harness, without dure: discovery,
//! tokens and their claims, non-interactive logins, forged tokens, key rotation, refresh,
//! logout; and the scripted browser's sign-in walk against a minimal relying party.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dure_tests::browser::{Browser, query_param};
use dure_tests::idp::{
    AUDIENCE, CLI_CLIENT_ID, ClientAuth, IdpOptions, KeyChoice, TestIdp, Tokens, USERS,
    WEB_CLIENT_ID, decode_jwt, free_port, unix_now,
};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

async fn start(opts: IdpOptions) -> TestIdp {
    TestIdp::start(opts)
        .await
        .expect("start the test OpenID provider")
}

fn claims(token: &str) -> Value {
    decode_jwt(token).expect("a JWT").1
}

fn header(token: &str) -> Value {
    decode_jwt(token).expect("a JWT").0
}

#[tokio::test]
async fn discovery_names_the_issuer_exactly() {
    let idp = start(IdpOptions::default()).await;
    let issuer = idp.issuer();
    assert_eq!(issuer, format!("http://127.0.0.1:{}", idp.port()));
    let doc = idp.discovery().await.unwrap();
    assert_eq!(doc["issuer"].as_str(), Some(issuer.as_str()), "{doc}");
    for endpoint in [
        "authorization_endpoint",
        "token_endpoint",
        "jwks_uri",
        "userinfo_endpoint",
        "end_session_endpoint",
    ] {
        let url = doc[endpoint].as_str().unwrap_or_default();
        assert!(url.starts_with(&format!("{issuer}/")), "{endpoint}: {url}");
    }
    assert_eq!(doc["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(
        doc["id_token_signing_alg_values_supported"],
        json!(["RS256"])
    );
    for scope in ["openid", "profile", "email", "groups", "offline_access"] {
        assert!(
            doc["scopes_supported"]
                .as_array()
                .unwrap()
                .contains(&json!(scope)),
            "{scope} missing: {doc}"
        );
    }
    // The test endpoint publishes exactly what jwks_uri does, private parts stripped.
    let published: Value = Browser::new()
        .unwrap()
        .get(doc["jwks_uri"].as_str().unwrap())
        .await
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(published, idp.jwks().await.unwrap());
    let keys = published["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert!(
        keys[0].get("d").is_none(),
        "private key published: {published}"
    );
    assert_eq!(
        keys[0]["kid"].as_str(),
        Some(idp.signing_kid().unwrap().as_str())
    );
}

#[tokio::test]
async fn access_token_is_a_jwt_for_the_audience_with_the_users_claims() {
    let idp = start(IdpOptions::default()).await;
    let before = unix_now();
    let tokens = idp.access_token("alice").await.unwrap();
    assert_eq!(tokens.token_type, "Bearer");
    assert_eq!(tokens.expires_in, Some(300));

    let h = header(&tokens.access_token);
    assert_eq!(h["alg"], "RS256");
    assert_eq!(h["typ"], "at+jwt");
    let kid = h["kid"].as_str().unwrap();
    assert_eq!(kid, idp.signing_kid().unwrap());
    assert!(
        idp.published_kids()
            .await
            .unwrap()
            .contains(&kid.to_owned())
    );

    let at = claims(&tokens.access_token);
    assert_eq!(at["iss"], json!(idp.issuer()));
    assert_eq!(at["aud"], json!(AUDIENCE), "aud is one string: {at}");
    assert_eq!(at["sub"], "alice");
    assert_eq!(at["client_id"], CLI_CLIENT_ID);
    assert_eq!(at["groups"], json!(["finance"]));
    assert_eq!(at["name"], "Alice Kim");
    assert_eq!(at["email"], "alice@example.gov");
    assert_eq!(at["scope"], "openid profile email groups");
    let (iat, exp) = (at["iat"].as_u64().unwrap(), at["exp"].as_u64().unwrap());
    assert_eq!(exp - iat, 300);
    assert!(iat + 5 >= before && iat <= unix_now() + 5, "iat {iat}");
    assert!(at["jti"].is_string());

    // The ID token: for the client, same claims, no at+jwt type.
    let h = header(&tokens.id_token);
    assert_eq!(h["alg"], "RS256");
    assert_ne!(h["typ"], "at+jwt");
    assert_eq!(h["kid"].as_str(), Some(kid));
    let id = claims(&tokens.id_token);
    assert_eq!(id["aud"], CLI_CLIENT_ID);
    assert_eq!(id["iss"], json!(idp.issuer()));
    assert_eq!(id["sub"], "alice");
    assert_eq!(id["name"], "Alice Kim");
    assert_eq!(id["preferred_username"], "alice");
    assert_eq!(id["email"], "alice@example.gov");
    assert_eq!(id["email_verified"], true);
    assert_eq!(id["groups"], json!(["finance"]));
    assert!(id["nonce"].is_string());
    assert_eq!(
        id["exp"].as_u64().unwrap() - id["iat"].as_u64().unwrap(),
        600
    );
    assert!(tokens.refresh_token.is_some());
}

#[tokio::test]
async fn every_user_signs_in_with_their_own_claims() {
    let idp = start(IdpOptions::default()).await;
    for user in USERS {
        let tokens = idp.access_token(user.login).await.unwrap();
        for token in [&tokens.access_token, &tokens.id_token] {
            let c = claims(token);
            assert_eq!(c["sub"], user.login);
            assert_eq!(c["name"], user.name);
            assert_eq!(c["email"], user.email);
            assert_eq!(c["email_verified"], user.email_verified);
            assert_eq!(c["groups"], json!(user.groups));
        }
    }
}

#[tokio::test]
async fn login_hint_decides_who_signs_in_and_unknown_users_are_refused() {
    let idp = start(IdpOptions::default()).await;
    let e = idp.access_token("mallory").await.unwrap_err().to_string();
    assert!(e.contains("unknown login_hint") && e.contains("400"), "{e}");

    // One cookie jar, so the provider session is reused: login_hint still decides.
    let browser = Browser::new().unwrap();
    let cb = format!("http://127.0.0.1:{}/cb", free_port().unwrap());
    for user in ["alice", "bob", "alice"] {
        let tokens = idp
            .code_flow(&browser, &idp.cli_auth(), &cb, user)
            .await
            .unwrap();
        assert_eq!(claims(&tokens.access_token)["sub"], user);
    }

    // No login_hint: an error page, not a sign-in as anyone.
    let auth = idp.discovery().await.unwrap()["authorization_endpoint"]
        .as_str()
        .unwrap()
        .to_owned();
    let url = format!(
        "{auth}?client_id={CLI_CLIENT_ID}&response_type=code&scope=openid&redirect_uri={cb}\
         &code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256"
    );
    let e = Browser::new()
        .unwrap()
        .through_idp(&url)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("400") && e.contains("no login_hint"), "{e}");
}

#[tokio::test]
async fn pkce_is_required() {
    let idp = start(IdpOptions::default()).await;
    let auth = idp.discovery().await.unwrap()["authorization_endpoint"]
        .as_str()
        .unwrap()
        .to_owned();
    let cb = format!("http://127.0.0.1:{}/cb", free_port().unwrap());
    for client in [CLI_CLIENT_ID, WEB_CLIENT_ID] {
        let cb = if client == WEB_CLIENT_ID {
            cb.replace("/cb", "/auth/callback")
        } else {
            cb.clone()
        };
        let url = format!(
            "{auth}?client_id={client}&response_type=code&scope=openid&redirect_uri={cb}\
             &state=s&login_hint=alice"
        );
        let back = Browser::new().unwrap().through_idp(&url).await.unwrap();
        assert!(back.starts_with(&cb), "{back}");
        assert_eq!(
            query_param(&back, "error").as_deref(),
            Some("invalid_request"),
            "{back}"
        );
        assert!(
            query_param(&back, "error_description")
                .unwrap_or_default()
                .contains("PKCE"),
            "{back}"
        );
    }
}

#[tokio::test]
async fn sign_forges_tokens_with_published_unpublished_and_no_keys() {
    let idp = start(IdpOptions::default()).await;
    let published = idp.published_kids().await.unwrap();
    let body = idp.claims_for("alice", Duration::from_secs(60));
    assert_eq!(body["aud"], AUDIENCE);
    assert_eq!(body["groups"], json!(["finance"]));

    let current = idp
        .sign(json!({}), body.clone(), KeyChoice::Current)
        .await
        .unwrap();
    let (h, c) = decode_jwt(&current).unwrap();
    assert_eq!(
        h,
        json!({"alg": "RS256", "typ": "at+jwt", "kid": published[0]})
    );
    assert_eq!(c, body, "claims are signed exactly as given");

    let unpublished = idp
        .sign(json!({}), body.clone(), KeyChoice::Unpublished)
        .await
        .unwrap();
    let kid = header(&unpublished)["kid"].as_str().unwrap().to_owned();
    assert_eq!(kid, idp.unpublished_kid().unwrap());
    assert!(
        !published.contains(&kid),
        "{kid} is published: {published:?}"
    );

    // Header overrides: another kid on the real key, a removed member, alg none.
    let other = idp
        .sign(
            json!({"kid": "not-a-key", "typ": null}),
            body.clone(),
            KeyChoice::Current,
        )
        .await
        .unwrap();
    assert_eq!(header(&other), json!({"alg": "RS256", "kid": "not-a-key"}));
    let none = idp
        .sign(json!({"alg": "none"}), body.clone(), KeyChoice::Current)
        .await
        .unwrap();
    assert!(none.ends_with('.'), "{none}");
    assert_eq!(header(&none)["alg"], "none");
    let hs = idp
        .sign(json!({"alg": "HS256"}), body.clone(), KeyChoice::Current)
        .await
        .unwrap();
    assert_eq!(header(&hs)["alg"], "HS256");
    // Two signatures by the same RSA key over the same input are identical (PKCS#1 v1.5):
    // the forged tokens differ from the real key's only where asked.
    let again = idp
        .sign(json!({}), body.clone(), KeyChoice::Current)
        .await
        .unwrap();
    assert_eq!(again, current);
    assert_ne!(
        unpublished.rsplit('.').next(),
        current.rsplit('.').next(),
        "the unpublished key is another key"
    );

    let e = idp
        .sign(json!({"alg": 7}), body, KeyChoice::Current)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("400"), "{e}");
}

#[tokio::test]
async fn rotation_publishes_the_unpublished_key_and_keeps_sessions() {
    let mut idp = start(IdpOptions::default()).await;
    let issuer = idp.issuer();
    let old = idp.signing_kid().unwrap();
    let next = idp.unpublished_kid().unwrap();
    assert_eq!(idp.published_kids().await.unwrap(), vec![old.clone()]);
    let before = idp.access_token("alice").await.unwrap();
    assert_eq!(
        header(&before.access_token)["kid"].as_str(),
        Some(old.as_str())
    );

    idp.restart_rotated().await.unwrap();
    assert_eq!(idp.issuer(), issuer, "same port, same issuer");
    assert_eq!(
        idp.discovery().await.unwrap()["issuer"].as_str(),
        Some(issuer.as_str())
    );
    assert_eq!(idp.signing_kid().unwrap(), next);
    assert_eq!(
        idp.published_kids().await.unwrap(),
        vec![next.clone(), old.clone()],
        "the old key stays published, after the new one"
    );
    let newest = idp.unpublished_kid().unwrap();
    assert!(newest != next && newest != old);
    assert!(!idp.published_kids().await.unwrap().contains(&newest));

    // New tokens are signed with the new key.
    let after = idp.access_token("bob").await.unwrap();
    assert_eq!(
        header(&after.access_token)["kid"].as_str(),
        Some(next.as_str())
    );
    assert_eq!(header(&after.id_token)["kid"].as_str(), Some(next.as_str()));
    let forged = idp
        .sign(json!({}), json!({"sub": "bob"}), KeyChoice::Current)
        .await
        .unwrap();
    assert_eq!(header(&forged)["kid"].as_str(), Some(next.as_str()));

    // A refresh token from before the restart still works (state kept), signed anew.
    let refreshed = idp
        .refresh(&idp.cli_auth(), before.refresh_token.as_deref().unwrap())
        .await
        .unwrap();
    assert_eq!(
        header(&refreshed.access_token)["kid"].as_str(),
        Some(next.as_str())
    );
    assert_eq!(claims(&refreshed.access_token)["sub"], "alice");

    // A second rotation: still every key published so far, newest first.
    idp.restart_rotated().await.unwrap();
    assert_eq!(idp.published_kids().await.unwrap(), vec![newest, next, old]);
}

#[tokio::test]
async fn web_client_gets_refresh_tokens_and_both_secret_methods_work() {
    let public_url = format!("http://127.0.0.1:{}", free_port().unwrap());
    let idp = start(IdpOptions::for_dure(&public_url)).await;
    assert_eq!(idp.client_id(), WEB_CLIENT_ID);
    let redirect_uri = format!("{public_url}/auth/callback");
    let browser = Browser::new().unwrap();
    let tokens = idp
        .code_flow(&browser, &idp.web_auth(), &redirect_uri, "carol")
        .await
        .unwrap();
    let at = claims(&tokens.access_token);
    assert_eq!(at["aud"], AUDIENCE);
    assert_eq!(at["client_id"], WEB_CLIENT_ID);
    assert_eq!(at["groups"], json!(["hr"]));
    assert_eq!(claims(&tokens.id_token)["aud"], WEB_CLIENT_ID);
    // offline_access was requested but dropped (no prompt=consent); the refresh token comes
    // anyway.
    assert_eq!(tokens.scope.as_deref(), Some("openid profile email groups"));
    let refresh_token = tokens.refresh_token.clone().expect("a refresh token");

    let basic = idp.refresh(&idp.web_auth(), &refresh_token).await.unwrap();
    check_refreshed(&basic, "carol");
    // A confidential client's refresh token is not rotated (before 70% of its life).
    assert_eq!(basic.refresh_token.as_deref(), Some(refresh_token.as_str()));
    let post = ClientAuth::Post {
        client_id: idp.client_id().to_owned(),
        client_secret: idp.client_secret().to_owned(),
    };
    check_refreshed(&idp.refresh(&post, &refresh_token).await.unwrap(), "carol");

    let wrong = ClientAuth::Basic {
        client_id: idp.client_id().to_owned(),
        client_secret: "wrong".to_owned(),
    };
    let (status, body) = idp
        .token_request(
            &wrong,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &refresh_token),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client")),
        "{body}"
    );

    // Only the registered redirect URI is accepted.
    let e = idp
        .code_flow(
            &browser,
            &idp.web_auth(),
            &format!("{public_url}/elsewhere"),
            "carol",
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("redirect_uri"), "{e}");

    // Logout back to Dure's public URL.
    let end = idp
        .end_session_url(
            WEB_CLIENT_ID,
            &format!("{public_url}/"),
            "bye",
            Some(&tokens.id_token),
        )
        .await
        .unwrap();
    assert_eq!(
        browser.logout_at_idp(&end).await.unwrap(),
        format!("{public_url}/?state=bye")
    );
    let e = idp
        .refresh(&idp.web_auth(), &refresh_token)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("invalid_grant"), "{e}");
}

fn check_refreshed(tokens: &Tokens, sub: &str) {
    let at = claims(&tokens.access_token);
    assert_eq!(header(&tokens.access_token)["typ"], "at+jwt");
    assert_eq!(
        (at["aud"].as_str(), at["sub"].as_str()),
        (Some(AUDIENCE), Some(sub))
    );
    assert!(at["groups"].is_array());
    let id = claims(&tokens.id_token);
    assert_eq!(
        (id["aud"].as_str(), id["sub"].as_str()),
        (Some(WEB_CLIENT_ID), Some(sub))
    );
}

#[tokio::test]
async fn logout_redirects_without_a_form_and_revokes_the_grant() {
    let idp = start(IdpOptions::default()).await;
    let browser = Browser::new().unwrap();
    let cb = format!("http://127.0.0.1:{}/cb", free_port().unwrap());
    let tokens = idp
        .code_flow(&browser, &idp.cli_auth(), &cb, "alice")
        .await
        .unwrap();
    let idp_base = idp.issuer();
    assert!(browser.cookie(&idp_base, "_session").is_some());

    let end = idp
        .end_session_url(CLI_CLIENT_ID, &cb, "s1", Some(&tokens.id_token))
        .await
        .unwrap();
    let first = browser.history().len();
    assert_eq!(
        browser.logout_at_idp(&end).await.unwrap(),
        format!("{cb}?state=s1")
    );
    let hops: Vec<(String, u16)> = browser.history()[first..]
        .iter()
        .map(|h| (h.url.split('?').next().unwrap().to_owned(), h.status))
        .collect();
    assert_eq!(
        hops,
        vec![
            (format!("{idp_base}/session/end"), 303),
            (format!("{idp_base}/__test/logout-confirm"), 303),
        ]
    );
    assert!(
        browser.cookie(&idp_base, "_session").is_none(),
        "provider session cookie cleared"
    );
    let e = idp
        .refresh(&idp.cli_auth(), tokens.refresh_token.as_deref().unwrap())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("invalid_grant"), "{e}");

    // Signed out already: the walk still ends at the post-logout URI.
    let again = idp
        .end_session_url(CLI_CLIENT_ID, &cb, "s2", None)
        .await
        .unwrap();
    assert_eq!(
        browser.logout_at_idp(&again).await.unwrap(),
        format!("{cb}?state=s2")
    );
    // And the next sign-in works.
    idp.code_flow(&browser, &idp.cli_auth(), &cb, "bob")
        .await
        .unwrap();
}

#[tokio::test]
async fn sigterm_stops_the_provider() {
    let mut idp = start(IdpOptions::default()).await;
    assert_eq!(idp.stop().await.unwrap(), Some(0));
    assert!(idp.discovery().await.is_err());
    assert!(idp.logs().contains("SIGTERM"), "{}", idp.logs());
}

/// The scripted browser's walk (Dure login → provider → callback → return_to) against a
/// minimal relying party speaking Dure's contract, so the walk is tested before Dure has it.
#[tokio::test]
async fn browser_login_walks_a_relying_party_through_the_provider() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let idp = Arc::new(start(IdpOptions::for_dure(&base)).await);
    tokio::spawn(fake_rp(listener, idp.clone(), base.clone()));

    let browser = Browser::new().unwrap();
    let trace = browser.login(&base, "admin").await.unwrap();
    let steps: Vec<String> = trace
        .hops
        .iter()
        .map(|h| {
            let path = h.url.split('?').next().unwrap();
            let path = path.replace(&idp.issuer(), "IDP").replace(&base, "RP");
            let path = if path.starts_with("IDP/interaction/") {
                "IDP/interaction/UID".to_owned()
            } else if path.starts_with("IDP/auth/") {
                "IDP/auth/UID".to_owned()
            } else {
                path
            };
            format!("{path} {}", h.status)
        })
        .collect();
    assert_eq!(
        steps,
        [
            "RP/auth/login 303",
            "IDP/auth 303",
            "IDP/interaction/UID 303",
            "IDP/auth/UID 303",
            "IDP/interaction/UID 303",
            "IDP/auth/UID 303",
            "RP/auth/callback 303",
            "RP/ 200",
        ],
        "{trace}"
    );
    assert_eq!(query_param(&trace.authorize_url, "login_hint"), None);
    assert_eq!(
        query_param(&trace.callback_url, "iss"),
        Some(idp.issuer()),
        "{trace}"
    );
    assert_eq!(
        browser.cookie(&base, "dure_session").as_deref(),
        Some("admin")
    );
    assert!(
        trace
            .callback
            .set_cookie("dure_session")
            .unwrap()
            .contains("HttpOnly")
    );
    assert_eq!(trace.landing.as_ref().unwrap().body, "home of admin");

    // Split steps, with a tampered state: the relying party refuses the callback.
    let other = Browser::new().unwrap();
    let authorize = other.start_login(&base, "/docs").await.unwrap();
    let callback = other
        .through_idp(&Browser::with_login_hint(&authorize, "bob").unwrap())
        .await
        .unwrap();
    assert!(callback.starts_with(&format!("{base}/auth/callback?")));
    let tampered = callback.replace("state=", "state=x");
    assert_eq!(other.finish(&tampered).await.unwrap().status, 400);
    let ok = other.finish(&callback).await.unwrap();
    assert_eq!(
        ok.location().as_deref(),
        Some(format!("{base}/docs").as_str())
    );
    assert_eq!(other.cookie(&base, "dure_session").as_deref(), Some("bob"));
}

/// Dure's sign-in contract in miniature: `/auth/login` redirects to the provider with state,
/// nonce and PKCE; `/auth/callback` checks state, exchanges the code as the web client, sets
/// `dure_session` (here: the user's sub) and redirects to `return_to`.
async fn fake_rp(listener: tokio::net::TcpListener, idp: Arc<TestIdp>, base: String) {
    use base64::Engine as _;
    use sha2::Digest as _;
    let pending: Arc<Mutex<HashMap<String, (String, String)>>> = Arc::default();
    loop {
        let Ok((sock, _)) = listener.accept().await else {
            return;
        };
        let (idp, base, pending) = (idp.clone(), base.clone(), pending.clone());
        tokio::spawn(async move {
            let (read, mut write) = sock.into_split();
            let mut lines = BufReader::new(read).lines();
            let request_line = lines.next_line().await.unwrap().unwrap_or_default();
            let mut cookie = String::new();
            while let Ok(Some(line)) = lines.next_line().await {
                if line.is_empty() {
                    break;
                }
                if let Some(v) = line.strip_prefix("cookie: ") {
                    cookie = v.to_owned();
                }
            }
            let target = request_line.split(' ').nth(1).unwrap_or("/").to_owned();
            let url = format!("{base}{target}");
            let path = target.split('?').next().unwrap();
            let (status, headers, body) = match path {
                "/auth/login" => {
                    let state = format!("st{}", rand::random::<u64>());
                    let verifier = format!("verifier-{state}-0123456789-0123456789-0123456789");
                    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
                        .encode(sha2::Sha256::digest(verifier.as_bytes()));
                    let return_to = query_param(&url, "return_to").unwrap();
                    pending
                        .lock()
                        .unwrap()
                        .insert(state.clone(), (verifier, return_to));
                    let auth = idp.discovery().await.unwrap()["authorization_endpoint"]
                        .as_str()
                        .unwrap()
                        .to_owned();
                    let location = format!(
                        "{auth}?client_id={WEB_CLIENT_ID}&response_type=code&scope=openid%20profile\
                         &redirect_uri={base}/auth/callback&state={state}&nonce=n\
                         &code_challenge={challenge}&code_challenge_method=S256"
                    );
                    (303, vec![format!("Location: {location}")], String::new())
                }
                "/auth/callback" => {
                    let state = query_param(&url, "state").unwrap_or_default();
                    let flow = pending.lock().unwrap().remove(&state);
                    match flow {
                        None => (400, vec![], "bad state".to_owned()),
                        Some(flow) => {
                            let (verifier, return_to) = flow;
                            let code = query_param(&url, "code").unwrap();
                            let (s, tokens) = idp
                                .token_request(
                                    &idp.web_auth(),
                                    &[
                                        ("grant_type", "authorization_code"),
                                        ("code", &code),
                                        ("redirect_uri", &format!("{base}/auth/callback")),
                                        ("code_verifier", &verifier),
                                    ],
                                )
                                .await
                                .unwrap();
                            assert_eq!(s, 200, "{tokens}");
                            let sub = claims(tokens["id_token"].as_str().unwrap())["sub"]
                                .as_str()
                                .unwrap()
                                .to_owned();
                            (
                                303,
                                vec![
                                    format!("Location: {return_to}"),
                                    format!(
                                        "Set-Cookie: dure_session={sub}; Path=/; HttpOnly; SameSite=Lax"
                                    ),
                                ],
                                String::new(),
                            )
                        }
                    }
                }
                _ => {
                    let who = cookie
                        .split("; ")
                        .find_map(|c| c.strip_prefix("dure_session="))
                        .unwrap_or("nobody");
                    (200, vec![], format!("home of {who}"))
                }
            };
            let mut answer = format!("HTTP/1.1 {status} X\r\nConnection: close\r\n");
            for h in headers {
                answer.push_str(&h);
                answer.push_str("\r\n");
            }
            answer.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
            let _ = write.write_all(answer.as_bytes()).await;
            let _ = write.shutdown().await;
        });
    }
}
