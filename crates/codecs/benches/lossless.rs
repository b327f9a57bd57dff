//! Compression ratio and speed of the lossless codec on the float32 tensors of a real model,
//! and on the same tensors cast to bfloat16 (round to nearest even).
//!
//! Run with `cargo bench -p pwlc-codecs --bench lossless [-- MODEL_FILE]`. The default model is
//! `efficientnet_lite0.onnx` from the shared data folder (`../shared` beside the repository, or
//! `$PWLC_SHARED`); it is read with `pwlc_models::read`. Times are CPU time of the thread.

use pwlc_codecs::{lossless, DType};
use std::hint::black_box;
use std::path::PathBuf;

mod common;
use common::now;

fn model_path() -> PathBuf {
    if let Some(path) = std::env::args().skip(1).find(|a| !a.starts_with('-')) {
        return path.into();
    }
    let shared = std::env::var_os("PWLC_SHARED").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
        PathBuf::from,
    );
    shared.join("models/efficientnet_lite0.onnx")
}

fn to_bf16(f32_bytes: &[u8]) -> Vec<u8> {
    f32_bytes
        .chunks_exact(4)
        .flat_map(|c| {
            let v = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            half::bf16::from_f32(v).to_le_bytes()
        })
        .collect()
}

/// Codes every tensor; prints the total ratio and the encode and decode speeds.
fn measure(dtype: DType, tensors: &[Vec<u8>]) {
    let (mut raw, mut coded, mut encode_secs, mut decode_secs) = (0usize, 0usize, 0.0, 0.0);
    for data in tensors {
        let start = now();
        let payload = lossless::encode(dtype, black_box(data));
        encode_secs += now() - start;
        let start = now();
        let decoded = lossless::decode(dtype, data.len() / dtype.size(), black_box(&payload));
        decode_secs += now() - start;
        assert_eq!(decoded.as_ref(), Ok(data), "lossless round trip");
        raw += data.len();
        coded += payload.len();
    }
    println!(
        "lossless {dtype}: {} tensors, {raw} -> {coded} bytes, ratio {:.4}x, encode {:.0} MB/s, decode {:.0} MB/s",
        tensors.len(),
        raw as f64 / coded as f64,
        raw as f64 / encode_secs / 1e6,
        raw as f64 / decode_secs / 1e6,
    );
}

fn main() {
    let path = model_path();
    if !path.exists() {
        println!("skipped: {} does not exist", path.display());
        return;
    }
    let model = match pwlc_models::read(&path) {
        Ok(model) => model,
        Err(e) => {
            println!("skipped: cannot read {}: {e}", path.display());
            return;
        }
    };
    let f32s: Vec<Vec<u8>> = model
        .tensors
        .iter()
        .filter(|t| t.dtype == DType::F32)
        .map(|t| t.data.to_vec())
        .collect();
    println!("{}: {} float32 tensors", path.display(), f32s.len());
    measure(DType::F32, &f32s);
    let bf16s: Vec<Vec<u8>> = f32s.iter().map(|t| to_bf16(t)).collect();
    measure(DType::BF16, &bf16s);
}
