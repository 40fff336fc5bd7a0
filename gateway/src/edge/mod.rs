//! The network edge: what a client may hold and send before any route runs. The accept
//! loop with its connection limits and timeouts, the lingering close, the `Host` check
//! against DNS rebinding, and per-address counting.

mod conn_io;
pub mod hosts;
pub mod listener;
pub mod per_address;
