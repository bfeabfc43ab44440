//! `raw-simdjson FILE [--seconds S]`: the baseline `cargo xtask bench` compares the engine
//! with. One thread decodes every line of FILE with simd-json into the engine's value type and
//! writes it back as JSON, over and over for S seconds (default 5), then prints one JSON line:
//! `{"bytes":..,"events":..,"elapsed_s":..,"peak_rss_kb":..}` (bytes are input bytes, without
//! newlines, as the engine's `bench` source counts them).

use std::{path::PathBuf, time::Instant};

/// The engine's allocator (see app/src/main.rs), so that the baseline allocates alike.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let mut args = std::env::args().skip(1);
    let mut file = None;
    let mut seconds = 5.0_f64;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => {
                seconds = args
                    .next()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or_else(|| usage("--seconds takes a number"));
            }
            "-h" | "--help" => usage(""),
            _ if file.is_none() => file = Some(PathBuf::from(arg)),
            _ => usage("one FILE only"),
        }
    }
    let file = file.unwrap_or_else(|| usage("FILE is missing"));
    let lines = temblor_perf::read_lines(&file).unwrap_or_else(|e| {
        eprintln!("raw-simdjson: cannot read {}: {e}", file.display());
        std::process::exit(1)
    });
    if lines.is_empty() {
        usage("FILE has no lines");
    }
    let mut codec = codec_json::Json::new();
    let mut out: Vec<u8> = Vec::new();
    let (mut bytes, mut events, mut written) = (0_u64, 0_u64, 0_u64);
    let started = Instant::now();
    while started.elapsed().as_secs_f64() < seconds {
        for line in &lines {
            let value = codec.decode_frame(line).unwrap_or_else(|e| {
                eprintln!("raw-simdjson: a line is not JSON: {e}");
                std::process::exit(1)
            });
            out.clear();
            value.write_json(&mut out);
            written += out.len() as u64;
            bytes += line.len() as u64;
            events += 1;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    std::hint::black_box(written);
    let rss =
        temblor_core::sys::peak_rss_kb().map_or_else(|| "null".to_owned(), |kb| kb.to_string());
    println!(r#"{{"bytes":{bytes},"events":{events},"elapsed_s":{elapsed},"peak_rss_kb":{rss}}}"#);
}

fn usage(problem: &str) -> ! {
    if !problem.is_empty() {
        eprintln!("raw-simdjson: {problem}");
    }
    eprintln!("usage: raw-simdjson FILE [--seconds S]");
    std::process::exit(2)
}
