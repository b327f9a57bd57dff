//! Writing a container: payloads in call order, then the index and the footer.

use std::collections::BTreeSet;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use pwlc_codecs::DType;
use tempfile::NamedTempFile;

use crate::format::{
    align_up, byte_size, header, with_path, Put, ALIGN, END_MAGIC, FORMAT_VERSION, HEADER_LEN,
    LAYOUT_ZSTD_LEVEL, MAX_LAYOUT_BYTES, MAX_RANK,
};
use crate::{ContainerError, Entry, FileInfo};

/// The metadata of one tensor passed to [`Writer::add`].
#[derive(Debug, Clone, Copy)]
pub struct EntryMeta<'a> {
    /// The tensor's name; must be unique within the container.
    pub name: &'a str,
    /// Element type of the decoded tensor.
    pub dtype: DType,
    /// Dimensions of the decoded tensor, at most [`MAX_RANK`] of them.
    pub shape: &'a [u64],
    /// Codec id of the payload (`pwlc_codecs::CodecId as u16`).
    pub codec: u16,
    /// Largest |original - decoded| measured at compression time.
    pub max_abs_error: f64,
    /// RMSE measured at compression time.
    pub rmse: f64,
}

/// The destination of [`Writer::create`]: a temporary file in the target's folder that
/// [`Writer::finish`] renames onto the target, so no partial file ever appears under its name.
/// Dropping it without finishing deletes the temporary file.
#[derive(Debug)]
pub struct AtomicFile {
    out: BufWriter<NamedTempFile>,
    target: PathBuf,
}

impl AtomicFile {
    /// A temporary file beside `target`.
    fn create(target: &Path) -> io::Result<AtomicFile> {
        let dir = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let tmp = tempfile::Builder::new()
            .prefix(".pwlc-tmp")
            .tempfile_in(dir)?;
        Ok(AtomicFile {
            out: BufWriter::with_capacity(1 << 20, tmp),
            target: target.to_path_buf(),
        })
    }

    /// Flushes and syncs the temporary file, then renames it onto the target (replacing it).
    fn commit(self) -> io::Result<()> {
        let tmp = self.out.into_inner().map_err(|e| e.into_error())?;
        tmp.as_file().sync_all()?;
        tmp.persist(&self.target).map_err(|e| e.error)?;
        Ok(())
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Writes a container to `W`, by default an [`AtomicFile`].
///
/// Payloads are written as [`Writer::add`] receives them; only the index entries stay in
/// memory. An entry that [`Writer::add`] rejects leaves the writer usable; after a failed
/// write, every further call fails.
#[derive(Debug)]
pub struct Writer<W: Write = AtomicFile> {
    sink: W,
    /// Bytes written so far.
    pos: u64,
    /// The file-info part of the index, encoded at creation.
    info: Vec<u8>,
    entries: Vec<Entry>,
    names: BTreeSet<String>,
    /// Set when a write failed part-way, leaving the sink in an unknown state.
    broken: bool,
}

impl Writer<AtomicFile> {
    /// Starts a container that [`Writer::finish`] will place at `path`, replacing any file
    /// there. Whether to overwrite is the caller's decision.
    pub fn create(path: &Path, info: &FileInfo) -> Result<Writer, ContainerError> {
        let file = AtomicFile::create(path).map_err(|e| with_path(path, e))?;
        Writer::new(file, info)
    }

    /// Writes the index and footer and moves the file into place. Returns the file size.
    pub fn finish(self) -> Result<u64, ContainerError> {
        let (file, size) = self.finish_into_inner()?;
        let target = file.target.clone();
        file.commit().map_err(|e| with_path(&target, e))?;
        Ok(size)
    }
}

impl<W: Write> Writer<W> {
    /// Starts a container written to `sink` from its current position on.
    pub fn new(mut sink: W, info: &FileInfo) -> Result<Writer<W>, ContainerError> {
        let info = encode_info(info)?;
        sink.write_all(&header(FORMAT_VERSION))?;
        Ok(Writer {
            sink,
            pos: HEADER_LEN,
            info,
            entries: Vec::new(),
            names: BTreeSet::new(),
            broken: false,
        })
    }

    /// Appends one tensor's payload, followed by zero padding up to the next multiple of 8.
    pub fn add(&mut self, meta: &EntryMeta<'_>, payload: &[u8]) -> Result<(), ContainerError> {
        let original_bytes = self.check_entry(meta)?;
        let length = payload.len() as u64;
        let end = self.pos.checked_add(length).and_then(align_up);
        let end = end.ok_or_else(|| invalid(meta.name, "the container would exceed 2^64 bytes"))?;
        let padding = [0u8; ALIGN as usize];
        let padding = &padding[..(end - self.pos - length) as usize];
        self.write(&[payload, padding])?;
        self.entries.push(Entry {
            name: meta.name.to_string(),
            dtype: meta.dtype,
            shape: meta.shape.to_vec(),
            codec: meta.codec,
            original_bytes,
            max_abs_error: meta.max_abs_error,
            rmse: meta.rmse,
            offset: self.pos,
            length,
            checksum: crc32c::crc32c(payload),
        });
        self.names.insert(meta.name.to_string());
        self.pos = end;
        Ok(())
    }

    /// Writes the index and the footer. Returns the sink and the container's size in bytes.
    pub fn finish_into_inner(mut self) -> Result<(W, u64), ContainerError> {
        let index = self.encode_index()?;
        let index_len = index.len() as u64;
        let mut footer = Vec::with_capacity(32);
        footer.put_u64(self.pos);
        footer.put_u64(index_len);
        footer.put_u32(crc32c::crc32c(&index));
        footer.put_u32(0);
        footer.extend_from_slice(&END_MAGIC);
        self.write(&[&index, &footer])?;
        self.sink.flush()?;
        Ok((self.sink, self.pos + index_len + footer.len() as u64))
    }

    /// Writes `parts` in order; a failure marks the writer as broken.
    fn write(&mut self, parts: &[&[u8]]) -> Result<(), ContainerError> {
        if self.broken {
            return Err(ContainerError::Io(io::Error::other(
                "an earlier write failed; the container is incomplete",
            )));
        }
        for part in parts {
            if let Err(e) = self.sink.write_all(part) {
                self.broken = true;
                return Err(e.into());
            }
        }
        Ok(())
    }

    /// Validates `meta`; returns the decoded tensor's size in bytes.
    fn check_entry(&self, meta: &EntryMeta<'_>) -> Result<u64, ContainerError> {
        if self.names.contains(meta.name) {
            return Err(invalid(meta.name, "the name is already in the container"));
        }
        if meta.shape.len() > MAX_RANK {
            let reason = format!("rank {} exceeds {MAX_RANK}", meta.shape.len());
            return Err(invalid(meta.name, &reason));
        }
        byte_size(meta.dtype, meta.shape)
            .ok_or_else(|| invalid(meta.name, "the tensor's size in bytes exceeds 2^64"))
    }

    /// The index: file info, entry count, entries.
    fn encode_index(&self) -> Result<Vec<u8>, ContainerError> {
        let count = u32::try_from(self.entries.len())
            .map_err(|_| ContainerError::InvalidInfo("more than 2^32 - 1 entries".into()))?;
        let mut index = self.info.clone();
        index.put_u32(count);
        for e in &self.entries {
            encode_entry(&mut index, e)
                .ok_or_else(|| invalid(&e.name, "the name is 4 GiB or longer"))?;
        }
        Ok(index)
    }
}

/// The file-info part of the index.
fn encode_info(info: &FileInfo) -> Result<Vec<u8>, ContainerError> {
    let too_long = |what: &str| ContainerError::InvalidInfo(format!("{what} is 4 GiB or longer"));
    let layout_len = info.layout.len() as u64;
    if layout_len > MAX_LAYOUT_BYTES {
        return Err(ContainerError::InvalidInfo(format!(
            "the layout is {layout_len} bytes, more than the limit of {MAX_LAYOUT_BYTES}"
        )));
    }
    let compressed = zstd::bulk::compress(&info.layout, LAYOUT_ZSTD_LEVEL)?;
    let mut out = Vec::with_capacity(compressed.len() + 64);
    out.put_str(&info.format)
        .ok_or_else(|| too_long("format"))?;
    out.put_str(&info.file_name)
        .ok_or_else(|| too_long("file name"))?;
    out.put_u64(info.original_size);
    out.put_str(&info.settings)
        .ok_or_else(|| too_long("settings"))?;
    out.put_u64(layout_len);
    out.put_u32(crc32c::crc32c(&info.layout));
    out.put_u64(compressed.len() as u64);
    out.extend_from_slice(&compressed);
    Ok(out)
}

/// Appends one index entry; `None` if the name is too long. The rank was checked by `add`.
fn encode_entry(index: &mut Vec<u8>, e: &Entry) -> Option<()> {
    index.put_str(&e.name)?;
    index.put_u8(e.dtype.code());
    index.put_u8(e.shape.len() as u8);
    index.put_u16(e.codec);
    for &d in &e.shape {
        index.put_u64(d);
    }
    index.put_u64(e.original_bytes);
    index.put_f64(e.max_abs_error);
    index.put_f64(e.rmse);
    index.put_u64(e.offset);
    index.put_u64(e.length);
    index.put_u32(e.checksum);
    Some(())
}

/// A [`ContainerError::InvalidEntry`].
fn invalid(name: &str, reason: &str) -> ContainerError {
    ContainerError::InvalidEntry {
        name: name.to_string(),
        reason: reason.to_string(),
    }
}
