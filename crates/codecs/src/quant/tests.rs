use super::*;
use crate::{Bound, DType, Method, TensorRef};
use proptest::prelude::*;

/// Small deterministic generator (splitmix64) for test data of a given distribution.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1).
    fn unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    fn gaussian(&mut self) -> f64 {
        (-2.0 * self.unit().ln()).sqrt() * (std::f64::consts::TAU * self.unit()).cos()
    }

    fn laplacian(&mut self) -> f64 {
        let e = -self.unit().ln();
        if self.unit() < 0.5 {
            e
        } else {
            -e
        }
    }
}

/// The value distributions the bound must hold on.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Gaussian,
    Laplacian,
    Uniform,
    Constant,
    Outliers,
    Subnormal,
    NearMax,
    AnyBits,
    /// Far from zero relative to the spread: rows the encoder codes around a centre.
    Offset,
}

fn kinds() -> impl Strategy<Value = Kind> {
    prop_oneof![
        Just(Kind::Gaussian),
        Just(Kind::Laplacian),
        Just(Kind::Uniform),
        Just(Kind::Constant),
        Just(Kind::Outliers),
        Just(Kind::Subnormal),
        Just(Kind::NearMax),
        Just(Kind::AnyBits),
        Just(Kind::Offset),
    ]
}

fn sample(kind: Kind, scale: f64, rng: &mut Rng) -> f32 {
    let v = match kind {
        Kind::Gaussian => scale * rng.gaussian(),
        Kind::Laplacian => scale * rng.laplacian(),
        Kind::Uniform => scale * (2.0 * rng.unit() - 1.0),
        Kind::Constant => scale,
        Kind::Outliers if rng.unit() < 0.05 => 1e30 * rng.gaussian(),
        Kind::Outliers => scale * rng.gaussian(),
        Kind::Subnormal => 1e-40 * rng.gaussian(),
        Kind::NearMax => f32::MAX as f64 * (2.0 * rng.unit() - 1.0),
        Kind::AnyBits => f32::from_bits(rng.next_u64() as u32) as f64,
        Kind::Offset => scale * (1.0 + 1e-4 * rng.gaussian()),
    };
    let v = v as f32;
    if v.is_finite() {
        v
    } else {
        0.0
    }
}

/// Absolute bounds covering the edge cases: zero, subnormal, ordinary, huge.
fn bounds() -> impl Strategy<Value = f32> {
    prop_oneof![
        Just(0.0f32),
        Just(1e-45),
        Just(1e-39),
        Just(1e-3),
        Just(0.05),
        Just(f32::MAX),
        1e-6f32..1.0,
    ]
}

/// A tensor: `(values, rows, per-row bounds)`.
fn tensors() -> impl Strategy<Value = (Vec<f32>, usize, Vec<f32>)> {
    (1usize..6, 1usize..40, kinds(), -8.0f64..8.0, any::<u64>()).prop_flat_map(
        |(rows, cols, kind, log_scale, seed)| {
            let mut rng = Rng(seed);
            let scale = 2f64.powf(log_scale);
            let values: Vec<f32> = (0..rows * cols)
                .map(|_| sample(kind, scale, &mut rng))
                .collect();
            (
                Just(values),
                Just(rows),
                proptest::collection::vec(bounds(), rows),
            )
        },
    )
}

fn check_bound(values: &[f32], decoded: &[f32], bounds: &[f32]) -> Result<(), TestCaseError> {
    prop_assert_eq!(values.len(), decoded.len());
    let cols = values.len() / bounds.len();
    for (i, (&v, &d)) in values.iter().zip(decoded).enumerate() {
        let b = bounds[i / cols.max(1)];
        prop_assert!(
            within(v, d, b),
            "element {}: {} decoded as {} (bound {})",
            i,
            v,
            d,
            b
        );
    }
    Ok(())
}

/// Number of exceptions the lossy wrapper of `lib.rs` stored in `payload`.
fn exceptions(payload: &[u8]) -> usize {
    let mut r = ByteReader::new(payload);
    r.block().unwrap();
    r.varint().unwrap() as usize
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn encode_with_wrapper(values: &[f32], shape: &[u64], bound: f32) -> crate::Encoded {
    let data = f32_bytes(values);
    let t = TensorRef {
        dtype: DType::F32,
        shape,
        data: &data,
    };
    let method = Method::Quant {
        bound: Bound::Abs(bound as f64),
        options: Options::default(),
    };
    crate::encode(t, &method).unwrap()
}

fn gaussian_rows(rows: usize, cols: usize, scales: &[f64], seed: u64) -> Vec<f32> {
    let mut rng = Rng(seed);
    (0..rows * cols)
        .map(|i| (scales[(i / cols) % scales.len()] * rng.gaussian()) as f32)
        .collect()
}

proptest! {
    #[test]
    fn quant_keeps_every_value_within_its_bound((values, rows, bounds) in tensors()) {
        let payload = encode(&values, rows, &bounds, &Options::default());
        let decoded = decode(&payload, rows, values.len() / rows).unwrap();
        check_bound(&values, &decoded, &bounds)?;
    }

    /// The wrapper checks the bound on the encoder's reconstruction instead of decoding the
    /// payload, so the reconstruction must be the decoder's output, bit for bit (verbatim
    /// values, centred rows and zero or subnormal steps included).
    #[test]
    fn quant_reconstruction_is_what_decode_returns((values, rows, bounds) in tensors()) {
        let options = Options::default();
        let mut reconstructed = Vec::new();
        let payload = encode_with_reconstruction(&values, rows, &bounds, &options, |run| {
            reconstructed.extend_from_slice(run)
        });
        prop_assert_eq!(&payload, &encode(&values, rows, &bounds, &options));
        let decoded = decode(&payload, rows, values.len() / rows).unwrap();
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        prop_assert_eq!(bits(&reconstructed), bits(&decoded));
    }

    #[test]
    fn quant_needs_no_wrapper_exceptions((values, rows, bounds) in tensors()) {
        let shape = [rows as u64, (values.len() / rows) as u64];
        let enc = encode_with_wrapper(&values, &shape, bounds[0]);
        prop_assert_eq!(exceptions(&enc.payload), 0);
        prop_assert!(enc.max_abs_error <= bounds[0] as f64);
    }

    #[test]
    fn quant_options_change_size_not_values(
        (values, rows, bounds) in tensors(),
        max_classes in 0u8..20,
        refine_passes in 0u8..6,
    ) {
        let options = Options { max_classes, refine_passes };
        let payload = encode(&values, rows, &bounds, &options);
        let decoded = decode(&payload, rows, values.len() / rows).unwrap();
        check_bound(&values, &decoded, &bounds)?;
    }

    #[test]
    fn quant_decode_of_arbitrary_bytes_never_panics(
        bytes in proptest::collection::vec(any::<u8>(), 0..400),
        rows in 0usize..8,
        cols in 0usize..50,
    ) {
        let _ = decode(&bytes, rows, cols);
    }

    #[test]
    fn quant_decode_of_damaged_payloads_never_panics(
        (values, rows, bounds) in tensors(),
        position in any::<usize>(),
        xor in 1u8..=255,
    ) {
        let mut payload = encode(&values, rows, &bounds, &Options::default());
        let i = position % payload.len();
        payload[i] ^= xor;
        if let Ok(decoded) = decode(&payload, rows, values.len() / rows) {
            prop_assert_eq!(decoded.len(), values.len());
        }
    }

    #[test]
    fn quant_truncated_payloads_are_errors((values, rows, bounds) in tensors(), cut in any::<usize>()) {
        let payload = encode(&values, rows, &bounds, &Options::default());
        let cut = cut % payload.len();
        prop_assert!(decode(&payload[..cut], rows, values.len() / rows).is_err());
    }
}

#[test]
fn quant_rows_far_from_zero_are_coded_around_their_centre() {
    let (rows, cols) = (6, 4096);
    let offsets = [0.0, 0.0, 1.0, 0.0, 0.0, -1000.0];
    let mut rng = Rng(7);
    let noise: Vec<f64> = (0..rows * cols).map(|_| 2e-3 * rng.gaussian()).collect();
    let values: Vec<f32> = (0..rows * cols)
        .map(|i| (offsets[i / cols] + noise[i]) as f32)
        .collect();
    let bounds = [5e-4f32; 6];
    let payload = encode(&values, rows, &bounds, &Options::default());
    let decoded = decode(&payload, rows, cols).unwrap();
    for (i, (&v, &d)) in values.iter().zip(&decoded).enumerate() {
        assert!(within(v, d, bounds[i / cols]), "value {i}: {v} vs {d}");
    }
    // The same rows moved to zero: about the same size (two centres more).
    let around_zero: Vec<f32> = noise.iter().map(|&v| v as f32).collect();
    let plain = encode(&around_zero, rows, &bounds, &Options::default());
    assert!(
        payload.len() <= plain.len() + plain.len() / 50,
        "{} bytes with offsets, {} without",
        payload.len(),
        plain.len()
    );
}

#[test]
fn quant_centres_are_read_or_rejected() {
    let header = |fields: &[u64]| {
        let mut bytes = vec![STEP_SHARED | CENTRED];
        bytes.put_f32(1e-3);
        fields.iter().for_each(|&v| bytes.put_varint(v));
        bytes
    };
    let read = |bytes: Vec<u8>| read_steps(&mut ByteReader::new(&bytes), 4);
    // Two centred rows: row 1 at +3 (zigzag 6), row 3 at -2 (zigzag 3).
    let (steps, centres) = read(header(&[2, 1, 6, 1, 3])).unwrap();
    assert_eq!(steps, vec![1e-3]);
    assert_eq!(centres, vec![0, 3, 0, -2]);
    let max = 2 * u64::from(MAX_INDEX);
    for (fields, what) in [
        (&[0][..], "no centred row"),
        (
            &[5, 0, 2, 0, 2, 0, 2, 0, 2, 0, 2],
            "more centred rows than rows",
        ),
        (&[1, 4, 2], "a row past the last"),
        (&[1, 0, 0], "a zero centre"),
        (&[1, 0, max + 2], "a centre beyond the largest index"),
        (&[2, 0, 2], "a missing centre"),
    ] {
        assert!(read(header(fields)).is_err(), "{what}");
    }
}

#[test]
fn quant_tiny_rows_round_trip() {
    for cols in [1usize, 2] {
        let values: Vec<f32> = (0..6 * cols).map(|i| i as f32 * 0.37 - 1.0).collect();
        let bounds = [0.01f32, 0.0, 1e-45, f32::MAX, 0.5, 1e-3];
        let payload = encode(&values, 6, &bounds, &Options::default());
        let decoded = decode(&payload, 6, cols).unwrap();
        for (i, (&v, &d)) in values.iter().zip(&decoded).enumerate() {
            assert!(within(v, d, bounds[i / cols]), "{v} vs {d}");
        }
    }
}

#[test]
fn quant_empty_tensor_round_trips() {
    let payload = encode(&[], 3, &[0.1; 3], &Options::default());
    assert_eq!(decode(&payload, 3, 0).unwrap(), Vec::<f32>::new());
}

#[test]
fn quant_zero_bound_zero_row_costs_almost_nothing() {
    let cols = 4096;
    let mut values = gaussian_rows(4, cols, &[0.05], 1);
    let base = encode(&values, 4, &[1e-3; 4], &Options::default()).len();
    values.extend(std::iter::repeat_n(0.0, cols));
    let bounds = [1e-3, 1e-3, 1e-3, 1e-3, 0.0];
    let payload = encode(&values, 5, &bounds, &Options::default());
    assert!(
        payload.len() < base + 64,
        "{} vs {base} bytes",
        payload.len()
    );
    let decoded = decode(&payload, 5, cols).unwrap();
    assert!(decoded[4 * cols..].iter().all(|&v| v == 0.0));
}

#[test]
fn quant_gaussian_costs_close_to_its_entropy() {
    // sigma / step = 10: the quantized Gaussian has an entropy of about
    // log2(10 * sqrt(2 pi e)) = 5.37 bits.
    let (rows, cols) = (64, 1024);
    let values = gaussian_rows(rows, cols, &[0.02], 7);
    let payload = encode(&values, rows, &vec![1e-3; rows], &Options::default());
    let bits = payload.len() as f64 * 8.0 / values.len() as f64;
    assert!((5.3..5.45).contains(&bits), "{bits} bits per value");
}

#[test]
fn quant_row_classes_pay_off_on_rows_of_different_scales() {
    let (rows, cols) = (64, 512);
    let values = gaussian_rows(rows, cols, &[0.002, 0.2], 3);
    let bounds = vec![1e-3; rows];
    let one = Options {
        max_classes: 1,
        ..Options::default()
    };
    let single = encode(&values, rows, &bounds, &one).len();
    let classed = encode(&values, rows, &bounds, &Options::default()).len();
    assert!(
        (classed as f64) < 0.9 * single as f64,
        "{classed} vs {single} bytes"
    );
}

#[test]
fn quant_rejects_unknown_versions_and_modes() {
    let payload = encode(&[1.0, 2.0], 1, &[0.1], &Options::default());
    let mut bad = payload.clone();
    bad[0] = 9;
    assert!(matches!(
        decode(&bad, 1, 2),
        Err(CodecError::Unsupported(_))
    ));
    let mut bad = payload;
    bad[4] = 7;
    assert!(decode(&bad, 1, 2).is_err());
}
