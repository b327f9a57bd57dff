//! The tensors a layout describes, and the check that the tensors handed to `write` are those.
//!
//! Shared by the safetensors, NumPy and GGUF adapters: each derives a [`TensorSpec`] list from
//! its layout, builds its tensors from it on `read` and checks the caller's tensors against it
//! on `write`.

use std::collections::HashSet;
use std::path::Path;

use bytes::Bytes;

use crate::{DType, ModelError, Tensor};

/// Name, dtype, shape and byte length of one tensor, as a layout records them.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TensorSpec {
    pub name: String,
    pub dtype: DType,
    /// Dimensions, outermost first.
    pub shape: Vec<u64>,
    /// Length of the tensor's little-endian row-major bytes.
    pub byte_len: u64,
}

impl TensorSpec {
    /// The tensor this spec describes, holding `data`.
    pub fn to_tensor(&self, data: Bytes) -> Tensor {
        Tensor {
            name: self.name.clone(),
            dtype: self.dtype,
            shape: self.shape.clone(),
            data,
        }
    }
}

/// Checks that `tensors` are exactly the tensors `specs` lists, in the same order, with data of
/// the right length.
pub(crate) fn check_tensors(
    path: &Path,
    specs: &[TensorSpec],
    tensors: &[Tensor],
) -> Result<(), ModelError> {
    if specs.len() != tensors.len() {
        return Err(ModelError::invalid(
            path,
            &format!(
                "the layout lists {} tensors but {} were given",
                specs.len(),
                tensors.len()
            ),
        ));
    }
    specs
        .iter()
        .zip(tensors)
        .try_for_each(|(spec, tensor)| check_tensor(path, spec, tensor))
}

/// Checks one tensor against its spec.
pub(crate) fn check_tensor(
    path: &Path,
    spec: &TensorSpec,
    tensor: &Tensor,
) -> Result<(), ModelError> {
    let problem = if tensor.name != spec.name {
        format!("the layout expects this tensor here, not '{}'", tensor.name)
    } else if tensor.dtype != spec.dtype {
        format!(
            "dtype {} differs from the layout's {}",
            tensor.dtype, spec.dtype
        )
    } else if tensor.shape != spec.shape {
        format!(
            "shape {:?} differs from the layout's {:?}",
            tensor.shape, spec.shape
        )
    } else if tensor.data.len() as u64 != spec.byte_len {
        format!(
            "{} data bytes, the layout expects {}",
            tensor.data.len(),
            spec.byte_len
        )
    } else {
        return Ok(());
    };
    Err(ModelError::tensor(path, &spec.name, &problem))
}

/// Number of elements of `shape`, or `None` on overflow.
pub(crate) fn element_count(shape: &[u64]) -> Option<u64> {
    shape.iter().try_fold(1u64, |n, &d| n.checked_mul(d))
}

/// Rejects two tensors of the same name (for writers of new files).
pub(crate) fn check_unique_names(path: &Path, tensors: &[Tensor]) -> Result<(), ModelError> {
    let mut seen = HashSet::new();
    match tensors.iter().find(|t| !seen.insert(t.name.as_str())) {
        Some(t) => Err(ModelError::tensor(path, &t.name, "name used twice")),
        None => Ok(()),
    }
}
