use std::time::Duration;

use crate::CloseReason;

/// What the engine reports for metrics. The gateway implements it with Prometheus; tests
/// use [`NoopObserver`] or a counting one.
pub trait Observer: Send + Sync + 'static {
    fn update_applied(&self, _bytes: usize) {}
    /// A log entry was written.
    fn persisted(&self, _bytes: u64, _latency: Duration) {}
    /// An update became durable this long after it arrived.
    fn update_durable(&self, _since_arrival: Duration) {}
    fn ack_sent(&self) {}
    fn store_failed(&self, _retryable: bool) {}
    /// A document's writer started (`true`) or stopped (`false`) failing.
    fn store_writer_state(&self, _failing: bool) {}
    fn room_loaded(&self, _took: Duration, _bytes: u64) {}
    fn room_unloaded(&self) {}
    fn compacted(&self, _objects_removed: usize) {}
    fn connection_closed(&self, _reason: &CloseReason) {}
}

/// An observer that records nothing.
#[derive(Debug, Default)]
pub struct NoopObserver;

impl Observer for NoopObserver {}
