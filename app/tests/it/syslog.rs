//! End to end: util-linux `logger`, the syslog client users run, sends RFC 5424 and RFC 3164
//! messages over UDP and TCP (newline framing and RFC 6587 octet counting) to `udp_server` and
//! `tcp_server` with the `syslog` codec; the decoded events land in a JSON file.

use std::{
    path::Path,
    process::Command,
    thread,
    time::{Duration, Instant},
};

use codec_json::decode_slice;
use temblor_shim::Value;

use crate::support::{Engine, deployment, free_port, temp_dir};

/// The events in `path` once it holds `n` lines (30 s at most).
fn wait_events(path: &Path, n: usize, engine: &Engine) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.lines().count() >= n {
            return text
                .lines()
                .map(|l| decode_slice(l.as_bytes()).unwrap_or_else(|e| panic!("{l}: {e}")))
                .collect();
        }
        assert!(
            Instant::now() < deadline,
            "{} lines of {n} after 30 s: {text}\n{}",
            text.lines().count(),
            engine.log()
        );
        thread::sleep(Duration::from_millis(20));
    }
}

fn logger(port: u16, args: &[&str]) {
    let status = Command::new("logger")
        .args(["--server", "127.0.0.1", "--port", &port.to_string()])
        .args(args)
        .status()
        .expect("util-linux logger (package bsdutils)");
    assert!(status.success(), "logger {args:?}: {status}");
}

fn str_of<'a>(event: &'a Value, key: &str) -> Option<&'a str> {
    event.get(key).and_then(Value::as_str)
}

#[test]
fn logger_over_udp_and_tcp_in_both_formats_decodes_to_events() {
    let dir = temp_dir("syslog-logger");
    let out = dir.join("out.json");
    let (udp, tcp, counted) = (free_port(), free_port(), free_port());
    let text = format!(
        r#"
[[connector]]
id = "udp"
plugin = "udp_server"
codec = "syslog"
config = {{ url = "127.0.0.1:{udp}" }}

[[connector]]
id = "tcp"
plugin = "tcp_server"
codec = "syslog"
preprocessors = ["separate"]
config = {{ url = "127.0.0.1:{tcp}" }}

[[connector]]
id = "counted"
plugin = "tcp_server"
codec = "syslog"
preprocessors = ["textual-length-prefixed"]
config = {{ url = "127.0.0.1:{counted}" }}

[[connector]]
id = "out"
plugin = "file"
codec = "json"
postprocessors = ["separate"]
config = {{ path = "{}", mode = "write" }}

[[pipeline]]
id = "main"
operators = [{{ set = {{ "event.via" = 'meta.connector' }} }}]

[[connect]]
from = "udp"
to = "main"

[[connect]]
from = "tcp"
to = "main"

[[connect]]
from = "counted"
to = "main"

[[connect]]
from = "main"
to = "out"
"#,
        out.display()
    );
    let engine = Engine::start(&deployment(&dir, &text));
    engine.wait_for("udp server listening");
    for _ in 0..2 {
        engine.wait_for("tcp server listening");
    }

    let sd = ["--sd-id", "zoo@32473", "--sd-param", "tiger=\"hungry\""];
    let mut args = vec![
        "--udp",
        "--rfc5424",
        "-t",
        "app5",
        "--id=42",
        "--msgid",
        "ID47",
    ];
    args.extend(["-p", "local4.notice"]);
    args.extend(sd);
    args.push("udp 5424");
    logger(udp, &args);
    logger(
        udp,
        &[
            "--udp",
            "--rfc3164",
            "-t",
            "app3",
            "--id=7",
            "-p",
            "auth.crit",
            "udp 3164",
        ],
    );
    logger(
        tcp,
        &[
            "--tcp",
            "--rfc5424",
            "-t",
            "app5",
            "-p",
            "daemon.err",
            "tcp 5424",
        ],
    );
    logger(
        tcp,
        &[
            "--tcp",
            "--rfc3164",
            "-t",
            "app3",
            "-p",
            "mail.info",
            "tcp 3164",
        ],
    );
    logger(
        counted,
        &[
            "--tcp",
            "--octet-count",
            "--rfc5424",
            "-t",
            "app5",
            "counted 5424",
        ],
    );

    let events = wait_events(&out, 5, &engine);
    let log = engine.stop();
    let by_msg = |msg: &str| {
        events
            .iter()
            .find(|e| str_of(e, "msg") == Some(msg))
            .unwrap_or_else(|| panic!("no event with msg {msg:?}: {events:?}\n{log}"))
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default();

    for (msg, via, protocol, facility, severity, app) in [
        ("udp 5424", "udp", "RFC5424", "local4", "notice", "app5"),
        ("udp 3164", "udp", "RFC3164", "auth", "crit", "app3"),
        ("tcp 5424", "tcp", "RFC5424", "daemon", "err", "app5"),
        ("tcp 3164", "tcp", "RFC3164", "mail", "info", "app3"),
        (
            "counted 5424",
            "counted",
            "RFC5424",
            "user",
            "notice",
            "app5",
        ),
    ] {
        let e = by_msg(msg);
        assert_eq!(str_of(e, "via"), Some(via), "{e}");
        assert_eq!(str_of(e, "protocol"), Some(protocol), "{e}");
        assert_eq!(str_of(e, "facility"), Some(facility), "{e}");
        assert_eq!(str_of(e, "severity"), Some(severity), "{e}");
        assert_eq!(str_of(e, "appname"), Some(app), "{e}");
        // RFC 3164 gets the name up to its first dot.
        let host = str_of(e, "hostname").unwrap_or_else(|| panic!("no hostname: {e}"));
        assert!(
            !host.is_empty() && hostname.starts_with(host),
            "{e}: {hostname}"
        );
        // Sent within the last minute; RFC 3164 has no zone (logger writes local time, read
        // as UTC), so within a day there.
        let ts = e
            .get("timestamp")
            .and_then(Value::as_i64)
            .expect("timestamp");
        let slack: i64 = if protocol == "RFC5424" { 60 } else { 86_400 };
        assert!((now - ts).abs() < slack * 1_000_000_000, "{e}: now {now}");
        if protocol == "RFC5424" {
            assert_eq!(e.get("protocol_version").and_then(Value::as_i64), Some(1));
            // logger adds its own timeQuality element.
            let sd = e.get("structured_data").expect("structured_data");
            assert!(sd.get("timeQuality").is_some(), "{e}");
        }
    }
    let udp5424 = by_msg("udp 5424");
    assert_eq!(str_of(udp5424, "procid"), Some("42"));
    assert_eq!(str_of(udp5424, "msgid"), Some("ID47"));
    let zoo = udp5424
        .get("structured_data")
        .and_then(|sd| sd.get("zoo@32473"))
        .and_then(Value::as_array)
        .expect("zoo@32473");
    assert_eq!(zoo.len(), 1);
    assert_eq!(zoo[0].get("tiger").and_then(Value::as_str), Some("hungry"));
    assert_eq!(str_of(by_msg("udp 3164"), "procid"), Some("7"));
    assert_eq!(str_of(by_msg("tcp 3164"), "procid"), None);
}
