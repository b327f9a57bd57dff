//! File name → ImageNet-1k class index.

use crate::common;

use pwlc_eval::labels::{class_index, label_for_file_name};
use pwlc_eval::{EvalError, ImageSet, Preprocess};

#[test]
fn wnid_prefix_gives_the_standard_class_index() {
    assert_eq!(label_for_file_name("n01440764_tench.JPEG").unwrap(), 0);
    assert_eq!(label_for_file_name("n01443537_goldfish.JPEG").unwrap(), 1);
    assert_eq!(
        label_for_file_name("n15075141_toilet_tissue.png").unwrap(),
        999
    );
    assert_eq!(label_for_file_name("n04589890.jpg").unwrap(), 904);
    assert_eq!(class_index("n04589890"), Some(904));
}

#[test]
fn unknown_wnid_is_an_error_naming_the_file() {
    for name in ["n99999999_nothing.JPEG", "tench.JPEG", "_n01440764.png", ""] {
        let error = label_for_file_name(name).unwrap_err();
        assert!(
            matches!(&error, EvalError::UnknownWnid { file, .. } if file == name),
            "{name}: {error}"
        );
        assert!(error.to_string().contains(name), "{error}");
    }
}

/// Copies the fixture image to `dir` under each of `names`.
fn image_dir(names: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for name in names {
        std::fs::copy(
            common::fixtures().join("gradient.png"),
            dir.path().join(name),
        )
        .unwrap();
    }
    dir
}

#[test]
fn image_set_labels_by_wnid_in_file_name_order() {
    let dir = image_dir(&["n15075141_z.png", "n01443537_b.PNG", "n01440764_a.png"]);
    std::fs::write(dir.path().join("notes.txt"), "not an image").unwrap();
    let set = ImageSet::load(dir.path(), None, &Preprocess::TORCHVISION).unwrap();
    assert_eq!(
        set.names(),
        ["n01440764_a.png", "n01443537_b.PNG", "n15075141_z.png"]
    );
    assert_eq!(set.labels(), [0, 1, 999]);
    assert_eq!(set.item_len(), 3 * 224 * 224);
    let limited = ImageSet::load(dir.path(), Some(2), &Preprocess::TORCHVISION).unwrap();
    assert_eq!(limited.labels(), [0, 1]);
    assert_eq!(limited.pixels(0..2), set.pixels(0..2));
}

#[test]
fn image_set_rejects_unknown_wnids_and_empty_folders() {
    let dir = image_dir(&["n01440764_a.png", "n00000000_bad.png"]);
    let error = ImageSet::load(dir.path(), None, &Preprocess::TORCHVISION).unwrap_err();
    assert!(error.to_string().contains("n00000000_bad.png"), "{error}");
    let empty = tempfile::tempdir().unwrap();
    assert!(matches!(
        ImageSet::load(empty.path(), None, &Preprocess::TORCHVISION),
        Err(EvalError::NoImages(_))
    ));
}

#[test]
fn undecodable_image_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("n01440764_broken.JPEG"), b"not a jpeg").unwrap();
    let error = ImageSet::load(dir.path(), None, &Preprocess::TORCHVISION).unwrap_err();
    assert!(
        error.to_string().contains("n01440764_broken.JPEG"),
        "{error}"
    );
}

#[test]
fn alternating_split_gives_disjoint_halves_covering_the_set() {
    let dir = image_dir(&[
        "n01440764_a.png",
        "n01443537_b.png",
        "n01484850_c.png",
        "n01491361_d.png",
        "n01494475_e.png",
    ]);
    let set = ImageSet::load(dir.path(), None, &Preprocess::TORCHVISION).unwrap();
    let (calibration, report) = set.split_alternating();
    assert_eq!(
        calibration.names(),
        ["n01440764_a.png", "n01484850_c.png", "n01494475_e.png"]
    );
    assert_eq!(report.names(), ["n01443537_b.png", "n01491361_d.png"]);
    assert_eq!(calibration.labels(), [0, 2, 4]);
    assert_eq!(report.labels(), [1, 3]);
    assert_eq!(report.pixels(1..2), set.pixels(3..4));
    assert_eq!(calibration.pixels(2..3), set.pixels(4..5));
    let mut first = set.clone();
    first.truncate(2);
    assert_eq!(first.names(), &set.names()[..2]);
    assert_eq!(first.pixels(0..2), set.pixels(0..2));
}
