//! Length-limited canonical Huffman codes with table decoding.
//!
//! Hand-written rather than taken from a crate: the codecs need (a) a code built from counts with
//! a hard length limit, (b) a compact serialization of the code lengths that the payload owns, and
//! (c) symbols interleaved bit-exactly with raw extra bits in the LSB-first streams of
//! [`crate::bitio`]. The Huffman crates on crates.io either own the bit stream, have no length
//! limit, or serialize the tree their own way, so none fitted the payload layout.
//!
//! Codes are written least-significant bit first (bit-reversed canonical codes, as in DEFLATE),
//! so a decoder peeks `max_len` bits and looks the symbol up in one table.

use std::sync::OnceLock;

use crate::bitio::{BitWriter, ByteReader, PutBytes};
use crate::CodecError;

/// Longest code length any [`Code`] may use.
pub const MAX_CODE_LEN: u32 = 15;

/// Largest alphabet a [`Code`] may have.
pub const MAX_ALPHABET: usize = 1 << 12;

/// A canonical prefix code over symbols `0..lengths.len()`.
///
/// A symbol of length 0 is absent, except in the degenerate code with exactly one symbol, which
/// has length 0 and costs no bits.
#[derive(Debug, Clone)]
pub struct Code {
    lengths: Vec<u8>,
    /// Bit-reversed canonical code of each symbol (LSB-first).
    codes: Vec<u32>,
    /// Decode table indexed by the next `max_len` bits: `(symbol, length)`; length 0xff = invalid.
    /// Built by the first [`Code::get`]: readers with tables of their own (the pwl parameter
    /// streams) never pay for it, which matters for the many small tensors of a model.
    table: OnceLock<Vec<(u16, u8)>>,
    max_len: u32,
}

/// Codes are equal when their lengths are: the rest follows from them.
impl PartialEq for Code {
    fn eq(&self, other: &Code) -> bool {
        self.lengths == other.lengths
    }
}

impl Eq for Code {}

impl Code {
    /// The optimal prefix code for `counts` whose lengths do not exceed `limit` (1..=15).
    ///
    /// Symbols with count 0 get no code. Errors if no count is positive, the alphabet is larger
    /// than [`MAX_ALPHABET`], or `limit` is out of range.
    pub fn from_counts(counts: &[u64], limit: u32) -> Result<Code, CodecError> {
        check_alphabet(counts.len())?;
        if !(1..=MAX_CODE_LEN).contains(&limit) {
            return Err(CodecError::InvalidParameter(format!(
                "Huffman length limit {limit} is outside 1..={MAX_CODE_LEN}"
            )));
        }
        let used: Vec<usize> = (0..counts.len()).filter(|&s| counts[s] > 0).collect();
        if used.len() > 1 << limit {
            return Err(CodecError::InvalidParameter(format!(
                "{} symbols do not fit in codes of at most {limit} bits",
                used.len()
            )));
        }
        let mut lengths = vec![0u8; counts.len()];
        match used.len() {
            0 => {
                return Err(CodecError::InvalidParameter(
                    "Huffman code over no symbols".into(),
                ))
            }
            // The degenerate code names its symbol by being the last of the alphabet.
            1 => lengths.truncate(used[0] + 1),
            _ => {
                let raw = huffman_lengths(&used.iter().map(|&s| counts[s]).collect::<Vec<_>>());
                let limited = limit_lengths(raw, &used, counts, limit);
                for (&s, &l) in used.iter().zip(&limited) {
                    lengths[s] = l;
                }
            }
        }
        Code::from_lengths(lengths)
    }

    /// A fixed-length code over every symbol with a positive count: the "no Huffman" baseline.
    pub fn fixed(counts: &[u64]) -> Result<Code, CodecError> {
        check_alphabet(counts.len())?;
        let used = counts.iter().filter(|&&c| c > 0).count();
        if used <= 1 {
            return Code::from_counts(counts, 1);
        }
        let width = bits_for(used as u64 - 1) as u8;
        let lengths = counts
            .iter()
            .map(|&c| if c > 0 { width } else { 0 })
            .collect();
        Code::from_lengths(lengths)
    }

    /// The canonical code with these lengths; errors if they over-subscribe the code space.
    pub fn from_lengths(lengths: Vec<u8>) -> Result<Code, CodecError> {
        check_alphabet(lengths.len())?;
        let max_len = lengths.iter().copied().max().unwrap_or(0) as u32;
        if max_len > MAX_CODE_LEN {
            return Err(CodecError::Corrupt("Huffman code length above the limit"));
        }
        let used = lengths.iter().filter(|&&l| l > 0).count();
        if used == 0 {
            return Self::degenerate(lengths);
        }
        let kraft: u64 = lengths
            .iter()
            .filter(|&&l| l > 0)
            .map(|&l| 1u64 << (max_len - l as u32))
            .sum();
        if kraft > 1u64 << max_len {
            return Err(CodecError::Corrupt("Huffman code lengths over-subscribed"));
        }
        let codes = canonical_codes(&lengths, max_len);
        Ok(Code {
            lengths,
            codes,
            table: OnceLock::new(),
            max_len,
        })
    }

    /// The code with a single symbol, written as all lengths zero: the symbol is the last one
    /// of the alphabet.
    fn degenerate(lengths: Vec<u8>) -> Result<Code, CodecError> {
        let symbol = lengths
            .len()
            .checked_sub(1)
            .ok_or(CodecError::Corrupt("empty Huffman alphabet"))?;
        Ok(Code {
            codes: vec![0; lengths.len()],
            lengths,
            table: OnceLock::from(vec![(symbol as u16, 0)]),
            max_len: 0,
        })
    }

    /// Code length of `symbol` in bits (0 for the single symbol of a degenerate code).
    pub fn len_of(&self, symbol: usize) -> u32 {
        self.lengths.get(symbol).map_or(0, |&l| l as u32)
    }

    /// Number of symbols in the alphabet.
    pub fn alphabet(&self) -> usize {
        self.lengths.len()
    }

    /// Writes `symbol`, which must have a code (debug-checked).
    pub fn put(&self, w: &mut BitWriter, symbol: usize) {
        debug_assert!(self.is_coded(symbol), "symbol {symbol} has no code");
        w.write(self.codes[symbol] as u64, self.lengths[symbol] as u32);
    }

    /// The bits [`Code::put`] writes for `symbol` (which must have a code, debug-checked):
    /// `(bits, length)`, for writers other than [`BitWriter`].
    #[inline]
    pub fn codeword(&self, symbol: usize) -> (u64, u32) {
        debug_assert!(self.is_coded(symbol), "symbol {symbol} has no code");
        (self.codes[symbol] as u64, self.lengths[symbol] as u32)
    }

    /// Longest code length (0 for a degenerate code).
    pub fn max_len(&self) -> u32 {
        self.max_len
    }

    /// Whether `symbol` has a code (the single symbol of a degenerate code has one of length 0).
    pub fn is_coded(&self, symbol: usize) -> bool {
        symbol < self.lengths.len() && (self.lengths[symbol] > 0 || self.max_len == 0)
    }

    /// Serializes the code: varint alphabet size, then 4 bits per symbol length. A degenerate
    /// code is written with all lengths zero and its symbol last.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.put_varint(self.lengths.len() as u64);
        let mut w = BitWriter::new();
        for &l in &self.lengths {
            w.write(l as u64, 4);
        }
        out.extend_from_slice(&w.finish());
    }

    /// Inverse of [`Code::write`].
    pub fn read(r: &mut ByteReader<'_>) -> Result<Code, CodecError> {
        let len = r.varint_max(MAX_ALPHABET as u64)?;
        let bytes = r.take(len.div_ceil(2))?;
        let lengths = (0..len)
            .map(|i| (bytes[i / 2] >> (4 * (i % 2))) & 0xf)
            .collect();
        Code::from_lengths(lengths)
    }

    /// Reads one symbol.
    #[inline(always)]
    pub fn get(&self, r: &mut BitSource<'_>) -> Result<usize, CodecError> {
        let (symbol, len) = self
            .table
            .get_or_init(|| decode_table(&self.lengths, &self.codes, self.max_len))
            .get(r.peek(self.max_len) as usize)
            .copied()
            .filter(|&(_, len)| len != INVALID)
            .ok_or(CodecError::Corrupt("bit pattern is not a Huffman code"))?;
        r.consume(len as u32)?;
        Ok(symbol as usize)
    }
}

const INVALID: u8 = 0xff;

fn check_alphabet(len: usize) -> Result<(), CodecError> {
    if len > MAX_ALPHABET {
        return Err(CodecError::InvalidParameter(format!(
            "Huffman alphabet of {len} symbols exceeds {MAX_ALPHABET}"
        )));
    }
    Ok(())
}

/// Bits needed to write values up to `max` (0 for `max == 0`).
pub fn bits_for(max: u64) -> u32 {
    64 - max.leading_zeros()
}

/// Unlimited Huffman code lengths for positive `weights` (two or more).
fn huffman_lengths(weights: &[u64]) -> Vec<u32> {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    // Nodes 0..n are leaves; internal nodes are appended. Ties break by node index, which
    // makes the lengths deterministic.
    let n = weights.len();
    let mut parent = vec![usize::MAX; 2 * n - 1];
    let mut heap: BinaryHeap<Reverse<(u64, usize)>> = weights
        .iter()
        .enumerate()
        .map(|(i, &w)| Reverse((w, i)))
        .collect();
    let mut next = n;
    while let (Some(Reverse((wa, a))), Some(Reverse((wb, b)))) = (heap.pop(), heap.pop()) {
        parent[a] = next;
        parent[b] = next;
        heap.push(Reverse((wa.saturating_add(wb), next)));
        next += 1;
    }
    let mut depth = vec![0u32; 2 * n - 1];
    for node in (0..2 * n - 2).rev() {
        depth[node] = depth[parent[node]] + 1;
    }
    depth.truncate(n);
    depth
}

/// Clamps lengths to `limit` and restores the Kraft inequality by lengthening the codes of the
/// rarest symbols first (the heuristic of zlib-style encoders; optimal codes are rarely clipped).
fn limit_lengths(mut lengths: Vec<u32>, used: &[usize], counts: &[u64], limit: u32) -> Vec<u8> {
    let unit = |l: u32| 1u64 << (limit - l);
    lengths.iter_mut().for_each(|l| *l = (*l).min(limit));
    let mut kraft: u64 = lengths.iter().map(|&l| unit(l)).sum();
    let mut by_rarity: Vec<usize> = (0..used.len()).collect();
    by_rarity.sort_by_key(|&i| (counts[used[i]], std::cmp::Reverse(lengths[i])));
    while kraft > 1u64 << limit {
        // Lengthen the rarest symbol that can still grow; each step frees unit(l + 1).
        let Some(&i) = by_rarity.iter().find(|&&i| lengths[i] < limit) else {
            break;
        };
        kraft -= unit(lengths[i] + 1);
        lengths[i] += 1;
    }
    lengths.into_iter().map(|l| l as u8).collect()
}

/// Canonical codes (shorter first, then by symbol), bit-reversed for LSB-first writing.
fn canonical_codes(lengths: &[u8], max_len: u32) -> Vec<u32> {
    let mut count = vec![0u32; max_len as usize + 2];
    lengths.iter().for_each(|&l| count[l as usize] += 1);
    count[0] = 0;
    let mut next = vec![0u32; max_len as usize + 2];
    for l in 1..=max_len as usize {
        next[l] = (next[l - 1] + count[l - 1]) << 1;
    }
    lengths
        .iter()
        .map(|&l| {
            if l == 0 {
                return 0;
            }
            let c = next[l as usize];
            next[l as usize] += 1;
            c.reverse_bits() >> (32 - l as u32)
        })
        .collect()
}

fn decode_table(lengths: &[u8], codes: &[u32], max_len: u32) -> Vec<(u16, u8)> {
    let mut table = vec![(0u16, INVALID); 1 << max_len];
    for (s, (&l, &c)) in lengths.iter().zip(codes).enumerate() {
        if l == 0 {
            continue;
        }
        // Every table index whose low `l` bits equal the code decodes to `s`.
        for hi in 0..1usize << (max_len - l as u32) {
            table[c as usize | (hi << l)] = (s as u16, l);
        }
    }
    table
}

/// An LSB-first bit reader with peeking, over the bytes of a [`BitWriter`].
///
/// [`crate::bitio::BitReader`] has no peek, which table decoding needs; this reader reads the
/// same bit order. It keeps the next bits in a 64-bit buffer, refilled a word at a time, so
/// that a symbol costs a mask, a table lookup and a shift.
#[derive(Debug, Clone)]
pub struct BitSource<'a> {
    bytes: &'a [u8],
    /// Next byte of `bytes` to load into `acc`.
    pos: usize,
    /// The next `avail` bits of the stream, least significant first; above them the bits
    /// that follow, or zeros.
    acc: u64,
    /// A full word rather than a `u32`: with four bytes of padding beside it, the compiler
    /// carried the count and the padding in one register, masking and merging at every read.
    avail: u64,
}

/// Most bits [`BitSource::peek`] and [`BitSource::read`] take at once.
pub const MAX_PEEK: u32 = 56;

impl<'a> BitSource<'a> {
    /// A reader at the first bit of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        BitSource {
            bytes,
            pos: 0,
            acc: 0,
            avail: 0,
        }
    }

    /// Loads whole bytes into the buffer until it holds at least [`MAX_PEEK`] bits or the
    /// bytes run out. Called whatever the buffer holds, before a few reads that take at most
    /// [`MAX_PEEK`] bits together, it spares those reads their test for a refill, a branch
    /// that mispredicts whenever the count of buffered bits varies from read to read. On a
    /// full buffer it loads nothing new.
    #[inline]
    pub fn refill(&mut self) {
        match self
            .bytes
            .get(self.pos..)
            .and_then(|t| t.first_chunk::<8>())
        {
            Some(word) => {
                // Bytes that fit whole above the `avail` bits; the bits of a partly fitting
                // byte are loaded again by the next refill.
                self.acc |= u64::from_le_bytes(*word) << self.avail;
                self.pos += ((63 - self.avail) / 8) as usize;
                self.avail |= u64::from(MAX_PEEK);
            }
            None => *self = self.clone().with_tail_refilled(),
        }
    }

    /// [`Self::refill`] within the last eight bytes. The reader goes in and out by value so
    /// that a caller's reader can stay in registers: a reference passed to a call that is not
    /// inlined would keep it in memory, with a store and a load around every read.
    #[cold]
    fn with_tail_refilled(mut self) -> Self {
        while self.avail <= u64::from(MAX_PEEK) {
            let Some(&byte) = self.bytes.get(self.pos) else {
                break;
            };
            self.acc |= (byte as u64) << self.avail;
            self.pos += 1;
            self.avail += 8;
        }
        self
    }

    /// The next `count` (<= [`MAX_PEEK`]) bits without consuming them; bits past the end read
    /// as zero.
    #[inline]
    pub fn peek(&mut self, count: u32) -> u64 {
        debug_assert!(count <= MAX_PEEK);
        if self.avail < u64::from(count) {
            self.refill();
        }
        self.acc & ((1u64 << count) - 1)
    }

    /// Skips `count` (<= [`MAX_PEEK`]) bits; errors if that passes the end.
    #[inline]
    pub fn consume(&mut self, count: u32) -> Result<(), CodecError> {
        if self.avail < u64::from(count) {
            self.refill();
            if self.avail < u64::from(count) {
                return Err(CodecError::Corrupt("bit stream ends early"));
            }
        }
        self.acc >>= count;
        self.avail -= u64::from(count);
        Ok(())
    }

    /// Number of bits in the buffer: [`Self::skip`] may take that many.
    #[inline]
    pub fn available(&self) -> u32 {
        self.avail as u32 // At most 63.
    }

    /// Skips `count` bits that the buffer holds (`count <= self.available()`).
    #[inline]
    pub fn skip(&mut self, count: u32) {
        debug_assert!(u64::from(count) <= self.avail);
        self.acc >>= count;
        self.avail -= u64::from(count);
    }

    /// Reads `count` (<= [`MAX_PEEK`]) bits.
    #[inline]
    pub fn read(&mut self, count: u32) -> Result<u64, CodecError> {
        let v = self.peek(count);
        self.consume(count)?;
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(code: &Code, symbols: &[usize]) -> Vec<usize> {
        let mut w = BitWriter::new();
        symbols.iter().for_each(|&s| code.put(&mut w, s));
        let bytes = w.finish();
        let mut r = BitSource::new(&bytes);
        symbols.iter().map(|_| code.get(&mut r).unwrap()).collect()
    }

    fn is_prefix_free(code: &Code) -> bool {
        let coded: Vec<usize> = (0..code.alphabet())
            .filter(|&s| code.len_of(s) > 0)
            .collect();
        coded.iter().all(|&a| {
            coded.iter().all(|&b| {
                let la = code.len_of(a).min(code.len_of(b));
                a == b || (code.codes[a] ^ code.codes[b]) & ((1 << la) - 1) != 0
            })
        })
    }

    proptest! {
        #[test]
        fn huffman_round_trips_and_is_prefix_free(
            counts in proptest::collection::vec(0u64..1000, 1..300),
            limit in 1u32..=15,
            picks in proptest::collection::vec(any::<proptest::sample::Index>(), 0..500),
        ) {
            let used: Vec<usize> = (0..counts.len()).filter(|&s| counts[s] > 0).collect();
            prop_assume!(!used.is_empty() && used.len() <= 1 << limit);
            let code = Code::from_counts(&counts, limit).unwrap();
            prop_assert!(is_prefix_free(&code));
            prop_assert!(used.iter().all(|&s| code.len_of(s) <= limit));
            prop_assert!(used.len() == 1 || used.iter().all(|&s| code.len_of(s) > 0));
            let symbols: Vec<usize> = picks.iter().map(|i| used[i.index(used.len())]).collect();
            prop_assert_eq!(round_trip(&code, &symbols), symbols);
            let mut bytes = Vec::new();
            code.write(&mut bytes);
            let back = Code::read(&mut ByteReader::new(&bytes)).unwrap();
            prop_assert_eq!(back, code);
        }

        #[test]
        fn huffman_read_of_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(code) = Code::read(&mut ByteReader::new(&bytes)) {
                let mut r = BitSource::new(&bytes);
                for _ in 0..100 {
                    if code.get(&mut r).is_err() { break; }
                }
            }
        }
    }

    #[test]
    fn huffman_is_optimal_on_a_dyadic_source() {
        let code = Code::from_counts(&[8, 4, 2, 1, 1], 15).unwrap();
        let lens: Vec<u32> = (0..5).map(|s| code.len_of(s)).collect();
        assert_eq!(lens, [1, 2, 3, 4, 4]);
    }

    #[test]
    fn huffman_length_limit_is_enforced_on_fibonacci_counts() {
        let mut counts = vec![1u64, 1];
        while counts.len() < 30 {
            counts.push(counts[counts.len() - 1] + counts[counts.len() - 2]);
        }
        let code = Code::from_counts(&counts, 8).unwrap();
        assert!((0..30).all(|s| (1..=8).contains(&code.len_of(s))));
        let symbols: Vec<usize> = (0..30).chain((0..30).rev()).collect();
        assert_eq!(round_trip(&code, &symbols), symbols);
    }

    #[test]
    fn huffman_single_symbol_costs_no_bits() {
        let code = Code::from_counts(&[0, 0, 7], 12).unwrap();
        let mut w = BitWriter::new();
        code.put(&mut w, 2);
        assert_eq!(w.bit_len(), 0);
        assert_eq!(round_trip(&code, &[2, 2, 2]), [2, 2, 2]);
        let mut bytes = Vec::new();
        code.write(&mut bytes);
        assert_eq!(Code::read(&mut ByteReader::new(&bytes)).unwrap(), code);
    }

    #[test]
    fn huffman_rejects_over_subscribed_lengths() {
        assert!(Code::from_lengths(vec![1, 1, 1]).is_err());
        assert!(Code::from_counts(&[0, 0], 8).is_err());
        assert!(Code::from_counts(&[1, 1, 1], 1).is_err());
    }

    #[test]
    fn fixed_code_uses_equal_lengths() {
        let code = Code::fixed(&[3, 0, 1, 9, 2]).unwrap();
        assert_eq!(code.len_of(0), 2);
        assert_eq!(code.len_of(1), 0);
        assert_eq!(round_trip(&code, &[0, 2, 3, 4]), [0, 2, 3, 4]);
    }
}
