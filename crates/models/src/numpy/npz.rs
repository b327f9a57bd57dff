//! `.npz` archives: zip files of `.npy` members, stored or deflated (read and written with the
//! `zip` crate).
//!
//! Layout: for every member in archive order its name, compression method, modification time
//! and either its `.npy` header (an array member, one tensor) or its whole content (a member
//! that is not a `.npy`, kept as it is). Directory entries are dropped. Stored members are
//! exposed zero-copy from the memory-mapped archive.

use std::io::{self, Cursor, Read, Write};
use std::path::Path;

use bytes::Bytes;
use pwlc_codecs::bitio::{ByteReader, PutBytes};
use pwlc_codecs::CodecError;
use zip::read::ZipFile;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipArchive, ZipWriter};

use super::npy::{self, Source};
use crate::safetensors::spec::check_unique_names;
use crate::{map_file, write_atomic, ModelError, Tensor};

/// Suffix of array members.
const NPY_SUFFIX: &str = ".npy";
/// Layout codes of the compression methods supported (their zip method numbers).
const STORED: u8 = 0;
const DEFLATED: u8 = 8;
/// Layout codes of the member kinds.
const ARRAY: u8 = 0;
const RAW: u8 = 1;

/// One member of an archive, as the layout records it.
struct Member {
    name: String,
    /// [`STORED`] or [`DEFLATED`].
    method: u8,
    /// MS-DOS date and time parts, if the archive recorded a valid time.
    modified: Option<(u16, u16)>,
    content: Content,
}

/// What a member holds.
enum Content {
    /// A `.npy` member: its header (the data is the tensor's).
    Array { header: Vec<u8> },
    /// Any other member, kept as it is.
    Raw(Bytes),
}

/// A member about to be written.
struct Entry {
    name: String,
    method: CompressionMethod,
    modified: DateTime,
    /// The content, in pieces (a `.npy` header and its data).
    parts: [Bytes; 2],
}

/// Reads the arrays of a `.npz` file, one tensor per `.npy` member, named after the member
/// without `.npy`.
pub(super) fn read(path: &Path) -> Result<(Vec<Tensor>, Vec<u8>), ModelError> {
    let file = map_file(path)?;
    let mut archive = ZipArchive::new(Cursor::new(file.clone()))
        .map_err(|e| ModelError::invalid(path, &format!("not a valid zip archive: {e}")))?;
    let mut tensors = Vec::new();
    let mut members = Vec::new();
    for index in 0..archive.len() {
        let mut entry = archive
            .by_index(index)
            .map_err(|e| ModelError::invalid(path, &format!("zip member {index}: {e}")))?;
        if entry.is_dir() {
            continue;
        }
        let mut member = member_info(path, &entry)?;
        let bytes = member_bytes(path, &member.name, &file, &mut entry)?;
        if let Some(tensor_name) = member.name.strip_suffix(NPY_SUFFIX) {
            let (tensor, header) = npy::decode(&archive_source(path, tensor_name), bytes)?;
            tensors.push(tensor);
            member.content = Content::Array { header };
        } else {
            member.content = Content::Raw(bytes);
        }
        members.push(member);
    }
    Ok((tensors, encode_layout(&members)))
}

/// Writes a `.npz` file from a layout returned by [`read`] and new tensor values: the same
/// members in the same order, with the same names, `.npy` headers, compression and times.
pub(super) fn write(layout: &[u8], tensors: &[Tensor], path: &Path) -> Result<(), ModelError> {
    let members = decode_layout(path, layout)?;
    let arrays = members
        .iter()
        .filter(|m| matches!(m.content, Content::Array { .. }))
        .count();
    let mismatch = || {
        ModelError::invalid(
            path,
            &format!(
                "the layout lists {arrays} arrays but {} tensors were given",
                tensors.len()
            ),
        )
    };
    if arrays != tensors.len() {
        return Err(mismatch());
    }
    let mut next_tensor = tensors.iter();
    let mut entries = Vec::with_capacity(members.len());
    for member in members {
        let parts = match member.content {
            Content::Array { header } => {
                let tensor = next_tensor.next().ok_or_else(mismatch)?;
                let tensor_name = member.name.strip_suffix(NPY_SUFFIX).unwrap_or(&member.name);
                let data = npy::encode(&archive_source(path, tensor_name), &header, tensor)?;
                [Bytes::from(header), data]
            }
            Content::Raw(bytes) => [bytes, Bytes::new()],
        };
        entries.push(Entry {
            method: compression_method(member.method),
            modified: member
                .modified
                .and_then(|(date, time)| DateTime::try_from_msdos(date, time).ok())
                .unwrap_or_default(),
            name: member.name,
            parts,
        });
    }
    write_atomic(path, |w| write_archive(w, &entries))
}

/// Writes tensors alone as a new `.npz` of stored members `<name>.npy`, little-endian and in C
/// order. BF16 and opaque tensors have no NumPy dtype and are refused.
pub(super) fn write_fresh(tensors: &[Tensor], path: &Path) -> Result<(), ModelError> {
    check_unique_names(path, tensors)?;
    let entries = tensors
        .iter()
        .map(|tensor| {
            Ok(Entry {
                name: format!("{}{NPY_SUFFIX}", tensor.name),
                method: CompressionMethod::Stored,
                modified: DateTime::default(),
                parts: [npy::fresh_header(path, tensor)?.into(), tensor.data.clone()],
            })
        })
        .collect::<Result<Vec<_>, ModelError>>()?;
    write_atomic(path, |w| write_archive(w, &entries))
}

/// Where the array of member `<tensor_name>.npy` comes from.
fn archive_source<'a>(path: &'a Path, tensor_name: &'a str) -> Source<'a> {
    Source {
        path,
        name: tensor_name,
        in_archive: true,
    }
}

/// Name, compression and time of a member (its content still empty).
fn member_info<R: Read>(path: &Path, entry: &ZipFile<'_, R>) -> Result<Member, ModelError> {
    let name = entry
        .name()
        .map_err(|e| ModelError::invalid(path, &format!("bad zip member name: {e}")))?
        .into_owned();
    let method = match entry.compression() {
        CompressionMethod::Stored => STORED,
        CompressionMethod::Deflated => DEFLATED,
        other => {
            return Err(ModelError::tensor(
                path,
                &name,
                &format!("compression {other} is not supported (only stored and deflated)"),
            ))
        }
    };
    Ok(Member {
        name,
        method,
        modified: entry
            .last_modified()
            .filter(DateTime::is_valid)
            .map(|t| (t.datepart(), t.timepart())),
        content: Content::Raw(Bytes::new()),
    })
}

/// The uncompressed bytes of a member: a slice of the archive if it is stored, else inflated.
fn member_bytes(
    path: &Path,
    name: &str,
    file: &Bytes,
    entry: &mut ZipFile<'_, Cursor<Bytes>>,
) -> Result<Bytes, ModelError> {
    let bad = |why: &str| ModelError::tensor(path, name, why);
    if let (CompressionMethod::Stored, Some(start)) = (entry.compression(), entry.data_start()) {
        let len = entry.compressed_size();
        return match start.checked_add(len) {
            Some(end) if end <= file.len() as u64 && len == entry.size() => {
                Ok(file.slice(start as usize..end as usize))
            }
            _ => Err(bad("stored data lies outside the archive")),
        };
    }
    let mut out = Vec::new();
    entry
        .read_to_end(&mut out)
        .map_err(|e| bad(&format!("cannot extract: {e}")))?;
    Ok(out.into())
}

/// The zip compression method of a layout code.
fn compression_method(code: u8) -> CompressionMethod {
    match code {
        DEFLATED => CompressionMethod::Deflated,
        _ => CompressionMethod::Stored,
    }
}

/// Writes `entries` as a zip archive in streaming mode (sizes in data descriptors).
fn write_archive(w: &mut dyn Write, entries: &[Entry]) -> io::Result<()> {
    let mut zip = ZipWriter::new_stream(w);
    for entry in entries {
        let len: u64 = entry.parts.iter().map(|p| p.len() as u64).sum();
        let options = SimpleFileOptions::default()
            .compression_method(entry.method)
            .last_modified_time(entry.modified)
            .large_file(len >= u64::from(u32::MAX));
        zip.start_file(entry.name.as_str(), options)?;
        entry.parts.iter().try_for_each(|p| zip.write_all(p))?;
    }
    zip.finish()?;
    Ok(())
}

/// Serializes the members of an archive.
fn encode_layout(members: &[Member]) -> Vec<u8> {
    let mut out = Vec::new();
    out.put_varint(members.len() as u64);
    for member in members {
        out.put_block(member.name.as_bytes());
        out.push(member.method);
        match member.modified {
            Some((date, time)) => {
                out.push(1);
                out.put_u32(u32::from(date) << 16 | u32::from(time));
            }
            None => out.push(0),
        }
        match &member.content {
            Content::Array { header } => {
                out.push(ARRAY);
                out.put_block(header);
            }
            Content::Raw(bytes) => {
                out.push(RAW);
                out.put_block(bytes);
            }
        }
    }
    out
}

/// Inverse of [`encode_layout`].
fn decode_layout(path: &Path, layout: &[u8]) -> Result<Vec<Member>, ModelError> {
    let mut reader = ByteReader::new(layout);
    let members = reader
        .varint_max(layout.len() as u64)
        .and_then(|count| (0..count).map(|_| decode_member(&mut reader)).collect());
    members.map_err(|e| ModelError::invalid(path, &format!("bad npz layout: {e}")))
}

/// Reads one member written by [`encode_layout`].
fn decode_member(reader: &mut ByteReader) -> Result<Member, CodecError> {
    let name = String::from_utf8(reader.block()?.to_vec())
        .map_err(|_| CodecError::Corrupt("member name is not UTF-8"))?;
    let method = match reader.u8()? {
        m @ (STORED | DEFLATED) => m,
        _ => return Err(CodecError::Corrupt("unknown compression method")),
    };
    let modified = match reader.u8()? {
        0 => None,
        _ => {
            let packed = reader.u32()?;
            Some(((packed >> 16) as u16, packed as u16))
        }
    };
    let content = match reader.u8()? {
        ARRAY => Content::Array {
            header: reader.block()?.to_vec(),
        },
        RAW => Content::Raw(Bytes::copy_from_slice(reader.block()?)),
        _ => return Err(CodecError::Corrupt("unknown member kind")),
    };
    Ok(Member {
        name,
        method,
        modified,
        content,
    })
}
