//! End to end: util-linux `logger`, the syslog client users run, sends RFC 5424 and RFC 3164
//! messages over UDP and TCP (newline framing and RFC 6587 octet counting) to `udp_server` and
//! `tcp_server` with the `syslog` codec; the decoded events land in a JSON file.

use std::process::Command;

use temblor_shim::Value;

use crate::support::{Connector, Deployment, Engine, Pipeline, free_port, read_values, temp_dir};

/// `logger --server 127.0.0.1 --port PORT FLAGS... MSG` (`flags` split at white space).
fn logger(port: u16, flags: &str, msg: &str) {
    let status = Command::new("logger")
        .args(["--server", "127.0.0.1", "--port", &port.to_string()])
        .args(flags.split_whitespace())
        .arg(msg)
        .status()
        .expect("util-linux logger (package bsdutils)");
    assert!(status.success(), "logger {flags} {msg}: {status}");
}

fn str_of<'a>(event: &'a Value, key: &str) -> Option<&'a str> {
    event.get(key).and_then(Value::as_str)
}

#[test]
fn logger_over_udp_and_tcp_in_both_formats_decodes_to_events() {
    let dir = temp_dir("syslog-logger");
    let out = dir.join("out.json");
    let (udp, tcp, counted) = (free_port(), free_port(), free_port());
    let server = |id: &str, plugin: &str, port: u16| {
        Connector::new(id, plugin)
            .codec("syslog")
            .set("url", format!("127.0.0.1:{port}"))
    };
    let deploy = Deployment::pipe(
        server("udp", "udp_server", udp),
        Pipeline::new("main").op(r#"{ set = { "event.via" = 'meta.connector' } }"#),
        Connector::file_write("out", &out),
    )
    .source(server("tcp", "tcp_server", tcp).pre("separate"), "main")
    .source(
        server("counted", "tcp_server", counted).pre("textual-length-prefixed"),
        "main",
    )
    .write(&dir);
    let engine = Engine::start(&deploy);
    engine.wait_for("udp server listening");
    for _ in 0..2 {
        engine.wait_for("tcp server listening");
    }

    for (port, flags, msg) in [
        (
            udp,
            "--udp --rfc5424 -t app5 --id=42 --msgid ID47 -p local4.notice \
             --sd-id zoo@32473 --sd-param tiger=\"hungry\"",
            "udp 5424",
        ),
        (
            udp,
            "--udp --rfc3164 -t app3 --id=7 -p auth.crit",
            "udp 3164",
        ),
        (tcp, "--tcp --rfc5424 -t app5 -p daemon.err", "tcp 5424"),
        (tcp, "--tcp --rfc3164 -t app3 -p mail.info", "tcp 3164"),
        (
            counted,
            "--tcp --octet-count --rfc5424 -t app5",
            "counted 5424",
        ),
    ] {
        logger(port, flags, msg);
    }

    engine.wait_lines(&out, 5);
    let events = read_values(&out);
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
