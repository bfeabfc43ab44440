//! Opens files for reading and writing, transparently (de)compressing them by their extension.
//!
//! Connectors that read or write files (file, bench) go through here, so `data.json.xz` and
//! `out.json.gz` work wherever `data.json` does:
//! - a name ending in `.gz` is gzip (flate2, pure Rust backend);
//! - a name ending in `.xz` is xz (liblzma through xz2);
//! - anything else is read and written as it is.
//!
//! The extension is matched case-insensitively. Reading accepts concatenated streams (several gzip
//! members, several xz streams), which is what appending to a compressed file produces: each
//! [`open_write`] in append mode starts a new member or stream at the end of the file.
//!
//! ```
//! use std::io::{Read, Write};
//!
//! let path = std::env::temp_dir().join(format!("temblor-compress-doc-{}.gz", std::process::id()));
//! let mut writer = temblor_compress::open_write(&path, false)?;
//! writer.write_all(b"hello\n")?;
//! writer.finish()?;
//!
//! let mut text = String::new();
//! temblor_compress::open_read(&path)?.read_to_string(&mut text)?;
//! assert_eq!(text, "hello\n");
//! # std::fs::remove_file(&path)?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Errors are plain [`io::Error`]s that do not name the file: callers add the path they opened.
//!
//! [`gzip`] and [`read_bounded`] also serve byte strings in memory (the `gzip` processors of
//! `temblor-processors`): the same flate2 reader and writer, with a bound on what one input may
//! decompress to.

use std::{
    fs::{File, OpenOptions},
    io::{self, BufReader, BufWriter, Read, Write},
    path::Path,
};

pub mod gzip;

/// The buffer size for reading compressed input and for writing anything.
const BUFFER: usize = 64 * 1024;

/// The xz preset (the `xz` tool's default).
const XZ_LEVEL: u32 = 6;

/// How a file is compressed, as told by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Not compressed.
    None,
    /// gzip (`.gz`).
    Gzip,
    /// xz (`.xz`).
    Xz,
}

impl Compression {
    /// The compression a path's extension asks for: `.gz` → gzip, `.xz` → xz, else none.
    #[must_use]
    pub fn from_path(path: &Path) -> Self {
        match path.extension() {
            Some(ext) if ext.eq_ignore_ascii_case("gz") => Self::Gzip,
            Some(ext) if ext.eq_ignore_ascii_case("xz") => Self::Xz,
            _ => Self::None,
        }
    }
}

/// Opens `path` for reading: as it is, or decompressed when its name ends in `.gz` or `.xz`.
///
/// # Errors
/// When the file cannot be opened. Corrupt compressed data shows up later, as an error from
/// `read`.
pub fn open_read(path: &Path) -> io::Result<Box<dyn Read + Send>> {
    let file = File::open(path)?;
    Ok(match Compression::from_path(path) {
        Compression::None => Box::new(file),
        Compression::Gzip => Box::new(gzip::reader(BufReader::with_capacity(BUFFER, file))),
        Compression::Xz => Box::new(xz2::bufread::XzDecoder::new_multi_decoder(
            BufReader::with_capacity(BUFFER, file),
        )),
    })
}

/// Opens `path` for writing, compressing when its name ends in `.gz` or `.xz`.
///
/// The file is created if needed; it is truncated, or appended to when `append` is set (a
/// compressed file then gets a new gzip member or xz stream, which [`open_read`] reads on from
/// the previous one). Call [`Writer::finish`] when done: dropping a writer finishes a compressed
/// stream too, but cannot report an error.
///
/// # Errors
/// When the file cannot be opened or created.
pub fn open_write(path: &Path, append: bool) -> io::Result<Writer> {
    let file = OpenOptions::new()
        .create(true)
        .write(true)
        .append(append)
        .truncate(!append)
        .open(path)?;
    let file = BufWriter::with_capacity(BUFFER, file);
    let inner = match Compression::from_path(path) {
        Compression::None => Inner::Plain(file),
        Compression::Gzip => Inner::Gzip(gzip::writer(file, gzip::DEFAULT_LEVEL)),
        Compression::Xz => Inner::Xz(xz2::write::XzEncoder::new(file, XZ_LEVEL)),
    };
    Ok(Writer { inner })
}

/// A file opened by [`open_write`]: buffered, and compressed as its name says.
pub struct Writer {
    inner: Inner,
}

enum Inner {
    Plain(BufWriter<File>),
    Gzip(flate2::write::GzEncoder<BufWriter<File>>),
    Xz(xz2::write::XzEncoder<BufWriter<File>>),
}

impl Writer {
    /// How this writer compresses.
    #[must_use]
    pub fn compression(&self) -> Compression {
        match self.inner {
            Inner::Plain(_) => Compression::None,
            Inner::Gzip(_) => Compression::Gzip,
            Inner::Xz(_) => Compression::Xz,
        }
    }

    /// Ends the compressed stream (writing its trailer) and flushes everything to the file.
    /// A plain file is just flushed.
    ///
    /// # Errors
    /// When writing fails.
    pub fn finish(self) -> io::Result<()> {
        let mut file = match self.inner {
            Inner::Plain(file) => file,
            Inner::Gzip(encoder) => encoder.finish()?,
            Inner::Xz(encoder) => encoder.finish()?,
        };
        file.flush()
    }
}

impl Write for Writer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.inner {
            Inner::Plain(w) => w.write(buf),
            Inner::Gzip(w) => w.write(buf),
            Inner::Xz(w) => w.write(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match &mut self.inner {
            Inner::Plain(w) => w.write_all(buf),
            Inner::Gzip(w) => w.write_all(buf),
            Inner::Xz(w) => w.write_all(buf),
        }
    }

    /// Flushes to the file. For a compressed stream this emits what the compressor holds
    /// (a sync flush): the data so far can be decompressed, at some cost in compression ratio.
    fn flush(&mut self) -> io::Result<()> {
        match &mut self.inner {
            Inner::Plain(w) => w.flush(),
            Inner::Gzip(w) => w.flush(),
            Inner::Xz(w) => w.flush(),
        }
    }
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("compression", &self.compression())
            .finish_non_exhaustive()
    }
}

/// Why [`read_bounded`] (or [`gzip::decompress`]) stopped.
#[derive(Debug, thiserror::Error)]
pub enum BoundedError {
    /// The input does not start with the format's magic bytes.
    #[error("not {format} data (no {magic} magic bytes)")]
    NotFormat {
        /// The format expected.
        format: &'static str,
        /// Its magic bytes, in hex.
        magic: &'static str,
    },
    /// More than the bound: the rest is never read.
    #[error("the decompressed data is longer than max_length ({max} bytes)")]
    TooLong {
        /// The bound.
        max: usize,
    },
    /// The decoder failed: corrupt or truncated data, a checksum mismatch.
    #[error("corrupt data: {0}")]
    Corrupt(#[source] io::Error),
}

/// The smallest step `read_bounded` grows its output by.
const MIN_GROWTH: usize = 16 * 1024;

/// Appends everything `reader` produces to `out`, reading no more than `max + 1` bytes
/// (`Read::take`) and never growing `out` past `max + 1` bytes: the bound on a decompressing
/// reader, whatever its input claims. `out` is expected empty; the bound counts what it held.
///
/// # Errors
/// [`BoundedError::TooLong`] when there is more than `max` bytes, [`BoundedError::Corrupt`]
/// when `reader` fails.
pub fn read_bounded(reader: impl Read, out: &mut Vec<u8>, max: usize) -> Result<(), BoundedError> {
    /// The most read into at once (and so zeroed first).
    const WINDOW: usize = 64 * 1024;
    let limit = max.saturating_add(1);
    let mut reader = reader.take(u64::try_from(limit).unwrap_or(u64::MAX));
    loop {
        let len = out.len();
        if len >= limit {
            break;
        }
        if out.capacity() == len {
            out.reserve_exact(len.max(MIN_GROWTH).min(limit - len));
        }
        let window = (out.capacity() - len).min(WINDOW);
        out.resize(len + window, 0);
        match reader.read(&mut out[len..]) {
            Ok(0) => {
                out.truncate(len);
                break;
            }
            Ok(n) => out.truncate(len + n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => out.truncate(len),
            Err(e) => {
                out.truncate(len);
                return Err(BoundedError::Corrupt(e));
            }
        }
    }
    if out.len() > max {
        return Err(BoundedError::TooLong { max });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// A fresh folder for one test, removed when dropped.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(test: &str) -> Self {
            let dir = std::env::temp_dir()
                .join(format!("temblor-compress-{}-{test}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("create temp dir");
            Self(dir)
        }
        fn path(&self, name: &str) -> PathBuf {
            self.0.join(name)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// Some lines, long enough to span several compressor and reader buffers.
    fn sample() -> Vec<u8> {
        (0..20_000)
            .flat_map(|i| format!("{{\"line\":{i},\"text\":\"some text\"}}\n").into_bytes())
            .collect()
    }

    fn write_file(path: &Path, append: bool, data: &[u8]) {
        let mut w = open_write(path, append).expect("open for writing");
        w.write_all(data).expect("write");
        w.finish().expect("finish");
    }

    fn read_file(path: &Path) -> Vec<u8> {
        let mut out = Vec::new();
        open_read(path)
            .expect("open for reading")
            .read_to_end(&mut out)
            .expect("read");
        out
    }

    #[test]
    fn compression_follows_the_extension() {
        assert_eq!(
            Compression::from_path(Path::new("a.json.gz")),
            Compression::Gzip
        );
        assert_eq!(
            Compression::from_path(Path::new("dir/a.XZ")),
            Compression::Xz
        );
        assert_eq!(
            Compression::from_path(Path::new("a.json")),
            Compression::None
        );
        assert_eq!(Compression::from_path(Path::new("gz")), Compression::None);
        assert_eq!(
            Compression::from_path(Path::new("a.tgz")),
            Compression::None
        );
    }

    fn round_trip(name: &str, magic: &[u8]) {
        let dir = TempDir::new(&format!("round-trip-{name}"));
        let path = dir.path(name);
        let data = sample();
        let mut w = open_write(&path, false).expect("open");
        assert_eq!(w.compression(), Compression::from_path(&path));
        // In several writes, to cross buffer boundaries.
        for piece in data.chunks(10_000) {
            w.write_all(piece).expect("write");
        }
        w.finish().expect("finish");
        let raw = std::fs::read(&path).expect("raw bytes");
        assert!(
            raw.starts_with(magic),
            "{name} starts with {:02x?}",
            &raw[..8]
        );
        assert_eq!(read_file(&path), data);
    }

    #[test]
    fn plain_round_trip() {
        round_trip("data.json", b"{\"line\":0");
    }

    #[test]
    fn gzip_round_trip() {
        round_trip("data.json.gz", &[0x1f, 0x8b]);
        let dir = TempDir::new("gzip-smaller");
        let path = dir.path("data.gz");
        write_file(&path, false, &sample());
        let size = std::fs::metadata(&path).expect("metadata").len();
        assert!(
            size < sample().len() as u64 / 4,
            "compressed to {size} bytes"
        );
    }

    #[test]
    fn xz_round_trip() {
        round_trip("data.json.xz", &[0xfd, b'7', b'z', b'X', b'Z', 0]);
    }

    /// Runs `check` on a path for a plain, a gzip and an xz file, each in a new directory.
    fn each_kind(test: &str, check: impl Fn(&str, &Path)) {
        for name in ["f.txt", "f.gz", "f.xz"] {
            let dir = TempDir::new(&format!("{test}-{name}"));
            check(name, &dir.path(name));
        }
    }

    #[test]
    fn empty_files_round_trip() {
        each_kind("empty", |name, path| {
            write_file(path, false, b"");
            assert_eq!(read_file(path), b"", "{name}");
        });
    }

    #[test]
    fn append_adds_to_every_kind_of_file() {
        each_kind("append", |name, path| {
            write_file(path, false, b"one\n");
            write_file(path, true, b"two\n");
            write_file(path, true, b"three\n");
            assert_eq!(read_file(path), b"one\ntwo\nthree\n", "{name}");
            // Without append, the file starts over.
            write_file(path, false, b"four\n");
            assert_eq!(read_file(path), b"four\n", "{name}");
        });
    }

    /// A new file `name` in a new directory, open for writing, `data` written to it.
    fn writing(test: &str, name: &str, data: &[u8]) -> (TempDir, PathBuf, Writer) {
        let dir = TempDir::new(test);
        let path = dir.path(name);
        let mut w = open_write(&path, false).expect("open");
        w.write_all(data).expect("write");
        (dir, path, w)
    }

    #[test]
    fn flush_makes_compressed_data_readable_before_finish() {
        let (_dir, path, mut w) = writing("flush", "f.gz", b"early\n");
        w.flush().expect("flush");
        // No trailer yet: read what is there without expecting a clean end.
        let raw = std::fs::read(&path).expect("raw");
        let mut out = Vec::new();
        let _ = flate2::read::GzDecoder::new(raw.as_slice()).read_to_end(&mut out);
        assert_eq!(out, b"early\n");
        w.finish().expect("finish");
        assert_eq!(read_file(&path), b"early\n");
    }

    #[test]
    fn dropping_a_writer_still_ends_the_stream() {
        let (_dir, path, w) = writing("drop", "d.xz", b"dropped\n");
        drop(w);
        assert_eq!(read_file(&path), b"dropped\n");
    }

    #[test]
    fn missing_file_is_not_found() {
        let dir = TempDir::new("missing");
        for name in ["nope.json", "nope.json.gz", "nope.json.xz"] {
            let err = open_read(&dir.path(name)).err().expect("missing file");
            assert_eq!(err.kind(), io::ErrorKind::NotFound, "{name}");
        }
        let err = open_write(&dir.path("no/such/dir.txt"), false).expect_err("no parent folder");
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn corrupt_compressed_data_fails_to_read() {
        let dir = TempDir::new("corrupt");
        let path = dir.path("bad.xz");
        std::fs::write(&path, b"this is not xz").expect("write");
        let mut out = Vec::new();
        let result = open_read(&path).expect("open").read_to_end(&mut out);
        assert!(result.is_err(), "read {out:?}");
    }
}
