//! Weight codecs of pwlc.
//!
//! Every codec turns the little-endian bytes of one tensor into a self-contained payload and
//! back. The lossy codecs ([`Method::Quant`], [`Method::Pwl`]) see `f32` rows and a per-row
//! error bound; [`encode`] wraps them so that the bound holds for every element *after*
//! conversion back to the tensor's own dtype: it takes the values the codec's payload decodes
//! to (decoded, or for pwl computed by the encoder with the decoder's own code), and stores
//! every element that misses the bound (or is NaN or infinite) exactly, as an exception.
//!
//! Decoders never panic: any byte string either decodes or returns a [`CodecError`].

pub mod bitio;
pub mod dtype;
pub mod entropy;
mod error;
pub mod lossless;
pub mod matrix;
pub mod pwl;
pub mod quant;

pub use dtype::DType;
pub use error::CodecError;

use bitio::{ByteReader, PutBytes};
use std::borrow::Cow;

/// Stable on-disk identifier of a codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum CodecId {
    /// The bytes as they are.
    Raw = 0,
    /// Bit-exact float coding ([`lossless`]).
    Lossless = 1,
    /// Error-bounded quantization with entropy coding ([`quant`]).
    Quant = 2,
    /// The thesis method: piecewise linearization + dense rank matrix ([`pwl`]).
    Pwl = 3,
}

impl CodecId {
    /// Inverse of `id as u16`; `None` for ids this version does not know.
    pub fn from_u16(id: u16) -> Option<CodecId> {
        [
            CodecId::Raw,
            CodecId::Lossless,
            CodecId::Quant,
            CodecId::Pwl,
        ]
        .into_iter()
        .find(|c| *c as u16 == id)
    }

    /// Short name, as accepted by `--method`.
    pub fn name(self) -> &'static str {
        match self {
            CodecId::Raw => "raw",
            CodecId::Lossless => "lossless",
            CodecId::Quant => "quant",
            CodecId::Pwl => "pwl",
        }
    }
}

/// How large an error each row of a lossy-coded tensor may take.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Bound {
    /// The same absolute bound for every element.
    Abs(f64),
    /// A fraction of each row's root mean square.
    RelRms(f64),
    /// A fraction of each row's standard deviation.
    RelStd(f64),
}

impl Bound {
    /// The absolute bound of each row of `values` (`rows` equal rows).
    pub fn per_row(&self, values: &[f32], rows: usize) -> Vec<f32> {
        let cols = values.len().checked_div(rows).unwrap_or(0);
        (0..rows)
            .map(|r| {
                let row = &values[r * cols..(r + 1) * cols];
                let b = match *self {
                    Bound::Abs(e) => e,
                    Bound::RelRms(f) => f * moments(row).1.sqrt(),
                    Bound::RelStd(f) => {
                        let (mean, sq) = moments(row);
                        f * (sq - mean * mean).max(0.0).sqrt()
                    }
                };
                b as f32
            })
            .collect()
    }
}

/// Mean and mean square of the finite values of `row`.
fn moments(row: &[f32]) -> (f64, f64) {
    let (mut n, mut s, mut s2) = (0usize, 0f64, 0f64);
    for &v in row.iter().filter(|v| v.is_finite()) {
        n += 1;
        s += v as f64;
        s2 += (v as f64) * (v as f64);
    }
    if n == 0 {
        (0.0, 0.0)
    } else {
        (s / n as f64, s2 / n as f64)
    }
}

/// Which codec to use, with its parameters.
#[derive(Debug, Clone, PartialEq)]
pub enum Method {
    /// Store the bytes as they are.
    Raw,
    /// Bit-exact coding of float (or any) data.
    Lossless,
    /// Error-bounded quantization (the default lossy method).
    Quant {
        bound: Bound,
        options: quant::Options,
    },
    /// The thesis' piecewise linearization.
    Pwl { bound: Bound, options: pwl::Options },
}

impl Method {
    /// The codec this method writes.
    pub fn codec(&self) -> CodecId {
        match self {
            Method::Raw => CodecId::Raw,
            Method::Lossless => CodecId::Lossless,
            Method::Quant { .. } => CodecId::Quant,
            Method::Pwl { .. } => CodecId::Pwl,
        }
    }

    /// True if the method may change values.
    pub fn is_lossy(&self) -> bool {
        matches!(self, Method::Quant { .. } | Method::Pwl { .. })
    }
}

/// One tensor to encode: little-endian element bytes of `dtype`, row-major with `shape`.
#[derive(Debug, Clone, Copy)]
pub struct TensorRef<'a> {
    pub dtype: DType,
    pub shape: &'a [u64],
    pub data: &'a [u8],
}

/// The result of [`encode`].
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    pub codec: CodecId,
    pub payload: Vec<u8>,
    /// Largest |original - decoded| over all elements (0 for lossless codecs).
    pub max_abs_error: f64,
    /// Root mean square of original - decoded.
    pub rmse: f64,
}

/// Number of rows a lossy codec sees: the first dimension of tensors with 2 or more dimensions.
pub fn rows_of(shape: &[u64]) -> usize {
    match shape {
        [first, _, ..] => *first as usize,
        _ => 1,
    }
}

fn element_count(shape: &[u64]) -> Result<usize, CodecError> {
    shape
        .iter()
        .try_fold(1u64, |n, &d| n.checked_mul(d))
        .and_then(|n| usize::try_from(n).ok())
        .ok_or(CodecError::TooLarge(u64::MAX))
}

/// Encodes one tensor with `method`. Lossy methods on non-float tensors fall back to lossless.
pub fn encode(t: TensorRef<'_>, method: &Method) -> Result<Encoded, CodecError> {
    let n = element_count(t.shape)?;
    if n.checked_mul(t.dtype.size()) != Some(t.data.len()) {
        return Err(CodecError::InvalidParameter(format!(
            "{} bytes do not hold {n} elements of {}",
            t.data.len(),
            t.dtype
        )));
    }
    let exact = |codec, payload| Encoded {
        codec,
        payload,
        max_abs_error: 0.0,
        rmse: 0.0,
    };
    match method {
        Method::Raw => Ok(exact(CodecId::Raw, t.data.to_vec())),
        Method::Lossless => Ok(exact(CodecId::Lossless, lossless::encode(t.dtype, t.data))),
        _ if !t.dtype.is_float() || n == 0 => {
            Ok(exact(CodecId::Lossless, lossless::encode(t.dtype, t.data)))
        }
        // Both lossy encoders compute what their payload decodes to with the decoder's
        // arithmetic (a property test of each checks it bit for bit against its decoder); quant
        // hands it over a run at a time, pwl as a whole (its placement holds it anyway).
        Method::Quant { bound, options } => {
            encode_lossy(t, method.codec(), bound, |v, r, b, reconstruction| {
                quant::encode_with_reconstruction(v, r, b, options, reconstruction)
            })
        }
        Method::Pwl { bound, options } => {
            encode_lossy(t, method.codec(), bound, |v, r, b, reconstruction| {
                let (payload, values) = pwl::encode_reconstructed(v, r, b, options);
                reconstruction(&values);
                payload
            })
        }
    }
}

/// Decodes a payload written by [`encode`] back to the tensor's little-endian bytes.
pub fn decode(
    codec: CodecId,
    dtype: DType,
    shape: &[u64],
    payload: &[u8],
) -> Result<Vec<u8>, CodecError> {
    let n = element_count(shape)?;
    let bytes = n
        .checked_mul(dtype.size())
        .ok_or(CodecError::TooLarge(u64::MAX))?;
    match codec {
        CodecId::Raw if payload.len() == bytes => Ok(payload.to_vec()),
        CodecId::Raw => Err(CodecError::Corrupt("raw payload has the wrong length")),
        CodecId::Lossless => lossless::decode(dtype, n, payload),
        CodecId::Quant | CodecId::Pwl => decode_lossy(codec, dtype, shape, n, payload),
    }
}

/// Runs a lossy row codec and patches every element that misses its row's bound. `run` returns
/// the codec's payload and the values it decodes to.
///
/// Payload: `block(codec payload)`, `varint(exception count)`, then per exception
/// `varint(index delta)` and the element's original bytes.
fn encode_lossy(
    t: TensorRef<'_>,
    codec: CodecId,
    bound: &Bound,
    run: impl FnOnce(&[f32], usize, &[f32], &mut dyn FnMut(&[f32])) -> Vec<u8>,
) -> Result<Encoded, CodecError> {
    let values = dtype::as_f32(t.dtype, t.data)?;
    let rows = rows_of(t.shape).max(1);
    let cols = values.len() / rows;
    let bounds = bound.per_row(&values, rows);
    if bounds.iter().any(|b| !b.is_finite() || *b < 0.0) {
        return Err(CodecError::InvalidParameter(
            "error bound must be finite and >= 0".into(),
        ));
    }
    // The codecs see finite values: NaN and infinities are coded as 0 (and become exceptions).
    let finite: Cow<'_, [f32]> = if values.iter().all(|v| v.is_finite()) {
        Cow::Borrowed(&*values)
    } else {
        Cow::Owned(
            values
                .iter()
                .map(|v| if v.is_finite() { *v } else { 0.0 })
                .collect(),
        )
    };
    let mut check = RowCheck {
        check: Check {
            bounds: &bounds,
            cols: cols.max(1),
            data: t.data,
            size: t.dtype.size(),
        },
        dtype: t.dtype,
        values: &values,
        row: Vec::with_capacity(cols),
        rows_done: 0,
        verified: Verified::default(),
        error: None,
    };
    let core = run(&finite, rows, &bounds, &mut |run| check.put(run));
    let Verified {
        exceptions,
        count,
        max_err,
        sum_sq,
        ..
    } = check.finish()?;
    let mut payload = Vec::with_capacity(core.len() + exceptions.len() + 16);
    payload.put_block(&core);
    payload.put_varint(count);
    payload.extend_from_slice(&exceptions);
    let rmse = (sum_sq / values.len().max(1) as f64).sqrt();
    Ok(Encoded {
        codec,
        payload,
        max_abs_error: max_err,
        rmse,
    })
}

/// Checks a lossy codec's reconstruction (the values its decoder gives back, in storage order)
/// row by row as the codec hands it over in runs, so that the encoder needs no buffer as large
/// as the tensor for it.
struct RowCheck<'a> {
    check: Check<'a>,
    dtype: DType,
    /// The tensor's values as `f32`.
    values: &'a [f32],
    /// The reconstruction of a row split across runs, so far.
    row: Vec<f32>,
    rows_done: usize,
    verified: Verified,
    /// The first error of a row's conversion to the dtype.
    error: Option<CodecError>,
}

impl RowCheck<'_> {
    /// Takes the next `run` of reconstructed values. Whole rows in the run are checked where
    /// they lie; only a row split across runs is gathered in `row` first.
    fn put(&mut self, mut run: &[f32]) {
        let cols = self.check.cols;
        while !run.is_empty() {
            if self.row.is_empty() && run.len() >= cols {
                let (row, rest) = run.split_at(cols);
                self.end_row(row);
                run = rest;
                continue;
            }
            let take = (cols - self.row.len()).min(run.len());
            self.row.extend_from_slice(&run[..take]);
            run = &run[take..];
            if self.row.len() == cols {
                let mut row = std::mem::take(&mut self.row);
                self.end_row(&row);
                row.clear();
                self.row = row;
            }
        }
    }

    /// Checks the next row, `decoded`, keeping the first error.
    fn end_row(&mut self, decoded: &[f32]) {
        if let Err(e) = self.check_row(decoded) {
            self.error.get_or_insert(e);
        }
        self.rows_done += 1;
    }

    /// Compares the next row, `decoded`, exactly, in `f64`, with what the decoder gives back in the
    /// tensor's dtype. `f32` and the 16-bit floats are exact in `f32`, so their comparison
    /// reads slices directly: reading every element through `element_f64` cost a quarter of
    /// quant's whole-model compress time.
    fn check_row(&mut self, decoded: &[f32]) -> Result<(), CodecError> {
        let (r, cols) = (self.rows_done, self.check.cols);
        // More values than the tensor has are reported by `finish`.
        let Some(originals) = self.values.get(r * cols..(r + 1) * cols) else {
            return Ok(());
        };
        let v = &mut self.verified;
        match self.dtype {
            DType::F32 => self.check.row_f32(v, r, originals, decoded),
            DType::F16 | DType::BF16 => {
                let stored = dtype::to_f32(self.dtype, &dtype::from_f32(self.dtype, decoded)?)?;
                self.check.row_f32(v, r, originals, &stored);
            }
            _ => {
                let stored = dtype::from_f32(self.dtype, decoded)?;
                let bound = f64::from(self.check.bounds[r]);
                for j in 0..cols {
                    let i = r * cols + j;
                    let orig = dtype::element_f64(self.dtype, self.check.data, i);
                    let got = dtype::element_f64(self.dtype, &stored, j);
                    self.check.element(v, i, orig, got, bound);
                }
            }
        }
        Ok(())
    }

    /// The exceptions and error statistics, once every value was handed over.
    fn finish(self) -> Result<Verified, CodecError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if !self.row.is_empty() || self.rows_done * self.check.cols != self.values.len() {
            return Err(CodecError::Corrupt(
                "lossy codec decoded the wrong number of values",
            ));
        }
        Ok(self.verified)
    }
}

/// The elements a lossy codec missed, and the error statistics of the others.
#[derive(Default)]
struct Verified {
    /// Per exception: the index gap from the previous one (varint) and the original bytes.
    exceptions: Vec<u8>,
    count: u64,
    max_err: f64,
    sum_sq: f64,
    /// Index of the last exception (0 before the first).
    last: usize,
}

/// What the check of a lossy approximation compares against.
struct Check<'a> {
    /// Bound of each row.
    bounds: &'a [f32],
    cols: usize,
    /// The original little-endian elements, copied verbatim into exceptions.
    data: &'a [u8],
    /// Bytes per element.
    size: usize,
}

impl Check<'_> {
    /// Checks row `row` of `f32` elements (exact in `f64`): a row without a miss is checked in
    /// lanes ([`errors_within`]), which sums its squared errors in another order.
    fn row_f32(&self, v: &mut Verified, row: usize, originals: &[f32], decodeds: &[f32]) {
        let bound = f64::from(self.bounds[row]);
        if let Some((max_err, sum_sq)) = errors_within(originals, decodeds, bound) {
            v.max_err = v.max_err.max(max_err);
            v.sum_sq += sum_sq;
            return;
        }
        let first = row * self.cols;
        for (j, (&orig, &got)) in originals.iter().zip(decodeds).enumerate() {
            self.element(v, first + j, f64::from(orig), f64::from(got), bound);
        }
    }

    /// Checks element `i` against `bound`: a miss becomes an exception, a hit adds to the
    /// error statistics.
    #[inline(always)]
    fn element(&self, v: &mut Verified, i: usize, orig: f64, got: f64, bound: f64) {
        let err = (orig - got).abs();
        // With a finite bound this also catches NaN and infinities on either side: their
        // difference is NaN or infinite.
        if err.is_nan() || err > bound {
            v.exceptions.put_varint((i - v.last) as u64);
            v.exceptions
                .extend_from_slice(&self.data[i * self.size..(i + 1) * self.size]);
            v.last = i;
            v.count += 1;
        } else {
            v.max_err = v.max_err.max(err);
            v.sum_sq += err * err;
        }
    }
}

/// The largest error and the sum of squared errors between `original` and `decoded`, if every
/// error is within `bound` (none is NaN); `None` if some element misses. Misses are rare, so
/// rows are first checked this way: four independent lanes without a branch per element
/// vectorize, where [`Check::element`] takes a few instructions per element more.
fn errors_within(original: &[f32], decoded: &[f32], bound: f64) -> Option<(f64, f64)> {
    const LANES: usize = 4;
    let (mut max, mut sum) = ([0.0f64; LANES], [0.0f64; LANES]);
    let mut within = true;
    let mut add = |lane: usize, o: f32, d: f32| {
        let err = (f64::from(o) - f64::from(d)).abs();
        within &= err <= bound;
        max[lane] = if err > max[lane] { err } else { max[lane] };
        sum[lane] += err * err;
    };
    let mut originals = original.chunks_exact(LANES);
    let mut decodeds = decoded.chunks_exact(LANES);
    for (o, d) in (&mut originals).zip(&mut decodeds) {
        for lane in 0..LANES {
            add(lane, o[lane], d[lane]);
        }
    }
    for (&o, &d) in originals.remainder().iter().zip(decodeds.remainder()) {
        add(0, o, d);
    }
    within.then(|| (max.into_iter().fold(0.0, f64::max), sum.into_iter().sum()))
}

/// Decodes a lossy codec's core payload straight into little-endian bytes of `dtype`: the
/// decoders convert each value as they write it ([`pwl::decode_as`], [`quant::decode_as`]), where
/// converting afterwards would take a second pass over the output and a second buffer as large.
fn decode_core_bytes(
    codec: CodecId,
    dtype: DType,
    core: &[u8],
    rows: usize,
    cols: usize,
) -> Result<Vec<u8>, CodecError> {
    let elements = match dtype {
        DType::F32 => decode_core_as(codec, core, rows, cols, f32::to_le_bytes)?.into_flattened(),
        DType::F16 => decode_core_as(codec, core, rows, cols, dtype::f16_bytes)?.into_flattened(),
        DType::BF16 => decode_core_as(codec, core, rows, cols, dtype::bf16_bytes)?.into_flattened(),
        DType::F64 => decode_core_as(codec, core, rows, cols, dtype::f64_bytes)?.into_flattened(),
        _ => return Err(CodecError::Corrupt("lossy codec on a non-float tensor")),
    };
    Ok(elements)
}

/// The `rows * cols` values of a lossy codec's core payload, each as `convert(value)`.
fn decode_core_as<T: Copy>(
    codec: CodecId,
    core: &[u8],
    rows: usize,
    cols: usize,
    convert: impl Fn(f32) -> T + Copy,
) -> Result<Vec<T>, CodecError> {
    let elements = match codec {
        CodecId::Quant => quant::decode_as(core, rows, cols, convert)?,
        CodecId::Pwl => pwl::decode_as(core, rows, cols, convert)?,
        _ => return Err(CodecError::Unsupported("not a lossy codec")),
    };
    if elements.len() != rows * cols {
        return Err(CodecError::Corrupt(
            "lossy codec decoded the wrong number of values",
        ));
    }
    Ok(elements)
}

fn decode_lossy(
    codec: CodecId,
    dtype: DType,
    shape: &[u64],
    n: usize,
    payload: &[u8],
) -> Result<Vec<u8>, CodecError> {
    if !dtype.is_float() {
        return Err(CodecError::Corrupt("lossy codec on a non-float tensor"));
    }
    let rows = rows_of(shape).max(1);
    let mut r = ByteReader::new(payload);
    let core = r.block()?;
    let size = dtype.size();
    // `decode_core_as` checks that the core gave `rows * (n / rows) = n` values.
    let mut out = decode_core_bytes(codec, dtype, core, rows, n / rows)?;
    let count = r.varint_max(n as u64)?;
    let mut index = 0usize;
    for _ in 0..count {
        index = index
            .checked_add(r.varint_max(n as u64)?)
            .filter(|&i| i < n)
            .ok_or(CodecError::Corrupt("exception index out of range"))?;
        out[index * size..(index + 1) * size].copy_from_slice(r.take(size)?);
    }
    if r.remaining() != 0 {
        return Err(CodecError::Corrupt("trailing bytes after exceptions"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f32_bytes(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn lossy_wrapper_keeps_non_finite_values_exactly() {
        let v = [
            1.0f32,
            f32::NAN,
            -0.25,
            f32::INFINITY,
            3.5,
            f32::NEG_INFINITY,
            0.0,
            2.0,
        ];
        let data = f32_bytes(&v);
        let shape = [2u64, 4];
        let t = TensorRef {
            dtype: DType::F32,
            shape: &shape,
            data: &data,
        };
        let method = Method::Quant {
            bound: Bound::Abs(0.01),
            options: quant::Options::default(),
        };
        let enc = encode(t, &method).unwrap();
        let dec = decode(enc.codec, DType::F32, &shape, &enc.payload).unwrap();
        for (i, (a, b)) in v.iter().zip(dec.chunks_exact(4)).enumerate() {
            let b = f32::from_le_bytes(b.try_into().unwrap());
            if a.is_finite() {
                assert!((a - b).abs() <= 0.01, "element {i}: {a} vs {b}");
            } else {
                assert_eq!(a.to_bits(), b.to_bits(), "element {i}");
            }
        }
        assert!(enc.max_abs_error <= 0.01);
    }

    #[test]
    fn lossy_codecs_decode_straight_to_the_bytes_of_every_float_dtype() {
        // Quant with verbatim values (1e30 needs more index bits than a token holds).
        let mut values: Vec<f32> = (0..6 * 70)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) * 1e-3)
            .collect();
        values[75] = 1e30;
        let pwl_core = |rank_coding| {
            let options = pwl::Options {
                rank_coding,
                ..pwl::Options::default()
            };
            pwl::encode(&values, 6, &[2e-3; 6], &options)
        };
        let quant_core = quant::encode(&values, 6, &[2e-3; 6], &quant::Options::default());
        let cores = [
            (CodecId::Pwl, pwl_core(pwl::RankCoding::Packed)),
            (CodecId::Pwl, pwl_core(pwl::RankCoding::Permutation)),
            (CodecId::Quant, quant_core),
        ];
        for (codec, core) in cores {
            let decoded = decode_core_as(codec, &core, 6, 70, |v| v).unwrap();
            for dtype in [DType::F32, DType::F16, DType::BF16, DType::F64] {
                assert_eq!(
                    decode_core_bytes(codec, dtype, &core, 6, 70).unwrap(),
                    dtype::from_f32(dtype, &decoded).unwrap(),
                    "{codec:?}, {dtype}"
                );
            }
            assert!(decode_core_bytes(codec, DType::I32, &core, 6, 70).is_err());
        }
    }

    #[test]
    fn decode_rejects_a_raw_payload_of_the_wrong_size() {
        assert!(decode(CodecId::Raw, DType::F32, &[3], &[0; 11]).is_err());
    }

    #[test]
    fn rel_bounds_follow_each_row() {
        let b = Bound::RelRms(0.5).per_row(&[3.0, 4.0, 0.0, 0.0], 2);
        assert!((b[0] - 0.5 * 12.5f32.sqrt()).abs() < 1e-6);
        assert_eq!(b[1], 0.0);
    }
}
