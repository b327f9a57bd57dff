//! Parallel lines: segments whose slopes differ by less than a threshold share one slope.

use super::sort::{order_key, radix_sort, value_of};
use half::f16;

/// How slopes are stored in the slope table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// 32-bit floats.
    #[default]
    F32,
    /// 16-bit floats (ablation: halves the table, coarser slopes cause more splits).
    F16,
}

impl Precision {
    /// `v` as the table will store it; a slope that does not fit becomes 0, which stays
    /// correct because every segment is checked and split with the stored slope.
    pub fn round(self, v: f64) -> f32 {
        let r = match self {
            Precision::F32 => v as f32,
            Precision::F16 => f16::from_f64(v).to_f32(),
        };
        if r.is_finite() {
            r
        } else {
            0.0
        }
    }

    /// Bytes per stored slope.
    pub fn size(self) -> usize {
        match self {
            Precision::F32 => 4,
            Precision::F16 => 2,
        }
    }
}

/// The slope table and, for every proposed slope, its entry.
#[derive(Debug, Clone, PartialEq)]
pub struct SlopeTable {
    /// Stored slopes, most used first.
    pub values: Vec<f32>,
    /// Entry of each input slope.
    pub ids: Vec<u32>,
}

/// Groups `slopes` (sorted, a cluster spans less than `threshold`) and stores each group's
/// median slope; `threshold <= 0` keeps every slope (only equal slopes merge). Slopes are
/// compared as `f32`, the precision the table stores at most: sorting 4-byte keys instead of
/// `f64` ones halves the memory the sort moves and touches (a large tensor has millions of
/// slopes), and no cluster could tell apart slopes that one stored entry cannot.
pub fn share(
    slopes: impl ExactSizeIterator<Item = f64>,
    threshold: f64,
    precision: Precision,
) -> SlopeTable {
    let count = slopes.len();
    let order = sort_slopes(slopes);
    // The sort keys are the slopes' bits, so the slopes need not be kept beside them.
    let at = |k: usize| f64::from(value_of((order[k] >> 32) as u32));
    // Clusters are runs of `order`: (stored slope, range in `order`).
    let mut clusters: Vec<(f32, std::ops::Range<usize>)> = Vec::new();
    let mut i = 0;
    while i < order.len() {
        let first = at(i);
        let mut j = i + 1;
        while j < order.len() && at(j) - first < threshold {
            j += 1;
        }
        let value = precision.round(at((i + j - 1) / 2));
        match clusters.last_mut() {
            // Clusters that round to the same stored slope are one entry.
            Some((last, members)) if *last == value => members.end = j,
            _ => clusters.push((value, i..j)),
        }
        i = j;
    }
    // Most used first, so that frequent entries get small ids (and short codes).
    clusters.sort_by_key(|(_, members)| std::cmp::Reverse(members.len()));
    let mut ids = vec![0u32; count];
    for (id, (_, members)) in clusters.iter().enumerate() {
        order[members.clone()]
            .iter()
            .for_each(|&item| ids[item as u32 as usize] = id as u32);
    }
    SlopeTable {
        values: clusters.into_iter().map(|(v, _)| v).collect(),
        ids,
    }
}

/// Every slope as `key << 32 | index`, with `key` the order key of the slope rounded to `f32`,
/// ascending by [`f32::total_cmp`] of the rounded slopes and ties by index: a stable radix sort
/// by the four key bytes (a byte equal in every slope, such as the sign, is skipped).
fn sort_slopes(slopes: impl Iterator<Item = f64>) -> Vec<u64> {
    let mut order: Vec<u64> = slopes
        .enumerate()
        .map(|(i, s)| (u64::from(order_key(s as f32)) << 32) | i as u64)
        .collect();
    radix_sort::<_, 4>(&mut order, &mut Vec::new(), |k| k >> 32);
    order
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn pwl_slopes_sort_by_their_f32_order_then_index(
            slopes in proptest::collection::vec(prop_oneof![
                Just(0.0), Just(-0.0), Just(1.5e-5), Just(-2.0), Just(f64::INFINITY),
                -1e-3f64..1e-3, 1.0f64..1.0001, any::<f64>(),
                // Slopes a few f64 ulps apart, most of them equal as f32.
                (0u64..600).prop_map(|k| f64::from_bits(0x3ff0_0000_0000_0000 + (k << 26))),
            ], 0..400),
        ) {
            let rounded: Vec<f32> = slopes.iter().map(|&s| s as f32).collect();
            let mut expect: Vec<u32> = (0..slopes.len() as u32).collect();
            expect.sort_by(|&a, &b| rounded[a as usize].total_cmp(&rounded[b as usize]));
            let order = sort_slopes(slopes.iter().copied());
            let got: Vec<u32> = order.iter().map(|&item| item as u32).collect();
            prop_assert_eq!(got, expect);
            for item in order {
                let (key, i) = ((item >> 32) as u32, item as u32 as usize);
                prop_assert_eq!(value_of(key).to_bits(), rounded[i].to_bits());
            }
        }
    }

    #[test]
    fn pwl_close_slopes_share_an_entry() {
        let t = share([1.0, 1.05, 3.0, 1.02, 5.0].into_iter(), 0.1, Precision::F32);
        assert_eq!(t.values.len(), 3);
        assert_eq!(t.ids[0], t.ids[1]);
        assert_eq!(t.ids[0], t.ids[3]);
        assert_eq!(t.values[t.ids[0] as usize], 1.02);
        assert_ne!(t.ids[2], t.ids[4]);
        let none = share([1.0, 1.05, 1.0].into_iter(), 0.0, Precision::F32);
        assert_eq!(none.values.len(), 2);
        assert_eq!(Precision::F16.round(1e10), 0.0);
    }
}
