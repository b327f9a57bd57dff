//! Splitting elements into a head field and tail chunks, and joining them back.
//!
//! Every element (at most 64 bits) is read as a little-endian integer `v` and split into the
//! *head* (`head_bits` bits starting at bit `low_bits`: the exponent of a float, the top byte of
//! an integer) and the *tail* (the bits above the head, then the `low_bits` bits below it: sign
//! and mantissa of a float). The tail is cut into chunks of 8 bits from its top; the last chunk
//! holds what is left.

use crate::DType;

/// Where the head field sits in the elements of one dtype.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Layout {
    /// Element size in bytes.
    size: usize,
    /// Bits below the head.
    low_bits: u32,
    /// Bits of the head (at most 11).
    pub(super) head_bits: u32,
}

impl Layout {
    /// The layout of `dtype`: floats split off their exponent, other types their top byte.
    pub(super) fn of(dtype: DType) -> Layout {
        let size = dtype.size();
        let (low_bits, head_bits) = match dtype {
            DType::F32 => (23, 8),
            DType::F16 => (10, 5),
            DType::BF16 => (7, 8),
            DType::F64 => (52, 11),
            _ => (8 * size as u32 - 8, 8),
        };
        Layout {
            size,
            low_bits,
            head_bits,
        }
    }

    fn tail_bits(&self) -> u32 {
        8 * self.size as u32 - self.head_bits
    }

    /// Bit widths of the tail chunks, from the top of the tail.
    pub(super) fn chunk_bits(&self) -> Vec<u32> {
        let tail = self.tail_bits();
        (0..tail.div_ceil(8))
            .map(|k| (tail - 8 * k).min(8))
            .collect()
    }

    fn element(&self, bytes: &[u8]) -> u64 {
        let mut le = [0u8; 8];
        le[..self.size].copy_from_slice(bytes);
        u64::from_le_bytes(le)
    }

    /// Head and tail of one element.
    fn split_one(&self, v: u64) -> (u16, u64) {
        let low_mask = (1u64 << self.low_bits) - 1;
        let head = (v >> self.low_bits) & ((1 << self.head_bits) - 1);
        let above = v.checked_shr(self.low_bits + self.head_bits).unwrap_or(0);
        (head as u16, (above << self.low_bits) | (v & low_mask))
    }

    fn join_one(&self, head: u16, tail: u64) -> u64 {
        let low_mask = (1u64 << self.low_bits) - 1;
        let above = tail >> self.low_bits;
        above
            .checked_shl(self.low_bits + self.head_bits)
            .unwrap_or(0)
            | (u64::from(head) << self.low_bits)
            | (tail & low_mask)
    }

    /// Splits `data` (whole elements) into the head plane and one plane per tail chunk.
    pub(super) fn split(&self, data: &[u8]) -> (Vec<u16>, Vec<Vec<u16>>) {
        let n = data.len() / self.size;
        let chunks = self.chunk_bits();
        let mut heads = Vec::with_capacity(n);
        let mut tails: Vec<Vec<u16>> = chunks.iter().map(|_| Vec::with_capacity(n)).collect();
        for e in data.chunks_exact(self.size) {
            let (head, tail) = self.split_one(self.element(e));
            heads.push(head);
            let mut shift = self.tail_bits();
            for (plane, &bits) in tails.iter_mut().zip(&chunks) {
                shift -= bits;
                plane.push(((tail >> shift) & ((1 << bits) - 1)) as u16);
            }
        }
        (heads, tails)
    }

    /// Inverse of [`Layout::split`]; every plane must have the same length and values within
    /// their widths.
    pub(super) fn join(&self, heads: &[u16], tails: &[Vec<u16>]) -> Vec<u8> {
        let chunks = self.chunk_bits();
        let mut out = Vec::with_capacity(heads.len() * self.size);
        for (i, &head) in heads.iter().enumerate() {
            let tail = tails
                .iter()
                .zip(&chunks)
                .fold(0u64, |t, (plane, &bits)| (t << bits) | u64::from(plane[i]));
            let v = self.join_one(head, tail);
            out.extend_from_slice(&v.to_le_bytes()[..self.size]);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn split_and_join_are_inverse(code in 0u8..14, data in proptest::collection::vec(any::<u8>(), 0..256)) {
            let dtype = DType::from_code(code).unwrap();
            let layout = Layout::of(dtype);
            let data = &data[..data.len() / dtype.size() * dtype.size()];
            let (heads, tails) = layout.split(data);
            prop_assert!(heads.iter().all(|&h| h < 1 << layout.head_bits));
            for (plane, bits) in tails.iter().zip(layout.chunk_bits()) {
                prop_assert!(plane.iter().all(|&s| s < 1 << bits));
            }
            prop_assert_eq!(layout.join(&heads, &tails), data);
        }
    }

    #[test]
    fn float_heads_are_exponents() {
        let layout = Layout::of(DType::F32);
        let (heads, tails) = layout.split(&(-1.5f32).to_le_bytes());
        assert_eq!(heads, [127]);
        assert_eq!(tails, [vec![0x80 | 0x40], vec![0], vec![0]]);
        assert_eq!(Layout::of(DType::F16).chunk_bits(), [8, 3]);
        assert_eq!(Layout::of(DType::F64).chunk_bits(), [8, 8, 8, 8, 8, 8, 5]);
        assert!(Layout::of(DType::U8).chunk_bits().is_empty());
    }
}
