//! End to end: unix_server and unix_client, with socat.
//!
//! - Two `socat - UNIX-CONNECT:PATH` clients write pieces of JSON lines in turn into a
//!   `unix_server`: every line arrives whole, once, each client's in order, with its own
//!   `meta.peer` (`PATH#N`) and stream; the socket file has the configured mode while the
//!   engine runs and is gone after it exits.
//! - A `unix_server` refuses to start on a path that a live server (socat) listens on.
//! - `unix_client` delivers every line of a file, in order, to `socat UNIX-LISTEN:PATH,fork`.
//!
//! Socket paths are in the test's temp dir.

use std::{
    fs::File,
    os::unix::fs::{FileTypeExt, PermissionsExt},
    path::{Path, PathBuf},
    process::Command,
    thread,
    time::Duration,
};

use temblor_harness::process::{Fed, Spawned};
use temblor_shim::Value;

use crate::support::{
    Connector, Deployment, Engine, Pipeline, config, meta_into_event, output, temblor, temp_dir,
    two_clients, wait_lines, wait_until,
};

/// Lines each client sends.
const LINES: usize = 8;

/// `socat - UNIX-CONNECT:path`, written to through its stdin.
fn socat(path: &Path) -> Fed {
    Fed::spawn(
        Command::new("socat")
            .arg("-")
            .arg(format!("UNIX-CONNECT:{}", path.display())),
    )
}

/// `in` (unix_server at `socket`, json, `separate` per connection) → `main` (meta into the
/// event) → `out` (a JSON file).
fn unix_to_file(socket: &Path, mode: &str, out: &Path) -> Deployment {
    Deployment::pipe(
        Connector::new("in", "unix_server")
            .codec("json")
            .pre(config(&[
                ("name", "separate".into()),
                ("separator", "\n".into()),
            ]))
            .set_path("path", socket)
            .set("mode", mode),
        Pipeline::new("main").op(&meta_into_event(&["peer", "stream"])),
        Connector::file_write("out", out),
    )
}

#[test]
fn lines_of_two_socat_clients_never_mix_and_the_socket_file_has_its_mode() {
    let dir = temp_dir("unix-two");
    let socket = dir.join("in.sock");
    let out = dir.join("out.json");
    let engine = Engine::start(&unix_to_file(&socket, "0660", &out).write(&dir));
    engine.wait_for("unix server listening");
    let meta = std::fs::symlink_metadata(&socket).expect("the socket file");
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);

    let mut clients = [socat(&socket), socat(&socket)];
    // Let both connect, so that the first pieces interleave too.
    thread::sleep(Duration::from_millis(300));
    for n in 0..LINES {
        let pieces: [Vec<String>; 2] = [0, 1].map(|k| {
            vec![
                format!("{{\"client\":{k},"),
                format!("\"n\":{n},"),
                format!("\"pad\":\"{}\"", ["a", "b"][k].repeat(n + 1)),
                "}\n".to_owned(),
            ]
        });
        for i in 0..pieces[0].len() {
            for (client, part) in clients.iter_mut().zip(&pieces) {
                client.write(part[i].as_bytes());
                thread::sleep(Duration::from_millis(10));
            }
        }
    }
    for client in &mut clients {
        client.close();
    }
    let got = engine.wait_lines(&out, 2 * LINES);
    engine.stop();
    assert!(
        !socket.exists(),
        "the socket file is gone after the engine exited"
    );
    assert_eq!(got.len(), 2 * LINES, "{got:?}");

    let peers = two_clients(&got, LINES, |e, k, n| {
        assert_eq!(
            e.get("pad"),
            Some(&Value::from(["a", "b"][k].repeat(n as usize + 1))),
            "{e}"
        );
    });
    for (peer, _) in &peers {
        let n = peer
            .strip_prefix(&format!("{}#", socket.display()))
            .unwrap_or_else(|| panic!("peer is PATH#N: {peer}"));
        assert!(n.parse::<u64>().is_ok(), "{peer}");
    }
}

/// `socat -u UNIX-LISTEN:path,fork STDOUT`, its output into `out`.
fn listen(path: &Path, out: &Path) -> Spawned {
    let child = Spawned::spawn(
        Command::new("socat")
            .arg("-u")
            .arg(format!("UNIX-LISTEN:{},fork", path.display()))
            .arg("STDOUT")
            .stdout(File::create(out).unwrap()),
    );
    assert!(
        wait_until(Duration::from_secs(10), || path.exists()),
        "socat did not listen"
    );
    child
}

#[test]
fn a_unix_server_refuses_a_path_a_live_server_listens_on() {
    let dir = temp_dir("unix-live");
    let socket = dir.join("live.sock");
    let _socat = listen(&socket, &dir.join("ignored.txt"));
    let deploy = unix_to_file(&socket, "0600", &dir.join("out.json")).write(&dir);
    let (out, _, stderr) = output(temblor().arg("run").arg(&deploy));
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("'in'") && stderr.contains("is in use"),
        "{stderr}"
    );
    assert!(socket.exists(), "the live server's socket is left alone");
}

#[test]
fn unix_client_delivers_every_line_to_socat() {
    let dir = temp_dir("unix-client");
    let socket: PathBuf = dir.join("out.sock");
    let received = dir.join("received.txt");
    let server = listen(&socket, &received);
    let input = dir.join("in.txt");
    let lines: Vec<String> = (0..2000).map(|n| format!("line {n}")).collect();
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let deploy = Deployment::passthrough(
        Connector::file_read("in", "string", &input),
        Connector::new("out", "unix_client")
            .codec("string")
            .post("separate")
            .set_path("path", &socket),
    )
    .write(&dir);
    // The file ends, so the engine drains, closes its connection and exits by itself.
    let mut engine = Engine::start(&deploy);
    let status = engine.wait();
    assert_eq!(status.code(), Some(0), "{status}: {}", engine.log());
    let got = wait_lines(&received, lines.len());
    assert_eq!(got, lines, "every line once, in order");
    drop(server);
}
