//! What `compress`, `inspect` and `verify` report, per tensor and in total.

use pwlc_container::{Entry, FileInfo};
use serde::Serialize;

use crate::Policy;

/// One tensor of a container.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TensorReport {
    pub name: String,
    pub dtype: String,
    pub shape: Vec<u64>,
    pub codec: String,
    /// What the policy decided for this tensor, and why.
    pub policy: String,
    pub original_bytes: u64,
    pub stored_bytes: u64,
    pub max_abs_error: f64,
    pub rmse: f64,
}

/// Whole-file totals. `ratio` is the original file's size over the container's size.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Totals {
    pub original_bytes: u64,
    pub stored_bytes: u64,
    pub ratio: f64,
    /// Largest error over all tensors.
    pub max_abs_error: f64,
}

/// A container described tensor by tensor.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    pub format: String,
    pub file_name: String,
    pub tensors: Vec<TensorReport>,
    pub totals: Totals,
}

impl Report {
    /// Builds the report from a container's index; `container_size` is its size on disk.
    pub fn from_index(info: &FileInfo, entries: &[Entry], container_size: u64) -> Report {
        let policy = policy_of(&info.settings);
        let tensors: Vec<TensorReport> = entries
            .iter()
            .map(|e| TensorReport {
                name: e.name.clone(),
                dtype: e.dtype.name().to_string(),
                shape: e.shape.clone(),
                codec: crate::codec_name(e.codec),
                policy: policy
                    .decide(&e.name, e.dtype, &e.shape)
                    .reason()
                    .to_string(),
                original_bytes: e.original_bytes,
                stored_bytes: e.length,
                max_abs_error: e.max_abs_error,
                rmse: e.rmse,
            })
            .collect();
        let max_abs_error = tensors.iter().map(|t| t.max_abs_error).fold(0.0, f64::max);
        Report {
            format: info.format.clone(),
            file_name: info.file_name.clone(),
            totals: Totals {
                original_bytes: info.original_size,
                stored_bytes: container_size,
                ratio: info.original_size as f64 / container_size.max(1) as f64,
                max_abs_error,
            },
            tensors,
        }
    }

    /// A fixed-width table: one row per tensor and a total row.
    pub fn table(&self) -> String {
        let name_width = self
            .tensors
            .iter()
            .map(|t| t.name.chars().count())
            .max()
            .unwrap_or(4)
            .clamp(6, 60);
        let mut out = format!(
            "{:<name_width$}  {:>5}  {:>18}  {:>8}  {:>12}  {:>12}  {:>7}  {:>10}\n",
            "tensor", "dtype", "shape", "codec", "original", "stored", "ratio", "max error"
        );
        for t in &self.tensors {
            let shape = t
                .shape
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join("x");
            out += &format!(
                "{:<name_width$}  {:>5}  {:>18}  {:>8}  {:>12}  {:>12}  {:>6.2}x  {:>10.3e}\n",
                truncate(&t.name, name_width),
                t.dtype,
                truncate(&shape, 18),
                t.codec,
                t.original_bytes,
                t.stored_bytes,
                t.original_bytes as f64 / t.stored_bytes.max(1) as f64,
                t.max_abs_error,
            );
        }
        out += &format!(
            "{:<name_width$}  {:>5}  {:>18}  {:>8}  {:>12}  {:>12}  {:>6.2}x  {:>10.3e}\n",
            format!("total ({} tensors, whole file)", self.tensors.len()),
            "",
            "",
            "",
            self.totals.original_bytes,
            self.totals.stored_bytes,
            self.totals.ratio,
            self.totals.max_abs_error,
        );
        out
    }
}

/// The policy recorded in a container's settings (the default where a field is missing).
fn policy_of(settings: &str) -> Policy {
    let v: serde_json::Value = serde_json::from_str(settings).unwrap_or_default();
    let min_elements = v["min_elements"]
        .as_u64()
        .unwrap_or(Policy::default().min_elements);
    Policy::new(min_elements, v["lossless_regex"].as_str()).unwrap_or_default()
}

fn truncate(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        s.to_string()
    } else {
        let tail: String = s
            .chars()
            .rev()
            .take(width - 1)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        format!("…{tail}")
    }
}
