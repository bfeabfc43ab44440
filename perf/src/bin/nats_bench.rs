//! `nats-bench`: the JetStream side of `cargo xtask bench --scenario nats-ingest`, on the
//! `nats` connector's own client (`connector_nats::client::Link` and `proto`), on a tokio
//! runtime with the network plugins' settings (`TEMBLOR_NET_THREADS` workers, default 2).
//!
//! - `nats-bench fill ADDR STREAM SUBJECT FILE N`: creates the stream (file storage, one
//!   replica) on SUBJECT and publishes N messages, FILE's lines over and over, each waiting
//!   for its PubAck (1,000 in flight); prints `{"messages":..,"elapsed_s":..}`.
//! - `nats-bench drain ADDR STREAM CONSUMER N --batch B --max-ack-pending M`: the baseline, a
//!   raw consume-and-ack loop: creates the durable pull consumer as the connector does
//!   (explicit acks), asks for B messages at a time with two requests open as the connector
//!   does, acks (`+ACK`) every message as it arrives (the acks of one read in one write), and
//!   stops after N; prints `{"messages":..,"elapsed_s":..}`.
//! - `nats-bench watch ADDR STREAM CONSUMER N --timeout S`: how fast whoever consumes
//!   CONSUMER goes, seen from the server: asks for the consumer's info every 10 ms, from its
//!   first ack until all N messages are acked; prints
//!   `{"messages":..,"elapsed_s":..,"messages_s":..}`. The bench measures the engine and the
//!   baseline with it alike.

use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

use connector_nats::{
    client::Link,
    proto::{self, Msg, Op},
};
use temblor_net::tokio;
use temblor_perf::Cli;

const CLI: Cli = Cli {
    name: "nats-bench",
    usage: "nats-bench fill ADDR STREAM SUBJECT FILE N\n       nats-bench drain ADDR STREAM CONSUMER N --batch B --max-ack-pending M\n       nats-bench watch ADDR STREAM CONSUMER N --timeout S",
};

/// A connection with an inbox subscription for replies.
struct Conn {
    link: Link,
    inbox: String,
    next: u64,
}

impl Conn {
    async fn open(addr: &str) -> Self {
        let mut link = Link::open(addr, "nats-bench")
            .await
            .unwrap_or_else(|e| CLI.fail(&e));
        let inbox = format!("_INBOX.{}", proto::nuid());
        let mut out = Vec::new();
        proto::sub(&mut out, &format!("{inbox}.*"), None, 1);
        link.write(&out).await.unwrap_or_else(|e| CLI.fail(&e));
        Self {
            link,
            inbox,
            next: 0,
        }
    }

    fn reply_subject(&mut self) -> String {
        self.next += 1;
        format!("{}.{}", self.inbox, self.next)
    }

    /// A JetStream API request and its reply (5 s at most).
    async fn request(&mut self, subject: &str, body: &[u8]) -> Msg {
        let reply = self.reply_subject();
        let mut out = Vec::new();
        proto::publish(&mut out, subject, Some(&reply), &[], body);
        self.link.write(&out).await.unwrap_or_else(|e| CLI.fail(&e));
        let wait = async {
            loop {
                if let Op::Msg(m) = self.link.next_op().await.unwrap_or_else(|e| CLI.fail(&e))
                    && m.subject == reply
                {
                    return m;
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(5), wait)
            .await
            .unwrap_or_else(|_| CLI.fail(&format!("no answer to {subject} in 5 s")))
    }
}

/// A number field of a JetStream API reply, the first after `after` (`""`: the first).
fn field(reply: &str, after: &str, name: &str) -> Option<u64> {
    let from = reply.find(after)?;
    let key = format!("\"{name}\":");
    let at = reply[from..].find(&key)? + from + key.len();
    reply[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .ok()
}

async fn fill(args: &[String]) {
    let addr: String = CLI.arg(args, 0, "ADDR");
    let stream: String = CLI.arg(args, 1, "STREAM");
    let subject: String = CLI.arg(args, 2, "SUBJECT");
    let file: String = CLI.arg(args, 3, "FILE");
    let n: u64 = CLI.arg(args, 4, "N");
    let lines = temblor_perf::read_lines(std::path::Path::new(&file))
        .unwrap_or_else(|e| CLI.fail(&format!("cannot read {file}: {e}")));
    if lines.is_empty() {
        CLI.fail(&format!("{file} has no lines"));
    }
    let mut c = Conn::open(&addr).await;
    let body = format!(
        "{{\"name\":{},\"subjects\":[{}],\"storage\":\"file\",\"num_replicas\":1}}",
        proto::json_string(&stream),
        proto::json_string(&subject)
    );
    let created = c
        .request(&format!("$JS.API.STREAM.CREATE.{stream}"), body.as_bytes())
        .await;
    if let Some(e) = proto::api_error(&created.payload) {
        CLI.fail(&format!("creating stream {stream}: {e}"));
    }
    const WINDOW: u64 = 1000;
    let started = Instant::now();
    let (mut sent, mut acked) = (0_u64, 0_u64);
    let mut out = Vec::new();
    while acked < n {
        out.clear();
        while sent < n && sent - acked < WINDOW {
            let reply = format!("{}.p", c.inbox);
            let line = &lines[(sent % lines.len() as u64) as usize];
            proto::publish(&mut out, &subject, Some(&reply), &[], line);
            sent += 1;
        }
        if !out.is_empty() {
            c.link.write(&out).await.unwrap_or_else(|e| CLI.fail(&e));
        }
        let op = tokio::time::timeout(Duration::from_secs(10), c.link.next_op())
            .await
            .unwrap_or_else(|_| CLI.fail("no PubAck in 10 s"))
            .unwrap_or_else(|e| CLI.fail(&e));
        if let Op::Msg(m) = op {
            if let Some(e) = proto::api_error(&m.payload) {
                CLI.fail(&format!("publishing to {subject}: {e}"));
            }
            acked += 1;
        }
    }
    println!(
        "{{\"messages\":{n},\"elapsed_s\":{}}}",
        started.elapsed().as_secs_f64()
    );
}

/// `ADDR STREAM CONSUMER N`, the first arguments of `drain` and `watch`.
fn consumer_args(args: &[String]) -> (String, String, String, u64) {
    (
        CLI.arg(args, 0, "ADDR"),
        CLI.arg(args, 1, "STREAM"),
        CLI.arg(args, 2, "CONSUMER"),
        CLI.arg(args, 3, "N"),
    )
}

async fn drain(args: &[String]) {
    let (addr, stream, consumer, n) = consumer_args(args);
    let batch: usize = CLI.flag(args, "--batch", 256);
    let max_ack_pending: u64 = CLI.flag(args, "--max-ack-pending", 1024);
    let mut c = Conn::open(&addr).await;
    let config = format!(
        "{{\"stream_name\":{},\"config\":{{\"durable_name\":{},\"deliver_policy\":\"all\",\"ack_policy\":\"explicit\",\"ack_wait\":30000000000,\"max_ack_pending\":{max_ack_pending}}}}}",
        proto::json_string(&stream),
        proto::json_string(&consumer),
    );
    let created = c
        .request(
            &format!("$JS.API.CONSUMER.DURABLE.CREATE.{stream}.{consumer}"),
            config.as_bytes(),
        )
        .await;
    if let Some(e) = proto::api_error(&created.payload) {
        CLI.fail(&format!("creating consumer {consumer}: {e}"));
    }
    let next = format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}");
    let pull = format!("{{\"batch\":{batch},\"expires\":1000000000}}");
    // Open requests, oldest first: reply subject, messages still to come.
    let mut requests: VecDeque<(String, usize)> = VecDeque::new();
    let mut out = Vec::new();
    let mut received = 0_u64;
    let mut first: Option<Instant> = None;
    while received < n {
        out.clear();
        while requests.len() < 2 {
            let reply = c.reply_subject();
            proto::publish(&mut out, &next, Some(&reply), &[], pull.as_bytes());
            requests.push_back((reply, batch));
        }
        // Everything already read: its acks go out in one write.
        loop {
            let op = match c.link.parsed() {
                Ok(Some(op)) => op,
                Ok(None) => break,
                Err(e) => CLI.fail(&e),
            };
            match op {
                Op::Ping => out.extend_from_slice(b"PONG\r\n"),
                Op::Err(e) => CLI.fail(&format!("-ERR {e}")),
                Op::Msg(m) if m.status.is_some() => {
                    requests.retain(|(r, _)| *r != m.subject);
                }
                Op::Msg(m) => {
                    let Some(reply) = m.reply else { continue };
                    first.get_or_insert_with(Instant::now);
                    proto::publish(&mut out, &reply, None, &[], b"+ACK");
                    received += 1;
                    if let Some(front) = requests.front_mut() {
                        front.1 = front.1.saturating_sub(1);
                        if front.1 == 0 {
                            requests.pop_front();
                        }
                    }
                }
                _ => {}
            }
        }
        if !out.is_empty() {
            c.link.write(&out).await.unwrap_or_else(|e| CLI.fail(&e));
        }
        if received < n {
            tokio::time::timeout(Duration::from_secs(10), c.link.fill())
                .await
                .unwrap_or_else(|_| CLI.fail(&format!("nothing in 10 s after {received} messages")))
                .unwrap_or_else(|e| CLI.fail(&e));
        }
    }
    let elapsed = first.map_or(0.0, |f| f.elapsed().as_secs_f64());
    println!("{{\"messages\":{received},\"elapsed_s\":{elapsed}}}");
}

async fn watch(args: &[String]) {
    let (addr, stream, consumer, n) = consumer_args(args);
    let timeout: f64 = CLI.flag(args, "--timeout", 120.0);
    let mut c = Conn::open(&addr).await;
    let deadline = Instant::now() + Duration::from_secs_f64(timeout);
    let info = format!("$JS.API.CONSUMER.INFO.{stream}.{consumer}");
    let mut start: Option<(Instant, u64)> = None;
    loop {
        let reply = c.request(&info, b"").await;
        let text = String::from_utf8_lossy(&reply.payload);
        let now = Instant::now();
        if !text.contains("\"error\"") {
            let acked = field(&text, "\"ack_floor\"", "stream_seq").unwrap_or(0);
            if acked > 0 && start.is_none() {
                start = Some((now, acked));
            }
            if acked >= n {
                let (t0, a0) = start.unwrap_or((now, acked));
                let elapsed = now.duration_since(t0).as_secs_f64();
                let messages = n - a0;
                println!(
                    "{{\"messages\":{messages},\"elapsed_s\":{elapsed},\"messages_s\":{}}}",
                    messages as f64 / elapsed.max(1e-9)
                );
                return;
            }
        }
        if now > deadline {
            CLI.fail(&format!(
                "consumer {consumer} did not ack {n} messages in {timeout} s: {text}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(temblor_net::runtime::worker_threads())
        .enable_all()
        .build()
        .unwrap_or_else(|e| CLI.fail(&format!("no runtime: {e}")));
    let rest = args.get(1..).unwrap_or_default();
    match args.first().map(String::as_str) {
        Some("fill") => rt.block_on(fill(rest)),
        Some("drain") => rt.block_on(drain(rest)),
        Some("watch") => rt.block_on(watch(rest)),
        _ => CLI.usage("which command?"),
    }
}
