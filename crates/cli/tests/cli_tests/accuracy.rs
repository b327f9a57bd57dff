//! `pwlc eval` and `pwlc tune`: error paths, and runs on the shared models when ../shared is
//! there (the shared-data tests print a skip reason otherwise).

use std::path::{Path, PathBuf};

use crate::common::pwlc;
use predicates::prelude::*;
use serde_json::Value;

/// The shared data folder, or `None` (with a note) when it is absent.
fn shared(test: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("PWLC_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"));
    if dir.join("models/mobilenet_v2.onnx").is_file() {
        Some(dir)
    } else {
        eprintln!("skipping {test}: no shared data at {}", dir.display());
        None
    }
}

fn json(output: &[u8]) -> Value {
    serde_json::from_slice(output).expect("JSON on stdout")
}

#[test]
fn eval_needs_images_or_tokens() {
    pwlc()
        .args(["eval", "model.onnx"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--images"));
}

#[test]
fn eval_of_an_unknown_model_needs_a_preset() {
    let dir = tempfile::tempdir().unwrap();
    pwlc()
        .arg("eval")
        .arg(dir.path().join("my_net.onnx"))
        .arg("--images")
        .arg(dir.path())
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "my_net.onnx: unknown preprocessing",
        ));
}

#[test]
fn an_empty_image_folder_is_named() {
    let dir = tempfile::tempdir().unwrap();
    pwlc()
        .arg("eval")
        .arg(dir.path().join("net.onnx"))
        .arg("--images")
        .arg(dir.path())
        .args(["--preset", "lite"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no .jpg/.jpeg/.png images in"));
}

#[test]
fn a_malformed_mean_is_a_usage_error() {
    pwlc()
        .args(["eval", "m.onnx", "--images", ".", "--mean", "0.5,0.5"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("has 2 values, expected 3"));
}

#[test]
fn tune_refuses_an_impossible_agreement() {
    let dir = tempfile::tempdir().unwrap();
    pwlc()
        .arg("tune")
        .arg(dir.path().join("net.onnx"))
        .arg("--images")
        .arg(dir.path())
        .args(["--min-agreement", "1.5"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "--min-agreement must be in [0, 1]",
        ));
}

#[test]
fn tune_keeps_an_existing_output_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("out.pwlc");
    std::fs::write(&output, b"keep me").unwrap();
    pwlc()
        .arg("tune")
        .arg(dir.path().join("net.onnx"))
        .arg("--images")
        .arg(dir.path())
        .arg("-o")
        .arg(&output)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("exists (use --force"));
    assert_eq!(std::fs::read(&output).unwrap(), b"keep me");
}

#[test]
fn a_lossless_container_evaluates_exactly_like_the_original() {
    let Some(shared) = shared("a_lossless_container_evaluates_exactly_like_the_original") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let model = shared.join("models/mobilenet_v2.onnx");
    let container = dir.path().join("m.pwlc");
    pwlc()
        .arg("compress")
        .arg(&model)
        .args(["--method", "lossless", "-o"])
        .arg(&container)
        .assert()
        .success();
    let out = pwlc()
        .arg("eval")
        .arg(&model)
        .arg("--compressed")
        .arg(&container)
        .arg("--images")
        .arg(shared.join("data/imagenet-sample"))
        .args(["--limit", "8", "--json"])
        .assert()
        .success();
    let report = json(&out.get_output().stdout);
    assert_eq!(report["images"], 8);
    assert_eq!(report["compressed"]["top1_agreement"], 1.0);
    assert_eq!(report["compressed"]["mean_kl"], 0.0);
    assert_eq!(report["compressed"]["accuracy"], report["original"]);
}

#[test]
fn a_decompressed_model_file_evaluates_like_its_container_on_one_half() {
    let Some(shared) = shared("a_decompressed_model_file_evaluates_like_its_container_on_one_half")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let model = shared.join("models/mobilenet_v2.onnx");
    let container = dir.path().join("m.pwlc");
    let decompressed = dir.path().join("m.onnx");
    pwlc()
        .arg("compress")
        .arg(&model)
        .arg("-o")
        .arg(&container)
        .assert()
        .success();
    pwlc()
        .arg("decompress")
        .arg(&container)
        .arg("-o")
        .arg(&decompressed)
        .assert()
        .success();
    let report = |compressed: &Path| {
        let out = pwlc()
            .arg("eval")
            .arg(&model)
            .arg("--compressed")
            .arg(compressed)
            .arg("--images")
            .arg(shared.join("data/imagenet-sample"))
            .args(["--limit", "9", "--split", "held-out", "--json"])
            .assert()
            .success();
        json(&out.get_output().stdout)
    };
    let from_container = report(&container);
    assert_eq!(from_container["images"], 4, "items 1, 3, 5, 7 of 9");
    assert!(from_container["compressed"]["mean_kl"].as_f64().unwrap() > 0.0);
    assert_eq!(report(&decompressed), from_container);
}

#[test]
fn an_empty_half_and_an_unreadable_comparison_file_are_errors() {
    let Some(shared) = shared("an_empty_half_and_an_unreadable_comparison_file_are_errors") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let model = shared.join("models/mobilenet_v2.onnx");
    let images = shared.join("data/imagenet-sample");
    pwlc()
        .arg("eval")
        .arg(&model)
        .arg("--images")
        .arg(&images)
        .args(["--limit", "1", "--split", "held-out"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no items in the chosen half"));
    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, "not a model").unwrap();
    pwlc()
        .arg("eval")
        .arg(&model)
        .arg("--compressed")
        .arg(&notes)
        .arg("--images")
        .arg(&images)
        .args(["--limit", "2"])
        .assert()
        .code(1)
        .stderr(
            predicate::str::contains("notes.txt")
                .and(predicate::str::contains("unknown model format")),
        );
}

#[test]
fn a_container_of_another_model_is_refused() {
    let Some(shared) = shared("a_container_of_another_model_is_refused") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let container = dir.path().join("lite.pwlc");
    pwlc()
        .arg("compress")
        .arg(shared.join("models/efficientnet_lite0.onnx"))
        .arg("-o")
        .arg(&container)
        .assert()
        .success();
    pwlc()
        .arg("eval")
        .arg(shared.join("models/mobilenet_v2.onnx"))
        .arg("--compressed")
        .arg(&container)
        .arg("--images")
        .arg(shared.join("data/imagenet-sample"))
        .args(["--limit", "2"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("does not fit"));
}

#[test]
fn tune_meets_the_cosine_target_on_calibration_and_reports_the_held_out_half() {
    let Some(shared) =
        shared("tune_meets_the_cosine_target_on_calibration_and_reports_the_held_out_half")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("minilm.pwlc");
    let out = pwlc()
        .arg("tune")
        .arg(shared.join("models/all_minilm_l6_v2.onnx"))
        .arg("--tokens")
        .arg(shared.join("data/text/imagenet_class_names_tokens.npz"))
        .args([
            "--limit",
            "24",
            "--min-cosine",
            "0.999",
            "--probe-items",
            "4",
        ])
        .args(["--steps", "2", "--json", "-o"])
        .arg(&output)
        .assert()
        .success();
    let outcome = json(&out.get_output().stdout);
    let tuned = &outcome["tuned"];
    assert_eq!(tuned["calibration_items"], 12);
    assert_eq!(tuned["chosen"]["meets_target"], true);
    assert!(
        tuned["chosen"]["quality"]["embedding"]["cosine"]["mean"]
            .as_f64()
            .unwrap()
            >= 0.999
    );
    let held_out = &outcome["held_out_evaluation"];
    assert_eq!(held_out["sentences"], 12);
    assert!(held_out["compressed"]["cosine"]["mean"].as_f64().is_some());
    let bounds: Vec<f64> = tuned["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["bound"].as_f64().unwrap())
        .collect();
    assert!(bounds.iter().all(|&b| b > 0.0));
    let spread = bounds.iter().cloned().fold(0.0, f64::max)
        / bounds.iter().cloned().fold(f64::INFINITY, f64::min);
    assert!(
        spread > 2.0,
        "bounds should differ between tensors: {bounds:?}"
    );
    assert!(outcome["compressed"]["totals"]["ratio"].as_f64().unwrap() > 3.0);
    pwlc().arg("verify").arg(&output).assert().success();
}
