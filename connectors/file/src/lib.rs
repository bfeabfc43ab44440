//! The `file` connector: reads a file as a stream of raw chunks, or writes frames to a file.
//!
//! Reading: the source reads the whole file in chunks of 64 KiB (up to four per `pull`), one
//! frame per chunk, and ends (`Exhausted`) at the end of the file. The file is one stream (id
//! 0), started with its path as metadata and ended at the end of the file. Without a
//! checkpoint, chunks are not split into lines: give the connector the `separate`
//! preprocessor for that. Writing: the sink writes every frame as it is (the postprocessors
//! add separators) and creates or truncates the file, or appends to it.
//!
//! A path ending in `.gz` or `.xz` is decompressed when read and compressed when written (see
//! `temblor-compress`). A compressed file being written is complete only once the sink is
//! dropped, when the engine shuts the connector down; appending to one adds a new gzip member or
//! xz stream, which reading goes on through.
//!
//! ## Checkpoints
//! With `checkpoint = "PATH"` the source takes acknowledgements (see docs/delivery.md) and
//! stores in that file the byte offset up to which every line it read was delivered (for a
//! `.gz` or `.xz` file: the offset in the decompressed data). A restart, a crash or a hot
//! reload resumes after the last delivered line: a plain file is opened there (seek); a
//! compressed one is decompressed from its start and that many bytes are skipped (which takes
//! as long as reading them). The file holds the offset in decimal, with a newline; it is
//! replaced atomically (a temporary file beside it, `<checkpoint>.tmp`, written, synced and
//! renamed over it), at most once per acknowledgement.
//!
//! - **Lines.** A checkpointed file is read as newline-separated lines: every chunk handed
//!   over ends right after a `\n` (a partial last line is kept for the next chunk; a line
//!   longer than a chunk makes a longer chunk), and at the end of the file the rest is handed
//!   over as it is. Give the connector `preprocessors = ["separate"]` with its default
//!   separator (`\n`), so that an offset after a delivered chunk is a line boundary.
//! - **Duplicates.** At most `max_in_flight` pulls (default 1) are handed out and not yet
//!   acknowledged; while that many are outstanding, `pull` returns `Idle` at once without
//!   reading. After a crash, what is read again is what was handed out but not yet
//!   acknowledged: at most `max_in_flight` pulls, four chunks (256 KiB) each. The trade-off:
//!   with 1, the source waits for each batch to be written and flushed by every sink before it
//!   reads the next one, so throughput is one pull per round trip through the engine; a larger
//!   `max_in_flight` overlaps reading with delivery and repeats more after a crash.
//! - **Acknowledgements** may come out of order: the checkpoint moves to the end of the longest
//!   run of acknowledged pulls from where it stands, never past one still outstanding.
//! - **Failures.** When the engine reports a pull as failed (a sink gave up on it), the source
//!   logs it and the checkpoint stops before it for the rest of this run: what failed is read
//!   again on the next start only, not re-sent in this run (and so is everything read after
//!   it, delivered or not).
//! - **At the end of the file** the source is exhausted as without a checkpoint; the engine
//!   waits for the outstanding acknowledgements before it drops the source, so after a clean
//!   finish the checkpoint holds the file's size, and the next start hands over nothing.
//! - A checkpoint file that does not exist means "from the start". One that cannot be read or
//!   does not hold an offset is a config error naming it. An offset beyond the end of the file
//!   (the file was replaced or truncated) starts from 0, with a warning.
//!
//! ## Config
//! - `path` (string, required): the file, relative to the engine's working directory.
//! - `mode` (string, default `"read"`): `"read"` (the connector is a source), `"write"` (a sink
//!   that truncates the file first) or `"append"` (a sink that appends to it). Both sink modes
//!   create the file if needed, but not its folder.
//! - `checkpoint` (string, default none; read mode only): the file holding the offset up to
//!   which the input was delivered (see Checkpoints); its folder must exist.
//! - `max_in_flight` (integer ≥ 1, default 1; only with `checkpoint`): how many pulls may be
//!   handed out and not yet acknowledged.
//!
//! ## Metadata
//! Each event the source's file produces carries:
//! - `meta.path`: the path as configured;
//! - `meta.offset`: the byte offset (in the decompressed data) where the event's line began,
//!   set by the engine from the stream's start offset, when the preprocessors are none or
//!   begin with `separate`;
//! - `meta.connector`: the connector's id, and `meta.stream`: 0 (set by the engine).
//!
//! ## Example
//! ```toml
//! [[connector]]
//! id = "in"
//! plugin = "file"
//! codec = "json"
//! preprocessors = ["separate"]
//! config = { path = "in.json.xz", mode = "read", checkpoint = "in.checkpoint" }
//!
//! [[connector]]
//! id = "out"
//! plugin = "file"
//! codec = "json"
//! postprocessors = ["separate"]
//! config = { path = "out.json", mode = "append" }
//! ```

use std::{
    collections::VecDeque,
    ffi::OsString,
    fmt,
    fs::File,
    io::{self, ErrorKind as IoErrorKind, Read, Seek, SeekFrom, Write},
    path::{Path, PathBuf},
};

use temblor_compress::Compression;
use temblor_shim::{
    Frames, Object, PluginError, Pull, Setup, Sink, Source, SourceBatch, Value, serde::Deserialize,
    tracing,
};

/// The size of the chunks read (one frame each).
pub const CHUNK: usize = 64 * 1024;

/// How many chunks one `pull` reads at most, so a batch stays at a few hundred KiB.
pub const CHUNKS_PER_PULL: usize = 4;

/// The stream the file is.
const STREAM: u64 = 0;

/// The connector's `config`.
#[derive(Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(crate = "temblor_shim::serde", deny_unknown_fields)]
pub struct Config {
    /// The file to read or write.
    pub path: PathBuf,
    /// Read, write or append.
    #[serde(default)]
    pub mode: Mode,
    /// Where the source keeps the offset up to which its input was delivered.
    #[serde(default)]
    pub checkpoint: Option<PathBuf>,
    /// How many pulls may be outstanding (handed out, not yet acknowledged); default 1.
    #[serde(default)]
    pub max_in_flight: Option<u64>,
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

/// The offset stored in a checkpoint file, if there is one.
///
/// # Errors
/// A `Config` error naming the file when it exists but cannot be read or holds no offset.
fn load_checkpoint(file: &Path) -> Result<Option<u64>, PluginError> {
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(e) if e.kind() == IoErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(PluginError::config(format_args!(
                "cannot read the checkpoint file {} (`checkpoint`): {e}",
                file.display()
            )));
        }
    };
    text.trim().parse().map(Some).map_err(|_| {
        PluginError::config(format_args!(
            "the checkpoint file {} (`checkpoint`) does not hold a byte offset: {:?}",
            file.display(),
            text.chars().take(40).collect::<String>()
        ))
    })
}

/// Replaces the checkpoint file with `offset`, atomically: a temporary file beside it is
/// written, synced and renamed over it (and the folder synced, so the rename lasts too).
fn store_checkpoint(file: &Path, offset: u64) -> io::Result<()> {
    let mut tmp = OsString::from(file.as_os_str());
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut f = File::create(&tmp)?;
    f.write_all(format!("{offset}\n").as_bytes())?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, file)?;
    let folder = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    // Best effort: not every platform can open a folder to sync it.
    if let Ok(dir) = File::open(folder) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// What became of a pull that was handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Pending,
    Acked,
    Failed,
}

/// A pull handed out under `token`, whose bytes end at `end`.
#[derive(Debug, Clone, Copy)]
struct InFlight {
    token: u64,
    end: u64,
    outcome: Outcome,
}

/// The source's side of acknowledgements: which pulls are outstanding, and the offset up to
/// which everything was delivered.
#[derive(Debug)]
struct Checkpoint {
    file: PathBuf,
    max_in_flight: usize,
    /// In the order handed out; the front is the oldest not yet folded into `committed`.
    in_flight: VecDeque<InFlight>,
    /// How many of `in_flight` are still `Pending`.
    pending: usize,
    /// Every byte before this was delivered.
    committed: u64,
    /// The offset the checkpoint file stands for (a missing file: 0; `None`: not known, after
    /// a failed write).
    written: Option<u64>,
    /// A pull failed: `committed` stays where it is for the rest of this run.
    frozen: bool,
    /// The engine handed out a batch without a token (warned once).
    warned_untracked: bool,
}

impl Checkpoint {
    fn new(file: PathBuf, max_in_flight: usize, committed: u64, written: Option<u64>) -> Self {
        Self {
            file,
            max_in_flight,
            in_flight: VecDeque::new(),
            pending: 0,
            committed,
            written,
            frozen: false,
            warned_untracked: false,
        }
    }

    /// Whether as many pulls are outstanding as may be.
    fn full(&self) -> bool {
        self.pending >= self.max_in_flight
    }

    fn handed_out(&mut self, token: u64, end: u64) {
        self.in_flight.push_back(InFlight {
            token,
            end,
            outcome: Outcome::Pending,
        });
        self.pending += 1;
    }

    /// Records the outcome of `token`; false when it is not an outstanding one.
    fn resolve(&mut self, token: u64, outcome: Outcome) -> bool {
        match self
            .in_flight
            .iter_mut()
            .find(|f| f.token == token && f.outcome == Outcome::Pending)
        {
            Some(f) => {
                f.outcome = outcome;
                self.pending -= 1;
                true
            }
            None => false,
        }
    }

    /// Folds the resolved pulls at the front into `committed` (or, after a failure, only
    /// forgets them); true when `committed` moved.
    fn advance(&mut self) -> bool {
        let before = self.committed;
        while let Some(front) = self.in_flight.front() {
            match front.outcome {
                Outcome::Pending => break,
                Outcome::Acked if !self.frozen => self.committed = front.end,
                Outcome::Acked => {}
                Outcome::Failed => self.frozen = true,
            }
            self.in_flight.pop_front();
        }
        self.committed != before
    }

    /// Writes `committed` to the checkpoint file unless it holds it already.
    fn persist(&mut self) -> io::Result<()> {
        if self.written == Some(self.committed) {
            return Ok(());
        }
        self.written = None;
        store_checkpoint(&self.file, self.committed)?;
        self.written = Some(self.committed);
        Ok(())
    }
}

/// Reads a file: 64 KiB chunks, or with a checkpoint chunks that end after a newline.
pub struct FileSource {
    path: PathBuf,
    reader: Box<dyn Read + Send>,
    chunk: Vec<u8>,
    /// With a checkpoint: the bytes at the start of `chunk` read but not handed over yet (a
    /// partial line).
    held: usize,
    /// The offset reading started at.
    start: u64,
    /// The offset after the last byte handed over.
    offset: u64,
    /// Whether the stream was started.
    started: bool,
    done: bool,
    checkpoint: Option<Checkpoint>,
}

impl FileSource {
    /// Opens the configured file for reading, where its checkpoint says.
    ///
    /// # Errors
    /// A `Config` error for a bad config, a sink mode or a checkpoint file that cannot be read;
    /// an `Io` error naming the path when the file cannot be opened or skipped to the
    /// checkpoint.
    pub fn new(setup: &Setup<'_>) -> Result<Self, PluginError> {
        let config: Config = setup.config()?;
        if config.mode != Mode::Read {
            return Err(PluginError::config(format_args!(
                "the file connector is in {} mode, so it has no source \
                 (use mode = \"read\" to read {})",
                config.mode,
                config.path.display()
            )));
        }
        let max_in_flight = match (&config.checkpoint, config.max_in_flight) {
            (None, Some(_)) => {
                return Err(PluginError::config(format_args!(
                    "`max_in_flight` is only for a source with a `checkpoint`"
                )));
            }
            (_, Some(0)) => {
                return Err(PluginError::config(format_args!(
                    "`max_in_flight` must be at least 1"
                )));
            }
            (_, Some(n)) => usize::try_from(n).unwrap_or(usize::MAX),
            (_, None) => 1,
        };
        let stored = match &config.checkpoint {
            Some(file) => load_checkpoint(file)?,
            None => None,
        };
        let (reader, start) = open_at(&config.path, stored.unwrap_or(0))?;
        let checkpoint = config
            .checkpoint
            .map(|file| Checkpoint::new(file, max_in_flight, start, Some(stored.unwrap_or(0))));
        tracing::debug!(
            path = %config.path.display(),
            offset = start,
            checkpoint = checkpoint.is_some(),
            "file source opened"
        );
        Ok(Self {
            path: config.path,
            reader,
            chunk: vec![0; CHUNK],
            held: 0,
            start,
            offset: start,
            started: false,
            done: false,
            checkpoint,
        })
    }

    fn read_error(&self, e: &io::Error) -> PluginError {
        PluginError::io(format_args!("reading {}", self.path.display()), e)
    }

    /// Fills `self.chunk[from..]` as far as it goes; returns the bytes read and whether the
    /// file ended.
    fn fill(&mut self, from: usize) -> Result<(usize, bool), PluginError> {
        let mut filled = from;
        while filled < self.chunk.len() {
            match self.reader.read(&mut self.chunk[filled..]) {
                Ok(0) => return Ok((filled - from, true)),
                Ok(n) => filled += n,
                Err(e) if e.kind() == IoErrorKind::Interrupted => {}
                Err(e) => return Err(self.read_error(&e)),
            }
        }
        Ok((filled - from, false))
    }

    /// Reads the next chunk that ends after a newline (or at the end of the file): returns
    /// the length to hand over from the start of `self.chunk`, the bytes in it in all, and
    /// whether the file ended.
    fn read_lines(&mut self) -> Result<(usize, usize, bool), PluginError> {
        loop {
            let (n, eof) = self.fill(self.held)?;
            let len = self.held + n;
            if eof {
                return Ok((len, len, true));
            }
            if let Some(last) = self.chunk[..len].iter().rposition(|&b| b == b'\n') {
                return Ok((last + 1, len, false));
            }
            // A line longer than the chunk: a longer chunk.
            self.held = len;
            self.chunk.resize(self.chunk.len() * 2, 0);
        }
    }

    /// Reads up to `CHUNKS_PER_PULL` chunks into `out`; ends the stream at the end of the file.
    fn read_into(&mut self, out: &mut SourceBatch) -> Result<(), PluginError> {
        let lines = self.checkpoint.is_some();
        for _ in 0..CHUNKS_PER_PULL {
            let (n, eof) = if lines {
                let (cut, len, eof) = self.read_lines()?;
                if cut > 0 {
                    out.push_stream(STREAM, &self.chunk[..cut]);
                }
                self.chunk.copy_within(cut..len, 0);
                self.held = len - cut;
                if self.chunk.len() > CHUNK && self.held < CHUNK {
                    // Back to the usual size after a long line.
                    self.chunk.truncate(CHUNK);
                }
                (cut, eof)
            } else {
                let (n, eof) = self.fill(0)?;
                if n > 0 {
                    out.push_stream(STREAM, &self.chunk[..n]);
                }
                (n, eof)
            };
            self.offset += n as u64;
            if eof {
                self.done = true;
                out.end_stream(STREAM);
                tracing::info!(
                    path = %self.path.display(),
                    bytes = self.offset - self.start,
                    "file source reached the end of the file"
                );
                break;
            }
        }
        Ok(())
    }

    fn meta(&self) -> Value {
        let meta: Object = [("path", Value::from(self.path.to_string_lossy().as_ref()))]
            .into_iter()
            .collect();
        Value::Object(meta)
    }

    fn persist(&mut self) -> Result<(), PluginError> {
        let Some(cp) = &mut self.checkpoint else {
            return Ok(());
        };
        cp.persist().map_err(|e| {
            PluginError::io(
                format_args!("cannot write the checkpoint file {}", cp.file.display()),
                &e,
            )
        })
    }
}

/// Opens `path` at `offset` (of its decompressed data); an offset beyond its end starts at 0,
/// with a warning. Returns the reader and where it stands.
fn open_at(path: &Path, offset: u64) -> Result<(Box<dyn Read + Send>, u64), PluginError> {
    let open_error = |e: &io::Error| {
        PluginError::io(
            format_args!("cannot open {} for reading", path.display()),
            e,
        )
    };
    let beyond = |end: u64| {
        tracing::warn!(
            path = %path.display(),
            checkpoint = offset,
            end,
            "the checkpoint is beyond the end of the file (replaced or truncated?): reading from the start"
        );
    };
    if Compression::from_path(path) == Compression::None {
        let mut file = File::open(path).map_err(|e| open_error(&e))?;
        if offset == 0 {
            return Ok((Box::new(file), 0));
        }
        let len = file.metadata().map_err(|e| open_error(&e))?.len();
        if offset > len {
            beyond(len);
            return Ok((Box::new(file), 0));
        }
        file.seek(SeekFrom::Start(offset))
            .map_err(|e| open_error(&e))?;
        return Ok((Box::new(file), offset));
    }
    let mut reader = temblor_compress::open_read(path).map_err(|e| open_error(&e))?;
    if offset == 0 {
        return Ok((reader, 0));
    }
    let skipped = io::copy(&mut reader.by_ref().take(offset), &mut io::sink()).map_err(|e| {
        PluginError::io(
            format_args!(
                "skipping to the checkpoint (byte {offset}) in {}",
                path.display()
            ),
            &e,
        )
    })?;
    if skipped < offset {
        beyond(skipped);
        let reader = temblor_compress::open_read(path).map_err(|e| open_error(&e))?;
        return Ok((reader, 0));
    }
    Ok((reader, offset))
}

impl Source for FileSource {
    fn pull(&mut self, out: &mut SourceBatch) -> Result<Pull, PluginError> {
        if self.done {
            return Ok(Pull::Exhausted);
        }
        if self.checkpoint.as_ref().is_some_and(Checkpoint::full) {
            return Ok(Pull::Idle);
        }
        if !self.started {
            out.start_stream_at(STREAM, self.start, self.meta());
            self.started = true;
        }
        // What was read before an error is handed over, under this batch's token too.
        let read = self.read_into(out);
        // The engine gives every batch that is not empty an outcome (one with only a stream
        // start or end is delivered at once).
        let token = out.token();
        if let Some(cp) = &mut self.checkpoint
            && !out.is_empty()
        {
            if token == 0 {
                if !cp.warned_untracked {
                    cp.warned_untracked = true;
                    tracing::warn!(
                        "the engine hands out batches without a token: the checkpoint does not advance"
                    );
                }
            } else {
                cp.handed_out(token, self.offset);
            }
        }
        read?;
        Ok(if self.done {
            Pull::Exhausted
        } else {
            Pull::Ready
        })
    }

    fn wants_acks(&self) -> bool {
        self.checkpoint.is_some()
    }

    fn ack(&mut self, token: u64) -> Result<(), PluginError> {
        if self.resolve(token, Outcome::Acked, "ack").is_none() {
            return Ok(());
        }
        self.persist()
    }

    fn fail(&mut self, token: u64, reason: &str) -> Result<(), PluginError> {
        let Some(committed) = self.resolve(token, Outcome::Failed, "failure") else {
            return Ok(());
        };
        tracing::warn!(
            path = %self.path.display(),
            token,
            reason,
            checkpoint = committed,
            "a batch was not delivered: the checkpoint stays before it for the rest of this run \
             (it is read again on the next start)"
        );
        self.persist()
    }
}

impl FileSource {
    /// Records `outcome` for `token` and moves the checkpoint on: the committed offset then,
    /// or none without a checkpoint or when `token` is not outstanding (a warning names the
    /// `what`).
    fn resolve(&mut self, token: u64, outcome: Outcome, what: &str) -> Option<u64> {
        let cp = self.checkpoint.as_mut()?;
        if !cp.resolve(token, outcome) {
            tracing::warn!(token, "{what} for a batch that is not outstanding; ignored");
            return None;
        }
        cp.advance();
        Some(cp.committed)
    }
}

impl Drop for FileSource {
    fn drop(&mut self) {
        if let Some(cp) = &self.checkpoint {
            tracing::info!(
                path = %self.path.display(),
                checkpoint = cp.committed,
                read = self.offset,
                outstanding = cp.pending,
                "file source stopped"
            );
        }
    }
}

/// Writes frames to a file, compressing by its extension; finishes the file when dropped.
pub struct FileSink {
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
        let append = match config.mode {
            Mode::Read => {
                return Err(PluginError::config(format_args!(
                    "the file connector is in read mode, so it has no sink \
                     (use mode = \"write\" or \"append\" to write {})",
                    config.path.display()
                )));
            }
            Mode::Write => false,
            Mode::Append => true,
        };
        for (key, given) in [
            ("checkpoint", config.checkpoint.is_some()),
            ("max_in_flight", config.max_in_flight.is_some()),
        ] {
            if given {
                return Err(PluginError::config(format_args!(
                    "`{key}` is only for a source (mode = \"read\"), not in {} mode",
                    config.mode
                )));
            }
        }
        let writer = temblor_compress::open_write(&config.path, append).map_err(|e| {
            PluginError::io(
                format_args!("cannot open {} for writing", config.path.display()),
                &e,
            )
        })?;
        tracing::debug!(
            path = %config.path.display(),
            mode = %config.mode,
            "file sink opened"
        );
        Ok(Self {
            path: config.path,
            writer: Some(writer),
        })
    }

    fn writer(&mut self) -> Result<&mut temblor_compress::Writer, PluginError> {
        // Only `Drop` takes the writer out.
        self.writer.as_mut().ok_or_else(|| {
            PluginError::new(
                temblor_shim::ErrorKind::Other,
                format_args!("{} is already closed", self.path.display()),
            )
        })
    }

    fn io_error(&self, what: &str, e: &std::io::Error) -> PluginError {
        PluginError::io(format_args!("{what} {}", self.path.display()), e)
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
    use temblor_harness::TempDir;
    use temblor_shim::{ErrorKind, Value};

    fn config(fields: &[(&str, &str)]) -> Value {
        Value::Object(fields.iter().map(|(k, v)| (*k, Value::from(*v))).collect())
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
            assert!(!err.message.contains("'src'"), "{err}");
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
            !err.message.contains("'snk'") && err.message.contains("read mode"),
            "{err}"
        );
        assert!(
            !std::path::Path::new("x.json").exists(),
            "the refused sink created nothing"
        );
    }

    #[test]
    fn source_reads_whole_chunks_and_ends_with_the_last_one() {
        let dir = TempDir::new("chunks");
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
        frames.reset(0);
        assert_eq!(source.pull(&mut frames).expect("pull"), Pull::Exhausted);
        assert!(frames.is_empty());
    }

    #[test]
    fn sink_finishes_compressed_file_on_drop() {
        let dir = TempDir::new("drop");
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
    }

    fn checkpointed(path: &Path, checkpoint: &Path, max_in_flight: Option<u64>) -> FileSource {
        let mut fields = vec![
            ("path", Value::from(path.to_str().expect("utf-8 path"))),
            (
                "checkpoint",
                Value::from(checkpoint.to_str().expect("utf-8 path")),
            ),
        ];
        if let Some(n) = max_in_flight {
            fields.push(("max_in_flight", Value::from(n)));
        }
        let cfg = Value::Object(fields.into_iter().collect());
        FileSource::new(&Setup {
            id: "t",
            config: &cfg,
        })
        .expect("source")
    }

    /// Pulls to the end, acking each pull at once; returns the frames and each pull's frames.
    fn drain_acking(source: &mut FileSource) -> (Vec<Vec<u8>>, Vec<usize>) {
        let mut frames = Vec::new();
        let mut per_pull = Vec::new();
        let mut batch = SourceBatch::new();
        for token in 1..10_000 {
            batch.reset(token);
            let pull = source.pull(&mut batch).expect("pull");
            per_pull.push(batch.len());
            frames.extend(batch.iter().map(<[u8]>::to_vec));
            if !batch.is_empty() {
                source.ack(token).expect("ack");
            }
            if pull == Pull::Exhausted {
                return (frames, per_pull);
            }
            assert_eq!(pull, Pull::Ready);
        }
        panic!("the file source never ended");
    }

    /// Numbered lines of varying length (one of them longer than a chunk), the last one
    /// without a newline.
    fn numbered(lines: usize) -> Vec<u8> {
        let mut data = Vec::new();
        for i in 0..lines {
            let pad = if i == lines / 2 { CHUNK + 100 } else { i % 97 };
            data.extend_from_slice(
                format!("{{\"n\":{i},\"pad\":\"{}\"}}\n", "x".repeat(pad)).as_bytes(),
            );
        }
        data.pop();
        data
    }

    /// A checkpoint at `committed` (of at most 8 in flight) with pulls 1, 2 and 3 handed out,
    /// ending at 100, 200 and 300.
    fn three_handed_out(committed: u64) -> Checkpoint {
        let mut cp = Checkpoint::new(PathBuf::from("unused"), 8, committed, None);
        for token in 1..=3 {
            cp.handed_out(token, token * 100);
        }
        cp
    }

    fn stored(checkpoint: &Path) -> Option<u64> {
        load_checkpoint(checkpoint).expect("a readable checkpoint")
    }

    #[test]
    fn checkpoint_offsets_are_written_and_read_back() {
        let dir = TempDir::new("cp-round-trip");
        let file = dir.join("cp");
        assert_eq!(load_checkpoint(&file), Ok(None), "no file: from the start");
        store_checkpoint(&file, 12_345).expect("store");
        assert_eq!(std::fs::read_to_string(&file).expect("read"), "12345\n");
        assert_eq!(stored(&file), Some(12_345));
        store_checkpoint(&file, 7).expect("store again");
        assert_eq!(stored(&file), Some(7));
        let names: Vec<_> = std::fs::read_dir(&dir)
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["cp"], "no temporary file is left behind");
    }

    #[test]
    fn a_bad_checkpoint_file_is_a_config_error_naming_it() {
        let dir = TempDir::new("cp-bad");
        let input = dir.join("in.txt");
        std::fs::write(&input, b"a\n").expect("write");
        let garbage = dir.join("garbage.cp");
        std::fs::write(&garbage, b"twelve\n").expect("write");
        // A folder cannot be read as a file.
        let folder = dir.join("folder.cp");
        std::fs::create_dir(&folder).expect("mkdir");
        for cp in [&garbage, &folder] {
            let cfg = Value::Object(
                [
                    ("path", Value::from(input.to_str().expect("utf-8"))),
                    ("checkpoint", Value::from(cp.to_str().expect("utf-8"))),
                ]
                .into_iter()
                .collect(),
            );
            let err = FileSource::new(&Setup {
                id: "t",
                config: &cfg,
            })
            .err()
            .expect("refused");
            assert_eq!(err.kind, ErrorKind::Config, "{err}");
            assert!(err.message.contains(cp.to_str().expect("utf-8")), "{err}");
            assert!(err.message.contains("`checkpoint`"), "{err}");
        }
    }

    #[test]
    fn out_of_order_acks_commit_only_the_acked_prefix() {
        let mut cp = three_handed_out(0);
        assert!(cp.resolve(3, Outcome::Acked));
        assert!(!cp.advance());
        assert!(cp.resolve(2, Outcome::Acked));
        assert!(!cp.advance());
        assert_eq!(cp.committed, 0, "pull 1 is still outstanding");
        assert!(!cp.resolve(2, Outcome::Acked), "each token resolves once");
        assert!(!cp.resolve(9, Outcome::Acked), "an unknown token");
        assert!(cp.resolve(1, Outcome::Acked));
        assert!(cp.advance());
        assert_eq!(cp.committed, 300);
        assert!(cp.in_flight.is_empty());
        assert_eq!(cp.pending, 0);

        // The same through the source, with the file on disk.
        let dir = TempDir::new("cp-out-of-order");
        let (input, file) = (dir.join("in.txt"), dir.join("cp"));
        let data = numbered(20_000);
        std::fs::write(&input, &data).expect("write");
        let mut source = checkpointed(&input, &file, Some(3));
        let mut ends = Vec::new();
        let mut batch = SourceBatch::new();
        for token in 1..=3 {
            batch.reset(token);
            assert_eq!(source.pull(&mut batch).expect("pull"), Pull::Ready);
            ends.push(source.offset);
        }
        source.ack(2).expect("ack");
        source.ack(3).expect("ack");
        assert_eq!(
            stored(&file),
            None,
            "nothing written before pull 1 is acked"
        );
        source.ack(1).expect("ack");
        assert_eq!(stored(&file), Some(ends[2]));
    }

    #[test]
    fn a_failed_pull_holds_the_checkpoint_for_the_rest_of_the_run() {
        let mut cp = three_handed_out(50);
        assert!(cp.resolve(1, Outcome::Acked));
        assert!(cp.advance());
        assert!(cp.resolve(2, Outcome::Failed));
        assert!(!cp.advance());
        assert!(cp.resolve(3, Outcome::Acked));
        assert!(!cp.advance());
        assert_eq!(cp.committed, 100, "stops before the failed pull");
        assert!(cp.in_flight.is_empty(), "resolved pulls are forgotten");
        cp.handed_out(4, 400);
        assert!(cp.resolve(4, Outcome::Acked));
        assert!(!cp.advance());
        assert_eq!(cp.committed, 100);
        assert!(!cp.full(), "the failed pull does not count as outstanding");
    }

    #[test]
    fn max_in_flight_holds_back_until_acked() {
        let dir = TempDir::new("cp-in-flight");
        let (input, file) = (dir.join("in.txt"), dir.join("cp"));
        std::fs::write(&input, numbered(20_000)).expect("write");
        let mut source = checkpointed(&input, &file, None);
        assert!(source.wants_acks());
        let mut batch = SourceBatch::new();
        batch.reset(1);
        assert_eq!(source.pull(&mut batch).expect("pull"), Pull::Ready);
        let end = source.offset;
        batch.reset(2);
        let started = std::time::Instant::now();
        assert_eq!(source.pull(&mut batch).expect("pull"), Pull::Idle);
        assert!(started.elapsed() < std::time::Duration::from_millis(50));
        assert!(
            batch.is_empty(),
            "nothing read while one pull is outstanding"
        );
        assert_eq!(source.offset, end);
        source.ack(1).expect("ack");
        assert_eq!(stored(&file), Some(end));
        assert_eq!(source.pull(&mut batch).expect("pull"), Pull::Ready);
        assert!(!batch.is_empty());
        // With two allowed, two pulls go out before it holds back.
        let mut source = checkpointed(&input, &file, Some(2));
        for (token, expected) in [(7, Pull::Ready), (8, Pull::Ready), (9, Pull::Idle)] {
            batch.reset(token);
            assert_eq!(source.pull(&mut batch).expect("pull"), expected, "{token}");
        }
    }

    #[test]
    fn checkpointed_chunks_end_at_newlines() {
        let dir = TempDir::new("cp-newlines");
        let (input, file) = (dir.join("in.txt"), dir.join("cp"));
        let data = numbered(30_000);
        assert!(data.len() > 8 * CHUNK);
        std::fs::write(&input, &data).expect("write");
        let mut source = checkpointed(&input, &file, None);
        let (frames, per_pull) = drain_acking(&mut source);
        let (last, whole) = frames.split_last().expect("frames");
        for (i, f) in whole.iter().enumerate() {
            assert_eq!(f.last(), Some(&b'\n'), "frame {i} ends after a newline");
            let long = format!("{{\"n\":{},", 30_000 / 2);
            assert!(
                f.len() <= CHUNK || f.windows(long.len()).any(|w| w == long.as_bytes()),
                "frame {i}: only the line longer than a chunk makes a longer chunk"
            );
        }
        assert!(!last.ends_with(b"\n"), "the last line had no newline");
        assert!(per_pull.iter().all(|&n| n <= CHUNKS_PER_PULL));
        assert_eq!(frames.concat(), data);
        assert_eq!(stored(&file), Some(data.len() as u64));
        // Resumed at the end: nothing more.
        let mut source = checkpointed(&input, &file, None);
        let (frames, _) = drain_acking(&mut source);
        assert!(frames.is_empty());
    }

    #[test]
    fn the_stream_starts_with_the_path_and_the_resumed_offset() {
        let dir = TempDir::new("cp-stream");
        let (input, file) = (dir.join("in.txt"), dir.join("cp"));
        std::fs::write(&input, b"one\ntwo\nthree\n").expect("write");
        store_checkpoint(&file, 4).expect("store");
        let mut source = checkpointed(&input, &file, None);
        let mut batch = SourceBatch::new();
        batch.reset(1);
        assert_eq!(source.pull(&mut batch).expect("pull"), Pull::Exhausted);
        let runs = batch.runs();
        assert!(runs[0].starts() && runs[0].stream == 0);
        assert_eq!(runs[0].offset, 4);
        let path = input.to_str().expect("utf-8");
        assert_eq!(runs[0].meta.get("path").and_then(Value::as_str), Some(path));
        assert!(runs.last().expect("runs").ends());
        assert_eq!(batch.iter().collect::<Vec<_>>(), [&b"two\nthree\n"[..]]);
        source.ack(1).expect("ack");
        assert_eq!(stored(&file), Some(14));
        // Without a checkpoint, the stream starts at 0.
        let cfg = config(&[("path", path)]);
        let mut source = FileSource::new(&Setup {
            id: "t",
            config: &cfg,
        })
        .expect("source");
        assert!(!source.wants_acks());
        batch.reset(0);
        source.pull(&mut batch).expect("pull");
        assert_eq!(batch.runs()[0].offset, 0);
    }

    #[test]
    fn gzip_files_resume_after_the_checkpoint() {
        let dir = TempDir::new("cp-gz");
        let (input, file) = (dir.join("in.txt.gz"), dir.join("cp"));
        let data = numbered(20_000);
        let mut writer = temblor_compress::open_write(&input, false).expect("open");
        writer.write_all(&data).expect("write");
        writer.finish().expect("finish");
        // The first run stops after two acked pulls (a crash: nothing else is written).
        let mut source = checkpointed(&input, &file, Some(2));
        let mut batch = SourceBatch::new();
        let mut first: Vec<u8> = Vec::new();
        for token in 1..=2 {
            batch.reset(token);
            assert_eq!(source.pull(&mut batch).expect("pull"), Pull::Ready);
            first.extend(batch.iter().flatten().copied());
        }
        source.ack(1).expect("ack");
        source.ack(2).expect("ack");
        drop(source);
        let at = stored(&file).expect("a checkpoint");
        assert_eq!(at, first.len() as u64);
        assert_eq!(data[at as usize - 1], b'\n', "a line boundary");
        // The second run decompresses, skips and goes on from there.
        let mut source = checkpointed(&input, &file, None);
        assert_eq!(source.start, at);
        let (rest, _) = drain_acking(&mut source);
        assert_eq!(rest.concat(), data[at as usize..]);
        assert_eq!(stored(&file), Some(data.len() as u64));
    }

    #[test]
    fn a_checkpoint_beyond_the_end_starts_over() {
        let dir = TempDir::new("cp-beyond");
        for name in ["short.txt", "short.txt.xz"] {
            let (input, file) = (dir.join(name), dir.join(format!("{name}.cp")));
            let mut writer = temblor_compress::open_write(&input, false).expect("open");
            writer.write_all(b"a\nb\n").expect("write");
            writer.finish().expect("finish");
            store_checkpoint(&file, 1_000).expect("store");
            let mut source = checkpointed(&input, &file, None);
            assert_eq!(source.start, 0, "{name}");
            let (frames, _) = drain_acking(&mut source);
            assert_eq!(frames.concat(), b"a\nb\n", "{name}");
            assert_eq!(stored(&file), Some(4), "{name}");
        }
    }

    #[test]
    fn checkpoint_keys_are_checked() {
        let cases: [(&[(&str, Value)], &str); 4] = [
            (
                &[("max_in_flight", Value::from(2))],
                "`max_in_flight` is only",
            ),
            (
                &[
                    ("checkpoint", Value::from("cp")),
                    ("max_in_flight", Value::from(0)),
                ],
                "`max_in_flight` must be at least 1",
            ),
            (
                &[
                    ("mode", Value::from("write")),
                    ("checkpoint", Value::from("cp")),
                ],
                "`checkpoint` is only for a source",
            ),
            (
                &[
                    ("mode", Value::from("append")),
                    ("max_in_flight", Value::from(1)),
                ],
                "`max_in_flight` is only for a source",
            ),
        ];
        for (extra, needle) in cases {
            let mut fields = vec![("path", Value::from("no-such-file.txt"))];
            fields.extend(extra.iter().cloned());
            let cfg = Value::Object(fields.into_iter().collect());
            let setup = Setup {
                id: "t",
                config: &cfg,
            };
            let err = if extra.iter().any(|(k, _)| *k == "mode") {
                FileSink::new(&setup).err()
            } else {
                FileSource::new(&setup).err()
            }
            .expect("refused");
            assert_eq!(err.kind, ErrorKind::Config, "{err}");
            assert!(err.message.contains(needle), "{needle}: {err}");
        }
        assert!(!Path::new("no-such-file.txt").exists());
    }
}
