use std::path::{Path, PathBuf};

use thiserror::Error;

/// Why a model file could not be read or written. Every variant names the file.
#[derive(Debug, Error)]
pub enum ModelError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
    #[error("{}: tensor '{tensor}': {message}", path.display())]
    Tensor {
        path: PathBuf,
        tensor: String,
        message: String,
    },
}

impl ModelError {
    /// An I/O error on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        ModelError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// A malformed or unsupported file.
    pub fn invalid(path: &Path, message: &str) -> Self {
        ModelError::Invalid {
            path: path.to_path_buf(),
            message: message.to_string(),
        }
    }

    /// A problem with one tensor of the file.
    pub fn tensor(path: &Path, tensor: &str, message: &str) -> Self {
        ModelError::Tensor {
            path: path.to_path_buf(),
            tensor: tensor.to_string(),
            message: message.to_string(),
        }
    }
}
