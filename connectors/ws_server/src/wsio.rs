//! WebSocket over a [`Conn`], shared by `ws_server` and `ws_client` (the client includes this
//! file with `#[path]`: plugins never depend on each other).
//!
//! tokio-tungstenite's `WebSocketStream` is used through futures' `Stream` and `Sink` traits,
//! which no dependency a plugin may have names. So this drives the protocol engine it wraps
//! (`tokio_tungstenite::tungstenite`, the same handshake and framing code) *without I/O*:
//! tungstenite reads from and writes to a [`Pipe`] of in-memory buffers, which never blocks,
//! and this module moves the bytes between the pipe and the tokio connection. A read that
//! finds the pipe empty is tungstenite's `WouldBlock`, after which the caller awaits more
//! input ([`WsConn::fill`], cancel safe, so it can sit in a `select!`) and writes out what
//! tungstenite queued ([`WsConn::flush`]: pong replies to pings, close replies, messages).

use std::{
    io::{self, Read, Write},
    time::Duration,
};

use temblor_net::{
    conn::Conn,
    tokio::{
        self,
        io::{AsyncReadExt, AsyncWriteExt},
    },
};
use tokio_tungstenite::tungstenite::{
    Error as WsError, HandshakeError, Message,
    handshake::{
        HandshakeRole,
        client::{ClientHandshake, Request as ClientRequest},
        server::{ErrorResponse, Request, Response, ServerHandshake},
    },
    protocol::{CloseFrame, WebSocket, WebSocketConfig, frame::coding::CloseCode},
};

/// How much is read from the connection at once.
const READ_CHUNK: usize = 16 * 1024;

/// How long the opening handshake may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The in-memory stream tungstenite works on: bytes read from the peer and not yet parsed,
/// and bytes to send to it.
#[derive(Debug, Default)]
pub struct Pipe {
    input: Vec<u8>,
    pos: usize,
    /// The peer closed its side: reads give 0 once the input is used up.
    eof: bool,
    output: Vec<u8>,
}

impl Read for Pipe {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = &self.input[self.pos..];
        if left.is_empty() {
            return if self.eof {
                Ok(0)
            } else {
                Err(io::ErrorKind::WouldBlock.into())
            };
        }
        let n = left.len().min(buf.len());
        buf[..n].copy_from_slice(&left[..n]);
        self.pos += n;
        if self.pos == self.input.len() {
            self.input.clear();
            self.pos = 0;
        }
        Ok(n)
    }
}

impl Write for Pipe {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.output.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Reads once from `conn` into `pipe`: `false` when the peer closed its side. Cancel safe:
/// bytes are only moved once the read completed.
async fn fill(conn: &mut Conn, pipe: &mut Pipe, scratch: &mut [u8]) -> io::Result<bool> {
    let n = conn.read(scratch).await?;
    if n == 0 {
        pipe.eof = true;
        return Ok(false);
    }
    pipe.input.extend_from_slice(&scratch[..n]);
    Ok(true)
}

/// Writes out (and flushes) what the pipe holds for the peer, within `limit`.
async fn drain(conn: &mut Conn, pipe: &mut Pipe, limit: Duration) -> io::Result<()> {
    if pipe.output.is_empty() {
        return Ok(());
    }
    let write = async {
        conn.write_all(&pipe.output).await?;
        conn.flush().await
    };
    match tokio::time::timeout(limit, write).await {
        Ok(Ok(())) => {
            pipe.output.clear();
            Ok(())
        }
        Ok(Err(e)) => Err(e),
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("the peer took in nothing for {} ms", limit.as_millis()),
        )),
    }
}

/// What [`WsConn::next`] found.
#[derive(Debug)]
pub enum Event {
    /// A text or binary message.
    Data(Message),
    /// A pong (liveness for a client that pings).
    Pong,
    /// Nothing more until [`WsConn::fill`] reads more.
    NeedInput,
    /// The connection closed (a close handshake, or the peer went away).
    Closed,
    /// A protocol violation, a message over the limit, a broken connection.
    Failed(WsError),
}

/// An open WebSocket connection.
#[derive(Debug)]
pub struct WsConn {
    ws: WebSocket<Pipe>,
    conn: Conn,
    scratch: Vec<u8>,
    write_timeout: Duration,
}

impl WsConn {
    /// The next message already received, answering pings and closes on the way (the replies
    /// are queued; [`WsConn::flush`] sends them).
    pub fn next(&mut self) -> Event {
        loop {
            return match self.ws.read() {
                Ok(m @ (Message::Text(_) | Message::Binary(_))) => Event::Data(m),
                Ok(Message::Pong(_)) => Event::Pong,
                // tungstenite queued the pong, or the close reply.
                Ok(Message::Ping(_) | Message::Close(_) | Message::Frame(_)) => continue,
                Err(WsError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => Event::NeedInput,
                Err(WsError::ConnectionClosed | WsError::AlreadyClosed) => Event::Closed,
                Err(e) => Event::Failed(e),
            };
        }
    }

    /// Reads more from the peer (cancel safe): `Ok(false)` once it closed its side.
    ///
    /// # Errors
    /// Reading the connection failed.
    pub async fn fill(&mut self) -> io::Result<bool> {
        fill(&mut self.conn, self.ws.get_mut(), &mut self.scratch).await
    }

    /// Queues a message (send it with [`WsConn::flush`]).
    ///
    /// # Errors
    /// The connection is closing, or the message is over the limit.
    pub fn queue(&mut self, message: Message) -> Result<(), WsError> {
        self.ws.write(message)
    }

    /// Bytes queued for the peer and not written yet.
    pub fn queued(&mut self) -> usize {
        self.ws.get_mut().output.len()
    }

    /// Sends everything queued (messages, pongs, close frames) and flushes the connection.
    ///
    /// # Errors
    /// Writing failed or took longer than the write timeout.
    pub async fn flush(&mut self) -> io::Result<()> {
        match self.ws.flush() {
            Ok(()) | Err(WsError::ConnectionClosed | WsError::AlreadyClosed) => {}
            Err(WsError::Io(e)) => return Err(e),
            Err(e) => return Err(io::Error::other(e)),
        }
        drain(&mut self.conn, self.ws.get_mut(), self.write_timeout).await
    }

    /// After `error`: a close frame with the fitting code (1009 for a message over the
    /// limit, 1002 for a protocol violation), unless the connection itself broke.
    pub async fn fail(&mut self, error: &WsError) {
        let code = match error {
            WsError::Io(_) | WsError::ConnectionClosed | WsError::AlreadyClosed => return,
            WsError::Capacity(_) => CloseCode::Size,
            WsError::Utf8(_) => CloseCode::Invalid,
            _ => CloseCode::Protocol,
        };
        self.close(code, "closing").await;
    }

    /// Starts the close handshake with `code` and `reason`, sends it, and closes our side of
    /// the connection (best effort: the peer may be gone).
    pub async fn close(&mut self, code: CloseCode, reason: &'static str) {
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        let _ = self.ws.close(Some(frame));
        if self.flush().await.is_ok() {
            let _ = tokio::time::timeout(self.write_timeout, self.conn.shutdown()).await;
        }
    }

    /// Sends what is queued (a close reply) and closes our side of the connection.
    pub async fn finish(&mut self) {
        if self.flush().await.is_ok() {
            let _ = tokio::time::timeout(self.write_timeout, self.conn.shutdown()).await;
        }
    }
}

/// A message for `frame`: text when `text` is asked for and the frame is UTF-8, binary
/// otherwise.
pub fn message_of(frame: &[u8], text: bool) -> Message {
    match std::str::from_utf8(frame) {
        Ok(s) if text => Message::text(s.to_owned()),
        _ => Message::binary(frame.to_vec()),
    }
}

/// The limits of one connection: `max_message` bytes per incoming message (and frame).
pub fn config(max_message: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_CHUNK)
        .write_buffer_size(0)
        .max_message_size(Some(max_message))
        .max_frame_size(Some(max_message))
}

/// Why [`shake`] failed.
enum Shake {
    /// Moving bytes over the connection failed.
    Conn(String),
    /// The peer's part of the handshake was refused.
    Refused(WsError),
}

/// Runs a tungstenite handshake (its first `round`) over `conn`, moving the bytes between the
/// connection and the pipe tungstenite works on, until it ends; then writes out what it left
/// queued: the connection ready for messages. (A failure gives the connection back.)
async fn shake<R>(
    mut conn: Conn,
    write_timeout: Duration,
    mut round: Result<R::FinalResult, HandshakeError<R>>,
    socket: impl FnOnce(R::FinalResult) -> WebSocket<Pipe>,
) -> Result<WsConn, (Shake, Conn)>
where
    R: HandshakeRole<InternalStream = Pipe>,
{
    let mut scratch = vec![0; READ_CHUNK];
    loop {
        match round {
            Ok(done) => {
                let mut ws = socket(done);
                return match drain(&mut conn, ws.get_mut(), write_timeout).await {
                    Ok(()) => Ok(WsConn {
                        ws,
                        conn,
                        scratch,
                        write_timeout,
                    }),
                    Err(e) => Err((Shake::Conn(e.to_string()), conn)),
                };
            }
            Err(HandshakeError::Interrupted(mut mid)) => {
                let pipe = mid.get_mut().get_mut();
                let moved = match drain(&mut conn, pipe, write_timeout).await {
                    Ok(()) => fill(&mut conn, pipe, &mut scratch).await.map(drop),
                    Err(e) => Err(e),
                };
                if let Err(e) = moved {
                    return Err((Shake::Conn(e.to_string()), conn));
                }
                round = mid.handshake();
            }
            Err(HandshakeError::Failure(e)) => return Err((Shake::Refused(e), conn)),
        }
    }
}

/// The server side of the opening handshake, within [`HANDSHAKE_TIMEOUT`]: the connection
/// and the request target the client asked for (`/path?query`).
///
/// # Errors
/// Not a WebSocket request (it gets a `400`), a broken connection, or too slow.
pub async fn accept(
    conn: Conn,
    config: WebSocketConfig,
    write_timeout: Duration,
) -> Result<(WsConn, String), String> {
    let mut target = String::new();
    let handshake = async {
        // The signature is tungstenite's.
        #[allow(clippy::result_large_err)]
        let callback = |request: &Request, response: Response| -> Result<Response, ErrorResponse> {
            target = request
                .uri()
                .path_and_query()
                .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned());
            Ok(response)
        };
        let round = ServerHandshake::start(Pipe::default(), callback, Some(config)).handshake();
        match shake(conn, write_timeout, round, |ws| ws).await {
            Ok(ws) => Ok(ws),
            Err((Shake::Conn(e), _)) => Err(e),
            Err((Shake::Refused(e), mut conn)) => {
                let refusal =
                    b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
                if !matches!(e, WsError::Io(_)) {
                    let _ = tokio::time::timeout(write_timeout, conn.write_all(refusal)).await;
                    let _ = tokio::time::timeout(write_timeout, conn.shutdown()).await;
                }
                Err(e.to_string())
            }
        }
    };
    let ws = match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
        Ok(result) => result?,
        Err(_) => return Err("the WebSocket handshake timed out".to_owned()),
    };
    Ok((ws, target))
}

/// The client side of the opening handshake over `conn`, within `write_timeout` (which also
/// bounds each write afterwards).
///
/// # Errors
/// The server refused (its HTTP status), a broken connection, or too slow.
pub async fn connect(
    conn: Conn,
    request: ClientRequest,
    config: WebSocketConfig,
    write_timeout: Duration,
) -> Result<WsConn, String> {
    let handshake = async {
        let round = ClientHandshake::start(Pipe::default(), request, Some(config))
            .map_err(|e| e.to_string())?
            .handshake();
        shake(conn, write_timeout, round, |(ws, _response)| ws)
            .await
            .map_err(|(e, _)| match e {
                Shake::Conn(e) => e,
                Shake::Refused(e) => e.to_string(),
            })
    };
    match tokio::time::timeout(write_timeout, handshake).await {
        Ok(result) => result,
        Err(_) => Err(format!(
            "the WebSocket handshake took longer than {} ms",
            write_timeout.as_millis()
        )),
    }
}

#[cfg(test)]
mod wsio_tests {
    use super::*;

    #[test]
    fn the_pipe_blocks_when_empty_and_ends_after_eof() {
        let mut pipe = Pipe::default();
        let mut buf = [0; 4];
        assert_eq!(
            pipe.read(&mut buf).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        pipe.input.extend_from_slice(b"abcdef");
        assert_eq!(pipe.read(&mut buf).unwrap(), 4);
        assert_eq!(&buf, b"abcd");
        assert_eq!(pipe.read(&mut buf).unwrap(), 2);
        assert_eq!(&buf[..2], b"ef");
        assert!(pipe.input.is_empty(), "used input is released");
        pipe.eof = true;
        assert_eq!(pipe.read(&mut buf).unwrap(), 0);
        assert_eq!(pipe.write(b"xy").unwrap(), 2);
        assert_eq!(pipe.output, b"xy");
    }

    #[test]
    fn frames_become_text_only_when_asked_and_utf8() {
        assert!(message_of(b"hi", true).is_text());
        assert!(message_of(b"hi", false).is_binary());
        assert!(message_of(&[0xff, 0xfe], true).is_binary());
        assert_eq!(message_of(&[0xff], true).into_data().as_ref(), &[0xff]);
    }
}
