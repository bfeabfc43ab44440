//! The `tcp_server` connector: listens on a TCP address and turns what clients send into frames.
//!
//! Source only (asking for a sink is an `Unsupported` error). The constructor binds the address,
//! so a port in use is reported when the engine starts. An acceptor thread takes in clients,
//! up to `max_connections` at once: a client beyond that is closed at once, with a warning in
//! the log. Each client gets a reader thread of its own, which hands its frames to `pull`
//! through a bounded channel: when the engine is slower than the clients, the readers stop
//! reading and TCP slows the clients down. `pull` waits at most 100 ms for frames, then says
//! `Idle`; the source never ends by itself. When it is dropped (the engine stops), the threads
//! stop within about 100 ms, every client is closed and the listening socket is closed.
//!
//! **Acknowledged data.** A frame (a line, with `separator`) is *acknowledged* once `pull` has
//! handed it to the engine: the engine counts it in this connector's `events_out` (see
//! `temblor run --stats-json`), decodes it and, on a shutdown (SIGINT, SIGTERM, an `exit`
//! connector), drains and flushes it through the pipelines into the sinks before the process
//! exits. So after a shutdown the sinks hold exactly the acknowledged frames, in the order each
//! client sent them, none twice. What is not acknowledged when the engine stops pulling is
//! dropped when the source is dropped: frames the reader threads had read but not handed over
//! (at most 64 batches ahead of `pull`), a partial last line, and whatever is still in the
//! sockets. TCP carries no reply from this server, so a client cannot tell where that cut fell:
//! a protocol that must not lose data on a restart needs acknowledgements of its own (or a
//! client that resends from a point it learns otherwise).
//!
//! **Framing.** Without `separator`, every read from a client is one frame (a raw chunk of at
//! most `max_frame` bytes). A frame never mixes two clients' bytes, but chunks of different
//! clients interleave, and the engine's `separate` preprocessor keeps its partial line across
//! frames, not per client: with one client at a time that is right, but with several it can
//! glue the end of one client's line to the start of another's. So with several clients and a
//! line protocol, set `separator` instead (and no `separate` preprocessor): each client's
//! stream is then split into frames by the server itself, with a partial line kept per client,
//! and every frame is one whole line without its separator. Empty lines are skipped; a line
//! longer than `max_frame` is dropped (up to its separator) with a warning, and the lines after
//! it come through; what a client sends after its last separator before it closes is one last
//! frame. Nothing tells frames of different clients apart downstream.
//!
//! ## Config
//! - `url` (string, default `"127.0.0.1:4242"`): the `host:port` to listen on. The default
//!   listens on loopback only; `"0.0.0.0:4242"` listens on every interface. Port 0 picks a free
//!   port (the log says which).
//! - `max_connections` (integer, default 64, at least 1): clients served at once.
//! - `max_frame` (integer, default 65536, 1 to 16777216): without `separator`, the most bytes
//!   read at once (the largest frame); with it, the longest line kept. Memory per client is
//!   about this much (twice with `separator`).
//! - `separator` (string, optional, 1 to 8 bytes, e.g. `"\n"` or `"\r\n"`): split each
//!   client's stream into lines at this separator.
//!
//! ## Example
//! ```toml
//! [[connector]]
//! id = "lines"
//! plugin = "tcp_server"
//! codec = "json"
//! config = { url = "127.0.0.1:4242", separator = "\n", max_connections = 16 }
//! ```

use std::{
    io::{self, Read},
    net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
        mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TryRecvError},
    },
    thread::{self, JoinHandle},
    time::Duration,
};

use memchr::memmem;
use temblor_shim::{
    ErrorKind, Frames, PluginError, Pull, SourceBatch, Setup, Source, serde::Deserialize, tracing,
};

/// How long `pull` waits for frames before it says `Idle`; also how often the threads look
/// whether they should stop.
const WAIT: Duration = Duration::from_millis(100);

/// How long the acceptor sleeps when no client is waiting.
const ACCEPT_POLL: Duration = Duration::from_millis(20);

/// How many batches the reader threads, together, may read ahead of `pull`.
const READ_AHEAD: usize = 64;

/// The most bytes one `pull` appends (it stops after the batch that crosses this).
const PULL_BYTES: usize = 1024 * 1024;

/// The read size with `separator` (without it, `max_frame`).
const LINE_READ: usize = 64 * 1024;

/// The largest `max_frame` accepted.
pub const MAX_FRAME_LIMIT: usize = 16 * 1024 * 1024;

/// The longest `separator` accepted.
pub const MAX_SEPARATOR: usize = 8;

/// The connector's `config`.
#[derive(Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(crate = "temblor_shim::serde", deny_unknown_fields)]
pub struct Config {
    /// The `host:port` to listen on.
    #[serde(default = "default_url")]
    pub url: String,
    /// Clients served at once.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// The largest chunk read, or the longest line kept.
    #[serde(default = "default_max_frame")]
    pub max_frame: usize,
    /// Split each client's stream into lines at this separator.
    #[serde(default)]
    pub separator: Option<String>,
}

fn default_url() -> String {
    "127.0.0.1:4242".to_owned()
}

fn default_max_connections() -> usize {
    64
}

fn default_max_frame() -> usize {
    64 * 1024
}

impl Config {
    /// Checks the values serde cannot; returns the address to listen on.
    fn validate(&self, id: &str) -> Result<Vec<SocketAddr>, PluginError> {
        if self.max_connections == 0 {
            return Err(PluginError::config(format_args!(
                "'{id}': `max_connections` must be at least 1"
            )));
        }
        if !(1..=MAX_FRAME_LIMIT).contains(&self.max_frame) {
            return Err(PluginError::config(format_args!(
                "'{id}': `max_frame` must be between 1 and {MAX_FRAME_LIMIT}, found {}",
                self.max_frame
            )));
        }
        if let Some(separator) = &self.separator
            && !(1..=MAX_SEPARATOR).contains(&separator.len())
        {
            return Err(PluginError::config(format_args!(
                "'{id}': `separator` must be 1 to {MAX_SEPARATOR} bytes, found {separator:?}"
            )));
        }
        let addrs: Vec<SocketAddr> = self
            .url
            .to_socket_addrs()
            .map_err(|e| {
                PluginError::config(format_args!(
                    "'{id}': `url` must be host:port, found {:?}: {e}",
                    self.url
                ))
            })?
            .collect();
        if addrs.is_empty() {
            return Err(PluginError::config(format_args!(
                "'{id}': `url` {:?} resolves to no address",
                self.url
            )));
        }
        Ok(addrs)
    }
}

/// Splits one client's stream into lines, keeping the partial last line between reads.
#[derive(Debug)]
pub struct Splitter {
    finder: memmem::Finder<'static>,
    max: usize,
    partial: Vec<u8>,
    /// Dropping an over-long line until its separator.
    skipping: bool,
    dropped: u64,
}

impl Splitter {
    /// Splits at `separator` (not empty), keeping lines of at most `max` bytes.
    #[must_use]
    pub fn new(separator: &[u8], max: usize) -> Self {
        Self {
            finder: memmem::Finder::new(separator).into_owned(),
            max,
            partial: Vec::new(),
            skipping: false,
            dropped: 0,
        }
    }

    /// How many over-long lines were dropped so far.
    #[must_use]
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    fn sep_len(&self) -> usize {
        self.finder.needle().len()
    }

    /// Appends the complete lines in `data` (with what came before) to `out`.
    pub fn feed(&mut self, data: &[u8], out: &mut Frames) {
        let sep_len = self.sep_len();
        // A separator may have started at the end of the previous read.
        let mut search = self.partial.len().saturating_sub(sep_len - 1);
        self.partial.extend_from_slice(data);
        let mut line_start = 0;
        while let Some(found) = self.finder.find(&self.partial[search..]) {
            let end = search + found;
            if self.skipping {
                self.skipping = false;
            } else {
                let line = &self.partial[line_start..end];
                if line.len() > self.max {
                    self.dropped += 1;
                } else if !line.is_empty() {
                    out.push(line);
                }
            }
            line_start = end + sep_len;
            search = line_start;
        }
        self.partial.drain(..line_start);
        // The rest holds no separator but may end with the start of one.
        let keep = sep_len - 1;
        if self.skipping {
            self.partial
                .drain(..self.partial.len().saturating_sub(keep));
        } else if self.partial.len() > self.max + keep {
            self.dropped += 1;
            self.skipping = true;
            self.partial.drain(..self.partial.len() - keep);
        }
    }

    /// The end of the stream: what is left is one last line.
    pub fn finish(&mut self, out: &mut Frames) {
        if !self.skipping && !self.partial.is_empty() {
            if self.partial.len() > self.max {
                self.dropped += 1;
            } else {
                out.push(&self.partial);
            }
        }
        self.partial.clear();
        self.skipping = false;
    }
}

/// What the threads share with the source.
struct Shared {
    id: String,
    stop: AtomicBool,
    max_connections: usize,
    max_frame: usize,
    separator: Option<Vec<u8>>,
}

/// The `tcp_server` source.
pub struct TcpServer {
    id: String,
    local: SocketAddr,
    shared: Arc<Shared>,
    /// Taken out first when dropped, so that readers blocked on a full channel wake up.
    from_readers: Option<Receiver<Frames>>,
    acceptor: Option<JoinHandle<()>>,
    /// Bytes handed to the engine, for the log.
    bytes: u64,
}

impl TcpServer {
    /// Binds the configured address and starts accepting clients.
    ///
    /// # Errors
    /// A `Config` error for a bad config; an `Io` error when the address cannot be bound or the
    /// acceptor thread cannot start.
    pub fn new(setup: &Setup<'_>) -> Result<Self, PluginError> {
        let config: Config = setup.config()?;
        let id = setup.id;
        let addrs = config.validate(id)?;
        let listener = TcpListener::bind(&addrs[..]).map_err(|e| {
            PluginError::io(format_args!("'{id}': cannot listen on {}", config.url), &e)
        })?;
        let local = listener
            .local_addr()
            .map_err(|e| PluginError::io(format_args!("'{id}': listening socket"), &e))?;
        // The acceptor polls, so that it sees when to stop.
        listener
            .set_nonblocking(true)
            .map_err(|e| PluginError::io(format_args!("'{id}': listening socket"), &e))?;
        let shared = Arc::new(Shared {
            id: id.to_owned(),
            stop: AtomicBool::new(false),
            max_connections: config.max_connections,
            max_frame: config.max_frame,
            separator: config.separator.map(String::into_bytes),
        });
        let (to_source, from_readers) = mpsc::sync_channel(READ_AHEAD);
        let acceptor = {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name(format!("tcp-accept-{id}"))
                .spawn(move || accept_loop(&listener, &shared, &to_source))
                .map_err(|e| {
                    PluginError::io(format_args!("'{id}': cannot start the acceptor"), &e)
                })?
        };
        tracing::info!(
            id = %id,
            addr = %local,
            max_connections = config.max_connections,
            "tcp server listening"
        );
        Ok(Self {
            id: id.to_owned(),
            local,
            shared,
            from_readers: Some(from_readers),
            acceptor: Some(acceptor),
            bytes: 0,
        })
    }

    /// The address the server listens on (with the real port when the config said 0).
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    fn readers_lost(&self) -> PluginError {
        PluginError::new(
            ErrorKind::Other,
            format_args!("'{}': the tcp acceptor stopped unexpectedly", self.id),
        )
    }
}

impl Source for TcpServer {
    fn pull(&mut self, out: &mut SourceBatch) -> Result<Pull, PluginError> {
        let Some(from_readers) = &self.from_readers else {
            return Err(self.readers_lost());
        };
        let mut batch = match from_readers.recv_timeout(WAIT) {
            Ok(batch) => batch,
            Err(RecvTimeoutError::Timeout) => return Ok(Pull::Idle),
            Err(RecvTimeoutError::Disconnected) => return Err(self.readers_lost()),
        };
        loop {
            for frame in batch.iter() {
                out.push(frame);
            }
            self.bytes += batch.byte_len() as u64;
            if out.byte_len() >= PULL_BYTES {
                return Ok(Pull::Ready);
            }
            batch = match from_readers.try_recv() {
                Ok(batch) => batch,
                // A lost acceptor shows in the next pull.
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => return Ok(Pull::Ready),
            };
        }
    }
}

impl Drop for TcpServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        // Readers blocked on a full channel fail their send and stop.
        drop(self.from_readers.take());
        if let Some(acceptor) = self.acceptor.take()
            && acceptor.join().is_err()
        {
            tracing::error!(id = %self.id, "the tcp acceptor panicked");
        }
        tracing::info!(id = %self.id, addr = %self.local, bytes = self.bytes, "tcp server closed");
    }
}

/// Accepts clients until told to stop, then closes the listener and waits for the readers.
fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>, to_source: &SyncSender<Frames>) {
    let mut clients: Vec<JoinHandle<()>> = Vec::new();
    while !shared.stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, peer)) => {
                clients.retain(|client| !client.is_finished());
                if clients.len() >= shared.max_connections {
                    tracing::warn!(
                        id = %shared.id,
                        peer = %peer,
                        max_connections = shared.max_connections,
                        "too many clients: connection closed"
                    );
                    drop(stream);
                    continue;
                }
                let reader = {
                    let shared = Arc::clone(shared);
                    let to_source = to_source.clone();
                    thread::Builder::new()
                        .name(format!("tcp-read-{}", shared.id))
                        .spawn(move || serve_client(stream, peer, &shared, &to_source))
                };
                match reader {
                    Ok(handle) => {
                        clients.push(handle);
                        tracing::debug!(
                            id = %shared.id,
                            peer = %peer,
                            clients = clients.len(),
                            "client connected"
                        );
                    }
                    Err(e) => tracing::error!(
                        id = %shared.id,
                        peer = %peer,
                        error = %e,
                        "cannot start a reader thread: connection closed"
                    ),
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                clients.retain(|client| !client.is_finished());
                thread::sleep(ACCEPT_POLL);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                // Out of file descriptors and the like: wait, then go on.
                tracing::warn!(id = %shared.id, error = %e, "accepting a client failed");
                thread::sleep(WAIT);
            }
        }
    }
    for client in clients {
        // A reader that panicked has nothing left to clean up.
        let _ = client.join();
    }
}

/// Reads one client until it closes, an error, or the source stops.
fn serve_client(
    mut stream: TcpStream,
    peer: SocketAddr,
    shared: &Shared,
    to_source: &SyncSender<Frames>,
) {
    let setup = stream
        .set_nonblocking(false)
        .and_then(|()| stream.set_read_timeout(Some(WAIT)));
    if let Err(e) = setup {
        tracing::warn!(id = %shared.id, peer = %peer, error = %e, "cannot set up a client");
        return;
    }
    let mut splitter = shared
        .separator
        .as_deref()
        .map(|separator| Splitter::new(separator, shared.max_frame));
    let mut buf = vec![
        0;
        if splitter.is_some() {
            LINE_READ
        } else {
            shared.max_frame
        }
    ];
    let mut bytes = 0_u64;
    let mut batch = Frames::new();
    let mut dropped = 0;
    let ended = loop {
        if shared.stop.load(Ordering::Relaxed) {
            break "the server stopped";
        }
        match stream.read(&mut buf) {
            Ok(0) => {
                if let Some(splitter) = &mut splitter {
                    splitter.finish(&mut batch);
                    if splitter.dropped() > dropped {
                        tracing::warn!(
                            id = %shared.id,
                            peer = %peer,
                            max_frame = shared.max_frame,
                            dropped_lines = splitter.dropped(),
                            "dropped a last line longer than max_frame"
                        );
                    }
                }
                if !batch.is_empty() {
                    let _ = to_source.send(std::mem::take(&mut batch));
                }
                break "the client closed";
            }
            Ok(n) => {
                bytes += n as u64;
                match &mut splitter {
                    Some(splitter) => {
                        splitter.feed(&buf[..n], &mut batch);
                        if splitter.dropped() > dropped {
                            dropped = splitter.dropped();
                            tracing::warn!(
                                id = %shared.id,
                                peer = %peer,
                                max_frame = shared.max_frame,
                                dropped_lines = dropped,
                                "dropped a line longer than max_frame"
                            );
                        }
                    }
                    None => batch.push(&buf[..n]),
                }
                if !batch.is_empty() && to_source.send(std::mem::take(&mut batch)).is_err() {
                    break "the server stopped";
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => {
                tracing::debug!(id = %shared.id, peer = %peer, error = %e, "reading a client failed");
                break "reading failed";
            }
        }
    };
    tracing::debug!(
        id = %shared.id,
        peer = %peer,
        bytes,
        dropped_lines = splitter.as_ref().map_or(0, Splitter::dropped),
        why = ended,
        "client disconnected"
    );
}

temblor_shim::export_plugin! {
    name: "tcp_server",
    kind: Connector,
    source: TcpServer::new,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::{
        io::Write,
        time::{Duration, Instant},
    };
    use temblor_shim::Value;

    fn config(fields: &[(&str, Value)]) -> Value {
        Value::Object(fields.iter().cloned().collect())
    }

    fn server(fields: &[(&str, Value)]) -> TcpServer {
        let mut fields = fields.to_vec();
        if !fields.iter().any(|(k, _)| *k == "url") {
            fields.push(("url", Value::from("127.0.0.1:0")));
        }
        let cfg = config(&fields);
        TcpServer::new(&Setup {
            id: "t",
            config: &cfg,
        })
        .expect("server")
    }

    fn split_all(separator: &str, max: usize, pieces: &[&[u8]]) -> (Vec<Vec<u8>>, u64) {
        let mut splitter = Splitter::new(separator.as_bytes(), max);
        let mut out = SourceBatch::new();
        for piece in pieces {
            splitter.feed(piece, &mut out);
        }
        splitter.finish(&mut out);
        (out.iter().map(<[u8]>::to_vec).collect(), splitter.dropped())
    }

    fn strings(frames: &[Vec<u8>]) -> Vec<&str> {
        frames
            .iter()
            .map(|f| std::str::from_utf8(f).expect("utf-8"))
            .collect()
    }

    #[test]
    fn defaults() {
        let c: Config = temblor_shim::from_value(&config(&[])).expect("config");
        assert_eq!(c.url, "127.0.0.1:4242");
        assert_eq!(c.max_connections, 64);
        assert_eq!(c.max_frame, 65536);
        assert_eq!(c.separator, None);
    }

    #[test]
    fn bad_values_are_config_errors() {
        for (fields, needle) in [
            (
                vec![("max_connections", Value::from(0_u64))],
                "max_connections",
            ),
            (vec![("max_frame", Value::from(0_u64))], "max_frame"),
            (
                vec![("max_frame", Value::from(MAX_FRAME_LIMIT as u64 + 1))],
                "max_frame",
            ),
            (vec![("separator", Value::from(""))], "separator"),
            (vec![("separator", Value::from("123456789"))], "separator"),
            (vec![("url", Value::from("no port"))], "url"),
        ] {
            let cfg = config(&fields);
            let err = TcpServer::new(&Setup {
                id: "bad",
                config: &cfg,
            })
            .err()
            .expect("refused");
            assert_eq!(err.kind, ErrorKind::Config, "{err}");
            assert!(err.message.contains(needle), "{err}");
            assert!(err.message.contains("'bad'"), "{err}");
        }
    }

    #[test]
    fn splitter_keeps_partial_lines_across_reads() {
        let (lines, dropped) = split_all("\n", 100, &[b"on", b"e\ntw", b"o\n\nthr", b"ee"]);
        assert_eq!(strings(&lines), ["one", "two", "three"]);
        assert_eq!(dropped, 0);
    }

    #[test]
    fn splitter_finds_multi_byte_separators_split_across_reads() {
        let (lines, _) = split_all("\r\n", 100, &[b"a\r", b"\nb\r\n", b"c\r", b"\r\n"]);
        assert_eq!(strings(&lines), ["a", "b", "c\r"]);
        let (lines, _) = split_all("<|>", 100, &[b"x<", b"|", b">y<|", b">"]);
        assert_eq!(strings(&lines), ["x", "y"]);
    }

    #[test]
    fn splitter_drops_over_long_lines_and_goes_on() {
        // Complete in one read.
        let (lines, dropped) = split_all("\n", 4, &[b"ok\ntoolong\nfine\n"]);
        assert_eq!(strings(&lines), ["ok", "fine"]);
        assert_eq!(dropped, 1);
        // Spread over reads: memory stays bounded while the line is skipped.
        let mut splitter = Splitter::new(b"\n", 4);
        let mut out = SourceBatch::new();
        splitter.feed(b"abcdefgh", &mut out);
        assert!(splitter.partial.len() <= 4);
        splitter.feed(&[b'x'; 10_000], &mut out);
        assert!(splitter.partial.is_empty());
        splitter.feed(b"yy\nnext\nlast", &mut out);
        splitter.finish(&mut out);
        let lines: Vec<Vec<u8>> = out.iter().map(<[u8]>::to_vec).collect();
        assert_eq!(strings(&lines), ["next", "last"]);
        assert_eq!(splitter.dropped(), 1);
        // A line of exactly `max` bytes is kept, also as the last one.
        let (lines, dropped) = split_all("\n", 4, &[b"abcd\nefgh"]);
        assert_eq!(strings(&lines), ["abcd", "efgh"]);
        assert_eq!(dropped, 0);
        let (lines, dropped) = split_all("\n", 4, &[b"abcd\nefghi"]);
        assert_eq!(strings(&lines), ["abcd"]);
        assert_eq!(dropped, 1);
    }

    #[test]
    fn idle_pull_returns_within_about_100_ms() {
        let mut server = server(&[]);
        let mut frames = SourceBatch::new();
        let begin = Instant::now();
        assert_eq!(server.pull(&mut frames).expect("pull"), Pull::Idle);
        assert!(begin.elapsed() >= Duration::from_millis(90));
        assert!(begin.elapsed() < Duration::from_secs(1));
        assert!(frames.is_empty());
    }

    #[test]
    fn raw_chunks_are_at_most_max_frame_bytes() {
        let mut server = server(&[("max_frame", Value::from(10_u64))]);
        let mut client = TcpStream::connect(server.local_addr()).expect("connect");
        let data: Vec<u8> = (0..1000_u32).map(|i| b'a' + (i % 26) as u8).collect();
        client.write_all(&data).expect("write");
        drop(client);
        let mut got: Vec<u8> = Vec::new();
        let mut frames = SourceBatch::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while got.len() < data.len() && Instant::now() < deadline {
            frames.clear();
            server.pull(&mut frames).expect("pull");
            assert!(frames.iter().all(|f| !f.is_empty() && f.len() <= 10));
            got.extend(frames.iter().flatten());
        }
        assert_eq!(got, data);
    }

    #[test]
    fn dropping_the_source_closes_the_listener_and_the_clients() {
        let server = server(&[]);
        let addr = server.local_addr();
        let mut client = TcpStream::connect(addr).expect("connect");
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let begin = Instant::now();
        drop(server);
        assert!(
            begin.elapsed() < Duration::from_secs(2),
            "{:?}",
            begin.elapsed()
        );
        let mut buf = [0; 1];
        // The server closed the client: end of stream (or a reset).
        assert!(matches!(client.read(&mut buf), Ok(0) | Err(_)));
        assert!(TcpStream::connect(addr).is_err(), "nobody listens any more");
        TcpListener::bind(addr).expect("the port is free again");
    }
}
