//! `gzip`, `zlib`, `zstd`, `xz`, `snappy`, `lz4`, `br`, `decompress` and `compress`: each
//! frame compressed or decompressed on its own.
//!
//! Decompression is bounded: output beyond `max_length` bytes is never written (the buffer is
//! grown in steps up to `max_length + 1` bytes), zstd windows are limited before anything is
//! allocated for them, and the xz decoder gets a memory limit. A frame that fails is dropped and
//! reported, and nothing here panics on bad input (the pure-Rust zstd code runs under
//! `catch_unwind` as a second line of defence).
//!
//! gzip (RFC 1952) is `temblor-compress`'s, flate2's gz reader and writer that the file
//! connectors use too, bounded by `Read::take`; zlib (RFC 1950) is flate2's zlib reader and
//! writer, nothing accepted after the stream; both build a fresh deflate state per frame. zstd
//! uses `ruzstd` (pure Rust; its encoder has one level, about zstd's level 1; the decoder is
//! kept between frames); xz uses liblzma (`xz2`), with a fresh stream per frame. snappy is the
//! snappy *framing* format (`snap`'s `FrameEncoder`/`FrameDecoder`, as Tremor writes it,
//! CRC-32C per chunk), lz4 the LZ4 *frame* format (`lz4_flex`), br brotli (`brotli`; the
//! decoder's window is at most 16 MiB whatever `max_length` is); these three are pure Rust,
//! decoded under `catch_unwind`, and build a fresh encoder or decoder per frame.

use std::{
    fmt,
    io::{self, Cursor, Write},
    panic::{AssertUnwindSafe, catch_unwind},
};

use ruzstd::{
    decoding::{
        BlockDecodingStrategy, FrameDecoder,
        errors::{FrameDecoderError, ReadFrameHeaderError},
    },
    encoding::{CompressionLevel, FrameCompressor, MatchGeneratorDriver},
};
use serde::{Deserialize, Deserializer, de::value::StringDeserializer};
use temblor_compress::{BoundedError, gzip, read_bounded};
use temblor_shim::Frames;
use xz2::stream::{Check, Filters, LzmaOptions, Stream};

use super::{FrameReason, PreprocessError, RETAINED_CAPACITY, SettingError, decode_each};

/// The default bound on one frame's decompressed size: 64 MiB.
pub(super) const DEFAULT_MAX_LENGTH: usize = 64 * 1024 * 1024;

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
    fn level(self, level: Option<u32>) -> Result<u32, SettingError> {
        match (self, level) {
            (Self::Gzip | Self::Xz | Self::Zlib | Self::Br, None) => Ok(6),
            (Self::Gzip | Self::Xz | Self::Zlib, Some(l @ 0..=9))
            | (Self::Br, Some(l @ 0..=11)) => Ok(l),
            (Self::Gzip | Self::Xz | Self::Zlib, Some(level)) => Err(SettingError::Level {
                algorithm: self.name(),
                max: 9,
                level,
            }),
            (Self::Br, Some(level)) => Err(SettingError::Level {
                algorithm: self.name(),
                max: 11,
                level,
            }),
            (Self::Snappy | Self::Lz4, None) => Ok(0),
            (Self::Snappy | Self::Lz4, Some(_)) => Err(SettingError::NoLevel {
                algorithm: self.name(),
                why: "the format has one",
            }),
            (Self::Zstd, None) => Ok(1),
            (Self::Zstd, Some(_)) => Err(SettingError::NoLevel {
                algorithm: self.name(),
                why: "the zstd encoder (ruzstd) has one level, about zstd's level 1",
            }),
        }
    }
}

/// `algorithm` of `decompress`: `"autodetect"` (`None`: by the frame's magic bytes; a frame
/// with none passes unchanged) or an [`Algorithm`] (brotli has no magic bytes, so autodetect
/// never picks it).
fn detect<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Algorithm>, D::Error> {
    let name = String::deserialize(d)?;
    if name == "autodetect" {
        return Ok(None);
    }
    Algorithm::deserialize(StringDeserializer::<D::Error>::new(name)).map(Some)
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

impl FormatConfig {
    /// `algorithm` (`gzip`, `zstd`, `xz`, `zlib`, `snappy`, `lz4` or `br`) as a preprocessor;
    /// `level` is checked, as for the postprocessor, though decoding has none.
    pub(super) fn decompressor(&self, algorithm: Algorithm) -> Result<Decompressor, SettingError> {
        algorithm.level(self.level)?;
        Ok(Decompressor::with(Some(algorithm), self.max_length))
    }

    /// `algorithm` as a postprocessor.
    pub(super) fn compressor(&self, algorithm: Algorithm) -> Result<Compressor, SettingError> {
        Compressor::with(algorithm, self.level)
    }
}

/// The config of `decompress`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct DecompressConfig {
    #[serde(deserialize_with = "detect")]
    algorithm: Option<Algorithm>,
    max_length: usize,
}

impl Default for DecompressConfig {
    fn default() -> Self {
        Self {
            algorithm: None,
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
    zstd: Option<Box<FrameDecoder>>,
}

/// The settings of a compressor or decompressor (not its buffers, not the zstd state, which
/// has no `Debug`).
fn debug_settings(
    f: &mut fmt::Formatter<'_>,
    name: &str,
    algorithm: &dyn fmt::Debug,
    (key, value): (&str, &dyn fmt::Debug),
) -> fmt::Result {
    f.debug_struct(name)
        .field("algorithm", algorithm)
        .field(key, value)
        .finish_non_exhaustive()
}

impl fmt::Debug for Decompressor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let max_length = ("max_length", &self.max_length as &dyn fmt::Debug);
        debug_settings(f, "Decompressor", &self.algorithm, max_length)
    }
}

impl Decompressor {
    fn with(algorithm: Option<Algorithm>, max_length: usize) -> Self {
        Self {
            algorithm,
            max_length,
            buf: Vec::new(),
            zstd: None,
        }
    }

    /// `decompress`.
    pub(super) fn detecting(config: &DecompressConfig) -> Self {
        Self::with(config.algorithm, config.max_length)
    }

    pub(super) fn process(
        &mut self,
        input: &Frames,
        out: &mut Frames,
        errors: &mut Vec<PreprocessError>,
    ) {
        let mut buf = std::mem::take(&mut self.buf);
        decode_each(&mut buf, (input, out, errors), |frame, buf| {
            // Autodetect: a frame with no known magic bytes passes unchanged.
            let Some(algorithm) = self.algorithm.or_else(|| Algorithm::detect(frame)) else {
                return Ok(false);
            };
            self.decompress(algorithm, frame, buf)
                .map(|()| true)
                .map_err(|e| (algorithm.name(), FrameReason::Decompress(e)))
        });
        self.buf = buf;
    }

    fn decompress(
        &mut self,
        algorithm: Algorithm,
        frame: &[u8],
        buf: &mut Vec<u8>,
    ) -> Result<(), DecompressError> {
        let max = self.max_length;
        match algorithm {
            Algorithm::Gzip => Ok(gzip::decompress(frame, buf, max)?),
            Algorithm::Xz => unxz(frame, buf, max),
            Algorithm::Zstd => {
                let decoder = self.zstd.get_or_insert_with(|| {
                    let mut decoder = FrameDecoder::new();
                    let window = u64::try_from(max).unwrap_or(u64::MAX).max(ZSTD_MIN_WINDOW);
                    decoder.set_max_window_size(window);
                    Box::new(decoder)
                });
                match catch_unwind(AssertUnwindSafe(|| unzstd(decoder, frame, buf, max))) {
                    Ok(result) => result,
                    Err(_) => {
                        // The decoder may be in any state: build a new one next time.
                        self.zstd = None;
                        Err(DecompressError::Panicked {
                            algorithm: algorithm.name(),
                        })
                    }
                }
            }
            Algorithm::Zlib => unzlib(frame, buf, max),
            Algorithm::Snappy | Algorithm::Lz4 | Algorithm::Br => {
                if frame.is_empty() {
                    return Err(DecompressError::Empty);
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
                catch_unwind(AssertUnwindSafe(run))
                    .map_err(|_| DecompressError::Panicked {
                        algorithm: algorithm.name(),
                    })?
                    .map_err(DecompressError::from)
            }
        }
    }
}

/// Why a frame did not decompress (the engine reports it, with the frame's size, on the
/// connector's error port).
#[derive(Debug, thiserror::Error)]
pub enum DecompressError {
    /// Too long, not the format, or what the decoding reader reported.
    #[error(transparent)]
    Bounded(#[from] BoundedError),
    /// An empty frame, for a format whose streams are never empty.
    #[error("empty input")]
    Empty,
    /// A pure-Rust decoder panicked (caught).
    #[error("the {algorithm} decoder failed on this input")]
    Panicked { algorithm: &'static str },
    /// The xz stream asks for a larger dictionary than allowed.
    #[error(
        "the xz stream needs more memory than the limit ({memlimit} bytes, max_length + 8 MiB)"
    )]
    XzMemory { memlimit: u64 },
    /// liblzma did not start.
    #[error("cannot start the xz decoder: {0}")]
    XzStart(xz2::stream::Error),
    /// Corrupt zstd data.
    #[error("corrupt zstd data: {0}")]
    Zstd(Box<dyn std::error::Error + Send + Sync>),
    /// A skippable zstd frame longer than the input.
    #[error("truncated skippable zstd frame")]
    ZstdSkippable,
    /// A zstd frame whose checksum does not match its data.
    #[error("zstd checksum mismatch")]
    ZstdChecksum,
    /// Bytes after the end of the zlib stream.
    #[error("{0} bytes after the end of the zlib stream")]
    ZlibTrailing(usize),
}

/// The snappy framing format's stream identifier chunk, which every stream starts with.
const SNAPPY_STREAM_ID: &[u8] = b"\xff\x06\x00\x00sNaPpY";

/// Decompresses one zlib stream (RFC 1950: header, deflate, Adler-32) into `out`; nothing may
/// follow it.
fn unzlib(input: &[u8], out: &mut Vec<u8>, max: usize) -> Result<(), DecompressError> {
    let mut reader = flate2::bufread::ZlibDecoder::new(input);
    read_bounded(&mut reader, out, max)?;
    match reader.get_ref().len() {
        0 => Ok(()),
        rest => Err(DecompressError::ZlibTrailing(rest)),
    }
}

/// A compressing postprocessor, with its encoders and output buffer kept between frames.
pub(super) struct Compressor {
    algorithm: Algorithm,
    level: u32,
    buf: Vec<u8>,
    zstd: Option<Box<ZstdEncoder>>,
}

type ZstdEncoder = FrameCompressor<Cursor<Vec<u8>>, Vec<u8>, MatchGeneratorDriver>;

impl fmt::Debug for Compressor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_settings(f, "Compressor", &self.algorithm, ("level", &self.level))
    }
}

impl Compressor {
    fn with(algorithm: Algorithm, level: Option<u32>) -> Result<Self, SettingError> {
        Ok(Self {
            algorithm,
            level: algorithm.level(level)?,
            buf: Vec::new(),
            zstd: None,
        })
    }

    /// `compress`.
    pub(super) fn configured(config: &CompressConfig) -> Result<Self, SettingError> {
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

    fn compress(&mut self, frame: &[u8]) -> Result<(), CompressError> {
        let io = |algorithm: Algorithm| move |source| CompressError::Io { algorithm, source };
        match self.algorithm {
            Algorithm::Gzip => {
                gzip::compress(self.level, frame, &mut self.buf).map_err(io(Algorithm::Gzip))
            }
            Algorithm::Xz => xz(self.level, frame, &mut self.buf),
            Algorithm::Zlib => {
                let mut encoder = flate2::write::ZlibEncoder::new(
                    &mut self.buf,
                    flate2::Compression::new(self.level),
                );
                encoder
                    .write_all(frame)
                    .and_then(|()| encoder.finish().map(drop))
                    .map_err(io(Algorithm::Zlib))
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
                    .map_err(io(Algorithm::Snappy))
            }
            Algorithm::Lz4 => {
                let mut encoder = lz4_flex::frame::FrameEncoder::new(&mut self.buf);
                encoder.write_all(frame).map_err(io(Algorithm::Lz4))?;
                encoder
                    .finish()
                    .map(drop)
                    .map_err(|e| io(Algorithm::Lz4)(e.into()))
            }
            Algorithm::Br => {
                // Quality `level`, a 4 MiB window (lgwin 22, brotli's default).
                let mut encoder =
                    brotli::CompressorWriter::new(&mut self.buf, 4096, self.level, 22);
                encoder
                    .write_all(frame)
                    .and_then(|()| encoder.flush())
                    .map_err(io(Algorithm::Br))
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
                        Err(CompressError::ZstdPanicked)
                    }
                }
            }
        }
    }
}

/// Why a frame did not compress (logged; the frame is dropped).
#[derive(Debug, thiserror::Error)]
pub(super) enum CompressError {
    /// The encoder failed writing to memory.
    #[error("{}: {source}", .algorithm.name())]
    Io {
        algorithm: Algorithm,
        source: io::Error,
    },
    /// liblzma refused the preset.
    #[error("xz preset {level}: {source}")]
    XzPreset {
        level: u32,
        source: xz2::stream::Error,
    },
    /// liblzma did not start.
    #[error("cannot start the xz encoder: {0}")]
    XzStart(xz2::stream::Error),
    /// The zstd encoder panicked (caught).
    #[error("the zstd encoder failed")]
    ZstdPanicked,
}

/// Decompresses one or more concatenated .xz streams into `out`; the decoder's memory is
/// limited to `max` + [`XZ_EXTRA_MEMORY`].
fn unxz(input: &[u8], out: &mut Vec<u8>, max: usize) -> Result<(), DecompressError> {
    let memlimit = u64::try_from(max)
        .unwrap_or(u64::MAX)
        .saturating_add(XZ_EXTRA_MEMORY);
    let stream = Stream::new_stream_decoder(memlimit, xz2::stream::CONCATENATED)
        .map_err(DecompressError::XzStart)?;
    let reader = xz2::bufread::XzDecoder::new_stream(input, stream);
    read_bounded(reader, out, max).map_err(|e| match e {
        BoundedError::Corrupt(io)
            if io
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<xz2::stream::Error>())
                .is_some_and(|e| matches!(e, xz2::stream::Error::MemLimit)) =>
        {
            DecompressError::XzMemory { memlimit }
        }
        other => other.into(),
    })
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
fn xz(level: u32, frame: &[u8], out: &mut Vec<u8>) -> Result<(), CompressError> {
    let mut options = LzmaOptions::new_preset(level)
        .map_err(|source| CompressError::XzPreset { level, source })?;
    let preset_dict = XZ_PRESET_DICT[level.min(9) as usize];
    let frame_dict = u32::try_from(frame.len().next_power_of_two()).unwrap_or(u32::MAX);
    // liblzma's smallest dictionary is 4 KiB.
    options.dict_size(frame_dict.clamp(4096, preset_dict));
    let mut filters = Filters::new();
    filters.lzma2(&options);
    let stream =
        Stream::new_stream_encoder(&filters, Check::Crc64).map_err(CompressError::XzStart)?;
    let mut encoder = xz2::write::XzEncoder::new_stream(out, stream);
    encoder
        .write_all(frame)
        .and_then(|()| encoder.finish().map(drop))
        .map_err(|source| CompressError::Io {
            algorithm: Algorithm::Xz,
            source,
        })
}

/// Decompresses one or more zstd frames (skippable frames are skipped) into `out`, checking
/// each frame's checksum when it has one.
fn unzstd(
    decoder: &mut FrameDecoder,
    input: &[u8],
    out: &mut Vec<u8>,
    max: usize,
) -> Result<(), DecompressError> {
    let mut rest = input;
    if rest.is_empty() {
        return Err(DecompressError::Empty);
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
                    .ok_or(DecompressError::ZstdSkippable)?;
                continue;
            }
            Err(e) => return Err(DecompressError::Zstd(e.into())),
        }
        loop {
            decoder
                .decode_blocks(&mut rest, BlockDecodingStrategy::UptoBytes(64 * 1024))
                .map_err(|e| DecompressError::Zstd(e.into()))?;
            if out.len().saturating_add(decoder.can_collect()) > max {
                return Err(BoundedError::TooLong { max }.into());
            }
            decoder
                .collect_to_writer(&mut *out)
                .map_err(|e| DecompressError::Zstd(e.into()))?;
            if decoder.is_finished() {
                break;
            }
        }
        if let (Some(stored), Some(computed)) = (
            decoder.get_checksum_from_data(),
            decoder.get_calculated_checksum(),
        ) && stored != computed
        {
            return Err(DecompressError::ZstdChecksum);
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
