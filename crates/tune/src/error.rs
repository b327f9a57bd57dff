//! The error type of the tuner.

use std::path::PathBuf;

use crate::{Quality, Target};

/// Everything that can stop [`crate::tune`].
#[derive(Debug, thiserror::Error)]
pub enum TuneError {
    /// The model file could not be read.
    #[error(transparent)]
    Model(#[from] pwlc::models::ModelError),
    /// Loading or running a network failed.
    #[error(transparent)]
    Eval(#[from] pwlc_eval::EvalError),
    /// A tensor could not be coded.
    #[error("tensor '{tensor}': {source}")]
    Codec {
        tensor: String,
        source: pwlc::codecs::CodecError,
    },
    /// The policy codes no tensor of the model lossily.
    #[error("{0}: no tensor is coded lossily under the policy, so there is nothing to tune")]
    NothingToTune(PathBuf),
    /// The target does not suit the data.
    #[error("{0}")]
    TargetMismatch(&'static str),
    /// Even the smallest bounds tried miss the target.
    #[error("no bounds tried meet {target:?}; the closest measured {closest:?}")]
    Infeasible {
        target: Target,
        closest: Option<Quality>,
    },
}
