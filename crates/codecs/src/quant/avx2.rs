//! The decoder's raw-bit reads with AVX2, eight values at a time.
//!
//! A value's raw bits start where those of the values before it end, so reading them one at a
//! time ([`super::index_of_token`]) is a chain of a dozen instructions per value. Here the raw
//! bit counts of eight tokens are summed in a vector (a prefix sum in three steps), which gives
//! the eight bit positions at once, and one gather loads the 4 bytes at each. A raw bit count
//! below 32 fits in those 4 bytes after the shift by the bit offset (at most 7), so only
//! verbatim values (32 bits) need the one-at-a-time reader.

use super::raw_bits::{Window, WINDOW_BYTES, WRAP};
use super::{index_of_token, BASE_BITS};
use std::arch::x86_64::*;

/// What [`super::read_indices`] does: the zigzag index of every token in `z`. Groups of eight
/// with a verbatim token, and the last `tokens.len() % 8` tokens, are read one at a time.
#[target_feature(enable = "avx2")]
pub fn read_indices(tokens: &[u32], bits: &mut Window<'_>, lsb: u32, z: &mut [u32]) {
    let lsb_count = _mm_cvtsi32_si128(lsb as i32);
    let bytes = bits.bytes();
    // Kept here rather than in `bits`, so that it stays in a register.
    let mut position = bits.position();
    let (token_groups, token_rest) = tokens.as_chunks::<8>();
    let (z_groups, z_rest) = z.as_chunks_mut::<8>();
    for (z, tokens) in z_groups.iter_mut().zip(token_groups) {
        // SAFETY: loads the 32 bytes of `tokens`, an array of 8 `u32`.
        let packed = unsafe { _mm256_loadu_si256(tokens.as_ptr().cast()) };
        // The top bit of a token is set only for a verbatim value.
        if _mm256_movemask_ps(_mm256_castsi256_ps(packed)) != 0 {
            bits.skip(position - bits.position());
            *z = read_one_at_a_time(tokens, bits, lsb);
            position = bits.position();
            continue;
        }
        let (indices, read) = read_group(packed, bytes, position, lsb_count);
        position += read;
        // SAFETY: stores 32 bytes into `z`, an array of 8 `u32`.
        unsafe { _mm256_storeu_si256(z.as_mut_ptr().cast(), indices) };
    }
    bits.skip(position - bits.position());
    for (z, &token) in z_rest.iter_mut().zip(token_rest) {
        *z = index_of_token(token, bits, lsb);
    }
}

/// The indices of a group with a verbatim token (rare), read one at a time.
#[cold]
#[inline(never)]
fn read_one_at_a_time(tokens: &[u32; 8], bits: &mut Window<'_>, lsb: u32) -> [u32; 8] {
    tokens.map(|token| index_of_token(token, bits, lsb))
}

/// The zigzag indices of eight packed tokens without a verbatim one, whose raw bits start at
/// bit `start` of `bytes`, and the number of raw bits they take.
#[inline]
#[target_feature(enable = "avx2")]
fn read_group(
    tokens: __m256i,
    bytes: &[u8; WINDOW_BYTES],
    start: usize,
    lsb: __m128i,
) -> (__m256i, usize) {
    let counts = _mm256_srli_epi32::<{ BASE_BITS as i32 }>(tokens);
    let ends = inclusive_sums(counts);
    // Positions fit an `i32`: a window has far fewer than 2^31 bits.
    let positions = _mm256_add_epi32(
        _mm256_sub_epi32(ends, counts),
        _mm256_set1_epi32(start as i32),
    );
    let offsets = _mm256_and_si256(
        _mm256_srli_epi32::<3>(positions),
        _mm256_set1_epi32(WRAP as i32 - 1),
    );
    // SAFETY: every offset is below WRAP and loads 4 bytes, all inside `bytes`
    // (WINDOW_BYTES = WRAP + 8).
    let words = unsafe { _mm256_i32gather_epi32::<1>(bytes.as_ptr().cast(), offsets) };
    let shifted = _mm256_srlv_epi32(words, _mm256_and_si256(positions, _mm256_set1_epi32(7)));
    // The counts are below 32: the shifted ones leave exactly `count` low bits.
    let raw = _mm256_andnot_si256(_mm256_sllv_epi32(_mm256_set1_epi32(-1), counts), shifted);
    let base = _mm256_and_si256(tokens, _mm256_set1_epi32((1 << BASE_BITS) - 1));
    let indices = _mm256_add_epi32(base, _mm256_sll_epi32(raw, lsb));
    (indices, _mm256_extract_epi32::<7>(ends) as u32 as usize)
}

/// The inclusive prefix sums of the eight lanes of `v`.
#[inline]
#[target_feature(enable = "avx2")]
fn inclusive_sums(v: __m256i) -> __m256i {
    // Byte shifts move within each 128-bit half: these sum each half on its own.
    let v = _mm256_add_epi32(v, _mm256_slli_si256::<4>(v));
    let v = _mm256_add_epi32(v, _mm256_slli_si256::<8>(v));
    // The upper half adds the total of the lower one (its last lane, broadcast).
    let totals = _mm256_shuffle_epi32::<0xff>(v);
    _mm256_add_epi32(v, _mm256_permute2x128_si256::<0x08>(totals, totals))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::raw_bits::{RawBits, WINDOW_READS};
    use crate::quant::token::{TokenInfo, VERBATIM_BITS};
    use crate::quant::{pack_token, read_indices as read_one_at_a_time};
    use proptest::prelude::*;

    /// A packed token: `(base, raw bit count)`, the count 25 standing for a verbatim value.
    fn token() -> impl Strategy<Value = u32> {
        (0u32..1 << 25, 0u32..=25).prop_map(|(base, count)| {
            pack_token(match count {
                25 => TokenInfo {
                    base: 0,
                    raw_bits: VERBATIM_BITS,
                },
                _ => TokenInfo {
                    base,
                    raw_bits: count,
                },
            })
        })
    }

    proptest! {
        #[test]
        fn reads_like_the_one_at_a_time_reader(
            tokens in proptest::collection::vec(token(), 0..=WINDOW_READS),
            bytes in proptest::collection::vec(any::<u8>(), 0..1100),
            skip in 0usize..8,
            lsb in 0u32..3,
        ) {
            prop_assume!(std::arch::is_x86_feature_detected!("avx2"));
            let read = |avx2: bool| {
                let mut bits = RawBits::new(&bytes);
                bits.window(|w| w.skip(skip));
                let mut z = vec![0; tokens.len()];
                bits.window(|w| match avx2 {
                    // SAFETY: the CPU has AVX2 (checked above).
                    true => unsafe { read_indices(&tokens, w, lsb, &mut z) },
                    false => read_one_at_a_time(&tokens, w, lsb, &mut z),
                });
                (z, bits.window(|w| w.position()))
            };
            prop_assert_eq!(read(true), read(false));
        }
    }
}
