//! Sweeps of the thesis codec over raw tensor dumps.
//!
//! Usage: `cargo run --release -p pwlc-codecs --example thesis_sweep -- DIR [P [SECTIONS]]`
//!
//! `DIR` holds pairs `NAME.f32` (little-endian f32 values) and `NAME.shape` (dimensions separated
//! by spaces). Every tensor is coded per row (first dimension) with an absolute bound; the
//! example prints ratio (f32 bytes / payload bytes, exceptions included), max error and RMSE for
//! sweeps of `p`, `pd`, `pm`, the ablations, the matrix-encoding comparison, and encode/decode
//! speeds. `P` (default 5e-4) is the bound of every sweep except the `p` sweep; `SECTIONS` is a
//! comma-separated subset of `p,pd,pm,ablations,matrix,speed` (default: all).

use pwlc_codecs::matrix::{self, Format, Matrix};
use pwlc_codecs::pwl::{self, Granularity, Linearizer, Options, Precision, RankCoding};
use pwlc_codecs::{Bound, DType, Method, TensorRef};
use std::error::Error;
use std::path::Path;

/// A clock of the CPU time this thread has used, in seconds; wall time where the kernel does
/// not report it. CPU time keeps speed figures meaningful on a machine shared with other jobs.
struct Clock(std::time::Instant);

impl Clock {
    fn start() -> Clock {
        Clock(std::time::Instant::now())
    }

    fn now(&self) -> f64 {
        std::fs::read_to_string("/proc/thread-self/schedstat")
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
            .map_or_else(|| self.0.elapsed().as_secs_f64(), |ns| ns * 1e-9)
    }

    /// Seconds used by `f`.
    fn time<T>(&self, f: impl FnOnce() -> T) -> (T, f64) {
        let start = self.now();
        let out = f();
        (out, self.now() - start)
    }
}

/// One tensor dump.
struct Tensor {
    name: String,
    shape: Vec<u64>,
    values: Vec<f32>,
}

impl Tensor {
    fn rows(&self) -> usize {
        pwlc_codecs::rows_of(&self.shape).max(1)
    }
}

fn load(dir: &Path) -> Result<Vec<Tensor>, Box<dyn Error>> {
    let mut tensors = Vec::new();
    let mut names: Vec<_> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "f32"))
        .collect();
    names.sort();
    for path in names {
        let shape_text = std::fs::read_to_string(path.with_extension("shape"))?;
        let shape = shape_text
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<Vec<u64>, _>>()?;
        let bytes = std::fs::read(&path)?;
        let values: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        if shape.iter().product::<u64>() != values.len() as u64 {
            return Err(format!("{}: shape does not match the data", path.display()).into());
        }
        let name = path
            .file_stem()
            .map_or_else(String::new, |s| s.to_string_lossy().into());
        tensors.push(Tensor {
            name,
            shape,
            values,
        });
    }
    Ok(tensors)
}

/// Totals of one configuration over all tensors.
#[derive(Default)]
struct Totals {
    values: usize,
    bytes: usize,
    max_err: f64,
    sum_sq: f64,
    stats: pwl::Stats,
    encode_s: f64,
    decode_s: f64,
}

impl Totals {
    fn ratio(&self) -> f64 {
        (self.values * 4) as f64 / self.bytes.max(1) as f64
    }

    fn bits(&self, bytes: usize) -> f64 {
        bytes as f64 * 8.0 / self.values.max(1) as f64
    }

    fn row(&self, label: &str) {
        let s = &self.stats;
        println!(
            "| {label} | {:.3}x | {:.2e} | {:.2e} | {:.3} | {:.2} | {:.2} | {:.2} | {} | {} |",
            self.ratio(),
            self.max_err,
            (self.sum_sq / self.values.max(1) as f64).sqrt(),
            s.segments as f64 / self.values.max(1) as f64,
            self.bits(s.rank_bytes),
            self.bits(s.segment_bytes),
            self.bits(s.header_bytes),
            s.slopes,
            s.literals,
        );
    }
}

fn header() {
    println!("| config | ratio | max err | RMSE | segments/weight | rank bits/w | segment bits/w | table bits/w | slopes | literals |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
}

/// Codes every tensor through the full wrapper (exceptions included) and the core for stats.
fn run(tensors: &[Tensor], p: f64, options: &Options) -> Result<Totals, Box<dyn Error>> {
    let mut t = Totals::default();
    for tensor in tensors {
        let data: Vec<u8> = tensor.values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let method = Method::Pwl {
            bound: Bound::Abs(p),
            options: options.clone(),
        };
        let input = TensorRef {
            dtype: DType::F32,
            shape: &tensor.shape,
            data: &data,
        };
        let clock = Clock::start();
        let (enc, secs) = clock.time(|| pwlc_codecs::encode(input, &method));
        let enc = enc?;
        t.encode_s += secs;
        let (dec, secs) =
            clock.time(|| pwlc_codecs::decode(enc.codec, DType::F32, &tensor.shape, &enc.payload));
        let dec = dec?;
        t.decode_s += secs;
        let missed = dec.chunks_exact(4).zip(&tensor.values).any(|(d, &v)| {
            // The codec's bound is the row bound as f32, as `Bound::per_row` computes it.
            (f32::from_le_bytes([d[0], d[1], d[2], d[3]]) as f64 - v as f64).abs() > p as f32 as f64
        });
        if missed {
            return Err(format!("{}: decoded values miss the bound", tensor.name).into());
        }
        let n = tensor.values.len();
        t.values += n;
        t.bytes += enc.payload.len();
        t.max_err = t.max_err.max(enc.max_abs_error);
        t.sum_sq += enc.rmse * enc.rmse * n as f64;
        let rows = tensor.rows();
        let bounds = Bound::Abs(p).per_row(&tensor.values, rows);
        let (_, s) = pwl::encode_with_stats(&tensor.values, rows, &bounds, options);
        add(&mut t.stats, &s);
    }
    Ok(t)
}

fn add(a: &mut pwl::Stats, b: &pwl::Stats) {
    a.values += b.values;
    a.groups += b.groups;
    a.pieces += b.pieces;
    a.segments += b.segments;
    a.literals += b.literals;
    a.slopes += b.slopes;
    a.rank_bytes += b.rank_bytes;
    a.segment_bytes += b.segment_bytes;
    a.header_bytes += b.header_bytes;
}

fn sweep_p(tensors: &[Tensor]) -> Result<(), Box<dyn Error>> {
    println!("\n### Sweep of p (absolute bound), defaults otherwise\n");
    header();
    for p in [1e-4, 2.5e-4, 5e-4, 1e-3, 2e-3, 5e-3] {
        run(tensors, p, &Options::default())?.row(&format!("p={p:.1e}"));
    }
    Ok(())
}

fn sweep_pd(tensors: &[Tensor], p: f64) -> Result<(), Box<dyn Error>> {
    println!("\n### Sweep of pd (slope sharing, units of p per rank), p = {p:.0e}\n");
    header();
    for pd in [0.0, 0.001, 0.01, 0.03, 0.1, 0.3, 1.0] {
        let o = Options {
            pd,
            ..Options::default()
        };
        run(tensors, p, &o)?.row(&format!("pd={pd}"));
    }
    Ok(())
}

fn sweep_pm(tensors: &[Tensor], p: f64) -> Result<(), Box<dyn Error>> {
    println!("\n### Sweep of pm (merge tolerance / intercept grid, fraction of p), p = {p:.0e}\n");
    header();
    for pm in [0.0, 0.05, 0.1, 0.2, 0.25, 0.4, 0.6] {
        let o = Options {
            pm,
            ..Options::default()
        };
        run(tensors, p, &o)?.row(&format!("pm={pm}"));
    }
    Ok(())
}

fn ablations(tensors: &[Tensor], p: f64) -> Result<(), Box<dyn Error>> {
    println!("\n### Ablations, p = {p:.0e}\n");
    header();
    let d = Options::default;
    let configs = [
        ("default (optimal, pd, pm, f32, Huffman, packed ranks)", d()),
        (
            "greedy linearization",
            Options {
                linearizer: Linearizer::Greedy,
                ..d()
            },
        ),
        ("no parallel lines (pd=0)", Options { pd: 0.0, ..d() }),
        (
            "no intercept grid (pm=0, f32 intercepts)",
            Options { pm: 0.0, ..d() },
        ),
        (
            "f16 slopes",
            Options {
                slope_precision: Precision::F16,
                ..d()
            },
        ),
        (
            "no Huffman",
            Options {
                huffman: false,
                ..d()
            },
        ),
        (
            "permutation-coded ranks (~log2 n!)",
            Options {
                rank_coding: RankCoding::Permutation,
                ..d()
            },
        ),
        (
            "granularity: layer",
            Options {
                granularity: Granularity::Layer,
                ..d()
            },
        ),
        (
            "granularity: blocks of 256",
            Options {
                granularity: Granularity::Block(256),
                ..d()
            },
        ),
    ];
    for (label, o) in configs {
        run(tensors, p, &o)?.row(label);
    }
    Ok(())
}

/// Matrix encodings on the f32 weights and on their quantization codes `round(w / 2p)`, next
/// to pwl at the same bound.
fn matrix_table(tensors: &[Tensor], p: f64) -> Result<(), Box<dyn Error>> {
    println!("\n### Matrix encodings (all tensors as rows x cols matrices), p = {p:.0e}\n");
    let mut f32_bytes = [0usize; 4];
    let mut code_bytes = [0usize; 4];
    let mut total = 0usize;
    for t in tensors {
        let rows = t.rows();
        let cols = t.values.len() / rows;
        let m = Matrix::new(rows, cols, t.values.clone())?;
        let codes: Vec<i32> = t
            .values
            .iter()
            .map(|&v| (v as f64 / (2.0 * p)).round() as i32)
            .collect();
        let q = Matrix::new(rows, cols, codes)?;
        for (i, f) in Format::ALL.into_iter().enumerate() {
            f32_bytes[i] += matrix::size(&m, f);
            code_bytes[i] += matrix::size(&q, f);
        }
        total += t.values.len() * 4;
    }
    println!("| encoding | f32 weights: ratio | quantized codes (step 2p): ratio |");
    println!("|---|---|---|");
    for (i, f) in Format::ALL.into_iter().enumerate() {
        println!(
            "| {} | {:.3}x | {:.3}x |",
            f.name(),
            total as f64 / f32_bytes[i] as f64,
            total as f64 / code_bytes[i] as f64
        );
    }
    let pwl = run(tensors, p, &Options::default())?;
    println!("| pwl (default options) | {:.3}x | - |", pwl.ratio());
    Ok(())
}

fn speed(tensors: &[Tensor], p: f64) -> Result<(), Box<dyn Error>> {
    println!("\n### Speed over all tensors (one thread, CPU time), p = {p:.0e}\n");
    let t = run(tensors, p, &Options::default())?;
    let mb = (t.values * 4) as f64 / 1e6;
    println!(
        "encode {:.1} MB/s, decode {:.1} MB/s (wrapper included: it decodes once to find exceptions)",
        mb / t.encode_s,
        mb / t.decode_s
    );
    let (mut enc_s, mut dec_s) = (0.0, 0.0);
    let o = Options::default();
    for tensor in tensors {
        let rows = tensor.rows();
        let bounds = Bound::Abs(p).per_row(&tensor.values, rows);
        let clock = Clock::start();
        let (payload, secs) = clock.time(|| pwl::encode(&tensor.values, rows, &bounds, &o));
        enc_s += secs;
        let (decoded, secs) =
            clock.time(|| pwl::decode(&payload, rows, tensor.values.len() / rows));
        decoded?;
        dec_s += secs;
    }
    println!(
        "core codec only: encode {:.1} MB/s, decode {:.1} MB/s",
        mb / enc_s,
        mb / dec_s
    );
    println!("\n### Encode time vs row length n (64 Gaussian rows, core codec only, CPU time)\n");
    println!("| n | encode ns/value | decode ns/value |");
    println!("|---|---|---|");
    for n in [64usize, 256, 1024, 4096, 16384, 65536] {
        let values = gaussian(64 * n, 0.02);
        let bounds = vec![p as f32; 64];
        let o = Options::default();
        let reps = (4_000_000 / values.len()).max(1);
        let clock = Clock::start();
        let (payload, enc) = clock.time(|| {
            let mut payload = Vec::new();
            for _ in 0..reps {
                payload = pwl::encode(&values, 64, &bounds, &o);
            }
            payload
        });
        let (decoded, dec) = clock.time(|| {
            let mut decoded = Ok(Vec::new());
            for _ in 0..reps {
                decoded = pwl::decode(&payload, 64, n);
            }
            decoded
        });
        decoded?;
        let (enc, dec) = (enc / reps as f64, dec / reps as f64);
        let per = |s: f64| s * 1e9 / values.len() as f64;
        println!("| {n} | {:.1} | {:.2} |", per(enc), per(dec));
    }
    Ok(())
}

/// Deterministic Gaussian values (Box-Muller over a xorshift generator).
fn gaussian(n: usize, scale: f64) -> Vec<f32> {
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    let mut uniform = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        ((s >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    (0..n)
        .map(|_| {
            let r = (-2.0 * uniform().ln()).sqrt();
            (r * (std::f64::consts::TAU * uniform()).cos() * scale) as f32
        })
        .collect()
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .ok_or("usage: thesis_sweep DIR [P [SECTIONS]]")?;
    let p: f64 = args.next().map_or(Ok(5e-4), |s| s.parse())?;
    let tensors = load(Path::new(&dir))?;
    let n: usize = tensors.iter().map(|t| t.values.len()).sum();
    println!("{} tensors, {n} values from {dir}", tensors.len());
    for t in tensors.iter().take(3) {
        println!("  e.g. {} {:?}", t.name, t.shape);
    }
    let sections = args
        .next()
        .unwrap_or_else(|| "p,pd,pm,ablations,matrix,speed".into());
    let want = |s: &str| sections.split(',').any(|x| x == s);
    if want("p") {
        sweep_p(&tensors)?;
    }
    if want("pd") {
        sweep_pd(&tensors, p)?;
    }
    if want("pm") {
        sweep_pm(&tensors, p)?;
    }
    if want("ablations") {
        ablations(&tensors, p)?;
    }
    if want("matrix") {
        matrix_table(&tensors, p)?;
    }
    if want("speed") {
        speed(&tensors, p)?;
    }
    Ok(())
}
