//! The `tcp_server` connector: listens on a TCP address; each client connection is a stream of
//! its own.
//!
//! Source only (asking for a sink is an `Unsupported` error). The constructor binds the address,
//! so a port in use is reported when the engine starts. An acceptor thread takes in clients,
//! up to `max_connections` at once: a client beyond that is closed at once, with a warning in
//! the log (it starts no stream). Each client gets a reader thread of its own, which hands what
//! it reads to `pull` through a bounded channel: when the engine is slower than the clients, the
//! readers stop reading and TCP slows the clients down. `pull` waits at most 100 ms for input,
//! then says `Idle`; the source never ends by itself. When it is dropped (the engine stops), the
//! threads stop within about 100 ms, every client is closed and the listening socket is closed.
//!
//! **Streams.** Each accepted connection gets a fresh stream id (1, 2, 3, ... for the life of
//! the source) and is handed over as a stream (see `docs/delivery.md`): `start_stream` with its
//! metadata when it is accepted, every read from it (a raw chunk of at most `max_frame` bytes,
//! cut wherever the read fell) as a chunk of that stream, and `end_stream` when the client
//! closes or reading it fails. The server does not split anything: framing is the connector's
//! `preprocessors`, which the engine runs **per connection**, so a `separate` preprocessor
//! keeps a partial line per client, lines of clients sending at the same time never mix, and a
//! client's last line without a separator is one last frame when it closes. Without
//! preprocessors, each chunk is one frame (a chunk never mixes two clients' bytes).
//!
//! **Acknowledged data.** A chunk is *acknowledged* once `pull` has handed it to the engine: the
//! engine splits it into frames, counts the events in this connector's `events_out` (see
//! `temblor run --stats-json`), decodes them and, on a shutdown (SIGINT, SIGTERM, an `exit`
//! connector), drains and flushes them through the pipelines into the sinks before the process
//! exits. So after a shutdown the sinks hold exactly what was acknowledged, in the order each
//! client sent it, none twice. (A connection still open then was never ended: the engine
//! flushes its partial last frame when the source is done, as for any stream that is not
//! ended.) What is not acknowledged when the engine stops pulling is dropped when the source is
//! dropped: chunks the reader threads had read but not handed over (at most 64 ahead of
//! `pull`), and whatever is still in the sockets. TCP carries no reply from this server, so a
//! client cannot tell where that cut fell: a protocol that must not lose data on a restart
//! needs acknowledgements of its own (or a client that resends from a point it learns
//! otherwise).
//!
//! ## Config
//! - `url` (string, default `"127.0.0.1:4242"`): the `host:port` to listen on. The default
//!   listens on loopback only; `"0.0.0.0:4242"` listens on every interface. Port 0 picks a free
//!   port (the log says which).
//! - `max_connections` (integer, default 64, at least 1): clients served at once.
//! - `max_frame` (integer, default 65536, 1 to 16777216): the most bytes read from a client at
//!   once, so the largest chunk handed over. Memory per client is about this much (plus what
//!   the engine's preprocessors keep: `separate` keeps a partial line of at most its
//!   `max_length`).
//!
//! There is no `separator` any more (it was removed with interface 2): give the connector
//! `preprocessors = [{ name = "separate", separator = "\r\n" }]` instead (the default
//! separator is `"\n"`). A config that still has it is refused with a config error that says so.
//!
//! ## Metadata
//! Every event from a connection has:
//! - `meta.peer` (string): the client's address, `"ip:port"` (e.g. `"127.0.0.1:50312"`,
//!   `"[::1]:50312"`), set by this connector;
//! - `meta.connector` (this connector's id) and `meta.stream` (the connection's stream id, an
//!   integer: the same for every event of one connection, different for each connection), set
//!   by the engine.
//!
//! ## Example
//! ```toml
//! [[connector]]
//! id = "lines"
//! plugin = "tcp_server"
//! codec = "json"
//! preprocessors = [{ name = "separate", separator = "\n", max_length = 65536 }]
//! config = { url = "127.0.0.1:4242", max_connections = 16 }
//!
//! [[pipeline]]
//! id = "main"
//! operators = [{ set = { "event.client" = 'meta.peer' } }]
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

use temblor_shim::{
    ErrorKind, Object, PluginError, Pull, Setup, Source, SourceBatch, Value, serde::Deserialize,
    tracing,
};

/// How long `pull` waits for input before it says `Idle`; also how often the threads look
/// whether they should stop.
const WAIT: Duration = Duration::from_millis(100);

/// How long the acceptor sleeps when no client is waiting.
const ACCEPT_POLL: Duration = Duration::from_millis(20);

/// How many messages (chunks, stream starts and ends) the reader threads, together, may send
/// ahead of `pull`.
const READ_AHEAD: usize = 64;

/// The most bytes one `pull` appends (it stops after the chunk that crosses this).
const PULL_BYTES: usize = 1024 * 1024;

/// The largest `max_frame` accepted.
pub const MAX_FRAME_LIMIT: usize = 16 * 1024 * 1024;

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
    /// The largest chunk read.
    #[serde(default = "default_max_frame")]
    pub max_frame: usize,
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

/// The error for a config that still has the `separator` of interface 1.
fn separator_removed(id: &str) -> PluginError {
    PluginError::config(format_args!(
        "'{id}': unknown field `separator`: tcp_server no longer splits lines; the engine now \
         runs the connector's preprocessors per connection, so use the `separate` preprocessor \
         instead, e.g. preprocessors = [{{ name = \"separate\", separator = \"\\n\" }}] \
         (and remove `separator` from `config`)"
    ))
}

impl Config {
    /// Reads the config, with a clear word for the removed `separator`.
    fn read(setup: &Setup<'_>) -> Result<Self, PluginError> {
        if setup.config.get("separator").is_some() {
            return Err(separator_removed(setup.id));
        }
        setup.config()
    }

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

/// What a reader thread tells the source, in the order of its connection.
#[derive(Debug)]
enum Message {
    /// A connection was accepted.
    Start { stream: u64, peer: SocketAddr },
    /// Bytes read from it.
    Chunk { stream: u64, bytes: Vec<u8> },
    /// It closed (or reading it failed).
    End { stream: u64 },
}

/// A stream's metadata: `{"peer": "ip:port"}`.
fn peer_meta(peer: SocketAddr) -> Value {
    let mut meta = Object::with_capacity(1);
    meta.insert("peer", Value::from(peer.to_string()));
    Value::Object(meta)
}

/// What the threads share with the source.
struct Shared {
    id: String,
    stop: AtomicBool,
    max_connections: usize,
    max_frame: usize,
}

/// The `tcp_server` source.
pub struct TcpServer {
    id: String,
    local: SocketAddr,
    shared: Arc<Shared>,
    /// Taken out first when dropped, so that readers blocked on a full channel wake up.
    from_readers: Option<Receiver<Message>>,
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
        let config = Config::read(setup)?;
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

    /// Puts one reader's message into the batch.
    fn hand_over(&mut self, message: Message, out: &mut SourceBatch) {
        match message {
            Message::Start { stream, peer } => out.start_stream(stream, peer_meta(peer)),
            Message::Chunk { stream, bytes } => {
                self.bytes += bytes.len() as u64;
                out.push_stream(stream, &bytes);
            }
            Message::End { stream } => out.end_stream(stream),
        }
    }
}

impl Source for TcpServer {
    fn pull(&mut self, out: &mut SourceBatch) -> Result<Pull, PluginError> {
        let Some(from_readers) = &self.from_readers else {
            return Err(self.readers_lost());
        };
        let mut message = match from_readers.recv_timeout(WAIT) {
            Ok(message) => message,
            Err(RecvTimeoutError::Timeout) => return Ok(Pull::Idle),
            Err(RecvTimeoutError::Disconnected) => return Err(self.readers_lost()),
        };
        loop {
            self.hand_over(message, out);
            if out.byte_len() >= PULL_BYTES {
                return Ok(Pull::Ready);
            }
            let Some(from_readers) = &self.from_readers else {
                return Ok(Pull::Ready);
            };
            message = match from_readers.try_recv() {
                Ok(message) => message,
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
fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>, to_source: &SyncSender<Message>) {
    let mut clients: Vec<JoinHandle<()>> = Vec::new();
    // Stream 0 is the stream of frames pushed without one: connections count from 1.
    let mut next_stream = 1_u64;
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
                let id = next_stream;
                next_stream += 1;
                let reader = {
                    let shared = Arc::clone(shared);
                    let to_source = to_source.clone();
                    thread::Builder::new()
                        .name(format!("tcp-read-{}", shared.id))
                        .spawn(move || serve_client(stream, id, peer, &shared, &to_source))
                };
                match reader {
                    Ok(handle) => {
                        clients.push(handle);
                        tracing::debug!(
                            id = %shared.id,
                            peer = %peer,
                            stream = id,
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

/// Reads one client until it closes, an error, or the source stops: its stream's start, its
/// chunks and (unless the source stopped) its end.
fn serve_client(
    mut socket: TcpStream,
    stream: u64,
    peer: SocketAddr,
    shared: &Shared,
    to_source: &SyncSender<Message>,
) {
    let setup = socket
        .set_nonblocking(false)
        .and_then(|()| socket.set_read_timeout(Some(WAIT)));
    if let Err(e) = setup {
        tracing::warn!(id = %shared.id, peer = %peer, error = %e, "cannot set up a client");
        return;
    }
    if to_source.send(Message::Start { stream, peer }).is_err() {
        return;
    }
    let mut buf = vec![0; shared.max_frame];
    let mut bytes = 0_u64;
    // Why it ended, and whether the stream ends (a stopped source needs no end).
    let (ended, ends) = loop {
        if shared.stop.load(Ordering::Relaxed) {
            break ("the server stopped", false);
        }
        match socket.read(&mut buf) {
            Ok(0) => break ("the client closed", true),
            Ok(n) => {
                bytes += n as u64;
                let chunk = Message::Chunk {
                    stream,
                    bytes: buf[..n].to_vec(),
                };
                if to_source.send(chunk).is_err() {
                    break ("the server stopped", false);
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
                break ("reading failed", true);
            }
        }
    };
    if ends {
        // The source may be gone meanwhile: then nobody needs the end.
        let _ = to_source.send(Message::End { stream });
    }
    tracing::debug!(
        id = %shared.id,
        peer = %peer,
        stream,
        bytes,
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
        collections::BTreeMap,
        io::Write,
        time::{Duration, Instant},
    };

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

    /// What the source handed over, by stream.
    #[derive(Default, Debug)]
    struct Streams {
        /// The meta of each stream started, in the order started.
        started: Vec<(u64, Value)>,
        bytes: BTreeMap<u64, Vec<u8>>,
        ended: Vec<u64>,
        /// The most bytes in one chunk.
        largest: usize,
    }

    impl Streams {
        fn take(&mut self, batch: &SourceBatch) {
            for (range, run) in batch.all_runs() {
                if run.starts() {
                    assert!(
                        !self.started.iter().any(|(s, _)| *s == run.stream),
                        "stream {} started twice",
                        run.stream
                    );
                    self.started.push((run.stream, run.meta.clone()));
                }
                for i in range {
                    let chunk = batch.frames().get(i).expect("frame");
                    assert!(!chunk.is_empty(), "no empty chunks");
                    assert!(
                        self.started.iter().any(|(s, _)| *s == run.stream),
                        "bytes of stream {} before its start",
                        run.stream
                    );
                    assert!(!self.ended.contains(&run.stream), "bytes after the end");
                    self.largest = self.largest.max(chunk.len());
                    self.bytes
                        .entry(run.stream)
                        .or_default()
                        .extend_from_slice(chunk);
                }
                if run.ends() {
                    assert!(!self.ended.contains(&run.stream), "ended twice");
                    self.ended.push(run.stream);
                }
            }
        }

        /// Pulls until `done` says so, or 10 s passed.
        fn pull_until(&mut self, server: &mut TcpServer, done: impl Fn(&Self) -> bool) {
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut batch = SourceBatch::new();
            while !done(self) {
                assert!(Instant::now() < deadline, "timed out: {self:?}");
                batch.reset(0);
                server.pull(&mut batch).expect("pull");
                self.take(&batch);
            }
        }

        fn peer(&self, stream: u64) -> &str {
            let meta = &self
                .started
                .iter()
                .find(|(s, _)| *s == stream)
                .expect("started")
                .1;
            meta.get("peer").and_then(Value::as_str).expect("meta.peer")
        }
    }

    #[test]
    fn defaults() {
        let c: Config = temblor_shim::from_value(&config(&[])).expect("config");
        assert_eq!(c.url, "127.0.0.1:4242");
        assert_eq!(c.max_connections, 64);
        assert_eq!(c.max_frame, 65536);
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
    fn the_removed_separator_points_to_the_separate_preprocessor() {
        for separator in ["\n", "\r\n", ""] {
            let cfg = config(&[
                ("url", Value::from("127.0.0.1:0")),
                ("separator", Value::from(separator)),
            ]);
            let err = TcpServer::new(&Setup {
                id: "old",
                config: &cfg,
            })
            .err()
            .expect("refused");
            assert_eq!(err.kind, ErrorKind::Config, "{err}");
            for needle in [
                "'old'",
                "`separator`",
                "`separate` preprocessor",
                "preprocessors = [",
            ] {
                assert!(err.message.contains(needle), "{needle}: {err}");
            }
        }
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
    fn a_connection_is_a_stream_with_its_peer_and_chunks_of_at_most_max_frame() {
        let mut server = server(&[("max_frame", Value::from(10_u64))]);
        let mut client = TcpStream::connect(server.local_addr()).expect("connect");
        let me = client.local_addr().expect("local addr").to_string();
        let data: Vec<u8> = (0..1000_u32).map(|i| b'a' + (i % 26) as u8).collect();
        client.write_all(&data).expect("write");
        drop(client);
        let mut got = Streams::default();
        got.pull_until(&mut server, |s| !s.ended.is_empty());
        assert_eq!(got.started.len(), 1, "{got:?}");
        let stream = got.started[0].0;
        assert_ne!(stream, temblor_shim::DEFAULT_STREAM);
        assert_eq!(got.peer(stream), me);
        assert_eq!(got.started[0].1.as_object().map(Object::len), Some(1));
        assert_eq!(got.bytes[&stream], data);
        assert_eq!(got.ended, [stream]);
        assert!(got.largest <= 10, "{}", got.largest);
    }

    #[test]
    fn each_connection_gets_a_fresh_stream() {
        let mut server = server(&[]);
        let addr = server.local_addr();
        let mut got = Streams::default();
        let mut peers = Vec::new();
        for k in 0..3_u8 {
            let mut client = TcpStream::connect(addr).expect("connect");
            peers.push(client.local_addr().expect("addr").to_string());
            client.write_all(&[b'0' + k; 3]).expect("write");
            drop(client);
            got.pull_until(&mut server, |s| s.ended.len() == usize::from(k) + 1);
        }
        let streams: Vec<u64> = got.started.iter().map(|(s, _)| *s).collect();
        assert_eq!(streams, [1, 2, 3]);
        assert_eq!(got.ended, streams);
        for (k, stream) in streams.iter().enumerate() {
            assert_eq!(got.peer(*stream), peers[k]);
            assert_eq!(got.bytes[stream], [b'0' + k as u8; 3]);
        }
    }

    #[test]
    fn a_connection_that_sends_nothing_starts_and_ends_its_stream() {
        let mut server = server(&[]);
        let client = TcpStream::connect(server.local_addr()).expect("connect");
        let mut got = Streams::default();
        got.pull_until(&mut server, |s| !s.started.is_empty());
        assert!(got.ended.is_empty());
        drop(client);
        got.pull_until(&mut server, |s| !s.ended.is_empty());
        assert!(got.bytes.is_empty());
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
