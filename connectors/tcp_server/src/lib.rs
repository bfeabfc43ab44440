//! The `tcp_server` connector: listens on a TCP address, plain or over TLS; each client
//! connection is a stream of its own.
//!
//! Source only (asking for a sink is an `Unsupported` error). The constructor binds the address
//! and loads the TLS certificate and key, so a port in use or a bad certificate is reported when
//! the engine starts. The connector runs on the plugin's tokio runtime (`temblor-net`): an
//! accepting task takes in clients, up to `max_connections` at once: a client beyond that is
//! closed at once, with a warning in the log (it starts no stream). Each client gets a task of
//! its own (with `tls`, it first completes the TLS handshake, within 10 s; a client whose
//! handshake fails is logged and closed, and starts no stream), which hands what it reads to
//! `pull` through a bounded queue (`temblor_net::inbox`): when the engine is slower than the
//! clients, the tasks stop reading and TCP slows the clients down. Every item queued wakes the
//! engine; `pull` takes what is queued (at most 256 items or about 1 MiB per pull) and says
//! `Idle` at once when nothing is, so an idle server costs no CPU (a host that offers no
//! wake-up gets the old behaviour: `pull` waits up to 100 ms for input). The source never ends
//! by itself. When it is dropped (the engine stops, restarts or reloads it), the accepting task
//! and every client's task are stopped and joined before the drop returns: the listening socket
//! and every client are closed then.
//!
//! **Streams.** Each accepted connection gets a fresh stream id (1, 2, 3, ... for the life of
//! the source) and is handed over as a stream (see `docs/delivery.md`): `start_stream` with its
//! metadata when it is accepted, every read from it (a raw chunk of at most `max_frame` bytes,
//! cut wherever the read fell) as a chunk of that stream, and `end_stream` when the client
//! closes or reading it fails. The server does not split anything: framing is the connector's
//! `preprocessors`, which the engine runs **per connection**, so a `separate` preprocessor
//! keeps a partial line per client, lines of clients sending at the same time never mix, and a
//! client's last line without a separator is one last frame when it closes. Without
//! preprocessors, each chunk is one frame (a chunk never mixes two clients' bytes). Over TLS
//! the chunks are the decrypted bytes, cut the same way.
//!
//! **Acknowledged data.** A chunk is *acknowledged* once `pull` has handed it to the engine: the
//! engine splits it into frames, counts the events in this connector's `events_out` (see
//! `temblor run --stats-json`), decodes them and, on a shutdown (SIGINT, SIGTERM, an `exit`
//! connector), drains and flushes them through the pipelines into the sinks before the process
//! exits. So after a shutdown the sinks hold exactly what was acknowledged, in the order each
//! client sent it, none twice. (A connection still open then was never ended: the engine
//! flushes its partial last frame when the source is done, as for any stream that is not
//! ended.) What is not acknowledged when the engine stops pulling is dropped when the source is
//! dropped: chunks the client tasks had read but not handed over (at most 64 queued ahead of
//! `pull`, and one per client waiting for room), and whatever is still in the sockets. TCP
//! carries no reply from this server, so a client cannot tell where that cut fell: a protocol
//! that must not lose data on a restart needs acknowledgements of its own (or a client that
//! resends from a point it learns otherwise).
//!
//! ## Config
//! - `url` (string, default `"127.0.0.1:4242"`): the `host:port` to listen on. The default
//!   listens on loopback only; `"0.0.0.0:4242"` listens on every interface. Port 0 picks a free
//!   port (the log says which: `tcp server listening` with `addr=`).
//! - `max_connections` (integer, default 64, at least 1): clients served at once.
//! - `max_frame` (integer, default 65536, 1 to 16777216): the most bytes read from a client at
//!   once, so the largest chunk handed over. Memory per client is about this much (plus what
//!   the engine's preprocessors keep: `separate` keeps a partial line of at most its
//!   `max_length`).
//! - `tls` (table, optional): serve TLS (1.2 and 1.3, rustls) instead of plain TCP:
//!   - `cert` (string, required): PEM file with the certificate chain, the server's own
//!     certificate first;
//!   - `key` (string, required): PEM file with its private key (PKCS#8, PKCS#1 or SEC1).
//!
//!   A file that cannot be read, holds no certificate or key, or a key that does not match the
//!   certificate is a config error when the engine starts, naming the connector, the field and
//!   the file. Clients are not asked for certificates.
//!
//! There is no `separator` any more (it was removed with interface 2): give the connector
//! `preprocessors = [{ name = "separate", separator = "\r\n" }]` instead (the default
//! separator is `"\n"`). A config that still has it is refused with a config error that says so.
//!
//! ## Metadata
//! Every event from a connection has:
//! - `meta.peer` (string): the client's address, `"ip:port"` (e.g. `"127.0.0.1:50312"`,
//!   `"[::1]:50312"`), set by this connector (with or without TLS);
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
//! [[connector]]
//! id = "secure-lines"
//! plugin = "tcp_server"
//! codec = "json"
//! preprocessors = ["separate"]
//! config = { url = "0.0.0.0:4443", tls = { cert = "/etc/temblor/server.pem", key = "/etc/temblor/server.key" } }
//!
//! [[pipeline]]
//! id = "main"
//! operators = [{ set = { "event.client" = 'meta.peer' } }]
//! ```
//! (`openssl s_client -connect 127.0.0.1:4443 -CAfile ca.pem -quiet` is a TLS client to try it
//! with.)

use std::{net::SocketAddr, time::Duration};

use temblor_net::{
    acceptor::{self, Listener, Options, Refuse},
    addr, check,
    feed::{ChunkServer, Intake},
    tls::ServerTls,
};
use temblor_shim::{
    Notify, PluginError, Pull, Setup, Source, SourceBatch, serde::Deserialize, tracing,
};

/// How the source takes in what the client tasks read: 64 items (chunks, stream starts and
/// ends) queued ahead of `pull`, at most 256 items or about 1 MiB per pull, a 100 ms wait for
/// input without a wake-up from the engine, and 2 s for the tasks to end after a stop (they end
/// at once: each watches the stop).
const INTAKE: Intake = Intake::new("tcp acceptor", 64, Duration::from_secs(2)).pull_items(256);

/// The largest `max_frame` accepted.
pub const MAX_FRAME_LIMIT: usize = 16 * 1024 * 1024;

/// The connector's `config`.
#[derive(Deserialize, Debug, Clone)]
#[serde(crate = "temblor_shim::serde", deny_unknown_fields)]
pub struct Config {
    /// The `host:port` to listen on.
    #[serde(default = "default_url")]
    pub url: String,
    /// Clients served at once.
    #[serde(default = "acceptor::default_max_connections")]
    pub max_connections: usize,
    /// The largest chunk read.
    #[serde(default = "default_max_frame")]
    pub max_frame: usize,
    /// TLS: the certificate chain and key (none: plain TCP).
    #[serde(default)]
    pub tls: Option<ServerTls>,
}

fn default_url() -> String {
    "127.0.0.1:4242".to_owned()
}

fn default_max_frame() -> usize {
    64 * 1024
}

/// The error for a config that still has the `separator` of interface 1.
fn separator_removed() -> PluginError {
    PluginError::config(format_args!(
        "unknown field `separator`: tcp_server no longer splits lines; the engine now \
         runs the connector's preprocessors per connection, so use the `separate` preprocessor \
         instead, e.g. preprocessors = [{{ name = \"separate\", separator = \"\\n\" }}] \
         (and remove `separator` from `config`)"
    ))
}

impl Config {
    /// Reads the config, with a clear word for the removed `separator`.
    fn read(setup: &Setup<'_>) -> Result<Self, PluginError> {
        if setup.config.get("separator").is_some() {
            return Err(separator_removed());
        }
        setup.config()
    }

    /// Checks the values serde cannot; returns the address to listen on.
    fn validate(&self) -> Result<Vec<SocketAddr>, PluginError> {
        check::at_least_one("max_connections", self.max_connections)?;
        check::in_range("max_frame", self.max_frame, MAX_FRAME_LIMIT)?;
        addr::resolve("url", &self.url)
    }
}

/// A TLS file that cannot be read is a mistake in the config, as one that holds no key is.
fn as_config_error(e: PluginError) -> PluginError {
    PluginError::config(e.message)
}

/// The `tcp_server` source.
pub struct TcpServer {
    local: SocketAddr,
    /// The accepting task and the client tasks, and what they read: stopped and joined when
    /// dropped.
    server: ChunkServer,
}

impl TcpServer {
    /// Loads the TLS files (if any), binds the configured address and starts accepting clients.
    ///
    /// # Errors
    /// A `Config` error for a bad config (a TLS file among them); an `Io` error when the
    /// address cannot be bound or the network runtime cannot start.
    pub fn new(setup: &Setup<'_>) -> Result<Self, PluginError> {
        let config = Config::read(setup)?;
        let addrs = config.validate()?;
        let tls = config
            .tls
            .as_ref()
            .map(|tls| tls.acceptor(&[]).map_err(as_config_error))
            .transpose()?;
        let listener = std::net::TcpListener::bind(&addrs[..])
            .map_err(|e| PluginError::io(format_args!("cannot listen on {}", config.url), &e))?;
        let local = listener
            .local_addr()
            .map_err(|e| PluginError::io(format_args!("listening socket"), &e))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| PluginError::io(format_args!("listening socket"), &e))?;
        let listener =
            temblor_net::runtime::register("listening socket", || Listener::tcp(listener))?;
        let options = Options {
            id: setup.id.to_owned(),
            max_connections: config.max_connections,
            refuse: Refuse::Close,
            tls,
            grace: Duration::from_secs(1),
        };
        let server = ChunkServer::start(listener, options, config.max_frame, INTAKE)?;
        tracing::info!(
            addr = %local,
            max_connections = config.max_connections,
            tls = config.tls.is_some(),
            "tcp server listening"
        );
        Ok(Self { local, server })
    }

    /// The address the server listens on (with the real port when the config said 0).
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }
}

impl Source for TcpServer {
    fn pull(&mut self, out: &mut SourceBatch) -> Result<Pull, PluginError> {
        self.server.pull(out)
    }

    fn set_notify(&mut self, notify: Notify) -> bool {
        self.server.set_notify(notify)
    }
}

temblor_shim::export_plugin! {
    name: "tcp_server",
    kind: Connector,
    source: TcpServer::new,
    shutdown: temblor_net::shutdown,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::{
        collections::BTreeMap,
        io::{Read, Write},
        net::{TcpListener, TcpStream},
        time::{Duration, Instant},
    };
    use temblor_harness::config;
    use temblor_net::testing::{self, refused};
    use temblor_shim::{Object, Value};

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
        assert!(c.tls.is_none());
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
            refused(TcpServer::new, &fields, needle);
        }
    }

    #[test]
    fn the_removed_separator_points_to_the_separate_preprocessor() {
        for separator in ["\n", "\r\n", ""] {
            let fields = [
                ("url", Value::from("127.0.0.1:0")),
                ("separator", Value::from(separator)),
            ];
            let err = refused(TcpServer::new, &fields, "`separator`");
            for needle in ["`separate` preprocessor", "preprocessors = ["] {
                assert!(err.message.contains(needle), "{needle}: {err}");
            }
        }
    }

    #[test]
    fn a_notified_source_never_waits_and_wakes_the_engine_when_a_client_sends() {
        let mut server = server(&[]);
        let wakes = testing::idle_pulls_never_wait(&mut server);
        let mut batch = SourceBatch::new();
        let mut client = TcpStream::connect(server.local_addr()).expect("connect");
        client.write_all(b"wake up\n").expect("write");
        let mut got = Streams::default();
        let deadline = Instant::now() + Duration::from_secs(10);
        while got.bytes.values().map(Vec::len).sum::<usize>() < 8 {
            assert!(Instant::now() < deadline, "timed out: {got:?}");
            // The engine pulls only once woken.
            if wakes.count() == 0 {
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
            batch.reset(0);
            server.pull(&mut batch).expect("pull");
            got.take(&batch);
        }
        assert_eq!(
            got.bytes.values().next().map(Vec::as_slice),
            Some(&b"wake up\n"[..])
        );
        // A start and a chunk: a wake for each.
        assert!(wakes.count() >= 2);
    }

    #[test]
    fn bad_tls_files_are_config_errors_naming_the_field() {
        let dir = temblor_harness::TempDir::new("tcp_server-tls");
        let junk = dir.write("junk.pem", "no pem here\n");
        let missing = dir.join("missing.pem");
        for (cert, key, field, file) in [
            (&missing, &junk, "`tls.cert`", &missing),
            (&junk, &junk, "`tls.cert`", &junk),
        ] {
            let mut tls = Object::new();
            tls.insert("cert", Value::from(cert.display().to_string()));
            tls.insert("key", Value::from(key.display().to_string()));
            let fields = [
                ("url", Value::from("127.0.0.1:0")),
                ("tls", Value::Object(tls)),
            ];
            let err = refused(TcpServer::new, &fields, field);
            assert!(err.message.contains(&file.display().to_string()), "{err}");
        }
        refused(
            TcpServer::new,
            &[("tls", Value::Object(Object::new()))],
            "cert",
        );
    }

    #[test]
    fn idle_pull_returns_within_about_100_ms() {
        testing::an_idle_pull_waits_about_100_ms(&mut server(&[]));
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
