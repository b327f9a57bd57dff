//! The `.pwlc` container: coded tensor payloads, an index, and the non-tensor parts of the
//! original model file, each protected by a CRC-32C. See `docs/FORMAT.md`.
//!
//! [`Writer`] appends payloads in call order and writes the index and footer on
//! [`Writer::finish`]; [`Reader`] finds the index from the end of the file, validates all of
//! it at open, and hands out single payloads (checksum-verified) without touching the others.

mod format;
mod reader;
mod writer;

pub use format::{FORMAT_VERSION, MAGIC, MAX_LAYOUT_BYTES, MAX_RANK};
pub use reader::Reader;
pub use writer::{AtomicFile, EntryMeta, Writer};

use pwlc_codecs::{CodecId, DType};
use thiserror::Error;

/// Facts about the original model file, stored once per container.
#[derive(Debug, Clone, PartialEq)]
pub struct FileInfo {
    /// The model format's name (`onnx`, `safetensors`, ...).
    pub format: String,
    /// The original file's name, without folders.
    pub file_name: String,
    /// The original file's size in bytes.
    pub original_size: u64,
    /// The adapter's layout: everything in the original file but the tensor data.
    pub layout: Vec<u8>,
    /// The compression settings, as a JSON object (informative).
    pub settings: String,
}

/// One tensor's index entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The tensor's name, unique within the container.
    pub name: String,
    /// Element type of the decoded tensor.
    pub dtype: DType,
    /// Dimensions of the decoded tensor, outermost first (empty for a scalar).
    pub shape: Vec<u64>,
    /// Raw codec id (may be one this version cannot decode).
    pub codec: u16,
    /// Size of the decoded tensor in bytes.
    pub original_bytes: u64,
    /// Largest |original - decoded| measured at compression time.
    pub max_abs_error: f64,
    /// RMSE measured at compression time.
    pub rmse: f64,
    /// Payload position in the container file.
    pub offset: u64,
    /// Payload length in bytes.
    pub length: u64,
    /// CRC-32C of the payload.
    pub checksum: u32,
}

impl Entry {
    /// The codec, if this version knows it.
    pub fn codec_id(&self) -> Option<CodecId> {
        CodecId::from_u16(self.codec)
    }
}

/// Why a container could not be written or read.
#[derive(Debug, Error)]
pub enum ContainerError {
    /// Reading or writing the file failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The file does not start with [`MAGIC`].
    #[error("not a .pwlc file (bad magic)")]
    NotPwlc,
    /// The file's format version (first) is newer than this reader's (second).
    #[error("container version {0} is newer than this pwlc supports ({1}); upgrade pwlc")]
    NewerVersion(u16, u16),
    /// The file's structure is inconsistent: truncated, damaged, or not written by a pwlc.
    #[error("corrupt container: {0}")]
    Corrupt(String),
    /// A payload does not match its CRC-32C.
    #[error("tensor '{name}': checksum mismatch (payload is damaged)")]
    Checksum { name: String },
    /// An entry names a codec this version does not know (reported by callers that decode).
    #[error("tensor '{name}': codec id {codec} is unknown to this pwlc; upgrade pwlc")]
    UnknownCodec { name: String, codec: u16 },
    /// The writer was given an entry or file info that cannot be stored.
    #[error("cannot store tensor '{name}': {reason}")]
    InvalidEntry { name: String, reason: String },
    /// The writer was given file info that cannot be stored.
    #[error("cannot store the file info: {0}")]
    InvalidInfo(String),
    /// A payload was requested by a position past the last entry.
    #[error("no entry {index}: the container holds {count} entries")]
    NoEntry { index: usize, count: usize },
}
