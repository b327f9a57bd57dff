//! The GGUF adapter.
//!
//! A GGUF file is a header (magic, version, metadata key/values, tensor infos), padding up to
//! the alignment, and a data section holding each tensor at its offset. Tensors of the plain
//! ggml element types (F32, F16, BF16, F64, I8, I16, I32, I64) are exposed with their dtype and
//! their shape outermost first (GGUF lists dimensions innermost first); every other ggml type
//! (Q4_0, Q8_0, the K-quants, ...) as [`DType::Opaque`] bytes with shape `[byte count]`.
//!
//! Layout: the header up to the data section verbatim, then every byte of the data section that
//! belongs to no tensor (padding, trailing bytes) in file order. Writing puts the tensors back
//! at their offsets between those bytes, so an unchanged tensor set reproduces the file byte
//! for byte, metadata and alignment included.

mod header;

use std::path::Path;

use pwlc_codecs::bitio::{ByteReader, PutBytes};

use crate::safetensors::spec::{check_tensors, TensorSpec};
use crate::{map_file, write_atomic, DType, ModelError, Tensor};
use header::{Header, TensorInfo};

/// Reads the tensors (in header order, borrowing from the memory-mapped file) and the layout
/// of a GGUF file.
pub fn read(path: &Path) -> Result<(Vec<Tensor>, Vec<u8>), ModelError> {
    let file = map_file(path)?;
    let header = header::parse(path, &file)?;
    let file_len = file.len() as u64;
    let data_start = data_start(path, &header, file_len)?;
    let placements = place(path, &header, data_start)?;
    if let Some(last) = placements.last() {
        if last.end > file_len {
            let name = &header.tensors[last.index].name;
            return Err(ModelError::tensor(
                path,
                name,
                "data runs past the end of the file",
            ));
        }
    }
    let tensors = header
        .tensors
        .iter()
        .zip(tensor_ranges(&placements, header.tensors.len()))
        .map(|(info, (start, end))| spec_of(info).to_tensor(file.slice(start..end)))
        .collect();
    let mut layout = Vec::new();
    layout.put_block(&file[..data_start as usize]);
    let mut cursor = data_start as usize;
    for p in &placements {
        layout.extend_from_slice(&file[cursor..p.start as usize]);
        cursor = p.end as usize;
    }
    layout.extend_from_slice(&file[cursor..]);
    Ok((tensors, layout))
}

/// Writes a GGUF file from a layout returned by [`read`] and new tensor values.
pub fn write(layout: &[u8], tensors: &[Tensor], path: &Path) -> Result<(), ModelError> {
    let bad = |why: &str| ModelError::invalid(path, &format!("bad gguf layout: {why}"));
    let mut reader = ByteReader::new(layout);
    let head = reader.block().map_err(|e| bad(&e.to_string()))?;
    let gaps = reader.rest();
    let header = header::parse(path, head)?;
    if header.end > head.len() as u64 {
        return Err(bad("header block is shorter than the header"));
    }
    let placements = place(path, &header, head.len() as u64)?;
    let specs: Vec<TensorSpec> = header.tensors.iter().map(spec_of).collect();
    check_tensors(path, &specs, tensors)?;
    let gap_lens = gap_lengths(&placements, head.len() as u64);
    let gap_total = gap_lens.iter().try_fold(0u64, |sum, &n| sum.checked_add(n));
    if gap_total.is_none_or(|total| total > gaps.len() as u64) {
        return Err(bad("fewer padding bytes than the tensor offsets need"));
    }
    write_atomic(path, |w| {
        w.write_all(head)?;
        let mut gaps = gaps;
        for (p, &n) in placements.iter().zip(&gap_lens) {
            // In bounds: the gap lengths sum to at most `gaps.len()` (checked above).
            let (gap, rest) = gaps.split_at(n as usize);
            w.write_all(gap)?;
            w.write_all(&tensors[p.index].data)?;
            gaps = rest;
        }
        w.write_all(gaps)
    })
}

/// Where one tensor's data sits in the file.
struct Placement {
    /// Index of the tensor in the header.
    index: usize,
    /// Absolute byte range in the file.
    start: u64,
    end: u64,
}

/// Start of the data section: the end of the header rounded up to the alignment (a file
/// without tensors may end before that).
fn data_start(path: &Path, header: &Header, file_len: u64) -> Result<u64, ModelError> {
    let start = header
        .end
        .checked_next_multiple_of(header.alignment)
        .ok_or_else(|| ModelError::invalid(path, "data section offset overflows"))?;
    match start <= file_len {
        true => Ok(start),
        false if header.tensors.is_empty() => Ok(file_len),
        false => Err(ModelError::invalid(
            path,
            "file ends before its data section",
        )),
    }
}

/// The tensors' absolute byte ranges, sorted by start; rejects overflowing and overlapping
/// ranges.
fn place(path: &Path, header: &Header, data_start: u64) -> Result<Vec<Placement>, ModelError> {
    let mut placements = header
        .tensors
        .iter()
        .enumerate()
        .map(|(index, info)| {
            let start = data_start.checked_add(info.offset);
            let end = start.and_then(|s| s.checked_add(info.byte_len));
            match (start, end) {
                (Some(start), Some(end)) => Ok(Placement { index, start, end }),
                _ => Err(ModelError::tensor(path, &info.name, "offset overflows")),
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    placements.sort_by_key(|p| (p.start, p.index));
    for pair in placements.windows(2) {
        if pair[1].start < pair[0].end {
            let (a, b) = (
                &header.tensors[pair[0].index],
                &header.tensors[pair[1].index],
            );
            return Err(ModelError::tensor(
                path,
                &b.name,
                &format!("data overlaps tensor '{}'", a.name),
            ));
        }
    }
    Ok(placements)
}

/// Each tensor's byte range as `usize`s, in header order (the ranges lie inside the file).
fn tensor_ranges(placements: &[Placement], count: usize) -> Vec<(usize, usize)> {
    let mut ranges = vec![(0, 0); count];
    for p in placements {
        ranges[p.index] = (p.start as usize, p.end as usize);
    }
    ranges
}

/// Number of non-tensor bytes before each placement (sorted, non-overlapping, after
/// `data_start`).
fn gap_lengths(placements: &[Placement], data_start: u64) -> Vec<u64> {
    let mut cursor = data_start;
    placements
        .iter()
        .map(|p| {
            let gap = p.start - cursor;
            cursor = p.end;
            gap
        })
        .collect()
}

/// The tensor spec of a tensor info.
fn spec_of(info: &TensorInfo) -> TensorSpec {
    match dtype_of(info.ggml_type) {
        Some(dtype) => TensorSpec {
            name: info.name.clone(),
            dtype,
            shape: info.dims.iter().rev().copied().collect(),
            byte_len: info.byte_len,
        },
        None => TensorSpec {
            name: info.name.clone(),
            dtype: DType::Opaque,
            shape: vec![info.byte_len],
            byte_len: info.byte_len,
        },
    }
}

/// The [`DType`] of a plain ggml element type, `None` for block-quantized types.
fn dtype_of(ggml_type: u32) -> Option<DType> {
    Some(match ggml_type {
        0 => DType::F32,
        1 => DType::F16,
        24 => DType::I8,
        25 => DType::I16,
        26 => DType::I32,
        27 => DType::I64,
        28 => DType::F64,
        30 => DType::BF16,
        _ => return None,
    })
}
