//! Messaging in the browser app (`docs/messaging.md`): the real `dure` signing in through the
//! test OpenID provider, two people (Alice and Bob) each in a Chromium context of their own on
//! the app's messages page (`tests/e2e/messages.mjs`). The scenario checks what the browsers
//! saw (live delivery, unread badges, typing, reply, mention, edit, delete, a dropped picture
//! and its download, a refused upload, a shared document's link titled only once Bob may open
//! it); this test then checks what the server kept, read back over `/ws/rt` and HTTP by
//! clients signed in separately (Carol, a third person, as the outsider). A third scenario
//! (`alerts`) checks Bob's browser notifications while his tab is (emulated) hidden and his
//! presence going away after idling on a fake clock, as Alice's page and the server tell it.
//! Screenshots land in `target/e2e-artifacts/` (`messages-*.png`).
//!
//! Needs node, `tests/js/node_modules`, `tests/e2e/node_modules` and `/usr/bin/chromium`:
//! `infra/install-test-deps.sh`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod browser_runner;

use base64::Engine as _;
use browser_runner::{Scenario, artifacts_dir, field};
use dure_tests::browser::Browser;
use dure_tests::idp::{IdpOptions, SCOPES, TestIdp, free_port};
use dure_tests::rt_client::{Auth, RtClient};
use dure_tests::server::{Dure, temp_dir};
use serde_json::{Value, json};

/// The provider and `dure` signing in with it, on a public URL chosen before either starts.
struct Oidc {
    idp: TestIdp,
    dure: Dure,
    base: String,
    _dir: tempfile::TempDir,
}

impl Oidc {
    async fn start() -> Oidc {
        let port = free_port().unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let idp = TestIdp::start(IdpOptions::for_dure(&base))
            .await
            .expect("test OpenID provider (run infra/install-test-deps.sh js)");
        let dir = temp_dir().unwrap();
        let mut flags = idp.dure_flags();
        for f in ["--public-url", &base, "--oidc-scopes", SCOPES] {
            flags.push(f.to_owned());
        }
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        let dure = Dure::start_on(
            &dir.path().join("data"),
            &format!("127.0.0.1:{port}"),
            &flags,
        )
        .await
        .unwrap();
        Oidc {
            idp,
            dure,
            base,
            _dir: dir,
        }
    }

    /// A session of our own, signed in as `user` through the provider.
    async fn signed_in(&self, user: &str) -> Session {
        let b = Browser::new().unwrap();
        let trace = b.login(&self.base, user).await.unwrap();
        let cookie = b
            .cookie(&self.base, "dure_session")
            .unwrap_or_else(|| panic!("no session for {user}:\n{trace}"));
        Session {
            cookie: format!("dure_session={cookie}"),
            base: self.base.clone(),
        }
    }
}

struct Session {
    cookie: String,
    base: String,
}

impl Session {
    /// The realtime socket as this person, as a browser opens it (cookie and Origin).
    async fn rt(&self) -> RtClient {
        let auth = Auth::Cookie {
            cookie: self.cookie.clone(),
            origin: self.base.clone(),
        };
        let mut c = RtClient::open(&self.base, &auth).await.unwrap();
        let hello = c
            .ok("hello", json!({"features": ["msg"], "resume": null}))
            .await
            .unwrap();
        assert!(
            hello["features"]
                .as_array()
                .is_some_and(|f| f.contains(&json!("msg"))),
            "hello does not offer messaging: {hello}"
        );
        c
    }

    /// GET with the session cookie: status, headers and the body's bytes.
    async fn get(&self, path: &str) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
        let res = reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .get(format!("{}{path}", self.base))
            .header("Cookie", &self.cookie)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        (status, headers, res.bytes().await.unwrap().to_vec())
    }
}

fn header<'a>(h: &'a reqwest::header::HeaderMap, name: &str) -> &'a str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

/// A conversation's whole log (up to 100 entries), as the server keeps it.
async fn entries(rt: &mut RtClient, conv: &str) -> Vec<Value> {
    let h = rt
        .ok(
            "msg.history",
            json!({"conversation": conv, "before": null, "limit": 100}),
        )
        .await
        .unwrap();
    assert_eq!(h["more"], false, "{h}");
    h["entries"].as_array().unwrap().clone()
}

/// The one message entry whose text is `text`.
fn message<'a>(entries: &'a [Value], text: &str) -> &'a Value {
    let found: Vec<&Value> = entries
        .iter()
        .filter(|e| e["kind"] == "message" && e["text"] == text)
        .collect();
    assert_eq!(found.len(), 1, "one message {text:?} in {entries:#?}");
    found[0]
}

/// The conversation `conv` as `rt`'s user sees it in their list.
async fn listed(rt: &mut RtClient, conv: &str) -> Value {
    let list = rt.ok("conv.list", json!({})).await.unwrap();
    list["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == conv)
        .unwrap_or_else(|| panic!("the list lacks {conv}: {list}"))
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_people_message_each_other_share_a_picture_and_a_document() {
    let env = Oidc::start().await;
    let out = Scenario::new("messages.mjs", "direct", &env.base)
        .run(
            || {
                format!(
                    "--- dure ---\n{}\n--- provider ---\n{}",
                    env.dure.logs(),
                    env.idp.logs()
                )
            },
            |what| panic!("unexpected ask {what}"),
        )
        .await;
    let r = &out.results[0];
    let conv = field(r, "conv");
    let doc = field(r, "doc");
    let file = field(r, "file");
    assert!(
        conv.len() == 33
            && conv.starts_with('d')
            && conv[1..].bytes().all(|b| b.is_ascii_hexdigit()),
        "a direct conversation id: {conv}"
    );

    let alice = env.signed_in("alice").await;
    let bob = env.signed_in("bob").await;
    let carol = env.signed_in("carol").await;

    // The conversation: Alice and Bob, direct, and the same one for both.
    let mut rt_a = alice.rt().await;
    let view = rt_a
        .ok("conv.get", json!({"conversation": conv}))
        .await
        .unwrap()["conversation"]
        .clone();
    assert_eq!(view["kind"], "direct", "{view}");
    let mut members: Vec<&str> = view["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["user_id"].as_str().unwrap())
        .collect();
    members.sort_unstable();
    assert_eq!(members, ["alice", "bob"], "{view}");
    let again = rt_a
        .ok("conv.create", json!({"kind": "direct", "user": "bob"}))
        .await
        .unwrap();
    assert_eq!(again["conversation"]["id"], conv, "{again}");
    assert_eq!(again["created"], false, "{again}");

    // The log, as the server keeps it: every entry numbered from 1 without gaps.
    let h = rt_a
        .ok(
            "msg.history",
            json!({"conversation": conv, "before": null, "limit": 100}),
        )
        .await
        .unwrap();
    assert_eq!(h["more"], false, "{h}");
    let entries = h["entries"].as_array().unwrap().clone();
    let seqs: Vec<u64> = entries.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "{entries:#?}"
    );
    let last_seq = *seqs.last().unwrap();
    assert_eq!(h["last_seq"], last_seq, "{h}");

    let first = message(&entries, field(r, "first"));
    assert_eq!(first["author"]["user_id"], "alice", "{first}");
    let reply = message(&entries, field(r, "reply"));
    assert_eq!(reply["author"]["user_id"], "bob", "{reply}");
    assert_eq!(
        reply["reply_to"], first["seq"],
        "the reply names its target: {reply}"
    );
    let mention = message(&entries, field(r, "mention"));
    assert_eq!(
        mention["mentions"],
        json!(["bob"]),
        "the @ completion sent the mention: {mention}"
    );

    // The dropped picture: one attachment, sent without text.
    let pictures: Vec<&Value> = entries
        .iter()
        .filter(|e| e["kind"] == "message" && !e["attachments"].as_array().unwrap().is_empty())
        .collect();
    assert_eq!(
        pictures.len(),
        1,
        "only the picture went out (the refused file did not): {entries:#?}"
    );
    let att = &pictures[0]["attachments"][0];
    let png = base64::engine::general_purpose::STANDARD
        .decode(field(r, "picture"))
        .unwrap();
    assert_eq!(pictures[0]["text"], "", "{}", pictures[0]);
    assert_eq!(att["id"], file, "{att}");
    assert_eq!(att["name"], "diagram.png", "{att}");
    assert_eq!(att["type"], "image/png", "{att}");
    assert_eq!(att["size"], png.len(), "{att}");
    assert_eq!(att["thumbnail"], true, "{att}");

    // Edited and deleted, with the entries that tell other devices.
    let edited = message(&entries, field(r, "edited"));
    assert!(edited["edited_at"].is_u64(), "{edited}");
    assert!(
        entries
            .iter()
            .any(|e| e["kind"] == "edit" && e["target"] == edited["seq"] && e["by"] == "alice"),
        "no edit entry for {edited}"
    );
    let deleted: Vec<&Value> = entries.iter().filter(|e| e["deleted"] == true).collect();
    assert_eq!(deleted.len(), 1, "{entries:#?}");
    assert_eq!(deleted[0]["text"], "", "{}", deleted[0]);
    assert!(
        entries
            .iter()
            .any(|e| e["kind"] == "delete" && e["target"] == deleted[0]["seq"]),
        "no delete entry for {}",
        deleted[0]
    );
    assert!(
        !entries.iter().any(
            |e| e["text"] == "Teh meeting is at 3." || e["text"] == "Sent to the wrong person."
        ),
        "the old texts are gone: {entries:#?}"
    );

    // "Share this document": its link in the text, its id in docs; sent last.
    let shared = entries.last().unwrap();
    assert_eq!(shared["kind"], "message", "{shared}");
    assert_eq!(shared["author"]["user_id"], "alice", "{shared}");
    assert_eq!(shared["text"], field(r, "link"), "{shared}");
    assert_eq!(shared["docs"], json!([doc]), "{shared}");

    // Bob read everything: his marker is at the end, nothing unread.
    let mut rt_b = bob.rt().await;
    let mine = listed(&mut rt_b, conv).await;
    assert_eq!(mine["read_seq"], last_seq, "{mine}");
    assert_eq!(mine["unread"], 0, "{mine}");
    assert_eq!(mine["title"], Value::Null, "{mine}");
    // Bob may open the document now, Carol may not: titles follow.
    let titles = rt_b.ok("doc.titles", json!({"docs": [doc]})).await.unwrap();
    assert_eq!(titles["titles"][doc], "Quarterly plan", "{titles}");
    let mut rt_c = carol.rt().await;
    let titles = rt_c.ok("doc.titles", json!({"docs": [doc]})).await.unwrap();
    assert_eq!(titles["titles"][doc], Value::Null, "{titles}");
    assert_eq!(
        rt_c.err("conv.get", json!({"conversation": conv}))
            .await
            .unwrap(),
        "not_found"
    );

    // The picture and its thumbnail: for the members, with the download headers; not for Carol.
    let path = format!("/api/conversations/{conv}/files/{file}");
    let (status, headers, body) = bob.get(&path).await;
    assert_eq!(status, 200);
    assert_eq!(body, png, "the stored bytes are the picture");
    assert_eq!(header(&headers, "content-type"), "image/png");
    assert!(
        header(&headers, "content-disposition").starts_with("attachment;"),
        "{headers:?}"
    );
    assert_eq!(header(&headers, "x-content-type-options"), "nosniff");
    let (status, headers, thumb) = alice.get(&format!("{path}/thumbnail")).await;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "content-type"), "image/png");
    assert!(
        thumb.starts_with(b"\x89PNG\r\n\x1a\n"),
        "the thumbnail is a PNG"
    );
    for p in [path.clone(), format!("{path}/thumbnail")] {
        let (status, _, _) = carol.get(&p).await;
        assert_eq!(status, 404, "{p} as Carol");
    }

    for shot in [
        "messages-unread",
        "messages-picture",
        "messages-doc-untitled",
        "messages-doc-titled",
        "messages-ko",
    ] {
        let path = artifacts_dir().join(format!("{shot}.png"));
        assert!(path.is_file(), "{} was not written", path.display());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_is_run_from_its_members_panel() {
    let env = Oidc::start().await;
    let out = Scenario::new("messages.mjs", "group", &env.base)
        .run(
            || {
                format!(
                    "--- dure ---\n{}\n--- provider ---\n{}",
                    env.dure.logs(),
                    env.idp.logs()
                )
            },
            |what| panic!("unexpected ask {what}"),
        )
        .await;
    let conv = field(&out.results[0], "conv");
    assert!(
        conv.starts_with('g') && conv.len() == 33,
        "a group id: {conv}"
    );

    // What is left: Alice alone, admin, under the new title; Bob and Carol are out.
    let alice = env.signed_in("alice").await;
    let mut rt = alice.rt().await;
    let view = rt
        .ok("conv.get", json!({"conversation": conv}))
        .await
        .unwrap()["conversation"]
        .clone();
    assert_eq!(view["kind"], "group", "{view}");
    assert_eq!(view["title"], "Budget 2027 (final)", "{view}");
    assert_eq!(
        view["members"],
        json!([{"user_id": "alice", "name": "Alice Kim", "role": "admin"}]),
        "{view}"
    );
    for who in ["bob", "carol"] {
        let mut other = env.signed_in(who).await.rt().await;
        assert_eq!(
            other
                .err("conv.get", json!({"conversation": conv}))
                .await
                .unwrap(),
            "not_found",
            "{who}"
        );
    }
    // The log tells the story in order: the membership and title changes made from the panel.
    let h = rt
        .ok(
            "msg.history",
            json!({"conversation": conv, "before": null, "limit": 100}),
        )
        .await
        .unwrap();
    let story: Vec<String> = h["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| match e["kind"].as_str().unwrap() {
            "event" => {
                let action = e["action"].as_str().unwrap();
                // Whom it was done to, where the action has someone other than its author.
                let users = if matches!(action, "added" | "removed" | "role") {
                    e["users"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|x| x.as_str().unwrap())
                        .collect::<Vec<_>>()
                        .join(",")
                } else {
                    String::new()
                };
                format!("{} {action} {users}", e["by"].as_str().unwrap())
                    .trim_end()
                    .to_owned()
            }
            kind => format!("{kind}: {}", e["text"].as_str().unwrap_or("")),
        })
        .collect();
    let seeded = story
        .iter()
        .filter(|l| l.starts_with("message: Budget line "))
        .count();
    assert_eq!(seeded, 70, "the seeded page-filling messages: {story:#?}");
    let expected_tail = [
        "message: Budget line 70",
        "alice role bob",
        "alice renamed",
        "alice removed carol",
        "bob left",
    ];
    assert!(
        story.len() >= expected_tail.len()
            && story[story.len() - expected_tail.len()..] == expected_tail,
        "the log: {story:#?}"
    );
    assert!(
        story[0].starts_with("alice created"),
        "the log starts with its creation: {story:#?}"
    );
    assert!(
        artifacts_dir().join("messages-group.png").is_file(),
        "messages-group.png was not written"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_messages_pages_are_the_app() {
    // The app's addresses answer with the app, for any conversation id (the page asks the
    // socket, which decides who may see what).
    let dir = temp_dir().unwrap();
    let dure = Dure::start(&dir.path().join("data"), &[]).await.unwrap();
    for path in [
        "/messages",
        "/messages/",
        "/messages/d0123456789abcdef0123456789abcdef",
        "/messages/g0123456789abcdef0123456789abcdef",
    ] {
        let (status, body) = dure.get(path).await.unwrap();
        assert_eq!(status, 200, "{path}");
        assert!(body.contains("<div id=\"app\">"), "{path}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_when_hidden_and_away_after_idling() {
    let env = Oidc::start().await;
    // Carol, who shares no conversation with Bob, watches his presence over a socket of her
    // own: the scenario asks `presence bob STATE` each time Alice's page showed Bob so. The
    // first ask opens the socket and takes the state from presence.watch's answer; every later
    // one is the next `presence` event the server pushed (none in between may be missed or
    // extra). Opened only then: a socket that says nothing for 60 s is closed by the server.
    let carol = env.signed_in("carol").await;
    let mut watcher: Option<RtClient> = None;
    let mut told: Vec<String> = Vec::new();
    let out = Scenario::new("messages.mjs", "alerts", &env.base)
        .run(
            || {
                format!(
                    "--- dure ---\n{}\n--- provider ---\n{}",
                    env.dure.logs(),
                    env.idp.logs()
                )
            },
            |what| {
                let Some(want) = what.strip_prefix("presence bob ") else {
                    panic!("unexpected ask {what}");
                };
                // The scenario waits for the answer: the check runs on this thread meanwhile.
                let got = tokio::task::block_in_place(|| {
                    tokio::runtime::Handle::current().block_on(async {
                        match watcher.as_mut() {
                            None => {
                                let mut c = carol.rt().await;
                                let r = c
                                    .ok("presence.watch", json!({"users": ["bob"]}))
                                    .await
                                    .unwrap();
                                watcher = Some(c);
                                r["presence"]["bob"].as_str().unwrap_or("?").to_owned()
                            }
                            Some(c) => match c.event("presence").await {
                                Ok(e) => format!(
                                    "{}{}",
                                    if e["user_id"] == "bob" {
                                        ""
                                    } else {
                                        "not bob: "
                                    },
                                    e["state"].as_str().unwrap_or("?")
                                ),
                                Err(e) => format!("no event ({e})"),
                            },
                        }
                    })
                });
                told.push(format!("{want}: {got}"));
            },
        )
        .await;
    let r = &out.results[0];
    let conv = field(r, "conv");
    let group = field(r, "group");
    assert!(
        conv.starts_with('d') && group.starts_with('g'),
        "{conv} {group}"
    );

    // What the server told Carol, each time Alice's page showed a change: the same states.
    assert_eq!(
        told,
        [
            "online: online",
            "away: away",
            "online: online",
            "away: away",
            "online: online"
        ],
        "presence the server told a watcher, after each state Alice saw"
    );
    assert_eq!(
        r["presence"],
        json!(["online", "away", "online", "away", "online"]),
        "{r}"
    );

    // The notifications Bob's browser made: none for the message he saw, one for each while
    // hidden, the mention once; each tagged with the message's id as the server has it.
    let alice = env.signed_in("alice").await;
    let mut rt = alice.rt().await;
    let direct = entries(&mut rt, conv).await;
    let grouped = entries(&mut rt, group).await;
    let id_of = |entries: &[Value], text: &str| message(entries, text)["id"].clone();
    let notes = r["notifications"].as_array().unwrap();
    assert_eq!(
        r["notifications"],
        json!([
            {"title": "Alice Kim", "body": field(r, "long").chars().take(200).collect::<String>(), "tag": id_of(&direct, field(r, "long"))},
            {"title": "Alice Kim · Launch crew", "body": field(r, "plain"), "tag": id_of(&grouped, field(r, "plain"))},
            {"title": "Alice Kim mentioned you", "body": field(r, "mention"), "tag": id_of(&grouped, field(r, "mention"))},
        ]),
        "{notes:#?}"
    );
    let seen = id_of(&direct, field(r, "seen"));
    assert!(
        !notes.iter().any(|n| n["tag"] == seen),
        "a notification for the message Bob saw: {notes:#?}"
    );
    let mention = message(&grouped, field(r, "mention"));
    assert_eq!(mention["mentions"], json!(["bob"]), "{mention}");
    // The ids the page read from its DOM are the server's.
    for (k, entries) in [
        ("long", &direct),
        ("plain", &grouped),
        ("mention", &grouped),
    ] {
        assert_eq!(r["ids"][k], id_of(entries, field(r, k)), "{k}");
    }
    // Bob read the direct conversation once his tab showed again.
    let bob = env.signed_in("bob").await;
    let mut rt_b = bob.rt().await;
    let mine = listed(&mut rt_b, conv).await;
    assert_eq!(mine["unread"], 0, "{mine}");
    assert_eq!(mine["read_seq"], mine["last_seq"], "{mine}");
}
