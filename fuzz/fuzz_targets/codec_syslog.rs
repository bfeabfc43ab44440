//! The `syslog` codec: any frame decodes or is refused without panicking; what decodes encodes
//! and decodes back to an equal event.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    temblor_fuzz::codec_round_trip(codec_syslog::plugin_module(), data);
});
