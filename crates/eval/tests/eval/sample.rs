//! Full runs on the 500 shared sample images, checked against the onnxruntime accuracy in
//! models.json. Slow in debug builds, so ignored by default:
//! `cargo test -p pwlc-eval --release --test sample -- --ignored --nocapture`.

use crate::common;

use std::time::Instant;

use pwlc_eval::{evaluate_images, evaluate_tokens, ImageSet, Network, Preprocess, TokenSet};

/// Evaluates `model` against a copy of itself with every initializer replaced by its own value
/// and checks the original's accuracy is within one point of `reference` (top-1, top-5).
fn check_classifier(name: &str, reference: (f64, f64)) {
    let Some(shared) = common::shared(name) else {
        return;
    };
    let model = shared.join(format!("models/{name}.onnx"));
    let preprocess = Preprocess::for_model(name).unwrap();
    let start = Instant::now();
    let images = ImageSet::load(&shared.join("data/imagenet-sample"), None, &preprocess).unwrap();
    let loaded = start.elapsed();
    let original = Network::from_onnx(&model, None).unwrap();
    let copy = Network::from_onnx(&model, Some(&common::float_initializers(&model))).unwrap();
    let built = start.elapsed();
    let report = evaluate_images(&original, Some(&copy), &images, |_, _| {}).unwrap();
    let done = start.elapsed();
    println!(
        "{name}: {} images; load+preprocess {:.1} s, build 2 networks {:.1} s, {} inferences {:.1} s",
        images.len(),
        loaded.as_secs_f64(),
        (built - loaded).as_secs_f64(),
        2 * images.len(),
        (done - built).as_secs_f64()
    );
    println!("{}", serde_json::to_string(&report).unwrap());
    assert_eq!(report.images, 500);
    assert!(
        (report.original.top1 - reference.0).abs() <= 0.01,
        "{report:?}"
    );
    assert!(
        (report.original.top5 - reference.1).abs() <= 0.01,
        "{report:?}"
    );
    let compared = report.compressed.unwrap();
    assert_eq!(compared.top1_agreement, 1.0);
    assert_eq!(compared.mean_kl, 0.0);
}

#[test]
#[ignore = "slow: 1000 inferences"]
fn mobilenet_v2_matches_reference_accuracy() {
    check_classifier("mobilenet_v2", (0.828, 0.966));
}

#[test]
#[ignore = "slow: 1000 inferences"]
fn efficientnet_lite0_matches_reference_accuracy() {
    check_classifier("efficientnet_lite0", (0.888, 0.970));
}

#[test]
#[ignore = "slow: 2000 sentence embeddings"]
fn minilm_matches_reference_embeddings() {
    let Some(shared) = common::shared("minilm_matches_reference_embeddings") else {
        return;
    };
    let tokens = TokenSet::load(&shared.join("data/text/imagenet_class_names_tokens.npz")).unwrap();
    let model = shared.join("models/all_minilm_l6_v2.onnx");
    let start = Instant::now();
    let original = Network::from_onnx(&model, None).unwrap();
    let copy = Network::from_onnx(&model, Some(&common::float_initializers(&model))).unwrap();
    let built = start.elapsed();
    let report = evaluate_tokens(&original, Some(&copy), &tokens, |_, _| {}).unwrap();
    println!(
        "all_minilm_l6_v2: build {:.1} s, {} embeddings {:.1} s",
        built.as_secs_f64(),
        2 * tokens.len(),
        (start.elapsed() - built).as_secs_f64()
    );
    println!("{}", serde_json::to_string(&report).unwrap());
    assert!(report.reference.unwrap().min > 0.9999, "{report:?}");
    assert_eq!(report.compressed.unwrap().neighbour_agreement, 1.0);
}
