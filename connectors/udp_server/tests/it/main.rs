//! Drives the udp_server connector through its ABI objects, as the engine does, with `socat`,
//! `nc` (netcat-openbsd) and Python as the senders.

use std::{
    net::{SocketAddr, UdpSocket},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use connector_udp_server::UdpServer;
use temblor_harness::connector;
use temblor_shim::{Frames, Setup, Value, abi::SourceBox, source_object};

/// A child process, killed and reaped when dropped.
struct Peer(Child);

impl Peer {
    fn spawn(command: &mut Command) -> Self {
        Self(command.spawn().expect("start the peer (is it installed?)"))
    }

    /// Waits for the peer to exit on its own; true when it exited with success.
    fn wait(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.0.try_wait().expect("try_wait") {
                return status.success();
            }
            thread::sleep(Duration::from_millis(10));
        }
        false
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A file for one test, removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, data: &[u8]) -> Self {
        let path = std::env::temp_dir().join(format!(
            "temblor-connector-udp_server-it-{}-{name}",
            std::process::id()
        ));
        std::fs::write(&path, data).expect("write");
        Self(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn config(fields: &[(&str, Value)]) -> Value {
    Value::Object(fields.iter().cloned().collect())
}

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

/// Pulls until `want` frames arrived or `timeout` passed.
fn pull_until(source: &mut SourceBox, want: usize, timeout: Duration) -> Vec<Vec<u8>> {
    let deadline = Instant::now() + timeout;
    let mut got = Vec::new();
    let mut frames = Frames::new();
    while got.len() < want && Instant::now() < deadline {
        frames.clear();
        let pull_started = Instant::now();
        source.pull(&mut frames).into_result().expect("pull");
        assert!(pull_started.elapsed() < Duration::from_secs(1));
        got.extend(frames.iter().map(<[u8]>::to_vec));
    }
    got
}

#[test]
fn compliance_source_only_and_strict_config() {
    let module = connector_udp_server::plugin_module();
    connector::manifest(module);
    let cfg = config(&[("url", Value::from("127.0.0.1:0"))]);
    connector::refuses_the_other_direction(module, &cfg, false);
    connector::rejects_unknown_key(module, &cfg, true);
    assert_eq!((module.manifest())().name.as_str(), "udp_server");
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
                let mut peer = Peer::spawn(
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
    let file = TempFile::new("blocks.bin", &data);
    let mut peer = Peer::spawn(Command::new("socat").args([
        "-u".to_owned(),
        "-b".to_owned(),
        "1000".to_owned(),
        format!("OPEN:{}", file.0.display()),
        format!("UDP-SENDTO:{addr}"),
    ]));
    assert!(peer.wait(Duration::from_secs(10)), "socat failed");
    let frames = pull_until(&mut source, 40, Duration::from_secs(10));
    assert_eq!(frames.len(), 40);
    assert!(frames.iter().all(|f| f.len() == 1000));
    assert!(frames.concat() == data, "datagrams arrive whole, in order");
}

#[test]
fn nc_sends_one_datagram() {
    let (mut source, addr) = server(&[]);
    let file = TempFile::new("nc.txt", b"hello from nc");
    let mut peer = Peer::spawn(
        Command::new(netcat())
            .args(["-u", "-w", "1", "127.0.0.1", &addr.port().to_string()])
            .stdin(std::fs::File::open(&file.0).expect("open"))
            .stdout(Stdio::null()),
    );
    let frames = pull_until(&mut source, 1, Duration::from_secs(10));
    assert_eq!(frames, [b"hello from nc".to_vec()]);
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
        Peer::spawn(Command::new("python3").args(["-c", script, &addr.port().to_string()]));
    assert!(peer.wait(Duration::from_secs(10)), "python failed");
    let frames = pull_until(&mut source, 102, Duration::from_secs(10));
    let mut expected: Vec<Vec<u8>> = (0..100).map(|i| format!("msg-{i}").into_bytes()).collect();
    expected.push(vec![b'y'; 1000]);
    expected.push(b"end".to_vec());
    assert_eq!(frames, expected);
    assert!(pull_until(&mut source, 1, Duration::from_millis(300)).is_empty());
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
    let deadline = Instant::now() + Duration::from_secs(5);
    while let Err(e) = UdpSocket::bind(addr) {
        assert!(Instant::now() < deadline, "{addr} stays taken: {e}");
        thread::sleep(Duration::from_millis(50));
    }
}

/// netcat-openbsd (`nc.openbsd` on Debian, where `nc` may be another netcat).
fn netcat() -> &'static str {
    let openbsd = Command::new("nc.openbsd")
        .arg("-h")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if openbsd.is_ok() { "nc.openbsd" } else { "nc" }
}
