//! A Yjs client in Rust: yrs over tokio-tungstenite, speaking the y-websocket protocol.
//!
//! Wire format: one protocol message per WebSocket binary frame, lib0 encoding, as described in
//! <https://github.com/yjs/y-protocols/blob/master/PROTOCOL.md>, plus Dure's save
//! acknowledgement `100, varUint(n)` (sent only to connections opened with `?ack=1`).
//!
//! A [`YClient`] owns a [`yrs::Doc`] (text offsets in UTF-16 units, like Yjs) with a root text
//! named `"text"` by default. Every local transaction on that doc, whether made through
//! [`YClient::insert`], [`YClient::delete`], [`YClient::edit`] or directly on
//! [`YClient::doc`], is sent as one `0,2,update` frame. Two background tasks own the socket: a
//! reader that answers the sync handshake, applies remote updates, records awareness states,
//! acks and the close frame; and a writer that drains a queue of outgoing frames. The `wait_*`
//! methods sleep until the reader reports a change or the timeout passes.
//!
//! ```no_run
//! # async fn demo() -> Result<(), dure_tests::yclient::YError> {
//! use std::time::Duration;
//! use dure_tests::yclient::{ConnectOptions, YClient};
//! let url = "ws://127.0.0.1:8080/ws/doc/notes";
//! let a = YClient::connect(url, ConnectOptions { ack: true, ..Default::default() }).await?;
//! a.wait_synced(Duration::from_secs(5)).await?;
//! a.insert(0, "hello")?;
//! a.wait_acked(a.sent_updates(), Duration::from_secs(5)).await?;
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use yrs::encoding::read::{self, Read};
use yrs::sync::awareness::AwarenessUpdateEntry;
use yrs::sync::{AwarenessUpdate, SyncMessage};
use yrs::updates::decoder::{Decode, DecoderV1};
use yrs::updates::encoder::Encode;
use yrs::{
    ClientID, Doc, GetString, OffsetKind, Options, Origin, ReadTxn, StateVector, Text, TextRef,
    Transact, TransactionMut, Update,
};

/// Message tag of the y-protocols sync messages.
pub const MSG_SYNC: u64 = 0;
/// Message tag of awareness updates.
pub const MSG_AWARENESS: u64 = 1;
/// Message tag of y-protocols auth messages.
pub const MSG_AUTH: u64 = 2;
/// Message tag of an awareness query.
pub const MSG_QUERY_AWARENESS: u64 = 3;
/// Message tag of Dure's save acknowledgement: `100, varUint(n)`.
pub const MSG_ACK: u64 = 100;

/// Origin of the transactions that apply remote updates: they must not be sent back.
const REMOTE_ORIGIN: &str = "dure-yclient-remote";
/// Key of the doc observer that forwards local updates.
const OBSERVER_KEY: &str = "dure-yclient-send";

/// What can go wrong for a client.
#[derive(Debug, thiserror::Error)]
pub enum YError {
    /// The WebSocket handshake was refused with this HTTP status.
    #[error("connection refused with HTTP status {0}")]
    Http(u16),
    /// The connection could not be established or broke.
    #[error("websocket: {0}")]
    WebSocket(#[from] tokio_tungstenite::tungstenite::Error),
    /// A wait or the connection attempt exceeded its deadline.
    #[error("timed out waiting for {0}")]
    Timeout(String),
    /// The connection ended while waiting; carries the close frame if the server sent one.
    #[error("connection ended while waiting for {what} (close: {close:?})")]
    Disconnected {
        /// What the caller was waiting for.
        what: String,
        /// Close code and reason from the server, if any.
        close: Option<(u16, String)>,
    },
    /// A text edit outside the current text.
    #[error("text range {index}+{len} outside text of length {text_len}")]
    OutOfRange {
        /// Start of the edit (UTF-16 units).
        index: u32,
        /// Length of the edit (UTF-16 units).
        len: u32,
        /// Current length of the text (UTF-16 units).
        text_len: u32,
    },
    /// The writer task is gone (connection closed).
    #[error("connection is closed")]
    NotConnected,
    /// An awareness state that is not valid JSON.
    #[error("awareness state is not JSON: {0}")]
    Json(#[from] serde_json::Error),
}

// ---------------------------------------------------------------------------------------------
// Frame encoding and decoding

/// One decoded protocol message (one WebSocket frame).
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// `0,0,sv`: sync step 1 with the sender's state vector.
    SyncStep1(StateVector),
    /// `0,1,update`: sync step 2 with what the receiver is missing.
    SyncStep2(Vec<u8>),
    /// `0,2,update`: an incremental update.
    Update(Vec<u8>),
    /// `1,buf`: an awareness update.
    Awareness(AwarenessUpdate),
    /// `2,...`: auth; `Some(reason)` when permission is denied.
    Auth(Option<String>),
    /// `3`: a query for all awareness states.
    QueryAwareness,
    /// `100,n`: the first `n` update-bearing frames of this connection are durably stored.
    Ack(u64),
    /// Any other message tag (its payload is not decoded).
    Unknown(u64),
}

/// Decodes one protocol message.
pub fn decode_frame(bytes: &[u8]) -> Result<Frame, read::Error> {
    let mut decoder = DecoderV1::from(bytes);
    let tag: u64 = decoder.read_var()?;
    Ok(match tag {
        MSG_SYNC => match SyncMessage::decode(&mut decoder)? {
            SyncMessage::SyncStep1(sv) => Frame::SyncStep1(sv),
            SyncMessage::SyncStep2(update) => Frame::SyncStep2(update),
            SyncMessage::Update(update) => Frame::Update(update),
        },
        MSG_AWARENESS => Frame::Awareness(AwarenessUpdate::decode_v1(decoder.read_buf()?)?),
        MSG_AUTH => {
            let denied = decoder.read_var::<u8>()? == 0;
            Frame::Auth(if denied {
                Some(decoder.read_string()?.to_owned())
            } else {
                None
            })
        }
        MSG_QUERY_AWARENESS => Frame::QueryAwareness,
        MSG_ACK => Frame::Ack(decoder.read_var()?),
        other => Frame::Unknown(other),
    })
}

/// lib0 varUint: 7 bits per byte, least significant first, high bit = more.
fn write_var(buf: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        buf.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    buf.push(n as u8);
}

/// Message header(s) then a length-prefixed payload, in one exactly sized buffer.
fn frame_with_payload(tags: &[u64], payload: &[u8]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(tags.len() + 10 + payload.len());
    for &tag in tags {
        write_var(&mut buf, tag);
    }
    write_var(&mut buf, payload.len() as u64);
    buf.extend_from_slice(payload);
    buf
}

/// `0,0,sv`: sync step 1.
pub fn encode_sync_step1(sv: &StateVector) -> Vec<u8> {
    frame_with_payload(&[MSG_SYNC, 0], &sv.encode_v1())
}

/// `0,1,update`: sync step 2.
pub fn encode_sync_step2(update: &[u8]) -> Vec<u8> {
    frame_with_payload(&[MSG_SYNC, 1], update)
}

/// `0,2,update`: an incremental update.
pub fn encode_update(update: &[u8]) -> Vec<u8> {
    frame_with_payload(&[MSG_SYNC, 2], update)
}

/// `1,buf`: an awareness update.
pub fn encode_awareness(update: &AwarenessUpdate) -> Vec<u8> {
    frame_with_payload(&[MSG_AWARENESS], &update.encode_v1())
}

/// `3`: query all awareness states.
pub fn encode_query_awareness() -> Vec<u8> {
    vec![MSG_QUERY_AWARENESS as u8]
}

/// `100,n`: a save acknowledgement (what the server sends; useful for fake servers in tests).
pub fn encode_ack(n: u64) -> Vec<u8> {
    let mut buf = Vec::with_capacity(11);
    write_var(&mut buf, MSG_ACK);
    write_var(&mut buf, n);
    buf
}

/// Whether a frame is sync step 2 or an update, the frames a save ack counts.
pub fn frame_bears_update(frame: &[u8]) -> bool {
    matches!(frame, [0, 1, ..] | [0, 2, ..])
}

/// `url` with `ack=1` added to its query string.
pub fn with_ack_query(url: &str) -> String {
    if url.contains('?') {
        format!("{url}&ack=1")
    } else {
        format!("{url}?ack=1")
    }
}

// ---------------------------------------------------------------------------------------------
// The client

/// Something the reader saw, reported to [`ConnectOptions::on_event`] as it arrives.
#[derive(Debug)]
pub enum Event<'a> {
    /// A sync step 2 or update frame, decoded, just before it is applied to the doc.
    Update {
        /// The decoded update.
        update: &'a Update,
        /// When the frame was read from the socket.
        received: Instant,
        /// Whether it came as sync step 2 (rather than `0,2`).
        step2: bool,
    },
    /// A save acknowledgement.
    Ack {
        /// Count of this connection's update-bearing frames now stored.
        n: u64,
        /// When the frame was read.
        received: Instant,
    },
}

/// Callback for [`Event`]s; runs on the reader task, so it must be quick and must not block.
pub type EventHook = Arc<dyn Fn(Event<'_>) + Send + Sync>;

/// How to connect.
#[derive(Clone)]
pub struct ConnectOptions {
    /// Add `ack=1` to the URL to receive save acknowledgements.
    pub ack: bool,
    /// Take part in the sync handshake (send step 1, answer the server's step 1). Turn off
    /// against a plain relay, which would forward the handshake to other clients.
    pub sync: bool,
    /// Name of the root text type.
    pub text_name: String,
    /// Yjs client id of the doc (random 53-bit when `None`).
    pub client_id: Option<u64>,
    /// Deadline for the TCP + WebSocket handshake.
    pub connect_timeout: Duration,
    /// Socket read chunk: tungstenite zeroes this much per read, so small suits small frames.
    pub read_buffer_size: usize,
    /// Called by the reader for every update and ack.
    pub on_event: Option<EventHook>,
    /// Extra request headers (e.g. `Sec-WebSocket-Protocol` carrying a token, `Cookie`).
    pub headers: Vec<(String, String)>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            ack: false,
            sync: true,
            text_name: "text".to_owned(),
            client_id: None,
            connect_timeout: Duration::from_secs(10),
            read_buffer_size: 4 * 1024,
            on_event: None,
            headers: Vec::new(),
        }
    }
}

impl std::fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectOptions")
            .field("ack", &self.ack)
            .field("sync", &self.sync)
            .field("text_name", &self.text_name)
            .field("client_id", &self.client_id)
            .field("connect_timeout", &self.connect_timeout)
            .field("read_buffer_size", &self.read_buffer_size)
            .field("on_event", &self.on_event.is_some())
            .field("headers", &self.headers)
            .finish()
    }
}

/// What a local edit sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalUpdate {
    /// The doc's client id.
    pub client: u64,
    /// Clock of the first item the edit created (the doc's clock before the edit).
    pub clock: u32,
    /// [`YClient::sent_updates`] after the edit: an ack with `n >= seq` covers it.
    pub seq: u64,
}

#[derive(Debug, Default)]
struct State {
    synced: bool,
    acked: u64,
    /// client id → (clock, JSON state or `None` once removed).
    awareness: HashMap<u64, (u32, Option<String>)>,
    awareness_removals: u64,
    auth_denied: Option<String>,
    close: Option<(u16, String)>,
    /// Why the reader stopped (`Some` once the connection is over).
    ended: Option<String>,
    frames_received: u64,
    updates_received: u64,
    errors: Vec<String>,
}

struct Shared {
    state: Mutex<State>,
    notify: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock only happens in a failing test; keep reading.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn update(&self, f: impl FnOnce(&mut State)) {
        f(&mut self.lock());
        self.notify.notify_waiters();
    }
}

type WsStream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A connected Yjs client. Dropping it aborts its tasks (the socket closes without a close
/// frame); call [`YClient::close`] for an orderly close.
pub struct YClient {
    doc: Doc,
    text: TextRef,
    shared: Arc<Shared>,
    out: mpsc::UnboundedSender<WsMessage>,
    sent: Arc<AtomicU64>,
    awareness_clock: AtomicU32,
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
}

impl std::fmt::Debug for YClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("YClient")
            .field("client_id", &self.client_id())
            .field("sent_updates", &self.sent_updates())
            .finish_non_exhaustive()
    }
}

impl Drop for YClient {
    fn drop(&mut self) {
        self.reader.abort();
        self.writer.abort();
    }
}

impl YClient {
    /// Opens a WebSocket to `url` (a full `ws://host/ws/doc/{id}` URL) and, with
    /// [`ConnectOptions::sync`], sends sync step 1. Returns once the WebSocket is open; use
    /// [`YClient::wait_synced`] to wait for the server's state.
    pub async fn connect(url: &str, opts: ConnectOptions) -> Result<Self, YError> {
        let url = if opts.ack {
            with_ack_query(url)
        } else {
            url.to_owned()
        };
        let mut request = url.into_client_request()?;
        for (name, value) in &opts.headers {
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|e| {
                YError::WebSocket(tokio_tungstenite::tungstenite::Error::HttpFormat(e.into()))
            })?;
            let value = HeaderValue::from_str(value).map_err(|e| {
                YError::WebSocket(tokio_tungstenite::tungstenite::Error::HttpFormat(e.into()))
            })?;
            request.headers_mut().append(name, value);
        }
        let config = WebSocketConfig::default().read_buffer_size(opts.read_buffer_size);
        let connecting = tokio_tungstenite::connect_async_with_config(request, Some(config), true);
        let ws = match tokio::time::timeout(opts.connect_timeout, connecting).await {
            Err(_) => return Err(YError::Timeout("the WebSocket handshake".into())),
            Ok(Err(tokio_tungstenite::tungstenite::Error::Http(resp))) => {
                return Err(YError::Http(resp.status().as_u16()));
            }
            Ok(Err(e)) => return Err(e.into()),
            Ok(Ok((ws, _response))) => ws,
        };
        Ok(Self::start(ws, opts))
    }

    fn start(ws: WsStream, opts: ConnectOptions) -> Self {
        let mut doc_opts = match opts.client_id {
            Some(id) => Options::with_client_id(ClientID::new(id)),
            None => Options::default(),
        };
        doc_opts.offset_kind = OffsetKind::Utf16;
        let doc = Doc::with_options(doc_opts);
        let text = doc.get_or_insert_text(opts.text_name.as_str());
        let (out, out_rx) = mpsc::unbounded_channel();
        let sent = Arc::new(AtomicU64::new(0));
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            notify: Notify::new(),
        });

        // The observer runs inside the committing transaction: it only queues the frame. It holds
        // no reference to the doc (that would be a cycle through the doc's observer list).
        // `observe_update_v1` would encode every transaction, remote ones included, before
        // calling us; this one lets remote transactions go at the cost of a comparison.
        {
            let out = out.clone();
            let sent = sent.clone();
            let remote = Origin::from(REMOTE_ORIGIN);
            let observed = doc.observe_after_transaction(OBSERVER_KEY, move |txn| {
                if txn.origin() == Some(&remote) {
                    return;
                }
                if txn.delete_set().is_empty() && txn.before_state() == txn.after_state() {
                    return; // nothing changed
                }
                sent.fetch_add(1, Ordering::SeqCst);
                let _ = out.send(WsMessage::Binary(
                    encode_update(&txn.encode_update_v1()).into(),
                ));
            });
            if let Err(e) = observed {
                // The doc is brand new: nobody else can hold a transaction on it.
                shared.lock().errors.push(format!("observer: {e}"));
            }
        }

        if opts.sync {
            let sv = doc.transact().state_vector();
            let _ = out.send(WsMessage::Binary(encode_sync_step1(&sv).into()));
        }

        let (sink, stream) = ws.split();
        let writer = tokio::spawn(write_loop(sink, out_rx, shared.clone()));
        let reader = tokio::spawn(
            Reader {
                doc: doc.clone(),
                shared: shared.clone(),
                out: out.clone(),
                sent: sent.clone(),
                sync: opts.sync,
                hook: opts.on_event,
            }
            .run(stream),
        );
        Self {
            doc,
            text,
            shared,
            out,
            sent,
            awareness_clock: AtomicU32::new(0),
            reader,
            writer,
        }
    }

    /// The client's document (edits made on it directly are sent too).
    pub fn doc(&self) -> &Doc {
        &self.doc
    }

    /// The root text type.
    pub fn text_ref(&self) -> &TextRef {
        &self.text
    }

    /// The doc's Yjs client id (also used for awareness).
    pub fn client_id(&self) -> u64 {
        self.doc.client_id().get()
    }

    /// The current text.
    pub fn text(&self) -> String {
        self.text.get_string(&self.doc.transact())
    }

    /// Length of the text in UTF-16 units.
    pub fn text_len(&self) -> u32 {
        self.text.len(&self.doc.transact())
    }

    /// The doc's state vector.
    pub fn state_vector(&self) -> StateVector {
        self.doc.transact().state_vector()
    }

    /// Runs `f` in one local transaction on the text; its changes go out as one update frame.
    pub fn edit<R>(&self, f: impl FnOnce(&mut TransactionMut<'_>, &TextRef) -> R) -> R {
        let mut txn = self.doc.transact_mut();
        f(&mut txn, &self.text)
    }

    /// Inserts `chunk` at `index` (UTF-16 units) in one transaction.
    pub fn insert(&self, index: u32, chunk: &str) -> Result<LocalUpdate, YError> {
        self.splice(index, 0, chunk)
    }

    /// Deletes `len` units at `index` in one transaction.
    pub fn delete(&self, index: u32, len: u32) -> Result<LocalUpdate, YError> {
        self.splice(index, len, "")
    }

    /// Deletes `delete` units at `index`, then inserts `insert` there, in one transaction.
    pub fn splice(&self, index: u32, delete: u32, insert: &str) -> Result<LocalUpdate, YError> {
        let client = self.doc.client_id();
        let clock = {
            let mut txn = self.doc.transact_mut();
            let text_len = self.text.len(&txn);
            if index.checked_add(delete).is_none_or(|end| end > text_len) {
                return Err(YError::OutOfRange {
                    index,
                    len: delete,
                    text_len,
                });
            }
            let clock = txn.state_vector().get(&client);
            if delete > 0 {
                self.text.remove_range(&mut txn, index, delete);
            }
            self.text.insert(&mut txn, index, insert);
            clock
            // The commit (drop) runs the observer, which queues the update frame.
        };
        Ok(LocalUpdate {
            client: client.get(),
            clock,
            seq: self.sent_updates(),
        })
    }

    /// Update-bearing frames (sync step 2 and updates, including raw ones) sent so far: the
    /// number a save ack reaches once all of them are stored.
    pub fn sent_updates(&self) -> u64 {
        self.sent.load(Ordering::SeqCst)
    }

    /// Highest save ack received.
    pub fn acked(&self) -> u64 {
        self.shared.lock().acked
    }

    /// Whether sync step 2 has arrived from the server.
    pub fn is_synced(&self) -> bool {
        self.shared.lock().synced
    }

    /// Update-bearing frames received.
    pub fn received_updates(&self) -> u64 {
        self.shared.lock().updates_received
    }

    /// Frames received, of any kind.
    pub fn received_frames(&self) -> u64 {
        self.shared.lock().frames_received
    }

    /// Frames the client could not decode or apply, and other oddities, as messages.
    pub fn errors(&self) -> Vec<String> {
        self.shared.lock().errors.clone()
    }

    /// The denial reason if the server sent an auth "permission denied" message.
    pub fn auth_denied(&self) -> Option<String> {
        self.shared.lock().auth_denied.clone()
    }

    /// Close code and reason sent by the server (or the echo of ours), once received.
    pub fn closed(&self) -> Option<(u16, String)> {
        self.shared.lock().close.clone()
    }

    /// Whether the connection is over (closed or broken).
    pub fn is_ended(&self) -> bool {
        self.shared.lock().ended.is_some()
    }

    /// Current awareness states received (client id → JSON); removed clients are absent. Our
    /// own state appears only once the server echoes it.
    pub fn awareness_states(&self) -> HashMap<u64, String> {
        self.shared
            .lock()
            .awareness
            .iter()
            .filter_map(|(id, (_, json))| json.as_ref().map(|j| (*id, j.clone())))
            .collect()
    }

    /// Count of awareness removals (a `null` state) received.
    pub fn awareness_removals(&self) -> u64 {
        self.shared.lock().awareness_removals
    }

    /// Publishes this client's awareness state (must be JSON; `"null"` removes it).
    pub fn set_awareness(&self, json: &str) -> Result<(), YError> {
        let _: serde_json::Value = serde_json::from_str(json)?;
        let clock = self.awareness_clock.fetch_add(1, Ordering::SeqCst) + 1;
        let mut update = AwarenessUpdate {
            clients: Default::default(),
        };
        update.clients.insert(
            self.doc.client_id(),
            AwarenessUpdateEntry {
                clock,
                json: json.into(),
            },
        );
        self.send_raw(encode_awareness(&update))
    }

    /// Removes this client's awareness state (like `awareness.setLocalState(null)`).
    pub fn clear_awareness(&self) -> Result<(), YError> {
        self.set_awareness("null")
    }

    /// Asks for all awareness states.
    pub fn query_awareness(&self) -> Result<(), YError> {
        self.send_raw(encode_query_awareness())
    }

    /// Sends bytes as one binary frame, as they are. Counted in [`YClient::sent_updates`] when
    /// they look like sync step 2 or an update.
    pub fn send_raw(&self, frame: Vec<u8>) -> Result<(), YError> {
        if frame_bears_update(&frame) {
            self.sent.fetch_add(1, Ordering::SeqCst);
        }
        self.send_message(WsMessage::Binary(frame.into()))
    }

    /// Sends any WebSocket message (text frames, pings, oversized frames...). Not counted.
    pub fn send_message(&self, message: WsMessage) -> Result<(), YError> {
        self.out.send(message).map_err(|_| YError::NotConnected)
    }

    /// Waits until `pred` holds; it is evaluated now and after every frame the reader handles.
    /// Fails with [`YError::Disconnected`] if the connection ends first.
    pub async fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        mut pred: impl FnMut(&Self) -> bool,
    ) -> Result<(), YError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if pred(self) {
                return Ok(());
            }
            if self.is_ended() {
                return Err(YError::Disconnected {
                    what: what.to_owned(),
                    close: self.closed(),
                });
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return if pred(self) {
                    Ok(())
                } else {
                    Err(YError::Timeout(what.to_owned()))
                };
            }
        }
    }

    /// Waits for sync step 2 from the server.
    pub async fn wait_synced(&self, timeout: Duration) -> Result<(), YError> {
        self.wait_for("sync step 2", timeout, |c| c.is_synced())
            .await
    }

    /// Waits until the text equals `expected`.
    pub async fn wait_text(&self, expected: &str, timeout: Duration) -> Result<(), YError> {
        let expected_len = u32::try_from(expected.encode_utf16().count()).unwrap_or(u32::MAX);
        let what = format!("text of {expected_len} UTF-16 units");
        // Compare lengths first: building the string is the expensive part.
        self.wait_for(&what, timeout, |c| {
            c.text_len() == expected_len && c.text() == expected
        })
        .await
    }

    /// Waits until `pred` holds for the text.
    pub async fn wait_text_matches(
        &self,
        timeout: Duration,
        mut pred: impl FnMut(&str) -> bool,
    ) -> Result<(), YError> {
        self.wait_for("matching text", timeout, |c| pred(&c.text()))
            .await
    }

    /// Waits until a save ack reaches `n`.
    pub async fn wait_acked(&self, n: u64, timeout: Duration) -> Result<(), YError> {
        self.wait_for(&format!("ack {n}"), timeout, |c| c.acked() >= n)
            .await
    }

    /// Waits until `pred` holds for the awareness states.
    pub async fn wait_awareness(
        &self,
        timeout: Duration,
        mut pred: impl FnMut(&HashMap<u64, String>) -> bool,
    ) -> Result<(), YError> {
        self.wait_for("awareness states", timeout, |c| pred(&c.awareness_states()))
            .await
    }

    /// Waits until the connection is over; returns the close code and reason if any.
    pub async fn wait_closed(&self, timeout: Duration) -> Result<Option<(u16, String)>, YError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_ended() {
                return Ok(self.closed());
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(YError::Timeout("the connection to close".into()));
            }
        }
    }

    /// Sends a close frame with `code` and `reason`, then waits (up to 5 s) for the server to
    /// complete the close.
    pub async fn close_with(&self, code: u16, reason: &str) -> Result<(), YError> {
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: reason.into(),
        };
        if self.out.send(WsMessage::Close(Some(frame))).is_err() {
            return Ok(()); // already gone
        }
        self.wait_closed(Duration::from_secs(5)).await.map(|_| ())
    }

    /// Closes normally (1000).
    pub async fn close(&self) -> Result<(), YError> {
        self.close_with(1000, "").await
    }
}

async fn write_loop(
    mut sink: SplitSink<WsStream, WsMessage>,
    mut rx: mpsc::UnboundedReceiver<WsMessage>,
    shared: Arc<Shared>,
) {
    let mut batch = Vec::with_capacity(64);
    while rx.recv_many(&mut batch, 256).await > 0 {
        for message in batch.drain(..) {
            if let Err(e) = sink.feed(message).await {
                shared.update(|s| s.errors.push(format!("write: {e}")));
                return;
            }
        }
        if let Err(e) = sink.flush().await {
            shared.update(|s| s.errors.push(format!("flush: {e}")));
            return;
        }
    }
}

struct Reader {
    doc: Doc,
    shared: Arc<Shared>,
    out: mpsc::UnboundedSender<WsMessage>,
    sent: Arc<AtomicU64>,
    sync: bool,
    hook: Option<EventHook>,
}

impl Reader {
    async fn run(self, mut stream: SplitStream<WsStream>) {
        let why = loop {
            match stream.next().await {
                None => break "end of stream".to_owned(),
                Some(Err(e)) => break format!("read: {e}"),
                Some(Ok(WsMessage::Binary(bytes))) => self.on_frame(&bytes, Instant::now()),
                Some(Ok(WsMessage::Close(frame))) => {
                    let close = frame.map_or((1005, String::new()), |f| {
                        (u16::from(f.code), f.reason.to_string())
                    });
                    self.shared.update(|s| {
                        s.frames_received += 1;
                        s.close = Some(close);
                    });
                    // Keep reading: tungstenite completes the closing handshake.
                }
                Some(Ok(WsMessage::Text(text))) => self.shared.update(|s| {
                    s.frames_received += 1;
                    s.errors.push(format!("unexpected text frame: {text}"));
                }),
                Some(Ok(_)) => {} // ping/pong: tungstenite answers pings itself
            }
        };
        self.shared.update(|s| s.ended = Some(why));
    }

    fn on_frame(&self, bytes: &[u8], received: Instant) {
        let frame = match decode_frame(bytes) {
            Ok(frame) => frame,
            Err(e) => {
                self.shared.update(|s| {
                    s.frames_received += 1;
                    s.errors.push(format!("undecodable frame: {e}"));
                });
                return;
            }
        };
        match frame {
            Frame::SyncStep1(sv) => {
                if self.sync {
                    let diff = self.doc.transact().encode_diff_v1(&sv);
                    self.sent.fetch_add(1, Ordering::SeqCst);
                    let _ = self
                        .out
                        .send(WsMessage::Binary(encode_sync_step2(&diff).into()));
                }
                self.shared.update(|s| s.frames_received += 1);
            }
            Frame::SyncStep2(update) => self.on_update(&update, received, true),
            Frame::Update(update) => self.on_update(&update, received, false),
            Frame::Awareness(update) => self.shared.update(|s| {
                s.frames_received += 1;
                for (id, entry) in update.clients {
                    apply_awareness_entry(s, id.get(), entry.clock, &entry.json);
                }
            }),
            Frame::Auth(denied) => self.shared.update(|s| {
                s.frames_received += 1;
                s.auth_denied = denied;
            }),
            Frame::QueryAwareness => self.shared.update(|s| s.frames_received += 1),
            Frame::Ack(n) => {
                if let Some(hook) = &self.hook {
                    hook(Event::Ack { n, received });
                }
                self.shared.update(|s| {
                    s.frames_received += 1;
                    s.acked = s.acked.max(n);
                });
            }
            Frame::Unknown(tag) => self.shared.update(|s| {
                s.frames_received += 1;
                s.errors.push(format!("unknown message tag {tag}"));
            }),
        }
    }

    fn on_update(&self, bytes: &[u8], received: Instant, step2: bool) {
        let result = Update::decode_v1(bytes).map(|update| {
            if let Some(hook) = &self.hook {
                hook(Event::Update {
                    update: &update,
                    received,
                    step2,
                });
            }
            self.doc
                .transact_mut_with(REMOTE_ORIGIN)
                .apply_update(update)
        });
        self.shared.update(|s| {
            s.frames_received += 1;
            s.updates_received += 1;
            if step2 {
                s.synced = true;
            }
            match result {
                Ok(Ok(())) => {}
                Ok(Err(e)) => s.errors.push(format!("apply update: {e}")),
                Err(e) => s.errors.push(format!("undecodable update: {e}")),
            }
        });
    }
}

/// y-protocols rule: a newer clock wins; a `null` state at the same clock removes.
fn apply_awareness_entry(s: &mut State, id: u64, clock: u32, json: &str) {
    let current = s.awareness.get(&id);
    let newer = match current {
        None => true,
        Some((c, state)) => *c < clock || (*c == clock && json == "null" && state.is_some()),
    };
    if !newer {
        return;
    }
    if json == "null" {
        if current.is_some_and(|(_, state)| state.is_some()) {
            s.awareness_removals += 1;
        }
        s.awareness.insert(id, (clock, None));
    } else {
        s.awareness.insert(id, (clock, Some(json.to_owned())));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    //! The client against a tiny in-test server: one shared doc, sync handshake, broadcast of
    //! updates and awareness to every other connection, an ack after every update-bearing frame.

    use super::*;
    use tokio::net::TcpListener;

    #[test]
    fn frames_round_trip() {
        let doc = Doc::with_client_id(7);
        let text = doc.get_or_insert_text("text");
        text.insert(&mut doc.transact_mut(), 0, "hi");
        let sv = doc.transact().state_vector();
        let update = doc.transact().encode_diff_v1(&StateVector::default());

        assert_eq!(
            decode_frame(&encode_sync_step1(&sv)).unwrap(),
            Frame::SyncStep1(sv.clone())
        );
        let step2 = encode_sync_step2(&update);
        assert!(frame_bears_update(&step2));
        assert_eq!(
            decode_frame(&step2).unwrap(),
            Frame::SyncStep2(update.clone())
        );
        let upd = encode_update(&update);
        assert!(frame_bears_update(&upd));
        assert_eq!(decode_frame(&upd).unwrap(), Frame::Update(update.clone()));
        assert!(!frame_bears_update(&encode_sync_step1(&sv)));
        // Same bytes as yrs's own encoder for the standard messages.
        assert_eq!(
            upd,
            yrs::sync::Message::Sync(SyncMessage::Update(update)).encode_v1()
        );
        assert_eq!(
            encode_sync_step1(&sv),
            yrs::sync::Message::Sync(SyncMessage::SyncStep1(sv.clone())).encode_v1()
        );
        let big = vec![7u8; 300];
        assert_eq!(
            encode_sync_step2(&big),
            yrs::sync::Message::Sync(SyncMessage::SyncStep2(big.clone())).encode_v1()
        );
        assert_eq!(encode_ack(5), vec![100, 5]);
        assert_eq!(encode_ack(300), vec![100, 0xac, 0x02]);
        assert_eq!(decode_frame(&[100, 0xac, 0x02]).unwrap(), Frame::Ack(300));
        assert_eq!(decode_frame(&[3]).unwrap(), Frame::QueryAwareness);
        assert_eq!(decode_frame(&[42, 1, 2]).unwrap(), Frame::Unknown(42));
        assert!(decode_frame(&[0, 9]).is_err());
        assert!(decode_frame(&[]).is_err());

        let mut aw = AwarenessUpdate {
            clients: Default::default(),
        };
        aw.clients.insert(
            ClientID::new(9),
            AwarenessUpdateEntry {
                clock: 3,
                json: r#"{"a":1}"#.into(),
            },
        );
        assert_eq!(
            decode_frame(&encode_awareness(&aw)).unwrap(),
            Frame::Awareness(aw)
        );
        assert_eq!(with_ack_query("ws://h/ws/doc/a"), "ws://h/ws/doc/a?ack=1");
        assert_eq!(with_ack_query("ws://h/x?t=1"), "ws://h/x?t=1&ack=1");
    }

    #[test]
    fn awareness_rules() {
        let mut s = State::default();
        apply_awareness_entry(&mut s, 1, 1, "{}");
        apply_awareness_entry(&mut s, 1, 1, r#"{"old":true}"#);
        assert_eq!(s.awareness[&1].1.as_deref(), Some("{}"));
        apply_awareness_entry(&mut s, 1, 2, r#"{"x":2}"#);
        assert_eq!(s.awareness[&1].1.as_deref(), Some(r#"{"x":2}"#));
        apply_awareness_entry(&mut s, 1, 2, "null");
        assert_eq!(s.awareness[&1].1, None);
        assert_eq!(s.awareness_removals, 1);
    }

    struct FakeServer {
        doc: Doc,
        peers: HashMap<usize, mpsc::UnboundedSender<WsMessage>>,
    }

    async fn fake_server() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let doc = Doc::with_options(Options {
            offset_kind: OffsetKind::Utf16,
            ..Options::default()
        });
        let server = Arc::new(Mutex::new(FakeServer {
            doc,
            peers: HashMap::new(),
        }));
        tokio::spawn(async move {
            let mut next_id = 0;
            while let Ok((tcp, _)) = listener.accept().await {
                next_id += 1;
                tokio::spawn(serve_one(tcp, next_id, server.clone()));
            }
        });
        format!("ws://{addr}/ws/doc/test")
    }

    async fn serve_one(tcp: TcpStream, id: usize, server: Arc<Mutex<FakeServer>>) {
        let ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        let (mut sink, mut stream) = ws.split();
        let (tx, mut rx) = mpsc::unbounded_channel::<WsMessage>();
        let step1 = {
            let mut srv = server.lock().unwrap();
            srv.peers.insert(id, tx.clone());
            encode_sync_step1(&srv.doc.transact().state_vector())
        };
        tx.send(WsMessage::Binary(step1.into())).unwrap();
        tokio::spawn(async move {
            while let Some(m) = rx.recv().await {
                if sink.send(m).await.is_err() {
                    break;
                }
            }
        });
        let mut stored = 0u64;
        while let Some(Ok(msg)) = stream.next().await {
            let WsMessage::Binary(bytes) = msg else {
                continue;
            };
            let srv = server.lock().unwrap();
            let others = || srv.peers.iter().filter(|(p, _)| **p != id).map(|(_, t)| t);
            match decode_frame(&bytes) {
                Ok(Frame::SyncStep1(sv)) => {
                    let diff = srv.doc.transact().encode_diff_v1(&sv);
                    tx.send(WsMessage::Binary(encode_sync_step2(&diff).into()))
                        .unwrap();
                }
                Ok(Frame::SyncStep2(u) | Frame::Update(u)) => {
                    srv.doc
                        .transact_mut()
                        .apply_update(Update::decode_v1(&u).unwrap())
                        .unwrap();
                    for t in others() {
                        let _ = t.send(WsMessage::Binary(encode_update(&u).into()));
                    }
                    stored += 1;
                    tx.send(WsMessage::Binary(encode_ack(stored).into()))
                        .unwrap();
                }
                Ok(Frame::Awareness(_)) => {
                    for t in srv.peers.values() {
                        let _ = t.send(WsMessage::Binary(bytes.clone()));
                    }
                }
                _ => {
                    let frame = CloseFrame {
                        code: CloseCode::from(1002),
                        reason: "bad frame".into(),
                    };
                    let _ = tx.send(WsMessage::Close(Some(frame)));
                }
            }
        }
        server.lock().unwrap().peers.remove(&id);
    }

    const T: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn sends_extra_headers_and_reports_http_refusals() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (seen_tx, seen_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            #[allow(clippy::result_large_err)]
            let cb = |req: &tokio_tungstenite::tungstenite::handshake::server::Request, resp| {
                let token = req.headers().get("x-token").map(|v| v.as_bytes().to_vec());
                let _ = seen_tx.send(token);
                Ok(resp)
            };
            let _ws = tokio_tungstenite::accept_hdr_async(tcp, cb).await.unwrap();
            // Refuse the next connection at the HTTP level.
            let (tcp, _) = listener.accept().await.unwrap();
            #[allow(clippy::result_large_err)]
            let refuse = |_: &tokio_tungstenite::tungstenite::handshake::server::Request, _| {
                let mut err =
                    tokio_tungstenite::tungstenite::handshake::server::ErrorResponse::new(None);
                *err.status_mut() = tokio_tungstenite::tungstenite::http::StatusCode::NOT_FOUND;
                Err(err)
            };
            let _ = tokio_tungstenite::accept_hdr_async(tcp, refuse).await;
        });
        let url = format!("ws://{addr}/ws/doc/h");
        let opts = ConnectOptions {
            headers: vec![("x-token".into(), "abc".into())],
            ..Default::default()
        };
        let _client = YClient::connect(&url, opts).await.unwrap();
        assert_eq!(seen_rx.await.unwrap().as_deref(), Some(&b"abc"[..]));
        let refused = YClient::connect(&url, ConnectOptions::default()).await;
        assert!(matches!(refused, Err(YError::Http(404))), "{refused:?}");
    }

    #[tokio::test]
    async fn sync_edit_ack_awareness_close() {
        let url = fake_server().await;
        let opts = ConnectOptions {
            ack: true,
            ..Default::default()
        };
        let a = YClient::connect(&url, opts.clone()).await.unwrap();
        a.wait_synced(T).await.unwrap();
        a.insert(0, "héllo 🌍").unwrap();
        let sent = a.insert(0, ">").unwrap();
        assert_eq!(sent.seq, a.sent_updates());
        // One step 2 reply plus two updates.
        assert_eq!(a.sent_updates(), 3);
        a.wait_acked(3, T).await.unwrap();

        let b = YClient::connect(&url, opts).await.unwrap();
        b.wait_synced(T).await.unwrap();
        b.wait_text(">héllo 🌍", T).await.unwrap();
        // UTF-16 offsets: the globe is two units.
        assert_eq!(b.text_len(), 9);
        b.delete(7, 2).unwrap();
        a.wait_text(">héllo ", T).await.unwrap();
        assert!(b.insert(99, "x").is_err());

        b.set_awareness(r#"{"user":"b"}"#).unwrap();
        let bid = b.client_id();
        a.wait_awareness(T, |s| {
            s.get(&bid).map(String::as_str) == Some(r#"{"user":"b"}"#)
        })
        .await
        .unwrap();
        b.clear_awareness().unwrap();
        a.wait_awareness(T, |s| !s.contains_key(&bid))
            .await
            .unwrap();
        assert_eq!(a.awareness_removals(), 1);
        assert!(b.set_awareness("not json").is_err());

        b.send_raw(vec![0, 9, 9]).unwrap();
        assert_eq!(
            b.wait_closed(T).await.unwrap(),
            Some((1002, "bad frame".into()))
        );
        assert!(a.errors().is_empty(), "{:?}", a.errors());
        a.close().await.unwrap();
        assert!(a.is_ended());
        assert!(matches!(
            a.wait_acked(100, T).await,
            Err(YError::Disconnected { .. })
        ));
    }
}
