//! The clock the codec benchmarks and the `quant_bench` example share.

use std::time::Instant;

/// Seconds of CPU time this thread has run (from `/proc/thread-self/schedstat`, so that the
/// numbers stay meaningful on a loaded machine), or of wall time if the kernel does not say.
pub fn now() -> f64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .map_or_else(
            || START.get_or_init(Instant::now).elapsed().as_secs_f64(),
            |ns| ns as f64 * 1e-9,
        )
}
