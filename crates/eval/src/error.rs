//! The error type of the evaluation library.

use std::path::PathBuf;

/// Everything that can go wrong while loading data or models or running an evaluation.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A file or directory could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// An image file could not be decoded.
    #[error("cannot decode image {path}: {source}")]
    Decode {
        path: PathBuf,
        source: image::ImageError,
    },
    /// An image file name does not start with an ImageNet-1k WordNet id.
    #[error("{file}: file name does not start with an ImageNet-1k WordNet id (found {wnid:?}); expected e.g. n01440764_tench.JPEG")]
    UnknownWnid { file: String, wnid: String },
    /// A directory holds no image files.
    #[error("no .jpg/.jpeg/.png images in {0}")]
    NoImages(PathBuf),
    /// The preprocessing parameters cannot be applied.
    #[error("invalid preprocessing: {0}")]
    Preprocess(String),
    /// tract failed to load, optimize or run an ONNX model.
    #[error("ONNX model {path}: {message}")]
    Onnx { path: PathBuf, message: String },
    /// A replacement tensor does not fit the initializer it should replace.
    #[error("replacement tensor {name:?}: {reason}")]
    Replacement { name: String, reason: String },
    /// An npz file lacks an array or holds one of the wrong type or shape.
    #[error("{path}: {message}")]
    Npz { path: PathBuf, message: String },
    /// Data handed to a network does not match its inputs.
    #[error("network input mismatch: {0}")]
    Input(String),
}

impl EvalError {
    /// An [`EvalError::Io`] for `path`.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        EvalError::Io {
            path: path.into(),
            source,
        }
    }

    /// An [`EvalError::Onnx`] for `path` carrying a tract error with its whole cause chain.
    pub(crate) fn onnx(path: impl Into<PathBuf>, error: impl std::fmt::Display) -> Self {
        EvalError::Onnx {
            path: path.into(),
            message: format!("{error:#}"),
        }
    }

    /// An [`EvalError::Npz`] for `path`.
    pub(crate) fn npz(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        EvalError::Npz {
            path: path.into(),
            message: message.into(),
        }
    }
}
