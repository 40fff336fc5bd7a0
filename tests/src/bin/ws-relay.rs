//! `ws-relay`: a bare WebSocket broadcast relay, the floor Dure's benchmarks compare against.
//!
//! A connection to `/ws/doc/{id}` joins room `{id}`; every binary frame it sends is forwarded,
//! unchanged, to every other connection of the room. No CRDT, no storage, no handshake of its
//! own. Each frame is shared (reference-counted) among the receivers; each connection has a
//! writer task that drains a bounded queue, feeding frames and flushing once per batch. A
//! connection whose queue is full is closed with 1013 (slow reader) rather than stalling the
//! room.
//!
//! Usage: `ws-relay --listen 127.0.0.1:PORT [--queue FRAMES]`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};

#[derive(Parser, Debug)]
#[command(about = "Bare WebSocket broadcast relay (benchmark baseline)")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8090")]
    listen: SocketAddr,
    /// Frames a connection may have queued before it is closed as a slow reader.
    #[arg(long, default_value_t = 16384)]
    queue: usize,
}

/// What a room holds for one member: where to push frames for it.
type Peers = HashMap<u64, mpsc::Sender<Message>>;

#[derive(Default)]
struct Rooms {
    rooms: Mutex<HashMap<String, Arc<Mutex<Peers>>>>,
}

/// Locks ignoring poisoning: a panicking connection task must not take the relay down.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Rooms {
    fn join(&self, room: &str, conn: u64, tx: mpsc::Sender<Message>) -> Arc<Mutex<Peers>> {
        let peers = lock(&self.rooms)
            .entry(room.to_owned())
            .or_default()
            .clone();
        lock(&peers).insert(conn, tx);
        peers
    }

    fn leave(&self, room: &str, conn: u64, peers: &Arc<Mutex<Peers>>) {
        let mut rooms = lock(&self.rooms);
        let empty = {
            let mut p = lock(peers);
            p.remove(&conn);
            p.is_empty()
        };
        // Re-check under the map lock: someone may have joined in between.
        if empty && rooms.get(room).is_some_and(|r| Arc::ptr_eq(r, peers)) {
            rooms.remove(room);
        }
    }
}

fn ws_config() -> WebSocketConfig {
    // tungstenite allocates the read buffer eagerly: keep idle connections small.
    WebSocketConfig::default()
        .read_buffer_size(8 * 1024)
        .write_buffer_size(8 * 1024)
}

fn room_of(path: &str) -> Option<String> {
    let id = path.strip_prefix("/ws/doc/")?;
    let id = id.split('?').next().unwrap_or_default();
    (!id.is_empty() && !id.contains('/')).then(|| id.to_owned())
}

async fn serve(tcp: TcpStream, conn: u64, rooms: Arc<Rooms>, queue: usize) {
    let _ = tcp.set_nodelay(true);
    let mut room = None;
    // The callback's signature is tungstenite's; its error is an HTTP response.
    #[allow(clippy::result_large_err)]
    let callback = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        match room_of(req.uri().path()) {
            Some(id) => {
                room = Some(id);
                Ok(resp)
            }
            None => {
                let mut err = ErrorResponse::new(Some("not found".to_owned()));
                *err.status_mut() = StatusCode::NOT_FOUND;
                Err(err)
            }
        }
    };
    let ws = match tokio_tungstenite::accept_hdr_async_with_config(tcp, callback, Some(ws_config()))
        .await
    {
        Ok(ws) => ws,
        Err(_) => return,
    };
    let Some(room) = room else { return };
    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = mpsc::channel::<Message>(queue);
    let peers = rooms.join(&room, conn, tx.clone());

    let writer = tokio::spawn(async move {
        let mut batch = Vec::with_capacity(64);
        while rx.recv_many(&mut batch, 256).await > 0 {
            for frame in batch.drain(..) {
                let last = matches!(frame, Message::Close(_));
                if sink.feed(frame).await.is_err() {
                    return;
                }
                if last {
                    let _ = sink.flush().await;
                    return;
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
    });

    let mut slow = Vec::new();
    while let Some(Ok(msg)) = stream.next().await {
        match msg {
            Message::Binary(_) => {
                let mut members = lock(&peers);
                for (&id, peer) in members.iter() {
                    if id != conn && peer.try_send(msg.clone()).is_err() {
                        slow.push(id);
                    }
                }
                // A full (or finished) member leaves the room so it gets nothing more.
                for id in slow.drain(..) {
                    if let Some(peer) = members.remove(&id) {
                        close_slow(peer);
                    }
                }
            }
            Message::Close(_) => break,
            _ => {} // tungstenite answers pings; text frames are not part of the protocol
        }
    }
    rooms.leave(&room, conn, &peers);
    drop(tx);
    drop(peers);
    // The writer ends when every sender (ours and the room's copy) is gone.
    let _ = writer.await;
}

/// Closes a connection whose queue is full and which has left its room. The close frame
/// cannot jump the full queue, so a task sends it once there is room.
fn close_slow(peer: mpsc::Sender<Message>) {
    tokio::spawn(async move {
        let frame = CloseFrame {
            code: CloseCode::Again,
            reason: "slow reader".into(),
        };
        let _ = peer.send(Message::Close(Some(frame))).await;
    });
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let listener = TcpListener::bind(args.listen).await?;
    eprintln!("ws-relay listening on {}", listener.local_addr()?);
    let rooms = Arc::new(Rooms::default());
    let next = AtomicU64::new(1);
    loop {
        let (tcp, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Typically EMFILE: back off instead of spinning.
                eprintln!("accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let conn = next.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(serve(tcp, conn, rooms.clone(), args.queue));
    }
}
