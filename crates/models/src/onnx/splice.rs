//! Writing: splices tensor bytes into the holes of the layout's files.

use std::borrow::Cow;
use std::ops::Range;
use std::path::Path;

use prost::Message;
use pwlc_codecs::DType;

use super::elements::{encode_varints, TypedField};
use super::layout_proto::{self as lp, Encoding};
use super::wire::{varint_width, write_varint};
use super::{side_file_name, LAYOUT_VERSION};
use crate::{write_atomic, ModelError, Tensor};

/// A piece of an output file.
enum Piece<'a> {
    /// A range of the file's skeleton.
    Skeleton(Range<usize>),
    /// New bytes: tensor data or a rewritten length prefix.
    New(Cow<'a, [u8]>),
}

/// A replacement of `old_len` bytes at `offset` of the original file.
struct Edit<'a> {
    offset: usize,
    old_len: usize,
    /// True if the replaced bytes are part of the skeleton (a length prefix), false for a hole.
    in_skeleton: bool,
    bytes: Cow<'a, [u8]>,
}

/// Writes the model at `path` and its side files beside it.
pub(super) fn write(layout: &[u8], tensors: &[Tensor], path: &Path) -> Result<(), ModelError> {
    let corrupt = |m: &str| ModelError::invalid(path, &format!("corrupt ONNX layout: {m}"));
    let layout = lp::Layout::decode(layout).map_err(|e| corrupt(&e.to_string()))?;
    if layout.version != LAYOUT_VERSION {
        return Err(corrupt(&format!("unknown version {}", layout.version)));
    }
    check_tensors(&layout.tensors, tensors, path)?;
    let Some((model, side_files)) = layout.files.split_first() else {
        return Err(corrupt("no model file"));
    };
    let folder = path.parent().unwrap_or(Path::new(""));
    let mut outputs = Vec::with_capacity(side_files.len());
    for file in side_files {
        let name = side_file_name(&file.name).map_err(|m| corrupt(&m))?;
        let pieces = plan(file, tensors, &[]).map_err(|m| corrupt(&m))?;
        outputs.push((folder.join(name), file, pieces));
    }
    let pieces = plan(model, tensors, &layout.lengths).map_err(|m| corrupt(&m))?;
    outputs.push((path.to_path_buf(), model, pieces));
    // The model file last, so that it never refers to side files not yet written.
    for (target, file, pieces) in &outputs {
        write_file(target, &file.skeleton, pieces)?;
    }
    Ok(())
}

/// Fails unless `tensors` match the names, types and shapes the layout was made with.
fn check_tensors(
    infos: &[lp::TensorInfo],
    tensors: &[Tensor],
    path: &Path,
) -> Result<(), ModelError> {
    if infos.len() != tensors.len() {
        let message = format!(
            "{} tensors given, the model has {}",
            tensors.len(),
            infos.len()
        );
        return Err(ModelError::invalid(path, &message));
    }
    for (info, tensor) in infos.iter().zip(tensors) {
        let fail = |m: String| Err(ModelError::tensor(path, &tensor.name, &m));
        let expected = DType::from_code(info.dtype as u8)
            .ok()
            .filter(|_| info.dtype < 256);
        if info.name != tensor.name || expected != Some(tensor.dtype) || info.shape != tensor.shape
        {
            let expected = expected.map_or("of unknown type", DType::name);
            return fail(format!(
                "expected tensor '{}' {expected} {:?}, got {} {:?}",
                info.name, info.shape, tensor.dtype, tensor.shape
            ));
        }
        let size = tensor
            .element_count()
            .checked_mul(tensor.dtype.size() as u64);
        if size != Some(tensor.data.len() as u64) {
            return fail(format!(
                "{} data bytes do not fit shape {:?}",
                tensor.data.len(),
                tensor.shape
            ));
        }
    }
    Ok(())
}

/// Writes `pieces` to `path` atomically, creating its folder if needed. The skeleton ranges
/// were checked against `skeleton` by [`pieces`].
fn write_file(path: &Path, skeleton: &[u8], pieces: &[Piece]) -> Result<(), ModelError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| ModelError::io(parent, e))?;
    }
    write_atomic(path, |out| {
        for piece in pieces {
            match piece {
                Piece::Skeleton(range) => out.write_all(&skeleton[range.clone()])?,
                Piece::New(bytes) => out.write_all(bytes)?,
            }
        }
        Ok(())
    })
}

/// The pieces of one output file: its skeleton with the holes filled from `tensors` and the
/// length prefixes in `lengths` rewritten where the holes' sizes change.
fn plan<'a>(
    file: &lp::File,
    tensors: &'a [Tensor],
    lengths: &[lp::LengthPrefix],
) -> Result<Vec<Piece<'a>>, String> {
    let mut edits = Vec::with_capacity(file.holes.len());
    for hole in &file.holes {
        edits.push(hole_edit(hole, tensors)?);
    }
    let length_edits = length_edits(&edits, lengths)?;
    edits.extend(length_edits);
    edits.sort_by_key(|e| e.offset);
    pieces(edits, file.skeleton.len())
}

/// The new bytes of one hole.
fn hole_edit<'a>(hole: &lp::Hole, tensors: &'a [Tensor]) -> Result<Edit<'a>, String> {
    let tensor = tensors
        .get(hole.tensor as usize)
        .ok_or_else(|| format!("hole for tensor {} of {}", hole.tensor, tensors.len()))?;
    let varint = |field| Cow::Owned(encode_varints(tensor.dtype, field, &tensor.data));
    let bytes = match Encoding::try_from(hole.encoding) {
        Ok(Encoding::Raw) => Cow::Borrowed(&tensor.data[..]),
        Ok(Encoding::Int32Varint) => varint(TypedField::Int32),
        Ok(Encoding::Int64Varint) => varint(TypedField::Int64),
        Ok(Encoding::Uint64Varint) => varint(TypedField::Uint64),
        Err(_) => return Err(format!("unknown hole encoding {}", hole.encoding)),
    };
    let old_len = to_usize(hole.length)?;
    if hole.encoding == Encoding::Raw as i32 && bytes.len() != old_len {
        return Err(format!(
            "tensor '{}' has {} bytes, its hole {old_len}",
            tensor.name,
            bytes.len()
        ));
    }
    Ok(Edit {
        offset: to_usize(hole.offset)?,
        old_len,
        in_skeleton: false,
        bytes,
    })
}

/// A length prefix being recomputed: its content ends at `end`, and `growth` is how much the
/// content grew so far.
struct Open {
    index: usize,
    end: u64,
    growth: i128,
}

/// Edits rewriting the length prefixes whose content changed size.
///
/// Prefixes and holes are visited in file order while a stack holds the prefixes whose
/// content contains the current position; when a prefix's content ends, its growth (holes
/// and nested prefixes that changed width) is final and is passed on to the enclosing one.
fn length_edits<'a>(holes: &[Edit], lengths: &[lp::LengthPrefix]) -> Result<Vec<Edit<'a>>, String> {
    let growth = |e: &Edit| e.bytes.len() as i128 - e.old_len as i128;
    let mut events: Vec<(u64, Option<usize>, i128)> = holes
        .iter()
        .filter(|e| growth(e) != 0)
        .map(|e| (e.offset as u64, None, growth(e)))
        .collect();
    if events.is_empty() {
        return Ok(Vec::new());
    }
    events.extend(
        lengths
            .iter()
            .enumerate()
            .map(|(i, l)| (l.offset, Some(i), 0)),
    );
    events.sort_by_key(|&(offset, _, _)| offset);
    let mut stack: Vec<Open> = Vec::new();
    let mut edits = Vec::new();
    for (offset, prefix, delta) in events {
        close_before(offset, &mut stack, lengths, &mut edits)?;
        match prefix {
            Some(index) => {
                let opened = open(index, &lengths[index], stack.last())?;
                stack.push(opened);
            }
            None => match stack.last_mut() {
                Some(top) => top.growth += delta,
                None => return Err(format!("no length prefix encloses the hole at {offset}")),
            },
        }
    }
    close_before(u64::MAX, &mut stack, lengths, &mut edits)?;
    Ok(edits)
}

fn open(index: usize, prefix: &lp::LengthPrefix, parent: Option<&Open>) -> Result<Open, String> {
    let end = prefix
        .offset
        .checked_add(u64::from(prefix.width))
        .and_then(|start| start.checked_add(prefix.value))
        .filter(|&end| parent.is_none_or(|p| end <= p.end))
        .ok_or_else(|| format!("length prefix at {} is not nested", prefix.offset))?;
    Ok(Open {
        index,
        end,
        growth: 0,
    })
}

/// Finishes the prefixes whose content ends at or before `offset`.
fn close_before<'a>(
    offset: u64,
    stack: &mut Vec<Open>,
    lengths: &[lp::LengthPrefix],
    edits: &mut Vec<Edit<'a>>,
) -> Result<(), String> {
    while stack.last().is_some_and(|top| top.end <= offset) {
        let Some(top) = stack.pop() else { break };
        let prefix = &lengths[top.index];
        let mut growth = top.growth;
        if growth != 0 {
            let value = u64::try_from(i128::from(prefix.value) + growth)
                .map_err(|_| format!("length prefix at {} becomes negative", prefix.offset))?;
            let mut bytes = Vec::with_capacity(10);
            write_varint(&mut bytes, value);
            growth += varint_width(value) as i128 - i128::from(prefix.width);
            edits.push(Edit {
                offset: to_usize(prefix.offset)?,
                old_len: prefix.width as usize,
                in_skeleton: true,
                bytes: Cow::Owned(bytes),
            });
        }
        if let Some(parent) = stack.last_mut() {
            parent.growth += growth;
        }
    }
    Ok(())
}

/// Turns edits sorted by offset into pieces, checking that they are disjoint and stay
/// within a skeleton of `skeleton_len` bytes.
fn pieces(edits: Vec<Edit>, skeleton_len: usize) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::with_capacity(2 * edits.len() + 1);
    let (mut original, mut skeleton) = (0usize, 0usize);
    for edit in edits {
        let gap = edit
            .offset
            .checked_sub(original)
            .ok_or_else(|| format!("overlapping edits at byte {}", edit.offset))?;
        let past_end = || format!("edit at byte {} is past the skeleton's end", edit.offset);
        let gap_end = skeleton.checked_add(gap).filter(|&end| end <= skeleton_len);
        let gap_end = gap_end.ok_or_else(past_end)?;
        pieces.push(Piece::Skeleton(skeleton..gap_end));
        skeleton = gap_end;
        original = edit.offset.checked_add(edit.old_len).ok_or_else(past_end)?;
        if edit.in_skeleton {
            skeleton = skeleton
                .checked_add(edit.old_len)
                .filter(|&end| end <= skeleton_len)
                .ok_or_else(past_end)?;
        }
        pieces.push(Piece::New(edit.bytes));
    }
    pieces.push(Piece::Skeleton(skeleton..skeleton_len));
    Ok(pieces)
}

fn to_usize(value: u64) -> Result<usize, String> {
    usize::try_from(value).map_err(|_| format!("offset {value} out of range"))
}
