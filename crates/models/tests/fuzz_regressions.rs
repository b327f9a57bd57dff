//! Inputs the fuzz targets in `fuzz/` found, as plain regression tests.

use std::time::{Duration, Instant};

use pwlc_models::{Format, ModelError};

/// Longest a rejected header may take to read. Before headers were checked for nesting, the
/// fuzzer's input below took minutes (npyz's header parser is exponential in the depth).
const FAST: Duration = Duration::from_secs(2);

/// Writes `bytes` to a temporary file of `format` and reads it; returns the result and the
/// time the read took.
fn read(format: Format, bytes: &[u8]) -> (Result<usize, ModelError>, Duration) {
    let dir = tempfile::tempdir().expect("temporary folder");
    let path = dir.path().join(format!("model.{}", format.extension()));
    std::fs::write(&path, bytes).expect("write the input");
    let start = Instant::now();
    let result = pwlc_models::read_as(format, &path).map(|m| m.tensors.len());
    (result, start.elapsed())
}

/// A version 1.0 `.npy` header (no data) around the dict text `dict`.
fn npy_header(dict: &str) -> Vec<u8> {
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(dict.len() as u16 + 1).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.push(b'\n');
    out
}

/// A header whose `descr` opens `depth` lists that never close.
fn nested_header(depth: usize) -> Vec<u8> {
    npy_header(&format!(
        "{{'descr':{} '<f4', 'fortran_order': False, 'shape': (0, 39), }}",
        "[".repeat(depth)
    ))
}

/// The input of the `npy` target that timed out (26 unclosed `[`, 184 bytes).
const NPY_TIMEOUT: &str = "k05VTVBZAQB2AHsnZGVzY3InOltbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbICc8ZjUnLCAgICAgICAgICAgICAgICc6IEZhbHNlLCAnc2hhcGUnOiAoMCwgMzksJ30gICAgICAgICAgICAgSiAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIOogCgAAIMAAAMC/AAAAvwAAAD8AAMA/AAAgQA==";

/// Decodes standard base64 (the test needs it once; not worth a dependency).
fn base64(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let sextets: Vec<u32> = text
        .bytes()
        .filter(|&c| c != b'=')
        .map(|c| ALPHABET.iter().position(|&a| a == c).expect("base64") as u32)
        .collect();
    sextets
        .chunks(4)
        .flat_map(|chunk| {
            let bits = chunk
                .iter()
                .enumerate()
                .fold(0u32, |acc, (i, &s)| acc | s << (18 - 6 * i));
            let bytes = bits.to_be_bytes();
            bytes[1..chunk.len()].to_vec()
        })
        .collect()
}

#[test]
fn the_npy_timeout_input_fails_fast() {
    let input = base64(NPY_TIMEOUT);
    assert_eq!(input.len(), 184);
    let (result, took) = read(Format::Npy, &input);
    let err = result.expect_err("the input parsed");
    assert!(err.to_string().contains("nest deeper"), "{err}");
    assert!(took < FAST, "took {took:?}");
}

#[test]
fn deeply_nested_npy_headers_fail_fast() {
    for depth in [9, 16, 26, 40, 1000] {
        let (result, took) = read(Format::Npy, &nested_header(depth));
        let err = result.expect_err("a nested header parsed");
        assert!(
            err.to_string().contains("nest deeper"),
            "depth {depth}: {err}"
        );
        assert!(took < FAST, "depth {depth} took {took:?}");
    }
}

#[test]
fn headers_within_the_nesting_limit_reach_the_parser() {
    // The dict, 6 unclosed lists and the shape tuple: 8 levels, the limit.
    let (result, _) = read(Format::Npy, &nested_header(6));
    let err = result.expect_err("unclosed lists parsed");
    assert!(!err.to_string().contains("nest deeper"), "{err}");

    let plain = "{'descr': '<f4', 'fortran_order': False, 'shape': (0,), }";
    let (result, _) = read(Format::Npy, &npy_header(plain));
    assert_eq!(result.expect("a plain header"), 1);
}
