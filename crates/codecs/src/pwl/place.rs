//! Final segments: intercepts fixed on the stored grid, checked in the decoder's arithmetic.
//!
//! A proposed piece comes with the stored slope of its table entry. Starting at its first rank,
//! the longest run whose points all admit one storable intercept (within the bound, for that
//! fixed slope) becomes a segment; the rest of the piece is placed the same way. Each segment is
//! then evaluated exactly as the decoder will (`f32` arithmetic) and shortened to before the
//! first point that misses the bound. A single point whose grid intercept misses is stored with
//! its own value as a literal intercept, which decodes exactly; so the bound always holds.

/// Largest intercept step count stored on the grid; larger jumps use a literal.
const MAX_STEPS: f64 = (1u64 << 40) as f64;

/// How a segment's first value is stored.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Intercept {
    /// `prediction + steps * q`, where the prediction extends the previous segment's line.
    Steps(i64),
    /// The value itself.
    Literal(f32),
}

/// A placed segment, in 16 bytes: a tensor's segments are held until the payload is written,
/// and a large tensor has millions (an enum field would make it 24).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Segment {
    /// Number of ranks covered (groups hold fewer than 2^32 values).
    pub len: u32,
    /// Slope table entry.
    pub slope_id: u32,
    /// The intercept: a step count (at most [`MAX_STEPS`] in magnitude), or [`LITERAL`] plus a
    /// literal's bits.
    intercept: i64,
}

/// Marks a literal in [`Segment`]'s intercept field: above every storable step count.
const LITERAL: i64 = 1 << 62;

impl Segment {
    /// A segment of `len` ranks with slope entry `slope_id` and first value `intercept`.
    pub fn new(len: u32, slope_id: u32, intercept: Intercept) -> Segment {
        let intercept = match intercept {
            Intercept::Steps(k) => {
                debug_assert!(k.unsigned_abs() <= MAX_STEPS as u64);
                k
            }
            Intercept::Literal(v) => LITERAL | i64::from(v.to_bits()),
        };
        Segment {
            len,
            slope_id,
            intercept,
        }
    }

    /// How the segment's first value is stored.
    pub fn intercept(&self) -> Intercept {
        if self.intercept >= LITERAL {
            Intercept::Literal(f32::from_bits(self.intercept as u32))
        } else {
            Intercept::Steps(self.intercept)
        }
    }
}

/// Value of a segment at offset `j`, exactly as decoded.
#[inline]
pub fn eval(first: f32, slope: f32, j: usize) -> f32 {
    first + slope * j as f32
}

/// Segments up to this long are evaluated with one fixed block of writes (no loop whose
/// trip count changes from segment to segment).
pub const BLOCK: usize = 8;

/// `j as f32` for `j < BLOCK`.
const OFFSETS: [f32; BLOCK] = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0];

/// Sets `out[j] = eval(first, slope, j)` for `j < len`, where `len <= out.len()` and
/// `out.len() < 2^32` (as every group is). May also write `out[len..BLOCK]`: the caller keeps
/// [`BLOCK`] spare slots after the group and overwrites them with the next segment.
#[inline(always)]
pub fn fill(out: &mut [f32], len: usize, first: f32, slope: f32) {
    match out.first_chunk_mut::<BLOCK>() {
        Some(block) if len <= BLOCK => fill_block(block, 0.0, first, slope),
        _ => fill_long(out, len, first, slope),
    }
}

/// [`fill`] of a segment longer than [`BLOCK`] (or near the end of `out`), out of line: short
/// segments are the most, and their block of writes is inlined into the decoder's loop, where
/// a call would make it save and reload its state around every segment.
#[inline(never)]
fn fill_long(out: &mut [f32], len: usize, first: f32, slope: f32) {
    if len < 1 << 24 {
        // Below 2^24 every offset is exact in `f32`, so `base + k` is `j as f32`, and the
        // blocks compile to vector operations.
        let mut chunks = out[..len].chunks_exact_mut(BLOCK);
        let mut base = 0.0;
        for chunk in &mut chunks {
            if let Ok(block) = <&mut [f32; BLOCK]>::try_from(chunk) {
                fill_block(block, base, first, slope);
            }
            base += BLOCK as f32;
        }
        for (slot, &k) in chunks.into_remainder().iter_mut().zip(&OFFSETS) {
            *slot = first + slope * (base + k);
        }
    } else {
        // `j as f32` of a `u32` is a single conversion; of a `usize` it needs a branch.
        for (j, slot) in (0..=u32::MAX).zip(&mut out[..len]) {
            *slot = first + slope * j as f32;
        }
    }
}

/// Sets `block[k] = first + slope * (base + k)`.
#[inline(always)]
fn fill_block(block: &mut [f32; BLOCK], base: f32, first: f32, slope: f32) {
    for (slot, &k) in block.iter_mut().zip(&OFFSETS) {
        *slot = first + slope * (base + k);
    }
}

/// The first value of a segment, exactly as decoded.
#[inline]
pub fn first_value(intercept: Intercept, prediction: f32, q: f32) -> f32 {
    match intercept {
        Intercept::Steps(k) => prediction + k as f32 * q,
        Intercept::Literal(v) => v,
    }
}

/// Places segments over sorted groups, one after the other, and tracks the prediction between
/// the segments of a group.
///
/// When a group is done, its sorted values are replaced by the values the decoder gives back
/// for its segments: a large tensor's reconstruction then needs no buffer of its own.
#[derive(Debug, Default)]
pub struct Placer<'a> {
    /// The current group's sorted values; its decoded values when the group is done.
    sorted: &'a mut [f32],
    bound: f64,
    /// Intercept grid step; 0 means every intercept is a literal.
    q: f32,
    prediction: f32,
    /// Segments placed so far, of all groups.
    pub segments: Vec<Segment>,
    /// The values the decoder gives back for the current group's segments placed so far,
    /// followed by [`BLOCK`] spare slots ([`fill`] may write that far past a segment).
    decoded: Vec<f32>,
}

/// Feasible intercepts of a run for a fixed slope: `[lo, hi]`.
#[derive(Debug, Clone, Copy)]
struct Window {
    lo: f64,
    hi: f64,
}

/// The shortest walk allowed after the decoder's arithmetic cut a segment short.
const MIN_WALK: usize = 16;

/// A segment found by [`Placer::one_segment`].
#[derive(Debug, Clone, Copy, PartialEq)]
struct Fit {
    /// Ranks covered.
    len: usize,
    intercept: Intercept,
    /// The first value, as decoded.
    first: f32,
    /// Whether the decoder's arithmetic missed the bound inside the walked run, so that the
    /// segment ends before it (or is a literal).
    cut: bool,
}

/// Windows within this many grid steps of the prediction take the fast test of
/// [`Placer::surely_on_grid`]; it is below [`MAX_STEPS`], so that their grid points are storable.
const NEAR_STEPS: f64 = (1u64 << 39) as f64;

impl<'a> Placer<'a> {
    /// A placer with room for `segments` segments, so that the buffer does not grow by
    /// doubling (which copies it and touches fresh memory) on a large tensor.
    pub fn with_capacity(segments: usize) -> Placer<'a> {
        Placer {
            segments: Vec::with_capacity(segments),
            ..Placer::default()
        }
    }

    /// Starts the next group: `sorted` values with error bound `bound` and grid step `q`, which
    /// the placer replaces with their decoded values when the group is done (at the next call
    /// or [`Placer::finish`]). The segments placed so far are kept.
    pub fn next_group(&mut self, sorted: &'a mut [f32], bound: f32, q: f32) {
        self.end_group();
        self.decoded.clear();
        self.decoded.resize(sorted.len() + BLOCK, 0.0);
        self.sorted = sorted;
        self.bound = bound as f64;
        self.q = if q.is_finite() && q > 0.0 { q } else { 0.0 };
        self.prediction = 0.0;
    }

    /// Replaces the current group's sorted values by their decoded values.
    fn end_group(&mut self) {
        let n = self.sorted.len();
        self.sorted.copy_from_slice(&self.decoded[..n]);
    }

    /// The segments placed (the groups' values are now their decoded values).
    pub fn finish(mut self) -> Vec<Segment> {
        self.end_group();
        self.segments
    }

    /// Covers ranks `start..start + len` with segments of slope `slope` (table entry `id`).
    pub fn place(&mut self, start: usize, len: usize, slope: f32, id: u32) {
        let mut at = start;
        // Where the decoder's `f32` arithmetic cuts walked runs short (bounds near the values'
        // rounding step), every segment would walk far past where it ends: after such a cut the
        // walk is limited to twice the cut segment's length (at least `MIN_WALK`), and the
        // limit doubles whenever a segment reaches it.
        let mut walk = usize::MAX;
        while at < start + len {
            // Only the piece's first segment is tried whole: when the piece does not fit whole,
            // trying each remainder whole again would cost the remainder's length per segment,
            // quadratic in the length of a long piece that the stored slope splits many times.
            let fit = self.one_segment(at, start + len, slope, at == start, walk);
            walk = if fit.cut {
                fit.len.saturating_mul(2).max(MIN_WALK)
            } else if fit.len >= walk {
                walk.saturating_mul(2)
            } else {
                walk
            };
            self.segments
                .push(Segment::new(fit.len as u32, id, fit.intercept));
            self.prediction = eval(fit.first, slope, fit.len);
            at += fit.len;
        }
    }

    /// The longest verified segment starting at rank `at` and ending by rank `end`, walking at
    /// most `walk` ranks. Its decoded values are left in `decoded`. With `try_whole`, all of
    /// `at..end` is first tested as one run.
    fn one_segment(
        &mut self,
        at: usize,
        end: usize,
        slope: f32,
        try_whole: bool,
        walk: usize,
    ) -> Fit {
        let ys = &self.sorted[at..end];
        // Most pieces fit whole. When the window of all of `ys` holds a grid point, so does
        // the window of every prefix (a wider one): the walk of `longest_run` would reach the
        // end with this same window, and is skipped. Either way the segment is the same.
        let whole = try_whole
            .then(|| self.window(ys, slope))
            .and_then(|w| Some((w, self.steps(w)?)));
        let (mut len, mut window, mut steps) = match whole {
            Some((whole, steps)) => (ys.len(), whole, Some(steps)),
            None => {
                let (len, w) = self.longest_run(&ys[..ys.len().min(walk)], slope);
                (len, w, self.steps(w))
            }
        };
        let mut cut = false;
        while len > 0 {
            let intercept = self.choose(window, steps);
            let first = first_value(intercept, self.prediction, self.q);
            let out = &mut self.decoded[at..];
            fill(out, len, first, slope);
            match first_miss(&ys[..len], &out[..len], self.bound) {
                None => {
                    return Fit {
                        len,
                        intercept,
                        first,
                        cut,
                    }
                }
                Some(0) => break,
                // A prefix of a run is a run: its (wider) window still holds what it held.
                Some(miss) => {
                    len = miss;
                    window = self.window(&ys[..miss], slope);
                    steps = self.steps(window);
                    cut = true;
                }
            }
        }
        // The decoder evaluates a literal like any other first value.
        fill(&mut self.decoded[at..], 1, ys[0], slope);
        Fit {
            len: 1,
            intercept: Intercept::Literal(ys[0]),
            first: ys[0],
            cut: true,
        }
    }

    /// Longest prefix of `ys` with a storable intercept for `slope`, and its window.
    fn longest_run(&self, ys: &[f32], slope: f32) -> (usize, Window) {
        let mut w = Window {
            lo: f64::NEG_INFINITY,
            hi: f64::INFINITY,
        };
        // `j` counts as `u32` (groups are shorter than 2^32): its conversion to `f64` is then
        // one instruction, where a `usize` needs a branch; the value is the same.
        for (j, &y) in (0..u32::MAX).zip(ys) {
            let r = y as f64 - slope as f64 * f64::from(j);
            let next = Window {
                lo: w.lo.max(r - self.bound),
                hi: w.hi.min(r + self.bound),
            };
            // A window that did not shrink stays storable (and the first point always shrinks
            // the infinite one).
            let same = next.lo == w.lo && next.hi == w.hi;
            if !same && !self.storable(next) {
                return (j as usize, w);
            }
            w = next;
        }
        (ys.len(), w)
    }

    /// The intercepts that fit every point of `ys` for `slope` (possibly none: `lo > hi`): the
    /// intersection of every `[r - bound, r + bound]`, `r = y - slope * j`, with the walk's
    /// operations.
    fn window(&self, ys: &[f32], slope: f32) -> Window {
        let (s, b) = (f64::from(slope), self.bound);
        let mut w = Window {
            lo: f64::NEG_INFINITY,
            hi: f64::INFINITY,
        };
        // Pieces are short (a few points at the default bounds): a plain loop serves best.
        // The comparisons select as `max` and `min` do (a NaN leaves the window unchanged),
        // each in one instruction; only the sign of a zero end may differ, which changes no
        // grid step (and a literal only between -0 and +0, both exact for a zero bound).
        for (j, &y) in (0..u32::MAX).zip(ys) {
            let r = f64::from(y) - s * f64::from(j);
            let (lo, hi) = (r - b, r + b);
            if lo > w.lo {
                w.lo = lo;
            }
            if hi < w.hi {
                w.hi = hi;
            }
        }
        w
    }

    /// Grid steps `k_lo..=k_hi` that land in `w`, if the grid is in use.
    fn steps(&self, w: Window) -> Option<(f64, f64)> {
        if self.q == 0.0 {
            return None;
        }
        let q = self.q as f64;
        let p = self.prediction as f64;
        let k_lo = -floor(-(w.lo - p) / q);
        let k_hi = floor((w.hi - p) / q);
        (k_lo <= k_hi && k_hi >= -MAX_STEPS && k_lo <= MAX_STEPS).then_some((k_lo, k_hi))
    }

    fn storable(&self, w: Window) -> bool {
        if w.lo > w.hi {
            return false;
        }
        if self.surely_on_grid(w) {
            return true;
        }
        match self.steps(w) {
            Some(_) => true,
            None => {
                let mid = self.literal(w);
                self.q == 0.0 && (w.lo..=w.hi).contains(&(mid as f64))
            }
        }
    }

    /// Whether `w` is at least two grid steps wide and near the prediction: then it holds a
    /// storable grid point, and [`Self::steps`] (two divisions and roundings) would find one
    /// too, as its rounding errors are far below a step. Most windows of a segment pass this
    /// test; only the last few before a segment closes need the exact one.
    #[inline]
    fn surely_on_grid(&self, w: Window) -> bool {
        let q = self.q as f64;
        let p = self.prediction as f64;
        q > 0.0
            && w.hi - w.lo >= 2.0 * q
            && (w.lo - p).abs() < NEAR_STEPS * q
            && (w.hi - p).abs() < NEAR_STEPS * q
    }

    fn literal(&self, w: Window) -> f32 {
        (0.5 * (w.lo + w.hi)) as f32
    }

    /// The grid step nearest the prediction (the cheapest to code) among `steps`, the grid
    /// points in `w` (as [`Self::steps`] gives them), else a literal.
    fn choose(&self, w: Window, steps: Option<(f64, f64)>) -> Intercept {
        match steps {
            Some((k_lo, k_hi)) => {
                let k = 0f64.clamp(k_lo.max(-MAX_STEPS), k_hi.min(MAX_STEPS));
                Intercept::Steps(k as i64)
            }
            None => Intercept::Literal(self.literal(w)),
        }
    }
}

/// First offset where `decoded` misses `ys` by more than `bound`; NaN (from an overflowing
/// evaluation) counts as a miss.
fn first_miss(ys: &[f32], decoded: &[f32], bound: f64) -> Option<usize> {
    let within = |(&y, &d): (&f32, &f32)| (f64::from(y) - f64::from(d)).abs() <= bound;
    // Misses are rare: one pass without an early exit (which vectorizes) decides.
    if ys
        .iter()
        .zip(decoded)
        .fold(true, |all, pair| all & within(pair))
    {
        return None;
    }
    ys.iter().zip(decoded).position(|pair| !within(pair))
}

/// `x.floor()` (for every `x`, NaN and infinities included, up to the sign of a zero) without
/// the library call that `f64::floor` compiles to on the baseline x86-64 target, which has no
/// rounding instruction; the placement rounds two window ends per point.
#[inline]
fn floor(x: f64) -> f64 {
    /// From 2^52 on, every `f64` is a whole number.
    const WHOLE: f64 = (1u64 << 52) as f64;
    if x.abs() < WHOLE {
        // Truncation rounds negative fractions up; subtract one there, without a branch (its
        // direction would be a coin toss).
        let t = x as i64 as f64;
        t - f64::from(u8::from(t > x))
    } else {
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(segments: &[Segment], slopes: &[f32], q: f32) -> Vec<f32> {
        let mut out = Vec::new();
        let mut prediction = 0.0;
        for s in segments {
            let slope = slopes[s.slope_id as usize];
            let first = first_value(s.intercept(), prediction, q);
            let len = s.len as usize;
            out.extend((0..len).map(|j| eval(first, slope, j)));
            prediction = eval(first, slope, len);
        }
        out
    }

    #[test]
    fn pwl_segment_keeps_its_intercept() {
        let max = MAX_STEPS as i64;
        let steps = [0, 1, -1, max, -max].map(Intercept::Steps);
        let literals = [
            0.0,
            -0.0,
            -1.5,
            f32::MAX,
            f32::MIN,
            f32::from_bits(1),
            -f32::MIN_POSITIVE,
        ]
        .map(Intercept::Literal);
        for intercept in steps.into_iter().chain(literals) {
            let segment = Segment::new(7, 3, intercept);
            assert_eq!((segment.len, segment.slope_id), (7, 3));
            match (segment.intercept(), intercept) {
                (Intercept::Literal(a), Intercept::Literal(b)) => {
                    assert_eq!(a.to_bits(), b.to_bits())
                }
                (a, b) => assert_eq!(a, b),
            }
        }
        assert_eq!(std::mem::size_of::<Segment>(), 16);
    }

    #[test]
    fn pwl_placement_splits_where_a_shared_slope_fails() {
        let ys: Vec<f32> = (0..50).map(|i| (i * i) as f32 * 0.01).collect();
        let mut decoded = ys.clone();
        let mut p = Placer::default();
        p.next_group(&mut decoded, 0.05, 0.05);
        p.place(0, ys.len(), 0.3, 0);
        let segments = p.finish();
        assert!(segments.len() > 1);
        let got = decode(&segments, &[0.3], 0.05);
        assert!(ys.iter().zip(&got).all(|(a, b)| (a - b).abs() <= 0.05));
        assert_eq!(decoded, got);
    }

    #[test]
    fn pwl_placement_reports_what_each_group_decodes_to() {
        let groups: [Vec<f32>; 3] = [
            (0..37).map(|i| (i as f32 * 0.7).sin()).collect(),
            vec![2.0],
            (0..300).map(|i| (i * i) as f32 * 1e-4 - 3.0).collect(),
        ];
        let mut decoded = groups.clone();
        let mut p = Placer::default();
        let mut expect = Vec::new();
        for ys in &mut decoded {
            let before = p.segments.len();
            let len = ys.len();
            p.next_group(ys, 0.01, 0.005);
            p.place(0, len, 0.02, 0);
            expect.push(decode(&p.segments[before..], &[0.02], 0.005));
        }
        p.finish();
        assert_eq!(decoded.to_vec(), expect);
    }

    proptest::proptest! {
        /// Testing a run whole first is a shortcut: the segment is the one the point-by-point
        /// walk finds.
        #[test]
        fn pwl_segment_is_the_same_with_or_without_the_whole_test(
            steps in proptest::collection::vec(0.0f32..0.02, 1..200),
            slope in -0.005f32..0.02,
            bound in 0.0005f32..0.02,
            merge in 0.0f32..0.5,
        ) {
            let ys: Vec<f32> = steps.iter().scan(-0.3f32, |y, &d| { *y += d; Some(*y) }).collect();
            let q = 2.0 * merge * bound;
            let mut segments = [Vec::new(), Vec::new()];
            for (try_whole, out) in [true, false].into_iter().zip(&mut segments) {
                let mut values = ys.clone();
                let mut p = Placer::default();
                p.next_group(&mut values, bound, q);
                let mut at = 0;
                while at < ys.len() {
                    let fit = p.one_segment(at, ys.len(), slope, try_whole, usize::MAX);
                    p.prediction = eval(fit.first, slope, fit.len);
                    at += fit.len;
                    out.push(fit);
                }
            }
            proptest::prop_assert_eq!(&segments[0], &segments[1]);
        }
    }

    #[test]
    fn pwl_floor_matches_the_library() {
        let cases = [
            0.0,
            -0.0,
            0.5,
            -0.5,
            1.0,
            -1.0,
            -1.5,
            2.999_999,
            -2.000_001,
            4503599627370495.5,
            -4503599627370495.5,
            1e300,
            -1e300,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MIN_POSITIVE,
            -f64::MIN_POSITIVE,
        ];
        for x in cases {
            assert_eq!(floor(x), x.floor(), "{x}");
        }
        assert!(floor(f64::NAN).is_nan());
    }

    #[test]
    fn pwl_zero_bound_stores_exact_values() {
        let ys = [1.0f32, 1.0, 1.0, 2.5, 1e30];
        let mut decoded = ys;
        let mut p = Placer::default();
        p.next_group(&mut decoded, 0.0, 0.0);
        p.place(0, ys.len(), 0.0, 0);
        let segments = p.finish();
        assert_eq!(decode(&segments, &[0.0], 0.0), ys);
        assert_eq!(decoded, ys);
        assert_eq!(segments.len(), 3);
    }
}
