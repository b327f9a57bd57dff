//! Loading ONNX networks with replaced weights and running them (needs the shared models).

use crate::common;

use std::path::{Path, PathBuf};

use pwlc_eval::{
    evaluate_images, EvalError, ImageBaseline, ImageSet, InputData, Network, Outputs, Preprocess,
};
use pwlc_models::{DType, Tensor};

/// MobileNetV2 and the first `limit` sample images, if the shared data is there.
fn mobilenet(test: &str, limit: usize) -> Option<(PathBuf, ImageSet)> {
    let shared = common::shared(test)?;
    let images = ImageSet::load(
        &shared.join("data/imagenet-sample"),
        Some(limit),
        &Preprocess::TORCHVISION,
    )
    .unwrap();
    Some((shared.join("models/mobilenet_v2.onnx"), images))
}

fn logits(model: &Path, replacement: Option<&[Tensor]>, images: &ImageSet) -> Outputs {
    let network = Network::from_onnx(model, replacement).unwrap();
    network
        .run(&[InputData::F32(images.pixels(0..images.len()))])
        .unwrap()
}

#[test]
fn identity_replacement_gives_identical_logits() {
    let Some((model, images)) = mobilenet("identity_replacement_gives_identical_logits", 3) else {
        return;
    };
    let tensors = common::float_initializers(&model);
    assert!(tensors.len() > 100, "{} initializers", tensors.len());
    let original = logits(&model, None, &images);
    assert_eq!((original.rows, original.cols), (3, 1000));
    assert_eq!(logits(&model, Some(&tensors), &images), original);
}

#[test]
fn perturbed_tensor_changes_the_logits() {
    let Some((model, images)) = mobilenet("perturbed_tensor_changes_the_logits", 2) else {
        return;
    };
    let tensors = common::float_initializers(&model);
    let bias = tensors
        .iter()
        .find(|t| t.name == "classifier.1.bias")
        .unwrap();
    let original = logits(&model, None, &images);
    let changed = logits(&model, Some(&[common::shifted(bias, 0.5)]), &images);
    for (row, (a, b)) in original.data.iter().zip(&changed.data).enumerate() {
        assert!((b - a - 0.5).abs() < 1e-4, "logit {row}: {a} → {b}");
    }
}

#[test]
fn mismatched_replacements_are_errors_naming_the_tensor() {
    let Some(shared) = common::shared("mismatched_replacements_are_errors_naming_the_tensor")
    else {
        return;
    };
    let model = shared.join("models/mobilenet_v2.onnx");
    let tensors = common::float_initializers(&model);
    let weight = tensors
        .iter()
        .find(|t| t.name == "classifier.1.weight")
        .unwrap();
    let wrong_shape = Tensor {
        shape: vec![1280, 1000],
        ..weight.clone()
    };
    let wrong_dtype = Tensor {
        dtype: DType::I32,
        ..weight.clone()
    };
    let wrong_length = Tensor {
        data: weight.data.slice(4..),
        ..weight.clone()
    };
    let unknown = Tensor {
        name: "no.such.tensor".to_string(),
        ..weight.clone()
    };
    for (bad, what) in [
        (wrong_shape, "shape"),
        (wrong_dtype, "dtype"),
        (wrong_length, "bytes"),
        (unknown, "no initializer"),
    ] {
        let error = Network::from_onnx(&model, Some(std::slice::from_ref(&bad))).unwrap_err();
        assert!(
            matches!(&error, EvalError::Replacement { name, .. } if *name == bad.name),
            "{error}"
        );
        assert!(error.to_string().contains(what), "{error}");
    }
}

#[test]
fn batches_are_padded_and_runs_are_deterministic() {
    let Some((model, images)) = mobilenet("batches_are_padded_and_runs_are_deterministic", 3)
    else {
        return;
    };
    let pairs = Network::from_onnx_with_batch(&model, None, 2).unwrap();
    let single = Network::from_onnx_with_batch(&model, None, 1).unwrap();
    let input = [InputData::F32(images.pixels(0..3))];
    let a = pairs.run(&input).unwrap();
    assert_eq!(pairs.run(&input).unwrap(), a);
    let b = single.run(&input).unwrap();
    let max = a
        .data
        .iter()
        .zip(&b.data)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max);
    assert!(max < 1e-3, "batch 2 and batch 1 differ by {max}");
    let wrong = [InputData::I64(&[0; 10])];
    assert!(matches!(pairs.run(&wrong), Err(EvalError::Input(_))));
}

#[test]
fn evaluation_of_a_model_against_itself_agrees_fully() {
    let Some((model, images)) = mobilenet("evaluation_of_a_model_against_itself_agrees_fully", 10)
    else {
        return;
    };
    let original = Network::from_onnx(&model, None).unwrap();
    let same = Network::from_onnx(&model, Some(&common::float_initializers(&model))).unwrap();
    let mut calls = Vec::new();
    let report = evaluate_images(&original, Some(&same), &images, |done, total| {
        calls.push((done, total))
    })
    .unwrap();
    assert_eq!(calls, [(8, 10), (10, 10)]);
    assert_eq!(report.images, 10);
    let compared = report.compressed.unwrap();
    assert_eq!(compared.accuracy, report.original);
    assert_eq!(compared.top1_agreement, 1.0);
    assert_eq!(compared.mean_kl, 0.0);
    assert!(report.original.top5 >= report.original.top1);
    let json = serde_json::to_string(&report).unwrap();
    assert!(json.contains("top1_agreement"), "{json}");
}

#[test]
fn a_baseline_comparison_equals_a_side_by_side_evaluation() {
    let Some((model, images)) =
        mobilenet("a_baseline_comparison_equals_a_side_by_side_evaluation", 4)
    else {
        return;
    };
    let mut tensors = common::float_initializers(&model);
    let weight = tensors
        .iter_mut()
        .find(|t| t.name == "classifier.1.weight")
        .unwrap();
    let scaled: Vec<u8> = weight
        .data
        .chunks_exact(4)
        .flat_map(|b| (f32::from_le_bytes(b.try_into().unwrap()) * 0.5).to_le_bytes())
        .collect();
    weight.data = scaled.into();
    let original = Network::from_onnx(&model, None).unwrap();
    let compressed = Network::from_onnx(&model, Some(&tensors)).unwrap();
    let side_by_side = evaluate_images(&original, Some(&compressed), &images, |_, _| {}).unwrap();
    let baseline = ImageBaseline::new(&original, &images, |_, _| {}).unwrap();
    assert_eq!(baseline.len(), 4);
    assert_eq!(baseline.accuracy(), side_by_side.original);
    let compared = baseline.compare(&compressed, &images, |_, _| {}).unwrap();
    assert_eq!(Some(compared), side_by_side.compressed);
    assert!(compared.mean_kl > 0.0);
}
