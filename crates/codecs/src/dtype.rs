//! Element types of stored tensors and their conversion to and from `f32`.

use crate::CodecError;
use std::borrow::Cow;

/// The element type of a tensor. Data is always little-endian.
///
/// `Opaque` holds bytes whose structure the codecs do not interpret (e.g. GGUF block-quantized
/// types); such tensors are only ever stored losslessly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
    F16,
    BF16,
    F64,
    I8,
    I16,
    I32,
    I64,
    U8,
    U16,
    U32,
    U64,
    Bool,
    Opaque,
}

impl DType {
    /// All types, in the order of their wire codes.
    pub const ALL: [DType; 14] = [
        DType::F32,
        DType::F16,
        DType::BF16,
        DType::F64,
        DType::I8,
        DType::I16,
        DType::I32,
        DType::I64,
        DType::U8,
        DType::U16,
        DType::U32,
        DType::U64,
        DType::Bool,
        DType::Opaque,
    ];

    /// Size of one element in bytes (`Opaque` counts bytes).
    pub fn size(self) -> usize {
        match self {
            DType::F64 | DType::I64 | DType::U64 => 8,
            DType::F32 | DType::I32 | DType::U32 => 4,
            DType::F16 | DType::BF16 | DType::I16 | DType::U16 => 2,
            DType::I8 | DType::U8 | DType::Bool | DType::Opaque => 1,
        }
    }

    /// True for the types a lossy codec may approximate.
    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F16 | DType::BF16 | DType::F64)
    }

    /// The one-byte code used in the container.
    pub fn code(self) -> u8 {
        DType::ALL.iter().position(|&d| d == self).unwrap_or(0) as u8
    }

    /// Inverse of [`DType::code`].
    pub fn from_code(code: u8) -> Result<DType, CodecError> {
        DType::ALL
            .get(code as usize)
            .copied()
            .ok_or(CodecError::Corrupt("unknown dtype code"))
    }

    /// Lower-case name, as in safetensors and numpy (`f32`, `bf16`, ...).
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
            DType::F64 => "f64",
            DType::I8 => "i8",
            DType::I16 => "i16",
            DType::I32 => "i32",
            DType::I64 => "i64",
            DType::U8 => "u8",
            DType::U16 => "u16",
            DType::U32 => "u32",
            DType::U64 => "u64",
            DType::Bool => "bool",
            DType::Opaque => "opaque",
        }
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Widens little-endian float data of type `dtype` to `f32` (`f64` is rounded to nearest).
///
/// Returns an error for non-float types or a length that is not a multiple of the element size.
pub fn to_f32(dtype: DType, data: &[u8]) -> Result<Vec<f32>, CodecError> {
    if !data.len().is_multiple_of(dtype.size()) {
        return Err(CodecError::Corrupt(
            "data length is not a multiple of the element size",
        ));
    }
    let out = match dtype {
        DType::F32 => data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        DType::F16 => data
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        DType::BF16 => data
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        DType::F64 => data
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("chunk of 8")) as f32)
            .collect(),
        _ => {
            return Err(CodecError::Unsupported(
                "lossy coding of a non-float tensor",
            ))
        }
    };
    Ok(out)
}

/// [`to_f32`], borrowing `data` where it already is `f32` as this machine lays it out
/// (little-endian and 4-byte aligned, as a buffer of the allocator is) instead of copying it.
pub fn as_f32(dtype: DType, data: &[u8]) -> Result<Cow<'_, [f32]>, CodecError> {
    if dtype == DType::F32 && cfg!(target_endian = "little") {
        if let Ok(values) = bytemuck::try_cast_slice::<u8, f32>(data) {
            return Ok(Cow::Borrowed(values));
        }
    }
    to_f32(dtype, data).map(Cow::Owned)
}

/// Narrows `f32` values to little-endian bytes of float type `dtype` (round to nearest even).
pub fn from_f32(dtype: DType, values: &[f32]) -> Result<Vec<u8>, CodecError> {
    match dtype {
        DType::F32 => Ok(bytes_of_each(values, f32::to_le_bytes)),
        DType::F16 => Ok(bytes_of_each(values, f16_bytes)),
        DType::BF16 => Ok(bytes_of_each(values, bf16_bytes)),
        DType::F64 => Ok(bytes_of_each(values, f64_bytes)),
        _ => Err(CodecError::Unsupported(
            "lossy coding of a non-float tensor",
        )),
    }
}

/// `v` rounded to the nearest `f16`, as little-endian bytes.
pub fn f16_bytes(v: f32) -> [u8; 2] {
    half::f16::from_f32(v).to_le_bytes()
}

/// `v` rounded to the nearest `bf16`, as little-endian bytes.
pub fn bf16_bytes(v: f32) -> [u8; 2] {
    half::bf16::from_f32(v).to_le_bytes()
}

/// `v` as a little-endian `f64` (exact).
pub fn f64_bytes(v: f32) -> [u8; 8] {
    f64::from(v).to_le_bytes()
}

/// The `N` bytes `to_bytes` gives for each value, concatenated. Written into a buffer of the
/// final size: appending value by value checks the capacity every time and does not vectorize.
fn bytes_of_each<const N: usize>(values: &[f32], to_bytes: impl Fn(f32) -> [u8; N]) -> Vec<u8> {
    let mut out = vec![0u8; values.len() * N];
    for (bytes, &v) in out.chunks_exact_mut(N).zip(values) {
        bytes.copy_from_slice(&to_bytes(v));
    }
    out
}

/// Reads element `i` of little-endian float data as `f64` (exact for every float type).
pub fn element_f64(dtype: DType, data: &[u8], i: usize) -> f64 {
    let s = dtype.size();
    let c = &data[i * s..(i + 1) * s];
    match dtype {
        DType::F32 => f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64,
        DType::F16 => half::f16::from_le_bytes([c[0], c[1]]).to_f64(),
        DType::BF16 => half::bf16::from_le_bytes([c[0], c[1]]).to_f64(),
        DType::F64 => f64::from_le_bytes(c.try_into().expect("chunk of 8")),
        _ => f64::NAN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for d in DType::ALL {
            assert_eq!(DType::from_code(d.code()).unwrap(), d);
        }
        assert!(DType::from_code(200).is_err());
    }

    #[test]
    fn f32_data_is_borrowed_when_aligned_and_copied_otherwise() {
        let values = [1.5f32, -0.25, 3.0];
        // A 4-byte aligned buffer holding the values at offset 0 and again at offset 1.
        let mut words = [0u32; 4];
        let buffer: &mut [u8] = bytemuck::cast_slice_mut(&mut words);
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        buffer[..12].copy_from_slice(&bytes);
        let aligned = as_f32(DType::F32, &buffer[..12]).unwrap();
        assert!(matches!(aligned, Cow::Borrowed(_)));
        assert_eq!(&aligned[..], &values[..]);
        buffer[1..13].copy_from_slice(&bytes);
        let misaligned = as_f32(DType::F32, &buffer[1..13]).unwrap();
        assert!(matches!(misaligned, Cow::Owned(_)));
        assert_eq!(&misaligned[..], &values[..]);
        assert!(matches!(
            as_f32(DType::F16, &bytes[..4]).unwrap(),
            Cow::Owned(_)
        ));
        assert!(as_f32(DType::F32, &bytes[..5]).is_err());
    }

    #[test]
    fn f16_conversion_round_trips_representable_values() {
        let v = [0.5f32, -2.0, 65504.0, 0.0];
        let b = from_f32(DType::F16, &v).unwrap();
        assert_eq!(to_f32(DType::F16, &b).unwrap(), v);
    }
}
