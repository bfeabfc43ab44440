//! The `csv` codec, in its configurations: byte 0 of the input picks the delimiter, the quote
//! and how columns are named (none, `headers`, or `header = true` with the input's first line
//! as the header row); the rest is the frame. Any frame decodes or is refused without
//! panicking; what decodes encodes and decodes back to an equal event.
#![no_main]

use temblor_shim::Value;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&choice, frame)) = data.split_first() else {
        return;
    };
    let delimiter = [",", ";", "\t", "|", " "][usize::from(choice & 7) % 5];
    let quote = ["\"", "'"][usize::from(choice >> 3 & 1)];
    let mut config: Vec<(&str, Value)> = vec![
        ("delimiter", Value::from(delimiter)),
        ("quote", Value::from(quote)),
    ];
    let module = codec_csv::plugin_module();
    match choice >> 4 & 3 {
        0 | 1 => {
            let config = Value::Object(config.into_iter().collect());
            temblor_fuzz::codec_round_trip_with(module, &config, frame);
        }
        2 => {
            let headers = ["a", "b", "c"].map(Value::from).to_vec();
            config.push(("headers", Value::from(headers)));
            let config = Value::Object(config.into_iter().collect());
            temblor_fuzz::codec_round_trip_with(module, &config, frame);
        }
        _ => {
            config.push(("header", Value::Bool(true)));
            let config = Value::Object(config.into_iter().collect());
            let (header, row) = match frame.iter().position(|&b| b == b'\n') {
                Some(at) => (&frame[..at], &frame[at + 1..]),
                None => (frame, &[][..]),
            };
            temblor_fuzz::codec_round_trip_with_header_row(module, &config, header, row);
        }
    }
});
