//! Decodes an arbitrary payload with a codec, dtype and small shape taken from the input's first bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pwlc_fuzz::codecs(data));
