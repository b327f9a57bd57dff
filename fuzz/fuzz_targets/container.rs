//! Opens arbitrary bytes as a `.pwlc` container and reads every payload.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pwlc_fuzz::container(data));
