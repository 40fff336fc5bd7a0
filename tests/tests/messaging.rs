//! Messaging through the real `dure` binary and a real OpenID provider (`docs/messaging.md`):
//! delivery to every device, catch-up without gaps or duplicates, unread counts and read
//! markers across devices, edits and deletions, mentions, typing and presence; who may do
//! what; the limits; and `kill -9` while messages are posted, on disk and on S3.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use dure_tests::rt_client::{Auth, RtClient};
use dure_tests::server::{Dure, temp_dir};
use dure_tests::signed_in::SignedIn;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use dure_tests::signed_in::BoxError;
type R = Result<(), BoxError>;

/// The signed-in setup, with every user seen once (as after a first sign-in) so they can
/// be added to conversations.
async fn env(users: &[&str], extra: &[&str]) -> Result<SignedIn, BoxError> {
    let env = SignedIn::start(users, extra).await?;
    for u in users {
        env.device(u).await?;
    }
    Ok(env)
}

fn s(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

async fn send(c: &mut RtClient, conv: &str, text: &str) -> Result<Value, BoxError> {
    c.ok("msg.send", json!({"conversation": conv, "text": text}))
        .await
}

/// Every entry after `after`, paging forwards until `more` is false.
async fn catch_up(c: &mut RtClient, conv: &str, after: u64) -> Result<Vec<Value>, BoxError> {
    catch_up_by(c, conv, after, 7).await
}

/// [`catch_up`] in pages of `limit` (small pages exercise paging; large ones stay within the
/// socket's request rate for long logs).
async fn catch_up_by(
    c: &mut RtClient,
    conv: &str,
    after: u64,
    limit: u64,
) -> Result<Vec<Value>, BoxError> {
    let mut out: Vec<Value> = Vec::new();
    let mut after = after;
    loop {
        let page = c
            .ok(
                "msg.history",
                json!({"conversation": conv, "after": after, "limit": limit}),
            )
            .await?;
        let entries = page["entries"].as_array().cloned().unwrap_or_default();
        if let Some(last) = entries.last() {
            after = last["seq"].as_u64().unwrap();
        }
        out.extend(entries);
        if page["more"] != true {
            return Ok(out);
        }
    }
}

/// The next `conv.entry` event of this action (earlier ones are skipped).
async fn entry(c: &mut RtClient, action: &str) -> Result<Value, BoxError> {
    loop {
        let e = c.event("conv.entry").await?;
        if e["entry"]["action"] == action {
            return Ok(e);
        }
    }
}

/// The `msg.new` events of one conversation a device received, in order.
async fn new_messages(c: &mut RtClient, n: usize) -> Result<Vec<Value>, BoxError> {
    let mut got = Vec::new();
    while got.len() < n {
        got.push(c.event("msg.new").await?["message"].clone());
    }
    Ok(got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_users_three_devices_deliver_catch_up_and_agree_on_unread() -> R {
    let env = env(&["alice", "bob"], &[]).await?;
    let mut a1 = env.device("alice").await?;
    let mut a2 = env.device("alice").await?;
    let mut b1 = env.device("bob").await?;

    let created = a1
        .ok("conv.create", json!({"kind": "direct", "user": "bob"}))
        .await?;
    assert_eq!(created["created"], true, "{created}");
    let conv = s(&created["conversation"]["id"]);
    assert_eq!(created["conversation"]["kind"], "direct");
    // The same pair finds the same conversation, whoever starts it.
    let again = b1
        .ok("conv.create", json!({"kind": "direct", "user": "alice"}))
        .await?;
    assert_eq!(again["created"], false);
    assert_eq!(s(&again["conversation"]["id"]), conv);

    // Three messages reach all three devices, in order, with server-assigned sequences.
    let mut acks = Vec::new();
    for i in 0..3 {
        acks.push(send(&mut a1, &conv, &format!("hello {i}")).await?);
    }
    for dev in [&mut a1, &mut a2, &mut b1] {
        let got = new_messages(dev, 3).await?;
        let texts: Vec<String> = got.iter().map(|m| s(&m["text"])).collect();
        assert_eq!(texts, ["hello 0", "hello 1", "hello 2"]);
        for (m, ack) in got.iter().zip(&acks) {
            assert_eq!(m["seq"], ack["seq"]);
            assert_eq!(m["id"], ack["id"]);
            assert_eq!(m["author"]["user_id"], "alice");
            assert_eq!(
                m["author"]["name"], "Alice Kim",
                "the name comes from the token"
            );
        }
    }
    let first_seq = acks[0]["seq"].as_u64().unwrap();
    let seqs: Vec<u64> = acks.iter().map(|a| a["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [first_seq, first_seq + 1, first_seq + 2], "no gaps");

    // Bob's second device was offline: the list shows three unread, the catch-up gives
    // everything once.
    let mut b2 = env.device("bob").await?;
    let list = b2.ok("conv.list", json!({})).await?;
    let view = list["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == conv.as_str())
        .cloned()
        .expect("the conversation is in bob's list");
    assert_eq!(view["unread"], 3, "{view}");
    assert_eq!(view["last_message"]["text"], "hello 2");
    let all = catch_up(&mut b2, &conv, 0).await?;
    let all_seqs: Vec<u64> = all.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(
        all_seqs,
        (1..=all_seqs.len() as u64).collect::<Vec<_>>(),
        "one entry per sequence from 1: {all:?}"
    );
    assert_eq!(all[0]["kind"], "event", "the log starts with its creation");

    // Bob reads on one device: the other device and the list agree.
    let last = acks[2]["seq"].as_u64().unwrap();
    let read = b2
        .ok("msg.read", json!({"conversation": conv, "seq": last}))
        .await?;
    assert_eq!(read["unread"], 0);
    let ev = b1.event("conv.read").await?;
    assert_eq!(ev["read_seq"], last);
    assert_eq!(ev["unread"], 0);
    // Markers only rise: an older read from a lagging device changes nothing.
    let older = b1
        .ok("msg.read", json!({"conversation": conv, "seq": first_seq}))
        .await?;
    assert_eq!(older["read_seq"], last);
    let list = b1.ok("conv.get", json!({"conversation": conv})).await?;
    assert_eq!(list["conversation"]["unread"], 0);
    assert_eq!(list["conversation"]["read_seq"], last);

    // Alice's second device drops; what it missed comes back through the catch-up, with no
    // gap and no duplicate.
    let seen = last;
    drop(a2);
    for i in 3..8 {
        send(&mut a1, &conv, &format!("hello {i}")).await?;
    }
    let mut a2 = env.device("alice").await?;
    let missed = catch_up(&mut a2, &conv, seen).await?;
    let texts: Vec<String> = missed.iter().map(|e| s(&e["text"])).collect();
    assert_eq!(
        texts,
        ["hello 3", "hello 4", "hello 5", "hello 6", "hello 7"]
    );
    let unread = b1.ok("conv.get", json!({"conversation": conv})).await?;
    assert_eq!(unread["conversation"]["unread"], 5);

    // Replies, edits and deletions: only the author changes a message; everyone sees it.
    let reply = b1
        .ok(
            "msg.send",
            json!({"conversation": conv, "text": "re", "reply_to": first_seq}),
        )
        .await?;
    let target = reply["seq"].as_u64().unwrap();
    assert_eq!(
        a1.err(
            "msg.edit",
            json!({"conversation": conv, "seq": target, "text": "hijacked"})
        )
        .await?,
        "forbidden"
    );
    b1.ok(
        "msg.edit",
        json!({"conversation": conv, "seq": target, "text": "re: edited"}),
    )
    .await?;
    let changed = a1.event("msg.changed").await?;
    assert_eq!(changed["message"]["text"], "re: edited");
    assert!(changed["message"]["edited_at"].is_u64(), "{changed}");
    assert_eq!(changed["entry"]["kind"], "edit");
    let del = send(&mut a1, &conv, "oops").await?;
    a1.ok(
        "msg.delete",
        json!({"conversation": conv, "seq": del["seq"]}),
    )
    .await?;
    let page = b2
        .ok("msg.history", json!({"conversation": conv, "limit": 100}))
        .await?;
    let entries = page["entries"].as_array().unwrap();
    let by_seq = |seq: u64| entries.iter().find(|e| e["seq"] == seq).cloned().unwrap();
    assert_eq!(by_seq(target)["text"], "re: edited");
    assert_eq!(by_seq(target)["reply_to"], first_seq);
    let gone = by_seq(del["seq"].as_u64().unwrap());
    assert_eq!(gone["deleted"], true);
    assert_eq!(gone["text"], "", "a deleted message keeps no text");
    // Backwards paging from an older point.
    let older = b2
        .ok(
            "msg.history",
            json!({"conversation": conv, "before": first_seq + 1, "limit": 100}),
        )
        .await?;
    let older_seqs: Vec<u64> = older["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(older_seqs, (1..=first_seq).collect::<Vec<_>>());
    assert_eq!(older["more"], false);

    // Search finds one's own conversations' messages.
    let found = b2.ok("msg.search", json!({"query": "HELLO 4"})).await?;
    let results = found["results"].as_array().unwrap();
    assert_eq!(results.len(), 1, "{found}");
    assert_eq!(results[0]["message"]["text"], "hello 4");

    // Typing reaches the other person's devices; presence follows sockets.
    a1.ok("msg.typing", json!({"conversation": conv})).await?;
    let typing = b1.event("msg.typing").await?;
    assert_eq!(typing["user_id"], "alice");
    let watch = b1.ok("presence.watch", json!({"users": ["alice"]})).await?;
    assert_eq!(watch["presence"]["alice"], "online");
    for dev in [&mut a1, &mut a2] {
        dev.ok("presence.set", json!({"state": "away"})).await?;
    }
    let p = b1.event("presence").await?;
    assert_eq!(p["user_id"], "alice");
    assert_eq!(p["state"], "away");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_members_are_refused_and_a_removed_member_loses_access_at_once() -> R {
    let env = env(&["alice", "bob", "carol"], &[]).await?;
    let mut alice = env.device("alice").await?;
    let mut bob = env.device("bob").await?;
    let mut carol = env.device("carol").await?;
    let g = alice
        .ok(
            "conv.create",
            json!({"kind": "group", "title": "Budget 2027", "members": ["bob"]}),
        )
        .await?;
    let conv = s(&g["conversation"]["id"]);
    assert_eq!(g["conversation"]["role"], "admin");
    let announced = bob.event("conv.updated").await?;
    assert_eq!(announced["conversation"]["id"], conv.as_str());
    assert_eq!(announced["conversation"]["role"], "member");
    send(&mut alice, &conv, "secret figures").await?;
    let m = bob.event("msg.new").await?;
    assert_eq!(m["message"]["text"], "secret figures");

    // Carol is no member: one answer for everything, and the search does not find it.
    for (kind, data) in [
        ("msg.history", json!({"conversation": conv})),
        ("msg.send", json!({"conversation": conv, "text": "hi"})),
        ("msg.read", json!({"conversation": conv, "seq": 1})),
        ("conv.get", json!({"conversation": conv})),
        (
            "conv.add",
            json!({"conversation": conv, "users": ["carol"]}),
        ),
        (
            "msg.search",
            json!({"query": "secret", "conversation": conv}),
        ),
        ("msg.typing", json!({"conversation": conv})),
    ] {
        assert_eq!(carol.err(kind, data).await?, "not_found", "{kind}");
    }
    let found = carol.ok("msg.search", json!({"query": "secret"})).await?;
    assert_eq!(found["results"], json!([]));
    // A file download is refused to her as well.
    let file = reqwest::Client::new()
        .get(format!(
            "{}/api/conversations/{conv}/files/f{}",
            env.base,
            "0".repeat(32)
        ))
        .bearer_auth(&env.tokens["carol"])
        .send()
        .await?;
    assert_eq!(file.status().as_u16(), 404);

    // A member who is not an admin may not manage the group.
    assert_eq!(
        bob.err(
            "conv.rename",
            json!({"conversation": conv, "title": "Mine"})
        )
        .await?,
        "forbidden"
    );
    assert_eq!(
        bob.err(
            "conv.remove",
            json!({"conversation": conv, "user": "alice"})
        )
        .await?,
        "forbidden"
    );
    alice
        .ok(
            "conv.rename",
            json!({"conversation": conv, "title": "Budget 2028"}),
        )
        .await?;
    let renamed = entry(&mut bob, "renamed").await?;
    assert_eq!(renamed["entry"]["title"], "Budget 2028");

    // Removed while connected: told at once, refused at once, sent nothing more.
    alice
        .ok("conv.remove", json!({"conversation": conv, "user": "bob"}))
        .await?;
    let removed = bob.event("conv.removed").await?;
    assert_eq!(removed["conversation"], conv.as_str());
    assert_eq!(
        bob.err(
            "msg.send",
            json!({"conversation": conv, "text": "still here?"})
        )
        .await?,
        "not_found"
    );
    assert_eq!(
        bob.err("msg.history", json!({"conversation": conv}))
            .await?,
        "not_found"
    );
    send(&mut alice, &conv, "after bob left").await?;
    bob.ok("ping", json!({})).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    bob.ok("ping", json!({})).await?;
    assert!(
        !bob.events
            .iter()
            .any(|e| e["type"] == "msg.new" && e["data"]["message"]["text"] == "after bob left"),
        "a removed member got a message: {:?}",
        bob.events
    );
    let list = bob.ok("conv.list", json!({})).await?;
    assert!(
        !list["conversations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["id"] == conv.as_str()),
        "{list}"
    );
    // Re-added, bob reads the whole history again (membership, not a copy, grants it).
    alice
        .ok("conv.add", json!({"conversation": conv, "users": ["bob"]}))
        .await?;
    let page = bob.ok("msg.history", json!({"conversation": conv})).await?;
    assert!(page["entries"].as_array().unwrap().len() >= 3);
    // Unknown people cannot be added.
    assert_eq!(
        alice
            .err(
                "conv.add",
                json!({"conversation": conv, "users": ["nobody"]})
            )
            .await?,
        "not_found"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_and_malformed_requests_get_codes_and_the_socket_survives() -> R {
    let env = env(
        &["alice", "bob"],
        &[
            "--max-message-chars",
            "100",
            "--msg-posts-per-second",
            "1",
            "--max-conversations-per-user",
            "2",
        ],
    )
    .await?;
    let mut alice = env.device("alice").await?;
    let conv = s(&alice
        .ok("conv.create", json!({"kind": "group", "title": "one"}))
        .await?["conversation"]["id"]);
    alice
        .ok("conv.create", json!({"kind": "group", "title": "two"}))
        .await?;
    assert_eq!(
        alice
            .err("conv.create", json!({"kind": "group", "title": "three"}))
            .await?,
        "quota_exceeded"
    );
    assert_eq!(
        alice
            .err("conv.create", json!({"kind": "direct", "user": "bob"}))
            .await?,
        "quota_exceeded"
    );
    assert_eq!(
        alice
            .err(
                "msg.send",
                json!({"conversation": conv, "text": "x".repeat(101)})
            )
            .await?,
        "too_large"
    );
    for (data, code) in [
        (json!({"conversation": conv, "text": 5}), "bad_request"),
        (json!({"conversation": conv}), "bad_request"),
        (
            json!({"conversation": "../../etc", "text": "x"}),
            "not_found",
        ),
        (json!({"text": "x"}), "bad_request"),
        (
            json!({"conversation": conv, "text": "x", "mentions": ["carol"]}),
            "bad_request",
        ),
        (
            json!({"conversation": conv, "text": "x", "attachments": ["nope"]}),
            "not_found",
        ),
        (
            json!({"conversation": conv, "text": "x", "reply_to": 9999}),
            "not_found",
        ),
    ] {
        assert_eq!(alice.err("msg.send", data.clone()).await?, code, "{data}");
    }
    assert_eq!(
        alice
            .err("msg.history", json!({"conversation": conv, "limit": 0}))
            .await?,
        "bad_request"
    );
    assert_eq!(
        alice.err("conv.frobnicate", json!({})).await?,
        "unknown_type"
    );
    // Posting: a burst of four, then refused (bob's own bucket: every send attempt of alice's costs hers).
    let mut bob = env.device("bob").await?;
    let bconv = s(&bob
        .ok("conv.create", json!({"kind": "group", "title": "bob's"}))
        .await?["conversation"]["id"]);
    let mut codes = Vec::new();
    for i in 0..8 {
        let r = bob
            .req(
                "msg.send",
                json!({"conversation": bconv, "text": format!("m{i}")}),
            )
            .await?;
        codes.push(if r["type"] == "ok" {
            "ok".to_owned()
        } else {
            s(&r["data"]["code"])
        });
    }
    assert!(
        codes.iter().filter(|c| *c == "ok").count() >= 4,
        "{codes:?}"
    );
    assert!(codes.iter().any(|c| c == "rate_limited"), "{codes:?}");
    alice.ok("ping", json!({})).await?;
    // Guests may not use messaging.
    let mut guest = RtClient::connect(&env.base, &Auth::None).await?;
    assert_eq!(guest.err("conv.list", json!({})).await?, "forbidden");
    let _ = &env.dure;
    Ok(())
}

/// Posts from several sockets while `dure` is killed at a random moment; every message
/// acknowledged before the kill must be in the history after restart, once, at its
/// acknowledged sequence, and the log must have no gaps.
async fn kill_round(seed: u64, flags: &[String]) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let dir = temp_dir().unwrap();
    let data = dir.path().join("data");
    let args: Vec<&str> = flags.iter().map(String::as_str).collect();
    let mut dure = Dure::start(&data, &args).await.unwrap();
    let base = dure.http_url("");
    let mut c = RtClient::connect(&base, &Auth::None).await.unwrap();
    let conv = s(&c
        .ok("conv.create", json!({"kind": "group", "title": "kill"}))
        .await
        .unwrap()["conversation"]["id"]);
    let mut acked: Vec<(u64, String)> = Vec::new();
    for round in 0..3 {
        let writers = rng.random_range(2..5usize);
        let kill_after = Duration::from_millis(rng.random_range(50..400));
        let mut tasks = Vec::new();
        for w in 0..writers {
            let (base, conv) = (base.clone(), conv.clone());
            tasks.push(tokio::spawn(async move {
                let mut c = RtClient::connect(&base, &Auth::None).await.unwrap();
                let mut mine = Vec::new();
                for i in 0.. {
                    let text = format!("r{round}w{w}m{i}");
                    match c
                        .req("msg.send", json!({"conversation": conv, "text": text}))
                        .await
                    {
                        Ok(r) if r["type"] == "ok" => {
                            mine.push((r["data"]["seq"].as_u64().unwrap(), text))
                        }
                        // Over the posting rate: wait a little and go on.
                        Ok(r) if r["data"]["code"] == "rate_limited" => {
                            tokio::time::sleep(Duration::from_millis(50)).await
                        }
                        _ => break,
                    }
                }
                mine
            }));
        }
        tokio::time::sleep(kill_after).await;
        dure.kill9().await.unwrap();
        for t in tasks {
            acked.extend(t.await.unwrap());
        }
        dure = Dure::start_on(&data, &base.replace("http://", ""), &args)
            .await
            .unwrap();
        let mut c = RtClient::connect(&base, &Auth::None).await.unwrap();
        let all = catch_up_by(&mut c, &conv, 0, 100).await.unwrap();
        let seqs: Vec<u64> = all.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
        assert_eq!(
            seqs,
            (1..=seqs.len() as u64).collect::<Vec<_>>(),
            "seed {seed} round {round}: the log has gaps or repeats"
        );
        for (seq, text) in &acked {
            let at = all.iter().find(|e| e["seq"] == *seq);
            assert_eq!(
                at.map(|e| s(&e["text"])).as_deref(),
                Some(text.as_str()),
                "seed {seed} round {round}: acknowledged message {seq} {text} lost or moved"
            );
            let copies = all.iter().filter(|e| e["text"] == text.as_str()).count();
            assert_eq!(copies, 1, "seed {seed}: {text} stored {copies} times");
        }
    }
    assert!(!acked.is_empty(), "seed {seed}: nothing was acknowledged");
    let _ = c.ok("ping", json!({})).await;
}

fn kill_seeds(default_rounds: usize) -> Vec<u64> {
    match std::env::var("DURE_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        Some(s) => vec![s],
        None => (0..default_rounds).map(|_| rand::random()).collect(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_loses_no_acknowledged_message_on_disk() {
    for seed in kill_seeds(2) {
        eprintln!("seed {seed} (DURE_KILL_SEED={seed} to repeat)");
        kill_round(
            seed,
            &["--msg-posts-per-second".to_owned(), "200".to_owned()],
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_loses_no_acknowledged_message_on_s3() {
    let moto = dure_tests::s3::MotoServer::start()
        .await
        .expect("moto server (run infra/install-test-deps.sh)");
    moto.create_bucket("dure-msg-kill")
        .await
        .expect("create bucket");
    let mut flags = moto.dure_flags("dure-msg-kill");
    flags.extend(["--msg-posts-per-second".to_owned(), "200".to_owned()]);
    for seed in kill_seeds(2) {
        eprintln!("seed {seed} (DURE_KILL_SEED={seed} to repeat)");
        kill_round(seed, &flags).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_conversation_is_written_in_batches_not_one_object_per_message() {
    let dir = temp_dir().unwrap();
    let data = dir.path().join("data");
    let dure = Dure::start(&data, &["--msg-posts-per-second", "1000"])
        .await
        .unwrap();
    let base = dure.http_url("");
    let mut c = RtClient::connect(&base, &Auth::None).await.unwrap();
    let conv = s(&c
        .ok("conv.create", json!({"kind": "group", "title": "busy"}))
        .await
        .unwrap()["conversation"]["id"]);
    // Eight sockets post at once, each waiting for its acks: messages that queue while a
    // write is under way share the next one.
    let mut tasks = Vec::new();
    for w in 0..8 {
        let (base, conv) = (base.clone(), conv.clone());
        tasks.push(tokio::spawn(async move {
            let mut c = RtClient::connect(&base, &Auth::None).await.unwrap();
            for i in 0..25 {
                send(&mut c, &conv, &format!("w{w} m{i}")).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let objects = std::fs::read_dir(data.join("objects/conversations").join(&conv).join("log"))
        .unwrap()
        .count();
    let all = catch_up(&mut c, &conv, 0).await.unwrap();
    assert_eq!(all.len(), 201, "the created entry and 200 messages");
    assert!(
        objects * 2 < all.len(),
        "{objects} log objects for {} entries: writes are not grouped",
        all.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_removes_old_messages_and_membership_changes_are_audited() {
    let dir = temp_dir().unwrap();
    let dure = Dure::start(
        &dir.path().join("data"),
        &["--retention-group", "2s", "--retention-interval", "1s"],
    )
    .await
    .unwrap();
    let base = dure.http_url("");
    let mut c = RtClient::connect(&base, &Auth::None).await.unwrap();
    let conv = s(&c
        .ok(
            "conv.create",
            json!({"kind": "group", "title": "short-lived"}),
        )
        .await
        .unwrap()["conversation"]["id"]);
    // One at a time, each acknowledged before the next: one batch each.
    for i in 0..4 {
        send(&mut c, &conv, &format!("old {i}")).await.unwrap();
    }
    let before = catch_up(&mut c, &conv, 0).await.unwrap();
    assert_eq!(before.len(), 5);
    tokio::time::sleep(Duration::from_secs(4)).await;
    send(&mut c, &conv, "fresh").await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let after = loop {
        let after = catch_up(&mut c, &conv, 0).await.unwrap();
        let old_left = after.iter().any(|e| s(&e["text"]).starts_with("old"));
        if !old_left || std::time::Instant::now() > deadline {
            break after;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let texts: Vec<String> = after.iter().map(|e| s(&e["text"])).collect();
    assert!(
        !texts.iter().any(|t| t.starts_with("old")),
        "messages past the retention period are still there: {texts:?}"
    );
    assert!(texts.contains(&"fresh".to_owned()), "{texts:?}");
    // Numbering goes on: the next message follows the last one, never reuses a sequence.
    let next = send(&mut c, &conv, "next").await.unwrap();
    assert_eq!(next["seq"], 7);

    // Deletions are in the audit log (the local user administers it).
    c.ok("msg.delete", json!({"conversation": conv, "seq": 7}))
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = dure.get("/api/audit?limit=100").await.unwrap();
        assert_eq!(status, 200, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        let actions: Vec<String> = v["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| s(&e["action"]))
            .collect();
        if actions.iter().any(|a| a == "message.delete")
            && actions.iter().any(|a| a == "conversation.create")
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not audited: {actions:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
