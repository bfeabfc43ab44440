//! The `file` connector: reads a file as a stream of raw chunks, or writes frames to a file.
//!
//! Reading: the source reads the whole file in chunks of 64 KiB, one frame per chunk, and ends
//! (`Exhausted`) at the end of the file. Chunks are not split into lines: give the connector the
//! `separate` preprocessor for that. Writing: the sink writes every frame as it is (the
//! postprocessors add separators) and creates or truncates the file, or appends to it.
//!
//! A path ending in `.gz` or `.xz` is decompressed when read and compressed when written (see
//! `temblor-compress`). A compressed file being written is complete only once the sink is
//! dropped, when the engine shuts the connector down; appending to one adds a new gzip member or
//! xz stream, which reading goes on through.
//!
//! ## Config
//! - `path` (string, required): the file, relative to the engine's working directory.
//! - `mode` (string, default `"read"`): `"read"` (the connector is a source), `"write"` (a sink
//!   that truncates the file first) or `"append"` (a sink that appends to it). Both sink modes
//!   create the file if needed, but not its folder.
//!
//! ## Example
//! ```toml
//! [[connector]]
//! id = "in"
//! plugin = "file"
//! codec = "json"
//! preprocessors = ["separate"]
//! config = { path = "in.json.xz", mode = "read" }
//!
//! [[connector]]
//! id = "out"
//! plugin = "file"
//! codec = "json"
//! postprocessors = ["separate"]
//! config = { path = "out.json.gz", mode = "write" }
//! ```

use std::{
    fmt,
    io::{ErrorKind as IoErrorKind, Read, Write},
    path::PathBuf,
};

use temblor_shim::{Frames, PluginError, Pull, SourceBatch, Setup, Sink, Source, serde::Deserialize, tracing};

/// The size of the chunks read (one frame each).
pub const CHUNK: usize = 64 * 1024;

/// How many chunks one `pull` reads at most, so a batch stays at a few hundred KiB.
const CHUNKS_PER_PULL: usize = 4;

/// The connector's `config`.
#[derive(Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(crate = "temblor_shim::serde", deny_unknown_fields)]
pub struct Config {
    /// The file to read or write.
    pub path: PathBuf,
    /// Read, write or append.
    #[serde(default)]
    pub mode: Mode,
}

/// What the connector does with its file.
#[derive(Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
#[serde(crate = "temblor_shim::serde", rename_all = "lowercase")]
pub enum Mode {
    /// A source reading the file.
    #[default]
    Read,
    /// A sink writing the file from its start.
    Write,
    /// A sink appending to the file.
    Append,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Append => "append",
        })
    }
}

/// Reads a file, one 64 KiB chunk per frame.
pub struct FileSource {
    id: String,
    path: PathBuf,
    reader: Box<dyn Read + Send>,
    chunk: Vec<u8>,
    bytes: u64,
    done: bool,
}

impl FileSource {
    /// Opens the configured file for reading.
    ///
    /// # Errors
    /// A `Config` error for a bad config or a sink mode; an `Io` error naming the path when the
    /// file cannot be opened.
    pub fn new(setup: &Setup<'_>) -> Result<Self, PluginError> {
        let config: Config = setup.config()?;
        let id = setup.id;
        if config.mode != Mode::Read {
            return Err(PluginError::config(format_args!(
                "'{id}': the file connector is in {} mode, so it has no source \
                 (use mode = \"read\" to read {})",
                config.mode,
                config.path.display()
            )));
        }
        let reader = temblor_compress::open_read(&config.path).map_err(|e| {
            PluginError::io(
                format_args!("'{id}': cannot open {} for reading", config.path.display()),
                &e,
            )
        })?;
        tracing::debug!(id = %id, path = %config.path.display(), "file source opened");
        Ok(Self {
            id: id.to_owned(),
            path: config.path,
            reader,
            chunk: vec![0; CHUNK],
            bytes: 0,
            done: false,
        })
    }

    /// Fills `self.chunk` as far as it goes; returns the bytes read and whether the file ended.
    fn read_chunk(&mut self) -> Result<(usize, bool), PluginError> {
        let mut filled = 0;
        while filled < self.chunk.len() {
            match self.reader.read(&mut self.chunk[filled..]) {
                Ok(0) => return Ok((filled, true)),
                Ok(n) => filled += n,
                Err(e) if e.kind() == IoErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(PluginError::io(
                        format_args!("'{}': reading {}", self.id, self.path.display()),
                        &e,
                    ));
                }
            }
        }
        Ok((filled, false))
    }
}

impl Source for FileSource {
    fn pull(&mut self, out: &mut SourceBatch) -> Result<Pull, PluginError> {
        if self.done {
            return Ok(Pull::Exhausted);
        }
        for _ in 0..CHUNKS_PER_PULL {
            let (n, eof) = self.read_chunk()?;
            if n > 0 {
                out.push(&self.chunk[..n]);
                self.bytes += n as u64;
            }
            if eof {
                self.done = true;
                tracing::info!(
                    id = %self.id,
                    path = %self.path.display(),
                    bytes = self.bytes,
                    "file source reached the end of the file"
                );
                return Ok(Pull::Exhausted);
            }
        }
        Ok(Pull::Ready)
    }
}

/// Writes frames to a file, compressing by its extension; finishes the file when dropped.
pub struct FileSink {
    id: String,
    path: PathBuf,
    writer: Option<temblor_compress::Writer>,
}

impl FileSink {
    /// Creates, truncates or opens for appending the configured file.
    ///
    /// # Errors
    /// A `Config` error for a bad config or read mode; an `Io` error naming the path when the
    /// file cannot be opened.
    pub fn new(setup: &Setup<'_>) -> Result<Self, PluginError> {
        let config: Config = setup.config()?;
        let id = setup.id;
        let append = match config.mode {
            Mode::Read => {
                return Err(PluginError::config(format_args!(
                    "'{id}': the file connector is in read mode, so it has no sink \
                     (use mode = \"write\" or \"append\" to write {})",
                    config.path.display()
                )));
            }
            Mode::Write => false,
            Mode::Append => true,
        };
        let writer = temblor_compress::open_write(&config.path, append).map_err(|e| {
            PluginError::io(
                format_args!("'{id}': cannot open {} for writing", config.path.display()),
                &e,
            )
        })?;
        tracing::debug!(
            id = %id,
            path = %config.path.display(),
            mode = %config.mode,
            "file sink opened"
        );
        Ok(Self {
            id: id.to_owned(),
            path: config.path,
            writer: Some(writer),
        })
    }

    fn writer(&mut self) -> Result<&mut temblor_compress::Writer, PluginError> {
        // Only `Drop` takes the writer out.
        self.writer.as_mut().ok_or_else(|| {
            PluginError::new(
                temblor_shim::ErrorKind::Other,
                format_args!("'{}': {} is already closed", self.id, self.path.display()),
            )
        })
    }

    fn io_error(&self, what: &str, e: &std::io::Error) -> PluginError {
        PluginError::io(
            format_args!("'{}': {what} {}", self.id, self.path.display()),
            e,
        )
    }
}

impl Sink for FileSink {
    fn push(&mut self, frames: &Frames) -> Result<(), PluginError> {
        let writer = self.writer()?;
        let result = frames.iter().try_for_each(|frame| writer.write_all(frame));
        result.map_err(|e| self.io_error("writing", &e))
    }

    fn flush(&mut self) -> Result<(), PluginError> {
        let result = self.writer()?.flush();
        result.map_err(|e| self.io_error("flushing", &e))
    }
}

impl Drop for FileSink {
    fn drop(&mut self) {
        if let Some(writer) = self.writer.take()
            && let Err(e) = writer.finish()
        {
            tracing::error!(
                id = %self.id,
                path = %self.path.display(),
                error = %e,
                "file sink could not finish the file"
            );
        }
    }
}

temblor_shim::export_plugin! {
    name: "file",
    kind: Connector,
    source: FileSource::new,
    sink: FileSink::new,
}

#[cfg(test)]
mod tests {
    use super::*;
    use temblor_shim::{ErrorKind, Value};

    fn config(fields: &[(&str, &str)]) -> Value {
        Value::Object(fields.iter().map(|(k, v)| (*k, Value::from(*v))).collect())
    }

    fn temp_dir(test: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "temblor-connector-file-unit-{}-{test}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        dir
    }

    #[test]
    fn mode_defaults_to_read() {
        let c: Config = temblor_shim::from_value(&config(&[("path", "x")])).expect("config");
        assert_eq!(c.mode, Mode::Read);
        assert_eq!(c.path, PathBuf::from("x"));
        let c: Config = temblor_shim::from_value(&config(&[("path", "x"), ("mode", "append")]))
            .expect("config");
        assert_eq!(c.mode, Mode::Append);
        assert!(
            temblor_shim::from_value::<Config>(&config(&[("path", "x"), ("mode", "rw")])).is_err()
        );
    }

    #[test]
    fn source_refuses_sink_modes_and_sink_refuses_read() {
        for mode in ["write", "append"] {
            let cfg = config(&[("path", "x.json"), ("mode", mode)]);
            let setup = Setup {
                id: "src",
                config: &cfg,
            };
            let err = FileSource::new(&setup)
                .err()
                .expect("no source in a sink mode");
            assert_eq!(err.kind, ErrorKind::Config);
            assert!(err.message.contains("'src'"), "{err}");
            assert!(err.message.contains(&format!("in {mode} mode")), "{err}");
        }
        let cfg = config(&[("path", "x.json")]);
        let setup = Setup {
            id: "snk",
            config: &cfg,
        };
        let err = FileSink::new(&setup).err().expect("no sink in read mode");
        assert_eq!(err.kind, ErrorKind::Config);
        assert!(
            err.message.contains("'snk'") && err.message.contains("read mode"),
            "{err}"
        );
        assert!(
            !std::path::Path::new("x.json").exists(),
            "the refused sink created nothing"
        );
    }

    #[test]
    fn source_reads_whole_chunks_and_ends_with_the_last_one() {
        let dir = temp_dir("chunks");
        let path = dir.join("big.bin");
        // Five and a half chunks: two pulls of at most four chunks each.
        let data: Vec<u8> = (0..CHUNK * 11 / 2).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).expect("write");
        let cfg = config(&[("path", path.to_str().expect("utf-8 path"))]);
        let mut source = FileSource::new(&Setup {
            id: "t",
            config: &cfg,
        })
        .expect("source");
        let mut frames = SourceBatch::new();
        assert_eq!(source.pull(&mut frames).expect("pull"), Pull::Ready);
        assert_eq!(frames.len(), CHUNKS_PER_PULL);
        assert!(frames.iter().all(|f| f.len() == CHUNK));
        assert_eq!(source.pull(&mut frames).expect("pull"), Pull::Exhausted);
        let lens: Vec<usize> = frames.iter().map(<[u8]>::len).collect();
        assert_eq!(lens, [CHUNK, CHUNK, CHUNK, CHUNK, CHUNK, CHUNK / 2]);
        let joined: Vec<u8> = frames.iter().flatten().copied().collect();
        assert_eq!(joined, data);
        frames.clear();
        assert_eq!(source.pull(&mut frames).expect("pull"), Pull::Exhausted);
        assert!(frames.is_empty());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn sink_finishes_compressed_file_on_drop() {
        let dir = temp_dir("drop");
        let path = dir.join("out.txt.xz");
        let cfg = config(&[
            ("path", path.to_str().expect("utf-8 path")),
            ("mode", "write"),
        ]);
        let mut sink = FileSink::new(&Setup {
            id: "t",
            config: &cfg,
        })
        .expect("sink");
        let frames: Frames = [&b"a\n"[..], b"b\n"].into_iter().collect();
        sink.push(&frames).expect("push");
        drop(sink);
        let mut text = String::new();
        temblor_compress::open_read(&path)
            .expect("open")
            .read_to_string(&mut text)
            .expect("a complete xz stream");
        assert_eq!(text, "a\nb\n");
        let _ = std::fs::remove_dir_all(dir);
    }
}
