//! Meetings: one owner task per meeting holds its roster, lobby, lock and chat sequence, and
//! relays signalling between admitted participants through a [`MediaBackend`].

mod directory;

pub use directory::{
    Admission, Ban, ChatAuthor, ChatMessage, Entry, IceServer, MeetingAudit, MeetingDirectory,
    MeetingInfo, Refusal, Role, TurnGrant,
};
