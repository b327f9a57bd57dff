//! Accuracy of decoded networks against the original, on images or on tokens.

use std::path::Path;

use pwlc_eval::{Accuracy, ImageBaseline, ImageSet, Network, Preprocess, TokenBaseline, TokenSet};
use pwlc_models::Tensor;

use crate::{BenchError, ImageAccuracy, TokenAccuracy};

/// The original network's outputs on the evaluation data, computed once per model.
pub(crate) enum Evaluator {
    Images {
        baseline: ImageBaseline,
        images: ImageSet,
    },
    Tokens {
        baseline: TokenBaseline,
        tokens: TokenSet,
    },
}

/// Accuracy of one decoded network.
pub(crate) enum Measured {
    Images(ImageAccuracy),
    Tokens(TokenAccuracy),
}

/// Where the evaluation data is.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Data<'a> {
    pub images: Option<&'a Path>,
    pub tokens: Option<&'a Path>,
    /// Evaluate at most this many images (or sentences).
    pub limit: Option<usize>,
}

impl Evaluator {
    /// The evaluator of `model`: on images when the model's file stem names a known
    /// preprocessing and images are given, on tokens when tokens are given and the network takes
    /// `input_ids`; `None` (with the reason) otherwise.
    pub(crate) fn for_model(
        model: &Path,
        data: Data,
    ) -> Result<Result<Evaluator, String>, BenchError> {
        let name = stem(model);
        let preprocess = Preprocess::for_model(&name);
        if let (Some(preprocess), Some(dir)) = (preprocess, data.images) {
            let images = ImageSet::load(dir, data.limit, &preprocess)
                .map_err(|e| BenchError::eval(&name, e))?;
            let network =
                Network::from_onnx(model, None).map_err(|e| BenchError::eval(&name, e))?;
            let baseline = ImageBaseline::new(&network, &images, |_, _| {})
                .map_err(|e| BenchError::eval(&name, e))?;
            return Ok(Ok(Evaluator::Images { baseline, images }));
        }
        let Some(path) = data.tokens else {
            return Ok(Err(format!(
                "{name}: no accuracy (no known image preprocessing with --images, and no --tokens)"
            )));
        };
        let network = Network::from_onnx(model, None).map_err(|e| BenchError::eval(&name, e))?;
        if !network.inputs().iter().any(|i| i.name == "input_ids") {
            return Ok(Err(format!(
                "{name}: no accuracy (not a known image model, and it takes no input_ids)"
            )));
        }
        let mut tokens = TokenSet::load(path).map_err(|e| BenchError::eval(&name, e))?;
        if let Some(limit) = data.limit {
            tokens.truncate(limit);
        }
        let baseline = TokenBaseline::new(&network, &tokens, |_, _| {})
            .map_err(|e| BenchError::eval(&name, e))?;
        Ok(Ok(Evaluator::Tokens { baseline, tokens }))
    }

    /// Accuracy of the original classifier (`None` for token models).
    pub(crate) fn original(&self) -> Option<Accuracy> {
        match self {
            Evaluator::Images { baseline, .. } => Some(baseline.accuracy()),
            Evaluator::Tokens { .. } => None,
        }
    }

    /// Loads the ONNX network at `path` (with `replacement` swapped in, if given) and compares
    /// it with the original.
    pub(crate) fn compare(
        &self,
        path: &Path,
        replacement: Option<&[Tensor]>,
    ) -> Result<Measured, BenchError> {
        let name = stem(path);
        let network =
            Network::from_onnx(path, replacement).map_err(|e| BenchError::eval(&name, e))?;
        match self {
            Evaluator::Images { baseline, images } => {
                let compressed = baseline
                    .compare(&network, images, |_, _| {})
                    .map_err(|e| BenchError::eval(&name, e))?;
                Ok(Measured::Images(ImageAccuracy {
                    images: baseline.len(),
                    original: baseline.accuracy(),
                    compressed,
                }))
            }
            Evaluator::Tokens { baseline, tokens } => {
                let compressed = baseline
                    .compare(&network, tokens, |_, _| {})
                    .map_err(|e| BenchError::eval(&name, e))?;
                Ok(Measured::Tokens(TokenAccuracy {
                    sentences: baseline.len(),
                    compressed,
                }))
            }
        }
    }
}

/// The file stem of a model path, e.g. `mobilenet_v2`.
pub(crate) fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}
