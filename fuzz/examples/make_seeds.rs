//! Writes the seed corpora of the fuzz targets into `fuzz/corpus/<target>/`.
//!
//! Model seeds are the small fixtures of `crates/models/tests/fixtures` plus a few files made
//! here (an ONNX model, a little-endian `.npy`); codec and container seeds are real payloads of
//! the encoders. Run with `cargo run --example make_seeds` from `fuzz/`; the output is
//! deterministic, so re-running only rewrites the same files.

use std::fs;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use prost::Message;
use pwlc_codecs::{Bound, DType, Method, TensorRef};
use pwlc_container::{EntryMeta, FileInfo, Writer};
use pwlc_models::onnx::proto::{self, tensor_proto::DataType, GraphProto, ModelProto, TensorProto};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> Result<()> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR"));
    let corpus = fuzz.join("corpus");
    copy_fixtures(&fuzz.join("../crates/models/tests/fixtures"), &corpus)?;
    write(&corpus, "onnx", "small.onnx", &small_onnx())?;
    write(&corpus, "npy", "small_le.npy", &small_npy())?;
    write_codec_seeds(&corpus)?;
    write_roundtrip_seeds(&corpus)?;
    // Not `*.pwlc`: the repository ignores those.
    write(&corpus, "container", "small-container", &small_container()?)?;
    Ok(())
}

/// Writes `bytes` to `corpus/target/name`.
fn write(corpus: &Path, target: &str, name: &str, bytes: &[u8]) -> Result<()> {
    let dir = corpus.join(target);
    fs::create_dir_all(&dir)?;
    fs::write(dir.join(name), bytes)?;
    Ok(())
}

/// Copies the model fixtures (each a few KB) into the corpus of their reader's target.
fn copy_fixtures(fixtures: &Path, corpus: &Path) -> Result<()> {
    let seeds = [
        ("safetensors", "small.safetensors"),
        ("npy", "fortran_be.npy"),
        ("npz", "mixed.npz"),
        ("npz", "mixed_deflated.npz"),
        ("gguf", "small.gguf"),
        ("pytorch", "pytorch/legacy.pth"),
        ("pytorch", "pytorch/shared.pth"),
        ("pytorch", "pytorch/plain.pth"),
        ("pytorch", "pytorch/nested.pth"),
    ];
    for (target, file) in seeds {
        let name = PathBuf::from(file);
        let name = name.file_name().ok_or("fixture without a file name")?;
        let bytes = fs::read(fixtures.join(file))?;
        write(corpus, target, &name.to_string_lossy(), &bytes)?;
    }
    Ok(())
}

/// An ONNX model with float, f16 and int64 initializers in raw and typed fields.
fn small_onnx() -> Vec<u8> {
    let tensor = |name: &str, data_type: DataType, dims: &[i64]| TensorProto {
        name: Some(name.into()),
        data_type: Some(data_type as i32),
        dims: dims.to_vec(),
        ..Default::default()
    };
    let raw: Vec<u8> = (0..6)
        .flat_map(|i| (i as f32 * 0.25).to_le_bytes())
        .collect();
    let initializer = vec![
        TensorProto {
            raw_data: Some(Bytes::from(raw)),
            ..tensor("w", DataType::Float, &[2, 3])
        },
        TensorProto {
            float_data: vec![1.0, -2.0],
            ..tensor("b", DataType::Float, &[2])
        },
        TensorProto {
            int32_data: vec![0x3c00, 0xbc00],
            ..tensor("h", DataType::Float16, &[2])
        },
        TensorProto {
            int64_data: vec![2, -3],
            ..tensor("shape", DataType::Int64, &[2])
        },
    ];
    let node = proto::NodeProto {
        op_type: Some("Gemm".into()),
        input: vec!["x".into(), "w".into(), "b".into()],
        output: vec!["y".into()],
        ..Default::default()
    };
    ModelProto {
        ir_version: Some(9),
        graph: Some(GraphProto {
            name: Some("seed".into()),
            node: vec![node],
            initializer,
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

/// A little-endian C-order `.npy` of a 2 x 3 f32 array (format version 1.0).
fn small_npy() -> Vec<u8> {
    let dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
    // The header (magic, version, length, dict, newline) is padded to a multiple of 64.
    let unpadded = 10 + dict.len() + 1;
    let padding = unpadded.next_multiple_of(64) - unpadded;
    let header = format!("{dict}{}\n", " ".repeat(padding));
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend((0..6).flat_map(|i| (i as f32 - 2.5).to_le_bytes()));
    out
}

/// A smooth 4 x 16 f32 tensor with a NaN, an infinity and a subnormal mixed in.
fn sample_f32() -> Vec<f32> {
    let mut v: Vec<f32> = (0..64).map(|i| (i as f32 * 0.37).sin() * 0.1).collect();
    v[5] = f32::NAN;
    v[17] = f32::INFINITY;
    v[40] = 1e-40;
    v
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// The methods whose payloads seed the decoders.
fn methods() -> [(&'static str, Method); 4] {
    let bound = Bound::Abs(0.01);
    [
        ("raw", Method::Raw),
        ("lossless", Method::Lossless),
        (
            "quant",
            Method::Quant {
                bound,
                options: Default::default(),
            },
        ),
        (
            "pwl",
            Method::Pwl {
                bound,
                options: Default::default(),
            },
        ),
    ]
}

/// Seeds of the `codecs` target: codec id, dtype code, rank, u32 dimensions, payload.
fn write_codec_seeds(corpus: &Path) -> Result<()> {
    let data = f32_bytes(&sample_f32());
    let shape = [4u64, 16];
    for (name, method) in methods() {
        let t = TensorRef {
            dtype: DType::F32,
            shape: &shape,
            data: &data,
        };
        let encoded = pwlc_codecs::encode(t, &method)?;
        let mut seed = vec![encoded.codec as u8, DType::F32.code(), shape.len() as u8];
        shape
            .iter()
            .for_each(|&d| seed.extend_from_slice(&(d as u32).to_le_bytes()));
        seed.extend_from_slice(&encoded.payload);
        write(corpus, "codecs", &format!("{name}_f32_4x16"), &seed)?;
    }
    let bytes: Vec<u8> = (0..200u32).map(|i| (i * i % 251) as u8).collect();
    let payload = pwlc_codecs::lossless::encode(DType::I16, &bytes);
    let mut seed = vec![1, DType::I16.code(), 1];
    seed.extend_from_slice(&100u32.to_le_bytes());
    seed.extend_from_slice(&payload);
    write(corpus, "codecs", "lossless_i16_100", &seed)
}

/// Seeds of the `codec_roundtrip` target: bound selector, row byte, f32 values.
fn write_roundtrip_seeds(corpus: &Path) -> Result<()> {
    let data = f32_bytes(&sample_f32());
    for (selector, rows) in [(3u8, 3u8), (0, 0), (7, 1)] {
        let mut seed = vec![selector, rows];
        seed.extend_from_slice(&data);
        write(
            corpus,
            "codec_roundtrip",
            &format!("bound{selector}_rows{rows}"),
            &seed,
        )?;
    }
    Ok(())
}

/// A container holding the sample tensor coded by every method.
fn small_container() -> Result<Vec<u8>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("small.pwlc");
    let info = FileInfo {
        format: "safetensors".into(),
        file_name: "small.safetensors".into(),
        original_size: 1234,
        layout: b"{\"layout\":1}".to_vec(),
        settings: "{}".into(),
    };
    let data = f32_bytes(&sample_f32());
    let shape = [4u64, 16];
    let mut writer = Writer::create(&path, &info)?;
    for (name, method) in methods() {
        let t = TensorRef {
            dtype: DType::F32,
            shape: &shape,
            data: &data,
        };
        let encoded = pwlc_codecs::encode(t, &method)?;
        let meta = EntryMeta {
            name,
            dtype: DType::F32,
            shape: &shape,
            codec: encoded.codec as u16,
            max_abs_error: encoded.max_abs_error,
            rmse: encoded.rmse,
        };
        writer.add(&meta, &encoded.payload)?;
    }
    writer.finish()?;
    Ok(fs::read(path)?)
}
