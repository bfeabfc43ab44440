//! Drives the udp_client connector through its ABI objects, as the engine does, with a Python
//! receiver that prints every datagram it gets.

use std::{
    io::{BufReader, Lines},
    net::UdpSocket,
    process::{ChildStdout, Command},
};

use temblor_harness::{config, connector, process::Spawned};
use temblor_shim::{ErrorKind, Frames, PluginError, Value, abi::SinkBox};

/// A Python UDP receiver on a free loopback port: prints its port, then each datagram in hex,
/// and exits after `count` datagrams or 10 s of silence. Killed and reaped when dropped.
struct Receiver {
    _child: Spawned,
    lines: Lines<BufReader<ChildStdout>>,
    port: u16,
}

impl Receiver {
    fn start(count: usize) -> Self {
        let script = "import socket, sys\n\
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
            s.bind(('127.0.0.1', 0))\n\
            s.settimeout(10)\n\
            print(s.getsockname()[1], flush=True)\n\
            for _ in range(int(sys.argv[1])):\n    print(s.recv(70000).hex(), flush=True)\n";
        // The port is printed once the socket is bound: the receiver is ready.
        let (child, port, lines) =
            Spawned::reporting(Command::new("python3").args(["-c", script, &count.to_string()]));
        Self {
            _child: child,
            lines,
            port,
        }
    }

    fn url(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The next datagram, or `None` when the receiver timed out.
    fn next(&mut self) -> Option<Vec<u8>> {
        let line = self.lines.next()?.expect("read");
        Some(
            (0..line.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&line[i..i + 2], 16).expect("hex"))
                .collect(),
        )
    }
}

fn sink(cfg: &Value) -> Result<SinkBox, PluginError> {
    connector::sink(connector_udp_client::plugin_module(), cfg)
}

#[test]
fn compliance_sink_only_and_strict_config() {
    let module = connector_udp_client::plugin_module();
    let cfg = config(&[("url", Value::from("127.0.0.1:9"))]);
    connector::compliance(module, "udp_client", &cfg, connector::Offers::Sink);
}

#[test]
fn harness_sink_accepts_and_python_gets_one_datagram_per_frame() {
    let mut receiver = Receiver::start(3);
    let cfg = config(&[("url", Value::from(receiver.url()))]);
    let big = vec![b'z'; 60_000];
    connector::sink_accepts(
        connector_udp_client::plugin_module(),
        &cfg,
        &[b"{\"n\":1}", b"", &big],
    );
    assert_eq!(receiver.next(), Some(b"{\"n\":1}".to_vec()));
    assert_eq!(receiver.next(), Some(Vec::new()));
    assert_eq!(receiver.next(), Some(big));
}

#[test]
fn frames_larger_than_a_datagram_are_a_data_error_and_the_rest_is_sent() {
    let mut receiver = Receiver::start(2);
    let mut sink = sink(&config(&[("url", Value::from(receiver.url()))])).expect("sink");
    let huge = vec![b'h'; 70_000];
    let frames: Frames = [&b"before"[..], &huge, b"after"].into_iter().collect();
    let err = sink.push(&frames).into_result().expect_err("too large");
    assert_eq!(err.kind, ErrorKind::Data, "{err}");
    assert!(err.message.contains("1 of 3"), "{err}");
    assert_eq!(receiver.next(), Some(b"before".to_vec()));
    assert_eq!(receiver.next(), Some(b"after".to_vec()));
    // The sink goes on.
    let frames: Frames = [&b"later"[..]].into_iter().collect();
    assert_eq!(sink.push(&frames).into_result(), Ok(()));
}

#[test]
fn nobody_listening_is_not_an_error() {
    let port = UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a free port")
        .port();
    let mut sink = sink(&config(&[(
        "url",
        Value::from(format!("127.0.0.1:{port}")),
    )]))
    .expect("sink");
    let frames: Frames = [&b"lost"[..], b"also lost"].into_iter().collect();
    for _ in 0..3 {
        assert_eq!(sink.push(&frames).into_result(), Ok(()));
    }
    assert_eq!(sink.flush().into_result(), Ok(()));
}

#[test]
fn bind_chooses_the_local_address() {
    let receiver = UdpSocket::bind("127.0.0.1:0").expect("bind");
    receiver
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .expect("timeout");
    let local = UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a free port");
    let mut sink = sink(&config(&[
        (
            "url",
            Value::from(receiver.local_addr().expect("addr").to_string()),
        ),
        ("bind", Value::from(local.to_string())),
    ]))
    .expect("sink");
    let frames: Frames = [&b"from a chosen port"[..]].into_iter().collect();
    sink.push(&frames).into_result().expect("push");
    let mut buf = [0; 100];
    let (n, from) = receiver.recv_from(&mut buf).expect("datagram");
    assert_eq!(&buf[..n], b"from a chosen port");
    assert_eq!(from, local);
}
