use std::time::Duration;

/// Limits and timings of document rooms. Defaults suit a laptop-facing server; the gateway
/// fills this from `dure.toml` / `DURE_*` / flags.
#[derive(Clone, Debug)]
pub struct RoomConfig {
    /// Frames waiting for one connection's socket before it counts as a slow reader.
    pub outbound_queue: usize,
    /// How long a slow reader may stay behind before it is closed (retryable).
    pub slow_reader_timeout: Duration,
    /// Largest awareness message a connection may send, in bytes.
    pub awareness_max_bytes: usize,
    /// Awareness messages per second a connection may send (sustained); extra ones are
    /// coalesced, the newest kept.
    pub awareness_rate: f64,
    /// Burst allowance for awareness messages.
    pub awareness_burst: f64,
    /// How long a room with no connections stays loaded.
    pub idle_unload: Duration,
    /// Least time between two log writes of one room (0: write as soon as the previous write
    /// returned). Raising it batches more per write: fewer requests, later acks. The default
    /// of 20 ms keeps "saved" well under 50 ms while a busy room writes at most 50 times a
    /// second (each write creates and fsyncs a file: the main CPU cost of a busy room).
    pub commit_interval: Duration,
    /// Compact once this many log entries sit above the snapshot.
    pub compact_after_entries: usize,
    /// ... or once the log above the snapshot holds this many bytes.
    pub compact_after_bytes: u64,
    /// How long unloading a room (idle, or at shutdown) may spend merging the log above its
    /// snapshot into a new one, so that the next load reads one object instead of replaying
    /// the log. Zero turns it off. A compaction cut short leaves the store as it was.
    pub unload_compaction_timeout: Duration,
    /// Awareness states not renewed for this long are removed (y-protocols uses 30 s);
    /// removed entries are forgotten after as long again.
    pub awareness_timeout: Duration,
    /// Largest document, as its state encoded as a Yjs v1 update: an update that would grow
    /// it past this is refused (the sender is closed with [`crate::CloseReason::DocumentTooLarge`]).
    pub max_doc_bytes: u64,
    /// Bytes waiting for one connection's socket before it counts as a slow reader (one
    /// frame larger than this still goes out alone).
    pub outbound_queue_bytes: usize,
    /// Deepest nesting of arrays and maps accepted in update values, embedded JSON and
    /// awareness states; deeper input closes the connection before anything decodes it.
    pub max_nesting_depth: usize,
    /// Distinct awareness client ids one connection may set over its life; more closes it.
    pub awareness_clients_per_connection: usize,
    /// Live awareness states one room holds; clients beyond it are not shown.
    pub awareness_clients_per_room: usize,
}

/// Highest `max_nesting_depth` allowed: decoding stays well inside the stack the engine
/// guarantees (see `decode_stack`).
pub const MAX_NESTING_DEPTH_LIMIT: usize = 1000;

impl Default for RoomConfig {
    fn default() -> Self {
        RoomConfig {
            outbound_queue: 1024,
            slow_reader_timeout: Duration::from_secs(15),
            awareness_max_bytes: 32 * 1024,
            awareness_rate: 10.0,
            awareness_burst: 30.0,
            idle_unload: Duration::from_secs(30),
            commit_interval: Duration::from_millis(20),
            compact_after_entries: 500,
            compact_after_bytes: 8 * 1024 * 1024,
            unload_compaction_timeout: Duration::from_secs(5),
            awareness_timeout: Duration::from_secs(60),
            max_doc_bytes: 64 * 1024 * 1024,
            outbound_queue_bytes: 8 * 1024 * 1024,
            max_nesting_depth: 64,
            awareness_clients_per_connection: 4,
            awareness_clients_per_room: 512,
        }
    }
}
