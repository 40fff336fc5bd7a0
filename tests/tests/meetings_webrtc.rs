//! Real WebRTC peers (the `webrtc` crate) meeting through the real `dure` binary: Dure relays
//! their offers and answers on `/ws/rt` and mints the TURN credentials, and a real coturn
//! checks those credentials and relays the media path. Nothing here is mocked: if a peer's
//! data channel opens, the signalling, the credentials and the relay all worked.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use dure_tests::rt_client::{Auth, RtClient};
use dure_tests::server::{Dure, temp_dir};
use dure_tests::turn::{Coturn, rest_credentials, unix_now};
use dure_tests::webrtc_peer::{Peer, ice_servers_from_grant};
use serde_json::{Value, json};
use webrtc::peer_connection::RTCIceServer;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type R = Result<(), BoxError>;

/// Relay-only pairs connected in about 4 s here; allow for a loaded machine.
const CONNECT: Duration = Duration::from_secs(30);
const MESSAGE: Duration = Duration::from_secs(15);

/// Dure in local mode (every socket is the local user, who hosts the meeting, so joins go
/// straight in) minting TURN credentials for `coturn` with `secret`.
async fn dure_with_turn(
    coturn: &Coturn,
    secret: &str,
) -> Result<(Dure, tempfile::TempDir), BoxError> {
    let dir = temp_dir()?;
    let flags = coturn.dure_flags_with(secret);
    let args: Vec<&str> = flags.iter().map(String::as_str).collect();
    let dure = Dure::start(&dir.path().join("data"), &args).await?;
    Ok((dure, dir))
}

async fn create_meeting(dure: &Dure) -> Result<String, BoxError> {
    let resp = reqwest::Client::new()
        .post(dure.http_url("/api/meetings"))
        .json(&json!({"title": "Weekly sync"}))
        .send()
        .await?;
    let status = resp.status().as_u16();
    let body: Value = resp.json().await?;
    assert_eq!(status, 201, "create meeting: {body}");
    Ok(body["slug"].as_str().ok_or("no slug")?.to_owned())
}

/// One participant: its socket, its id and the TURN grant it got on entering.
struct Member {
    rt: RtClient,
    id: String,
    grant: Value,
}

async fn join(dure: &Dure, slug: &str) -> Result<Member, BoxError> {
    let base = dure.http_url("");
    let base = base.trim_end_matches('/');
    let mut rt = RtClient::connect(base, &Auth::None).await?;
    let j = rt.ok("meet.join", json!({"slug": slug})).await?;
    assert_eq!(
        j["state"], "joined",
        "the local user hosts and goes in: {j}"
    );
    let id = j["participant"]["id"]
        .as_str()
        .ok_or("no participant id")?
        .to_owned();
    let grant = rt.event("meet.turn").await?;
    Ok(Member { rt, id, grant })
}

/// Waits until `m` sees `n` participants in the roster.
async fn wait_roster(m: &mut Member, n: usize) -> R {
    loop {
        let r = m.rt.event("meet.roster").await?;
        if r["participants"].as_array().map(Vec::len) == Some(n) {
            return Ok(());
        }
    }
}

/// Sends a signal from `from` to `to` through Dure and returns the payload as `to` got it.
async fn relay(
    from: &mut Member,
    to: &mut Member,
    kind: &str,
    payload: &Value,
) -> Result<Value, BoxError> {
    from.rt
        .ok(
            "meet.signal",
            json!({"to": to.id, "kind": kind, "payload": payload}),
        )
        .await?;
    loop {
        let s = to.rt.event("meet.signal").await?;
        if s["from"] == from.id.as_str() && s["kind"] == kind {
            assert_eq!(&s["payload"], payload, "Dure relays the {kind} unchanged");
            return Ok(s["payload"].clone());
        }
    }
}

/// Connects `offerer` to `answerer` through Dure's signalling; returns both peers, channel
/// open.
async fn connect_pair(
    offerer: &mut Member,
    answerer: &mut Member,
    relay_only: bool,
) -> Result<(Peer, Peer), BoxError> {
    let mut a = Peer::new(ice_servers_from_grant(&offerer.grant), relay_only).await?;
    let mut b = Peer::new(ice_servers_from_grant(&answerer.grant), relay_only).await?;
    let offer = a.offer().await?;
    let got = relay(offerer, answerer, "offer", &offer).await?;
    let answer = b.answer(&got).await?;
    let got = relay(answerer, offerer, "answer", &answer).await?;
    a.accept(&got).await?;
    a.wait_open(CONNECT).await?;
    b.wait_open(CONNECT).await?;
    Ok((a, b))
}

async fn exchange(a: &mut Peer, b: &mut Peer, tag: &str) -> R {
    a.send(&format!("{tag}: a→b")).await?;
    assert_eq!(b.recv(MESSAGE).await?, format!("{tag}: a→b"));
    b.send(&format!("{tag}: b→a")).await?;
    assert_eq!(a.recv(MESSAGE).await?, format!("{tag}: b→a"));
    Ok(())
}

fn all_relay(candidates: &[String]) -> bool {
    !candidates.is_empty() && candidates.iter().all(|c| c.contains(" typ relay"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_peers_meet_through_dure_signalling_and_a_coturn_relay() -> R {
    let secret = "webrtc-test-secret";
    let coturn = Coturn::start(&[secret]).await?;
    let (dure, _dir) = dure_with_turn(&coturn, secret).await?;
    let slug = create_meeting(&dure).await?;
    let mut alice = join(&dure, &slug).await?;
    let mut bob = join(&dure, &slug).await?;
    wait_roster(&mut alice, 2).await?;

    let servers = ice_servers_from_grant(&alice.grant);
    assert!(
        servers
            .iter()
            .any(|s| s.urls.contains(&coturn.turn_url()) && !s.credential.is_empty()),
        "the grant names the relay with credentials: {}",
        alice.grant
    );

    // Relay-only: the peers may use no path but coturn's, with Dure's credentials.
    let (mut a, mut b) = connect_pair(&mut alice, &mut bob, true)
        .await
        .map_err(|e| format!("{e}; coturn said:\n{}", coturn.logs()))?;
    assert!(
        all_relay(&a.local_candidates().await),
        "only relay candidates: {:?}",
        a.local_candidates().await
    );
    assert!(all_relay(&b.local_candidates().await));
    exchange(&mut a, &mut b, "hello").await?;

    // A third party cannot address a participant of another meeting.
    let other = create_meeting(&dure).await?;
    let mut carol = join(&dure, &other).await?;
    let code = carol
        .rt
        .err(
            "meet.signal",
            json!({"to": alice.id, "kind": "offer", "payload": {"type": "offer", "sdp": "v=0"}}),
        )
        .await?;
    assert_eq!(code, "unknown_participant");

    a.close().await?;
    b.close().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_peers_form_a_mesh_where_the_smaller_id_offers() -> R {
    let secret = "mesh-test-secret";
    let coturn = Coturn::start(&[secret]).await?;
    let (dure, _dir) = dure_with_turn(&coturn, secret).await?;
    let slug = create_meeting(&dure).await?;
    let mut members = [
        join(&dure, &slug).await?,
        join(&dure, &slug).await?,
        join(&dure, &slug).await?,
    ];
    wait_roster(&mut members[0], 3).await?;
    // The page's rule: of each pair, the participant with the smaller id offers.
    members.sort_by(|x, y| x.id.cmp(&y.id));
    let mut links = vec![];
    for (i, j) in [(0, 1), (0, 2), (1, 2)] {
        let (left, right) = members.split_at_mut(j);
        let (a, b) = connect_pair(&mut left[i], &mut right[0], false).await?;
        links.push((i, j, a, b));
    }
    for (i, j, a, b) in &mut links {
        exchange(a, b, &format!("{i}-{j}")).await?;
    }
    for (_, _, a, b) in &links {
        a.close().await?;
        b.close().await?;
    }
    Ok(())
}

/// Gathers with only `server` allowed (relay-only) and returns the candidates found.
async fn relay_candidates_with(server: RTCIceServer) -> Result<Vec<String>, BoxError> {
    let mut p = Peer::new(vec![server], true).await?;
    p.offer().await?;
    let c = p.local_candidates().await;
    p.close().await?;
    Ok(c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coturn_refuses_forged_and_expired_credentials_and_takes_rotated_ones() -> R {
    // coturn lists the new secret and the old one, as during a rotation.
    let coturn = Coturn::start(&["secret-new", "secret-old"]).await?;
    let server = |(username, credential): (String, String)| RTCIceServer {
        urls: vec![coturn.turn_url()],
        username,
        credential,
    };
    let later = unix_now() + 600;

    let fresh = relay_candidates_with(server(rest_credentials("secret-new", "p1", later))).await?;
    assert!(
        all_relay(&fresh),
        "a credential from the current secret allocates a relay: {fresh:?}\n{}",
        coturn.logs()
    );
    let old = relay_candidates_with(server(rest_credentials("secret-old", "p2", later))).await?;
    assert!(all_relay(&old), "the previous secret still works: {old:?}");

    let forged = relay_candidates_with(server(rest_credentials("guessed", "p3", later))).await?;
    assert!(
        forged.is_empty(),
        "a forged credential gets no relay: {forged:?}"
    );
    let expired = relay_candidates_with(server(rest_credentials(
        "secret-new",
        "p4",
        unix_now() - 60,
    )))
    .await?;
    assert!(
        expired.is_empty(),
        "an expired credential gets no relay: {expired:?}"
    );
    let (user, _) = rest_credentials("secret-new", "p5", later);
    let tampered = relay_candidates_with(server((user, "AAAA".into()))).await?;
    assert!(tampered.is_empty(), "a wrong password gets no relay");

    // Dure minting with the old secret (not yet rotated on its side) still gets through.
    let (dure, _dir) = dure_with_turn(&coturn, "secret-old").await?;
    let slug = create_meeting(&dure).await?;
    let m = join(&dure, &slug).await?;
    let servers = ice_servers_from_grant(&m.grant);
    let turn = servers
        .into_iter()
        .find(|s| !s.credential.is_empty())
        .ok_or("no TURN server in the grant")?;
    let expires_at = m.grant["expires_at"].as_u64().ok_or("no expires_at")?;
    let expiry_in_name: u64 = turn
        .username
        .split(':')
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or("username is not EXPIRY:USER")?;
    assert!(
        expiry_in_name * 1000 >= expires_at && expiry_in_name > unix_now(),
        "the credential outlives the grant: {expiry_in_name} vs {expires_at}"
    );
    let minted = relay_candidates_with(turn).await?;
    assert!(
        all_relay(&minted),
        "Dure's credential allocates: {minted:?}"
    );
    Ok(())
}
