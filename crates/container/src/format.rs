//! Constants and byte-level helpers shared by the writer and the reader.
//!
//! The layout is specified in `docs/FORMAT.md`. The index is parsed with a small cursor of its
//! own rather than `pwlc_codecs::bitio::ByteReader`: the index uses fixed-width fields and its
//! errors must name the field and position, which that reader's static messages cannot.

use std::io;
use std::path::Path;

use pwlc_codecs::DType;

use crate::ContainerError;

/// The first 8 bytes of every `.pwlc` file. `\r\n` and the lone `\n` catch line-ending
/// conversion in either direction, `\x1a` stops `type` on DOS-like systems.
pub const MAGIC: [u8; 8] = *b"PWLC\r\n\x1a\n";

/// The last 8 bytes of every `.pwlc` file; the high-bit byte catches 7-bit transfers.
pub(crate) const END_MAGIC: [u8; 8] = *b"PWLCEND\x89";

/// The format version this crate writes, and the newest it reads.
pub const FORMAT_VERSION: u16 = 1;

/// Largest tensor rank an index entry may declare.
pub const MAX_RANK: usize = 32;

/// Largest decompressed layout a reader accepts (1 GiB).
pub const MAX_LAYOUT_BYTES: u64 = 1 << 30;

/// Header: magic, version, 6 reserved zero bytes.
pub(crate) const HEADER_LEN: u64 = 16;

/// Footer: index offset, index length, index CRC, reserved, end magic.
pub(crate) const FOOTER_LEN: u64 = 32;

/// Payloads (and the index) start at multiples of this.
pub(crate) const ALIGN: u64 = 8;

/// Largest zstd window (as a power of two) a layout frame may need.
pub(crate) const LAYOUT_WINDOW_LOG_MAX: u32 = 23;

/// zstd level of the layout blob: a fixed level keeps the output deterministic.
pub(crate) const LAYOUT_ZSTD_LEVEL: i32 = 9;

/// Bytes of an index entry with an empty name and rank 0.
pub(crate) const MIN_ENTRY_LEN: usize = 4 + 1 + 1 + 2 + 5 * 8 + 4;

/// `pos` rounded up to the next multiple of [`ALIGN`]; `None` on overflow.
pub(crate) fn align_up(pos: u64) -> Option<u64> {
    pos.checked_add(ALIGN - 1).map(|p| p & !(ALIGN - 1))
}

/// The header bytes of a container of `version`.
pub(crate) fn header(version: u16) -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[..8].copy_from_slice(&MAGIC);
    h[8..10].copy_from_slice(&version.to_le_bytes());
    h
}

/// Appends little-endian fields to an index under construction.
pub(crate) trait Put {
    /// Appends a `u8`.
    fn put_u8(&mut self, v: u8);
    /// Appends a little-endian `u16`.
    fn put_u16(&mut self, v: u16);
    /// Appends a little-endian `u32`.
    fn put_u32(&mut self, v: u32);
    /// Appends a little-endian `u64`.
    fn put_u64(&mut self, v: u64);
    /// Appends the IEEE-754 bits of `v`, little-endian.
    fn put_f64(&mut self, v: f64) {
        self.put_u64(v.to_bits());
    }
    /// Appends a `u32` byte length and the UTF-8 bytes; `None` if `s` is 4 GiB or longer.
    fn put_str(&mut self, s: &str) -> Option<()>;
}

impl Put for Vec<u8> {
    fn put_u8(&mut self, v: u8) {
        self.push(v);
    }
    fn put_u16(&mut self, v: u16) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn put_u32(&mut self, v: u32) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn put_u64(&mut self, v: u64) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn put_str(&mut self, s: &str) -> Option<()> {
        self.put_u32(u32::try_from(s.len()).ok()?);
        self.extend_from_slice(s.as_bytes());
        Some(())
    }
}

/// Reads fixed-width little-endian fields of the index; every error names the field.
pub(crate) struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `bytes`.
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Cursor { bytes, pos: 0 }
    }

    /// Bytes not yet read.
    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    /// Reads `n` bytes of the field `what`.
    pub(crate) fn take(&mut self, n: u64, what: &str) -> Result<&'a [u8], ContainerError> {
        let n = usize::try_from(n)
            .ok()
            .filter(|&n| n <= self.remaining())
            .ok_or_else(|| {
                corrupt(format!(
                    "index ends inside {what} (needs {n} bytes at index byte {}, {} left)",
                    self.pos,
                    self.remaining()
                ))
            })?;
        let s = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// Reads `N` bytes of the field `what` as an array.
    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], ContainerError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N as u64, what)?);
        Ok(a)
    }

    /// Reads a `u8`.
    pub(crate) fn u8(&mut self, what: &str) -> Result<u8, ContainerError> {
        Ok(self.array::<1>(what)?[0])
    }

    /// Reads a little-endian `u16`.
    pub(crate) fn u16(&mut self, what: &str) -> Result<u16, ContainerError> {
        self.array(what).map(u16::from_le_bytes)
    }

    /// Reads a little-endian `u32`.
    pub(crate) fn u32(&mut self, what: &str) -> Result<u32, ContainerError> {
        self.array(what).map(u32::from_le_bytes)
    }

    /// Reads a little-endian `u64`.
    pub(crate) fn u64(&mut self, what: &str) -> Result<u64, ContainerError> {
        self.array(what).map(u64::from_le_bytes)
    }

    /// Reads a little-endian `f64`.
    pub(crate) fn f64(&mut self, what: &str) -> Result<f64, ContainerError> {
        self.u64(what).map(f64::from_bits)
    }

    /// Reads a string written by [`Put::put_str`].
    pub(crate) fn str(&mut self, what: &str) -> Result<String, ContainerError> {
        let len = self.u32(what)?;
        let bytes = self.take(len.into(), what)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| corrupt(format!("{what} is not valid UTF-8")))
    }
}

/// A [`ContainerError::Corrupt`] with `msg`.
pub(crate) fn corrupt(msg: impl Into<String>) -> ContainerError {
    ContainerError::Corrupt(msg.into())
}

/// Size in bytes of a tensor of `dtype` and `shape`; `None` if it overflows `u64`.
pub(crate) fn byte_size(dtype: DType, shape: &[u64]) -> Option<u64> {
    shape
        .iter()
        .try_fold(1u64, |n, &d| n.checked_mul(d))?
        .checked_mul(dtype.size() as u64)
}

/// An I/O error that names `path`.
pub(crate) fn with_path(path: &Path, e: io::Error) -> ContainerError {
    ContainerError::Io(io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}
