//! The backstop behind the nesting limit: yrs recurses once per nesting level when it
//! decodes, applies, encodes and drops values, and a stack overflow aborts the whole process
//! (`catch_unwind` cannot catch it). Work on client or stored bytes runs here with at least
//! `RED_ZONE` of stack left, switching to a fresh `STACK` segment when the current thread
//! (a tokio worker has 2 MiB) is closer to its end than that. At about 300 bytes of stack a
//! level, the red zone alone covers more than three times `MAX_NESTING_DEPTH_LIMIT`.

const RED_ZONE: usize = 1024 * 1024;
const STACK: usize = 16 * 1024 * 1024;

pub(crate) fn with_stack<R>(f: impl FnOnce() -> R) -> R {
    stacker::maybe_grow(RED_ZONE, STACK, f)
}
