//! Preprocessors (bytes in, before decoding) and postprocessors (bytes out, after encoding).
//!
//! They are small, shared by every connector, and live in the host rather than in plugins. The names
//! and behaviour follow Tremor's.
//!
//! | name | pre | post | config (defaults) |
//! | --- | --- | --- | --- |
//! | `separate` | splits a byte stream at a separator, which may be cut anywhere across frames; a last piece without one is kept (and emitted when the stream ends) | appends the separator to each frame | `separator = "\n"` (1 to 8 bytes, e.g. `"\r\n"`), `max_length = 8388608` (pre: longer frames are dropped and reported), `keep_empty = false` (pre: empty frames are dropped) |
//! | `length-prefixed` | splits a byte stream of records, each a big-endian length then that many bytes, into one frame per record; records may be cut anywhere across frames; a record of length 0 is an empty frame; a record longer than `max_length` is reported and skipped (its bytes are discarded as they pass, never buffered), and the records after it are read as usual; a record the stream ends inside is reported and dropped | prefixes each frame with its length | `length = "u64"` (8 bytes, the default, as Tremor's) or `"u32"` (4 bytes), `max_length = 8388608` (pre) |
//! | `textual-length-prefixed` (also `textual-length-prefix`, Tremor 0.12's name) | splits a byte stream of records, each its length in ASCII decimal, a space, then that many bytes (`5 hello`: Tremor's format, RFC 5425's octet counting), into one frame per record; records may be cut anywhere across frames; a record longer than `max_length` is reported and skipped (discarded as it passes); anything but digits then a space where a length is expected is reported once and the rest of the stream dropped (there is no way to find the next record); a record the stream ends inside is reported and dropped | prefixes each frame with its length in decimal and a space | `max_length = 8388608` (pre) |
//! | `base64` | decodes each frame: standard alphabet (`+`, `/`), `=` padding optional, no whitespace or line breaks; a frame that is not base64 is dropped and reported | encodes each frame: standard alphabet, with padding | none |
//! | `gzip` | decompresses each frame: one gzip member or several concatenated; the CRC32 and length of each are checked | compresses each frame into one gzip member (no file name, time 0) | `max_length = 67108864` (pre: the most bytes one frame may decompress to), `level = 6` (post: 0 to 9) |
//! | `zstd` | decompresses each frame: one or more zstd frames, skippable frames skipped, checksums checked when present; windows larger than `max_length` (and than 8 MiB) are refused before anything is allocated | compresses each frame into one zstd frame with a checksum, at the only level the pure-Rust encoder has (about `zstd -1`) | `max_length = 67108864` (pre) |
//! | `zlib` | decompresses each frame: one zlib stream (RFC 1950), the Adler-32 checked, nothing after it | compresses each frame into one zlib stream | `max_length = 67108864` (pre), `level = 6` (post: 0 to 9) |
//! | `snappy` | decompresses each frame: the snappy framing format (stream identifier `ff 06 00 00 73 4e 61 50 70 59`, CRC-32C per chunk checked), as Tremor writes it | compresses each frame into one framed snappy stream | `max_length = 67108864` (pre) |
//! | `lz4` | decompresses each frame: one or more LZ4 frames (magic `04 22 4d 18`), checksums checked when present | compresses each frame into one LZ4 frame | `max_length = 67108864` (pre) |
//! | `br` | decompresses each frame: one brotli stream (RFC 7932); the decoder's window is at most 16 MiB | compresses each frame into one brotli stream (4 MiB window) | `max_length = 67108864` (pre), `level = 6` (post: brotli's quality, 0 to 11) |
//! | `xz` | decompresses each frame: one or more .xz streams; the decoder's memory is limited to `max_length` + 8 MiB | compresses each frame into one .xz stream (CRC64), with an LZMA2 dictionary no larger than the frame (so small frames compress cheaply) | `max_length = 67108864` (pre), `level = 6` (post: 0 to 9) |
//! | `decompress` | decompresses each frame with `algorithm`; `"autodetect"` picks gzip, zstd, xz, snappy, lz4 or zlib by the frame's magic bytes (`1f 8b`, `28 b5 2f fd`, `fd 37 7a 58 5a 00`, snappy's stream identifier, `04 22 4d 18`, and for zlib `78` then `01`, `5e`, `9c` or `da`: the headers zlib writes) and passes a frame with none of them on unchanged; brotli has no magic bytes and is never detected | (none: use `compress`) | `algorithm = "autodetect"` (or `"gzip"`, `"zlib"`, `"zstd"`, `"xz"`, `"snappy"`, `"lz4"`, `"br"`), `max_length = 67108864` |
//! | `compress` | (none: use `decompress`) | compresses each frame with `algorithm`, as the postprocessor of that name does | `algorithm` (required: `"gzip"`, `"zlib"`, `"zstd"`, `"xz"`, `"snappy"`, `"lz4"` or `"br"`), `level` (gzip, zlib and xz: 0 to 9, br: 0 to 11, default 6) |
//! | `ingest-ns` | removes the 8-byte big-endian timestamp at the front of each frame (temblor events carry no ingest time, so the value is dropped); a frame shorter than 8 bytes is dropped and reported | prepends the current time, in nanoseconds since the Unix epoch, as 8 bytes big-endian (the time the batch is postprocessed: frames carry no ingest time; the clock is read once per batch) | none |
//! | `remove-empty` | drops empty frames | drops empty frames | none |
//!
//! In a deployment, a processor is a name or a table:
//! `preprocessors = ["separate"]` or `preprocessors = [{ name = "separate", separator = "|" }]`.
//!
//! A preprocessor that drops a frame says why in a [`PreprocessError`] (made only for bad
//! input); the engine turns each into an event on the connector's error port. Postprocessors cannot fail on their input; the only
//! failure they can meet (liblzma refusing to start an encoder, out of memory) is logged and
//! the frame dropped.
//!
//! **Bounds.** No processor allocates more than its `max_length` (plus the decoders' working
//! memory stated above) however its input claims to be long: buffers grow as data arrives, in
//! steps. Buffers are kept between frames and batches, so the hot path allocates nothing once
//! they have grown, except for xz (liblzma needs a new stream per frame), the zstd encoder (a
//! block buffer per frame) and gzip, zlib, snappy, lz4 and br (a new encoder or decoder per
//! frame: flate2's gz and zlib readers and writers own their deflate state); a buffer grown
//! beyond 4 MiB by a large frame is released afterwards.
//!
//! This crate has no runtime (no engine, no threads, no async): the engine (`temblor-core`),
//! the fuzz targets and the benchmarks use it alike. [`Named`], how a deployment names a
//! processor or a codec, lives here too.

mod base64;
mod compression;
mod length_prefixed;
mod records;
mod separate;
#[cfg(test)]
mod tests;
mod textual_length_prefixed;

use std::time::SystemTime;

use serde::Deserialize;
use temblor_shim::{Frames, FromValueError, Value, from_value};

use compression::Algorithm;

pub use compression::DecompressError;
pub use named::{Named, NamedError};

mod named;

/// A buffer kept between frames is released when a frame made it grow beyond this.
const RETAINED_CAPACITY: usize = 4 * 1024 * 1024;

/// The preprocessors, for messages.
const PREPROCESSORS: &str = "separate, length-prefixed, textual-length-prefixed, base64, gzip, \
     zlib, zstd, xz, snappy, lz4, br, decompress, ingest-ns, remove-empty";

/// The postprocessors, for messages.
const POSTPROCESSORS: &str = "separate, length-prefixed, textual-length-prefixed, base64, gzip, \
     zlib, zstd, xz, snappy, lz4, br, compress, ingest-ns, remove-empty";

/// A processor that cannot be built: unknown name or bad config. `kind` is `preprocessor` or
/// `postprocessor`; every message names the processor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProcessorError {
    /// No processor of this kind has this name.
    #[error("unknown {kind} '{name}' (available: {available})")]
    Unknown {
        kind: &'static str,
        name: String,
        available: &'static str,
    },
    /// The name is a processor of the other kind (`compress` as a preprocessor).
    #[error("'{name}' is a {is}; the {kind} is '{instead}'")]
    WrongKind {
        kind: &'static str,
        name: &'static str,
        is: &'static str,
        instead: &'static str,
    },
    /// The config does not have the processor's shape (unknown key, wrong type).
    #[error("{kind} '{name}': {source}")]
    Config {
        kind: &'static str,
        name: String,
        source: FromValueError,
    },
    /// A setting has the right type but a value the processor refuses.
    #[error("{kind} '{name}': {source}")]
    Setting {
        kind: &'static str,
        name: String,
        source: SettingError,
    },
}

/// A setting's value that a processor refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingError {
    /// `level` outside the algorithm's range.
    #[error("{algorithm}: `level` must be 0 to {max}, not {level}")]
    Level {
        algorithm: &'static str,
        max: u32,
        level: u32,
    },
    /// `level` for a format that has a single one.
    #[error("{algorithm}: `level` is not supported: {why}")]
    NoLevel {
        algorithm: &'static str,
        why: &'static str,
    },
    /// `separator` empty or too long.
    #[error("`separator` must be 1 to {max} bytes, found {separator:?} ({len} bytes)")]
    Separator {
        max: usize,
        separator: String,
        len: usize,
    },
}

/// Why a preprocessor dropped a frame, or what it held when its stream ended. Each message
/// names the preprocessor. Made only for bad input: a good frame costs nothing here.
#[derive(Debug, thiserror::Error)]
pub enum PreprocessError {
    /// A frame that did not decode (`base64`, the decompressors, `ingest-ns`).
    #[error("{processor}: frame of {len} bytes dropped: {reason}")]
    Frame {
        processor: &'static str,
        len: usize,
        reason: FrameReason,
    },
    /// `separate`: a frame longer than `max_length`.
    #[error("separate: frame longer than max_length ({max_length} bytes) dropped")]
    TooLong { max_length: usize },
    /// A record longer than `max_length`: skipped as it passes.
    #[error(
        "{processor}: record of {length} bytes is longer than max_length ({max_length} bytes); skipped"
    )]
    RecordTooLong {
        processor: &'static str,
        length: u64,
        max_length: u64,
    },
    /// The stream ended inside a record's payload.
    #[error("{processor}: the stream ended inside a record ({have} of {want} bytes); dropped")]
    EndedInRecord {
        processor: &'static str,
        have: usize,
        want: usize,
    },
    /// The stream ended inside a record being skipped.
    #[error("{processor}: the stream ended inside a skipped record ({missing} bytes missing)")]
    EndedInSkipped {
        processor: &'static str,
        missing: u64,
    },
    /// `length-prefixed`: the stream ended inside a length prefix.
    #[error(
        "length-prefixed: the stream ended inside a length prefix ({have} of {width} bytes); dropped"
    )]
    EndedInPrefix { have: usize, width: usize },
    /// `textual-length-prefixed`: the stream ended inside a length prefix.
    #[error(
        "textual-length-prefixed: the stream ended inside a length prefix ({digits} digits); dropped"
    )]
    EndedInDigits { digits: usize },
    /// `textual-length-prefixed`: a byte that is not a digit (nor, after digits, the space).
    #[error(
        "textual-length-prefixed: byte {byte:#04x} where a decimal length{} was expected; the rest of the stream is dropped",
        if *after_digits { " or a space" } else { "" }
    )]
    NotALength { byte: u8, after_digits: bool },
    /// `textual-length-prefixed`: more than 20 digits, or a value beyond `u64::MAX`.
    #[error("textual-length-prefixed: a length beyond 2^64 - 1; the rest of the stream is dropped")]
    LengthOverflow,
}

/// Why a frame did not decode.
#[derive(Debug, thiserror::Error)]
pub enum FrameReason {
    /// Not base64.
    #[error(transparent)]
    Base64(::base64::DecodeError),
    /// Not the compression format, corrupt, or longer than `max_length` decompressed.
    #[error(transparent)]
    Decompress(DecompressError),
    /// `ingest-ns`: shorter than 8 bytes.
    #[error("shorter than its 8-byte timestamp")]
    NoTimestamp,
}

/// Decodes each frame of `input` on its own, into `buf` (kept between batches, released if a
/// frame made it grow beyond [`RETAINED_CAPACITY`]). `decode` returns true when it decoded
/// the frame into `buf`, false to pass the frame on unchanged, or the preprocessor's name and
/// why the frame is dropped.
fn decode_each(
    buf: &mut Vec<u8>,
    (input, out, errors): (&Frames, &mut Frames, &mut Vec<PreprocessError>),
    mut decode: impl FnMut(&[u8], &mut Vec<u8>) -> Result<bool, (&'static str, FrameReason)>,
) {
    for frame in input.iter() {
        buf.clear();
        match decode(frame, buf) {
            Ok(true) => out.push(buf),
            Ok(false) => out.push(frame),
            Err((processor, reason)) => errors.push(PreprocessError::Frame {
                processor,
                len: frame.len(),
                reason,
            }),
        }
    }
    if buf.capacity() > RETAINED_CAPACITY {
        *buf = Vec::new();
    }
}

fn config<'a, T: Deserialize<'a>>(
    kind: &'static str,
    named: &'a Named,
) -> Result<T, ProcessorError> {
    from_value(&named.config).map_err(|source| ProcessorError::Config {
        kind,
        name: named.name.clone(),
        source,
    })
}

/// Checks that a processor without settings got none.
fn no_config(kind: &'static str, named: &Named) -> Result<(), ProcessorError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Empty {}
    config::<Empty>(kind, named).map(drop)
}

/// A refused setting, with the processor's kind and name.
fn setting(kind: &'static str, named: &Named) -> impl FnOnce(SettingError) -> ProcessorError {
    move |source| ProcessorError::Setting {
        kind,
        name: named.name.clone(),
        source,
    }
}

/// Why `name` is no processor of this `kind`: it is one of the other kind (`compress` is the
/// postprocessor of `decompress`), or no processor at all.
fn refused(kind: &'static str, name: &str) -> ProcessorError {
    let pre = kind == "preprocessor";
    match (pre, name) {
        (true, "compress") | (false, "decompress") => ProcessorError::WrongKind {
            kind,
            name: if pre { "compress" } else { "decompress" },
            is: if pre { "postprocessor" } else { "preprocessor" },
            instead: if pre { "decompress" } else { "compress" },
        },
        _ => ProcessorError::Unknown {
            kind,
            name: name.to_owned(),
            available: if pre { PREPROCESSORS } else { POSTPROCESSORS },
        },
    }
}

/// Transforms incoming bytes before decoding.
#[derive(Debug)]
pub struct Preprocessor(Pre);

#[derive(Debug)]
enum Pre {
    Separate(separate::Splitter),
    LengthPrefixed(length_prefixed::Splitter),
    TextualLengthPrefixed(textual_length_prefixed::Splitter),
    Base64(base64::Decoder),
    Decompress(Box<compression::Decompressor>),
    IngestNs,
    RemoveEmpty,
}

impl Preprocessor {
    /// Builds the preprocessor `named` describes.
    ///
    /// # Errors
    /// Unknown name or bad config.
    pub fn new(named: &Named) -> Result<Self, ProcessorError> {
        const KIND: &str = "preprocessor";
        let pre = match named.name.as_str() {
            "separate" => {
                let c: separate::Config = config(KIND, named)?;
                Pre::Separate(separate::Splitter::new(&c).map_err(setting(KIND, named))?)
            }
            "length-prefixed" => {
                let c: length_prefixed::Config = config(KIND, named)?;
                Pre::LengthPrefixed(length_prefixed::Splitter::with(&c))
            }
            "textual-length-prefixed" | "textual-length-prefix" => {
                let c: textual_length_prefixed::Config = config(KIND, named)?;
                Pre::TextualLengthPrefixed(textual_length_prefixed::Splitter::with(&c))
            }
            name @ ("gzip" | "zstd" | "xz" | "zlib" | "snappy" | "lz4" | "br") => {
                let c: compression::FormatConfig = config(KIND, named)?;
                let algorithm = Algorithm::named(name);
                let d = c.decompressor(algorithm).map_err(setting(KIND, named))?;
                Pre::Decompress(Box::new(d))
            }
            "decompress" => {
                let c: compression::DecompressConfig = config(KIND, named)?;
                Pre::Decompress(Box::new(compression::Decompressor::detecting(&c)))
            }
            name @ ("base64" | "ingest-ns" | "remove-empty") => {
                no_config(KIND, named)?;
                match name {
                    "base64" => Pre::Base64(base64::Decoder::default()),
                    "ingest-ns" => Pre::IngestNs,
                    _ => Pre::RemoveEmpty,
                }
            }
            other => return Err(refused(KIND, other)),
        };
        Ok(Self(pre))
    }

    /// Processes a batch; problems with single frames are appended to `errors`.
    pub fn process(&mut self, input: &Frames, out: &mut Frames, errors: &mut Vec<PreprocessError>) {
        match &mut self.0 {
            Pre::Separate(s) => s.process(input, out, errors),
            Pre::LengthPrefixed(s) => s.process(input, out, errors),
            Pre::TextualLengthPrefixed(s) => s.process(input, out, errors),
            Pre::Base64(d) => d.process(input, out, errors),
            Pre::Decompress(d) => d.process(input, out, errors),
            Pre::IngestNs => strip_ingest_ns(input, out, errors),
            Pre::RemoveEmpty => remove_empty(input, out),
        }
    }

    /// Turns on the tracking of frame starts (see [`Preprocessor::take_starts`]). Only
    /// `separate` tracks them; for the other preprocessors this does nothing.
    pub fn track_starts(&mut self) {
        if let Pre::Separate(s) = &mut self.0 {
            s.track_starts();
        }
    }

    /// Moves into `out`, in order, the start of each frame emitted since the last call (with
    /// tracking on: one per emitted frame, including those [`Preprocessor::finish`] emits):
    /// the position, in this preprocessor's input from its first byte (0), of the frame's
    /// first byte. The input is counted since the preprocessor was built, across `finish`.
    /// Frames dropped (too long, empty) have none. Appends nothing for preprocessors other
    /// than `separate`, and nothing while tracking is off.
    pub fn take_starts(&mut self, out: &mut Vec<u64>) {
        if let Pre::Separate(s) = &mut self.0 {
            s.take_starts(out);
        }
    }

    /// The stream ended: emits what is still buffered. (What cannot be emitted, such as a
    /// record the stream ended inside, is logged; [`finish_preprocess`] reports it as a
    /// [`PreprocessError`] instead.)
    pub fn finish(&mut self, out: &mut Frames) {
        let mut errors = Vec::new();
        self.finish_reporting(out, &mut errors);
        for error in errors {
            tracing::warn!(error = %error, "preprocessor finished with an incomplete frame");
        }
    }

    fn finish_reporting(&mut self, out: &mut Frames, errors: &mut Vec<PreprocessError>) {
        match &mut self.0 {
            Pre::Separate(s) => s.finish(out, errors),
            Pre::LengthPrefixed(s) => s.finish(errors),
            Pre::TextualLengthPrefixed(s) => s.finish(errors),
            Pre::Base64(_) | Pre::Decompress(_) | Pre::IngestNs | Pre::RemoveEmpty => {}
        }
    }
}

/// Transforms outgoing bytes after encoding.
#[derive(Debug)]
pub struct Postprocessor(Post);

#[derive(Debug)]
enum Post {
    Separate(separate::Separator),
    LengthPrefixed(length_prefixed::Width),
    TextualLengthPrefixed,
    Base64,
    Compress(Box<compression::Compressor>),
    IngestNs,
    RemoveEmpty,
}

impl Postprocessor {
    /// Builds the postprocessor `named` describes.
    ///
    /// # Errors
    /// Unknown name or bad config.
    pub fn new(named: &Named) -> Result<Self, ProcessorError> {
        const KIND: &str = "postprocessor";
        let post = match named.name.as_str() {
            "separate" => {
                let c: separate::Config = config(KIND, named)?;
                Post::Separate(c.separator().map_err(setting(KIND, named))?)
            }
            "length-prefixed" => {
                let c: length_prefixed::Config = config(KIND, named)?;
                Post::LengthPrefixed(c.width())
            }
            "textual-length-prefixed" | "textual-length-prefix" => {
                // Only `max_length`, which is the preprocessor's; accepted so one table serves both.
                let _: textual_length_prefixed::Config = config(KIND, named)?;
                Post::TextualLengthPrefixed
            }
            name @ ("gzip" | "zstd" | "xz" | "zlib" | "snappy" | "lz4" | "br") => {
                let c: compression::FormatConfig = config(KIND, named)?;
                let algorithm = Algorithm::named(name);
                let c = c.compressor(algorithm).map_err(setting(KIND, named))?;
                Post::Compress(Box::new(c))
            }
            "compress" => {
                let c: compression::CompressConfig = config(KIND, named)?;
                let c = compression::Compressor::configured(&c).map_err(setting(KIND, named))?;
                Post::Compress(Box::new(c))
            }
            name @ ("base64" | "ingest-ns" | "remove-empty") => {
                no_config(KIND, named)?;
                match name {
                    "base64" => Post::Base64,
                    "ingest-ns" => Post::IngestNs,
                    _ => Post::RemoveEmpty,
                }
            }
            other => return Err(refused(KIND, other)),
        };
        Ok(Self(post))
    }

    /// Processes a batch.
    pub fn process(&mut self, input: &Frames, out: &mut Frames) {
        match &mut self.0 {
            Post::Separate(sep) => separate::append(*sep, input, out),
            Post::LengthPrefixed(width) => length_prefixed::prefix(*width, input, out),
            Post::TextualLengthPrefixed => textual_length_prefixed::prefix(input, out),
            Post::Base64 => base64::encode(input, out),
            Post::Compress(c) => c.process(input, out),
            Post::IngestNs => prepend_ingest_ns(now_ns(), input, out),
            Post::RemoveEmpty => remove_empty(input, out),
        }
    }
}

/// Nanoseconds since the Unix epoch (0 if the clock is before it).
fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// `ingest-ns` as a postprocessor: `ns` as 8 bytes big-endian, then the frame.
fn prepend_ingest_ns(ns: u64, input: &Frames, out: &mut Frames) {
    let stamp = ns.to_be_bytes();
    for frame in input.iter() {
        out.push_with(|buf| {
            buf.extend_from_copy_slice(&stamp);
            buf.extend_from_copy_slice(frame);
        });
    }
}

/// `ingest-ns` as a preprocessor: the frame without its first 8 bytes.
fn strip_ingest_ns(input: &Frames, out: &mut Frames, errors: &mut Vec<PreprocessError>) {
    for frame in input.iter() {
        match frame.get(8..) {
            Some(rest) => out.push(rest),
            None => errors.push(PreprocessError::Frame {
                processor: "ingest-ns",
                len: frame.len(),
                reason: FrameReason::NoTimestamp,
            }),
        }
    }
}

/// `remove-empty`: every frame but the empty ones.
fn remove_empty(input: &Frames, out: &mut Frames) {
    for frame in input.iter().filter(|f| !f.is_empty()) {
        out.push(frame);
    }
}

/// Runs `frames` through a chain of preprocessors; the result is left in `frames`.
pub fn preprocess(
    chain: &mut [Preprocessor],
    frames: &mut Frames,
    scratch: &mut Frames,
    errors: &mut Vec<PreprocessError>,
) {
    for stage in chain {
        scratch.clear();
        stage.process(frames, scratch, errors);
        std::mem::swap(frames, scratch);
    }
}

/// Ends a preprocessor chain: what each stage still buffers runs through the stages after it.
/// The result is left in `frames` (cleared first); what a stage had to drop is reported in
/// `errors`.
pub fn finish_preprocess(
    chain: &mut [Preprocessor],
    frames: &mut Frames,
    scratch: &mut Frames,
    errors: &mut Vec<PreprocessError>,
) {
    frames.clear();
    for stage in chain {
        // What earlier stages flushed goes through this one, then this one's own rest.
        scratch.clear();
        stage.process(frames, scratch, errors);
        stage.finish_reporting(scratch, errors);
        std::mem::swap(frames, scratch);
    }
}

/// Runs `frames` through a chain of postprocessors; the result is left in `frames`.
pub fn postprocess(chain: &mut [Postprocessor], frames: &mut Frames, scratch: &mut Frames) {
    for stage in chain {
        scratch.clear();
        stage.process(frames, scratch);
        std::mem::swap(frames, scratch);
    }
}

/// A `Named` with an empty config, for tests and defaults.
#[must_use]
pub fn named(name: &str) -> Named {
    Named {
        name: name.to_owned(),
        config: Value::Object(temblor_shim::Object::new()),
    }
}
