//! Errors of the benchmarks, each naming the file or model it concerns.

use std::path::PathBuf;

/// What went wrong in a benchmark, and where.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A JSON file could not be parsed or written.
    #[error("{path}: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    /// Compressing, decompressing or reading a model failed.
    #[error(transparent)]
    Pipeline(#[from] pwlc::Error),
    /// Reading a model file failed.
    #[error(transparent)]
    Model(#[from] pwlc_models::ModelError),
    /// A codec failed on a tensor.
    #[error("{model}: tensor '{tensor}': {source}")]
    Codec {
        model: String,
        tensor: String,
        source: pwlc_codecs::CodecError,
    },
    /// Running a network for accuracy failed.
    #[error("{model}: {source}")]
    Eval {
        model: String,
        source: pwlc_eval::EvalError,
    },
    /// Drawing a plot failed.
    #[error("plot {path}: {message}")]
    Plot { path: PathBuf, message: String },
    /// Running the `pwlc` binary to measure its memory failed.
    #[error("{command}: {message}")]
    Child { command: String, message: String },
    /// Anything else, with its context.
    #[error("{0}")]
    Other(String),
}

impl BenchError {
    /// An I/O error on `path`.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> BenchError {
        BenchError::Io {
            path: path.into(),
            source,
        }
    }

    /// A JSON error on `path`.
    pub(crate) fn json(path: impl Into<PathBuf>, source: serde_json::Error) -> BenchError {
        BenchError::Json {
            path: path.into(),
            source,
        }
    }

    /// An evaluation error on `model`.
    pub(crate) fn eval(model: &str, source: pwlc_eval::EvalError) -> BenchError {
        BenchError::Eval {
            model: model.to_string(),
            source,
        }
    }
}
