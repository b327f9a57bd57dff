//! The benchmark library without shared data: a run on a synthetic model, the thesis sweeps on
//! it, the JSON schema, and the report from a hand-made bench.json.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use pwlc_bench::report::{best_at_equal_accuracy, report, ReportOptions};
use pwlc_bench::run::{run, OperatingPoint, RunOptions};
use pwlc_bench::thesis::{thesis, ThesisOptions};
use pwlc_bench::{BenchFile, ImageAccuracy, Machine, Record, ThesisFile, TokenAccuracy};
use pwlc_eval::{Accuracy, ClassifierComparison, CosineStats, EmbeddingComparison};
use pwlc_models::{write_fresh, DType, Format, Tensor};

/// Deterministic Gaussian-like weights (sum of uniforms) scaled to `scale`.
fn weights(n: usize, seed: u64, scale: f32) -> Vec<u8> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut uniform = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 40) as f32 / (1u64 << 24) as f32
    };
    (0..n)
        .flat_map(|_| {
            let g = (0..4).map(|_| uniform()).sum::<f32>() - 2.0;
            (g * scale).to_le_bytes()
        })
        .collect()
}

/// A safetensors model: a 48x128 and a 16x3x3x3 weight (coded lossily) and a bias.
fn synthetic_model(dir: &Path) -> PathBuf {
    let tensor = |name: &str, shape: &[u64], seed| {
        let n = shape.iter().product::<u64>() as usize;
        Tensor {
            name: name.to_string(),
            dtype: DType::F32,
            shape: shape.to_vec(),
            data: Bytes::from(weights(n, seed, 0.03)),
        }
    };
    let path = dir.join("synthetic.safetensors");
    let tensors = [
        tensor("fc.weight", &[48, 128], 1),
        tensor("conv.weight", &[16, 3, 3, 3], 2),
        tensor("fc.bias", &[48], 3),
    ];
    write_fresh(Format::Safetensors, &tensors, &path).expect("fixture written");
    path
}

#[test]
fn run_gives_a_record_per_operating_point() {
    let dir = tempfile::tempdir().unwrap();
    let model = synthetic_model(dir.path());
    let options = RunOptions {
        models: vec![model],
        images: None,
        tokens: None,
        limit: 8,
        runs: 1,
        anchors: None,
        out: dir.path().join("out"),
        pwlc_exe: None,
        command: "test".to_string(),
    };
    let file = run(&options, &|_| {}).unwrap();
    let points = OperatingPoint::all();
    assert_eq!(file.records.len(), points.len());
    for (record, point) in file.records.iter().zip(&points) {
        assert_eq!(record.model, "synthetic");
        assert_eq!(record.method, point.method_name());
        assert_eq!(record.lossy, point.method().is_lossy());
        if record.lossy {
            assert!(
                record.ratio_file > 1.0,
                "{}: {}",
                record.label(),
                record.ratio_file
            );
            let error = record.max_abs_error.unwrap();
            assert!(
                error > 0.0 && error <= point.bound() * 1.0001,
                "{}",
                record.label()
            );
        } else {
            assert_eq!(record.max_abs_error, Some(0.0));
        }
        assert!(record.encode_mb_s.unwrap() > 0.0);
        assert!(record.decode_mb_s_all_threads.unwrap() > 0.0);
        assert!(record.image.is_none() && record.tokens.is_none());
        assert!(record.peak_rss_compress_mb.is_none());
    }
    let quant = |e: f64| {
        file.records
            .iter()
            .find(|r| r.method == "quant" && r.error_bound == Some(e))
            .unwrap()
            .ratio_file
    };
    assert!(
        quant(2e-3) > quant(2.5e-4),
        "a looser bound gives a smaller file"
    );
    let written = BenchFile::read(&dir.path().join("out/bench.json")).unwrap();
    assert_eq!(written, file);
}

#[test]
fn thesis_sweeps_a_synthetic_model() {
    let dir = tempfile::tempdir().unwrap();
    let options = ThesisOptions {
        models: vec![synthetic_model(dir.path())],
        images: None,
        limit: 8,
        p: 5e-4,
        out: dir.path().to_path_buf(),
        command: "test".to_string(),
        scaling: false,
    };
    let file = thesis(&options, &|_| {}).unwrap();
    for section in ["p", "pd", "pm", "ablation"] {
        assert!(
            file.sweeps.iter().any(|r| r.section == section),
            "{section}"
        );
    }
    for row in &file.sweeps {
        assert!(row.ratio > 0.5 && row.max_abs_error > 0.0, "{row:?}");
        assert!(row.top1_agreement.is_none());
    }
    let by_label = |label: &str| file.sweeps.iter().find(|r| r.label == label).unwrap();
    assert!(by_label("p=0.005").ratio > by_label("p=0.0001").ratio);
    assert_eq!(file.models.len(), 1);
    assert_eq!(file.matrix.len(), 12, "4 encodings of 3 inputs");
    assert_eq!(
        ThesisFile::read(&dir.path().join("thesis.json")).unwrap(),
        file
    );
}

fn image(agreement: f64) -> ImageAccuracy {
    ImageAccuracy {
        images: 100,
        original: Accuracy {
            top1: 0.72,
            top5: 0.9,
        },
        compressed: ClassifierComparison {
            accuracy: Accuracy {
                top1: 0.71,
                top5: 0.9,
            },
            top1_agreement: agreement,
            mean_kl: 1e-3,
            estimated_agreement: None,
        },
    }
}

fn record(method: &str, param: &str, ratio: f64, agreement: f64, decode: f64) -> Record {
    let mut r = Record::new("net", method, param);
    r.lossy = true;
    r.ratio_file = ratio;
    r.bits_per_weight = Some(32.0 / ratio);
    r.max_abs_error = Some(1e-3);
    r.rmse = Some(5e-4);
    r.decode_mb_s = Some(decode);
    r.image = Some(image(agreement));
    r
}

/// A hand-made bench.json: pwlc and three anchors on one classifier, and an embedding model.
fn bench_file() -> BenchFile {
    let mut oracle = record("oracle", "abs=0.001", 4.4, 0.995, 0.0);
    oracle.decode_mb_s = None;
    oracle.error_bound = Some(1e-3);
    oracle.bits_per_weight = Some(7.1);
    oracle.source = "anchor".to_string();
    let mut quant = record("quant", "abs=0.001", 4.321, 0.996, 250.0);
    quant.error_bound = Some(1e-3);
    quant.bits_per_weight = Some(7.2);
    let mut tokens = record("quant", "abs=0.001", 4.7, 0.0, 300.0);
    tokens.model = "embedder".to_string();
    tokens.image = None;
    tokens.tokens = Some(TokenAccuracy {
        sentences: 50,
        compressed: EmbeddingComparison {
            cosine: CosineStats {
                mean: 0.99991,
                min: 0.9987,
            },
            neighbour_agreement: 1.0,
        },
    });
    tokens
        .extra
        .insert("note".to_string(), serde_json::json!("kept"));
    BenchFile {
        date: "2026-11-28".to_string(),
        machine: Machine {
            cpu: "Test CPU".to_string(),
            cores: 2,
            load_average: "0.5 0.5 0.5".to_string(),
            memory_gib: Some(24.0),
        },
        versions: BTreeMap::from([("pwlc".to_string(), "0.1.0".to_string())]),
        runs: 3,
        image_limit: Some(100),
        command: "pwlc bench run net.onnx".to_string(),
        wall_seconds: 12.0,
        method_notes: vec!["a note".to_string()],
        records: vec![
            quant,
            record("quant", "abs=0.002", 5.0, 0.97, 260.0),
            record("pwl", "p=0.0005", 2.5, 1.0, 120.0),
            record("nncodec", "qp=-32", 5.76, 0.992, 7.0),
            record("sz3", "abs=0.001", 4.1, 0.993, 100.0),
            oracle,
            tokens,
        ],
    }
}

#[test]
fn the_schema_round_trips_and_keeps_unknown_anchor_fields() {
    let file = bench_file();
    let text = serde_json::to_string(&file).unwrap();
    assert_eq!(serde_json::from_str::<BenchFile>(&text).unwrap(), file);

    let anchor = r#"{"model": "m", "method": "sz3", "param": "abs=0.001", "lossy": true,
        "ratio_file": 4.1, "bits_per_weight": 7.5, "max_abs_error": 0.001, "rmse": 0.0005,
        "encode_mb_s": 30.0, "decode_mb_s": 90.0, "error_bound": 0.001,
        "reconstructed_onnx": "/x/m/sz3_abs0.001.onnx", "compressed_bytes": 123}"#;
    let record: Record = serde_json::from_str(anchor).unwrap();
    assert_eq!(record.source, "anchor");
    assert_eq!(record.extra["compressed_bytes"], 123);
    let again = serde_json::to_value(&record).unwrap();
    assert_eq!(again["reconstructed_onnx"], "/x/m/sz3_abs0.001.onnx");
    assert_eq!(again["decode_mb_s"], 90.0);
}

#[test]
fn equal_accuracy_takes_the_smallest_file_that_agrees() {
    let file = bench_file();
    let best = best_at_equal_accuracy(&file.records, "net", &["quant", "pwl"], 0.99).unwrap();
    assert_eq!(best.param, "abs=0.001", "abs=0.002 agrees on only 97%");
    let loose = best_at_equal_accuracy(&file.records, "net", &["quant", "pwl"], 0.96).unwrap();
    assert_eq!(loose.param, "abs=0.002");
    assert!(best_at_equal_accuracy(&file.records, "net", &["zstd"], 0.99).is_none());
}

#[test]
fn report_tables_hold_the_numbers_and_plots_are_drawn() {
    let dir = tempfile::tempdir().unwrap();
    let bench = dir.path().join("bench.json");
    bench_file().write(&bench).unwrap();
    let out = dir.path().join("docs");
    let written = report(&ReportOptions {
        bench: Some(bench),
        thesis: None,
        out: out.clone(),
    })
    .unwrap();
    let md = std::fs::read_to_string(out.join("RESULTS.md")).unwrap();
    for needle in [
        "Test CPU",
        "medians of 3 runs",
        "VGG-16",
        "4.321x (abs=0.001, 99.6%)",
        "| net | quant abs=0.001 4.321x | NNCodec qp=-32 | 5.760x | 0.750x | 35.7x",
        "| net | abs=0.001 | 7.200 | 7.100 | +1.41% |",
        "cos mean 0.99991, min 0.99870, neighbours 100.0%",
        "results/net_ratio_vs_agreement.svg",
    ] {
        assert!(md.contains(needle), "RESULTS.md lacks {needle:?}:\n{md}");
    }
    let plots: Vec<&PathBuf> = written
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "svg"))
        .collect();
    assert!(plots.len() >= 3, "{written:?}");
    for plot in plots {
        let svg = std::fs::read_to_string(plot).unwrap();
        assert!(
            svg.contains("<svg") && svg.contains("quant"),
            "{}",
            plot.display()
        );
    }
}
