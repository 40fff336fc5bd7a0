//! The `dure` server: configuration, HTTP routes, the document WebSocket adapter, metrics
//! and the shutdown sequence. The engine ([`dure_collab`]) does the document work; this
//! crate only frames, authenticates, observes and maps errors to close codes.

pub mod audit;
pub mod auth;
pub mod config;
pub mod docs;
mod edge;
pub mod metrics;
mod readiness;
mod routes;
pub mod server;
mod state;

pub use config::{Cli, Config};
pub use server::{Server, ServerError};
