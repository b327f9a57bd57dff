//! Segment parameters as entropy-coded symbols.
//!
//! Every parameter is a non-negative integer `v`, split DEFLATE-style into a symbol (coded with
//! a canonical Huffman code per parameter kind) and raw extra bits: `v < 16` is its own symbol;
//! larger values are coded by their bit length and the bit below the leading one, followed by
//! the remaining low bits.

use super::bits::WordWriter;
use crate::entropy::huffman::{BitSource, Code};
use crate::CodecError;

/// Values below this are symbols of their own.
const DIRECT: u64 = 16;
/// Largest bit length of a coded value.
const MAX_BITS: u32 = 48;
/// Number of symbols: the direct ones plus two per bit length 5..=MAX_BITS.
pub const ALPHABET: usize = DIRECT as usize + 2 * (MAX_BITS as usize - 4);
/// Code length limit of the parameter codes.
pub const CODE_LIMIT: u32 = 12;

/// Largest value [`Bucket::of`] accepts.
pub const MAX_VALUE: u64 = (1 << MAX_BITS) - 1;

/// A value split into symbol and extra bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    /// Huffman symbol.
    pub symbol: usize,
    /// Number of extra bits.
    pub extra_bits: u32,
    /// The extra bits.
    pub extra: u64,
}

impl Bucket {
    /// Splits `v` (<= [`MAX_VALUE`]).
    pub fn of(v: u64) -> Bucket {
        debug_assert!(v <= MAX_VALUE);
        if v < DIRECT {
            return Bucket {
                symbol: v as usize,
                extra_bits: 0,
                extra: 0,
            };
        }
        let e = 63 - v.leading_zeros(); // index of the leading one, >= 4
        let half = (v >> (e - 1)) & 1;
        Bucket {
            symbol: DIRECT as usize + 2 * (e as usize - 4) + half as usize,
            extra_bits: e - 1,
            extra: v & ((1 << (e - 1)) - 1),
        }
    }

    /// The value of `symbol` with its extra bits read from `r`.
    #[inline(always)]
    pub fn read(symbol: usize, r: &mut BitSource<'_>) -> Result<u64, CodecError> {
        // A table instead of a branch on direct symbols, which mispredicts on mixed streams.
        let &(base, extra_bits) = SYMBOLS
            .get(symbol)
            .ok_or(CodecError::Corrupt("parameter symbol out of range"))?;
        Ok(base | r.read(extra_bits)?)
    }
}

/// Per symbol: the value with its extra bits zero, and the number of extra bits.
const SYMBOLS: [(u64, u32); ALPHABET] = symbols();

const fn symbols() -> [(u64, u32); ALPHABET] {
    let mut table = [(0, 0); ALPHABET];
    let mut symbol = 0;
    while symbol < ALPHABET {
        table[symbol] = if symbol < DIRECT as usize {
            (symbol as u64, 0)
        } else {
            let t = symbol - DIRECT as usize;
            let e = t as u32 / 2 + 4;
            let top = 2 | (t as u64 & 1);
            (top << (e - 1), e - 1)
        };
        symbol += 1;
    }
    table
}

/// Writes `v` with `code`.
pub fn put(w: &mut WordWriter, code: &Code, v: u64) {
    let b = Bucket::of(v);
    let (bits, len) = code.codeword(b.symbol);
    w.write(bits, len);
    w.write(b.extra, b.extra_bits);
}

/// Reads a value written by [`put`].
#[inline(always)]
pub fn get(r: &mut BitSource<'_>, code: &Code) -> Result<u64, CodecError> {
    let symbol = code.get(r)?;
    Bucket::read(symbol, r)
}

/// Symbol counts of `values`, for building a code.
pub fn counts(values: impl Iterator<Item = u64>) -> Vec<u64> {
    let mut c = vec![0u64; ALPHABET];
    values.for_each(|v| c[Bucket::of(v).symbol] += 1);
    c
}

/// Zigzag map of a signed integer.
pub fn zigzag(k: i64) -> u64 {
    ((k << 1) ^ (k >> 63)) as u64
}

/// Inverse of [`zigzag`].
pub fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn pwl_buckets_round_trip(values in proptest::collection::vec(0u64..=MAX_VALUE, 1..100)) {
            let code = Code::from_counts(&counts(values.iter().copied()), CODE_LIMIT).unwrap();
            let mut w = WordWriter::default();
            values.iter().for_each(|&v| put(&mut w, &code, v));
            let bytes = w.finish();
            let mut r = BitSource::new(&bytes);
            for &v in &values {
                prop_assert_eq!(get(&mut r, &code).unwrap(), v);
            }
        }
    }

    #[test]
    fn pwl_bucket_edges() {
        assert_eq!(Bucket::of(15).symbol, 15);
        assert_eq!(Bucket::of(16).symbol, 16);
        assert_eq!(Bucket::of(24).symbol, 17);
        assert_eq!(Bucket::of(MAX_VALUE).symbol, ALPHABET - 1);
        assert_eq!(unzigzag(zigzag(-5)), -5);
    }
}
