//! End to end: the plugins' own runtimes: side by side, across hot reloads (no thread or
//! socket left behind, open connections closed cleanly), and an idle engine that does not
//! poll.
//!
//! `TEMBLOR_NET_THREADS=1` makes each runtime one worker thread named `temblor-net`, so the
//! threads tell how many runtimes run: one per network plugin library when plugins are
//! loaded from files (each cdylib has its own copy of tokio), one in the monolith.

use std::{io::Write as _, net::TcpStream, path::Path, process::Command, time::Duration};

use crate::support::{Connector, Deployment, Engine, free_port, lines, temblor, temp_dir};

/// tcp_server on `tcp` and http_server on `http`, both into out.txt, one event a line.
fn two_servers(tcp: u16, http: u16, out: &Path) -> Deployment {
    Deployment::passthrough(
        Connector::new("tcp", "tcp_server")
            .codec("string")
            .pre("separate")
            .set("url", format!("127.0.0.1:{tcp}")),
        Connector::file_write("out", out).codec("string"),
    )
    .source(
        Connector::new("http", "http_server")
            .codec("string")
            .set("url", format!("127.0.0.1:{http}")),
        "main",
    )
}

/// Runs `cmd` (`temblor`, with its plugin folder) on the two servers in `dir`, with one worker
/// thread per runtime and, for the plugin layout (reloads), `--control dir/control.sock`; once
/// both listen.
fn start(mut cmd: Command, dir: &Path, tcp: u16, http: u16) -> Engine {
    let out = dir.join("out.txt");
    cmd.env("TEMBLOR_NET_THREADS", "1")
        .arg("run")
        .arg(two_servers(tcp, http, &out).write(dir));
    if !cfg!(feature = "monolith") {
        cmd.arg("--control").arg(dir.join("control.sock"));
    }
    let engine = Engine::spawn(&mut cmd);
    wait_until("both servers listen", || listening(tcp) && listening(http));
    engine
}

/// Waits (20 s at most) until `what` holds.
fn wait_until(what: &str, f: impl FnMut() -> bool) {
    assert!(
        crate::support::wait_until(Duration::from_secs(20), f),
        "timed out: {what}"
    );
}

fn listening(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// The names of the process's threads.
fn thread_names(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|n| n.trim().to_owned())
        .collect()
}

fn net_threads(pid: u32) -> usize {
    thread_names(pid)
        .iter()
        .filter(|n| n.as_str() == "temblor-net")
        .count()
}

/// How many sockets of the process listen on `port` (from /proc/net/tcp, state 0A).
#[cfg(not(feature = "monolith"))]
fn listeners_on(pid: u32, port: u16) -> usize {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter_map(|l| {
            let l = l.display().to_string();
            Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
        })
        .collect();
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap()
        + &std::fs::read_to_string("/proc/net/tcp6").unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter(|row| {
            let cols: Vec<&str> = row.split_whitespace().collect();
            cols.len() > 9
                && cols[3] == "0A"
                && cols[1].ends_with(&format!(":{port:04X}"))
                && inodes.iter().any(|i| i == cols[9])
        })
        .count()
}

fn send_line(port: u16, line: &str) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(format!("{line}\n").as_bytes()).unwrap();
}

fn post(port: u16, body: &str) {
    let out = Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--data-binary",
            body,
        ])
        .arg(format!("http://127.0.0.1:{port}/"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "202", "{out:?}");
}

#[test]
fn two_network_plugins_run_side_by_side_each_on_its_own_runtime() {
    let dir = temp_dir("net-side-by-side");
    let out = dir.join("out.txt");
    let (tcp, http) = (free_port(), free_port());
    let engine = start(temblor(), &dir, tcp, http);
    send_line(tcp, "over tcp");
    post(http, "over http");
    wait_until("both events written", || lines(&out).len() == 2);
    let mut got = lines(&out);
    got.sort();
    assert_eq!(got, ["over http", "over tcp"]);
    // Each plugin library has its own tokio; the monolith links one.
    let runtimes = net_threads(engine.pid());
    let expected = if cfg!(feature = "monolith") { 1 } else { 2 };
    assert_eq!(
        runtimes,
        expected,
        "runtime threads: {:?}",
        thread_names(engine.pid())
    );
    engine.stop();
}

#[test]
fn an_idle_engine_with_network_sources_open_does_not_poll() {
    let dir = temp_dir("net-idle");
    let (tcp, http) = (free_port(), free_port());
    let engine = start(temblor(), &dir, tcp, http);
    // A client connected and silent: its connection's task is idle too.
    let _quiet = TcpStream::connect(("127.0.0.1", tcp)).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let switches = |pid: u32| -> u64 {
        std::fs::read_dir(format!("/proc/{pid}/task"))
            .unwrap()
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("status")).ok())
            .flat_map(|s| {
                s.lines()
                    .filter(|l| l.contains("ctxt_switches:"))
                    .filter_map(|l| l.split_whitespace().last()?.parse::<u64>().ok())
                    .collect::<Vec<_>>()
            })
            .sum()
    };
    let before = switches(engine.pid());
    std::thread::sleep(Duration::from_secs(2));
    let woke = switches(engine.pid()) - before;
    // A loop that sleeps in 20 ms steps wakes 100 times in 2 s; one waiting for 100 ms, 20.
    assert!(
        woke < 10,
        "the idle engine's threads woke {woke} times in 2 s: something polls"
    );
    engine.stop();
}

#[cfg(not(feature = "monolith"))]
mod reloads {
    use super::*;
    use crate::reload::{private_plugins, temblor_in};
    use crate::support::TempDir;
    use std::io::Read as _;
    use std::path::PathBuf;

    fn reload(dir: &Path, plugins: &Path, name: &str) {
        let out = temblor_in(dir, plugins)
            .args(["plugins", "reload", name, "--control"])
            .arg(dir.join("control.sock"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The two servers on the test's own copy of the plugins (a reload replaces files): the
    /// folder `test`, the plugins, the output file, the tcp server's port and the engine.
    fn start_private(test: &str) -> (TempDir, PathBuf, PathBuf, u16, Engine) {
        let dir = temp_dir(test);
        let plugins = private_plugins(&dir);
        let (tcp, http) = (free_port(), free_port());
        let engine = start(temblor_in(&dir, &plugins), &dir, tcp, http);
        let out = dir.join("out.txt");
        (dir, plugins, out, tcp, engine)
    }

    #[test]
    fn a_hundred_reloads_of_a_network_plugin_leave_no_thread_and_no_listener_behind() {
        let (dir, plugins, out, tcp, engine) = start_private("net-reloads");
        send_line(tcp, "0");
        wait_until("the first line", || lines(&out).len() == 1);
        let pid = engine.pid();
        let threads = thread_names(pid).len();
        assert_eq!(net_threads(pid), 2);
        for i in 1..=100 {
            reload(&dir, &plugins, "tcp_server");
            if i % 25 == 0 {
                send_line(tcp, &i.to_string());
            }
        }
        wait_until("a line after every 25 reloads", || lines(&out).len() == 5);
        assert_eq!(lines(&out), ["0", "25", "50", "75", "100"]);
        // The replaced libraries' runtimes were shut down: one each for tcp_server's latest
        // copy and http_server, and no other thread more than before.
        wait_until("old runtimes joined", || thread_names(pid).len() == threads);
        assert_eq!(net_threads(pid), 2, "{:?}", thread_names(pid));
        assert_eq!(listeners_on(pid, tcp), 1, "one listener on the tcp port");
        engine.stop();
    }

    #[test]
    fn a_plugin_reloaded_with_open_connections_closes_them_cleanly() {
        let (dir, plugins, out, tcp, engine) = start_private("net-unload-open");
        let mut clients: Vec<TcpStream> = (0..3)
            .map(|i| {
                let mut s = TcpStream::connect(("127.0.0.1", tcp)).unwrap();
                s.write_all(format!("client {i}\n").as_bytes()).unwrap();
                s
            })
            .collect();
        wait_until("three lines", || lines(&out).len() == 3);
        reload(&dir, &plugins, "tcp_server");
        for (i, c) in clients.iter_mut().enumerate() {
            c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut buf = [0_u8; 16];
            match c.read(&mut buf) {
                Ok(0) => {}
                other => panic!("client {i}: expected the server to close, got {other:?}"),
            }
        }
        send_line(tcp, "after");
        wait_until("the line after the reload", || lines(&out).len() == 4);
        let mut got = lines(&out);
        got.sort();
        assert_eq!(got, ["after", "client 0", "client 1", "client 2"]);
        engine.stop();
    }
}
