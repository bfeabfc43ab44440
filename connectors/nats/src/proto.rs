//! The few parts of the NATS client protocol the connector speaks (text protocol over TCP,
//! see <https://docs.nats.io/reference/reference-protocols/nats-protocol>): parsing what the
//! server sends (`INFO`, `MSG`, `HMSG`, `PING`, `PONG`, `+OK`, `-ERR`), writing what the
//! client sends (`CONNECT`, `SUB`, `PUB`, `HPUB`, `PING`, `PONG`), headers, and the JetStream
//! pieces (ack subjects, API replies).

use std::fmt::Write as _;

/// The largest control line accepted from the server.
const MAX_LINE: usize = 64 * 1024;

/// One operation from the server.
#[derive(Debug, PartialEq, Eq)]
pub enum Op {
    Info,
    Ping,
    Pong,
    Ok,
    Err(String),
    Msg(Msg),
}

/// A message (`MSG` or `HMSG`).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Msg {
    pub subject: String,
    pub sid: u64,
    pub reply: Option<String>,
    /// The status of a status message (`NATS/1.0 408 Request Timeout`): 408.
    pub status: Option<u16>,
    /// The status line's description.
    pub description: String,
    pub headers: Vec<(String, String)>,
    pub payload: Vec<u8>,
}

impl Msg {
    /// The first value of header `name` (case-insensitive).
    #[cfg(test)]
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn find_crlf(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}

fn number<T: std::str::FromStr>(word: Option<&str>, line: &str) -> Result<T, String> {
    word.and_then(|w| w.parse().ok())
        .ok_or_else(|| format!("bad protocol line from the server: {line:?}"))
}

/// Parses one operation at the start of `buf`: the operation and the bytes it took, `None`
/// when `buf` does not hold a whole one yet.
///
/// # Errors
/// The server sent something this client does not understand.
pub fn parse(buf: &[u8]) -> Result<Option<(Op, usize)>, String> {
    let Some(end) = find_crlf(buf) else {
        if buf.len() > MAX_LINE {
            return Err(format!("a protocol line longer than {MAX_LINE} bytes"));
        }
        return Ok(None);
    };
    let line = std::str::from_utf8(&buf[..end])
        .map_err(|_| "a protocol line that is not UTF-8".to_owned())?;
    let after = end + 2;
    let mut words = line.split_ascii_whitespace();
    let verb = words.next().unwrap_or("");
    let op = match verb.to_ascii_uppercase().as_str() {
        "PING" => Op::Ping,
        "PONG" => Op::Pong,
        "+OK" => Op::Ok,
        "INFO" => Op::Info,
        "-ERR" => Op::Err(line[4..].trim().trim_matches('\'').to_owned()),
        "MSG" | "HMSG" => {
            let headers = verb.eq_ignore_ascii_case("HMSG");
            let rest: Vec<&str> = words.collect();
            let (fixed, optional_reply) = if headers { (4, 5) } else { (3, 4) };
            let reply = match rest.len() {
                n if n == fixed => None,
                n if n == optional_reply => Some(rest[2].to_owned()),
                _ => return Err(format!("bad protocol line from the server: {line:?}")),
            };
            let sizes = &rest[rest.len() - if headers { 2 } else { 1 }..];
            let (header_len, total): (usize, usize) = if headers {
                (
                    number(sizes.first().copied(), line)?,
                    number(sizes.get(1).copied(), line)?,
                )
            } else {
                (0, number(sizes.first().copied(), line)?)
            };
            if header_len > total {
                return Err(format!("bad protocol line from the server: {line:?}"));
            }
            if buf.len() < after + total + 2 {
                return Ok(None);
            }
            let body = &buf[after..after + total];
            let mut msg = Msg {
                subject: rest[0].to_owned(),
                sid: number(rest.get(1).copied(), line)?,
                reply,
                payload: body[header_len..].to_vec(),
                ..Msg::default()
            };
            if headers {
                parse_headers(&body[..header_len], &mut msg)?;
            }
            return Ok(Some((Op::Msg(msg), after + total + 2)));
        }
        _ => return Err(format!("unknown protocol line from the server: {line:?}")),
    };
    Ok(Some((op, after)))
}

/// Reads a header block (`NATS/1.0 [status [description]]`, then `Name: value` lines).
fn parse_headers(block: &[u8], msg: &mut Msg) -> Result<(), String> {
    let text = String::from_utf8_lossy(block);
    let mut lines = text.split("\r\n");
    let first = lines.next().unwrap_or("");
    let Some(status) = first.strip_prefix("NATS/1.0") else {
        return Err(format!("bad header block from the server: {first:?}"));
    };
    let status = status.trim();
    if !status.is_empty() {
        let (code, description) = status.split_once(' ').unwrap_or((status, ""));
        msg.status = code.parse().ok();
        msg.description = description.trim().to_owned();
    }
    for line in lines {
        if let Some((k, v)) = line.split_once(':') {
            msg.headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    Ok(())
}

/// `CONNECT` then `PING`: the server answers `PONG` once it accepted the connection.
#[must_use]
pub fn connect(name: &str) -> Vec<u8> {
    format!(
        "CONNECT {{\"verbose\":false,\"pedantic\":false,\"lang\":\"rust\",\"version\":\"0.1\",\"protocol\":1,\"headers\":true,\"no_responders\":true,\"name\":{}}}\r\nPING\r\n",
        json_string(name)
    )
    .into_bytes()
}

/// `SUB subject [queue] sid`.
pub fn sub(out: &mut Vec<u8>, subject: &str, queue: Option<&str>, sid: u64) {
    let _ = match queue {
        Some(q) => write!(Buf(out), "SUB {subject} {q} {sid}\r\n"),
        None => write!(Buf(out), "SUB {subject} {sid}\r\n"),
    };
}

/// `PUB` (or `HPUB` when there are headers).
pub fn publish(
    out: &mut Vec<u8>,
    subject: &str,
    reply: Option<&str>,
    headers: &[(String, String)],
    payload: &[u8],
) {
    let reply = reply.map(|r| format!(" {r}")).unwrap_or_default();
    if headers.is_empty() {
        let _ = write!(Buf(out), "PUB {subject}{reply} {}\r\n", payload.len());
    } else {
        let mut block = String::from("NATS/1.0\r\n");
        for (k, v) in headers {
            let _ = write!(block, "{k}: {v}\r\n");
        }
        block.push_str("\r\n");
        let _ = write!(
            Buf(out),
            "HPUB {subject}{reply} {} {}\r\n",
            block.len(),
            block.len() + payload.len()
        );
        out.extend_from_slice(block.as_bytes());
    }
    out.extend_from_slice(payload);
    out.extend_from_slice(b"\r\n");
}

struct Buf<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for Buf<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// `s` as a JSON string.
#[must_use]
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Whether `name` may name a stream or consumer (no whitespace, `.`, `*`, `>`, path
/// separators), and `subject` a subject to publish to or filter on.
#[must_use]
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '.' | '*' | '>' | '/' | '\\'))
}

/// Whether `subject` is a subject (dot-separated non-empty tokens, no whitespace); wildcards
/// only when `wildcards`.
#[must_use]
pub fn valid_subject(subject: &str, wildcards: bool) -> bool {
    !subject.is_empty()
        && subject.split('.').all(|t| {
            !t.is_empty()
                && !t.chars().any(char::is_whitespace)
                && (wildcards || (t != "*" && t != ">"))
        })
}

/// What a JetStream ack subject (`$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.
/// <consumer seq>.<timestamp>.<pending>`, or the newer form with a domain and an account hash
/// first) says about its message.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub struct AckInfo {
    pub delivered: u64,
    pub stream_seq: u64,
}

/// Reads an ack subject.
#[must_use]
pub fn ack_info(reply: &str) -> Option<AckInfo> {
    let tokens: Vec<&str> = reply.strip_prefix("$JS.ACK.")?.split('.').collect();
    // v1: stream, consumer, delivered, sseq, cseq, tm, pending (7);
    // v2: domain, account hash, stream, consumer, delivered, sseq, cseq, tm, pending[, token].
    let at = match tokens.len() {
        7 => 2,
        n if n >= 9 => 4,
        _ => return None,
    };
    Some(AckInfo {
        delivered: tokens.get(at)?.parse().ok()?,
        stream_seq: tokens.get(at + 1)?.parse().ok()?,
    })
}

/// The error of a JetStream API reply (`{"error":{"code":..,"description":".."}}`), if any.
#[must_use]
pub fn api_error(reply: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(reply);
    let at = text.find("\"error\"")?;
    let rest = &text[at..];
    let description = rest
        .find("\"description\"")
        .and_then(|d| {
            let after = &rest[d + "\"description\"".len()..];
            let start = after.find('"')? + 1;
            let end = after[start..].find('"')?;
            Some(after[start..start + end].to_owned())
        })
        .unwrap_or_else(|| rest.chars().take(200).collect());
    Some(description)
}

/// A fresh random token for inbox subjects.
#[must_use]
pub fn nuid() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    let a = h.finish();
    let mut h2 = std::collections::hash_map::RandomState::new().build_hasher();
    h2.write_u64(a);
    format!("{a:016x}{:016x}", h2.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_messages_with_and_without_headers() {
        let buf = b"MSG a.b 7 r.x 5\r\nhello\r\nPING\r\n";
        let (op, used) = parse(buf).unwrap().unwrap();
        let Op::Msg(m) = op else { panic!("{op:?}") };
        assert_eq!(
            (m.subject.as_str(), m.sid, m.reply.as_deref()),
            ("a.b", 7, Some("r.x"))
        );
        assert_eq!(m.payload, b"hello");
        assert_eq!(parse(&buf[used..]).unwrap().unwrap().0, Op::Ping);
        assert_eq!(parse(&buf[..used - 1]).unwrap(), None, "incomplete");

        let block = "NATS/1.0\r\nNats-Msg-Id: 42\r\n\r\n";
        let text = format!(
            "HMSG s 1 {} {}\r\n{block}xy\r\n",
            block.len(),
            block.len() + 2
        );
        let (op, used) = parse(text.as_bytes()).unwrap().unwrap();
        assert_eq!(used, text.len());
        let Op::Msg(m) = op else { panic!() };
        assert_eq!(m.reply, None);
        assert_eq!(m.header("nats-msg-id"), Some("42"));
        assert_eq!(m.payload, b"xy");

        let status = "NATS/1.0 408 Request Timeout\r\n\r\n";
        let text = format!(
            "HMSG _I.x 2 {} {}\r\n{status}\r\n",
            status.len(),
            status.len()
        );
        let Op::Msg(m) = parse(text.as_bytes()).unwrap().unwrap().0 else {
            panic!()
        };
        assert_eq!(
            (m.status, m.description.as_str()),
            (Some(408), "Request Timeout")
        );
        assert!(parse(b"WHAT\r\n").is_err());
        assert_eq!(
            parse(b"-ERR 'Authorization Violation'\r\n")
                .unwrap()
                .unwrap()
                .0,
            Op::Err("Authorization Violation".to_owned())
        );
    }

    #[test]
    fn publishes_with_headers() {
        let mut out = Vec::new();
        publish(&mut out, "s", Some("r"), &[], b"ab");
        assert_eq!(out, b"PUB s r 2\r\nab\r\n");
        out.clear();
        publish(&mut out, "s", None, &[("K".into(), "v".into())], b"ab");
        assert_eq!(out, b"HPUB s 18 20\r\nNATS/1.0\r\nK: v\r\n\r\nab\r\n");
    }

    #[test]
    fn reads_ack_subjects_and_api_errors() {
        assert_eq!(
            ack_info("$JS.ACK.S.C.3.17.9.1700000000.5"),
            Some(AckInfo {
                delivered: 3,
                stream_seq: 17
            })
        );
        assert_eq!(
            ack_info("$JS.ACK.dom.hash.S.C.1.2.3.4.5.tok").map(|a| a.stream_seq),
            Some(2)
        );
        assert_eq!(ack_info("_INBOX.x"), None);
        assert_eq!(
            api_error(br#"{"type":"x","error":{"code":404,"err_code":10059,"description":"stream not found"}}"#),
            Some("stream not found".to_owned())
        );
        assert_eq!(api_error(br#"{"stream":"S","seq":4}"#), None);
        assert!(valid_subject("a.*.>", true) && !valid_subject("a.*", false));
        assert!(!valid_subject("a..b", true) && !valid_name("a.b"));
        assert_eq!(json_string("a\"b"), "\"a\\\"b\"");
    }
}
