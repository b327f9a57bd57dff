//! What the `quant_bench` and `pwl_bench` examples share beyond the dumps: CPU time per call and
//! digests of the payloads.

use crate::common::now;

/// The FNV-1a offset basis: the hash of no bytes.
pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a over `bytes`, continuing from `hash` ([`FNV_OFFSET`] starts a new digest).
pub fn fnv1a(hash: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(hash, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// CPU seconds one call of `run` takes, averaged over repeated calls for at least `min_secs`
/// (the thread's CPU clock advances in scheduler ticks; 0 runs once).
///
/// The clock is read between batches of calls, not after each: a read opens and parses a file
/// in `/proc`, some microseconds of this thread's CPU time, which would count in the time of
/// every call and weigh on the calls that take tens of microseconds (small tensors). Each batch
/// is as many calls as the time left needs at the rate so far, at most as many as ran before
/// it: the clock is read a few times per measurement, which lasts at most about twice
/// `min_secs`.
pub fn seconds_per_run(min_secs: f64, mut run: impl FnMut()) -> f64 {
    let start = now();
    let mut runs = 0u64;
    let mut batch = 1u64;
    loop {
        (0..batch).for_each(|_| run());
        runs += batch;
        let spent = now() - start;
        if spent >= min_secs {
            return spent / runs as f64;
        }
        let per_run = spent / runs as f64;
        let needed = if per_run > 0.0 {
            ((min_secs - spent) / per_run).ceil() as u64
        } else {
            runs
        };
        batch = needed.clamp(1, runs);
    }
}
