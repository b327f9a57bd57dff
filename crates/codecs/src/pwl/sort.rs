//! Sorting a group: positions ordered by value, ties by position.
//!
//! Each value becomes a `u64` key, its order-preserving `u32` image in the high half and its
//! position in the low half; keys are distinct, so any sort gives the same (stable) order.
//! Groups of [`RADIX_MIN`] or more values are sorted by a least-significant-digit radix sort on
//! the top three bytes of the value (stable, so positions stay in order among equal values),
//! which runs in a few passes over the keys instead of `n log n` comparisons, and the rare runs
//! of values equal in those bytes are then sorted by their whole keys; smaller groups use
//! `sort_unstable`. Written here rather than taken from a crate: it is a few lines, sorts
//! exactly this key layout, and reuses its buffers across the groups of a tensor.

/// Smallest group sorted by radix: below it the 256-entry histograms cost more than the
/// comparisons they save.
const RADIX_MIN: usize = 128;

/// Key bits below the three bytes the radix sort orders by: the position and the value's
/// lowest byte.
const TIED_BITS: u32 = 40;

/// Buffers reused across groups.
#[derive(Debug)]
pub struct Sorter {
    keys: Vec<u64>,
    scratch: Vec<u64>,
    /// The histograms of the radix sort's three bytes, all zero between groups: the passes
    /// clear them as they read them, instead of 3 kB being zeroed for every group.
    counts: Box<[[u32; 256]; 3]>,
}

impl Default for Sorter {
    fn default() -> Self {
        Sorter {
            keys: Vec::new(),
            scratch: Vec::new(),
            counts: Box::new([[0; 256]; 3]),
        }
    }
}

impl Sorter {
    /// Appends to `order` the positions of `values` in ascending value order (ties by
    /// position) and to `sorted` the values in that order.
    pub fn sort(&mut self, values: &[f32], order: &mut Vec<u32>, sorted: &mut Vec<f32>) {
        self.keys.clear();
        if values.len() < RADIX_MIN {
            self.keys
                .extend(values.iter().enumerate().map(|(i, &v)| key_of(v, i)));
            self.keys.sort_unstable();
        } else {
            // The histograms are counted as the keys are made, in the same pass.
            let counts = &mut *self.counts;
            self.keys.extend(values.iter().enumerate().map(|(i, &v)| {
                let key = key_of(v, i);
                count_bytes(counts, key >> TIED_BITS);
                key
            }));
            radix_passes(
                &mut self.keys,
                &mut self.scratch,
                |k| k >> TIED_BITS,
                counts,
            );
            // Keys equal above `TIED_BITS` are now in position order. Such runs are rare and
            // short in trained weights (values within a relative 2^-15 of each other), so
            // sorting them costs less than a fourth byte pass.
            sort_tied_runs(&mut self.keys, |&k| k >> TIED_BITS);
        }
        order.extend(self.keys.iter().map(|&k| k as u32));
        sorted.extend(self.keys.iter().map(|&k| value_of((k >> 32) as u32)));
    }
}

/// The key of the value `v` at position `i`: its order key above, its position below.
#[inline]
fn key_of(v: f32, i: usize) -> u64 {
    (u64::from(order_key(v)) << 32) | i as u64
}

/// Adds the low `BYTES` bytes of `key` to their histograms.
#[inline]
fn count_bytes<const BYTES: usize>(counts: &mut [[u32; 256]; BYTES], key: u64) {
    for (digit, count) in counts.iter_mut().enumerate() {
        count[byte_of(key, digit)] += 1;
    }
}

/// Stable least-significant-digit radix sort of `items` by the low `BYTES` (<= 8) bytes of
/// `key`, a byte at a time; a byte that is the same in every item is skipped. `scratch` is a
/// buffer for the passes.
pub fn radix_sort<T: Copy + Default, const BYTES: usize>(
    items: &mut Vec<T>,
    scratch: &mut Vec<T>,
    key: impl Fn(T) -> u64,
) {
    let mut counts = [[0u32; 256]; BYTES];
    for &item in items.iter() {
        count_bytes(&mut counts, key(item));
    }
    radix_passes(items, scratch, key, &mut counts);
}

/// The passes of [`radix_sort`], given the histograms of the key bytes of `items`, which it
/// leaves all zero.
fn radix_passes<T: Copy + Default, const BYTES: usize>(
    items: &mut Vec<T>,
    scratch: &mut Vec<T>,
    key: impl Fn(T) -> u64,
    counts: &mut [[u32; 256]; BYTES],
) {
    let n = items.len();
    let Some(&any_item) = items.first() else {
        return;
    };
    // Every slot is written by a pass before it is read; only the length matters.
    scratch.resize(n, T::default());
    for (digit, count) in counts.iter_mut().enumerate() {
        // A byte is the same in every item when the count of any one item's byte is `n`.
        let any = &mut count[byte_of(key(any_item), digit)];
        if *any as usize == n {
            *any = 0;
            continue;
        }
        let mut next = [0u32; 256];
        let mut at = 0;
        for (slot, c) in next.iter_mut().zip(count.iter_mut()) {
            *slot = at;
            at += std::mem::take(c);
        }
        for &item in items.iter() {
            let b = byte_of(key(item), digit);
            scratch[next[b] as usize] = item;
            next[b] += 1;
        }
        std::mem::swap(items, scratch);
    }
}

/// Sorts each run of adjacent `items` with the same `top` (items sorted by `top` before), so
/// that a radix sort by the top bytes of a key only is completed by the rest of the key.
#[inline]
fn sort_tied_runs<T: Ord>(items: &mut [T], top: impl Fn(&T) -> u64) {
    for run in items.chunk_by_mut(|a, b| top(a) == top(b)) {
        if run.len() > 1 {
            run.sort_unstable();
        }
    }
}

/// Byte `digit` (0 = least significant) of `key`.
#[inline]
fn byte_of(key: u64, digit: usize) -> usize {
    ((key >> (8 * digit)) & 0xff) as usize
}

/// A `u32` whose order is the numeric order of finite floats: negative values have all bits
/// flipped, positive ones the sign bit set (an exclusive or with a mask, without a branch).
#[inline]
pub fn order_key(v: f32) -> u32 {
    let b = v.to_bits();
    let negative = ((b as i32) >> 31) as u32;
    b ^ (negative | 0x8000_0000)
}

/// Inverse of [`order_key`].
#[inline]
pub fn value_of(key: u32) -> f32 {
    // All ones where the key's top bit is clear (the value was negative).
    let negative = (key >> 31).wrapping_sub(1);
    f32::from_bits(key ^ (negative | 0x8000_0000))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn pwl_order_keys_invert_and_keep_the_order(a in any::<f32>(), b in any::<f32>()) {
            for v in [a, b] {
                prop_assert_eq!(value_of(order_key(v)).to_bits(), v.to_bits());
            }
            if a.is_finite() && b.is_finite() && a != b {
                prop_assert_eq!(order_key(a) < order_key(b), a < b);
            }
        }

        #[test]
        fn pwl_sort_orders_by_value_then_position(
            values in proptest::collection::vec(
                prop_oneof![
                    (-3i8..3).prop_map(|v| v as f32 * 0.5),
                    any::<i8>().prop_map(|v| v as f32 * 0.5),
                    // Values a few ulps apart, equal in all but the lowest key byte.
                    (0u32..600).prop_map(|k| f32::from_bits(0x3f80_0000 + k)),
                ],
                0..600,
            ),
        ) {
            // Twice with one sorter: the second sort starts from the buffers (and the radix
            // histograms) the first left behind.
            let (mut sorter, mut order, mut sorted) = (Sorter::default(), Vec::new(), Vec::new());
            sorter.sort(&values, &mut order, &mut sorted);
            sorter.sort(&values, &mut order, &mut sorted);
            let expect = expected(&values);
            let expect_sorted: Vec<f32> = expect.iter().map(|&i| values[i as usize]).collect();
            prop_assert_eq!(order, expect.repeat(2));
            prop_assert_eq!(sorted, expect_sorted.repeat(2));
        }
    }

    /// Sorts `values` as [`Sorter::sort`] must: by value, ties by position.
    fn expected(values: &[f32]) -> Vec<u32> {
        let mut order: Vec<u32> = (0..values.len() as u32).collect();
        order.sort_by(|&a, &b| values[a as usize].total_cmp(&values[b as usize]));
        order
    }

    #[test]
    fn pwl_sort_clears_the_histograms_of_skipped_bytes() {
        // Equal in the two top key bytes, which the radix passes skip.
        let narrow: Vec<f32> = (0..300u32)
            .map(|i| f32::from_bits(0x3f80_0000 + (i * 7919) % 65_536))
            .collect();
        let wide: Vec<f32> = (0..300u32)
            .map(|i| ((i * 7919) % 600) as f32 * 0.01 - 3.0)
            .collect();
        let mut sorter = Sorter::default();
        let (mut order, mut sorted) = (Vec::new(), Vec::new());
        sorter.sort(&narrow, &mut order, &mut sorted);
        assert_eq!(order, expected(&narrow));
        order.clear();
        sorter.sort(&wide, &mut order, &mut sorted);
        assert_eq!(order, expected(&wide));
    }
}
