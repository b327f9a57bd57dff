//! Grouping of rows into classes that share one token model.
//!
//! Rows of a weight matrix differ mostly in scale, so a few models, each fitted to the rows of
//! one class, code the tensor in fewer bits than one model for all rows. Rows start in classes
//! by scale (equal-count groups of their mean token) and are then moved, a few passes, to the
//! class whose model codes them cheapest (k-means with code length as the distance).

/// Token histograms of every row, stored sparsely (rows of short tensors use few tokens).
pub struct RowHistograms {
    tokens: usize,
    /// Start of each row's entries in `entries`, plus the end.
    offsets: Vec<usize>,
    /// `(token, count)` of the tokens a row uses.
    entries: Vec<(u32, u32)>,
}

impl RowHistograms {
    /// No rows yet, over `tokens` tokens.
    pub fn new(tokens: usize) -> Self {
        RowHistograms {
            tokens,
            offsets: vec![0],
            entries: Vec::new(),
        }
    }

    /// Appends a row from its dense histogram, and zeroes that histogram for the next row.
    pub fn push_row(&mut self, dense: &mut [u32]) {
        for (t, c) in dense.iter_mut().enumerate().filter(|(_, c)| **c > 0) {
            self.entries.push((t as u32, *c));
            *c = 0;
        }
        self.offsets.push(self.entries.len());
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.offsets.len() - 1
    }

    /// The `(token, count)` entries of row `r`.
    pub fn row(&self, r: usize) -> &[(u32, u32)] {
        &self.entries[self.offsets[r]..self.offsets[r + 1]]
    }

    /// Summed histograms of the rows of each class (`classes` dense histograms).
    pub fn class_counts(&self, class_of_row: &[u8], classes: usize) -> Vec<Vec<u64>> {
        let mut sums = vec![vec![0u64; self.tokens]; classes];
        for (r, &c) in class_of_row.iter().enumerate() {
            for &(t, n) in self.row(r) {
                sums[c as usize][t as usize] += n as u64;
            }
        }
        sums
    }
}

/// Assigns each row one of at most `classes` classes; the result uses classes `0..k` without
/// gaps (empty classes are dropped), so it may have fewer classes than asked for.
pub fn assign(hist: &RowHistograms, classes: usize, passes: u32) -> (Vec<u8>, usize) {
    let mut class_of_row = by_scale(hist, classes);
    for _ in 0..passes {
        if !refine(hist, &mut class_of_row, classes) {
            break;
        }
    }
    let used = compact(&mut class_of_row, classes);
    (class_of_row, used)
}

/// Equal-count groups of rows ordered by their mean token.
fn by_scale(hist: &RowHistograms, classes: usize) -> Vec<u8> {
    let rows = hist.rows();
    let mean_token = |r: usize| {
        let (mut n, mut sum) = (0u64, 0u64);
        for &(t, c) in hist.row(r) {
            n += c as u64;
            sum += c as u64 * t as u64;
        }
        sum as f64 / n.max(1) as f64
    };
    let means: Vec<f64> = (0..rows).map(mean_token).collect();
    let mut order: Vec<usize> = (0..rows).collect();
    order.sort_by(|&a, &b| means[a].total_cmp(&means[b]));
    let mut class_of_row = vec![0u8; rows];
    for (rank, &r) in order.iter().enumerate() {
        class_of_row[r] = (rank * classes / rows.max(1)) as u8;
    }
    class_of_row
}

/// One k-means pass: moves every row to the class whose current model codes it cheapest.
/// Returns whether any row moved.
fn refine(hist: &RowHistograms, class_of_row: &mut [u8], classes: usize) -> bool {
    let lengths = ClassLengths::new(&hist.class_counts(class_of_row, classes));
    let mut moved = false;
    for (r, class) in class_of_row.iter_mut().enumerate() {
        let best = lengths.cheapest(hist.row(r));
        moved |= best != *class;
        *class = best;
    }
    moved
}

/// Classes whose costs [`ClassLengths::cheapest`] accumulates side by side.
const GROUP: usize = 4;

/// The code length of every token under every class, stored per group of [`GROUP`] classes
/// and then per token, so that a row's cost under the classes of a group sums in one vector.
struct ClassLengths {
    classes: usize,
    /// `groups[g][t][i]`: length of token `t` under class `GROUP * g + i` (0 past the last).
    groups: Vec<Vec<[f32; GROUP]>>,
}

impl ClassLengths {
    /// The lengths of the classes of `counts` (one histogram per class).
    fn new(counts: &[Vec<u64>]) -> ClassLengths {
        let per_class: Vec<Vec<f32>> = counts.iter().map(|c| code_lengths(c)).collect();
        let tokens = per_class.first().map_or(0, Vec::len);
        let groups = per_class
            .chunks(GROUP)
            .map(|group| {
                (0..tokens)
                    .map(|t| std::array::from_fn(|i| group.get(i).map_or(0.0, |l| l[t])))
                    .collect()
            })
            .collect();
        ClassLengths {
            classes: counts.len(),
            groups,
        }
    }

    /// The class that codes `row` (`(token, count)` entries) in the fewest bits; the first
    /// of equal ones.
    fn cheapest(&self, row: &[(u32, u32)]) -> u8 {
        let mut best = (0u8, f32::INFINITY);
        for (g, lengths) in self.groups.iter().enumerate() {
            let mut cost = [0f32; GROUP];
            for &(t, n) in row {
                let length = &lengths[t as usize];
                for (c, l) in cost.iter_mut().zip(length) {
                    *c += n as f32 * l;
                }
            }
            let first = GROUP * g;
            for (i, &bits) in cost.iter().enumerate().take(self.classes - first) {
                if bits < best.1 {
                    best = ((first + i) as u8, bits);
                }
            }
        }
        best.0
    }
}

/// Code length in bits of each token under `counts`, with a small prior so that tokens the
/// class has not seen yet cost a finite (large) amount.
fn code_lengths(counts: &[u64]) -> Vec<f32> {
    const PRIOR: f64 = 0.5;
    let total: f64 = counts.iter().map(|&c| c as f64 + PRIOR).sum();
    counts
        .iter()
        .map(|&c| (total / (c as f64 + PRIOR)).log2() as f32)
        .collect()
}

/// Renumbers the used classes as `0..k` and returns `k` (at least 1).
fn compact(class_of_row: &mut [u8], classes: usize) -> usize {
    let mut new_id = vec![u8::MAX; classes];
    let mut next = 0u8;
    for c in class_of_row.iter_mut() {
        if new_id[*c as usize] == u8::MAX {
            new_id[*c as usize] = next;
            next += 1;
        }
        *c = new_id[*c as usize];
    }
    (next as usize).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_of_different_scale_land_in_different_classes() {
        let mut hist = RowHistograms::new(8);
        for r in 0..4 {
            let centre = if r % 2 == 0 { 1 } else { 6 };
            let mut dense = [0u32; 8];
            dense[centre] = 100;
            dense[centre + 1] = 50;
            hist.push_row(&mut dense);
            assert_eq!(dense, [0; 8]);
        }
        let (class_of_row, classes) = assign(&hist, 2, 3);
        assert_eq!(classes, 2);
        assert_eq!(class_of_row[0], class_of_row[2]);
        assert_eq!(class_of_row[1], class_of_row[3]);
        assert_ne!(class_of_row[0], class_of_row[1]);
    }

    #[test]
    fn empty_classes_are_dropped() {
        let mut hist = RowHistograms::new(4);
        hist.push_row(&mut [0; 4]);
        let (class_of_row, classes) = assign(&hist, 4, 2);
        assert_eq!((class_of_row, classes), (vec![0], 1));
    }
}
