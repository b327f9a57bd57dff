//! `pwlc bench run`: every model at every operating point, plus the anchors.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Instant;

use pwlc::codecs::{pwl, quant, Bound, Method};
use pwlc::{CompressOptions, DecompressOptions, Policy, Report};

use crate::accuracy::{stem, Data, Evaluator, Measured};
use crate::machine::{today, versions};
use crate::measure::{median, peak_rss_mb, timed_in_pool};
use crate::{BenchError, BenchFile, Machine, Record};

/// Images evaluated per image model by default: with the original's baseline computed once, a
/// run on MobileNetV2 and EfficientNet-Lite0 without anchors (8 network runs each) stays under
/// 15 minutes on 2 cores shared with other jobs: measured on 2026-11-28, 303 s in all at a load
/// average of about 4.5, and 15 s + 283 s + 297 s within a run with anchors at a load of 5-7.
/// Twice the images would take about twice as long, too close to the limit under load.
pub const DEFAULT_LIMIT: usize = 250;

/// Absolute bounds of the quant operating points.
pub const QUANT_BOUNDS: [f64; 4] = [2.5e-4, 5e-4, 1e-3, 2e-3];
/// Absolute tolerances of the pwl operating points.
pub const PWL_TOLERANCES: [f64; 2] = [5e-4, 1e-3];

/// What `pwlc bench run` measures and where it writes.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Model files (any format pwlc reads; accuracy needs ONNX).
    pub models: Vec<PathBuf>,
    /// Labelled ImageNet images for image classifiers.
    pub images: Option<PathBuf>,
    /// Tokenized sentences (npz) for embedding models.
    pub tokens: Option<PathBuf>,
    /// Evaluate at most this many images (or sentences) per model.
    pub limit: usize,
    /// Timings are medians of this many runs (at least 1).
    pub runs: usize,
    /// `anchors.json` written by `bench/anchors/run.sh`, to merge and evaluate.
    pub anchors: Option<PathBuf>,
    /// Output directory: `bench.json` and the work files under `work/`.
    pub out: PathBuf,
    /// The `pwlc` binary, run as a child process to measure peak memory (none: not measured).
    pub pwlc_exe: Option<PathBuf>,
    /// The command line, recorded in `bench.json`.
    pub command: String,
}

/// One method at one parameter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OperatingPoint {
    Quant(f64),
    Pwl(f64),
    Lossless,
}

impl OperatingPoint {
    /// Every operating point `bench run` measures.
    pub fn all() -> Vec<OperatingPoint> {
        let quant = QUANT_BOUNDS.iter().map(|&e| OperatingPoint::Quant(e));
        let pwl = PWL_TOLERANCES.iter().map(|&p| OperatingPoint::Pwl(p));
        quant.chain(pwl).chain([OperatingPoint::Lossless]).collect()
    }

    /// The method name, as `--method` takes it.
    pub fn method_name(&self) -> &'static str {
        match self {
            OperatingPoint::Quant(_) => "quant",
            OperatingPoint::Pwl(_) => "pwl",
            OperatingPoint::Lossless => "lossless",
        }
    }

    /// The parameter, in the anchors' style (`abs=0.0005`, `p=0.001`, `-`).
    pub fn param(&self) -> String {
        match self {
            OperatingPoint::Quant(e) => format!("abs={e}"),
            OperatingPoint::Pwl(p) => format!("p={p}"),
            OperatingPoint::Lossless => "-".to_string(),
        }
    }

    /// The absolute bound, 0 for lossless.
    pub fn bound(&self) -> f64 {
        match *self {
            OperatingPoint::Quant(e) | OperatingPoint::Pwl(e) => e,
            OperatingPoint::Lossless => 0.0,
        }
    }

    /// The pipeline's method.
    pub fn method(&self) -> Method {
        match *self {
            OperatingPoint::Quant(e) => Method::Quant {
                bound: Bound::Abs(e),
                options: quant::Options::default(),
            },
            OperatingPoint::Pwl(p) => Method::Pwl {
                bound: Bound::Abs(p),
                options: pwl::Options::default(),
            },
            OperatingPoint::Lossless => Method::Lossless,
        }
    }

    /// The same method as `pwlc compress` arguments.
    fn cli_args(&self) -> Vec<String> {
        let mut args = vec!["--method".to_string(), self.method_name().to_string()];
        match *self {
            OperatingPoint::Quant(e) => args.extend(["--max-error".to_string(), e.to_string()]),
            OperatingPoint::Pwl(p) => args.extend(["--p".to_string(), p.to_string()]),
            OperatingPoint::Lossless => {}
        }
        args
    }
}

/// Runs the benchmark, writes `OUT/bench.json` and returns what it wrote. `log` receives one
/// line per step.
pub fn run(options: &RunOptions, log: &dyn Fn(&str)) -> Result<BenchFile, BenchError> {
    let start = Instant::now();
    let machine = Machine::detect();
    let work = options.out.join("work");
    std::fs::create_dir_all(&work).map_err(|e| BenchError::io(&work, e))?;
    let anchors = match &options.anchors {
        Some(path) => Some(Anchors::read(path)?),
        None => None,
    };
    let memory = match &options.pwlc_exe {
        Some(exe) => Some(measure_memory(exe, &options.models, &work, log)?),
        None => None,
    };
    let mut records = Vec::new();
    for (i, model) in options.models.iter().enumerate() {
        let mut model_records = bench_model(model, options, anchors.as_ref(), &work, log)?;
        if let Some(memory) = &memory {
            for (record, (compress, decompress)) in model_records.iter_mut().zip(&memory.peaks[i]) {
                record.peak_rss_compress_mb = Some(*compress);
                record.peak_rss_decompress_mb = Some(*decompress);
            }
        }
        records.extend(model_records);
    }
    let mut all_versions = versions();
    if let Some(anchors) = &anchors {
        all_versions.extend(anchors.versions.clone());
    }
    let file = BenchFile {
        date: today(),
        machine,
        versions: all_versions,
        runs: options.runs.max(1),
        image_limit: options.images.as_ref().map(|_| options.limit),
        command: options.command.clone(),
        wall_seconds: start.elapsed().as_secs_f64(),
        method_notes: method_notes(options, memory.as_ref()),
        records,
    };
    file.write(&options.out.join("bench.json"))?;
    Ok(file)
}

/// How the figures were obtained, for the report.
fn method_notes(options: &RunOptions, memory: Option<&Memory>) -> Vec<String> {
    let mut notes = vec![
        format!(
            "Speeds: wall time of pwlc::compress (model file to .pwlc file) and pwlc::decompress (.pwlc file to model file), in MB (10^6 bytes) of the model file per second, on a rayon pool of 1 thread and of all threads; medians of {} runs.",
            options.runs.max(1)
        ),
        "Anchor speeds come from anchors.json: one thread, coding calls only (no file reading or writing), MB of float32 input per second.".to_string(),
    ];
    notes.push(match memory {
        Some(memory) => format!(
            "Peak memory: the pwlc binary run as a child process (all threads), `pwlc compress` then `pwlc decompress` of each point; its maximum resident set size from wait4's rusage (ru_maxrss). On Linux a child starts from its parent's high-water mark, so these runs come first, while the benchmark process is small: its own peak was {:.1} MB then, a floor under every figure.",
            memory.parent_peak_mb
        ),
        None => "Peak memory: not measured (no pwlc binary given).".to_string(),
    });
    notes
}

/// Every operating point of one model, then the anchors' records of that model.
fn bench_model(
    model: &Path,
    options: &RunOptions,
    anchors: Option<&Anchors>,
    work: &Path,
    log: &dyn Fn(&str),
) -> Result<Vec<Record>, BenchError> {
    let name = stem(model);
    log(&format!("{name}: computing the original's outputs"));
    let data = Data {
        images: options.images.as_deref(),
        tokens: options.tokens.as_deref(),
        limit: Some(options.limit),
    };
    let evaluator = Evaluator::for_model(model, data)?
        .map_err(|reason| log(&reason))
        .ok();
    let mut records = Vec::new();
    for point in OperatingPoint::all() {
        log(&format!(
            "{name}: {} {}",
            point.method_name(),
            point.param()
        ));
        records.push(bench_point(
            model,
            point,
            options,
            evaluator.as_ref(),
            work,
        )?);
    }
    if let Some(anchors) = anchors {
        records.extend(anchors.evaluate(&name, evaluator.as_ref(), log)?);
    }
    Ok(records)
}

/// One operating point of one model.
fn bench_point(
    model: &Path,
    point: OperatingPoint,
    options: &RunOptions,
    evaluator: Option<&Evaluator>,
    work: &Path,
) -> Result<Record, BenchError> {
    let name = stem(model);
    let (container, restored) = work_files(model, point, work);
    let bytes = std::fs::metadata(model)
        .map_err(|e| BenchError::io(model, e))?
        .len() as f64;
    let timing = time_point(model, &container, &restored, point, options.runs.max(1))?;
    let mut record = Record::new(&name, point.method_name(), &point.param());
    record.lossy = point != OperatingPoint::Lossless;
    record.error_bound = Some(point.bound());
    fill_sizes(&mut record, &timing.report);
    record.encode_mb_s = Some(bytes / 1e6 / timing.compress[0]);
    record.encode_mb_s_all_threads = Some(bytes / 1e6 / timing.compress[1]);
    record.decode_mb_s = Some(bytes / 1e6 / timing.decompress[0]);
    record.decode_mb_s_all_threads = Some(bytes / 1e6 / timing.decompress[1]);
    if let Some(evaluator) = evaluator {
        let (_, tensors) = pwlc::decode_tensors(&container, &|_, _| {})?;
        set_accuracy(&mut record, evaluator.compare(model, Some(&tensors))?);
    }
    std::fs::remove_file(&restored).map_err(|e| BenchError::io(&restored, e))?;
    Ok(record)
}

/// Median seconds of compress and decompress with one thread (`[0]`) and all threads (`[1]`),
/// and the report of the container.
struct Timing {
    report: Report,
    compress: [f64; 2],
    decompress: [f64; 2],
}

fn time_point(
    model: &Path,
    container: &Path,
    restored: &Path,
    point: OperatingPoint,
    runs: usize,
) -> Result<Timing, BenchError> {
    let compress_options = CompressOptions {
        method: point.method(),
        policy: Policy::default(),
        bounds: Vec::new(),
        force: true,
    };
    let decompress_options = DecompressOptions {
        force: true,
        ..DecompressOptions::default()
    };
    let all = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut seconds: [[Vec<f64>; 2]; 2] = Default::default();
    let mut report = None;
    for _ in 0..runs {
        for (slot, threads) in [1, all].into_iter().enumerate() {
            let (r, s) = timed_in_pool(threads, || {
                pwlc::compress(model, container, &compress_options, &|_, _| {})
            })?;
            report = Some(r?);
            seconds[0][slot].push(s);
            let (d, s) = timed_in_pool(threads, || {
                pwlc::decompress(container, restored, &decompress_options, &|_, _| {})
            })?;
            d?;
            seconds[1][slot].push(s);
        }
    }
    let [c, d] = seconds;
    let [c1, ca] = c;
    let [d1, da] = d;
    Ok(Timing {
        report: report.ok_or_else(|| BenchError::Other("no run".to_string()))?,
        compress: [median(c1), median(ca)],
        decompress: [median(d1), median(da)],
    })
}

/// Whole-file ratio, bits per coded weight and the errors of the coded set, from a report.
pub(crate) fn fill_sizes(record: &mut Record, report: &Report) {
    let coded = report
        .tensors
        .iter()
        .filter(|t| t.policy.starts_with("lossy"));
    let (mut weights, mut stored, mut max_error, mut sum_sq) = (0u64, 0u64, 0f64, 0f64);
    for t in coded {
        let n = t.shape.iter().product::<u64>();
        weights += n;
        stored += t.stored_bytes;
        max_error = max_error.max(t.max_abs_error);
        sum_sq += t.rmse * t.rmse * n as f64;
    }
    record.ratio_file = report.totals.ratio;
    if weights > 0 {
        record.bits_per_weight = Some(stored as f64 * 8.0 / weights as f64);
        record.max_abs_error = Some(max_error);
        record.rmse = Some((sum_sq / weights as f64).sqrt());
    }
}

/// Peak memory of every operating point of every model, and of this process when they ran.
struct Memory {
    /// (compress, decompress) MB per model, per point in [`OperatingPoint::all`] order.
    peaks: Vec<Vec<(f64, f64)>>,
    parent_peak_mb: f64,
}

/// Runs `pwlc compress` and `pwlc decompress` at every point of every model as child
/// processes and reads their peak memory.
fn measure_memory(
    exe: &Path,
    models: &[PathBuf],
    work: &Path,
    log: &dyn Fn(&str),
) -> Result<Memory, BenchError> {
    let mut peaks = Vec::new();
    for model in models {
        log(&format!(
            "{}: peak memory of pwlc compress/decompress",
            stem(model)
        ));
        let points = OperatingPoint::all()
            .into_iter()
            .map(|point| {
                let (container, restored) = work_files(model, point, work);
                let peaks = peak_memory(exe, model, &container, &restored, point)?;
                std::fs::remove_file(&restored).map_err(|e| BenchError::io(&restored, e))?;
                Ok(peaks)
            })
            .collect::<Result<Vec<_>, BenchError>>()?;
        peaks.push(points);
    }
    Ok(Memory {
        peaks,
        parent_peak_mb: own_peak_mb(),
    })
}

/// This process' peak resident set size (`VmHWM`), MB; 0 where `/proc` does not tell.
fn own_peak_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
            line.split_whitespace().nth(1)?.parse::<f64>().ok()
        })
        .map_or(0.0, |kib| kib * 1024.0 / 1e6)
}

/// The container and restored-model paths of one point.
fn work_files(model: &Path, point: OperatingPoint, work: &Path) -> (PathBuf, PathBuf) {
    let name = stem(model);
    let file_name = model.file_name().map(PathBuf::from).unwrap_or_default();
    (
        work.join(format!(
            "{name}.{}{}.pwlc",
            point.method_name(),
            point.bound()
        )),
        work.join(format!("restored.{}", file_name.display())),
    )
}

/// Peak memory (MB) of `pwlc compress` and `pwlc decompress` at this point.
fn peak_memory(
    exe: &Path,
    model: &Path,
    container: &Path,
    restored: &Path,
    point: OperatingPoint,
) -> Result<(f64, f64), BenchError> {
    let mut compress: Vec<OsString> = vec!["compress".into(), model.into(), "-o".into()];
    compress.push(container.into());
    compress.extend(point.cli_args().into_iter().map(OsString::from));
    compress.extend(["--force".into(), "--json".into()]);
    let decompress: Vec<OsString> = vec![
        "decompress".into(),
        container.into(),
        "-o".into(),
        restored.into(),
        "--force".into(),
    ];
    Ok((peak_rss_mb(exe, &compress)?, peak_rss_mb(exe, &decompress)?))
}

/// Stores a measured accuracy in the record.
fn set_accuracy(record: &mut Record, measured: Measured) {
    match measured {
        Measured::Images(image) => record.image = Some(image),
        Measured::Tokens(tokens) => record.tokens = Some(tokens),
    }
}

/// The records of an `anchors.json` and the directory they were read from.
struct Anchors {
    path: PathBuf,
    records: Vec<Record>,
    versions: std::collections::BTreeMap<String, String>,
}

impl Anchors {
    fn read(path: &Path) -> Result<Anchors, BenchError> {
        #[derive(serde::Deserialize)]
        struct File {
            records: Vec<Record>,
            #[serde(default)]
            versions: std::collections::BTreeMap<String, serde_json::Value>,
        }
        let file: File = crate::schema::read_json(path)?;
        let versions = file
            .versions
            .into_iter()
            .map(|(k, v)| {
                (
                    format!("anchors/{k}"),
                    v.as_str().unwrap_or("?").to_string(),
                )
            })
            .collect();
        let records = file
            .records
            .into_iter()
            .map(|mut r| {
                r.source = "anchor".to_string();
                r
            })
            .collect();
        Ok(Anchors {
            path: path.to_path_buf(),
            records,
            versions,
        })
    }

    /// The anchor records of `model`, the lossy ones evaluated when there is an evaluator and
    /// their reconstructed ONNX file is found.
    fn evaluate(
        &self,
        model: &str,
        evaluator: Option<&Evaluator>,
        log: &dyn Fn(&str),
    ) -> Result<Vec<Record>, BenchError> {
        let mut out = Vec::new();
        for record in self.records.iter().filter(|r| r.model == model) {
            let mut record = record.clone();
            if let (Some(evaluator), true) = (evaluator, record.lossy) {
                match self.reconstructed(&record) {
                    Some(onnx) => {
                        log(&format!("{model}: anchor {}", record.label()));
                        set_accuracy(&mut record, evaluator.compare(&onnx, None)?);
                    }
                    None => log(&format!(
                        "{model}: anchor {}: reconstructed ONNX not found, not evaluated",
                        record.label()
                    )),
                }
            }
            out.push(record);
        }
        Ok(out)
    }

    /// The reconstructed ONNX file of an anchor record: the recorded path, or the same file
    /// name under `MODEL/` beside `anchors.json` (when the results were moved).
    fn reconstructed(&self, record: &Record) -> Option<PathBuf> {
        let recorded = PathBuf::from(record.extra.get("reconstructed_onnx")?.as_str()?);
        if recorded.is_file() {
            return Some(recorded);
        }
        let moved = self
            .path
            .parent()?
            .join(&record.model)
            .join(recorded.file_name()?);
        moved.is_file().then_some(moved)
    }
}
