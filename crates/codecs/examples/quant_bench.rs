//! Size and speed of the quant codec on raw tensor dumps, against the order-0 oracle.
//!
//! Usage: `cargo run --release -p pwlc-codecs --example quant_bench -- DIR [BOUND...] [-v]
//! [--max-classes=N] [--refine-passes=N] [--model-decode] [--digest] [--bf16]`
//!
//! `DIR` holds pairs `NAME.f32` (little-endian f32 values) and `NAME.shape` (dimensions separated
//! by spaces). For every absolute bound (default 5e-4 1e-3 2e-3) the example codes each tensor
//! per row (first dimension) through `pwlc_codecs::encode` and prints, summed over the tensors:
//! the number of distinct oracle indices, bits per weight of the payload (wrapper exceptions
//! included), the ratio against f32, the oracle (a uniform quantizer of step `2 * bound` whose
//! indices are coded at the tensor's empirical order-0 entropy, no model cost), the number of
//! exceptions, and the encode/decode
//! speed of the codec itself in MB of f32 per second (one thread). Speeds are per second of CPU
//! time of the thread (from `/proc/thread-self/schedstat`, wall time where that is missing), so
//! they stay meaningful on a loaded machine. `-v` adds one line per tensor; `--max-classes=N`
//! sets [`quant::Options::max_classes`], `--refine-passes=N` [`quant::Options::refine_passes`].
//! `--model-decode` adds, per bound, the decoding of all
//! tensors at once: the CPU-time speed of one thread, and the wall-time speed of one and of two
//! threads that take tensors from a shared queue (as a pipeline parallel over tensors does).
//! `--digest` adds, per bound, a 64-bit FNV-1a digest of all payloads, so that a change of the
//! encoder can be checked to write the same bytes. `--bf16` codes the values rounded to bfloat16,
//! as `bf16` tensors: the wrapper checks the bound after the conversion back to `bf16` and stores
//! what misses it as exceptions (the `exc` column); ratios are then against `bf16`.

use pwlc_codecs::{quant, Bound, DType, Method, TensorRef};
use std::collections::HashMap;
use std::error::Error;
use std::path::Path;
use std::time::Instant;

#[path = "../benches/common/mod.rs"]
mod common;
mod dumps;
mod harness;
use dumps::{load, Tensor};
use harness::{fnv1a, seconds_per_run, FNV_OFFSET};

/// Order-0 entropy in bits of the indices `round(v / (2 * bound))`, and how many distinct
/// indices there are (where that nears the number of values, the entropy of the sample is close
/// to `log2 n` and far below what any code that must describe the distribution reaches).
fn oracle(values: &[f32], bound: f64) -> (f64, u64) {
    let mut counts: HashMap<i64, u64> = HashMap::new();
    for &v in values {
        *counts
            .entry((v as f64 / (2.0 * bound)).round() as i64)
            .or_default() += 1;
    }
    let n = values.len() as f64;
    let bits = counts
        .values()
        .map(|&c| c as f64 * (n / c as f64).log2())
        .sum();
    (bits, counts.len() as u64)
}

/// Sums over the tensors of one bound.
#[derive(Default)]
struct Totals {
    weights: u64,
    bytes: u64,
    oracle_bits: f64,
    /// Distinct oracle indices (of one tensor; summed over the tensors in a total).
    distinct: u64,
    exceptions: u64,
    encode_secs: f64,
    decode_secs: f64,
    /// FNV-1a digest of the payloads, in tensor order.
    digest: u64,
    /// Bytes of one element of the original tensors.
    element_bytes: usize,
}

impl Totals {
    fn line(&self, label: &str) -> String {
        let n = self.weights as f64;
        let mb = n * 4.0 / 1e6;
        format!(
            "{label:<40} {:>10} {:>8} {:>7.3} {:>7.2}x {:>7.3} {:>+7.2}% {:>6} {:>8.0} {:>8.0}",
            self.weights,
            self.distinct,
            self.bytes as f64 * 8.0 / n,
            n * self.element_bytes as f64 / self.bytes as f64,
            self.oracle_bits / n,
            100.0 * (self.bytes as f64 * 8.0 / self.oracle_bits - 1.0),
            self.exceptions,
            mb / self.encode_secs,
            mb / self.decode_secs,
        )
    }

    fn add(&mut self, other: &Totals) {
        self.weights += other.weights;
        self.bytes += other.bytes;
        self.oracle_bits += other.oracle_bits;
        self.distinct += other.distinct;
        self.exceptions += other.exceptions;
        self.encode_secs += other.encode_secs;
        self.decode_secs += other.decode_secs;
        self.digest = fnv1a(self.digest, &other.digest.to_le_bytes());
        self.element_bytes = other.element_bytes;
    }
}

/// Each measured call is repeated for at least this many CPU seconds.
const MIN_SECS: f64 = 0.05;

/// Codes one tensor, stored as `dtype`, at `bound` and measures it.
fn measure(
    t: &Tensor,
    dtype: DType,
    bound: f64,
    options: &quant::Options,
) -> Result<Totals, Box<dyn Error>> {
    let data = pwlc_codecs::dtype::from_f32(dtype, &t.values)?;
    let method = Method::Quant {
        bound: Bound::Abs(bound),
        options: options.clone(),
    };
    let tensor = TensorRef {
        dtype,
        shape: &t.shape,
        data: &data,
    };
    let encoded = pwlc_codecs::encode(tensor, &method)?;
    let mut r = pwlc_codecs::bitio::ByteReader::new(&encoded.payload);
    r.block()?;
    let exceptions = r.varint()?;

    let rows = pwlc_codecs::rows_of(&t.shape).max(1);
    let bounds = vec![bound as f32; rows];
    let mut core = Vec::new();
    let encode_secs = seconds_per_run(MIN_SECS, || {
        core = quant::encode(&t.values, rows, &bounds, options)
    });
    let cols = t.values.len() / rows;
    let mut decoded = Ok(Vec::new());
    let decode_secs = seconds_per_run(MIN_SECS, || decoded = quant::decode(&core, rows, cols));
    decoded?;
    let (oracle_bits, distinct) = oracle(&t.values, bound);
    Ok(Totals {
        weights: t.values.len() as u64,
        bytes: encoded.payload.len() as u64,
        oracle_bits,
        distinct,
        exceptions,
        encode_secs,
        decode_secs,
        digest: fnv1a(FNV_OFFSET, &encoded.payload),
        element_bytes: dtype.size(),
    })
}

/// Decodes every payload (`(payload, rows, cols)`) with `threads` threads taking tensors from a
/// shared queue, largest first; returns the wall seconds.
fn decode_all(payloads: &[(Vec<u8>, usize, usize)], threads: usize) -> f64 {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some((payload, rows, cols)) = payloads.get(i) else {
                    break;
                };
                let decoded = quant::decode(payload, *rows, *cols);
                assert!(decoded.is_ok(), "a payload does not decode");
            });
        }
    });
    start.elapsed().as_secs_f64()
}

/// Prints the speed of decoding all tensors: CPU time of one thread, wall time of 1 and 2 threads.
fn model_decode(tensors: &[Tensor], bound: f64, options: &quant::Options) {
    let mut payloads: Vec<(Vec<u8>, usize, usize)> = tensors
        .iter()
        .map(|t| {
            let rows = pwlc_codecs::rows_of(&t.shape).max(1);
            let bounds = vec![bound as f32; rows];
            let payload = quant::encode(&t.values, rows, &bounds, options);
            (payload, rows, t.values.len() / rows)
        })
        .collect();
    payloads.sort_by_key(|(_, rows, cols)| std::cmp::Reverse(rows * cols));
    let mb = tensors.iter().map(|t| t.values.len()).sum::<usize>() as f64 * 4.0 / 1e6;
    let cpu = seconds_per_run(MIN_SECS, || {
        for (payload, rows, cols) in &payloads {
            assert!(quant::decode(payload, *rows, *cols).is_ok());
        }
    });
    let best_wall = |threads| {
        (0..5)
            .map(|_| decode_all(&payloads, threads))
            .fold(f64::MAX, f64::min)
    };
    let (one, two) = (best_wall(1), best_wall(2));
    println!(
        "  model decode: {:.0} MB/s (1 thread, CPU time); wall: {:.0} MB/s 1 thread, {:.0} MB/s 2 threads ({:.2}x)",
        mb / cpu,
        mb / one,
        mb / two,
        one / two
    );
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let verbose = args.iter().any(|a| a == "-v");
    let whole_model = args.iter().any(|a| a == "--model-decode");
    let digest = args.iter().any(|a| a == "--digest");
    let mut options = quant::Options::default();
    for a in &args {
        if let Some(n) = a.strip_prefix("--max-classes=") {
            options.max_classes = n.parse()?;
        }
        if let Some(n) = a.strip_prefix("--refine-passes=") {
            options.refine_passes = n.parse()?;
        }
    }
    let mut positional = args.iter().filter(|a| !a.starts_with('-'));
    let dir = positional
        .next()
        .ok_or("usage: quant_bench DIR [BOUND...] [-v] [--bf16]")?;
    let mut bounds: Vec<f64> = positional.map(|b| b.parse()).collect::<Result<_, _>>()?;
    if bounds.is_empty() {
        bounds = vec![5e-4, 1e-3, 2e-3];
    }
    let mut tensors = load(Path::new(dir))?;
    let dtype = if args.iter().any(|a| a == "--bf16") {
        for t in &mut tensors {
            let bytes = pwlc_codecs::dtype::from_f32(DType::BF16, &t.values)?;
            t.values = pwlc_codecs::dtype::to_f32(DType::BF16, &bytes)?;
        }
        DType::BF16
    } else {
        DType::F32
    };
    println!(
        "{:<40} {:>10} {:>8} {:>7} {:>8} {:>7} {:>8} {:>6} {:>8} {:>8}",
        "tensors / bound",
        "weights",
        "distinct",
        "bits/w",
        "ratio",
        "oracle",
        "vs orc",
        "exc",
        "enc MB/s",
        "dec MB/s"
    );
    for bound in bounds {
        let mut total = Totals {
            digest: FNV_OFFSET,
            ..Totals::default()
        };
        for t in &tensors {
            let m = measure(t, dtype, bound, &options)?;
            if verbose {
                println!("{}", m.line(&format!("  {} {:?}", t.name, t.shape)));
            }
            total.add(&m);
        }
        println!(
            "{}",
            total.line(&format!("{} tensors, bound {bound:e}", tensors.len()))
        );
        if digest {
            println!("  payload digest: {:016x}", total.digest);
        }
        if whole_model {
            model_decode(&tensors, bound, &options);
        }
    }
    Ok(())
}
