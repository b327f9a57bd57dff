//! The `pwlc` command: a thin layer over the `pwlc` library.

mod accuracy;
mod bench;
mod progress;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use pwlc::codecs::{pwl, quant, Bound, Method};
use pwlc::{CompressOptions, DecompressOptions, Format, Policy, Report};

use progress::Bar;

const EXAMPLES: &str = "\
Examples:
  pwlc compress model.onnx                      # writes model.onnx.pwlc (default method: quant)
  pwlc compress model.safetensors --max-error 1e-3 -o small.pwlc
  pwlc compress model.pth --method pwl --p 2e-4
  pwlc compress model.npz --method lossless
  pwlc decompress model.onnx.pwlc -o restored.onnx
  pwlc decompress model.pth.pwlc --format safetensors
  pwlc inspect model.onnx.pwlc --json
  pwlc verify model.onnx.pwlc
  pwlc eval model.onnx --compressed model.onnx.pwlc --images imagenet/ --preset torchvision
  pwlc tune model.onnx --images imagenet/ --min-agreement 0.99 -o small.pwlc
  pwlc tune encoder.onnx --tokens sentences.npz --min-cosine 0.999";

/// Make neural-network weight files small, with a guaranteed bound on how far any weight moves.
#[derive(Parser)]
#[command(name = "pwlc", version, about, after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Compress a model file (safetensors, onnx, pth/pt, npy, npz, gguf) into a .pwlc container.
    Compress(CompressArgs),
    /// Write the model stored in a .pwlc container back as a model file.
    Decompress(DecompressArgs),
    /// Show what a .pwlc container holds (reads only its index).
    Inspect(InspectArgs),
    /// Check every checksum of a .pwlc container and decode every tensor.
    Verify(InspectArgs),
    /// Measure a compressed ONNX model against the original on labelled images or sentences.
    Eval(accuracy::EvalArgs),
    /// Find per-tensor error bounds that keep accuracy, and write the smallest such container.
    Tune(accuracy::TuneArgs),
    /// Benchmarks: measure operating points, run the thesis sweeps, generate the results report.
    Bench(bench::BenchArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum MethodName {
    /// Error-bounded quantization with context-modelled entropy coding (the default).
    Quant,
    /// The thesis method: piecewise linearization of sorted rows + dense rank matrix.
    Pwl,
    /// Bit-exact coding of every tensor.
    Lossless,
    /// Store every tensor as it is (for testing).
    Raw,
}

#[derive(Args)]
struct CompressArgs {
    /// The model file to compress.
    input: PathBuf,
    /// Where to write the container [default: INPUT.pwlc].
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// The codec for the tensors the policy codes lossily.
    #[arg(long, value_enum, default_value = "quant")]
    method: MethodName,
    /// quant: absolute error bound for every coded weight.
    #[arg(long, value_name = "E", conflicts_with = "rel_error")]
    max_error: Option<f64>,
    /// quant: error bound per row (output channel), as a fraction of the row's RMS.
    #[arg(long, value_name = "R")]
    rel_error: Option<f64>,
    /// pwl: tolerance p, the absolute bound of each weight from its line segment [default:
    /// 1e-4].
    #[arg(long, value_name = "P", conflicts_with = "p_rel")]
    p: Option<f64>,
    /// pwl: tolerance as a fraction of each row's standard deviation.
    #[arg(long, value_name = "R")]
    p_rel: Option<f64>,
    #[command(flatten)]
    pwl: PwlArgs,
    #[command(flatten)]
    policy: PolicyArgs,
    /// Worker threads [default: all cores].
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Print the report as JSON on stdout instead of a table.
    #[arg(long)]
    json: bool,
    /// Overwrite the output if it exists.
    #[arg(long)]
    force: bool,
}

/// The thesis method's thresholds and ablation switches (see docs/METHOD.md).
#[derive(Args)]
struct PwlArgs {
    /// pwl: segments whose slopes differ by less than PD x p per rank share one slope ("parallel
    /// lines"); 0 disables sharing.
    #[arg(long, value_name = "PD", default_value_t = pwl::Options::default().pd)]
    pd: f64,
    /// pwl: merge tolerance in [0, 1): a segment starting within PM x p of the previous segment's
    /// extension joins it at no cost; 0 stores every segment start as f32.
    #[arg(long, value_name = "PM", default_value_t = pwl::Options::default().pm)]
    pm: f64,
    /// pwl: which values are sorted together: `row`, `layer`, `block:N`, or `auto` (per row, or
    /// the whole tensor where that is smaller, e.g. for depthwise kernels of nine weights).
    #[arg(long, value_name = "G", default_value = "row", value_parser = parse_granularity)]
    granularity: pwl::Granularity,
    /// pwl: use the greedy shrinking-cone linearization instead of the optimal one.
    #[arg(long)]
    greedy: bool,
    /// pwl ablation: store slopes as f16.
    #[arg(long)]
    f16_slopes: bool,
    /// pwl ablation: code each row's exact permutation (~log2(n!) bits) instead of packed ranks.
    #[arg(long)]
    permutation: bool,
    /// pwl ablation: fixed-length codes instead of Huffman for the segment parameters.
    #[arg(long)]
    no_huffman: bool,
}

impl PwlArgs {
    /// The codec options, after checking the thresholds.
    fn options(&self) -> Result<pwl::Options> {
        anyhow::ensure!(self.pd >= 0.0, "--pd must be >= 0, got {}", self.pd);
        anyhow::ensure!(
            (0.0..1.0).contains(&self.pm),
            "--pm must be in [0, 1), got {}",
            self.pm
        );
        Ok(pwl::Options {
            granularity: self.granularity,
            linearizer: if self.greedy {
                pwl::Linearizer::Greedy
            } else {
                pwl::Linearizer::Optimal
            },
            pd: self.pd,
            pm: self.pm,
            slope_precision: if self.f16_slopes {
                pwl::Precision::F16
            } else {
                pwl::Precision::F32
            },
            rank_coding: if self.permutation {
                pwl::RankCoding::Permutation
            } else {
                pwl::RankCoding::Packed
            },
            huffman: !self.no_huffman,
        })
    }
}

fn parse_granularity(s: &str) -> Result<pwl::Granularity, String> {
    match s {
        "row" => Ok(pwl::Granularity::Row),
        "layer" => Ok(pwl::Granularity::Layer),
        "auto" => Ok(pwl::Granularity::Auto),
        _ => s
            .strip_prefix("block:")
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|&n| n > 0)
            .map(pwl::Granularity::Block)
            .ok_or_else(|| format!("'{s}' is not row, layer, auto or block:N (N > 0)")),
    }
}

#[derive(Args)]
struct PolicyArgs {
    /// Store tensors whose name matches this regular expression losslessly.
    #[arg(long, value_name = "REGEX")]
    lossless: Option<String>,
    /// Store float tensors with fewer elements than this losslessly.
    #[arg(long, value_name = "N", default_value_t = 1024)]
    min_elements: u64,
}

#[derive(Args)]
struct DecompressArgs {
    /// The .pwlc container.
    input: PathBuf,
    /// Where to write the model [default: the original file name, beside the container].
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Write this format instead of the original one (conversion: safetensors or npz).
    #[arg(long, value_parser = parse_format)]
    format: Option<Format>,
    /// Worker threads [default: all cores].
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Overwrite the output if it exists.
    #[arg(long)]
    force: bool,
    /// Write the model even if some tensors are damaged: those are filled with zeros, listed on
    /// stderr, and the exit code is 1.
    #[arg(long)]
    salvage: bool,
}

#[derive(Args)]
struct InspectArgs {
    /// The .pwlc container.
    input: PathBuf,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    json: bool,
}

/// The default absolute bound of `quant`.
const DEFAULT_MAX_ERROR: f64 = 5e-4;
/// The default absolute tolerance of `pwl`. Its errors sit closer to the tolerance than quant's
/// (RMS about 0.72 p against 0.58 e), so it needs a tighter one for the same accuracy; measured
/// in docs/METHOD.md ("Tuning bounds for accuracy").
const DEFAULT_P: f64 = 1e-4;

fn parse_format(name: &str) -> Result<Format, String> {
    Format::from_name(name).ok_or_else(|| {
        let names: Vec<_> = Format::ALL.iter().map(|f| f.name()).collect();
        format!("unknown format '{name}' (one of {})", names.join(", "))
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pwlc: error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Compress(args) => with_threads(args.threads, || compress(&args)),
        Command::Decompress(args) => with_threads(args.threads, || decompress(&args)),
        Command::Eval(args) => accuracy::eval(&args),
        Command::Tune(args) => accuracy::tune(&args),
        Command::Inspect(args) => print_report(&pwlc::inspect(&args.input)?, args.json),
        Command::Bench(args) => bench::run(args),
        Command::Verify(args) => {
            let bar = Bar::new("verify");
            let report = pwlc::verify(&args.input, &|d, t| bar.update(d, t));
            bar.finish();
            let report = report?;
            if !args.json {
                println!(
                    "{}: ok, {} tensors verified",
                    args.input.display(),
                    report.tensors.len()
                );
                return Ok(());
            }
            print_report(&report, true)
        }
    }
}

/// Runs `f` on a pool of `threads` workers (all cores when `None`).
fn with_threads(threads: Option<usize>, f: impl FnOnce() -> Result<()> + Send) -> Result<()> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.unwrap_or(0))
        .build()
        .context("cannot start worker threads")?;
    pool.install(f)
}

fn method(args: &CompressArgs) -> Result<Method> {
    let check = |v: f64, flag: &str| {
        anyhow::ensure!(
            v.is_finite() && v >= 0.0,
            "{flag} must be a finite number >= 0, got {v}"
        );
        Ok(v)
    };
    Ok(match args.method {
        MethodName::Quant => {
            let bound = match (args.max_error, args.rel_error) {
                (_, Some(r)) => Bound::RelRms(check(r, "--rel-error")?),
                (e, None) => Bound::Abs(check(e.unwrap_or(DEFAULT_MAX_ERROR), "--max-error")?),
            };
            Method::Quant {
                bound,
                options: quant::Options::default(),
            }
        }
        MethodName::Pwl => {
            let bound = match (args.p, args.p_rel) {
                (_, Some(r)) => Bound::RelStd(check(r, "--p-rel")?),
                (p, None) => Bound::Abs(check(p.unwrap_or(DEFAULT_P), "--p")?),
            };
            Method::Pwl {
                bound,
                options: args.pwl.options()?,
            }
        }
        MethodName::Lossless => Method::Lossless,
        MethodName::Raw => Method::Raw,
    })
}

fn policy(args: &PolicyArgs) -> Result<Policy> {
    Policy::new(args.min_elements, args.lossless.as_deref())
        .context("--lossless is not a valid regular expression")
}

fn compress(args: &CompressArgs) -> Result<()> {
    let output = args
        .output
        .clone()
        .unwrap_or_else(|| append_extension(&args.input, "pwlc"));
    let options = CompressOptions {
        method: method(args)?,
        policy: policy(&args.policy)?,
        bounds: Vec::new(),
        force: args.force,
    };
    let bar = Bar::new("compress");
    let report = pwlc::compress(&args.input, &output, &options, &|d, t| bar.update(d, t));
    bar.finish();
    let report = report?;
    print_report(&report, args.json)?;
    if !args.json {
        println!("wrote {}", output.display());
    }
    Ok(())
}

fn decompress(args: &DecompressArgs) -> Result<()> {
    let output = match &args.output {
        Some(o) => o.clone(),
        None => pwlc::default_output(&args.input, args.format)?,
    };
    let options = DecompressOptions {
        format: args.format,
        force: args.force,
        salvage: args.salvage,
    };
    let bar = Bar::new("decompress");
    let done = pwlc::decompress(&args.input, &output, &options, &|d, t| bar.update(d, t));
    bar.finish();
    let done = done?;
    if args.json {
        print_report(&done.report, true)?;
    } else {
        println!(
            "wrote {} ({} tensors)",
            output.display(),
            done.report.tensors.len()
        );
    }
    for (name, why) in &done.lost {
        eprintln!("pwlc: lost tensor '{name}' (written as zeros): {why}");
    }
    anyhow::ensure!(
        done.lost.is_empty(),
        "{}: {} of {} tensors were damaged and written as zeros",
        output.display(),
        done.lost.len(),
        done.report.tensors.len()
    );
    Ok(())
}

fn print_report(report: &Report, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        print!("{}", report.table());
    }
    Ok(())
}

fn append_extension(path: &Path, ext: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}
