//! Preprocessing against values computed with PIL and numpy (tests/fixtures/make_fixture.py).

use crate::common;

use pwlc_eval::Preprocess;

/// The fixture's preprocessing: resize 21, crop 16 (an odd excess of 5 rows tests the
/// half-to-even rounding of the crop offset), ImageNet mean and std.
const FIXTURE: Preprocess = Preprocess {
    size: 16,
    resize: 21,
    ..Preprocess::TORCHVISION
};

fn expected() -> Vec<f32> {
    let bytes = std::fs::read(common::fixtures().join("gradient.npy")).unwrap();
    let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
    assert_eq!(npy.shape(), [3, 16, 16]);
    npy.into_vec::<f32>().unwrap()
}

#[test]
fn matches_pil_bilinear_within_one_grey_level() {
    let actual = FIXTURE
        .load(&common::fixtures().join("gradient.png"))
        .unwrap();
    let expected = expected();
    assert_eq!(actual.len(), expected.len());
    // Differences in grey levels (0..255) per value: PIL rounds its horizontal pass to u8,
    // `image` keeps it in f32, so single values may move by one level.
    let plane = 16 * 16;
    let levels: Vec<f32> = actual
        .iter()
        .zip(&expected)
        .enumerate()
        .map(|(i, (a, e))| (a - e).abs() * FIXTURE.std[i / plane] * 255.0)
        .collect();
    let max = levels.iter().copied().fold(0.0, f32::max);
    let mean = levels.iter().sum::<f32>() / levels.len() as f32;
    assert!(max <= 1.01, "max difference {max} grey levels");
    assert!(mean <= 0.25, "mean difference {mean} grey levels");
}

#[test]
fn misplaced_crop_or_other_normalization_fails_the_comparison() {
    let expected = expected();
    let shifted = Preprocess {
        resize: 22,
        ..FIXTURE
    };
    let lite = Preprocess {
        mean: Preprocess::LITE.mean,
        std: Preprocess::LITE.std,
        ..FIXTURE
    };
    for other in [shifted, lite] {
        let actual = other
            .load(&common::fixtures().join("gradient.png"))
            .unwrap();
        let max = actual
            .iter()
            .zip(&expected)
            .map(|(a, e)| (a - e).abs())
            .fold(0.0, f32::max);
        assert!(max > 0.1, "{other:?} agrees with the fixture (max {max})");
    }
}
