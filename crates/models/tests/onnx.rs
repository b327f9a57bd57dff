//! Tests of the ONNX adapter: byte-identical round trips of the shared models, a generated
//! model using every data placement, and malformed inputs.

use std::fs;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use proptest::prelude::*;
use prost::Message;
use pwlc_models::onnx::{self, proto};
use pwlc_models::{DType, Tensor};
use tempfile::TempDir;

use proto::tensor_proto::{DataLocation, DataType};
use proto::{
    AttributeProto, GraphProto, ModelProto, NodeProto, StringStringEntryProto, TensorProto,
};

// ---------------------------------------------------------------- helpers

/// The shared models folder, or `None` (with a message) when it is absent.
fn shared_models() -> Option<Vec<PathBuf>> {
    let root = std::env::var_os("PWLC_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"));
    let Ok(entries) = fs::read_dir(root.join("models")) else {
        eprintln!("skipped: no shared models in {}", root.display());
        return None;
    };
    let mut models: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "onnx"))
        .collect();
    models.sort();
    Some(models)
}

/// Changes the lowest mantissa bit of every element of float tensors.
fn perturb(tensor: &Tensor) -> Tensor {
    let size = tensor.dtype.size();
    let mut data = tensor.data.to_vec();
    if tensor.dtype.is_float() {
        for element in data.chunks_exact_mut(size) {
            element[0] ^= 1;
        }
    }
    Tensor {
        data: Bytes::from(data),
        ..tensor.clone()
    }
}

/// Clears the data fields of every initializer of `graph` and its subgraphs.
fn clear_graph_data(graph: &mut GraphProto) {
    for tensor in &mut graph.initializer {
        tensor.raw_data = None;
        tensor.float_data.clear();
        tensor.int32_data.clear();
        tensor.int64_data.clear();
        tensor.double_data.clear();
        tensor.uint64_data.clear();
    }
    for node in &mut graph.node {
        for attribute in &mut node.attribute {
            attribute.g.iter_mut().for_each(clear_graph_data);
            attribute.graphs.iter_mut().for_each(clear_graph_data);
        }
    }
}

/// The model in `bytes` with its initializers' data cleared.
fn structure(bytes: &[u8]) -> ModelProto {
    let mut model = ModelProto::decode(bytes).expect("valid model");
    model.graph.iter_mut().for_each(clear_graph_data);
    model
}

fn write_new(dir: &Path, layout: &[u8], tensors: &[Tensor]) -> PathBuf {
    let out = dir.join("out.onnx");
    onnx::write(layout, tensors, &out).expect("write");
    out
}

// ---------------------------------------------------------------- shared models

#[test]
fn shared_models_come_back_byte_identical() {
    let Some(models) = shared_models() else {
        return;
    };
    for model in models {
        let (tensors, layout) = onnx::read(&model).expect("read");
        let dir = TempDir::new().unwrap();
        let out = write_new(dir.path(), &layout, &tensors);
        let stored: usize = tensors.iter().map(|t| t.data.len()).sum();
        eprintln!(
            "{}: {} tensors, {stored} tensor bytes, layout {} bytes",
            model.display(),
            tensors.len(),
            layout.len()
        );
        assert!(!tensors.is_empty());
        assert!(
            fs::read(&model).unwrap() == fs::read(&out).unwrap(),
            "{}",
            model.display()
        );
    }
}

#[test]
fn shared_models_take_new_values_and_keep_their_structure() {
    let Some(models) = shared_models() else {
        return;
    };
    for model in models {
        let (tensors, layout) = onnx::read(&model).expect("read");
        let changed: Vec<Tensor> = tensors.iter().map(perturb).collect();
        let dir = TempDir::new().unwrap();
        let out = write_new(dir.path(), &layout, &changed);
        let (again, _) = onnx::read(&out).expect("read back");
        assert!(again == changed, "{}: values differ", model.display());
        assert!(changed.iter().zip(&tensors).any(|(c, t)| c.data != t.data));
        let original = structure(&fs::read(&model).unwrap());
        assert!(
            original == structure(&fs::read(&out).unwrap()),
            "{}",
            model.display()
        );
    }
}

// ---------------------------------------------------------------- a generated model

fn tensor(name: &str, data_type: DataType, dims: &[i64]) -> TensorProto {
    TensorProto {
        name: Some(name.to_string()),
        data_type: Some(data_type as i32),
        dims: dims.to_vec(),
        ..Default::default()
    }
}

fn raw_f32(name: &str, values: &[f32]) -> TensorProto {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    TensorProto {
        raw_data: Some(Bytes::from(bytes)),
        ..tensor(name, DataType::Float, &[values.len() as i64])
    }
}

fn external(name: &str, location: &str, offset: u64, elements: i64) -> TensorProto {
    let entry = |key: &str, value: String| StringStringEntryProto {
        key: Some(key.to_string()),
        value: Some(value),
    };
    TensorProto {
        data_location: Some(DataLocation::External as i32),
        external_data: vec![
            entry("location", location.to_string()),
            entry("offset", offset.to_string()),
            entry("length", (4 * elements).to_string()),
        ],
        ..tensor(name, DataType::Float, &[elements])
    }
}

fn graph_attribute(name: &str, graph: GraphProto) -> AttributeProto {
    AttributeProto {
        name: Some(name.to_string()),
        r#type: Some(proto::attribute_proto::AttributeType::Graph as i32),
        g: Some(graph),
        ..Default::default()
    }
}

/// A model with initializers in every placement: float_data, raw_data, int32_data (f16),
/// int64_data, double_data, external data, a string tensor, and a subgraph with its own
/// initializers (one with a name already used in the main graph).
fn generated_model(location: &str) -> ModelProto {
    let then_branch = GraphProto {
        name: Some("then".into()),
        initializer: vec![
            raw_f32("sub_raw", &[0.5, -0.5]),
            TensorProto {
                int64_data: vec![7, 8, 9],
                ..tensor("sub_i64", DataType::Int64, &[3])
            },
            raw_f32("raw", &[9.0]),
        ],
        ..Default::default()
    };
    let if_node = NodeProto {
        op_type: Some("If".into()),
        input: vec!["cond".into()],
        output: vec!["y".into()],
        attribute: vec![graph_attribute("then_branch", then_branch)],
        ..Default::default()
    };
    let initializer = vec![
        TensorProto {
            float_data: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            ..tensor("float_data", DataType::Float, &[2, 3])
        },
        raw_f32("raw", &[0.25, 0.5, 0.75, 1.0]),
        TensorProto {
            int32_data: vec![1, 2, 0x3c00],
            ..tensor("f16", DataType::Float16, &[3])
        },
        TensorProto {
            int64_data: vec![1, -1],
            ..tensor("i64", DataType::Int64, &[2])
        },
        TensorProto {
            double_data: vec![0.125, 1e300],
            ..tensor("f64", DataType::Double, &[2])
        },
        TensorProto {
            string_data: vec![Bytes::from_static(b"kept")],
            ..tensor("strings", DataType::String, &[1])
        },
        external("ext", location, 8, 5),
    ];
    ModelProto {
        ir_version: Some(9),
        producer_name: Some("pwlc-test".into()),
        graph: Some(GraphProto {
            name: Some("main".into()),
            node: vec![if_node],
            initializer,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Writes the generated model and its side file into `dir`; returns the model path.
fn write_generated(dir: &Path, location: &str) -> PathBuf {
    let side: Vec<u8> = (0u8..8)
        .chain(
            [10.0f32, 20.0, 30.0, 40.0, 50.0]
                .iter()
                .flat_map(|v| v.to_le_bytes()),
        )
        .chain([0xee; 3])
        .collect();
    fs::create_dir_all(dir.join("weights")).unwrap();
    fs::write(dir.join("weights/ext.bin"), side).unwrap();
    let path = dir.join("model.onnx");
    fs::write(&path, generated_model(location).encode_to_vec()).unwrap();
    path
}

fn f32s(tensor: &Tensor) -> Vec<f32> {
    let chunks = tensor.data.chunks_exact(4);
    chunks
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

#[test]
fn generated_model_exposes_every_placement() {
    let dir = TempDir::new().unwrap();
    let path = write_generated(dir.path(), "weights/ext.bin");
    let (tensors, _) = onnx::read(&path).expect("read");
    let summary: Vec<(&str, DType, &[u64])> = tensors
        .iter()
        .map(|t| (t.name.as_str(), t.dtype, &t.shape[..]))
        .collect();
    assert_eq!(
        summary,
        [
            ("sub_raw", DType::F32, &[2][..]),
            ("sub_i64", DType::I64, &[3]),
            ("raw", DType::F32, &[1]),
            ("float_data", DType::F32, &[2, 3]),
            ("raw#2", DType::F32, &[4]),
            ("f16", DType::F16, &[3]),
            ("i64", DType::I64, &[2]),
            ("f64", DType::F64, &[2]),
            ("ext", DType::F32, &[5]),
        ]
    );
    assert_eq!(f32s(&tensors[3]), [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    assert_eq!(f32s(&tensors[8]), [10.0, 20.0, 30.0, 40.0, 50.0]);
    assert_eq!(&tensors[5].data[..], &[1, 0, 2, 0, 0x00, 0x3c]);
    assert_eq!(
        &tensors[6].data[..],
        [1i64.to_le_bytes(), (-1i64).to_le_bytes()].concat()
    );
}

/// Replaces the values of the generated model's tensors (by position, see above).
fn new_values(
    tensors: &[Tensor],
    f16_bits: [u16; 3],
    i64s: [i64; 2],
    sub_i64s: [i64; 3],
) -> Vec<Tensor> {
    let mut out: Vec<Tensor> = tensors.iter().map(perturb).collect();
    let le = |bytes: Vec<u8>| Bytes::from(bytes);
    out[1].data = le(sub_i64s.iter().flat_map(|v| v.to_le_bytes()).collect());
    out[5].data = le(f16_bits.iter().flat_map(|v| v.to_le_bytes()).collect());
    out[6].data = le(i64s.iter().flat_map(|v| v.to_le_bytes()).collect());
    out
}

#[test]
fn generated_model_round_trips() {
    let src = TempDir::new().unwrap();
    let path = write_generated(src.path(), "./weights/ext.bin");
    let (tensors, layout) = onnx::read(&path).expect("read");

    let out_dir = TempDir::new().unwrap();
    let out = write_new(out_dir.path(), &layout, &tensors);
    assert!(fs::read(&path).unwrap() == fs::read(&out).unwrap());
    let side = |dir: &Path| fs::read(dir.join("weights/ext.bin")).unwrap();
    assert_eq!(side(src.path()), side(out_dir.path()));

    let changed = new_values(
        &tensors,
        [0xffff, 0x8000, 0],
        [i64::MIN, 300],
        [-5, 1 << 40, 0],
    );
    let out = write_new(out_dir.path(), &layout, &changed);
    let (again, _) = onnx::read(&out).expect("read back");
    assert!(again == changed);
    assert_eq!(
        structure(&fs::read(&path).unwrap()),
        structure(&fs::read(&out).unwrap())
    );
    let model = ModelProto::decode(&fs::read(&out).unwrap()[..]).unwrap();
    let graph = model.graph.unwrap();
    assert_eq!(graph.initializer[2].int32_data, [0xffff, 0x8000, 0]);
    assert_eq!(
        graph.initializer[5].string_data,
        [Bytes::from_static(b"kept")]
    );
    let side_out = side(out_dir.path());
    assert_eq!(
        &side_out[..8],
        &side(src.path())[..8],
        "bytes around the tensor are kept"
    );
    assert_eq!(&side_out[28..], &[0xee; 3]);
}

#[test]
fn only_the_side_file_changes_when_only_external_data_does() {
    let src = TempDir::new().unwrap();
    let path = write_generated(src.path(), "weights/ext.bin");
    let (mut tensors, layout) = onnx::read(&path).expect("read");
    tensors[8] = perturb(&tensors[8]);
    let out_dir = TempDir::new().unwrap();
    let out = write_new(out_dir.path(), &layout, &tensors);
    assert!(fs::read(&path).unwrap() == fs::read(&out).unwrap());
    assert_eq!(onnx::read(&out).unwrap().0[8], tensors[8]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Varint-stored tensors take any new values, whatever the change in their encoded size.
    #[test]
    fn varint_tensors_take_any_values(f16_bits: [u16; 3], i64s: [i64; 2], sub_i64s: [i64; 3]) {
        let src = TempDir::new().unwrap();
        let path = write_generated(src.path(), "weights/ext.bin");
        let (tensors, layout) = onnx::read(&path).unwrap();
        let changed = new_values(&tensors, f16_bits, i64s, sub_i64s);
        let out_dir = TempDir::new().unwrap();
        let out = write_new(out_dir.path(), &layout, &changed);
        let (again, _) = onnx::read(&out).unwrap();
        prop_assert!(again == changed);
        prop_assert_eq!(structure(&fs::read(&path).unwrap()), structure(&fs::read(&out).unwrap()));
    }

    /// Damaged files give an error or a model, never a panic.
    #[test]
    fn damaged_files_never_panic(cut in 0usize..2000, flips in proptest::collection::vec((0usize..2000, any::<u8>()), 0..4)) {
        let dir = TempDir::new().unwrap();
        let path = write_generated(dir.path(), "weights/ext.bin");
        let mut bytes = fs::read(&path).unwrap();
        for (at, value) in flips {
            let len = bytes.len();
            bytes[at % len] = value;
        }
        bytes.truncate(cut.min(bytes.len()));
        fs::write(&path, &bytes).unwrap();
        let _ = onnx::read(&path);
    }

    /// Damaged layouts give an error, never a panic or a write outside the output folder.
    #[test]
    fn damaged_layouts_never_panic(flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4)) {
        let dir = TempDir::new().unwrap();
        let path = write_generated(dir.path(), "weights/ext.bin");
        let (tensors, mut layout) = onnx::read(&path).unwrap();
        for (at, value) in flips {
            let len = layout.len();
            layout[at % len] = value;
        }
        let out_dir = TempDir::new().unwrap();
        let _ = onnx::write(&layout, &tensors, &out_dir.path().join("sub/out.onnx"));
    }
}

// ---------------------------------------------------------------- errors

/// Reads `path`, expecting an error that names the file and contains `words`.
fn expect_error(path: &Path, words: &str) {
    let message = match onnx::read(path) {
        Ok(_) => panic!("{} was read", path.display()),
        Err(e) => e.to_string(),
    };
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains(words), "{message}");
    assert!(!message.contains('\n'), "{message}");
}

#[test]
fn truncated_file_is_an_error() {
    let dir = TempDir::new().unwrap();
    let path = write_generated(dir.path(), "weights/ext.bin");
    let bytes = fs::read(&path).unwrap();
    fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    expect_error(&path, "not a valid ONNX model");
}

#[test]
fn garbage_is_an_error() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("garbage.onnx");
    fs::write(&path, b"\xff\xff\xff\xff garbage that is no protobuf").unwrap();
    expect_error(&path, "not a valid ONNX model");
    fs::write(&path, b"").unwrap();
    expect_error(&path, "no graph");
}

#[test]
fn external_data_outside_the_folder_is_an_error() {
    for location in [
        "../weights/ext.bin",
        "/etc/hostname",
        "weights/../../x.bin",
        "",
    ] {
        let dir = TempDir::new().unwrap();
        let path = write_generated(dir.path(), location);
        expect_error(&path, "tensor 'ext'");
    }
    let dir = TempDir::new().unwrap();
    expect_error(
        &write_generated(dir.path(), "../ext.bin"),
        "outside the model's folder",
    );
}

#[test]
fn missing_or_short_external_data_is_an_error() {
    let dir = TempDir::new().unwrap();
    let path = write_generated(dir.path(), "weights/missing.bin");
    expect_error(&path, "external data file 'weights/missing.bin'");
    fs::write(dir.path().join("weights/missing.bin"), [0u8; 20]).unwrap();
    expect_error(&path, "runs past the end");
}

fn model_with(initializer: Vec<TensorProto>) -> ModelProto {
    ModelProto {
        graph: Some(GraphProto {
            initializer,
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn sizes_that_do_not_match_the_shape_are_errors() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("bad.onnx");
    let cases = [
        (
            raw_f32("short", &[1.0, 2.0]),
            "holds 8 bytes but its shape needs 12",
        ),
        (
            TensorProto {
                dims: vec![1 << 40, 1 << 40],
                ..raw_f32("huge", &[1.0])
            },
            "too large",
        ),
        (
            TensorProto {
                dims: vec![-1],
                ..raw_f32("negative", &[1.0])
            },
            "negative dimension",
        ),
        (tensor("empty", DataType::Float, &[2]), "no data"),
        (
            TensorProto {
                int32_data: vec![1],
                ..tensor("wrong", DataType::Float, &[1])
            },
            "int32_data",
        ),
    ];
    for (mut proto, words) in cases {
        if proto.name() == "short" {
            proto.dims = vec![3];
        }
        fs::write(&path, model_with(vec![proto]).encode_to_vec()).unwrap();
        expect_error(&path, words);
    }
}

#[test]
fn deep_nesting_is_refused() {
    let mut graph = GraphProto::default();
    for _ in 0..40 {
        let node = NodeProto {
            attribute: vec![graph_attribute("body", graph)],
            ..Default::default()
        };
        graph = GraphProto {
            node: vec![node],
            ..Default::default()
        };
    }
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("deep.onnx");
    let model = ModelProto {
        graph: Some(graph),
        ..Default::default()
    };
    fs::write(&path, model.encode_to_vec()).unwrap();
    expect_error(&path, "recursion limit");
}

#[test]
fn write_refuses_other_tensors() {
    let dir = TempDir::new().unwrap();
    let path = write_generated(dir.path(), "weights/ext.bin");
    let (mut tensors, layout) = onnx::read(&path).unwrap();
    let out = dir.path().join("out.onnx");
    tensors[0].shape = vec![1, 2];
    let error = onnx::write(&layout, &tensors, &out)
        .unwrap_err()
        .to_string();
    assert!(error.contains("tensor 'sub_raw'"), "{error}");
    tensors.pop();
    assert!(onnx::write(&layout, &tensors, &out).is_err());
    assert!(onnx::write(b"\x08\x07", &[], &out)
        .unwrap_err()
        .to_string()
        .contains("version"));
    assert!(!out.exists());
}
