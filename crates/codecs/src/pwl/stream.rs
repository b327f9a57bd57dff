//! Segment parameters as entropy-coded symbols.
//!
//! Every parameter is a non-negative integer `v`, split DEFLATE-style into a symbol (coded with
//! a canonical Huffman code per parameter kind) and raw extra bits: `v < 16` is its own symbol;
//! larger values are coded by their bit length and the bit below the leading one, followed by
//! the remaining low bits.

use crate::bitio::WordWriter;
use crate::entropy::huffman::{BitSource, Code, MAX_PEEK};
use crate::CodecError;

/// Values below this are symbols of their own.
const DIRECT: u64 = 16;
/// Largest bit length of a coded value.
const MAX_BITS: u32 = 48;
/// Number of symbols: the direct ones plus two per bit length 5..=MAX_BITS.
pub const ALPHABET: usize = DIRECT as usize + 2 * (MAX_BITS as usize - 4);
/// Code length limit the encoder gives the parameter codes. The decoder's tables then take
/// 2^10 four-byte entries each, and the three fit its first-level data cache beside the
/// group's values: with codes of up to 12 bits (what the format allows, [`TABLE_BITS`]) they
/// took 16 kB each, and most of the decoder's cache misses were lookups in them. The limit
/// costs 0.02-0.04% of the payload on the shared models.
pub const CODE_LIMIT: u32 = 10;

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

/// Writes values with one code, the small ones (the most frequent) as a single precomputed
/// bit string each: codeword and extra bits together, the bits [`put`] writes.
#[derive(Debug)]
pub struct ValueWriter<'a> {
    code: &'a Code,
    /// Per value below `words.len()`: `(bits, count)` of its codeword and extra bits.
    words: Vec<(u64, u32)>,
}

impl<'a> ValueWriter<'a> {
    /// Values below this may have a table entry; larger ones are split on every write.
    const TABLE_LIMIT: u64 = 1 << 12;

    /// A writer of `code` with table entries for the values `0..=max` (capped); the entries
    /// of values whose symbol has no code are never used.
    pub fn new(code: &'a Code, max: u64) -> Self {
        let words = (0..=max.min(Self::TABLE_LIMIT - 1))
            .map(|v| {
                let b = Bucket::of(v);
                if code.is_coded(b.symbol) {
                    let (bits, len) = code.codeword(b.symbol);
                    (bits | b.extra << len, len + b.extra_bits)
                } else {
                    // Never written: a value in range whose symbol has no code.
                    (0, 0)
                }
            })
            .collect();
        ValueWriter { code, words }
    }

    /// Writes `v` as [`put`] does.
    #[inline]
    pub fn put(&self, w: &mut WordWriter, v: u64) {
        match self.words.get(v as usize) {
            Some(&(bits, count)) => w.write(bits, count),
            None => put(w, self.code, v),
        }
    }
}

/// The longest codeword a parameter code may have (FORMAT.md): every [`ValueReader`] table has
/// room for an index of that many bits, so that every symbol is found with one lookup.
const TABLE_BITS: u32 = 12;

/// Reads the values of one code, most of them (symbol and extra bits) with one table lookup.
#[derive(Debug)]
pub struct ValueReader {
    /// Indexed by the next bits of the stream, as many as [`ValueReader::mask`] keeps. Its
    /// fixed size makes the index (at most [`TABLE_BITS`] bits) need no bounds check; only the
    /// first `mask + 1` entries are used.
    entries: Box<[Entry; 1 << TABLE_BITS]>,
    /// The low bits that index `entries`: as many as the longest codeword, at least
    /// [`ValueReader::MIN_TABLE_BITS`]. Fewer bits than [`TABLE_BITS`] keep the entries the
    /// decoder reads in fewer cache lines: indexed by all twelve, three tables take 48 kB,
    /// more than a core's first-level data cache.
    mask: u64,
}

/// What the next bits of the stream start with.
#[derive(Debug, Clone, Copy)]
struct Entry {
    /// The value, or the symbol if the entry is not a whole value.
    payload: u16,
    /// Bits of a whole value (codeword and extra bits), else [`Entry::NOT_A_VALUE`]: more
    /// than the stream ever holds, so one comparison tells a value the buffer holds.
    value_bits: u8,
    /// Bits of the symbol's codeword if the entry is not a whole value, else
    /// [`Entry::NO_CODEWORD`] if no codeword starts with these bits.
    symbol_bits: u8,
}

impl Entry {
    const NOT_A_VALUE: u8 = u8::MAX;
    const NO_CODEWORD: u8 = u8::MAX;
}

impl ValueReader {
    /// Tables index at least this many bits, so that the extra bits of most values fit.
    const MIN_TABLE_BITS: u32 = 10;

    /// The reader of values written with `code`; errors if a codeword is longer than
    /// [`TABLE_BITS`] bits, which the format forbids.
    pub fn new(code: &Code) -> Result<Self, CodecError> {
        if code.max_len() > TABLE_BITS {
            return Err(CodecError::Corrupt(
                "pwl parameter code longer than 12 bits",
            ));
        }
        let bits = code.max_len().max(Self::MIN_TABLE_BITS);
        let invalid = Entry {
            payload: 0,
            value_bits: Entry::NOT_A_VALUE,
            symbol_bits: Entry::NO_CODEWORD,
        };
        // Built on the heap, each slot written once: `Box::new` of an array fills it on the
        // stack and copies it over, three tables per tensor decoded.
        let mut entries = Vec::with_capacity(1 << TABLE_BITS);
        entries.resize(1 << bits, invalid);
        for symbol in (0..code.alphabet()).filter(|&s| code.is_coded(s)) {
            let (word, len) = code.codeword(symbol);
            // A symbol outside the alphabet (of a damaged payload) is rejected when read.
            let (base, extra_bits) = SYMBOLS.get(symbol).copied().unwrap_or((0, u32::MAX));
            // Every index whose low `len` bits are the codeword starts with this symbol. A whole
            // value fits in 16 bits: it has at most `bits - len <= 11` extra bits (codewords of
            // a code of two or more symbols have a bit or more; a one-symbol code's table has 10).
            let indices = (0..1u64 << (bits - len)).map(|high| (high, word | high << len));
            if extra_bits <= bits - len {
                let value_bits = (len + extra_bits) as u8;
                let mask = (1 << extra_bits) - 1;
                for (high, index) in indices {
                    entries[index as usize] = Entry {
                        payload: (base | high & mask) as u16,
                        value_bits,
                        symbol_bits: 0,
                    };
                }
            } else {
                let entry = Entry {
                    payload: symbol as u16,
                    value_bits: Entry::NOT_A_VALUE,
                    symbol_bits: len as u8,
                };
                indices.for_each(|(_, index)| entries[index as usize] = entry);
            }
        }
        entries.resize(1 << TABLE_BITS, invalid);
        let entries =
            (entries.into_boxed_slice().try_into()).expect("resized to 2^TABLE_BITS entries");
        Ok(ValueReader {
            entries,
            mask: (1 << bits) - 1,
        })
    }

    /// Reads a value written by [`put`] (or [`ValueWriter::put`]).
    #[inline(always)]
    pub fn get(&self, r: &mut BitSource<'_>) -> Result<u64, CodecError> {
        // `peek` returns a number below `2^TABLE_BITS`, so the index is in range.
        let entry = self.entries[(r.peek(TABLE_BITS) & self.mask) as usize];
        if u32::from(entry.value_bits) <= r.available() {
            r.skip(entry.value_bits.into());
            return Ok(entry.payload.into());
        }
        // A symbol whose extra bits did not fit in the table (large values, such as the ids
        // of rare slopes): symbol and extra bits are read together when the buffer holds them.
        if entry.value_bits == Entry::NOT_A_VALUE {
            if let Some(&(base, extra_bits)) = SYMBOLS.get(usize::from(entry.payload)) {
                let bits = u32::from(entry.symbol_bits) + extra_bits;
                if bits <= MAX_PEEK {
                    let word = r.peek(bits);
                    if bits <= r.available() {
                        r.skip(bits);
                        return Ok(base | word >> entry.symbol_bits);
                    }
                }
            }
        }
        let (value, rest) = Self::get_rest(entry, r.clone())?;
        *r = rest;
        Ok(value)
    }

    /// [`Self::get`] for a value past the end of the stream, a symbol whose extra bits are
    /// read separately, or bits that start no codeword. The reader goes in and out by value,
    /// as in [`BitSource`]'s refill, so that [`Self::get`]'s callers keep theirs in registers.
    #[cold]
    fn get_rest<'a>(
        entry: Entry,
        mut r: BitSource<'a>,
    ) -> Result<(u64, BitSource<'a>), CodecError> {
        if entry.value_bits != Entry::NOT_A_VALUE {
            r.consume(entry.value_bits.into())?;
            return Ok((entry.payload.into(), r));
        }
        if entry.symbol_bits == Entry::NO_CODEWORD {
            return Err(CodecError::Corrupt("bit pattern is not a Huffman code"));
        }
        r.consume(entry.symbol_bits.into())?;
        let value = Bucket::read(entry.payload.into(), &mut r)?;
        Ok((value, r))
    }
}

/// For `K` kinds of values given side by side: the symbol counts of each kind (to build its
/// code) and its largest value.
///
/// Values below [`TALLY_DIRECT`] are counted per value and turned into symbol counts at the
/// end: splitting every value into its symbol as it comes takes a branch between direct
/// symbols and bit lengths that mispredicts on mixed streams (8.5% of the encoder's
/// mispredictions on MobileNetV2 under callgrind).
pub fn tally<const K: usize>(values: impl Iterator<Item = [u64; K]>) -> ([Vec<u64>; K], [u64; K]) {
    let mut counts: [Vec<u64>; K] = std::array::from_fn(|_| vec![0u64; ALPHABET]);
    let mut by_value: [Vec<u64>; K] = std::array::from_fn(|_| vec![0u64; TALLY_DIRECT]);
    let mut max = [0u64; K];
    for v in values {
        for k in 0..K {
            if v[k] < TALLY_DIRECT as u64 {
                by_value[k][v[k] as usize] += 1;
            } else {
                counts[k][Bucket::of(v[k]).symbol] += 1;
            }
            max[k] = max[k].max(v[k]);
        }
    }
    for (counts, by_value) in counts.iter_mut().zip(&by_value) {
        for (v, &count) in by_value.iter().enumerate() {
            counts[Bucket::of(v as u64).symbol] += count;
        }
    }
    (counts, max)
}

/// Values [`tally`] counts one by one before finding their symbols.
const TALLY_DIRECT: usize = 1 << 10;

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
        fn pwl_buckets_round_trip(values in proptest::collection::vec(
            // Small values (whole in the table), medium ones (symbol and extra bits read
            // together) and any up to the largest (extra bits read on their own).
            prop_oneof![0u64..16, 16u64..1 << 24, 0u64..=MAX_VALUE],
            1..100,
        )) {
            let ([counts], [max]) = tally(values.iter().map(|&v| [v]));
            prop_assert_eq!(max, *values.iter().max().unwrap());
            let code = Code::from_counts(&counts, CODE_LIMIT).unwrap();
            // A table that covers part of the values: both ways of writing are exercised.
            let writer = ValueWriter::new(&code, max / 2);
            let (mut w, mut reference) = (WordWriter::default(), WordWriter::default());
            for &v in &values {
                writer.put(&mut w, v);
                put(&mut reference, &code, v);
            }
            let bytes = w.finish();
            prop_assert_eq!(&bytes, &reference.finish());
            let reader = ValueReader::new(&code).unwrap();
            let mut r = BitSource::new(&bytes);
            for &v in &values {
                prop_assert_eq!(reader.get(&mut r).unwrap(), v);
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

    /// Complete codes of lengths 1, 2, ..., `longest`, `longest`.
    fn code_up_to(longest: u8) -> Code {
        let lengths = (1..=longest).chain([longest]).collect();
        Code::from_lengths(lengths).unwrap()
    }

    #[test]
    fn pwl_value_reader_rejects_codewords_past_the_limit() {
        assert!(ValueReader::new(&code_up_to(TABLE_BITS as u8)).is_ok());
        assert!(ValueReader::new(&code_up_to(TABLE_BITS as u8 + 1)).is_err());
    }

    /// Codes longer than the encoder's limit (written by earlier encoders, or others) are read
    /// up to the format's limit.
    #[test]
    fn pwl_value_reader_reads_codewords_past_the_encoders_limit() {
        let code = code_up_to(TABLE_BITS as u8);
        assert!(code.max_len() > CODE_LIMIT);
        // Every symbol (values below 16 are symbols of their own), the 12-bit ones among them,
        // over several refills of the reader's buffer.
        let symbols = 0..=TABLE_BITS as u64;
        let values: Vec<u64> = symbols
            .clone()
            .chain(symbols.rev())
            .cycle()
            .take(100)
            .collect();
        let mut w = WordWriter::default();
        values.iter().for_each(|&v| put(&mut w, &code, v));
        let bytes = w.finish();
        let reader = ValueReader::new(&code).unwrap();
        let mut r = BitSource::new(&bytes);
        for &v in &values {
            assert_eq!(reader.get(&mut r).unwrap(), v);
        }
    }
}
