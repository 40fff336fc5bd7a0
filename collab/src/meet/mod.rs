//! Meetings: one owner task per live meeting holds its roster, lobby and lock and relays
//! signalling between admitted participants (`docs/realtime.md`); its chat is a conversation
//! (`crate::msg::meeting`).

mod directory;
mod media;
mod owner;
mod requests;

pub use directory::{
    Admission, Ban, CHAT_BATCH, ChatAuthor, ChatMessage, Entry, IceServer, MeetingAudit,
    MeetingDirectory, MeetingInfo, Refusal, Role, TurnGrant,
};
pub use media::{MediaBackend, Mesh, SignalRoute};
pub(crate) use owner::{Command, JoinOutcome, MeetingHandle, spawn_owner};
pub(crate) use requests::parse_join;
