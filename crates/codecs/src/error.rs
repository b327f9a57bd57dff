use thiserror::Error;

/// Why a codec could not encode or decode a tensor.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum CodecError {
    /// The payload is inconsistent: truncated, out of range, or not produced by this codec.
    #[error("corrupt payload: {0}")]
    Corrupt(&'static str),
    /// The request is valid but this codec does not handle it.
    #[error("unsupported: {0}")]
    Unsupported(&'static str),
    /// The codec parameters are out of range.
    #[error("invalid parameter: {0}")]
    InvalidParameter(String),
    /// The decoded tensor would exceed what can be allocated.
    #[error("decoded size of {0} bytes is too large")]
    TooLarge(u64),
}
