//! The pytorch adapter (not yet implemented).

use std::path::Path;

use crate::{ModelError, Tensor};

/// Reads the tensors and layout of a pytorch file.
pub fn read(path: &Path) -> Result<(Vec<Tensor>, Vec<u8>), ModelError> {
    Err(ModelError::invalid(
        path,
        "pytorch files are not supported yet",
    ))
}

/// Writes a pytorch file from a layout returned by [`read`] and new tensor values.
pub fn write(_layout: &[u8], _tensors: &[Tensor], path: &Path) -> Result<(), ModelError> {
    Err(ModelError::invalid(
        path,
        "pytorch files are not supported yet",
    ))
}
