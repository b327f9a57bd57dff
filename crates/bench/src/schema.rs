//! The JSON files the benchmarks write and the report reads.

use std::collections::BTreeMap;
use std::path::Path;

use pwlc_eval::{Accuracy, ClassifierComparison, EmbeddingComparison};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::{BenchError, Machine};

/// `bench.json`: every operating point of every model, pwlc's and the anchors'.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchFile {
    /// UTC date of the run, `YYYY-MM-DD`.
    pub date: String,
    pub machine: Machine,
    /// Version of pwlc and of the anchors' packages (`anchors/NAME`).
    pub versions: BTreeMap<String, String>,
    /// Timings are medians of this many runs.
    pub runs: usize,
    /// At most this many images were evaluated per image model.
    pub image_limit: Option<usize>,
    /// The command line that wrote the file.
    pub command: String,
    /// Wall time of the whole run, in seconds.
    pub wall_seconds: f64,
    /// How speeds and peak memory were measured.
    pub method_notes: Vec<String>,
    pub records: Vec<Record>,
}

/// One operating point of one model: a method at one parameter.
///
/// The fields are those of the anchors' records (`bench/anchors/README.md`); fields this crate
/// does not know are kept in `extra` so that anchor records survive a round trip.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The model's file stem, e.g. `mobilenet_v2`.
    pub model: String,
    /// `quant`, `pwl`, `lossless`, or an anchor method (`nncodec`, `sz3`, `oracle`, ...).
    pub method: String,
    /// The method's parameter, e.g. `abs=0.0005`.
    pub param: String,
    /// `pwlc` for this crate's measurements, `anchor` for merged anchor records.
    #[serde(default = "anchor_source")]
    pub source: String,
    /// True when the method may change weights.
    #[serde(default)]
    pub lossy: bool,
    /// The absolute bound asked for, when the method takes one.
    #[serde(default)]
    pub error_bound: Option<f64>,
    /// Stored bits per weight of the coded set (the tensors the policy codes lossily).
    #[serde(default)]
    pub bits_per_weight: Option<f64>,
    /// Model file size over compressed file size.
    pub ratio_file: f64,
    /// Largest |original - decoded| over the coded weights.
    #[serde(default)]
    pub max_abs_error: Option<f64>,
    /// Root mean square error over the coded weights.
    #[serde(default)]
    pub rmse: Option<f64>,
    /// Compress speed with one thread, MB (10^6 bytes) of input per second.
    #[serde(default)]
    pub encode_mb_s: Option<f64>,
    /// Decompress speed with one thread, MB of output per second.
    #[serde(default)]
    pub decode_mb_s: Option<f64>,
    /// Compress speed with all threads.
    #[serde(default)]
    pub encode_mb_s_all_threads: Option<f64>,
    /// Decompress speed with all threads.
    #[serde(default)]
    pub decode_mb_s_all_threads: Option<f64>,
    /// Peak resident memory of `pwlc compress`, MB.
    #[serde(default)]
    pub peak_rss_compress_mb: Option<f64>,
    /// Peak resident memory of `pwlc decompress`, MB.
    #[serde(default)]
    pub peak_rss_decompress_mb: Option<f64>,
    /// Accuracy of the decoded classifier, for image models.
    #[serde(default)]
    pub image: Option<ImageAccuracy>,
    /// Agreement of the decoded embedding network, for token models.
    #[serde(default)]
    pub tokens: Option<TokenAccuracy>,
    /// Fields of anchor records this crate does not read.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

fn anchor_source() -> String {
    "anchor".to_string()
}

impl Record {
    /// A record with the identifying fields set and no measurement.
    pub fn new(model: &str, method: &str, param: &str) -> Record {
        Record {
            model: model.to_string(),
            method: method.to_string(),
            param: param.to_string(),
            source: "pwlc".to_string(),
            lossy: false,
            error_bound: None,
            bits_per_weight: None,
            ratio_file: 0.0,
            max_abs_error: None,
            rmse: None,
            encode_mb_s: None,
            decode_mb_s: None,
            encode_mb_s_all_threads: None,
            decode_mb_s_all_threads: None,
            peak_rss_compress_mb: None,
            peak_rss_decompress_mb: None,
            image: None,
            tokens: None,
            extra: BTreeMap::new(),
        }
    }

    /// The agreement that decides "equal accuracy": top-1 agreement for classifiers,
    /// nearest-neighbour agreement for embedding networks.
    pub fn agreement(&self) -> Option<f64> {
        self.image
            .map(|i| i.compressed.top1_agreement)
            .or(self.tokens.map(|t| t.compressed.neighbour_agreement))
    }

    /// `method param`, as tables and legends show it.
    pub fn label(&self) -> String {
        format!("{} {}", self.method, self.param)
    }
}

/// A classifier's accuracy on the evaluated images, original and decoded.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ImageAccuracy {
    pub images: usize,
    pub original: Accuracy,
    pub compressed: ClassifierComparison,
}

/// An embedding network's agreement with the original on the evaluated sentences.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TokenAccuracy {
    pub sentences: usize,
    pub compressed: EmbeddingComparison,
}

/// `thesis.json`: chapter 5 of the thesis measured on the pwl codec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThesisFile {
    pub date: String,
    pub machine: Machine,
    pub versions: BTreeMap<String, String>,
    pub command: String,
    /// The tolerance of every sweep but the sweep of `p`.
    pub p: f64,
    /// Images evaluated per model for top-1 agreement (none without `--images`).
    pub images: Option<usize>,
    /// 5.1 and 5.2: one row per model, section and configuration.
    pub sweeps: Vec<SweepRow>,
    /// 5.3: original against compressed, per model.
    pub models: Vec<ModelRow>,
    /// 5.4: matrix encodings.
    pub matrix: Vec<MatrixRow>,
    /// Encode and decode time per value against the row length (one thread, CPU time).
    pub scaling: Vec<ScalingRow>,
}

/// One configuration of the pwl codec on the coded tensors of one model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepRow {
    pub model: String,
    /// `p`, `pd`, `pm` or `ablation`.
    pub section: String,
    /// The configuration, e.g. `pd=0.1` or `no Huffman`.
    pub label: String,
    /// f32 bytes of the coded tensors over their payload bytes.
    pub ratio: f64,
    pub bits_per_weight: f64,
    pub max_abs_error: f64,
    pub rmse: f64,
    /// Line segments per weight.
    pub segments_per_weight: f64,
    /// Bits per weight of the rank stream (the dense matrix).
    #[serde(default)]
    pub rank_bits: f64,
    /// Bits per weight of the segment stream.
    #[serde(default)]
    pub segment_bits: f64,
    /// Bits per weight of everything else (slope table, codes, grid steps, headers).
    #[serde(default)]
    pub table_bits: f64,
    /// Slope-table entries summed over the tensors.
    #[serde(default)]
    pub slopes: usize,
    /// Segments whose first value is stored as a plain f32.
    #[serde(default)]
    pub literals: usize,
    /// Top-1 agreement of the decoded classifier with the original, when evaluated.
    pub top1_agreement: Option<f64>,
}

/// The original and the pwl-compressed (default options) classifier of one model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelRow {
    pub model: String,
    /// The tolerance the model was compressed at.
    pub p: f64,
    pub original: Option<Accuracy>,
    pub compressed: Option<Accuracy>,
    pub top1_agreement: Option<f64>,
    /// Coded-set ratio (f32 bytes over payload bytes).
    pub ratio_coded: f64,
    /// Whole-file ratio of `pwlc compress --method pwl --p P`.
    pub ratio_file: f64,
}

/// One matrix encoding of one model's coded tensors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MatrixRow {
    pub model: String,
    /// What was encoded: `f32`, `int8` or `int4` (uniform symmetric quantization per tensor).
    pub input: String,
    /// `COO`, `CSR`, `CER` or `CSER`.
    pub encoding: String,
    pub bytes: u64,
    /// Bytes of the same input stored densely (4, 1 or 0.5 bytes per weight).
    pub dense_bytes: u64,
    /// Bytes of the f32 weights stored as f32.
    pub f32_bytes: u64,
    /// Payload bytes of pwl (default options) on the same weights.
    pub pwl_bytes: u64,
}

/// Cost per value of the pwl core codec for rows of length `n`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScalingRow {
    pub n: usize,
    pub encode_ns_per_value: f64,
    pub decode_ns_per_value: f64,
}

/// Reads a JSON file.
pub(crate) fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, BenchError> {
    let text = std::fs::read_to_string(path).map_err(|e| BenchError::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| BenchError::json(path, e))
}

/// Writes a value as pretty JSON, creating the parent directory.
pub(crate) fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), BenchError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| BenchError::io(dir, e))?;
    }
    let text = serde_json::to_string_pretty(value).map_err(|e| BenchError::json(path, e))?;
    std::fs::write(path, text + "\n").map_err(|e| BenchError::io(path, e))
}

impl BenchFile {
    /// Reads a `bench.json`.
    pub fn read(path: &Path) -> Result<BenchFile, BenchError> {
        read_json(path)
    }

    /// Writes a `bench.json`.
    pub fn write(&self, path: &Path) -> Result<(), BenchError> {
        write_json(path, self)
    }
}

impl ThesisFile {
    /// Reads a `thesis.json`.
    pub fn read(path: &Path) -> Result<ThesisFile, BenchError> {
        read_json(path)
    }

    /// Writes a `thesis.json`.
    pub fn write(&self, path: &Path) -> Result<(), BenchError> {
        write_json(path, self)
    }
}
