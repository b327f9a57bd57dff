//! Bit-exact coding of tensor bytes.
//!
//! Placeholder layout until the entropy-coded version lands: the bytes of each element are split
//! into planes (all first bytes, then all second bytes, ...), stored as they are.

use crate::{CodecError, DType};

/// Encodes `data` (elements of `dtype`) losslessly.
pub fn encode(dtype: DType, data: &[u8]) -> Vec<u8> {
    let size = dtype.size();
    let mut out = Vec::with_capacity(data.len());
    for plane in 0..size {
        out.extend(data.iter().skip(plane).step_by(size));
    }
    out
}

/// Decodes `n` elements of `dtype` from a payload written by [`encode`].
pub fn decode(dtype: DType, n: usize, payload: &[u8]) -> Result<Vec<u8>, CodecError> {
    let size = dtype.size();
    if n.checked_mul(size) != Some(payload.len()) {
        return Err(CodecError::Corrupt("lossless payload has the wrong length"));
    }
    let mut out = vec![0u8; payload.len()];
    for (plane, bytes) in payload.chunks_exact(n.max(1)).enumerate() {
        for (i, &b) in bytes.iter().enumerate() {
            out[i * size + plane] = b;
        }
    }
    Ok(out)
}
