//! Drives the `unix_client` connector through its ABI objects, as the engine does, against std
//! Unix socket servers, and the compliance harness.

use std::{io::Read, os::unix::net::UnixListener, path::Path, thread, time::Duration};

use temblor_harness::{TempDir, config, connector};
use temblor_shim::{ErrorKind, Frames, PluginError, Value, abi::SinkBox};

fn module() -> temblor_shim::abi::PluginModRef {
    connector_unix_client::plugin_module()
}

fn sink(path: &Path, more: &[(&str, Value)]) -> SinkBox {
    let mut fields = vec![("path", Value::from(path.display().to_string()))];
    fields.extend_from_slice(more);
    connector::sink(module(), &config(&fields)).expect("sink")
}

fn push(sink: &mut SinkBox, frames: &Frames) -> (Result<(), PluginError>, Vec<u32>) {
    connector::push(sink, frames, &[])
}

/// Reads a connection to its end.
fn read_all(mut s: std::os::unix::net::UnixStream) -> Vec<u8> {
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let mut all = Vec::new();
    s.read_to_end(&mut all).expect("read");
    all
}

#[test]
fn manifest_unknown_keys_and_no_source() {
    let cfg = config(&[("path", Value::from("/nonexistent/x.sock"))]);
    connector::compliance(module(), "unix_client", &cfg, connector::Offers::Sink);
}

#[test]
fn every_frame_arrives_in_order_and_a_server_that_closed_between_batches_loses_nothing() {
    let dir = TempDir::new("order");
    let path = dir.join("s.sock");
    let listener = UnixListener::bind(&path).expect("bind");
    let mut sink = sink(&path, &[]);
    let (first, _) = listener.accept().expect("the constructor connected");
    let lines: Vec<String> = (0..1000).map(|n| format!("line {n}\n")).collect();
    let frames: Frames = lines.iter().map(String::as_bytes).collect();
    let (result, delivered) = push(&mut sink, &frames);
    result.expect("push");
    assert!(delivered.is_empty(), "a full success lists nothing");
    sink.flush().into_result().expect("flush");
    // The server closes; the next batch goes to a new connection, whole.
    let mut first = first;
    first
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut got = vec![0; lines.concat().len()];
    first.read_exact(&mut got).expect("the first batch");
    assert_eq!(got, lines.concat().as_bytes());
    drop(first);
    thread::sleep(Duration::from_millis(50));
    let (result, _) = push(&mut sink, &[&b"after\n"[..]].into_iter().collect());
    result.expect("push after the server closed");
    let (second, _) = listener.accept().expect("reconnected");
    drop(sink);
    assert_eq!(read_all(second), b"after\n");
    std::fs::remove_dir_all(dir).expect("clean up");
}

#[test]
fn with_nobody_listening_the_batch_fails_after_the_retries_with_nothing_delivered() {
    let dir = TempDir::new("nobody");
    let path = dir.join("none.sock");
    let mut sink = sink(
        &path,
        &[
            ("backoff_ms", Value::from(5_u64)),
            ("max_backoff_ms", Value::from(10_u64)),
            ("max_retries", Value::from(2_u64)),
        ],
    );
    let (result, delivered) = push(&mut sink, &[&b"lost\n"[..]].into_iter().collect());
    let err = result.expect_err("nobody listens");
    assert_eq!(err.kind, ErrorKind::Io, "{err}");
    assert!(err.message.contains("after 3 attempts"), "{err}");
    assert!(err.message.contains("none.sock"), "{err}");
    assert!(delivered.is_empty());
    // An empty batch needs no connection.
    let (result, _) = push(&mut sink, &Frames::new());
    result.expect("nothing to write");
    std::fs::remove_dir_all(dir).expect("clean up");
}

/// Eight frames of 100 KiB, each filled with its number: more than a stalled socket takes.
fn big_frames() -> Frames {
    let frames: Vec<Vec<u8>> = (0..8_u8).map(|n| vec![b'a' + n; 100 * 1024]).collect();
    frames.iter().map(Vec::as_slice).collect()
}

/// A server socket in a fresh folder for `test`, listening, and a sink on it whose writes time
/// out after 300 ms, with `more` config.
fn listening_sink(test: &str, more: &[(&str, Value)]) -> (TempDir, UnixListener, SinkBox) {
    let dir = TempDir::new(test);
    let path = dir.join("s.sock");
    let listener = UnixListener::bind(&path).expect("bind");
    let mut fields = vec![("timeout_ms", Value::from(300_u64))];
    fields.extend_from_slice(more);
    let sink = sink(&path, &fields);
    (dir, listener, sink)
}

#[test]
fn a_stalled_server_gets_the_written_frames_listed_in_delivered() {
    let (dir, listener, mut sink) = listening_sink("stall", &[("max_retries", Value::from(0_u64))]);
    let (conn, _) = listener.accept().expect("connected");
    let frames = big_frames();
    // The server reads nothing: the writes stall and time out.
    let (result, delivered) = push(&mut sink, &frames);
    let err = result.expect_err("stalled");
    assert_eq!(err.kind, ErrorKind::Io, "{err}");
    let k = delivered.len();
    assert!(k < frames.len(), "{delivered:?}");
    assert_eq!(delivered, (0..k as u32).collect::<Vec<_>>(), "a prefix");
    drop(sink);
    let got = read_all(conn);
    let written: Vec<u8> = frames.iter().take(k).flatten().copied().collect();
    assert!(
        got.starts_with(&written),
        "the delivered frames arrived whole"
    );
    std::fs::remove_dir_all(dir).expect("clean up");
}

#[test]
fn after_a_broken_write_the_retry_goes_on_from_the_first_frame_not_written() {
    let (dir, listener, mut sink) = listening_sink(
        "resume",
        &[
            ("backoff_ms", Value::from(10_u64)),
            ("max_retries", Value::from(1_u64)),
        ],
    );
    let (stalled, _) = listener.accept().expect("connected");
    // The second connection (the retry) is read at once, to its end.
    let server = thread::spawn(move || {
        let (second, _) = listener.accept().expect("reconnected");
        (read_all(stalled), read_all(second))
    });
    let frames = big_frames();
    let (result, delivered) = push(&mut sink, &frames);
    result.expect("the retry wrote the rest");
    assert!(delivered.is_empty());
    drop(sink);
    let (first, second) = server.join().expect("server");
    // The retry began at a frame boundary after the frames the first connection took.
    let per = 100 * 1024;
    assert_eq!(second.len() % per, 0, "whole frames");
    let k = frames.len() - second.len() / per;
    assert!(k >= 1 && k < frames.len(), "k = {k}");
    let rest: Vec<u8> = frames.iter().skip(k).flatten().copied().collect();
    assert_eq!(second, rest);
    let before: Vec<u8> = frames.iter().take(k).flatten().copied().collect();
    assert!(first.starts_with(&before));
    std::fs::remove_dir_all(dir).expect("clean up");
}
