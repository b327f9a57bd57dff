//! The `.pwlc` container: coded tensor payloads, an index, and the non-tensor parts of the
//! original model file, each protected by a CRC-32C. See `docs/FORMAT.md`.

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
    pub name: String,
    pub dtype: DType,
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
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("not a .pwlc file (bad magic)")]
    NotPwlc,
    #[error("container version {0} is newer than this pwlc supports ({1}); upgrade pwlc")]
    NewerVersion(u16, u16),
    #[error("corrupt container: {0}")]
    Corrupt(String),
    #[error("tensor '{name}': checksum mismatch (payload is damaged)")]
    Checksum { name: String },
    #[error("tensor '{name}': codec id {codec} is unknown to this pwlc; upgrade pwlc")]
    UnknownCodec { name: String, codec: u16 },
}
