//! Generates the Rust types of the protobuf files in `proto/` with prost, parsing them with
//! protox (pure Rust, so building needs no `protoc`).
//!
//! `proto/onnx.proto` is vendored unchanged from the `onnx` 1.23.2 Python wheel
//! (`onnx/onnx.proto`, Apache-2.0). `proto/onnx_layout.proto` is the layout format of the ONNX
//! adapter.
//!
//! Bytes fields are generated as `bytes::Bytes`, so decoding from the `Bytes` of a
//! memory-mapped file yields `raw_data` slices of that file instead of copies.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let descriptors = protox::compile(["onnx.proto", "onnx_layout.proto"], ["proto"])?;
    prost_build::Config::new()
        .bytes(["."])
        .compile_fds(descriptors)?;
    Ok(())
}
