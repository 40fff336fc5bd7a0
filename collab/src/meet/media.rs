//! How media flows in a meeting. `Mesh` (this release) has every pair of participants
//! connect directly, so the server only relays their signalling; a forwarding unit will
//! implement the same trait and terminate the peer connections itself.

/// Where one signalling message goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignalRoute {
    /// Deliver it to this participant.
    Peer(String),
    /// The backend handles it itself (a forwarding unit answering an offer).
    Consumed,
}

pub trait MediaBackend: Send + Sync + 'static {
    /// The name clients see in `meeting.media`.
    fn name(&self) -> &'static str;
    /// Routes a signal from `from` addressed to `to` (both joined in `slug`).
    fn route(&self, slug: &str, from: &str, to: &str) -> SignalRoute;
    /// A participant left the call (a forwarding unit tears its peer connection down).
    fn left(&self, _slug: &str, _participant: &str) {}
}

/// Peer-to-peer media: signals go to the peer they are addressed to.
#[derive(Debug, Default)]
pub struct Mesh;

impl MediaBackend for Mesh {
    fn name(&self) -> &'static str {
        "mesh"
    }

    fn route(&self, _slug: &str, _from: &str, to: &str) -> SignalRoute {
        SignalRoute::Peer(to.to_owned())
    }
}
