//! Pipelines with operators through the `temblor` binary, on the shipped data set: what comes
//! out of each port is checked against the same rules computed here, in Rust.

use codec_json::decode_slice;
use temblor_shim::Value;

use crate::support::{
    Connector, Deployment, Pipeline, deployment, file_pipe, output, read_values, root,
    run_with_stats, stat_at, temblor, temp_dir, xz_lines, xz_values,
};

fn text<'v>(event: &'v Value, key: &str) -> &'v str {
    event.get(key).and_then(Value::as_str).unwrap()
}

#[test]
fn filter_set_remove_and_route_on_the_data_set() {
    let dir = temp_dir("pipeline-route");
    let input = root().join("examples/data/data.json.xz");
    let file = |name: &str| dir.join(name);
    let mut deploy = Deployment::new()
        .connector(Connector::file_read("in", "json", &input))
        .pipeline(
            Pipeline::new("main")
                .op(r#"{ filter = 'lower(event.short_message) != "warn" and event.aint >= 25' }"#)
                .op(r#"{ set = { "event.level" = 'lower(event.short_message)', "meta.app" = 'event.application' } }"#)
                .op(r#"{ remove = ["event.about", "event.array"] }"#)
                .op(r#"{ route = { "errors" = 'event.level == "error"', "app4" = 'meta.app == "app4" and "tag1" in event.tags' } }"#),
        )
        .connect("in", "main");
    for (id, port) in [
        ("out", "main"),
        ("errors", "main/errors"),
        ("app4", "main/app4"),
        ("err", "main/err"),
    ] {
        deploy = deploy
            .connector(Connector::file_write(id, &file(&format!("{id}.json"))))
            .connect(port, id);
    }
    let deploy = deploy.write(&dir);
    let stats = dir.join("stats.json");
    run_with_stats(&deploy, &stats);

    // The same pipeline, in Rust, on the same records.
    let records = xz_values(&input);
    assert_eq!(records.len(), 100);
    let (mut out, mut errors, mut app4) = (Vec::new(), Vec::new(), Vec::new());
    for r in &records {
        let level = text(r, "short_message").to_lowercase();
        let aint = r.get("aint").and_then(Value::as_i64).unwrap();
        if level == "warn" || aint < 25 {
            continue;
        }
        let mut e = r.clone();
        let o = e.as_object_mut().unwrap();
        o.insert("level", Value::from(level.as_str()));
        o.remove("about");
        o.remove("array");
        let tags = r.get("tags").and_then(Value::as_array).unwrap();
        if level == "error" {
            errors.push(e);
        } else if text(r, "application") == "app4" && tags.contains(&Value::from("tag1")) {
            app4.push(e);
        } else {
            out.push(e);
        }
    }
    // The data set exercises every branch.
    assert!(!out.is_empty() && !errors.is_empty() && !app4.is_empty());
    assert!(out.len() + errors.len() + app4.len() < 100);

    assert_eq!(read_values(&file("out.json")), out);
    assert_eq!(read_values(&file("errors.json")), errors);
    assert_eq!(read_values(&file("app4.json")), app4);
    assert_eq!(read_values(&file("err.json")), Vec::<Value>::new());
    let first = &read_values(&file("errors.json"))[0];
    assert!(first.get("meta").is_none() && first.get("about").is_none());

    let n = |k: &str| stat_at(&stats, &["pipelines", "main", k]);
    assert_eq!(n("events_in"), 100);
    assert_eq!(
        n("events_out"),
        (out.len() + errors.len() + app4.len()) as u64
    );
    assert_eq!(n("errors"), 0);
}

#[test]
fn evaluation_errors_go_to_err_with_the_event_and_the_rest_goes_on() {
    let dir = temp_dir("pipeline-err");
    let input = root().join("examples/data/data.json.xz");
    let (out, err) = (dir.join("out.json"), dir.join("err.json"));
    let main =
        Pipeline::new("main").op(r#"{ set = { "event.ratio" = '100 / (event.aint - 30)' } }"#);
    let deploy = file_pipe(&input, main, &out, ("err", &err)).write(&dir);
    let (status, _, stderr) = output(temblor().arg("run").arg(&deploy));
    assert!(status.status.success(), "{stderr}");
    let records = xz_values(&input);
    let thirty: Vec<&Value> = records
        .iter()
        .filter(|r| r.get("aint").and_then(Value::as_i64) == Some(30))
        .collect();
    assert!(
        !thirty.is_empty(),
        "the data set has records with aint = 30"
    );
    let errors = read_values(&err);
    assert_eq!(errors.len(), thirty.len());
    for (e, record) in errors.iter().zip(&thirty) {
        assert_eq!(
            e.get("error").and_then(Value::as_str),
            Some("set: event.ratio: column 5: division by zero")
        );
        assert_eq!(e.get("pipeline").and_then(Value::as_str), Some("main"));
        assert_eq!(e.get("operator").and_then(Value::as_u64), Some(0));
        assert_eq!(e.get("event"), Some(*record));
    }
    let good = read_values(&out);
    assert_eq!(good.len(), 100 - thirty.len());
    for g in &good {
        let aint = g.get("aint").and_then(Value::as_i64).unwrap();
        assert_eq!(
            g.get("ratio").and_then(Value::as_i64),
            Some(100 / (aint - 30))
        );
    }
}

#[test]
fn validate_reports_pipeline_problems_with_their_place_and_accepts_the_examples() {
    let dir = temp_dir("pipeline-validate");
    let deploy = deployment(
        &dir,
        "[[connector]]\nid = \"out\"\nplugin = \"blackhole\"\n\n\
         [[pipeline]]\nid = \"main\"\noperators = [\n  { filter = 'event.a =! 1' },\n  \
         { route = { \"x\" = 'true' } },\n]\n\n\
         [[pipeline]]\nid = \"idle\"\n\n\
         [[connect]]\nfrom = \"main/y\"\nto = \"out\"\n",
    );
    let (status, stdout, stderr) = output(temblor().arg("validate").arg(&deploy));
    assert_eq!(status.status.code(), Some(2), "{stdout}{stderr}");
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: ") || l.starts_with("warning: "))
        .collect();
    let expected = ["error: ", "error: ", "warning: ", "warning: ", "warning: "];
    assert_eq!(lines.len(), expected.len(), "{stderr}");
    assert!(
        lines[0].ends_with(
            "deploy.toml:8:3: pipeline 'main' operators[0] (filter): column 9: `=` is not an \
             operator: compare with `==` (in `event.a =! 1`)"
        ),
        "{stderr}"
    );
    assert!(
        lines[1].ends_with(
            "deploy.toml:16:8: connect: pipeline 'main' has no port 'y' (its ports are 'out', \
             'err', 'x')"
        ),
        "{stderr}"
    );
    assert!(
        lines[2].ends_with("deploy.toml:6:6: pipeline 'main' has no input: no [[connect]] has `to = \"main\"`, so it never sees an event"),
        "{stderr}"
    );
    assert!(lines[3].ends_with("deploy.toml:13:6: pipeline 'idle' has no input: no [[connect]] has `to = \"idle\"`, so it never sees an event"), "{stderr}");
    assert!(
        lines[4].contains("deploy.toml:13:6: pipeline 'idle': its events go nowhere"),
        "{stderr}"
    );

    for example in [
        "examples/pipeline-route.toml",
        "examples/pipeline-bench.toml",
        "examples/pipeline-count.toml",
        "examples/pipeline-rollup.toml",
        "examples/pipeline-shaping.toml",
    ] {
        let (status, stdout, stderr) = output(temblor().args(["validate", example]));
        assert!(status.status.success(), "{example}: {stderr}");
        assert!(stdout.contains(": ok ("), "{stdout}");
        assert!(!stderr.contains("warning: "), "{example}: {stderr}");
    }
}

#[test]
fn count_windows_flush_when_the_input_ends() {
    let dir = temp_dir("pipeline-count");
    let input = root().join("examples/data/data.json.xz");
    let out = dir.join("counts.json");
    let deploy = Deployment::pipe(
        Connector::file_read("in", "json", &input),
        Pipeline::new("main").op(r#"{ count = { by = "event.application", window_s = 3600 } }"#),
        Connector::file_write("out", &out),
    )
    .write(&dir);
    let (status, _, stderr) = output(temblor().arg("run").arg(&deploy));
    assert!(status.status.success(), "{stderr}");
    let mut expected: Vec<(String, u64)> = Vec::new();
    for line in xz_lines(&input) {
        let r = decode_slice(line.as_bytes()).unwrap();
        let app = text(&r, "application").to_owned();
        match expected.iter_mut().find(|(a, _)| *a == app) {
            Some((_, n)) => *n += 1,
            None => expected.push((app, 1)),
        }
    }
    let got: Vec<(String, u64)> = read_values(&out)
        .iter()
        .map(|c| {
            assert_eq!(
                c.get("by").and_then(Value::as_str),
                Some("event.application")
            );
            (
                text(c, "value").to_owned(),
                c.get("count").and_then(Value::as_u64).unwrap(),
            )
        })
        .collect();
    assert_eq!(got, expected);
}
