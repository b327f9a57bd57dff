//! Encodes arbitrary f32 data with the quant, pwl and lossless methods and checks the decoded values against the bound.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pwlc_fuzz::codec_roundtrip(data));
