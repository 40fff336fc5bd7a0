//! The realtime socket (`/ws/rt`): a versioned JSON envelope with sessions, resume and
//! per-socket limits, carrying meetings now and messaging next. See `docs/realtime.md`.
//!
//! The transport calls [`RtHub::connect`], pushes each text frame into the [`RtSender`] and
//! writes out what the [`RtReceiver`] yields until it yields a close.

mod config;
pub(crate) mod hub;
pub(crate) mod limits;
mod observer;
mod outbound;
mod principal;
pub(crate) mod responder;
pub(crate) mod session;
mod socket;
pub(crate) mod wire;

pub use config::RtConfig;
pub use hub::{RtHub, RtReceiver, RtSender, RtSocket};
pub use observer::{NoopRtObserver, RtObserver};
pub use outbound::Outgoing;
pub use principal::{Principal, RtUser};
