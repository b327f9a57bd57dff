//! Size and speed of the thesis codec (`--method pwl`) on raw tensor dumps.
//!
//! Usage: `cargo run --release -p pwlc-codecs --example pwl_bench -- DIR [P...] [-v] [--once]`
//!
//! `DIR` holds pairs `NAME.f32` (little-endian f32 values) and `NAME.shape` (dimensions separated
//! by spaces), as written by `scripts/dump_weights.py`. For every absolute tolerance `p`
//! (default 1e-4 and 1.5e-4) the example codes each tensor with the CLI's defaults (per row,
//! [`pwl::Options::default`], [`Bound::Abs`]) through the public [`pwlc_codecs::encode`] and
//! [`pwlc_codecs::decode`] dispatch and prints, summed over the tensors: bits per weight of the
//! payload (exceptions included), the ratio against f32, the number of segments per row, and
//! the speed in MB of f32 per second of one thread's CPU time: of the dispatch (whose encode
//! includes the reconstruction of the decoded values and the exception check) and of the codec
//! core alone
//! ([`pwl::encode`], [`pwl::decode`]), and an FNV-1a digest of the payloads, which tells whether a
//! change of the code changed the coded bytes. `-v` adds one line per tensor. `--once` runs every
//! step once instead of repeating it for 50 ms, so that a profile weighs the tensors by size.

use pwlc_codecs::{pwl, Bound, DType, Method, TensorRef};
use std::error::Error;
use std::path::Path;

#[path = "../benches/common/mod.rs"]
mod common;
mod dumps;
mod harness;
use dumps::{load, Tensor};
use harness::{fnv1a, seconds_per_run, FNV_OFFSET};

/// Sums over the tensors of one tolerance.
#[derive(Default)]
struct Totals {
    weights: u64,
    rows: u64,
    bytes: u64,
    segments: u64,
    exceptions: u64,
    encode_secs: f64,
    decode_secs: f64,
    core_encode_secs: f64,
    core_decode_secs: f64,
    /// FNV-1a hash of the payloads, to tell whether the coded bytes changed.
    digest: u64,
}

impl Totals {
    fn line(&self, label: &str) -> String {
        let n = self.weights as f64;
        let mb = n * 4.0 / 1e6;
        format!(
            "{label:<40} {:>10} {:>7.3} {:>7.2}x {:>8.1} {:>6} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:016x}",
            self.weights,
            self.bytes as f64 * 8.0 / n,
            n * 4.0 / self.bytes as f64,
            self.segments as f64 / self.rows.max(1) as f64,
            self.exceptions,
            mb / self.encode_secs,
            mb / self.decode_secs,
            mb / self.core_encode_secs,
            mb / self.core_decode_secs,
            self.digest,
        )
    }

    fn add(&mut self, other: &Totals) {
        self.weights += other.weights;
        self.rows += other.rows;
        self.bytes += other.bytes;
        self.segments += other.segments;
        self.exceptions += other.exceptions;
        self.encode_secs += other.encode_secs;
        self.decode_secs += other.decode_secs;
        self.core_encode_secs += other.core_encode_secs;
        self.core_decode_secs += other.core_decode_secs;
        self.digest = fnv1a(self.digest, &other.digest.to_le_bytes());
    }
}

/// Codes one tensor at tolerance `p` and measures it, each step repeated for `min_secs`.
fn measure(t: &Tensor, p: f64, min_secs: f64) -> Result<Totals, Box<dyn Error>> {
    let data: Vec<u8> = t.values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let options = pwl::Options::default();
    let method = Method::Pwl {
        bound: Bound::Abs(p),
        options: options.clone(),
    };
    let tensor = TensorRef {
        dtype: DType::F32,
        shape: &t.shape,
        data: &data,
    };
    let mut encoded = Err(pwlc_codecs::CodecError::Corrupt("not run"));
    let encode_secs = seconds_per_run(min_secs, || encoded = pwlc_codecs::encode(tensor, &method));
    let encoded = encoded?;
    let mut decoded = Ok(Vec::new());
    let decode_secs = seconds_per_run(min_secs, || {
        decoded = pwlc_codecs::decode(encoded.codec, DType::F32, &t.shape, &encoded.payload)
    });
    check_bound(&data, &decoded?, p)?;
    let mut r = pwlc_codecs::bitio::ByteReader::new(&encoded.payload);
    r.block()?;
    let exceptions = r.varint()?;

    let rows = pwlc_codecs::rows_of(&t.shape).max(1);
    let cols = t.values.len() / rows;
    let bounds = vec![p as f32; rows];
    let mut core = (Vec::new(), pwl::Stats::default());
    let core_encode_secs = seconds_per_run(min_secs, || {
        core = pwl::encode_with_stats(&t.values, rows, &bounds, &options)
    });
    let mut core_decoded = Ok(Vec::new());
    let core_decode_secs =
        seconds_per_run(min_secs, || core_decoded = pwl::decode(&core.0, rows, cols));
    core_decoded?;
    Ok(Totals {
        weights: t.values.len() as u64,
        rows: core.1.groups as u64,
        bytes: encoded.payload.len() as u64,
        segments: core.1.segments as u64,
        exceptions,
        encode_secs,
        decode_secs,
        core_encode_secs,
        core_decode_secs,
        digest: fnv1a(FNV_OFFSET, &encoded.payload),
    })
}

/// Errors unless every decoded f32 is within `p` of the original.
fn check_bound(original: &[u8], decoded: &[u8], p: f64) -> Result<(), Box<dyn Error>> {
    let f = |b: &[u8]| f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let ok = original.len() == decoded.len()
        && original
            .chunks_exact(4)
            .zip(decoded.chunks_exact(4))
            .all(|(a, b)| (f(a) - f(b)).abs() <= p);
    if ok {
        Ok(())
    } else {
        Err(format!("decoded values miss the bound {p}").into())
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let verbose = args.iter().any(|a| a == "-v");
    let min_secs = if args.iter().any(|a| a == "--once") {
        0.0
    } else {
        0.05
    };
    let mut positional = args.iter().filter(|a| !a.starts_with('-'));
    let dir = positional
        .next()
        .ok_or("usage: pwl_bench DIR [P...] [-v] [--once]")?;
    let mut tolerances: Vec<f64> = positional.map(|b| b.parse()).collect::<Result<_, _>>()?;
    if tolerances.is_empty() {
        tolerances = vec![1e-4, 1.5e-4];
    }
    let tensors = load(Path::new(dir))?;
    println!(
        "{:<40} {:>10} {:>7} {:>8} {:>8} {:>6} {:>8} {:>8} {:>8} {:>8} {:>16}",
        "tensors / p",
        "weights",
        "bits/w",
        "ratio",
        "seg/row",
        "exc",
        "enc MB/s",
        "dec MB/s",
        "core enc",
        "core dec",
        "payload digest"
    );
    for p in tolerances {
        let mut total = Totals::default();
        for t in &tensors {
            let m = measure(t, p, min_secs)?;
            if verbose {
                println!("{}", m.line(&format!("  {} {:?}", t.name, t.shape)));
            }
            total.add(&m);
        }
        println!(
            "{}",
            total.line(&format!("{} tensors, p {p:e}", tensors.len()))
        );
    }
    Ok(())
}
