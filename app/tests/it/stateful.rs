//! `aggregate`, `bucket` and `match` through the `temblor` binary: fixed inputs, and what comes
//! out of each port checked against results computed here (and by python3's `statistics`).

use std::{
    io::Write,
    process::{Command, Stdio},
};

use codec_json::decode_slice;
use temblor_shim::Value;

use crate::support::{
    Connector, Deployment, Engine, Pipeline, file_pipe, output, read_values, root, run_with_stats,
    stat_at, temblor, temp_dir, xz_lines,
};

fn num(v: &Value) -> f64 {
    match v {
        Value::F64(f) => *f,
        #[allow(clippy::cast_precision_loss)]
        Value::I64(i) => *i as f64,
        other => panic!("not a number: {other}"),
    }
}

/// One input record.
struct Rec {
    ts: u64,
    host: &'static str,
    ms: f64,
}

/// Mean, sample variance and sample standard deviation of each list, by python3's
/// `statistics` (`null` for fewer than two values).
fn python_stats(groups: &[Vec<f64>]) -> Vec<(f64, Option<f64>, Option<f64>)> {
    let script = "import json, statistics, sys\n\
        out = []\n\
        for g in json.load(sys.stdin):\n\
        \x20   two = len(g) > 1\n\
        \x20   out.append([statistics.mean(g), statistics.variance(g) if two else None, statistics.stdev(g) if two else None])\n\
        print(json.dumps(out))\n";
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 (cargo xtask test installs it)");
    let input = format!(
        "[{}]",
        groups
            .iter()
            .map(|g| format!(
                "[{}]",
                g.iter().map(f64::to_string).collect::<Vec<_>>().join(",")
            ))
            .collect::<Vec<_>>()
            .join(",")
    );
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let parsed = decode_slice(&out.stdout).unwrap();
    parsed
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            let row = row.as_array().unwrap();
            let opt = |v: &Value| (!matches!(v, Value::Null)).then(|| num(v));
            (num(&row[0]), opt(&row[1]), opt(&row[2]))
        })
        .collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

#[test]
fn event_time_rollup_matches_an_independent_computation() {
    let dir = temp_dir("stateful-rollup");
    // 400 records over about a minute and a half, in time order but for a few stragglers.
    let hosts = ["web-1", "web-2", "db-1"];
    let mut seed = 17_u64;
    let mut next = |m: u64| {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) % m
    };
    let mut records = Vec::new();
    let mut ts = 1_718_000_000_000_u64;
    for i in 0..400 {
        ts += 10 + next(400);
        #[allow(clippy::cast_precision_loss)]
        let ms = (1 + next(2000)) as f64 / 10.0;
        let host = hosts[usize::try_from(next(3)).unwrap()];
        // Every 50th record is 1 s behind (within the lateness), every 97th 30 s (late).
        let stamp = if i % 97 == 96 {
            ts - 30_000
        } else if i % 50 == 49 {
            ts - 1_000
        } else {
            ts
        };
        records.push(Rec {
            ts: stamp,
            host,
            ms,
        });
    }
    let input = dir.join("in.json");
    let text: String = records
        .iter()
        .map(|r| {
            format!(
                "{{\"ts_ms\":{},\"host\":\"{}\",\"ms\":{}}}\n",
                r.ts, r.host, r.ms
            )
        })
        .collect();
    std::fs::write(&input, text).unwrap();
    let (out, late) = (dir.join("out.json"), dir.join("late.json"));
    let deploy = file_pipe(
        &input,
        Pipeline::new("rollup").op(
            r#"{ aggregate = { window = { tumbling_s = 10 }, time = 'event.ts_ms', allowed_lateness_s = 2,
      group_by = ['event.host'],
      emit = { "count" = 'count()', "sum" = 'sum(event.ms)', "min" = 'min(event.ms)', "max" = 'max(event.ms)',
               "mean" = 'mean(event.ms)', "var" = 'var(event.ms)', "stdev" = 'stdev(event.ms)',
               "p90" = 'percentile(event.ms, 0.9)' } } }"#,
        ),
        &out,
        ("late", &late),
    )
    .write(&dir);
    let (status, _, stderr) = output(temblor().arg("run").arg(&deploy));
    assert!(status.status.success(), "{stderr}");

    // The windows, by hand: an event is late when its window ended at or before the largest
    // time seen so far less 2 s.
    let mut max_seen = 0_u64;
    let mut late_expected = Vec::new();
    // (window start, host) in order of window, then of first sight; the values.
    let mut windows: Vec<((u64, &str), Vec<f64>)> = Vec::new();
    for r in &records {
        let start = r.ts / 10_000 * 10_000;
        if max_seen > 0 && start + 10_000 <= max_seen.saturating_sub(2_000) {
            late_expected.push(r.ts);
            continue;
        }
        max_seen = max_seen.max(r.ts);
        match windows.iter_mut().find(|(k, _)| *k == (start, r.host)) {
            Some((_, v)) => v.push(r.ms),
            None => windows.push(((start, r.host), vec![r.ms])),
        }
    }
    windows.sort_by_key(|((start, _), _)| *start);
    assert!(!late_expected.is_empty(), "the input has late records");
    let stats = python_stats(&windows.iter().map(|(_, v)| v.clone()).collect::<Vec<_>>());

    let got = read_values(&out);
    assert_eq!(got.len(), windows.len());
    for (i, (((start, host), values), (mean, var, stdev))) in windows.iter().zip(&stats).enumerate()
    {
        let r = &got[i];
        let at = |k: &str| r.get(k).unwrap_or_else(|| panic!("{k} in {r}"));
        assert_eq!(
            r.get("group").and_then(|g| g.get("event.host")),
            Some(&Value::from(*host)),
            "record {i}: {r}"
        );
        assert_eq!(at("window_start_ms"), &Value::from(*start), "{r}");
        assert_eq!(at("window_end_ms"), &Value::from(start + 10_000), "{r}");
        assert_eq!(at("count"), &Value::from(values.len()), "{r}");
        let sum: f64 = values.iter().sum();
        assert!(close(num(at("sum")), sum), "{r}: sum {sum}");
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        assert_eq!(num(at("min")), min, "{r}");
        assert_eq!(num(at("max")), max, "{r}");
        assert!(close(num(at("mean")), *mean), "{r}: mean {mean}");
        match (var, stdev) {
            (Some(var), Some(stdev)) => {
                assert!(close(num(at("var")), *var), "{r}: var {var}");
                assert!(close(num(at("stdev")), *stdev), "{r}: stdev {stdev}");
            }
            _ => {
                assert_eq!(at("var"), &Value::Null);
                assert_eq!(at("stdev"), &Value::Null);
            }
        }
        // p90 within 1% (the documented error) of the value at rank floor(0.9 * (n - 1)).
        let mut sorted = values.clone();
        sorted.sort_by(f64::total_cmp);
        let want = sorted[(sorted.len() - 1) * 9 / 10];
        let p90 = num(at("p90"));
        assert!(
            (p90 - want).abs() <= want * 0.01,
            "{r}: p90 {p90} not within 1% of {want}"
        );
    }
    let late_got: Vec<u64> = read_values(&late)
        .iter()
        .map(|e| e.get("ts_ms").and_then(Value::as_u64).unwrap())
        .collect();
    assert_eq!(late_got, late_expected);
}

/// The class, rate and dimension of `examples/pipeline-shaping.toml`, by hand.
fn shape(r: &Value) -> (&'static str, Option<u64>, Value) {
    let s = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("");
    let tags = r.get("tags").and_then(Value::as_array).unwrap_or(&[]);
    let class = if s("application") == "app1" || s("application") == "app2" {
        "applog_app1"
    } else if s("index_type") == "applog_app6" {
        "applog_app6"
    } else if s("index_type") == "syslog_app1" {
        "syslog_app1"
    } else if tags.contains(&Value::from("tag1")) {
        "applog_app1"
    } else {
        "default"
    };
    let (rate, dim) = match class {
        "applog_app1" => (Some(5), "application"),
        "applog_app6" => (Some(2), "logger_name"),
        "syslog_app1" => (Some(3), "syslog_hostname"),
        _ => (None, "syslog_hostname"),
    };
    (class, rate, r.get(dim).cloned().unwrap_or_default())
}

#[test]
fn shaping_passes_rate_events_per_class_and_dimension() {
    let dir = temp_dir("stateful-shaping");
    let input = root().join("examples/data/data.json.xz");
    let (out, overflow) = (dir.join("out.json"), dir.join("overflow.json"));
    // The example's pipeline, with an hour-long window: no slot slides during the run.
    let example = std::fs::read_to_string(root().join("examples/pipeline-shaping.toml")).unwrap();
    let start = example.find("operators = [").unwrap();
    let end = start + example[start..].find("\n]\n").unwrap() + 3;
    let operators = example[start..end].replace("time_range_s = 1,", "time_range_s = 3600,");
    assert!(operators.contains("time_range_s = 3600"));
    let deploy = Deployment::new()
        .connector(Connector::file_read("in", "json", &input))
        .connector(Connector::file_write("out", &out))
        .connector(Connector::file_write("overflow", &overflow))
        .raw(&format!("[[pipeline]]\nid = \"shape\"\n{operators}"))
        .connect("in", "shape")
        .connect("shape", "out")
        .connect("shape/overflow", "overflow")
        .write(&dir);
    let (status, _, stderr) = output(temblor().arg("run").arg(&deploy));
    assert!(status.status.success(), "{stderr}");

    let mut seen: Vec<((&str, Value), u64)> = Vec::new();
    let (mut pass, mut over) = (Vec::new(), Vec::new());
    for line in xz_lines(&input) {
        let r = decode_slice(line.as_bytes()).unwrap();
        let guid = r.get("guid").and_then(Value::as_str).unwrap().to_owned();
        let (class, rate, dim) = shape(&r);
        let Some(rate) = rate else {
            pass.push((guid, class));
            continue;
        };
        let key = (class, dim);
        let n = match seen.iter_mut().find(|(k, _)| *k == key) {
            Some((_, n)) => n,
            None => {
                seen.push((key, 0));
                &mut seen.last_mut().unwrap().1
            }
        };
        if *n < rate {
            *n += 1;
            pass.push((guid, class));
        } else {
            over.push(guid);
        }
    }
    assert!(
        !over.is_empty() && pass.len() > 10,
        "the data set exercises both ports"
    );
    let got_pass: Vec<(String, String)> = read_values(&out)
        .iter()
        .map(|e| {
            assert!(e.get("about").is_none(), "removed: {e}");
            (
                e.get("guid").and_then(Value::as_str).unwrap().to_owned(),
                e.get("class").and_then(Value::as_str).unwrap().to_owned(),
            )
        })
        .collect();
    let want_pass: Vec<(String, String)> =
        pass.into_iter().map(|(g, c)| (g, c.to_owned())).collect();
    assert_eq!(got_pass, want_pass);
    let got_over: Vec<String> = read_values(&overflow)
        .iter()
        .map(|e| e.get("guid").and_then(Value::as_str).unwrap().to_owned())
        .collect();
    assert_eq!(got_over, over);
}

#[test]
fn processing_time_windows_are_emitted_when_the_input_ends() {
    let dir = temp_dir("stateful-flush");
    let input = root().join("examples/data/data.json.xz");
    let out = dir.join("out.json");
    let stats = dir.join("stats.json");
    let deploy = Deployment::pipe(
        Connector::file_read("in", "json", &input),
        Pipeline::new("main").op(
            r#"{ aggregate = { window = { tumbling_s = 3600 }, group_by = ['event.application'],
                   emit = { "n" = 'count()' }, max_groups = 4 } }"#,
        ),
        Connector::file_write("out", &out),
    )
    .write(&dir);
    run_with_stats(&deploy, &stats);
    // Six applications, at most four groups at once: early records sum up with the rest.
    let mut expected: Vec<(String, u64)> = Vec::new();
    for line in xz_lines(&input) {
        let r = decode_slice(line.as_bytes()).unwrap();
        let app = r
            .get("application")
            .and_then(Value::as_str)
            .unwrap()
            .to_owned();
        match expected.iter_mut().find(|(a, _)| *a == app) {
            Some((_, n)) => *n += 1,
            None => expected.push((app, 1)),
        }
    }
    let got = read_values(&out);
    let early = got
        .iter()
        .filter(|r| r.get("early") == Some(&Value::Bool(true)))
        .count();
    assert!(early > 0, "six groups do not fit in four");
    let mut totals: Vec<(String, u64)> = Vec::new();
    for r in &got {
        let app = r
            .get("group")
            .and_then(|g| g.get("event.application"))
            .and_then(Value::as_str)
            .unwrap()
            .to_owned();
        let n = r.get("n").and_then(Value::as_u64).unwrap();
        match totals.iter_mut().find(|(a, _)| *a == app) {
            Some((_, t)) => *t += n,
            None => totals.push((app, n)),
        }
    }
    totals.sort();
    expected.sort();
    assert_eq!(totals, expected, "no event is lost");
    assert_eq!(
        stat_at(&stats, &["pipelines", "main", "evicted"]),
        early as u64
    );
}

#[cfg(unix)]
#[test]
fn sigterm_emits_every_open_window() {
    let dir = temp_dir("stateful-sigterm");
    let (out, stats) = (dir.join("out.json"), dir.join("stats.json"));
    let deploy = Deployment::pipe(
        Connector::new("tick", "metronome").set("interval_ms", 5),
        Pipeline::new("main").op(
            r#"{ aggregate = { window = { tumbling_s = 3600 }, emit = { "n" = 'count()', "ids" = 'collect(event.id, 1000000)' } } }"#,
        ),
        Connector::file_write("out", &out),
    )
    .write(&dir);
    let engine = Engine::start_with_stats(&deploy, &stats);
    // Ticks for a while once it runs (loading can take a while on a busy machine), then stops
    // with SIGTERM and exit status 0.
    engine.wait_for("deployment started");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    engine.stop();
    let ticks = stat_at(&stats, &["connectors", "tick", "events_out"]);
    assert!(ticks > 0);
    // One record (two if an hour began during the run): every tick counted once, in order.
    let records = read_values(&out);
    assert!(!records.is_empty() && records.len() <= 2, "{records:?}");
    let mut ids = Vec::new();
    let mut n = 0;
    for r in &records {
        n += r.get("n").and_then(Value::as_u64).unwrap();
        ids.extend(
            r.get("ids")
                .and_then(Value::as_array)
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap()),
        );
    }
    assert_eq!(n, ticks);
    assert!(ids.iter().copied().eq(0..ticks), "{ids:?}");
}
