/// What the realtime engine reports for metrics; the gateway implements it with Prometheus.
pub trait RtObserver: Send + Sync + 'static {
    fn socket_opened(&self) {}
    fn socket_closed(&self, _code: u16) {}
    /// A meeting's owner task started (`true`) or stopped (`false`).
    fn meeting_active(&self, _active: bool) {}
    /// A participant joined (`true`) or left (`false`) the call (not the lobby).
    fn participant(&self, _joined: bool) {}
    /// Someone started (`true`) or stopped (`false`) waiting in a lobby.
    fn lobby(&self, _waiting: bool) {}
    /// A signalling message was relayed (`kind`: offer, answer, candidate, restart).
    fn signal_relayed(&self, _kind: &str) {}
    fn chat_message(&self) {}
    fn turn_issued(&self) {}
    /// A request was answered with an error of this code.
    fn error_sent(&self, _code: &str) {}
}

/// An observer that records nothing.
#[derive(Debug, Default)]
pub struct NoopRtObserver;

impl RtObserver for NoopRtObserver {}
