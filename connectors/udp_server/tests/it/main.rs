//! Drives the udp_server connector through its ABI objects, as the engine does, with `socat`,
//! `nc` (netcat-openbsd) and Python as the senders. Each datagram is a stream of its own, with
//! the sender in its `meta.peer`.

use std::{
    net::{SocketAddr, UdpSocket},
    process::{Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use connector_udp_server::UdpServer;
use temblor_harness::{
    TempDir, config, connector,
    net::Peer,
    process::{Spawned, netcat, wait_until},
};
use temblor_shim::{Setup, SourceBatch, Value, abi::SourceBox, source_object};

/// A server on a free loopback port, through the ABI object; and its address.
fn server(fields: &[(&str, Value)]) -> (SourceBox, SocketAddr) {
    let mut fields = fields.to_vec();
    fields.push(("url", Value::from("127.0.0.1:0")));
    let cfg = config(&fields);
    let server = UdpServer::new(&Setup {
        id: "it",
        config: &cfg,
    })
    .expect("server");
    let addr = server.local_addr();
    (source_object(server), addr)
}

/// One datagram as the source handed it over: its stream, `meta.peer` and bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Datagram {
    stream: u64,
    peer: String,
    bytes: Vec<u8>,
}

/// Pulls until `want` datagrams arrived or `timeout` passed; checks that each is a stream of
/// its own (started with `meta.peer`, one chunk, ended) with a fresh id.
fn pull_until(source: &mut SourceBox, want: usize, timeout: Duration) -> Vec<Datagram> {
    let deadline = Instant::now() + timeout;
    let mut got: Vec<Datagram> = Vec::new();
    let mut batch = SourceBatch::new();
    while got.len() < want && Instant::now() < deadline {
        batch.reset(0);
        let pull_started = Instant::now();
        source.pull_batch(&mut batch).into_result().expect("pull");
        assert!(pull_started.elapsed() < Duration::from_secs(1));
        for (range, run) in batch.all_runs() {
            assert!(
                run.starts() && run.ends(),
                "a datagram is a whole stream: {run:?}"
            );
            assert_eq!(range.len(), 1, "one chunk per datagram");
            assert!(
                got.last().is_none_or(|d| d.stream < run.stream),
                "a fresh stream per datagram"
            );
            let peer = run
                .meta
                .get("peer")
                .and_then(Value::as_str)
                .unwrap_or_else(|| panic!("no meta.peer: {}", run.meta))
                .to_owned();
            got.push(Datagram {
                stream: run.stream,
                peer,
                bytes: batch.frames().get(range.start).expect("frame").to_vec(),
            });
        }
    }
    got
}

fn bytes(datagrams: &[Datagram]) -> Vec<Vec<u8>> {
    datagrams.iter().map(|d| d.bytes.clone()).collect()
}

/// `127.0.0.1:PORT`.
fn is_loopback_peer(peer: &str) -> bool {
    peer.strip_prefix("127.0.0.1:")
        .and_then(|port| port.parse::<u16>().ok())
        .is_some_and(|port| port > 0)
}

#[test]
fn compliance_source_only_and_strict_config() {
    let module = connector_udp_server::plugin_module();
    let cfg = config(&[("url", Value::from("127.0.0.1:0"))]);
    connector::compliance(module, "udp_server", &cfg, connector::Offers::Source);
}

#[test]
fn harness_source_delivers_datagrams_sent_by_socat() {
    let module = connector_udp_server::plugin_module();
    let addr = UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a free port");
    let cfg = config(&[("url", Value::from(addr.to_string()))]);
    // UDP has no handshake to wait for: socat sends until the source has taken some.
    let done = Arc::new(AtomicBool::new(false));
    let sender = {
        let done = Arc::clone(&done);
        thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(20);
            while !done.load(Ordering::Relaxed) && Instant::now() < deadline {
                let mut peer = Spawned::spawn(
                    Command::new("socat")
                        .args(["-u", "-", &format!("UDP-SENDTO:{addr}")])
                        .stdin(Stdio::piped()),
                );
                {
                    use std::io::Write;
                    let mut stdin = peer.0.stdin.take().expect("stdin");
                    stdin.write_all(b"ping").expect("write");
                }
                assert!(peer.wait(Duration::from_secs(5)), "socat failed");
                thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let frames = connector::source_delivers(module, &cfg, 2, Duration::from_secs(20));
    done.store(true, Ordering::Relaxed);
    sender.join().expect("sender");
    assert!(frames.iter().all(|f| f == b"ping"), "{frames:?}");
    rebind(addr);
}

#[test]
fn each_datagram_from_socat_is_one_frame() {
    let (mut source, addr) = server(&[]);
    // socat sends each block it reads as one datagram: 40 of 1000 bytes.
    let data: Vec<u8> = (0..40_000_u32)
        .map(|i| u8::try_from(i % 251).expect("byte"))
        .collect();
    let dir = TempDir::new("blocks");
    let file = dir.write("blocks.bin", &data);
    let mut peer = Spawned::spawn(Command::new("socat").args([
        "-u".to_owned(),
        "-b".to_owned(),
        "1000".to_owned(),
        format!("OPEN:{}", file.display()),
        format!("UDP-SENDTO:{addr}"),
    ]));
    assert!(peer.wait(Duration::from_secs(10)), "socat failed");
    let datagrams = pull_until(&mut source, 40, Duration::from_secs(10));
    assert_eq!(datagrams.len(), 40);
    assert!(datagrams.iter().all(|d| d.bytes.len() == 1000));
    assert!(
        bytes(&datagrams).concat() == data,
        "datagrams arrive whole, in order"
    );
    // One socket sent them all: one peer, on loopback.
    assert!(
        is_loopback_peer(&datagrams[0].peer),
        "{}",
        datagrams[0].peer
    );
    assert!(datagrams.iter().all(|d| d.peer == datagrams[0].peer));
}

#[test]
fn nc_sends_one_datagram() {
    let (mut source, addr) = server(&[]);
    let dir = TempDir::new("nc");
    let file = dir.write("nc.txt", b"hello from nc");
    let mut peer = Spawned::spawn(
        Command::new(netcat())
            .args(["-u", "-w", "1", "127.0.0.1", &addr.port().to_string()])
            .stdin(std::fs::File::open(&file).expect("open"))
            .stdout(Stdio::null()),
    );
    let datagrams = pull_until(&mut source, 1, Duration::from_secs(10));
    assert_eq!(bytes(&datagrams), [b"hello from nc".to_vec()]);
    assert!(
        is_loopback_peer(&datagrams[0].peer),
        "{}",
        datagrams[0].peer
    );
    assert!(peer.wait(Duration::from_secs(10)), "nc failed");
}

#[test]
fn datagrams_larger_than_max_frame_are_dropped_and_the_rest_arrive() {
    let (mut source, addr) = server(&[("max_frame", Value::from(1000_u64))]);
    let script = "import socket, sys\n\
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
        to = ('127.0.0.1', int(sys.argv[1]))\n\
        for i in range(100):\n    s.sendto(b'msg-%d' % i, to)\n\
        s.sendto(b'x' * 1001, to)\n\
        s.sendto(b'y' * 1000, to)\n\
        s.sendto(b'end', to)\n";
    let mut peer =
        Spawned::spawn(Command::new("python3").args(["-c", script, &addr.port().to_string()]));
    assert!(peer.wait(Duration::from_secs(10)), "python failed");
    let datagrams = pull_until(&mut source, 102, Duration::from_secs(10));
    let mut expected: Vec<Vec<u8>> = (0..100).map(|i| format!("msg-{i}").into_bytes()).collect();
    expected.push(vec![b'y'; 1000]);
    expected.push(b"end".to_vec());
    assert_eq!(bytes(&datagrams), expected);
    // The dropped one took no stream id.
    let streams: Vec<u64> = datagrams.iter().map(|d| d.stream).collect();
    assert_eq!(streams, (1..=102).collect::<Vec<u64>>());
    assert!(pull_until(&mut source, 1, Duration::from_millis(300)).is_empty());
}

#[test]
fn each_datagram_carries_its_own_sender() {
    let (mut source, addr) = server(&[]);
    let mut senders: Vec<Peer> = (0..3).map(|_| Peer::udp(addr)).collect();
    for round in 0..5 {
        for (k, sender) in senders.iter_mut().enumerate() {
            sender.send(format!("{k}/{round}\n").as_bytes());
        }
    }
    let datagrams = pull_until(&mut source, 15, Duration::from_secs(10));
    assert_eq!(datagrams.len(), 15);
    for d in &datagrams {
        let k: usize = std::str::from_utf8(&d.bytes).expect("utf-8")[..1]
            .parse()
            .expect("sender number");
        let from = senders[k].local_addr().expect("addr").to_string();
        assert_eq!(d.peer, from, "{d:?}");
    }
}

#[test]
fn a_port_in_use_is_an_io_error_and_dropping_frees_it() {
    let (source, addr) = server(&[]);
    let cfg = config(&[("url", Value::from(addr.to_string()))]);
    let err = connector::source(connector_udp_server::plugin_module(), &cfg)
        .err()
        .expect("in use");
    assert_eq!(err.kind, temblor_shim::ErrorKind::Io, "{err}");
    assert!(err.message.contains(&addr.to_string()), "{err}");
    drop(source);
    rebind(addr);
}

/// Binds `addr`, which a dropped source has freed. Another test's sender may have taken it as
/// its ephemeral port meanwhile, for a moment: try for a while.
fn rebind(addr: SocketAddr) {
    assert!(
        wait_until(Duration::from_secs(5), || UdpSocket::bind(addr).is_ok()),
        "{addr} stays taken"
    );
}
