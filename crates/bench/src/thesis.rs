//! `pwlc bench thesis`: chapter 5 of the thesis measured on the pwl codec.
//!
//! 5.1 sweeps of `p`, `pd` and `pm`; 5.2 ablations; 5.3 the original against the compressed
//! classifier per model; 5.4 the matrix encodings COO, CSR, CER and CSER of the f32 weights and
//! of their 8- and 4-bit quantization, against dense storage and against pwl. Each
//! configuration codes the tensors the default policy codes lossily (float32, at least 2
//! dimensions and 1024 elements) through the full codec (exceptions included).

use std::path::{Path, PathBuf};

use bytes::Bytes;
use pwlc::codecs::matrix::{self, Matrix};
use pwlc::codecs::pwl::{self, Granularity, Linearizer, Options, Precision, RankCoding};
use pwlc::codecs::{Bound, DType, Method, TensorRef};
use pwlc::{CompressOptions, Policy, Tensor};
use rayon::prelude::*;

use crate::accuracy::{stem, Data, Evaluator, Measured};
use crate::machine::{today, versions};
use crate::measure::cpu_seconds_per_call;
use crate::{BenchError, Machine, MatrixRow, ModelRow, ScalingRow, SweepRow, ThesisFile};

/// Images evaluated per model by default (each of the ~23 distinct configurations per model
/// runs the network once on them).
pub const DEFAULT_LIMIT: usize = 100;
/// The tolerance of every sweep but the sweep of `p`.
pub const DEFAULT_P: f64 = 5e-4;

/// What `pwlc bench thesis` measures and where it writes.
#[derive(Debug, Clone)]
pub struct ThesisOptions {
    /// Model files (accuracy needs ONNX image classifiers with a known preprocessing).
    pub models: Vec<PathBuf>,
    /// Labelled ImageNet images, for top-1 agreement.
    pub images: Option<PathBuf>,
    /// Evaluate at most this many images per model.
    pub limit: usize,
    /// The tolerance of every sweep but the sweep of `p`.
    pub p: f64,
    /// Output directory: `thesis.json`.
    pub out: PathBuf,
    /// The command line, recorded in `thesis.json`.
    pub command: String,
    /// Also measure encode/decode time against row length (timed, so not deterministic).
    pub scaling: bool,
}

/// Runs chapter 5, writes `OUT/thesis.json` and returns it.
pub fn thesis(options: &ThesisOptions, log: &dyn Fn(&str)) -> Result<ThesisFile, BenchError> {
    let mut file = ThesisFile {
        date: today(),
        machine: Machine::detect(),
        versions: versions(),
        command: options.command.clone(),
        p: options.p,
        images: None,
        sweeps: Vec::new(),
        models: Vec::new(),
        matrix: Vec::new(),
        scaling: Vec::new(),
    };
    for model in &options.models {
        thesis_model(model, options, &mut file, log)?;
    }
    if options.scaling {
        log("row-length scaling");
        file.scaling = scaling(options.p)?;
    }
    file.write(&options.out.join("thesis.json"))?;
    Ok(file)
}

/// The tensors of one model that pwl codes, as f32 values.
struct Coded {
    name: String,
    shape: Vec<u64>,
    values: Vec<f32>,
}

impl Coded {
    fn rows(&self) -> usize {
        pwlc::codecs::rows_of(&self.shape).max(1)
    }
}

/// Every section of chapter 5 for one model.
fn thesis_model(
    model: &Path,
    options: &ThesisOptions,
    file: &mut ThesisFile,
    log: &dyn Fn(&str),
) -> Result<(), BenchError> {
    let name = stem(model);
    let tensors = coded_tensors(model)?;
    log(&format!("{name}: {} coded tensors", tensors.len()));
    let data = Data {
        images: options.images.as_deref(),
        tokens: None,
        limit: Some(options.limit),
    };
    let evaluator = Evaluator::for_model(model, data)?
        .map_err(|reason| log(&reason))
        .ok();
    let mut sweep = Sweep {
        model,
        tensors: &tensors,
        evaluator: evaluator.as_ref(),
        done: Vec::new(),
    };
    for (section, label, p, config) in configurations(options.p) {
        log(&format!("{name}: {section} {label}"));
        let result = sweep.measure(p, &config)?;
        file.sweeps.push(result.row(&name, section, &label));
    }
    let default = sweep.measure(options.p, &Options::default())?;
    if let Some(Measured::Images(image)) = &default.accuracy {
        file.images = Some(image.images);
    }
    file.models
        .push(model_row(model, options, default, evaluator.as_ref())?);
    log(&format!("{name}: matrix encodings"));
    file.matrix
        .extend(matrix_rows(&name, &tensors, default.bytes));
    Ok(())
}

/// Every (section, label, p, options) of 5.1 and 5.2.
fn configurations(p: f64) -> Vec<(&'static str, String, f64, Options)> {
    let d = Options::default;
    let mut out = Vec::new();
    for sweep_p in [1e-4, 2.5e-4, 5e-4, 1e-3, 2e-3, 5e-3] {
        out.push(("p", format!("p={sweep_p}"), sweep_p, d()));
    }
    for pd in [0.0, 0.01, 0.1, 0.3, 1.0] {
        out.push(("pd", format!("pd={pd}"), p, Options { pd, ..d() }));
    }
    for pm in [0.0, 0.1, 0.25, 0.4, 0.6] {
        out.push(("pm", format!("pm={pm}"), p, Options { pm, ..d() }));
    }
    let ablations = [
        (
            "default (optimal, pd, pm, f32, Huffman, packed ranks, rows)",
            d(),
        ),
        ("no parallel lines (pd=0)", Options { pd: 0.0, ..d() }),
        (
            "no Huffman",
            Options {
                huffman: false,
                ..d()
            },
        ),
        (
            "f16 slopes",
            Options {
                slope_precision: Precision::F16,
                ..d()
            },
        ),
        ("f32 segment starts (pm=0)", Options { pm: 0.0, ..d() }),
        (
            "layer granularity",
            Options {
                granularity: Granularity::Layer,
                ..d()
            },
        ),
        (
            "rows, or the layer where smaller (auto)",
            Options {
                granularity: Granularity::Auto,
                ..d()
            },
        ),
        (
            "greedy linearization",
            Options {
                linearizer: Linearizer::Greedy,
                ..d()
            },
        ),
        (
            "blocks of 256",
            Options {
                granularity: Granularity::Block(256),
                ..d()
            },
        ),
        (
            "coded permutation (~log2 n!)",
            Options {
                rank_coding: RankCoding::Permutation,
                ..d()
            },
        ),
    ];
    for (label, options) in ablations {
        out.push(("ablation", label.to_string(), p, options));
    }
    out
}

/// The float32 tensors the default policy codes lossily.
fn coded_tensors(model: &Path) -> Result<Vec<Coded>, BenchError> {
    let policy = Policy::default();
    let read = pwlc_models::read(model)?;
    Ok(read
        .tensors
        .iter()
        .filter(|t| t.dtype == DType::F32)
        .filter(|t| policy.decide(&t.name, t.dtype, &t.shape).is_lossy())
        .map(|t| Coded {
            name: t.name.clone(),
            shape: t.shape.clone(),
            values: t
                .data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
        })
        .collect())
}

/// One configuration coded over a model's tensors.
struct Measurement {
    p: f64,
    options: Options,
    values: usize,
    bytes: usize,
    max_abs_error: f64,
    sum_sq: f64,
    stats: pwl::Stats,
    accuracy: Option<Measured>,
}

impl Measurement {
    fn row(&self, model: &str, section: &str, label: &str) -> SweepRow {
        let n = self.values.max(1) as f64;
        SweepRow {
            model: model.to_string(),
            section: section.to_string(),
            label: label.to_string(),
            ratio: (self.values * 4) as f64 / self.bytes.max(1) as f64,
            bits_per_weight: self.bytes as f64 * 8.0 / n,
            max_abs_error: self.max_abs_error,
            rmse: (self.sum_sq / n).sqrt(),
            segments_per_weight: self.stats.segments as f64 / n,
            rank_bits: self.stats.rank_bytes as f64 * 8.0 / n,
            segment_bits: self.stats.segment_bytes as f64 * 8.0 / n,
            table_bits: self.stats.header_bytes as f64 * 8.0 / n,
            slopes: self.stats.slopes,
            literals: self.stats.literals,
            top1_agreement: match &self.accuracy {
                Some(Measured::Images(i)) => Some(i.compressed.top1_agreement),
                _ => None,
            },
        }
    }
}

/// The configurations measured so far for one model (the default appears in several sections
/// and is coded and evaluated once).
struct Sweep<'a> {
    model: &'a Path,
    tensors: &'a [Coded],
    evaluator: Option<&'a Evaluator>,
    done: Vec<Measurement>,
}

impl Sweep<'_> {
    fn measure(&mut self, p: f64, options: &Options) -> Result<&Measurement, BenchError> {
        let index = match self
            .done
            .iter()
            .position(|m| m.p == p && m.options == *options)
        {
            Some(i) => i,
            None => {
                let m = self.code(p, options)?;
                self.done.push(m);
                self.done.len() - 1
            }
        };
        Ok(&self.done[index])
    }

    /// Codes every tensor, checks the bound, and evaluates the decoded network.
    fn code(&self, p: f64, options: &Options) -> Result<Measurement, BenchError> {
        let model = stem(self.model);
        let coded = self
            .tensors
            .par_iter()
            .map(|t| code_tensor(&model, t, p, options))
            .collect::<Result<Vec<_>, _>>()?;
        let mut m = Measurement {
            p,
            options: options.clone(),
            values: 0,
            bytes: 0,
            max_abs_error: 0.0,
            sum_sq: 0.0,
            stats: pwl::Stats::default(),
            accuracy: None,
        };
        let mut decoded = Vec::with_capacity(coded.len());
        for (t, c) in self.tensors.iter().zip(coded) {
            m.values += t.values.len();
            m.bytes += c.bytes;
            m.max_abs_error = m.max_abs_error.max(c.max_abs_error);
            m.sum_sq += c.rmse * c.rmse * t.values.len() as f64;
            add_stats(&mut m.stats, &c.stats);
            decoded.push(c.tensor);
        }
        if let Some(evaluator) = self.evaluator {
            m.accuracy = Some(evaluator.compare(self.model, Some(&decoded))?);
        }
        Ok(m)
    }
}

/// One tensor through the pwl codec.
struct TensorResult {
    bytes: usize,
    max_abs_error: f64,
    rmse: f64,
    stats: pwl::Stats,
    tensor: Tensor,
}

/// Adds the counts of `b` to `a`.
fn add_stats(a: &mut pwl::Stats, b: &pwl::Stats) {
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

fn code_tensor(
    model: &str,
    t: &Coded,
    p: f64,
    options: &Options,
) -> Result<TensorResult, BenchError> {
    let codec_error = |source| BenchError::Codec {
        model: model.to_string(),
        tensor: t.name.clone(),
        source,
    };
    let data: Vec<u8> = t.values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let method = Method::Pwl {
        bound: Bound::Abs(p),
        options: options.clone(),
    };
    let input = TensorRef {
        dtype: DType::F32,
        shape: &t.shape,
        data: &data,
    };
    let encoded = pwlc::codecs::encode(input, &method).map_err(codec_error)?;
    let decoded = pwlc::codecs::decode(encoded.codec, DType::F32, &t.shape, &encoded.payload)
        .map_err(codec_error)?;
    check_bound(model, t, &decoded, p)?;
    let rows = t.rows();
    let bounds = Bound::Abs(p).per_row(&t.values, rows);
    let (_, stats) = pwl::encode_with_stats(&t.values, rows, &bounds, options);
    Ok(TensorResult {
        bytes: encoded.payload.len(),
        max_abs_error: encoded.max_abs_error,
        rmse: encoded.rmse,
        stats,
        tensor: Tensor {
            name: t.name.clone(),
            dtype: DType::F32,
            shape: t.shape.clone(),
            data: Bytes::from(decoded),
        },
    })
}

/// Errors unless every decoded value is within `p` (as f32, the codec's row bound) of the
/// original.
fn check_bound(model: &str, t: &Coded, decoded: &[u8], p: f64) -> Result<(), BenchError> {
    let missed = decoded.chunks_exact(4).zip(&t.values).any(|(d, &v)| {
        (f32::from_le_bytes([d[0], d[1], d[2], d[3]]) as f64 - v as f64).abs() > p as f32 as f64
    });
    if missed {
        return Err(BenchError::Other(format!(
            "{model}: tensor '{}': decoded values miss the bound {p}",
            t.name
        )));
    }
    Ok(())
}

/// 5.3: accuracy of the original and of the default configuration, and the whole-file ratio.
fn model_row(
    model: &Path,
    options: &ThesisOptions,
    default: &Measurement,
    evaluator: Option<&Evaluator>,
) -> Result<ModelRow, BenchError> {
    let container = options
        .out
        .join(format!("work/{}.thesis.pwlc", stem(model)));
    if let Some(dir) = container.parent() {
        std::fs::create_dir_all(dir).map_err(|e| BenchError::io(dir, e))?;
    }
    let compress = CompressOptions {
        method: Method::Pwl {
            bound: Bound::Abs(options.p),
            options: Options::default(),
        },
        policy: Policy::default(),
        bounds: Vec::new(),
        force: true,
    };
    let report = pwlc::compress(model, &container, &compress, &|_, _| {})?;
    let image = match &default.accuracy {
        Some(Measured::Images(image)) => Some(*image),
        _ => None,
    };
    Ok(ModelRow {
        model: stem(model),
        p: options.p,
        original: evaluator.and_then(Evaluator::original),
        compressed: image.map(|i| i.compressed.accuracy),
        top1_agreement: image.map(|i| i.compressed.top1_agreement),
        ratio_coded: (default.values * 4) as f64 / default.bytes.max(1) as f64,
        ratio_file: report.totals.ratio,
    })
}

/// 5.4: every matrix encoding of the f32 weights and of their 8- and 4-bit quantization.
fn matrix_rows(model: &str, tensors: &[Coded], pwl_bytes: usize) -> Vec<MatrixRow> {
    let values: usize = tensors.iter().map(|t| t.values.len()).sum();
    let mut rows = Vec::new();
    for (input, levels, dense_bits) in [("f32", 0, 32), ("int8", 127, 8), ("int4", 7, 4)] {
        for format in matrix::Format::ALL {
            let bytes: usize = tensors
                .iter()
                .map(|t| encoded_size(t, levels, format))
                .sum();
            rows.push(MatrixRow {
                model: model.to_string(),
                input: input.to_string(),
                encoding: format.name().to_string(),
                bytes: bytes as u64,
                dense_bytes: (values * dense_bits / 8) as u64,
                f32_bytes: (values * 4) as u64,
                pwl_bytes: pwl_bytes as u64,
            });
        }
    }
    rows
}

/// Bytes of one tensor (as a rows × cols matrix) in `format`: the f32 values when `levels` is
/// 0, else their symmetric uniform quantization `round(w / s)` with `s = max|w| / levels`.
fn encoded_size(t: &Coded, levels: i32, format: matrix::Format) -> usize {
    let rows = t.rows();
    let cols = t.values.len() / rows;
    if levels == 0 {
        return Matrix::new(rows, cols, t.values.clone()).map_or(0, |m| matrix::size(&m, format));
    }
    let max = t.values.iter().fold(0f32, |m, v| m.max(v.abs()));
    let scale = if max > 0.0 { max / levels as f32 } else { 1.0 };
    let codes = t
        .values
        .iter()
        .map(|&v| ((v / scale).round() as i32).clamp(-levels, levels))
        .collect();
    Matrix::new(rows, cols, codes).map_or(0, |m| matrix::size(&m, format))
}

/// Encode and decode time per value of the core codec on 64 Gaussian rows of length `n`
/// (one thread, CPU time of the thread).
fn scaling(p: f64) -> Result<Vec<ScalingRow>, BenchError> {
    let mut out = Vec::new();
    for n in [64usize, 256, 1024, 4096, 16384, 65536] {
        let values = gaussian(64 * n, 0.02);
        let bounds = vec![p as f32; 64];
        let options = Options::default();
        let (payload, encode) = cpu_seconds_per_call(MIN_CPU_SECONDS, || {
            pwl::encode(&values, 64, &bounds, &options)
        });
        let (decoded, decode) =
            cpu_seconds_per_call(MIN_CPU_SECONDS, || pwl::decode(&payload, 64, n));
        decoded.map_err(|source| BenchError::Codec {
            model: "gaussian".to_string(),
            tensor: format!("64x{n}"),
            source,
        })?;
        let per_value = |s: f64| s * 1e9 / values.len() as f64;
        out.push(ScalingRow {
            n,
            encode_ns_per_value: per_value(encode),
            decode_ns_per_value: per_value(decode),
        });
    }
    Ok(out)
}

/// CPU time each figure of the row-length table is measured over.
const MIN_CPU_SECONDS: f64 = 0.25;

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
