//! The realtime socket (`/ws/rt`): a versioned JSON envelope with sessions, resume and
//! per-socket limits, carrying meetings now and messaging next. See `docs/realtime.md`.

mod config;
mod observer;
mod principal;

pub use config::RtConfig;
pub use observer::{NoopRtObserver, RtObserver};
pub use principal::{Principal, RtUser};
