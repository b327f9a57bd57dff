//! The thesis method: piecewise linearization of sorted groups with a dense rank matrix.
//!
//! Each group of values (by default a row: the first dimension is the output unit) is sorted
//! (stably, ties by position); the sorted values form a monotone curve that is approximated by
//! line segments within the group's error bound ([`linearize`]). Segments with nearly equal
//! slopes share one slope from a table ([`slopes`], the thesis' "parallel lines"); intercepts
//! are stored as steps on a grid relative to the previous segment's extension, and each segment
//! is checked in the decoder's arithmetic and split where it misses ([`place`]). Segment
//! parameters are Huffman coded ([`stream`]); every weight stores its rank in its sorted group
//! ([`ranks`]). Decoding a weight evaluates its segment at its rank.
//!
//! Payload (all groups of the tensor):
//! - `u8` format version, `u8` flags (bit 0 Huffman, bit 1 f16 slopes, bit 2 shared slopes,
//!   bit 3 grid intercepts, bit 4 permutation-coded ranks);
//! - `varint` group size; `varint` slope count, then the slopes (f32 or f16, little-endian);
//! - if the tensor has values: the codes of lengths, slope symbols and intercept symbols;
//! - `block`: per group the grid step `q` (f32), present only with grid intercepts;
//! - `block`: the segment bit stream; `block`: the rank bit stream.

mod linearize;
mod place;
mod ranks;
mod slopes;
mod sort;
mod stream;

pub use linearize::{greedy, optimal, Piece};
pub use slopes::Precision;

use crate::bitio::{BitReader, BitWriter, ByteReader, PutBytes, WordWriter};
use crate::entropy::huffman::{bits_for, BitSource, Code};
use crate::CodecError;
use half::f16;
use linearize::{greedy_into, Optimal};
use place::{Intercept, Placer, Segment};
use std::ops::Range;

const VERSION: u8 = 1;
const FLAG_HUFFMAN: u8 = 1;
const FLAG_F16: u8 = 2;
const FLAG_SHARED: u8 = 4;
const FLAG_GRID: u8 = 8;
const FLAG_PERMUTATION: u8 = 16;

/// Which values are sorted and linearized together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Granularity {
    /// Each row (first dimension) on its own: ranks cost `ceil(log2 cols)` bits.
    #[default]
    Row,
    /// The whole tensor as one sequence: ranks cost `ceil(log2 N)` bits.
    Layer,
    /// Consecutive blocks of this many values (in storage order).
    Block(usize),
    /// Per row, or the whole tensor where that payload is smaller: short rows (the nine
    /// weights of a depthwise 3x3 kernel) have too few values to share a segment, and a per-row
    /// payload can exceed the raw `f32` size. The whole tensor is tried only when the per-row
    /// payload is larger than its rank stream alone would be (`ceil(log2 N)` bits per value), so
    /// large tensors are encoded once.
    Auto,
}

/// The linearization algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Linearizer {
    /// Fewest segments for the tolerance (streaming convex-hull algorithm).
    #[default]
    Optimal,
    /// The shrinking cone anchored at each segment's first point.
    Greedy,
}

/// How the ranks (the dense matrix) are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RankCoding {
    /// Each rank in `ceil(log2 n)` bits (the thesis' dense matrix encoding).
    #[default]
    Packed,
    /// Ablation: the group's permutation in about `log2(n!)` bits (Lehmer code, mixed radix).
    Permutation,
}

/// The thesis' thresholds and ablation switches. The bound itself (threshold `p`) arrives
/// per row from the caller.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// Which values are sorted together (default: per row).
    pub granularity: Granularity,
    /// Linearization algorithm (default: optimal).
    pub linearizer: Linearizer,
    /// Threshold `pd`, in units of the error bound per rank: segments whose slopes differ by
    /// less than `pd * p` (with `p` the smallest positive group bound of the tensor) share one
    /// slope. `0` disables parallel lines: every segment stores its own slope. Default 0.3.
    pub pd: f64,
    /// Threshold `pm`, read as the merge tolerance of neighbouring segments, in `[0, 1)`: a
    /// segment's first value is stored as a whole number of steps `q = 2 * pm * p` away from
    /// the extension of the previous segment, so a segment within `pm * p` of that extension
    /// joins it at no cost (zero steps). Linearization then runs at tolerance `(1 - pm) * p`,
    /// which leaves room for the rounding to the grid. `0` stores every first value as `f32`.
    /// Default 0.25.
    pub pm: f64,
    /// Precision of the stored slopes (ablation: f16).
    pub slope_precision: Precision,
    /// Dense matrix coding (ablation: permutation).
    pub rank_coding: RankCoding,
    /// Huffman-code the segment parameters (ablation: fixed-length codes).
    pub huffman: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            granularity: Granularity::Row,
            linearizer: Linearizer::Optimal,
            pd: 0.3,
            pm: 0.25,
            slope_precision: Precision::F32,
            rank_coding: RankCoding::Packed,
            huffman: true,
        }
    }
}

impl Options {
    fn flags(&self) -> u8 {
        let mut f = 0;
        let set = |on: bool, bit: u8| if on { bit } else { 0 };
        f |= set(self.huffman, FLAG_HUFFMAN);
        f |= set(self.slope_precision == Precision::F16, FLAG_F16);
        f |= set(self.pd > 0.0, FLAG_SHARED);
        f |= set(self.pm > 0.0, FLAG_GRID);
        f |= set(
            self.rank_coding == RankCoding::Permutation,
            FLAG_PERMUTATION,
        );
        f
    }

    /// `pm` clamped to its meaningful range.
    fn merge(&self) -> f64 {
        if self.pm.is_finite() {
            self.pm.clamp(0.0, 0.999)
        } else {
            0.0
        }
    }
}

/// Where the bytes of an encoded tensor went.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    /// Number of values.
    pub values: usize,
    /// Number of sorted groups.
    pub groups: usize,
    /// Segments proposed by the linearization.
    pub pieces: usize,
    /// Segments stored (after slope sharing and repair).
    pub segments: usize,
    /// Segments whose first value is stored as a literal `f32`.
    pub literals: usize,
    /// Entries in the slope table.
    pub slopes: usize,
    /// Bytes of the rank stream.
    pub rank_bytes: usize,
    /// Bytes of the segment stream.
    pub segment_bytes: usize,
    /// Everything else: header, slope table, codes, grid steps.
    pub header_bytes: usize,
}

/// Encodes `rows` equal rows of finite `values`, row `r` within `bounds[r]`.
pub fn encode(values: &[f32], rows: usize, bounds: &[f32], options: &Options) -> Vec<u8> {
    encode_with_stats(values, rows, bounds, options).0
}

/// Consecutive groups of `size` values (the last may be shorter).
#[derive(Debug, Clone, Copy)]
struct Groups {
    total: usize,
    size: usize,
}

impl Groups {
    fn new(total: usize, rows: usize, granularity: Granularity) -> Groups {
        let size = match granularity {
            // `Auto` is resolved to `Row` or `Layer` before grouping (`encode_plan`).
            Granularity::Row | Granularity::Auto => total / rows.max(1),
            Granularity::Layer => total,
            Granularity::Block(b) => b,
        };
        // Positions are sorted as u32; larger groups are split.
        let size = size.clamp(1, u32::MAX as usize);
        Groups { total, size }
    }

    fn count(&self) -> usize {
        self.total.div_ceil(self.size)
    }

    fn ranges(&self) -> impl Iterator<Item = Range<usize>> + '_ {
        (0..self.count()).map(|g| g * self.size..((g + 1) * self.size).min(self.total))
    }
}

/// All groups of a tensor after sorting and linearization. The data of a group lie at its
/// range of values (`groups.ranges()`) in `order` and `sorted`.
struct Fits {
    groups: Groups,
    /// Per group: `order[i]` is the position (within the group) of its `i`-th smallest value.
    order: Vec<u32>,
    /// Per group: its values in ascending order.
    sorted: Vec<f32>,
    /// Proposed segments of all groups, in group order; `start` is a rank within the group.
    pieces: Vec<Piece>,
    /// Per group: where its pieces end in `pieces`.
    piece_ends: Vec<usize>,
    /// Per group: its error bound.
    bounds: Vec<f32>,
}

impl Fits {
    /// Sorts every group (stably, ties by position) and proposes its segments, reusing the
    /// buffers across groups.
    fn new(values: &[f32], rows: usize, bounds: &[f32], options: &Options) -> Fits {
        let groups = Groups::new(values.len(), rows, options.granularity);
        let cols = values.len() / rows.max(1);
        let pm = options.merge();
        let mut fits = Fits {
            groups,
            order: Vec::with_capacity(values.len()),
            sorted: Vec::with_capacity(values.len()),
            pieces: Vec::new(),
            piece_ends: Vec::with_capacity(groups.count()),
            bounds: Vec::with_capacity(groups.count()),
        };
        let mut sorter = sort::Sorter::default();
        let mut optimal = Optimal::default();
        for range in groups.ranges() {
            let bound = group_bound(&range, cols, bounds);
            let eps = bound as f64 * (1.0 - pm);
            sorter.sort(&values[range.clone()], &mut fits.order, &mut fits.sorted);
            let sorted = &fits.sorted[range];
            match options.linearizer {
                Linearizer::Optimal => optimal.run(sorted, eps, &mut fits.pieces),
                Linearizer::Greedy => greedy_into(sorted, eps, &mut fits.pieces),
            }
            fits.piece_ends.push(fits.pieces.len());
            fits.bounds.push(bound);
            if fits.piece_ends.len() == 1 {
                reserve_like_first(&mut fits.pieces, groups.count());
            }
        }
        fits
    }
}

/// Reserves room in `items`, which holds the items of the first of `groups` groups, for as
/// many per group (and an eighth more), so that it seldom grows by doubling, which copies it:
/// the pieces of a large tensor fill megabytes.
fn reserve_like_first<T>(items: &mut Vec<T>, groups: usize) {
    let expected = items.len().saturating_mul(groups);
    items.reserve(
        expected
            .saturating_add(expected / 8)
            .saturating_sub(items.len()),
    );
}

/// The bound of a group: the smallest bound of the rows it touches (invalid bounds mean 0).
fn group_bound(range: &std::ops::Range<usize>, cols: usize, bounds: &[f32]) -> f32 {
    let first = range.start / cols.max(1);
    let last = (range.end.max(1) - 1) / cols.max(1);
    (first..=last)
        .map(|r| bounds.get(r).copied().unwrap_or(0.0))
        .map(|b| if b.is_finite() && b > 0.0 { b } else { 0.0 })
        .fold(f32::INFINITY, f32::min)
}

/// [`encode`], also reporting where the bytes went.
pub fn encode_with_stats(
    values: &[f32],
    rows: usize,
    bounds: &[f32],
    options: &Options,
) -> (Vec<u8>, Stats) {
    let (_, out, stats) = encode_plan(values, rows, bounds, options);
    (out, stats)
}

/// [`encode`], also returning the values [`decode`] gives back for the payload. They come from
/// the placed segments, expanded with the decoder's own code, instead of decoding the payload.
pub fn encode_reconstructed(
    values: &[f32],
    rows: usize,
    bounds: &[f32],
    options: &Options,
) -> (Vec<u8>, Vec<f32>) {
    let (plan, out, _) = encode_plan(values, rows, bounds, options);
    (out, plan.into_reconstruction())
}

/// The plan, payload and statistics of an encoding, with [`Granularity::Auto`] resolved.
fn encode_plan(
    values: &[f32],
    rows: usize,
    bounds: &[f32],
    options: &Options,
) -> (Plan, Vec<u8>, Stats) {
    if options.granularity != Granularity::Auto {
        return plan_and_payload(values, rows, bounds, options);
    }
    let with = |granularity| Options {
        granularity,
        ..options.clone()
    };
    let per_row = plan_and_payload(values, rows, bounds, &with(Granularity::Row));
    if rows <= 1 || per_row.1.len() as f64 * 8.0 <= layer_rank_bits(values.len(), options) {
        return per_row;
    }
    let whole = plan_and_payload(values, rows, bounds, &with(Granularity::Layer));
    if whole.1.len() < per_row.1.len() {
        whole
    } else {
        per_row
    }
}

/// A lower bound on the rank stream of `n` values sorted as one group: `ceil(log2 n)` bits per
/// value packed, `log2 n! >= n log2(n / e)` as a permutation.
fn layer_rank_bits(n: usize, options: &Options) -> f64 {
    match options.rank_coding {
        RankCoding::Packed => n as f64 * f64::from(bits_for(n.saturating_sub(1) as u64)),
        RankCoding::Permutation => n as f64 * (n as f64 / std::f64::consts::E).log2().max(0.0),
    }
}

/// The plan of `options` (whose granularity is not `Auto`), its payload and statistics.
fn plan_and_payload(
    values: &[f32],
    rows: usize,
    bounds: &[f32],
    options: &Options,
) -> (Plan, Vec<u8>, Stats) {
    let plan = Plan::new(values, rows, bounds, options);
    let mut stats = Stats {
        values: values.len(),
        groups: plan.fits.groups.count(),
        pieces: plan.fits.pieces.len(),
        slopes: plan.table.values.len(),
        ..Stats::default()
    };
    let out = write_payload(&plan, options, &mut stats);
    (plan, out, stats)
}

/// Everything the payload is written from: the sorted groups, the slope table and the placed
/// segments.
struct Plan {
    fits: Fits,
    table: slopes::SlopeTable,
    placed: Placed,
}

impl Plan {
    fn new(values: &[f32], rows: usize, bounds: &[f32], options: &Options) -> Plan {
        let mut fits = Fits::new(values, rows, bounds, options);
        let table = slope_table(&fits, options);
        let placed = place_all(&mut fits, &table, options.merge());
        Plan {
            fits,
            table,
            placed,
        }
    }

    /// The values the decoder gives back, in storage order: the placement's decoded values
    /// (in the decoder's arithmetic, left in `fits.sorted`), put back in place by the sort
    /// order. Each group is permuted within that buffer, through a copy of the group, rather
    /// than into a new buffer as large as the tensor.
    fn into_reconstruction(self) -> Vec<f32> {
        let mut values = self.fits.sorted;
        let mut sorted = Vec::new();
        for range in self.fits.groups.ranges() {
            sorted.clear();
            sorted.extend_from_slice(&values[range.clone()]);
            let group = &mut values[range.clone()];
            for (&position, &value) in self.fits.order[range].iter().zip(&sorted) {
                group[position as usize] = value;
            }
        }
        values
    }
}

/// Slope table over all proposed pieces of the tensor.
fn slope_table(fits: &Fits, options: &Options) -> slopes::SlopeTable {
    let proposals = fits.pieces.iter().map(|p| p.slope);
    if options.pd > 0.0 {
        let p = fits
            .bounds
            .iter()
            .copied()
            .filter(|&b| b > 0.0)
            .fold(f32::INFINITY, f32::min);
        let threshold = if p.is_finite() {
            options.pd * p as f64
        } else {
            0.0
        };
        slopes::share(proposals, threshold, options.slope_precision)
    } else {
        slopes::SlopeTable {
            values: proposals
                .map(|s| options.slope_precision.round(s))
                .collect(),
            ids: (0..fits.pieces.len() as u32).collect(),
        }
    }
}

/// The stored segments of all groups and each group's grid step.
struct Placed {
    segments: Vec<Segment>,
    steps: Vec<f32>,
}

/// Places the segments of every group; each group's sorted values in `fits.sorted` become the
/// values the decoder gives back for them.
fn place_all(fits: &mut Fits, table: &slopes::SlopeTable, pm: f64) -> Placed {
    let mut ids = table.ids.iter();
    // At least one segment per piece; splits are few.
    let pieces = fits.pieces.len();
    let mut placer = Placer::with_capacity(pieces.saturating_add(pieces / 8));
    let mut steps = Vec::with_capacity(fits.groups.count());
    let starts = std::iter::once(0).chain(fits.piece_ends.iter().copied());
    let groups = fits
        .sorted
        .chunks_mut(fits.groups.size)
        .zip(starts.zip(&fits.piece_ends))
        .zip(&fits.bounds);
    for ((sorted, (start, &end)), &bound) in groups {
        let q = (2.0 * pm * bound as f64) as f32;
        placer.next_group(sorted, bound, q);
        for piece in &fits.pieces[start..end] {
            let id = ids.next().copied().unwrap_or(0);
            let slope = table.values.get(id as usize).copied().unwrap_or(0.0);
            placer.place(piece.start as usize, piece.len as usize, slope, id);
        }
        steps.push(q);
    }
    Placed {
        segments: placer.finish(),
        steps,
    }
}

/// The three parameter values of each segment: (length - 1, slope symbol, intercept symbol).
/// They are computed each time they are needed rather than kept: a tensor's would take 24
/// bytes per segment.
fn parameters(segments: &[Segment], shared: bool) -> impl Iterator<Item = [u64; 3]> + Clone + '_ {
    let mut previous = None;
    segments.iter().map(move |s| {
        let slope = if previous == Some(s.slope_id) {
            0
        } else if shared {
            1 + u64::from(s.slope_id)
        } else {
            1
        };
        previous = Some(s.slope_id);
        let intercept = match s.intercept() {
            Intercept::Literal(_) => 0,
            Intercept::Steps(k) => 1 + stream::zigzag(k),
        };
        [u64::from(s.len) - 1, slope, intercept]
    })
}

/// The code of each parameter kind, from its symbol counts.
fn build_codes(counts: &[Vec<u64>; 3], huffman: bool) -> Vec<Code> {
    counts
        .iter()
        .map(|counts| {
            let code = if huffman {
                Code::from_counts(counts, stream::CODE_LIMIT)
            } else {
                Code::fixed(counts)
            };
            // Non-empty counts over the fixed alphabet always make a valid code.
            code.unwrap_or_else(|e| unreachable!("parameter code: {e}"))
        })
        .collect()
}

fn write_payload(plan: &Plan, options: &Options, stats: &mut Stats) -> Vec<u8> {
    let Plan {
        fits,
        table,
        placed,
    } = plan;
    let flags = options.flags();
    let mut out = vec![VERSION, flags];
    out.put_varint(fits.groups.size as u64);
    out.put_varint(table.values.len() as u64);
    for &s in &table.values {
        match options.slope_precision {
            Precision::F32 => out.put_f32(s),
            Precision::F16 => out.extend_from_slice(&f16::from_f32(s).to_le_bytes()),
        }
    }
    let all = &placed.segments;
    let params = parameters(all, flags & FLAG_SHARED != 0);
    let mut w = WordWriter::default();
    if !all.is_empty() {
        let (counts, max) = stream::tally(params.clone());
        let codes = build_codes(&counts, options.huffman);
        codes.iter().for_each(|c| c.write(&mut out));
        let writers: Vec<_> = (0..3)
            .map(|k| stream::ValueWriter::new(&codes[k], max[k]))
            .collect();
        for (p, s) in params.zip(all) {
            (0..3).for_each(|k| writers[k].put(&mut w, p[k]));
            if let Intercept::Literal(v) = s.intercept() {
                w.write(v.to_bits() as u64, 32);
            }
        }
    }
    if flags & FLAG_GRID != 0 {
        let q: Vec<u8> = placed.steps.iter().flat_map(|q| q.to_le_bytes()).collect();
        out.put_block(&q);
    }
    let segment_bytes = w.finish();
    let rank_bytes = write_ranks(fits, options.rank_coding);
    stats.segments = all.len();
    stats.literals = all
        .iter()
        .filter(|s| matches!(s.intercept(), Intercept::Literal(_)))
        .count();
    stats.header_bytes = out.len();
    stats.segment_bytes = segment_bytes.len();
    stats.rank_bytes = rank_bytes.len();
    out.put_block(&segment_bytes);
    out.put_block(&rank_bytes);
    out
}

/// The rank stream: per group, the rank of each value in its group.
fn write_ranks(fits: &Fits, coding: RankCoding) -> Vec<u8> {
    let packed_bits: usize = fits
        .groups
        .ranges()
        .map(|r| r.len() * bits_for(r.len().saturating_sub(1) as u64) as usize)
        .sum();
    let mut packed = match coding {
        RankCoding::Packed => WordWriter::with_capacity(packed_bits.div_ceil(8)),
        RankCoding::Permutation => WordWriter::default(),
    };
    let mut lehmer = BitWriter::new();
    let mut ranks = Vec::new();
    for range in fits.groups.ranges() {
        // Every slot is overwritten (the order is a permutation): only the length matters.
        ranks.resize(range.len(), 0u32);
        for (rank, &pos) in fits.order[range].iter().enumerate() {
            ranks[pos as usize] = rank as u32;
        }
        match coding {
            RankCoding::Packed => ranks::put_packed(&mut packed, &ranks),
            RankCoding::Permutation => ranks::put_permutation(&mut lehmer, &ranks),
        }
    }
    match coding {
        RankCoding::Packed => packed.finish(),
        RankCoding::Permutation => lehmer.finish(),
    }
}

/// Everything the decoder reads before the streams.
struct Header {
    flags: u8,
    groups: Groups,
    slopes: Vec<f32>,
    codes: Vec<Code>,
    steps: Vec<f32>,
}

fn read_header(r: &mut ByteReader<'_>, total: usize) -> Result<Header, CodecError> {
    if r.u8()? != VERSION {
        return Err(CodecError::Corrupt("unknown pwl format version"));
    }
    let flags = r.u8()?;
    let size = r.varint_max(u32::MAX as u64)?;
    if size == 0 {
        return Err(CodecError::Corrupt("pwl group size is zero"));
    }
    let groups = Groups { total, size };
    let precision = if flags & FLAG_F16 != 0 {
        Precision::F16
    } else {
        Precision::F32
    };
    let count = r.varint_max((r.remaining() / precision.size()) as u64)?;
    let slopes = (0..count)
        .map(|_| read_slope(r, precision))
        .collect::<Result<Vec<_>, _>>()?;
    let codes = if total > 0 {
        (0..3).map(|_| Code::read(r)).collect::<Result<_, _>>()?
    } else {
        Vec::new()
    };
    let steps = if flags & FLAG_GRID != 0 {
        let block = r.block()?;
        if block.len() != groups.count() * 4 {
            return Err(CodecError::Corrupt(
                "pwl grid steps do not match the groups",
            ));
        }
        block
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    } else {
        // A declared size that cannot be allocated is an error, not an abort.
        let mut steps = Vec::new();
        steps
            .try_reserve_exact(groups.count())
            .map_err(|_| CodecError::TooLarge(total as u64))?;
        steps.resize(groups.count(), 0.0);
        steps
    };
    Ok(Header {
        flags,
        groups,
        slopes,
        codes,
        steps,
    })
}

fn read_slope(r: &mut ByteReader<'_>, precision: Precision) -> Result<f32, CodecError> {
    match precision {
        Precision::F32 => r.f32(),
        Precision::F16 => {
            let b = r.take(2)?;
            Ok(f16::from_le_bytes([b[0], b[1]]).to_f32())
        }
    }
}

/// Decodes the segment parameters, keeping the state shared across groups.
struct SegmentReader<'a> {
    bits: BitSource<'a>,
    /// Readers of the lengths, slope symbols and intercept symbols.
    lens: stream::ValueReader,
    slopes: stream::ValueReader,
    intercepts: stream::ValueReader,
    /// The slope table.
    table: &'a [f32],
    /// Whether slope symbols name table entries (shared slopes), or take the next one in order.
    shared: bool,
    /// The table entry of the tensor's previous segment; [`NO_SEGMENT`] before the first.
    slope_id: usize,
    /// The next table entry in order (without shared slopes).
    next_inline: usize,
}

/// [`SegmentReader::slope_id`] before the first segment: no table entry.
const NO_SEGMENT: usize = usize::MAX;

impl<'a> SegmentReader<'a> {
    fn new(bits: BitSource<'a>, header: &'a Header) -> Result<Self, CodecError> {
        let [lens, slopes, intercepts] = &header.codes[..] else {
            return Err(CodecError::Corrupt("pwl parameter codes missing"));
        };
        Ok(SegmentReader {
            bits,
            lens: stream::ValueReader::new(lens)?,
            slopes: stream::ValueReader::new(slopes)?,
            intercepts: stream::ValueReader::new(intercepts)?,
            table: &header.slopes,
            shared: header.flags & FLAG_SHARED != 0,
            slope_id: NO_SEGMENT,
            next_inline: 0,
        })
    }

    /// Fills `out` with the decoded sorted values of a group of `n` with grid step `q`.
    /// Inlined into the decoder's loop ([`GroupDecoder::run`]), so that it is compiled for the
    /// instructions the decoder chose; as a call once per group it also cost MiniLM-L6's
    /// decode 5-7%.
    ///
    /// The reader's state is copied into locals for the loop and back after it: kept in the
    /// reader, whose address the decoder's calls see, every read loaded and stored it.
    #[inline(always)]
    fn group(&mut self, n: usize, q: f32, out: &mut Vec<f32>) -> Result<(), CodecError> {
        // The segments overwrite every slot of the group (or the group is an error): only the
        // length matters, and setting it without clearing writes no zeros where the last group
        // was.
        out.resize(n + place::BLOCK, 0.0);
        let mut bits = self.bits.clone();
        let (mut previous, mut next_inline) = (self.slope_id, self.next_inline);
        let mut prediction = 0.0f32;
        let mut at = 0;
        while at < n {
            // Enough bits for the segment's three values (up to 12 bits each when they are
            // read whole), loaded without a test of how many the buffer holds: their own tests
            // then fail only near the end of the stream, and are predicted.
            bits.refill();
            let len = self.lens.get(&mut bits)? as usize + 1;
            if len > n - at {
                return Err(CodecError::Corrupt("pwl segment runs past its group"));
            }
            // Slope symbol 0 repeats the previous entry; the others name one (shared slopes)
            // or take the next in order. Selected without a branch on the symbol, which would
            // mispredict on a mix of repeats and new entries.
            let symbol = self.slopes.get(&mut bits)? as usize;
            let named = if self.shared {
                symbol.wrapping_sub(1)
            } else {
                next_inline
            };
            next_inline += usize::from(symbol != 0);
            let id = if symbol == 0 { previous } else { named };
            let slope = match self.table.get(id) {
                Some(&s) => s,
                None if id == NO_SEGMENT => {
                    return Err(CodecError::Corrupt("pwl slope repeat at the start"))
                }
                None => return Err(CodecError::Corrupt("pwl slope id out of range")),
            };
            previous = id;
            let intercept = match self.intercepts.get(&mut bits)? {
                0 => Intercept::Literal(f32::from_bits(bits.read(32)? as u32)),
                v => Intercept::Steps(stream::unzigzag(v - 1)),
            };
            // The placement's own arithmetic, so that the encoder's reconstruction is this.
            let first = place::first_value(intercept, prediction, q);
            place::fill(&mut out[at..], len, first, slope);
            prediction = place::eval(first, slope, len);
            at += len;
        }
        (self.slope_id, self.next_inline) = (previous, next_inline);
        self.bits = bits;
        out.truncate(n);
        Ok(())
    }
}

/// Decodes `rows * cols` values written by [`encode`].
pub fn decode(payload: &[u8], rows: usize, cols: usize) -> Result<Vec<f32>, CodecError> {
    decode_as(payload, rows, cols, |v| v)
}

/// [`decode`], giving each value as `convert(value)`. The rank gather converts the values as it
/// writes them, so a caller that wants the tensor's bytes (`convert` returns them) gets them
/// in the gather's one pass over the output instead of a second pass.
pub fn decode_as<T: Copy>(
    payload: &[u8],
    rows: usize,
    cols: usize,
    convert: impl Fn(f32) -> T + Copy,
) -> Result<Vec<T>, CodecError> {
    decode_with(payload, rows, cols, convert, Instructions::Detect)
}

/// The instructions the decoder's loop may use.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Instructions {
    /// BMI2 and AVX2 where the CPU has them.
    Detect,
    /// The target's baseline only (what a CPU without them runs; tests compare the two).
    #[cfg(test)]
    Baseline,
}

/// [`decode_as`] with a choice of [`Instructions`].
fn decode_with<T: Copy>(
    payload: &[u8],
    rows: usize,
    cols: usize,
    convert: impl Fn(f32) -> T + Copy,
    instructions: Instructions,
) -> Result<Vec<T>, CodecError> {
    let total = rows
        .checked_mul(cols)
        .ok_or(CodecError::TooLarge(u64::MAX))?;
    let mut r = ByteReader::new(payload);
    let header = read_header(&mut r, total)?;
    let segment_bytes = r.block()?;
    let rank_bytes = r.block()?;
    if r.remaining() != 0 {
        return Err(CodecError::Corrupt("trailing bytes after the pwl payload"));
    }
    if total == 0 {
        return Ok(Vec::new());
    }
    let mut decoder = GroupDecoder {
        header: &header,
        segments: SegmentReader::new(BitSource::new(segment_bytes), &header)?,
        packed: ranks::PackedReader::new(rank_bytes),
        lehmer: BitReader::new(rank_bytes),
        sorted: Vec::new(),
    };
    let mut out = Vec::with_capacity(total.min(rank_bytes.len().saturating_mul(8) + 64));
    #[cfg(target_arch = "x86_64")]
    if instructions == Instructions::Detect
        && std::arch::is_x86_feature_detected!("bmi2")
        && std::arch::is_x86_feature_detected!("avx2")
    {
        // SAFETY: `run_avx2` needs nothing but BMI2 and AVX2, which this CPU has (checked
        // above).
        unsafe { decoder.run_avx2(&mut out, convert)? };
        return Ok(out);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = instructions; // Only x86-64 has a second build of the loop.
    decoder.run(&mut out, convert)?;
    Ok(out)
}

/// The decoder's state past the header: the segment and rank readers, and the current
/// group's sorted values.
struct GroupDecoder<'a> {
    header: &'a Header,
    segments: SegmentReader<'a>,
    packed: ranks::PackedReader<'a>,
    lehmer: BitReader<'a>,
    sorted: Vec<f32>,
}

impl GroupDecoder<'_> {
    /// Appends the values of every group to `out`, each as `convert(value)`.
    #[inline(always)]
    fn run<T: Copy>(
        &mut self,
        out: &mut Vec<T>,
        convert: impl Fn(f32) -> T + Copy,
    ) -> Result<(), CodecError> {
        let header = self.header;
        for (range, &q) in header.groups.ranges().zip(&header.steps) {
            self.segments.group(range.len(), q, &mut self.sorted)?;
            if header.flags & FLAG_PERMUTATION != 0 {
                ranks::gather_permutation(&mut self.lehmer, &self.sorted, out, convert)?;
            } else {
                self.packed.gather(&self.sorted, out, convert)?;
            }
        }
        Ok(())
    }

    /// [`GroupDecoder::run`] compiled for BMI2 and AVX2. BMI2 makes the bit readers' shifts
    /// by a variable count and their masks of the low bits one instruction each, and AVX2
    /// writes a short segment's eight values with one multiply and one add instead of two
    /// each. (FMA stays off: the format rounds the product and the sum separately.)
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "bmi2,avx2")]
    fn run_avx2<T: Copy>(
        &mut self,
        out: &mut Vec<T>,
        convert: impl Fn(f32) -> T + Copy,
    ) -> Result<(), CodecError> {
        self.run(out, convert)
    }
}

#[cfg(test)]
mod tests;
