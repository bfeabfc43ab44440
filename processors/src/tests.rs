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

/// The bytes a preprocessor keeps allocated between frames, in its carry or output buffer.
fn buffered(pre: &Preprocessor) -> usize {
    match &pre.0 {
        Pre::LengthPrefixed(s) => s.records.carry.capacity(),
        Pre::TextualLengthPrefixed(s) => s.records.carry.capacity(),
        Pre::Decompress(d) => d.buf.capacity(),
        other => panic!("no buffer looked at in {other:?}"),
    }
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
    (got, errors.iter().map(ToString::to_string).collect())
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

/// `separate` with `separator`, `max_length` and `keep_empty`, tracking starts.
fn splitter(separator: &[u8], max_length: usize, keep_empty: bool) -> Preprocessor {
    let named = with(
        "separate",
        &[
            (
                "separator",
                Value::from(std::str::from_utf8(separator).unwrap()),
            ),
            ("max_length", Value::from(max_length as u64)),
            ("keep_empty", Value::from(keep_empty)),
        ],
    );
    let mut pre = pre(&named);
    pre.track_starts();
    pre
}

/// Feeds `chunks`, one batch each, then finishes: the frames, their starts and the errors.
fn split_chunks(pre: &mut Preprocessor, chunks: &[&[u8]]) -> (Vec<Vec<u8>>, Vec<u64>, Vec<String>) {
    let chain = std::slice::from_mut(pre);
    let (mut got, mut starts, mut errors) = (Vec::new(), Vec::new(), Vec::new());
    let mut scratch = Frames::new();
    for chunk in chunks {
        let mut f = frames(&[chunk]);
        preprocess(chain, &mut f, &mut scratch, &mut errors);
        got.extend(collect(&f));
        chain[0].take_starts(&mut starts);
        assert_eq!(got.len(), starts.len(), "one start per frame");
    }
    let mut f = Frames::new();
    finish_preprocess(chain, &mut f, &mut scratch, &mut errors);
    got.extend(collect(&f));
    chain[0].take_starts(&mut starts);
    assert_eq!(got.len(), starts.len(), "one start per frame");
    (
        got,
        starts,
        errors.iter().map(ToString::to_string).collect(),
    )
}

/// What `separate` must give for `data` as a whole: the frames, their starts and how many
/// were dropped for being too long. (A plain, slow search, independent of the splitter's.)
fn split_reference(
    data: &[u8],
    sep: &[u8],
    max_length: usize,
    keep_empty: bool,
) -> (Vec<Vec<u8>>, Vec<u64>, usize) {
    let (mut got, mut starts, mut dropped) = (Vec::new(), Vec::new(), 0);
    let mut take = |piece: &[u8], start: usize, last: bool| {
        if last && piece.is_empty() {
        } else if piece.len() > max_length {
            dropped += 1;
        } else if keep_empty || !piece.is_empty() {
            got.push(piece.to_vec());
            starts.push(start as u64);
        }
    };
    let (mut start, mut i) = (0, 0);
    while i + sep.len() <= data.len() {
        if &data[i..i + sep.len()] == sep {
            take(&data[start..i], start, false);
            i += sep.len();
            start = i;
        } else {
            i += 1;
        }
    }
    take(&data[start..], start, true);
    (got, starts, dropped)
}

#[test]
fn separate_multi_byte_separators_cut_at_every_position_across_two_chunks() {
    for sep in [&b"\r\n"[..], b"<|>", b"abab", b"12345678", b"aa"] {
        let s = String::from_utf8(sep.to_vec()).unwrap();
        let text = format!("one{s}{s}tw{s}o{s}a{s}three{}x{s}", &s[..s.len() - 1]);
        let data = text.as_bytes();
        let want = split_reference(data, sep, 1000, false);
        assert_eq!(want.2, 0);
        for cut in 0..=data.len() {
            let mut pre = splitter(sep, 1000, false);
            let (got, starts, errors) = split_chunks(&mut pre, &[&data[..cut], &data[cut..]]);
            assert!(errors.is_empty(), "{errors:?}");
            assert_eq!((&got, &starts), (&want.0, &want.1), "{s:?} cut at {cut}");
        }
        // And one byte at a time: a separator over as many chunks as it has bytes.
        let bytes: Vec<&[u8]> = data.chunks(1).collect();
        let (got, starts, _) = split_chunks(&mut splitter(sep, 1000, false), &bytes);
        assert_eq!((&got, &starts), (&want.0, &want.1), "{s:?} byte by byte");
    }
}

#[test]
fn separate_crlf() {
    let mut pre = splitter(b"\r\n", 100, false);
    let (got, starts, errors) =
        split_chunks(&mut pre, &[b"GET /\r", b"\nHost: x\ry\r\n\r\n", b"tail\r"]);
    assert!(errors.is_empty());
    assert_eq!(
        got,
        [
            b"GET /".to_vec(),
            b"Host: x\ry".to_vec(),
            b"tail\r".to_vec()
        ]
    );
    assert_eq!(starts, [0, 7, 20]);
    // With empty frames kept, the blank line is one.
    let (got, _, _) = split_chunks(&mut splitter(b"\r\n", 100, true), &[b"a\r\n\r", b"\nb"]);
    assert_eq!(got, [b"a".to_vec(), Vec::new(), b"b".to_vec()]);
}

#[test]
fn separate_eight_byte_separator() {
    let sep = b"--8<--\r\n";
    let data = b"first--8<--\r\nsecond --8<-- not yet--8<--\r\n--8<--\r\nthird";
    let want = split_reference(data, sep, 100, false);
    assert_eq!(
        want.0,
        [
            b"first".to_vec(),
            b"second --8<-- not yet".to_vec(),
            b"third".to_vec()
        ]
    );
    for size in 1..=data.len() {
        let chunks: Vec<&[u8]> = data.chunks(size).collect();
        let (got, starts, errors) = split_chunks(&mut splitter(sep, 100, false), &chunks);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!((&got, &starts), (&want.0, &want.1), "chunks of {size}");
    }
}

#[test]
fn separate_refuses_nine_byte_and_empty_separators() {
    for bad in ["123456789", ""] {
        let named = with("separate", &[("separator", Value::from(bad))]);
        let err = Preprocessor::new(&named).unwrap_err().to_string();
        assert!(err.contains("preprocessor 'separate'"), "{err}");
        assert!(err.contains("`separator`"), "{err}");
        assert!(err.contains("1 to 8 bytes"), "{err}");
        let err = Postprocessor::new(&named).unwrap_err().to_string();
        assert!(err.contains("postprocessor 'separate'"), "{err}");
        assert!(err.contains("`separator`"), "{err}");
    }
    // Eight bytes are fine, also of multi-byte characters.
    for good in ["12345678", "éé", "€\n"] {
        let named = with("separate", &[("separator", Value::from(good))]);
        Preprocessor::new(&named).unwrap();
        Postprocessor::new(&named).unwrap();
    }
}

#[test]
fn separate_starts_skip_dropped_empty_and_over_long_frames() {
    // Frames start at 0 (abcd), 6 (ok), 9 (toolongline, dropped), 21 (xyz), 26 (last).
    let data = b"abcd\n\nok\ntoolongline\nxyz\n\nlast";
    for sep_data in [
        data.to_vec(),
        String::from_utf8(data.to_vec())
            .unwrap()
            .replace('\n', "\r\n")
            .into_bytes(),
    ] {
        let sep: &[u8] = if sep_data.len() == data.len() {
            b"\n"
        } else {
            b"\r\n"
        };
        let want = split_reference(&sep_data, sep, 4, false);
        assert_eq!(
            want.0,
            [
                b"abcd".to_vec(),
                b"ok".to_vec(),
                b"xyz".to_vec(),
                b"last".to_vec()
            ]
        );
        assert_eq!(want.2, 1);
        for size in 1..=sep_data.len() {
            let chunks: Vec<&[u8]> = sep_data.chunks(size).collect();
            let (got, starts, errors) = split_chunks(&mut splitter(sep, 4, false), &chunks);
            assert_eq!(
                (&got, &starts),
                (&want.0, &want.1),
                "{sep:?}, chunks of {size}"
            );
            assert_eq!(errors.len(), 1, "{errors:?}");
        }
    }
    let (_, starts, _) = split_reference(data, b"\n", 4, false);
    assert_eq!(starts, [0, 6, 21, 26]);
    // Kept empty frames have their starts; a too-long last piece is dropped.
    let (got, starts, errors) =
        split_chunks(&mut splitter(b"\n", 4, true), &[b"\n\nab\n", b"\ntoo long"]);
    assert_eq!(got, [Vec::new(), Vec::new(), b"ab".to_vec(), Vec::new()]);
    assert_eq!(starts, [0, 1, 2, 5]);
    assert_eq!(errors.len(), 1);
}

#[test]
fn separate_starts_count_from_the_first_byte_across_batches_and_finish() {
    let mut split = splitter(b"||", 100, false);
    let (got, starts, _) = split_chunks(&mut split, &[b"ab|", b"|cd||e"]);
    assert_eq!(got, [b"ab".to_vec(), b"cd".to_vec(), b"e".to_vec()]);
    assert_eq!(starts, [0, 4, 8]);
    // The count goes on after `finish`: the same splitter, a next stream.
    let (got, starts, _) = split_chunks(&mut split, &[b"f||g"]);
    assert_eq!(got, [b"f".to_vec(), b"g".to_vec()]);
    assert_eq!(starts, [9, 12]);
    // Without tracking, nothing is recorded; other preprocessors record nothing.
    let mut quiet = pre(&named("separate"));
    let mut f = frames(&[b"a\nb\n"]);
    preprocess(
        std::slice::from_mut(&mut quiet),
        &mut f,
        &mut Frames::new(),
        &mut Vec::new(),
    );
    let mut starts = Vec::new();
    quiet.take_starts(&mut starts);
    assert!(starts.is_empty());
    let mut other = pre(&named("base64"));
    other.track_starts();
    other.take_starts(&mut starts);
    assert!(starts.is_empty());
}

#[test]
fn separate_matches_a_plain_split_for_many_inputs() {
    // Small alphabets make separators (and near misses) frequent.
    for (k, sep) in [&b"a"[..], b"ab", b"aab", b"aba", b"abcabcab"]
        .into_iter()
        .enumerate()
    {
        for seed in 1..40_u64 {
            let data: Vec<u8> = noise(300, seed * 31 + k as u64)
                .into_iter()
                .map(|b| b"abc"[usize::from(b % 3)])
                .collect();
            let max_length = usize::try_from(seed % 9).unwrap();
            let keep_empty = seed % 2 == 0;
            let want = split_reference(&data, sep, max_length, keep_empty);
            let sizes = noise(300, seed);
            let mut chunks = Vec::new();
            let mut at = 0;
            for size in sizes {
                if at >= data.len() {
                    break;
                }
                let end = (at + usize::from(size % 11)).min(data.len());
                chunks.push(&data[at..end]);
                at = end;
            }
            let mut pre = splitter(sep, max_length, keep_empty);
            let (got, starts, errors) = split_chunks(&mut pre, &chunks);
            let what = format!("{sep:?} seed {seed} max {max_length} keep_empty {keep_empty}");
            assert_eq!(got, want.0, "{what}");
            assert_eq!(starts, want.1, "{what}");
            assert_eq!(errors.len(), want.2, "{what}");
        }
    }
}

#[test]
fn separate_max_length_counts_the_frame_not_a_separator_cut_after_it() {
    // "abcd" is exactly max_length; the first half of the separator must not make it too long.
    let (got, _, errors) = split_chunks(
        &mut splitter(b"\r\n", 4, false),
        &[b"abcd\r", b"\nefgh\r", b"\n"],
    );
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(got, [b"abcd".to_vec(), b"efgh".to_vec()]);
    // While an over-long frame is skipped, memory stays bounded and the next frame comes.
    let mut pre = splitter(b"<=>", 4, false);
    let chain = std::slice::from_mut(&mut pre);
    let mut errors = Vec::new();
    let mut scratch = Frames::new();
    let mut f = frames(&[&[b'x'; 100_000], b"yy<", b"=", b">next<=>"]);
    preprocess(chain, &mut f, &mut scratch, &mut errors);
    assert_eq!(collect(&f), [b"next".to_vec()]);
    assert_eq!(errors.len(), 1);
    let mut starts = Vec::new();
    chain[0].take_starts(&mut starts);
    assert_eq!(starts, [100_005]);
    finish_preprocess(chain, &mut f, &mut scratch, &mut errors);
    assert!(f.is_empty());
}

#[test]
fn separate_postprocessor_appends_multi_byte_separators() {
    for sep in ["\r\n", "12345678", "|"] {
        let mut post = [post(&with("separate", &[("separator", Value::from(sep))]))];
        let got = run_post(&mut post, &[b"a", b"", b"bc"]);
        assert_eq!(
            got,
            [
                format!("a{sep}").into_bytes(),
                sep.as_bytes().to_vec(),
                format!("bc{sep}").into_bytes()
            ]
        );
        // And the preprocessor reads it back.
        let wire = got.concat();
        let (back, _, _) = split_chunks(&mut splitter(sep.as_bytes(), 100, true), &[&wire]);
        assert_eq!(back, [b"a".to_vec(), Vec::new(), b"bc".to_vec()]);
    }
}

#[test]
fn unknown_names_and_bad_config_are_reported() {
    let err = Preprocessor::new(&named("nope")).unwrap_err();
    assert!(err.to_string().contains("unknown preprocessor 'nope'"));
    assert!(err.to_string().contains("length-prefixed"), "{err}");
    let err = Postprocessor::new(&named("nope")).unwrap_err();
    assert!(err.to_string().contains("unknown postprocessor 'nope'"));
    let bad = with("separate", &[("separator", Value::from("123456789"))]);
    let err = Postprocessor::new(&bad).unwrap_err();
    assert!(err.to_string().contains("1 to 8 bytes"), "{err}");
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
    let named = with(
        "length-prefixed",
        &[
            ("length", Value::from("u32")),
            ("max_length", Value::from(4)),
        ],
    );
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
    // At most max_length was buffered (8: a byte vector's smallest allocation), never 12.
    let buffered = buffered(&chain[0]);
    assert!(buffered <= 8, "buffered {buffered}");
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
    assert_eq!(buffered(&chain[0]), 0);
}

/// Tremor's `length-prefixed` writes each frame's length as a u64, big-endian, then the
/// frame: the default here reads that stream, and writes it.
#[test]
fn length_prefixed_defaults_to_tremors_8_byte_prefix() {
    let tremor: &[u8] = b"\0\0\0\0\0\0\0\x05hello\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x0b{\"a\":[1,2]}";
    let named = named("length-prefixed");
    let (got, errors) = run_pre(
        &mut [pre(&named)],
        &[&tremor[..9], &tremor[9..20], &tremor[20..]],
    );
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(
        got,
        [b"hello".to_vec(), Vec::new(), b"{\"a\":[1,2]}".to_vec()]
    );
    let wire = run_post(&mut [post(&named)], &refs(&got));
    assert_eq!(wire.concat(), tremor);
}

#[test]
fn length_prefixed_reports_a_record_cut_by_the_end_of_the_stream() {
    let named = with("length-prefixed", &[("length", Value::from("u32"))]);
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

/// The compression processors.
const FORMATS: [&str; 7] = ["gzip", "zstd", "xz", "zlib", "snappy", "lz4", "br"];

/// Those `decompress` detects (brotli has no magic bytes).
fn detected(format: &str) -> bool {
    format != "br"
}

/// Those with levels.
fn leveled(format: &str) -> bool {
    matches!(format, "gzip" | "xz" | "zlib" | "br")
}

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
        if detected(format) {
            let (got, errors) = run_pre(&mut [pre(&named("decompress"))], &refs(&wire));
            assert!(errors.is_empty(), "{format}: {errors:?}");
            assert_eq!(got, all, "autodetect {format}");
        }
        let fixed = with("decompress", &[("algorithm", Value::from(format))]);
        assert_eq!(run_pre(&mut [pre(&fixed)], &refs(&wire)).0, all, "{format}");
    }
}

#[test]
fn compressed_frames_carry_the_right_magic_bytes() {
    let magic: [(&str, &[u8]); 6] = [
        ("gzip", &[0x1f, 0x8b]),
        ("zstd", &[0x28, 0xb5, 0x2f, 0xfd]),
        ("xz", b"\xfd7zXZ\0"),
        ("zlib", &[0x78, 0x9c]),
        ("snappy", b"\xff\x06\x00\x00sNaPpY"),
        ("lz4", &[0x04, 0x22, 0x4d, 0x18]),
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
    // xz from liblzma's writer.
    let mut xz = xz2::write::XzEncoder::new(Vec::new(), 1);
    xz.write_all(&text).unwrap();
    let xz = xz.finish().unwrap();
    // Each alone, and two members (streams) concatenated.
    for (name, one) in [("gzip", gz), ("xz", xz)] {
        let two = [one.as_slice(), one.as_slice()].concat();
        let (got, errors) = run_pre(&mut [pre(&named(name))], &[&one, &two]);
        assert!(errors.is_empty(), "{name}: {errors:?}");
        assert_eq!(got, [text.clone(), text.repeat(2)], "{name}");
    }
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
    let readers: [(&str, Reader); 2] = [
        ("gzip", |b| Box::new(flate2::read::GzDecoder::new(b))),
        ("xz", |b| Box::new(xz2::read::XzDecoder::new(b))),
    ];
    for (name, reader) in readers {
        let ours = run_post(&mut [post(&named(name))], &[&text]);
        let mut back = Vec::new();
        reader(&ours[0]).read_to_end(&mut back).unwrap();
        assert_eq!(back, text, "{name}");
    }
}

/// A decoder of another implementation, over compressed bytes.
type Reader = fn(&[u8]) -> Box<dyn Read + '_>;

/// Decodes a hex string.
fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// Streams written by the reference implementations, or by hand from the specifications, all
/// of `hello`.
#[test]
fn zlib_snappy_lz4_and_br_read_the_reference_streams() {
    let vectors = [
        // Python's `zlib.compress(b"hello")` (zlib itself): CMF 78, FLG 9c, deflate, Adler-32.
        ("zlib", hex("789ccb48cdc9c90700062c0215")),
        // `printf hello | lz4 -c` (lz4 1.9): magic 04 22 4d 18, FLG/BD, one uncompressed
        // block (high bit of its size set), the end mark, the content checksum.
        (
            "lz4",
            hex("04224d186440a70500008068656c6c6f00000000f97700fb"),
        ),
        // The snappy framing format, by hand: the stream identifier chunk
        // (ff 06 00 00 "sNaPpY"), then an uncompressed-data chunk (type 01, length 9 = 4 + 5)
        // whose masked CRC-32C of the data is 0x191c1fbb ("crc32c(123456789) = e3069283" checks
        // the CRC code the test data was made with).
        (
            "snappy",
            hex("ff060000734e6150705901090000bb1f1c1968656c6c6f"),
        ),
        // Brotli by hand from RFC 7932 §9: WBITS 16 (one 0 bit), a meta-block not last
        // (ISLAST 0), MNIBBLES 4 (00), MLEN-1 = 4 in 16 bits, ISUNCOMPRESSED 1, padding to the
        // byte: 40 00 10; the five bytes; then an empty last meta-block (ISLAST 1,
        // ISLASTEMPTY 1): 03.
        ("br", hex("40001068656c6c6f03")),
    ];
    for (format, wire) in &vectors {
        let (got, errors) = run_pre(&mut [pre(&named(format))], &[wire]);
        assert!(errors.is_empty(), "{format}: {errors:?}");
        assert_eq!(got, [b"hello".to_vec()], "{format}");
        if detected(format) {
            let (got, errors) = run_pre(&mut [pre(&named("decompress"))], &[wire]);
            assert!(errors.is_empty(), "{format}: {errors:?}");
            assert_eq!(got, [b"hello".to_vec()], "autodetect {format}");
        }
    }
    // A wrong Adler-32, a wrong CRC-32C, a wrong lz4 content checksum: errors.
    for (format, at) in [("zlib", 12), ("snappy", 15), ("lz4", 23)] {
        let mut wire = vectors.iter().find(|v| v.0 == format).unwrap().1.clone();
        wire[at] ^= 1;
        let (got, errors) = run_pre(&mut [pre(&named(format))], &[&wire]);
        assert!(got.is_empty(), "{format}: {got:?}");
        assert_eq!(errors.len(), 1, "{format}");
        assert!(errors[0].starts_with(format), "{errors:?}");
    }
    // And what temblor writes zlib reads.
    let text = b"interoperable ".repeat(500);
    let ours = run_post(&mut [post(&named("zlib"))], &[&text]);
    let mut back = Vec::new();
    flate2::read::ZlibDecoder::new(ours[0].as_slice())
        .read_to_end(&mut back)
        .unwrap();
    assert_eq!(back, text);
}

// --- textual-length-prefixed ---

/// Tremor's `textual-length-prefixed` (and RFC 6587 §3.4.1 octet counting, `MSG-LEN SP
/// SYSLOG-MSG`): the length in ASCII decimal, a space, the payload.
#[test]
fn textual_length_prefixed_reads_and_writes_tremors_format() {
    let stream: &[u8] = b"5 hello0 11 hello world";
    let want = [b"hello".to_vec(), Vec::new(), b"hello world".to_vec()];
    for name in ["textual-length-prefixed", "textual-length-prefix"] {
        let (got, errors) = run_pre(&mut [pre(&named(name))], &[stream]);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(got, want);
        assert_eq!(
            run_post(&mut [post(&named(name))], &refs(&want)).concat(),
            stream
        );
    }
    // An RFC 5424 message as syslog over TCP frames it.
    let msg = b"<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - 'su root' failed";
    let framed = [format!("{} ", msg.len()).as_bytes(), msg].concat();
    let named = named("textual-length-prefixed");
    assert_eq!(
        run_post(&mut [post(&named)], &[msg]),
        std::slice::from_ref(&framed)
    );
    // Cut anywhere, byte by byte, and every sample round-trips.
    let mut records = samples();
    records.push(msg.to_vec());
    let wire = run_post(&mut [post(&named)], &refs(&records)).concat();
    let bytes: Vec<&[u8]> = wire.chunks(1).take(200).collect();
    let mut parts = bytes;
    parts.push(&wire[200..]);
    let (got, errors) = run_pre(&mut [pre(&named)], &parts);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(got, records);
    for cut in 0..framed.len() {
        let (got, errors) = run_pre(&mut [pre(&named)], &[&framed[..cut], &framed[cut..]]);
        assert!(errors.is_empty(), "cut at {cut}: {errors:?}");
        assert_eq!(got, [msg.to_vec()], "cut at {cut}");
    }
}

#[test]
fn textual_length_prefixed_reports_bad_prefixes_long_and_cut_records() {
    let named = with("textual-length-prefixed", &[("max_length", Value::from(4))]);
    // Too long: skipped without being buffered, the next one read.
    let mut chain = [pre(&named)];
    let (got, errors) = run_pre(&mut chain, &[b"2 ok12 far too long", b"4 next"]);
    assert_eq!(got, [b"ok".to_vec(), b"next".to_vec()]);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("12 bytes is longer than max_length (4 bytes)"),
        "{errors:?}"
    );
    let buffered = buffered(&chain[0]);
    assert!(buffered <= 8, "buffered {buffered}");
    // A bad prefix: reported once, the rest of the stream dropped; the next stream is read.
    let mut p = pre(&named);
    let mut out = Frames::new();
    let mut errors = Vec::new();
    p.process(&frames(&[b"2 okx3 abc", b"2 no"]), &mut out, &mut errors);
    assert_eq!(collect(&out), [b"ok".to_vec()]);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0]
            .to_string()
            .contains("byte 0x78 where a decimal length was expected"),
        "{errors:?}"
    );
    p.finish(&mut out);
    out.clear();
    p.process(&frames(&[b"3 yes"]), &mut out, &mut errors);
    assert_eq!(collect(&out), [b"yes".to_vec()]);
    for (stream, needle) in [
        (
            &b" 5 hello"[..],
            "byte 0x20 where a decimal length was expected",
        ),
        (
            b"5\nhello",
            "byte 0x0a where a decimal length or a space was expected",
        ),
        (b"99999999999999999999999 x", "beyond 2^64 - 1"),
        (b"3 ab", "ended inside a record (2 of 3 bytes)"),
        (b"12", "ended inside a length prefix (2 digits)"),
    ] {
        let (got, errors) = run_pre(&mut [pre(&named)], &[stream]);
        assert!(got.is_empty(), "{stream:?}");
        assert_eq!(errors.len(), 1, "{stream:?}: {errors:?}");
        assert!(errors[0].contains(needle), "{errors:?}");
    }
}

#[test]
fn decompression_stops_at_max_length_without_allocating_more() {
    // 1 MiB of zeros compresses to a few KiB: a small bomb against a 128 KiB limit.
    let zeros = vec![0_u8; 1 << 20];
    let limit = 128 << 10;
    for format in FORMATS {
        let fast = if leveled(format) {
            with(format, &[("level", Value::from(1))])
        } else {
            named(format)
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
        let buffered = buffered(&chain[0]);
        assert!(buffered <= limit + 1, "{format}: {buffered}");
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
        // (Brotli has no checksum: a flipped byte may decode to other data, of another size.)
        for frame in got.iter().filter(|_| format != "br") {
            assert!(frame.len() <= text.len() * 2, "{format}");
        }
        assert!(errors.iter().all(|e| e.starts_with(format)), "{errors:?}");
        // Autodetect passes on the truncations too short to show magic bytes, and reports the
        // rest under the detected format.
        if !detected(format) {
            continue;
        }
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
    // flate2 checks the CRC32 and ISIZE together and says so in one message.
    assert_eq!(errors.len(), 2, "{errors:?}");
    for error in &errors {
        assert!(
            error.ends_with("does not have a matching checksum"),
            "{errors:?}"
        );
    }
}

#[test]
fn compression_levels_are_checked() {
    for (named, needle) in [
        (with("gzip", &[("level", Value::from(10))]), "0 to 9"),
        (with("xz", &[("level", Value::from(12))]), "0 to 9"),
        (with("zstd", &[("level", Value::from(3))]), "one level"),
        (with("compress", &[("level", Value::from(1))]), "algorithm"),
        (
            with("compress", &[("algorithm", Value::from("lzo"))]),
            "lzo",
        ),
        (with("zlib", &[("level", Value::from(10))]), "0 to 9"),
        (with("br", &[("level", Value::from(12))]), "0 to 11"),
        (
            with("snappy", &[("level", Value::from(1))]),
            "not supported",
        ),
        (with("lz4", &[("level", Value::from(1))]), "not supported"),
    ] {
        let err = Postprocessor::new(&named).unwrap_err().to_string();
        assert!(err.contains(needle), "{err}");
        assert!(err.contains(&format!("'{}'", named.name)), "{err}");
    }
    let err = Preprocessor::new(&with("decompress", &[("algorithm", Value::from("lzo"))]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("lzo"), "{err}");
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
    // The stream arrives in odd-sized chunks. Second: length-prefixed xz with ingest stamps.
    for (out_names, in_names, chunk) in [
        (
            ["gzip", "base64", "separate"],
            ["separate", "base64", "decompress"],
            777,
        ),
        (
            ["ingest-ns", "xz", "length-prefixed"],
            ["length-prefixed", "xz", "ingest-ns"],
            1000,
        ),
    ] {
        let mut out_chain = out_names.map(|n| post(&named(n)));
        let wire = run_post(&mut out_chain, &refs(&all)).concat();
        let chunks: Vec<&[u8]> = wire.chunks(chunk).collect();
        let mut in_chain = in_names.map(|n| pre(&named(n)));
        let (got, errors) = run_pre(&mut in_chain, &chunks);
        assert!(errors.is_empty(), "{in_names:?}: {errors:?}");
        assert_eq!(got, all, "{in_names:?}");
    }
}

#[test]
fn finishing_runs_a_stage_s_rest_through_the_later_stages() {
    // The separate stage's tail is base64-decoded at the end of the stream.
    let mut chain = [pre(&named("separate")), pre(&named("base64"))];
    let (got, errors) = run_pre(&mut chain, &[b"aGk=\naG", b"8="]);
    assert_eq!(got, [b"hi".to_vec(), b"ho".to_vec()]);
    assert!(errors.is_empty());
}

#[test]
fn gzip_reads_what_the_gzip_tool_wrote_and_every_member() {
    // `printf hello | gzip -n` and `printf ' world' | gzip -n -9` (gzip 1.12, RFC 1952: magic
    // 1f 8b, CM 8, FLG 0, MTIME 0, XFL 0 / 2, OS 3; deflate; CRC32 and ISIZE little-endian).
    let hello = hex("1f8b0800000000000003cb48cdc9c9070086a6103605000000");
    let world = hex("1f8b08000000000002035328cf2fca490100cb423b4a06000000");
    let ours = run_post(&mut [post(&named("gzip"))], &[b"!"]).remove(0);
    let three = [hello.as_slice(), &world, &ours].concat();
    for pre_name in ["gzip", "decompress"] {
        let (got, errors) = run_pre(&mut [pre(&named(pre_name))], &[&hello, &three]);
        assert!(errors.is_empty(), "{pre_name}: {errors:?}");
        assert_eq!(
            got,
            [b"hello".to_vec(), b"hello world!".to_vec()],
            "{pre_name}"
        );
    }
}

#[test]
fn xz_memory_limit_is_reported_as_such() {
    // liblzma's preset 9 declares a 64 MiB dictionary, whatever the data's size: more than a
    // 1 MiB max_length (+ 8 MiB) lets the decoder use.
    let mut xz = xz2::write::XzEncoder::new(Vec::new(), 9);
    xz.write_all(b"small").unwrap();
    let xz = xz.finish().unwrap();
    let bounded = with("xz", &[("max_length", Value::from(1024 * 1024))]);
    let (got, errors) = run_pre(&mut [pre(&bounded)], &[&xz]);
    assert!(got.is_empty());
    assert_eq!(
        errors,
        [format!(
            "xz: frame of {} bytes dropped: the xz stream needs more memory than the limit \
             ({} bytes, max_length + 8 MiB)",
            xz.len(),
            9 * 1024 * 1024
        )]
    );
}

#[test]
fn preprocess_errors_name_the_preprocessor_and_keep_their_wording() {
    let cases: [(PreprocessError, &str); 9] = [
        (
            PreprocessError::Frame {
                processor: "ingest-ns",
                len: 3,
                reason: FrameReason::NoTimestamp,
            },
            "ingest-ns: frame of 3 bytes dropped: shorter than its 8-byte timestamp",
        ),
        (
            PreprocessError::TooLong { max_length: 4 },
            "separate: frame longer than max_length (4 bytes) dropped",
        ),
        (
            PreprocessError::RecordTooLong {
                processor: "length-prefixed",
                length: 9,
                max_length: 4,
            },
            "length-prefixed: record of 9 bytes is longer than max_length (4 bytes); skipped",
        ),
        (
            PreprocessError::EndedInRecord {
                processor: "textual-length-prefixed",
                have: 2,
                want: 3,
            },
            "textual-length-prefixed: the stream ended inside a record (2 of 3 bytes); dropped",
        ),
        (
            PreprocessError::EndedInSkipped {
                processor: "length-prefixed",
                missing: 5,
            },
            "length-prefixed: the stream ended inside a skipped record (5 bytes missing)",
        ),
        (
            PreprocessError::EndedInPrefix { have: 3, width: 8 },
            "length-prefixed: the stream ended inside a length prefix (3 of 8 bytes); dropped",
        ),
        (
            PreprocessError::EndedInDigits { digits: 2 },
            "textual-length-prefixed: the stream ended inside a length prefix (2 digits); dropped",
        ),
        (
            PreprocessError::NotALength {
                byte: b'x',
                after_digits: true,
            },
            "textual-length-prefixed: byte 0x78 where a decimal length or a space was expected; \
             the rest of the stream is dropped",
        ),
        (
            PreprocessError::LengthOverflow,
            "textual-length-prefixed: a length beyond 2^64 - 1; the rest of the stream is dropped",
        ),
    ];
    for (error, message) in cases {
        assert_eq!(error.to_string(), message);
    }
}
