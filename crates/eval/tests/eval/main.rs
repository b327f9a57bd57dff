//! Integration tests of pwlc-eval, in one test executable so that tract is linked once for all.

mod common;
mod labels;
mod network;
mod preprocess;
mod sample;
mod tokens;
