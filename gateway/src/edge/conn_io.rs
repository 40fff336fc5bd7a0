//! The transport of one accepted connection: records activity (for the idle timeout),
//! holds the connection's places in the limits, and closes by lingering.
//!
//! Lingering close: a socket closed while unread input is waiting makes the kernel answer
//! with a TCP reset, and the reset destroys whatever was still in flight towards the peer
//! — typically the close frame or error response that explains the close (a client still
//! sending a 64 MiB frame saw 1006 instead of 1009). So when the connection is dropped, its
//! write side is shut down (the peer gets everything, then FIN) and input is read and
//! dropped until the peer closes too or `close_linger` passes.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use super::per_address::AddressSlot;

/// When bytes last moved on a connection.
#[derive(Debug)]
pub struct Activity {
    start: Instant,
    last_ms: AtomicU64,
    read_any: AtomicBool,
}

impl Activity {
    fn new() -> Self {
        Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
            read_any: AtomicBool::new(false),
        }
    }

    /// Whether the peer has sent anything yet.
    pub fn read_any(&self) -> bool {
        self.read_any.load(Ordering::Relaxed)
    }

    fn touch(&self) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// How long nothing has been read or written.
    pub fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.start.elapsed().saturating_sub(last)
    }
}

/// The places a connection holds in the limits; released (by their Drop) when the
/// descriptor is closed.
#[derive(Debug)]
pub struct Held {
    pub _global: OwnedSemaphorePermit,
    pub _address: AddressSlot,
}

/// An accepted TCP connection as hyper (and, after an upgrade, the WebSocket) sees it.
#[derive(Debug)]
pub struct ConnIo {
    tcp: Option<TcpStream>,
    activity: Arc<Activity>,
    held: Option<Held>,
    linger: Duration,
}

impl ConnIo {
    pub fn new(tcp: TcpStream, held: Held, linger: Duration) -> Self {
        ConnIo {
            tcp: Some(tcp),
            activity: Arc::new(Activity::new()),
            held: Some(held),
            linger,
        }
    }

    pub fn activity(&self) -> Arc<Activity> {
        self.activity.clone()
    }

    fn tcp(&mut self) -> io::Result<Pin<&mut TcpStream>> {
        match self.tcp.as_mut() {
            Some(t) => Ok(Pin::new(t)),
            None => Err(io::ErrorKind::NotConnected.into()),
        }
    }
}

impl AsyncRead for ConnIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = match this.tcp() {
            Ok(t) => t.poll_read(cx, buf),
            Err(e) => return Poll::Ready(Err(e)),
        };
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.touch();
            this.activity.read_any.store(true, Ordering::Relaxed);
        }
        r
    }
}

impl AsyncWrite for ConnIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = match this.tcp() {
            Ok(t) => t.poll_write(cx, data),
            Err(e) => return Poll::Ready(Err(e)),
        };
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.touch();
        }
        r
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = match this.tcp() {
            Ok(t) => t.poll_write_vectored(cx, bufs),
            Err(e) => return Poll::Ready(Err(e)),
        };
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.as_ref().is_some_and(|t| t.is_write_vectored())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().tcp() {
            Ok(t) => t.poll_flush(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().tcp() {
            Ok(t) => t.poll_shutdown(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl Drop for ConnIo {
    fn drop(&mut self) {
        let (Some(tcp), held) = (self.tcp.take(), self.held.take()) else {
            return;
        };
        if self.linger.is_zero() {
            return;
        }
        // Outside a runtime (process exit) there is nobody left to answer: just close.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(linger(tcp, held, self.linger));
        }
    }
}

/// Shuts the write side, drops input until the peer closes or `limit` passes, then closes.
/// The connection keeps its places in the limits meanwhile: its descriptor is still open.
async fn linger(mut tcp: TcpStream, held: Option<Held>, limit: Duration) {
    let _ = tcp.shutdown().await;
    let mut sink = [0u8; 8192];
    let _ = tokio::time::timeout(limit, async {
        while let Ok(n) = tcp.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
    drop(tcp);
    drop(held);
}
