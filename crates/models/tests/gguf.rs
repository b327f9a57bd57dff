//! Tests of the GGUF adapter: the committed fixture (written by gguf-py), files built here,
//! value changes, and malformed files.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use proptest::prelude::*;
use pwlc_models::{gguf, DType, ModelError, Tensor};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn f32_values(data: &[u8]) -> Vec<f32> {
    data.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// What an adapter's `read` returns.
type ReadResult = Result<(Vec<Tensor>, Vec<u8>), ModelError>;

/// Writes `bytes` to a file in `dir` and reads it as GGUF.
fn read_bytes(dir: &Path, bytes: &[u8]) -> (PathBuf, ReadResult) {
    let path = dir.join("model.gguf");
    std::fs::write(&path, bytes).unwrap();
    let result = gguf::read(&path);
    (path, result)
}

/// Asserts that reading `bytes` fails with an error naming the file.
fn assert_rejected(bytes: &[u8], reason: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (path, result) = read_bytes(dir.path(), bytes);
    let err = result.expect_err(reason).to_string();
    assert!(
        err.contains(&path.display().to_string()),
        "{reason}: error does not name the file: {err}"
    );
    assert!(
        err.contains(reason),
        "expected '{reason}' in the error: {err}"
    );
}

/// Builds GGUF files for the tests (little-endian, version 3).
struct Builder {
    kvs: Vec<u8>,
    kv_count: u64,
    infos: Vec<u8>,
    tensor_count: u64,
    data: Vec<u8>,
    alignment: usize,
}

impl Builder {
    fn new() -> Self {
        Builder {
            kvs: Vec::new(),
            kv_count: 0,
            infos: Vec::new(),
            tensor_count: 0,
            data: Vec::new(),
            alignment: 32,
        }
    }

    fn string(out: &mut Vec<u8>, s: &str) {
        out.extend((s.len() as u64).to_le_bytes());
        out.extend(s.as_bytes());
    }

    /// Adds a key with a raw value of type `value_type`.
    fn kv(mut self, key: &str, value_type: u32, value: &[u8]) -> Self {
        Self::string(&mut self.kvs, key);
        self.kvs.extend(value_type.to_le_bytes());
        self.kvs.extend(value);
        self.kv_count += 1;
        self
    }

    fn alignment(self, alignment: u32) -> Self {
        let mut b = self.kv("general.alignment", 4, &alignment.to_le_bytes());
        b.alignment = alignment as usize;
        b
    }

    /// Adds a tensor (dims innermost first) at the next aligned offset.
    fn tensor(mut self, name: &str, dims: &[u64], ggml_type: u32, data: &[u8]) -> Self {
        while !self.data.len().is_multiple_of(self.alignment) {
            self.data.push(0);
        }
        Self::string(&mut self.infos, name);
        self.infos.extend((dims.len() as u32).to_le_bytes());
        dims.iter().for_each(|d| self.infos.extend(d.to_le_bytes()));
        self.infos.extend(ggml_type.to_le_bytes());
        self.infos.extend((self.data.len() as u64).to_le_bytes());
        self.data.extend(data);
        self.tensor_count += 1;
        self
    }

    fn build(&self) -> Vec<u8> {
        let mut out = b"GGUF".to_vec();
        out.extend(3u32.to_le_bytes());
        out.extend(self.tensor_count.to_le_bytes());
        out.extend(self.kv_count.to_le_bytes());
        out.extend(&self.kvs);
        out.extend(&self.infos);
        while !out.len().is_multiple_of(self.alignment) {
            out.push(0);
        }
        out.extend(&self.data);
        out
    }
}

/// A file with metadata of every kind, a plain, a half and a quantized tensor.
fn sample() -> Builder {
    let mut tokens = Vec::new();
    tokens.extend(8u32.to_le_bytes());
    tokens.extend(2u64.to_le_bytes());
    Builder::string(&mut tokens, "hello");
    Builder::string(&mut tokens, "world");
    let mut nested = Vec::new();
    nested.extend(9u32.to_le_bytes());
    nested.extend(1u64.to_le_bytes());
    nested.extend(5u32.to_le_bytes());
    nested.extend(2u64.to_le_bytes());
    nested.extend([1, 0, 0, 0, 2, 0, 0, 0]);
    let mut name = Vec::new();
    Builder::string(&mut name, "sample");
    Builder::new()
        .kv("general.name", 8, &name)
        .kv("x.f64", 12, &1.5f64.to_le_bytes())
        .kv("x.flag", 7, &[1])
        .kv("x.tokens", 9, &tokens)
        .kv("x.nested", 9, &nested)
        .tensor("w", &[3, 2], 0, &f32_bytes(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]))
        .tensor("h", &[4], 1, &[0, 60, 0, 64, 0, 66, 0, 68])
        .tensor("q", &[64, 2], 8, &[7u8; 2 * 2 * 34])
}

#[test]
fn fixture_reads_with_outermost_first_shapes_and_round_trips() {
    let path = fixture("small.gguf");
    let (tensors, layout) = gguf::read(&path).unwrap();
    let summary: Vec<_> = tensors
        .iter()
        .map(|t| (t.name.as_str(), t.dtype, t.shape.clone()))
        .collect();
    assert_eq!(
        summary,
        [
            ("f32", DType::F32, vec![2, 3]),
            ("f16", DType::F16, vec![2, 4]),
            ("q8", DType::Opaque, vec![2 * 34]),
        ]
    );
    assert_eq!(
        f32_values(&tensors[0].data),
        [0.0, 0.25, 0.5, 0.75, 1.0, 1.25]
    );
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.gguf");
    gguf::write(&layout, &tensors, &out).unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&path).unwrap());
}

#[test]
fn built_file_round_trips_byte_identical_with_trailing_bytes() {
    let mut bytes = sample().alignment(64).build();
    bytes.extend(b"trailing");
    let dir = tempfile::tempdir().unwrap();
    let (_, result) = read_bytes(dir.path(), &bytes);
    let (tensors, layout) = result.unwrap();
    assert_eq!(tensors[0].shape, [2, 3]);
    assert_eq!(tensors[1].dtype, DType::F16);
    assert_eq!(tensors[2].shape, [2 * 2 * 34]);
    let out = dir.path().join("out.gguf");
    gguf::write(&layout, &tensors, &out).unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), bytes);
}

#[test]
fn changed_values_are_written_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let (_, result) = read_bytes(dir.path(), &sample().build());
    let (mut tensors, layout) = result.unwrap();
    let new = [-1.0f32, -2.0, -3.0, -4.0, -5.0, -6.0];
    tensors[0].data = Bytes::from(f32_bytes(&new));
    tensors[2].data = Bytes::from(vec![9u8; 2 * 2 * 34]);
    let out = dir.path().join("out.gguf");
    gguf::write(&layout, &tensors, &out).unwrap();
    let (again, layout_again) = gguf::read(&out).unwrap();
    assert_eq!(f32_values(&again[0].data), new);
    assert_eq!(again[1], tensors[1]);
    assert_eq!(again[2].data, tensors[2].data);
    assert_eq!(layout_again, layout);
}

#[test]
fn write_rejects_tensors_that_do_not_match_the_layout() {
    let dir = tempfile::tempdir().unwrap();
    let (_, result) = read_bytes(dir.path(), &sample().build());
    let (tensors, layout) = result.unwrap();
    let out = dir.path().join("out.gguf");
    let mut wrong = tensors.clone();
    wrong[0].shape = vec![3, 2];
    let err = gguf::write(&layout, &wrong, &out).unwrap_err().to_string();
    assert!(err.contains("'w'") && err.contains("shape"), "{err}");
    let err = gguf::write(&layout, &tensors[..2], &out)
        .unwrap_err()
        .to_string();
    assert!(err.contains("3 tensors but 2"), "{err}");
    let err = gguf::write(&layout[..10], &tensors, &out).unwrap_err();
    assert!(err.to_string().contains("out.gguf"), "{err}");
    assert!(!out.exists());
}

#[test]
fn malformed_files_are_rejected_with_the_reason() {
    assert_rejected(b"", "file ends inside the magic");
    assert_rejected(b"GGML\x03\0\0\0", "missing GGUF magic");
    assert_rejected(b"GGUF\0\0\0\x03", "big-endian");
    assert_rejected(b"GGUF\x01\0\0\0", "unsupported GGUF version 1");
    let mut huge_counts = b"GGUF\x03\0\0\0".to_vec();
    huge_counts.extend(u64::MAX.to_le_bytes());
    huge_counts.extend(u64::MAX.to_le_bytes());
    assert_rejected(&huge_counts, "file ends inside a metadata key");
    let huge_string = Builder::new().kv("k", 8, &u64::MAX.to_le_bytes()).build();
    assert_rejected(&huge_string, "file ends inside k");
    let huge_array = Builder::new()
        .kv(
            "k",
            9,
            &[&4u32.to_le_bytes()[..], &u64::MAX.to_le_bytes()].concat(),
        )
        .build();
    assert_rejected(&huge_array, "array too long");
    assert_rejected(
        &Builder::new().kv("k", 13, &[]).build(),
        "unknown value type 13",
    );
    assert_rejected(
        &Builder::new().alignment(3).build(),
        "general.alignment is 3",
    );
    assert_rejected(
        &Builder::new().tensor("t", &[4], 77, &[0; 16]).build(),
        "unknown ggml type 77",
    );
    assert_rejected(
        &Builder::new().tensor("t", &[33], 8, &[0; 34]).build(),
        "not a multiple of the block length",
    );
    assert_rejected(
        &Builder::new()
            .tensor("t", &[1, 1, 1, 1, 1], 0, &[0; 4])
            .build(),
        "5 dimensions",
    );
    assert_rejected(
        &Builder::new().tensor("t", &[u64::MAX / 2], 0, &[]).build(),
        "dimensions overflow",
    );
    let mut past_end = Builder::new().tensor("t", &[8], 0, &[0; 32]).build();
    past_end.truncate(past_end.len() - 1);
    assert_rejected(&past_end, "data runs past the end of the file");
    let twice = Builder::new()
        .tensor("t", &[1], 0, &[0; 4])
        .tensor("t", &[1], 0, &[0; 4])
        .build();
    assert_rejected(&twice, "name used twice");
}

#[test]
fn overlapping_tensors_are_rejected() {
    let mut b = Builder::new().tensor("a", &[16], 0, &[0; 64]);
    // A second info pointing into the first tensor's data.
    Builder::string(&mut b.infos, "b");
    b.infos.extend(1u32.to_le_bytes());
    b.infos.extend(4u64.to_le_bytes());
    b.infos.extend(0u32.to_le_bytes());
    b.infos.extend(8u64.to_le_bytes());
    b.tensor_count += 1;
    assert_rejected(&b.build(), "overlaps tensor 'a'");
}

/// Where the fixture's last tensor ends; gguf-py pads the file to the alignment after it.
const FIXTURE_DATA_END: usize = 580;

#[test]
fn every_truncation_of_the_fixture_data_is_an_error() {
    let bytes = std::fs::read(fixture("small.gguf")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for len in 0..bytes.len() {
        let (path, result) = read_bytes(dir.path(), &bytes[..len]);
        match result {
            Err(_) => assert!(len < FIXTURE_DATA_END, "cut at {len} bytes was rejected"),
            Ok((tensors, layout)) => {
                assert!(len >= FIXTURE_DATA_END, "cut at {len} bytes was accepted");
                let out = path.with_extension("out");
                gguf::write(&layout, &tensors, &out).unwrap();
                assert_eq!(std::fs::read(&out).unwrap(), &bytes[..len]);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Corrupted files never panic; whatever is accepted writes back to the same bytes.
    #[test]
    fn corrupted_files_never_panic(flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let mut bytes = sample().build();
        for (at, value) in flips {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        let dir = tempfile::tempdir().unwrap();
        let (_, result) = read_bytes(dir.path(), &bytes);
        if let Ok((tensors, layout)) = result {
            let out = dir.path().join("out.gguf");
            gguf::write(&layout, &tensors, &out).unwrap();
            prop_assert_eq!(std::fs::read(&out).unwrap(), bytes);
        }
    }
}
