//! Decode speed of the rANS coder.
//!
//! Run with `cargo bench -p pwlc-codecs --bench rans`. A plain timing loop (no benchmark
//! framework) keeps the dependency tree small; times are CPU time of the thread, so that the
//! numbers stay meaningful on a loaded machine. Symbols follow the distribution of the
//! exponents of trained float32 weights (about 3 bits/symbol); the second run switches
//! between two models on every symbol, as context modelling does.

use pwlc_codecs::entropy::rans::{DecodeTable, Decoder, Encoder, Model};
use std::hint::black_box;

mod common;
use common::now;

const SYMBOLS: usize = 20_000_000;

/// Symbols 0..24 with counts falling by 0.7 from one to the next, drawn with a xorshift generator.
fn symbols() -> (Vec<u64>, Vec<u32>) {
    let counts: Vec<u64> = (0..24).map(|i| (1e12 * 0.7f64.powi(i)) as u64).collect();
    let total: u64 = counts.iter().sum();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let symbols = (0..SYMBOLS)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let mut x = state % total;
            counts
                .iter()
                .position(|&c| {
                    let hit = x < c;
                    x = x.saturating_sub(c);
                    hit
                })
                .unwrap_or(0) as u32
        })
        .collect();
    (counts, symbols)
}

/// Codes `symbols`, symbol `i` with `model(i)` (which may depend only on the parity of `i`);
/// prints the size and speeds.
fn run<'m>(name: &str, symbols: &[u32], model: impl Fn(usize) -> &'m Model) {
    let start = now();
    let mut enc = Encoder::with_capacity(symbols.len());
    for (i, &s) in symbols.iter().enumerate() {
        enc.put(s, model(i));
    }
    let stream = enc.finish();
    let encode_secs = now() - start;
    let tables = [DecodeTable::new(model(0)), DecodeTable::new(model(1))];
    let start = now();
    let mut dec = Decoder::new(black_box(&stream)).expect("valid stream");
    let mut check = 0u32;
    for i in 0..symbols.len() {
        check = check.wrapping_add(dec.get(&tables[i & 1]));
    }
    let decode_secs = now() - start;
    dec.finish().expect("complete stream");
    black_box(check);
    println!(
        "rANS {name}: {:.3} bits/symbol, encode {:.0} M symbols/s, decode {:.0} M symbols/s",
        stream.len() as f64 * 8.0 / symbols.len() as f64,
        symbols.len() as f64 / encode_secs / 1e6,
        symbols.len() as f64 / decode_secs / 1e6,
    );
}

fn main() {
    let (counts, symbols) = symbols();
    let model = Model::from_counts(&counts).expect("valid counts");
    let mut reversed = counts.clone();
    reversed.reverse();
    let other = Model::from_counts(&reversed).expect("valid counts");
    run("one model", &symbols, |_| &model);
    let last = counts.len() as u32 - 1;
    let flipped: Vec<u32> = symbols
        .iter()
        .enumerate()
        .map(|(i, &s)| if i % 2 == 1 { last - s } else { s })
        .collect();
    let models = [model.clone(), other];
    run("two models", &flipped, |i| &models[i & 1]);
}
