//! The `lz4` preprocessor: any byte stream, cut into frames anywhere, is processed without
//! panicking and within its bounds (see `temblor_fuzz::preprocess`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    temblor_fuzz::preprocess("lz4", data);
});
