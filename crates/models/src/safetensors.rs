//! The safetensors adapter.
//!
//! A safetensors file is an 8-byte little-endian header length, a JSON header giving each
//! tensor's dtype, shape and byte range, and the tensor bytes, contiguous in offset order; the
//! `safetensors` crate parses and validates all of it. The layout is the header verbatim
//! (length prefix and JSON, with `__metadata__`, key order and padding), so writing it back
//! followed by the tensors in offset order reproduces an unchanged file byte for byte.
//!
//! Dtypes without a [`DType`] (F8, F6, F4, C64, ...) are exposed as [`DType::Opaque`] with shape
//! `[byte count]`; their real dtype and shape stay in the header.

pub(crate) mod spec;

use std::borrow::Cow;
use std::ops::Range;
use std::path::Path;

use safetensors::tensor::{Metadata, TensorInfo};
use safetensors::{Dtype, SafeTensorError, SafeTensors, View};

use crate::{map_file, write_atomic, DType, ModelError, Tensor};
use spec::{check_tensors, check_unique_names, TensorSpec};

/// Bytes of the little-endian header length that starts every file.
const LENGTH_PREFIX: usize = 8;

/// Reads the tensors and layout of a safetensors file. Tensors come in offset order and borrow
/// from the memory-mapped file.
pub fn read(path: &Path) -> Result<(Vec<Tensor>, Vec<u8>), ModelError> {
    let file = map_file(path)?;
    let (json_len, metadata) =
        SafeTensors::read_metadata(&file).map_err(|e| crate_error(path, e))?;
    let header_len = LENGTH_PREFIX + json_len;
    let data = file.slice(header_len..);
    let tensors = tensor_entries(&metadata)
        .into_iter()
        .map(|(spec, range)| spec.to_tensor(data.slice(range)))
        .collect();
    Ok((tensors, file[..header_len].to_vec()))
}

/// Writes a safetensors file from a layout returned by [`read`] and new tensor values: the
/// header verbatim, then the tensor bytes in offset order.
pub fn write(layout: &[u8], tensors: &[Tensor], path: &Path) -> Result<(), ModelError> {
    let metadata = parse_layout(path, layout)?;
    let specs: Vec<TensorSpec> = tensor_entries(&metadata)
        .into_iter()
        .map(|(spec, _)| spec)
        .collect();
    check_tensors(path, &specs, tensors)?;
    write_atomic(path, |w| {
        w.write_all(layout)?;
        tensors.iter().try_for_each(|t| w.write_all(&t.data))
    })
}

/// Writes tensors alone as a new safetensors file, through the `safetensors` crate (which
/// orders them by dtype alignment, then name, and writes atomically). [`DType::Opaque`]
/// tensors are stored as `U8`.
pub fn write_fresh(tensors: &[Tensor], path: &Path) -> Result<(), ModelError> {
    let views = tensors
        .iter()
        .map(|t| FreshView::new(path, t).map(|v| (t.name.as_str(), v)))
        .collect::<Result<Vec<_>, _>>()?;
    check_unique_names(path, tensors)?;
    safetensors::serialize_to_file(views, None, path).map_err(|e| crate_error(path, e))
}

/// Each tensor's spec and byte range in the data section, in offset order (ties, which only
/// empty tensors can have, broken by name so the order never depends on hashing).
fn tensor_entries(metadata: &Metadata) -> Vec<(TensorSpec, Range<usize>)> {
    let mut infos: Vec<(String, &TensorInfo)> = metadata.tensors().into_iter().collect();
    infos.sort_by(|(a_name, a), (b_name, b)| {
        (a.data_offsets, a_name).cmp(&(b.data_offsets, b_name))
    });
    infos
        .into_iter()
        .map(|(name, info)| {
            let (start, end) = info.data_offsets;
            (spec_of(name, info), start..end)
        })
        .collect()
}

/// The tensor spec of one header entry (offsets and sizes already validated by the crate).
fn spec_of(name: String, info: &TensorInfo) -> TensorSpec {
    let (start, end) = info.data_offsets;
    let byte_len = (end - start) as u64;
    match dtype_of(info.dtype) {
        Some(dtype) => TensorSpec {
            name,
            dtype,
            shape: info.shape.iter().map(|&d| d as u64).collect(),
            byte_len,
        },
        None => TensorSpec {
            name,
            dtype: DType::Opaque,
            shape: vec![byte_len],
            byte_len,
        },
    }
}

/// The [`DType`] of a safetensors dtype, `None` for those exposed as opaque bytes.
fn dtype_of(dtype: Dtype) -> Option<DType> {
    Some(match dtype {
        Dtype::F32 => DType::F32,
        Dtype::F16 => DType::F16,
        Dtype::BF16 => DType::BF16,
        Dtype::F64 => DType::F64,
        Dtype::I8 => DType::I8,
        Dtype::I16 => DType::I16,
        Dtype::I32 => DType::I32,
        Dtype::I64 => DType::I64,
        Dtype::U8 => DType::U8,
        Dtype::U16 => DType::U16,
        Dtype::U32 => DType::U32,
        Dtype::U64 => DType::U64,
        Dtype::BOOL => DType::Bool,
        _ => return None,
    })
}

/// The safetensors dtype a [`DType`] is written as (opaque bytes as `U8`).
fn safetensors_dtype(dtype: DType) -> Dtype {
    match dtype {
        DType::F32 => Dtype::F32,
        DType::F16 => Dtype::F16,
        DType::BF16 => Dtype::BF16,
        DType::F64 => Dtype::F64,
        DType::I8 => Dtype::I8,
        DType::I16 => Dtype::I16,
        DType::I32 => Dtype::I32,
        DType::I64 => Dtype::I64,
        DType::U8 | DType::Opaque => Dtype::U8,
        DType::U16 => Dtype::U16,
        DType::U32 => Dtype::U32,
        DType::U64 => Dtype::U64,
        DType::Bool => Dtype::BOOL,
    }
}

/// Parses a layout (a header as [`read`] returns it) back into the crate's validated metadata.
fn parse_layout(path: &Path, layout: &[u8]) -> Result<Metadata, ModelError> {
    let bad = |why: &str| ModelError::invalid(path, &format!("bad safetensors layout: {why}"));
    let (prefix, json) = layout
        .split_first_chunk::<LENGTH_PREFIX>()
        .ok_or_else(|| bad("shorter than its length prefix"))?;
    if u64::from_le_bytes(*prefix) != json.len() as u64 {
        return Err(bad("length prefix does not match the header"));
    }
    serde_json::from_slice(json).map_err(|e| bad(&e.to_string()))
}

/// Maps an error of the `safetensors` crate to a [`ModelError`] on `path`.
fn crate_error(path: &Path, error: SafeTensorError) -> ModelError {
    match error {
        SafeTensorError::IoError(e) => ModelError::io(path, e),
        other => ModelError::invalid(path, &format!("not a valid safetensors file: {other}")),
    }
}

/// A tensor as the crate's serializer sees it.
struct FreshView<'a> {
    dtype: Dtype,
    shape: Vec<usize>,
    data: &'a [u8],
}

impl<'a> FreshView<'a> {
    /// Checks that the tensor's data fits its dtype and shape.
    fn new(path: &Path, tensor: &'a Tensor) -> Result<Self, ModelError> {
        let bad = |why: &str| ModelError::tensor(path, &tensor.name, why);
        let expected = spec::element_count(&tensor.shape)
            .and_then(|n| n.checked_mul(tensor.dtype.size() as u64))
            .ok_or_else(|| bad("shape overflows"))?;
        if tensor.data.len() as u64 != expected {
            return Err(bad(&format!(
                "{} data bytes, shape {:?} of {} needs {expected}",
                tensor.data.len(),
                tensor.shape,
                tensor.dtype
            )));
        }
        let shape = match tensor.dtype {
            DType::Opaque => vec![tensor.data.len()],
            _ => tensor
                .shape
                .iter()
                .map(|&d| usize::try_from(d))
                .collect::<Result<_, _>>()
                .map_err(|_| bad("dimension exceeds the address space"))?,
        };
        Ok(FreshView {
            dtype: safetensors_dtype(tensor.dtype),
            shape,
            data: &tensor.data,
        })
    }
}

impl View for FreshView<'_> {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}
