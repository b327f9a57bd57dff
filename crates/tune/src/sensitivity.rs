//! Sensitivity probes: how much the output moves when one tensor alone is quantized.

use std::path::Path;

use pwlc_eval::Network;

use crate::data::Baseline;
use crate::search::quantized;
use crate::{Data, Event, LossyTensor, Options, TuneError};

/// The result of probing one tensor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Probe {
    /// Output distortion per squared bound (0 when the probe moved nothing).
    pub sensitivity: f64,
}

/// Probes every tensor of `lossy` in turn on the first `options.probe_items` items of
/// `calibration`: quantizes it alone at `options.probe_fraction` of its RMS, runs the network
/// and divides the distortion by the squared bound.
pub(crate) fn probe(
    model: &Path,
    original: &Network,
    lossy: &[LossyTensor],
    calibration: &Data,
    options: &Options,
    progress: &mut dyn FnMut(Event),
) -> Result<Vec<Probe>, TuneError> {
    let probe_data = calibration.first(options.probe_items.max(1));
    let baseline = Baseline::new(original, &probe_data)?;
    baseline.check_target(options.target)?;
    let mut probes = Vec::with_capacity(lossy.len());
    for (done, tensor) in lossy.iter().enumerate() {
        let bound = options.probe_fraction * tensor.rms;
        let (variant, _) = quantized(tensor, bound, options)?;
        let network = Network::from_onnx(model, Some(std::slice::from_ref(&variant)))?;
        let distortion = baseline.measure(&network)?.distortion();
        probes.push(Probe {
            sensitivity: if bound > 0.0 {
                distortion.max(0.0) / (bound * bound)
            } else {
                0.0
            },
        });
        progress(Event::Probe {
            done: done + 1,
            total: lossy.len(),
            tensor: &tensor.tensor.name,
        });
    }
    Ok(probes)
}
