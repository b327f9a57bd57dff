//! Parser of the GGUF header: magic, version, metadata key/values and tensor infos.
//!
//! Written here rather than taken from the `ggus` crate: ggus reads enum values (metadata value
//! types, ggml types) straight from the file bytes without checking them, which is undefined
//! behaviour for values outside the enum, and it panics (`todo!`, `unimplemented!`, `assert!`,
//! `unwrap`) on several malformed or newer inputs, while this adapter must answer every
//! malformed file with an error. Metadata values are only skipped over: the adapter copies the
//! header verbatim and needs from it just the alignment and the tensor infos.

use std::collections::HashSet;
use std::path::Path;

use crate::ModelError;

/// The metadata key that sets the data alignment.
const ALIGNMENT_KEY: &str = "general.alignment";
/// Alignment of the data section when the file does not set one.
const DEFAULT_ALIGNMENT: u64 = 32;
/// Most dimensions a ggml tensor has.
const MAX_DIMS: u32 = 4;
/// Deepest nesting of metadata arrays accepted (arrays of arrays of ...).
const MAX_ARRAY_DEPTH: u32 = 8;
/// Metadata value type codes.
const TYPE_STRING: u32 = 8;
const TYPE_ARRAY: u32 = 9;
const TYPE_U32: u32 = 4;

/// What the adapter needs from a GGUF header.
#[derive(Debug)]
pub(super) struct Header {
    /// Alignment of the data section and of every tensor in it.
    pub alignment: u64,
    /// Tensor infos, in file order.
    pub tensors: Vec<TensorInfo>,
    /// Offset just past the last tensor info (the data section starts at the next multiple of
    /// `alignment`).
    pub end: u64,
}

/// One tensor info of the header.
#[derive(Debug)]
pub(super) struct TensorInfo {
    pub name: String,
    /// Dimensions as stored, innermost first.
    pub dims: Vec<u64>,
    /// The ggml type code.
    pub ggml_type: u32,
    /// Offset of the data from the start of the data section.
    pub offset: u64,
    /// Length of the data in bytes.
    pub byte_len: u64,
}

/// Parses the header at the start of `bytes` (the whole file, or the header alone).
pub(super) fn parse(path: &Path, bytes: &[u8]) -> Result<Header, ModelError> {
    let mut cursor = Cursor {
        bytes,
        pos: 0,
        path,
    };
    check_magic_and_version(&mut cursor)?;
    let tensor_count = cursor.u64("the tensor count")?;
    let kv_count = cursor.u64("the metadata count")?;
    let mut alignment = DEFAULT_ALIGNMENT;
    for _ in 0..kv_count {
        if let Some(a) = read_key_value(&mut cursor)? {
            alignment = a;
        }
    }
    let mut tensors = Vec::new();
    let mut names = HashSet::new();
    for _ in 0..tensor_count {
        let info = read_tensor_info(&mut cursor)?;
        if !names.insert(info.name.clone()) {
            return Err(ModelError::tensor(path, &info.name, "name used twice"));
        }
        tensors.push(info);
    }
    Ok(Header {
        alignment,
        tensors,
        end: cursor.pos as u64,
    })
}

/// Checks the magic and accepts versions 2 and 3 (version 1 had 32-bit lengths).
fn check_magic_and_version(cursor: &mut Cursor) -> Result<(), ModelError> {
    if cursor.take(4, "the magic")? != b"GGUF" {
        return Err(cursor.error("not a GGUF file (missing GGUF magic)"));
    }
    match cursor.u32("the version")? {
        2 | 3 => Ok(()),
        v if (1..=3).contains(&v.swap_bytes()) => {
            Err(cursor.error("big-endian GGUF files are not supported"))
        }
        v => Err(cursor.error(&format!(
            "unsupported GGUF version {v} (supported: 2 and 3)"
        ))),
    }
}

/// Reads one metadata key/value; returns the alignment if this is the alignment key.
fn read_key_value(cursor: &mut Cursor) -> Result<Option<u64>, ModelError> {
    let key = cursor.string("a metadata key")?;
    let value_type = cursor.u32("a metadata value type")?;
    if key != ALIGNMENT_KEY {
        skip_value(cursor, key, value_type, 0)?;
        return Ok(None);
    }
    if value_type != TYPE_U32 {
        return Err(cursor.error(&format!("{ALIGNMENT_KEY} is not a u32")));
    }
    match cursor.u32(ALIGNMENT_KEY)? {
        a if a.is_power_of_two() => Ok(Some(u64::from(a))),
        a => Err(cursor.error(&format!("{ALIGNMENT_KEY} is {a}, not a power of two"))),
    }
}

/// Skips a metadata value of type `value_type`.
fn skip_value(
    cursor: &mut Cursor,
    key: &str,
    value_type: u32,
    depth: u32,
) -> Result<(), ModelError> {
    if let Some(size) = fixed_value_size(value_type) {
        cursor.take(size, key)?;
        return Ok(());
    }
    match value_type {
        TYPE_STRING => cursor.skip_string(key),
        TYPE_ARRAY if depth < MAX_ARRAY_DEPTH => {
            let item_type = cursor.u32(key)?;
            let count = cursor.u64(key)?;
            match fixed_value_size(item_type) {
                Some(size) => {
                    let len = count.checked_mul(size).ok_or_else(|| {
                        cursor.error(&format!("metadata '{key}': array too long"))
                    })?;
                    cursor.take(len, key).map(|_| ())
                }
                // Every item takes at least 8 bytes, so a bogus count ends at the end of the file.
                None => (0..count).try_for_each(|_| skip_value(cursor, key, item_type, depth + 1)),
            }
        }
        TYPE_ARRAY => Err(cursor.error(&format!("metadata '{key}': arrays nested too deep"))),
        t => Err(cursor.error(&format!("metadata '{key}': unknown value type {t}"))),
    }
}

/// Size of a fixed-size metadata value type, `None` for strings, arrays and unknown types.
fn fixed_value_size(value_type: u32) -> Option<u64> {
    match value_type {
        0 | 1 | 7 => Some(1), // u8, i8, bool
        2 | 3 => Some(2),     // u16, i16
        4..=6 => Some(4),     // u32, i32, f32
        10..=12 => Some(8),   // u64, i64, f64
        _ => None,
    }
}

/// Reads one tensor info and computes its data length from its type and dimensions.
fn read_tensor_info(cursor: &mut Cursor) -> Result<TensorInfo, ModelError> {
    let name = cursor.string("a tensor name")?.to_string();
    let n_dims = cursor.u32("a tensor's dimension count")?;
    if n_dims > MAX_DIMS {
        return Err(ModelError::tensor(
            cursor.path,
            &name,
            &format!("{n_dims} dimensions (at most {MAX_DIMS})"),
        ));
    }
    let dims = (0..n_dims)
        .map(|_| cursor.u64("a tensor dimension"))
        .collect::<Result<Vec<_>, _>>()?;
    let ggml_type = cursor.u32("a tensor type")?;
    let offset = cursor.u64("a tensor offset")?;
    let byte_len =
        data_len(ggml_type, &dims).map_err(|why| ModelError::tensor(cursor.path, &name, &why))?;
    Ok(TensorInfo {
        name,
        dims,
        ggml_type,
        offset,
        byte_len,
    })
}

/// Bytes of a tensor of ggml type `ggml_type` and dimensions `dims` (innermost first).
fn data_len(ggml_type: u32, dims: &[u64]) -> Result<u64, String> {
    let (block_len, block_bytes) =
        block_layout(ggml_type).ok_or_else(|| format!("unknown ggml type {ggml_type}"))?;
    let row_len = dims.first().copied().unwrap_or(1);
    if row_len % block_len != 0 {
        return Err(format!(
            "row length {row_len} is not a multiple of the block length {block_len} of ggml type {ggml_type}"
        ));
    }
    let row_bytes = (row_len / block_len).checked_mul(block_bytes);
    dims.iter()
        .skip(1)
        .fold(row_bytes, |n, &d| n?.checked_mul(d))
        .ok_or_else(|| "dimensions overflow".to_string())
}

/// Elements per block and bytes per block of each ggml type, as in ggml's type traits
/// (`ggml.c`); `None` for unknown and removed types.
fn block_layout(ggml_type: u32) -> Option<(u64, u64)> {
    Some(match ggml_type {
        0 => (1, 4),      // F32
        1 => (1, 2),      // F16
        2 => (32, 18),    // Q4_0
        3 => (32, 20),    // Q4_1
        6 => (32, 22),    // Q5_0
        7 => (32, 24),    // Q5_1
        8 => (32, 34),    // Q8_0
        9 => (32, 36),    // Q8_1
        10 => (256, 84),  // Q2_K
        11 => (256, 110), // Q3_K
        12 => (256, 144), // Q4_K
        13 => (256, 176), // Q5_K
        14 => (256, 210), // Q6_K
        15 => (256, 292), // Q8_K
        16 => (256, 66),  // IQ2_XXS
        17 => (256, 74),  // IQ2_XS
        18 => (256, 98),  // IQ3_XXS
        19 => (256, 50),  // IQ1_S
        20 => (32, 18),   // IQ4_NL
        21 => (256, 110), // IQ3_S
        22 => (256, 82),  // IQ2_S
        23 => (256, 136), // IQ4_XS
        24 => (1, 1),     // I8
        25 => (1, 2),     // I16
        26 => (1, 4),     // I32
        27 => (1, 8),     // I64
        28 => (1, 8),     // F64
        29 => (256, 56),  // IQ1_M
        30 => (1, 2),     // BF16
        34 => (256, 54),  // TQ1_0
        35 => (256, 66),  // TQ2_0
        39 => (32, 17),   // MXFP4
        _ => return None,
    })
}

/// A bounds-checked reader over the header bytes.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> Cursor<'a> {
    /// Reads `n` bytes of `what`.
    fn take(&mut self, n: u64, what: &str) -> Result<&'a [u8], ModelError> {
        let rest = &self.bytes[self.pos..];
        match usize::try_from(n) {
            Ok(n) if n <= rest.len() => {
                self.pos += n;
                Ok(&rest[..n])
            }
            _ => Err(self.error(&format!(
                "file ends inside {what} (offset {}, {n} bytes needed)",
                self.pos
            ))),
        }
    }

    fn u32(&mut self, what: &str) -> Result<u32, ModelError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self, what: &str) -> Result<u64, ModelError> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8, what)?);
        Ok(u64::from_le_bytes(b))
    }

    /// Reads a length-prefixed UTF-8 string.
    fn string(&mut self, what: &str) -> Result<&'a str, ModelError> {
        let len = self.u64(what)?;
        let bytes = self.take(len, what)?;
        std::str::from_utf8(bytes).map_err(|_| self.error(&format!("{what} is not UTF-8")))
    }

    /// Skips a length-prefixed string without checking its encoding.
    fn skip_string(&mut self, what: &str) -> Result<(), ModelError> {
        let len = self.u64(what)?;
        self.take(len, what).map(|_| ())
    }

    fn error(&self, message: &str) -> ModelError {
        ModelError::invalid(self.path, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantized_sizes_follow_blocks() {
        assert_eq!(data_len(8, &[64, 3]), Ok(3 * 2 * 34));
        assert_eq!(data_len(0, &[]), Ok(4));
        assert!(data_len(8, &[33]).is_err());
        assert!(data_len(4, &[32]).is_err());
        assert!(data_len(0, &[u64::MAX, 2]).is_err());
    }
}
