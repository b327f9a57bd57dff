//! Static-model rANS (range asymmetric numeral system) coder with four interleaved states.
//!
//! Hand-written on purpose: it is the core of every codec of the project, and its decode step has
//! to inline into the codecs' own loops (each symbol may use a different, context-selected model),
//! which the generic entropy-coding crates (adaptive models behind traits, 64-bit states, their
//! own stream formats) do not allow at this speed. The stream format is part of the `.pwlc` file
//! format, so it must stay under the project's control.
//!
//! # Stream layout
//!
//! [`Encoder::finish`] writes four little-endian `u32` decoder states (lane 0 first) followed by
//! little-endian `u16` renormalization words in the order the decoder consumes them. Symbol `i`
//! is coded by lane `i % 4`. States live in `[2^16, 2^32)`; a decode step that drops a state below
//! `2^16` shifts in one word. A complete stream ends with every state back at `2^16` and every
//! word consumed, which [`Decoder::finish`] checks.
//!
//! # Model layout
//!
//! [`Model::write`] writes one block (`varint` byte length, then bits, least significant first):
//! `value(len - 1)` in the gamma code, a mode bit, and a 4-bit frequency code (the one of
//! [`MAX_CODE`]` + 1` codes that is shortest for this model, see [`put_value`]). Mode 0 (dense):
//! the frequencies of symbols `0..len-1`; the last one is implied by the total. Mode 1 (sparse):
//! `value(used - 1)` (gamma), then per used symbol the gap since the previous used symbol (gamma)
//! and, except for the last, `value(freq - 1)`.

use std::collections::BinaryHeap;
use std::fmt;
use std::marker::PhantomData;
use std::sync::OnceLock;

use crate::bitio::{BitReader, BitWriter, ByteReader, PutBytes};
use crate::CodecError;

/// Probability resolution: the frequencies of a model sum to `1 << PROB_BITS`.
pub const PROB_BITS: u32 = 12;

/// Largest number of symbols of a [`Model`].
pub const MAX_SYMBOLS: usize = 4096;

const TOTAL: u32 = 1 << PROB_BITS;
const MASK: u32 = TOTAL - 1;
/// Lower end of the state interval; renormalization moves 16 bits at a time.
const STATE_LOW: u32 = 1 << 16;
/// Interleaved states: symbol `i` of a stream is coded by lane `i % LANES`.
pub const LANES: usize = 4;
const HEADER_BYTES: usize = 4 * LANES;

/// A static model over symbols `0..len` with quantized frequencies summing to `1 << PROB_BITS`.
///
/// The model is what the encoder needs; the decoder reads through a [`DecodeTable`] built
/// from it.
#[derive(Clone, PartialEq, Eq)]
pub struct Model {
    freq: Vec<u16>,
    start: Vec<u16>,
}

/// Where a symbol lies in its model: its start in the `1 << PROB_BITS` slots above, its
/// frequency below. The default value stands for no symbol.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Range(u32);

/// The decoder's view of a [`Model`]: one [`Slot`] per slot of the `1 << PROB_BITS` slots.
/// One cache line per decoded symbol gives everything the decode step and the caller need.
#[derive(Clone, PartialEq, Eq)]
pub struct DecodeTable {
    slots: Box<[Slot; TOTAL as usize]>,
}

/// A decode table entry: the slot's position inside its symbol's range, the symbol's
/// frequency, and a 32-bit value the caller attached to the symbol (the symbol itself unless
/// built with [`DecodeTable::with_values`]). Separate fields rather than one packed word:
/// the decoder loads each with one instruction instead of shifting and masking.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
#[repr(C)]
struct Slot {
    offset: u16,
    freq: u16,
    value: u32,
}

impl fmt::Debug for DecodeTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DecodeTable").finish_non_exhaustive()
    }
}

impl DecodeTable {
    /// The table of `model`, each symbol standing for itself.
    pub fn new(model: &Model) -> DecodeTable {
        DecodeTable::with_values(model, |symbol| symbol)
    }

    /// The table of `model`, each symbol `s` standing for `value(s)` (what
    /// [`Decoder::get`] and [`Decoder::get_many`] return).
    pub fn with_values(model: &Model, value: impl Fn(u32) -> u32) -> DecodeTable {
        // Built on the heap and without filling it with zeros first: `Box::new([..; TOTAL])`
        // may build the array on the stack and copy it.
        let mut slots = Vec::with_capacity(TOTAL as usize);
        for (symbol, &freq) in model.freq.iter().enumerate() {
            let value = value(symbol as u32);
            slots.extend((0..freq).map(|offset| Slot {
                offset,
                freq,
                value,
            }));
        }
        // The frequencies of a model sum to TOTAL, so the conversion cannot fail.
        let slots = slots
            .into_boxed_slice()
            .try_into()
            .unwrap_or_else(|_| Box::new([Slot::default(); TOTAL as usize]));
        DecodeTable { slots }
    }

    /// The slot of a decoder state.
    #[inline(always)]
    fn slot(&self, x: u32) -> &Slot {
        // The table has TOTAL entries: the masked index is always in range.
        &self.slots[(x & MASK) as usize]
    }
}

impl fmt::Debug for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Model").field("freq", &self.freq).finish()
    }
}

impl Model {
    /// A model from raw symbol counts; every symbol with a count > 0 gets a frequency >= 1.
    ///
    /// Errors with [`CodecError::InvalidParameter`] if all counts are zero or there are more
    /// than [`MAX_SYMBOLS`] counts.
    pub fn from_counts(counts: &[u64]) -> Result<Model, CodecError> {
        if counts.len() > MAX_SYMBOLS {
            return Err(CodecError::InvalidParameter(format!(
                "rANS model over {} symbols (at most {MAX_SYMBOLS})",
                counts.len()
            )));
        }
        if counts.iter().all(|&c| c == 0) {
            return Err(CodecError::InvalidParameter(
                "rANS model from counts that are all zero".into(),
            ));
        }
        Ok(Model::from_freqs(quantize(counts)))
    }

    /// The model of `freq`, which must sum to `TOTAL` (checked by the callers).
    fn from_freqs(freq: Vec<u16>) -> Model {
        let start = freq
            .iter()
            .scan(0u16, |next, &f| {
                let s = *next;
                *next = next.wrapping_add(f);
                Some(s)
            })
            .collect();
        Model { freq, start }
    }

    /// Appends the compact serialization (see the module documentation).
    pub fn write(&self, out: &mut Vec<u8>) {
        let used: Vec<usize> = (0..self.freq.len()).filter(|&s| self.freq[s] > 0).collect();
        let dense: Vec<u32> = self.freq[..self.freq.len() - 1]
            .iter()
            .map(|&f| u32::from(f))
            .collect();
        let sparse: Vec<u32> = used[..used.len() - 1]
            .iter()
            .map(|&s| u32::from(self.freq[s]) - 1)
            .collect();
        let gaps: Vec<u32> = used
            .iter()
            .scan(0, |next, &s| {
                let gap = s - *next;
                *next = s + 1;
                Some(gap as u32)
            })
            .collect();
        let (dense_code, dense_bits) = best_code(&dense);
        let (sparse_code, freq_bits) = best_code(&sparse);
        let sparse_bits = freq_bits
            + gaps.iter().map(|&g| value_bits(GAMMA, g)).sum::<u64>()
            + value_bits(GAMMA, used.len() as u32);
        let mut w = BitWriter::new();
        put_value(&mut w, GAMMA, self.freq.len() as u32 - 1);
        if sparse_bits < dense_bits {
            w.write(1, 1);
            w.write(u64::from(sparse_code), 4);
            put_value(&mut w, GAMMA, used.len() as u32 - 1);
            for (i, &gap) in gaps.iter().enumerate() {
                put_value(&mut w, GAMMA, gap);
                if let Some(&f) = sparse.get(i) {
                    put_value(&mut w, sparse_code, f);
                }
            }
        } else {
            w.write(0, 1);
            w.write(u64::from(dense_code), 4);
            dense.iter().for_each(|&f| put_value(&mut w, dense_code, f));
        }
        out.put_block(&w.finish());
    }

    /// Reads what [`Model::write`] wrote, validating it (at most [`MAX_SYMBOLS`] symbols,
    /// frequencies summing to `1 << PROB_BITS`).
    pub fn read(r: &mut ByteReader<'_>) -> Result<Model, CodecError> {
        let mut bits = BitReader::new(r.block()?);
        let len = get_value(&mut bits, GAMMA)? as usize + 1;
        if len > MAX_SYMBOLS {
            return Err(CodecError::Corrupt("rANS model has too many symbols"));
        }
        let sparse = bits.read(1)? == 1;
        let code = bits.read(4)? as u32;
        if code > MAX_CODE {
            return Err(CodecError::Corrupt(
                "rANS model has an unknown frequency code",
            ));
        }
        let freq = if sparse {
            read_sparse(&mut bits, len, code)?
        } else {
            read_dense(&mut bits, len, code)?
        };
        Ok(Model::from_freqs(freq))
    }

    /// Number of symbols.
    pub fn len(&self) -> usize {
        self.freq.len()
    }

    /// True if the model has no symbols (never the case for a constructed model).
    pub fn is_empty(&self) -> bool {
        self.freq.is_empty()
    }

    /// Quantized frequency of `symbol` (0 for symbols outside the model).
    pub fn freq(&self, symbol: u32) -> u32 {
        self.freq.get(symbol as usize).map_or(0, |&f| f as u32)
    }

    /// The range of `symbol` for [`Encoder::put_range`]; `None` if its frequency is 0 (a symbol
    /// that this model cannot code).
    #[inline]
    pub fn range(&self, symbol: u32) -> Option<Range> {
        let f = self.freq(symbol);
        (f > 0).then(|| Range(u32::from(self.start[symbol as usize]) << 16 | f))
    }

    /// Exact cost in bits of coding `counts` with this model: `sum count * log2(total / freq)`;
    /// infinity if a counted symbol has frequency 0.
    pub fn cost_bits(&self, counts: &[u64]) -> f64 {
        counts
            .iter()
            .enumerate()
            .filter(|&(_, &c)| c > 0)
            .map(|(s, &c)| match self.freq(s as u32) {
                0 => f64::INFINITY,
                f => c as f64 * symbol_bits(f),
            })
            .sum()
    }
}

/// `PROB_BITS - log2(freq)`, the bits a symbol of frequency `1 <= freq <= TOTAL` costs, from
/// a table: encoders compare many models by their cost, and the logarithm is a library call.
#[inline]
fn symbol_bits(freq: u32) -> f64 {
    static BITS: OnceLock<Vec<f64>> = OnceLock::new();
    let bits = BITS.get_or_init(|| {
        (0..=TOTAL)
            .map(|f| PROB_BITS as f64 - (f as f64).log2())
            .collect()
    });
    bits[freq as usize]
}

/// Frequencies summing to `TOTAL` for non-zero `counts` (at most `MAX_SYMBOLS` of them).
///
/// Starts from the rounded proportional shares (at least 1 for every counted symbol) and then
/// moves the rounding surplus or deficit one unit at a time to where it costs the fewest bits.
fn quantize(counts: &[u64]) -> Vec<u16> {
    let sum: f64 = counts.iter().map(|&c| c as f64).sum();
    let scale = TOTAL as f64 / sum;
    let mut freq: Vec<u32> = counts
        .iter()
        .map(|&c| match c {
            0 => 0,
            c => ((c as f64 * scale).round() as u32).clamp(1, TOTAL),
        })
        .collect();
    let assigned: u32 = freq.iter().sum();
    if assigned < TOTAL {
        grow(counts, &mut freq, TOTAL - assigned);
    } else if assigned > TOTAL {
        shrink(counts, &mut freq, assigned - TOTAL);
    }
    freq.into_iter().map(|f| f as u16).collect()
}

/// Adds `units` to the frequencies where each unit saves the most bits.
fn grow(counts: &[u64], freq: &mut [u32], units: u32) {
    // Costs are non-negative, so their bit patterns order like the values.
    let gain = |s: usize, f: u32| (counts[s] as f64 * ((f + 1) as f64 / f as f64).log2()).to_bits();
    let mut heap: BinaryHeap<(u64, usize)> = (0..freq.len())
        .filter(|&s| freq[s] > 0)
        .map(|s| (gain(s, freq[s]), s))
        .collect();
    for _ in 0..units {
        let Some((_, s)) = heap.pop() else { return };
        freq[s] += 1;
        heap.push((gain(s, freq[s]), s));
    }
}

/// Removes `units` from the frequencies (keeping each >= 1) where each unit costs the least.
fn shrink(counts: &[u64], freq: &mut [u32], units: u32) {
    let loss = |s: usize, f: u32| {
        std::cmp::Reverse((counts[s] as f64 * (f as f64 / (f - 1) as f64).log2()).to_bits())
    };
    let mut heap: BinaryHeap<_> = (0..freq.len())
        .filter(|&s| freq[s] > 1)
        .map(|s| (loss(s, freq[s]), s))
        .collect();
    for _ in 0..units {
        let Some((_, s)) = heap.pop() else { return };
        freq[s] -= 1;
        if freq[s] > 1 {
            heap.push((loss(s, freq[s]), s));
        }
    }
}

fn read_dense(bits: &mut BitReader<'_>, len: usize, code: u32) -> Result<Vec<u16>, CodecError> {
    let mut freq = Vec::with_capacity(len);
    let mut sum = 0u32;
    for _ in 1..len {
        let f = get_value(bits, code)?;
        sum += f;
        if sum > TOTAL {
            return Err(CodecError::Corrupt(
                "rANS model frequencies exceed the total",
            ));
        }
        freq.push(f as u16);
    }
    freq.push((TOTAL - sum) as u16);
    Ok(freq)
}

fn read_sparse(bits: &mut BitReader<'_>, len: usize, code: u32) -> Result<Vec<u16>, CodecError> {
    let used = get_value(bits, GAMMA)? as usize + 1;
    if used > len {
        return Err(CodecError::Corrupt("rANS model uses too many symbols"));
    }
    let mut freq = vec![0u16; len];
    let (mut next, mut sum) = (0usize, 0u32);
    for i in 0..used {
        let s = next + get_value(bits, GAMMA)? as usize;
        let f = if i + 1 < used {
            get_value(bits, code)? + 1
        } else {
            TOTAL.saturating_sub(sum)
        };
        sum += f;
        if s >= len || sum > TOTAL || f == 0 {
            return Err(CodecError::Corrupt(
                "rANS model has invalid sparse frequencies",
            ));
        }
        freq[s] = f as u16;
        next = s + 1;
    }
    Ok(freq)
}

/// Frequency code 0: Elias gamma of `v + 1`: `floor(log2(v + 1))` zero bits, a one bit, then the
/// low `floor(log2(v + 1))` bits of `v + 1`. Code `c` in `1..=MAX_CODE`: Rice code with
/// `k = c - 1`: `v >> k` zero bits, a one bit, then the low `k` bits of `v`.
const GAMMA: u32 = 0;
const MAX_CODE: u32 = PROB_BITS + 1;

/// The code (and its total length in bits) that writes `values` in the fewest bits; of equal
/// ones, the first in the order `GAMMA, 1, 2, ...`.
///
/// The Rice codes are not all tried: the length of `v` in Rice code `k + 1`,
/// `(v >> k) + k + 1`, grows from `k` to `k + 1` by `1 - ceil((v >> k) / 2)`, which never
/// decreases as `k` grows, so the total length is convex in `k`. A walk from the code that
/// suits the values' mean to the first smallest total finds what trying all codes finds.
fn best_code(values: &[u32]) -> (u32, u64) {
    let total = |c: u32| -> u64 { values.iter().map(|&v| value_bits(c, v)).sum() };
    let mean = values.iter().map(|&v| u64::from(v)).sum::<u64>() / values.len().max(1) as u64;
    let mut rice = (1 + (64 - mean.leading_zeros())).min(MAX_CODE);
    let mut bits = total(rice);
    while rice > 1 {
        let left = total(rice - 1);
        if left > bits {
            break;
        }
        (rice, bits) = (rice - 1, left);
    }
    while rice < MAX_CODE {
        let right = total(rice + 1);
        if right >= bits {
            break;
        }
        (rice, bits) = (rice + 1, right);
    }
    match total(GAMMA) {
        gamma if gamma <= bits => (GAMMA, gamma),
        _ => (rice, bits),
    }
}

fn value_bits(code: u32, v: u32) -> u64 {
    match code {
        GAMMA => u64::from(2 * (31 - (v + 1).leading_zeros()) + 1),
        c => u64::from((v >> (c - 1)) + c),
    }
}

fn put_value(w: &mut BitWriter, code: u32, v: u32) {
    let (zeros, k, low) = match code {
        GAMMA => {
            let n = 31 - (v + 1).leading_zeros();
            (n, n, v + 1)
        }
        c => (v >> (c - 1), c - 1, v),
    };
    (0..zeros / 32).for_each(|_| w.write(0, 32));
    w.write(0, zeros % 32);
    w.write(1, 1);
    w.write(u64::from(low), k);
}

/// Reads a value written by [`put_value`]; values above `2^14` are rejected as corrupt.
fn get_value(r: &mut BitReader<'_>, code: u32) -> Result<u32, CodecError> {
    let k = code.saturating_sub(1);
    let max_zeros = match code {
        GAMMA => 14,
        _ => (1 << 14) >> k,
    };
    let mut zeros = 0u32;
    while r.read(1)? == 0 {
        zeros += 1;
        if zeros > max_zeros {
            return Err(CodecError::Corrupt("rANS model has an oversized number"));
        }
    }
    Ok(match code {
        GAMMA => ((1u32 << zeros) | r.read(zeros)? as u32) - 1,
        _ => (zeros << k) | r.read(k)? as u32,
    })
}

/// Collects symbols in forward order, each with the model the decoder will use for it (so the
/// caller may pick models by context), and codes them on [`Encoder::finish`].
#[derive(Debug, Clone, Default)]
pub struct Encoder<'m> {
    /// Per symbol: start of its range << 16 | its frequency.
    ranges: Vec<u32>,
    /// The ranges are copied out of the models; the lifetime keeps the signature free to
    /// borrow them later.
    _models: PhantomData<&'m Model>,
}

impl<'m> Encoder<'m> {
    /// An empty encoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty encoder with room for `symbols` symbols.
    pub fn with_capacity(symbols: usize) -> Self {
        Encoder {
            ranges: Vec::with_capacity(symbols),
            _models: PhantomData,
        }
    }

    /// Appends `symbol`, coded with `model`.
    ///
    /// # Panics
    /// If `symbol` has frequency 0 in `model` (a caller bug: models come from the counts of the
    /// symbols they code).
    #[inline]
    pub fn put(&mut self, symbol: u32, model: &'m Model) {
        match model.range(symbol) {
            Some(range) => self.put_range(range),
            None => panic!("rANS symbol {symbol} has frequency 0 in its model"),
        }
    }

    /// Appends a symbol given by its range ([`Model::range`] of the model the decoder will use
    /// for it): for callers that look ranges up in a table of their own.
    ///
    /// # Panics
    /// If `range` is the default one, which no symbol has.
    #[inline]
    pub fn put_range(&mut self, range: Range) {
        assert!(range.0 & 0xffff != 0, "rANS range of frequency 0");
        self.ranges.push(range.0);
    }

    /// Number of symbols put so far.
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    /// True if no symbol was put.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Codes the symbols (in reverse, as rANS requires) and returns the stream.
    pub fn finish(self) -> Vec<u8> {
        let n = self.ranges.len();
        let mut words = WordSink::new(n);
        let mut states = [STATE_LOW; LANES];
        // Symbol `i` belongs to lane `i % LANES`: the symbols after the last whole group of
        // lanes first, then the groups, each lane in a register.
        let (groups, tail) = self.ranges.as_chunks::<LANES>();
        for (x, &range) in states.iter_mut().zip(tail).rev() {
            *x = words.encode(*x, range);
        }
        let [mut a, mut b, mut c, mut d] = states;
        for block in groups.rchunks(BLOCK / LANES) {
            words.flush();
            for &[ra, rb, rc, rd] in block.iter().rev() {
                d = words.encode(d, rd);
                c = words.encode(c, rc);
                b = words.encode(b, rb);
                a = words.encode(a, ra);
            }
        }
        words.finish([a, b, c, d])
    }
}

/// The renormalization words of [`Encoder::finish`], in the order they are emitted (the
/// reverse of the order the decoder reads them). A step writes its word into a small block
/// without a branch and only advances when it emits one; full blocks move to `words`.
struct WordSink {
    words: Vec<u16>,
    block: [u16; BLOCK],
    /// Words emitted into `block` since the last flush (the symbols coded since then, at most).
    len: usize,
    reciprocals: &'static [u64; TOTAL as usize],
}

/// Symbols coded between two flushes of a [`WordSink`] (a power of two, each symbol emits at most
/// one word).
const BLOCK: usize = 256;

impl WordSink {
    /// A sink with room for about `symbols / 2` words.
    fn new(symbols: usize) -> WordSink {
        WordSink {
            words: Vec::with_capacity(symbols / 2 + BLOCK),
            block: [0; BLOCK],
            len: 0,
            reciprocals: reciprocals(),
        }
    }

    /// Codes the symbol of `range` (start << 16 | frequency) into state `x`; returns the new
    /// state. At most [`BLOCK`] calls may come between two calls of [`WordSink::flush`].
    #[inline(always)]
    fn encode(&mut self, x: u32, range: u32) -> u32 {
        let (start, freq) = (range >> 16, range & 0xffff);
        // After coding, the state must stay below 2^32: x / freq < 2^(32 - PROB_BITS).
        let emit = u64::from(x) >= u64::from(freq) << (32 - PROB_BITS);
        // Written even when not emitted: the slot stays free and is overwritten later.
        self.block[self.len % BLOCK] = x as u16;
        self.len += usize::from(emit);
        let x = if emit { x >> 16 } else { x };
        let q = divide(x, freq, self.reciprocals);
        (q << PROB_BITS) + (x - q * freq) + start
    }

    /// Moves the block's words to the others.
    fn flush(&mut self) {
        self.words
            .extend_from_slice(&self.block[..self.len.min(BLOCK)]);
        self.len = 0;
    }

    /// The stream: the final states (lane 0 first), then the words in the decoder's order.
    fn finish(mut self, states: [u32; LANES]) -> Vec<u8> {
        self.flush();
        let mut out = Vec::with_capacity(HEADER_BYTES + 2 * self.words.len());
        states.iter().for_each(|&x| out.put_u32(x));
        out.extend(self.words.iter().rev().flat_map(|w| w.to_le_bytes()));
        out
    }
}

/// Shift of the reciprocals in [`divide`].
const RECIPROCAL_SHIFT: u32 = 32 + PROB_BITS;

/// `x / freq` for `1 <= freq <= TOTAL`, by a multiplication with `reciprocals[freq - 1]`,
/// which is `ceil(2^44 / freq)` (see [`reciprocals`]).
///
/// Exact for every `x < 2^32`: the reciprocal exceeds `2^44 / freq` by less than 1, so the
/// product overshoots `x / freq` by less than `x / 2^44 < 2^-12 <= 1 / freq`, while the
/// fractional part of `x / freq` is at most `1 - 1 / freq`. A division costs several times the
/// multiplication, and the encoder does one per symbol.
#[inline(always)]
fn divide(x: u32, freq: u32, reciprocals: &[u64; TOTAL as usize]) -> u32 {
    // The mask keeps the index in range without a bounds check.
    let m = reciprocals[(freq.wrapping_sub(1) & MASK) as usize];
    ((u128::from(x) * u128::from(m)) >> RECIPROCAL_SHIFT) as u32
}

/// The reciprocals of [`divide`], for the frequencies `1..=TOTAL`.
fn reciprocals() -> &'static [u64; TOTAL as usize] {
    static RECIPROCALS: OnceLock<[u64; TOTAL as usize]> = OnceLock::new();
    RECIPROCALS
        .get_or_init(|| std::array::from_fn(|i| (1u64 << RECIPROCAL_SHIFT).div_ceil(i as u64 + 1)))
}

/// Decodes the symbols of one stream in the order they were put.
///
/// [`Decoder::get`] and [`Decoder::get_many`] are infallible for speed: reading past the end
/// shifts in zeros and is noticed by [`Decoder::finish`], together with a check that the stream
/// ended exactly where it should. Callers must call `finish` and propagate its error.
#[derive(Debug, Clone)]
pub struct Decoder<'a> {
    /// The whole stream, header included.
    bytes: &'a [u8],
    words: &'a [[u8; 2]],
    /// A byte after the last whole word (an error that [`Decoder::finish`] reports).
    odd_byte: bool,
    /// Next word to read; passes `words.len()` when the stream is too short.
    pos: usize,
    /// The state of the lane coding the next symbol comes first.
    lanes: [u32; LANES],
    /// The value each lane decoded last (0 before its first symbol), in the order of `lanes`:
    /// `recent[0]` is the value of the symbol [`LANES`] before the next one.
    recent: [u32; LANES],
}

impl<'a> Decoder<'a> {
    /// A decoder over a complete stream written by [`Encoder::finish`] (and nothing after it).
    pub fn new(bytes: &'a [u8]) -> Result<Self, CodecError> {
        let Some((header, rest)) = bytes.split_first_chunk::<HEADER_BYTES>() else {
            return Err(CodecError::Corrupt("rANS stream shorter than its header"));
        };
        let mut lanes = [0u32; LANES];
        for (x, b) in lanes.iter_mut().zip(header.chunks_exact(4)) {
            *x = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        }
        if lanes.iter().any(|&x| x < STATE_LOW) {
            return Err(CodecError::Corrupt(
                "rANS stream has an invalid initial state",
            ));
        }
        let (words, odd) = rest.as_chunks::<2>();
        Ok(Decoder {
            bytes,
            words,
            odd_byte: !odd.is_empty(),
            pos: 0,
            lanes,
            recent: [0; LANES],
        })
    }

    /// Decodes the next symbol with `table` (built from the model the encoder used for it) and
    /// returns the value the table attaches to the symbol.
    #[inline]
    pub fn get(&mut self, table: &DecodeTable) -> u32 {
        let (words, pos) = (self.words, self.pos);
        let mut read = 0;
        let (x, value) = step(
            self.lanes[0],
            table,
            |i| words.get(pos + i).map_or(0, word),
            &mut read,
        );
        self.pos += read;
        self.lanes = [self.lanes[1], self.lanes[2], self.lanes[3], x];
        self.recent = [self.recent[1], self.recent[2], self.recent[3], value];
        value
    }

    /// Decodes `out.len()` symbols that all use `table`, storing their values in `out`.
    ///
    /// Same result as calling [`Decoder::get`] for each, but faster (see [`Decoder::get_each`]).
    #[inline]
    pub fn get_many(&mut self, table: &DecodeTable, out: &mut [u32]) {
        self.get_each(out, |_, _| table);
    }

    /// Decodes `out.len()` symbols, storing their values in `out`: symbol `i` (counted from the
    /// start of `out`) with the table `select(i, earlier)`, where `earlier` is the value of the
    /// symbol [`LANES`] positions before it in the stream (0 for the first [`LANES`] symbols).
    ///
    /// Same result as calling [`Decoder::get`] for each, but the lanes stay in registers and
    /// their steps interleave (a context [`LANES`] symbols back is decoded by the same lane,
    /// so the lanes stay independent). Runs of [`WINDOW`] symbols whose words are all in the
    /// stream read them from a fixed-size window, without a bounds check per word.
    #[inline]
    pub fn get_each<'t>(
        &mut self,
        out: &mut [u32],
        select: impl Fn(usize, u32) -> &'t DecodeTable,
    ) {
        for (r, run) in out.chunks_mut(WINDOW).enumerate() {
            let first = r * WINDOW;
            let (groups, rest) = run.as_chunks_mut::<LANES>();
            let (words, pos) = (self.words, self.pos);
            let select = |i: usize, earlier: u32| select(first + i, earlier);
            // A run of at most WINDOW symbols reads at most WINDOW words. The window starts 2
            // bytes before word `pos` (inside the header when `pos` is 0), so that the `u32`
            // at byte `2 i` holds word `pos + i` in its upper half: shifting it in then takes
            // one double-width shift instead of a shift and an or.
            let window = self.bytes.get(HEADER_BYTES - 2 + 2 * pos..);
            self.pos += match window.and_then(<[u8]>::first_chunk::<{ 2 * WINDOW + 2 }>) {
                Some(window) => self.groups(groups, select, |i| upper_word(window, i % WINDOW)),
                None => self.groups(groups, select, |i| words.get(pos + i).map_or(0, word)),
            };
            let done = LANES * groups.len();
            for (k, slot) in rest.iter_mut().enumerate() {
                *slot = self.get(select(done + k, self.recent[0]));
            }
        }
    }

    /// Decodes `groups` with the lanes in registers, symbol `i` of the run with the table
    /// `select(i, earlier)` (as [`Decoder::get_each`]), reading word `i` of the run (counted
    /// from the current position) through `word_at(i)`; returns the number of words read.
    #[inline(always)]
    fn groups<'t>(
        &mut self,
        groups: &mut [[u32; LANES]],
        select: impl Fn(usize, u32) -> &'t DecodeTable,
        word_at: impl Fn(usize) -> u32,
    ) -> usize {
        let [mut a, mut b, mut c, mut d] = self.lanes;
        let mut read = 0;
        // The values a group's contexts come from are read back from the previous group's
        // slots rather than carried in registers: a caller whose `select` ignores them (one
        // table for all symbols) then pays nothing for them.
        for g in 0..groups.len() {
            let i = LANES * g;
            let [ea, eb, ec, ed] = match g.checked_sub(1) {
                Some(previous) => groups[previous],
                None => self.recent,
            };
            let group = &mut groups[g];
            // Each value is stored as soon as it is decoded, so that its slot does not stay in
            // a register until the end of the group.
            (a, group[0]) = step(a, select(i, ea), &word_at, &mut read);
            (b, group[1]) = step(b, select(i + 1, eb), &word_at, &mut read);
            (c, group[2]) = step(c, select(i + 2, ec), &word_at, &mut read);
            (d, group[3]) = step(d, select(i + 3, ed), &word_at, &mut read);
        }
        self.lanes = [a, b, c, d];
        if let Some(&last) = groups.last() {
            self.recent = last;
        }
        read
    }

    /// Checks that the stream was decoded completely and consistently.
    pub fn finish(self) -> Result<(), CodecError> {
        if self.pos > self.words.len() {
            Err(CodecError::Corrupt("rANS stream ends early"))
        } else if self.pos != self.words.len() || self.odd_byte {
            Err(CodecError::Corrupt("rANS stream has trailing bytes"))
        } else if self.lanes.iter().any(|&x| x != STATE_LOW) {
            Err(CodecError::Corrupt(
                "rANS stream does not end in its final state",
            ))
        } else {
            Ok(())
        }
    }
}

/// Symbols [`Decoder::get_many`] decodes with one window of words.
const WINDOW: usize = 256;

/// Word `i` of a window that starts 2 bytes before its first word, read as the upper half
/// of the little-endian `u32` at byte `2 i`.
#[inline(always)]
fn upper_word(window: &[u8; 2 * WINDOW + 2], i: usize) -> u32 {
    let bytes = window[2 * i..].first_chunk().copied().unwrap_or_default();
    u32::from_le_bytes(bytes) >> 16
}

/// The value of a little-endian word.
#[inline(always)]
fn word(bytes: &[u8; 2]) -> u32 {
    u32::from(u16::from_le_bytes(*bytes))
}

/// One decode step of state `x`: the new state and the symbol's value. A state that falls
/// below `STATE_LOW` shifts in the word `word_at(*read)` and advances `read`, without branches
/// (whether a word is needed is unpredictable).
#[inline(always)]
fn step(
    x: u32,
    table: &DecodeTable,
    word_at: impl Fn(usize) -> u32,
    read: &mut usize,
) -> (u32, u32) {
    let slot = table.slot(x);
    // freq <= 2^PROB_BITS and x >> PROB_BITS < 2^(32 - PROB_BITS): no overflow.
    let x = u32::from(slot.freq) * (x >> PROB_BITS) + u32::from(slot.offset);
    let need = x < STATE_LOW;
    let word = word_at(*read);
    *read += usize::from(need);
    let x = if need { (x << 16) | word } else { x };
    (x, slot.value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::collection::vec;
    use proptest::prelude::*;

    /// Models from `counts` (with at least one non-zero count each) and a symbol sequence drawn
    /// from the used symbols of randomly chosen models.
    fn models_and_symbols() -> impl Strategy<Value = (Vec<Vec<u64>>, Vec<(usize, usize)>)> {
        let counts =
            vec(prop_oneof![Just(0u64), 1u64..10, 1u64..1_000_000], 1..300).prop_map(|mut c| {
                c[0] = c[0].max(1);
                c
            });
        (
            vec(counts, 1..5),
            vec((any::<usize>(), any::<usize>()), 0..2000),
        )
    }

    fn encode_picks(models: &[Model], picks: &[(usize, usize)]) -> (Vec<u8>, Vec<(usize, u32)>) {
        let mut enc = Encoder::new();
        let mut expected = Vec::new();
        for &(m, s) in picks {
            let m = m % models.len();
            let used: Vec<u32> = (0..models[m].len() as u32)
                .filter(|&s| models[m].freq(s) > 0)
                .collect();
            let symbol = used[s % used.len()];
            enc.put(symbol, &models[m]);
            expected.push((m, symbol));
        }
        (enc.finish(), expected)
    }

    fn build(counts: &[Vec<u64>]) -> Vec<Model> {
        counts
            .iter()
            .map(|c| Model::from_counts(c).unwrap())
            .collect()
    }

    proptest! {
        #[test]
        fn round_trips_with_a_model_per_symbol((counts, picks) in models_and_symbols()) {
            let models = build(&counts);
            let (stream, expected) = encode_picks(&models, &picks);
            let tables: Vec<DecodeTable> = models.iter().map(DecodeTable::new).collect();
            let mut dec = Decoder::new(&stream).unwrap();
            for &(m, symbol) in &expected {
                prop_assert_eq!(dec.get(&tables[m]), symbol);
            }
            prop_assert_eq!(dec.finish(), Ok(()));
        }

        #[test]
        fn runs_decode_like_single_symbols(counts in vec(1u64..1000, 1..50), picks in vec(any::<usize>(), 0..500), runs in vec(0usize..40, 1..20)) {
            let model = Model::from_counts(&counts).unwrap();
            let symbols: Vec<u32> = picks.iter().map(|&p| (p % counts.len()) as u32).collect();
            let mut enc = Encoder::new();
            symbols.iter().for_each(|&s| enc.put(s, &model));
            let stream = enc.finish();
            let table = DecodeTable::with_values(&model, |s| s * 3 + 1);
            let mut dec = Decoder::new(&stream).unwrap();
            let mut decoded = Vec::new();
            for &run in runs.iter().cycle().take(symbols.len() + 1) {
                let mut out = vec![0u32; run.min(symbols.len() - decoded.len())];
                dec.get_many(&table, &mut out);
                decoded.extend(out);
                if decoded.len() < symbols.len() {
                    decoded.push(dec.get(&table));
                }
            }
            let expected: Vec<u32> = symbols.iter().map(|&s| s * 3 + 1).collect();
            prop_assert_eq!(decoded, expected);
            prop_assert_eq!(dec.finish(), Ok(()));
        }

        #[test]
        fn stream_size_is_close_to_the_model_cost((counts, picks) in models_and_symbols()) {
            let models = build(&counts);
            let (stream, expected) = encode_picks(&models, &picks);
            let cost: f64 = expected
                .iter()
                .map(|&(m, s)| PROB_BITS as f64 - (models[m].freq(s) as f64).log2())
                .sum();
            let bits = (stream.len() - HEADER_BYTES) as f64 * 8.0;
            prop_assert!(bits <= cost * 1.001 + 64.0, "{} bits for a cost of {}", bits, cost);
        }

        #[test]
        fn truncated_streams_are_reported((counts, picks) in models_and_symbols(), cut in any::<usize>()) {
            let models = build(&counts);
            let (stream, expected) = encode_picks(&models, &picks);
            let cut = cut % stream.len();
            let tables: Vec<DecodeTable> = models.iter().map(DecodeTable::new).collect();
            if let Ok(mut dec) = Decoder::new(&stream[..cut]) {
                for &(m, _) in &expected {
                    dec.get(&tables[m]);
                }
                prop_assert!(dec.finish().is_err());
            }
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(
            counts in vec(vec(0u64..50, 1..40), 1..4),
            bytes in vec(any::<u8>(), 0..200),
            picks in vec(any::<usize>(), 0..300),
        ) {
            let models: Vec<Model> = counts.iter().filter_map(|c| Model::from_counts(c).ok()).collect();
            let tables: Vec<DecodeTable> = models.iter().map(DecodeTable::new).collect();
            if let (false, Ok(mut dec)) = (models.is_empty(), Decoder::new(&bytes)) {
                for p in picks {
                    let m = p % models.len();
                    prop_assert!((dec.get(&tables[m]) as usize) < models[m].len());
                }
                let _ = dec.finish();
            }
        }

        #[test]
        fn model_quantization_keeps_every_counted_symbol(counts in vec(prop_oneof![Just(0u64), any::<u64>(), 1u64..5], 1..=MAX_SYMBOLS)) {
            prop_assume!(counts.iter().any(|&c| c > 0));
            let model = Model::from_counts(&counts).unwrap();
            prop_assert_eq!(model.len(), counts.len());
            let sum: u32 = (0..counts.len() as u32).map(|s| model.freq(s)).sum();
            prop_assert_eq!(sum, TOTAL);
            for (s, &c) in counts.iter().enumerate() {
                prop_assert_eq!(model.freq(s as u32) > 0, c > 0);
            }
            prop_assert!(model.cost_bits(&counts).is_finite());
        }

        #[test]
        fn models_serialize_round_trip(counts in vec(prop_oneof![Just(0u64), 1u64..1000], 1..600)) {
            prop_assume!(counts.iter().any(|&c| c > 0));
            let model = Model::from_counts(&counts).unwrap();
            let mut bytes = vec![7u8];
            model.write(&mut bytes);
            bytes.push(9);
            let mut r = ByteReader::new(&bytes);
            prop_assert_eq!(r.u8().unwrap(), 7);
            prop_assert_eq!(Model::read(&mut r).unwrap(), model);
            prop_assert_eq!(r.rest(), &[9u8][..]);
        }

        #[test]
        fn model_read_never_panics(bytes in vec(any::<u8>(), 0..300)) {
            let mut r = ByteReader::new(&bytes);
            if let Ok(model) = Model::read(&mut r) {
                let sum: u32 = (0..model.len() as u32).map(|s| model.freq(s)).sum();
                prop_assert_eq!(sum, TOTAL);
                prop_assert!(model.len() <= MAX_SYMBOLS);
            }
        }
    }

    proptest! {
        #[test]
        fn the_best_code_is_the_first_shortest_of_all(
            values in vec(prop_oneof![0u32..4, 0u32..64, 0u32..4097], 0..300),
        ) {
            let every = (GAMMA..=MAX_CODE)
                .map(|c| (c, values.iter().map(|&v| value_bits(c, v)).sum::<u64>()))
                .min_by_key(|&(_, bits)| bits)
                .unwrap_or((GAMMA, 0));
            prop_assert_eq!(best_code(&values), every);
        }
    }

    #[test]
    fn reciprocal_division_is_exact() {
        for freq in 1..=TOTAL {
            for x in [
                0,
                1,
                freq - 1,
                freq,
                freq + 1,
                STATE_LOW,
                u32::MAX - 1,
                u32::MAX,
            ] {
                assert_eq!(divide(x, freq, reciprocals()), x / freq, "{x} / {freq}");
            }
            let top = (u32::MAX / freq) * freq;
            assert_eq!(divide(top - 1, freq, reciprocals()), top / freq - 1);
        }
    }

    proptest! {
        #[test]
        fn reciprocal_division_matches_division(x in any::<u32>(), freq in 1..=TOTAL) {
            prop_assert_eq!(divide(x, freq, reciprocals()), x / freq);
        }
    }

    #[test]
    fn single_symbol_models_cost_nothing() {
        let model = Model::from_counts(&[0, 0, 5, 0]).unwrap();
        assert_eq!(model.freq(2), TOTAL);
        let mut enc = Encoder::new();
        for _ in 0..10_000 {
            enc.put(2, &model);
        }
        let stream = enc.finish();
        assert_eq!(stream.len(), HEADER_BYTES);
        let mut dec = Decoder::new(&stream).unwrap();
        let table = DecodeTable::new(&model);
        assert!((0..10_000).all(|_| dec.get(&table) == 2));
        assert_eq!(dec.finish(), Ok(()));
        assert_eq!(model.cost_bits(&[0, 0, 1_000_000, 0]), 0.0);
    }

    #[test]
    fn rare_symbols_get_frequency_one_and_round_trip() {
        let mut counts = vec![u64::MAX / 8; 3];
        counts.extend([1, 1, 0, 1]);
        let model = Model::from_counts(&counts).unwrap();
        assert_eq!([3, 4, 5, 6].map(|s| model.freq(s)), [1, 1, 0, 1]);
        let symbols: Vec<u32> = (0..5000).map(|i| [3, 4, 6, 0, 1][i % 5]).collect();
        let mut enc = Encoder::new();
        symbols.iter().for_each(|&s| enc.put(s, &model));
        let stream = enc.finish();
        let mut dec = Decoder::new(&stream).unwrap();
        let table = DecodeTable::new(&model);
        assert!(symbols.iter().all(|&s| dec.get(&table) == s));
        assert_eq!(dec.finish(), Ok(()));
        assert_eq!(model.cost_bits(&[0, 0, 0, 0, 0, 1]), f64::INFINITY);
    }

    #[test]
    fn empty_streams_round_trip() {
        let stream = Encoder::new().finish();
        assert_eq!(Decoder::new(&stream).unwrap().finish(), Ok(()));
        assert!(Decoder::new(&stream[..HEADER_BYTES - 1]).is_err());
        let model = Model::from_counts(&[1, 1]).unwrap();
        let mut dec = Decoder::new(&stream).unwrap();
        dec.get(&DecodeTable::new(&model));
        assert!(dec.finish().is_err(), "one symbol too many must be noticed");
    }

    #[test]
    fn invalid_counts_are_rejected() {
        assert!(Model::from_counts(&[]).is_err());
        assert!(Model::from_counts(&[0, 0]).is_err());
        assert!(Model::from_counts(&vec![1; MAX_SYMBOLS + 1]).is_err());
        assert!(Model::from_counts(&vec![1; MAX_SYMBOLS]).is_ok());
    }
}
