//! Messaging (`docs/messaging.md`): direct, group and meeting conversations over `/ws/rt`, with a
//! per-conversation log stored in batches (group commit), read markers, presence and files.
//!
//! [`Messaging`] holds the conversations of one server; each loaded conversation has an
//! owner task (owner.rs) and a log writer (writer.rs); history.rs reads the log, layout.rs
//! is what is stored, presence.rs who is connected, meeting.rs how a meeting's call uses
//! its conversation.

mod config;
mod history;
mod hooks;
mod input;
pub mod layout;
pub(crate) mod meeting;
mod owner;
mod presence;
pub mod retention;
pub(crate) mod service;
mod writer;

pub use config::MsgConfig;
pub use hooks::{MsgAudit, MsgHooks};
pub use meeting::meeting_conversation_id;
pub use retention::{RetentionPolicy, RetentionReport};
pub use service::{Messaging, direct_id};

/// Unix milliseconds now.
pub fn now_ms() -> u64 {
    crate::rt::hub::now_ms()
}
