//! Error-bounded uniform quantization with context-modelled rANS coding.
//!
//! Row `r` is quantized with a mid-tread uniform quantizer of step `2 * bounds[r]`: each value
//! `v` becomes the index `q = round(v / step)` and decodes to `q as f32 * step`. The encoder
//! checks every reconstruction exactly as the decoder computes it and, where `f32` rounding
//! pushes it out of bound, takes the neighbouring index that is within; a value that no index
//! reaches (step overflow, zero bound, |q| beyond 2^24) is stored verbatim. So the codec itself
//! keeps every element within its bound and the wrapper in `lib.rs` never needs exceptions for
//! `f32` tensors.
//!
//! Indices become tokens plus raw bits ([`token`]); a row far from zero relative to its step is
//! coded relative to a centre index (see [`row_centre`]). Rows are grouped into a few classes, each
//! with its own rANS model of the tokens ([`classes`]); the encoder tries 1 to
//! [`Options::max_classes`] classes and keeps the smallest payload. The byte layout is specified
//! in `docs/FORMAT.md` (section "quant (codec id 2)"), the measurements behind the design in
//! `docs/METHOD.md` ("The quant codec").

#[cfg(target_arch = "x86_64")]
mod avx2;
mod classes;
mod raw_bits;
mod token;

use crate::bitio::{ByteReader, PutBytes, WordWriter};
use crate::entropy::rans::{self, DecodeTable, Model};
use crate::CodecError;
use classes::RowHistograms;
use raw_bits::{RawBits, Window};
use token::{SplitTable, TokenInfo, Tokenizer, MAX_INDEX, VERBATIM_BITS};

/// Version byte at the start of every payload.
const VERSION: u8 = 1;
/// Largest number of row classes a payload may have.
pub const MAX_CLASSES: u8 = 16;
/// Step mode byte: one step for all rows.
const STEP_SHARED: u8 = 0;
/// Step mode byte: one step per row.
const STEP_PER_ROW: u8 = 1;
/// Step mode bit: the centre indices of the rows that have one follow the steps.
const CENTRED: u8 = 2;

/// Tuning knobs of the quantizer's encoder (the decoder needs none of them).
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// Largest number of row classes, each with its own entropy model. The encoder tries the
    /// counts from 1 upwards and stops at the first that does not make the payload smaller. 1 disables context modelling;
    /// values above [`MAX_CLASSES`] are treated as [`MAX_CLASSES`], 0 as 1. Default 4.
    pub max_classes: u8,
    /// Refinement passes of the row grouping: after the initial grouping by row scale, each
    /// pass moves every row to the class whose model codes it in the fewest bits. 0 keeps the
    /// grouping by scale. Default 2 (more passes save less than 0.05%).
    pub refine_passes: u8,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_classes: 4,
            refine_passes: 2,
        }
    }
}

/// Encodes `rows` equal rows of finite `values`, row `r` within `bounds[r]` (finite, >= 0).
pub fn encode(values: &[f32], rows: usize, bounds: &[f32], options: &Options) -> Vec<u8> {
    // The run buffer's stores are dead code when nothing takes the runs.
    encode_with_reconstruction(values, rows, bounds, options, |_| {})
}

/// [`encode`], handing `reconstruction` the values [`decode`] gives back for the payload, in
/// order, a run at a time: computed in the decoder's arithmetic while quantizing (`index as
/// f32 * step`, or the verbatim value) instead of by decoding the payload, and without a
/// buffer as large as the tensor.
pub fn encode_with_reconstruction(
    values: &[f32],
    rows: usize,
    bounds: &[f32],
    options: &Options,
    mut reconstruction: impl FnMut(&[f32]),
) -> Vec<u8> {
    let rows = rows.max(1);
    let cols = values.len() / rows;
    let tokenizer = Tokenizer::DEFAULT;
    let steps: Vec<f32> = bounds.iter().map(|&b| step_of(b)).collect();
    let centres = centres(values, cols, &steps);
    let indices = quantize(values, cols, bounds, &steps, &centres, &mut reconstruction);
    let plan = Plan::choose(&indices.histograms, options);

    let mut out = vec![VERSION];
    out.extend(tokenizer.params().map(|p| p as u8));
    write_steps(&mut out, &steps, &centres);
    plan.write(&mut out);
    out.put_block(&indices.raw);
    out.extend_from_slice(&code_symbols(rows, &indices.tokens, &plan));
    out
}

/// Decodes `rows * cols` values written by [`encode`].
pub fn decode(payload: &[u8], rows: usize, cols: usize) -> Result<Vec<f32>, CodecError> {
    decode_as(payload, rows, cols, |v| v)
}

/// [`decode`], giving each value as `convert(value)` as it is written, so that a caller that
/// wants the tensor's bytes (`convert` returns them) needs no second pass over the output.
pub fn decode_as<T: Copy>(
    payload: &[u8],
    rows: usize,
    cols: usize,
    convert: impl Fn(f32) -> T + Copy,
) -> Result<Vec<T>, CodecError> {
    let rows = rows.max(1);
    let n = rows
        .checked_mul(cols)
        .ok_or(CodecError::TooLarge(u64::MAX))?;
    let mut r = ByteReader::new(payload);
    if r.u8()? != VERSION {
        return Err(CodecError::Unsupported("unknown quant payload version"));
    }
    let tokenizer = Tokenizer::new(r.u8()?.into(), r.u8()?.into(), r.u8()?.into())?;
    let (steps, centres) = read_steps(&mut r, rows)?;
    let plan = Plan::read(&mut r, tokenizer.len())?;
    let bits = RawBits::new(r.block()?);
    let symbols = rans::Decoder::new(r.rest())?;
    // A declared size that cannot be allocated is an error, not an abort.
    let mut out = Vec::new();
    out.try_reserve_exact(n)
        .map_err(|_| CodecError::TooLarge((n as u64).saturating_mul(size_of::<T>() as u64)))?;
    let mut decoder = RowDecoder {
        tables: plan.decode_tables(tokenizer),
        class_table: plan.class_model.as_ref().map(DecodeTable::new),
        steps,
        centres,
        lsb: tokenizer.lsb(),
        symbols,
        bits,
    };
    // Rows without values code nothing, not even their class.
    decoder.run(&mut out, if cols == 0 { 0 } else { rows }, cols, convert);
    decoder.symbols.finish()?;
    decoder.bits.finish()?;
    Ok(out)
}

/// The decoder's streams and tables, for its loop over the rows.
struct RowDecoder<'a> {
    /// One table per class; each token carries its packed [`TokenInfo`].
    tables: Vec<DecodeTable>,
    /// The classes of the rows, when there is more than one.
    class_table: Option<DecodeTable>,
    /// One step per row, or one for all.
    steps: Vec<f32>,
    /// One centre index per row, or none (all 0).
    centres: Vec<i32>,
    lsb: u32,
    symbols: rans::Decoder<'a>,
    bits: RawBits<'a>,
}

impl RowDecoder<'_> {
    /// Appends `rows` rows of `cols` values to `out`, each as `convert(value)`.
    fn run<T: Copy>(
        &mut self,
        out: &mut Vec<T>,
        rows: usize,
        cols: usize,
        convert: impl Fn(f32) -> T + Copy,
    ) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("bmi2")
            && std::arch::is_x86_feature_detected!("avx2")
        {
            // SAFETY: `run_avx2` needs nothing but BMI2 and AVX2, which this CPU has (checked
            // above).
            unsafe { self.run_avx2(out, rows, cols, convert) };
            return;
        }
        self.rows(out, rows, cols, read_indices, convert);
    }

    /// [`RowDecoder::rows`] compiled for BMI2 and AVX2, with the raw bits read eight values at
    /// a time ([`avx2::read_indices`]). AVX2 also scales 8 indices per instruction instead of
    /// 4; BMI2 makes a shift by a variable count and the extraction of the low bits of a word
    /// one instruction each, which the one-at-a-time raw-bit reads use.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "bmi2,avx2")]
    fn run_avx2<T: Copy>(
        &mut self,
        out: &mut Vec<T>,
        rows: usize,
        cols: usize,
        convert: impl Fn(f32) -> T + Copy,
    ) {
        self.rows(
            out,
            rows,
            cols,
            |tokens, bits, lsb, z| avx2::read_indices(tokens, bits, lsb, z),
            convert,
        );
    }

    /// The row loop: per row its class, then its tokens a run at a time: the run's tokens are
    /// decoded into a small buffer, turned into zigzag indices in another by `read` (what
    /// [`read_indices`] does), and those are scaled straight into `out` (which is never filled
    /// with zeros first), so that every loop stays short and in registers.
    #[inline(always)]
    fn rows<T: Copy>(
        &mut self,
        out: &mut Vec<T>,
        rows: usize,
        cols: usize,
        read: impl Fn(&[u32], &mut Window<'_>, u32, &mut [u32]),
        convert: impl Fn(f32) -> T + Copy,
    ) {
        let (mut tokens, mut z) = ([0u32; RUN], [0u32; RUN]);
        for row in 0..rows {
            let class = match &self.class_table {
                Some(t) => self.symbols.get(t) as usize,
                None => 0,
            };
            // The class model has one symbol per token model.
            let table = &self.tables[class];
            let step = self.steps[row.min(self.steps.len() - 1)];
            let centre = self.centres.get(row).copied().unwrap_or(0);
            let mut left = cols;
            while left > 0 {
                let run = left.min(RUN);
                let (tokens, z) = (&mut tokens[..run], &mut z[..run]);
                self.symbols.get_many(table, tokens);
                self.bits.window(|bits| read(tokens, bits, self.lsb, z));
                let start = out.len();
                out.extend(z.iter().map(|&z| {
                    // Valid centres and indices sum to at most `MAX_INDEX` in magnitude; a
                    // corrupt sum wraps instead of overflowing.
                    let q = token::unzigzag(z).wrapping_add(centre);
                    convert(q as f32 * step)
                }));
                place_verbatim(tokens, z, self.lsb, &mut out[start..], convert);
                left -= run;
            }
        }
    }
}

/// Values the decoder decodes tokens of at a time before dequantizing them.
const RUN: usize = raw_bits::WINDOW_READS;

/// Bits of a packed token ([`pack_token`]) that hold the base of the zigzag index; the raw bit
/// count (at most [`VERBATIM_BITS`]) takes the 6 bits above.
const BASE_BITS: u32 = 26;

/// A token's [`TokenInfo`] in one `u32`: the raw bit count above [`BASE_BITS`] bits of base.
fn pack_token(info: TokenInfo) -> u32 {
    info.raw_bits << BASE_BITS | info.base
}

/// Reads the raw bits of each packed token to form its zigzag index in `z`, four at a time so
/// that they share the loop overhead.
#[inline(always)]
fn read_indices(tokens: &[u32], bits: &mut Window<'_>, lsb: u32, z: &mut [u32]) {
    let (token_groups, token_rest) = tokens.as_chunks::<4>();
    let (z_groups, z_rest) = z.as_chunks_mut::<4>();
    for (z, tokens) in z_groups.iter_mut().zip(token_groups) {
        *z = tokens.map(|token| index_of_token(token, bits, lsb));
    }
    for (z, &token) in z_rest.iter_mut().zip(token_rest) {
        *z = index_of_token(token, bits, lsb);
    }
}

/// The zigzag index of a packed token, its base plus its raw bits shifted by `lsb` (verbatim
/// values: their bits, rotated by `lsb`).
#[inline(always)]
fn index_of_token(token: u32, bits: &mut Window<'_>, lsb: u32) -> u32 {
    let raw = bits.read(token >> BASE_BITS);
    // A rotation instead of a shift: the same for raw bits of an index (fewer than
    // 32 - lsb), and it keeps all bits of a verbatim value (whose base is 0).
    (token & ((1 << BASE_BITS) - 1)) + raw.rotate_left(lsb)
}

/// Puts the verbatim values (rare) among `out` in place: `out` holds `z` scaled as indices,
/// which is wrong for them.
#[inline(always)]
fn place_verbatim<T>(
    tokens: &[u32],
    z: &[u32],
    lsb: u32,
    out: &mut [T],
    convert: impl Fn(f32) -> T,
) {
    // The top bit of a token is set only for VERBATIM_BITS (the other counts are below 32).
    if tokens.iter().fold(0, |any, &t| any | t) >> 31 == 0 {
        return;
    }
    for ((slot, &z), _) in out
        .iter_mut()
        .zip(z)
        .zip(tokens)
        .filter(|(_, &t)| t >> BASE_BITS == VERBATIM_BITS)
    {
        *slot = convert(f32::from_bits(z.rotate_right(lsb)));
    }
}

/// The quantizer step of a row bound: `2 * bound`, capped at the largest finite `f32`.
fn step_of(bound: f32) -> f32 {
    (2.0 * bound).min(f32::MAX)
}

/// Quantization indices of a tensor: the token of every value, each row's token histogram and
/// the raw bits of all values.
struct Indices {
    tokens: Vec<u16>,
    histograms: RowHistograms,
    /// The raw-bit stream: per value, the bits of its index that its token does not hold (all
    /// 32 bits of a verbatim value).
    raw: Vec<u8>,
}

/// Quantizes every row, giving each value's reconstruction to `reconstruction`.
fn quantize(
    values: &[f32],
    cols: usize,
    bounds: &[f32],
    steps: &[f32],
    centres: &[i32],
    reconstruction: &mut impl FnMut(&[f32]),
) -> Indices {
    let tokenizer = Tokenizer::DEFAULT;
    let split = SplitTable::default_layout();
    let mut histograms = RowHistograms::new(tokenizer.len());
    let mut hist = vec![0u32; tokenizer.len()];
    let mut tokens = Vec::with_capacity(values.len());
    let mut raw = WordWriter::with_capacity(values.len());
    let mut quick = [0i32; QUICK_RUN];
    let mut decoded = [0f32; QUICK_RUN];
    for (r, (&step, &bound)) in steps.iter().zip(bounds).enumerate() {
        let cell = Cell::new(step, bound);
        let centre = centres.get(r).copied().unwrap_or(0);
        for run in values[r * cols..(r + 1) * cols].chunks(QUICK_RUN) {
            let quick = &mut quick[..run.len()];
            cell.quick_indices(run, quick);
            // Indices are coded relative to the row's centre; one too far from it is verbatim.
            if centre != 0 {
                recentre(quick, centre);
            }
            for ((&v, &q), decoded) in run.iter().zip(&*quick).zip(&mut decoded) {
                let q = if q != NOT_QUICK {
                    Some(q)
                } else {
                    cell.index_of(v).and_then(|q| centred(q, centre))
                };
                let token = match q {
                    Some(q) => {
                        let (token, bits, count) = split.split(token::zigzag(q));
                        raw.write(bits.into(), count);
                        // The decoder's arithmetic: the centred index plus the centre (which
                        // gives back the index the cell chose), converted and scaled.
                        *decoded = q.wrapping_add(centre) as f32 * step;
                        token
                    }
                    None => {
                        raw.write(v.to_bits().into(), VERBATIM_BITS);
                        *decoded = v;
                        tokenizer.verbatim()
                    }
                };
                hist[token as usize] += 1;
                // Tokens are below 2^13 (`split <= 12`, and 13 bit positions of 2^(msb + lsb)).
                tokens.push(token as u16);
            }
            reconstruction(&decoded[..run.len()]);
        }
        histograms.push_row(&mut hist);
    }
    Indices {
        tokens,
        histograms,
        raw: raw.finish(),
    }
}

/// `q` relative to the row's centre, if that is within [`MAX_INDEX`] (else the value is
/// verbatim).
#[inline]
fn centred(q: i32, centre: i32) -> Option<i32> {
    Some(q - centre).filter(|c| c.unsigned_abs() <= MAX_INDEX)
}

/// Subtracts `centre` from the indices of [`Cell::quick_indices`]; an index that ends up
/// beyond [`MAX_INDEX`] becomes [`NOT_QUICK`] (and, recomputed, verbatim).
fn recentre(quick: &mut [i32], centre: i32) {
    for q in quick.iter_mut().filter(|q| **q != NOT_QUICK) {
        *q = centred(*q, centre).unwrap_or(NOT_QUICK);
    }
}

/// Values [`Cell::quick_indices`] handles at a time.
const QUICK_RUN: usize = 64;

/// Marks a value [`Cell::quick_indices`] leaves to [`Cell::index_of`] (no index is this low).
const NOT_QUICK: i32 = i32::MIN;

/// The quantizer of one row: its step and bound, and what speeds up [`Cell::index_of`].
struct Cell {
    step: f32,
    bound: f32,
    /// `1 / step` when that is finite, else 0 (then `index_of` divides).
    inverse: f32,
    /// A bound below `bound` by more than the rounding of the `f32` error computation.
    sure: f32,
}

impl Cell {
    fn new(step: f32, bound: f32) -> Cell {
        let inverse = 1.0 / step;
        Cell {
            step,
            bound,
            inverse: if step > 0.0 && inverse.is_finite() {
                inverse
            } else {
                0.0
            },
            sure: bound * (1.0 - 1.0 / (1u32 << 22) as f32),
        }
    }

    /// [`Cell::index_of`] of each of `values` where its first guess holds (the common case),
    /// else [`NOT_QUICK`]: the same computation in a loop without branches, which the compiler
    /// vectorizes.
    #[inline]
    fn quick_indices(&self, values: &[f32], out: &mut [i32]) {
        if self.inverse <= 0.0 {
            out.fill(NOT_QUICK);
            return;
        }
        for (slot, &v) in out.iter_mut().zip(values) {
            let quotient = v * self.inverse;
            // Clamped (a NaN to one of the ends; a quotient out of range is rejected below
            // anyway), so that the conversion needs no saturation and vectorizes: `as i32`
            // saturates, which the compiler does one value at a time with branches.
            let limit = (MAX_INDEX + 1) as f32;
            let rounded = (quotient + 0.5f32.copysign(quotient))
                .max(-limit)
                .min(limit);
            // SAFETY: `rounded` is not NaN (`max` returns the other operand) and within
            // +-2^24, so it is finite and its truncation fits an `i32`.
            let q: i32 = unsafe { rounded.to_int_unchecked() };
            // False for a NaN quotient too.
            let in_range = quotient.abs() <= MAX_INDEX as f32 && q.unsigned_abs() <= MAX_INDEX;
            let within = (v - q as f32 * self.step).abs() <= self.sure;
            *slot = if in_range & within { q } else { NOT_QUICK };
        }
    }

    /// The index whose reconstruction `q as f32 * step` is within `bound` of `v`, or `None`.
    ///
    /// The rounded quotient may miss the bound by float rounding at a cell edge; then one of
    /// its neighbours is within.
    #[inline]
    fn index_of(&self, v: f32) -> Option<i32> {
        let quotient = if self.inverse > 0.0 {
            // May differ from `v / step` in the last bit: the checks below hold either way.
            v * self.inverse
        } else if self.step > 0.0 {
            v / self.step
        } else {
            0.0
        };
        // Also rejects an infinite quotient (a subnormal step).
        if quotient.is_nan() || quotient.abs() > MAX_INDEX as f32 {
            return None;
        }
        // Rounds half away from zero like `f32::round`, which is a libm call on baseline
        // x86-64; where the addition rounds the other way, the neighbour check below repairs it.
        let q = (quotient + 0.5f32.copysign(quotient)) as i32;
        // The error in `f32` is the exact error rounded once (relative error <= 2^-24, exact
        // when subnormal), so below `sure` it is within the bound for certain; only values
        // near a cell edge need the exact test.
        if (v - q as f32 * self.step).abs() <= self.sure && q.unsigned_abs() <= MAX_INDEX {
            return Some(q);
        }
        [q, q - 1, q + 1]
            .into_iter()
            .find(|&c| c.unsigned_abs() <= MAX_INDEX && within(v, c as f32 * self.step, self.bound))
    }
}

/// The wrapper's acceptance test: `|v - approx| <= bound`, evaluated in `f64`.
#[inline]
fn within(v: f32, approx: f32, bound: f32) -> bool {
    (v as f64 - approx as f64).abs() <= bound as f64
}

/// Raw bits a row's centre must save (by the estimate of [`row_centre`]) to be coded: about
/// three times what the centre itself costs.
const CENTRE_GAIN_BITS: f64 = 64.0;

/// The centre index of every row, or none (empty) when no row has one.
///
/// Indices are coded around 0, which suits rows centred near zero (trained weight matrices),
/// but a row far from zero relative to its step pays the raw bits of its large indices however
/// few distinct ones it has. Such a row is coded relative to its mean index, its centre.
fn centres(values: &[f32], cols: usize, steps: &[f32]) -> Vec<i32> {
    if cols == 0 {
        return Vec::new();
    }
    let centres: Vec<i32> = values
        .chunks_exact(cols)
        .zip(steps)
        .map(|(row, &step)| row_centre(row, step))
        .collect();
    if centres.iter().all(|&c| c == 0) {
        return Vec::new();
    }
    centres
}

/// The centre index of one row, or 0. A row's indices spread over about `w = 2 std / step + 1`
/// around its mean index `c`; a large index carries about `log2 |z|` raw bits, so coding the
/// row relative to `c` saves about `cols * log2(|c| / w)` bits (the tokens keep small
/// indices, below 16, without raw bits). The centre is kept when that saves at least
/// [`CENTRE_GAIN_BITS`]. No row of the shared models qualifies: the rows furthest from zero
/// are the nine weights of depthwise convolution kernels, spread about as widely as their
/// mean lies from zero.
fn row_centre(row: &[f32], step: f32) -> i32 {
    let (mean, std) = sampled_mean_and_std(row);
    let step = f64::from(step);
    let centre = (mean / step).round();
    let spread = (2.0 * std / step + 1.0).max(16.0);
    let saved = row.len() as f64 * (centre.abs() / spread).log2();
    if saved >= CENTRE_GAIN_BITS && centre.abs() <= f64::from(MAX_INDEX) {
        centre as i32
    } else {
        0
    }
}

/// Values of a row that [`row_centre`] looks at, evenly spaced: whether to centre a row needs
/// only rough statistics, and a pass over every value cost the encoder 4% of its instructions.
const CENTRE_SAMPLE: usize = 64;

/// Mean and standard deviation of about [`CENTRE_SAMPLE`] evenly spaced values of `row` (not
/// empty), from differences to its first value (which avoids the cancellation of
/// `E[v^2] - E[v]^2` on rows far from zero).
fn sampled_mean_and_std(row: &[f32]) -> (f64, f64) {
    let shift = f64::from(row[0]);
    let (mut n, mut sum, mut sum_sq) = (0.0, 0.0, 0.0);
    for &v in row.iter().step_by((row.len() / CENTRE_SAMPLE).max(1)) {
        let d = f64::from(v) - shift;
        n += 1.0;
        sum += d;
        sum_sq += d * d;
    }
    let mean = sum / n;
    let variance = (sum_sq / n - mean * mean).max(0.0);
    (shift + mean, variance.sqrt())
}

/// Writes the step mode, the steps (one shared step if all rows have the same, else one per
/// row) and the rows' non-zero centres, if any.
fn write_steps(out: &mut Vec<u8>, steps: &[f32], centres: &[i32]) {
    let shared = steps.windows(2).all(|w| w[0].to_bits() == w[1].to_bits());
    let centred = if centres.is_empty() { 0 } else { CENTRED };
    if shared {
        out.push(STEP_SHARED | centred);
        out.put_f32(steps.first().copied().unwrap_or(0.0));
    } else {
        out.push(STEP_PER_ROW | centred);
        steps.iter().for_each(|&s| out.put_f32(s));
    }
    if centres.is_empty() {
        return;
    }
    let centred_rows = || centres.iter().enumerate().filter(|(_, &c)| c != 0);
    out.put_varint(centred_rows().count() as u64);
    let mut next = 0;
    for (row, &c) in centred_rows() {
        out.put_varint((row - next) as u64);
        out.put_varint_signed(c.into());
        next = row + 1;
    }
}

/// Reads what [`write_steps`] wrote for `rows` rows: the steps (a non-empty vector) and the
/// centre of every row (empty when there are none).
fn read_steps(r: &mut ByteReader<'_>, rows: usize) -> Result<(Vec<f32>, Vec<i32>), CodecError> {
    let mode = r.u8()?;
    let count = match mode & !CENTRED {
        STEP_SHARED => 1,
        STEP_PER_ROW => rows,
        _ => return Err(CodecError::Corrupt("unknown quant step mode")),
    };
    if count > r.remaining() / 4 {
        return Err(CodecError::Corrupt("quant payload ends inside the steps"));
    }
    let steps = (0..count).map(|_| r.f32()).collect::<Result<Vec<_>, _>>()?;
    if steps.iter().any(|s| !(s.is_finite() && *s >= 0.0)) {
        return Err(CodecError::Corrupt("quant step is negative or not finite"));
    }
    if mode & CENTRED == 0 {
        return Ok((steps, Vec::new()));
    }
    let centred = r.varint()?;
    if centred == 0 || centred > rows as u64 {
        return Err(CodecError::Corrupt("quant centre count out of range"));
    }
    let mut centres = vec![0; rows];
    let mut next = 0u64;
    for _ in 0..centred {
        let row = next.saturating_add(r.varint()?);
        let c = r.varint_signed()?;
        let slot = usize::try_from(row)
            .ok()
            .and_then(|row| centres.get_mut(row));
        match slot {
            Some(slot) if c != 0 && c.unsigned_abs() <= u64::from(MAX_INDEX) => *slot = c as i32,
            Some(_) => return Err(CodecError::Corrupt("quant centre index out of range")),
            None => return Err(CodecError::Corrupt("quant centre row out of range")),
        }
        next = row + 1;
    }
    Ok((steps, centres))
}

/// The row classes and their token models.
struct Plan {
    /// Class of every row (empty when there is one class).
    class_of_row: Vec<u8>,
    /// Model of the class ids (`None` when there is one class).
    class_model: Option<Model>,
    /// One token model per class.
    models: Vec<Model>,
}

impl Plan {
    /// Tries 1, 2, ... `options.max_classes` classes and keeps the cheapest; stops at the first
    /// count that does not pay off (the cost is close to convex in the count).
    fn choose(hist: &RowHistograms, options: &Options) -> Plan {
        let max = (options.max_classes.clamp(1, MAX_CLASSES) as usize).min(hist.rows());
        let (mut best, mut best_bits) = Plan::build(hist, vec![0; hist.rows()], 1);
        for classes in 2..=max {
            let (class_of_row, used) = classes::assign(hist, classes, options.refine_passes.into());
            if used < classes {
                break;
            }
            let (plan, bits) = Plan::build(hist, class_of_row, used);
            if bits >= best_bits {
                break;
            }
            (best, best_bits) = (plan, bits);
        }
        best
    }

    /// The plan of a grouping and its cost in bits (models and tokens; raw bits excluded).
    fn build(hist: &RowHistograms, class_of_row: Vec<u8>, classes: usize) -> (Plan, f64) {
        let counts = hist.class_counts(&class_of_row, classes);
        let models: Vec<Model> = counts.iter().map(|c| model_of(c)).collect();
        let mut bits: f64 = models
            .iter()
            .zip(&counts)
            .map(|(m, c)| m.cost_bits(c) + serialized_bits(m))
            .sum();
        let plan = if classes == 1 {
            Plan {
                class_of_row: Vec::new(),
                class_model: None,
                models,
            }
        } else {
            let mut class_counts = vec![0u64; classes];
            class_of_row
                .iter()
                .for_each(|&c| class_counts[c as usize] += 1);
            let class_model = model_of(&class_counts);
            bits += class_model.cost_bits(&class_counts) + serialized_bits(&class_model);
            Plan {
                class_of_row,
                class_model: Some(class_model),
                models,
            }
        };
        (plan, bits)
    }

    /// Writes the class count, the class model and the token models.
    fn write(&self, out: &mut Vec<u8>) {
        out.push(self.models.len() as u8);
        if let Some(m) = &self.class_model {
            m.write(out);
        }
        self.models.iter().for_each(|m| m.write(out));
    }

    /// Reads what [`Plan::write`] wrote; every token model must have `tokens` symbols.
    fn read(r: &mut ByteReader<'_>, tokens: usize) -> Result<Plan, CodecError> {
        let classes = r.u8()?;
        if classes == 0 || classes > MAX_CLASSES {
            return Err(CodecError::Corrupt("quant class count out of range"));
        }
        let class_model = match classes {
            1 => None,
            _ => Some(Model::read(r)?),
        };
        if class_model
            .as_ref()
            .is_some_and(|m| m.len() != classes as usize)
        {
            return Err(CodecError::Corrupt("quant class model has the wrong size"));
        }
        let models = (0..classes)
            .map(|_| Model::read(r))
            .collect::<Result<Vec<_>, _>>()?;
        if models.iter().any(|m| m.len() != tokens) {
            return Err(CodecError::Corrupt("quant token model has the wrong size"));
        }
        Ok(Plan {
            class_of_row: Vec::new(),
            class_model,
            models,
        })
    }

    /// Class of row `r` (encoder side).
    fn class(&self, r: usize) -> usize {
        self.class_of_row.get(r).map_or(0, |&c| c as usize)
    }

    /// The decoding tables of the token models, each token carrying its packed [`TokenInfo`].
    fn decode_tables(&self, tokenizer: Tokenizer) -> Vec<DecodeTable> {
        let info = tokenizer.table();
        self.models
            .iter()
            .map(|m| DecodeTable::with_values(m, |t| pack_token(info[t as usize])))
            .collect()
    }
}

/// The rANS model of `counts`; an all-zero histogram (empty tensor) gets a dummy count.
fn model_of(counts: &[u64]) -> Model {
    let result = if counts.iter().all(|&c| c == 0) {
        let mut dummy = counts.to_vec();
        dummy[0] = 1;
        Model::from_counts(&dummy)
    } else {
        Model::from_counts(counts)
    };
    // The token alphabet (186 symbols) and the class count (<= 16) are far below the model's
    // symbol limit, and the counts are not all zero.
    result.expect("quant model counts are valid")
}

/// Size of a model's serialization in bits.
fn serialized_bits(model: &Model) -> f64 {
    let mut bytes = Vec::new();
    model.write(&mut bytes);
    bytes.len() as f64 * 8.0
}

/// Codes every row's class (when there are classes) and tokens with rANS.
fn code_symbols(rows: usize, tokens: &[u16], plan: &Plan) -> Vec<u8> {
    let cols = tokens.len() / rows;
    let mut symbols = rans::Encoder::with_capacity(tokens.len() + rows);
    for r in 0..rows {
        let class = plan.class(r);
        if let Some(m) = &plan.class_model {
            symbols.put(class as u32, m);
        }
        let model = &plan.models[class];
        for &token in &tokens[r * cols..(r + 1) * cols] {
            symbols.put(token.into(), model);
        }
    }
    symbols.finish()
}

#[cfg(test)]
mod tests;
