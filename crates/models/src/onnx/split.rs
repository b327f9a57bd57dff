//! Reading: places each initializer's data in the model or a side file, and builds the layout
//! (the files with those bytes left out).

use std::collections::HashSet;
use std::ops::Range;
use std::path::Path;

use bytes::Bytes;
use prost::Message;
use pwlc_codecs::DType;

use super::elements::{decode_varints, dtype_of, TypedField};
use super::layout_proto::{self as lp, Encoding};
use super::proto::tensor_proto::DataLocation;
use super::proto::TensorProto;
use super::scan::{FoundTensor, Role};
use super::wire::{Field, Fields, LengthPrefix, Value};
use super::{side_file_name, LAYOUT_VERSION};
use crate::{map_file, ModelError, Tensor};

/// Field number of `TensorProto.raw_data`.
const RAW_DATA: u64 = 9;

/// Where the bytes of one exposed tensor lie.
struct Placed {
    /// Index into `Split::files`.
    file: usize,
    range: Range<usize>,
    encoding: Encoding,
    /// The tensor's little-endian elements.
    data: Bytes,
    /// The length prefixes to rewrite if the stored size changes (varint data only).
    enclosing: Vec<LengthPrefix>,
}

/// A hole of the layout: the bytes of tensor `tensor` in file `file`.
struct Hole {
    file: usize,
    range: Range<usize>,
    tensor: usize,
    encoding: Encoding,
}

/// A model being split into tensors and layout.
pub(super) struct Split<'a> {
    path: &'a Path,
    /// The model file, then the side files, by name relative to the model's folder.
    files: Vec<(String, Bytes)>,
    tensors: Vec<Tensor>,
    holes: Vec<Hole>,
    lengths: Vec<LengthPrefix>,
}

impl<'a> Split<'a> {
    /// Starts splitting `model`, the bytes of the file at `path`.
    pub fn new(path: &'a Path, model: Bytes) -> Self {
        Split {
            path,
            files: vec![(String::new(), model)],
            tensors: Vec::new(),
            holes: Vec::new(),
            lengths: Vec::new(),
        }
    }

    /// Takes in one tensor of the model: exposes it if it is an initializer of a supported
    /// type stored in one piece, and loads any side file it names.
    pub fn add(&mut self, found: &FoundTensor) -> Result<(), ModelError> {
        let path = self.path;
        let model = self.files[0].1.slice(found.span.clone());
        let proto = TensorProto::decode(model).map_err(|e| {
            let at = found.span.start;
            ModelError::invalid(path, &format!("tensor at byte {at}: {e}"))
        })?;
        let name = proto.name().to_string();
        let fail = |message: String| ModelError::tensor(path, &name, &message);
        let side = match proto.data_location() {
            DataLocation::External => Some(self.side_file(&proto).map_err(fail)?),
            DataLocation::Default => None,
        };
        let Some(dtype) = dtype_of(proto.data_type()) else {
            return Ok(());
        };
        if found.role != Role::Initializer || proto.segment.is_some() {
            return Ok(());
        }
        let shape = shape_of(&proto.dims).map_err(fail)?;
        let size = byte_size(&shape, dtype).map_err(fail)?;
        let placed = match side {
            Some(file) => Some(self.external_data(file, &proto, size).map_err(fail)?),
            None => self.internal_data(found, dtype, size).map_err(fail)?,
        };
        if let Some(placed) = placed {
            self.expose(name, dtype, shape, placed);
        }
        Ok(())
    }

    fn expose(&mut self, name: String, dtype: DType, shape: Vec<u64>, placed: Placed) {
        self.holes.push(Hole {
            file: placed.file,
            range: placed.range,
            tensor: self.tensors.len(),
            encoding: placed.encoding,
        });
        self.lengths.extend(placed.enclosing);
        self.tensors.push(Tensor {
            name,
            dtype,
            shape,
            data: placed.data,
        });
    }

    /// The index of the side file that `proto`'s external data names, mapping it if new.
    fn side_file(&mut self, proto: &TensorProto) -> Result<usize, String> {
        let location =
            external_entry(proto, "location").ok_or("external data without a 'location' entry")?;
        let name = side_file_name(location)?;
        if let Some(index) = self.files.iter().position(|(n, _)| *n == name) {
            return Ok(index);
        }
        let folder = self.path.parent().unwrap_or(Path::new(""));
        let bytes = map_file(&folder.join(&name))
            .map_err(|e| format!("external data file '{location}': {e}"))?;
        self.files.push((name, bytes));
        Ok(self.files.len() - 1)
    }

    fn external_data(
        &self,
        file: usize,
        proto: &TensorProto,
        size: usize,
    ) -> Result<Placed, String> {
        let (name, bytes) = &self.files[file];
        let offset = external_number(proto, "offset")?.unwrap_or(0);
        let length = external_number(proto, "length")?.unwrap_or(size as u64);
        if length != size as u64 {
            return Err(format!(
                "external data length {length} does not match its shape ({size} bytes)"
            ));
        }
        let range = offset
            .checked_add(length)
            .filter(|&end| end <= bytes.len() as u64)
            .map(|end| offset as usize..end as usize)
            .ok_or_else(|| {
                format!(
                    "external data at {offset}+{length} runs past the end of '{name}' ({} bytes)",
                    bytes.len()
                )
            })?;
        Ok(Placed {
            file,
            data: bytes.slice(range.clone()),
            range,
            encoding: Encoding::Raw,
            enclosing: Vec::new(),
        })
    }

    /// Places data stored in the model file; `None` if it cannot be exposed (spread over
    /// several field records, or varints that would not re-encode identically).
    fn internal_data(
        &self,
        found: &FoundTensor,
        dtype: DType,
        size: usize,
    ) -> Result<Option<Placed>, String> {
        let mut records = Vec::new();
        for field in Fields::new(&self.files[0].1, found.span.clone()) {
            let Field { number, value } = field?;
            if number == RAW_DATA || TypedField::from_number(number).is_some() {
                records.push((number, value));
            }
        }
        match records.as_slice() {
            [] if size == 0 => Ok(Some(self.raw(found.span.end..found.span.end, size)?)),
            [] => Err("no data".to_string()),
            [(number, Value::Len(prefix, range))] => {
                self.record(found, *number, *prefix, range.clone(), dtype, size)
            }
            _ => Ok(None),
        }
    }

    /// Places the data of the one data field record `number` holding `range`.
    fn record(
        &self,
        found: &FoundTensor,
        number: u64,
        prefix: LengthPrefix,
        range: Range<usize>,
        dtype: DType,
        size: usize,
    ) -> Result<Option<Placed>, String> {
        let Some(field) = TypedField::from_number(number) else {
            return self.raw(range, size).map(Some);
        };
        if !field.holds(dtype) {
            return Err(format!("{dtype} elements stored in {}", field.name()));
        }
        if !field.is_varint() {
            return self.raw(range, size).map(Some);
        }
        let payload = &self.files[0].1[range.clone()];
        let Some(data) = decode_varints(dtype, field, payload) else {
            return Ok(None);
        };
        check_size(data.len(), size, field.name())?;
        let mut enclosing = found.enclosing.clone();
        enclosing.push(prefix);
        Ok(Some(Placed {
            file: 0,
            range,
            encoding: varint_encoding(field),
            data: Bytes::from(data),
            enclosing,
        }))
    }

    /// Places little-endian elements stored as is at `range` of the model file.
    fn raw(&self, range: Range<usize>, size: usize) -> Result<Placed, String> {
        check_size(range.len(), size, "stored data")?;
        Ok(Placed {
            file: 0,
            data: self.files[0].1.slice(range.clone()),
            range,
            encoding: Encoding::Raw,
            enclosing: Vec::new(),
        })
    }

    /// The exposed tensors and the layout.
    pub fn finish(mut self) -> Result<(Vec<Tensor>, Vec<u8>), ModelError> {
        make_names_unique(&mut self.tensors);
        let mut files = Vec::with_capacity(self.files.len());
        for (index, (name, bytes)) in self.files.iter().enumerate() {
            let mut holes: Vec<&Hole> = self.holes.iter().filter(|h| h.file == index).collect();
            holes.sort_by_key(|h| h.range.start);
            check_disjoint(&holes, &self.tensors)
                .map_err(|(tensor, message)| ModelError::tensor(self.path, &tensor, &message))?;
            files.push(layout_file(name, bytes, &holes));
        }
        self.lengths.sort_by_key(|l| l.offset);
        self.lengths.dedup();
        let layout = lp::Layout {
            version: LAYOUT_VERSION,
            files,
            tensors: self.tensors.iter().map(tensor_info).collect(),
            lengths: self.lengths.iter().map(length_info).collect(),
        };
        Ok((self.tensors, layout.encode_to_vec()))
    }
}

/// The value of the last external-data entry `key` of `proto`.
fn external_entry<'p>(proto: &'p TensorProto, key: &str) -> Option<&'p str> {
    let entry = proto.external_data.iter().rev().find(|e| e.key() == key);
    entry.map(|e| e.value())
}

/// The number in external-data entry `key`, if present.
fn external_number(proto: &TensorProto, key: &str) -> Result<Option<u64>, String> {
    let Some(text) = external_entry(proto, key) else {
        return Ok(None);
    };
    let number = text
        .trim()
        .parse()
        .map_err(|_| format!("external data '{key}' is not a non-negative integer: '{text}'"))?;
    Ok(Some(number))
}

/// The dimensions of a tensor, refusing negative ones.
fn shape_of(dims: &[i64]) -> Result<Vec<u64>, String> {
    dims.iter()
        .map(|&d| u64::try_from(d).map_err(|_| format!("negative dimension {d} in {dims:?}")))
        .collect()
}

/// The byte size of a tensor, refusing sizes that overflow.
fn byte_size(shape: &[u64], dtype: DType) -> Result<usize, String> {
    shape
        .iter()
        .try_fold(dtype.size() as u64, |acc, &d| acc.checked_mul(d))
        .and_then(|bytes| usize::try_from(bytes).ok())
        .ok_or_else(|| format!("shape {shape:?} of {dtype} is too large"))
}

fn check_size(found: usize, size: usize, what: &str) -> Result<(), String> {
    if found == size {
        return Ok(());
    }
    Err(format!(
        "{what} holds {found} bytes but its shape needs {size}"
    ))
}

fn varint_encoding(field: TypedField) -> Encoding {
    match field {
        TypedField::Int64 => Encoding::Int64Varint,
        TypedField::Uint64 => Encoding::Uint64Varint,
        _ => Encoding::Int32Varint,
    }
}

/// Appends `#2`, `#3`, ... to names already taken by an earlier tensor.
fn make_names_unique(tensors: &mut [Tensor]) {
    let mut taken: HashSet<String> = HashSet::new();
    for tensor in tensors.iter_mut() {
        let mut k = 2;
        let base = tensor.name.clone();
        while !taken.insert(tensor.name.clone()) {
            tensor.name = format!("{base}#{k}");
            k += 1;
        }
    }
}

/// Fails with (tensor name, reason) if two holes of one file overlap (sorted by start).
fn check_disjoint(holes: &[&Hole], tensors: &[Tensor]) -> Result<(), (String, String)> {
    for pair in holes.windows(2) {
        if pair[1].range.start < pair[0].range.end {
            let other = &tensors[pair[0].tensor].name;
            let message = format!("its data overlaps that of tensor '{other}'");
            return Err((tensors[pair[1].tensor].name.clone(), message));
        }
    }
    Ok(())
}

/// A file of the layout: `bytes` without the holes (sorted and disjoint).
fn layout_file(name: &str, bytes: &Bytes, holes: &[&Hole]) -> lp::File {
    let hole_bytes: usize = holes.iter().map(|h| h.range.len()).sum();
    let mut skeleton = Vec::with_capacity(bytes.len() - hole_bytes);
    let mut pos = 0;
    for hole in holes {
        skeleton.extend_from_slice(&bytes[pos..hole.range.start]);
        pos = hole.range.end;
    }
    skeleton.extend_from_slice(&bytes[pos..]);
    lp::File {
        name: name.to_string(),
        skeleton: Bytes::from(skeleton),
        holes: holes.iter().map(|h| hole_info(h)).collect(),
    }
}

fn hole_info(hole: &Hole) -> lp::Hole {
    lp::Hole {
        offset: hole.range.start as u64,
        length: hole.range.len() as u64,
        tensor: hole.tensor as u32,
        encoding: hole.encoding as i32,
    }
}

fn tensor_info(tensor: &Tensor) -> lp::TensorInfo {
    lp::TensorInfo {
        name: tensor.name.clone(),
        dtype: u32::from(tensor.dtype.code()),
        shape: tensor.shape.clone(),
    }
}

fn length_info(prefix: &LengthPrefix) -> lp::LengthPrefix {
    lp::LengthPrefix {
        offset: prefix.offset as u64,
        width: prefix.width as u32,
        value: prefix.value,
    }
}
