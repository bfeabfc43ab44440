//! Plugins that fail on purpose (the `faulty` fixture in `test-plugins/faulty`): constructors
//! that fail or panic, and a slow sink under a fast source (memory stays bounded).

use std::{
    fs::Permissions,
    os::unix::{fs::PermissionsExt as _, process::ExitStatusExt as _},
    path::{Path, PathBuf},
    process::Command,
};

use codec_json::decode_slice;
use temblor_shim::Value;

use crate::{
    loading::temblor_only,
    support::{
        Connector, Deployment, TempDir, file_to_file, output, plugin_dir, stat_at, temblor,
        temp_dir,
    },
};

/// `temblor` with the shipped plugins and the test fixtures.
fn temblor_with_fixtures() -> Command {
    let mut cmd = temblor();
    cmd.arg("--plugin-dir").arg(plugin_dir("test-plugins"));
    cmd
}

/// `in` (faulty source, `fail_new` when `side` is `in`, else 10 lines) → `main` → `out`
/// (faulty sink writing `out`, `fail_new` when `side` is `out`).
fn faulty_to_faulty(side: &str, fail_new: &str, out: &Path) -> Deployment {
    let (source, sink) = (
        Connector::new("in", "faulty"),
        Connector::new("out", "faulty").set_path("path", out),
    );
    if side == "in" {
        Deployment::passthrough(source.set("fail_new", fail_new), sink)
    } else {
        Deployment::passthrough(source.set("lines", 10), sink.set("fail_new", fail_new))
    }
}

/// Runs [`faulty_to_faulty`] with `fail_new` on `side` (in a folder `test-side`), which must
/// stop at the start: exit 2, not by a signal (SIGABRT is 6), with no deployment started and
/// nothing written. The deployment file and the log.
fn fails_to_start(test: &str, side: &str, fail_new: &str) -> (TempDir, PathBuf, String) {
    let dir = temp_dir(&format!("{test}-{side}"));
    let out = dir.join("out.txt");
    let deploy = faulty_to_faulty(side, fail_new, &out).write(&dir);
    let (status, _, stderr) = output(temblor_with_fixtures().arg("run").arg(&deploy));
    assert_eq!(
        status.status.signal(),
        None,
        "killed by a signal (SIGABRT is 6): {stderr}"
    );
    assert_eq!(status.status.code(), Some(2), "{stderr}");
    assert!(!stderr.contains("deployment started"), "{stderr}");
    assert!(
        std::fs::read_to_string(&out).unwrap_or_default().is_empty(),
        "nothing ran"
    );
    (dir, deploy, stderr)
}

#[test]
fn a_constructor_error_stops_the_start_naming_the_connector_and_the_plugin() {
    for (side, what) in [("in", "source"), ("out", "sink")] {
        let (_dir, deploy, stderr) = fails_to_start("ctor-error", side, "error");
        assert!(
            stderr.contains(&format!(
                "error: {what} '{side}' (plugin 'faulty'): error: '{side}': fail_new = \"error\": the constructor fails on purpose"
            )),
            "{stderr}"
        );
        // `validate` checks names, links and ports; it builds nothing, so it cannot see this.
        let (status, stdout, stderr) = output(temblor_with_fixtures().arg("validate").arg(&deploy));
        assert!(
            status.status.success() && stdout.contains(": ok (2 connectors, 1 pipelines, 2 links)"),
            "{stdout}{stderr}"
        );
    }
}

#[test]
fn a_constructor_panic_is_caught_reported_and_logged_without_an_abort() {
    for (side, what) in [("in", "source"), ("out", "sink")] {
        let (_dir, _, stderr) = fails_to_start("ctor-panic", side, "panic");
        let message = format!("'{side}': fail_new = \"panic\": the constructor panics on purpose");
        assert!(
            stderr.contains(&format!(
                "error: {what} '{side}' (plugin 'faulty'): panic: panicked in {what} constructor: {message}"
            )),
            "{stderr}"
        );
        // The plugin's panic hook reports where it panicked, through the host's log.
        assert!(
            stderr.lines().any(|l| l.contains("panicked at ")
                && l.contains("faulty/src/lib.rs:")
                && l.contains(&message)
                && l.contains("plugin=\"faulty\"")),
            "{stderr}"
        );
    }
}

/// The peak RSS the engine must stay under while a fast source feeds a slow sink. Measured
/// (debug build, the three plugins below, 2026-11-29): 49 MiB after loading, 61 MiB at the
/// peak, the same whether 100 MiB or 3 GiB pass.
const RSS_BOUND_MIB: u64 = 96;

/// The frame size of the overload test: 1 KiB lines, so one `bench` pull (1024 lines) is 1 MiB.
const LINE_BYTES: usize = 1024;

#[test]
fn a_slow_sink_keeps_memory_bounded_while_a_fast_source_pushes_many_bytes() {
    let dir = temp_dir("overload");
    // 1024 distinct lines of 1023 bytes and a newline: 1 MiB per pass over the file.
    let input = dir.join("lines.txt");
    let data: String = (0..1024)
        .map(|i| format!("{i:0width$}\n", width = LINE_BYTES - 1))
        .collect();
    std::fs::write(&input, &data).unwrap();
    let want_bytes = 10 * RSS_BOUND_MIB * 1024 * 1024;
    let iters = want_bytes / (1023 * 1024) + 1;
    // Only the plugins it uses: every loaded library adds to the RSS.
    let plugins = dir.join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    std::fs::set_permissions(&plugins, Permissions::from_mode(0o755)).unwrap();
    for (group, file) in [
        ("plugins", "libconnector_bench.so"),
        ("plugins", "libcodec_binary.so"),
        ("test-plugins", "libtest_plugin_faulty.so"),
    ] {
        let to = plugins.join(file);
        std::fs::copy(plugin_dir(group).join(file), &to).unwrap();
        std::fs::set_permissions(&to, Permissions::from_mode(0o755)).unwrap();
    }
    let stats = dir.join("stats.json");
    let deploy = Deployment::passthrough(
        Connector::new("in", "bench")
            .codec("binary")
            .set_path("path", &input)
            .set("iters", iters),
        Connector::new("out", "faulty")
            .codec("binary")
            .set("delay_ms", 2),
    )
    .write(&dir);
    let (status, _, stderr) = output(
        temblor_only(&[&plugins])
            .args(["--strict", "run"])
            .arg(&deploy)
            .arg("--stats-json")
            .arg(&stats),
    );
    assert!(status.status.success(), "{stderr}");
    let field = |path: &[&str]| stat_at(&stats, path);
    let read = field(&["connectors", "in", "bytes_in"]);
    let written = field(&["connectors", "out", "bytes_out"]);
    let peak_kib = field(&["peak_rss_kb"]);
    eprintln!(
        "overload: {} MiB through a sink sleeping 2 ms a batch, peak RSS {} MiB",
        written >> 20,
        peak_kib >> 10,
    );
    assert!(read >= want_bytes, "{read} bytes read, {want_bytes} wanted");
    assert_eq!(written, read, "every byte read was written");
    assert_eq!(
        field(&["connectors", "out", "events_in"]),
        field(&["connectors", "in", "events_out"])
    );
    assert!(
        peak_kib < RSS_BOUND_MIB * 1024,
        "peak RSS {peak_kib} KiB over the {RSS_BOUND_MIB} MiB bound while {written} bytes passed"
    );
}

#[test]
fn each_codec_sends_a_frame_it_cannot_decode_to_the_error_port() {
    // (codec, a good frame, a bad frame): newline-separated, so no frame holds a newline.
    let cases: [(&str, &[u8], &[u8]); 8] = [
        ("json", br#"{"a":1}"#, br#"{"a":"#),
        ("csv", b"a,b", b"a,\xff"),
        ("influx", b"weather,host=a temp=1 1", b"weather"),
        ("msgpack", b"\x81\xa1a\x01", b"\xc1"),
        ("statsd", b"foo:1|c", b"foo"),
        ("yaml", b"a: 1", b"a: [1"),
        ("string", b"hello", b"\xff\xfe"),
        // binary takes any bytes: nothing goes to `err`.
        ("binary", b"\xff\x00", b"\x00\x01"),
    ];
    for (codec, good, bad) in cases {
        let dir = temp_dir(&format!("bad-{codec}"));
        let input = dir.join("in");
        let mut data = Vec::new();
        for frame in [good, bad, good] {
            data.extend_from_slice(frame);
            data.push(b'\n');
        }
        std::fs::write(&input, &data).unwrap();
        let (out, err, stats) = (dir.join("out"), dir.join("err"), dir.join("stats.json"));
        let deploy = file_to_file(codec, &input, &out, &err).write(&dir);
        let (status, _, stderr) = output(
            temblor()
                .arg("run")
                .arg(&deploy)
                .arg("--stats-json")
                .arg(&stats),
        );
        assert!(status.status.success(), "{codec}: {stderr}");
        let out = std::fs::read_to_string(&out).unwrap();
        let errors: Vec<Value> = std::fs::read_to_string(&err)
            .unwrap()
            .lines()
            .map(|l| decode_slice(l.as_bytes()).unwrap())
            .collect();
        let stats: Value =
            decode_slice(std::fs::read_to_string(&stats).unwrap().as_bytes()).unwrap();
        let in_errors = stats
            .get("connectors")
            .and_then(|c| c.get("in"))
            .and_then(|c| c.get("errors"))
            .and_then(Value::as_u64);
        if codec == "binary" {
            assert_eq!(out.lines().count(), 3, "{codec}: {out}");
            assert!(errors.is_empty(), "{codec}: {errors:?}");
            assert_eq!(in_errors, Some(0));
            continue;
        }
        assert_eq!(out.lines().count(), 2, "{codec}: the good frames: {out}");
        assert_eq!(errors.len(), 1, "{codec}: {errors:?}");
        let e = &errors[0];
        assert_eq!(
            e.get("bytes").and_then(Value::as_str),
            Some(String::from_utf8_lossy(bad).as_ref()),
            "{codec}: {e}"
        );
        assert_eq!(
            e.get("bytes_len").and_then(Value::as_u64),
            Some(bad.len() as u64)
        );
        assert_eq!(e.get("connector").and_then(Value::as_str), Some("in"));
        assert!(
            e.get("error")
                .and_then(Value::as_str)
                .is_some_and(|r| !r.is_empty()),
            "{codec}: a reason: {e}"
        );
        assert_eq!(in_errors, Some(1), "{codec}: counted");
    }
}
