//! The PyTorch adapter: `.pth` / `.pt` checkpoints written by `torch.save`.
//!
//! Two containers are read:
//! - the zip format (PyTorch >= 1.6): `<prefix>/data.pkl` (the pickled object), one member
//!   `<prefix>/data/<key>` per tensor storage, and small members (`version`, `byteorder`, ...);
//! - the legacy stream format (PyTorch < 1.6): pickles followed by the storages (see
//!   [`legacy`]).
//!
//! The pickle may be a bare state dict or any nesting of dicts, lists and tuples around it (a
//! training checkpoint `{"state_dict": {...}, "epoch": 3, ...}`); tensors are named by their
//! dotted key path (`state_dict.conv1.weight`). Only globals that a weights-only load allows
//! may appear in the pickle.
//!
//! One [`Tensor`] is returned per *storage*, in the order the pickle first uses them. When a
//! storage backs exactly one tensor that covers it whole and contiguously (the usual case), the
//! tensor has that tensor's name and shape. Otherwise (several views of one storage, a slice,
//! a transposed view) the tensor is the whole storage, 1-D, named after its first use.
//!
//! [`write`] keeps the pickle and every other member as read and replaces only the storage
//! bytes, so `torch.load(path, weights_only=True)` gives the same keys, in the same order,
//! with the new values. A legacy file is written back in the zip format, its pickle rewritten
//! to name storages the zip way (`'0'`, `'1'`, ... in order of first use).

mod archive;
mod layout;
mod legacy;
mod pickle;
mod storages;

use std::collections::{HashMap, HashSet};
use std::path::Path;

use bytes::Bytes;

use crate::{map_file, write_atomic, ModelError, Tensor};
use layout::{Layout, Part, Spec};
use storages::Storage;

/// Name of the directory inside the archive written for a legacy input, as `torch.save` names it.
const LEGACY_PREFIX: &str = "archive";

/// A problem found while reading or writing, before the file path is attached.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Fault {
    /// The file as a whole.
    File(String),
    /// One tensor (named by its key path).
    Tensor { tensor: String, message: String },
}

impl Fault {
    fn at(self, path: &Path) -> ModelError {
        match self {
            Fault::File(message) => ModelError::invalid(path, &message),
            Fault::Tensor { tensor, message } => ModelError::tensor(path, &tensor, &message),
        }
    }
}

/// Reads the tensors and layout of a PyTorch checkpoint (zip or legacy format).
pub fn read(path: &Path) -> Result<(Vec<Tensor>, Vec<u8>), ModelError> {
    let file = map_file(path)?;
    let (tensors, layout) = if file.starts_with(b"PK\x03\x04") {
        read_zip(&file)
    } else if legacy::looks_legacy(&file) {
        read_legacy(&file)
    } else if file.get(257..262) == Some(b"ustar") {
        Err(Fault::File(
            "tar checkpoints (PyTorch before 0.1.10) are not supported".into(),
        ))
    } else {
        Err(Fault::File(
            "not a PyTorch checkpoint (neither a zip archive nor a legacy pickle stream)".into(),
        ))
    }
    .map_err(|f| f.at(path))?;
    Ok((tensors, layout.encode()))
}

/// Writes a PyTorch checkpoint in the zip format from a layout returned by [`read`] and new
/// tensor values (same names, dtypes and shapes, in the same order).
///
/// The output is always the zip format: a legacy (pre-1.6) input comes back as a zip
/// checkpoint, which PyTorch 1.6 and later loads. The pickle of a zip input is kept byte for
/// byte, so the output loads exactly as the input did (with `weights_only=True` when the input
/// did).
pub fn write(layout: &[u8], tensors: &[Tensor], path: &Path) -> Result<(), ModelError> {
    let layout = Layout::decode(layout)
        .ok_or_else(|| ModelError::invalid(path, "the layout is not that of a PyTorch file"))?;
    check_tensors(&layout.tensors, tensors).map_err(|f| f.at(path))?;
    let members = layout.parts.iter().map(|part| match part {
        Part::Verbatim { name, data } => (name.as_str(), data.as_slice()),
        Part::Storage { name, index } => (name.as_str(), tensors[*index].data.as_ref()),
    });
    write_atomic(path, |out| archive::write_members(out, members))
}

fn read_zip(file: &Bytes) -> Result<(Vec<Tensor>, Layout), Fault> {
    let members = archive::read_members(file)?;
    let pickle = members
        .iter()
        .find(|m| m.name.ends_with("/data.pkl") && m.name.matches('/').count() == 1)
        .ok_or_else(|| Fault::File("the zip archive has no <name>/data.pkl".into()))?;
    let prefix = pickle.name.trim_end_matches("/data.pkl");
    let (graph, _) =
        pickle::parse(&pickle.data).map_err(|e| Fault::File(format!("{}: {e}", pickle.name)))?;
    let found = storages::collect(&graph)?;
    let by_name: HashMap<&str, &Bytes> =
        members.iter().map(|m| (m.name.as_str(), &m.data)).collect();
    let mut storage_members = HashMap::new();
    let mut data = Vec::with_capacity(found.storages.len());
    for (index, storage) in found.storages.iter().enumerate() {
        let name = format!("{prefix}/data/{}", storage.key);
        let bytes = by_name
            .get(name.as_str())
            .ok_or_else(|| storage.fault(&format!("'{name}' is missing from the archive")))?;
        data.push((*bytes).clone());
        storage_members.insert(name, index);
    }
    let (tensors, specs) = expose(&found.storages, &data)?;
    let parts = members
        .into_iter()
        .map(|m| match storage_members.get(&m.name) {
            Some(&index) => Part::Storage {
                name: m.name,
                index,
            },
            None => Part::Verbatim {
                name: m.name,
                data: m.data.to_vec(),
            },
        })
        .collect();
    Ok((
        tensors,
        Layout {
            parts,
            tensors: specs,
        },
    ))
}

fn read_legacy(file: &Bytes) -> Result<(Vec<Tensor>, Layout), Fault> {
    let legacy = legacy::read(file)?;
    let (tensors, specs) = expose(&legacy.found.storages, &legacy.data)?;
    let member = |name: &str| format!("{LEGACY_PREFIX}/{name}");
    let mut parts = vec![
        Part::Verbatim {
            name: member("data.pkl"),
            data: legacy::zip_pickle(&legacy)?,
        },
        Part::Verbatim {
            name: member("byteorder"),
            data: b"little".to_vec(),
        },
    ];
    parts.extend((0..tensors.len()).map(|index| Part::Storage {
        name: member(&format!("data/{index}")),
        index,
    }));
    parts.push(Part::Verbatim {
        name: member("version"),
        data: b"3\n".to_vec(),
    });
    Ok((
        tensors,
        Layout {
            parts,
            tensors: specs,
        },
    ))
}

/// One tensor per storage: shaped like its tensor when that tensor is the whole storage, else
/// flat. `data[i]` holds the bytes of `storages[i]` (possibly more).
fn expose(storages: &[Storage], data: &[Bytes]) -> Result<(Vec<Tensor>, Vec<Spec>), Fault> {
    let mut names = HashSet::new();
    let mut tensors = Vec::with_capacity(storages.len());
    let mut specs = Vec::with_capacity(storages.len());
    for (storage, bytes) in storages.iter().zip(data) {
        let len = storage.byte_len()?;
        if bytes.len() < len {
            return Err(storage.fault(&format!(
                "holds {} bytes, the pickle declares {} elements of {} bytes",
                bytes.len(),
                storage.numel,
                storage.dtype.size()
            )));
        }
        let shape = match storage.whole_tensor_shape() {
            Some(shape) => shape.to_vec(),
            None => vec![storage.numel],
        };
        let name = unique_name(&mut names, storage.first_path());
        specs.push(Spec {
            name: name.clone(),
            dtype: storage.dtype,
            shape: shape.clone(),
        });
        tensors.push(Tensor {
            name,
            dtype: storage.dtype,
            shape,
            data: bytes.slice(..len),
        });
    }
    Ok((tensors, specs))
}

/// `path`, or `root` for the empty path, made unique among `taken` with a `#n` suffix.
fn unique_name(taken: &mut HashSet<String>, path: &str) -> String {
    let base = if path.is_empty() { "root" } else { path };
    let mut name = base.to_string();
    let mut n = 2;
    while taken.contains(&name) {
        name = format!("{base}#{n}");
        n += 1;
    }
    taken.insert(name.clone());
    name
}

/// Checks that `tensors` match what [`read`] returned: count, names, dtypes, shapes, sizes.
fn check_tensors(specs: &[Spec], tensors: &[Tensor]) -> Result<(), Fault> {
    if specs.len() != tensors.len() {
        return Err(Fault::File(format!(
            "the layout has {} tensors, {} were given",
            specs.len(),
            tensors.len()
        )));
    }
    for (spec, tensor) in specs.iter().zip(tensors) {
        let fault = |message: String| Fault::Tensor {
            tensor: tensor.name.clone(),
            message,
        };
        if tensor.name != spec.name {
            return Err(fault(format!("expected tensor '{}' here", spec.name)));
        }
        if tensor.dtype != spec.dtype || tensor.shape != spec.shape {
            return Err(fault(format!(
                "expected {} {:?}, got {} {:?}",
                spec.dtype, spec.shape, tensor.dtype, tensor.shape
            )));
        }
        let expected = tensor
            .element_count()
            .saturating_mul(tensor.dtype.size() as u64);
        if expected != tensor.data.len() as u64 {
            return Err(fault(format!(
                "holds {} bytes, its shape needs {expected}",
                tensor.data.len()
            )));
        }
    }
    Ok(())
}
