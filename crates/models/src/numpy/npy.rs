//! One `.npy` array: its header, and the conversion of its data to a tensor and back.
//!
//! Headers are parsed by `npyz` after their length has been checked here (npyz allocates the
//! length the file claims). Big-endian arrays are byte-swapped and Fortran-order arrays
//! transposed to little-endian C order on read, and converted back on write, so the header is
//! kept verbatim. Arrays of element types without a [`DType`] (complex, strings, records,
//! datetimes, ...) are exposed as [`DType::Opaque`] bytes as stored; object arrays (pickled
//! Python objects) are rejected.

use std::path::Path;

use bytes::Bytes;
use npyz::{Endianness, NpyHeader, Order, TypeChar, WriteOptions, WriterBuilder};

use crate::safetensors::spec::{check_tensor, element_count, TensorSpec};
use crate::{DType, ModelError, Tensor};

/// The magic string that starts every `.npy`.
const MAGIC: &[u8] = b"\x93NUMPY";
/// Longest header accepted (numpy itself refuses headers over 10 000 bytes by default).
const MAX_HEADER_LEN: usize = 1 << 20;

/// Where an array comes from, for error messages: a `.npy` file or a member of an archive.
pub(super) struct Source<'a> {
    pub path: &'a Path,
    /// The tensor's name.
    pub name: &'a str,
    /// True for a member of a `.npz` (errors then name the member).
    pub in_archive: bool,
}

impl Source<'_> {
    fn error(&self, message: &str) -> ModelError {
        match self.in_archive {
            true => ModelError::tensor(self.path, self.name, message),
            false => ModelError::invalid(self.path, message),
        }
    }
}

/// Turns the bytes of a `.npy` into a tensor (zero-copy when no conversion is needed) and its
/// header bytes.
pub(super) fn decode(source: &Source, npy: Bytes) -> Result<(Tensor, Vec<u8>), ModelError> {
    let (header_len, format) = parse(source, &npy)?;
    let data = npy.slice(header_len..);
    if data.len() as u64 != format.spec.byte_len {
        return Err(source.error(&format!(
            "{} data bytes, the header needs {}",
            data.len(),
            format.spec.byte_len
        )));
    }
    let tensor = format.spec.to_tensor(format.to_tensor_order(data));
    Ok((tensor, npy[..header_len].to_vec()))
}

/// The data bytes of `tensor` as the `.npy` header `header` stores them, after checking that
/// the tensor is the one the header describes.
pub(super) fn encode(source: &Source, header: &[u8], tensor: &Tensor) -> Result<Bytes, ModelError> {
    let (header_len, format) = parse(source, header)?;
    if header_len != header.len() {
        return Err(source.error("bad npy layout: bytes after the header"));
    }
    check_tensor(source.path, &format.spec, tensor)?;
    Ok(format.to_file_order(tensor.data.clone()))
}

/// A `.npy` header for `tensor` stored little-endian in C order.
pub(super) fn fresh_header(path: &Path, tensor: &Tensor) -> Result<Vec<u8>, ModelError> {
    let bad = |why: &str| ModelError::tensor(path, &tensor.name, why);
    let descr = match tensor.dtype {
        DType::F32 => "<f4",
        DType::F16 => "<f2",
        DType::F64 => "<f8",
        DType::I8 => "|i1",
        DType::I16 => "<i2",
        DType::I32 => "<i4",
        DType::I64 => "<i8",
        DType::U8 => "|u1",
        DType::U16 => "<u2",
        DType::U32 => "<u4",
        DType::U64 => "<u8",
        DType::Bool => "|b1",
        DType::BF16 | DType::Opaque => {
            return Err(bad(&format!(
                "{} has no NumPy dtype; convert to safetensors instead",
                tensor.dtype
            )))
        }
    };
    let type_str = descr
        .parse()
        .map_err(|e| bad(&format!("dtype {descr}: {e}")))?;
    let byte_len = element_count(&tensor.shape)
        .and_then(|n| n.checked_mul(tensor.dtype.size() as u64))
        .ok_or_else(|| bad("shape overflows"))?;
    let spec = TensorSpec {
        name: tensor.name.clone(),
        dtype: tensor.dtype,
        shape: tensor.shape.clone(),
        byte_len,
    };
    check_tensor(path, &spec, tensor)?;
    let mut header = Vec::new();
    WriteOptions::new_header_only()
        .dtype(npyz::DType::Plain(type_str))
        .shape(&tensor.shape)
        .writer(&mut header)
        .write_header_only()
        .map_err(|e| bad(&format!("cannot write the .npy header: {e}")))?;
    Ok(header)
}

/// How an array's data is stored, as far as converting it to a tensor needs.
struct ArrayFormat {
    /// The tensor the array becomes.
    spec: TensorSpec,
    /// Bytes per element (1 for opaque arrays, which are never converted).
    item_size: usize,
    /// Elements are stored big-endian.
    swap_bytes: bool,
    /// Elements are stored in Fortran (column-major) order, with at least two axes.
    fortran: bool,
}

impl ArrayFormat {
    /// Converts data as stored into little-endian C order.
    fn to_tensor_order(&self, mut data: Bytes) -> Bytes {
        if self.fortran {
            let stored_shape: Vec<u64> = self.spec.shape.iter().rev().copied().collect();
            data = reverse_axes(&data, &stored_shape, self.item_size).into();
        }
        if self.swap_bytes {
            data = swap_bytes(&data, self.item_size).into();
        }
        data
    }

    /// Converts little-endian C-order data into the order and byte order stored.
    fn to_file_order(&self, mut data: Bytes) -> Bytes {
        if self.fortran {
            data = reverse_axes(&data, &self.spec.shape, self.item_size).into();
        }
        if self.swap_bytes {
            data = swap_bytes(&data, self.item_size).into();
        }
        data
    }
}

/// Parses the header at the start of `npy`; returns its length and the array's format.
fn parse(source: &Source, npy: &[u8]) -> Result<(usize, ArrayFormat), ModelError> {
    let header_len = header_len(npy).map_err(|why| source.error(&why))?;
    check_nesting(&npy[10..header_len]).map_err(|why| source.error(&why))?;
    let header = NpyHeader::from_reader(&npy[..header_len])
        .map_err(|e| source.error(&format!("bad .npy header: {e}")))?;
    Ok((header_len, array_format(source, &header)?))
}

/// Deepest bracket nesting accepted in a header's text. A plain array's header nests 2 deep
/// (the dict and the shape tuple); npyz's parser (`py_literal`) takes time exponential in the
/// depth of unclosed brackets (seconds at 16, minutes at 24), so deeper headers are refused
/// before it sees them.
const MAX_HEADER_NESTING: usize = 8;

/// Refuses header text whose `(`, `[` and `{` nest deeper than [`MAX_HEADER_NESTING`]. `text`
/// starts at byte 10; in versions 2 and 3 bytes 10 and 11 are the high bytes of the length
/// field, which are at most `0x10` and `0` below [`MAX_HEADER_LEN`], so never brackets.
fn check_nesting(text: &[u8]) -> Result<(), String> {
    let mut depth = 0usize;
    for &b in text {
        match b {
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            _ => continue,
        }
        if depth > MAX_HEADER_NESTING {
            return Err(format!(
                "bad .npy header: brackets nest deeper than {MAX_HEADER_NESTING}"
            ));
        }
    }
    Ok(())
}

/// Length of the header (magic, version, length field and text), checked against the data.
fn header_len(npy: &[u8]) -> Result<usize, String> {
    if !npy.starts_with(MAGIC) {
        return Err("not a .npy array (missing \\x93NUMPY magic)".to_string());
    }
    let ends_early = || "file ends inside the .npy header".to_string();
    let prefix = match npy.get(6) {
        Some(1) => 10,
        Some(2 | 3) => 12,
        Some(v) => return Err(format!("unsupported .npy format version {v}")),
        None => return Err(ends_early()),
    };
    // The little-endian length field: two bytes in version 1, four after.
    let text_len = npy
        .get(8..prefix)
        .ok_or_else(ends_early)?
        .iter()
        .rev()
        .fold(0usize, |n, &b| n << 8 | usize::from(b));
    if text_len > MAX_HEADER_LEN {
        return Err(format!(
            "header claims {text_len} bytes (at most {MAX_HEADER_LEN} accepted)"
        ));
    }
    match prefix + text_len {
        len if len <= npy.len() => Ok(len),
        len => Err(format!(
            "file ends inside the .npy header ({len} bytes needed, {} present)",
            npy.len()
        )),
    }
}

/// The format of an array from its parsed header.
fn array_format(source: &Source, header: &NpyHeader) -> Result<ArrayFormat, ModelError> {
    if header.uses_pickled_array() {
        return Err(source.error("object arrays (pickled Python objects) are not supported"));
    }
    let dtype = header.dtype();
    let item_size = dtype
        .num_bytes()
        .ok_or_else(|| source.error("element size overflows"))?;
    let shape = header.shape().to_vec();
    let byte_len = element_count(&shape)
        .and_then(|n| n.checked_mul(item_size as u64))
        .ok_or_else(|| source.error("shape overflows"))?;
    let name = source.name.to_string();
    Ok(match element_dtype(&dtype) {
        Some((dtype, endianness)) => ArrayFormat {
            fortran: header.order() == Order::Fortran && shape.len() >= 2,
            spec: TensorSpec {
                name,
                dtype,
                shape,
                byte_len,
            },
            item_size,
            swap_bytes: endianness == Endianness::Big && item_size > 1,
        },
        None => ArrayFormat {
            spec: TensorSpec {
                name,
                dtype: DType::Opaque,
                shape: vec![byte_len],
                byte_len,
            },
            item_size: 1,
            swap_bytes: false,
            fortran: false,
        },
    })
}

/// The tensor dtype and byte order of a plain numeric or boolean NumPy dtype; `None` for the
/// dtypes exposed as opaque bytes.
fn element_dtype(dtype: &npyz::DType) -> Option<(DType, Endianness)> {
    let npyz::DType::Plain(type_str) = dtype else {
        return None;
    };
    let dtype = match (type_str.type_char(), type_str.size_field()) {
        (TypeChar::Float, 2) => DType::F16,
        (TypeChar::Float, 4) => DType::F32,
        (TypeChar::Float, 8) => DType::F64,
        (TypeChar::Int, 1) => DType::I8,
        (TypeChar::Int, 2) => DType::I16,
        (TypeChar::Int, 4) => DType::I32,
        (TypeChar::Int, 8) => DType::I64,
        (TypeChar::Uint, 1) => DType::U8,
        (TypeChar::Uint, 2) => DType::U16,
        (TypeChar::Uint, 4) => DType::U32,
        (TypeChar::Uint, 8) => DType::U64,
        (TypeChar::Bool, 1) => DType::Bool,
        _ => return None,
    };
    Some((dtype, type_str.endianness()))
}

/// Reverses the byte order of every `item_size`-byte element.
fn swap_bytes(data: &[u8], item_size: usize) -> Vec<u8> {
    data.chunks_exact(item_size)
        .flat_map(|item| item.iter().rev())
        .copied()
        .collect()
}

/// Transposes C-order `data` of `shape` (elements of `item_size` bytes) into C-order data of
/// the reversed shape. A Fortran-order array is the C-order array of its reversed shape, so
/// this converts Fortran to C order (called with the reversed shape) and back (called with
/// the shape). `data` must hold exactly the elements of `shape`.
fn reverse_axes(data: &[u8], shape: &[u64], item_size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    if data.is_empty() {
        return out;
    }
    // Byte stride in `data` of each output axis (output axis k is input axis n-1-k), and the
    // output shape.
    let mut strides = Vec::with_capacity(shape.len());
    let mut stride = item_size;
    for &dim in shape.iter().rev() {
        strides.push(stride);
        stride *= dim as usize;
    }
    let out_shape: Vec<usize> = shape.iter().rev().map(|&d| d as usize).collect();
    let mut index = vec![0usize; shape.len()];
    let mut offset = 0usize;
    loop {
        out.extend_from_slice(&data[offset..offset + item_size]);
        let mut axis = shape.len();
        loop {
            if axis == 0 {
                return out;
            }
            axis -= 1;
            index[axis] += 1;
            offset += strides[axis];
            if index[axis] < out_shape[axis] {
                break;
            }
            offset -= strides[axis] * out_shape[axis];
            index[axis] = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverse_axes_transposes_and_inverts() {
        // 2x3 C-order matrix of one-byte elements.
        let data = [1, 2, 3, 4, 5, 6];
        let t = reverse_axes(&data, &[2, 3], 1);
        assert_eq!(t, [1, 4, 2, 5, 3, 6]);
        assert_eq!(reverse_axes(&t, &[3, 2], 1), data);
        // 2x2x2 of two-byte elements.
        let data: Vec<u8> = (0..16).collect();
        let t = reverse_axes(&data, &[2, 2, 2], 2);
        assert_eq!(reverse_axes(&t, &[2, 2, 2], 2), data);
        assert_eq!(&t[2..4], &data[8..10]);
    }
}
