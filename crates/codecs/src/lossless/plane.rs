//! Coding one plane of symbols: stored as bits, with one rANS model, or with one model per
//! context (the element's head, or the previous symbol of the plane).

use std::borrow::Cow;

use crate::bitio::{BitReader, BitWriter, ByteReader, PutBytes};
use crate::entropy::rans::{DecodeTable, Decoder, Encoder, Model};
use crate::CodecError;

/// Plane stored as packed bits.
const RAW: u8 = 0;
/// Plane coded with one model.
const ORDER0: u8 = 1;
/// Plane coded with one model per context value.
const CONTEXT: u8 = 2;

/// What a plane's context-modelled mode conditions each symbol on.
#[derive(Debug, Clone, Copy)]
pub(super) enum Context<'a> {
    /// The previous symbol of the same plane (0 before the first).
    Previous,
    /// The value of another plane at the same position, `bits` wide.
    Of { values: &'a [u16], bits: u32 },
}

impl Context<'_> {
    fn bits(&self, plane_bits: u32) -> u32 {
        match *self {
            Context::Previous => plane_bits,
            Context::Of { bits, .. } => bits,
        }
    }

    fn values<'s>(&'s self, symbols: &[u16]) -> Cow<'s, [u16]> {
        match *self {
            Context::Previous => {
                let shifted = std::iter::once(0).chain(symbols.iter().copied());
                Cow::Owned(shifted.take(symbols.len()).collect())
            }
            Context::Of { values, .. } => Cow::Borrowed(values),
        }
    }
}

/// Appends the smallest coding of `symbols` (each below `1 << bits`, `bits <= 11`).
///
/// Entropy coding is kept only if it saves at least `min_saving` of the stored size: decoding a
/// stored plane is a copy, decoding a coded one costs a rANS step per symbol.
pub(super) fn encode(
    symbols: &[u16],
    bits: u32,
    context: Context<'_>,
    min_saving: f64,
    out: &mut Vec<u8>,
) {
    let raw = encode_raw(symbols, bits);
    let mut best = encode_order0(symbols, bits);
    if !symbols.is_empty() {
        let coded = encode_context(symbols, bits, &context.values(symbols), context.bits(bits));
        if let Some(coded) = coded.filter(|c| c.len() < best.len()) {
            best = coded;
        }
    }
    if best.len() as f64 <= raw.len() as f64 * (1.0 - min_saving) {
        out.extend_from_slice(&best);
    } else {
        out.extend_from_slice(&raw);
    }
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
    let mut counts = vec![0u64; 1 << bits];
    symbols.iter().for_each(|&s| counts[s as usize] += 1);
    counts
}

fn encode_order0(symbols: &[u16], bits: u32) -> Vec<u8> {
    let Ok(model) = Model::from_counts(&histogram(symbols, bits)) else {
        return encode_raw(symbols, bits);
    };
    let mut enc = Encoder::with_capacity(symbols.len());
    symbols.iter().for_each(|&s| enc.put(u32::from(s), &model));
    let mut out = vec![ORDER0];
    model.write(&mut out);
    out.put_block(&enc.finish());
    out
}

/// Per-context models: a context gets its own model where that beats coding its symbols with
/// the plane's overall model (model size included); the others share one model.
struct ContextModels {
    /// Context value and its model, by increasing context.
    own: Vec<(usize, Model)>,
    shared: Option<Model>,
    /// Index into `own`, or `own.len()` for the shared model, per context value.
    table: Vec<usize>,
}

impl ContextModels {
    fn build(symbols: &[u16], bits: u32, contexts: &[u16], ctx_bits: u32) -> Option<ContextModels> {
        let alphabet = symbols.iter().map(|&s| s as usize + 1).max()?;
        let mut counts = vec![Vec::new(); 1 << ctx_bits];
        for (&s, &c) in symbols.iter().zip(contexts) {
            let row = &mut counts[c as usize];
            if row.is_empty() {
                *row = vec![0u64; alphabet];
            }
            row[s as usize] += 1;
        }
        let overall = Model::from_counts(&histogram(symbols, bits)).ok()?;
        let mut own = Vec::new();
        let mut rest = vec![0u64; alphabet];
        for (c, row) in counts.iter().enumerate().filter(|(_, r)| !r.is_empty()) {
            match Model::from_counts(row) {
                Ok(m) if own_cost(&m, row) < overall.cost_bits(row) => own.push((c, m)),
                _ => rest.iter_mut().zip(row).for_each(|(r, n)| *r += n),
            }
        }
        let shared = Model::from_counts(&rest).ok();
        let mut table = vec![own.len(); 1 << ctx_bits];
        own.iter().enumerate().for_each(|(i, (c, _))| table[*c] = i);
        Some(ContextModels { own, shared, table })
    }

    fn model(&self, context: u16) -> Option<&Model> {
        let i = self.table[context as usize];
        self.own.get(i).map(|(_, m)| m).or(self.shared.as_ref())
    }
}

/// Bits to code `counts` with `model`, the model's serialization and its context number included.
fn own_cost(model: &Model, counts: &[u64]) -> f64 {
    let mut header = Vec::new();
    model.write(&mut header);
    model.cost_bits(counts) + 8.0 * (header.len() + 1) as f64
}

/// The context-modelled coding of `symbols`; `None` for an empty plane.
fn encode_context(symbols: &[u16], bits: u32, contexts: &[u16], ctx_bits: u32) -> Option<Vec<u8>> {
    let models = ContextModels::build(symbols, bits, contexts, ctx_bits)?;
    let mut enc = Encoder::with_capacity(symbols.len());
    for (&s, &c) in symbols.iter().zip(contexts) {
        enc.put(u32::from(s), models.model(c)?);
    }
    let mut out = vec![CONTEXT];
    out.put_varint(models.own.len() as u64);
    let mut next = 0;
    for (c, model) in &models.own {
        out.put_varint((c - next) as u64);
        next = c + 1;
        model.write(&mut out);
    }
    match &models.shared {
        Some(model) => {
            out.push(1);
            model.write(&mut out);
        }
        None => out.push(0),
    }
    out.put_block(&enc.finish());
    Some(out)
}

/// Decodes `n` symbols of `bits` bits written by [`encode`].
pub(super) fn decode(
    r: &mut ByteReader<'_>,
    n: usize,
    bits: u32,
    context: Context<'_>,
) -> Result<Vec<u16>, CodecError> {
    match r.u8()? {
        RAW => decode_raw(r, n, bits),
        ORDER0 => {
            let table = DecodeTable::new(&read_model(r, bits)?);
            let mut dec = Decoder::new(r.block()?)?;
            let symbols = decode_order0(&mut dec, n, &table);
            dec.finish()?;
            Ok(symbols)
        }
        CONTEXT => decode_context(r, n, bits, context),
        _ => Err(CodecError::Corrupt("unknown lossless plane mode")),
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
    let mut dec = Decoder::new(r.block()?)?;
    let symbols = match (models.is_empty(), context) {
        (true, _) => return Err(CodecError::Corrupt("lossless plane without models")),
        (false, Context::Previous) => decode_after_previous(&mut dec, n, &models, &table),
        (false, Context::Of { values, .. }) => {
            if values.len() != n {
                return Err(CodecError::Corrupt(
                    "lossless context plane has the wrong length",
                ));
            }
            decode_with(&mut dec, values, &models, &table)
        }
    };
    dec.finish()?;
    Ok(symbols)
}

/// Decodes `n` symbols with one model, a few hundred at a time.
fn decode_order0(dec: &mut Decoder<'_>, n: usize, table: &DecodeTable) -> Vec<u16> {
    let mut symbols = Vec::with_capacity(n);
    let mut run = [0u32; 256];
    while symbols.len() < n {
        let run = &mut run[..(n - symbols.len()).min(256)];
        dec.get_many(table, run);
        symbols.extend(run.iter().map(|&s| s as u16));
    }
    symbols
}

/// Decodes one symbol per context value. `table` has a power-of-two length and entries below
/// `models.len()`.
fn decode_with(
    dec: &mut Decoder<'_>,
    contexts: &[u16],
    models: &[DecodeTable],
    table: &[usize],
) -> Vec<u16> {
    let mask = table.len() - 1;
    contexts
        .iter()
        .map(|&c| dec.get(&models[table[c as usize & mask]]) as u16)
        .collect()
}

/// Decodes `n` symbols, each in the context of the previous one.
fn decode_after_previous(
    dec: &mut Decoder<'_>,
    n: usize,
    models: &[DecodeTable],
    table: &[usize],
) -> Vec<u16> {
    let mask = table.len() - 1;
    let mut previous = 0usize;
    (0..n)
        .map(|_| {
            let s = dec.get(&models[table[previous & mask]]);
            previous = s as usize;
            s as u16
        })
        .collect()
}
