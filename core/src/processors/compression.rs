//! `gzip`, `zlib`, `zstd`, `xz`, `snappy`, `lz4`, `br`, `decompress` and `compress`: each
//! frame compressed or decompressed on its own.
//!
//! Decompression is bounded: output beyond `max_length` bytes is never written (the buffer is
//! grown in steps up to `max_length + 1` bytes), zstd windows are limited before anything is
//! allocated for them, and the xz decoder gets a memory limit. A frame that fails is dropped and
//! reported, and nothing here panics on bad input (the pure-Rust zstd code runs under
//! `catch_unwind` as a second line of defence).
//!
//! The gzip format (RFC 1952) is written and read here on top of raw deflate (`flate2`), so the
//! deflate state and the buffers are reused from frame to frame; zstd uses `ruzstd` (pure Rust;
//! its encoder has one level, about zstd's level 1); xz uses liblzma (`xz2`), with a fresh
//! stream per frame. zlib (RFC 1950) is deflate with its 2-byte header and Adler-32 trailer
//! (`flate2`, the deflate state reused). snappy is the snappy *framing* format (`snap`'s
//! `FrameEncoder`/`FrameDecoder`, as Tremor writes it, CRC-32C per chunk), lz4 the LZ4 *frame*
//! format (`lz4_flex`), br brotli (`brotli`; the decoder's window is at most 16 MiB whatever
//! `max_length` is); these three are pure Rust, decoded under `catch_unwind`, and build a
//! fresh encoder or decoder per frame.

use std::{
    io::{Cursor, Read, Write},
    panic::{AssertUnwindSafe, catch_unwind},
};

use flate2::{Compress, Compression, Crc, Decompress, FlushCompress, FlushDecompress};
use ruzstd::{
    decoding::{
        BlockDecodingStrategy, FrameDecoder,
        errors::{FrameDecoderError, ReadFrameHeaderError},
    },
    encoding::{CompressionLevel, FrameCompressor, MatchGeneratorDriver},
};
use serde::Deserialize;
use temblor_shim::Frames;
use xz2::stream::{Action, Check, Filters, LzmaOptions, Stream};

use super::{ProcessorError, RETAINED_CAPACITY};

/// The default bound on one frame's decompressed size: 64 MiB.
pub(super) const DEFAULT_MAX_LENGTH: usize = 64 * 1024 * 1024;

/// The smallest step the output buffer grows by.
const MIN_GROWTH: usize = 16 * 1024;

/// The xz decoder's memory limit on top of `max_length` (liblzma's own buffers, and a
/// dictionary larger than the data, as `xz -9` writes for small inputs).
const XZ_EXTRA_MEMORY: u64 = 8 * 1024 * 1024;

/// The smallest zstd window accepted whatever `max_length` is (zstd's default for streams of
/// unknown size is 2 MiB at level 3, 8 MiB at level 19).
const ZSTD_MIN_WINDOW: u64 = 8 * 1024 * 1024;

/// A compression format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum Algorithm {
    /// RFC 1952 gzip (deflate).
    Gzip,
    /// Zstandard (RFC 8878).
    Zstd,
    /// The .xz format (LZMA2); `xz2` as in Tremor is accepted too.
    #[serde(alias = "xz2")]
    Xz,
    /// RFC 1950 zlib (deflate).
    Zlib,
    /// The snappy framing format.
    Snappy,
    /// The LZ4 frame format.
    Lz4,
    /// Brotli (RFC 7932); `brotli` is accepted too.
    #[serde(alias = "brotli")]
    Br,
}

impl Algorithm {
    pub(super) fn name(self) -> &'static str {
        match self {
            Self::Gzip => "gzip",
            Self::Zstd => "zstd",
            Self::Xz => "xz",
            Self::Zlib => "zlib",
            Self::Snappy => "snappy",
            Self::Lz4 => "lz4",
            Self::Br => "br",
        }
    }

    /// The algorithm of the processor `name` (one of the compression processors' names).
    pub(super) fn named(name: &str) -> Self {
        match name {
            "gzip" => Self::Gzip,
            "zstd" => Self::Zstd,
            "zlib" => Self::Zlib,
            "snappy" => Self::Snappy,
            "lz4" => Self::Lz4,
            "br" => Self::Br,
            _ => Self::Xz,
        }
    }

    /// The format whose magic bytes `data` starts with.
    fn detect(data: &[u8]) -> Option<Self> {
        if data.starts_with(&[0x1f, 0x8b]) {
            Some(Self::Gzip)
        } else if data.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Some(Self::Zstd)
        } else if data.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
            Some(Self::Xz)
        } else if data.starts_with(SNAPPY_STREAM_ID) {
            Some(Self::Snappy)
        } else if data.starts_with(&[0x04, 0x22, 0x4d, 0x18]) {
            Some(Self::Lz4)
        } else if matches!(data, [0x78, 0x01 | 0x5e | 0x9c | 0xda, ..]) {
            // A zlib header with a 32 KiB window, no preset dictionary, at each of the four
            // compression levels zlib writes.
            Some(Self::Zlib)
        } else {
            None
        }
    }

    /// The compression level to use: the configured one, checked, or the default.
    fn level(self, level: Option<u32>) -> Result<u32, ProcessorError> {
        match (self, level) {
            (Self::Gzip | Self::Xz | Self::Zlib | Self::Br, None) => Ok(6),
            (Self::Gzip | Self::Xz | Self::Zlib, Some(l @ 0..=9))
            | (Self::Br, Some(l @ 0..=11)) => Ok(l),
            (Self::Gzip | Self::Xz | Self::Zlib, Some(l)) => Err(ProcessorError(format!(
                "{}: `level` must be 0 to 9, not {l}",
                self.name()
            ))),
            (Self::Br, Some(l)) => Err(ProcessorError(format!(
                "br: `level` must be 0 to 11, not {l}"
            ))),
            (Self::Snappy | Self::Lz4, None) => Ok(0),
            (Self::Snappy | Self::Lz4, Some(_)) => Err(ProcessorError(format!(
                "{}: `level` is not supported: the format has one",
                self.name()
            ))),
            (Self::Zstd, None) => Ok(1),
            (Self::Zstd, Some(_)) => Err(ProcessorError(
                "zstd: `level` is not supported: the zstd encoder (ruzstd) has one level, \
                 about zstd's level 1"
                    .to_owned(),
            )),
        }
    }
}

/// What `decompress` decompresses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum Detect {
    /// By the frame's magic bytes; a frame with none passes unchanged.
    #[default]
    Autodetect,
    /// Always gzip.
    Gzip,
    /// Always zstd.
    Zstd,
    /// Always xz.
    #[serde(alias = "xz2")]
    Xz,
    /// Always zlib.
    Zlib,
    /// Always snappy (framed).
    Snappy,
    /// Always lz4 (frame format).
    Lz4,
    /// Always brotli (which has no magic bytes, so autodetect never picks it).
    #[serde(alias = "brotli")]
    Br,
}

/// The config of `gzip`, `zstd` and `xz`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct FormatConfig {
    max_length: usize,
    level: Option<u32>,
}

impl Default for FormatConfig {
    fn default() -> Self {
        Self {
            max_length: DEFAULT_MAX_LENGTH,
            level: None,
        }
    }
}

/// The config of `decompress`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct DecompressConfig {
    algorithm: Detect,
    max_length: usize,
}

impl Default for DecompressConfig {
    fn default() -> Self {
        Self {
            algorithm: Detect::Autodetect,
            max_length: DEFAULT_MAX_LENGTH,
        }
    }
}

/// The config of `compress`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CompressConfig {
    algorithm: Algorithm,
    level: Option<u32>,
}

/// A decompressing preprocessor, with its decoders and output buffer kept between frames.
pub(super) struct Decompressor {
    /// `None`: by magic bytes.
    algorithm: Option<Algorithm>,
    max_length: usize,
    pub(super) buf: Vec<u8>,
    inflate: Option<Box<Decompress>>,
    /// The zlib inflater (its header setting differs from gzip's raw deflate).
    unzlib: Option<Box<Decompress>>,
    crc: Crc,
    zstd: Option<Box<FrameDecoder>>,
}

impl std::fmt::Debug for Decompressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decompressor")
            .field("algorithm", &self.algorithm)
            .field("max_length", &self.max_length)
            .finish_non_exhaustive()
    }
}

impl Decompressor {
    fn with(algorithm: Option<Algorithm>, max_length: usize) -> Self {
        Self {
            algorithm,
            max_length,
            buf: Vec::new(),
            inflate: None,
            unzlib: None,
            crc: Crc::new(),
            zstd: None,
        }
    }

    /// `gzip`, `zstd`, `xz`, `zlib`, `snappy`, `lz4` or `br` as a preprocessor.
    pub(super) fn format(
        algorithm: Algorithm,
        config: &FormatConfig,
    ) -> Result<Self, ProcessorError> {
        algorithm.level(config.level)?;
        Ok(Self::with(Some(algorithm), config.max_length))
    }

    /// `decompress`.
    pub(super) fn detecting(config: &DecompressConfig) -> Self {
        let algorithm = match config.algorithm {
            Detect::Autodetect => None,
            Detect::Gzip => Some(Algorithm::Gzip),
            Detect::Zstd => Some(Algorithm::Zstd),
            Detect::Xz => Some(Algorithm::Xz),
            Detect::Zlib => Some(Algorithm::Zlib),
            Detect::Snappy => Some(Algorithm::Snappy),
            Detect::Lz4 => Some(Algorithm::Lz4),
            Detect::Br => Some(Algorithm::Br),
        };
        Self::with(algorithm, config.max_length)
    }

    pub(super) fn process(&mut self, input: &Frames, out: &mut Frames, errors: &mut Vec<String>) {
        for frame in input.iter() {
            let algorithm = match self.algorithm {
                Some(algorithm) => algorithm,
                None => match Algorithm::detect(frame) {
                    Some(algorithm) => algorithm,
                    None => {
                        out.push(frame);
                        continue;
                    }
                },
            };
            self.buf.clear();
            match self.decompress(algorithm, frame) {
                Ok(()) => out.push(&self.buf),
                Err(reason) => errors.push(format!(
                    "{}: frame of {} bytes dropped: {reason}",
                    algorithm.name(),
                    frame.len()
                )),
            }
        }
        if self.buf.capacity() > RETAINED_CAPACITY {
            self.buf = Vec::new();
        }
    }

    fn decompress(&mut self, algorithm: Algorithm, frame: &[u8]) -> Result<(), String> {
        let max = self.max_length;
        match algorithm {
            Algorithm::Gzip => {
                let inflate = self
                    .inflate
                    .get_or_insert_with(|| Box::new(Decompress::new(false)));
                gunzip(inflate, &mut self.crc, frame, &mut self.buf, max)
            }
            Algorithm::Xz => {
                let memlimit = u64::try_from(max)
                    .unwrap_or(u64::MAX)
                    .saturating_add(XZ_EXTRA_MEMORY);
                unxz(memlimit, frame, &mut self.buf, max)
            }
            Algorithm::Zstd => {
                let decoder = self.zstd.get_or_insert_with(|| {
                    let mut decoder = FrameDecoder::new();
                    let window = u64::try_from(max).unwrap_or(u64::MAX).max(ZSTD_MIN_WINDOW);
                    decoder.set_max_window_size(window);
                    Box::new(decoder)
                });
                let buf = &mut self.buf;
                match catch_unwind(AssertUnwindSafe(|| unzstd(decoder, frame, buf, max))) {
                    Ok(result) => result,
                    Err(_) => {
                        // The decoder may be in any state: build a new one next time.
                        self.zstd = None;
                        Err("the zstd decoder failed on this input".to_owned())
                    }
                }
            }
            Algorithm::Zlib => {
                let inflate = self
                    .unzlib
                    .get_or_insert_with(|| Box::new(Decompress::new(true)));
                unzlib(inflate, frame, &mut self.buf, max)
            }
            Algorithm::Snappy | Algorithm::Lz4 | Algorithm::Br => {
                let buf = &mut self.buf;
                if frame.is_empty() {
                    return Err("empty input".to_owned());
                }
                let run = || match algorithm {
                    Algorithm::Snappy => {
                        read_bounded(snap::read::FrameDecoder::new(frame), buf, max)
                    }
                    Algorithm::Lz4 => {
                        read_bounded(lz4_flex::frame::FrameDecoder::new(frame), buf, max)
                    }
                    _ => read_bounded(brotli::Decompressor::new(frame, 4096), buf, max),
                };
                catch_unwind(AssertUnwindSafe(run)).unwrap_or_else(|_| {
                    Err(format!(
                        "the {} decoder failed on this input",
                        algorithm.name()
                    ))
                })
            }
        }
    }
}

/// The snappy framing format's stream identifier chunk, which every stream starts with.
const SNAPPY_STREAM_ID: &[u8] = b"\xff\x06\x00\x00sNaPpY";

/// Reads everything `reader` decompresses into `out`, never growing it past `max + 1` bytes.
fn read_bounded(mut reader: impl Read, out: &mut Vec<u8>, max: usize) -> Result<(), String> {
    /// The most read into at once (and so zeroed first).
    const WINDOW: usize = 64 * 1024;
    loop {
        make_room(out, max)?;
        let len = out.len();
        let window = (out.capacity() - len).min(WINDOW);
        out.resize(len + window, 0);
        match reader.read(&mut out[len..]) {
            Ok(0) => {
                out.truncate(len);
                break;
            }
            Ok(n) => out.truncate(len + n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => out.truncate(len),
            Err(e) => {
                out.truncate(len);
                return Err(format!("corrupt data: {e}"));
            }
        }
    }
    if out.len() > max {
        return Err(too_long(max));
    }
    Ok(())
}

/// Decompresses one zlib stream (RFC 1950: header, deflate, Adler-32) into `out`.
fn unzlib(
    inflate: &mut Decompress,
    input: &[u8],
    out: &mut Vec<u8>,
    max: usize,
) -> Result<(), String> {
    inflate.reset(true);
    let mut rest = input;
    loop {
        make_room(out, max)?;
        let (in_before, out_before) = (inflate.total_in(), out.len());
        let status = inflate
            .decompress_vec(rest, out, FlushDecompress::None)
            .map_err(|e| format!("corrupt zlib data: {e}"))?;
        let consumed = usize::try_from(inflate.total_in() - in_before).unwrap_or(usize::MAX);
        rest = rest.get(consumed..).unwrap_or_default();
        if status == flate2::Status::StreamEnd {
            break;
        }
        if consumed == 0 && out.len() == out_before {
            return Err("truncated zlib data (the stream does not end)".to_owned());
        }
    }
    if out.len() > max {
        return Err(too_long(max));
    }
    if !rest.is_empty() {
        return Err(format!(
            "{} bytes after the end of the zlib stream",
            rest.len()
        ));
    }
    Ok(())
}

/// A compressing postprocessor, with its encoders and output buffer kept between frames.
pub(super) struct Compressor {
    algorithm: Algorithm,
    level: u32,
    buf: Vec<u8>,
    deflate: Option<Box<Compress>>,
    crc: Crc,
    zstd: Option<Box<ZstdEncoder>>,
}

type ZstdEncoder = FrameCompressor<Cursor<Vec<u8>>, Vec<u8>, MatchGeneratorDriver>;

impl std::fmt::Debug for Compressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compressor")
            .field("algorithm", &self.algorithm)
            .field("level", &self.level)
            .finish_non_exhaustive()
    }
}

impl Compressor {
    fn with(algorithm: Algorithm, level: Option<u32>) -> Result<Self, ProcessorError> {
        Ok(Self {
            algorithm,
            level: algorithm.level(level)?,
            buf: Vec::new(),
            deflate: None,
            crc: Crc::new(),
            zstd: None,
        })
    }

    /// `gzip`, `zstd`, `xz`, `zlib`, `snappy`, `lz4` or `br` as a postprocessor.
    pub(super) fn format(
        algorithm: Algorithm,
        config: &FormatConfig,
    ) -> Result<Self, ProcessorError> {
        Self::with(algorithm, config.level)
    }

    /// `compress`.
    pub(super) fn configured(config: &CompressConfig) -> Result<Self, ProcessorError> {
        Self::with(config.algorithm, config.level)
    }

    pub(super) fn process(&mut self, input: &Frames, out: &mut Frames) {
        for frame in input.iter() {
            self.buf.clear();
            match self.compress(frame) {
                Ok(()) => out.push(&self.buf),
                Err(reason) => tracing::error!(
                    postprocessor = self.algorithm.name(),
                    bytes = frame.len(),
                    reason = %reason,
                    "compressing a frame failed; it is dropped"
                ),
            }
        }
        if self.buf.capacity() > RETAINED_CAPACITY {
            self.buf = Vec::new();
        }
    }

    fn compress(&mut self, frame: &[u8]) -> Result<(), String> {
        match self.algorithm {
            Algorithm::Gzip => {
                let level = self.level;
                let deflate = self
                    .deflate
                    .get_or_insert_with(|| Box::new(Compress::new(Compression::new(level), false)));
                gzip(deflate, &mut self.crc, level, frame, &mut self.buf)
            }
            Algorithm::Xz => xz(self.level, frame, &mut self.buf),
            Algorithm::Zlib => {
                let level = self.level;
                let deflate = self
                    .deflate
                    .get_or_insert_with(|| Box::new(Compress::new(Compression::new(level), true)));
                deflate.reset();
                deflate_into(deflate, frame, &mut self.buf)
            }
            Algorithm::Snappy => {
                // snap writes nothing for no data; a stream is never empty (so it is detected).
                if frame.is_empty() {
                    self.buf.extend_from_slice(SNAPPY_STREAM_ID);
                    return Ok(());
                }
                let mut encoder = snap::write::FrameEncoder::new(&mut self.buf);
                encoder
                    .write_all(frame)
                    .and_then(|()| encoder.flush())
                    .map_err(|e| format!("snappy: {e}"))
            }
            Algorithm::Lz4 => {
                let mut encoder = lz4_flex::frame::FrameEncoder::new(&mut self.buf);
                encoder.write_all(frame).map_err(|e| format!("lz4: {e}"))?;
                encoder
                    .finish()
                    .map(|_| ())
                    .map_err(|e| format!("lz4: {e}"))
            }
            Algorithm::Br => {
                // Quality `level`, a 4 MiB window (lgwin 22, brotli's default).
                let mut encoder =
                    brotli::CompressorWriter::new(&mut self.buf, 4096, self.level, 22);
                encoder
                    .write_all(frame)
                    .and_then(|()| encoder.flush())
                    .map_err(|e| format!("br: {e}"))
            }
            Algorithm::Zstd => {
                let encoder = self.zstd.get_or_insert_with(|| {
                    Box::new(FrameCompressor::new(CompressionLevel::Fastest))
                });
                let buf = &mut self.buf;
                match catch_unwind(AssertUnwindSafe(|| zstd(encoder, frame, buf))) {
                    Ok(()) => Ok(()),
                    Err(_) => {
                        self.zstd = None;
                        Err("the zstd encoder failed".to_owned())
                    }
                }
            }
        }
    }
}

fn too_long(max: usize) -> String {
    format!("the decompressed data is longer than max_length ({max} bytes)")
}

/// Makes room in `out` for more output, never growing it past `max + 1` bytes (one more than
/// allowed, to tell "exactly max" from "too long").
fn make_room(out: &mut Vec<u8>, max: usize) -> Result<(), String> {
    if out.len() > max {
        return Err(too_long(max));
    }
    if out.capacity() == out.len() {
        let limit = max.saturating_add(1);
        let additional = out.len().max(MIN_GROWTH).min(limit - out.len());
        out.reserve_exact(additional);
    }
    Ok(())
}

/// The length of the gzip member header at the start of `data`, checked.
fn gzip_header(data: &[u8], crc: &mut Crc) -> Result<usize, String> {
    const FHCRC: u8 = 0x02;
    const FEXTRA: u8 = 0x04;
    const FNAME: u8 = 0x08;
    const FCOMMENT: u8 = 0x10;
    const RESERVED: u8 = 0xe0;
    let truncated = || "truncated gzip header".to_owned();
    if data.len() < 2 || data[..2] != [0x1f, 0x8b] {
        return Err("not gzip data (no 1f 8b magic bytes)".to_owned());
    }
    let fixed = data.get(..10).ok_or_else(truncated)?;
    if fixed[2] != 8 {
        return Err(format!("unsupported gzip compression method {}", fixed[2]));
    }
    let flags = fixed[3];
    if flags & RESERVED != 0 {
        return Err(format!("reserved gzip header flags set ({flags:#04x})"));
    }
    let mut at = 10;
    if flags & FEXTRA != 0 {
        let xlen = data.get(at..at + 2).ok_or_else(truncated)?;
        at += 2 + usize::from(u16::from_le_bytes([xlen[0], xlen[1]]));
    }
    for flag in [FNAME, FCOMMENT] {
        if flags & flag != 0 {
            let text = data.get(at..).ok_or_else(truncated)?;
            let end = memchr::memchr(0, text).ok_or_else(truncated)?;
            at += end + 1;
        }
    }
    if flags & FHCRC != 0 {
        let stored = data.get(at..at + 2).ok_or_else(truncated)?;
        crc.reset();
        crc.update(&data[..at]);
        if u32::from(u16::from_le_bytes([stored[0], stored[1]])) != crc.sum() & 0xffff {
            return Err("gzip header CRC mismatch".to_owned());
        }
        at += 2;
    }
    if at > data.len() {
        return Err(truncated());
    }
    Ok(at)
}

/// Decompresses one or more concatenated gzip members into `out`, checking each member's CRC32
/// and length.
fn gunzip(
    inflate: &mut Decompress,
    crc: &mut Crc,
    input: &[u8],
    out: &mut Vec<u8>,
    max: usize,
) -> Result<(), String> {
    let mut rest = input;
    loop {
        rest = &rest[gzip_header(rest, crc)?..];
        inflate.reset(false);
        let start = out.len();
        loop {
            make_room(out, max)?;
            let (in_before, out_before) = (inflate.total_in(), out.len());
            let status = inflate
                .decompress_vec(rest, out, FlushDecompress::None)
                .map_err(|e| format!("corrupt deflate data: {e}"))?;
            let consumed = usize::try_from(inflate.total_in() - in_before).unwrap_or(usize::MAX);
            rest = rest.get(consumed..).unwrap_or_default();
            if status == flate2::Status::StreamEnd {
                break;
            }
            if consumed == 0 && out.len() == out_before {
                return Err("truncated gzip data (the deflate stream does not end)".to_owned());
            }
        }
        if out.len() > max {
            return Err(too_long(max));
        }
        let trailer = rest
            .get(..8)
            .ok_or_else(|| "truncated gzip data (no CRC32 and length trailer)".to_owned())?;
        crc.reset();
        crc.update(&out[start..]);
        let stored_crc = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
        let stored_len = u32::from_le_bytes([trailer[4], trailer[5], trailer[6], trailer[7]]);
        if stored_crc != crc.sum() {
            return Err("gzip CRC32 mismatch".to_owned());
        }
        // ISIZE is the length modulo 2^32.
        if stored_len != (out.len() - start) as u32 {
            return Err("gzip length mismatch".to_owned());
        }
        rest = &rest[8..];
        if rest.is_empty() {
            return Ok(());
        }
    }
}

/// Compresses `frame` into one gzip member.
fn gzip(
    deflate: &mut Compress,
    crc: &mut Crc,
    level: u32,
    frame: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), String> {
    // XFL: 2 for the slowest level, 4 for the fastest; OS: 255, unknown.
    let xfl = match level {
        9 => 2,
        0 | 1 => 4,
        _ => 0,
    };
    out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 255]);
    deflate.reset();
    deflate_into(deflate, frame, out)?;
    crc.reset();
    crc.update(frame);
    out.extend_from_slice(&crc.sum().to_le_bytes());
    // ISIZE is the length modulo 2^32.
    out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
    Ok(())
}

/// Compresses all of `frame` with `deflate` (reset, with or without its zlib header) into `out`.
fn deflate_into(deflate: &mut Compress, frame: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    let mut rest = frame;
    loop {
        if out.capacity() - out.len() < 64 {
            out.reserve(rest.len() / 2 + 1024);
        }
        let (in_before, out_before) = (deflate.total_in(), out.len());
        let status = deflate
            .compress_vec(rest, out, FlushCompress::Finish)
            .map_err(|e| format!("deflate failed: {e}"))?;
        let consumed = usize::try_from(deflate.total_in() - in_before).unwrap_or(usize::MAX);
        rest = rest.get(consumed..).unwrap_or_default();
        if status == flate2::Status::StreamEnd {
            return Ok(());
        }
        if consumed == 0 && out.len() == out_before && out.capacity() - out.len() >= 64 {
            return Err("deflate made no progress".to_owned());
        }
    }
}

/// Decompresses one or more concatenated .xz streams into `out`.
fn unxz(memlimit: u64, input: &[u8], out: &mut Vec<u8>, max: usize) -> Result<(), String> {
    let mut stream = Stream::new_stream_decoder(memlimit, xz2::stream::CONCATENATED)
        .map_err(|e| format!("cannot start the xz decoder: {e}"))?;
    let mut rest = input;
    loop {
        make_room(out, max)?;
        let (in_before, out_before) = (stream.total_in(), out.len());
        let status = stream
            .process_vec(rest, out, Action::Finish)
            .map_err(|e| match e {
                xz2::stream::Error::MemLimit => format!(
                    "the xz stream needs more memory than the limit ({memlimit} bytes, max_length + 8 MiB)"
                ),
                other => format!("corrupt xz data: {other}"),
            })?;
        let consumed = usize::try_from(stream.total_in() - in_before).unwrap_or(usize::MAX);
        rest = rest.get(consumed..).unwrap_or_default();
        if status == xz2::stream::Status::StreamEnd {
            break;
        }
        if consumed == 0 && out.len() == out_before {
            return Err("truncated xz data".to_owned());
        }
    }
    if out.len() > max {
        return Err(too_long(max));
    }
    Ok(())
}

/// The LZMA2 dictionary size of presets 0 to 9 (`xz --help` lists them).
const XZ_PRESET_DICT: [u32; 10] = [
    256 << 10,
    1 << 20,
    2 << 20,
    4 << 20,
    4 << 20,
    8 << 20,
    8 << 20,
    16 << 20,
    32 << 20,
    64 << 20,
];

/// Compresses `frame` into one .xz stream (CRC64), with a dictionary no larger than the frame.
fn xz(level: u32, frame: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    let mut options =
        LzmaOptions::new_preset(level).map_err(|e| format!("xz preset {level}: {e}"))?;
    let preset_dict = XZ_PRESET_DICT[level.min(9) as usize];
    let frame_dict = u32::try_from(frame.len().next_power_of_two()).unwrap_or(u32::MAX);
    // liblzma's smallest dictionary is 4 KiB.
    options.dict_size(frame_dict.clamp(4096, preset_dict));
    let mut filters = Filters::new();
    filters.lzma2(&options);
    let mut stream = Stream::new_stream_encoder(&filters, Check::Crc64)
        .map_err(|e| format!("cannot start the xz encoder: {e}"))?;
    let mut rest = frame;
    loop {
        if out.capacity() - out.len() < 64 {
            out.reserve(rest.len() / 2 + 1024);
        }
        let (in_before, out_before) = (stream.total_in(), out.len());
        let status = stream
            .process_vec(rest, out, Action::Finish)
            .map_err(|e| format!("xz encoding failed: {e}"))?;
        let consumed = usize::try_from(stream.total_in() - in_before).unwrap_or(usize::MAX);
        rest = rest.get(consumed..).unwrap_or_default();
        if status == xz2::stream::Status::StreamEnd {
            return Ok(());
        }
        if consumed == 0 && out.len() == out_before && out.capacity() - out.len() >= 64 {
            return Err("the xz encoder made no progress".to_owned());
        }
    }
}

/// Decompresses one or more zstd frames (skippable frames are skipped) into `out`, checking
/// each frame's checksum when it has one.
fn unzstd(
    decoder: &mut FrameDecoder,
    input: &[u8],
    out: &mut Vec<u8>,
    max: usize,
) -> Result<(), String> {
    let mut rest = input;
    if rest.is_empty() {
        return Err("empty input".to_owned());
    }
    while !rest.is_empty() {
        match decoder.reset(&mut rest) {
            Ok(()) => {}
            Err(FrameDecoderError::ReadFrameHeaderError(ReadFrameHeaderError::SkipFrame {
                length,
                ..
            })) => {
                rest = usize::try_from(length)
                    .ok()
                    .and_then(|length| rest.get(length..))
                    .ok_or_else(|| "truncated skippable zstd frame".to_owned())?;
                continue;
            }
            Err(e) => return Err(format!("corrupt zstd data: {e}")),
        }
        loop {
            decoder
                .decode_blocks(&mut rest, BlockDecodingStrategy::UptoBytes(64 * 1024))
                .map_err(|e| format!("corrupt zstd data: {e}"))?;
            if out.len().saturating_add(decoder.can_collect()) > max {
                return Err(too_long(max));
            }
            decoder
                .collect_to_writer(&mut *out)
                .map_err(|e| format!("zstd: {e}"))?;
            if decoder.is_finished() {
                break;
            }
        }
        if let (Some(stored), Some(computed)) = (
            decoder.get_checksum_from_data(),
            decoder.get_calculated_checksum(),
        ) && stored != computed
        {
            return Err("zstd checksum mismatch".to_owned());
        }
    }
    Ok(())
}

/// Compresses `frame` into one zstd frame (with a checksum), reusing the encoder's buffers.
fn zstd(encoder: &mut ZstdEncoder, frame: &[u8], out: &mut Vec<u8>) {
    let mut source = encoder
        .take_source()
        .map(Cursor::into_inner)
        .unwrap_or_default();
    source.clear();
    source.extend_from_slice(frame);
    encoder.set_source(Cursor::new(source));
    encoder.set_drain(std::mem::take(out));
    encoder.compress();
    if let Some(drain) = encoder.take_drain() {
        *out = drain;
    }
    // Keep the copy of the frame small between frames.
    if let Some(source) = encoder.source_mut()
        && source.get_ref().capacity() > RETAINED_CAPACITY
    {
        *source = Cursor::new(Vec::new());
    }
}
