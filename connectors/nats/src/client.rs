//! The connector's NATS connection: TCP, the handshake, reading and parsing what the server
//! sends (`proto.rs`), writing. Public so that `perf`'s `nats-bench` (the baseline of
//! `cargo xtask bench --scenario nats-ingest`) runs the very same client without the engine.

use temblor_net::tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{
        TcpStream,
        tcp::{OwnedReadHalf, OwnedWriteHalf},
    },
};

use crate::proto::{self, Op};

/// An open connection: its halves and what was read and not parsed yet.
pub struct Link {
    rd: OwnedReadHalf,
    wr: OwnedWriteHalf,
    /// Bytes read; those before `start` are parsed already.
    buf: Vec<u8>,
    start: usize,
    /// The server's `host:port`, for messages.
    pub server: String,
}

impl Link {
    /// Connects to `server` (`host:port`) and does the handshake (`INFO`, then `CONNECT` with
    /// client name `name` and `PING`, until the `PONG`). No time limit: the caller sets one.
    ///
    /// # Errors
    /// The connection failed or the server refused it: a message naming the server.
    pub async fn open(server: &str, name: &str) -> Result<Self, String> {
        let tcp = TcpStream::connect(server)
            .await
            .map_err(|e| format!("connecting to {server}: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let (rd, wr) = tcp.into_split();
        let mut link = Self {
            rd,
            wr,
            buf: Vec::with_capacity(64 * 1024),
            start: 0,
            server: server.to_owned(),
        };
        match link.next_op().await? {
            Op::Info => {}
            other => return Err(format!("{server} did not start with INFO: {other:?}")),
        }
        link.write(&proto::connect(name)).await?;
        loop {
            match link.next_op().await? {
                Op::Pong => return Ok(link),
                Op::Err(e) => return Err(format!("{server} refused the connection: {e}")),
                _ => {}
            }
        }
    }

    /// The next whole operation already read, if any.
    ///
    /// # Errors
    /// The server sent something the parser does not understand.
    pub fn parsed(&mut self) -> Result<Option<Op>, String> {
        match proto::parse(&self.buf[self.start..]).map_err(|e| format!("{}: {e}", self.server))? {
            Some((op, used)) => {
                // Parsed bytes are dropped in one go when the buffer is read into again, not
                // one operation at a time (each would move everything behind it).
                self.start += used;
                Ok(Some(op))
            }
            None => Ok(None),
        }
    }

    /// Reads more (cancel-safe).
    ///
    /// # Errors
    /// The connection broke or the server closed it.
    pub async fn fill(&mut self) -> Result<(), String> {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.reserve(32 * 1024);
        match self.rd.read_buf(&mut self.buf).await {
            Ok(0) => Err(format!("{} closed the connection", self.server)),
            Ok(_) => Ok(()),
            Err(e) => Err(format!("reading from {}: {e}", self.server)),
        }
    }

    /// The next operation, answering the server's `PING`s.
    ///
    /// # Errors
    /// As [`Link::fill`] and [`Link::parsed`].
    pub async fn next_op(&mut self) -> Result<Op, String> {
        loop {
            match self.parsed()? {
                Some(Op::Ping) => self.write(b"PONG\r\n").await?,
                Some(op) => return Ok(op),
                None => self.fill().await?,
            }
        }
    }

    /// Writes `bytes` (whole protocol operations).
    ///
    /// # Errors
    /// The connection broke.
    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.wr
            .write_all(bytes)
            .await
            .map_err(|e| format!("writing to {}: {e}", self.server))
    }
}
