//! `ws-relay`: a bare WebSocket broadcast relay, the floor Dure's benchmarks compare against.
//!
//! A connection to `/ws/doc/{id}` joins room `{id}`; every binary frame it sends is forwarded,
//! unchanged, to every other connection of the room. No CRDT, no storage, no handshake of its
//! own. Each frame is shared (reference-counted) among the receivers; each connection has a
//! writer task that drains a bounded queue, feeding frames and flushing once per batch. When a
//! receiver's queue is full the sender waits for it (backpressure) for up to 5 s, then that
//! receiver is closed with 1013 (slow reader).
//!
//! Usage: `ws-relay --listen 127.0.0.1:PORT [--queue FRAMES]`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
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

/// How long a sender waits for a member whose queue is full before closing that member.
const SLOW_READER_GRACE: Duration = Duration::from_secs(5);

/// What a connection's writer is asked to send. Smaller than a tungstenite `Message`: the
/// queue allocates its slots in blocks, and idle connections should stay small.
enum Out {
    /// A frame shared by every receiver (`Bytes` is reference-counted).
    Frame(Bytes),
    /// Close with 1013 (the queue was full).
    CloseSlow,
}

/// What a room holds for one member: where to push frames for it.
type Peers = HashMap<u64, mpsc::Sender<Out>>;

#[derive(Default)]
struct Rooms {
    rooms: Mutex<HashMap<String, Arc<Mutex<Peers>>>>,
}

/// Locks ignoring poisoning: a panicking connection task must not take the relay down.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Rooms {
    fn join(&self, room: &str, conn: u64, tx: mpsc::Sender<Out>) -> Arc<Mutex<Peers>> {
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
        .read_buffer_size(2 * 1024)
        .write_buffer_size(2 * 1024)
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
    let (tx, mut rx) = mpsc::channel::<Out>(queue);
    let peers = rooms.join(&room, conn, tx.clone());

    let writer = tokio::spawn(async move {
        let mut batch = Vec::new();
        while rx.recv_many(&mut batch, 256).await > 0 {
            for out in batch.drain(..) {
                let message = match out {
                    Out::Frame(bytes) => Message::Binary(bytes),
                    Out::CloseSlow => {
                        let frame = CloseFrame {
                            code: CloseCode::Again,
                            reason: "slow reader".into(),
                        };
                        let _ = sink.send(Message::Close(Some(frame))).await;
                        return;
                    }
                };
                if sink.feed(message).await.is_err() {
                    return;
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
    });

    let mut full = Vec::new();
    while let Some(Ok(msg)) = stream.next().await {
        match msg {
            Message::Binary(bytes) => {
                {
                    let mut members = lock(&peers);
                    let mut gone = Vec::new();
                    for (&id, peer) in members.iter() {
                        if id == conn {
                            continue;
                        }
                        match peer.try_send(Out::Frame(bytes.clone())) {
                            Ok(()) => {}
                            Err(TrySendError::Full(out)) => full.push((id, peer.clone(), out)),
                            Err(TrySendError::Closed(_)) => gone.push(id),
                        }
                    }
                    for id in gone {
                        members.remove(&id);
                    }
                }
                // Backpressure: this sender waits (without the room lock) for a full member,
                // up to a grace period; then that member leaves the room and is closed.
                for (id, peer, out) in full.drain(..) {
                    if peer.send_timeout(out, SLOW_READER_GRACE).await.is_err() {
                        let removed = lock(&peers).remove(&id);
                        if let Some(peer) = removed {
                            close_slow(peer);
                        }
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
fn close_slow(peer: mpsc::Sender<Out>) {
    tokio::spawn(async move {
        let _ = peer.send(Out::CloseSlow).await;
    });
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    // tokio's `TcpListener::bind` listens with a backlog of 128: a burst of connections (a
    // connect storm) overflows it and the extra clients retry their SYN a second later.
    let socket = if args.listen.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(args.listen)?;
    let listener = socket.listen(4096)?;
    eprintln!("ws-relay listening on {}", listener.local_addr()?);
    let rooms = Arc::new(Rooms::default());
    let next = AtomicU64::new(1);
    loop {
        let (tcp, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Typically EMFILE: back off instead of spinning.
                eprintln!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let conn = next.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(serve(tcp, conn, rooms.clone(), args.queue));
    }
}
