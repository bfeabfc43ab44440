//! gzip (RFC 1952) on flate2's gz types, for files ([`crate::open_read`], [`crate::open_write`])
//! and for byte strings in memory (the `gzip` processors): one reader and one writer setup for
//! both.
//!
//! Reading accepts one member or several concatenated, and checks each member's CRC32 and
//! length (flate2 does). Writing produces one member with no file name and time 0, as
//! `gzip -n` does.

use std::io::{self, BufRead, Write};

use flate2::{bufread::MultiGzDecoder, write::GzEncoder};

use crate::{BoundedError, read_bounded};

/// The default level (flate2's and the `gzip` tool's: the usual speed/size trade-off).
pub const DEFAULT_LEVEL: u32 = 6;

/// The gzip magic bytes every member starts with.
pub const MAGIC: [u8; 2] = [0x1f, 0x8b];

/// A reader of every gzip member in `input`, one after the other.
pub fn reader<R: BufRead>(input: R) -> MultiGzDecoder<R> {
    MultiGzDecoder::new(input)
}

/// A writer that compresses into one gzip member at `level` (0 to 9) on `output`; `finish` it
/// to write the trailer.
pub fn writer<W: Write>(output: W, level: u32) -> GzEncoder<W> {
    GzEncoder::new(output, flate2::Compression::new(level))
}

/// Decompresses `input`, one or more gzip members, appending to `out`, which never holds more
/// than `max` bytes (nor is grown past `max + 1`): a decompression bomb stops at the bound.
///
/// # Errors
/// Not gzip, corrupt or truncated data, a CRC32 or length mismatch, anything after the last
/// member that is not a member, or more than `max` bytes.
pub fn decompress(input: &[u8], out: &mut Vec<u8>, max: usize) -> Result<(), BoundedError> {
    if !input.starts_with(&MAGIC) {
        return Err(BoundedError::NotFormat {
            format: "gzip",
            magic: "1f 8b",
        });
    }
    read_bounded(reader(input), out, max)
}

/// Compresses `input` into one gzip member at `level` (0 to 9), appended to `out`.
///
/// # Errors
/// Only if the deflate stream fails, which writing to memory does not.
pub fn compress(level: u32, input: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
    let mut encoder = writer(out, level);
    encoder.write_all(input)?;
    encoder.finish().map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `printf hello | gzip -n` (gzip 1.12): magic `1f 8b`, CM 8 (deflate), FLG 0, MTIME 0,
    /// XFL 0, OS 3 (Unix); the deflate data; CRC32 `3610a686` and ISIZE 5, little-endian
    /// (RFC 1952 section 2.3).
    const HELLO: &str = "1f8b0800000000000003cb48cdc9c9070086a6103605000000";

    /// `printf ' world' | gzip -n -9`: XFL 2 (slowest level).
    const WORLD: &str = "1f8b08000000000002035328cf2fca490100cb423b4a06000000";

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    fn gunzip(input: &[u8], max: usize) -> Result<Vec<u8>, BoundedError> {
        let mut out = Vec::new();
        decompress(input, &mut out, max).map(|()| out)
    }

    #[test]
    fn reads_what_gzip_wrote() {
        assert_eq!(gunzip(&hex(HELLO), 100).unwrap(), b"hello");
    }

    #[test]
    fn reads_every_member() {
        let two = [hex(HELLO), hex(WORLD)].concat();
        assert_eq!(gunzip(&two, 100).unwrap(), b"hello world");
        // The bound counts all members together.
        let err = gunzip(&two, 10).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the decompressed data is longer than max_length (10 bytes)"
        );
    }

    #[test]
    fn writes_what_gzip_writes_but_the_os() {
        let mut out = Vec::new();
        compress(DEFAULT_LEVEL, b"hello", &mut out).unwrap();
        let mut expected = hex(HELLO);
        // flate2 says "unknown" (255) where gzip says Unix (3).
        expected[9] = 255;
        assert_eq!(out, expected);
    }

    #[test]
    fn exactly_max_is_allowed_one_more_is_not() {
        let mut wire = Vec::new();
        compress(1, &[0; 1000], &mut wire).unwrap();
        assert_eq!(gunzip(&wire, 1000).unwrap().len(), 1000);
        let mut out = Vec::new();
        let err = decompress(&wire, &mut out, 999).unwrap_err();
        assert!(matches!(err, BoundedError::TooLong { max: 999 }), "{err}");
        assert!(out.capacity() <= 1000, "grown to {}", out.capacity());
    }

    #[test]
    fn damage_is_an_error() {
        let good = hex(HELLO);
        let n = good.len();
        let mut bad_crc = good.clone();
        bad_crc[n - 8] ^= 1;
        let mut bad_len = good.clone();
        bad_len[n - 4] ^= 1;
        for (what, input) in [
            ("crc", bad_crc),
            ("length", bad_len),
            ("truncated", good[..n - 3].to_vec()),
            ("trailing garbage", [good.as_slice(), b"garbage"].concat()),
            ("not gzip", b"hello".to_vec()),
            ("empty", Vec::new()),
        ] {
            let err = gunzip(&input, 100).expect_err(what);
            assert!(!err.to_string().is_empty(), "{what}");
        }
        assert_eq!(
            gunzip(b"hello", 100).unwrap_err().to_string(),
            "not gzip data (no 1f 8b magic bytes)"
        );
    }
}
