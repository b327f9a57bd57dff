//! Per-tensor error bounds that keep a network's accuracy (`pwlc tune`).
//!
//! One bound for every tensor wastes bits: how much a weight's error moves the output differs by
//! orders of magnitude between tensors (depthwise convolutions and the first layer are fragile,
//! the classifier is not). [`tune`] allocates bounds in two phases, both on calibration data:
//!
//! 1. **Probes.** Each lossy-coded tensor alone is quantized at a small bound `e0` (a fraction of
//!    its RMS) and the network's output distortion `D` is measured on a few items (mean KL
//!    divergence of the softmax for classifiers, `1 − cosine` for embedding networks). For small
//!    errors the distortion grows as `e²`, so the tensor's sensitivity is `k = D / e0²`.
//! 2. **Allocation and search.** With `n` weights coded at bound `e` costing about
//!    `n · (h − log2 e)` bits and adding `k · e²` to the distortion, the bounds that minimise the
//!    total size for a given total distortion are `e = λ · sqrt(n / k)` (a Lagrange multiplier
//!    argument), capped at a fraction of the tensor's RMS. A geometric bisection on `λ` finds the
//!    largest scale whose real quantized network still meets the target (top-1 agreement or
//!    cosine similarity with the original) on the whole calibration set.
//!
//! Everything is deterministic: the same model, data and options give the same bounds. The
//! result must be checked on data the search has not seen; `pwlc tune` splits its images in two
//! for that (see [`pwlc_eval::ImageSet::split_alternating`]).

mod data;
mod error;
mod search;
mod sensitivity;

use std::path::Path;
use std::time::{Duration, Instant};

use pwlc::codecs::{pwl, quant, Bound, Method};
use pwlc::{Policy, Tensor};
use pwlc_eval::Network;
use serde::Serialize;

pub use data::{Data, Quality, Target};
pub use error::TuneError;
pub use search::Trial;

/// How [`tune`] searches.
#[derive(Debug, Clone)]
pub struct Options {
    /// What the tuned network must keep on the calibration data.
    pub target: Target,
    /// The lossy codec the bounds are tuned for.
    pub codec: Codec,
    /// Which tensors are coded lossily (the others are not tuned).
    pub policy: Policy,
    /// Number of calibration items the sensitivity probes run on.
    pub probe_items: usize,
    /// Probe bound of each tensor, as a fraction of its RMS.
    pub probe_fraction: f64,
    /// Largest bound of any tensor, as a fraction of its RMS.
    pub max_fraction: f64,
    /// Bisection steps after the target has been bracketed.
    pub search_steps: usize,
    /// Wall time after which the bisection stops early (the probes and the bracketing always
    /// run to the end).
    pub time_budget: Option<Duration>,
}

impl Options {
    /// Defaults for `target`: the quant codec, 32 probe items, probes at 5% of each tensor's RMS, bounds capped at
    /// 50% of it, 6 bisection steps, no time budget.
    pub fn new(target: Target, policy: Policy) -> Options {
        Options {
            target,
            codec: Codec::Quant(quant::Options::default()),
            policy,
            probe_items: 32,
            probe_fraction: 0.05,
            max_fraction: 0.5,
            search_steps: 6,
            time_budget: None,
        }
    }
}

/// A lossy codec with an absolute bound per tensor.
#[derive(Debug, Clone)]
pub enum Codec {
    /// Error-bounded quantization (`--method quant`).
    Quant(quant::Options),
    /// The thesis' piecewise linearization (`--method pwl`).
    Pwl(pwl::Options),
}

impl Codec {
    /// The method that codes a tensor with this codec at absolute bound `bound`.
    pub fn method(&self, bound: f64) -> Method {
        match self {
            Codec::Quant(options) => Method::Quant {
                bound: Bound::Abs(bound),
                options: options.clone(),
            },
            Codec::Pwl(options) => Method::Pwl {
                bound: Bound::Abs(bound),
                options: options.clone(),
            },
        }
    }
}

/// The tuned bound of one tensor and what it was derived from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TensorBound {
    /// The tensor's name in the model file.
    pub name: String,
    /// Number of weights.
    pub elements: u64,
    /// Root mean square of the weights.
    pub rms: f64,
    /// Output distortion per squared bound when this tensor alone is quantized.
    pub sensitivity: f64,
    /// The absolute error bound chosen for every weight of the tensor.
    pub bound: f64,
}

/// What [`tune`] found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Tuned {
    /// One bound per lossy-coded tensor, in model order.
    pub tensors: Vec<TensorBound>,
    /// Number of calibration items the search measured on.
    pub calibration_items: usize,
    /// The chosen trial: the largest scale that met the target.
    pub chosen: Trial,
    /// Every trial of the search, in order.
    pub trials: Vec<Trial>,
    /// Wall time of the whole search, in seconds.
    pub seconds: f64,
}

impl Tuned {
    /// The bounds in the form [`pwlc::CompressOptions::bounds`] takes.
    pub fn bounds(&self) -> Vec<(String, Bound)> {
        self.tensors
            .iter()
            .map(|t| (t.name.clone(), Bound::Abs(t.bound)))
            .collect()
    }
}

/// Progress of [`tune`], for display.
#[derive(Debug, Clone)]
pub enum Event<'a> {
    /// The original network has been run on the calibration data.
    Baseline { items: usize },
    /// `done` of `total` tensors have been probed; the last was `tensor`.
    Probe {
        done: usize,
        total: usize,
        tensor: &'a str,
    },
    /// A trial of the search has been measured.
    Trial(&'a Trial),
}

/// Finds per-tensor bounds for the ONNX model at `model` that keep `options.target` on
/// `calibration` with the smallest quant-coded size the search reaches.
pub fn tune(
    model: &Path,
    calibration: &Data,
    options: &Options,
    progress: &mut dyn FnMut(Event),
) -> Result<Tuned, TuneError> {
    let start = Instant::now();
    let lossy = lossy_tensors(model, &options.policy)?;
    let original = Network::from_onnx(model, None)?;
    let probes = sensitivity::probe(model, &original, &lossy, calibration, options, progress)?;
    let baseline = data::Baseline::new(&original, calibration)?;
    progress(Event::Baseline {
        items: calibration.len(),
    });
    let trials = search::run(model, &baseline, &lossy, &probes, options, start, progress)?;
    let chosen = search::best(&trials)
        .cloned()
        .ok_or_else(|| TuneError::Infeasible {
            target: options.target,
            closest: trials.last().map(|t| t.quality),
        })?;
    let tensors = lossy
        .iter()
        .zip(&probes)
        .map(|(tensor, probe)| TensorBound {
            name: tensor.tensor.name.clone(),
            elements: tensor.elements as u64,
            rms: tensor.rms,
            sensitivity: probe.sensitivity,
            bound: search::bound_at(chosen.scale, tensor, probe, options),
        })
        .collect();
    Ok(Tuned {
        tensors,
        calibration_items: calibration.len(),
        chosen,
        trials,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// A tensor the policy codes lossily, with its size and the root mean square of its values.
pub(crate) struct LossyTensor {
    pub tensor: Tensor,
    pub elements: usize,
    pub rms: f64,
}

/// The tensors of `model` that `policy` codes lossily, in model order.
fn lossy_tensors(model: &Path, policy: &Policy) -> Result<Vec<LossyTensor>, TuneError> {
    let file = pwlc::models::read(model)?;
    let mut lossy = Vec::new();
    for tensor in file.tensors {
        if !policy
            .decide(&tensor.name, tensor.dtype, &tensor.shape)
            .is_lossy()
        {
            continue;
        }
        let values = pwlc::codecs::dtype::to_f32(tensor.dtype, &tensor.data).map_err(|source| {
            TuneError::Codec {
                tensor: tensor.name.clone(),
                source,
            }
        })?;
        let squares: f64 = values.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
        let rms = (squares / values.len().max(1) as f64).sqrt();
        lossy.push(LossyTensor {
            tensor,
            elements: values.len(),
            rms,
        });
    }
    if lossy.is_empty() {
        return Err(TuneError::NothingToTune(model.to_path_buf()));
    }
    Ok(lossy)
}
