//! The gateway's side of messaging (`docs/messaging.md`): conversation files over HTTP,
//! checked by content (`sniff`), previewed (`thumbnail`) and kept in the store layout of
//! `dure_collab::msg::layout` (`files`), with the uploads received at once bounded
//! (`upload_gate`). Conversations themselves live in the engine.

pub mod files;
pub mod sniff;
pub mod thumbnail;
pub mod upload_gate;

pub use files::{FileError, Files};
