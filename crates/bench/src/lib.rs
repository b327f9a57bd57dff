//! Benchmarks of pwlc and the generated results report.
//!
//! - [`run`]: every model at every operating point (quant at four absolute bounds, pwl at two
//!   tolerances, lossless): whole-file ratio, bits per coded weight, errors, compress and
//!   decompress speed with one thread and with all threads, peak memory, and accuracy of the
//!   decoded network against the original ([`pwlc_eval`]); anchor codecs measured by
//!   `bench/anchors` are merged and evaluated on the same images. Writes `bench.json`.
//! - [`thesis`]: chapter 5 of the thesis on the pwl codec: sweeps of `p`, `pm`, `pd`,
//!   ablations, a per-model table and the matrix encodings. Writes `thesis.json`.
//! - [`report`]: `docs/RESULTS.md` and its plots from those two files.
//!
//! Everything but the timings and memory figures is deterministic.

mod accuracy;
mod error;
mod machine;
mod measure;
mod plot;
pub mod report;
pub mod run;
mod schema;
pub mod thesis;

pub use error::BenchError;
pub use machine::Machine;
pub use schema::{
    BenchFile, ImageAccuracy, MatrixRow, ModelRow, Record, ScalingRow, SweepRow, ThesisFile,
    TokenAccuracy,
};
