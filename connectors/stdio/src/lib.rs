//! The `stdio` connector: reads stdin as a stream of raw chunks, writes frames to stdout or
//! stderr.
//!
//! Source: a thread owned by the source reads stdin in chunks of up to 64 KiB (whatever one read
//! returns, so interactive input comes through at once) and hands them over through a bounded
//! channel; `pull` waits at most 100 ms for one, then says `Idle`, so the engine stays
//! responsive while stdin is quiet. Each chunk is one frame, not split into lines: give the
//! connector the `separate` preprocessor for that. At the end of stdin the source is
//! `Exhausted`. The reader thread cannot be interrupted while it waits for input: when the
//! source is dropped it stays blocked until stdin delivers something or closes, then ends.
//!
//! Sink: every frame is written as it is (the postprocessors add separators), a batch at a
//! time; `flush`, and dropping the sink, flush the stream.
//!
//! ## Config
//! - `stream` (string, default `"stdout"`): where the sink writes, `"stdout"` or `"stderr"`.
//!   The source always reads stdin and ignores it.
//!
//! ## Example
//! ```toml
//! [[connector]]
//! id = "console"
//! plugin = "stdio"
//! codec = "json"
//! preprocessors = ["separate"]
//! postprocessors = ["separate"]
//! config = { stream = "stdout" }
//! ```

use std::{
    fmt,
    io::{self, Read, Write},
    sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender, TryRecvError},
    time::Duration,
};

use temblor_shim::{
    ErrorKind, Frames, PluginError, Pull, Setup, Sink, Source, SourceBatch, serde::Deserialize,
    tracing,
};

/// The largest chunk the source reads at once (one frame each).
pub const CHUNK: usize = 64 * 1024;

/// How long `pull` waits for input before it says `Idle`.
const WAIT: Duration = Duration::from_millis(100);

/// How many chunks the reader thread may read ahead of `pull`.
const READ_AHEAD: usize = 8;

/// How many chunks one `pull` appends at most.
const CHUNKS_PER_PULL: usize = 16;

/// The connector's `config`.
#[derive(Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
#[serde(crate = "temblor_shim::serde", deny_unknown_fields)]
pub struct Config {
    /// Where the sink writes.
    #[serde(default)]
    pub stream: Stream,
}

/// The output stream of the sink.
#[derive(Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
#[serde(crate = "temblor_shim::serde", rename_all = "lowercase")]
pub enum Stream {
    /// Standard output.
    #[default]
    Stdout,
    /// Standard error.
    Stderr,
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Stdout => "stdout",
            Self::Stderr => "stderr",
        })
    }
}

/// What the reader thread hands over.
enum Message {
    /// Bytes read (never empty).
    Chunk(Vec<u8>),
    /// The end of the input.
    End,
    /// Reading failed; the thread has stopped.
    Failed(io::Error),
}

/// Reads `reader` until its end or an error, sending what it reads; stops early when the source
/// is gone. Buffers come back through `free` to be used again.
fn read_loop(mut reader: impl Read, to_source: &SyncSender<Message>, free: &Receiver<Vec<u8>>) {
    loop {
        let mut buf = free.try_recv().unwrap_or_default();
        buf.resize(CHUNK, 0);
        let message = match reader.read(&mut buf) {
            Ok(0) => Message::End,
            Ok(n) => {
                buf.truncate(n);
                Message::Chunk(buf)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => Message::Failed(e),
        };
        let last = !matches!(message, Message::Chunk(_));
        if to_source.send(message).is_err() || last {
            return;
        }
    }
}

/// A source reading any blocking input (stdin, in the plugin) through a thread it owns.
pub struct StreamSource {
    /// What is read, for messages (`"stdin"`).
    input: &'static str,
    from_reader: Receiver<Message>,
    free: Sender<Vec<u8>>,
    /// A read error that came after chunks this `pull` had appended: reported by the next one.
    pending: Option<io::Error>,
    bytes: u64,
    done: bool,
}

impl StreamSource {
    /// Starts a thread reading `reader`; `input` names it in messages.
    ///
    /// # Errors
    /// When the thread cannot be started.
    pub fn spawn<R: Read + Send + 'static>(
        id: &str,
        input: &'static str,
        reader: R,
    ) -> Result<Self, PluginError> {
        let (to_source, from_reader) = mpsc::sync_channel(READ_AHEAD);
        let (free, free_rx) = mpsc::channel();
        std::thread::Builder::new()
            .name(format!("{input}-{id}"))
            .spawn(move || read_loop(reader, &to_source, &free_rx))
            .map_err(|e| PluginError::io(format_args!("cannot start the {input} reader"), &e))?;
        Ok(Self {
            input,
            from_reader,
            free,
            pending: None,
            bytes: 0,
            done: false,
        })
    }

    /// The stdin source.
    ///
    /// # Errors
    /// A `Config` error for a bad config; an `Io` error when the reader thread cannot start.
    pub fn stdin(setup: &Setup<'_>) -> Result<Self, PluginError> {
        let _: Config = setup.config()?;
        Self::spawn(setup.id, "stdin", io::stdin())
    }

    fn read_error(&mut self, e: &io::Error) -> PluginError {
        self.done = true;
        PluginError::io(format_args!("reading {}", self.input), e)
    }
}

impl Source for StreamSource {
    fn pull(&mut self, out: &mut SourceBatch) -> Result<Pull, PluginError> {
        if self.done {
            return Ok(Pull::Exhausted);
        }
        if let Some(e) = self.pending.take() {
            return Err(self.read_error(&e));
        }
        let mut message = match self.from_reader.recv_timeout(WAIT) {
            Ok(message) => message,
            Err(RecvTimeoutError::Timeout) => return Ok(Pull::Idle),
            Err(RecvTimeoutError::Disconnected) => {
                self.done = true;
                return Err(PluginError::new(
                    ErrorKind::Other,
                    format_args!("the {} reader stopped unexpectedly", self.input),
                ));
            }
        };
        let mut chunks = 0;
        loop {
            match message {
                Message::Chunk(buf) => {
                    out.push(&buf);
                    self.bytes += buf.len() as u64;
                    // The reader may be gone already; then the buffer is simply freed.
                    let _ = self.free.send(buf);
                    chunks += 1;
                }
                Message::End => {
                    self.done = true;
                    tracing::info!(
                        input = %self.input,
                        bytes = self.bytes,
                        "input ended"
                    );
                    return Ok(Pull::Exhausted);
                }
                Message::Failed(e) if chunks == 0 => return Err(self.read_error(&e)),
                Message::Failed(e) => {
                    self.pending = Some(e);
                    return Ok(Pull::Ready);
                }
            }
            if chunks == CHUNKS_PER_PULL {
                return Ok(Pull::Ready);
            }
            message = match self.from_reader.try_recv() {
                Ok(message) => message,
                // Nothing more now; a lost reader shows up in the next pull.
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => return Ok(Pull::Ready),
            };
        }
    }
}

/// A sink writing every frame to a stream (stdout or stderr, in the plugin).
pub struct StreamSink<W: Write + Send + 'static> {
    /// What is written to, for messages (`"stdout"`).
    output: String,
    out: W,
    /// A batch gathered here is written in few large writes.
    buf: Vec<u8>,
}

impl<W: Write + Send + 'static> StreamSink<W> {
    /// A sink writing to `out`; `output` names it in messages.
    pub fn new(output: impl Into<String>, out: W) -> Self {
        Self {
            output: output.into(),
            out,
            buf: Vec::with_capacity(CHUNK),
        }
    }

    fn write_error(&self, what: &str, e: &io::Error) -> PluginError {
        PluginError::io(format_args!("{what} {}", self.output), e)
    }

    fn write_buffered(&mut self) -> Result<(), PluginError> {
        let result = self.out.write_all(&self.buf);
        self.buf.clear();
        result.map_err(|e| self.write_error("writing to", &e))
    }
}

/// The stdout or stderr sink, as configured.
///
/// # Errors
/// A `Config` error for a bad config.
pub fn stdio_sink(setup: &Setup<'_>) -> Result<StreamSink<Box<dyn Write + Send>>, PluginError> {
    let config: Config = setup.config()?;
    let out: Box<dyn Write + Send> = match config.stream {
        Stream::Stdout => Box::new(io::stdout()),
        Stream::Stderr => Box::new(io::stderr()),
    };
    Ok(StreamSink::new(config.stream.to_string(), out))
}

impl<W: Write + Send + 'static> Sink for StreamSink<W> {
    fn push(&mut self, frames: &Frames) -> Result<(), PluginError> {
        for frame in frames.iter() {
            self.buf.extend_from_slice(frame);
            if self.buf.len() >= CHUNK {
                self.write_buffered()?;
            }
        }
        if self.buf.is_empty() {
            Ok(())
        } else {
            self.write_buffered()
        }
    }

    fn flush(&mut self) -> Result<(), PluginError> {
        let result = self.out.flush();
        result.map_err(|e| self.write_error("flushing", &e))
    }
}

impl<W: Write + Send + 'static> Drop for StreamSink<W> {
    /// Flushes: a plugin library has its own copy of the standard library, whose stdout buffer
    /// the host does not flush when the process exits.
    fn drop(&mut self) {
        if let Err(e) = self.out.flush() {
            tracing::warn!(output = %self.output, error = %e, "flushing failed");
        }
    }
}

temblor_shim::export_plugin! {
    name: "stdio",
    kind: Connector,
    source: StreamSource::stdin,
    sink: stdio_sink,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::{
        io::Cursor,
        sync::{Arc, Mutex},
        time::Instant,
    };

    /// Pulls until `Exhausted` (at most `limit` pulls); returns the frames and the pull results.
    fn drain(source: &mut StreamSource, limit: usize) -> (Frames, Vec<Pull>) {
        let mut frames = SourceBatch::new();
        let mut pulls = Vec::new();
        for _ in 0..limit {
            let pull = source.pull(&mut frames).expect("pull");
            pulls.push(pull);
            if pull == Pull::Exhausted {
                break;
            }
        }
        (frames.frames().clone(), pulls)
    }

    fn sample(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 253) as u8).collect()
    }

    #[test]
    fn reads_everything_in_chunks_of_at_most_64_kib() {
        let data = sample(CHUNK * 3 + 1000);
        let mut source =
            StreamSource::spawn("t", "test input", Cursor::new(data.clone())).expect("spawn");
        let (frames, pulls) = drain(&mut source, 1000);
        assert_eq!(pulls.last(), Some(&Pull::Exhausted));
        assert!(frames.iter().all(|f| !f.is_empty() && f.len() <= CHUNK));
        assert_eq!(frames.len(), 4, "a cursor fills whole chunks");
        let joined: Vec<u8> = frames.iter().flatten().copied().collect();
        assert_eq!(joined, data);
        // Exhausted for good.
        let mut more = SourceBatch::new();
        assert_eq!(source.pull(&mut more).expect("pull"), Pull::Exhausted);
        assert!(more.is_empty());
    }

    #[test]
    fn empty_input_is_exhausted() {
        let mut source = StreamSource::spawn("t", "test input", io::empty()).expect("spawn");
        let (frames, pulls) = drain(&mut source, 100);
        assert_eq!(pulls.last(), Some(&Pull::Exhausted));
        assert!(frames.is_empty());
    }

    #[test]
    fn quiet_input_makes_pull_idle_and_what_arrives_comes_through() {
        let (reader, mut writer) = io::pipe().expect("pipe");
        let mut source = StreamSource::spawn("t", "pipe", reader).expect("spawn");
        let mut frames = SourceBatch::new();

        let begin = Instant::now();
        assert_eq!(source.pull(&mut frames).expect("pull"), Pull::Idle);
        let waited = begin.elapsed();
        assert!(waited >= Duration::from_millis(90), "waited {waited:?}");
        assert!(waited < Duration::from_secs(2), "waited {waited:?}");
        assert!(frames.is_empty());

        // A short write arrives as it is, without waiting for a full chunk.
        writer.write_all(b"line one\n").expect("write");
        let mut got: Vec<u8> = Vec::new();
        for _ in 0..50 {
            frames.clear();
            let pull = source.pull(&mut frames).expect("pull");
            got.extend(frames.iter().flatten());
            if !got.is_empty() {
                assert_eq!(pull, Pull::Ready);
                break;
            }
        }
        assert_eq!(got, b"line one\n");

        drop(writer);
        let (_, pulls) = drain(&mut source, 50);
        assert_eq!(pulls.last(), Some(&Pull::Exhausted));
    }

    /// Hands out its chunks one read at a time, then fails; an `Interrupted` comes first.
    struct Flaky {
        chunks: Vec<&'static [u8]>,
        interrupted: bool,
    }

    impl Read for Flaky {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if !self.interrupted {
                self.interrupted = true;
                return Err(io::ErrorKind::Interrupted.into());
            }
            if self.chunks.is_empty() {
                return Err(io::Error::other("disk on fire"));
            }
            let chunk = self.chunks.remove(0);
            buf[..chunk.len()].copy_from_slice(chunk);
            Ok(chunk.len())
        }
    }

    /// Pulls until `source` fails, checking each pull that does not with `ok`: the error.
    fn first_error(
        source: &mut StreamSource,
        frames: &mut SourceBatch,
        ok: impl Fn(Pull),
    ) -> PluginError {
        loop {
            match source.pull(frames) {
                Ok(pull) => ok(pull),
                Err(e) => return e,
            }
        }
    }

    #[test]
    fn read_errors_come_after_the_data_read_before_them() {
        let reader = Flaky {
            chunks: vec![b"ab", b"cd"],
            interrupted: false,
        };
        let mut source = StreamSource::spawn("src", "flaky", reader).expect("spawn");
        let mut frames = SourceBatch::new();
        let err = first_error(&mut source, &mut frames, |pull| {
            assert_ne!(pull, Pull::Exhausted);
        });
        let got: Vec<&[u8]> = frames.iter().collect();
        assert_eq!(got, [&b"ab"[..], b"cd"]);
        assert_eq!(err.kind, ErrorKind::Io);
        assert!(
            !err.message.contains("'src'") && err.message.contains("flaky"),
            "{err}"
        );
        assert!(err.message.contains("disk on fire"), "{err}");
        assert_eq!(
            source.pull(&mut frames).expect("after the error"),
            Pull::Exhausted
        );
    }

    #[test]
    fn a_panicking_reader_is_an_error_not_a_hang() {
        struct Boom;
        impl Read for Boom {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                panic!("reader exploded");
            }
        }
        let mut source = StreamSource::spawn("t", "boom", Boom).expect("spawn");
        let mut frames = SourceBatch::new();
        let err = first_error(&mut source, &mut frames, |pull| {
            assert_eq!(pull, Pull::Idle)
        });
        assert_eq!(err.kind, ErrorKind::Other);
        assert!(err.message.contains("stopped"), "{err}");
    }

    /// A `Write` into shared memory, counting writes and flushes.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<(Vec<u8>, usize, usize)>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let mut inner = self.0.lock().expect("lock");
            inner.0.extend_from_slice(buf);
            inner.1 += 1;
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            self.0.lock().expect("lock").2 += 1;
            Ok(())
        }
    }

    #[test]
    fn sink_writes_frames_as_they_are_in_few_writes() {
        let out = Shared::default();
        let mut sink = StreamSink::new("memory", out.clone());
        let frames: Frames = (0..1000).map(|_| &b"{\"a\":1}\n"[..]).collect();
        sink.push(&frames).expect("push");
        let odd: Frames = [&b"no newline"[..], b"", b"\x00"].into_iter().collect();
        sink.push(&odd).expect("push");
        {
            let inner = out.0.lock().expect("lock");
            assert_eq!(inner.0.len(), 8000 + 11);
            assert!(inner.0.ends_with(b"}\nno newline\x00"));
            assert_eq!(inner.1, 2, "one write per small batch");
            assert_eq!(inner.2, 0, "no flush yet");
        }
        sink.flush().expect("flush");
        assert_eq!(out.0.lock().expect("lock").2, 1);
        drop(sink);
        assert_eq!(out.0.lock().expect("lock").2, 2, "dropping flushes");
    }

    #[test]
    fn large_batches_are_written_in_64_kib_pieces() {
        let out = Shared::default();
        let mut sink = StreamSink::new("memory", out.clone());
        let line = [b'x'; 1000];
        let frames: Frames = (0..200).map(|_| &line[..]).collect();
        sink.push(&frames).expect("push");
        let inner = out.0.lock().expect("lock");
        assert_eq!(inner.0.len(), 200_000);
        // A write each time 64 KiB are gathered (after 66, 132 and 198 frames), then the rest.
        assert_eq!(inner.1, 4);
    }

    struct Broken;

    impl Write for Broken {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> io::Result<()> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
    }

    #[test]
    fn write_errors_name_the_connector_and_stream() {
        let mut sink = StreamSink::new("stdout", Broken);
        let err = sink
            .push(&[&b"x"[..]].into_iter().collect())
            .expect_err("broken");
        assert_eq!(err.kind, ErrorKind::Io);
        assert!(
            !err.message.contains("'snk'") && err.message.contains("stdout"),
            "{err}"
        );
        let err = sink.flush().expect_err("broken");
        assert!(err.message.contains("flushing stdout"), "{err}");
    }

    #[test]
    fn stream_defaults_to_stdout() {
        let empty = temblor_shim::Value::Object(temblor_shim::Object::new());
        let c: Config = temblor_shim::from_value(&empty).expect("config");
        assert_eq!(c.stream, Stream::Stdout);
    }
}
