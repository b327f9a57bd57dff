//! Tests of the safetensors adapter: the committed fixture (written by the Python package),
//! files written with the `safetensors` crate, value changes, fresh files and malformed files.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use proptest::prelude::*;
use pwlc_models::{safetensors as st, DType, Tensor};
use safetensors::tensor::TensorView;
use safetensors::Dtype;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Serializes `(name, dtype, shape, bytes)` tensors with the `safetensors` crate into `path`.
fn write_with_crate(
    path: &Path,
    tensors: &[(String, Dtype, Vec<usize>, Vec<u8>)],
    metadata: Option<HashMap<String, String>>,
) {
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(name, dtype, shape, data)| {
            (
                name.clone(),
                TensorView::new(*dtype, shape.clone(), data).unwrap(),
            )
        })
        .collect();
    std::fs::write(path, safetensors::serialize(views, metadata).unwrap()).unwrap();
}

fn sample_tensors() -> Vec<(String, Dtype, Vec<usize>, Vec<u8>)> {
    vec![
        ("a.weight".into(), Dtype::F32, vec![2, 2], (0..16).collect()),
        (
            "b.bias".into(),
            Dtype::BF16,
            vec![3],
            vec![1, 2, 3, 4, 5, 6],
        ),
        ("c.fp8".into(), Dtype::F8_E4M3, vec![2, 3], vec![9; 6]),
        ("d.ids".into(), Dtype::I64, vec![1], vec![7; 8]),
        ("e.empty".into(), Dtype::F16, vec![0, 4], vec![]),
    ]
}

#[test]
fn fixture_reads_and_round_trips_byte_identical() {
    let path = fixture("small.safetensors");
    let (tensors, layout) = st::read(&path).unwrap();
    let by_name: HashMap<_, _> = tensors.iter().map(|t| (t.name.as_str(), t)).collect();
    let w = by_name["w"];
    assert_eq!((w.dtype, w.shape.clone()), (DType::F32, vec![2, 3]));
    let values: Vec<f32> = w
        .data
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(values, [0.0, 0.25, 0.5, 0.75, 1.0, 1.25]);
    assert_eq!(by_name["idx"].dtype, DType::I64);
    assert_eq!(by_name["flag"].data.as_ref(), [1, 0, 1]);
    assert!(String::from_utf8_lossy(&layout).contains("\"note\":\"fixture\""));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.safetensors");
    st::write(&layout, &tensors, &out).unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&path).unwrap());
}

#[test]
fn unsupported_dtypes_are_opaque_bytes_and_keep_their_header() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.safetensors");
    let metadata = HashMap::from([("k".to_string(), "v".to_string())]);
    write_with_crate(&path, &sample_tensors(), Some(metadata));
    let (tensors, layout) = st::read(&path).unwrap();
    let fp8 = tensors.iter().find(|t| t.name == "c.fp8").unwrap();
    assert_eq!((fp8.dtype, fp8.shape.clone()), (DType::Opaque, vec![6]));
    let out = dir.path().join("out.safetensors");
    st::write(&layout, &tensors, &out).unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&path).unwrap());
    let reread = safetensors::SafeTensors::deserialize(&std::fs::read(&out).unwrap())
        .unwrap()
        .tensor("c.fp8")
        .unwrap()
        .dtype();
    assert_eq!(reread, Dtype::F8_E4M3);
}

#[test]
fn changed_values_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.safetensors");
    write_with_crate(&path, &sample_tensors(), None);
    let (mut tensors, layout) = st::read(&path).unwrap();
    for t in &mut tensors {
        t.data = Bytes::from(t.data.iter().map(|b| b.wrapping_add(1)).collect::<Vec<_>>());
    }
    let out = dir.path().join("out.safetensors");
    st::write(&layout, &tensors, &out).unwrap();
    let (again, layout_again) = st::read(&out).unwrap();
    assert_eq!(again, tensors);
    assert_eq!(layout_again, layout);
}

#[test]
fn write_rejects_tensors_that_do_not_match_the_layout() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.safetensors");
    write_with_crate(&path, &sample_tensors(), None);
    let (tensors, layout) = st::read(&path).unwrap();
    let out = dir.path().join("out.safetensors");
    let mut wrong = tensors.clone();
    wrong[0].data = Bytes::from_static(&[0; 3]);
    let err = st::write(&layout, &wrong, &out).unwrap_err().to_string();
    assert!(
        err.contains("out.safetensors") && err.contains(&tensors[0].name),
        "{err}"
    );
    let mut renamed = tensors.clone();
    renamed[1].name = "other".into();
    assert!(st::write(&layout, &renamed, &out).is_err());
    let err = st::write(&layout[..layout.len() - 1], &tensors, &out).unwrap_err();
    assert!(err.to_string().contains("bad safetensors layout"), "{err}");
    assert!(!out.exists());
}

#[test]
fn fresh_files_hold_the_tensors() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("fresh.safetensors");
    let tensors = vec![
        tensor("x", DType::U8, vec![3], vec![1, 2, 3]),
        tensor(
            "y",
            DType::F32,
            vec![1, 2],
            vec![0, 0, 128, 63, 0, 0, 0, 64],
        ),
        tensor("q", DType::Opaque, vec![5], vec![5; 5]),
    ];
    st::write_fresh(&tensors, &out).unwrap();
    let (mut read, _) = st::read(&out).unwrap();
    read.sort_by(|a, b| a.name.cmp(&b.name));
    let mut expected = tensors.clone();
    expected[2].dtype = DType::U8;
    expected.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(read, expected);
    let twice = vec![tensors[0].clone(), tensors[0].clone()];
    let err = st::write_fresh(&twice, &out).unwrap_err().to_string();
    assert!(err.contains("name used twice"), "{err}");
    let short = vec![tensor("s", DType::F32, vec![2], vec![0; 4])];
    assert!(st::write_fresh(&short, &out).is_err());
}

fn tensor(name: &str, dtype: DType, shape: Vec<u64>, data: Vec<u8>) -> Tensor {
    Tensor {
        name: name.into(),
        dtype,
        shape,
        data: Bytes::from(data),
    }
}

#[test]
fn malformed_files_are_errors_naming_the_file() {
    let good = std::fs::read(fixture("small.safetensors")).unwrap();
    let mut huge = good.clone();
    huge[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    let mut large = good.clone();
    large[..8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    let mut not_json = good.clone();
    not_json[8] = b'[';
    let cases: [(&str, &[u8]); 7] = [
        ("empty", b""),
        ("short prefix", &[1, 0, 0]),
        ("garbage", b"\x93NUMPY garbage garbage garbage"),
        ("huge header size", &huge),
        ("large header size", &large),
        ("not json", &not_json),
        ("truncated", &good[..good.len() - 3]),
    ];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.safetensors");
    for (what, bytes) in cases {
        std::fs::write(&path, bytes).unwrap();
        let err = st::read(&path).expect_err(what).to_string();
        assert!(err.contains("bad.safetensors"), "{what}: {err}");
    }
    let err = st::read(&dir.path().join("missing.safetensors")).unwrap_err();
    assert!(err.to_string().contains("missing.safetensors"), "{err}");
}

fn dtype_strategy() -> impl Strategy<Value = Dtype> {
    prop::sample::select(vec![
        Dtype::F32,
        Dtype::F16,
        Dtype::BF16,
        Dtype::F64,
        Dtype::I8,
        Dtype::I16,
        Dtype::I32,
        Dtype::I64,
        Dtype::U8,
        Dtype::U16,
        Dtype::U32,
        Dtype::U64,
        Dtype::BOOL,
        Dtype::F8_E5M2,
        Dtype::F8_E4M3,
        Dtype::C64,
    ])
}

/// A tensor of random dtype and shape (up to 3 axes of up to 4) with random bytes.
fn tensor_strategy() -> impl Strategy<Value = (Dtype, Vec<usize>, Vec<u8>)> {
    (dtype_strategy(), prop::collection::vec(0usize..5, 0..4)).prop_flat_map(|(dtype, shape)| {
        let len = shape.iter().product::<usize>() * dtype.bitsize() / 8;
        (
            Just(dtype),
            Just(shape),
            prop::collection::vec(any::<u8>(), len),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any file the crate writes reads with the right shapes and bytes, writes back
    /// byte-identical, and takes new values.
    #[test]
    fn crate_files_round_trip(
        specs in prop::collection::vec(tensor_strategy(), 0..6),
        with_metadata in any::<bool>(),
    ) {
        let tensors: Vec<_> = specs
            .into_iter()
            .enumerate()
            .map(|(i, (dtype, shape, data))| (format!("t{i}"), dtype, shape, data))
            .collect();
        let metadata = with_metadata.then(|| HashMap::from([("m".to_string(), "x".to_string())]));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.safetensors");
        write_with_crate(&path, &tensors, metadata);
        let (read, layout) = st::read(&path).unwrap();
        prop_assert_eq!(read.len(), tensors.len());
        for t in &read {
            let (_, dtype, shape, data) = tensors.iter().find(|s| s.0 == t.name).unwrap();
            prop_assert_eq!(t.data.as_ref(), data.as_slice());
            if t.dtype == DType::Opaque {
                prop_assert!(matches!(dtype, Dtype::F8_E5M2 | Dtype::F8_E4M3 | Dtype::C64));
                prop_assert_eq!(t.shape.clone(), vec![data.len() as u64]);
            } else {
                prop_assert_eq!(t.shape.clone(), shape.iter().map(|&d| d as u64).collect::<Vec<_>>());
            }
        }
        let out = dir.path().join("out.safetensors");
        st::write(&layout, &read, &out).unwrap();
        prop_assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&path).unwrap());

        let changed: Vec<Tensor> = read
            .iter()
            .map(|t| Tensor { data: t.data.iter().map(|b| !b).collect::<Vec<_>>().into(), ..t.clone() })
            .collect();
        st::write(&layout, &changed, &out).unwrap();
        prop_assert_eq!(st::read(&out).unwrap().0, changed);
    }

    /// Corrupted files never panic.
    #[test]
    fn corrupted_files_never_panic(flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6)) {
        let mut bytes = std::fs::read(fixture("small.safetensors")).unwrap();
        for (at, value) in flips {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.safetensors");
        std::fs::write(&path, &bytes).unwrap();
        if let Ok((tensors, layout)) = st::read(&path) {
            let out = dir.path().join("out.safetensors");
            st::write(&layout, &tensors, &out).unwrap();
            prop_assert_eq!(std::fs::read(&out).unwrap(), bytes);
        }
    }
}
