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

    /// Head and tail of one element.
    #[inline(always)]
    fn split_one(&self, v: u64) -> (u16, u64) {
        let low_mask = (1u64 << self.low_bits) - 1;
        let head = (v >> self.low_bits) & ((1 << self.head_bits) - 1);
        let above = v.checked_shr(self.low_bits + self.head_bits).unwrap_or(0);
        (head as u16, (above << self.low_bits) | (v & low_mask))
    }

    #[inline(always)]
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
        // Element size and chunk count as constants: the loops over them unroll, and an
        // element loads in one instruction instead of a copy of a variable length.
        match (self.size, self.chunk_bits().len()) {
            (1, _) => self.split_as::<1, 0>(data),
            (2, 1) => self.split_as::<2, 1>(data),
            (2, _) => self.split_as::<2, 2>(data),
            (4, _) => self.split_as::<4, 3>(data),
            _ => self.split_as::<8, 7>(data),
        }
    }

    /// Shift and mask of each tail chunk, for a layout with `CHUNKS` of them.
    fn chunk_fields<const CHUNKS: usize>(&self) -> [(u32, u64); CHUNKS] {
        let widths = self.chunk_bits();
        debug_assert_eq!(widths.len(), CHUNKS);
        let mut shift = self.tail_bits();
        std::array::from_fn(|k| {
            shift -= widths[k];
            (shift, (1 << widths[k]) - 1)
        })
    }

    /// [`Layout::split`] for elements of `SIZE` bytes with `CHUNKS` tail chunks: one pass per
    /// plane over the elements.
    fn split_as<const SIZE: usize, const CHUNKS: usize>(
        &self,
        data: &[u8],
    ) -> (Vec<u16>, Vec<Vec<u16>>) {
        // A copy of the layout, so that its fields stay in registers through the loops.
        let layout = *self;
        let (elements, _) = data.as_chunks::<SIZE>();
        let heads = plane(elements, move |v| layout.split_one(v).0);
        let tails = self
            .chunk_fields::<CHUNKS>()
            .iter()
            .map(|&(shift, mask)| {
                plane(elements, move |v| {
                    ((layout.split_one(v).1 >> shift) & mask) as u16
                })
            })
            .collect();
        (heads, tails)
    }

    /// Inverse of [`Layout::split`]; every plane must have the same length and values within
    /// their widths.
    pub(super) fn join(&self, heads: &[u16], tails: &[Vec<u16>]) -> Vec<u8> {
        match (self.size, self.chunk_bits().len()) {
            (1, _) => self.join_as::<1, 0>(heads, tails),
            (2, 1) => self.join_as::<2, 1>(heads, tails),
            (2, _) => self.join_as::<2, 2>(heads, tails),
            (4, _) => self.join_as::<4, 3>(heads, tails),
            _ => self.join_as::<8, 7>(heads, tails),
        }
    }

    /// [`Layout::join`] for elements of `SIZE` bytes with `CHUNKS` tail chunks.
    fn join_as<const SIZE: usize, const CHUNKS: usize>(
        &self,
        heads: &[u16],
        tails: &[Vec<u16>],
    ) -> Vec<u8> {
        let (layout, fields) = (*self, self.chunk_fields::<CHUNKS>());
        let tails: [&[u16]; CHUNKS] = std::array::from_fn(|k| &tails[k][..heads.len()]);
        let mut elements = vec![[0u8; SIZE]; heads.len()];
        for (i, (out, &head)) in elements.iter_mut().zip(heads).enumerate() {
            let tail = (0..CHUNKS).fold(0, |t, k| t | u64::from(tails[k][i]) << fields[k].0);
            let bytes = layout.join_one(head, tail).to_le_bytes();
            *out = std::array::from_fn(|b| bytes[b]);
        }
        elements.into_flattened()
    }
}

/// The values `field(v)` of the elements' little-endian integer values `v`.
fn plane<const SIZE: usize>(elements: &[[u8; SIZE]], field: impl Fn(u64) -> u16) -> Vec<u16> {
    let mut plane = vec![0u16; elements.len()];
    for (symbol, e) in plane.iter_mut().zip(elements) {
        *symbol = field(element(e));
    }
    plane
}

/// The little-endian integer value of an element.
#[inline(always)]
fn element<const SIZE: usize>(bytes: &[u8; SIZE]) -> u64 {
    let mut le = [0u8; 8];
    le[..SIZE].copy_from_slice(bytes);
    u64::from_le_bytes(le)
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
