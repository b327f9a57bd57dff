//! Bit-exact coding of tensor bytes.
//!
//! Each element is split into a *head* (the exponent of a float, the top byte of any other type)
//! and *tail chunks* (sign and mantissa of a float, 8 bits at a time from the top; the remaining
//! bytes of an integer), see [`fields`]. The heads form one plane and each chunk position another;
//! every plane is coded on its own, in the cheapest of three ways: stored as packed bits, with
//! one rANS model, or with one rANS model per context. The context of a head is the head four
//! elements earlier (exponents of neighbouring weights are alike; four back rather than one so
//! that each of the rANS coder's four lanes decodes its own contexts, and the lanes run in
//! parallel); the context of a tail chunk is its element's head (the mantissa distribution
//! depends on the exponent). A tensor whose planes do not get smaller than the input is stored
//! as it is.
//!
//! # Payload
//!
//! One mode byte: `0` = stored (the element bytes follow), `1` = planes: the head plane, then the
//! tail planes from the top chunk down. Each plane starts with its own mode byte:
//! - `0` raw: the `n` symbols as packed bits (least significant first; a byte each for 8-bit
//!   chunks), `ceil(n * bits / 8)` bytes;
//! - `1` order-0: a rANS model ([`Model::write`](crate::entropy::rans::Model::write)), then a
//!   block (`varint` length + bytes) holding the rANS stream;
//! - `2` context: `varint(k)` models with their own context, each as `varint(context gap)` (the
//!   contexts increase; the gap counts the unused values since the previous one) and the model;
//!   a byte `1` followed by the model shared by all other contexts, or `0`; the rANS stream block.
//!   The context is the plane's own: the element's head for a tail plane, the previous
//!   element's head for the head plane (written by earlier versions of the encoder);
//! - `3` earlier: `varint(lag)` (at least 1), then as mode `2`, with the symbol `lag` positions
//!   earlier in the same plane as the context (0 for the first `lag` symbols). The encoder
//!   writes it for the head plane with `lag = 4`.

mod fields;
mod plane;

use crate::bitio::ByteReader;
use crate::entropy::rans::LANES;
use crate::{CodecError, DType};
use fields::Layout;
use plane::Context;

/// Payload mode: the element bytes as they are.
const STORED: u8 = 0;
/// Payload mode: head and tail planes.
const PLANES: u8 = 1;

/// Share of a plane's stored size that entropy coding must save to be used (decode speed).
const MIN_SAVING: f64 = 0.0;

/// Encodes `data` (whole elements of `dtype`) losslessly.
pub fn encode(dtype: DType, data: &[u8]) -> Vec<u8> {
    let stored = || [&[STORED][..], data].concat();
    if !data.len().is_multiple_of(dtype.size()) {
        return stored();
    }
    let layout = Layout::of(dtype);
    let (heads, tails) = layout.split(data);
    let mut out = vec![PLANES];
    plane::encode(
        &heads,
        layout.head_bits,
        Context::Earlier(LANES),
        MIN_SAVING,
        &mut out,
    );
    let head_context = Context::Of {
        values: &heads,
        bits: layout.head_bits,
    };
    for (tail, bits) in tails.iter().zip(layout.chunk_bits()) {
        plane::encode(tail, bits, head_context, MIN_SAVING, &mut out);
    }
    if out.len() > data.len() {
        return stored();
    }
    out
}

/// Decodes `n` elements of `dtype` from a payload written by [`encode`].
pub fn decode(dtype: DType, n: usize, payload: &[u8]) -> Result<Vec<u8>, CodecError> {
    let bytes = n
        .checked_mul(dtype.size())
        .ok_or(CodecError::TooLarge(u64::MAX))?;
    let mut r = ByteReader::new(payload);
    match r.u8()? {
        STORED if r.remaining() == bytes => Ok(r.rest().to_vec()),
        STORED => Err(CodecError::Corrupt(
            "stored lossless payload has the wrong length",
        )),
        PLANES => {
            check_allocation(bytes)?;
            decode_planes(Layout::of(dtype), n, &mut r)
        }
        _ => Err(CodecError::Corrupt("unknown lossless payload mode")),
    }
}

/// Fails cleanly instead of aborting when the decoded size cannot be allocated (a corrupt
/// element count can ask for any size, and rANS streams may code many symbols in few bytes).
fn check_allocation(bytes: usize) -> Result<(), CodecError> {
    // Planes hold two bytes per symbol: reserve what the largest transient needs.
    let mut probe: Vec<u8> = Vec::new();
    probe
        .try_reserve_exact(bytes.saturating_mul(3))
        .map_err(|_| CodecError::TooLarge(bytes as u64))
}

fn decode_planes(layout: Layout, n: usize, r: &mut ByteReader<'_>) -> Result<Vec<u8>, CodecError> {
    let heads = plane::decode(r, n, layout.head_bits, Context::Earlier(1))?;
    let head_context = Context::Of {
        values: &heads,
        bits: layout.head_bits,
    };
    let tails = layout
        .chunk_bits()
        .into_iter()
        .map(|bits| plane::decode(r, n, bits, head_context))
        .collect::<Result<Vec<_>, _>>()?;
    if r.remaining() != 0 {
        return Err(CodecError::Corrupt("trailing bytes after lossless planes"));
    }
    Ok(layout.join(&heads, &tails))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::collection::vec;
    use proptest::prelude::*;

    fn round_trip(dtype: DType, data: &[u8]) -> Vec<u8> {
        let payload = encode(dtype, data);
        decode(dtype, data.len() / dtype.size(), &payload).unwrap()
    }

    /// Float-like bytes: weights around a scale, with special values mixed in.
    fn floats(dtype: DType) -> impl Strategy<Value = Vec<u8>> {
        let special = prop_oneof![
            Just(f32::NAN.to_bits()),
            Just(0x7fc0_1234),
            Just(0xffa0_0001),
            Just((-0.0f32).to_bits()),
            Just(0),
            Just(1),
            Just(0x8000_0007),
            Just(f32::INFINITY.to_bits()),
            Just(f32::MIN_POSITIVE.to_bits() - 1),
        ];
        let weight = (-30i32..30, -1.0f32..1.0).prop_map(|(e, m)| (m * 2f32.powi(e / 4)).to_bits());
        vec(
            prop_oneof![1 => special, 8 => weight, 1 => any::<u32>()],
            0..600,
        )
        .prop_map(move |v| {
            v.iter()
                .flat_map(|&bits| match dtype {
                    DType::F32 => bits.to_le_bytes().to_vec(),
                    DType::F64 => (f64::from(f32::from_bits(bits)).to_bits() ^ u64::from(bits & 7))
                        .to_le_bytes()
                        .to_vec(),
                    _ => ((bits >> 16) as u16).to_le_bytes().to_vec(),
                })
                .collect()
        })
    }

    fn float_dtype() -> impl Strategy<Value = DType> {
        prop_oneof![
            Just(DType::F32),
            Just(DType::F16),
            Just(DType::BF16),
            Just(DType::F64)
        ]
    }

    fn any_dtype() -> impl Strategy<Value = DType> {
        (0u8..14).prop_map(|c| DType::from_code(c).unwrap())
    }

    proptest! {
        #[test]
        fn random_bytes_round_trip(dtype in any_dtype(), data in vec(any::<u8>(), 0..2000)) {
            let data = &data[..data.len() / dtype.size() * dtype.size()];
            prop_assert_eq!(round_trip(dtype, data), data);
        }

        #[test]
        fn float_weights_round_trip((dtype, data) in float_dtype().prop_flat_map(|d| (Just(d), floats(d)))) {
            prop_assert_eq!(round_trip(dtype, &data), data);
        }

        #[test]
        fn low_entropy_data_round_trips(dtype in any_dtype(), n in 0usize..3000, period in 1usize..4, base in any::<u64>()) {
            let data: Vec<u8> = (0..n)
                .flat_map(|i| (base.rotate_left((i % period) as u32 * 8)).to_le_bytes())
                .take(n * dtype.size())
                .collect();
            let payload = encode(dtype, &data);
            prop_assert!(payload.len() <= data.len() + 1);
            prop_assert_eq!(decode(dtype, n, &payload).unwrap(), data);
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(dtype in any_dtype(), n in 0usize..500, payload in vec(any::<u8>(), 0..400)) {
            if let Ok(out) = decode(dtype, n, &payload) {
                prop_assert_eq!(out.len(), n * dtype.size());
            }
        }

        #[test]
        fn corrupted_payloads_never_panic(dtype in any_dtype(), data in vec(any::<u8>(), 0..800), at in any::<usize>(), flip in 1u8..=255) {
            let data = &data[..data.len() / dtype.size() * dtype.size()];
            let mut payload = encode(dtype, data);
            let at = at % payload.len();
            payload[at] ^= flip;
            let _ = decode(dtype, data.len() / dtype.size(), &payload);
            let _ = decode(dtype, data.len() / dtype.size(), &payload[..at]);
        }
    }

    #[test]
    fn edge_cases_round_trip() {
        for dtype in DType::ALL {
            let size = dtype.size();
            for data in [
                vec![],
                vec![0x80; size],
                vec![0; size * 1000],
                vec![0xff; size * 7],
            ] {
                assert_eq!(
                    round_trip(dtype, &data),
                    data,
                    "{dtype}, {} bytes",
                    data.len()
                );
            }
        }
        let equal: Vec<u8> = [0.25f32; 5000]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert!(
            encode(DType::F32, &equal).len() < 100,
            "all-equal data must shrink"
        );
    }

    #[test]
    fn wrong_sizes_are_errors() {
        let data: Vec<u8> = (0..400u32).flat_map(|i| (i as f32).to_le_bytes()).collect();
        let payload = encode(DType::F32, &data);
        assert!(decode(DType::F32, 99, &payload).is_err());
        assert!(decode(DType::F32, 101, &payload).is_err());
        assert!(decode(DType::F32, usize::MAX, &payload).is_err());
        assert!(decode(DType::F32, 1, &[STORED, 1, 2, 3]).is_err());
        assert!(decode(DType::F32, 1, &[]).is_err());
    }

    /// Weights in runs of 32 with one exponent each, so that a head predicts the next one.
    fn exponent_runs() -> Vec<u8> {
        (0..256u32)
            .flat_map(|i| {
                let scale = [1.0f32, 0.25, 2.0, 0.0625][(i / 32 % 4) as usize];
                let v = scale * (1.0 + ((i * 37) % 101) as f32 / 128.0);
                v.to_le_bytes()
            })
            .collect()
    }

    #[test]
    fn payloads_of_the_previous_head_context_still_decode() {
        // Written by the encoder before heads were coded in the context of the head four
        // elements earlier: its head plane is in mode 2, the context of the previous head.
        let payload = include_bytes!("lossless/fixtures/previous_head_context.bin");
        assert_eq!(payload[..2], [PLANES, 2]);
        let data = exponent_runs();
        assert_eq!(decode(DType::F32, 256, payload).unwrap(), data);
        // Today's encoder writes mode 3 with a lag of four.
        assert_eq!(encode(DType::F32, &data)[..3], [PLANES, 3, 4]);
    }
}
