//! Coding one plane of symbols: stored as bits, with one rANS model, or with one model per
//! context (the element's head, or an earlier symbol of the plane).

use std::borrow::Cow;

use crate::bitio::{BitReader, BitWriter, ByteReader, PutBytes};
use crate::entropy::rans::{DecodeTable, Decoder, Encoder, Model, Range, LANES};
use crate::CodecError;

/// Plane stored as packed bits.
const RAW: u8 = 0;
/// Plane coded with one model.
const ORDER0: u8 = 1;
/// Plane coded with one model per value of the plane's own context (see [`decode`]).
const CONTEXT: u8 = 2;
/// Plane coded with one model per value of the symbol `lag` positions earlier in the plane.
const EARLIER: u8 = 3;

/// What a plane's context-modelled mode conditions each symbol on.
#[derive(Debug, Clone, Copy)]
pub(super) enum Context<'a> {
    /// The symbol `lag` (at least 1) positions earlier in the same plane (0 for the first
    /// `lag` symbols). With `lag = LANES`, the rANS lane that decodes a symbol has decoded its
    /// context itself, so the lanes decode independently.
    Earlier(usize),
    /// The value of another plane at the same position, `bits` wide.
    Of { values: &'a [u16], bits: u32 },
}

impl Context<'_> {
    fn bits(&self, plane_bits: u32) -> u32 {
        match *self {
            Context::Earlier(_) => plane_bits,
            Context::Of { bits, .. } => bits,
        }
    }

    fn values<'s>(&'s self, symbols: &[u16]) -> Cow<'s, [u16]> {
        match *self {
            Context::Earlier(lag) => {
                let lag = lag.min(symbols.len());
                let earlier = symbols[..symbols.len() - lag].iter().copied();
                Cow::Owned(std::iter::repeat_n(0, lag).chain(earlier).collect())
            }
            Context::Of { values, .. } => Cow::Borrowed(values),
        }
    }

    /// The mode byte (and parameter) that announces a plane coded in this context.
    fn mode(&self) -> Vec<u8> {
        match *self {
            Context::Earlier(lag) => {
                let mut mode = vec![EARLIER];
                mode.put_varint(lag as u64);
                mode
            }
            Context::Of { .. } => vec![CONTEXT],
        }
    }
}

/// Appends the smallest coding of `symbols` (each below `1 << bits`, `bits <= 11`).
///
/// The coded modes are compared by their exact headers plus the rANS stream size their models'
/// cost predicts, and only the chosen one is coded: coding both would double the encode time.
/// Entropy coding is kept only if it saves at least `min_saving` of the stored size: decoding a
/// stored plane is a copy, decoding a coded one costs a rANS step per symbol.
pub(super) fn encode(
    symbols: &[u16],
    bits: u32,
    context: Context<'_>,
    min_saving: f64,
    out: &mut Vec<u8>,
) {
    let contexts = context.values(symbols);
    let counts = histogram(symbols, bits);
    let order0 = Plan::order0(&counts);
    let by_context = Plan::context(symbols, bits, &counts, &contexts, context);
    let best = match (order0, by_context) {
        (Some(a), Some(b)) => Some(if b.estimate < a.estimate { b } else { a }),
        (a, b) => a.or(b),
    };
    let raw = raw_bytes(symbols.len(), bits) + 1;
    match best {
        Some(plan) if plan.estimate as f64 <= raw as f64 * (1.0 - min_saving) => {
            plan.write(symbols, &contexts, out)
        }
        _ => out.extend_from_slice(&encode_raw(symbols, bits)),
    }
}

/// Size in bytes of `n` symbols of `bits` bits stored as packed bits.
fn raw_bytes(n: usize, bits: u32) -> usize {
    n.saturating_mul(bits as usize).div_ceil(8)
}

fn encode_raw(symbols: &[u16], bits: u32) -> Vec<u8> {
    let mut out = vec![RAW];
    if bits == 8 {
        out.extend(symbols.iter().map(|&s| s as u8));
    } else {
        let mut w = BitWriter::new();
        symbols.iter().for_each(|&s| w.write(u64::from(s), bits));
        out.extend_from_slice(&w.finish());
    }
    out
}

fn histogram(symbols: &[u16], bits: u32) -> Vec<u64> {
    count(symbols.len(), 1 << bits, |i| symbols[i] as usize)
}

/// Counts of the values `value(i)` for `i < n`, each below `len`.
///
/// Counted in four interleaved histograms and summed (unless there are few values per counter):
/// a plane's symbols repeat a few values (exponents above all), and one histogram would make
/// every increment wait for the previous one of the same counter.
fn count(n: usize, len: usize, value: impl Fn(usize) -> usize) -> Vec<u64> {
    if n < 8 * len {
        // Few values for many counters: clearing four tables would cost more than the waits.
        let mut counts = vec![0u64; len];
        (0..n).for_each(|i| counts[value(i)] += 1);
        return counts;
    }
    let mut counts = vec![0u64; 4 * len];
    let (a, rest) = counts.split_at_mut(len);
    let (b, rest) = rest.split_at_mut(len);
    let (c, d) = rest.split_at_mut(len);
    let whole = n / 4 * 4;
    for i in (0..whole).step_by(4) {
        a[value(i)] += 1;
        b[value(i + 1)] += 1;
        c[value(i + 2)] += 1;
        d[value(i + 3)] += 1;
    }
    (whole..n).for_each(|i| a[value(i)] += 1);
    for (k, total) in a.iter_mut().enumerate() {
        *total += b[k] + c[k] + d[k];
    }
    counts.truncate(len);
    counts
}

/// Bytes the rANS coder adds to a stream beyond its symbols' cost: the final states (four
/// lanes of 32 bits) and the rounding of the output to 16-bit words. Only used to compare
/// plans, so a mismatch with the coder shifts a choice by a few bytes at most.
const STREAM_OVERHEAD: usize = 18;

/// Predicted size in bytes of a rANS stream block for symbols costing `bits` bits.
fn stream_estimate(bits: f64) -> usize {
    let stream = (bits / 8.0).ceil() as usize + STREAM_OVERHEAD;
    stream + varint_len(stream)
}

fn varint_len(v: usize) -> usize {
    (usize::BITS - (v | 1).leading_zeros()).div_ceil(7) as usize
}

/// How the symbols of a plane are modelled.
enum Models {
    Order0(Model),
    Context(ContextModels),
}

/// A coded mode for a plane: its header (mode byte and models) and its predicted total size.
struct Plan {
    models: Models,
    header: Vec<u8>,
    estimate: usize,
}

impl Plan {
    /// One model for the plane with symbol `counts`; `None` for an empty plane.
    fn order0(counts: &[u64]) -> Option<Plan> {
        let model = Model::from_counts(counts).ok()?;
        let mut header = vec![ORDER0];
        model.write(&mut header);
        let estimate = header.len() + stream_estimate(model.cost_bits(counts));
        Some(Plan {
            models: Models::Order0(model),
            header,
            estimate,
        })
    }

    /// One model per value of `context` (`contexts`: its value at each symbol; `counts`: the
    /// histogram of the plane of `bits`-bit symbols); `None` for an empty plane.
    fn context(
        symbols: &[u16],
        bits: u32,
        counts: &[u64],
        contexts: &[u16],
        context: Context<'_>,
    ) -> Option<Plan> {
        let ctx_bits = context.bits(bits);
        let (models, cost) = ContextModels::build(symbols, counts, contexts, ctx_bits)?;
        let mut header = context.mode();
        models.write(&mut header);
        let estimate = header.len() + stream_estimate(cost);
        Some(Plan {
            models: Models::Context(models),
            header,
            estimate,
        })
    }

    /// Appends the header and the rANS stream of `symbols` (`contexts` gives each one's context).
    fn write(&self, symbols: &[u16], contexts: &[u16], out: &mut Vec<u8>) {
        let mut enc = Encoder::with_capacity(symbols.len());
        match &self.models {
            Models::Order0(model) => symbols.iter().for_each(|&s| enc.put(u32::from(s), model)),
            Models::Context(models) => {
                let (width, ranges) = models.ranges();
                for (&s, &c) in symbols.iter().zip(contexts) {
                    let model = models.table[c as usize];
                    enc.put_range(ranges[model * width + s as usize]);
                }
            }
        }
        out.extend_from_slice(&self.header);
        out.put_block(&enc.finish());
    }
}

/// Per-context models: a context gets its own model where that beats coding its symbols with
/// the model shared by the other contexts (model size included); the others share one model.
struct ContextModels {
    /// Context value and its model, by increasing context.
    own: Vec<(usize, Model)>,
    shared: Option<Model>,
    /// Index into `own`, or `own.len()` for the shared model, per context value.
    table: Vec<usize>,
}

/// A context that occurs in a plane: its symbol counts, and the model of its own with that
/// model's cost (serialization included), if the counts make one.
struct Candidate<'a> {
    context: usize,
    row: &'a [u64],
    own: Option<(Model, f64)>,
}

impl Candidate<'_> {
    /// True if the context's own model codes it in fewer bits than `shared`.
    fn beats(&self, shared: &Model) -> bool {
        self.own
            .as_ref()
            .is_some_and(|(_, bits)| *bits < shared.cost_bits(self.row))
    }
}

/// Which candidates get their own model against `shared`, and the counts of the others.
fn assign(candidates: &[Candidate<'_>], shared: &Model, alphabet: usize) -> (Vec<bool>, Vec<u64>) {
    let mut rest = vec![0u64; alphabet];
    let own = candidates
        .iter()
        .map(|c| {
            let own = c.beats(shared);
            if !own {
                rest.iter_mut().zip(c.row).for_each(|(r, n)| *r += n);
            }
            own
        })
        .collect();
    (own, rest)
}

impl ContextModels {
    /// The models of `symbols` (histogram `counts`) in their `contexts`, and the bits the
    /// symbols cost with them.
    ///
    /// Contexts are first split against the plane's overall model, then once more against the
    /// model shared by the contexts that the first split left without a model of their own.
    fn build(
        symbols: &[u16],
        counts: &[u64],
        contexts: &[u16],
        ctx_bits: u32,
    ) -> Option<(ContextModels, f64)> {
        let alphabet = symbols.iter().map(|&s| s as usize + 1).max()?;
        let (used, rows) = context_histograms(symbols, contexts, ctx_bits, alphabet);
        let candidates: Vec<Candidate<'_>> = used
            .into_iter()
            .zip(rows.chunks_exact(alphabet))
            .map(|(context, row)| Candidate {
                context,
                row,
                own: Model::from_counts(row).ok().map(|m| {
                    let bits = own_cost(&m, row);
                    (m, bits)
                }),
            })
            .collect();
        let overall = Model::from_counts(counts).ok()?;
        let (first, rest) = assign(&candidates, &overall, alphabet);
        let (uses_own, rest) = match Model::from_counts(&rest) {
            Ok(shared) => assign(&candidates, &shared, alphabet),
            Err(_) => (first, rest),
        };
        let shared = Model::from_counts(&rest).ok();
        let mut cost = shared.as_ref().map_or(0.0, |m| m.cost_bits(&rest));
        let mut own = Vec::new();
        for (candidate, _) in candidates.into_iter().zip(uses_own).filter(|(_, u)| *u) {
            if let Some((model, _)) = candidate.own {
                cost += model.cost_bits(candidate.row);
                own.push((candidate.context, model));
            }
        }
        let mut table = vec![own.len(); 1 << ctx_bits];
        own.iter().enumerate().for_each(|(i, (c, _))| table[*c] = i);
        Some((ContextModels { own, shared, table }, cost))
    }

    /// The range of every symbol in every model, `width` per model (in the order of `table`:
    /// the own models, then the shared one): one lookup per coded symbol.
    fn ranges(&self) -> (usize, Vec<Range>) {
        let models = || self.own.iter().map(|(_, m)| m).chain(&self.shared);
        let width = models().map(Model::len).max().unwrap_or(0);
        let ranges = models()
            .flat_map(|m| (0..width as u32).map(|s| m.range(s).unwrap_or_default()))
            .collect();
        (width, ranges)
    }

    /// Appends the models, as [`decode_context`] reads them.
    fn write(&self, out: &mut Vec<u8>) {
        out.put_varint(self.own.len() as u64);
        let mut next = 0;
        for (c, model) in &self.own {
            out.put_varint((c - next) as u64);
            next = c + 1;
            model.write(out);
        }
        match &self.shared {
            Some(model) => {
                out.push(1);
                model.write(out);
            }
            None => out.push(0),
        }
    }
}

/// The context values that occur, in increasing order, and their symbol counts: `alphabet`
/// counts per context that occurs, in the same order.
fn context_histograms(
    symbols: &[u16],
    contexts: &[u16],
    ctx_bits: u32,
    alphabet: usize,
) -> (Vec<usize>, Vec<u64>) {
    let occurrences = count(contexts.len(), 1 << ctx_bits, |i| contexts[i] as usize);
    // Rows only for the contexts that occur (a few dozen exponents of 256): the counts stay
    // small enough for the cache, and a small plane does not clear a table for every value.
    let used: Vec<usize> = (0..occurrences.len())
        .filter(|&c| occurrences[c] > 0)
        .collect();
    let mut row_of = vec![0usize; occurrences.len()];
    used.iter()
        .enumerate()
        .for_each(|(row, &c)| row_of[c] = row);
    let n = symbols.len().min(contexts.len());
    let rows = count(n, used.len() * alphabet, |i| {
        row_of[contexts[i] as usize] * alphabet + symbols[i] as usize
    });
    (used, rows)
}

/// Bits to code `counts` with `model`, the model's serialization and its context number included.
fn own_cost(model: &Model, counts: &[u64]) -> f64 {
    let mut header = Vec::new();
    model.write(&mut header);
    model.cost_bits(counts) + 8.0 * (header.len() + 1) as f64
}

/// Decodes `n` symbols of `bits` bits written by [`encode`]. `own` is the plane's own context,
/// the one that mode 2 conditions on: the element's head for a tail plane, and for the head
/// plane the previous element's head (`Context::Earlier(1)`, which earlier versions of the
/// encoder wrote as mode 2; the encoder now writes mode 3 with its lag instead).
pub(super) fn decode(
    r: &mut ByteReader<'_>,
    n: usize,
    bits: u32,
    own: Context<'_>,
) -> Result<Vec<u16>, CodecError> {
    match r.u8()? {
        RAW => decode_raw(r, n, bits),
        ORDER0 => {
            let table = DecodeTable::new(&read_model(r, bits)?);
            let mut dec = Decoder::new(r.block()?)?;
            let symbols = decode_runs(&mut dec, n, |_, _| &table);
            dec.finish()?;
            Ok(symbols)
        }
        CONTEXT => decode_context(r, n, bits, own),
        EARLIER => {
            let lag = r.varint_max(u64::from(u32::MAX))?;
            if lag == 0 {
                return Err(CodecError::Corrupt("lossless plane context with lag 0"));
            }
            decode_context(r, n, bits, Context::Earlier(lag))
        }
        _ => Err(CodecError::Corrupt(
            "unknown lossless plane mode (or one of a newer version of pwlc)",
        )),
    }
}

fn decode_raw(r: &mut ByteReader<'_>, n: usize, bits: u32) -> Result<Vec<u16>, CodecError> {
    let len = n
        .checked_mul(bits as usize)
        .ok_or(CodecError::Corrupt("lossless plane too large"))?
        .div_ceil(8);
    let bytes = r.take(len)?;
    if bits == 8 {
        return Ok(bytes.iter().map(|&b| u16::from(b)).collect());
    }
    let mut bits_in = BitReader::new(bytes);
    (0..n).map(|_| Ok(bits_in.read(bits)? as u16)).collect()
}

fn read_model(r: &mut ByteReader<'_>, bits: u32) -> Result<Model, CodecError> {
    let model = Model::read(r)?;
    if model.len() > 1 << bits {
        return Err(CodecError::Corrupt("lossless model has too many symbols"));
    }
    Ok(model)
}

fn decode_context(
    r: &mut ByteReader<'_>,
    n: usize,
    bits: u32,
    context: Context<'_>,
) -> Result<Vec<u16>, CodecError> {
    let ctx_bits = context.bits(bits);
    let contexts = 1usize << ctx_bits;
    let count = r.varint_max(contexts as u64)?;
    let mut models = Vec::with_capacity(count + 1);
    let mut table = vec![count; contexts];
    let mut next = 0usize;
    for i in 0..count {
        let c = next + r.varint_max(contexts as u64)?;
        *table
            .get_mut(c)
            .ok_or(CodecError::Corrupt("lossless context out of range"))? = i;
        next = c + 1;
        models.push(DecodeTable::new(&read_model(r, bits)?));
    }
    match r.u8()? {
        0 => {}
        1 => models.push(DecodeTable::new(&read_model(r, bits)?)),
        _ => return Err(CodecError::Corrupt("invalid lossless shared-model flag")),
    }
    if models.len() == count {
        // Every context has its own model, so a table entry of `count` is never valid.
        table
            .iter_mut()
            .filter(|t| **t == count)
            .for_each(|t| *t = 0);
    }
    if models.is_empty() {
        return Err(CodecError::Corrupt("lossless plane without models"));
    }
    let mask = table.len() - 1;
    let model = |c: u32| &models[table[c as usize & mask]];
    let mut dec = Decoder::new(r.block()?)?;
    let symbols = match context {
        Context::Earlier(LANES) => decode_runs(&mut dec, n, |_, earlier| model(earlier)),
        Context::Earlier(lag) => decode_after(&mut dec, n, lag, model),
        Context::Of { values, .. } => {
            if values.len() != n {
                return Err(CodecError::Corrupt(
                    "lossless context plane has the wrong length",
                ));
            }
            decode_runs(&mut dec, n, |i, _| model(u32::from(values[i])))
        }
    };
    dec.finish()?;
    Ok(symbols)
}

/// Decodes `n` symbols, symbol `i` with the table `select(i, earlier)` (as
/// [`Decoder::get_each`] gives it), a few hundred at a time.
fn decode_runs<'t>(
    dec: &mut Decoder<'_>,
    n: usize,
    select: impl Fn(usize, u32) -> &'t DecodeTable,
) -> Vec<u16> {
    let mut symbols = Vec::with_capacity(n);
    let mut run = [0u32; 256];
    while symbols.len() < n {
        let (first, run) = (symbols.len(), &mut run[..(n - symbols.len()).min(256)]);
        dec.get_each(run, |i, earlier| select(first + i, earlier));
        symbols.extend(run.iter().map(|&s| s as u16));
    }
    symbols
}

/// Decodes `n` symbols, each with the table `model(c)` of the symbol `lag` positions before
/// it (`c = 0` for the first `lag`): one at a time, as each waits for its context.
fn decode_after<'t>(
    dec: &mut Decoder<'_>,
    n: usize,
    lag: usize,
    model: impl Fn(u32) -> &'t DecodeTable,
) -> Vec<u16> {
    let mut symbols: Vec<u16> = Vec::with_capacity(n);
    for i in 0..n {
        let earlier = i.checked_sub(lag).map_or(0, |j| symbols[j]);
        symbols.push(dec.get(model(u32::from(earlier))) as u16);
    }
    symbols
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::collection::vec;
    use proptest::prelude::*;

    /// Bytes by which the chosen coding may exceed another one (the choice uses predicted sizes).
    const SLACK: usize = 8;

    /// Skewed symbols: mostly from a few values, some from the whole alphabet.
    fn plane(bits: u32) -> impl Strategy<Value = Vec<u16>> {
        let max = (1u16 << bits) - 1;
        let symbol = prop_oneof![4 => 0u16..3.min(max + 1), 1 => 0..=max];
        vec(symbol, 0..3000)
    }

    fn coded(symbols: &[u16], bits: u32, context: Context<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        encode(symbols, bits, context, 0.0, &mut out);
        out
    }

    /// Runs of repeated symbols, which an earlier symbol predicts.
    fn runs(bits: u32) -> impl Strategy<Value = Vec<u16>> {
        let max = (1u16 << bits) - 1;
        vec((0..=max, 1usize..40), 0..200).prop_map(|runs| {
            runs.iter()
                .flat_map(|&(s, len)| std::iter::repeat_n(s, len))
                .collect()
        })
    }

    fn symbols_and_lag() -> impl Strategy<Value = (u32, Vec<u16>, usize)> {
        (1u32..=11, 1usize..=6).prop_flat_map(|(bits, lag)| {
            (Just(bits), prop_oneof![plane(bits), runs(bits)], Just(lag))
        })
    }

    proptest! {
        #[test]
        fn chosen_coding_round_trips_and_is_near_the_smallest(
            (bits, symbols, lag) in symbols_and_lag()
        ) {
            let context = Context::Earlier(lag);
            let out = coded(&symbols, bits, context);
            // The lag comes from the stream: the context passed for mode 2 does not matter.
            let decoded = decode(&mut ByteReader::new(&out), symbols.len(), bits, Context::Earlier(1)).unwrap();
            prop_assert_eq!(&decoded, &symbols);
            prop_assert!(out.len() <= encode_raw(&symbols, bits).len() + SLACK);
            let contexts = context.values(&symbols);
            let counts = histogram(&symbols, bits);
            let plans = [Plan::order0(&counts), Plan::context(&symbols, bits, &counts, &contexts, context)];
            for plan in plans.into_iter().flatten() {
                let mut written = Vec::new();
                plan.write(&symbols, &contexts, &mut written);
                prop_assert!(out.len() <= written.len() + SLACK, "{} > {} + {SLACK}", out.len(), written.len());
            }
        }

        #[test]
        fn planes_coded_in_another_planes_context_round_trip(
            (bits, symbols) in (1u32..=11).prop_flat_map(|b| (Just(b), runs(b))),
            seed in any::<u64>(),
        ) {
            // A context plane that predicts the symbols in part.
            let values: Vec<u16> = symbols
                .iter()
                .enumerate()
                .map(|(i, &s)| if (seed >> (i % 64)) & 1 == 1 { s } else { (i % 7) as u16 % (1 << bits) })
                .collect();
            let context = Context::Of { values: &values, bits };
            let out = coded(&symbols, bits, context);
            let decoded = decode(&mut ByteReader::new(&out), symbols.len(), bits, context).unwrap();
            prop_assert_eq!(decoded, symbols);
        }
    }

    #[test]
    fn an_earlier_symbol_is_used_as_context_where_it_predicts() {
        // Runs of 16: the symbol four back is almost always the same one.
        let symbols: Vec<u16> = (0..4000u32).map(|i| ((i / 16) * 5 % 8) as u16).collect();
        for lag in [1, LANES, 7] {
            let out = coded(&symbols, 3, Context::Earlier(lag));
            assert_eq!(out[..2], [EARLIER, lag as u8]);
            // Half of what the three bits of each symbol take, or less.
            assert!(out.len() < 4000 * 3 / 8 / 2, "{} bytes", out.len());
            let decoded = decode(&mut ByteReader::new(&out), 4000, 3, Context::Earlier(1)).unwrap();
            assert_eq!(decoded, symbols);
        }
    }
}
