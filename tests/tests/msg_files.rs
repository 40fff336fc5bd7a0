//! Conversation files through the real `dure` binary and a real OpenID provider
//! (`docs/messaging.md`, "Files (HTTP)"): uploads checked by size and content, downloads
//! with headers that keep a browser from rendering them, thumbnails, and one answer for
//! whoever is not a member. Conversations are made over `/ws/rt` (`conv.create`), as a
//! client makes them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::io::Write;

use dure_tests::rt_client::{Auth, RtClient};
use dure_tests::server::{run_to_exit, temp_dir};
use dure_tests::signed_in::SignedIn;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type R = Result<(), BoxError>;

struct Env {
    _signed_in: SignedIn,
    base: String,
    tokens: HashMap<String, String>,
    http: reqwest::Client,
}

/// What an HTTP call answered.
struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }
}

impl Env {
    async fn start(users: &[&str], extra: &[&str]) -> Result<Env, BoxError> {
        let signed_in = SignedIn::start(users, extra).await?;
        let env = Env {
            base: signed_in.base.clone(),
            tokens: signed_in.tokens.clone(),
            _signed_in: signed_in,
            http: reqwest::Client::new(),
        };
        // Everyone has used Dure once, so conversations can name them.
        for u in users {
            let a = env.get(Some(u), "/api/docs").await?;
            assert_eq!(a.status, 200, "{u} signs in");
        }
        Ok(env)
    }

    async fn send(
        &self,
        user: Option<&str>,
        req: reqwest::RequestBuilder,
    ) -> Result<Answer, BoxError> {
        let req = match user {
            Some(u) => req.bearer_auth(&self.tokens[u]),
            None => req,
        };
        let resp = req.send().await?;
        Ok(Answer {
            status: resp.status().as_u16(),
            headers: resp.headers().clone(),
            body: resp.bytes().await?.to_vec(),
        })
    }

    async fn get(&self, user: Option<&str>, path: &str) -> Result<Answer, BoxError> {
        let req = self.http.get(format!("{}{path}", self.base));
        self.send(user, req).await
    }

    /// `POST /api/conversations/{conv}/files?name=…` with `body` claimed as `content_type`.
    async fn upload(
        &self,
        user: Option<&str>,
        conv: &str,
        name: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Result<Answer, BoxError> {
        let mut url =
            reqwest::Url::parse(&format!("{}/api/conversations/{conv}/files", self.base))?;
        url.query_pairs_mut().append_pair("name", name);
        let mut req = self.http.post(url).body(body);
        if let Some(ct) = content_type {
            req = req.header("Content-Type", ct);
        }
        self.send(user, req).await
    }

    /// A group conversation made by `user` over the realtime socket, with `members`.
    async fn group(&self, user: &str, members: &[&str]) -> Result<String, BoxError> {
        let mut c = RtClient::open(&self.base, &Auth::Bearer(self.tokens[user].clone())).await?;
        let hello = c.ok("hello", json!({"features": ["meet", "msg"]})).await?;
        assert!(
            hello["features"]
                .as_array()
                .is_some_and(|f| f.contains(&json!("msg"))),
            "messaging is on: {hello}"
        );
        let made = c
            .ok(
                "conv.create",
                json!({"kind": "group", "title": "t", "members": members}),
            )
            .await?;
        let id = made["conversation"]["id"]
            .as_str()
            .ok_or("no conversation id")?;
        Ok(id.to_owned())
    }
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = flate2::Crc::new();
    crc.update(data);
    crc.sum()
}

fn chunk(png: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
    png.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let mut body = kind.to_vec();
    body.extend_from_slice(data);
    png.extend_from_slice(&body);
    png.extend_from_slice(&crc32(&body).to_be_bytes());
}

fn ihdr(width: u32, height: u32) -> Vec<u8> {
    let mut h = width.to_be_bytes().to_vec();
    h.extend_from_slice(&height.to_be_bytes());
    // 8-bit RGB, deflate, no filter method extras, no interlace.
    h.extend_from_slice(&[8, 2, 0, 0, 0]);
    h
}

/// A real RGB PNG of `width`×`height` (a gradient, so it is not all one colour).
fn png(width: u32, height: u32) -> Vec<u8> {
    let mut raw = Vec::with_capacity((height * (width * 3 + 1)) as usize);
    for y in 0..height {
        raw.push(0);
        for x in 0..width {
            raw.extend_from_slice(&[(x % 256) as u8, (y % 256) as u8, 128]);
        }
    }
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    z.write_all(&raw).unwrap();
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut out, b"IHDR", &ihdr(width, height));
    chunk(&mut out, b"IDAT", &z.finish().unwrap());
    chunk(&mut out, b"IEND", &[]);
    out
}

/// A PNG that declares its size and then holds almost nothing: a few dozen bytes claiming a
/// huge image (the header is read up to the first IDAT, hence one with a few bytes).
fn png_header_only(width: u32, height: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut out, b"IHDR", &ihdr(width, height));
    chunk(&mut out, b"IDAT", &[0x78, 0x9c, 0x63, 0x00, 0x00]);
    chunk(&mut out, b"IEND", &[]);
    out
}

/// Width and height from a PNG's header.
fn png_size(png: &[u8]) -> (u32, u32) {
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    let be = |at: usize| u32::from_be_bytes([png[at], png[at + 1], png[at + 2], png[at + 3]]);
    (be(16), be(20))
}

const ELF: &[u8] = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\0\x3e\0\x01\0\0\0";
const MZ: &[u8] = b"MZ\x90\0\x03\0\0\0\x04\0\0\0\xff\xff\0\0\xb8\0\0\0\0\0\0\0@\0\0\0";
const HTML: &[u8] =
    b"<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>";

/// A well-formed conversation id nobody made.
const NOBODYS: &str = "g0123456789abcdef0123456789abcdef";
const NO_FILE: &str = "f0123456789abcdef0123456789abcdef";

// Runs without the conversation engine: nothing about these needs a conversation to exist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_conversations_are_not_found_and_files_need_sign_in() -> R {
    let env = Env::start(&["alice"], &[]).await?;
    let mut bodies = Vec::new();
    // An upload refused for membership still answers (its body is read, not reset), even
    // when larger than the socket buffers.
    let big = vec![b'a'; 2 * 1024 * 1024];
    for a in [
        env.upload(Some("alice"), NOBODYS, "a.txt", Some("text/plain"), big)
            .await?,
        env.upload(
            Some("alice"),
            "not-a-conversation",
            "a.txt",
            None,
            b"x".to_vec(),
        )
        .await?,
        env.get(
            Some("alice"),
            &format!("/api/conversations/{NOBODYS}/files/{NO_FILE}"),
        )
        .await?,
        env.get(
            Some("alice"),
            &format!("/api/conversations/{NOBODYS}/files/{NO_FILE}/thumbnail"),
        )
        .await?,
        env.get(Some("alice"), "/api/conversations/x/files/..%2Fmeta")
            .await?,
    ] {
        assert_eq!(a.status, 404, "{}", a.json());
        assert_eq!(a.json()["error"], "not_found");
        bodies.push(a.body);
    }
    assert!(
        bodies.windows(2).all(|w| w[0] == w[1]),
        "one answer for all"
    );
    for a in [
        env.upload(None, NOBODYS, "a.txt", None, b"x".to_vec())
            .await?,
        env.get(
            None,
            &format!("/api/conversations/{NOBODYS}/files/{NO_FILE}"),
        )
        .await?,
    ] {
        assert_eq!(a.status, 401, "{}", a.json());
        assert_eq!(a.json()["error"], "unauthenticated");
    }
    Ok(())
}

#[test]
fn messaging_settings_are_checked_at_start() {
    let dir = temp_dir().unwrap();
    for (args, setting) in [
        (vec!["--max-attachment-bytes", "0"], "max_attachment_bytes"),
        (vec!["--max-image-pixels", "lots"], "max_image_pixels"),
        (vec!["--max-message-chars", "100000"], "max_message_chars"),
        (vec!["--retention-group", "a while"], "retention_group"),
        (vec!["--retention-interval", "0"], "retention_interval"),
    ] {
        let (code, out) = run_to_exit(dir.path(), &args, &[]).unwrap();
        assert_eq!(code, Some(2), "{args:?}: {out}");
        assert!(out.contains(&format!("`{setting}`")), "{args:?}: {out}");
    }
}

// Waits on the conversation engine (`conv.create`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_share_files_and_nobody_else_sees_them() -> R {
    let env = Env::start(&["alice", "bob", "carol"], &[]).await?;
    let conv = env.group("alice", &["bob"]).await?;
    let image = png(640, 480);
    let up = env
        .upload(
            Some("alice"),
            &conv,
            "회의 사진.png",
            Some("image/png"),
            image.clone(),
        )
        .await?;
    assert_eq!(up.status, 201, "{}", up.json());
    let v = up.json();
    assert_eq!(v["name"], "회의 사진.png");
    assert_eq!(v["size"], image.len());
    assert_eq!(v["type"], "image/png");
    assert_eq!(v["thumbnail"], true);
    let file = v["id"].as_str().ok_or("no id")?.to_owned();
    assert!(
        file.len() == 33 && file.starts_with('f'),
        "f + 32 hex: {file}"
    );
    let path = format!("/api/conversations/{conv}/files/{file}");
    // Another member downloads it as an attachment nobody's browser renders.
    let got = env.get(Some("bob"), &path).await?;
    assert_eq!(got.status, 200);
    assert_eq!(got.body, image);
    assert_eq!(got.header("content-type"), "image/png");
    assert_eq!(
        got.header("content-disposition"),
        "attachment; filename=\"__ __.png\"; filename*=UTF-8''%ED%9A%8C%EC%9D%98%20%EC%82%AC%EC%A7%84.png"
    );
    assert_eq!(got.header("x-content-type-options"), "nosniff");
    assert_eq!(got.header("cache-control"), "private, no-store");
    assert_eq!(got.header("content-security-policy"), "sandbox");
    let thumb = env.get(Some("bob"), &format!("{path}/thumbnail")).await?;
    assert_eq!(thumb.status, 200);
    assert_eq!(thumb.header("content-type"), "image/png");
    assert_eq!(thumb.header("x-content-type-options"), "nosniff");
    assert_eq!(png_size(&thumb.body), (320, 240));
    // Text has no thumbnail.
    let up = env
        .upload(Some("bob"), &conv, "notes.md", None, "# 안건\n".into())
        .await?;
    assert_eq!(up.status, 201, "{}", up.json());
    assert_eq!(up.json()["type"], "text/markdown");
    assert_eq!(up.json()["thumbnail"], false);
    let text = format!(
        "/api/conversations/{conv}/files/{}",
        up.json()["id"].as_str().unwrap_or_default()
    );
    let got = env.get(Some("alice"), &text).await?;
    assert_eq!(got.header("content-type"), "text/markdown; charset=utf-8");
    assert_eq!(got.body, "# 안건\n".as_bytes());
    let none = env.get(Some("alice"), &format!("{text}/thumbnail")).await?;
    assert_eq!(none.status, 404);
    // Someone signed in but not a member gets what a conversation nobody made answers.
    let unknown = env
        .get(
            Some("carol"),
            &format!("/api/conversations/{NOBODYS}/files/{file}"),
        )
        .await?;
    assert_eq!(unknown.status, 404);
    for a in [
        env.get(Some("carol"), &path).await?,
        env.get(Some("carol"), &format!("{path}/thumbnail")).await?,
        env.upload(Some("carol"), &conv, "x.png", Some("image/png"), png(2, 2))
            .await?,
    ] {
        assert_eq!(a.status, 404);
        assert_eq!(
            a.body, unknown.body,
            "the same answer as for no conversation"
        );
    }
    // A member asking for a file of another conversation finds nothing either.
    let other = env.group("bob", &[]).await?;
    let a = env
        .get(
            Some("bob"),
            &format!("/api/conversations/{other}/files/{file}"),
        )
        .await?;
    assert_eq!(a.status, 404);
    Ok(())
}

// Waits on the conversation engine (`conv.create`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_are_refused_by_size_and_content() -> R {
    let env = Env::start(&["alice"], &["--max-attachment-bytes", "64KiB"]).await?;
    let conv = env.group("alice", &[]).await?;
    let limit = 64 * 1024;
    let up = env
        .upload(Some("alice"), &conv, "full.txt", None, vec![b'a'; limit])
        .await?;
    assert_eq!(up.status, 201, "exactly the limit: {}", up.json());
    let octet = Some("application/octet-stream");
    for (name, claim, body, status, code) in [
        ("over.txt", None, vec![b'a'; limit + 1], 413, "too_large"),
        (
            "x.png",
            Some("image/png"),
            HTML.to_vec(),
            415,
            "type_mismatch",
        ),
        ("x.pdf", octet, png(4, 4), 415, "type_mismatch"),
        (
            "x.png",
            Some("application/pdf"),
            png(4, 4),
            415,
            "type_mismatch",
        ),
        ("tool", octet, ELF.to_vec(), 415, "type_not_allowed"),
        (
            "setup.exe",
            Some("application/x-msdownload"),
            MZ.to_vec(),
            415,
            "type_not_allowed",
        ),
        (
            "page.html",
            Some("text/html"),
            HTML.to_vec(),
            415,
            "type_not_allowed",
        ),
        // 100,000 × 100,000 pixels declared in 62 bytes: refused before decoding.
        (
            "huge.png",
            Some("image/png"),
            png_header_only(100_000, 100_000),
            413,
            "too_large",
        ),
        ("", None, b"x".to_vec(), 400, "bad_request"),
        ("a\u{7}.txt", None, b"x".to_vec(), 400, "bad_request"),
        (&"a".repeat(256), None, b"x".to_vec(), 400, "bad_request"),
    ] {
        let a = env.upload(Some("alice"), &conv, name, claim, body).await?;
        assert_eq!(a.status, status, "{name}: {}", a.json());
        assert_eq!(a.json()["error"], code, "{name}");
    }
    // A name with a path keeps its last segment; a broken image is kept without thumbnail.
    let mut broken = png(400, 400);
    broken.truncate(100);
    let a = env
        .upload(
            Some("alice"),
            &conv,
            "../../broken.png",
            Some("image/png"),
            broken,
        )
        .await?;
    assert_eq!(a.status, 201, "{}", a.json());
    assert_eq!(a.json()["name"], "broken.png");
    assert_eq!(a.json()["thumbnail"], false);
    Ok(())
}

/// Starts an upload of `total` bytes over a raw socket and sends only `first` of them: the
/// server holds its place until the rest comes. Returns the socket to finish it with.
async fn stalled_upload(
    env: &Env,
    user: &str,
    conv: &str,
    total: usize,
    first: usize,
) -> Result<tokio::net::TcpStream, BoxError> {
    use tokio::io::AsyncWriteExt;
    let addr = env.base.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    let head = format!(
        "POST /api/conversations/{conv}/files?name=slow.txt HTTP/1.1\r\nHost: {addr}\r\n\
         Authorization: Bearer {}\r\nContent-Type: text/plain\r\nContent-Length: {total}\r\n\r\n",
        env.tokens[user]
    );
    s.write_all(head.as_bytes()).await?;
    s.write_all(&vec![b'a'; first]).await?;
    s.flush().await?;
    Ok(s)
}

/// Waits until the server says `n` uploads are being received (`dure_uploads_receiving`).
/// On a loaded machine a stalled upload took seconds to reach its place, so the test waits
/// for the server's own count instead of guessing a time.
async fn receiving(env: &Env, n: u64) -> R {
    let want = format!("dure_uploads_receiving {n}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let m = env.get(None, "/metrics").await?;
        let text = String::from_utf8_lossy(&m.body).into_owned();
        if text.lines().any(|l| l == want) {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            return Err(format!("never {want}; /metrics says: {}", {
                text.lines()
                    .find(|l| l.starts_with("dure_uploads_receiving "))
                    .unwrap_or("nothing")
            })
            .into());
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_in_flight_are_bounded_per_person_and_across_the_server() -> R {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let env = Env::start(
        &["alice", "bob", "carol"],
        &["--uploads-per-user", "1", "--upload-concurrency", "2"],
    )
    .await?;
    let conv = env.group("alice", &["bob", "carol"]).await?;
    receiving(&env, 0).await?;
    let mut slow = stalled_upload(&env, "alice", &conv, 20_000, 1000).await?;
    receiving(&env, 1).await?;
    // Alice's second upload waits for none: it is refused while her first is received.
    let a = env
        .upload(Some("alice"), &conv, "b.txt", None, b"second".to_vec())
        .await?;
    assert_eq!(
        (a.status, a.json()["error"].as_str()),
        (429, Some("rate_limited")),
        "{}",
        a.json()
    );
    assert!(
        a.json()["message"]
            .as_str()
            .is_some_and(|m| m.contains("uploads of yours")),
        "refused by the upload bound, not another limit: {}",
        a.json()
    );
    // Someone else is not held up by alice's upload.
    let b = env
        .upload(Some("bob"), &conv, "b.txt", None, b"bob's".to_vec())
        .await?;
    assert_eq!(b.status, 201, "{}", b.json());
    // With bob's own upload also stalled, the server's two places are taken.
    let mut bob_slow = stalled_upload(&env, "bob", &conv, 20_000, 1000).await?;
    receiving(&env, 2).await?;
    let c = env
        .upload(Some("carol"), &conv, "c.txt", None, b"carol's".to_vec())
        .await?;
    assert_eq!(
        (c.status, c.json()["error"].as_str()),
        (503, Some("unavailable")),
        "{}",
        c.json()
    );
    // The stalled uploads complete and free their places.
    for s in [&mut slow, &mut bob_slow] {
        s.write_all(&vec![b'a'; 19_000]).await?;
        s.flush().await?;
        let mut answer = vec![0u8; 1024];
        let n = s.read(&mut answer).await?;
        let head = String::from_utf8_lossy(&answer[..n]);
        assert!(head.starts_with("HTTP/1.1 201"), "{head}");
    }
    receiving(&env, 0).await?;
    let c = env
        .upload(Some("carol"), &conv, "c.txt", None, b"carol's".to_vec())
        .await?;
    assert_eq!(c.status, 201, "{}", c.json());
    Ok(())
}
