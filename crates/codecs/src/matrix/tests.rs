//! Exact round trips of every matrix encoding.

use super::*;
use proptest::prelude::*;

fn matrices<E: Element + 'static>(
    values: impl Strategy<Value = E> + Clone + 'static,
    zero: E,
) -> impl Strategy<Value = Matrix<E>> {
    (0usize..12, 0usize..40).prop_flat_map(move |(rows, cols)| {
        let cell = prop_oneof![3 => Just(zero), 2 => values.clone()];
        proptest::collection::vec(cell, rows * cols)
            .prop_map(move |data| Matrix::new(rows, cols, data).unwrap())
    })
}

fn round_trip<E: Element>(m: &Matrix<E>) -> Result<(), TestCaseError> {
    for format in Format::ALL {
        let enc = encode(m, format);
        let back: Matrix<E> = decode(&enc.data, format, m.rows, m.cols).unwrap();
        let bits = |v: &[E]| v.iter().map(|e| e.code()).collect::<Vec<_>>();
        prop_assert_eq!(bits(&back.data), bits(&m.data), "{}", format.name());
        prop_assert_eq!(size(m, format), enc.bytes(), "{} size", format.name());
    }
    Ok(())
}

proptest! {
    #[test]
    fn matrix_f32_encodings_round_trip(m in matrices(
        prop_oneof![any::<f32>(), Just(-0.0f32), Just(0.5f32), Just(-1.25f32)], 0.0f32,
    )) {
        round_trip(&m)?;
    }

    #[test]
    fn matrix_code_encodings_round_trip(m in matrices(-8i32..8, 0i32)) {
        round_trip(&m)?;
    }

    #[test]
    fn matrix_decode_of_arbitrary_bytes_never_panics(
        bytes in proptest::collection::vec(any::<u8>(), 0..120),
        rows in 0usize..8,
        cols in 0usize..8,
    ) {
        for format in Format::ALL {
            let _ = decode::<f32>(&bytes, format, rows, cols);
            let _ = decode::<i32>(&bytes, format, rows, cols);
        }
    }
}

#[test]
fn matrix_shared_values_make_cser_smaller_than_csr() {
    let data: Vec<i32> = (0..64 * 256)
        .map(|i| [0, 0, 1, -1, 2][(i * 7 + i / 13) % 5])
        .collect();
    let m = Matrix::new(64, 256, data).unwrap();
    let size = |f| encode(&m, f).bytes();
    assert!(size(Format::Cser) < size(Format::Csr));
    assert!(size(Format::Cer) < size(Format::Coo));
}

#[test]
fn matrix_rejects_a_wrong_shape() {
    assert!(Matrix::new(2, 3, vec![0i32; 5]).is_err());
}
