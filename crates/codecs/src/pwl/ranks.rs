//! The dense part: every weight's rank within its sorted group.
//!
//! Two codings:
//! - packed (the thesis' dense matrix): each rank in `ceil(log2 n)` bits;
//! - permutation (ablation): the Lehmer code of the ranks, whose digit `c` lies in `0..n - c`,
//!   packed as mixed-radix numbers in `u128` chunks. That costs `log2(n!)` bits plus under one
//!   bit per chunk of about nine 10-bit digits, so within ~0.05 bit per weight of the information
//!   content of a permutation. The shared rANS coder was not used: its models carry at most
//!   4096 symbols at 12-bit precision, while the digits here are uniform over radices up to
//!   `n`, which mixed-radix arithmetic codes exactly.

use crate::bitio::WordWriter;
use crate::bitio::{BitReader, BitWriter};
use crate::entropy::huffman::bits_for;
use crate::CodecError;
use std::mem::MaybeUninit;

/// Chunks of mixed-radix digits grow while their product is below this, so that one more digit
/// (radix < 2^32) never overflows `u128`.
const CHUNK_LIMIT: u128 = 1 << 95;

/// Writes `ranks` (a permutation of `0..ranks.len()`) in `ceil(log2 n)` bits each.
pub fn put_packed(w: &mut WordWriter, ranks: &[u32]) {
    let width = bits_for(ranks.len().saturating_sub(1) as u64);
    // As many ranks as fit in one write (57 bits) are joined first, the first lowest.
    let per_write = (57 / width.max(1)) as usize;
    for chunk in ranks.chunks(per_write) {
        let joined = chunk
            .iter()
            .rev()
            .fold(0u64, |acc, &r| (acc << width) | u64::from(r));
        w.write(joined, width * chunk.len() as u32);
    }
}

/// Reads packed ranks a word at a time and gathers the values they point to.
#[derive(Debug)]
pub struct PackedReader<'a> {
    bytes: &'a [u8],
    /// Position of the next rank, in bits.
    bit: usize,
}

impl<'a> PackedReader<'a> {
    /// A reader at the start of the rank stream `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        PackedReader { bytes, bit: 0 }
    }

    /// Reads `sorted.len()` packed ranks and appends `convert(sorted[rank])` for each to `out`.
    /// Inlined into the decoder's loop, so that it is compiled for the instruction set the
    /// decoder picked at run time.
    #[inline(always)]
    pub fn gather<T: Copy>(
        &mut self,
        sorted: &[f32],
        out: &mut Vec<T>,
        convert: impl Fn(f32) -> T + Copy,
    ) -> Result<(), CodecError> {
        let n = sorted.len();
        let width = bits_for(n.saturating_sub(1) as u64);
        let end = (width as usize)
            .checked_mul(n)
            .and_then(|bits| bits.checked_add(self.bit))
            .filter(|&end| end <= self.bytes.len().saturating_mul(8))
            .ok_or(CodecError::Corrupt("rank stream ends early"))?;
        // The values go straight into the spare capacity: growing `out` with zeros first
        // wrote every slot twice (the zeros took 4.5% of the decoder's instructions).
        out.reserve(n);
        let slots = &mut out.spare_capacity_mut()[..n];
        // A word loaded at the byte of its first bit holds at least 57 bits from that bit on:
        // `57 / width` whole ranks come out of one load. A fixed number per load (a power of
        // two that fits) makes the inner loop one unrolled block, without an exit to predict.
        match width {
            0..=7 => self.gather_words::<8, _>(sorted, slots, width, convert)?,
            8..=14 => self.gather_words::<4, _>(sorted, slots, width, convert)?,
            15..=28 => self.gather_words::<2, _>(sorted, slots, width, convert)?,
            _ => self.gather_words::<1, _>(sorted, slots, width, convert)?,
        }
        // SAFETY: `gather_words` returned without an error, so it wrote all `n` slots that
        // follow the first `out.len()`, which the capacity reserved above holds.
        unsafe { out.set_len(out.len() + n) };
        self.bit = end;
        Ok(())
    }

    /// Writes `sorted[rank]` to all of `slots` for the next `slots.len()` ranks of `width`
    /// bits (or returns an error), unpacking `K` ranks per load (`K * width <= 57`); the
    /// bounds were checked by the caller.
    #[inline(always)]
    fn gather_words<const K: usize, T: Copy>(
        &self,
        sorted: &[f32],
        slots: &mut [MaybeUninit<T>],
        width: u32,
        convert: impl Fn(f32) -> T,
    ) -> Result<(), CodecError> {
        let mask = (1u64 << width) - 1;
        let mut bit = self.bit;
        let gather = |slots: &mut [MaybeUninit<T>], bit: usize| -> Result<(), CodecError> {
            let mut word = self.word(bit / 8) >> (bit % 8);
            for slot in slots {
                slot.write(convert(
                    *sorted
                        .get((word & mask) as usize)
                        .ok_or(CodecError::Corrupt("rank out of range"))?,
                ));
                word >>= width;
            }
            Ok(())
        };
        let mut blocks = slots.chunks_exact_mut(K);
        for block in &mut blocks {
            gather(block, bit)?;
            bit += K * width as usize;
        }
        gather(blocks.into_remainder(), bit)
    }

    /// Eight bytes from `byte` on (zero past the end), little-endian.
    #[inline]
    fn word(&self, byte: usize) -> u64 {
        match self.bytes.get(byte..).and_then(|t| t.first_chunk::<8>()) {
            Some(w) => u64::from_le_bytes(*w),
            None => self.tail_word(byte),
        }
    }

    #[cold]
    fn tail_word(&self, byte: usize) -> u64 {
        let mut word = [0u8; 8];
        let tail = self.bytes.get(byte..).unwrap_or_default();
        word[..tail.len().min(8)].copy_from_slice(&tail[..tail.len().min(8)]);
        u64::from_le_bytes(word)
    }
}

/// A Fenwick tree over `0..n` counting the ranks not yet used.
struct Unused {
    tree: Vec<u32>,
}

impl Unused {
    fn full(n: usize) -> Self {
        let mut tree = vec![0u32; n + 1];
        for i in 1..=n {
            tree[i] += 1;
            let parent = i + (i & i.wrapping_neg());
            if parent <= n {
                tree[parent] += tree[i];
            }
        }
        Unused { tree }
    }

    /// Number of unused ranks below `rank`.
    fn below(&self, rank: usize) -> usize {
        let (mut i, mut sum) = (rank, 0usize);
        while i > 0 {
            sum += self.tree[i] as usize;
            i &= i - 1;
        }
        sum
    }

    fn remove(&mut self, rank: usize) {
        let mut i = rank + 1;
        while i < self.tree.len() {
            self.tree[i] -= 1;
            i += i & i.wrapping_neg();
        }
    }

    /// The unused rank with exactly `k` unused ranks below it (`k` < number unused).
    fn nth(&self, mut k: usize) -> usize {
        let n = self.tree.len() - 1;
        let (mut pos, mut step) = (0usize, n.checked_next_power_of_two().unwrap_or(0));
        while step > 0 {
            let next = pos + step;
            if next <= n && (self.tree[next] as usize) <= k {
                pos = next;
                k -= self.tree[next] as usize;
            }
            step >>= 1;
        }
        pos
    }
}

/// Chunk boundaries: digits `c` of a group of `n` have radix `n - c`; radix-1 digits are free.
fn chunks(n: usize) -> impl Iterator<Item = (usize, usize, u128)> {
    let mut c = 0;
    std::iter::from_fn(move || {
        if c + 1 >= n {
            return None;
        }
        let (start, mut product) = (c, 1u128);
        while c + 1 < n && product < CHUNK_LIMIT {
            product *= (n - c) as u128;
            c += 1;
        }
        Some((start, c, product))
    })
}

fn write_u128(w: &mut BitWriter, v: u128, bits: u32) {
    let mut written = 0;
    while written < bits {
        let take = (bits - written).min(56);
        w.write((v >> written) as u64, take);
        written += take;
    }
}

fn read_u128(r: &mut BitReader<'_>, bits: u32) -> Result<u128, CodecError> {
    let (mut v, mut read) = (0u128, 0);
    while read < bits {
        let take = (bits - read).min(56);
        v |= (r.read(take)? as u128) << read;
        read += take;
    }
    Ok(v)
}

/// Writes the permutation `ranks` as its Lehmer code in mixed-radix chunks.
pub fn put_permutation(w: &mut BitWriter, ranks: &[u32]) {
    let n = ranks.len();
    let mut unused = Unused::full(n);
    let digits: Vec<usize> = ranks
        .iter()
        .map(|&r| {
            let d = unused.below(r as usize);
            unused.remove(r as usize);
            d
        })
        .collect();
    for (start, end, product) in chunks(n) {
        let v = (start..end).fold(0u128, |v, c| v * (n - c) as u128 + digits[c] as u128);
        write_u128(w, v, bits_for128(product - 1));
    }
}

fn bits_for128(max: u128) -> u32 {
    128 - max.leading_zeros()
}

/// Reads a permutation of `sorted.len()` ranks and appends `convert(sorted[rank[c]])` for each
/// position `c` to `out`.
pub fn gather_permutation<T>(
    r: &mut BitReader<'_>,
    sorted: &[f32],
    out: &mut Vec<T>,
    convert: impl Fn(f32) -> T,
) -> Result<(), CodecError> {
    let n = sorted.len();
    let mut digits = vec![0usize; n];
    for (start, end, product) in chunks(n) {
        let mut v = read_u128(r, bits_for128(product - 1))?;
        if v >= product {
            return Err(CodecError::Corrupt("Lehmer chunk out of range"));
        }
        for c in (start..end).rev() {
            let radix = (n - c) as u128;
            digits[c] = (v % radix) as usize;
            v /= radix;
        }
    }
    let mut unused = Unused::full(n);
    for &d in &digits {
        let rank = unused.nth(d);
        unused.remove(rank);
        out.push(convert(sorted[rank]));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn pwl_rank_codings_round_trip(perm in (0usize..600).prop_flat_map(|n| {
            Just((0..n as u32).collect::<Vec<_>>()).prop_shuffle()
        })) {
            let sorted: Vec<f32> = (0..perm.len()).map(|i| i as f32).collect();
            for permutation in [false, true] {
                let mut out = Vec::new();
                if permutation {
                    let mut w = BitWriter::new();
                    put_permutation(&mut w, &perm);
                    let bits = w.bit_len();
                    let bytes = w.finish();
                    gather_permutation(&mut BitReader::new(&bytes), &sorted, &mut out, |v| v).unwrap();
                    let ideal: f64 = (1..=perm.len()).map(|k| (k as f64).log2()).sum();
                    prop_assert!((bits as f64) <= ideal * 1.01 + 8.0, "{} bits vs log2(n!) {}", bits, ideal);
                } else {
                    // Twice, so that the second group starts within a byte.
                    let mut p = WordWriter::default();
                    put_packed(&mut p, &perm);
                    put_packed(&mut p, &perm);
                    let bytes = p.finish();
                    let mut w = BitWriter::new();
                    let width = bits_for(perm.len().saturating_sub(1) as u64);
                    perm.iter().chain(&perm).for_each(|&r| w.write(r as u64, width));
                    prop_assert_eq!(&bytes, &w.finish());
                    let mut r = PackedReader::new(&bytes);
                    r.gather(&sorted, &mut out, |v| v).unwrap();
                    let mut again = Vec::new();
                    r.gather(&sorted, &mut again, |v| v).unwrap();
                    prop_assert_eq!(&out, &again);
                }
                let expect: Vec<f32> = perm.iter().map(|&r| r as f32).collect();
                prop_assert_eq!(out, expect);
            }
        }
    }

    #[test]
    fn pwl_packed_ranks_of_large_groups_round_trip() {
        // Ranks of 15 to 17 bits, unpacked two per load (smaller groups take the property
        // test above); `(7 i + 3) mod n` is a permutation for `n` prime to 7.
        for n in [16_385u32, 40_000, 70_001] {
            let perm: Vec<u32> = (0..n)
                .map(|i| ((7 * u64::from(i) + 3) % u64::from(n)) as u32)
                .collect();
            let mut w = WordWriter::default();
            put_packed(&mut w, &perm);
            let bytes = w.finish();
            let sorted: Vec<f32> = (0..n).map(|i| i as f32).collect();
            let mut out = Vec::new();
            PackedReader::new(&bytes)
                .gather(&sorted, &mut out, |v| v)
                .unwrap();
            assert!(
                perm.iter().zip(&out).all(|(&r, &v)| v == r as f32),
                "n = {n}"
            );
        }
    }
}
