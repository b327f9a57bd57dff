//! ONNX element types and the typed data fields of `TensorProto`.

use pwlc_codecs::DType;

use super::proto::tensor_proto::DataType;
use super::wire::{read_varint, write_varint};

/// The pwlc type of an ONNX `data_type`, or `None` for the types that are not exposed
/// (string, complex, float8, int4 and smaller, undefined).
pub(super) fn dtype_of(data_type: i32) -> Option<DType> {
    Some(match DataType::try_from(data_type).ok()? {
        DataType::Float => DType::F32,
        DataType::Float16 => DType::F16,
        DataType::Bfloat16 => DType::BF16,
        DataType::Double => DType::F64,
        DataType::Int8 => DType::I8,
        DataType::Int16 => DType::I16,
        DataType::Int32 => DType::I32,
        DataType::Int64 => DType::I64,
        DataType::Uint8 => DType::U8,
        DataType::Uint16 => DType::U16,
        DataType::Uint32 => DType::U32,
        DataType::Uint64 => DType::U64,
        DataType::Bool => DType::Bool,
        _ => return None,
    })
}

/// A typed data field of `TensorProto` (`raw_data` is not one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TypedField {
    Float,
    Int32,
    Int64,
    Double,
    Uint64,
}

impl TypedField {
    /// The field with protobuf field number `number`, if it is a typed data field.
    pub fn from_number(number: u64) -> Option<TypedField> {
        Some(match number {
            4 => TypedField::Float,
            5 => TypedField::Int32,
            7 => TypedField::Int64,
            10 => TypedField::Double,
            11 => TypedField::Uint64,
            _ => return None,
        })
    }

    /// The field's name in onnx.proto.
    pub fn name(self) -> &'static str {
        match self {
            TypedField::Float => "float_data",
            TypedField::Int32 => "int32_data",
            TypedField::Int64 => "int64_data",
            TypedField::Double => "double_data",
            TypedField::Uint64 => "uint64_data",
        }
    }

    /// Whether onnx.proto allows elements of `dtype` in this field.
    pub fn holds(self, dtype: DType) -> bool {
        use DType::*;
        match self {
            TypedField::Float => dtype == F32,
            TypedField::Double => dtype == F64,
            TypedField::Int32 => matches!(dtype, I32 | I16 | I8 | U16 | U8 | Bool | F16 | BF16),
            TypedField::Int64 => dtype == I64,
            TypedField::Uint64 => matches!(dtype, U32 | U64),
        }
    }

    /// True for the fields stored as varints (the others hold little-endian elements).
    pub fn is_varint(self) -> bool {
        matches!(
            self,
            TypedField::Int32 | TypedField::Int64 | TypedField::Uint64
        )
    }
}

/// The varint of one element (`bytes.len() == dtype.size()`) as protobuf stores it in `field`.
fn element_to_varint(dtype: DType, field: TypedField, bytes: &[u8]) -> u64 {
    let mut le = [0u8; 8];
    le[..bytes.len()].copy_from_slice(bytes);
    let unsigned = u64::from_le_bytes(le);
    let signed = match dtype {
        DType::I8 => i64::from(bytes[0] as i8),
        DType::I16 => i64::from(i16::from_le_bytes([bytes[0], bytes[1]])),
        DType::I32 => i64::from(i32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])),
        _ => unsigned as i64,
    };
    match field {
        TypedField::Int32 | TypedField::Int64 => signed as u64,
        _ => unsigned,
    }
}

/// Encodes little-endian elements of `dtype` as the packed varints of `field`.
pub(super) fn encode_varints(dtype: DType, field: TypedField, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    for element in data.chunks_exact(dtype.size()) {
        write_varint(&mut out, element_to_varint(dtype, field, element));
    }
    out
}

/// Decodes the packed varints of `field` into little-endian elements of `dtype`.
///
/// Returns `None` unless encoding the result gives back exactly `payload` (a truncated or
/// non-minimal varint, a value out of the element type's range): such data could not be
/// written back byte for byte.
pub(super) fn decode_varints(dtype: DType, field: TypedField, payload: &[u8]) -> Option<Vec<u8>> {
    let size = dtype.size();
    let mut data = Vec::with_capacity(payload.len() * size);
    let mut pos = 0;
    while pos < payload.len() {
        let value = read_varint(payload, &mut pos)?;
        data.extend_from_slice(&value.to_le_bytes()[..size]);
    }
    (encode_varints(dtype, field, &data) == payload).then_some(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const VARINT_TYPES: [(DType, TypedField); 11] = [
        (DType::I32, TypedField::Int32),
        (DType::I16, TypedField::Int32),
        (DType::I8, TypedField::Int32),
        (DType::U16, TypedField::Int32),
        (DType::U8, TypedField::Int32),
        (DType::Bool, TypedField::Int32),
        (DType::F16, TypedField::Int32),
        (DType::BF16, TypedField::Int32),
        (DType::I64, TypedField::Int64),
        (DType::U32, TypedField::Uint64),
        (DType::U64, TypedField::Uint64),
    ];

    proptest! {
        #[test]
        fn varint_elements_round_trip(
            which in 0..VARINT_TYPES.len(),
            raw in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let (dtype, field) = VARINT_TYPES[which];
            let data = &raw[..raw.len() / dtype.size() * dtype.size()];
            let payload = encode_varints(dtype, field, data);
            let decoded = decode_varints(dtype, field, &payload);
            prop_assert_eq!(decoded.as_deref(), Some(data));
        }

        #[test]
        fn decoding_any_payload_never_panics(
            which in 0..VARINT_TYPES.len(),
            payload in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let (dtype, field) = VARINT_TYPES[which];
            if let Some(data) = decode_varints(dtype, field, &payload) {
                prop_assert_eq!(encode_varints(dtype, field, &data), payload);
            }
        }
    }

    #[test]
    fn negative_int8_is_a_sign_extended_int32() {
        let payload = encode_varints(DType::I8, TypedField::Int32, &[0xff]);
        assert_eq!(payload.len(), 10);
        assert_eq!(
            decode_varints(DType::I8, TypedField::Int32, &payload),
            Some(vec![0xff])
        );
    }

    #[test]
    fn out_of_range_values_are_refused() {
        let payload = encode_varints(DType::I32, TypedField::Int32, &300i32.to_le_bytes());
        assert_eq!(decode_varints(DType::U8, TypedField::Int32, &payload), None);
    }
}
