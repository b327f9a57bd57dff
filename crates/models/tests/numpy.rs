//! Tests of the NumPy adapters: the committed fixtures (written by numpy), arrays written with
//! npyz in every byte and axis order, value changes, fresh archives and malformed files.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use npyz::{Order, WriteOptions, WriterBuilder};
use proptest::prelude::*;
use pwlc_models::{numpy, DType, Tensor};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn f64_values(data: &[u8]) -> Vec<f64> {
    data.chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn i16_values(data: &[u8]) -> Vec<i16> {
    data.chunks_exact(2)
        .map(|c| i16::from_le_bytes([c[0], c[1]]))
        .collect()
}

fn tensor(name: &str, dtype: DType, shape: Vec<u64>, data: Vec<u8>) -> Tensor {
    Tensor {
        name: name.into(),
        dtype,
        shape,
        data: Bytes::from(data),
    }
}

/// `arange(12).reshape(3, 4) - 5.5`, as in the fixtures.
fn b_values() -> Vec<f64> {
    (0..12).map(|i| i as f64 - 5.5).collect()
}

/// Checks the five arrays of `mixed*.npz`, converted to little-endian C order.
fn check_mixed(tensors: &[Tensor]) {
    let summary: Vec<_> = tensors
        .iter()
        .map(|t| (t.name.as_str(), t.dtype, t.shape.clone()))
        .collect();
    assert_eq!(
        summary,
        [
            ("a", DType::F32, vec![2, 3]),
            ("b", DType::F64, vec![3, 4]),
            ("c", DType::I16, vec![3, 4]),
            ("d", DType::Bool, vec![3]),
            ("e", DType::Opaque, vec![16]),
        ]
    );
    assert_eq!(f64_values(&tensors[1].data), b_values());
    let c: Vec<i16> = (0..12).map(|i| i * 7).collect();
    assert_eq!(i16_values(&tensors[2].data), c);
    assert_eq!(tensors[3].data.as_ref(), [1, 0, 1]);
}

#[test]
fn npz_fixtures_read_converted_and_rewrite_with_the_same_layout() {
    for name in ["mixed.npz", "mixed_deflated.npz"] {
        let (tensors, layout) = numpy::read_npz(&fixture(name)).unwrap();
        check_mixed(&tensors);
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join(name);
        numpy::write_npz(&layout, &tensors, &out).unwrap();
        let (again, layout_again) = numpy::read_npz(&out).unwrap();
        assert_eq!(again, tensors, "{name}");
        assert_eq!(
            layout_again, layout,
            "{name}: members, headers or compression changed"
        );
    }
}

#[test]
fn npz_changed_values_are_stored_in_the_original_orders() {
    let (mut tensors, layout) = numpy::read_npz(&fixture("mixed.npz")).unwrap();
    let b: Vec<f64> = b_values().iter().map(|v| v * 2.0).collect();
    tensors[1].data = b
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect::<Vec<_>>()
        .into();
    let c: Vec<i16> = (0..12).map(|i| -i).collect();
    tensors[2].data = c
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect::<Vec<_>>()
        .into();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.npz");
    numpy::write_npz(&layout, &tensors, &out).unwrap();
    let (again, _) = numpy::read_npz(&out).unwrap();
    assert_eq!(f64_values(&again[1].data), b);
    assert_eq!(i16_values(&again[2].data), c);
    assert_eq!(again, tensors);
}

#[test]
fn npy_fixture_converts_big_endian_fortran_and_round_trips_byte_identical() {
    let path = fixture("fortran_be.npy");
    let (tensors, layout) = numpy::read_npy(&path).unwrap();
    assert_eq!(tensors.len(), 1);
    assert_eq!(tensors[0].name, "fortran_be");
    assert_eq!(
        (tensors[0].dtype, tensors[0].shape.clone()),
        (DType::F64, vec![3, 4])
    );
    assert_eq!(f64_values(&tensors[0].data), b_values());
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.npy");
    numpy::write_npy(&layout, &tensors, &out).unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&path).unwrap());
}

#[test]
fn fresh_npz_holds_the_tensors_and_refuses_bf16() {
    let tensors = vec![
        tensor("w", DType::F32, vec![2], vec![0, 0, 128, 63, 0, 0, 0, 64]),
        tensor(
            "layer/ids",
            DType::I64,
            vec![1, 1],
            vec![3, 0, 0, 0, 0, 0, 0, 0],
        ),
        tensor("mask", DType::Bool, vec![], vec![1]),
        tensor("u", DType::U16, vec![0], vec![]),
    ];
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("fresh.npz");
    numpy::write_npz_fresh(&tensors, &out).unwrap();
    assert_eq!(numpy::read_npz(&out).unwrap().0, tensors);
    let bf16 = vec![tensor("h", DType::BF16, vec![1], vec![0, 0])];
    let err = numpy::write_npz_fresh(&bf16, &out).unwrap_err().to_string();
    assert!(err.contains("'h'") && err.contains("bf16"), "{err}");
    let twice = vec![tensors[0].clone(), tensors[0].clone()];
    assert!(numpy::write_npz_fresh(&twice, &out).is_err());
}

#[test]
fn write_rejects_tensors_that_do_not_match_the_layout() {
    let (tensors, layout) = numpy::read_npz(&fixture("mixed.npz")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.npz");
    let mut wrong = tensors.clone();
    wrong[2].dtype = DType::I32;
    let err = numpy::write_npz(&layout, &wrong, &out)
        .unwrap_err()
        .to_string();
    assert!(err.contains("'c'") && err.contains("dtype"), "{err}");
    let err = numpy::write_npz(&layout, &tensors[1..], &out)
        .unwrap_err()
        .to_string();
    assert!(err.contains("5 arrays but 4"), "{err}");
    let (npy, npy_layout) = numpy::read_npy(&fixture("fortran_be.npy")).unwrap();
    let err = numpy::write_npy(&npy_layout, &tensors, &out).unwrap_err();
    assert!(err.to_string().contains("one tensor"), "{err}");
    let mut short = npy.clone();
    short[0].data = short[0].data.slice(8..);
    assert!(numpy::write_npy(&npy_layout, &short, &out).is_err());
    assert!(!out.exists());
}

/// A `.npy` header (from npyz) for `descr`, `shape` and `order`.
fn npy_header(descr: &str, shape: &[u64], order: Order) -> Vec<u8> {
    let mut header = Vec::new();
    WriteOptions::new_header_only()
        .dtype(npyz::DType::Plain(descr.parse().unwrap()))
        .shape(shape)
        .order(order)
        .writer(&mut header)
        .write_header_only()
        .unwrap();
    header
}

#[test]
fn malformed_npy_files_are_errors_naming_the_file() {
    let good = std::fs::read(fixture("fortran_be.npy")).unwrap();
    let mut huge = b"\x93NUMPY\x02\x00".to_vec();
    huge.extend(u32::MAX.to_le_bytes());
    let object = [npy_header("|O", &[2], Order::C), vec![0; 16]].concat();
    let mut version = good.clone();
    version[6] = 9;
    let cases: [(&[u8], &str); 8] = [
        (b"", "missing \\x93NUMPY magic"),
        (b"PK\x03\x04 not numpy at all", "missing \\x93NUMPY magic"),
        (&good[..9], "file ends inside the .npy header"),
        (&good[..100], "file ends inside the .npy header"),
        (&huge, "header claims 4294967295 bytes"),
        (&version, "unsupported .npy format version 9"),
        (&object, "object arrays"),
        (
            &good[..good.len() - 1],
            "95 data bytes, the header needs 96",
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.npy");
    for (bytes, reason) in cases {
        std::fs::write(&path, bytes).unwrap();
        let err = numpy::read_npy(&path).expect_err(reason).to_string();
        assert!(
            err.contains("bad.npy") && err.contains(reason),
            "{reason}: {err}"
        );
    }
    let mut bad_text = good.clone();
    bad_text[12..20].copy_from_slice(b"not dict");
    std::fs::write(&path, &bad_text).unwrap();
    let err = numpy::read_npy(&path).unwrap_err().to_string();
    assert!(err.contains("bad .npy header"), "{err}");
}

#[test]
fn malformed_npz_files_are_errors_naming_the_file() {
    let good = std::fs::read(fixture("mixed.npz")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.npz");
    for (what, bytes) in [
        ("empty", &b""[..]),
        ("garbage", b"\x93NUMPY not a zip"),
        ("truncated", &good[..good.len() / 2]),
    ] {
        std::fs::write(&path, bytes).unwrap();
        let err = numpy::read_npz(&path).expect_err(what).to_string();
        assert!(err.contains("bad.npz"), "{what}: {err}");
    }
}

/// Reference conversion: the C-order little-endian bytes of an array whose stored bytes are
/// `stored` (elements of `size` bytes, big-endian if `big`, Fortran order if `fortran`).
fn to_c_order(stored: &[u8], shape: &[u64], size: usize, big: bool, fortran: bool) -> Vec<u8> {
    let count: u64 = shape.iter().product();
    let mut out = Vec::with_capacity(stored.len());
    for c_index in 0..count {
        // Multi-index of `c_index` in C order, then its linear index in the stored order.
        let mut rest = c_index;
        let mut idx = vec![0u64; shape.len()];
        for axis in (0..shape.len()).rev() {
            idx[axis] = rest % shape[axis];
            rest /= shape[axis];
        }
        let mut linear = 0;
        let axes: Vec<usize> = match fortran {
            true => (0..shape.len()).rev().collect(),
            false => (0..shape.len()).collect(),
        };
        for axis in axes {
            linear = linear * shape[axis] + idx[axis];
        }
        let item = &stored[linear as usize * size..(linear as usize + 1) * size];
        match big {
            true => out.extend(item.iter().rev()),
            false => out.extend(item),
        }
    }
    out
}

fn descr_strategy() -> impl Strategy<Value = (&'static str, DType, usize, bool)> {
    prop::sample::select(vec![
        ("<f4", DType::F32, 4, false),
        (">f4", DType::F32, 4, true),
        (">f8", DType::F64, 8, true),
        ("<f2", DType::F16, 2, false),
        (">i2", DType::I16, 2, true),
        ("<u8", DType::U64, 8, false),
        ("|u1", DType::U8, 1, false),
        (">i4", DType::I32, 4, true),
    ])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// Arrays in any byte order and axis order read as C-order little-endian tensors and
    /// write back byte-identical.
    #[test]
    fn npy_orders_convert_and_round_trip(
        (descr, dtype, size, big) in descr_strategy(),
        shape in prop::collection::vec(0u64..5, 0..5),
        fortran in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let order = if fortran { Order::Fortran } else { Order::C };
        let count: u64 = shape.iter().product();
        let stored: Vec<u8> = (0..count * size as u64)
            .map(|i| (i.wrapping_mul(seed | 1) >> 3) as u8)
            .collect();
        let file = [npy_header(descr, &shape, order), stored.clone()].concat();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("arr.npy");
        std::fs::write(&path, &file).unwrap();
        let (tensors, layout) = numpy::read_npy(&path).unwrap();
        prop_assert_eq!(tensors[0].dtype, dtype);
        prop_assert_eq!(&tensors[0].shape, &shape);
        let expected = to_c_order(&stored, &shape, size, big, fortran && shape.len() > 1);
        prop_assert_eq!(tensors[0].data.as_ref(), expected.as_slice());
        let out = dir.path().join("out.npy");
        numpy::write_npy(&layout, &tensors, &out).unwrap();
        prop_assert_eq!(std::fs::read(&out).unwrap(), file);
    }

    /// Corrupted archives and arrays never panic.
    #[test]
    fn corrupted_files_never_panic(
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        archive in any::<bool>(),
    ) {
        let name = if archive { "mixed.npz" } else { "fortran_be.npy" };
        let mut bytes = std::fs::read(fixture(name)).unwrap();
        for (at, value) in flips {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, &bytes).unwrap();
        let _ = if archive { numpy::read_npz(&path) } else { numpy::read_npy(&path) };
    }
}
