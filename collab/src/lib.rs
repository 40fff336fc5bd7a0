//! Dure's engine: document rooms speaking the y-sync protocol.
//!
//! The engine never sees a socket. A transport (the gateway's WebSocket handler, or a test)
//! joins a room through [`Rooms::join`] and gets a [`Connection`]: it pushes each received
//! frame in with [`ConnectionSender::send`] and writes out each frame that
//! [`ConnectionReceiver::next`] yields, until it yields a [`CloseReason`].
//!
//! One task owns each loaded document (see [`room`]): it applies updates, fans them out at
//! once, and hands batches to its persistence worker ([`persist`]), which group-commits them to
//! the store and reports back so the room can send durable acknowledgements.

mod config;
mod connection;
mod decode_stack;
pub mod log_limit;
pub mod meet;
pub mod msg;
mod observer;
mod outbox;
mod persist;
pub mod presence;
pub mod protocol;
mod registry;
pub mod richtext;
mod room;
pub mod rt;
mod size_limit;
pub mod validate;

pub use config::{MAX_NESTING_DEPTH_LIMIT, RoomConfig};
pub use connection::{
    CloseReason, ConnId, Connection, ConnectionReceiver, ConnectionSender, Outgoing, RoomGone,
};
pub use dure_storage::DocId;
pub use observer::{NoopObserver, Observer};
pub use presence::PresenceUser;
pub use registry::{JoinError, JoinOptions, Rooms};
