//! End-to-end tests of `pwlc bench`: argument errors and a run on a tiny model.

use std::path::{Path, PathBuf};

use crate::common::pwlc;
use bytes::Bytes;
use predicates::prelude::*;
use pwlc::models::{write_fresh, DType, Format, Tensor};

/// A small safetensors model with one 32x64 weight of smooth pseudo-random values.
fn model(dir: &Path) -> PathBuf {
    let path = dir.join("tiny.safetensors");
    let data: Vec<u8> = (0..32 * 64)
        .flat_map(|i| ((i as f32 * 0.37).sin() * 0.05).to_le_bytes())
        .collect();
    let tensor = Tensor {
        name: "fc.weight".into(),
        dtype: DType::F32,
        shape: vec![32, 64],
        data: Bytes::from(data),
    };
    write_fresh(Format::Safetensors, &[tensor], &path).expect("fixture written");
    path
}

#[test]
fn bad_bench_arguments_are_refused() {
    pwlc()
        .args(["bench", "run", "m.onnx", "--runs", "0"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--runs"));
    pwlc().args(["bench", "run"]).assert().code(2);
    pwlc()
        .args(["bench", "report"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("--bench"));
    pwlc()
        .args(["bench", "thesis", "m.onnx", "--p=-1"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("--p"));
}

#[test]
fn a_missing_model_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    pwlc()
        .args([
            "bench",
            "run",
            "missing.safetensors",
            "--runs",
            "1",
            "--out",
        ])
        .arg(dir.path())
        .assert()
        .code(1)
        .stderr(predicate::str::contains("missing.safetensors"));
}

#[test]
fn bench_run_measures_peak_memory_of_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let input = model(dir.path());
    let out = dir.path().join("out");
    pwlc()
        .args(["bench", "run"])
        .arg(&input)
        .args(["--runs", "1", "--out"])
        .arg(&out)
        .assert()
        .success();
    let text = std::fs::read_to_string(out.join("bench.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let records = json["records"].as_array().unwrap();
    assert_eq!(records.len(), 7);
    for r in records {
        let peak = r["peak_rss_compress_mb"].as_f64().unwrap();
        assert!(peak > 0.5 && peak < 2000.0, "{r}");
        assert!(r["peak_rss_decompress_mb"].as_f64().unwrap() > 0.5);
    }
}
