//! Parallel lines: segments whose slopes differ by less than a threshold share one slope.

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
/// median slope; `threshold <= 0` keeps every slope (only equal slopes merge).
pub fn share(
    slopes: impl ExactSizeIterator<Item = f64>,
    threshold: f64,
    precision: Precision,
) -> SlopeTable {
    let count = slopes.len();
    let order = sort_slopes(slopes);
    // The sort keys are the slopes' bits, so the slopes need not be kept beside them.
    let at = |k: usize| from_total_key(order[k].0);
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
            .for_each(|&(_, m)| ids[m as usize] = id as u32);
    }
    SlopeTable {
        values: clusters.into_iter().map(|(v, _)| v).collect(),
        ids,
    }
}

/// `(key, index)` of every slope, ascending by [`f64::total_cmp`] and ties by index.
///
/// A radix sort by the top four bytes of the keys (sign, exponent and 20 bits of mantissa), then
/// each run of equal top bytes sorted on its own: runs are short on real slopes, so this takes
/// four passes instead of the eight of a full radix sort. With three passes, sorting the runs
/// took 8% of the instructions of `pwl_bench /tmp/emb 1e-4 --once` (MiniLM-L6's embedding, 4.3
/// million segments), more than a fourth pass costs.
fn sort_slopes(slopes: impl Iterator<Item = f64>) -> Vec<(u64, u32)> {
    const LOW_BITS: u32 = 32;
    let mut order: Vec<(u64, u32)> = slopes
        .enumerate()
        .map(|(i, s)| (total_key(s), i as u32))
        .collect();
    super::sort::radix_sort::<_, 4>(&mut order, &mut Vec::new(), |(k, _)| k >> LOW_BITS);
    super::sort::sort_tied_runs(&mut order, |&(k, _)| k >> LOW_BITS);
    order
}

/// A `u64` whose order is the order of [`f64::total_cmp`].
fn total_key(v: f64) -> u64 {
    let b = v.to_bits();
    if b >> 63 == 1 {
        !b
    } else {
        b | (1 << 63)
    }
}

/// Inverse of [`total_key`].
fn from_total_key(k: u64) -> f64 {
    f64::from_bits(if k >> 63 == 1 { k & !(1 << 63) } else { !k })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn pwl_slopes_sort_by_total_order_then_index(
            slopes in proptest::collection::vec(prop_oneof![
                Just(0.0), Just(-0.0), Just(1.5e-5), Just(-2.0), Just(f64::INFINITY),
                -1e-3f64..1e-3, 1.0f64..1.0001, any::<f64>(),
                // Slopes a few ulps apart, equal in all but the lowest key bytes.
                (0u64..600).prop_map(|k| f64::from_bits(0x3ff0_0000_0000_0000 + k)),
            ], 0..400),
        ) {
            let mut expect: Vec<u32> = (0..slopes.len() as u32).collect();
            expect.sort_by(|&a, &b| slopes[a as usize].total_cmp(&slopes[b as usize]));
            let order = sort_slopes(slopes.iter().copied());
            let got: Vec<u32> = order.iter().map(|&(_, i)| i).collect();
            prop_assert_eq!(got, expect);
            for (k, i) in order {
                prop_assert_eq!(from_total_key(k).to_bits(), slopes[i as usize].to_bits());
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
