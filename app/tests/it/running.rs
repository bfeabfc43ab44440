//! `temblor run` and `temblor validate`, in both builds.

use std::time::Duration;

use codec_json::decode_slice;

use crate::support::{
    Connector, Deployment, Pipeline, Signal, deployment, file_to_file, output, read_values, root,
    run_with_stats, signal, stat_at, temblor, temp_dir, wait_until, xz_values,
};

#[test]
fn file_json_passthrough_file_keeps_every_value() {
    let dir = temp_dir("passthrough");
    let input = root().join("examples/data/data.json.xz");
    let (out, errors, stats) = (
        dir.join("out.json"),
        dir.join("err.json"),
        dir.join("stats.json"),
    );
    let deploy = file_to_file("json", &input, &out, &errors).write(&dir);
    run_with_stats(&deploy, &stats);

    let expected = xz_values(&input);
    assert_eq!(expected.len(), 100);
    assert_eq!(
        read_values(&out),
        expected,
        "output equals input as JSON values, in order"
    );
    assert_eq!(std::fs::read_to_string(&errors).unwrap(), "");

    let count = |path: &[&str]| stat_at(&stats, path);
    assert_eq!(count(&["connectors", "in", "events_out"]), 100);
    assert_eq!(count(&["connectors", "in", "bytes_in"]), 63015);
    assert_eq!(count(&["connectors", "out", "events_in"]), 100);
    let written = std::fs::metadata(&out).unwrap().len();
    assert_eq!(count(&["connectors", "out", "bytes_out"]), written);
    assert_eq!(count(&["pipelines", "main", "events_out"]), 100);
    assert!(
        std::fs::read_to_string(&stats)
            .unwrap()
            .contains("\"elapsed_s\"")
    );
}

#[test]
fn invalid_json_goes_to_the_error_port_and_the_rest_goes_on() {
    let dir = temp_dir("invalid");
    let input = dir.join("in.json");
    std::fs::write(&input, "{\"a\":1}\n{\"a\":\n[1,2]\n\"\\x\"\n{\"b\":true}").unwrap();
    let (out, errors) = (dir.join("out.json"), dir.join("err.json"));
    let deploy = file_to_file("json", &input, &out, &errors).write(&dir);
    let (status, _, stderr) = output(temblor().arg("run").arg(&deploy));
    assert!(status.status.success(), "{stderr}");
    let good: Vec<_> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        good,
        ["{\"a\":1}", "[1,2]", "{\"b\":true}"],
        "the last line has no newline and is kept"
    );
    let bad: Vec<_> = std::fs::read_to_string(&errors)
        .unwrap()
        .lines()
        .map(|l| decode_slice(l.as_bytes()).unwrap())
        .collect();
    assert_eq!(bad.len(), 2);
    assert_eq!(
        bad[0].get("bytes").and_then(|b| b.as_str()),
        Some("{\"a\":")
    );
    assert_eq!(
        bad[1].get("bytes").and_then(|b| b.as_str()),
        Some("\"\\x\"")
    );
    for e in &bad {
        assert_eq!(e.get("connector").and_then(|c| c.as_str()), Some("in"));
        assert!(
            e.get("error")
                .and_then(|c| c.as_str())
                .is_some_and(|r| !r.is_empty())
        );
    }
}

#[test]
fn bench_replays_into_blackhole() {
    let dir = temp_dir("bench");
    let stats = dir.join("stats.json");
    let (status, _, stderr) = output(
        temblor()
            .args(["run", "examples/passthrough.toml", "--stats-json"])
            .arg(&stats),
    );
    assert!(status.status.success(), "{stderr}");
    let stats = decode_slice(std::fs::read_to_string(&stats).unwrap().as_bytes()).unwrap();
    let out = stats.get("connectors").and_then(|c| c.get("out")).unwrap();
    assert_eq!(out.get("events_in").and_then(|v| v.as_u64()), Some(200_000));
    assert!(stderr.contains("source throughput"), "{stderr}");
}

#[test]
fn sigint_stops_sources_drains_and_flushes() {
    let dir = temp_dir("sigint");
    let out = dir.join("out.json");
    let deploy = Deployment::passthrough(
        Connector::new("in", "bench")
            .codec("json")
            .set("path", "examples/data/data.json.xz")
            .set("duration_s", 60),
        Connector::file_write("out", &out),
    )
    .write(&dir);
    let stats = dir.join("stats.json");
    let mut child = temblor()
        .arg("run")
        .arg(&deploy)
        .arg("--stats-json")
        .arg(&stats)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until events are flowing, then interrupt.
    let started = std::time::Instant::now();
    assert!(
        wait_until(Duration::from_secs(30), || {
            std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0) > 0
        }),
        "no output after 30 s"
    );
    signal(child.id(), Signal::SIGINT);
    let status = child.wait().unwrap();
    assert!(status.success(), "exit after SIGINT: {status}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "stopped long before the 60 s replay ended"
    );
    let written = std::fs::read_to_string(&out).unwrap();
    assert!(written.ends_with('\n'), "the last event was written whole");
    let lines = written.lines().count() as u64;
    for line in written.lines() {
        decode_slice(line.as_bytes()).unwrap();
    }
    let stats = decode_slice(std::fs::read_to_string(&stats).unwrap().as_bytes()).unwrap();
    let emitted = stats
        .get("connectors")
        .and_then(|c| c.get("in"))
        .and_then(|c| c.get("events_out"))
        .and_then(|v| v.as_u64());
    assert_eq!(
        emitted,
        Some(lines),
        "every event the source emitted was written"
    );
}

/// Runs `cmd`, which must exit with `code` and say each of `says` on stderr; its stderr.
fn exits_saying(cmd: &mut std::process::Command, code: i32, says: &[&str]) -> String {
    let (status, _, stderr) = output(cmd);
    assert_eq!(status.status.code(), Some(code), "{stderr}");
    for needle in says {
        assert!(stderr.contains(needle), "{needle}: {stderr}");
    }
    stderr
}

#[test]
fn validate_reports_problems_with_line_and_column() {
    let dir = temp_dir("validate");
    let deploy = deployment(
        &dir,
        "[[connector]]\nid = \"in\"\nplugin = \"nosuch\"\n\n[[pipeline]]\nid = \"main\"\n\n[[connect]]\nfrom = \"main/side\"\nto = \"in\"\n",
    );
    exits_saying(
        temblor().arg("validate").arg(&deploy),
        2,
        &[
            "deploy.toml:3:10: connector 'in': no plugin named 'nosuch'",
            "deploy.toml:9:8: connect: pipeline 'main' has no port 'side'",
        ],
    );

    let (status, stdout, stderr) =
        output(temblor().args(["validate", "examples/file-to-file.toml"]));
    assert!(status.status.success(), "{stderr}");
    assert!(
        stdout.contains("ok (3 connectors, 1 pipelines, 3 links)"),
        "{stdout}"
    );
}

#[test]
fn a_missing_deployment_file_is_named() {
    exits_saying(
        temblor().args(["run", "no/such/file.toml"]),
        1,
        &["cannot read deployment file no/such/file.toml"],
    );
}

/// `source` into a pipeline `main` that goes nowhere.
fn into_main(source: Connector) -> Deployment {
    Deployment::new()
        .source(source, "main")
        .pipeline(Pipeline::new("main"))
}

#[test]
fn bad_plugin_config_is_reported_before_anything_runs() {
    let dir = temp_dir("badconfig");
    let deploy = into_main(
        Connector::new("in", "file")
            .set("path", "x")
            .set("mdoe", "read"),
    )
    .write(&dir);
    exits_saying(
        temblor().arg("run").arg(&deploy),
        2,
        &["source 'in' (plugin 'file')", "mdoe"],
    );
}

#[test]
fn a_plugin_error_names_the_connector_once() {
    let dir = temp_dir("missing-input");
    let missing = dir.join("missing.json");
    let deploy = into_main(
        Connector::new("in", "file")
            .codec("json")
            .set_path("path", &missing)
            .set("mode", "read"),
    )
    .write(&dir);
    let stderr = exits_saying(temblor().arg("run").arg(&deploy), 2, &[]);
    let line = stderr
        .lines()
        .find(|l| l.contains(&missing.display().to_string()))
        .unwrap_or_else(|| panic!("no line names the file: {stderr}"));
    assert!(line.contains("source 'in' (plugin 'file')"), "{line}");
    assert_eq!(
        stderr.matches("'in'").count(),
        1,
        "the id said once: {stderr}"
    );
}

#[cfg(feature = "monolith")]
#[test]
fn the_monolith_has_every_plugin_built_in() {
    let (status, stdout, _) = output(temblor().args(["plugins", "list"]));
    assert!(status.status.success());
    // Every plugin crate of the repository, by its folder name (which is its plugin name).
    let mut names = Vec::new();
    for group in ["connectors", "codecs"] {
        for entry in std::fs::read_dir(root().join(group)).unwrap() {
            names.push(entry.unwrap().file_name().to_string_lossy().into_owned());
        }
    }
    assert!(names.len() >= 20, "{names:?}");
    for name in &names {
        assert!(
            stdout
                .lines()
                .any(|l| l.split_whitespace().next() == Some(name.as_str())
                    && l.ends_with("built-in")),
            "{name} not built in: {stdout}"
        );
    }
}

#[cfg(feature = "monolith")]
#[test]
fn a_pinned_built_in_plugin_is_not_checked_and_says_so() {
    let dir = temp_dir("pin-monolith");
    let (input, out) = (dir.join("in.txt"), dir.join("out.txt"));
    std::fs::write(&input, "a\nb\n").unwrap();
    let deploy = Deployment::new()
        .pin("file", &"0".repeat(64))
        .flow(
            Connector::new("in", "file")
                .pre("separate")
                .set_path("path", &input)
                .set("mode", "read"),
            Pipeline::new("main"),
            Connector::new("out", "file")
                .post("separate")
                .set_path("path", &out)
                .set("mode", "write"),
        )
        .write(&dir);
    let (status, _, stderr) = output(temblor().arg("run").arg(&deploy));
    assert!(status.status.success(), "{stderr}");
    assert!(
        stderr.contains("this plugin is built into this binary: its pin applies to plugin files and is not checked")
            && stderr.contains("plugin=file"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "a\nb\n");
}
