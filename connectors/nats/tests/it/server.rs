//! Test support shared by the connector's tests and the app's scale-out tests (included there
//! by path): a `nats-server` on a free loopback port, killed by PID when dropped, and a small
//! blocking NATS client written for the tests (not the connector's own).
#![allow(dead_code)]

use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// A loopback port nobody listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port()
}

/// A `nats-server -js` on 127.0.0.1, killed (by its PID) when dropped.
pub struct NatsServer {
    pub port: u16,
    pub dir: PathBuf,
    child: Child,
    args: Vec<String>,
}

impl NatsServer {
    /// A standalone JetStream server storing in `dir`.
    pub fn start(dir: &Path) -> Self {
        Self::start_with(dir, free_port(), &[])
    }

    /// A server on `port` with more arguments (`--cluster`, `--routes`, ...).
    pub fn start_with(dir: &Path, port: u16, extra: &[String]) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let mut args: Vec<String> = [
            "-a",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-js",
            "-sd",
            &dir.display().to_string(),
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        args.extend(extra.iter().cloned());
        let child = spawn(&args, dir);
        let server = Self {
            port,
            dir: dir.to_path_buf(),
            child,
            args,
        };
        server.wait_ready();
        server
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("nats-server on port {} did not come up", self.port);
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// SIGKILL, then wait.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again with the same arguments (after [`NatsServer::kill`]).
    pub fn restart(&mut self) {
        self.child = spawn(&self.args, &self.dir);
        self.wait_ready();
    }
}

fn spawn(args: &[String], dir: &Path) -> Child {
    let log = std::fs::File::create(dir.join("nats-server.log")).unwrap();
    Command::new("nats-server")
        .args(args)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("nats-server (apt-get install nats-server; `cargo xtask test` installs it)")
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// How long one read of a [`Client`] waits (a cluster electing a leader drops requests: they
/// are sent again after this).
const READ_WAIT: Duration = Duration::from_secs(2);

/// A message a [`Client`] received.
#[derive(Debug, Default)]
pub struct Received {
    pub subject: String,
    pub reply: Option<String>,
    pub headers: String,
    pub payload: Vec<u8>,
}

/// A blocking NATS client for tests.
pub struct Client {
    rd: BufReader<TcpStream>,
    wr: TcpStream,
    inbox: String,
    next: u64,
}

impl Client {
    pub fn connect(addr: &str) -> Self {
        let tcp = TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(READ_WAIT)).unwrap();
        let wr = tcp.try_clone().unwrap();
        let mut c = Self {
            rd: BufReader::new(tcp),
            wr,
            inbox: format!("_TINBOX.{}.{}", std::process::id(), free_port()),
            next: 0,
        };
        let mut line = String::new();
        c.rd.read_line(&mut line).unwrap();
        assert!(line.starts_with("INFO"), "{line}");
        let sub = format!(
            "CONNECT {{\"verbose\":false,\"headers\":true,\"no_responders\":true}}\r\nSUB {}.* 1\r\n",
            c.inbox
        );
        c.send(sub.as_bytes());
        c.flush();
        c
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.wr.write_all(bytes).unwrap();
    }

    /// PING, and waits for the PONG (messages that come first are dropped).
    pub fn flush(&mut self) {
        self.send(b"PING\r\n");
        while self.next_msg_or_pong().is_some() {}
    }

    /// The next message; `None` for a PONG (20 s at most).
    fn next_msg_or_pong(&mut self) -> Option<Received> {
        for _ in 0..10 {
            if let Some(op) = self.read_op() {
                return op;
            }
        }
        panic!("nothing from the server in 20 s");
    }

    /// The next message (`Some(None)` for a PONG); `None` when nothing came in [`READ_WAIT`].
    fn read_op(&mut self) -> Option<Option<Received>> {
        loop {
            let mut line = String::new();
            let n = match self.rd.read_line(&mut line) {
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) && line.is_empty() =>
                {
                    return None;
                }
                Err(e) => panic!("reading from the server: {e}"),
            };
            assert!(n > 0, "the server closed the connection");
            let line = line.trim_end();
            let words: Vec<&str> = line.split(' ').collect();
            match words[0] {
                "PONG" => return Some(None),
                "PING" => self.send(b"PONG\r\n"),
                "MSG" | "HMSG" => {
                    let h = words[0] == "HMSG";
                    let n = words.len();
                    let (hlen, total): (usize, usize) = if h {
                        (words[n - 2].parse().unwrap(), words[n - 1].parse().unwrap())
                    } else {
                        (0, words[n - 1].parse().unwrap())
                    };
                    let fixed = if h { 5 } else { 4 };
                    let reply = (n > fixed).then(|| words[3].to_owned());
                    let mut body = vec![0; total + 2];
                    self.rd.read_exact(&mut body).unwrap();
                    body.truncate(total);
                    return Some(Some(Received {
                        subject: words[1].to_owned(),
                        reply,
                        headers: String::from_utf8_lossy(&body[..hlen]).into_owned(),
                        payload: body[hlen..].to_vec(),
                    }));
                }
                "-ERR" => panic!("server error: {line}"),
                _ => {}
            }
        }
    }

    /// The next message.
    pub fn next_msg(&mut self) -> Received {
        loop {
            if let Some(m) = self.next_msg_or_pong() {
                return m;
            }
        }
    }

    /// Publishes (headers as `Name: value` lines, none when empty) without waiting.
    pub fn publish(
        &mut self,
        subject: &str,
        reply: Option<&str>,
        headers: &[(&str, &str)],
        payload: &[u8],
    ) {
        let reply = reply.map(|r| format!(" {r}")).unwrap_or_default();
        if headers.is_empty() {
            let head = format!("PUB {subject}{reply} {}\r\n", payload.len());
            self.send(head.as_bytes());
        } else {
            let mut block = String::from("NATS/1.0\r\n");
            for (k, v) in headers {
                block.push_str(&format!("{k}: {v}\r\n"));
            }
            block.push_str("\r\n");
            let head = format!(
                "HPUB {subject}{reply} {} {}\r\n{block}",
                block.len(),
                block.len() + payload.len()
            );
            self.send(head.as_bytes());
        }
        self.send(payload);
        self.send(b"\r\n");
    }

    /// A request and its reply's payload, sent again when no reply came in [`READ_WAIT`]
    /// (or the reply was 503, no responders: a cluster without a leader yet), 30 times at most.
    pub fn request(&mut self, subject: &str, payload: &[u8]) -> String {
        for _ in 0..30 {
            self.next += 1;
            let reply = format!("{}.{}", self.inbox, self.next);
            self.publish(subject, Some(&reply), &[], payload);
            while let Some(op) = self.read_op() {
                match op {
                    Some(m) if m.subject == reply && m.headers.contains(" 503") => {
                        std::thread::sleep(Duration::from_millis(200));
                        break;
                    }
                    Some(m) if m.subject == reply => {
                        return String::from_utf8_lossy(&m.payload).into_owned();
                    }
                    _ => {}
                }
            }
        }
        panic!("no answer to {subject}");
    }

    /// Creates a stream on `subjects` (file storage, `replicas`, a duplicate window of 2 min).
    pub fn create_stream(&mut self, name: &str, subjects: &[&str], replicas: u32) {
        let subjects: Vec<String> = subjects.iter().map(|s| format!("\"{s}\"")).collect();
        let body = format!(
            "{{\"name\":\"{name}\",\"subjects\":[{}],\"storage\":\"file\",\"num_replicas\":{replicas},\"duplicate_window\":120000000000}}",
            subjects.join(",")
        );
        let reply = self.request(&format!("$JS.API.STREAM.CREATE.{name}"), body.as_bytes());
        assert!(
            !reply.contains("\"error\""),
            "creating stream {name}: {reply}"
        );
    }

    /// Publishes `payloads` to a JetStream subject and waits for every PubAck (publishing
    /// `window` at a time). Each message has a `Nats-Msg-Id` (its payload in hex: payloads must differ): what has no PubAck
    /// after [`READ_WAIT`] (a node died, a leader is being elected) is sent again, and the
    /// server's duplicate window keeps one.
    pub fn js_publish_all(&mut self, subject: &str, payloads: &[Vec<u8>], window: usize) {
        for chunk in payloads.chunks(window) {
            let mut missing: Vec<usize> = (0..chunk.len()).collect();
            for _ in 0..30 {
                if missing.is_empty() {
                    break;
                }
                let mut replies = std::collections::HashMap::new();
                for &i in &missing {
                    self.next += 1;
                    let reply = format!("{}.{}", self.inbox, self.next);
                    let id: String = chunk[i].iter().map(|b| format!("{b:02x}")).collect();
                    self.publish(subject, Some(&reply), &[("Nats-Msg-Id", &id)], &chunk[i]);
                    replies.insert(reply, i);
                }
                let mut stored = Vec::new();
                while stored.len() < replies.len() {
                    let Some(op) = self.read_op() else { break };
                    let Some(m) = op else { continue };
                    let Some(&i) = replies.get(&m.subject) else {
                        continue;
                    };
                    let text = String::from_utf8_lossy(&m.payload);
                    if text.contains("\"seq\"") && !text.contains("\"error\"") {
                        stored.push(i);
                    }
                }
                missing.retain(|i| !stored.contains(i));
                if !missing.is_empty() {
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
            assert!(
                missing.is_empty(),
                "{} messages never stored",
                missing.len()
            );
        }
    }

    /// A number field of a JetStream API reply (`"num_ack_pending":3`).
    pub fn field(reply: &str, name: &str) -> u64 {
        let key = format!("\"{name}\":");
        let at = reply
            .find(&key)
            .unwrap_or_else(|| panic!("no {name} in {reply}"))
            + key.len();
        reply[at..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .unwrap_or(0)
    }

    /// The consumer's info.
    pub fn consumer_info(&mut self, stream: &str, consumer: &str) -> String {
        self.request(&format!("$JS.API.CONSUMER.INFO.{stream}.{consumer}"), b"")
    }

    /// The stream's info.
    pub fn stream_info(&mut self, stream: &str) -> String {
        self.request(&format!("$JS.API.STREAM.INFO.{stream}"), b"")
    }
}
