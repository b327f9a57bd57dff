//! `pwlc bench ...`: argument parsing for the benchmarks in `pwlc-bench`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use pwlc_bench::report::ReportOptions;
use pwlc_bench::run::RunOptions;
use pwlc_bench::thesis::ThesisOptions;

/// The benchmark subcommands.
#[derive(Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    command: BenchCommand,
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Measure every operating point (quant, pwl, lossless) of each model: size, error, speed,
    /// peak memory and accuracy; merge and evaluate the anchors. Writes OUT/bench.json.
    Run(RunArgs),
    /// Thesis chapter 5 on the pwl codec: sweeps, ablations, per-model table, matrix
    /// encodings. Writes OUT/thesis.json.
    Thesis(ThesisArgs),
    /// Generate RESULTS.md and its plots from bench.json and thesis.json.
    Report(ReportArgs),
}

#[derive(Args)]
struct RunArgs {
    /// Model files (any format pwlc reads; accuracy needs ONNX).
    #[arg(required = true)]
    models: Vec<PathBuf>,
    /// Directory of labelled ImageNet images (file names start with the WordNet id).
    #[arg(long, value_name = "DIR")]
    images: Option<PathBuf>,
    /// Tokenized sentences (npz with input_ids, attention_mask, token_type_ids).
    #[arg(long, value_name = "NPZ")]
    tokens: Option<PathBuf>,
    /// Evaluate at most N images (or sentences) per model.
    #[arg(long, value_name = "N", default_value_t = pwlc_bench::run::DEFAULT_LIMIT)]
    limit: usize,
    /// Timings are medians of this many runs.
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..))]
    runs: u16,
    /// anchors.json written by bench/anchors/run.sh: merge its records and evaluate its
    /// reconstructed models.
    #[arg(long, value_name = "JSON")]
    anchors: Option<PathBuf>,
    /// Output directory.
    #[arg(long, value_name = "DIR", default_value = "target/bench/run")]
    out: PathBuf,
}

#[derive(Args)]
struct ThesisArgs {
    /// Model files.
    #[arg(required = true)]
    models: Vec<PathBuf>,
    /// Directory of labelled ImageNet images, for top-1 agreement.
    #[arg(long, value_name = "DIR")]
    images: Option<PathBuf>,
    /// Evaluate at most N images per model.
    #[arg(long, value_name = "N", default_value_t = pwlc_bench::thesis::DEFAULT_LIMIT)]
    limit: usize,
    /// The tolerance of every sweep but the sweep of p.
    #[arg(long, value_name = "P", default_value_t = pwlc_bench::thesis::DEFAULT_P)]
    p: f64,
    /// Skip the timed row-length scaling measurement.
    #[arg(long)]
    no_scaling: bool,
    /// Output directory.
    #[arg(long, value_name = "DIR", default_value = "target/bench/run")]
    out: PathBuf,
}

#[derive(Args)]
struct ReportArgs {
    /// bench.json written by `pwlc bench run`.
    #[arg(long, value_name = "JSON")]
    bench: Option<PathBuf>,
    /// thesis.json written by `pwlc bench thesis`.
    #[arg(long, value_name = "JSON")]
    thesis: Option<PathBuf>,
    /// Directory of RESULTS.md (plots go to its results/ folder).
    #[arg(long, value_name = "DIR", default_value = "docs")]
    out: PathBuf,
}

/// Runs a benchmark subcommand.
pub fn run(args: BenchArgs) -> Result<()> {
    let start = std::time::Instant::now();
    let log = |line: &str| {
        eprintln!(
            "pwlc bench [{:>6.1} s]: {line}",
            start.elapsed().as_secs_f64()
        )
    };
    match args.command {
        BenchCommand::Run(a) => {
            let options = RunOptions {
                models: a.models,
                images: a.images,
                tokens: a.tokens,
                limit: a.limit,
                runs: usize::from(a.runs),
                anchors: a.anchors,
                out: a.out.clone(),
                pwlc_exe: std::env::current_exe().ok(),
                command: command_line(),
            };
            let file = pwlc_bench::run::run(&options, &log)?;
            println!(
                "wrote {} ({} records, {:.0} s)",
                a.out.join("bench.json").display(),
                file.records.len(),
                file.wall_seconds
            );
        }
        BenchCommand::Thesis(a) => {
            anyhow::ensure!(a.p.is_finite() && a.p > 0.0, "--p must be > 0, got {}", a.p);
            let options = ThesisOptions {
                models: a.models,
                images: a.images,
                limit: a.limit,
                p: a.p,
                out: a.out.clone(),
                command: command_line(),
                scaling: !a.no_scaling,
            };
            let file = pwlc_bench::thesis::thesis(&options, &log)?;
            println!(
                "wrote {} ({} sweep rows)",
                a.out.join("thesis.json").display(),
                file.sweeps.len()
            );
        }
        BenchCommand::Report(a) => {
            anyhow::ensure!(
                a.bench.is_some() || a.thesis.is_some(),
                "give --bench and/or --thesis"
            );
            let options = ReportOptions {
                bench: a.bench,
                thesis: a.thesis,
                out: a.out,
            };
            let written = pwlc_bench::report::report(&options).context("report")?;
            for path in written {
                println!("wrote {}", path.display());
            }
        }
    }
    Ok(())
}

/// This process' command line, as `pwlc ARGS...`.
fn command_line() -> String {
    let args: Vec<String> = std::env::args().skip(1).collect();
    format!("pwlc {}", args.join(" "))
}
