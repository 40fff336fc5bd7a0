//! The in-process server the gateway's socket tests share: a `Server` on port 0, driven by
//! real WebSocket clients.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use dure_collab::protocol;
use dure_gateway::{Config, Server};
use dure_storage::Store;
use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

pub type Ws = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

pub struct Running {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// A server on the store `cfg` names.
    pub async fn start(cfg: Config) -> Running {
        Self::serve(Server::bind(cfg).await.expect("bind"))
    }

    /// A server on a given store (tests prepare its content first).
    pub async fn start_on(cfg: Config, store: Store) -> Running {
        Self::serve(Server::bind_with_store(cfg, store).await.expect("bind"))
    }

    fn serve(server: Server) -> Running {
        let addr = server.local_addr();
        let (stop, rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            server
                .run(async move {
                    let _ = rx.await;
                })
                .await
                .expect("run");
        });
        Running {
            addr,
            stop: Some(stop),
            task,
        }
    }

    /// A WebSocket to `path` (with its query) on this server.
    pub async fn connect(&self, path: &str) -> Ws {
        let (ws, _) = connect_async(format!("ws://{}{path}", self.addr))
            .await
            .expect("connect");
        ws
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let _ = self.task.await;
    }
}

/// The next binary frame, or the close (code, reason); panics after 5 s of nothing.
pub async fn next_event(ws: &mut Ws) -> Result<Vec<u8>, (CloseCode, String)> {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("nothing within 5 s")
        {
            Some(Ok(Message::Binary(b))) => return Ok(b.to_vec()),
            Some(Ok(Message::Close(Some(f)))) => return Err((f.code, f.reason.to_string())),
            Some(Ok(Message::Close(None))) | None => panic!("closed without a code"),
            Some(Ok(_)) => continue,
            Some(Err(e)) => panic!("socket error: {e}"),
        }
    }
}

/// Reads until a close frame within 5 s; returns its code and reason.
pub async fn close_of(ws: &mut Ws) -> (CloseCode, String) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, ws.next())
            .await
            .expect("no close within 5 s")
        {
            Some(Ok(Message::Close(Some(f)))) => return (f.code, f.reason.to_string()),
            Some(Ok(Message::Close(None))) => panic!("close without a code"),
            Some(Ok(_)) => continue,
            Some(Err(e)) => panic!("socket error before close: {e}"),
            None => panic!("stream ended without a close frame"),
        }
    }
}

/// Reads until a `saved` ack reaching `n`.
pub async fn wait_ack(ws: &mut Ws, n: u64) {
    loop {
        let frame = next_event(ws)
            .await
            .expect("closed while waiting for an ack");
        if frame.first() == Some(&(protocol::MSG_SAVED as u8)) && u64::from(frame[1]) >= n {
            return;
        }
    }
}
