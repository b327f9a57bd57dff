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

use crate::bitio::{BitReader, BitWriter};
use crate::entropy::huffman::bits_for;
use crate::CodecError;

/// Chunks of mixed-radix digits grow while their product is below this, so that one more digit
/// (radix < 2^32) never overflows `u128`.
const CHUNK_LIMIT: u128 = 1 << 95;

/// Writes `ranks` (a permutation of `0..ranks.len()`) in `ceil(log2 n)` bits each.
pub fn put_packed(w: &mut BitWriter, ranks: &[u32]) {
    let width = bits_for(ranks.len().saturating_sub(1) as u64);
    ranks.iter().for_each(|&r| w.write(r as u64, width));
}

/// Reads `n` packed ranks and gathers `out[c] = sorted[rank[c]]`.
pub fn gather_packed(
    r: &mut BitReader<'_>,
    sorted: &[f32],
    out: &mut Vec<f32>,
) -> Result<(), CodecError> {
    let width = bits_for(sorted.len().saturating_sub(1) as u64);
    for _ in 0..sorted.len() {
        let rank = r.read(width)? as usize;
        out.push(
            *sorted
                .get(rank)
                .ok_or(CodecError::Corrupt("rank out of range"))?,
        );
    }
    Ok(())
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

/// Reads a permutation of `sorted.len()` ranks and gathers `out[c] = sorted[rank[c]]`.
pub fn gather_permutation(
    r: &mut BitReader<'_>,
    sorted: &[f32],
    out: &mut Vec<f32>,
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
        out.push(sorted[rank]);
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
                let mut w = BitWriter::new();
                if permutation { put_permutation(&mut w, &perm) } else { put_packed(&mut w, &perm) }
                let bits = w.bit_len();
                let bytes = w.finish();
                let mut out = Vec::new();
                let mut r = BitReader::new(&bytes);
                if permutation {
                    gather_permutation(&mut r, &sorted, &mut out).unwrap();
                    let ideal: f64 = (1..=perm.len()).map(|k| (k as f64).log2()).sum();
                    prop_assert!((bits as f64) <= ideal * 1.01 + 8.0, "{} bits vs log2(n!) {}", bits, ideal);
                } else {
                    gather_packed(&mut r, &sorted, &mut out).unwrap();
                }
                let expect: Vec<f32> = perm.iter().map(|&r| r as f32).collect();
                prop_assert_eq!(out, expect);
            }
        }
    }
}
