//! Results do not depend on the thread count: compressing a model in rayon pools of 1 and of 4
//! threads gives byte-identical containers, and decoding them with 1 and 4 threads gives
//! identical tensors, for the quant, pwl and lossless methods.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use pwlc::codecs::{dtype, quant, Bound, DType, Method};
use pwlc::{CompressOptions, Format, Policy, Tensor};
use rayon::ThreadPoolBuilder;
use tempfile::TempDir;

/// Deterministic pseudo-random values in [-1, 1) (a 64-bit LCG; no RNG crate needed for this).
fn values(seed: u64, count: usize) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..count)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn tensor(name: &str, dtype: DType, shape: &[u64], seed: u64) -> Tensor {
    let count = shape.iter().product::<u64>() as usize;
    let v = values(seed, count);
    let data = match dtype {
        DType::I64 => v
            .iter()
            .flat_map(|x| ((x * 1000.0) as i64).to_le_bytes())
            .collect(),
        float => {
            let scaled: Vec<f32> = v.iter().map(|x| x * 0.1).collect();
            dtype::from_f32(float, &scaled).expect("a float dtype")
        }
    };
    Tensor {
        name: name.to_string(),
        dtype,
        shape: shape.to_vec(),
        data: Bytes::from(data),
    }
}

/// A safetensors model with lossy-coded matrices of several float types, small and integer
/// tensors (coded losslessly), and more tensors than threads.
fn write_model(dir: &Path) -> PathBuf {
    let tensors = vec![
        tensor("conv.weight", DType::F32, &[16, 3, 3, 3], 1),
        tensor("conv.bias", DType::F32, &[16], 2),
        tensor("fc1.weight", DType::F32, &[64, 48], 3),
        tensor("fc1.bias", DType::F32, &[64], 4),
        tensor("fc2.weight", DType::F16, &[32, 64], 5),
        tensor("emb.weight", DType::BF16, &[40, 32], 6),
        tensor("head.weight", DType::F32, &[10, 200], 7),
        tensor("steps", DType::I64, &[8], 8),
    ];
    let path = dir.join("model.safetensors");
    pwlc::models::write_fresh(Format::Safetensors, &tensors, &path).expect("write the model");
    path
}

fn methods() -> Vec<(&'static str, Method)> {
    let bound = Bound::RelRms(0.05);
    vec![
        (
            "quant",
            Method::Quant {
                bound,
                options: quant::Options::default(),
            },
        ),
        (
            "pwl",
            Method::Pwl {
                bound,
                options: Default::default(),
            },
        ),
        ("lossless", Method::Lossless),
    ]
}

/// Runs `f` inside a fresh rayon pool of `threads` threads.
fn in_pool<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
    ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("build a rayon pool")
        .install(f)
}

/// Compresses `input` to `output` with `method` in a pool of `threads`; returns the bytes.
fn compress(input: &Path, output: &Path, method: &Method, threads: usize) -> Vec<u8> {
    let options = CompressOptions {
        method: method.clone(),
        policy: Policy::default(),
        bounds: Vec::new(),
        force: false,
    };
    in_pool(threads, || {
        pwlc::compress(input, output, &options, &|_, _| {})
    })
    .unwrap_or_else(|e| panic!("compress with {threads} threads: {e}"));
    std::fs::read(output).expect("read the container")
}

fn decode(container: &Path, threads: usize) -> Vec<Tensor> {
    in_pool(threads, || pwlc::decode_tensors(container, &|_, _| {}))
        .unwrap_or_else(|e| panic!("decode with {threads} threads: {e}"))
        .1
}

#[test]
fn containers_and_tensors_do_not_depend_on_the_thread_count() {
    let dir = TempDir::new().expect("temporary folder");
    let input = write_model(dir.path());
    for (name, method) in methods() {
        let one = dir.path().join(format!("{name}-1.pwlc"));
        let four = dir.path().join(format!("{name}-4.pwlc"));
        let bytes_one = compress(&input, &one, &method, 1);
        let bytes_four = compress(&input, &four, &method, 4);
        assert!(
            bytes_one == bytes_four,
            "{name}: containers differ between 1 and 4 threads"
        );

        let decoded_one = decode(&one, 1);
        let decoded_four = decode(&one, 4);
        assert_eq!(decoded_one.len(), 8, "{name}: tensor count");
        assert!(
            decoded_one == decoded_four,
            "{name}: decoded tensors differ between 1 and 4 threads"
        );
    }
}

/// Guards the test above against passing vacuously: the methods do produce different
/// containers, so equal bytes above are not equal by construction.
#[test]
fn the_methods_produce_different_containers() {
    let dir = TempDir::new().expect("temporary folder");
    let input = write_model(dir.path());
    let containers: Vec<Vec<u8>> = methods()
        .iter()
        .map(|(name, m)| compress(&input, &dir.path().join(format!("{name}.pwlc")), m, 2))
        .collect();
    assert!(containers[0] != containers[1] && containers[1] != containers[2]);
}
