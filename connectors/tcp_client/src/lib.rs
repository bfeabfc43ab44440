//! The `tcp_client` connector: writes frames to a TCP server, plain or over TLS, reconnecting
//! when the connection breaks.
//!
//! Sink only (asking for a source is an `Unsupported` error): what the server sends back is read
//! and thrown away. The constructor checks that `url` resolves, loads the `tls.ca` file and
//! tries to connect once; a server that is not up yet is no error (the first batch connects).
//! Every frame is written as it is (the postprocessors add separators), a batch at a time.
//!
//! The connection lives on the plugin's tokio runtime (`temblor-net`): `push` runs the connect,
//! the TLS handshake and the writes there and waits for them on the engine's thread, so a batch
//! is on the wire (handed to the kernel; with TLS, encrypted and handed over) when `push`
//! returns. The connector starts no task of its own: between batches nothing runs for it.
//!
//! **Broken connections.** Before each batch the sink looks whether the server has closed the
//! connection (a server that went away between batches loses nothing); if it has, or writing the
//! batch fails, or there is no connection, it connects again and writes the whole batch again.
//! Between attempts it waits `backoff_ms`, doubling up to `max_backoff_ms`; after `max_retries`
//! more attempts the batch fails with an `Io` error (the engine counts it) and the next batch
//! starts over. A batch that broke half-way is sent again whole, so the server may see its first
//! frames twice; and bytes that the kernel had accepted just before a server vanished without
//! closing (a crash, a cut cable) are lost: TCP does not tell the sender. `push` blocks while it
//! retries, which holds the pipeline back (backpressure), for at most about
//! `max_retries × max_backoff_ms` plus the timeouts. A TLS handshake that fails (the server's
//! certificate is not signed by `tls.ca`, or not for `tls.server_name`) counts as a failed
//! attempt, and the error names the reason.
//!
//! ## Config
//! - `url` (string, required): the server's `host:port`, e.g. `"127.0.0.1:4242"`.
//! - `backoff_ms` (integer, default 100, at least 1): the wait before the first retry.
//! - `max_backoff_ms` (integer, default 5000, at least `backoff_ms`): the longest wait.
//! - `max_retries` (integer, default 10): attempts after the first before a batch fails.
//! - `timeout_ms` (integer, default 5000, at least 1): for connecting, for the TLS handshake
//!   (which also gives up after 10 s) and for each write of up to 64 KiB; a server that stops
//!   reading for that long counts as a broken connection.
//! - `tls` (table, optional): speak TLS (1.2 and 1.3, rustls) to the server:
//!   - `ca` (string, optional): PEM file with the certificates to trust; without it, the
//!     system's root certificates;
//!   - `server_name` (string, optional): the name the server's certificate must be for; default:
//!     the host of `url` (a DNS name or an IP address).
//!
//!   A `ca` file that cannot be read or holds no certificate is a config error when the engine
//!   starts, naming the connector, the field and the file. No client certificate is sent.
//!
//! ## Example
//! ```toml
//! [[connector]]
//! id = "forward"
//! plugin = "tcp_client"
//! codec = "json"
//! postprocessors = ["separate"]
//! config = { url = "127.0.0.1:4242", backoff_ms = 100, max_backoff_ms = 5000 }
//!
//! [[connector]]
//! id = "forward-tls"
//! plugin = "tcp_client"
//! codec = "json"
//! postprocessors = ["separate"]
//! config = { url = "127.0.0.1:4443", tls = { ca = "/etc/temblor/ca.pem", server_name = "localhost" } }
//! ```

use std::{
    future::poll_fn,
    io,
    net::{SocketAddr, ToSocketAddrs},
    pin::Pin,
    task::Poll,
    time::Duration,
};

use temblor_net::{
    Service, addr,
    conn::Conn,
    retry::{Link, Retrying},
    rustls::pki_types::ServerName,
    tls::{self, ClientTls},
    tokio::{
        self,
        io::{AsyncRead, AsyncWriteExt, ReadBuf},
        net::TcpStream,
    },
    tokio_rustls::TlsConnector,
};
use temblor_shim::{ErrorKind, Frames, PluginError, Setup, Value, serde::Deserialize, tracing};

/// Frames are gathered into writes of about this size.
const CHUNK: usize = 64 * 1024;

/// How long a dropped sink waits for its connection to close cleanly (TLS: `close_notify`).
const CLOSE_WAIT: Duration = Duration::from_secs(1);

temblor_net::client_config! {
    /// The connector's `config`.
    #[derive(Deserialize, Debug, Clone)]
    #[serde(crate = "temblor_shim::serde", deny_unknown_fields)]
    pub struct Config {
        /// The server's `host:port`.
        pub url: String,
        /// TLS: the certificates to trust and the server's name (none: plain TCP).
        #[serde(default)]
        pub tls: Option<ClientTls>,
    }
    with max_retries
}

/// A CA file that cannot be read is a mistake in the config, as one that holds no certificate is.
fn as_config_error(e: PluginError) -> PluginError {
    PluginError::config(e.message)
}

/// The `tcp_client` sink's connection (the sink is a [`Retrying`] on it).
pub struct TcpClient {
    config: Config,
    /// The addresses `url` resolved to last.
    addrs: Vec<SocketAddr>,
    /// With `tls`: the connector and the name the server's certificate must be for.
    tls: Option<(TlsConnector, ServerName<'static>)>,
    conn: Option<Conn>,
    buf: Vec<u8>,
    connects: u64,
    bytes: u64,
    /// The runtime the connection lives on (the sink runs no task of its own).
    service: Service,
}

impl TcpClient {
    /// Checks the config, loads the TLS roots and tries to connect once.
    ///
    /// # Errors
    /// A `Config` error for a bad config (a `tls.ca` file among them) or a `url` that does not
    /// resolve; an `Io` error when the network runtime cannot start.
    pub fn new(setup: &Setup<'_>) -> Result<Retrying<Self>, PluginError> {
        let config: Config = setup.config()?;
        let policy = config.policy()?;
        let addrs = addr::resolve("url", &config.url)?;
        let tls = config
            .tls
            .as_ref()
            .map(|tls| {
                tls.connector(tls::host_of(&config.url), &[])
                    .map_err(as_config_error)
            })
            .transpose()?;
        let service = Service::new(temblor_net::runtime::handle()?, CLOSE_WAIT);
        let client = Self {
            config,
            addrs,
            tls,
            conn: None,
            buf: Vec::with_capacity(CHUNK),
            connects: 0,
            bytes: 0,
            service,
        };
        Ok(Retrying::new(client, policy))
    }

    fn timeout(&self) -> Duration {
        Duration::from_millis(self.config.timeout_ms)
    }

    /// Connects to the first address of `url` that answers (resolving it again first), with
    /// the TLS handshake when `tls` is set.
    fn open(&mut self) -> io::Result<()> {
        self.conn = None;
        if let Ok(addrs) = self.config.url.to_socket_addrs() {
            let addrs: Vec<SocketAddr> = addrs.collect();
            if !addrs.is_empty() {
                self.addrs = addrs;
            }
        }
        let timeout = self.timeout();
        let (addr, conn) =
            self.service
                .block_on(connect(&self.addrs, self.tls.as_ref(), timeout))?;
        self.connects += 1;
        tracing::info!(
            peer = %addr,
            tls = self.tls.is_some(),
            connects = self.connects,
            "connected to the tcp server"
        );
        self.conn = Some(conn);
        Ok(())
    }

    /// Writes the whole batch on the current connection (connecting first when there is none
    /// or the server has closed it).
    fn write_all(&mut self, frames: &Frames) -> io::Result<()> {
        let open = match self.conn.as_mut() {
            Some(conn) => self.service.block_on(is_open(conn)),
            None => false,
        };
        if !open {
            self.open()?;
        }
        let timeout = self.timeout();
        let Self {
            service, conn, buf, ..
        } = self;
        let Some(conn) = conn.as_mut() else {
            return Err(io::Error::other("not connected"));
        };
        service.block_on(async {
            buf.clear();
            for frame in frames.iter() {
                buf.extend_from_slice(frame);
                if buf.len() >= CHUNK {
                    write(conn, buf, timeout).await?;
                    buf.clear();
                }
            }
            write(conn, buf, timeout).await?;
            buf.clear();
            Ok(())
        })
    }
}

fn timed_out(what: &str, after: Duration) -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!("{what} took more than {} ms", after.as_millis()),
    )
}

/// Connects to the first of `addrs` that answers (and completes the TLS handshake).
async fn connect(
    addrs: &[SocketAddr],
    tls: Option<&(TlsConnector, ServerName<'static>)>,
    timeout: Duration,
) -> io::Result<(SocketAddr, Conn)> {
    let mut last = None;
    for &addr in addrs {
        let tcp = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(e)) => {
                last = Some(e);
                continue;
            }
            Err(_) => {
                last = Some(timed_out("connecting", timeout));
                continue;
            }
        };
        tcp.set_nodelay(true)?;
        let Some((connector, name)) = tls else {
            return Ok((addr, Conn::Tcp(tcp)));
        };
        match tokio::time::timeout(timeout, tls::connect(connector, name.clone(), tcp)).await {
            Ok(Ok(conn)) => return Ok((addr, conn)),
            Ok(Err(e)) => {
                last = Some(io::Error::new(
                    e.kind(),
                    format!("TLS handshake with {addr}: {e}"),
                ));
            }
            Err(_) => last = Some(timed_out("the TLS handshake", timeout)),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no address to connect to")))
}

/// Writes `bytes` (and, over TLS, pushes the records out), within `timeout`.
async fn write(conn: &mut Conn, bytes: &[u8], timeout: Duration) -> io::Result<()> {
    let written = async {
        conn.write_all(bytes).await?;
        conn.flush().await
    };
    tokio::time::timeout(timeout, written)
        .await
        .unwrap_or_else(|_| Err(timed_out("a write", timeout)))
}

/// Whether the server has not closed the connection: reads and drops what it sent, without
/// waiting for more.
async fn is_open(conn: &mut Conn) -> bool {
    let mut scratch = [0; 4096];
    // A server that keeps talking is open: stop reading after 64 KiB.
    let mut reads = 0;
    poll_fn(|cx| {
        loop {
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut *conn).poll_read(cx, &mut buf) {
                // Nothing to read now: open.
                Poll::Pending => return Poll::Ready(true),
                Poll::Ready(Ok(())) if buf.filled().is_empty() => return Poll::Ready(false),
                Poll::Ready(Ok(())) if reads == 16 => return Poll::Ready(true),
                Poll::Ready(Ok(())) => reads += 1,
                Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Poll::Ready(Err(_)) => return Poll::Ready(false),
            }
        }
    })
    .await
}

impl Link for TcpClient {
    type Error = io::Error;

    fn target(&self) -> String {
        self.config.url.clone()
    }

    fn connect(&mut self) -> io::Result<()> {
        self.open()
    }

    /// The whole batch, every time: `next` stays at the start.
    fn attempt(&mut self, frames: &Frames, _meta: &[Value], _next: &mut usize) -> io::Result<()> {
        self.write_all(frames)?;
        self.bytes += frames.byte_len() as u64;
        Ok(())
    }

    fn disconnect(&mut self) {
        self.conn = None;
    }

    fn flush(&mut self) -> Result<(), PluginError> {
        // Every write is pushed out as it is made; this finds an error a flush would report.
        let timeout = self.timeout();
        let Some(conn) = self.conn.as_mut() else {
            return Ok(());
        };
        let flushed = self.service.block_on(async {
            tokio::time::timeout(timeout, conn.flush())
                .await
                .unwrap_or_else(|_| Err(timed_out("a flush", timeout)))
        });
        flushed.map_err(|e| {
            PluginError::new(
                ErrorKind::Io,
                format_args!("flushing {}: {e}", self.config.url),
            )
        })
    }
}

impl Drop for TcpClient {
    fn drop(&mut self) {
        // A clean close (TLS: `close_notify`, then FIN), briefly; the engine's thread is no
        // runtime thread, so it may wait for it.
        if let Some(mut conn) = self.conn.take()
            && tokio::runtime::Handle::try_current().is_err()
        {
            let _ = self
                .service
                .block_on(async { tokio::time::timeout(CLOSE_WAIT, conn.shutdown()).await });
        }
        tracing::debug!(
            url = %self.config.url,
            bytes = self.bytes,
            connects = self.connects,
            "tcp client closed"
        );
    }
}

temblor_shim::export_plugin! {
    name: "tcp_client",
    kind: Connector,
    sink: TcpClient::new,
    shutdown: temblor_net::shutdown,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::{
        io::{Read, Write},
        net::{TcpListener, TcpStream},
        thread,
        time::Instant,
    };
    use temblor_harness::config;
    use temblor_net::testing::{self, refused};
    use temblor_shim::{Object, Sink};

    fn client(fields: &[(&str, Value)]) -> Result<Retrying<TcpClient>, PluginError> {
        let cfg = config(fields);
        TcpClient::new(&Setup {
            id: "t",
            config: &cfg,
        })
    }

    fn batch(frames: &[&[u8]]) -> Frames {
        frames.iter().copied().collect()
    }

    fn read_exactly(stream: &mut TcpStream, n: usize) -> Vec<u8> {
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut buf = vec![0; n];
        stream.read_exact(&mut buf).expect("read");
        buf
    }

    #[test]
    fn defaults_and_bad_values() {
        let c: Config =
            temblor_shim::from_value(&config(&[("url", Value::from("x:1"))])).expect("config");
        assert_eq!(
            (c.backoff_ms, c.max_backoff_ms, c.max_retries, c.timeout_ms),
            (100, 5000, 10, 5000)
        );
        assert!(c.tls.is_none());
        for (fields, needle) in [
            (vec![], "url"),
            (vec![("url", Value::from("no port"))], "url"),
        ] {
            refused(TcpClient::new, &fields, needle);
        }
        testing::refuses_bad_retry_settings(TcpClient::new, &[("url", Value::from("127.0.0.1:9"))]);
    }

    #[test]
    fn a_bad_ca_file_is_a_config_error_naming_the_field_and_file() {
        let dir = temblor_harness::TempDir::new("tcp_client-ca");
        let junk = dir.write("junk.pem", "not a certificate\n");
        for ca in [dir.join("missing.pem"), junk] {
            let mut tls = Object::new();
            tls.insert("ca", Value::from(ca.display().to_string()));
            let fields = [
                ("url", Value::from("127.0.0.1:9")),
                ("tls", Value::Object(tls)),
            ];
            let err = refused(TcpClient::new, &fields, "`tls.ca`");
            assert!(err.message.contains(&ca.display().to_string()), "{err}");
        }
        let mut tls = Object::new();
        tls.insert("ca_file", Value::from("x"));
        let fields = [
            ("url", Value::from("127.0.0.1:9")),
            ("tls", Value::Object(tls)),
        ];
        refused(TcpClient::new, &fields, "ca_file");
    }

    #[test]
    fn a_server_that_closed_between_batches_loses_nothing() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let mut client = client(&[("url", Value::from(addr))]).expect("client");
        let (mut first, _) = listener.accept().expect("the constructor connected");
        client.push(&batch(&[b"one\n"])).expect("push");
        assert_eq!(read_exactly(&mut first, 4), b"one\n");
        // The server closes; the next batch goes to a new connection, whole.
        first.write_all(b"ignored reply").expect("write");
        drop(first);
        thread::sleep(Duration::from_millis(50));
        client.push(&batch(&[b"two\n", b"three\n"])).expect("push");
        let (mut second, _) = listener.accept().expect("reconnected");
        assert_eq!(read_exactly(&mut second, 10), b"two\nthree\n");
        assert_eq!(client.link.connects, 2);
    }

    #[test]
    fn retries_back_off_exponentially_then_fail() {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut client = client(&[
            ("url", Value::from(format!("127.0.0.1:{port}"))),
            ("backoff_ms", Value::from(40_u64)),
            ("max_backoff_ms", Value::from(100_u64)),
            ("max_retries", Value::from(3_u64)),
        ])
        .expect("a server that is not up is no error yet");
        let begin = Instant::now();
        let err = client
            .push(&batch(&[b"lost\n"]))
            .expect_err("nobody listens");
        let waited = begin.elapsed();
        // 40 + 80 + 100 ms of backoff.
        assert!(waited >= Duration::from_millis(220), "{waited:?}");
        assert!(waited < Duration::from_secs(3), "{waited:?}");
        assert_eq!(err.kind, ErrorKind::Io, "{err}");
        assert!(err.message.contains("after 4 attempts"), "{err}");
        assert!(err.message.contains(&port.to_string()), "{err}");
        // An empty batch needs no connection.
        client.push(&Frames::new()).expect("nothing to write");
        client.flush().expect("flush");
    }
}
