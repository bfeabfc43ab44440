//! What the fuzz targets check, shared by all of them (each target in `fuzz_targets/` is one
//! line calling [`codec_round_trip`] or [`preprocess`]).
//!
//! A failed assertion is a panic, and libFuzzer's panic hook turns any panic into a crash
//! (even one a plugin adapter would catch), so both the codec's own panics and the properties
//! checked here are reported with the input that broke them.

use temblor_processors::{
    Named, Postprocessor, Preprocessor, finish_preprocess, preprocess as run_chain,
};
use temblor_shim::{
    ErrorKind, Frames, Object, PluginError, RVec, Value,
    abi::{CodecBox, PluginModRef},
    abi_stable::std_types::{RResult, RSlice, RStr},
};

// ---------------------------------------------------------------------------------------------
// Codecs

/// Decodes `data` as one frame. When it decodes, the event must encode (to one frame) and that
/// frame must decode to an equal event (floats compared bit for bit, NaN equal to NaN, object
/// fields in order), which must encode to the same bytes again. No call may panic.
pub fn codec_round_trip(module: PluginModRef, data: &[u8]) {
    codec_round_trip_with(module, &Value::Object(Object::new()), data);
}

/// [`codec_round_trip`] with a codec `config`.
pub fn codec_round_trip_with(module: PluginModRef, config: &Value, data: &[u8]) {
    let mut codec = match module.new_codec()(RStr::from_str("fuzz"), config) {
        RResult::ROk(codec) => codec,
        RResult::RErr(e) => panic!("the codec refused its config {config}: {e}"),
    };
    let Ok(event) = decode_one(&mut codec, data, "the input") else {
        return;
    };
    let encoded = encode_one(&mut codec, &event);
    let again = decode_one(&mut codec, &encoded, "a decoded event, encoded").unwrap_or_else(|e| {
        panic!(
            "{event:?} encoded to {:?}, which does not decode: {e}",
            String::from_utf8_lossy(&encoded)
        )
    });
    assert!(
        same(&event, &again),
        "round trip changed the event:\n  decoded {event:?}\n  encoded {:?}\n  decoded {again:?}",
        String::from_utf8_lossy(&encoded)
    );
    let encoded_again = encode_one(&mut codec, &again);
    assert!(
        encoded == encoded_again,
        "equal events encoded differently: {:?} then {:?}",
        String::from_utf8_lossy(&encoded),
        String::from_utf8_lossy(&encoded_again)
    );
}

/// Like [`codec_round_trip_with`], for a codec whose first frame is a header row (csv with
/// `header = true`): `header` then `row` are decoded by one codec; when that gives one event,
/// a second codec encodes it (a header row, then the row) and a third decodes those two frames
/// back to an equal event.
pub fn codec_round_trip_with_header_row(
    module: PluginModRef,
    config: &Value,
    header: &[u8],
    row: &[u8],
) {
    let new_codec = || match module.new_codec()(RStr::from_str("fuzz"), config) {
        RResult::ROk(codec) => codec,
        RResult::RErr(e) => panic!("the codec refused its config {config}: {e}"),
    };
    let decode = |frames: &[&[u8]], what: &str| {
        let frames: Frames = frames.iter().copied().collect();
        let (mut events, mut errors) = (RVec::new(), RVec::new());
        let ok =
            check_not_panic(new_codec().decode(&frames, &mut events, &mut errors), what).is_ok();
        assert!(
            !ok || events.len() + errors.len() <= frames.len(),
            "more events and errors than frames: {events:?} {errors:?}"
        );
        (ok, events, errors)
    };
    let (ok, mut events, errors) = decode(&[header, row], "the input");
    if !ok || events.len() != 1 || !errors.is_empty() {
        return;
    }
    let event = events.pop().unwrap_or_default();
    let mut frames = Frames::new();
    let result = new_codec().encode(
        RSlice::from_slice(std::slice::from_ref(&event)),
        &mut frames,
    );
    if let RResult::RErr(e) = result {
        panic!("encoding a decoded event failed: {e}\n  event {event:?}");
    }
    assert_eq!(frames.len(), 2, "a header row, then the row");
    let written: Vec<&[u8]> = frames.iter().collect();
    let (ok, again, errors) = decode(&written, "a decoded event, encoded");
    assert!(
        ok && errors.is_empty() && again.len() == 1 && same(&event, &again[0]),
        "round trip changed the event:\n  decoded {event:?}\n  encoded {:?}\n  decoded {again:?} {errors:?}",
        written
            .iter()
            .map(|f| String::from_utf8_lossy(f))
            .collect::<Vec<_>>()
    );
}

/// Panics on a caught panic; other batch errors are allowed (the frame is refused).
fn check_not_panic(result: RResult<(), PluginError>, what: &str) -> Result<(), String> {
    match result {
        RResult::ROk(()) => Ok(()),
        RResult::RErr(e) => {
            assert!(e.kind != ErrorKind::Panic, "{what}: {e}");
            Err(e.to_string())
        }
    }
}

/// The event `frame` decodes to, or why the codec refuses it.
fn decode_one(codec: &mut CodecBox, frame: &[u8], what: &str) -> Result<Value, String> {
    let frames: Frames = std::iter::once(frame).collect();
    let (mut events, mut errors) = (RVec::new(), RVec::new());
    check_not_panic(codec.decode(&frames, &mut events, &mut errors), what)?;
    assert_eq!(
        events.len() + errors.len(),
        1,
        "one frame gives one event or one error: {events:?} {errors:?}"
    );
    if let Some(error) = errors.first() {
        assert_eq!(error.index, 0, "the error names the frame");
        return Err(error.reason.to_string());
    }
    Ok(events.pop().unwrap_or_default())
}

/// `event` encoded: exactly one frame. Encoding an event the codec decoded must not fail.
fn encode_one(codec: &mut CodecBox, event: &Value) -> Vec<u8> {
    let mut frames = Frames::new();
    let result = codec.encode(RSlice::from_slice(std::slice::from_ref(event)), &mut frames);
    if let RResult::RErr(e) = result {
        panic!("encoding a decoded event failed: {e}\n  event {event:?}");
    }
    assert_eq!(frames.len(), 1, "one event encodes to one frame");
    frames.get(0).unwrap_or_default().to_vec()
}

/// Equality for round trips: as `Value`'s (numbers by value across types), but floats that
/// are both NaN are equal, and object fields must come in the same order.
#[must_use]
pub fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::F64(x), Value::F64(y)) if x.is_nan() || y.is_nan() => x.is_nan() && y.is_nan(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y.iter()).all(|(a, b)| same(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y.iter())
                    .all(|((ka, va), (kb, vb))| ka == kb && same(va, vb))
        }
        _ => a == b,
    }
}

// ---------------------------------------------------------------------------------------------
// Preprocessors

/// `max_length`s small enough to be hit by small inputs (the last is the default of the
/// splitting preprocessors).
const SPLIT_LIMITS: [usize; 16] = [
    0,
    1,
    2,
    3,
    4,
    7,
    8,
    15,
    16,
    31,
    64,
    100,
    255,
    1024,
    4096,
    8 * 1024 * 1024,
];

/// `max_length`s for the decompressors: small ones, and up to 4 MiB (a zip bomb must stop
/// there; the default, 64 MiB, only makes the fuzzer slow).
const DECOMPRESS_LIMITS: [usize; 16] = [
    0,
    1,
    2,
    3,
    4,
    7,
    8,
    15,
    16,
    100,
    255,
    1024,
    4096,
    65_536,
    1 << 20,
    4 << 20,
];

/// The largest chunk of each cutting pattern (`usize::MAX`: the rest of the input).
const CHUNK_LIMITS: [usize; 16] = [
    0,
    1,
    2,
    3,
    4,
    7,
    8,
    13,
    16,
    31,
    64,
    100,
    255,
    1000,
    4096,
    usize::MAX,
];

/// How many frames the decompressors' round trip compresses (the first ones of the input).
const ROUND_TRIP_FRAMES: usize = 4;

/// A small deterministic generator (xorshift64*), so a crash reproduces from its input alone.
struct Rng(u64);

impl Rng {
    fn new(seed: u8) -> Self {
        Self(0x9E37_79B9_7F4A_7C15 ^ u64::from(seed).wrapping_mul(0xD1B5_4A32_D192_ED03) | 1)
    }

    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let r = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32;
        // n is at most a few thousand here: the truncation cannot matter.
        #[allow(clippy::cast_possible_truncation)]
        let r = r as usize;
        if n == 0 { 0 } else { r % n }
    }
}

/// Cuts `body` into chunks, grouped into batches, as `cut` says: its low four bits pick the
/// largest chunk (a chunk may be empty, except with "the rest of the input"), its high four
/// bits seed the sizes and how many chunks a batch has (1 to 4).
fn cut_into_batches(body: &[u8], cut: u8) -> Vec<Vec<&[u8]>> {
    let limit = CHUNK_LIMITS[usize::from(cut & 15)];
    let mut rng = Rng::new(cut >> 4);
    let mut chunks = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let n = if limit == usize::MAX {
            rest.len()
        } else {
            rng.below(limit + 1).min(rest.len())
        };
        let (chunk, after) = rest.split_at(n);
        chunks.push(chunk);
        rest = after;
        if limit == 0 && chunks.len() > 3 {
            // Only empty chunks: a few, then the rest in one.
            chunks.push(rest);
            break;
        }
    }
    let mut batches = Vec::new();
    let mut chunks = chunks.into_iter().peekable();
    while chunks.peek().is_some() {
        let n = 1 + rng.below(4);
        batches.push(chunks.by_ref().take(n).collect());
    }
    batches
}

fn named(name: &str, config: &[(&str, Value)]) -> Named {
    Named {
        name: name.to_owned(),
        config: Value::Object(config.iter().cloned().collect()),
    }
}

fn max_length(limit: usize) -> (&'static str, Value) {
    ("max_length", Value::U64(limit as u64))
}

/// What a preprocessor made of a stream.
struct Run {
    /// Every output frame, in order.
    frames: Vec<Vec<u8>>,
    /// Every error string.
    errors: Vec<temblor_processors::PreprocessError>,
}

/// Runs `named` over `batches` as the engine does (one `preprocess` per batch, then
/// `finish_preprocess`). For per-frame preprocessors (`per_frame`), each batch must give one
/// output frame or one error per input frame.
fn run(named: &Named, batches: &[Vec<&[u8]>], per_frame: bool) -> Run {
    let pre =
        Preprocessor::new(named).unwrap_or_else(|e| panic!("preprocessor {named:?} refused: {e}"));
    let mut chain = [pre];
    let (mut frames, mut scratch) = (Frames::new(), Frames::new());
    let mut run = Run {
        frames: Vec::new(),
        errors: Vec::new(),
    };
    for batch in batches {
        frames.clear();
        for chunk in batch {
            frames.push(chunk);
        }
        let errors_before = run.errors.len();
        run_chain(&mut chain, &mut frames, &mut scratch, &mut run.errors);
        if per_frame {
            assert_eq!(
                frames.len() + run.errors.len() - errors_before,
                batch.len(),
                "{}: each frame gives a frame or an error: {:?}",
                named.name,
                &run.errors[errors_before..]
            );
        }
        run.frames.extend(frames.iter().map(<[u8]>::to_vec));
    }
    finish_preprocess(&mut chain, &mut frames, &mut scratch, &mut run.errors);
    if per_frame {
        assert!(frames.is_empty(), "{}: nothing left at the end", named.name);
    }
    run.frames.extend(frames.iter().map(<[u8]>::to_vec));
    run
}

/// Runs `frames` through the postprocessor `named`, one batch.
fn postprocess(named: &Named, frames: &[&[u8]]) -> Vec<Vec<u8>> {
    let mut post = Postprocessor::new(named)
        .unwrap_or_else(|e| panic!("postprocessor {named:?} refused: {e}"));
    let input: Frames = frames.iter().copied().collect();
    let mut out = Frames::new();
    post.process(&input, &mut out);
    out.iter().map(<[u8]>::to_vec).collect()
}

/// Feeds the preprocessor `name` the input as a stream cut into frames at arbitrary points,
/// and checks what it gives:
///
/// - input: byte 0 and 1 choose the config (separator, `keep_empty`, `length`, `max_length`,
///   `algorithm`), byte 2 how the rest is cut into frames and batches (see `cut_into_batches`);
/// - nothing panics, and no allocation is larger than libFuzzer's `-malloc_limit_mb`;
/// - `separate`, `length-prefixed`, `textual-length-prefixed`, `ingest-ns`, `remove-empty`:
///   the frames and the number of errors are exactly what a straightforward reference computes;
/// - `base64` and the decompressors: one frame or one error per input frame, no frame longer
///   than `max_length` (what it decodes to is checked by the round trip);
/// - the round trip: the postprocessor of the same name (`compress` for `decompress`), then
///   the preprocessor, gives back the frames.
///
/// # Panics
/// When a check fails: a crash, for the fuzzer.
pub fn preprocess(name: &str, data: &[u8]) {
    let (a, b, cut, body) = match data {
        [a, b, cut, body @ ..] => (*a, *b, *cut, body),
        _ => return,
    };
    let batches = cut_into_batches(body, cut);
    let chunks: Vec<&[u8]> = batches.iter().flatten().copied().collect();
    match name {
        "separate" => separate(a, b, body, &batches),
        "length-prefixed" => length_prefixed(a, b, body, &batches),
        "base64" => base64(&batches, &chunks),
        "textual-length-prefixed" => textual_length_prefixed(b, body, &batches),
        "gzip" | "zstd" | "xz" | "zlib" | "snappy" | "lz4" | "br" | "decompress" => {
            decompress(name, a, b, &batches, &chunks);
        }
        "ingest-ns" => {
            let got = run(&named(name, &[]), &batches, true);
            let want: Vec<&[u8]> = chunks.iter().filter_map(|c| c.get(8..)).collect();
            assert_eq!(got.frames, want);
            assert_eq!(got.errors.len(), chunks.len() - want.len());
            let stamped = postprocess(&named(name, &[]), &chunks);
            let back = run(&named(name, &[]), &[refs(&stamped)], true);
            assert_eq!(back.frames, chunks, "ingest-ns post then pre");
            assert!(back.errors.is_empty());
        }
        "remove-empty" => {
            let got = run(&named(name, &[]), &batches, false);
            let want: Vec<&[u8]> = chunks.iter().copied().filter(|c| !c.is_empty()).collect();
            assert_eq!(got.frames, want);
            assert!(got.errors.is_empty());
            assert_eq!(postprocess(&named(name, &[]), &chunks), want);
        }
        other => panic!("no fuzz checks for preprocessor '{other}'"),
    }
}

fn refs(frames: &[Vec<u8>]) -> Vec<&[u8]> {
    frames.iter().map(Vec::as_slice).collect()
}

/// `separate`: the pieces between separators (a last empty piece is no frame), those longer
/// than `max_length` dropped with one error each, empty ones dropped unless `keep_empty`.
fn separate(a: u8, b: u8, body: &[u8], batches: &[Vec<&[u8]>]) {
    let separator = a & 0x7f;
    let keep_empty = a & 0x80 != 0;
    let limit = SPLIT_LIMITS[usize::from(b & 15)];
    let config = named(
        "separate",
        &[
            ("separator", Value::from(char::from(separator).to_string())),
            ("keep_empty", Value::Bool(keep_empty)),
            max_length(limit),
        ],
    );
    let got = run(&config, batches, false);
    let mut pieces: Vec<&[u8]> = body.split(|&c| c == separator).collect();
    if pieces.last().is_some_and(|p| p.is_empty()) {
        pieces.pop();
    }
    let too_long = pieces.iter().filter(|p| p.len() > limit).count();
    let want: Vec<&[u8]> = pieces
        .into_iter()
        .filter(|p| p.len() <= limit && (keep_empty || !p.is_empty()))
        .collect();
    assert_eq!(
        got.frames, want,
        "separator {separator:#04x}, keep_empty {keep_empty}, max_length {limit}"
    );
    assert_eq!(got.errors.len(), too_long, "{:?}", got.errors);
}

/// `length-prefixed`: a reference parser of the same stream.
fn length_prefixed(a: u8, b: u8, body: &[u8], batches: &[Vec<&[u8]>]) {
    let (width, length) = if a & 1 == 0 { (4, "u32") } else { (8, "u64") };
    let limit = SPLIT_LIMITS[usize::from(b & 15)];
    let config = named(
        "length-prefixed",
        &[("length", Value::from(length)), max_length(limit)],
    );
    let got = run(&config, batches, false);
    let (want, errors) = records(body, limit, |rest| {
        // None: the stream ended inside a length prefix.
        let (head, after) = rest.split_at_checked(width)?;
        *rest = after;
        Some(head.iter().fold(0_u64, |n, &b| (n << 8) | u64::from(b)))
    });
    assert_eq!(got.frames, want, "{length}, max_length {limit}");
    assert_eq!(got.errors.len(), errors, "{:?}", got.errors);
    let config = named("length-prefixed", &[("length", Value::from(length))]);
    post_then_pre(&config, batches, a);
}

/// `textual-length-prefixed`: a reference parser of the same stream.
fn textual_length_prefixed(b: u8, body: &[u8], batches: &[Vec<&[u8]>]) {
    let limit = SPLIT_LIMITS[usize::from(b & 15)];
    let config = named("textual-length-prefixed", &[max_length(limit)]);
    let got = run(&config, batches, false);
    let (want, errors) = records(body, limit, |rest| {
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        // Too many digits, or no digits or no space after them: the rest is lost (the end of
        // the stream inside the digits is the one other error).
        let n = std::str::from_utf8(&rest[..digits])
            .ok()
            .filter(|_| digits <= 20)
            .and_then(|d| d.parse::<u64>().ok());
        if digits == rest.len() || digits == 0 || rest[digits] != b' ' {
            return None;
        }
        *rest = &rest[digits + 1..];
        n
    });
    assert_eq!(got.frames, want, "max_length {limit}");
    assert_eq!(got.errors.len(), errors, "{:?}", got.errors);
    post_then_pre(&named("textual-length-prefixed", &[]), batches, b);
}

/// The records of `body` as a splitter must give them, and how many errors it must report:
/// `prefix` reads a length from the front (`None`: the stream ends inside it or is lost, one
/// error, the end); a record longer than `limit` is skipped with an error, one cut short by
/// the end is an error.
fn records<'a>(
    mut rest: &'a [u8],
    limit: usize,
    mut prefix: impl FnMut(&mut &'a [u8]) -> Option<u64>,
) -> (Vec<&'a [u8]>, usize) {
    let (mut want, mut errors) = (Vec::new(), 0);
    while !rest.is_empty() {
        let Some(n) = prefix(&mut rest) else {
            errors += 1;
            break;
        };
        let fits = usize::try_from(n).is_ok_and(|n| n <= rest.len());
        if n > limit as u64 {
            errors += 1; // too long: skipped
            if !fits {
                errors += 1; // and the stream ended inside it
                break;
            }
        } else if !fits {
            errors += 1; // the stream ended inside a record
            break;
        }
        // `fits`: n is at most rest.len().
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        if n <= limit {
            want.push(&rest[..n]);
        }
        rest = &rest[n..];
    }
    (want, errors)
}

/// Post then pre (`config`, the default max_length), the stream cut by `cut`: the frames of
/// `batches` come back.
fn post_then_pre(config: &Named, batches: &[Vec<&[u8]>], cut: u8) {
    let chunks: Vec<&[u8]> = batches.iter().flatten().copied().collect();
    let stream = postprocess(config, &chunks).concat();
    let back = run(config, &cut_into_batches(&stream, cut), false);
    assert_eq!(back.frames, chunks, "{} post then pre", config.name);
    assert!(back.errors.is_empty(), "{:?}", back.errors);
}

/// `base64`: one frame or error per frame, no longer than 3/4 of it; encoded frames decode.
fn base64(batches: &[Vec<&[u8]>], chunks: &[&[u8]]) {
    let config = named("base64", &[]);
    let got = run(&config, batches, true);
    let longest = chunks.iter().map(|c| c.len()).max().unwrap_or(0);
    for frame in &got.frames {
        assert!(frame.len() <= longest / 4 * 3 + 2, "{} bytes", frame.len());
    }
    let encoded = postprocess(&config, chunks);
    for frame in &encoded {
        assert_eq!(frame.len() % 4, 0, "padded base64");
    }
    let back = run(&config, &[refs(&encoded)], true);
    assert_eq!(back.frames, chunks, "base64 post then pre");
    assert!(back.errors.is_empty(), "{:?}", back.errors);
}

/// The decompressors: bounded frames; compressed frames decompress to themselves.
fn decompress(name: &str, a: u8, b: u8, batches: &[Vec<&[u8]>], chunks: &[&[u8]]) {
    let limit = DECOMPRESS_LIMITS[usize::from(b & 15)];
    let algorithm = [
        "autodetect",
        "gzip",
        "zstd",
        "xz",
        "zlib",
        "snappy",
        "lz4",
        "br",
    ][usize::from(a & 7)];
    let config = if name == "decompress" {
        named(
            name,
            &[("algorithm", Value::from(algorithm)), max_length(limit)],
        )
    } else {
        named(name, &[max_length(limit)])
    };
    let got = run(&config, batches, true);
    // `autodetect` passes a frame without magic bytes on as it is.
    let longest = chunks.iter().map(|c| c.len()).max().unwrap_or(0);
    let bound = if name == "decompress" && algorithm == "autodetect" {
        limit.max(longest)
    } else {
        limit
    };
    for frame in &got.frames {
        assert!(
            frame.len() <= bound,
            "{name}: a frame of {} bytes, max_length {limit}",
            frame.len()
        );
    }

    // Compress with the matching postprocessor, then decompress with the default max_length.
    // A few frames are enough for that (compressing is slow, xz's the most).
    let chunks = &chunks[..chunks.len().min(ROUND_TRIP_FRAMES)];
    let (post, pre) = if name == "decompress" {
        let format = ["gzip", "zstd", "xz", "zlib", "snappy", "lz4", "br", "gzip"]
            [usize::from(a >> 3 & 7)];
        // Brotli has no magic bytes: autodetect would pass it on.
        let pre_algorithm = if algorithm == "autodetect" && format != "br" {
            "autodetect"
        } else {
            format
        };
        (
            named("compress", &[("algorithm", Value::from(format))]),
            named(name, &[("algorithm", Value::from(pre_algorithm))]),
        )
    } else {
        (named(name, &[]), named(name, &[]))
    };
    let compressed = postprocess(&post, chunks);
    assert_eq!(
        compressed.len(),
        chunks.len(),
        "one compressed frame per frame"
    );
    let back = run(&pre, &[refs(&compressed)], true);
    assert_eq!(back.frames, chunks, "{name}: compressed then decompressed");
    assert!(back.errors.is_empty(), "{:?}", back.errors);
}
