//! pwlc: compress neural-network weight files with a guaranteed bound on how far any weight
//! moves, and give back a file of the same format.
//!
//! This crate is the pipeline over the three libraries below it: model files are read by
//! [`pwlc_models`], each tensor is coded by [`pwlc_codecs`] as the [`Policy`] decides, and the
//! results are stored in a `.pwlc` container ([`pwlc_container`]). Work runs in parallel over
//! tensors on the current rayon pool; results are identical whatever the thread count.

mod error;
mod policy;
mod report;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
pub use error::Error;
pub use policy::{Decision, Policy};
use pwlc_codecs::{Bound, CodecId, Method, TensorRef};
use pwlc_container::{FileInfo, Reader, Writer};
pub use pwlc_models::{Format, Model, Tensor};
use rayon::prelude::*;
pub use report::{Report, TensorReport, Totals};
pub use {pwlc_codecs as codecs, pwlc_container as container, pwlc_models as models};

/// Called with (bytes done, bytes in total) as work progresses; must be cheap.
pub type Progress<'a> = &'a (dyn Fn(u64, u64) + Sync);

/// How to compress a model file.
#[derive(Debug, Clone)]
pub struct CompressOptions {
    /// The method for tensors the policy codes lossily (`Method::Lossless`/`Raw` code everything
    /// that way).
    pub method: Method,
    /// Which tensors are coded lossily.
    pub policy: Policy,
    /// Per-tensor bounds that replace the method's bound (e.g. from `pwlc tune`).
    pub bounds: Vec<(String, Bound)>,
    /// Overwrite an existing output.
    pub force: bool,
}

impl CompressOptions {
    /// The method for one tensor, after the policy and the per-tensor bounds.
    pub fn method_for(&self, tensor: &Tensor) -> Method {
        if !self
            .policy
            .decide(&tensor.name, tensor.dtype, &tensor.shape)
            .is_lossy()
        {
            return match self.method {
                Method::Raw => Method::Raw,
                _ => Method::Lossless,
            };
        }
        let bound = self
            .bounds
            .iter()
            .find(|(n, _)| *n == tensor.name)
            .map(|(_, b)| *b);
        match (&self.method, bound) {
            (Method::Quant { options, .. }, Some(bound)) => Method::Quant {
                bound,
                options: options.clone(),
            },
            (Method::Pwl { options, .. }, Some(bound)) => Method::Pwl {
                bound,
                options: options.clone(),
            },
            (method, _) => method.clone(),
        }
    }
}

/// Refuses to write `output` if it exists (unless `force`) or is the same file as `input`.
fn check_output(input: &Path, output: &Path, force: bool) -> Result<(), Error> {
    if let (Ok(a), Ok(b)) = (input.canonicalize(), output.canonicalize()) {
        if a == b {
            return Err(Error::OutputIsInput(output.to_path_buf()));
        }
    }
    if output.exists() && !force {
        return Err(Error::OutputExists(output.to_path_buf()));
    }
    Ok(())
}

/// Compresses the model file `input` into the container `output`.
pub fn compress(
    input: &Path,
    output: &Path,
    options: &CompressOptions,
    progress: Progress<'_>,
) -> Result<Report, Error> {
    check_output(input, output, options.force)?;
    let model = pwlc_models::read(input)?;
    let total: u64 = model.tensors.iter().map(|t| t.data.len() as u64).sum();
    let done = AtomicU64::new(0);
    let encoded = model
        .tensors
        .par_iter()
        .map(|t| {
            let method = options.method_for(t);
            let view = TensorRef {
                dtype: t.dtype,
                shape: &t.shape,
                data: &t.data,
            };
            let result = pwlc_codecs::encode(view, &method).map_err(|source| Error::Codec {
                path: input.to_path_buf(),
                tensor: t.name.clone(),
                source,
            });
            let now = done.fetch_add(t.data.len() as u64, Ordering::Relaxed) + t.data.len() as u64;
            progress(now, total);
            result
        })
        .collect::<Result<Vec<_>, Error>>()?;

    let info = FileInfo {
        format: model.format.name().to_string(),
        file_name: file_name(input),
        original_size: std::fs::metadata(input)
            .map_err(|e| io_error(input, e))?
            .len(),
        layout: model.layout,
        settings: settings_json(options),
    };
    let mut writer = Writer::create(output, &info).map_err(|e| Error::container(output, e))?;
    for (t, e) in model.tensors.iter().zip(&encoded) {
        let entry = pwlc_container::EntryMeta {
            name: &t.name,
            dtype: t.dtype,
            shape: &t.shape,
            codec: e.codec as u16,
            max_abs_error: e.max_abs_error,
            rmse: e.rmse,
        };
        writer
            .add(&entry, &e.payload)
            .map_err(|e| Error::container(output, e))?;
    }
    writer.finish().map_err(|e| Error::container(output, e))?;
    inspect(output)
}

/// Decodes every tensor of a container, in parallel, verifying checksums and sizes.
pub fn decode_tensors(
    path: &Path,
    progress: Progress<'_>,
) -> Result<(FileInfo, Vec<Tensor>), Error> {
    let reader = Reader::open(path).map_err(|e| Error::container(path, e))?;
    let total: u64 = reader.entries().iter().map(|e| e.original_bytes).sum();
    let done = AtomicU64::new(0);
    let tensors = (0..reader.entries().len())
        .into_par_iter()
        .map(|i| {
            let t = decode_one(&reader, path, i)?;
            let now = done.fetch_add(t.data.len() as u64, Ordering::Relaxed) + t.data.len() as u64;
            progress(now, total);
            Ok(t)
        })
        .collect::<Result<Vec<_>, Error>>()?;
    Ok((reader.info().clone(), tensors))
}

/// Decodes tensor `i` of an open container.
fn decode_one(reader: &Reader, path: &Path, i: usize) -> Result<Tensor, Error> {
    let entry = &reader.entries()[i];
    let codec_error = |source| Error::Codec {
        path: path.to_path_buf(),
        tensor: entry.name.clone(),
        source,
    };
    let codec = entry.codec_id().ok_or_else(|| {
        Error::container(
            path,
            pwlc_container::ContainerError::UnknownCodec {
                name: entry.name.clone(),
                codec: entry.codec,
            },
        )
    })?;
    let payload = reader.payload(i).map_err(|e| Error::container(path, e))?;
    let data =
        pwlc_codecs::decode(codec, entry.dtype, &entry.shape, payload).map_err(codec_error)?;
    if data.len() as u64 != entry.original_bytes {
        return Err(Error::SizeMismatch {
            path: path.to_path_buf(),
            tensor: entry.name.clone(),
        });
    }
    Ok(Tensor {
        name: entry.name.clone(),
        dtype: entry.dtype,
        shape: entry.shape.clone(),
        data: Bytes::from(data),
    })
}

/// How to decompress a container.
#[derive(Debug, Clone, Default)]
pub struct DecompressOptions {
    /// Write this format instead of the original file's.
    pub format: Option<Format>,
    /// Overwrite an existing output.
    pub force: bool,
    /// Write the model even if some tensors are damaged, filling those with zeros (see
    /// [`Decompressed::lost`]).
    pub salvage: bool,
}

/// What [`decompress`] wrote.
#[derive(Debug, Clone)]
pub struct Decompressed {
    pub report: Report,
    /// Tensors that could not be decoded and were written as zeros (only with `salvage`), with
    /// the reason.
    pub lost: Vec<(String, String)>,
}

/// The path `decompress` writes when no output is given: the original file name, beside the
/// container (with the extension of `format` if converting).
pub fn default_output(container: &Path, format: Option<Format>) -> Result<PathBuf, Error> {
    let reader = Reader::open(container).map_err(|e| Error::container(container, e))?;
    let name = PathBuf::from(&reader.info().file_name);
    let name = match format {
        Some(f) if f.name() != reader.info().format => name.with_extension(f.extension()),
        _ => name,
    };
    Ok(container.parent().unwrap_or(Path::new("")).join(name))
}

/// Writes the model stored in `input` to `output`, in its original format or `options.format`.
pub fn decompress(
    input: &Path,
    output: &Path,
    options: &DecompressOptions,
    progress: Progress<'_>,
) -> Result<Decompressed, Error> {
    check_output(input, output, options.force)?;
    let Salvaged {
        info,
        tensors,
        lost,
    } = if options.salvage {
        salvage_tensors(input, progress)?
    } else {
        let (info, tensors) = decode_tensors(input, progress)?;
        Salvaged {
            info,
            tensors,
            lost: Vec::new(),
        }
    };
    let original = Format::from_name(&info.format).ok_or_else(|| Error::Other {
        path: input.to_path_buf(),
        message: format!("unknown model format '{}'", info.format),
    })?;
    match options.format {
        Some(f) if f != original => pwlc_models::write_fresh(f, &tensors, output)?,
        _ => pwlc_models::write(original, &info.layout, &tensors, output)?,
    }
    Ok(Decompressed {
        report: inspect(input)?,
        lost,
    })
}

/// A container's tensors, with those lost to damage written as zeros.
struct Salvaged {
    info: FileInfo,
    tensors: Vec<Tensor>,
    /// (tensor name, reason) of every tensor that could not be decoded.
    lost: Vec<(String, String)>,
}

/// Decodes what can be decoded; damaged tensors become zeros and are listed with the reason.
fn salvage_tensors(path: &Path, progress: Progress<'_>) -> Result<Salvaged, Error> {
    let reader = Reader::open(path).map_err(|e| Error::container(path, e))?;
    let total: u64 = reader.entries().iter().map(|e| e.original_bytes).sum();
    let done = AtomicU64::new(0);
    let results: Vec<Result<Tensor, Error>> = (0..reader.entries().len())
        .into_par_iter()
        .map(|i| {
            let bytes = reader.entries()[i].original_bytes;
            progress(done.fetch_add(bytes, Ordering::Relaxed) + bytes, total);
            decode_one(&reader, path, i)
        })
        .collect();
    let mut lost = Vec::new();
    let tensors = results
        .into_iter()
        .zip(reader.entries())
        .map(|(result, entry)| {
            result.unwrap_or_else(|e| {
                lost.push((entry.name.clone(), e.to_string()));
                Tensor {
                    name: entry.name.clone(),
                    dtype: entry.dtype,
                    shape: entry.shape.clone(),
                    data: Bytes::from(vec![0u8; entry.original_bytes as usize]),
                }
            })
        })
        .collect();
    Ok(Salvaged {
        info: reader.info().clone(),
        tensors,
        lost,
    })
}

/// Describes a container from its index alone (no payload is decoded).
pub fn inspect(path: &Path) -> Result<Report, Error> {
    let reader = Reader::open(path).map_err(|e| Error::container(path, e))?;
    let size = std::fs::metadata(path)
        .map_err(|e| io_error(path, e))?
        .len();
    Ok(Report::from_index(reader.info(), reader.entries(), size))
}

/// Checks every checksum and decodes every tensor of a container.
pub fn verify(path: &Path, progress: Progress<'_>) -> Result<Report, Error> {
    decode_tensors(path, progress)?;
    inspect(path)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn io_error(path: &Path, e: std::io::Error) -> Error {
    Error::Model(pwlc_models::ModelError::io(path, e))
}

fn settings_json(options: &CompressOptions) -> String {
    let bound = |b: &Bound| match b {
        Bound::Abs(e) => serde_json::json!({"abs": e}),
        Bound::RelRms(r) => serde_json::json!({"rel_rms": r}),
        Bound::RelStd(r) => serde_json::json!({"rel_std": r}),
    };
    let method = match &options.method {
        Method::Quant { bound: b, options } => {
            serde_json::json!({"method": "quant", "bound": bound(b), "options": format!("{options:?}")})
        }
        Method::Pwl { bound: b, options } => {
            serde_json::json!({"method": "pwl", "bound": bound(b), "options": format!("{options:?}")})
        }
        other => serde_json::json!({"method": other.codec().name()}),
    };
    serde_json::json!({
        "codec": method,
        "min_elements": options.policy.min_elements,
        "lossless_regex": options.policy.lossless.as_ref().map(|r| r.as_str()),
        "tensor_bounds": options.bounds.iter().map(|(n, b)| (n.clone(), bound(b))).collect::<serde_json::Map<_, _>>(),
    })
    .to_string()
}

/// The codec name of a raw id, for reports (`codec#7` for ids this version does not know).
pub fn codec_name(id: u16) -> String {
    CodecId::from_u16(id)
        .map(|c| c.name().to_string())
        .unwrap_or_else(|| format!("codec#{id}"))
}
