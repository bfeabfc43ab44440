//! Drives the `unix_server` connector through its ABI objects, as the engine does, with std
//! Unix socket clients, and the compliance harness.

use std::{
    collections::BTreeMap,
    io::{Read, Write},
    os::unix::{fs::PermissionsExt, net::UnixListener, net::UnixStream},
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use temblor_harness::{config, connector};
use temblor_shim::{ErrorKind, Notify, Pull, SourceBatch, Value, Wake, abi::SourceBox};

fn module() -> temblor_shim::abi::PluginModRef {
    connector_unix_server::plugin_module()
}

/// A fresh folder for one test (short: socket paths are limited to 107 bytes).
fn temp_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("usit-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    dir
}

fn path_config(path: &Path, more: &[(&str, Value)]) -> Value {
    let mut fields = vec![("path", Value::from(path.display().to_string()))];
    fields.extend_from_slice(more);
    config(&fields)
}

/// What the source handed over, by stream.
#[derive(Default, Debug)]
struct Streams {
    started: Vec<(u64, Value)>,
    bytes: BTreeMap<u64, Vec<u8>>,
    ended: Vec<u64>,
    largest: usize,
}

impl Streams {
    fn take(&mut self, batch: &SourceBatch) {
        for (range, run) in batch.all_runs() {
            if run.starts() {
                assert!(
                    !self.started.iter().any(|(s, _)| *s == run.stream),
                    "started twice"
                );
                self.started.push((run.stream, run.meta.clone()));
            }
            for i in range {
                let chunk = batch.frames().get(i).expect("frame");
                assert!(
                    self.started.iter().any(|(s, _)| *s == run.stream),
                    "bytes before the start"
                );
                assert!(!self.ended.contains(&run.stream), "bytes after the end");
                self.largest = self.largest.max(chunk.len());
                self.bytes
                    .entry(run.stream)
                    .or_default()
                    .extend_from_slice(chunk);
            }
            if run.ends() {
                self.ended.push(run.stream);
            }
        }
    }

    fn pull_until(&mut self, source: &mut SourceBox, done: impl Fn(&Self) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut batch = SourceBatch::new();
        while !done(self) {
            assert!(Instant::now() < deadline, "timed out: {self:?}");
            batch.reset(0);
            source.pull_batch(&mut batch).into_result().expect("pull");
            self.take(&batch);
        }
    }

    fn peer(&self, stream: u64) -> &str {
        let meta = &self
            .started
            .iter()
            .find(|(s, _)| *s == stream)
            .expect("started")
            .1;
        meta.get("peer").and_then(Value::as_str).expect("meta.peer")
    }
}

#[test]
fn manifest_unknown_keys_and_no_sink() {
    let dir = temp_dir("manifest");
    let cfg = path_config(&dir.join("s"), &[]);
    connector::manifest(module());
    connector::rejects_unknown_key(module(), &cfg, true);
    connector::refuses_the_other_direction(module(), &cfg, false);
    assert!(
        !dir.join("s").exists(),
        "a refused config created no socket"
    );
    std::fs::remove_dir_all(dir).expect("clean up");
}

#[test]
fn each_connection_is_a_stream_named_path_n_with_chunks_of_at_most_max_frame() {
    let dir = temp_dir("streams");
    let path = dir.join("in.sock");
    let cfg = path_config(&path, &[("max_frame", Value::from(7_u64))]);
    let mut source = connector::source(module(), &cfg).expect("source");
    let mut a = UnixStream::connect(&path).expect("connect a");
    let mut got = Streams::default();
    got.pull_until(&mut source, |s| s.started.len() == 1);
    let mut b = UnixStream::connect(&path).expect("connect b");
    got.pull_until(&mut source, |s| s.started.len() == 2);
    let (sa, sb) = (got.started[0].0, got.started[1].0);
    assert_ne!(sa, sb);
    assert_eq!(got.peer(sa), format!("{}#1", path.display()));
    assert_eq!(got.peer(sb), format!("{}#2", path.display()));
    // Pieces of both, interleaved: each stream holds its own bytes, in order.
    let mut sent = [Vec::new(), Vec::new()];
    for n in 0..20 {
        for (k, client) in [&mut a, &mut b].into_iter().enumerate() {
            let piece = format!("{}{n}-", ["a", "b"][k]);
            client.write_all(piece.as_bytes()).expect("write");
            sent[k].extend_from_slice(piece.as_bytes());
        }
    }
    drop(a);
    drop(b);
    got.pull_until(&mut source, |s| s.ended.len() == 2);
    assert_eq!(got.bytes[&sa], sent[0]);
    assert_eq!(got.bytes[&sb], sent[1]);
    assert!(got.largest <= 7, "{}", got.largest);
    drop(source);
    std::fs::remove_dir_all(dir).expect("clean up");
}

#[test]
fn the_socket_file_has_the_mode_and_is_removed_on_drop() {
    let dir = temp_dir("mode");
    for (mode, want) in [(None, 0o600), (Some("0660"), 0o660), (Some("0666"), 0o666)] {
        let path = dir.join("m.sock");
        let more: Vec<(&str, Value)> = mode.map(|m| ("mode", Value::from(m))).into_iter().collect();
        let source = connector::source(module(), &path_config(&path, &more)).expect("source");
        let meta = std::fs::metadata(&path).expect("the socket exists");
        assert_eq!(meta.permissions().mode() & 0o777, want, "{mode:?}");
        let leftovers: Vec<_> = std::fs::read_dir(&dir).expect("dir").collect();
        assert_eq!(leftovers.len(), 1, "no temporary file left: {leftovers:?}");
        let client = UnixStream::connect(&path).expect("connect");
        drop(source);
        assert!(!path.exists(), "removed on drop");
        let mut client = client;
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut buf = [0; 1];
        assert!(
            matches!(client.read(&mut buf), Ok(0) | Err(_)),
            "the client was closed"
        );
    }
    std::fs::remove_dir_all(dir).expect("clean up");
}

#[test]
fn a_stale_socket_is_replaced_and_a_live_one_refused() {
    let dir = temp_dir("stale");
    let path = dir.join("s.sock");
    // A listener that is gone leaves its file behind: stale.
    drop(UnixListener::bind(&path).expect("bind"));
    assert!(path.exists());
    let cfg = path_config(&path, &[]);
    let mut source = connector::source(module(), &cfg).expect("the stale socket is replaced");
    let mut client = UnixStream::connect(&path).expect("the new server accepts");
    client.write_all(b"hi").expect("write");
    let mut got = Streams::default();
    got.pull_until(&mut source, |s| s.bytes.values().any(|b| b == b"hi"));
    // While it runs, a second server on the same path is refused, and the first goes on.
    let err = connector::source(module(), &cfg).err().expect("refused");
    assert_eq!(err.kind, ErrorKind::Io, "{err}");
    assert!(err.message.contains("in use"), "{err}");
    client.write_all(b"!").expect("still served");
    got.pull_until(&mut source, |s| s.bytes.values().any(|b| b == b"hi!"));
    drop(source);
    assert!(!path.exists());
    std::fs::remove_dir_all(dir).expect("clean up");
}

#[test]
fn a_client_over_max_connections_is_closed_without_a_stream() {
    let dir = temp_dir("limit");
    let path = dir.join("l.sock");
    let cfg = path_config(&path, &[("max_connections", Value::from(1_u64))]);
    let mut source = connector::source(module(), &cfg).expect("source");
    let first = UnixStream::connect(&path).expect("connect");
    let mut got = Streams::default();
    got.pull_until(&mut source, |s| s.started.len() == 1);
    let mut second = UnixStream::connect(&path).expect("connect (the kernel accepts)");
    second
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut buf = [0; 1];
    assert!(
        matches!(second.read(&mut buf), Ok(0) | Err(_)),
        "closed by the server"
    );
    drop(first);
    got.pull_until(&mut source, |s| s.ended.len() == 1);
    assert_eq!(got.started.len(), 1, "the refused client started no stream");
    drop(source);
    std::fs::remove_dir_all(dir).expect("clean up");
}

struct Count(AtomicUsize);

impl Wake for Count {
    fn wake(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn with_a_notify_pull_never_waits_and_data_wakes_the_engine() {
    let dir = temp_dir("notify");
    let path = dir.join("n.sock");
    let mut source = connector::source(module(), &path_config(&path, &[])).expect("source");
    let count = Arc::new(Count(AtomicUsize::new(0)));
    assert!(source.set_notify(Notify::new(Arc::clone(&count))));
    let mut batch = SourceBatch::new();
    assert_eq!(
        source.pull_batch(&mut batch).into_result().expect("pull"),
        Pull::Idle
    );
    let mut client = UnixStream::connect(&path).expect("connect");
    client.write_all(b"x").expect("write");
    let deadline = Instant::now() + Duration::from_secs(10);
    while count.0.load(Ordering::SeqCst) < 2 {
        assert!(Instant::now() < deadline, "never woken");
        std::thread::yield_now();
    }
    let mut got = Streams::default();
    got.pull_until(&mut source, |s| s.bytes.values().any(|b| b == b"x"));
    drop(source);
    std::fs::remove_dir_all(dir).expect("clean up");
}
