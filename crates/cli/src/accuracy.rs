//! `pwlc eval` and `pwlc tune`: accuracy of compressed models on real data.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use pwlc::codecs::quant;
use pwlc::{CompressOptions, Report};
use pwlc_eval::{
    evaluate_images, evaluate_tokens, ImageReport, ImageSet, Network, Preprocess, TokenReport,
    TokenSet,
};
use pwlc_tune::{Codec, Data, Event, Target, Tuned};
use serde::Serialize;

use crate::progress::Bar;
use crate::{PolicyArgs, PwlArgs};

/// Image preprocessing presets (see `pwlc eval --help`).
#[derive(Clone, Copy, ValueEnum)]
pub enum PresetName {
    /// torchvision ImageNet: resize 256, crop 224, ImageNet mean and std.
    Torchvision,
    /// EfficientNet-Lite: resize 256, crop 224, mean 0.498, std 0.502.
    Lite,
}

/// The data a model is evaluated on, and how images are prepared.
#[derive(Args)]
pub struct DataArgs {
    /// A folder of labelled ImageNet images (file names start with the WordNet id).
    #[arg(long, value_name = "DIR", required_unless_present = "tokens")]
    images: Option<PathBuf>,
    /// Tokenized sentences (npz with input_ids, attention_mask, token_type_ids) for an
    /// embedding model.
    #[arg(long, value_name = "NPZ", conflicts_with = "images")]
    tokens: Option<PathBuf>,
    /// Image preprocessing preset [default: by model name for the shared models].
    #[arg(long, value_enum)]
    preset: Option<PresetName>,
    /// Side of the center crop, in pixels (overrides the preset).
    #[arg(long, value_name = "S")]
    size: Option<u32>,
    /// Length the shorter side is resized to before cropping (overrides the preset).
    #[arg(long, value_name = "R")]
    resize: Option<u32>,
    /// Per-channel mean, as M1,M2,M3 (overrides the preset).
    #[arg(long, value_name = "M1,M2,M3", value_parser = parse_triple)]
    mean: Option<[f32; 3]>,
    /// Per-channel standard deviation, as S1,S2,S3 (overrides the preset).
    #[arg(long, value_name = "S1,S2,S3", value_parser = parse_triple)]
    std: Option<[f32; 3]>,
    /// Use only the first N images or sentences.
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
}

fn parse_triple(s: &str) -> Result<[f32; 3], String> {
    let values: Vec<f32> = s
        .split(',')
        .map(|v| v.trim().parse::<f32>())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("'{s}' is not three numbers separated by commas: {e}"))?;
    values
        .try_into()
        .map_err(|v: Vec<f32>| format!("'{s}' has {} values, expected 3", v.len()))
}

impl DataArgs {
    /// The preprocessing for `model`: the preset (given or known by the model's name), then
    /// the individual overrides.
    fn preprocess(&self, model: &Path) -> Result<Preprocess> {
        let preset = match self.preset {
            Some(PresetName::Torchvision) => Some(Preprocess::TORCHVISION),
            Some(PresetName::Lite) => Some(Preprocess::LITE),
            None => model
                .file_name()
                .and_then(|name| Preprocess::for_model(&name.to_string_lossy())),
        };
        let overridden = self.size.is_some()
            && self.resize.is_some()
            && self.mean.is_some()
            && self.std.is_some();
        let Some(mut preprocess) = preset.or(overridden.then_some(Preprocess::TORCHVISION)) else {
            bail!(
                "{}: unknown preprocessing; give --preset torchvision|lite or all of --size, --resize, --mean and --std",
                model.display()
            );
        };
        preprocess.size = self.size.unwrap_or(preprocess.size);
        preprocess.resize = self.resize.unwrap_or(preprocess.resize);
        preprocess.mean = self.mean.unwrap_or(preprocess.mean);
        preprocess.std = self.std.unwrap_or(preprocess.std);
        Ok(preprocess)
    }

    /// Loads the images or tokens for `model`.
    fn load(&self, model: &Path) -> Result<Data> {
        if let Some(path) = &self.tokens {
            let mut tokens = TokenSet::load(path)?;
            if let Some(limit) = self.limit {
                tokens.truncate(limit);
            }
            anyhow::ensure!(!tokens.is_empty(), "{}: no sentences", path.display());
            return Ok(Data::Tokens(tokens));
        }
        let dir = self
            .images
            .as_ref()
            .context("give --images DIR or --tokens NPZ")?;
        let preprocess = self.preprocess(model)?;
        Ok(Data::Images(ImageSet::load(dir, self.limit, &preprocess)?))
    }
}

/// One half of the data, split as `pwlc tune` splits it.
#[derive(Clone, Copy, ValueEnum)]
pub enum Split {
    /// Items 0, 2, 4, ... (file-name order for images): what `pwlc tune` calibrates on.
    Calibration,
    /// Items 1, 3, 5, ...: what `pwlc tune` reports on.
    HeldOut,
}

#[derive(Args)]
pub struct EvalArgs {
    /// The original ONNX model.
    model: PathBuf,
    /// The model to compare with the original: a .pwlc container of it, or a model file with
    /// the same tensor names (e.g. decoded by another tool), whose tensors replace the
    /// original's.
    #[arg(long, value_name = "FILE")]
    compressed: Option<PathBuf>,
    #[command(flatten)]
    data: DataArgs,
    /// Evaluate only one half of the data, as `pwlc tune` splits it (after --limit).
    #[arg(long, value_enum)]
    split: Option<Split>,
    /// Print the report as JSON on stdout instead of a table.
    #[arg(long)]
    json: bool,
}

/// `pwlc eval`.
pub fn eval(args: &EvalArgs) -> Result<()> {
    let data = args.data.load(&args.model)?;
    let data = match args.split {
        None => data,
        Some(Split::Calibration) => data.split_alternating().0,
        Some(Split::HeldOut) => data.split_alternating().1,
    };
    anyhow::ensure!(!data.is_empty(), "no items in the chosen half of the data");
    let original = Network::from_onnx(&args.model, None)?;
    let compressed = match &args.compressed {
        Some(path) if is_container(path)? => Some(compressed_network(&args.model, path)?),
        Some(path) => Some(replaced_network(&args.model, path)?),
        None => None,
    };
    let bar = Bar::items("evaluate");
    let tick = |done: usize, total: usize| bar.update(done as u64, total as u64);
    let report = match &data {
        Data::Images(images) => Evaluation::Images(evaluate_images(
            &original,
            compressed.as_ref(),
            images,
            tick,
        )?),
        Data::Tokens(tokens) => Evaluation::Tokens(evaluate_tokens(
            &original,
            compressed.as_ref(),
            tokens,
            tick,
        )?),
    };
    bar.finish();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.table());
    }
    Ok(())
}

/// The original network with the weights of `container` swapped in.
fn compressed_network(model: &Path, container: &Path) -> Result<Network> {
    let bar = Bar::new("decode");
    let decoded = pwlc::decode_tensors(container, &|d, t| bar.update(d, t));
    bar.finish();
    let (_, tensors) = decoded?;
    Network::from_onnx(model, Some(&tensors)).with_context(|| {
        format!(
            "{} does not fit {} (was it compressed from another model?)",
            container.display(),
            model.display()
        )
    })
}

/// Whether `path` starts with the .pwlc magic bytes.
fn is_container(path: &Path) -> Result<bool> {
    use std::io::Read;
    let mut head = [0u8; pwlc::container::MAGIC.len()];
    let mut file =
        std::fs::File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
    let read = file
        .read(&mut head)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    Ok(read == head.len() && head == pwlc::container::MAGIC)
}

/// The original network with the tensors of the model file `other` swapped in.
fn replaced_network(model: &Path, other: &Path) -> Result<Network> {
    let tensors = pwlc::models::read(other)?.tensors;
    Network::from_onnx(model, Some(&tensors)).with_context(|| {
        format!(
            "the tensors of {} do not fit {}",
            other.display(),
            model.display()
        )
    })
}

/// An evaluation report of either kind.
#[derive(Serialize)]
#[serde(untagged)]
enum Evaluation {
    Images(ImageReport),
    Tokens(TokenReport),
}

impl Evaluation {
    /// A readable table.
    fn table(&self) -> String {
        match self {
            Evaluation::Images(r) => image_table(r),
            Evaluation::Tokens(r) => token_table(r),
        }
    }
}

fn percent(x: f64) -> String {
    format!("{:.1}%", 100.0 * x)
}

fn image_table(r: &ImageReport) -> String {
    let mut out = format!(
        "{} images\n{:<12} {:>7} {:>7} {:>10} {:>10} {:>10}\n{:<12} {:>7} {:>7}\n",
        r.images,
        "model",
        "top-1",
        "top-5",
        "agreement",
        "estimated",
        "mean KL",
        "original",
        percent(r.original.top1),
        percent(r.original.top5)
    );
    if let Some(c) = &r.compressed {
        out += &format!(
            "{:<12} {:>7} {:>7} {:>10} {:>10} {:>10.2e}\n",
            "compressed",
            percent(c.accuracy.top1),
            percent(c.accuracy.top5),
            percent(c.top1_agreement),
            c.estimated_agreement
                .map_or("-".to_string(), |a| format!("{:.2}%", 100.0 * a)),
            c.mean_kl
        );
    }
    out
}

fn token_table(r: &TokenReport) -> String {
    let mut out = format!("{} sentences\n", r.sentences);
    if let Some(reference) = r.reference {
        out += &format!(
            "original vs stored reference embeddings: cosine mean {:.6}, min {:.6}\n",
            reference.mean, reference.min
        );
    }
    if let Some(c) = &r.compressed {
        out += &format!(
            "compressed vs original: cosine mean {:.6}, min {:.6}; nearest-neighbour agreement {}\n",
            c.cosine.mean,
            c.cosine.min,
            percent(c.neighbour_agreement)
        );
    }
    out
}

/// The codecs `pwlc tune` can tune.
#[derive(Clone, Copy, ValueEnum)]
pub enum TunedMethod {
    /// Error-bounded quantization (the default method).
    Quant,
    /// The thesis method (piecewise linearization).
    Pwl,
}

#[derive(Args)]
pub struct TuneArgs {
    /// The ONNX model to tune.
    model: PathBuf,
    #[command(flatten)]
    data: DataArgs,
    /// Image models: the top-1 agreement with the original to keep (measured on the
    /// calibration half, checked on the held-out half).
    #[arg(
        long,
        value_name = "A",
        default_value_t = 0.99,
        conflicts_with = "min_cosine"
    )]
    min_agreement: f64,
    /// Token models: the mean cosine similarity to the original embeddings to keep.
    #[arg(long, value_name = "C")]
    min_cosine: Option<f64>,
    /// The codec whose per-tensor bounds are tuned.
    #[arg(long, value_enum, default_value = "quant")]
    method: TunedMethod,
    #[command(flatten)]
    pwl: PwlArgs,
    /// Where to write the compressed model [default: MODEL.pwlc].
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Items the per-tensor sensitivity probes run on.
    #[arg(long, value_name = "N", default_value_t = 32)]
    probe_items: usize,
    /// Bisection steps of the search for the largest bounds that meet the target.
    #[arg(long, value_name = "N", default_value_t = 6)]
    steps: usize,
    /// Stop refining the search after this many seconds.
    #[arg(long, value_name = "SECONDS")]
    time_budget: Option<f64>,
    #[command(flatten)]
    policy: PolicyArgs,
    /// Print the result as JSON on stdout instead of tables.
    #[arg(long)]
    json: bool,
    /// Overwrite the output if it exists.
    #[arg(long)]
    force: bool,
}

/// The outcome of `pwlc tune`, as printed with `--json`.
#[derive(Serialize)]
struct TuneOutcome<'a> {
    model: &'a Path,
    output: &'a Path,
    calibration: &'a str,
    held_out: &'a str,
    tuned: &'a Tuned,
    compressed: &'a Report,
    held_out_evaluation: &'a Evaluation,
}

/// `pwlc tune`.
pub fn tune(args: &TuneArgs) -> Result<()> {
    let output = args
        .output
        .clone()
        .unwrap_or_else(|| crate::append_extension(&args.model, "pwlc"));
    if output.exists() && !args.force {
        bail!("{} exists (use --force to overwrite)", output.display());
    }
    let options = tune_options(args)?;
    let data = args.data.load(&args.model)?;
    anyhow::ensure!(
        data.len() >= 2,
        "tuning needs at least 2 images or sentences (one to calibrate on, one to check on)"
    );
    let (calibration, held_out) = data.split_alternating();
    let tuned = search(args, &calibration, &options)?;
    let compress = CompressOptions {
        method: options.codec.method(0.0),
        policy: options.policy.clone(),
        bounds: tuned.bounds(),
        force: args.force,
    };
    let bar = Bar::new("compress");
    let report = pwlc::compress(&args.model, &output, &compress, &|d, t| bar.update(d, t));
    bar.finish();
    let report = report?;
    let evaluation = check_held_out(&args.model, &output, &held_out)?;
    let outcome = TuneOutcome {
        model: &args.model,
        output: &output,
        calibration: "items 0, 2, 4, ... of the data (file-name order for images)",
        held_out: "items 1, 3, 5, ...",
        tuned: &tuned,
        compressed: &report,
        held_out_evaluation: &evaluation,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&outcome)?);
    } else {
        print_outcome(&outcome);
    }
    Ok(())
}

fn tune_options(args: &TuneArgs) -> Result<pwlc_tune::Options> {
    let target = match args.min_cosine {
        Some(c) => {
            anyhow::ensure!(
                (-1.0..=1.0).contains(&c),
                "--min-cosine must be in [-1, 1], got {c}"
            );
            Target::MinCosine(c)
        }
        None => {
            let a = args.min_agreement;
            anyhow::ensure!(
                (0.0..=1.0).contains(&a),
                "--min-agreement must be in [0, 1], got {a}"
            );
            Target::MinAgreement(a)
        }
    };
    let mut options = pwlc_tune::Options::new(target, crate::policy(&args.policy)?);
    options.codec = match args.method {
        TunedMethod::Quant => Codec::Quant(quant::Options::default()),
        TunedMethod::Pwl => Codec::Pwl(args.pwl.options()?),
    };
    options.probe_items = args.probe_items.max(1);
    options.search_steps = args.steps;
    if let Some(seconds) = args.time_budget {
        anyhow::ensure!(
            seconds.is_finite() && seconds >= 0.0,
            "--time-budget must be a number of seconds >= 0, got {seconds}"
        );
        options.time_budget = Some(std::time::Duration::from_secs_f64(seconds));
    }
    Ok(options)
}

/// Runs the tuner with a progress line on stderr.
fn search(args: &TuneArgs, calibration: &Data, options: &pwlc_tune::Options) -> Result<Tuned> {
    let bar = Bar::items("probe");
    let quiet = args.json;
    let mut report = |event: Event| match event {
        Event::Probe { done, total, .. } => bar.update(done as u64, total as u64),
        Event::Baseline { .. } => bar.finish(),
        Event::Trial(trial) if !quiet => eprintln!(
            "trial: scale {:.3e}, {:.3} bits/weight, distortion {:.3e}, {}",
            trial.scale,
            trial.bits_per_weight,
            trial.quality.distortion(),
            if trial.meets_target {
                "meets the target"
            } else {
                "misses the target"
            }
        ),
        Event::Trial(_) => {}
    };
    Ok(pwlc_tune::tune(
        &args.model,
        calibration,
        options,
        &mut report,
    )?)
}

/// Evaluates the written container on the held-out half.
fn check_held_out(model: &Path, container: &Path, held_out: &Data) -> Result<Evaluation> {
    let original = Network::from_onnx(model, None)?;
    let compressed = compressed_network(model, container)?;
    Ok(match held_out {
        Data::Images(images) => Evaluation::Images(evaluate_images(
            &original,
            Some(&compressed),
            images,
            |_, _| {},
        )?),
        Data::Tokens(tokens) => Evaluation::Tokens(evaluate_tokens(
            &original,
            Some(&compressed),
            tokens,
            |_, _| {},
        )?),
    })
}

fn print_outcome(outcome: &TuneOutcome) {
    let tuned = outcome.tuned;
    println!(
        "{:<48} {:>10} {:>10} {:>12} {:>10}",
        "tensor", "weights", "rms", "sensitivity", "bound"
    );
    for t in &tuned.tensors {
        println!(
            "{:<48} {:>10} {:>10.3e} {:>12.3e} {:>10.3e}",
            t.name, t.elements, t.rms, t.sensitivity, t.bound
        );
    }
    let totals = &outcome.compressed.totals;
    println!(
        "\n{} trials in {:.0} s; calibration ({} items): {:.3} bits/weight, distortion {:.3e}",
        tuned.trials.len(),
        tuned.seconds,
        tuned.calibration_items,
        tuned.chosen.bits_per_weight,
        tuned.chosen.quality.distortion()
    );
    println!(
        "held-out check ({}):\n{}",
        outcome.held_out,
        outcome.held_out_evaluation.table()
    );
    println!(
        "wrote {}: {} -> {} bytes ({:.3}x)",
        outcome.output.display(),
        totals.original_bytes,
        totals.stored_bytes,
        totals.ratio
    );
}
