//! Accuracy evaluation of compressed models on real data.
//!
//! Loads an original ONNX network and a copy whose weights are replaced in memory by
//! decompressed tensors ([`Network::from_onnx`]), runs both with tract on labelled ImageNet
//! images ([`ImageSet`], [`evaluate_images`]) or on tokenized sentences ([`TokenSet`],
//! [`evaluate_tokens`]) and reports how far the compressed network's outputs moved
//! ([`ImageReport`], [`TokenReport`], serializable with serde).
//!
//! Everything is deterministic: images are taken in file-name order, parallel work is
//! collected in order and tract splits matrix products without changing their sums.

mod error;
mod evaluate;
mod images;
pub mod labels;
pub mod metrics;
mod network;
mod preprocess;
mod tokens;

pub use error::EvalError;
pub use evaluate::{
    evaluate_images, evaluate_tokens, Accuracy, ClassifierComparison, CosineStats,
    EmbeddingComparison, ImageBaseline, ImageReport, TokenBaseline, TokenReport,
};
pub use images::ImageSet;
pub use network::{InputData, InputKind, InputSpec, Network, Outputs, DEFAULT_BATCH};
pub use preprocess::Preprocess;
pub use tokens::{Embeddings, TokenSet};
