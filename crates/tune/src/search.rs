//! The search for the largest bound scale that meets the target.

use std::path::Path;
use std::time::Instant;

use pwlc::codecs::TensorRef;
use pwlc::Tensor;
use pwlc_eval::Network;
use rayon::prelude::*;
use serde::Serialize;

use crate::data::Baseline;
use crate::sensitivity::Probe;
use crate::{Event, LossyTensor, Options, Quality, TuneError};

/// One measured point of the search.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trial {
    /// The scale `λ` of the bounds `e = λ · sqrt(n / k)`.
    pub scale: f64,
    /// Bytes of the payloads of all lossy-coded tensors at these bounds.
    pub coded_bytes: u64,
    /// Bits per lossy-coded weight.
    pub bits_per_weight: f64,
    /// The variant against the original on the calibration data.
    pub quality: Quality,
    /// Whether `quality` meets the target.
    pub meets_target: bool,
}

/// Factor by which the scale grows or shrinks while bracketing the target.
const BRACKET_FACTOR: f64 = 2.0;
/// Most bracketing steps in either direction (a factor of 2^10 in scale).
const MAX_BRACKET_STEPS: usize = 10;
/// The uniform bound the search starts from (converted to an equal predicted distortion).
const START_BOUND: f64 = 5e-4;

/// The bound of `tensor` at `scale`: `scale · sqrt(n / k)`, at most `options.max_fraction` of
/// its RMS (where a tensor's probe moved nothing, the cap).
pub(crate) fn bound_at(scale: f64, tensor: &LossyTensor, probe: &Probe, options: &Options) -> f64 {
    let cap = options.max_fraction * tensor.rms;
    if probe.sensitivity <= 0.0 {
        return cap;
    }
    let elements = tensor.elements as f64;
    (scale * (elements / probe.sensitivity).sqrt()).min(cap)
}

/// Runs the bracketing and the bisection; returns every trial in order.
pub(crate) fn run(
    model: &Path,
    baseline: &Baseline,
    lossy: &[LossyTensor],
    probes: &[Probe],
    options: &Options,
    start: Instant,
    progress: &mut dyn FnMut(Event),
) -> Result<Vec<Trial>, TuneError> {
    let mut trials = Vec::new();
    let mut measure = |scale: f64| -> Result<bool, TuneError> {
        let trial = measure_at(model, baseline, lossy, probes, options, scale)?;
        progress(Event::Trial(&trial));
        let meets = trial.meets_target;
        trials.push(trial);
        Ok(meets)
    };
    let initial = initial_scale(lossy, probes);
    let (mut low, mut high) = if measure(initial)? {
        (initial, None)
    } else {
        let mut high = initial;
        let mut low = None;
        for _ in 0..MAX_BRACKET_STEPS {
            let scale = high / BRACKET_FACTOR;
            if measure(scale)? {
                low = Some(scale);
                break;
            }
            high = scale;
        }
        let Some(low) = low else {
            return Ok(trials);
        };
        (low, Some(high))
    };
    if high.is_none() {
        for _ in 0..MAX_BRACKET_STEPS {
            let scale = low * BRACKET_FACTOR;
            if !measure(scale)? {
                high = Some(scale);
                break;
            }
            low = scale;
        }
    }
    let Some(mut high) = high else {
        return Ok(trials);
    };
    for _ in 0..options.search_steps {
        if options
            .time_budget
            .is_some_and(|budget| start.elapsed() > budget)
        {
            break;
        }
        let middle = (low * high).sqrt();
        if measure(middle)? {
            low = middle;
        } else {
            high = middle;
        }
    }
    Ok(trials)
}

/// The trial that met the target with the fewest bytes.
pub(crate) fn best(trials: &[Trial]) -> Option<&Trial> {
    trials
        .iter()
        .filter(|t| t.meets_target)
        .min_by_key(|t| t.coded_bytes)
}

/// The scale whose predicted distortion equals that of one uniform bound [`START_BOUND`] on
/// every tensor: `Σ k e² = λ² Σ n` at `e = START_BOUND`.
fn initial_scale(lossy: &[LossyTensor], probes: &[Probe]) -> f64 {
    let elements: f64 = lossy.iter().map(|t| t.elements as f64).sum();
    let sensitivity: f64 = probes.iter().map(|p| p.sensitivity).sum();
    if sensitivity > 0.0 && elements > 0.0 {
        START_BOUND * (sensitivity / elements).sqrt()
    } else {
        START_BOUND
    }
}

/// Quantizes every lossy tensor at its bound for `scale`, runs the variant and measures it.
fn measure_at(
    model: &Path,
    baseline: &Baseline,
    lossy: &[LossyTensor],
    probes: &[Probe],
    options: &Options,
    scale: f64,
) -> Result<Trial, TuneError> {
    let coded = lossy
        .par_iter()
        .zip(probes)
        .map(|(tensor, probe)| quantized(tensor, bound_at(scale, tensor, probe, options), options))
        .collect::<Result<Vec<_>, _>>()?;
    let coded_bytes: u64 = coded.iter().map(|(_, bytes)| *bytes).sum();
    let variant: Vec<Tensor> = coded.into_iter().map(|(tensor, _)| tensor).collect();
    let network = Network::from_onnx(model, Some(&variant))?;
    let quality = baseline.measure(&network)?;
    let weights: usize = lossy.iter().map(|t| t.elements).sum();
    Ok(Trial {
        scale,
        coded_bytes,
        bits_per_weight: coded_bytes as f64 * 8.0 / weights.max(1) as f64,
        quality,
        meets_target: quality.meets(options.target),
    })
}

/// `tensor` coded with the tuned codec at `bound` and decoded again, with the payload's size in bytes.
pub(crate) fn quantized(
    tensor: &LossyTensor,
    bound: f64,
    options: &Options,
) -> Result<(Tensor, u64), TuneError> {
    let t = &tensor.tensor;
    let codec_error = |source| TuneError::Codec {
        tensor: t.name.clone(),
        source,
    };
    let method = options.codec.method(bound);
    let view = TensorRef {
        dtype: t.dtype,
        shape: &t.shape,
        data: &t.data,
    };
    let encoded = pwlc::codecs::encode(view, &method).map_err(codec_error)?;
    let data = pwlc::codecs::decode(encoded.codec, t.dtype, &t.shape, &encoded.payload)
        .map_err(codec_error)?;
    Ok((
        Tensor {
            name: t.name.clone(),
            dtype: t.dtype,
            shape: t.shape.clone(),
            data: data.into(),
        },
        encoded.payload.len() as u64,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Target;
    use pwlc::models::DType;
    use pwlc::Policy;
    use pwlc_eval::{Accuracy, ClassifierComparison};

    fn tensor(elements: usize, value: f32) -> LossyTensor {
        let values = vec![value; elements];
        let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        LossyTensor {
            tensor: Tensor {
                name: "w".to_string(),
                dtype: DType::F32,
                shape: vec![elements as u64],
                data: data.into(),
            },
            rms: f64::from(value.abs()),
            elements,
        }
    }

    fn options() -> Options {
        Options::new(Target::MinAgreement(0.99), Policy::new(0, None).unwrap())
    }

    fn trial(coded_bytes: u64, meets_target: bool) -> Trial {
        Trial {
            scale: 1.0,
            coded_bytes,
            bits_per_weight: 0.0,
            quality: Quality::Classifier(ClassifierComparison {
                accuracy: Accuracy {
                    top1: 1.0,
                    top5: 1.0,
                },
                top1_agreement: 1.0,
                mean_kl: 0.0,
                estimated_agreement: Some(1.0),
            }),
            meets_target,
        }
    }

    #[test]
    fn bounds_follow_the_square_root_of_weights_per_sensitivity() {
        let options = options();
        let big = tensor(400, 1.0);
        let small = tensor(100, 1.0);
        let probe = |sensitivity| Probe { sensitivity };
        let a = bound_at(1e-3, &big, &probe(4.0), &options);
        let b = bound_at(1e-3, &small, &probe(4.0), &options);
        let c = bound_at(1e-3, &small, &probe(16.0), &options);
        assert!((a - 1e-3 * 10.0).abs() < 1e-12, "{a}");
        assert!((b / c - 2.0).abs() < 1e-12, "{b} {c}");
        assert!((a / b - 2.0).abs() < 1e-12, "{a} {b}");
    }

    #[test]
    fn bounds_are_capped_at_a_fraction_of_the_rms() {
        let options = options();
        let t = tensor(100, 0.2);
        let cap = options.max_fraction * t.rms;
        assert_eq!(
            bound_at(1e6, &t, &Probe { sensitivity: 1.0 }, &options),
            cap
        );
        assert_eq!(
            bound_at(1e-9, &t, &Probe { sensitivity: 0.0 }, &options),
            cap
        );
    }

    #[test]
    fn the_start_matches_the_distortion_of_one_uniform_bound() {
        let lossy = [tensor(100, 1.0), tensor(300, 1.0)];
        let probes = [Probe { sensitivity: 2.0 }, Probe { sensitivity: 6.0 }];
        let scale = initial_scale(&lossy, &probes);
        let predicted: f64 = lossy
            .iter()
            .zip(&probes)
            .map(|(t, p)| {
                let e = scale * (t.elements as f64 / p.sensitivity).sqrt();
                p.sensitivity * e * e
            })
            .sum();
        let uniform = (2.0 + 6.0) * START_BOUND * START_BOUND;
        assert!((predicted / uniform - 1.0).abs() < 1e-12);
    }

    #[test]
    fn the_best_trial_is_the_smallest_that_meets_the_target() {
        let trials = [
            trial(100, false),
            trial(300, true),
            trial(200, true),
            trial(50, false),
        ];
        assert_eq!(best(&trials).unwrap().coded_bytes, 200);
        assert!(best(&[trial(10, false)]).is_none());
    }
}
