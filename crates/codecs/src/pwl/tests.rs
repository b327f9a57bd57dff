//! Property tests of the pwl codec: the bound holds without exceptions, decoding never panics.

use super::*;
use proptest::prelude::*;

/// The bit patterns of `values`, so that comparisons tell -0 from 0 and compare NaNs.
fn bits(values: &[f32]) -> Vec<u32> {
    values.iter().map(|x| x.to_bits()).collect()
}

/// A small deterministic generator (xorshift64*), so the distributions need no extra crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        ((self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    fn gaussian(&mut self) -> f64 {
        (-2.0 * self.next().ln()).sqrt() * (std::f64::consts::TAU * self.next()).cos()
    }

    fn laplacian(&mut self) -> f64 {
        let u = self.next() - 0.5;
        -u.signum() * (1.0 - 2.0 * u.abs()).max(1e-300).ln()
    }
}

#[derive(Debug, Clone, Copy)]
enum Shape {
    Uniform,
    Gaussian,
    Laplacian,
    Constant,
    HugeRange,
}

fn sample(shape: Shape, n: usize, seed: u64, scale: f64) -> Vec<f32> {
    let mut rng = Rng(seed | 1);
    (0..n)
        .map(|_| match shape {
            Shape::Uniform => (rng.next() * 2.0 - 1.0) * scale,
            Shape::Gaussian => rng.gaussian() * scale,
            Shape::Laplacian => rng.laplacian() * scale,
            Shape::Constant => scale,
            Shape::HugeRange => {
                let e = rng.next() * 70.0 - 35.0;
                (rng.next() - 0.5).signum() * 10f64.powf(e)
            }
        } as f32)
        .collect()
}

fn shapes() -> impl Strategy<Value = Shape> {
    prop_oneof![
        Just(Shape::Uniform),
        Just(Shape::Gaussian),
        Just(Shape::Laplacian),
        Just(Shape::Constant),
        Just(Shape::HugeRange),
    ]
}

fn options() -> impl Strategy<Value = Options> {
    (
        prop_oneof![
            Just(Granularity::Row),
            Just(Granularity::Layer),
            Just(Granularity::Auto),
            (1usize..50).prop_map(Granularity::Block)
        ],
        prop_oneof![Just(Linearizer::Optimal), Just(Linearizer::Greedy)],
        prop_oneof![Just(0.0), 0.0f64..0.5, Just(1e6)],
        prop_oneof![Just(0.0), 0.0f64..1.0],
        prop_oneof![Just(Precision::F32), Just(Precision::F16)],
        prop_oneof![Just(RankCoding::Packed), Just(RankCoding::Permutation)],
        any::<bool>(),
    )
        .prop_map(
            |(granularity, linearizer, pd, pm, slope_precision, rank_coding, huffman)| Options {
                granularity,
                linearizer,
                pd,
                pm,
                slope_precision,
                rank_coding,
                huffman,
            },
        )
}

/// Encodes, decodes, and checks every value against its row's bound.
fn check_bound(values: &[f32], rows: usize, bounds: &[f32], options: &Options) {
    let cols = values.len() / rows;
    let payload = encode(values, rows, bounds, options);
    let decoded = decode(&payload, rows, cols).expect("decodes");
    assert_eq!(decoded.len(), values.len());
    for (i, (&v, &d)) in values.iter().zip(&decoded).enumerate() {
        let bound = bounds[i / cols.max(1)];
        let err = (v as f64 - d as f64).abs();
        assert!(
            err <= bound as f64,
            "value {i}: {v} decoded as {d}, error {err} > bound {bound} ({options:?})"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn pwl_bound_holds_without_exceptions(
        shape in shapes(),
        rows in 1usize..5,
        cols in 0usize..200,
        seed in any::<u64>(),
        scale in prop_oneof![Just(1.0), 1e-6f64..1e3],
        rel in prop_oneof![Just(0.0), 1e-6f64..0.5],
        options in options(),
    ) {
        let values = sample(shape, rows * cols, seed, scale);
        let bounds: Vec<f32> = (0..rows).map(|r| (rel * scale * (1.0 + r as f64)) as f32).collect();
        check_bound(&values, rows, &bounds, &options);
    }

    #[test]
    fn pwl_reconstruction_is_what_decode_returns(
        shape in shapes(),
        rows in 1usize..5,
        cols in 0usize..200,
        seed in any::<u64>(),
        rel in prop_oneof![Just(0.0), 1e-6f64..0.5],
        options in options(),
    ) {
        let values = sample(shape, rows * cols, seed, 1.0);
        let bounds: Vec<f32> = (0..rows).map(|r| (rel * (1.0 + r as f64)) as f32).collect();
        let (payload, reconstructed) = encode_reconstructed(&values, rows, &bounds, &options);
        prop_assert_eq!(&payload, &encode(&values, rows, &bounds, &options));
        let decoded = decode(&payload, rows, cols).expect("decodes");
        prop_assert_eq!(bits(&reconstructed), bits(&decoded));
        let baseline = decode_with(&payload, rows, cols, |v| v, Instructions::Baseline);
        prop_assert_eq!(bits(&baseline.expect("decodes")), bits(&decoded));
    }

    #[test]
    fn pwl_tiny_rows_keep_the_bound(
        values in proptest::collection::vec(-1e6f32..1e6, 1..=2),
        bound in prop_oneof![Just(0.0f32), 0.0f32..10.0],
        options in options(),
    ) {
        check_bound(&values, 1, &[bound], &options);
    }

    #[test]
    fn pwl_wrapper_reports_no_exceptions(
        shape in shapes(),
        seed in any::<u64>(),
        rel in 1e-4f64..0.3,
        options in options(),
    ) {
        let values = sample(shape, 3 * 64, seed, 0.05);
        let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let shape = [3u64, 64];
        let t = crate::TensorRef { dtype: crate::DType::F32, shape: &shape, data: &data };
        let method = crate::Method::Pwl { bound: crate::Bound::RelStd(rel), options };
        let enc = crate::encode(t, &method).unwrap();
        let mut r = ByteReader::new(&enc.payload);
        r.block().unwrap();
        prop_assert_eq!(r.varint().unwrap(), 0, "exceptions were needed");
        let bounds = crate::Bound::RelStd(rel).per_row(&values, 3);
        let back = crate::decode(enc.codec, crate::DType::F32, &shape, &enc.payload).unwrap();
        for (i, b) in back.chunks_exact(4).enumerate() {
            let d = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            prop_assert!((values[i] as f64 - d as f64).abs() <= bounds[i / 64] as f64);
        }
    }

    #[test]
    fn pwl_decode_of_arbitrary_bytes_never_panics(
        bytes in proptest::collection::vec(any::<u8>(), 0..200),
        rows in 0usize..6,
        cols in 0usize..40,
    ) {
        let _ = decode(&bytes, rows, cols);
    }

    #[test]
    fn pwl_decode_of_damaged_payloads_never_panics(
        seed in any::<u64>(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        options in options(),
    ) {
        let values = sample(Shape::Gaussian, 4 * 50, seed, 0.1);
        let payload = encode(&values, 4, &[0.01; 4], &options);
        prop_assert!(decode(&payload[..payload.len() / 2], 4, 50).is_err());
        let mut damaged = payload.clone();
        for (at, byte) in flips {
            let i = at.index(damaged.len());
            damaged[i] ^= byte;
        }
        // Both instruction sets accept and reject the same payloads, with the same values.
        prop_assert_eq!(
            decode(&damaged, 4, 50).map(|v| bits(&v)),
            decode_with(&damaged, 4, 50, |v| v, Instructions::Baseline).map(|v| bits(&v))
        );
    }
}

#[test]
fn pwl_optimal_needs_no_more_segments_than_greedy_on_gaussian_rows() {
    let values = sample(Shape::Gaussian, 64 * 512, 7, 0.05);
    let bounds = vec![5e-4f32; 64];
    let count = |linearizer| {
        let options = Options {
            linearizer,
            ..Options::default()
        };
        encode_with_stats(&values, 64, &bounds, &options).1.pieces
    };
    let (opt, greedy) = (count(Linearizer::Optimal), count(Linearizer::Greedy));
    assert!(opt <= greedy, "optimal {opt} vs greedy {greedy}");
}

#[test]
fn pwl_compresses_gaussian_rows_below_half_of_f32() {
    let values = sample(Shape::Gaussian, 64 * 1024, 11, 0.02);
    let bounds = vec![5e-4f32; 64];
    let (payload, stats) = encode_with_stats(&values, 64, &bounds, &Options::default());
    assert!(payload.len() * 2 < values.len() * 4, "{stats:?}");
    assert_eq!(stats.rank_bytes, values.len() * 10 / 8);
}

/// With a bound near the values' `f32` rounding step the decoder's arithmetic cuts most walked
/// runs short; the placement still keeps segments long. (Without a limit on the walks after a
/// cut, every segment walked the rest of a long run, took an intercept that fit the whole walk
/// in `f64`, and was cut to a literal: 13,850 segments here, 13,459 of them literals, and time
/// quadratic in the run's length.)
#[test]
fn pwl_bound_near_the_rounding_step_keeps_segments_long() {
    let values: Vec<f32> = sample(Shape::Gaussian, 4 * 8192, 5, 1e-6)
        .into_iter()
        .map(|v| 1.0 + v)
        .collect();
    let bounds = vec![1e-7f32; 4];
    check_bound(&values, 4, &bounds, &Options::default());
    let (_, stats) = encode_with_stats(&values, 4, &bounds, &Options::default());
    assert!(stats.segments * 20 < values.len(), "{stats:?}");
}

/// `Auto` keeps the smaller of the per-row and the whole-tensor payload: the whole tensor on
/// rows of nine values (a depthwise 3x3 kernel each), the rows on long rows, where it encodes
/// once (the per-row payload is below the whole tensor's rank stream alone).
#[test]
fn pwl_auto_granularity_keeps_the_smaller_payload() {
    let with = |granularity| Options {
        granularity,
        ..Options::default()
    };
    let sizes = |values: &[f32], rows: usize| {
        let bounds = vec![1e-4f32; rows];
        let [row, layer, auto] = [Granularity::Row, Granularity::Layer, Granularity::Auto]
            .map(|g| encode(values, rows, &bounds, &with(g)));
        check_bound(values, rows, &bounds, &with(Granularity::Auto));
        (row, layer, auto)
    };
    let kernels = sample(Shape::Gaussian, 576 * 9, 3, 0.1);
    let (row, layer, auto) = sizes(&kernels, 576);
    assert!(layer.len() < row.len(), "{} vs {}", layer.len(), row.len());
    assert_eq!(auto, layer);
    let long = sample(Shape::Gaussian, 16 * 1024, 4, 0.02);
    let (row, layer, auto) = sizes(&long, 16);
    assert!(row.len() < layer.len(), "{} vs {}", row.len(), layer.len());
    assert_eq!(auto, row);
}
