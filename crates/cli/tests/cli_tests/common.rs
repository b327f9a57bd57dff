//! Helpers shared by the CLI tests.

use assert_cmd::Command;
use bytes::Bytes;
use pwlc::models::{DType, Tensor};

/// The `pwlc` binary of this build.
pub fn pwlc() -> Command {
    Command::cargo_bin("pwlc").expect("the pwlc binary is built")
}

/// A deterministic pseudo-random weight in [-0.1, 0.1).
pub fn weight(i: usize) -> f32 {
    let x = (i as u64)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .rotate_left(17);
    ((x >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.2
}

/// An f32 tensor of pseudo-random weights, starting at weight number `offset`.
pub fn f32_tensor(name: &str, shape: &[u64], offset: usize) -> Tensor {
    let n: u64 = shape.iter().product();
    let data: Vec<u8> = (0..n as usize)
        .flat_map(|i| weight(i + offset).to_le_bytes())
        .collect();
    Tensor {
        name: name.into(),
        dtype: DType::F32,
        shape: shape.to_vec(),
        data: Bytes::from(data),
    }
}
