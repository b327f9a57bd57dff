use std::path::PathBuf;

use pwlc_codecs::CodecError;
use pwlc_container::ContainerError;
use pwlc_models::ModelError;
use thiserror::Error;

/// Why a pwlc operation failed. Every variant names the file, and the tensor where one is at fault.
#[derive(Debug, Error)]
pub enum Error {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("{}: {source}", path.display())]
    Container {
        path: PathBuf,
        source: ContainerError,
    },
    #[error("{}: tensor '{tensor}': {source}", path.display())]
    Codec {
        path: PathBuf,
        tensor: String,
        source: CodecError,
    },
    #[error("{}: tensor '{tensor}': decoded bytes differ from the recorded size", path.display())]
    SizeMismatch { path: PathBuf, tensor: String },
    #[error("{}: already exists (use --force to overwrite)", .0.display())]
    OutputExists(PathBuf),
    #[error("{}: output would overwrite the input", .0.display())]
    OutputIsInput(PathBuf),
    #[error("{}: {message}", path.display())]
    Other { path: PathBuf, message: String },
}

impl Error {
    pub(crate) fn container(path: &std::path::Path, source: ContainerError) -> Self {
        Error::Container {
            path: path.to_path_buf(),
            source,
        }
    }
}
