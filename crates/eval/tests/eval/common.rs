//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use pwlc_models::{DType, Tensor};
use tract_onnx::prelude::Framework;

/// The shared data folder (`$PWLC_SHARED` or `../shared` beside the repository), or `None`
/// after printing why the calling test is skipped.
pub fn shared(test: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("PWLC_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"));
    if dir.join("models").is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "skipping {test}: shared data not found at {} (set PWLC_SHARED)",
            dir.display()
        );
        None
    }
}

/// The fixture folder of this crate.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The float initializers of an ONNX file stored as raw data, as pwlc tensors.
pub fn float_initializers(path: &Path) -> Vec<Tensor> {
    let proto = tract_onnx::onnx()
        .proto_model_for_path(path)
        .expect("readable ONNX file");
    proto
        .graph
        .expect("a graph")
        .initializer
        .into_iter()
        .filter(|init| init.data_type == 1 && !init.raw_data.is_empty())
        .map(|init| Tensor {
            name: init.name,
            dtype: DType::F32,
            shape: init.dims.iter().map(|&d| d as u64).collect(),
            data: Bytes::from(init.raw_data),
        })
        .collect()
}

/// `tensor` with `delta` added to each of its f32 values.
pub fn shifted(tensor: &Tensor, delta: f32) -> Tensor {
    let data: Vec<u8> = tensor
        .data
        .chunks_exact(4)
        .flat_map(|b| (f32::from_le_bytes([b[0], b[1], b[2], b[3]]) + delta).to_le_bytes())
        .collect();
    Tensor {
        data: Bytes::from(data),
        ..tensor.clone()
    }
}
