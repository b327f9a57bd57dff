//! Damaged containers at the command line, exhaustively: two small containers (about 1 KB each,
//! written by `pwlc compress`) are damaged at every byte position in turn (the byte XOR 0x5A)
//! and truncated to every shorter length, and each damaged file goes through the `pwlc` binary:
//!
//! - `decompress` exits 1 with exactly one line on stderr, naming the container (and the tensor
//!   when the byte lies in its payload), writes no file, and does not panic;
//! - `verify` exits 1;
//! - `decompress --salvage` either refuses with no file written (damage outside the payloads
//!   and their padding) or writes every other tensor bit-exactly as a good decode does, fills
//!   the damaged tensor with zeros, names it, and exits 1.
//!
//! Every case runs as its own process: a few thousand spawns per container, about half a minute
//! for the whole file in a release build. Every byte value at every position is covered at library
//! level by `crates/container/tests/damage.rs`.
//!
//! The file also checks that `--threads` changes no output byte of `compress` or `decompress`.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::common::{f32_tensor, pwlc};
use pwlc::models::{write_fresh, Format, Tensor};
use tempfile::TempDir;

/// One small container written by `pwlc compress`, with what a good decode gives.
struct Fixture {
    dir: TempDir,
    container: PathBuf,
    bytes: Vec<u8>,
    /// Name and payload byte range of every tensor, in file order.
    payloads: Vec<(String, Range<usize>)>,
    /// The tensors of a decode of the undamaged container.
    good: Vec<Tensor>,
}

/// Writes `tensors` as safetensors, compresses them with `args`, and decodes the result once.
fn fixture(tensors: &[Tensor], args: &[&str]) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model.safetensors");
    write_fresh(Format::Safetensors, tensors, &model).unwrap();
    let container = dir.path().join("model.pwlc");
    pwlc()
        .arg("compress")
        .arg(&model)
        .args(args)
        .arg("-o")
        .arg(&container)
        .assert()
        .success();
    let good_out = dir.path().join("good.safetensors");
    pwlc()
        .arg("decompress")
        .arg(&container)
        .arg("-o")
        .arg(&good_out)
        .assert()
        .success();
    let bytes = std::fs::read(&container).unwrap();
    let reader = pwlc::container::Reader::from_bytes(bytes.clone()).unwrap();
    let payloads = reader
        .entries()
        .iter()
        .map(|e| {
            (
                e.name.clone(),
                e.offset as usize..(e.offset + e.length) as usize,
            )
        })
        .collect();
    Fixture {
        good: pwlc::models::read(&good_out).unwrap().tensors,
        dir,
        container,
        bytes,
        payloads,
    }
}

/// Quant-coded matrices, a bias below `--min-elements` and an embedding matched by
/// `--lossless`, so the default method and both lossless paths of the policy are damaged.
fn quant_fixture() -> Fixture {
    let tensors = [
        f32_tensor("conv.weight", &[8, 2, 3, 3], 1000),
        f32_tensor("fc.weight", &[12, 16], 2000),
        f32_tensor("fc.bias", &[12], 3000),
        f32_tensor("emb.weight", &[6, 12], 4000),
    ];
    let args = [
        "--max-error",
        "1e-2",
        "--min-elements",
        "64",
        "--lossless",
        "^emb\\.",
    ];
    fixture(&tensors, &args)
}

/// A pwl-coded matrix and a lossless bias.
fn pwl_fixture() -> Fixture {
    let tensors = [
        f32_tensor("proj.weight", &[8, 24], 5000),
        f32_tensor("proj.bias", &[8], 6000),
    ];
    let args = ["--method", "pwl", "--p-rel", "0.1", "--min-elements", "64"];
    fixture(&tensors, &args)
}

/// Asserts which codec each tensor of a fixture went through (in file order: safetensors sorts
/// names), so the damage reaches each one.
fn assert_codecs(f: &Fixture, expected: &[(&str, &str)]) {
    let out = pwlc()
        .arg("inspect")
        .arg(&f.container)
        .arg("--json")
        .output()
        .unwrap();
    assert!(out.status.success());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let codecs: Vec<(String, String)> = report["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let field = |k: &str| t[k].as_str().unwrap().to_string();
            (field("name"), field("codec"))
        })
        .collect();
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(n, c)| (n.to_string(), c.to_string()))
        .collect();
    assert_eq!(codecs, expected);
    assert!(
        f.bytes.len() <= 2048,
        "the fixture should stay small: {} bytes",
        f.bytes.len()
    );
}

/// Runs `pwlc <args> <container>`, with `-o <out>` for `decompress`.
fn run(args: &[&str], container: &Path, out: Option<&Path>) -> Output {
    let mut cmd = pwlc();
    cmd.args(args).arg(container);
    if let Some(out) = out {
        cmd.arg("-o").arg(out);
    }
    cmd.output().unwrap()
}

/// Checks a refused run: exit code 1, one `pwlc: error:` line naming the container, no panic.
fn assert_refused(out: &Output, what: &str) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{what}: exit code; stderr: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{what}: panic: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{what}: one line: {stderr}");
    assert!(
        stderr.starts_with("pwlc: error: ") && stderr.contains("bad.pwlc"),
        "{what}: names the container: {stderr}"
    );
    stderr
}

/// The tensor whose payload holds byte `pos`, if any.
fn payload_at(f: &Fixture, pos: usize) -> Option<&str> {
    f.payloads
        .iter()
        .find(|(_, r)| r.contains(&pos))
        .map(|(n, _)| n.as_str())
}

/// A scratch folder with the damaged container and an empty folder for outputs.
struct Scratch {
    _dir: TempDir,
    bad: PathBuf,
    outputs: PathBuf,
}

impl Scratch {
    fn new() -> Scratch {
        let dir = tempfile::tempdir().unwrap();
        let outputs = dir.path().join("out");
        std::fs::create_dir(&outputs).unwrap();
        Scratch {
            bad: dir.path().join("bad.pwlc"),
            outputs,
            _dir: dir,
        }
    }

    fn output(&self) -> PathBuf {
        self.outputs.join("restored.safetensors")
    }

    /// Asserts that the output folder is empty (no model, no temporary file left behind).
    fn assert_nothing_written(&self, what: &str) {
        let left: Vec<_> = std::fs::read_dir(&self.outputs)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "{what}: files written: {left:?}");
    }

    fn clear_outputs(&self) {
        std::fs::remove_dir_all(&self.outputs).unwrap();
        std::fs::create_dir(&self.outputs).unwrap();
    }
}

/// Damages every byte in turn and checks `decompress`, `verify` and `decompress --salvage`.
/// Returns how many salvage runs recovered the other tensors: one for every byte of the
/// payloads and their padding.
fn check_every_byte(f: &Fixture) -> usize {
    let s = Scratch::new();
    let mut salvaged = 0;
    for pos in 0..f.bytes.len() {
        let mut bad = f.bytes.clone();
        bad[pos] ^= 0x5A;
        std::fs::write(&s.bad, &bad).unwrap();
        let what = format!("byte {pos} of {}", f.bytes.len());
        let stderr = assert_refused(&run(&["decompress"], &s.bad, Some(&s.output())), &what);
        s.assert_nothing_written(&what);
        let damaged = payload_at(f, pos);
        if let Some(name) = damaged {
            assert!(
                stderr.contains(&format!("'{name}'")),
                "{what}: names tensor {name}: {stderr}"
            );
        }
        assert_eq!(
            run(&["verify"], &s.bad, None).status.code(),
            Some(1),
            "{what}: verify"
        );
        salvaged += usize::from(check_salvage(f, &s, damaged, &what));
    }
    salvaged
}

/// Runs `decompress --salvage` on a damaged file. Damage in a payload loses exactly that
/// tensor; damage elsewhere loses at most one tensor (the one whose padding it hit) or refuses
/// the file. Returns whether a model was written.
fn check_salvage(f: &Fixture, s: &Scratch, damaged: Option<&str>, what: &str) -> bool {
    let out = run(&["decompress", "--salvage"], &s.bad, Some(&s.output()));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{what}: salvage exit code: {stderr}"
    );
    assert!(
        !stderr.contains("panicked"),
        "{what}: salvage panic: {stderr}"
    );
    if !s.output().exists() {
        assert!(damaged.is_none(), "{what}: salvage wrote nothing: {stderr}");
        s.assert_nothing_written(what);
        return false;
    }
    let lost = lost_tensors(&stderr);
    assert_eq!(lost.len(), 1, "{what}: one lost tensor: {stderr}");
    if let Some(name) = damaged {
        assert_eq!(lost[0], name, "{what}: the damaged tensor is named");
    }
    assert_salvaged(f, &s.output(), &lost[0], what);
    s.clear_outputs();
    true
}

/// The tensor names of the `lost tensor '...'` lines of a salvage run.
fn lost_tensors(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix("pwlc: lost tensor '"))
        .filter_map(|l| l.split_once('\'').map(|(name, _)| name.to_string()))
        .collect()
}

/// Asserts that a salvaged model holds the good decode's tensors, with `lost` all zeros.
fn assert_salvaged(f: &Fixture, output: &Path, lost: &str, what: &str) {
    let restored = pwlc::models::read(output).unwrap().tensors;
    assert_eq!(restored.len(), f.good.len(), "{what}: tensor count");
    for (good, got) in f.good.iter().zip(&restored) {
        assert_eq!(
            (&good.name, good.dtype, &good.shape),
            (&got.name, got.dtype, &got.shape),
            "{what}: tensor metadata"
        );
        if good.name == lost {
            assert!(got.data.iter().all(|&b| b == 0), "{what}: {lost} is zeros");
        } else {
            assert_eq!(good.data, got.data, "{what}: {} is bit-exact", good.name);
        }
    }
}

/// Truncates the container to every shorter length and checks `decompress` and `verify`.
fn check_every_truncation(f: &Fixture) {
    let s = Scratch::new();
    for len in 0..f.bytes.len() {
        std::fs::write(&s.bad, &f.bytes[..len]).unwrap();
        let what = format!("truncation to {len} of {} bytes", f.bytes.len());
        assert_refused(&run(&["decompress"], &s.bad, Some(&s.output())), &what);
        s.assert_nothing_written(&what);
        assert_eq!(
            run(&["verify"], &s.bad, None).status.code(),
            Some(1),
            "{what}: verify"
        );
    }
}

/// The bytes of the payload area: from the end of the 16-byte header to the index, which
/// starts at the first multiple of 8 after the last payload.
fn payload_area_bytes(f: &Fixture) -> usize {
    let end = f.payloads.last().map_or(16, |(_, r)| r.end);
    end.next_multiple_of(8) - 16
}

#[test]
fn every_damaged_byte_of_a_quant_container_is_refused_and_salvaged() {
    let f = quant_fixture();
    assert_codecs(
        &f,
        &[
            ("conv.weight", "quant"),
            ("emb.weight", "lossless"),
            ("fc.bias", "lossless"),
            ("fc.weight", "quant"),
        ],
    );
    assert_eq!(check_every_byte(&f), payload_area_bytes(&f));
}

#[test]
fn every_damaged_byte_of_a_pwl_container_is_refused_and_salvaged() {
    let f = pwl_fixture();
    assert_codecs(&f, &[("proj.bias", "lossless"), ("proj.weight", "pwl")]);
    assert_eq!(check_every_byte(&f), payload_area_bytes(&f));
}

#[test]
fn every_truncation_of_a_quant_container_is_refused() {
    check_every_truncation(&quant_fixture());
}

#[test]
fn every_truncation_of_a_pwl_container_is_refused() {
    check_every_truncation(&pwl_fixture());
}

/// `compress` and `decompress` write the same bytes with 1 and with 2 worker threads.
#[test]
fn the_thread_count_changes_no_output_byte() {
    let f = quant_fixture();
    let model = f.dir.path().join("model.safetensors");
    let mut containers = Vec::new();
    let mut models = Vec::new();
    for threads in ["1", "2"] {
        let container = f.dir.path().join(format!("t{threads}.pwlc"));
        pwlc()
            .arg("compress")
            .arg(&model)
            .args(["--max-error", "1e-2", "--min-elements", "64"])
            .args(["--threads", threads, "-o"])
            .arg(&container)
            .assert()
            .success();
        containers.push(std::fs::read(&container).unwrap());
        let restored = f.dir.path().join(format!("t{threads}.safetensors"));
        pwlc()
            .arg("decompress")
            .arg(&f.container)
            .args(["--threads", threads, "-o"])
            .arg(&restored)
            .assert()
            .success();
        models.push(std::fs::read(&restored).unwrap());
    }
    assert_eq!(containers[0], containers[1], "compress --threads 1 vs 2");
    assert_eq!(models[0], models[1], "decompress --threads 1 vs 2");
}
