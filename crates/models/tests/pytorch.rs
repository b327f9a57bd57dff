//! Tests of the PyTorch adapter on the fixtures of `tests/fixtures/pytorch` (made by
//! `make_fixtures.py` there with PyTorch, which also wrote `manifest.tsv`: the tensors each
//! file must give, in order, with a CRC-32 of their bytes).

use std::path::{Path, PathBuf};

use bytes::Bytes;
use proptest::prelude::*;
use pwlc_models::{pytorch, DType, ModelError, Tensor};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/pytorch")
        .join(name)
}

/// The files whose round trips are tested.
const GOOD: [&str; 4] = ["plain.pth", "nested.pth", "shared.pth", "legacy.pth"];

/// One row of `manifest.tsv`.
#[derive(Debug, PartialEq)]
struct Expected {
    name: String,
    dtype: String,
    shape: Vec<u64>,
    crc: u32,
}

fn manifest(file: &str) -> Vec<Expected> {
    let text = std::fs::read_to_string(fixture("manifest.tsv")).expect("manifest.tsv");
    text.lines()
        .map(|line| line.split('\t').collect::<Vec<_>>())
        .filter(|cols| cols[0] == file)
        .map(|cols| Expected {
            name: cols[1].to_string(),
            dtype: cols[2].to_string(),
            shape: cols[3]
                .split(',')
                .filter(|d| !d.is_empty())
                .map(|d| d.parse().expect("dimension"))
                .collect(),
            crc: u32::from_str_radix(cols[4], 16).expect("crc"),
        })
        .collect()
}

fn described(tensors: &[Tensor]) -> Vec<Expected> {
    tensors
        .iter()
        .map(|t| Expected {
            name: t.name.clone(),
            dtype: t.dtype.name().to_string(),
            shape: t.shape.clone(),
            crc: crc32fast::hash(&t.data),
        })
        .collect()
}

fn read(path: &Path) -> (Vec<Tensor>, Vec<u8>) {
    pytorch::read(path).unwrap_or_else(|e| panic!("{e}"))
}

/// Doubles every float value; other types are left as they are.
fn doubled(tensor: &Tensor) -> Tensor {
    let mut out = tensor.clone();
    if tensor.dtype == DType::F64 {
        let values = tensor.data.chunks_exact(8).flat_map(|c| {
            let v = f64::from_le_bytes(c.try_into().expect("8 bytes"));
            (v * 2.0).to_le_bytes()
        });
        out.data = values.collect();
    } else if tensor.dtype.is_float() {
        let values = pwlc_codecs::dtype::to_f32(tensor.dtype, &tensor.data).expect("floats");
        let values: Vec<f32> = values.iter().map(|v| v * 2.0).collect();
        out.data = Bytes::from(pwlc_codecs::dtype::from_f32(tensor.dtype, &values).expect("bytes"));
    }
    out
}

#[test]
fn fixtures_read_as_the_manifest_says() {
    for file in GOOD {
        let (tensors, _) = read(&fixture(file));
        assert_eq!(described(&tensors), manifest(file), "{file}");
    }
}

#[test]
fn nested_checkpoint_keeps_key_paths_in_order() {
    let (tensors, _) = read(&fixture("nested.pth"));
    let names: Vec<&str> = tensors.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names[0], "state_dict.0.weight");
    assert_eq!(names[8], "state_dict.3.bias");
    assert_eq!(names[9], "optimizer.state.0.momentum_buffer");
    assert_eq!(names.len(), 15);
}

#[test]
fn shared_storages_are_exposed_whole_and_flat() {
    let (tensors, _) = read(&fixture("shared.pth"));
    let shapes: Vec<(&str, &[u64])> = tensors
        .iter()
        .map(|t| (t.name.as_str(), t.shape.as_slice()))
        .collect();
    assert_eq!(
        shapes,
        [
            ("base", &[24][..]),
            ("linear.weight", &[6][..]),
            ("tied.a", &[3][..]),
            ("own", &[2, 2][..]),
        ]
    );
}

#[test]
fn unchanged_round_trip_gives_the_same_tensors_and_layout() {
    let dir = tempfile::tempdir().expect("temp dir");
    for file in GOOD {
        let (tensors, layout) = read(&fixture(file));
        let out = dir.path().join(file);
        pytorch::write(&layout, &tensors, &out).unwrap_or_else(|e| panic!("{e}"));
        let (again, layout_again) = read(&out);
        assert_eq!(again, tensors, "{file}");
        assert_eq!(layout_again, layout, "{file}");
    }
}

#[test]
fn new_values_come_back() {
    let dir = tempfile::tempdir().expect("temp dir");
    for file in GOOD {
        let (tensors, layout) = read(&fixture(file));
        let changed: Vec<Tensor> = tensors.iter().map(doubled).collect();
        assert_ne!(changed, tensors, "{file} has float tensors");
        let out = dir.path().join(file);
        pytorch::write(&layout, &changed, &out).unwrap_or_else(|e| panic!("{e}"));
        let (again, _) = read(&out);
        assert_eq!(again, changed, "{file}");
    }
}

#[test]
fn legacy_file_is_written_back_as_zip() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (tensors, layout) = read(&fixture("legacy.pth"));
    let out = dir.path().join("legacy-out.pth");
    pytorch::write(&layout, &tensors, &out).unwrap_or_else(|e| panic!("{e}"));
    let head = std::fs::read(&out).expect("output");
    assert!(head.starts_with(b"PK\x03\x04"));
}

fn expect_file_error(err: ModelError, path: &Path, needle: &str) {
    let text = err.to_string();
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(text.contains(needle), "'{needle}' not in: {text}");
    assert!(!text.contains('\n'), "one line: {text}");
}

#[test]
fn unknown_global_is_refused() {
    let path = fixture("unknown_global.pth");
    let err = pytorch::read(&path).unwrap_err();
    expect_file_error(err, &path, "os.system");
}

#[test]
fn short_storage_names_file_and_tensor() {
    let path = fixture("short_storage.pth");
    let err = pytorch::read(&path).unwrap_err();
    assert!(
        matches!(&err, ModelError::Tensor { tensor, .. } if tensor == "0.weight"),
        "{err}"
    );
    expect_file_error(err, &path, "holds 10 bytes");
}

#[test]
fn tensor_reaching_past_its_storage_names_file_and_tensor() {
    let path = fixture("view_past_storage.pth");
    let err = pytorch::read(&path).unwrap_err();
    assert!(
        matches!(&err, ModelError::Tensor { tensor, .. } if tensor == "0.weight"),
        "{err}"
    );
    expect_file_error(err, &path, "reaches past the 100 elements");
}

#[test]
fn truncated_and_garbage_files_are_errors() {
    let dir = tempfile::tempdir().expect("temp dir");
    for file in GOOD {
        let bytes = std::fs::read(fixture(file)).expect("fixture");
        for cut in [0, 1, 4, 30, bytes.len() / 2, bytes.len() - 1] {
            let path = dir.path().join(format!("cut-{cut}-{file}"));
            std::fs::write(&path, &bytes[..cut]).expect("write");
            let err = pytorch::read(&path).expect_err("truncated file read");
            expect_file_error(err, &path, "");
        }
    }
    let path = dir.path().join("garbage.pth");
    std::fs::write(&path, b"this is not a checkpoint at all").expect("write");
    expect_file_error(pytorch::read(&path).unwrap_err(), &path, "not a PyTorch");
}

#[test]
fn write_refuses_tensors_that_do_not_match_the_layout() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("out.pth");
    let (tensors, layout) = read(&fixture("plain.pth"));

    let mut renamed = tensors.clone();
    renamed[1].name = "other".into();
    let err = pytorch::write(&layout, &renamed, &out).unwrap_err();
    assert!(
        matches!(&err, ModelError::Tensor { tensor, .. } if tensor == "other"),
        "{err}"
    );

    let mut short = tensors.clone();
    short[0].data = short[0].data.slice(..8);
    let err = pytorch::write(&layout, &short, &out).unwrap_err();
    assert!(
        matches!(&err, ModelError::Tensor { tensor, .. } if tensor == "0.weight"),
        "{err}"
    );

    let mut retyped = tensors.clone();
    retyped[0].dtype = DType::F16;
    assert!(pytorch::write(&layout, &retyped, &out).is_err());

    assert!(pytorch::write(&layout, &tensors[1..], &out).is_err());
    assert!(pytorch::write(b"not a layout", &tensors, &out).is_err());
    assert!(!out.exists(), "no output on failure");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Any byte changed or any cut gives a result or an error, never a panic.
    #[test]
    fn corrupted_files_never_panic(
        file in 0usize..GOOD.len(),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = std::fs::read(fixture(GOOD[file])).expect("fixture");
        let at = at.index(bytes.len());
        bytes[at] = byte;
        let keep = cut.index(bytes.len() + 1).max(bytes.len() / 2);
        bytes.truncate(keep);
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("mutated.pth");
        std::fs::write(&path, &bytes).expect("write");
        let _ = pytorch::read(&path);
    }
}

/// Round trip of a real checkpoint named by `PWLC_PTH` (for example torchvision's
/// MobileNetV2 weights, `mobilenet_v2-b0353104.pth`). With `PWLC_PTH_OUT` set to a folder, it
/// also leaves there `unchanged.pth` and `doubled.pth` (float values times 2) for a check with
/// PyTorch (`tests/check_pth.py`).
#[test]
#[ignore = "needs a real checkpoint: set PWLC_PTH"]
fn real_checkpoint_round_trips() {
    let Some(path) = std::env::var_os("PWLC_PTH").map(PathBuf::from) else {
        eprintln!("skipped: PWLC_PTH is not set");
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let out_dir = std::env::var_os("PWLC_PTH_OUT").map_or(dir.path().to_path_buf(), PathBuf::from);
    let (tensors, layout) = read(&path);
    let elements: u64 = tensors.iter().map(Tensor::element_count).sum();
    eprintln!(
        "{}: {} tensors, {elements} elements",
        path.display(),
        tensors.len()
    );
    assert!(!tensors.is_empty());

    let unchanged = out_dir.join("unchanged.pth");
    pytorch::write(&layout, &tensors, &unchanged).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(read(&unchanged).0, tensors);

    let changed: Vec<Tensor> = tensors.iter().map(doubled).collect();
    let doubled_path = out_dir.join("doubled.pth");
    pytorch::write(&layout, &changed, &doubled_path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(read(&doubled_path).0, changed);
}
