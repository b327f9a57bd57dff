//! The thesis method: piecewise linearization of sorted rows with a dense rank matrix.
//!
//! Placeholder layout until the method lands: the values as `f32`.

use crate::bitio::{ByteReader, PutBytes};
use crate::CodecError;

/// The thesis' thresholds and ablation switches.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Options {}

/// Encodes `rows` equal rows of finite `values`, row `r` within `bounds[r]`.
pub fn encode(values: &[f32], _rows: usize, _bounds: &[f32], _options: &Options) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() * 4);
    values.iter().for_each(|v| out.put_f32(*v));
    out
}

/// Decodes `rows * cols` values written by [`encode`].
pub fn decode(payload: &[u8], rows: usize, cols: usize) -> Result<Vec<f32>, CodecError> {
    let mut r = ByteReader::new(payload);
    (0..rows * cols).map(|_| r.f32()).collect()
}
