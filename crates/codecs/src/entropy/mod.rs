//! Entropy coders shared by the codecs.

pub mod huffman;
pub mod rans;
