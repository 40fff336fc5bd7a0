//! Harness for Dure's black-box tests, the load generator and the baseline relay.
//!
//! - [`server`]: spawn the real `dure` binary on a free loopback port and stop it.
//! - [`yclient`]: a Yjs client in Rust (yrs over tokio-tungstenite).
//! - [`jsclient`]: real JS Yjs clients (`yjs` + `y-websocket`) driven through node.
//! - [`idp`]: a real OpenID provider (npm `oidc-provider`) with test users and key rotation.
//! - [`browser`]: a cookie-jar HTTP client that signs in to Dure through that provider.
//! - [`rt_client`]: a client of the realtime socket (`/ws/rt`).
//! - [`signed_in`]: `dure` with the test provider and tokens for named users.
//! - [`turn`]: a real TURN relay (coturn) checking REST credentials.
//! - [`webrtc_peer`]: WebRTC peers (the `webrtc` crate) with a data channel.

pub mod browser;
pub mod desktop;
pub mod idp;
pub mod jsclient;
pub mod rt_client;
pub mod s3;
pub mod server;
pub mod signed_in;
pub mod turn;
pub mod webrtc_peer;
pub mod yclient;
