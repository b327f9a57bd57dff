//! The NumPy adapters, `.npy` (one array) and `.npz` (a zip archive of `.npy` members).
//!
//! Float, integer and boolean arrays become tensors of their dtype; big-endian and
//! Fortran-order arrays are converted to little-endian C order on read and back to their
//! stored order on write. Arrays of other fixed-size dtypes (complex, strings, records, ...)
//! are exposed as [`crate::DType::Opaque`] bytes as stored; object arrays are rejected.
//! The layout of a `.npy` is its header verbatim; see [`npz`] for archives.

mod npy;
mod npz;

use std::path::Path;

use crate::{map_file, write_atomic, ModelError, Tensor};
use npy::Source;

/// Reads a `.npy` file as one tensor named after the file stem (`weights.npy` → `weights`),
/// zero-copy from the memory-mapped file when no conversion is needed.
pub fn read_npy(path: &Path) -> Result<(Vec<Tensor>, Vec<u8>), ModelError> {
    let file = map_file(path)?;
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let source = Source {
        path,
        name: &name,
        in_archive: false,
    };
    let (tensor, header) = npy::decode(&source, file)?;
    Ok((vec![tensor], header))
}

/// Writes a `.npy` file from a layout returned by [`read_npy`] and the new value of its tensor.
pub fn write_npy(layout: &[u8], tensors: &[Tensor], path: &Path) -> Result<(), ModelError> {
    let [tensor] = tensors else {
        return Err(ModelError::invalid(
            path,
            &format!("a .npy file holds one tensor, {} were given", tensors.len()),
        ));
    };
    let source = Source {
        path,
        name: &tensor.name,
        in_archive: false,
    };
    let data = npy::encode(&source, layout, tensor)?;
    write_atomic(path, |w| {
        w.write_all(layout)?;
        w.write_all(&data)
    })
}

/// Reads the arrays of a `.npz` file, one tensor per `.npy` member, named after the member
/// without `.npy`.
pub fn read_npz(path: &Path) -> Result<(Vec<Tensor>, Vec<u8>), ModelError> {
    npz::read(path)
}

/// Writes a `.npz` file from a layout returned by [`read_npz`] and new tensor values, keeping
/// member order, names, headers and compression.
pub fn write_npz(layout: &[u8], tensors: &[Tensor], path: &Path) -> Result<(), ModelError> {
    npz::write(layout, tensors, path)
}

/// Writes tensors alone as a new `.npz` of stored members `<name>.npy`. BF16 and opaque
/// tensors have no NumPy dtype and are refused.
pub fn write_npz_fresh(tensors: &[Tensor], path: &Path) -> Result<(), ModelError> {
    npz::write_fresh(tensors, path)
}
