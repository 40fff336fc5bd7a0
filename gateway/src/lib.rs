//! The `dure` server: configuration, HTTP routes, the document WebSocket adapter, metrics
//! and the shutdown sequence. The engine ([`dure_collab`]) does the document work; this
//! crate only frames, authenticates, observes and maps errors to close codes.

pub mod audit;
pub mod auth;
pub mod client_addr;
pub mod config;
pub mod conversations;
pub mod docs;
mod edge;
pub mod error_code;
pub mod logging;
pub mod meetings;
pub mod messages;
pub mod metrics;
pub mod metrics_listen;
pub mod rate_limit;
mod readiness;
mod routes;
pub mod server;
mod state;

pub use config::{Cli, Config};
pub use server::{Server, ServerError};
