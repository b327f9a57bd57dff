//! Model-file adapters.
//!
//! [`read`] turns a model file into a [`Model`]: its tensors (name, dtype, shape, little-endian
//! bytes) plus a `layout`, an adapter-private byte string holding everything else the file
//! contains (graph, metadata, tensor order, padding). [`write`] takes a layout and tensors with
//! the same names, dtypes and shapes (their values may differ) and writes a file of the same
//! format back; [`write_fresh`] writes tensors alone to a format that needs no layout.

mod error;
pub mod gguf;
pub mod numpy;
pub mod onnx;
mod output;
pub mod pytorch;
pub mod safetensors;

use std::path::Path;

use bytes::Bytes;
pub use error::ModelError;
pub use output::{map_file, write_atomic};
pub use pwlc_codecs::DType;

/// One tensor of a model file.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// Name, unique within the model.
    pub name: String,
    pub dtype: DType,
    /// Dimensions, outermost first (empty for a scalar).
    pub shape: Vec<u64>,
    /// Row-major little-endian element bytes (zero-copy from the memory-mapped input where the
    /// format allows).
    pub data: Bytes,
}

impl Tensor {
    /// Number of elements (the product of the shape).
    pub fn element_count(&self) -> u64 {
        self.shape.iter().product()
    }
}

/// A model file split into its tensors and everything else.
#[derive(Debug, Clone)]
pub struct Model {
    pub format: Format,
    pub tensors: Vec<Tensor>,
    /// Everything but the tensor data, in a form only this format's adapter reads.
    pub layout: Vec<u8>,
}

/// A supported model-file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    Safetensors,
    Onnx,
    Pytorch,
    Npy,
    Npz,
    Gguf,
}

impl Format {
    /// Every format.
    pub const ALL: [Format; 6] = [
        Format::Safetensors,
        Format::Onnx,
        Format::Pytorch,
        Format::Npy,
        Format::Npz,
        Format::Gguf,
    ];

    /// The name used on the command line and in the container.
    pub fn name(self) -> &'static str {
        match self {
            Format::Safetensors => "safetensors",
            Format::Onnx => "onnx",
            Format::Pytorch => "pytorch",
            Format::Npy => "npy",
            Format::Npz => "npz",
            Format::Gguf => "gguf",
        }
    }

    /// Inverse of [`Format::name`].
    pub fn from_name(name: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.name() == name)
    }

    /// The usual file extension.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Pytorch => "pth",
            other => other.name(),
        }
    }

    /// Guesses the format from the file's first bytes, then from its extension.
    pub fn detect(path: &Path, head: &[u8]) -> Option<Format> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        if head.starts_with(b"GGUF") {
            return Some(Format::Gguf);
        }
        if head.starts_with(b"\x93NUMPY") {
            return Some(Format::Npy);
        }
        if head.starts_with(b"PK\x03\x04") {
            return Some(if ext == "npz" {
                Format::Npz
            } else {
                Format::Pytorch
            });
        }
        match ext.as_str() {
            "safetensors" => Some(Format::Safetensors),
            "onnx" => Some(Format::Onnx),
            "pth" | "pt" | "bin" | "ckpt" => Some(Format::Pytorch),
            "npy" => Some(Format::Npy),
            "npz" => Some(Format::Npz),
            "gguf" => Some(Format::Gguf),
            _ => None,
        }
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Reads a model file, detecting its format.
pub fn read(path: &Path) -> Result<Model, ModelError> {
    let head = output::read_head(path, 16)?;
    let format = Format::detect(path, &head).ok_or_else(|| {
        ModelError::invalid(
            path,
            "unknown model format (expected safetensors, onnx, pth, npy, npz or gguf)",
        )
    })?;
    read_as(format, path)
}

/// Reads a model file of a known format.
pub fn read_as(format: Format, path: &Path) -> Result<Model, ModelError> {
    let (tensors, layout) = match format {
        Format::Safetensors => safetensors::read(path)?,
        Format::Onnx => onnx::read(path)?,
        Format::Pytorch => pytorch::read(path)?,
        Format::Npy => numpy::read_npy(path)?,
        Format::Npz => numpy::read_npz(path)?,
        Format::Gguf => gguf::read(path)?,
    };
    Ok(Model {
        format,
        tensors,
        layout,
    })
}

/// Writes `tensors` into a file of `format` laid out as `layout` (from [`read`] of the same
/// format). The tensors must be those `read` returned, in the same order, with new values.
/// The file is written to a temporary name beside `path` and renamed.
pub fn write(
    format: Format,
    layout: &[u8],
    tensors: &[Tensor],
    path: &Path,
) -> Result<(), ModelError> {
    match format {
        Format::Safetensors => safetensors::write(layout, tensors, path),
        Format::Onnx => onnx::write(layout, tensors, path),
        Format::Pytorch => pytorch::write(layout, tensors, path),
        Format::Npy => numpy::write_npy(layout, tensors, path),
        Format::Npz => numpy::write_npz(layout, tensors, path),
        Format::Gguf => gguf::write(layout, tensors, path),
    }
}

/// Writes `tensors` alone into a new file of `format` (conversion between formats).
pub fn write_fresh(format: Format, tensors: &[Tensor], path: &Path) -> Result<(), ModelError> {
    match format {
        Format::Safetensors => safetensors::write_fresh(tensors, path),
        Format::Npz => numpy::write_npz_fresh(tensors, path),
        other => Err(ModelError::invalid(
            path,
            &format!("cannot convert to {other}: it needs the structure of an original {other} file; convert to safetensors or npz"),
        )),
    }
}
