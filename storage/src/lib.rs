//! Dure's persistence layer.
//!
//! [`Store`] is a narrow object-store handle (get, conditional put, list by prefix, delete)
//! over a private backend trait; the backends are [`memory`] (tests) and [`fs`] (the embedded
//! default). One conformance suite ([`conformance`]) runs against every backend.
//!
//! [`docs`] lays documents out on top of it: an append-only log of batched updates per
//! document plus snapshots, each object framed by [`format`] with a marker and a version.

pub mod conformance;
pub mod docs;
mod error;
pub mod format;
pub mod fs;
mod key;
pub mod memory;
mod store;

pub use docs::{Appended, DocId, DocStore, LoadedLog, LogEntry, Snapshot, StateEncoding, WriterId};
pub use error::StoreError;
pub use key::Key;
pub use store::{Backend, ListEntry, Object, PutCondition, Store, Version};
