//! Meetings through the real `dure` binary and a real OpenID provider: the HTTP API, the
//! realtime socket's lobby and admission, invites, host controls, TURN credentials only after
//! admission, the access rules, and hostile frames (`docs/realtime.md`).

use std::collections::HashMap;
use std::time::Duration;

use dure_tests::idp::{IdpOptions, SCOPES, TestIdp, free_port};
use dure_tests::rt_client::{Auth, RtClient};
use dure_tests::server::{Dure, temp_dir};
use serde_json::{Value, json};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type R = Result<(), BoxError>;

const TURN_SECRET: &str = "meetings-test-secret";

struct Env {
    _idp: TestIdp,
    dure: Dure,
    base: String,
    tokens: HashMap<String, String>,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Env {
    async fn start(users: &[&str], extra: &[&str]) -> Result<Env, BoxError> {
        let port = free_port()?;
        let base = format!("http://127.0.0.1:{port}");
        let idp = TestIdp::start(IdpOptions::for_dure(&base)).await?;
        let dir = temp_dir()?;
        let mut flags: Vec<String> = idp.dure_flags();
        for f in [
            "--public-url",
            &base,
            "--admin-group",
            "dure-admins",
            "--oidc-scopes",
            SCOPES,
            "--turn-urls",
            "turn:127.0.0.1:3478?transport=udp",
            "--stun-urls",
            "stun:127.0.0.1:3478",
            "--turn-secret",
            TURN_SECRET,
            "--turn-ttl",
            "5m",
        ] {
            flags.push(f.to_owned());
        }
        flags.extend(extra.iter().map(|s| (*s).to_owned()));
        let args: Vec<&str> = flags.iter().map(String::as_str).collect();
        let dure = Dure::start_on(
            &dir.path().join("data"),
            &format!("127.0.0.1:{port}"),
            &args,
        )
        .await?;
        let mut tokens = HashMap::new();
        for u in users {
            tokens.insert((*u).to_owned(), idp.access_token(u).await?.access_token);
        }
        Ok(Env {
            _idp: idp,
            dure,
            base,
            tokens,
            http: reqwest::Client::new(),
            _dir: dir,
        })
    }

    fn auth(&self, user: &str) -> Auth {
        Auth::Bearer(self.tokens[user].clone())
    }

    async fn api(
        &self,
        user: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value), BoxError> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.tokens[user]);
        if let Some(b) = body {
            req = req.json(&b);
        }
        dure_tests::server::status_and_json(req.send().await?).await
    }

    async fn create(&self, user: &str, body: Value) -> Result<String, BoxError> {
        let (status, v) = self
            .api(user, reqwest::Method::POST, "/api/meetings", Some(body))
            .await?;
        assert_eq!(status, 201, "create meeting: {v}");
        Ok(v["slug"].as_str().ok_or("no slug")?.to_owned())
    }

    async fn invite(
        &self,
        user: &str,
        slug: &str,
        body: Value,
    ) -> Result<(String, String), BoxError> {
        let (status, v) = self
            .api(
                user,
                reqwest::Method::POST,
                &format!("/api/meetings/{slug}/invites"),
                Some(body),
            )
            .await?;
        assert_eq!(status, 201, "create invite: {v}");
        let link = v["link"].as_str().ok_or("no link")?;
        let secret = v["secret"].as_str().ok_or("no secret")?.to_owned();
        assert!(
            link.ends_with(&format!("/m/{slug}#invite={secret}")),
            "the secret travels in the fragment: {link}"
        );
        Ok((v["id"].as_str().ok_or("no id")?.to_owned(), secret))
    }

    async fn join(&self, user: &str, slug: &str) -> Result<(RtClient, Value), BoxError> {
        let mut c = RtClient::connect(&self.base, &self.auth(user)).await?;
        assert_eq!(c.protocol.as_deref(), Some("dure.rt"));
        let j = c.ok("meet.join", json!({"slug": slug})).await?;
        Ok((c, j))
    }

    async fn guest(
        &self,
        slug: &str,
        secret: &str,
        name: &str,
    ) -> Result<(RtClient, Value), BoxError> {
        let mut c = RtClient::connect(&self.base, &Auth::None).await?;
        let r = c
            .req(
                "meet.join",
                json!({"slug": slug, "invite": secret, "name": name}),
            )
            .await?;
        Ok((c, r))
    }
}

fn pid(j: &Value) -> String {
    j["participant"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guests_wait_in_the_lobby_and_get_turn_only_when_admitted() -> R {
    let env = Env::start(&["alice", "bob"], &[]).await?;
    let slug = env
        .create(
            "alice",
            json!({"title": "Budget review", "access": "guests"}),
        )
        .await?;
    assert_eq!(slug.len(), 15, "xxxx-xxxx-xxxxx: {slug}");
    let (once_id, once) = env
        .invite("alice", &slug, json!({"label": "auditor", "max_uses": 1}))
        .await?;
    let (_, many) = env.invite("alice", &slug, json!({})).await?;
    let (status, list) = env
        .api(
            "alice",
            reqwest::Method::GET,
            &format!("/api/meetings/{slug}/invites"),
            None,
        )
        .await?;
    assert_eq!(status, 200);
    assert!(
        !list.to_string().contains(&once),
        "listed invites carry no secret"
    );
    assert_eq!(list["invites"].as_array().map(Vec::len), Some(2));

    let (mut host, j) = env.join("alice", &slug).await?;
    assert_eq!(
        (j["state"].as_str(), j["participant"]["role"].as_str()),
        (Some("joined"), Some("host"))
    );
    let host_id = pid(&j);
    let turn = host.event("meet.turn").await?;
    let servers = turn["ice_servers"].as_array().ok_or("no ice servers")?;
    let with_creds = servers
        .iter()
        .find(|s| s["credential"].is_string())
        .ok_or("no TURN credential")?;
    let username = with_creds["username"].as_str().ok_or("no username")?;
    let (expiry, who) = username
        .split_once(':')
        .ok_or("username is expiry:participant")?;
    assert_eq!(who, host_id);
    let expiry: u64 = expiry.parse()?;
    let now = now_ms() / 1000;
    assert!(
        expiry > now && expiry <= now + 5 * 60 + 5,
        "TTL of minutes: {expiry} vs {now}"
    );
    assert!(
        servers
            .iter()
            .any(|s| s["urls"][0] == "stun:127.0.0.1:3478" && s.get("credential").is_none())
    );

    // The guest waits: no signalling, chat or TURN before admission.
    let (mut guest, r) = env.guest(&slug, &once, "Auditor Han").await?;
    assert_eq!(r["data"]["state"], "lobby", "{r}");
    let guest_id = pid(&r["data"]);
    let sig = json!({"to": host_id, "kind": "offer", "payload": {"type": "offer", "sdp": "v=0"}});
    assert_eq!(guest.err("meet.signal", sig.clone()).await?, "not_admitted");
    assert_eq!(
        guest
            .err("meet.chat.send", json!({"text": "hello?"}))
            .await?,
        "not_admitted"
    );
    assert!(!guest.has_event("meet.turn"));
    loop {
        let lobby = host.event("meet.lobby").await?;
        if lobby["waiting"][0]["id"] == guest_id.as_str() {
            assert_eq!(lobby["waiting"][0]["name"], "Auditor Han");
            break;
        }
    }
    host.ok("meet.admit", json!({"participant": guest_id}))
        .await?;
    guest.event("meet.admitted").await?;
    let turn = guest.event("meet.turn").await?;
    assert!(turn.to_string().contains(&format!(":{guest_id}")));
    guest.ok("meet.signal", sig).await?;
    let got = host.event("meet.signal").await?;
    assert_eq!(
        (got["from"].as_str(), got["kind"].as_str()),
        (Some(guest_id.as_str()), Some("offer"))
    );

    // Chat both ways, stamped by the server, shown to a later joiner.
    let sent = guest
        .ok(
            "meet.chat.send",
            json!({"text": "안녕하세요", "client_ref": "g1"}),
        )
        .await?;
    assert_eq!(sent["seq"], 1);
    let m = host.event("meet.chat").await?;
    assert_eq!(
        (m["text"].as_str(), m["author"]["name"].as_str()),
        (Some("안녕하세요"), Some("Auditor Han"))
    );
    host.ok("meet.chat.send", json!({"text": "welcome"}))
        .await?;
    // Everyone joined gets each message, the author too.
    assert_eq!(guest.event("meet.chat").await?["text"], "안녕하세요");
    assert_eq!(guest.event("meet.chat").await?["text"], "welcome");
    let (mut bob, _) = env.join("bob", &slug).await?;
    let backlog = bob.event("meet.chat.backlog").await?;
    assert_eq!(backlog["messages"].as_array().map(Vec::len), Some(2));
    // The chat is a conversation of the signed-in people who entered the call: bob reads it
    // (the guest's line marked as a guest's), alice has it in her list.
    let conv = j["conversation"].as_str().ok_or("no conversation id")?;
    let page = bob.ok("msg.history", json!({"conversation": conv})).await?;
    let entries = page["entries"].as_array().ok_or("no entries")?;
    let texts: Vec<&str> = entries.iter().filter_map(|e| e["text"].as_str()).collect();
    assert_eq!(texts, ["안녕하세요", "welcome"]);
    assert_eq!(entries[0]["author"]["guest"], true, "{page}");
    let list = host.ok("conv.list", json!({})).await?;
    let listed = list["conversations"]
        .as_array()
        .and_then(|l| l.iter().find(|c| c["id"] == conv).cloned())
        .ok_or("the meeting's chat is not in alice's list")?;
    assert_eq!(
        (listed["kind"].as_str(), listed["title"].as_str()),
        (Some("meeting"), Some("Budget review"))
    );
    // The guest is not a member: messaging is for signed-in people.
    assert_eq!(
        guest
            .err("msg.history", json!({"conversation": conv}))
            .await?,
        "forbidden"
    );

    // The one-use invite was burned at admission.
    let (mut g2, r) = env.guest(&slug, &once, "Second").await?;
    assert_eq!(r["data"]["code"], "invite_used_up", "{r}");
    g2.ok("ping", json!({})).await?;
    let (_, list) = env
        .api(
            "alice",
            reqwest::Method::GET,
            &format!("/api/meetings/{slug}/invites"),
            None,
        )
        .await?;
    let used = list["invites"]
        .as_array()
        .and_then(|l| l.iter().find(|i| i["id"] == once_id.as_str()).cloned())
        .ok_or("invite listed")?;
    assert_eq!(used["uses"], 1);

    // A revoked invite refuses whoever waits on it, and later joins.
    let (revoked_id, revoked) = env.invite("alice", &slug, json!({})).await?;
    let (mut waiting, r) = env.guest(&slug, &revoked, "Waiting").await?;
    assert_eq!(r["data"]["state"], "lobby");
    let (status, _) = env
        .api(
            "alice",
            reqwest::Method::DELETE,
            &format!("/api/meetings/{slug}/invites/{revoked_id}"),
            None,
        )
        .await?;
    assert_eq!(status, 204);
    assert_eq!(
        waiting.event("meet.denied").await?["reason"],
        "invite_revoked"
    );
    assert_eq!(waiting.closed().await?.code, Some(4403));
    let (_, r) = env.guest(&slug, &revoked, "Again").await?;
    assert_eq!(r["data"]["code"], "invite_revoked");

    // Removal is final: the same invite does not bring them back.
    let (mut g3, r) = env.guest(&slug, &many, "Removed").await?;
    let g3_id = pid(&r["data"]);
    host.ok("meet.admit", json!({"participant": g3_id})).await?;
    g3.event("meet.admitted").await?;
    host.ok(
        "meet.remove",
        json!({"participant": g3_id, "reason": "wrong room"}),
    )
    .await?;
    assert_eq!(g3.event("meet.removed").await?["reason"], "wrong room");
    assert_eq!(g3.closed().await?.code, Some(4403));
    let (_, r) = env.guest(&slug, &many, "Removed").await?;
    assert_eq!(r["data"]["code"], "removed");

    // A denied guest is told and closed.
    let (_, fresh) = env.invite("alice", &slug, json!({})).await?;
    let (mut g4, r) = env.guest(&slug, &fresh, "Denied").await?;
    host.ok("meet.deny", json!({"participant": pid(&r["data"])}))
        .await?;
    assert_eq!(g4.event("meet.denied").await?["reason"], "denied");
    assert_eq!(g4.closed().await?.code, Some(4403));

    // Ended over HTTP: everyone gets meet.ended and a normal close; later joins are refused.
    let (status, _) = env
        .api(
            "alice",
            reqwest::Method::POST,
            &format!("/api/meetings/{slug}/end"),
            Some(json!({})),
        )
        .await?;
    assert!(status == 200 || status == 204, "end: {status}");
    for c in [&mut host, &mut guest, &mut bob] {
        c.event("meet.ended").await?;
        assert_eq!(c.closed().await?.code, Some(1000));
    }
    let mut late = RtClient::connect(&env.base, &env.auth("bob")).await?;
    assert_eq!(late.err("meet.join", json!({"slug": slug})).await?, "ended");
    drop(env.dure);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_rules_are_decided_by_the_server() -> R {
    let env = Env::start(&["alice", "bob", "carol", "admin"], &[]).await?;
    // Invited only: bob is invited, carol is not; unknown and forbidden look the same.
    let private = env
        .create(
            "alice",
            json!({"title": "Private", "access": "invited", "invited_users": ["bob"]}),
        )
        .await?;
    let mut carol = RtClient::connect(&env.base, &env.auth("carol")).await?;
    let forbidden = carol.req("meet.join", json!({"slug": private})).await?;
    let unknown = carol
        .req("meet.join", json!({"slug": "zzzz-zzzz-zzzzz"}))
        .await?;
    assert_eq!(forbidden["data"], unknown["data"]);
    assert_eq!(forbidden["data"]["code"], "not_found");
    let (s1, b1) = env
        .api(
            "carol",
            reqwest::Method::GET,
            &format!("/api/meetings/{private}"),
            None,
        )
        .await?;
    let (s2, b2) = env
        .api(
            "carol",
            reqwest::Method::GET,
            "/api/meetings/zzzz-zzzz-zzzzz",
            None,
        )
        .await?;
    assert_eq!((s1, &b1), (s2, &b2));
    assert_eq!(s1, 404);
    let (mut bob, j) = env.join("bob", &private).await?;
    assert_eq!(j["participant"]["role"], "participant");
    assert_eq!(
        bob.err("meet.lock", json!({"locked": true})).await?,
        "forbidden"
    );
    // Guests cannot come without an invite, and invites need access "guests".
    let mut anon = RtClient::connect(&env.base, &Auth::None).await?;
    assert_eq!(
        anon.err("meet.join", json!({"slug": private, "name": "X"}))
            .await?,
        "not_found"
    );
    let (status, v) = env
        .api(
            "alice",
            reqwest::Method::POST,
            &format!("/api/meetings/{private}/invites"),
            Some(json!({})),
        )
        .await?;
    assert_eq!(status, 409, "{v}");
    let (status, _) = env
        .api(
            "bob",
            reqwest::Method::PATCH,
            &format!("/api/meetings/{private}"),
            Some(json!({"title": "Mine"})),
        )
        .await?;
    assert!(
        status == 403 || status == 404,
        "a participant cannot change the meeting: {status}"
    );

    // A meeting linked to a document: its viewer gets no host rights.
    let (status, doc) = env
        .api(
            "alice",
            reqwest::Method::POST,
            "/api/docs",
            Some(json!({"title": "Minutes"})),
        )
        .await?;
    assert_eq!(status, 201, "{doc}");
    let doc_id = doc["id"].as_str().ok_or("doc id")?.to_owned();
    let (status, v) = env
        .api(
            "alice",
            reqwest::Method::POST,
            &format!("/api/docs/{doc_id}/shares"),
            Some(json!({"kind": "user", "id": "carol@example.gov", "role": "viewer"})),
        )
        .await?;
    assert!(status < 300, "share: {v}");
    let linked = env
        .create(
            "alice",
            json!({"title": "About the minutes", "access": "invited", "doc_id": doc_id}),
        )
        .await?;
    let (mut host, _) = env.join("alice", &linked).await?;
    let j = carol.ok("meet.join", json!({"slug": linked})).await?;
    assert_eq!(
        j["participant"]["role"], "participant",
        "a viewer is no host"
    );
    assert_eq!(j["meeting"]["doc_id"], doc_id.as_str());
    assert_eq!(carol.err("meet.end", json!({})).await?, "forbidden");
    assert_eq!(
        carol
            .err(
                "meet.remove",
                json!({"participant": pid(&json!({"participant": {"id": "x"}}))})
            )
            .await?,
        "forbidden"
    );
    // Linking a document needs editing rights on it.
    let (status, _) = env
        .api(
            "carol",
            reqwest::Method::POST,
            "/api/meetings",
            Some(json!({"title": "Hijack", "doc_id": doc_id})),
        )
        .await?;
    assert!(
        status == 403 || status == 404,
        "a viewer cannot link the document: {status}"
    );

    // A participant of one meeting cannot address one in another.
    let (_bob2, j) = env.join("bob", &private).await?;
    let other_pid = pid(&j);
    let sig = json!({"to": other_pid, "kind": "candidate", "payload": {"candidate": ""}});
    assert_eq!(host.err("meet.signal", sig).await?, "unknown_participant");

    // Lock refuses newcomers; hosts still enter.
    host.ok("meet.lock", json!({"locked": true})).await?;
    let mut bob3 = RtClient::connect(&env.base, &env.auth("bob")).await?;
    assert_eq!(
        bob3.err("meet.join", json!({"slug": linked})).await?,
        "not_found",
        "bob is not invited here"
    );
    let mut alice2 = RtClient::connect(&env.base, &env.auth("alice")).await?;
    alice2.ok("meet.join", json!({"slug": linked})).await?;
    host.ok("meet.lock", json!({"locked": false})).await?;

    // Every meeting action is in the audit log.
    // (Audit records are written off the request path: allow them a moment.)
    let actions = ["meeting.create", "meeting.lock", "meeting.unlock"];
    let mut text = String::new();
    for _ in 0..50 {
        let (status, log) = env
            .api("admin", reqwest::Method::GET, "/api/audit?limit=500", None)
            .await?;
        assert_eq!(status, 200, "{log}");
        text = log.to_string();
        if actions.iter().all(|a| text.contains(a)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for action in ["meeting.create", "meeting.lock", "meeting.unlock"] {
        assert!(text.contains(action), "{action} audited: {text}");
    }
    drop(bob);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_frames_get_codes_and_the_socket_survives_or_closes_as_documented() -> R {
    let env = Env::start(
        &["alice"],
        &[
            "--rt-max-message-bytes",
            "4096",
            "--rt-signal-bytes",
            "2048",
            "--rt-messages-per-second",
            "20",
        ],
    )
    .await?;
    let slug = env.create("alice", json!({"title": "Hostile"})).await?;
    // Before hello: hello_first and close 4400.
    let mut c = RtClient::open(&env.base, &env.auth("alice")).await?;
    assert_eq!(
        c.err("meet.join", json!({"slug": slug})).await?,
        "hello_first"
    );
    assert_eq!(c.closed().await?.code, Some(4400));
    // Malformed, binary, deep, unknown: errors, and the socket lives on.
    let (mut c, _) = env.join("alice", &slug).await?;
    c.send_text("{nope".into()).await?;
    assert_eq!(c.next_error().await?, "malformed");
    c.send_binary(vec![1, 2, 3]).await?;
    assert_eq!(c.next_error().await?, "malformed");
    c.send_text(format!("{}{}", "[".repeat(64), "]".repeat(64)))
        .await?;
    assert_eq!(c.next_error().await?, "malformed");
    assert_eq!(c.err("what.ever", json!({})).await?, "unknown_type");
    c.send_text(r#"{"v":9,"id":"v","type":"ping"}"#.into())
        .await?;
    assert_eq!(c.next_error().await?, "unsupported_version");
    let big = json!({"to": "p1", "kind": "offer", "payload": {"sdp": "x".repeat(3000)}});
    assert_eq!(c.err("meet.signal", big).await?, "unknown_participant");
    c.ok("ping", json!({})).await?;
    // Over rt_max_message_bytes: 1009.
    c.send_text(format!(
        r#"{{"v":1,"id":"b","type":"ping","data":{{"x":"{}"}}}}"#,
        "y".repeat(5000)
    ))
    .await?;
    assert_eq!(c.closed().await?.code, Some(1009));
    // A flood: rate_limited errors, then 1008.
    let mut f = RtClient::connect(&env.base, &env.auth("alice")).await?;
    for i in 0..400 {
        if f.send_text(format!(r#"{{"v":1,"id":"{i}","type":"ping"}}"#))
            .await
            .is_err()
        {
            break;
        }
    }
    let closed = f.closed().await?;
    assert_eq!(closed.code, Some(1008), "{closed}");
    assert!(f.events.iter().any(|e| e["data"]["code"] == "rate_limited"));
    // Another client was never slowed: its ping answers.
    let (mut other, _) = env.join("alice", &slug).await?;
    other.ok("ping", json!({})).await?;
    // A wrong token is refused at the upgrade, not downgraded to a guest.
    let bad = RtClient::open(&env.base, &Auth::Bearer("not.a.jwt".into())).await;
    assert!(bad.is_err(), "a forged token is refused");
    tokio::time::sleep(Duration::from_millis(10)).await;
    Ok(())
}
