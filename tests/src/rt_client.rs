//! A client of Dure's realtime socket (`/ws/rt`, `docs/realtime.md`) over tokio-tungstenite:
//! requests with ids and their one reply, numbered events kept in order, and the close.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How long any one wait lasts before the test fails.
pub const WAIT: Duration = Duration::from_secs(10);

/// How the socket authenticates.
#[derive(Debug, Clone, Default)]
pub enum Auth {
    /// Nothing: a guest (or the local user in local mode).
    #[default]
    None,
    /// A bearer access token in the subprotocol (`dure.rt, dure-token.JWT`).
    Bearer(String),
    /// A session cookie with the page's Origin, as a browser sends them.
    Cookie { cookie: String, origin: String },
}

pub struct RtClient {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Events read while waiting for something else, oldest first.
    pub events: Vec<Value>,
    next_id: u64,
    /// The last event number seen.
    pub last_seq: u64,
    /// Session id and resume token from the welcome.
    pub session: Option<(String, String)>,
    /// The subprotocol the server chose.
    pub protocol: Option<String>,
}

/// Why the socket ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closed {
    pub code: Option<u16>,
    pub reason: String,
}

impl RtClient {
    /// Opens `ws://ADDR/ws/rt` (`base` is `http://ADDR`) without saying hello.
    pub async fn open(base: &str, auth: &Auth) -> Result<RtClient, BoxError> {
        let url = format!("{}/ws/rt", base.replacen("http", "ws", 1));
        let mut req = url.into_client_request()?;
        let headers = req.headers_mut();
        match auth {
            Auth::None => {}
            Auth::Bearer(token) => {
                headers.insert(
                    "Sec-WebSocket-Protocol",
                    HeaderValue::from_str(&format!("dure.rt, dure-token.{token}"))?,
                );
            }
            Auth::Cookie { cookie, origin } => {
                headers.insert("Cookie", HeaderValue::from_str(cookie)?);
                headers.insert("Origin", HeaderValue::from_str(origin)?);
            }
        }
        let (ws, resp) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(req))
            .await
            .map_err(|_| "realtime socket handshake timed out")??;
        let protocol = resp
            .headers()
            .get("Sec-WebSocket-Protocol")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ok(RtClient {
            ws,
            events: vec![],
            next_id: 0,
            last_seq: 0,
            session: None,
            protocol,
        })
    }

    /// Opens and says hello; fails unless the session is fresh.
    pub async fn connect(base: &str, auth: &Auth) -> Result<RtClient, BoxError> {
        let mut c = RtClient::open(base, auth).await?;
        let w = c.ok("hello", json!({"features": ["meet"]})).await?;
        if w["resumed"] != false {
            return Err(format!("a fresh hello resumed: {w}").into());
        }
        c.session = Some((
            w["session"].as_str().ok_or("no session")?.to_owned(),
            w["resume_token"].as_str().ok_or("no token")?.to_owned(),
        ));
        Ok(c)
    }

    pub async fn send_text(&mut self, text: String) -> Result<(), BoxError> {
        self.ws.send(Message::Text(text.into())).await?;
        Ok(())
    }

    pub async fn send_binary(&mut self, bytes: Vec<u8>) -> Result<(), BoxError> {
        self.ws.send(Message::Binary(bytes.into())).await?;
        Ok(())
    }

    /// The next frame as JSON, or `Err(Closed)` boxed when the socket closed.
    pub async fn frame(&mut self) -> Result<Value, BoxError> {
        loop {
            let msg = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .map_err(|_| format!("no frame within {WAIT:?}"))?;
            match msg {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(t.as_str())?;
                    if let Some(seq) = v["seq"].as_u64() {
                        if seq != self.last_seq + 1 {
                            return Err(format!(
                                "event out of order: {seq} after {}: {v}",
                                self.last_seq
                            )
                            .into());
                        }
                        self.last_seq = seq;
                    }
                    return Ok(v);
                }
                Some(Ok(Message::Close(frame))) => {
                    return Err(Box::new(Closed {
                        code: frame.as_ref().map(|f| u16::from(f.code)),
                        reason: frame.map(|f| f.reason.to_string()).unwrap_or_default(),
                    }));
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e.into()),
                None => {
                    return Err(Box::new(Closed {
                        code: None,
                        reason: "connection dropped".into(),
                    }));
                }
            }
        }
    }

    /// Sends a request and returns its reply (events read meanwhile are kept).
    pub async fn req(&mut self, kind: &str, data: Value) -> Result<Value, BoxError> {
        self.next_id += 1;
        let id = self.next_id.to_string();
        self.send_text(json!({"v": 1, "type": kind, "id": id, "data": data}).to_string())
            .await?;
        loop {
            let f = self.frame().await?;
            if f["re"] == id.as_str() {
                return Ok(f);
            }
            self.events.push(f);
        }
    }

    /// A request that must succeed: its `data`.
    pub async fn ok(&mut self, kind: &str, data: Value) -> Result<Value, BoxError> {
        let r = self.req(kind, data).await?;
        if r["type"] != "ok" {
            return Err(format!("{kind} failed: {r}").into());
        }
        Ok(r["data"].clone())
    }

    /// A request that must fail: its error code.
    pub async fn err(&mut self, kind: &str, data: Value) -> Result<String, BoxError> {
        let r = self.req(kind, data).await?;
        if r["type"] != "error" {
            return Err(format!("{kind} should have failed: {r}").into());
        }
        Ok(r["data"]["code"].as_str().unwrap_or_default().to_owned())
    }

    /// The next event of this type (others are kept).
    pub async fn event(&mut self, kind: &str) -> Result<Value, BoxError> {
        if let Some(i) = self.events.iter().position(|e| e["type"] == kind) {
            return Ok(self.events.remove(i)["data"].clone());
        }
        loop {
            let f = self.frame().await?;
            if f["type"] == kind {
                return Ok(f["data"].clone());
            }
            self.events.push(f);
        }
    }

    /// Reads until the socket closes; the close.
    pub async fn closed(&mut self) -> Result<Closed, BoxError> {
        loop {
            match self.frame().await {
                Ok(f) => self.events.push(f),
                Err(e) => {
                    return match e.downcast::<Closed>() {
                        Ok(c) => Ok(*c),
                        Err(e) => Err(e),
                    };
                }
            }
        }
    }

    /// The code of the next `error` frame (for frames sent without a readable id); events
    /// read meanwhile are kept.
    pub async fn next_error(&mut self) -> Result<String, BoxError> {
        loop {
            let f = self.frame().await?;
            if f["type"] == "error" {
                return Ok(f["data"]["code"].as_str().unwrap_or_default().to_owned());
            }
            self.events.push(f);
        }
    }

    pub fn has_event(&self, kind: &str) -> bool {
        self.events.iter().any(|e| e["type"] == kind)
    }
}

impl std::fmt::Display for Closed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "socket closed ({:?}, {})", self.code, self.reason)
    }
}

impl std::error::Error for Closed {}

/// The read half of a client's socket, for load generators that read and write apart.
pub type RtStream = futures_util::stream::SplitStream<WebSocketStream<MaybeTlsStream<TcpStream>>>;
/// The write half.
pub type RtSink =
    futures_util::stream::SplitSink<WebSocketStream<MaybeTlsStream<TcpStream>>, Message>;

impl RtClient {
    /// Splits the socket (events already read are dropped).
    pub fn into_split(self) -> (RtSink, RtStream) {
        self.ws.split()
    }
}
