//! Encode and decode speed of the quant codec on synthetic weights.
//!
//! Run with `cargo bench -p pwlc-codecs --bench quant`. A plain timing loop (no benchmark
//! framework) keeps the dependency tree small; times are CPU time of the thread; for measurements on real weights see the
//! `quant_bench` example. Laplacian rows (the shape of trained weights) with row scales spread
//! over two octaves, coded at absolute bounds 5e-4, 1e-3 and 2e-3.

use pwlc_codecs::quant::{decode, encode, Options};
use std::hint::black_box;

mod common;
use common::now;

const ROWS: usize = 1024;
const COLS: usize = 1024;

/// Laplacian values from a splitmix64 generator, row `r` with scale `0.02 * 2^(2r / ROWS)`.
fn weights() -> Vec<f32> {
    let mut state = 0x1234_5678_9abc_def0u64;
    let mut unit = move || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (((z ^ (z >> 31)) >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    (0..ROWS * COLS)
        .map(|i| {
            let scale = 0.02 * 2f64.powf(2.0 * (i / COLS) as f64 / ROWS as f64);
            let magnitude = -unit().ln() * scale;
            (if unit() < 0.5 { magnitude } else { -magnitude }) as f32
        })
        .collect()
}

/// Mean time of `runs` calls of `f`, in seconds.
fn mean_of(runs: usize, mut f: impl FnMut()) -> f64 {
    let start = now();
    (0..runs).for_each(|_| f());
    (now() - start) / runs as f64
}

fn main() {
    let values = weights();
    let megabytes = (values.len() * 4) as f64 / 1e6;
    for bound in [5e-4f32, 1e-3, 2e-3] {
        let bounds = vec![bound; ROWS];
        let options = Options::default();
        let payload = encode(&values, ROWS, &bounds, &options);
        let encode_secs = mean_of(5, || {
            black_box(encode(black_box(&values), ROWS, &bounds, &options));
        });
        let decode_secs = mean_of(20, || {
            black_box(decode(black_box(&payload), ROWS, COLS).ok());
        });
        println!(
            "quant bound {bound:e}: {:.3} bits/value, encode {:.0} MB/s, decode {:.0} MB/s",
            payload.len() as f64 * 8.0 / values.len() as f64,
            megabytes / encode_secs,
            megabytes / decode_secs,
        );
    }
}
