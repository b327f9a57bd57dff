//! End-to-end tests of the `pwlc` binary: round trips and every error path a user can hit.

use std::path::{Path, PathBuf};

use crate::common::{f32_tensor, pwlc};
use predicates::prelude::*;
use pwlc::models::{write_fresh, Format};

/// Writes a small safetensors model: a 64x3x3x3 conv weight, a 64x64 linear weight, a bias.
fn model(dir: &Path) -> PathBuf {
    let path = dir.join("model.safetensors");
    let tensors = vec![
        f32_tensor("conv.weight", &[64, 3, 3, 3], 0),
        f32_tensor("fc.weight", &[64, 64], 10_000),
        f32_tensor("fc.bias", &[64], 20_000),
    ];
    write_fresh(Format::Safetensors, &tensors, &path).expect("fixture written");
    path
}

/// Writes the fixture model in `dir` and compresses it to `dir/m.pwlc` with `args`.
fn compressed(dir: &Path, args: &[&str]) -> (PathBuf, PathBuf) {
    let input = model(dir);
    let container = dir.join("m.pwlc");
    pwlc()
        .arg("compress")
        .arg(&input)
        .args(args)
        .arg("-o")
        .arg(&container)
        .assert()
        .success();
    (input, container)
}

/// Largest |a - b| over two equally long slices.
fn max_abs_error(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(p, q)| (p - q).abs())
        .fold(0.0, f32::max)
}

fn read_f32(path: &Path) -> Vec<(String, Vec<f32>)> {
    let m = pwlc::models::read(path).expect("readable model");
    m.tensors
        .iter()
        .map(|t| {
            let v = t
                .data
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()));
            (t.name.clone(), v.collect())
        })
        .collect()
}

#[test]
fn compress_then_decompress_keeps_every_weight_within_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    let input = model(dir.path());
    pwlc()
        .arg("compress")
        .arg(&input)
        .args(["--max-error", "1e-3"])
        .assert()
        .success();
    let container = dir.path().join("model.safetensors.pwlc");
    assert!(container.exists());
    let out = dir.path().join("restored.safetensors");
    pwlc()
        .arg("decompress")
        .arg(&container)
        .arg("-o")
        .arg(&out)
        .assert()
        .success();
    let (a, b) = (read_f32(&input), read_f32(&out));
    assert_eq!(a.len(), b.len());
    for ((name, x), (name2, y)) in a.iter().zip(&b) {
        assert_eq!(name, name2);
        let max = max_abs_error(x, y);
        if name == "fc.bias" {
            assert_eq!(max, 0.0, "1-D tensors are stored losslessly");
        } else {
            assert!(max <= 1e-3, "{name}: max error {max}");
            assert!(
                max > 0.0,
                "{name}: a lossy codec should move some weight at this bound"
            );
        }
    }
}

#[test]
fn inspect_json_reports_tensors_and_totals() {
    let dir = tempfile::tempdir().unwrap();
    let (_, container) = compressed(dir.path(), &[]);
    let out = pwlc()
        .arg("inspect")
        .arg(&container)
        .arg("--json")
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    assert_eq!(v["tensors"].as_array().unwrap().len(), 3);
    let totals = &v["totals"];
    let ratio = totals["ratio"].as_f64().unwrap();
    let expected =
        totals["original_bytes"].as_f64().unwrap() / totals["stored_bytes"].as_f64().unwrap();
    assert!((ratio - expected).abs() < 1e-9);
    assert_eq!(
        totals["stored_bytes"].as_u64().unwrap(),
        std::fs::metadata(&container).unwrap().len()
    );
    let bias = v["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "fc.bias")
        .unwrap();
    assert_eq!(bias["codec"], "lossless");
    assert_eq!(bias["max_abs_error"], 0.0);
}

#[test]
fn a_missing_input_is_named_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.onnx");
    pwlc()
        .arg("compress")
        .arg(&missing)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("nope.onnx"));
}

#[test]
fn an_unknown_format_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("weights.xyz");
    std::fs::write(&path, b"hello").unwrap();
    pwlc().arg("compress").arg(&path).assert().code(1).stderr(
        predicate::str::contains("weights.xyz")
            .and(predicate::str::contains("unknown model format")),
    );
}

#[test]
fn a_truncated_model_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let input = model(dir.path());
    let bytes = std::fs::read(&input).unwrap();
    std::fs::write(&input, &bytes[..bytes.len() / 2]).unwrap();
    pwlc()
        .arg("compress")
        .arg(&input)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("model.safetensors"));
    assert!(
        !dir.path().join("model.safetensors.pwlc").exists(),
        "no partial output"
    );
}

#[test]
fn an_existing_output_is_kept_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let input = model(dir.path());
    let container = dir.path().join("model.safetensors.pwlc");
    std::fs::write(&container, b"precious").unwrap();
    pwlc().arg("compress").arg(&input).assert().code(1).stderr(
        predicate::str::contains("already exists").and(predicate::str::contains("--force")),
    );
    assert_eq!(std::fs::read(&container).unwrap(), b"precious");
    pwlc()
        .arg("compress")
        .arg(&input)
        .arg("--force")
        .assert()
        .success();
    assert_ne!(std::fs::read(&container).unwrap(), b"precious");

    let restored = dir.path().join("model.safetensors");
    pwlc()
        .arg("decompress")
        .arg(&container)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("already exists"));
    pwlc()
        .arg("decompress")
        .arg(&container)
        .arg("-o")
        .arg(&restored)
        .arg("--force")
        .assert()
        .success();
}

#[test]
fn the_input_is_never_the_output() {
    let dir = tempfile::tempdir().unwrap();
    let input = model(dir.path());
    let before = std::fs::read(&input).unwrap();
    pwlc()
        .arg("compress")
        .arg(&input)
        .arg("-o")
        .arg(&input)
        .arg("--force")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("overwrite the input"));
    assert_eq!(std::fs::read(&input).unwrap(), before);
}

#[test]
fn a_damaged_container_is_caught_and_names_the_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let (_, container) = compressed(dir.path(), &[]);
    damage_payload(&container, "conv.weight");
    pwlc()
        .arg("verify")
        .arg(&container)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("m.pwlc").and(predicate::str::contains("conv.weight")));
    let restored = dir.path().join("restored.safetensors");
    pwlc()
        .arg("decompress")
        .arg(&container)
        .arg("-o")
        .arg(&restored)
        .assert()
        .code(1);
    assert!(!restored.exists(), "no output from a damaged container");
}

/// Flips one byte in the middle of the named tensor's payload.
fn damage_payload(container: &Path, tensor: &str) {
    let reader = pwlc::container::Reader::open(container).unwrap();
    let entry = &reader.entries()[reader.find(tensor).unwrap()];
    let at = (entry.offset + entry.length / 2) as usize;
    drop(reader);
    let mut bytes = std::fs::read(container).unwrap();
    bytes[at] ^= 0x55;
    std::fs::write(container, &bytes).unwrap();
}

#[test]
fn salvage_recovers_the_undamaged_tensors_and_names_the_lost_one() {
    let dir = tempfile::tempdir().unwrap();
    let (input, container) = compressed(dir.path(), &["--max-error", "1e-3"]);
    damage_payload(&container, "fc.weight");
    let restored = dir.path().join("restored.safetensors");
    pwlc()
        .arg("decompress")
        .arg(&container)
        .arg("-o")
        .arg(&restored)
        .arg("--salvage")
        .assert()
        .code(1)
        .stderr(
            predicate::str::contains("lost tensor 'fc.weight'")
                .and(predicate::str::contains("1 of 3")),
        );
    for ((name, a), (_, b)) in read_f32(&input).iter().zip(read_f32(&restored)) {
        if name == "fc.weight" {
            assert!(b.iter().all(|v| *v == 0.0), "the lost tensor is zeros");
        } else {
            let max = max_abs_error(a, &b);
            assert!(max <= 1e-3, "{name} survives: max error {max}");
        }
    }
}

#[test]
fn a_truncated_container_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let (_, container) = compressed(dir.path(), &[]);
    let bytes = std::fs::read(&container).unwrap();
    std::fs::write(&container, &bytes[..bytes.len() - 7]).unwrap();
    for cmd in ["inspect", "verify", "decompress"] {
        pwlc()
            .arg(cmd)
            .arg(&container)
            .assert()
            .code(1)
            .stderr(predicate::str::contains("m.pwlc"));
    }
}

#[test]
fn a_file_that_is_not_a_container_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let input = model(dir.path());
    pwlc()
        .arg("inspect")
        .arg(&input)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("not a .pwlc file"));
}

#[test]
fn usage_errors_exit_2() {
    pwlc().assert().code(2);
    pwlc().args(["compress"]).assert().code(2);
    pwlc()
        .args(["compress", "x.onnx", "--method", "zip"])
        .assert()
        .code(2);
    pwlc()
        .args([
            "compress",
            "x.onnx",
            "--max-error",
            "1e-3",
            "--rel-error",
            "0.1",
        ])
        .assert()
        .code(2);
}

#[test]
fn a_negative_bound_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let input = model(dir.path());
    pwlc()
        .arg("compress")
        .arg(&input)
        .args(["--max-error=-1"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("--max-error"));
}

#[test]
fn converting_to_a_format_that_needs_a_graph_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_, container) = compressed(dir.path(), &[]);
    pwlc()
        .arg("decompress")
        .arg(&container)
        .args(["--format", "onnx", "-o"])
        .arg(dir.path().join("x.onnx"))
        .assert()
        .code(1)
        .stderr(predicate::str::contains("cannot convert to onnx"));
    let npz = dir.path().join("x.npz");
    pwlc()
        .arg("decompress")
        .arg(&container)
        .args(["--format", "npz", "-o"])
        .arg(&npz)
        .assert()
        .success();
    assert_eq!(read_f32(&npz).len(), 3);
}

#[test]
fn lossless_method_is_bit_exact() {
    let dir = tempfile::tempdir().unwrap();
    let (input, container) = compressed(dir.path(), &["--method", "lossless"]);
    let out = dir.path().join("r.safetensors");
    pwlc()
        .arg("decompress")
        .arg(&container)
        .arg("-o")
        .arg(&out)
        .assert()
        .success();
    assert_eq!(std::fs::read(&input).unwrap(), std::fs::read(&out).unwrap());
}

#[test]
fn pwl_method_keeps_the_bound() {
    pwl_keeps_the_bound_with_granularity("block:64");
}

#[test]
fn pwl_auto_granularity_keeps_the_bound() {
    pwl_keeps_the_bound_with_granularity("auto");
}

fn pwl_keeps_the_bound_with_granularity(granularity: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (input, container) = compressed(
        dir.path(),
        &[
            "--method",
            "pwl",
            "--p",
            "2e-3",
            "--pd",
            "0.5",
            "--granularity",
            granularity,
        ],
    );
    let out = pwlc()
        .arg("inspect")
        .arg(&container)
        .arg("--json")
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for t in v["tensors"].as_array().unwrap() {
        let expected = if t["name"] == "fc.bias" {
            "lossless"
        } else {
            "pwl"
        };
        assert_eq!(t["codec"], expected, "{}", t["name"]);
    }
    let restored = dir.path().join("r.safetensors");
    pwlc()
        .arg("decompress")
        .arg(&container)
        .arg("-o")
        .arg(&restored)
        .assert()
        .success();
    for ((name, a), (_, b)) in read_f32(&input).iter().zip(read_f32(&restored)) {
        let max = max_abs_error(a, &b);
        assert!(max <= 2e-3, "{name}: max error {max}");
    }
}

#[test]
fn bad_pwl_thresholds_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let input = model(dir.path());
    pwlc()
        .arg("compress")
        .arg(&input)
        .args(["--method", "pwl", "--pm", "1.5"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("--pm"));
    pwlc()
        .arg("compress")
        .arg(&input)
        .args(["--method", "pwl", "--granularity", "block:0"])
        .assert()
        .code(2);
}
