//! Piecewise linearization of a sorted sequence within a vertical tolerance.
//!
//! Two algorithms, both O(n):
//! - [`optimal`]: the streaming optimal algorithm (O'Rourke 1981; the form used by the PGM-index):
//!   it keeps the convex hulls of the upper (`y + eps`) and lower (`y - eps`) points of the
//!   current segment and the two extreme feasible lines, and closes a segment only when no line
//!   can pass within `eps` of all its points. This yields the fewest segments possible.
//! - [`greedy`]: the "shrinking cone": the line is anchored at the segment's first point and the
//!   range of feasible slopes shrinks with every point until it is empty.
//!
//! Both return proposals (start, length, slope); the caller fixes the intercepts and checks the
//! tolerance in the decoder's own arithmetic.

/// A proposed segment: ranks `start..start + len` follow a line of slope `slope`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Piece {
    /// First rank covered (groups hold fewer than 2^32 values: a piece takes 16 bytes).
    pub start: u32,
    /// Number of ranks covered (>= 1).
    pub len: u32,
    /// A slope (value per rank) for which some intercept fits every covered point within eps.
    pub slope: f64,
}

#[derive(Debug, Clone, Copy, Default)]
struct Point {
    x: f64,
    y: f64,
}

/// Direction `b - a`, compared as a slope.
#[derive(Debug, Clone, Copy)]
struct Dir {
    dx: f64,
    dy: f64,
}

fn dir(b: Point, a: Point) -> Dir {
    Dir {
        dx: b.x - a.x,
        dy: b.y - a.y,
    }
}

/// `a` is less steep than `b` (both `dx` of the same sign).
fn less(a: Dir, b: Dir) -> bool {
    a.dy * b.dx < b.dy * a.dx
}

fn greater(a: Dir, b: Dir) -> bool {
    a.dy * b.dx > b.dy * a.dx
}

/// Cross product of `a - o` and `b - o`.
fn cross(o: Point, a: Point, b: Point) -> f64 {
    let (oa, ob) = (dir(a, o), dir(b, o));
    oa.dx * ob.dy - oa.dy * ob.dx
}

/// The points `eps` above and below `(x, y)`.
fn band(x: f64, y: f64, eps: f64) -> (Point, Point) {
    (Point { x, y: y + eps }, Point { x, y: y - eps })
}

/// The state of the streaming optimal algorithm for the current segment, which holds at least
/// two points.
#[derive(Debug, Default)]
struct Hull {
    upper: Vec<Point>,
    lower: Vec<Point>,
    upper_start: usize,
    lower_start: usize,
    /// rect[0], rect[2]: the line of least slope; rect[1], rect[3]: the line of greatest slope.
    rect: [Point; 4],
}

impl Hull {
    /// Starts a segment with its first two points, `y0` at x = 0 and `y1` at x = 1: a line
    /// fits any two points, so a segment has at least two unless it is a group's last point.
    /// Taking them together spares the per-point test of how many points the segment holds,
    /// which mispredicts where segments are as short as trained weights make them (about
    /// three points at the default bounds).
    #[inline(always)]
    fn start(&mut self, y0: f64, y1: f64, eps: f64) {
        let (hi0, lo0) = band(0.0, y0, eps);
        let (hi1, lo1) = band(1.0, y1, eps);
        self.rect = [hi0, lo0, lo1, hi1];
        self.upper.clear();
        self.lower.clear();
        self.upper.extend([hi0, hi1]);
        self.lower.extend([lo0, lo1]);
        self.upper_start = 0;
        self.lower_start = 0;
    }

    /// Adds the point `(x, y)` to a segment of two or more points; false if no line fits it
    /// with the others (the hull is then left as it was).
    #[inline(always)]
    fn add(&mut self, x: f64, y: f64, eps: f64) -> bool {
        let (hi, lo) = band(x, y, eps);
        let least = dir(self.rect[2], self.rect[0]);
        let most = dir(self.rect[3], self.rect[1]);
        // Both tests are computed, and joined without a second branch.
        if less(dir(hi, self.rect[2]), least) | greater(dir(lo, self.rect[3]), most) {
            return false;
        }
        if less(dir(hi, self.rect[1]), most) {
            self.lower_max_slope(hi);
        }
        if greater(dir(lo, self.rect[0]), least) {
            self.upper_min_slope(lo);
        }
        true
    }

    /// `hi` lowers the greatest feasible slope: find its new support on the lower hull and add
    /// `hi` to the upper hull.
    #[inline(always)]
    fn lower_max_slope(&mut self, hi: Point) {
        let mut min = dir(self.lower[self.lower_start], hi);
        let mut min_i = self.lower_start;
        for i in self.lower_start + 1..self.lower.len() {
            let d = dir(self.lower[i], hi);
            if greater(d, min) {
                break;
            }
            min = d;
            min_i = i;
        }
        self.rect[1] = self.lower[min_i];
        self.rect[3] = hi;
        self.lower_start = min_i;
        let mut end = self.upper.len();
        while end >= self.upper_start + 2
            && cross(self.upper[end - 2], self.upper[end - 1], hi) <= 0.0
        {
            end -= 1;
        }
        self.upper.truncate(end);
        self.upper.push(hi);
    }

    /// `lo` raises the least feasible slope: find its new support on the upper hull and add `lo`
    /// to the lower hull.
    #[inline(always)]
    fn upper_min_slope(&mut self, lo: Point) {
        let mut max = dir(self.upper[self.upper_start], lo);
        let mut max_i = self.upper_start;
        for i in self.upper_start + 1..self.upper.len() {
            let d = dir(self.upper[i], lo);
            if less(d, max) {
                break;
            }
            max = d;
            max_i = i;
        }
        self.rect[0] = self.upper[max_i];
        self.rect[2] = lo;
        self.upper_start = max_i;
        let mut end = self.lower.len();
        while end >= self.lower_start + 2
            && cross(self.lower[end - 2], self.lower[end - 1], lo) >= 0.0
        {
            end -= 1;
        }
        self.lower.truncate(end);
        self.lower.push(lo);
    }

    /// The middle of the feasible slope range of the segment just closed.
    fn mid_slope(&self) -> f64 {
        let least = dir(self.rect[2], self.rect[0]);
        let most = dir(self.rect[3], self.rect[1]);
        0.5 * (least.dy / least.dx + most.dy / most.dx)
    }
}

/// The fewest segments such that every `y[i]` is within `eps` of its segment's line.
pub fn optimal(y: &[f64], eps: f64) -> Vec<Piece> {
    let mut pieces = Vec::new();
    Optimal::default().run(y, eps, &mut pieces);
    pieces
}

/// The optimal linearization with its hull buffers kept across calls.
#[derive(Debug, Default)]
pub struct Optimal {
    hull: Hull,
}

impl Optimal {
    /// Appends to `pieces` the fewest segments such that every `y[i]` is within `eps` of its
    /// segment's line (as [`optimal`]).
    pub fn run<T: Copy + Into<f64>>(&mut self, y: &[T], eps: f64, pieces: &mut Vec<Piece>) {
        let hull = &mut self.hull;
        let at = |i: usize| -> f64 { y[i].into() };
        let mut start = 0;
        while start + 1 < y.len() {
            hull.start(at(start), at(start + 1), eps);
            let mut end = start + 2;
            // `end - start` as `f64`, counted in floats: exact (below 2^53), and cheaper than
            // converting a `usize`, which takes a branch.
            let mut x = 2.0;
            while end < y.len() && hull.add(x, at(end), eps) {
                end += 1;
                x += 1.0;
            }
            pieces.push(Piece {
                start: start as u32,
                len: (end - start) as u32,
                slope: hull.mid_slope(),
            });
            start = end;
        }
        if start < y.len() {
            pieces.push(Piece {
                start: start as u32,
                len: 1,
                slope: 0.0,
            });
        }
    }
}

/// The shrinking cone: each segment's line passes through its first point.
pub fn greedy(y: &[f64], eps: f64) -> Vec<Piece> {
    let mut pieces = Vec::new();
    greedy_into(y, eps, &mut pieces);
    pieces
}

/// [`greedy`], appending to `pieces`.
pub fn greedy_into<T: Copy + Into<f64>>(y: &[T], eps: f64, pieces: &mut Vec<Piece>) {
    let at = |i: usize| -> f64 { y[i].into() };
    let mut start = 0;
    let (mut lo, mut hi) = (f64::NEG_INFINITY, f64::INFINITY);
    let close = |start: usize, end: usize, lo: f64, hi: f64| Piece {
        start: start as u32,
        len: (end - start) as u32,
        slope: if end - start < 2 {
            0.0
        } else {
            0.5 * (lo + hi)
        },
    };
    for i in 1..y.len() {
        let dx = (i - start) as f64;
        let l = lo.max((at(i) - eps - at(start)) / dx);
        let h = hi.min((at(i) + eps - at(start)) / dx);
        if l > h {
            pieces.push(close(start, i, lo, hi));
            start = i;
            (lo, hi) = (f64::NEG_INFINITY, f64::INFINITY);
        } else {
            (lo, hi) = (l, h);
        }
    }
    if !y.is_empty() {
        pieces.push(close(start, y.len(), lo, hi));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Whether some line passes within `eps` of every point of `y` (x = index), decided
    /// exactly on small integers: a feasible region, if non-empty, has a vertex where two
    /// constraint lines meet, so checking every such vertex decides feasibility.
    fn fits(y: &[i64], eps: i64) -> bool {
        if y.len() < 2 {
            return true;
        }
        let bounds = |k: usize| [y[k] - eps, y[k] + eps];
        (0..y.len()).any(|i| {
            (i + 1..y.len()).any(|j| {
                bounds(i).iter().any(|&bi| {
                    bounds(j).iter().any(|&bj| {
                        let dx = (j - i) as i64;
                        // line through (i, bi), (j, bj): value at k is bi + (bj - bi)(k - i)/dx.
                        (0..y.len()).all(|k| {
                            let num = bi * dx + (bj - bi) * (k as i64 - i as i64);
                            let [lo, hi] = bounds(k);
                            lo * dx <= num && num <= hi * dx
                        })
                    })
                })
            })
        })
    }

    /// Fewest segments by dynamic programming over all segmentations.
    fn brute_force(y: &[i64], eps: i64) -> usize {
        let mut best = vec![usize::MAX; y.len() + 1];
        best[0] = 0;
        for j in 1..=y.len() {
            best[j] = (0..j)
                .filter(|&i| fits(&y[i..j], eps))
                .map(|i| best[i] + 1)
                .min()
                .unwrap_or(usize::MAX);
        }
        best[y.len()]
    }

    fn check_cover(pieces: &[Piece], y: &[f64], eps: f64) {
        let mut next = 0;
        for p in pieces {
            let (start, len) = (p.start as usize, p.len as usize);
            assert_eq!(start, next);
            assert!(len >= 1);
            next += len;
            // Some intercept fits the proposed slope.
            let r: Vec<f64> = (0..len)
                .map(|j| y[start + j] - p.slope * j as f64)
                .collect();
            let spread = r.iter().cloned().fold(f64::MIN, f64::max)
                - r.iter().cloned().fold(f64::MAX, f64::min);
            assert!(
                spread <= 2.0 * eps * (1.0 + 1e-9) + 1e-9,
                "spread {spread} eps {eps}"
            );
        }
        assert_eq!(next, y.len());
    }

    proptest! {
        #[test]
        fn pwl_optimal_matches_brute_force(
            steps in proptest::collection::vec(0i64..20, 1..11),
            eps in 0i64..6,
        ) {
            let y: Vec<i64> = steps.iter().scan(0, |s, &d| { *s += d; Some(*s) }).collect();
            let yf: Vec<f64> = y.iter().map(|&v| v as f64).collect();
            let opt = optimal(&yf, eps as f64);
            let greedy = greedy(&yf, eps as f64);
            check_cover(&opt, &yf, eps as f64);
            check_cover(&greedy, &yf, eps as f64);
            prop_assert_eq!(opt.len(), brute_force(&y, eps));
            prop_assert!(greedy.len() >= opt.len());
        }

        #[test]
        fn pwl_greedy_never_beats_optimal_on_floats(
            mut y in proptest::collection::vec(-1.0f64..1.0, 0..300),
            eps in 0.0f64..0.05,
        ) {
            y.sort_by(f64::total_cmp);
            let opt = optimal(&y, eps);
            let greedy = greedy(&y, eps);
            check_cover(&opt, &y, eps);
            check_cover(&greedy, &y, eps);
            prop_assert!(greedy.len() >= opt.len());
        }
    }

    #[test]
    fn pwl_a_line_is_one_segment() {
        let y: Vec<f64> = (0..100).map(|i| 0.5 * i as f64 - 3.0).collect();
        assert_eq!(optimal(&y, 0.0).len(), 1);
        assert_eq!(greedy(&y, 0.0).len(), 1);
        assert_eq!(optimal(&[], 0.1), []);
    }
}
