//! The sentence-embedding network on the shared tokens (needs the shared data).

use crate::common;

use npyz::WriterBuilder;
use pwlc_eval::{evaluate_tokens, Network, TokenSet};

#[test]
fn minilm_matches_the_reference_embedding_and_itself() {
    let Some(shared) = common::shared("minilm_matches_the_reference_embedding_and_itself") else {
        return;
    };
    let mut tokens =
        TokenSet::load(&shared.join("data/text/imagenet_class_names_tokens.npz")).unwrap();
    assert_eq!((tokens.len(), tokens.seq_len()), (998, 16));
    tokens.truncate(12);
    assert_eq!(tokens.reference().unwrap().rows, 12);
    let model = shared.join("models/all_minilm_l6_v2.onnx");
    let original = Network::from_onnx(&model, None).unwrap();
    let same = Network::from_onnx(&model, Some(&common::float_initializers(&model))).unwrap();
    let report = evaluate_tokens(&original, Some(&same), &tokens, |_, _| {}).unwrap();
    assert_eq!(report.sentences, 12);
    let reference = report.reference.unwrap();
    assert!(reference.min > 0.9999, "{reference:?}");
    let compared = report.compressed.unwrap();
    assert_eq!(compared.cosine.min, compared.cosine.mean);
    assert!((compared.cosine.min - 1.0).abs() < 1e-9, "{compared:?}");
    assert_eq!(compared.neighbour_agreement, 1.0);

    let (calibration, held_out) = tokens.split_alternating();
    assert_eq!((calibration.len(), held_out.len()), (6, 6));
    let reference = tokens.reference().unwrap();
    let held_out_reference = held_out.reference().unwrap();
    assert_eq!(held_out_reference.rows, 6);
    assert_eq!(
        held_out_reference.data[..reference.cols],
        reference.data[reference.cols..2 * reference.cols]
    );
    let split_report = evaluate_tokens(&original, None, &held_out, |_, _| {}).unwrap();
    assert!(split_report.reference.unwrap().min > 0.9999);
}

#[test]
fn missing_token_arrays_are_errors_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.npz");
    let mut npz = npyz::npz::NpzWriter::create(&path).unwrap();
    let mut writer = npz
        .array("input_ids", Default::default())
        .unwrap()
        .default_dtype()
        .shape(&[1, 2])
        .begin_nd()
        .unwrap();
    writer.extend([1i64, 2]).unwrap();
    writer.finish().unwrap();
    drop(npz);
    let error = TokenSet::load(&path).unwrap_err();
    assert!(error.to_string().contains("attention_mask"), "{error}");
}
