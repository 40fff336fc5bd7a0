//! Prometheus metrics (`/metrics`), fed by the engine through [`dure_collab::Observer`] and
//! by the socket handlers.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use dure_collab::{CloseReason, Observer};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabel {
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RetryableLabel {
    pub retryable: String,
}

pub struct Metrics {
    registry: Registry,
    pub connections: Gauge,
    pub connections_total: Counter,
    pub rooms_loaded: Gauge,
    pub updates_applied: Counter,
    pub update_bytes: Counter,
    pub bytes_stored: Counter,
    pub persist_seconds: Histogram,
    pub saved_seconds: Histogram,
    pub acks: Counter,
    pub closes: Family<ReasonLabel, Counter>,
    pub room_load_seconds: Histogram,
    pub store_errors: Family<RetryableLabel, Counter>,
    pub compactions: Counter,
    /// Attachment uploads being received now (each held in memory).
    pub uploads_receiving: Gauge,
    /// Documents whose writes are currently failing (for readiness).
    pub failing_writers: AtomicI64,
    /// Realtime sockets and meetings (fed by the engine through `RtObserver`).
    pub rt: RtMetrics,
}

/// What the realtime engine reports: sockets, meetings, people in calls and lobbies,
/// signalling, chat, TURN credentials, errors.
#[derive(Default)]
pub struct RtMetrics {
    pub sockets: Gauge,
    pub socket_closes: Family<CodeLabel, Counter>,
    pub meetings_active: Gauge,
    pub participants: Gauge,
    pub lobby_waiting: Gauge,
    pub signals: Family<KindLabel, Counter>,
    pub chat_messages: Counter,
    pub turn_credentials: Counter,
    pub errors: Family<CodeLabel, Counter>,
}

impl RtMetrics {
    fn register(&self, registry: &mut Registry) {
        registry.register("rt_sockets", "Open realtime sockets", self.sockets.clone());
        registry.register(
            "rt_socket_closes",
            "Realtime sockets closed, by close code",
            self.socket_closes.clone(),
        );
        registry.register(
            "meetings_active",
            "Meetings with a running owner task",
            self.meetings_active.clone(),
        );
        registry.register(
            "meeting_participants",
            "People in meeting calls (not lobbies)",
            self.participants.clone(),
        );
        registry.register(
            "meeting_lobby_waiting",
            "People waiting in meeting lobbies",
            self.lobby_waiting.clone(),
        );
        registry.register(
            "meeting_signals",
            "Signalling messages relayed, by kind",
            self.signals.clone(),
        );
        registry.register(
            "meeting_chat_messages",
            "Meeting chat messages sent",
            self.chat_messages.clone(),
        );
        registry.register(
            "meeting_turn_credentials",
            "TURN credentials issued",
            self.turn_credentials.clone(),
        );
        registry.register(
            "rt_errors",
            "Realtime requests answered with an error, by code",
            self.errors.clone(),
        );
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

fn latency_histogram() -> Histogram {
    // 0.1 ms .. ~13 s
    Histogram::new(exponential_buckets(0.0001, 2.0, 18))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("dure");
        let m = Metrics {
            connections: Gauge::default(),
            connections_total: Counter::default(),
            rooms_loaded: Gauge::default(),
            updates_applied: Counter::default(),
            update_bytes: Counter::default(),
            bytes_stored: Counter::default(),
            persist_seconds: latency_histogram(),
            saved_seconds: latency_histogram(),
            acks: Counter::default(),
            closes: Family::default(),
            room_load_seconds: latency_histogram(),
            store_errors: Family::default(),
            compactions: Counter::default(),
            uploads_receiving: Gauge::default(),
            failing_writers: AtomicI64::new(0),
            rt: RtMetrics::default(),
            registry: Registry::default(),
        };
        m.rt.register(&mut registry);
        registry.register(
            "connections",
            "Open document sockets",
            m.connections.clone(),
        );
        registry.register(
            "connections_opened",
            "Document sockets opened",
            m.connections_total.clone(),
        );
        registry.register(
            "rooms_loaded",
            "Documents loaded in memory",
            m.rooms_loaded.clone(),
        );
        registry.register(
            "updates_applied",
            "Document updates applied",
            m.updates_applied.clone(),
        );
        registry.register(
            "update_bytes",
            "Bytes of document updates applied",
            m.update_bytes.clone(),
        );
        registry.register(
            "stored_bytes",
            "Bytes written to the store as log entries",
            m.bytes_stored.clone(),
        );
        registry.register(
            "persist_seconds",
            "Latency of one log-entry write",
            m.persist_seconds.clone(),
        );
        registry.register(
            "saved_latency_seconds",
            "Time from an update's arrival to its being durable",
            m.saved_seconds.clone(),
        );
        registry.register("acks_sent", "Saved acknowledgements sent", m.acks.clone());
        registry.register(
            "uploads_receiving",
            "Attachment uploads being received now",
            m.uploads_receiving.clone(),
        );
        registry.register(
            "closes",
            "Sockets closed by the server, by reason",
            m.closes.clone(),
        );
        registry.register(
            "room_load_seconds",
            "Time to load a document from the store",
            m.room_load_seconds.clone(),
        );
        registry.register(
            "store_errors",
            "Failed store writes",
            m.store_errors.clone(),
        );
        registry.register("compactions", "Document compactions", m.compactions.clone());
        Metrics { registry, ..m }
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    pub fn closed(&self, reason: &str) {
        self.closes
            .get_or_create(&ReasonLabel {
                reason: reason.to_owned(),
            })
            .inc();
    }

    pub fn store_failing(&self) -> bool {
        self.failing_writers.load(Ordering::Relaxed) > 0
    }
}

impl Observer for Metrics {
    fn update_applied(&self, bytes: usize) {
        self.updates_applied.inc();
        self.update_bytes.inc_by(bytes as u64);
    }
    fn persisted(&self, bytes: u64, latency: Duration) {
        self.bytes_stored.inc_by(bytes);
        self.persist_seconds.observe(latency.as_secs_f64());
    }
    fn update_durable(&self, since_arrival: Duration) {
        self.saved_seconds.observe(since_arrival.as_secs_f64());
    }
    fn ack_sent(&self) {
        self.acks.inc();
    }
    fn store_failed(&self, retryable: bool) {
        self.store_errors
            .get_or_create(&RetryableLabel {
                retryable: retryable.to_string(),
            })
            .inc();
    }
    fn store_writer_state(&self, failing: bool) {
        self.failing_writers
            .fetch_add(if failing { 1 } else { -1 }, Ordering::Relaxed);
    }
    fn room_loaded(&self, took: Duration, _bytes: u64) {
        self.rooms_loaded.inc();
        self.room_load_seconds.observe(took.as_secs_f64());
    }
    fn room_unloaded(&self) {
        self.rooms_loaded.dec();
    }
    fn compacted(&self, _objects_removed: usize) {
        self.compactions.inc();
    }
    fn connection_closed(&self, reason: &CloseReason) {
        self.closed(reason.label());
    }
}

/// Labels come from the engine, but a bounded set of them: signal kinds it validated, error
/// codes of its fixed table. Anything else is folded into `other` so a bug cannot grow the
/// label set without bound.
fn bounded_label(value: &str, known: &[&str]) -> String {
    if known.contains(&value) {
        value.to_owned()
    } else {
        "other".to_owned()
    }
}

const SIGNAL_KINDS: &[&str] = &["offer", "answer", "candidate", "restart"];
const RT_ERROR_CODES: &[&str] = &[
    "bad_request",
    "malformed",
    "too_large",
    "rate_limited",
    "hello_first",
    "unsupported_version",
    "unknown_type",
    "not_found",
    "invite_expired",
    "invite_revoked",
    "invite_used_up",
    "locked",
    "ended",
    "denied",
    "removed",
    "not_admitted",
    "not_joined",
    "forbidden",
    "unknown_participant",
    "already_joined",
    "unavailable",
    "internal",
    "slow_reader",
];

impl dure_collab::rt::RtObserver for Metrics {
    fn socket_opened(&self) {
        self.rt.sockets.inc();
    }
    fn socket_closed(&self, code: u16) {
        self.rt.sockets.dec();
        self.rt
            .socket_closes
            .get_or_create(&CodeLabel {
                code: code.to_string(),
            })
            .inc();
    }
    fn meeting_active(&self, active: bool) {
        if active {
            self.rt.meetings_active.inc();
        } else {
            self.rt.meetings_active.dec();
        }
    }
    fn participant(&self, joined: bool) {
        if joined {
            self.rt.participants.inc();
        } else {
            self.rt.participants.dec();
        }
    }
    fn lobby(&self, waiting: bool) {
        if waiting {
            self.rt.lobby_waiting.inc();
        } else {
            self.rt.lobby_waiting.dec();
        }
    }
    fn signal_relayed(&self, kind: &str) {
        self.rt
            .signals
            .get_or_create(&KindLabel {
                kind: bounded_label(kind, SIGNAL_KINDS),
            })
            .inc();
    }
    fn chat_message(&self) {
        self.rt.chat_messages.inc();
    }
    fn turn_issued(&self) {
        self.rt.turn_credentials.inc();
    }
    fn error_sent(&self, code: &str) {
        self.rt
            .errors
            .get_or_create(&CodeLabel {
                code: bounded_label(code, RT_ERROR_CODES),
            })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dure_collab::rt::RtObserver;

    #[test]
    fn realtime_metrics_are_exported_with_bounded_labels() {
        let m = Metrics::new();
        m.socket_opened();
        m.socket_opened();
        m.socket_closed(1000);
        m.meeting_active(true);
        m.participant(true);
        m.participant(true);
        m.participant(false);
        m.lobby(true);
        m.signal_relayed("offer");
        m.signal_relayed("<script>");
        m.chat_message();
        m.turn_issued();
        m.error_sent("locked");
        m.error_sent("made_up");
        let text = m.encode();
        for line in [
            "dure_rt_sockets 1",
            "dure_rt_socket_closes_total{code=\"1000\"} 1",
            "dure_meetings_active 1",
            "dure_meeting_participants 1",
            "dure_meeting_lobby_waiting 1",
            "dure_meeting_signals_total{kind=\"offer\"} 1",
            "dure_meeting_signals_total{kind=\"other\"} 1",
            "dure_meeting_chat_messages_total 1",
            "dure_meeting_turn_credentials_total 1",
            "dure_rt_errors_total{code=\"locked\"} 1",
            "dure_rt_errors_total{code=\"other\"} 1",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }
}
