use std::io::{Read, Write};

use super::*;

fn frames(parts: &[&[u8]]) -> Frames {
    parts.iter().copied().collect()
}

fn collect(f: &Frames) -> Vec<Vec<u8>> {
    f.iter().map(<[u8]>::to_vec).collect()
}

fn with(name: &str, config: &[(&str, Value)]) -> Named {
    let mut named = named(name);
    named.config = Value::Object(config.iter().cloned().collect());
    named
}

fn pre(named: &Named) -> Preprocessor {
    Preprocessor::new(named).unwrap_or_else(|e| panic!("{}: {e}", named.name))
}

fn post(named: &Named) -> Postprocessor {
    Postprocessor::new(named).unwrap_or_else(|e| panic!("{}: {e}", named.name))
}

/// Runs `input` through a preprocessor chain and finishes it: the frames and the errors.
fn run_pre(chain: &mut [Preprocessor], input: &[&[u8]]) -> (Vec<Vec<u8>>, Vec<String>) {
    let mut f = frames(input);
    let mut scratch = Frames::new();
    let mut errors = Vec::new();
    preprocess(chain, &mut f, &mut scratch, &mut errors);
    let mut got = collect(&f);
    finish_preprocess(chain, &mut f, &mut scratch, &mut errors);
    got.extend(collect(&f));
    (got, errors)
}

fn run_post(chain: &mut [Postprocessor], input: &[&[u8]]) -> Vec<Vec<u8>> {
    let mut f = frames(input);
    postprocess(chain, &mut f, &mut Frames::new());
    collect(&f)
}

/// Deterministic pseudo-random bytes (xorshift), poorly compressible.
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed.to_le_bytes()[0]
        })
        .collect()
}

/// Frames of all sizes and kinds, for round trips.
fn samples() -> Vec<Vec<u8>> {
    vec![
        b"{\"a\":1}".to_vec(),
        Vec::new(),
        b"x".to_vec(),
        b"hello hello hello hello hello".repeat(1000),
        noise(100_000, 7),
        (0..=255).collect(),
    ]
}

fn refs(v: &[Vec<u8>]) -> Vec<&[u8]> {
    v.iter().map(Vec::as_slice).collect()
}

// --- separate ---

#[test]
fn separate_splits_across_chunks_and_keeps_the_tail() {
    let mut pre = vec![Preprocessor::new(&named("separate")).unwrap()];
    let mut f = frames(&[b"a\nbb", b"b\n\nc", b"cc"]);
    let mut scratch = Frames::new();
    let mut errors = Vec::new();
    preprocess(&mut pre, &mut f, &mut scratch, &mut errors);
    assert_eq!(collect(&f), [b"a".to_vec(), b"bbb".to_vec()]);
    finish_preprocess(&mut pre, &mut f, &mut scratch, &mut errors);
    assert_eq!(collect(&f), [b"ccc".to_vec()]);
    assert!(errors.is_empty());
}

#[test]
fn separate_drops_and_reports_overlong_frames() {
    let named = with(
        "separate",
        &[("max_length", Value::from(3)), ("separator", "|".into())],
    );
    let mut pre = vec![Preprocessor::new(&named).unwrap()];
    let mut f = frames(&[b"ok|toolong", b"still|x|"]);
    let mut scratch = Frames::new();
    let mut errors = Vec::new();
    preprocess(&mut pre, &mut f, &mut scratch, &mut errors);
    assert_eq!(collect(&f), [b"ok".to_vec(), b"x".to_vec()]);
    assert_eq!(errors.len(), 1, "{errors:?}");
}

#[test]
fn separate_postprocessor_appends_separator() {
    let mut post = vec![Postprocessor::new(&named("separate")).unwrap()];
    let mut f = frames(&[b"a", b"b"]);
    postprocess(&mut post, &mut f, &mut Frames::new());
    assert_eq!(collect(&f), [b"a\n".to_vec(), b"b\n".to_vec()]);
}

#[test]
fn unknown_names_and_bad_config_are_reported() {
    let err = Preprocessor::new(&named("nope")).unwrap_err();
    assert!(err.to_string().contains("unknown preprocessor 'nope'"));
    assert!(err.to_string().contains("length-prefixed"), "{err}");
    let err = Postprocessor::new(&named("nope")).unwrap_err();
    assert!(err.to_string().contains("unknown postprocessor 'nope'"));
    let bad = with("separate", &[("separator", Value::from("ab"))]);
    let err = Postprocessor::new(&bad).unwrap_err();
    assert!(err.to_string().contains("exactly one byte"), "{err}");
    let bad = with("separate", &[("sep", Value::from("|"))]);
    let err = Preprocessor::new(&bad).unwrap_err();
    assert!(err.to_string().contains("unknown field `sep`"), "{err}");
}

#[test]
fn processors_without_settings_refuse_any() {
    for name in ["base64", "ingest-ns", "remove-empty"] {
        let bad = with(name, &[("level", Value::from(1))]);
        let err = Preprocessor::new(&bad).unwrap_err().to_string();
        assert!(err.contains("unknown field `level`"), "{name}: {err}");
        let err = Postprocessor::new(&bad).unwrap_err().to_string();
        assert!(err.contains(&format!("postprocessor '{name}'")), "{err}");
    }
}

#[test]
fn compress_and_decompress_only_go_one_way() {
    let err = Preprocessor::new(&named("compress"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("'decompress'"), "{err}");
    let err = Postprocessor::new(&named("decompress"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("'compress'"), "{err}");
}

// --- length-prefixed ---

#[test]
fn length_prefixed_round_trips_with_both_widths() {
    let frames_in = samples();
    for (width, prefix) in [("u32", 4), ("u64", 8)] {
        let named = with("length-prefixed", &[("length", Value::from(width))]);
        let wire = run_post(&mut [post(&named)], &refs(&frames_in));
        for (w, f) in wire.iter().zip(&frames_in) {
            assert_eq!(w.len(), f.len() + prefix, "{width}");
            assert_eq!(&w[prefix..], f.as_slice(), "{width}");
        }
        assert_eq!(&wire[3][..prefix], &29_000_u64.to_be_bytes()[8 - prefix..]);
        let (got, errors) = run_pre(&mut [pre(&named)], &refs(&wire));
        assert_eq!(got, frames_in, "{width}");
        assert!(errors.is_empty(), "{errors:?}");
    }
}

#[test]
fn length_prefixed_reassembles_records_cut_anywhere() {
    let records: Vec<Vec<u8>> = vec![b"first".to_vec(), Vec::new(), b"third!".to_vec()];
    for width in ["u32", "u64"] {
        let named = with("length-prefixed", &[("length", Value::from(width))]);
        let stream: Vec<u8> = run_post(&mut [post(&named)], &refs(&records)).concat();
        // One byte per frame.
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        let (got, errors) = run_pre(&mut [pre(&named)], &bytes);
        assert_eq!(got, records, "{width}, byte by byte");
        assert!(errors.is_empty());
        // Two frames, cut at every position.
        for cut in 0..=stream.len() {
            let (a, b) = stream.split_at(cut);
            let (got, errors) = run_pre(&mut [pre(&named)], &[a, b]);
            assert_eq!(got, records, "{width}, cut at {cut}");
            assert!(errors.is_empty());
        }
    }
}

#[test]
fn length_prefixed_skips_overlong_records_without_buffering_them() {
    let named = with("length-prefixed", &[("max_length", Value::from(4))]);
    let mut stream = Vec::new();
    for record in [&b"ok"[..], b"far too long", b"next"] {
        stream.extend_from_slice(&u32::try_from(record.len()).unwrap().to_be_bytes());
        stream.extend_from_slice(record);
    }
    let mut chain = [pre(&named)];
    let parts: Vec<&[u8]> = stream.chunks(3).collect();
    let (got, errors) = run_pre(&mut chain, &parts);
    assert_eq!(got, [b"ok".to_vec(), b"next".to_vec()]);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("12 bytes"), "{errors:?}");
    assert!(errors[0].contains("max_length (4 bytes)"), "{errors:?}");
    let Pre::LengthPrefixed(s) = &chain[0].0 else {
        panic!("not length-prefixed")
    };
    // At most max_length was buffered (8: a byte vector's smallest allocation), never 12.
    assert!(s.carry.capacity() <= 8, "buffered {}", s.carry.capacity());
}

#[test]
fn length_prefixed_huge_declared_length_allocates_nothing() {
    let named = with("length-prefixed", &[("length", Value::from("u64"))]);
    let mut chain = [pre(&named)];
    let mut stream = u64::MAX.to_be_bytes().to_vec();
    stream.extend_from_slice(&[0; 1000]);
    let (got, errors) = run_pre(&mut chain, &[&stream]);
    assert!(got.is_empty());
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors[0].contains("longer than max_length"), "{errors:?}");
    assert!(
        errors[1].contains("ended inside a skipped record"),
        "{errors:?}"
    );
    let Pre::LengthPrefixed(s) = &chain[0].0 else {
        panic!("not length-prefixed")
    };
    assert_eq!(s.carry.capacity(), 0);
}

#[test]
fn length_prefixed_reports_a_record_cut_by_the_end_of_the_stream() {
    let named = named("length-prefixed");
    let (got, errors) = run_pre(&mut [pre(&named)], &[b"\0\0\0\x02ok\0\0\0\x09abc"]);
    assert_eq!(got, [b"ok".to_vec()]);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("3 of 9 bytes"), "{errors:?}");
    let (got, errors) = run_pre(&mut [pre(&named)], &[b"\0\0"]);
    assert!(got.is_empty());
    assert!(
        errors[0].contains("inside a length prefix (2 of 4 bytes)"),
        "{errors:?}"
    );
    // Preprocessor::finish alone logs instead, and resets.
    let mut p = pre(&named);
    let mut out = Frames::new();
    p.process(&frames(&[b"\0\0\0\x05ab"]), &mut out, &mut Vec::new());
    p.finish(&mut out);
    assert!(out.is_empty());
    p.process(&frames(&[b"\0\0\0\x01z"]), &mut out, &mut Vec::new());
    assert_eq!(collect(&out), [b"z".to_vec()]);
}

#[test]
fn length_prefixed_rejects_other_widths() {
    let bad = with("length-prefixed", &[("length", Value::from("u16"))]);
    let err = Preprocessor::new(&bad).unwrap_err().to_string();
    assert!(err.contains("u16"), "{err}");
}

// --- base64 ---

#[test]
fn base64_round_trips_and_matches_the_standard() {
    let named = named("base64");
    let wire = run_post(&mut [post(&named)], &[b"snot badger", b"", b"\xff\xfe"]);
    assert_eq!(
        wire,
        [b"c25vdCBiYWRnZXI=".to_vec(), Vec::new(), b"//4=".to_vec()]
    );
    let (got, errors) = run_pre(&mut [pre(&named)], &refs(&wire));
    assert_eq!(
        got,
        [b"snot badger".to_vec(), Vec::new(), b"\xff\xfe".to_vec()]
    );
    assert!(errors.is_empty());
    let all = samples();
    let wire = run_post(&mut [post(&named)], &refs(&all));
    assert_eq!(run_pre(&mut [pre(&named)], &refs(&wire)).0, all);
}

#[test]
fn base64_padding_is_optional() {
    let (got, errors) = run_pre(&mut [pre(&named("base64"))], &[b"c25vdCBiYWRnZXI", b"//4"]);
    assert_eq!(got, [b"snot badger".to_vec(), b"\xff\xfe".to_vec()]);
    assert!(errors.is_empty());
}

#[test]
fn base64_bad_frames_are_dropped_and_reported() {
    let (got, errors) = run_pre(
        &mut [pre(&named("base64"))],
        &[b"not base64!", b"aGk=", b"aGk=\n", b"a", b"-_-_"],
    );
    assert_eq!(got, [b"hi".to_vec()]);
    assert_eq!(errors.len(), 4, "{errors:?}");
    assert!(
        errors.iter().all(|e| e.starts_with("base64: frame of")),
        "{errors:?}"
    );
}

// --- compression ---

const FORMATS: [&str; 3] = ["gzip", "zstd", "xz"];

#[test]
fn compression_round_trips_by_name_by_compress_and_by_autodetect() {
    let all = samples();
    for format in FORMATS {
        let wire = run_post(&mut [post(&named(format))], &refs(&all));
        assert_eq!(wire.len(), all.len());
        assert!(wire[3].len() < all[3].len() / 10, "{format} compresses");
        let (got, errors) = run_pre(&mut [pre(&named(format))], &refs(&wire));
        assert!(errors.is_empty(), "{format}: {errors:?}");
        assert_eq!(got, all, "{format}");
        let compress = with("compress", &[("algorithm", Value::from(format))]);
        assert_eq!(
            run_post(&mut [post(&compress)], &refs(&all)),
            wire,
            "{format}"
        );
        let (got, errors) = run_pre(&mut [pre(&named("decompress"))], &refs(&wire));
        assert!(errors.is_empty(), "{format}: {errors:?}");
        assert_eq!(got, all, "autodetect {format}");
        let fixed = with("decompress", &[("algorithm", Value::from(format))]);
        assert_eq!(run_pre(&mut [pre(&fixed)], &refs(&wire)).0, all, "{format}");
    }
}

#[test]
fn compressed_frames_carry_the_right_magic_bytes() {
    let magic: [(&str, &[u8]); 3] = [
        ("gzip", &[0x1f, 0x8b]),
        ("zstd", &[0x28, 0xb5, 0x2f, 0xfd]),
        ("xz", b"\xfd7zXZ\0"),
    ];
    for (format, magic) in magic {
        let wire = run_post(&mut [post(&named(format))], &[b"data"]);
        assert!(wire[0].starts_with(magic), "{format}: {:02x?}", wire[0]);
    }
}

#[test]
fn decompress_autodetect_passes_other_frames_unchanged() {
    let (got, errors) = run_pre(&mut [pre(&named("decompress"))], &[b"plain", b"", b"\x1f"]);
    assert_eq!(got, [b"plain".to_vec(), Vec::new(), b"\x1f".to_vec()]);
    assert!(errors.is_empty());
    // With a fixed algorithm, they are errors.
    let fixed = with("decompress", &[("algorithm", Value::from("xz2"))]);
    let (got, errors) = run_pre(&mut [pre(&fixed)], &[b"plain"]);
    assert!(got.is_empty());
    assert!(
        errors[0].starts_with("xz: frame of 5 bytes dropped"),
        "{errors:?}"
    );
}

#[test]
fn other_implementations_are_read() {
    let text = b"interoperable ".repeat(500);
    // gzip with a file name, a comment, an extra field and a header CRC, via flate2's writer.
    let mut gz = flate2::GzBuilder::new()
        .filename("f.json")
        .comment("c")
        .extra(vec![1, 2, 3])
        .write(Vec::new(), flate2::Compression::best());
    gz.write_all(&text).unwrap();
    let gz = gz.finish().unwrap();
    // Two members concatenated.
    let two = [gz.as_slice(), gz.as_slice()].concat();
    let (got, errors) = run_pre(&mut [pre(&named("gzip"))], &[&gz, &two]);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(got, [text.clone(), text.repeat(2)]);
    // xz from liblzma's writer, two streams.
    let mut xz = xz2::write::XzEncoder::new(Vec::new(), 1);
    xz.write_all(&text).unwrap();
    let xz = xz.finish().unwrap();
    let two = [xz.as_slice(), xz.as_slice()].concat();
    let (got, errors) = run_pre(&mut [pre(&named("xz"))], &[&xz, &two]);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(got, [text.clone(), text.repeat(2)]);
    // zstd, uncompressed blocks, with a skippable frame in front.
    let zst = ruzstd::encoding::compress_to_vec(
        text.as_slice(),
        ruzstd::encoding::CompressionLevel::Uncompressed,
    );
    let mut skippable = vec![0x50, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 9, 9, 9];
    skippable.extend_from_slice(&zst);
    let (got, errors) = run_pre(&mut [pre(&named("zstd"))], &[&skippable]);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(got, std::slice::from_ref(&text));
    // And what temblor writes, others read.
    let ours = run_post(&mut [post(&named("gzip"))], &[&text]);
    let mut back = Vec::new();
    flate2::read::GzDecoder::new(ours[0].as_slice())
        .read_to_end(&mut back)
        .unwrap();
    assert_eq!(back, text);
    let ours = run_post(&mut [post(&named("xz"))], &[&text]);
    let mut back = Vec::new();
    xz2::read::XzDecoder::new(ours[0].as_slice())
        .read_to_end(&mut back)
        .unwrap();
    assert_eq!(back, text);
}

#[test]
fn decompression_stops_at_max_length_without_allocating_more() {
    // 1 MiB of zeros compresses to a few KiB: a small bomb against a 128 KiB limit.
    let zeros = vec![0_u8; 1 << 20];
    let limit = 128 << 10;
    for format in FORMATS {
        let fast = if format == "zstd" {
            named(format)
        } else {
            with(format, &[("level", Value::from(1))])
        };
        let wire = run_post(&mut [post(&fast)], &[&zeros]);
        assert!(wire[0].len() < 64 * 1024, "{format}: {}", wire[0].len());
        let bounded = with(format, &[("max_length", Value::from(limit))]);
        let mut chain = [pre(&bounded)];
        let (got, errors) = run_pre(&mut chain, &[&wire[0], b"", &wire[0]]);
        assert!(got.is_empty(), "{format}");
        assert_eq!(errors.len(), 3, "{format}: {errors:?}");
        assert!(
            errors[0].contains("longer than max_length (131072 bytes)"),
            "{format}: {errors:?}"
        );
        let Pre::Decompress(d) = &chain[0].0 else {
            panic!("not a decompressor")
        };
        assert!(
            d.buf.capacity() <= limit + 1,
            "{format}: {}",
            d.buf.capacity()
        );
        // Exactly max_length is fine.
        let exact = run_post(&mut [post(&named(format))], &[&zeros[..limit]]);
        let (got, errors) = run_pre(&mut [pre(&bounded)], &[&exact[0]]);
        assert!(errors.is_empty(), "{format}: {errors:?}");
        assert_eq!(got[0].len(), limit, "{format}");
    }
}

#[test]
fn corrupt_and_truncated_frames_are_errors_never_panics() {
    let text = b"some text to compress, some text to compress".repeat(50);
    for format in FORMATS {
        let wire = run_post(&mut [post(&named(format))], &[&text]).remove(0);
        let mut bad: Vec<Vec<u8>> = Vec::new();
        // Every truncation.
        for cut in 0..wire.len() {
            bad.push(wire[..cut].to_vec());
        }
        // A flipped byte past the magic bytes, at many places (some flips may go unnoticed by a
        // format, but the checksums catch the most).
        for at in (6..wire.len()).step_by(3) {
            let mut w = wire.clone();
            w[at] ^= 0x55;
            bad.push(w);
        }
        // Trailing garbage, and magic bytes followed by noise.
        bad.push([wire.as_slice(), b"garbage"].concat());
        for seed in 1..200 {
            let mut w = wire[..6].to_vec();
            w.extend(noise(200, seed));
            bad.push(w);
        }
        let inputs = refs(&bad);
        let (got, errors) = run_pre(&mut [pre(&named(format))], &inputs);
        // Everything is accounted for: a frame either decoded or was reported.
        assert_eq!(got.len() + errors.len(), inputs.len(), "{format}");
        assert!(
            errors.len() >= wire.len(),
            "{format}: every truncation fails"
        );
        for frame in &got {
            assert!(frame.len() <= text.len() * 2, "{format}");
        }
        assert!(errors.iter().all(|e| e.starts_with(format)), "{errors:?}");
        // Autodetect passes on the truncations too short to show magic bytes, and reports the
        // rest under the detected format.
        let (got, errors) = run_pre(&mut [pre(&named("decompress"))], &inputs);
        assert_eq!(got.len() + errors.len(), inputs.len(), "{format}");
        assert!(errors.len() >= wire.len() - 6, "{format}");
        assert!(errors.iter().all(|e| e.starts_with(format)), "{errors:?}");
    }
}

#[test]
fn gzip_checks_crc_and_length() {
    let wire = run_post(&mut [post(&named("gzip"))], &[b"checked"]).remove(0);
    let n = wire.len();
    let mut bad_crc = wire.clone();
    bad_crc[n - 8] ^= 1;
    let mut bad_len = wire.clone();
    bad_len[n - 4] ^= 1;
    let (got, errors) = run_pre(&mut [pre(&named("gzip"))], &[&bad_crc, &bad_len]);
    assert!(got.is_empty());
    assert!(errors[0].contains("CRC32 mismatch"), "{errors:?}");
    assert!(errors[1].contains("length mismatch"), "{errors:?}");
}

#[test]
fn compression_levels_are_checked() {
    for (named, needle) in [
        (with("gzip", &[("level", Value::from(10))]), "0 to 9"),
        (with("xz", &[("level", Value::from(12))]), "0 to 9"),
        (with("zstd", &[("level", Value::from(3))]), "one level"),
        (with("compress", &[("level", Value::from(1))]), "algorithm"),
        (
            with("compress", &[("algorithm", Value::from("lz4"))]),
            "lz4",
        ),
    ] {
        let err = Postprocessor::new(&named).unwrap_err().to_string();
        assert!(err.contains(needle), "{err}");
        assert!(err.contains(&format!("'{}'", named.name)), "{err}");
    }
    let err = Preprocessor::new(&with("decompress", &[("algorithm", Value::from("br"))]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("br"), "{err}");
    // Levels change the output, and every level reads back.
    let text = b"level level level level ".repeat(200);
    let mut sizes = Vec::new();
    for level in [0, 1, 9] {
        for format in ["gzip", "xz"] {
            let c = with(format, &[("level", Value::from(level))]);
            let wire = run_post(&mut [post(&c)], &[&text]).remove(0);
            sizes.push(wire.len());
            assert_eq!(
                run_pre(&mut [pre(&named(format))], &[&wire]).0,
                std::slice::from_ref(&text)
            );
        }
    }
    assert!(sizes[0] > text.len(), "gzip level 0 stores: {sizes:?}");
    assert!(
        sizes[4] < sizes[0] / 10,
        "gzip level 9 compresses: {sizes:?}"
    );
}

#[test]
fn xz_dictionary_follows_small_frames() {
    // A small frame compressed at preset 9 decodes within a small memory limit, because the
    // dictionary was cut to the frame's size.
    let c = with("xz", &[("level", Value::from(9))]);
    let wire = run_post(&mut [post(&c)], &[b"small frame"]).remove(0);
    let mut out = Vec::new();
    compression_unxz_with_limit(&wire, &mut out, 1 << 20).expect("decodes within 1 MiB");
    assert_eq!(out, b"small frame");
}

fn compression_unxz_with_limit(
    input: &[u8],
    out: &mut Vec<u8>,
    memlimit: u64,
) -> Result<(), String> {
    let mut stream =
        xz2::stream::Stream::new_stream_decoder(memlimit, 0).map_err(|e| e.to_string())?;
    out.reserve(1024);
    let status = stream
        .process_vec(input, out, xz2::stream::Action::Finish)
        .map_err(|e| e.to_string())?;
    assert_eq!(status, xz2::stream::Status::StreamEnd);
    Ok(())
}

// --- ingest-ns ---

#[test]
fn ingest_ns_prepends_now_and_strips_it() {
    let before = now_ns();
    let wire = run_post(&mut [post(&named("ingest-ns"))], &[b"event", b""]);
    let after = now_ns();
    assert_eq!(wire.len(), 2);
    for (w, f) in wire.iter().zip([&b"event"[..], b""]) {
        assert_eq!(w.len(), f.len() + 8);
        let stamp = u64::from_be_bytes(w[..8].try_into().unwrap());
        assert!(
            before <= stamp && stamp <= after,
            "{before} <= {stamp} <= {after}"
        );
        assert_eq!(&w[8..], f);
    }
    let (got, errors) = run_pre(&mut [pre(&named("ingest-ns"))], &refs(&wire));
    assert_eq!(got, [b"event".to_vec(), Vec::new()]);
    assert!(errors.is_empty());
}

#[test]
fn ingest_ns_drops_frames_shorter_than_a_stamp() {
    let (got, errors) = run_pre(
        &mut [pre(&named("ingest-ns"))],
        &[b"1234567", b"12345678", b"12345678x"],
    );
    assert_eq!(got, [Vec::new(), b"x".to_vec()]);
    assert_eq!(errors.len(), 1);
    assert!(errors[0].contains("7 bytes"), "{errors:?}");
}

// --- remove-empty ---

#[test]
fn remove_empty_drops_empty_frames_both_ways() {
    let input: [&[u8]; 5] = [b"", b"a", b"", b"", b"b"];
    let (got, errors) = run_pre(&mut [pre(&named("remove-empty"))], &input);
    assert_eq!(got, [b"a".to_vec(), b"b".to_vec()]);
    assert!(errors.is_empty());
    assert_eq!(
        run_post(&mut [post(&named("remove-empty"))], &input),
        [b"a".to_vec(), b"b".to_vec()]
    );
}

// --- chains ---

#[test]
fn a_chain_and_its_mirror_give_the_frames_back() {
    let all: Vec<Vec<u8>> = samples().into_iter().filter(|f| !f.is_empty()).collect();
    let mut out_chain = [
        post(&named("gzip")),
        post(&named("base64")),
        post(&named("separate")),
    ];
    let wire = run_post(&mut out_chain, &refs(&all)).concat();
    // The stream arrives in odd-sized chunks.
    let chunks: Vec<&[u8]> = wire.chunks(777).collect();
    let mut in_chain = [
        pre(&named("separate")),
        pre(&named("base64")),
        pre(&named("decompress")),
    ];
    let (got, errors) = run_pre(&mut in_chain, &chunks);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(got, all);
    // Length-prefixed xz with ingest stamps.
    let mut out_chain = [
        post(&named("ingest-ns")),
        post(&named("xz")),
        post(&named("length-prefixed")),
    ];
    let wire = run_post(&mut out_chain, &refs(&all)).concat();
    let chunks: Vec<&[u8]> = wire.chunks(1000).collect();
    let mut in_chain = [
        pre(&named("length-prefixed")),
        pre(&named("xz")),
        pre(&named("ingest-ns")),
    ];
    let (got, errors) = run_pre(&mut in_chain, &chunks);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(got, all);
}

#[test]
fn finishing_runs_a_stage_s_rest_through_the_later_stages() {
    // The separate stage's tail is base64-decoded at the end of the stream.
    let mut chain = [pre(&named("separate")), pre(&named("base64"))];
    let (got, errors) = run_pre(&mut chain, &[b"aGk=\naG", b"8="]);
    assert_eq!(got, [b"hi".to_vec(), b"ho".to_vec()]);
    assert!(errors.is_empty());
}
