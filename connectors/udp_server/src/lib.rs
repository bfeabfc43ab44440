//! The `udp_server` connector: receives UDP datagrams on an address; each datagram is a stream
//! of its own.
//!
//! Source only (asking for a sink is an `Unsupported` error). The constructor binds the address,
//! so a port in use is reported when the engine starts. A receiving task on the plugin's tokio
//! runtime (`temblor-net`) waits for datagrams; when one comes it takes whatever else has
//! arrived too (up to 64 datagrams or 256 KiB) and queues them, as one item, for `pull`
//! (`temblor_net::inbox`, at most 16 items ahead), which wakes the engine. `pull` takes what is
//! queued (up to about 1024 datagrams or 1 MiB per pull) and says `Idle` at once when nothing
//! is, so an idle server costs no CPU (a host that offers no wake-up gets the old behaviour:
//! `pull` waits up to 100 ms for a first datagram). UDP does not slow senders down: when the
//! engine falls behind, the queue fills, the task stops receiving, and once the kernel's socket
//! buffer is full the kernel drops datagrams (as for any UDP receiver). A datagram larger than
//! `max_frame` is dropped, counted and logged, never cut short. The source never ends by itself;
//! dropping it stops and joins the receiving task, so the socket is closed when the drop
//! returns. A receive error other than a signal or an ICMP report fails the next `pull` with an
//! `Io` error (the engine restarts the source).
//!
//! **Streams.** Each datagram is handed over as a stream of its own (see `docs/delivery.md`),
//! with a fresh stream id (1, 2, 3, ... for the life of the source): `start_stream` with its
//! metadata, the datagram as the stream's one chunk, and `end_stream`. So the connector's
//! `preprocessors` run on each datagram alone (with `separate`, a datagram of several lines
//! gives one frame per line, and a last line without a separator is one frame too; nothing is
//! carried over to the next datagram), and every event knows the datagram's sender. Without
//! preprocessors, each datagram is one frame; an empty datagram is an empty frame.
//!
//! ## Config
//! - `url` (string, default `"127.0.0.1:4243"`): the `host:port` to listen on. The default
//!   listens on loopback only; `"0.0.0.0:4243"` listens on every interface. Port 0 picks a free
//!   port (the log says which: `udp server listening` with `addr=`).
//! - `max_frame` (integer, default 65535, 1 to 65535): the largest datagram kept.
//!
//! ## Metadata
//! Every event from a datagram has:
//! - `meta.peer` (string): the sender's address, `"ip:port"` (e.g. `"127.0.0.1:50312"`,
//!   `"[::1]:50312"`), set by this connector;
//! - `meta.connector` (this connector's id) and `meta.stream` (the datagram's stream id, an
//!   integer: the same for the events of one datagram, different for each datagram), set by
//!   the engine.
//!
//! ## Example
//! ```toml
//! [[connector]]
//! id = "metrics"
//! plugin = "udp_server"
//! codec = "json"
//! preprocessors = ["separate"] # several JSON lines in one datagram
//! config = { url = "127.0.0.1:4243", max_frame = 8192 }
//!
//! [[pipeline]]
//! id = "main"
//! operators = [{ set = { "event.sender" = 'meta.peer' } }]
//! ```

use std::{
    io,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use temblor_net::{
    StopSignal, addr, check,
    feed::{Fed, Feed, Intake},
    tokio::{self, net::UdpSocket},
};
use temblor_shim::{
    Notify, Object, PluginError, Pull, Setup, Source, SourceBatch, Value, serde::Deserialize,
    tracing,
};

/// How the source takes in what the receiving task received: 16 items (groups of datagrams)
/// queued ahead of `pull`, at most 256 of them or about 1 MiB per pull (it stops after the item
/// that crosses this), a 100 ms wait for a first datagram without a wake-up from the engine, and
/// 2 s for the task to end after a stop (it ends at once).
const INTAKE: Intake = Intake::new("udp receiver", 16, Duration::from_secs(2)).pull_items(256);

/// The most datagrams the task groups into one item.
const GROUP_DATAGRAMS: usize = 64;

/// The most bytes of datagrams the task groups into one item (it stops after the datagram that
/// crosses this).
const GROUP_BYTES: usize = 256 * 1024;

/// The most datagrams one `pull` appends (it stops after the item that crosses this).
const PULL_DATAGRAMS: usize = 1024;

/// The largest datagram UDP carries.
pub const MAX_DATAGRAM: usize = 65535;

/// The connector's `config`.
#[derive(Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(crate = "temblor_shim::serde", deny_unknown_fields)]
pub struct Config {
    /// The `host:port` to listen on.
    #[serde(default = "default_url")]
    pub url: String,
    /// The largest datagram kept.
    #[serde(default = "default_max_frame")]
    pub max_frame: usize,
}

fn default_url() -> String {
    "127.0.0.1:4243".to_owned()
}

fn default_max_frame() -> usize {
    MAX_DATAGRAM
}

/// Datagrams received together: their bytes one after another, and each one's sender and end.
#[derive(Debug, Default)]
struct Datagrams {
    bytes: Vec<u8>,
    ends: Vec<(SocketAddr, usize)>,
}

impl Datagrams {
    fn push(&mut self, peer: SocketAddr, datagram: &[u8]) {
        self.bytes.extend_from_slice(datagram);
        self.ends.push((peer, self.bytes.len()));
    }

    fn full(&self) -> bool {
        self.ends.len() >= GROUP_DATAGRAMS || self.bytes.len() >= GROUP_BYTES
    }

    /// Each datagram's sender and bytes, in the order received.
    fn iter(&self) -> impl Iterator<Item = (SocketAddr, &[u8])> + '_ {
        let mut start = 0;
        self.ends.iter().map(move |&(peer, end)| {
            let datagram = &self.bytes[start..end];
            start = end;
            (peer, datagram)
        })
    }
}

/// What the receiving task tells the source.
#[derive(Debug)]
enum Message {
    /// Datagrams received.
    Datagrams(Datagrams),
    /// Receiving failed; the task has ended.
    Failed(io::Error),
}

/// The `udp_server` source.
pub struct UdpServer {
    local: SocketAddr,
    /// The receiving task and what it received, for `pull`: stopped and joined when dropped.
    fed: Fed<Message>,
    /// Datagrams dropped for being larger than `max_frame` (counted by the task).
    dropped: Arc<AtomicU64>,
    /// A receive error after datagrams that came before it: the next pull reports it.
    failed: Option<io::Error>,
    streams: Streams,
}

/// What `pull` keeps: a stream per datagram.
struct Streams {
    local: SocketAddr,
    received: u64,
    /// The id of the next datagram's stream.
    next_stream: u64,
    /// The last sender and its `meta`, reused while datagrams come from it.
    last_peer: Option<(SocketAddr, Value)>,
}

impl UdpServer {
    /// Binds the configured address and starts receiving.
    ///
    /// # Errors
    /// A `Config` error for a bad config; an `Io` error when the address cannot be bound or the
    /// network runtime cannot start.
    pub fn new(setup: &Setup<'_>) -> Result<Self, PluginError> {
        let config: Config = setup.config()?;
        let id = setup.id;
        check::in_range("max_frame", config.max_frame, MAX_DATAGRAM)?;
        let addrs = addr::resolve("url", &config.url)?;
        let socket = std::net::UdpSocket::bind(&addrs[..])
            .map_err(|e| PluginError::io(format_args!("cannot listen on {}", config.url), &e))?;
        let setup_socket = |socket: &std::net::UdpSocket| {
            socket.set_nonblocking(true)?;
            socket.local_addr()
        };
        let local =
            setup_socket(&socket).map_err(|e| PluginError::io(format_args!("udp socket"), &e))?;
        let socket = temblor_net::runtime::register("udp socket", || UdpSocket::from_std(socket))?;
        let (mut fed, feed) = Fed::new(INTAKE)?;
        let dropped = Arc::new(AtomicU64::new(0));
        let receiver = Receiver {
            id: id.to_owned(),
            socket,
            max_frame: config.max_frame,
            dropped: Arc::clone(&dropped),
            feed,
        };
        let stop = fed.service().signal();
        fed.service().spawn(receiver.run(stop));
        tracing::info!(addr = %local, "udp server listening");
        Ok(Self {
            local,
            fed,
            dropped,
            failed: None,
            streams: Streams {
                local,
                received: 0,
                // Stream 0 is the stream of frames pushed without one: datagrams count from 1.
                next_stream: 1,
                last_peer: None,
            },
        })
    }

    /// The address the server listens on (with the real port when the config said 0).
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// How many datagrams were dropped for being larger than `max_frame`.
    #[must_use]
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl Streams {
    /// The metadata of a datagram from `peer`: `{"peer": "ip:port"}`.
    fn meta(&mut self, peer: SocketAddr) -> Value {
        match &self.last_peer {
            Some((last, meta)) if *last == peer => meta.clone(),
            _ => {
                let mut meta = Object::with_capacity(1);
                meta.insert("peer", Value::from(peer.to_string()));
                let meta = Value::Object(meta);
                self.last_peer = Some((peer, meta.clone()));
                meta
            }
        }
    }

    fn failure(&self, e: &io::Error) -> PluginError {
        PluginError::io(format_args!("receiving on {}", self.local), e)
    }

    /// Hands over each datagram as a stream of its own.
    fn hand_over(&mut self, datagrams: &Datagrams, out: &mut SourceBatch) {
        for (peer, datagram) in datagrams.iter() {
            let stream = self.next_stream;
            self.next_stream += 1;
            let meta = self.meta(peer);
            out.start_stream(stream, meta);
            out.push_stream(stream, datagram);
            out.end_stream(stream);
            self.received += 1;
        }
    }
}

impl Source for UdpServer {
    fn pull(&mut self, out: &mut SourceBatch) -> Result<Pull, PluginError> {
        if let Some(e) = self.failed.take() {
            return Err(self.streams.failure(&e));
        }
        // With the engine's wake-up this does not wait; without it, up to the intake's wait.
        let Self {
            fed,
            streams,
            failed,
            ..
        } = self;
        fed.pull(out, |message, out| match message {
            Message::Datagrams(datagrams) => {
                streams.hand_over(&datagrams, out);
                Ok(out.len() < PULL_DATAGRAMS)
            }
            Message::Failed(e) if out.is_empty() => Err(streams.failure(&e)),
            Message::Failed(e) => {
                *failed = Some(e);
                Ok(false)
            }
        })
    }

    fn set_notify(&mut self, notify: Notify) -> bool {
        self.fed.set_notify(notify)
    }
}

impl Drop for UdpServer {
    fn drop(&mut self) {
        // Stops the receiving task and waits for it: the socket is closed when this returns.
        self.fed.service().stop();
        tracing::info!(
            addr = %self.local,
            received = self.streams.received,
            dropped = self.dropped(),
            "udp server closed"
        );
    }
}

/// The receiving task's state.
struct Receiver {
    id: String,
    socket: UdpSocket,
    max_frame: usize,
    dropped: Arc<AtomicU64>,
    feed: Feed<Message>,
}

/// What one receive gave.
enum Got {
    /// A datagram of this many bytes, from this sender.
    Datagram(usize, SocketAddr),
    /// Nothing (a signal, an ICMP report for something this socket sent: it sends nothing).
    Nothing,
}

impl Receiver {
    /// Receives until the source stops or receiving fails.
    async fn run(self, mut stop: StopSignal) {
        // One byte more than `max_frame`, so that a larger datagram shows.
        let mut buf = vec![0; self.max_frame + 1];
        loop {
            let first = tokio::select! {
                got = self.socket.recv_from(&mut buf) => got,
                () = stop.stopped() => return,
            };
            let mut group = Datagrams::default();
            let mut failed = None;
            let mut got = first;
            // The first datagram, then whatever else has arrived, without waiting.
            loop {
                match got.map_or_else(Self::classify, |(n, peer)| Ok(Got::Datagram(n, peer))) {
                    Ok(Got::Datagram(n, peer)) => self.take(&mut group, peer, &buf[..n]),
                    Ok(Got::Nothing) => {}
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
                if group.full() {
                    break;
                }
                got = match self.socket.try_recv_from(&mut buf) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    got => got,
                };
            }
            if !group.ends.is_empty() && !self.send(Message::Datagrams(group), &mut stop).await {
                return;
            }
            if let Some(e) = failed {
                tracing::warn!(connector = %self.id, error = %e, "receiving failed");
                let _ = self.send(Message::Failed(e), &mut stop).await;
                return;
            }
        }
    }

    /// A receive error that is no failure, or the failure.
    fn classify(e: io::Error) -> io::Result<Got> {
        match e.kind() {
            io::ErrorKind::Interrupted | io::ErrorKind::ConnectionRefused => Ok(Got::Nothing),
            _ => Err(e),
        }
    }

    /// Adds a datagram to the group, or drops it when it is larger than `max_frame`.
    fn take(&self, group: &mut Datagrams, peer: SocketAddr, datagram: &[u8]) {
        if datagram.len() > self.max_frame {
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::warn!(
                connector = %self.id,
                peer = %peer,
                max_frame = self.max_frame,
                dropped,
                "dropped a datagram larger than max_frame"
            );
        } else {
            group.push(peer, datagram);
        }
    }

    /// Queues `message` for `pull`, waiting while the queue is full; false when the source
    /// stops or is gone.
    async fn send(&self, message: Message, stop: &mut StopSignal) -> bool {
        self.feed.send(message, stop).await
    }
}

temblor_shim::export_plugin! {
    name: "udp_server",
    kind: Connector,
    source: UdpServer::new,
    shutdown: temblor_net::shutdown,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::{net::UdpSocket, time::Instant};
    use temblor_harness::config;
    use temblor_net::testing::{self, refused};
    use temblor_shim::Value;

    fn server(max_frame: u64) -> UdpServer {
        let cfg = config(&[
            ("url", Value::from("127.0.0.1:0")),
            ("max_frame", Value::from(max_frame)),
        ]);
        UdpServer::new(&Setup {
            id: "t",
            config: &cfg,
        })
        .expect("server")
    }

    #[test]
    fn defaults() {
        let c: Config = temblor_shim::from_value(&config(&[])).expect("config");
        assert_eq!(c.url, "127.0.0.1:4243");
        assert_eq!(c.max_frame, 65535);
    }

    #[test]
    fn bad_values_are_config_errors() {
        for (fields, needle) in [
            (vec![("max_frame", Value::from(0_u64))], "max_frame"),
            (vec![("max_frame", Value::from(65536_u64))], "max_frame"),
            (vec![("url", Value::from("nowhere"))], "url"),
        ] {
            refused(UdpServer::new, &fields, needle);
        }
    }

    #[test]
    fn a_notified_source_never_waits_and_wakes_the_engine_for_datagrams() {
        let mut server = server(100);
        let wakes = testing::idle_pulls_never_wait(&mut server);
        let mut batch = SourceBatch::new();
        let client = UdpSocket::bind("127.0.0.1:0").expect("bind");
        client.send_to(b"wake", server.local_addr()).expect("send");
        let deadline = Instant::now() + Duration::from_secs(10);
        while wakes.count() == 0 {
            assert!(Instant::now() < deadline, "never woken");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(server.pull(&mut batch).expect("pull"), Pull::Ready);
        let got: Vec<&[u8]> = batch.iter().collect();
        assert_eq!(got, [&b"wake"[..]]);
        batch.reset(0);
        assert_eq!(server.pull(&mut batch).expect("pull"), Pull::Idle);
    }

    #[test]
    fn idle_pull_returns_within_about_100_ms() {
        testing::an_idle_pull_waits_about_100_ms(&mut server(100));
    }

    /// (stream, meta.peer, datagram) for each stream in `batch`, checking that each is one
    /// run that starts and ends it.
    fn datagrams(batch: &SourceBatch) -> Vec<(u64, String, Vec<u8>)> {
        assert_eq!(batch.runs().len(), batch.len(), "one run per datagram");
        batch
            .all_runs()
            .map(|(range, run)| {
                assert!(run.starts() && run.ends(), "{run:?}");
                assert_eq!(range.len(), 1, "one chunk per datagram");
                let peer = run
                    .meta
                    .get("peer")
                    .and_then(Value::as_str)
                    .expect("meta.peer")
                    .to_owned();
                assert_eq!(run.meta.as_object().map(Object::len), Some(1));
                let bytes = batch.frames().get(range.start).expect("frame").to_vec();
                (run.stream, peer, bytes)
            })
            .collect()
    }

    #[test]
    fn each_datagram_is_a_stream_with_its_peer() {
        let mut server = server(100);
        let a = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let b = UdpSocket::bind("127.0.0.1:0").expect("bind");
        a.send_to(b"from a", server.local_addr()).expect("send");
        b.send_to(b"from b\nand more", server.local_addr())
            .expect("send");
        a.send_to(b"a again", server.local_addr()).expect("send");
        let mut batch = SourceBatch::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while batch.len() < 3 && Instant::now() < deadline {
            server.pull(&mut batch).expect("pull");
        }
        let (pa, pb) = (
            a.local_addr().expect("addr").to_string(),
            b.local_addr().expect("addr").to_string(),
        );
        assert_eq!(
            datagrams(&batch),
            [
                (1, pa.clone(), b"from a".to_vec()),
                (2, pb, b"from b\nand more".to_vec()),
                (3, pa, b"a again".to_vec()),
            ]
        );
    }

    #[test]
    fn datagrams_become_frames_and_larger_ones_are_dropped() {
        let mut server = server(8);
        let client = UdpSocket::bind("127.0.0.1:0").expect("bind");
        for datagram in [&b"one"[..], b"", b"too large!", b"12345678"] {
            client.send_to(datagram, server.local_addr()).expect("send");
        }
        let mut frames = SourceBatch::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while frames.len() < 3 && Instant::now() < deadline {
            server.pull(&mut frames).expect("pull");
        }
        let got: Vec<&[u8]> = frames.iter().collect();
        assert_eq!(got, [&b"one"[..], b"", b"12345678"]);
        assert_eq!(server.dropped(), 1);
        // The dropped datagram took no stream id.
        let streams: Vec<u64> = datagrams(&frames).iter().map(|d| d.0).collect();
        assert_eq!(streams, [1, 2, 3]);
    }
}
