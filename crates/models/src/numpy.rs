//! The NumPy adapters, .npy and .npz (not yet implemented).

use std::path::Path;

use crate::{ModelError, Tensor};

/// Reads a .npy file as one tensor.
pub fn read_npy(path: &Path) -> Result<(Vec<Tensor>, Vec<u8>), ModelError> {
    Err(ModelError::invalid(path, "npy files are not supported yet"))
}

/// Writes a .npy file.
pub fn write_npy(_layout: &[u8], _tensors: &[Tensor], path: &Path) -> Result<(), ModelError> {
    Err(ModelError::invalid(path, "npy files are not supported yet"))
}

/// Reads the arrays of a .npz file.
pub fn read_npz(path: &Path) -> Result<(Vec<Tensor>, Vec<u8>), ModelError> {
    Err(ModelError::invalid(path, "npz files are not supported yet"))
}

/// Writes a .npz file.
pub fn write_npz(_layout: &[u8], _tensors: &[Tensor], path: &Path) -> Result<(), ModelError> {
    Err(ModelError::invalid(path, "npz files are not supported yet"))
}

/// Writes tensors alone as a new .npz file.
pub fn write_npz_fresh(_tensors: &[Tensor], path: &Path) -> Result<(), ModelError> {
    Err(ModelError::invalid(path, "npz files are not supported yet"))
}
