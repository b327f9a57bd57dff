//! Reads arbitrary bytes as a pytorch file; writes back what parses and reads it again.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pwlc_fuzz::model(pwlc_models::Format::Pytorch, data));
