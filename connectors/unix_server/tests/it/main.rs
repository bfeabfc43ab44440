//! Drives the `unix_server` connector through its ABI objects, as the engine does, with std
//! Unix socket clients, and the compliance harness.

use std::{
    os::unix::{fs::PermissionsExt, net::UnixListener},
    path::Path,
    time::Duration,
};

use temblor_harness::{
    TempDir, config,
    connector::{self, Streams, Wakes},
    net::Peer,
};
use temblor_shim::{ErrorKind, Pull, SourceBatch, Value};

fn module() -> temblor_shim::abi::PluginModRef {
    connector_unix_server::plugin_module()
}

fn path_config(path: &Path, more: &[(&str, Value)]) -> Value {
    let mut fields = vec![("path", Value::from(path.display().to_string()))];
    fields.extend_from_slice(more);
    config(&fields)
}

#[test]
fn compliance_and_no_socket_from_a_refused_config() {
    let dir = TempDir::new("manifest");
    let cfg = path_config(&dir.join("s"), &[]);
    connector::compliance(module(), "unix_server", &cfg, connector::Offers::Source);
    connector::rejects_unknown_key(module(), &cfg, true);
    assert!(
        !dir.join("s").exists(),
        "a refused config created no socket, a dropped source left none"
    );
}

#[test]
fn each_connection_is_a_stream_named_path_n_with_chunks_of_at_most_max_frame() {
    let dir = TempDir::new("streams");
    let path = dir.join("in.sock");
    let cfg = path_config(&path, &[("max_frame", Value::from(7_u64))]);
    let mut source = connector::source(module(), &cfg).expect("source");
    let mut a = Peer::unix(&path);
    let mut got = Streams::default();
    got.pull_until(&mut source, |s| s.starts.len() == 1);
    let mut b = Peer::unix(&path);
    got.pull_until(&mut source, |s| s.starts.len() == 2);
    let (sa, sb) = (got.starts[0].0, got.starts[1].0);
    assert_ne!(sa, sb);
    assert_eq!(got.peer(sa), format!("{}#1", path.display()));
    assert_eq!(got.peer(sb), format!("{}#2", path.display()));
    // Pieces of both, interleaved: each stream holds its own bytes, in order.
    let mut sent = [Vec::new(), Vec::new()];
    for n in 0..20 {
        for (k, client) in [&mut a, &mut b].into_iter().enumerate() {
            let piece = format!("{}{n}-", ["a", "b"][k]);
            client.send(piece.as_bytes());
            sent[k].extend_from_slice(piece.as_bytes());
        }
    }
    drop(a);
    drop(b);
    got.pull_until(&mut source, |s| s.ended.len() == 2);
    assert_eq!(got.bytes_of(sa), sent[0]);
    assert_eq!(got.bytes_of(sb), sent[1]);
    assert!(got.largest_frame() <= 7, "{}", got.largest_frame());
    drop(source);
    std::fs::remove_dir_all(dir).expect("clean up");
}

#[test]
fn the_socket_file_has_the_mode_and_is_removed_on_drop() {
    let dir = TempDir::new("mode");
    for (mode, want) in [(None, 0o600), (Some("0660"), 0o660), (Some("0666"), 0o666)] {
        let path = dir.join("m.sock");
        let more: Vec<(&str, Value)> = mode.map(|m| ("mode", Value::from(m))).into_iter().collect();
        let source = connector::source(module(), &path_config(&path, &more)).expect("source");
        let meta = std::fs::metadata(&path).expect("the socket exists");
        assert_eq!(meta.permissions().mode() & 0o777, want, "{mode:?}");
        let leftovers: Vec<_> = std::fs::read_dir(&dir).expect("dir").collect();
        assert_eq!(leftovers.len(), 1, "no temporary file left: {leftovers:?}");
        let mut client = Peer::unix(&path);
        drop(source);
        assert!(!path.exists(), "removed on drop");
        assert!(
            client.recv(Duration::from_secs(5)).is_empty(),
            "the client was closed"
        );
    }
    std::fs::remove_dir_all(dir).expect("clean up");
}

#[test]
fn a_stale_socket_is_replaced_and_a_live_one_refused() {
    let dir = TempDir::new("stale");
    let path = dir.join("s.sock");
    // A listener that is gone leaves its file behind: stale.
    drop(UnixListener::bind(&path).expect("bind"));
    assert!(path.exists());
    let cfg = path_config(&path, &[]);
    let mut source = connector::source(module(), &cfg).expect("the stale socket is replaced");
    let mut client = Peer::unix(&path);
    client.send(b"hi");
    let mut got = Streams::default();
    got.pull_until(&mut source, |s| s.has_stream_of(b"hi"));
    // While it runs, a second server on the same path is refused, and the first goes on.
    let err = connector::source(module(), &cfg).err().expect("refused");
    assert_eq!(err.kind, ErrorKind::Io, "{err}");
    assert!(err.message.contains("in use"), "{err}");
    client.send(b"!");
    got.pull_until(&mut source, |s| s.has_stream_of(b"hi!"));
    drop(source);
    assert!(!path.exists());
    std::fs::remove_dir_all(dir).expect("clean up");
}

#[test]
fn a_client_over_max_connections_is_closed_without_a_stream() {
    let dir = TempDir::new("limit");
    let path = dir.join("l.sock");
    let cfg = path_config(&path, &[("max_connections", Value::from(1_u64))]);
    let mut source = connector::source(module(), &cfg).expect("source");
    let first = Peer::unix(&path);
    let mut got = Streams::default();
    got.pull_until(&mut source, |s| s.starts.len() == 1);
    let mut second = Peer::unix(&path);
    assert!(
        second.recv(Duration::from_secs(5)).is_empty(),
        "closed by the server"
    );
    drop(first);
    got.pull_until(&mut source, |s| s.ended.len() == 1);
    assert_eq!(got.starts.len(), 1, "the refused client started no stream");
    drop(source);
    std::fs::remove_dir_all(dir).expect("clean up");
}

#[test]
fn with_a_notify_pull_never_waits_and_data_wakes_the_engine() {
    let dir = TempDir::new("notify");
    let path = dir.join("n.sock");
    let mut source = connector::source(module(), &path_config(&path, &[])).expect("source");
    let wakes = Wakes::install(&mut source).expect("takes a notify");
    let mut batch = SourceBatch::new();
    assert_eq!(
        source.pull_batch(&mut batch).into_result().expect("pull"),
        Pull::Idle
    );
    Peer::unix(&path).send(b"x");
    wakes.wait_for(2);
    let mut got = Streams::default();
    got.pull_until(&mut source, |s| s.has_stream_of(b"x"));
    drop(source);
    std::fs::remove_dir_all(dir).expect("clean up");
}
