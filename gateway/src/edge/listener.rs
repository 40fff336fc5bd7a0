//! The accept loop: connection limits (global and per address), HTTP/1 header-read and
//! idle timeouts, backoff when accepting fails (out of descriptors), and graceful
//! shutdown. Replaces `axum::serve`, which offers none of these limits.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_service::Service;
use tracing::{debug, warn};

use super::conn_io::{Activity, ConnIo, Held};
use super::per_address::PerAddress;
use crate::config::NetLimits;
use crate::metrics::Metrics;

/// Descriptors kept free for what is not a client connection (store files, the S3 and
/// identity provider clients, log files).
const RESERVED_DESCRIPTORS: usize = 128;

/// Serves `app` on `listener` until `stop` is cancelled, then lets open requests finish
/// (connections close after their current response) and returns once every connection is
/// done. Upgraded WebSockets are not waited for here: their own shutdown closes them.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: NetLimits,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    let max = connection_budget(limits.max_connections);
    let global = Arc::new(Semaphore::new(max));
    let per_address = Arc::new(PerAddress::default());
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    // The CONNECT protocol carries HTTP/2 WebSockets.
    builder
        .http2()
        .timer(TokioTimer::new())
        .enable_connect_protocol();
    let builder = Arc::new(builder);
    let connections = TaskTracker::new();
    let mut failures = AcceptFailures::default();
    loop {
        // At the global limit nothing is accepted (the kernel's backlog holds new
        // connections) until a connection closes.
        let permit = tokio::select! {
            p = global.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            () = stop.cancelled() => break,
        };
        let accepted = tokio::select! {
            r = listener.accept() => r,
            () = stop.cancelled() => break,
        };
        let (tcp, peer) = match accepted {
            Ok(a) => {
                failures.reset();
                a
            }
            Err(e) => {
                drop(permit);
                if let Some(pause) = failures.failed(&e) {
                    tokio::select! {
                        () = tokio::time::sleep(pause) => {}
                        () = stop.cancelled() => break,
                    }
                }
                continue;
            }
        };
        let Some(address) = per_address.try_acquire(peer.ip(), limits.max_connections_per_address)
        else {
            // Closed at once: holding it (even to answer) is what the limit prevents.
            debug!(%peer, "too many connections from this address; closed");
            metrics.closed("connections_per_address");
            drop(tcp);
            continue;
        };
        // Small frames must leave at once: without TCP_NODELAY, Nagle's algorithm and the
        // peer's delayed ACK hold a keystroke's update back by up to 40 ms.
        let _ = tcp.set_nodelay(true);
        let io = ConnIo::new(
            tcp,
            Held {
                _global: permit,
                _address: address,
            },
            limits.close_linger,
        );
        connections.spawn(serve_connection(
            io,
            peer,
            app.clone(),
            builder.clone(),
            Timeouts {
                first_byte: limits.header_read_timeout,
                idle: limits.idle_timeout,
            },
            stop.clone(),
        ));
    }
    connections.close();
    connections.wait().await;
}

/// What the connection task enforces itself (HTTP/1's header timeout is hyper's).
struct Timeouts {
    /// Nothing at all sent within this: closed. (hyper's header timer only starts once the
    /// first bytes told HTTP/1 from HTTP/2.)
    first_byte: Duration,
    /// No byte moved either way for this long: closed.
    idle: Duration,
}

/// One connection: HTTP/1 (with upgrades) or HTTP/2, closed when silent or idle.
async fn serve_connection(
    io: ConnIo,
    peer: SocketAddr,
    app: Router,
    builder: Arc<Builder<TokioExecutor>>,
    timeouts: Timeouts,
    stop: CancellationToken,
) {
    let Timeouts { first_byte, idle } = timeouts;
    let first_byte_by = Instant::now() + first_byte;
    let activity: Arc<Activity> = io.activity();
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        let mut router = app.clone();
        async move {
            std::future::poll_fn(|cx| {
                Service::<hyper::Request<Incoming>>::poll_ready(&mut router, cx)
            })
            .await?;
            router.call(req).await
        }
    });
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    let mut conn = std::pin::pin!(conn);
    let mut stopping = false;
    loop {
        let left = idle.saturating_sub(activity.idle_for());
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            () = tokio::time::sleep(left) => {
                if activity.idle_for() >= idle {
                    debug!(%peer, "connection idle; closed");
                    return;
                }
            }
            () = tokio::time::sleep_until(first_byte_by), if !activity.read_any() => {
                if !activity.read_any() {
                    debug!(%peer, "nothing sent on the connection; closed");
                    return;
                }
            }
            () = stop.cancelled(), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Accept errors: connection-level ones (the peer gave up before we accepted) are
/// skipped; the others (out of descriptors or memory) pause accepting, doubling from
/// 10 ms to 1 s, and are logged at most once every 10 s with a count.
#[derive(Default)]
struct AcceptFailures {
    pause: Option<Duration>,
    suppressed: u64,
    last_log: Option<Instant>,
}

impl AcceptFailures {
    fn reset(&mut self) {
        self.pause = None;
    }

    /// How long to wait before accepting again, or `None` to go on at once.
    fn failed(&mut self, e: &std::io::Error) -> Option<Duration> {
        use std::io::ErrorKind::*;
        if matches!(
            e.kind(),
            ConnectionAborted | ConnectionReset | ConnectionRefused | Interrupted | WouldBlock
        ) {
            return None;
        }
        let pause = self.pause.map_or(Duration::from_millis(10), |p| {
            (p * 2).min(Duration::from_secs(1))
        });
        self.pause = Some(pause);
        if self
            .last_log
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(10))
        {
            warn!(
                error = %e,
                repeated = self.suppressed,
                "cannot accept connections (out of file descriptors? raise `ulimit -n` above max_connections); pausing"
            );
            self.last_log = Some(Instant::now());
            self.suppressed = 0;
        } else {
            self.suppressed += 1;
        }
        Some(pause)
    }
}

/// `max_connections`, lowered (with a warning) to what the open-files limit allows: at
/// the descriptor limit accepting fails outright, and every other file open with it.
fn connection_budget(max_connections: usize) -> usize {
    let Some(limit) = open_files_limit() else {
        return max_connections;
    };
    let fits = limit.saturating_sub(RESERVED_DESCRIPTORS).max(16);
    if max_connections > fits {
        warn!(
            max_connections,
            open_files_limit = limit,
            serving = fits,
            "max_connections does not fit in the open-files limit (ulimit -n); serving fewer connections: raise the limit to at least max_connections + {RESERVED_DESCRIPTORS}"
        );
        fits
    } else {
        max_connections
    }
}

/// The soft open-files limit of this process (Linux: /proc/self/limits).
fn open_files_limit() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    parse_open_files(&text)
}

fn parse_open_files(limits: &str) -> Option<usize> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_soft_open_files_limit() {
        let text = "Limit                     Soft Limit           Hard Limit           Units     \n\
                    Max cpu time              unlimited            unlimited            seconds   \n\
                    Max open files            1024                 524288               files     \n";
        assert_eq!(parse_open_files(text), Some(1024));
        assert_eq!(
            parse_open_files("Max open files  unlimited unlimited files"),
            None
        );
    }

    #[test]
    fn accept_failures_back_off_and_connection_errors_do_not() {
        let mut f = AcceptFailures::default();
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionAborted);
        assert_eq!(f.failed(&reset), None);
        let emfile = std::io::Error::from_raw_os_error(24);
        let pauses: Vec<_> = (0..10).filter_map(|_| f.failed(&emfile)).collect();
        assert_eq!(pauses[0], Duration::from_millis(10));
        assert_eq!(pauses[1], Duration::from_millis(20));
        assert_eq!(*pauses.last().expect("some"), Duration::from_secs(1));
        f.reset();
        assert_eq!(f.failed(&emfile), Some(Duration::from_millis(10)));
    }
}
