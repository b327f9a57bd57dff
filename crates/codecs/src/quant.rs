//! Error-bounded uniform quantization.
//!
//! Placeholder layout until the entropy-coded version lands: per row, the step `2 * bound` as
//! `f32`, then each index `round(v / step)` as a zigzag varint.

use crate::bitio::{ByteReader, PutBytes};
use crate::CodecError;

/// Tuning knobs of the quantizer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Options {}

/// Encodes `rows` equal rows of finite `values`, row `r` within `bounds[r]`.
pub fn encode(values: &[f32], rows: usize, bounds: &[f32], _options: &Options) -> Vec<u8> {
    let cols = values.len() / rows.max(1);
    let mut out = Vec::new();
    for (row, &bound) in values.chunks(cols.max(1)).zip(bounds) {
        let step = 2.0 * bound;
        out.put_f32(step);
        for &v in row {
            let q = if step > 0.0 {
                (v / step).round() as i64
            } else {
                0
            };
            out.put_varint_signed(q);
        }
    }
    out
}

/// Decodes `rows * cols` values written by [`encode`].
pub fn decode(payload: &[u8], rows: usize, cols: usize) -> Result<Vec<f32>, CodecError> {
    let mut r = ByteReader::new(payload);
    let mut out = Vec::with_capacity(rows.saturating_mul(cols).min(payload.len()));
    for _ in 0..rows {
        let step = r.f32()?;
        for _ in 0..cols {
            out.push(r.varint_signed()? as f32 * step);
        }
    }
    Ok(out)
}
