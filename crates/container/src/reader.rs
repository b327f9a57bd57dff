//! Reading a container: validation of header, footer and index at open, then random access
//! to single payloads.

use std::fs::File;
use std::io::Read;
use std::ops::Range;
use std::path::Path;

use pwlc_codecs::DType;

use crate::format::{
    align_up, byte_size, corrupt, with_path, Cursor, END_MAGIC, FOOTER_LEN, FORMAT_VERSION,
    HEADER_LEN, LAYOUT_WINDOW_LOG_MAX, MAGIC, MAX_LAYOUT_BYTES, MAX_RANK, MIN_ENTRY_LEN,
};
use crate::{ContainerError, Entry, FileInfo};

/// An open container. Opening validates everything but the payloads; [`Reader::payload`]
/// verifies one payload's checksum when it is read.
pub struct Reader {
    bytes: Box<dyn AsRef<[u8]> + Send + Sync>,
    info: FileInfo,
    entries: Vec<Entry>,
    /// Per entry: the payload's byte range and the end of the zero padding after it.
    spans: Vec<Span>,
    /// Entry positions sorted by name, for [`Reader::find`].
    by_name: Vec<usize>,
}

/// Where one payload and its padding lie, as checked positions into the container bytes.
#[derive(Debug, Clone)]
struct Span {
    payload: Range<usize>,
    padding_end: usize,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("len", &self.data().len())
            .field("info", &self.info)
            .field("entries", &self.entries.len())
            .finish()
    }
}

impl Reader {
    /// Opens and validates the container at `path`, memory-mapped.
    pub fn open(path: &Path) -> Result<Reader, ContainerError> {
        let mut file = File::open(path).map_err(|e| with_path(path, e))?;
        let len = file.metadata().map_err(|e| with_path(path, e))?.len();
        if len < HEADER_LEN + FOOTER_LEN {
            // Too short to be valid; read it so the error says why (bad magic or truncated).
            let mut small = Vec::new();
            (&mut file)
                .take(HEADER_LEN + FOOTER_LEN)
                .read_to_end(&mut small)
                .map_err(|e| with_path(path, e))?;
            return Reader::from_bytes(small);
        }
        // SAFETY: the map is read-only and private to this process. If another process
        // truncates or rewrites the file while it is mapped, reads may fault or see new bytes;
        // pwlc never modifies a container after renaming it into place, and every payload read
        // through the map is checked against its CRC-32C.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| with_path(path, e))?;
        Reader::from_bytes(map)
    }

    /// Validates a container held in memory (a `Vec<u8>`, a memory map, ...).
    pub fn from_bytes<B>(bytes: B) -> Result<Reader, ContainerError>
    where
        B: AsRef<[u8]> + Send + Sync + 'static,
    {
        let data = bytes.as_ref();
        let index_range = check_frame(data)?;
        let index_offset = index_range.start;
        let (info, entries) = parse_index(&data[index_range])?;
        let spans = check_placement(&entries, index_offset)?;
        let by_name = sort_names(&entries)?;
        Ok(Reader {
            bytes: Box::new(bytes),
            info,
            entries,
            spans,
            by_name,
        })
    }

    /// Facts about the original model file.
    pub fn info(&self) -> &FileInfo {
        &self.info
    }

    /// The index entries, in file order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The position of the entry called `name`.
    pub fn find(&self, name: &str) -> Option<usize> {
        let k = self
            .by_name
            .binary_search_by(|&i| self.entries[i].name.as_str().cmp(name))
            .ok()?;
        Some(self.by_name[k])
    }

    /// The payload of entry `i`, after checking its CRC-32C and the zero padding after it.
    pub fn payload(&self, i: usize) -> Result<&[u8], ContainerError> {
        let (entry, span) =
            self.entries
                .get(i)
                .zip(self.spans.get(i))
                .ok_or(ContainerError::NoEntry {
                    index: i,
                    count: self.entries.len(),
                })?;
        let data = self.data();
        let payload = &data[span.payload.clone()];
        if crc32c::crc32c(payload) != entry.checksum {
            return Err(ContainerError::Checksum {
                name: entry.name.clone(),
            });
        }
        if data[span.payload.end..span.padding_end]
            .iter()
            .any(|&b| b != 0)
        {
            return Err(corrupt(format!(
                "the padding after tensor '{}' is not zero",
                entry.name
            )));
        }
        Ok(payload)
    }

    /// The whole container.
    fn data(&self) -> &[u8] {
        (*self.bytes).as_ref()
    }
}

/// Checks header and footer and the index checksum; returns the index's byte range.
fn check_frame(data: &[u8]) -> Result<Range<usize>, ContainerError> {
    let head = &data[..data.len().min(MAGIC.len())];
    if head != &MAGIC[..head.len()] {
        return Err(ContainerError::NotPwlc);
    }
    let len = data.len() as u64;
    if len < HEADER_LEN + FOOTER_LEN {
        return Err(corrupt(format!(
            "the file is {len} bytes, shorter than its header and footer ({} bytes): truncated",
            HEADER_LEN + FOOTER_LEN
        )));
    }
    check_header(data)?;
    let footer = &data[data.len() - FOOTER_LEN as usize..];
    let range = check_footer(footer, len)?;
    let index = &data[range.clone()];
    let stored = u32_at(footer, 16);
    let actual = crc32c::crc32c(index);
    if stored != actual {
        return Err(corrupt(format!(
            "index checksum mismatch (stored {stored:08x}, computed {actual:08x}): the index is damaged"
        )));
    }
    Ok(range)
}

/// Checks the version and the reserved bytes of the header (the magic is already checked).
fn check_header(data: &[u8]) -> Result<(), ContainerError> {
    let version = u16::from_le_bytes([data[8], data[9]]);
    if version > FORMAT_VERSION {
        return Err(ContainerError::NewerVersion(version, FORMAT_VERSION));
    }
    if version == 0 {
        return Err(corrupt("format version 0 does not exist"));
    }
    if data[10..HEADER_LEN as usize].iter().any(|&b| b != 0) {
        return Err(corrupt("reserved header bytes 10..16 are not zero"));
    }
    Ok(())
}

/// Checks the footer of a file of `len` bytes; returns the index's byte range.
fn check_footer(footer: &[u8], len: u64) -> Result<Range<usize>, ContainerError> {
    if footer[24..] != END_MAGIC {
        return Err(corrupt(
            "end marker missing: the file is truncated or was not completely written",
        ));
    }
    if u32_at(footer, 20) != 0 {
        return Err(corrupt("reserved footer bytes are not zero"));
    }
    let offset = u64_at(footer, 0);
    let index_len = u64_at(footer, 8);
    let index_end = len - FOOTER_LEN;
    let valid = offset >= HEADER_LEN
        && offset.is_multiple_of(8)
        && offset.checked_add(index_len) == Some(index_end);
    if !valid {
        return Err(corrupt(format!(
            "index at offset {offset} with length {index_len} does not end where the footer \
             starts (byte {index_end})"
        )));
    }
    // Both bounds are at most `len`, which is a slice length.
    Ok(offset as usize..index_end as usize)
}

/// Parses the index: file info, then the entries.
fn parse_index(index: &[u8]) -> Result<(FileInfo, Vec<Entry>), ContainerError> {
    let mut cur = Cursor::new(index);
    let info = parse_info(&mut cur)?;
    let count = cur.u32("entry count")?;
    let needed = u64::from(count) * MIN_ENTRY_LEN as u64;
    if needed > cur.remaining() as u64 {
        return Err(corrupt(format!(
            "the index declares {count} entries, which need at least {needed} bytes, \
             but only {} remain",
            cur.remaining()
        )));
    }
    // `count` entries fit in the bytes present, so this allocation is bounded by the file.
    let mut entries = Vec::with_capacity(count as usize);
    for i in 0..count {
        entries.push(parse_entry(&mut cur, i)?);
    }
    if cur.remaining() != 0 {
        return Err(corrupt(format!(
            "{} unexpected bytes after the last index entry",
            cur.remaining()
        )));
    }
    Ok((info, entries))
}

/// Parses the file-info part of the index, decompressing the layout.
fn parse_info(cur: &mut Cursor<'_>) -> Result<FileInfo, ContainerError> {
    let format = cur.str("format name")?;
    let file_name = cur.str("file name")?;
    let original_size = cur.u64("original size")?;
    let settings = cur.str("settings")?;
    let layout_len = cur.u64("layout size")?;
    let layout_crc = cur.u32("layout checksum")?;
    let zstd_len = cur.u64("compressed layout size")?;
    let compressed = cur.take(zstd_len, "compressed layout")?;
    let layout = decompress_layout(compressed, layout_len)?;
    if crc32c::crc32c(&layout) != layout_crc {
        return Err(corrupt("layout checksum mismatch: the layout is damaged"));
    }
    Ok(FileInfo {
        format,
        file_name,
        original_size,
        layout,
        settings,
    })
}

/// Decompresses the layout's zstd frame, producing at most `declared` bytes and refusing
/// frames that need a window above 2^23 bytes.
fn decompress_layout(compressed: &[u8], declared: u64) -> Result<Vec<u8>, ContainerError> {
    if declared > MAX_LAYOUT_BYTES {
        return Err(corrupt(format!(
            "the layout declares {declared} bytes, more than the limit of {MAX_LAYOUT_BYTES}"
        )));
    }
    let bad = |e: std::io::Error| corrupt(format!("the layout does not decompress: {e}"));
    let mut decoder = zstd::stream::read::Decoder::with_buffer(compressed)
        .map_err(bad)?
        .single_frame();
    decoder.window_log_max(LAYOUT_WINDOW_LOG_MAX).map_err(bad)?;
    // The output grows with what the frame really produces, capped one past `declared`.
    let mut layout = Vec::new();
    (&mut decoder)
        .take(declared + 1)
        .read_to_end(&mut layout)
        .map_err(bad)?;
    if layout.len() as u64 != declared {
        return Err(corrupt(format!(
            "the layout decompresses to {}{} bytes, not the declared {declared}",
            if layout.len() as u64 > declared {
                "more than "
            } else {
                ""
            },
            layout.len().min(declared as usize)
        )));
    }
    if !decoder.finish().is_empty() {
        return Err(corrupt("unexpected bytes after the layout's zstd frame"));
    }
    Ok(layout)
}

/// Parses index entry `i`, checking its dtype, rank and size.
fn parse_entry(cur: &mut Cursor<'_>, i: u32) -> Result<Entry, ContainerError> {
    let name = cur.str(&format!("the name of entry {i}"))?;
    let field = |what: &str| format!("{what} of tensor '{name}'");
    let code = cur.u8(&field("dtype"))?;
    let dtype = DType::from_code(code)
        .map_err(|_| corrupt(format!("tensor '{name}': unknown dtype code {code}")))?;
    let rank = cur.u8(&field("rank"))? as usize;
    if rank > MAX_RANK {
        return Err(corrupt(format!(
            "tensor '{name}': rank {rank} exceeds {MAX_RANK}"
        )));
    }
    let codec = cur.u16(&field("codec id"))?;
    let shape = (0..rank)
        .map(|_| cur.u64(&field("shape")))
        .collect::<Result<Vec<u64>, _>>()?;
    let entry = Entry {
        dtype,
        codec,
        original_bytes: cur.u64(&field("original size"))?,
        max_abs_error: cur.f64(&field("max error"))?,
        rmse: cur.f64(&field("rmse"))?,
        offset: cur.u64(&field("payload offset"))?,
        length: cur.u64(&field("payload length"))?,
        checksum: cur.u32(&field("checksum"))?,
        shape,
        name,
    };
    check_size(&entry)?;
    Ok(entry)
}

/// Checks that the shape's element count times the dtype size is `original_bytes`.
fn check_size(e: &Entry) -> Result<(), ContainerError> {
    match byte_size(e.dtype, &e.shape) {
        None => Err(corrupt(format!(
            "tensor '{}': shape {:?} of {} overflows 2^64 bytes",
            e.name, e.shape, e.dtype
        ))),
        Some(n) if n != e.original_bytes => Err(corrupt(format!(
            "tensor '{}': shape {:?} of {} is {n} bytes, but the entry says {}",
            e.name, e.shape, e.dtype, e.original_bytes
        ))),
        Some(_) => Ok(()),
    }
}

/// Checks that the payloads lie back to back in file order, each starting at the first
/// multiple of 8 after the previous one, and that the last one is followed by the index.
fn check_placement(entries: &[Entry], index_offset: usize) -> Result<Vec<Span>, ContainerError> {
    let area_end = index_offset as u64;
    let mut expected = HEADER_LEN;
    let mut spans = Vec::with_capacity(entries.len());
    for e in entries {
        let end = e
            .offset
            .checked_add(e.length)
            .filter(|&end| end <= area_end);
        let Some(end) = end else {
            return Err(corrupt(format!(
                "tensor '{}': payload at offset {} with length {} extends past the payload \
                 area, which ends at byte {area_end}",
                e.name, e.offset, e.length
            )));
        };
        if e.offset != expected {
            return Err(corrupt(format!(
                "tensor '{}': payload at offset {} overlaps or is not adjacent to the previous \
                 payload area, which ends at byte {expected}",
                e.name, e.offset
            )));
        }
        // `end <= area_end`, so aligning cannot overflow; the padding ends at most at the index.
        expected = align_up(end).unwrap_or(u64::MAX).min(area_end);
        spans.push(Span {
            payload: e.offset as usize..end as usize,
            padding_end: expected as usize,
        });
    }
    if expected != area_end {
        return Err(corrupt(format!(
            "the payloads end at byte {expected}, but the index starts at byte {area_end}"
        )));
    }
    Ok(spans)
}

/// Entry positions sorted by name; rejects duplicate names.
fn sort_names(entries: &[Entry]) -> Result<Vec<usize>, ContainerError> {
    let mut by_name: Vec<usize> = (0..entries.len()).collect();
    by_name.sort_by(|&a, &b| entries[a].name.cmp(&entries[b].name));
    for pair in by_name.windows(2) {
        if entries[pair[0]].name == entries[pair[1]].name {
            return Err(corrupt(format!(
                "the name '{}' appears more than once",
                entries[pair[0]].name
            )));
        }
    }
    Ok(by_name)
}

/// The little-endian `u32` at `at` in the footer.
fn u32_at(footer: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&footer[at..at + 4]);
    u32::from_le_bytes(b)
}

/// The little-endian `u64` at `at` in the footer.
fn u64_at(footer: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&footer[at..at + 8]);
    u64::from_le_bytes(b)
}
