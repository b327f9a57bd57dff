//! The whole pipeline on the real trained models in `../shared/models`: compress, decompress,
//! and check that everything but the coded weights comes back byte for byte, that every weight
//! is within the bound, and (when a Python with onnxruntime is given in `PWLC_TEST_PYTHON`) that
//! onnxruntime runs the result.

use std::path::{Path, PathBuf};
use std::process::Command;

use pwlc::codecs::{quant, Bound, Method};
use pwlc::{CompressOptions, DecompressOptions, Policy};

const BOUND: f64 = 5e-4;

fn shared_models() -> Option<Vec<PathBuf>> {
    let shared = std::env::var_os("PWLC_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"));
    let dir = shared.join("models");
    let mut models: Vec<PathBuf> = std::fs::read_dir(&dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "onnx"))
        .collect();
    models.sort();
    if models.is_empty() {
        None
    } else {
        Some(models)
    }
}

fn max_abs_diff(a: &[u8], b: &[u8]) -> f32 {
    a.chunks_exact(4)
        .zip(b.chunks_exact(4))
        .map(|(x, y)| {
            let (x, y) = (
                f32::from_le_bytes(x.try_into().unwrap()),
                f32::from_le_bytes(y.try_into().unwrap()),
            );
            (x - y).abs()
        })
        .fold(0.0, f32::max)
}

fn onnxruntime_check(original: &Path, restored: &Path, tolerance: f64) {
    let Some(python) = std::env::var_os("PWLC_TEST_PYTHON") else {
        eprintln!("skipped onnxruntime check: PWLC_TEST_PYTHON is not set");
        return;
    };
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/tests/check_onnx_runtime.py");
    let out = Command::new(python)
        .arg(script)
        .arg(original)
        .arg(restored)
        .arg(tolerance.to_string())
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "onnxruntime check failed for {}: {}{}",
        restored.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn round_trip(model: &Path, method: Method, dir: &Path) -> (PathBuf, pwlc::Report) {
    let stem = model.file_stem().unwrap().to_string_lossy().into_owned();
    let container = dir.join(format!("{stem}.{}.pwlc", method.codec().name()));
    let restored = dir.join(format!("{stem}.{}.onnx", method.codec().name()));
    let options = CompressOptions {
        method,
        policy: Policy::default(),
        bounds: Vec::new(),
        force: false,
    };
    let report = pwlc::compress(model, &container, &options, &|_, _| {}).expect("compress");
    pwlc::decompress(
        &container,
        &restored,
        &DecompressOptions::default(),
        &|_, _| {},
    )
    .expect("decompress");
    (restored, report)
}

#[test]
fn onnx_models_round_trip_within_the_bound_with_the_graph_unchanged() {
    let Some(models) = shared_models() else {
        eprintln!("skipped: no shared models (set PWLC_SHARED or place shared/ beside the repo)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    for model in &models {
        let method = Method::Quant {
            bound: Bound::Abs(BOUND),
            options: quant::Options::default(),
        };
        let (restored, report) = round_trip(model, method, dir.path());
        let original = pwlc::models::read(model).unwrap();
        let back = pwlc::models::read(&restored).unwrap();
        assert_eq!(
            original.layout,
            back.layout,
            "{}: non-weight bytes changed",
            model.display()
        );
        let policy = Policy::default();
        for (a, b) in original.tensors.iter().zip(&back.tensors) {
            assert_eq!((&a.name, a.dtype, &a.shape), (&b.name, b.dtype, &b.shape));
            if policy.decide(&a.name, a.dtype, &a.shape).is_lossy() {
                let err = max_abs_diff(&a.data, &b.data);
                assert!(
                    err as f64 <= BOUND,
                    "{}: {} moved {err}",
                    model.display(),
                    a.name
                );
            } else {
                assert_eq!(
                    a.data,
                    b.data,
                    "{}: {} must be exact",
                    model.display(),
                    a.name
                );
            }
        }
        assert!(
            report.totals.ratio > 2.0,
            "{}: ratio {}",
            model.display(),
            report.totals.ratio
        );
        eprintln!("{}: ratio {:.3}", model.display(), report.totals.ratio);
        onnxruntime_check(model, &restored, 1.0);
    }
}

#[test]
fn lossless_round_trip_of_onnx_models_is_byte_identical() {
    let Some(models) = shared_models() else {
        eprintln!("skipped: no shared models (set PWLC_SHARED or place shared/ beside the repo)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    for model in &models {
        let (restored, report) = round_trip(model, Method::Lossless, dir.path());
        assert_eq!(
            std::fs::read(model).unwrap(),
            std::fs::read(&restored).unwrap()
        );
        assert!(
            report.totals.ratio > 1.0,
            "{}: lossless ratio {}",
            model.display(),
            report.totals.ratio
        );
        onnxruntime_check(model, &restored, 0.0);
    }
}
