//! Tests of `match`, the functions of issue #17, and the `aggregate` and `bucket` operators.

use std::time::{Duration, Instant};

use temblor_shim::Value;

use super::{
    Output, Pipeline,
    aggregate::PERCENTILE_ERROR,
    parse::parse_expr,
    tests::{check_all, def, event, events, meta, outputs, port, reasons, try_def},
};

/// Evaluates `text` against the test event and meta, as JSON (or `error: ...`).
fn eval(text: &str) -> String {
    let e = match parse_expr(text) {
        Ok(e) => e,
        Err(err) => return format!("load error: {err}"),
    };
    match e.eval(&event(), &meta()) {
        Ok(v) => v.to_json(),
        Err(err) => format!("error: {err}"),
    }
}

/// Checks that each expression evaluates to its JSON (or `error: ...`).
fn check_evals(cases: &[(&str, &str)]) {
    check_all(cases, |(text, want)| {
        let got = eval(text);
        (got != *want).then(|| format!("{text}: got {got}, want {want}"))
    });
}

#[test]
fn functions_evaluate_as_documented() {
    // (expression, the result as JSON)
    let cases: &[(&str, &str)] = &[
        (r#"split("a,b,,c", ",")"#, r#"["a","b","","c"]"#),
        (r#"split(event.s, "l")"#, r#"["He","","o"]"#),
        (r#"join(["a", "b"], "-")"#, r#""a-b""#),
        (r#"join([1, "a", null], ",")"#, r#""1,a,null""#),
        (r#"join([], ",")"#, r#""""#),
        (r#"replace("aXbX", "X", "yy")"#, r#""ayybyy""#),
        (r#"trim("  a b \t")"#, r#""a b""#),
        (r#"substr("héllo", 1, 3)"#, r#""éll""#),
        (r#"substr("abc", 1)"#, r#""bc""#),
        (r#"substr("abc", 5, 1)"#, r#""""#),
        (r#"format("{} is {}", event.s, event.a)"#, r#""Hello is 1""#),
        (r#"format("{{}} {}", [1, 2])"#, r#""{} [1,2]""#),
        (r#"format("plain")"#, r#""plain""#),
        (r#"format("{}{}{}{}", 1, 2, 3, 4)"#, r#""1234""#),
        (r#"matches(event.s, "^H.l+o$")"#, "true"),
        (r#"matches("abc", "^b")"#, "false"),
        (
            r#"capture("user=ann id=7", "user=(?P<user>\\w+) id=(?P<id>\\d+)")"#,
            r#"{"user":"ann","id":"7"}"#,
        ),
        (r#"capture(event.s, "(H)(e)")"#, r#"["He","H","e"]"#),
        (r#"capture(event.s, "x(y)?")"#, "null"),
        ("round(1.5)", "2"),
        ("round(-1.5)", "-2"),
        ("round(event.f)", "2"),
        ("round(7)", "7"),
        ("floor(1.7)", "1"),
        ("floor(-1.2)", "-2"),
        ("abs(-3)", "3"),
        ("abs(-1.5)", "1.5"),
        ("abs(event.min)", "9223372036854775808"),
        ("now_ms() > 1700000000000", "true"),
        ("to_string(1)", r#""1""#),
        ("to_string(event.s)", r#""Hello""#),
        ("to_string(event.tags)", r#""[\"x\",\"y\"]""#),
        (r#"to_int("42")"#, "42"),
        (r#"to_int(" -7 ")"#, "-7"),
        ("to_int(3.9)", "3"),
        ("to_int(true)", "1"),
        (r#"to_float("1.5")"#, "1.5"),
        ("to_float(2) == 2.0", "true"),
        ("keys(event.nested)", r#"["b"]"#),
        ("values(event.nested.b)", "[true]"),
        ("keys(meta)", r#"["x","seen"]"#),
        (
            "merge(event.nested, event.nested.b)",
            r#"{"b":{"c":true},"c":true}"#,
        ),
        (
            "merge(meta, event.nested.b)",
            r#"{"x":7,"seen":true,"c":true}"#,
        ),
        // `in` on arrays (already there, used by the logging shape)
        (r#""x" in event.tags"#, "true"),
        (r#""z" in event.tags"#, "false"),
    ];
    check_evals(cases);
}

#[test]
fn merge_follows_json_merge_patch() {
    let d = def(r#"[{ set = { "event.m" = 'merge(event.a, event.b)' } }]"#);
    let got = super::tests::run(
        &d,
        r#"[{ a = { x = 1, y = { z = 1, w = 2 } }, b = { y = { z = 3 }, n = "new" } }]"#,
    );
    assert_eq!(
        port(&got, "out")[0].get("m").map(Value::to_json).as_deref(),
        Some(r#"{"x":1,"y":{"z":3,"w":2},"n":"new"}"#)
    );
}

#[test]
fn match_picks_the_first_arm_that_fits() {
    let cases: &[(&str, &str)] = &[
        (
            r#"match event.s { "Hi" | "Hello" => "greeting", _ => "other" }"#,
            r#""greeting""#,
        ),
        (
            r#"match event.a { 2 => "two", x when x > 0 => "pos", _ => "neg" }"#,
            r#""pos""#,
        ),
        (r#"match event.a { 1.0 => "one", _ => "no" }"#, r#""one""#),
        (
            r#"match event.nested { {b: {c: true}} => "deep", _ => "no" }"#,
            r#""deep""#,
        ),
        (
            r#"match event.nested { {b: {c: false}} => "deep", {x: _} => "x", _ => "no" }"#,
            r#""no""#,
        ),
        (
            r#"match event { {s: greeting, a: 1} => greeting + "!", _ => "no" }"#,
            r#""Hello!""#,
        ),
        (
            r#"match lower(event.s) { x when starts_with(x, "he") => upper(x), _ => "" }"#,
            r#""HELLO""#,
        ),
        (
            r#"match event.missing { null => "missing", _ => "there" }"#,
            r#""missing""#,
        ),
        (
            r#"match -1 { -1 => "minus one", _ => "x" }"#,
            r#""minus one""#,
        ),
        (
            r#"match event.s { "Hello" when "x" in event.tags => match event.a { 1 => "both", _ => "s" }, _ => "none" }"#,
            r#""both""#,
        ),
        ("match event.a { _ => event.f * 2 }", "3.0"),
        // A binding is scoped to its arm: `x` here is the second arm's.
        (
            r#"match event.s { x when x == "no" => 1, x => len(x) }"#,
            "5",
        ),
        // No arm fits: an error for this event.
        (
            r#"match event.a { 2 => "two" }"#,
            "error: column 1: no arm of `match` matched 1",
        ),
        (
            r#"match event.a { x when x => 1, _ => 2 }"#,
            "error: column 1: `when` needs a bool, found integer",
        ),
    ];
    check_evals(cases);
}

#[test]
fn bad_functions_and_matches_are_reported() {
    // (expression, a part of the message; at load unless it starts with "error")
    let cases: &[(&str, &str)] = &[
        (r#"matches(event.s, "(")"#, "column 1: `matches`: bad regex"),
        (r#"capture(event.s, "[a")"#, "bad regex"),
        (r#"format("{}")"#, "more `{}` than the 0 argument(s)"),
        (r#"format("{}", 1, 2)"#, "2 argument(s) for 1 `{}`"),
        (r#"format("{", 1)"#, "a lone `{`"),
        (r#"to_int("x1")"#, r#""x1" is not an integer"#),
        ("to_int(1e300)", "out of the integer range"),
        (r#"to_float("one")"#, "is not a number"),
        (
            "keys(1)",
            "`keys` needs an object as argument 1, found integer",
        ),
        ("round(event.s)", "`round` needs a number, found string"),
        (r#"split("a", "")"#, "the separator is empty"),
        (r#"substr("a", -1)"#, "not negative"),
        ("replace(event.s)", "`replace` takes 3 arguments, found 1"),
        (
            "substr(event.s)",
            "`substr` takes 2 to 3 arguments, found 1",
        ),
        ("now_ms(1)", "`now_ms` takes 0 arguments, found 1"),
        ("match event.a { 1 => }", "expected a value"),
        ("match event.a { 1 }", "expected `=>`"),
        ("match event.a { }", "at least one arm"),
        (
            "match event.a { event => 1 }",
            "`event` can not be a binding's name",
        ),
        ("match event.a { 1 => y }", "unknown name `y`"),
        ("match event.a { x => 1, _ => x }", "unknown name `x`"),
    ];
    check_all(cases, |(text, want)| {
        let got = eval(text);
        (!got.contains(want)).then(|| format!("{text}: got {got}, want it to contain {want}"))
    });
    // A pattern that is not a literal is compiled for each event.
    assert_eq!(
        eval(r#"matches(event.s, lower("^H"))"#),
        "false",
        "`^h` does not match `Hello`"
    );
    assert!(
        eval(r#"matches(event.s, event.s + "(")"#)
            .starts_with("error: column 1: `matches`: bad regex")
    );
}

#[test]
fn a_match_with_no_arm_sends_the_event_to_err() {
    let d = def(
        r#"[{ set = { "meta.class" = 'match event.app { "a" | "b" => "ab", x when starts_with(x, "sys") => "syslog" }' } }]"#,
    );
    let got = super::tests::run(
        &d,
        r#"[{ app = "a" }, { app = "sysd" }, { app = "other" }]"#,
    );
    assert_eq!(port(&got, "out").len(), 2);
    let err = reasons(&got);
    assert_eq!(err.len(), 1);
    assert!(
        err[0].contains("no arm of `match` matched \"other\""),
        "{err:?}"
    );
}

// ---- aggregate ------------------------------------------------------------------------

/// Runs events with event-time stamps through `ops`, then the end of the input; the output
/// per port.
fn run_all(ops: &str, batches: &[&str]) -> Vec<(String, Vec<Value>)> {
    let d = def(ops);
    let t0 = Instant::now();
    let mut p = Pipeline::new(&d, t0);
    let mut out = Output::default();
    for b in batches {
        p.process(events(b), t0, &mut out);
    }
    p.finish(t0, &mut out);
    outputs(&d, &mut out)
}

fn field<'v>(v: &'v Value, path: &[&str]) -> &'v Value {
    path.iter()
        .try_fold(v, |at, k| at.get(k))
        .unwrap_or_else(|| panic!("{path:?} in {v}"))
}

fn f64_of(v: &Value) -> f64 {
    super::expr::float_of(v).unwrap_or_else(|| panic!("not a number: {v}"))
}

#[test]
fn event_time_tumbling_windows_compute_every_function_per_group() {
    // Two apps over two 10 s windows; values chosen so every function differs.
    let input = r#"[
        { ts = 1000, app = "a", ms = 10, u = "x" },
        { ts = 2000, app = "b", ms = 5, u = "x" },
        { ts = 3000, app = "a", ms = 30, u = "y" },
        { ts = 9999, app = "a", ms = 20, u = "x" },
        { ts = 12000, app = "a", ms = 7, u = "z" },
        { ts = 15000, app = "b", ms = 1.5, u = "z" },
    ]"#;
    let got = run_all(
        r#"[{ aggregate = { window = { tumbling_s = 10 }, time = 'event.ts', group_by = ['event.app'],
            emit = { n = 'count()', sum = 'sum(event.ms)', min = 'min(event.ms)', max = 'max(event.ms)',
                     mean = 'mean(event.ms)', var = 'var(event.ms)', sd = 'stdev(event.ms)',
                     p50 = 'percentile(event.ms, 0.5)', first = 'first(event.u)', last = 'last(event.u)',
                     all = 'collect(event.u, 2)', uniq = 'distinct(event.u)' } } }]"#,
        &[input],
    );
    let out = port(&got, "out");
    let summary: Vec<String> = out
        .iter()
        .map(|r| {
            format!(
                "{} {}-{} n={} sum={} min={} max={} first={} last={} all={} uniq={}",
                field(r, &["group", "event.app"]),
                field(r, &["window_start_ms"]),
                field(r, &["window_end_ms"]),
                field(r, &["n"]),
                field(r, &["sum"]),
                field(r, &["min"]),
                field(r, &["max"]),
                field(r, &["first"]),
                field(r, &["last"]),
                field(r, &["all"]),
                field(r, &["uniq"]),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            r#""a" 0-10000 n=3 sum=60 min=10 max=30 first="x" last="x" all=["x","y"] uniq=2"#,
            r#""b" 0-10000 n=1 sum=5 min=5 max=5 first="x" last="x" all=["x"] uniq=1"#,
            r#""a" 10000-20000 n=1 sum=7 min=7 max=7 first="z" last="z" all=["z"] uniq=1"#,
            r#""b" 10000-20000 n=1 sum=1.5 min=1.5 max=1.5 first="z" last="z" all=["z"] uniq=1"#,
        ]
    );
    // Mean, sample variance and its root, computed here.
    let a = [10.0_f64, 30.0, 20.0];
    let mean = a.iter().sum::<f64>() / 3.0;
    let var = a.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 2.0;
    assert!((f64_of(field(out[0], &["mean"])) - mean).abs() < 1e-9);
    assert!((f64_of(field(out[0], &["var"])) - var).abs() < 1e-9);
    assert!((f64_of(field(out[0], &["sd"])) - var.sqrt()).abs() < 1e-9);
    let p50 = f64_of(field(out[0], &["p50"]));
    assert!(
        (p50 - 20.0).abs() <= 20.0 * PERCENTILE_ERROR,
        "p50 {p50} within 1% of 20"
    );
    // One value: no variance.
    assert_eq!(field(out[1], &["var"]), &Value::Null);
}

#[test]
fn late_events_go_to_the_late_port_unless_within_the_allowed_lateness() {
    let batches = [
        "[{ ts = 1000, v = 1 }, { ts = 11000, v = 2 }]",
        // The first window [0, 10000) closed when 11000 arrived: 5000 is late.
        "[{ ts = 5000, v = 3 }, { ts = 12000, v = 4 }]",
    ];
    let got = run_all(
        r#"[{ aggregate = { window = { tumbling_s = 10 }, time = 'event.ts', emit = { s = 'sum(event.v)' } } }]"#,
        &batches,
    );
    let sums: Vec<&Value> = port(&got, "out").iter().map(|r| field(r, &["s"])).collect();
    assert_eq!(sums, [&Value::from(1), &Value::from(6)]);
    let late = port(&got, "late");
    assert_eq!(late.len(), 1);
    assert_eq!(field(late[0], &["v"]), &Value::from(3));

    // With 5 s of lateness the window waits until 15000 and takes the straggler.
    let got = run_all(
        r#"[{ aggregate = { window = { tumbling_s = 10 }, time = 'event.ts', allowed_lateness_s = 5,
             emit = { s = 'sum(event.v)' } } }]"#,
        &batches,
    );
    let sums: Vec<&Value> = port(&got, "out").iter().map(|r| field(r, &["s"])).collect();
    assert_eq!(sums, [&Value::from(4), &Value::from(6)]);
    assert!(port(&got, "late").is_empty());
}

#[test]
fn windows_close_as_event_time_passes_and_emit_before_later_operators() {
    let d = def(
        r#"[{ aggregate = { window = { tumbling_s = 1 }, time = 'event.ts', emit = { n = 'count()' } } },
            { set = { "event.seen" = true } }]"#,
    );
    let t0 = Instant::now();
    let mut p = Pipeline::new(&d, t0);
    let mut out = Output::default();
    p.process(events("[{ ts = 100 }, { ts = 200 }]"), t0, &mut out);
    assert!(outputs(&d, &mut out).is_empty(), "the window is open");
    assert_eq!(p.deadline(), None, "event time waits for events");
    assert_eq!(p.state(), (1, 0));
    p.process(events("[{ ts = 1000 }]"), t0, &mut out);
    let got = outputs(&d, &mut out);
    let out_events = port(&got, "out");
    assert_eq!(out_events.len(), 1);
    assert_eq!(field(out_events[0], &["n"]), &Value::from(2));
    assert_eq!(field(out_events[0], &["seen"]), &Value::Bool(true));
}

#[test]
fn hopping_windows_hold_each_event_in_every_window_it_falls_in() {
    let got = run_all(
        r#"[{ aggregate = { window = { size_s = 10, every_s = 5 }, time = 'event.ts', emit = { v = 'collect(event.v)' } } }]"#,
        &["[{ ts = 2000, v = 1 }, { ts = 7000, v = 2 }, { ts = 12000, v = 3 }]"],
    );
    let windows: Vec<String> = port(&got, "out")
        .iter()
        .map(|r| {
            format!(
                "{}-{} {}",
                field(r, &["window_start_ms"]),
                field(r, &["window_end_ms"]),
                field(r, &["v"])
            )
        })
        .collect();
    assert_eq!(
        windows,
        ["0-10000 [1,2]", "5000-15000 [2,3]", "10000-20000 [3]"]
    );
}

#[test]
fn count_windows_close_per_group_at_their_nth_event() {
    let got = run_all(
        r#"[{ aggregate = { window = { tumbling_n = 2 }, group_by = ['event.g'], emit = { v = 'collect(event.v)' } } }]"#,
        &["[{ g = 1, v = 1 }, { g = 2, v = 2 }, { g = 1, v = 3 }, { g = 1, v = 4 }]"],
    );
    let windows: Vec<String> = port(&got, "out")
        .iter()
        .map(|r| format!("{} {}", field(r, &["group", "event.g"]), field(r, &["v"])))
        .collect();
    // Group 1 fills first; at the end the rest is flushed, in first-seen order.
    assert_eq!(windows, ["1 [1,3]", "2 [2]", "1 [4]"]);
}

#[test]
fn processing_time_windows_close_on_the_pipeline_deadline() {
    let d = def(
        r#"[{ aggregate = { window = { tumbling_s = 10 }, group_by = ['event.g'], emit = { n = 'count()' } } }]"#,
    );
    let t0 = Instant::now();
    let mut p = Pipeline::new(&d, t0);
    let mut out = Output::default();
    p.process(events("[{ g = 1 }, { g = 2 }, { g = 1 }]"), t0, &mut out);
    let deadline = p.deadline().expect("an open window has a deadline");
    assert!(deadline > t0 && deadline <= t0 + Duration::from_secs(10));
    p.tick(deadline - Duration::from_millis(1), &mut out);
    assert!(outputs(&d, &mut out).is_empty());
    p.tick(deadline, &mut out);
    let got = outputs(&d, &mut out);
    let counts: Vec<&Value> = port(&got, "out").iter().map(|r| field(r, &["n"])).collect();
    assert_eq!(counts, [&Value::from(2), &Value::from(1)]);
    assert_eq!(p.deadline(), None);
}

#[test]
fn max_groups_emits_the_least_recently_seen_group_early() {
    let d = def(
        r#"[{ aggregate = { window = { tumbling_s = 10 }, time = 'event.ts', group_by = ['event.g'],
             emit = { n = 'count()' }, max_groups = 2 } }]"#,
    );
    let t0 = Instant::now();
    let mut p = Pipeline::new(&d, t0);
    let mut out = Output::default();
    p.process(
        events("[{ ts = 1, g = 1 }, { ts = 2, g = 2 }, { ts = 3, g = 1 }, { ts = 4, g = 3 }]"),
        t0,
        &mut out,
    );
    let got = outputs(&d, &mut out);
    let early = port(&got, "out");
    assert_eq!(early.len(), 1, "{got:?}");
    assert_eq!(field(early[0], &["group", "event.g"]), &Value::from(2));
    assert_eq!(field(early[0], &["early"]), &Value::Bool(true));
    assert_eq!(p.state(), (2, 1));
    p.finish(t0, &mut out);
    let got = outputs(&d, &mut out);
    let rest: Vec<String> = port(&got, "out")
        .iter()
        .map(|r| format!("{}={}", field(r, &["group", "event.g"]), field(r, &["n"])))
        .collect();
    assert_eq!(rest, ["1=2", "3=1"]);
}

#[test]
fn having_keeps_the_groups_it_is_true_for() {
    let got = run_all(
        r#"[{ aggregate = { window = { tumbling_s = 10 }, time = 'event.ts', group_by = ['event.g'],
             emit = { count = 'count()', total = 'sum(event.v)' }, having = 'count > 1 and event.total < 100' } }]"#,
        &[
            "[{ ts = 1, g = 1, v = 1 }, { ts = 2, g = 2, v = 1 }, { ts = 3, g = 1, v = 1 }, { ts = 4, g = 3, v = 99 }, { ts = 5, g = 3, v = 1 }]",
        ],
    );
    let kept: Vec<&Value> = port(&got, "out")
        .iter()
        .map(|r| field(r, &["group", "event.g"]))
        .collect();
    assert_eq!(kept, [&Value::from(1)]);
    // A having that fails sends the record to err.
    let got = run_all(
        r#"[{ aggregate = { window = { tumbling_n = 1 }, emit = { m = 'max(event.v)' }, having = 'm > 1' } }]"#,
        &["[{ v = 5 }, {}]"],
    );
    assert_eq!(port(&got, "out").len(), 1);
    let err = reasons(&got);
    assert_eq!(err.len(), 1);
    assert!(err[0].starts_with("aggregate: having:"), "{err:?}");
}

#[test]
fn aggregate_nulls_are_skipped_and_other_types_are_errors() {
    let got = run_all(
        r#"[{ aggregate = { window = { tumbling_n = 10 }, emit = { n = 'count()', present = 'count(event.v)', s = 'sum(event.v)', m = 'mean(event.v)' } } }]"#,
        &[r#"[{ v = 1 }, {}, { v = "x" }, { v = 2.5 }]"#],
    );
    let out = port(&got, "out");
    assert_eq!(out.len(), 1);
    assert_eq!(field(out[0], &["n"]), &Value::from(3));
    assert_eq!(field(out[0], &["present"]), &Value::from(2));
    assert_eq!(field(out[0], &["s"]), &Value::F64(3.5));
    assert_eq!(field(out[0], &["m"]), &Value::F64(1.75));
    assert_eq!(
        reasons(&got),
        ["aggregate: s: `sum` needs a number, found string"]
    );
}

#[test]
fn bad_aggregates_and_buckets_are_refused_at_load() {
    let cases: &[(&str, &str)] = &[
        (
            "{ aggregate = { emit = { n = 'count()' } } }",
            "`window` is required",
        ),
        (
            "{ aggregate = { window = { tumbling_s = 0 }, emit = { n = 'count()' } } }",
            "`tumbling_s` must be at least 0.001",
        ),
        (
            "{ aggregate = { window = { size_s = 1, every_s = 2 }, emit = { n = 'count()' } } }",
            "`every_s` must not exceed `size_s`",
        ),
        (
            "{ aggregate = { window = { tumbling_n = 2 }, emit = { n = 'median(event.x)' } } }",
            "expected an aggregate function call",
        ),
        (
            "{ aggregate = { window = { tumbling_n = 2 }, emit = { p = 'percentile(event.x, 2)' } } }",
            "a number from 0 to 1",
        ),
        (
            "{ aggregate = { window = { tumbling_n = 2 }, emit = { p = 'sum()' } } }",
            "`sum` takes 1 argument(s), found 0",
        ),
        (
            "{ aggregate = { window = { tumbling_n = 2 }, emit = { group = 'count()' } } }",
            "the name is taken",
        ),
        (
            "{ aggregate = { window = { tumbling_n = 2 }, emit = { n = 'sum(event.x +)' } } }",
            "emit \"n\": column",
        ),
        (
            "{ aggregate = { window = { tumbling_n = 2 }, emit = { n = 'count()' }, having = 'm > 1' } }",
            "unknown name `m`",
        ),
        (
            "{ aggregate = { window = { tumbling_s = 1 }, emit = { n = 'count()' }, allowed_lateness_s = 1 } }",
            "needs `time`",
        ),
        (
            "{ aggregate = { window = { tumbling_n = 2 }, emit = { n = 'count()' }, max_groups = 0 } }",
            "`max_groups` must be",
        ),
        (
            "{ aggregate = { window = { tumbling_n = 2 }, emit = { n = 'count()' }, nope = 1 } }",
            "unknown key `nope`",
        ),
        ("{ bucket = { class = 'meta.class' } }", "`rate`"),
        (
            "{ bucket = { rate = 'meta.rate', windows = 0 } }",
            "`windows` must be an integer",
        ),
        (
            "{ bucket = { rate = 'meta.rate', time_range_s = -1 } }",
            "`time_range_s` must be",
        ),
    ];
    check_all(cases, |(op, want)| match try_def(&format!("[{op}]")) {
        Ok(_) => Some(format!("{op}: accepted")),
        Err(e) if e.iter().any(|m| m.contains(want)) => None,
        Err(e) => Some(format!("{op}: {e:?} lacks {want}")),
    });
    // The ports they add.
    let d = def(
        "[{ aggregate = { window = { tumbling_s = 1 }, time = 'event.t', emit = { n = 'count()' } } }, { bucket = { rate = 'meta.rate' } }]",
    );
    assert_eq!(d.ports(), ["out", "err", "late", "overflow"]);
}

#[test]
fn percentiles_are_within_the_documented_error() {
    // 1..=1000 ms: every percentile within 1% of the value at its rank.
    let list: Vec<String> = (1..=1000).map(|i| format!("{{ v = {i} }}")).collect();
    let input = format!("[{}]", list.join(", "));
    let got = run_all(
        r#"[{ aggregate = { window = { tumbling_n = 1000 }, emit = { p50 = 'percentile(event.v, 0.5)', p90 = 'percentile(event.v, 0.9)', p99 = 'percentile(event.v, 0.99)', p0 = 'percentile(event.v, 0)', p100 = 'percentile(event.v, 1)' } } }]"#,
        &[&input],
    );
    let r = port(&got, "out")[0];
    for (name, q) in [
        ("p0", 0.0),
        ("p50", 0.5),
        ("p90", 0.9),
        ("p99", 0.99),
        ("p100", 1.0),
    ] {
        let got = f64_of(field(r, &[name]));
        // The value at rank floor(q * (n - 1)) (from 0) of 1..=1000.
        let want = (q * 999.0_f64).floor() + 1.0;
        assert!(
            (got - want).abs() <= want * PERCENTILE_ERROR,
            "{name}: {got} not within 1% of {want}"
        );
    }
}

// ---- bucket ---------------------------------------------------------------------------

#[test]
fn bucket_passes_rate_events_per_class_and_dimension_and_overflows_the_rest() {
    let d = def(
        r#"[{ bucket = { class = 'event.class', rate = 'event.rate', dimension = 'event.dim', time_range_s = 1, windows = 10 } }]"#,
    );
    let t0 = Instant::now();
    let mut p = Pipeline::new(&d, t0);
    let mut out = Output::default();
    let batch = r#"[
        { class = "a", rate = 2, dim = 1, n = 1 }, { class = "a", rate = 2, dim = 1, n = 2 },
        { class = "a", rate = 2, dim = 1, n = 3 }, { class = "a", rate = 2, dim = 2, n = 4 },
        { class = "b", n = 5 }, { class = "b", n = 6 }, { class = "b", n = 7 },
        { class = "c", rate = 0, n = 8 }, { class = "a", rate = "x", n = 9 }
    ]"#;
    p.process(events(batch), t0, &mut out);
    let got = outputs(&d, &mut out);
    let ns = |port_name: &str| -> Vec<i64> {
        port(&got, port_name)
            .iter()
            .map(|e| e.get("n").and_then(Value::as_i64).unwrap_or(-1))
            .collect()
    };
    assert_eq!(
        ns("out"),
        [1, 2, 4, 5, 6, 7],
        "class b has no rate: it passes"
    );
    assert_eq!(ns("overflow"), [3, 8]);
    assert_eq!(port(&got, "err").len(), 1, "a rate that is not an integer");
    // Half a second later the window still holds both; a second later it has slid past them.
    p.process(
        events(r#"[{ class = "a", rate = 2, dim = 1, n = 10 }]"#),
        t0 + Duration::from_millis(500),
        &mut out,
    );
    let got = outputs(&d, &mut out);
    assert_eq!(port(&got, "overflow").len(), 1);
    p.process(
        events(r#"[{ class = "a", rate = 2, dim = 1, n = 11 }]"#),
        t0 + Duration::from_millis(1000),
        &mut out,
    );
    let got = outputs(&d, &mut out);
    assert_eq!(port(&got, "out").len(), 1);
    assert_eq!(p.state().0, 3, "(a, 1), (a, 2) and (c, null)");
}

#[test]
fn bucket_state_is_bounded() {
    let d = def(r#"[{ bucket = { class = 'event.class', rate = 'event.rate', max_groups = 2 } }]"#);
    let t0 = Instant::now();
    let mut p = Pipeline::new(&d, t0);
    let mut out = Output::default();
    p.process(
        events(
            r#"[{ class = "a", rate = 1 }, { class = "b", rate = 1 }, { class = "c", rate = 1 }, { class = "a", rate = 1 }]"#,
        ),
        t0,
        &mut out,
    );
    let got = outputs(&d, &mut out);
    // `a` was forgotten when `c` came, so its second event passes too.
    assert_eq!(port(&got, "out").len(), 4);
    assert_eq!(p.state(), (2, 2));
}

#[test]
fn aggregate_records_carry_the_tokens_of_the_groups_they_close() {
    use crate::delivery::{Acks, Outcome};
    let d = def(
        r#"[{ aggregate = { window = { tumbling_s = 10 }, time = 'event.ts', emit = { n = 'count()' } } }]"#,
    );
    let t0 = Instant::now();
    let mut p = Pipeline::new(&d, t0);
    let mut out = Output::default();
    let mut acks = Acks::default();
    let mut outcomes = Vec::new();
    let batch = |text: &str, acks: &mut Acks| {
        let mut e = events(text);
        e.tokens = acks.issue();
        e
    };
    p.process(batch("[{ ts = 1000 }]", &mut acks), t0, &mut out);
    p.process(batch("[{ ts = 11000 }]", &mut acks), t0, &mut out);
    let first: Vec<_> = out.drain().collect();
    assert_eq!(first.len(), 1, "the first window closed");
    acks.collect(Duration::ZERO, &mut outcomes);
    assert!(
        outcomes.is_empty(),
        "held by the record and the open window"
    );
    drop(first);
    acks.collect(Duration::ZERO, &mut outcomes);
    assert_eq!(
        outcomes,
        [Outcome::Ack(1)],
        "batch 2 is still in the open window"
    );
    p.finish(t0, &mut out);
    let rest: Vec<_> = out.drain().collect();
    assert_eq!(rest.len(), 1);
    drop(rest);
    acks.collect(Duration::ZERO, &mut outcomes);
    assert_eq!(outcomes, [Outcome::Ack(1), Outcome::Ack(2)]);
    assert_eq!(acks.outstanding(), 0);
}

#[test]
fn group_by_each_counts_an_event_in_the_group_of_every_element() {
    // (group_by, events, the records as "group n", the number of error events)
    let cases: &[(&str, &str, &[&str], usize)] = &[
        (
            "[{ each = 'event.tags' }]",
            r#"[{ tags = ["a", "b"] }, { tags = ["b"] }, { tags = [] }, { tags = ["a", "c"] }]"#,
            &[
                r#"{"event.tags":"a"} 2"#,
                r#"{"event.tags":"b"} 2"#,
                r#"{"event.tags":"c"} 1"#,
            ],
            0,
        ),
        (
            // An element twice counts twice in its group.
            "[{ each = 'event.tags' }]",
            r#"[{ tags = ["a", "a"] }]"#,
            &[r#"{"event.tags":"a"} 2"#],
            0,
        ),
        (
            "['event.app', { each = 'event.tags' }]",
            r#"[{ app = "x", tags = ["a", "b"] }, { app = "y", tags = ["a"] }]"#,
            &[
                r#"{"event.app":"x","event.tags":"a"} 1"#,
                r#"{"event.app":"x","event.tags":"b"} 1"#,
                r#"{"event.app":"y","event.tags":"a"} 1"#,
            ],
            0,
        ),
        (
            // Two `each` entries: every combination.
            "[{ each = 'event.t' }, { each = 'event.u' }]",
            r#"[{ t = [1, 2], u = ["p", "q"] }, { t = [1], u = [] }]"#,
            &[
                r#"{"event.t":1,"event.u":"p"} 1"#,
                r#"{"event.t":1,"event.u":"q"} 1"#,
                r#"{"event.t":2,"event.u":"p"} 1"#,
                r#"{"event.t":2,"event.u":"q"} 1"#,
            ],
            0,
        ),
        (
            // Not an array (a missing field is `null`): an error for that event only.
            "[{ each = 'event.tags' }]",
            r#"[{ tags = "a" }, { other = 1 }, { tags = ["a"] }]"#,
            &[r#"{"event.tags":"a"} 1"#],
            2,
        ),
    ];
    for (group_by, input, want, errors) in cases {
        let got = run_all(
            &format!(
                "[{{ aggregate = {{ window = {{ tumbling_s = 10 }}, time = '0', \
                 group_by = {group_by}, emit = {{ n = 'count()' }} }} }}]"
            ),
            &[input],
        );
        let records: Vec<String> = port(&got, "out")
            .iter()
            .map(|r| format!("{} {}", field(r, &["group"]), field(r, &["n"])))
            .collect();
        assert_eq!(&records, want, "{group_by} on {input}");
        let err = port(&got, "err");
        assert_eq!(err.len(), *errors, "{group_by} on {input}");
        for e in err {
            let message = e.get("error").and_then(Value::as_str).unwrap_or("");
            assert!(
                message.contains("group_by `{ each = 'event.tags' }`: expected an array"),
                "{message}"
            );
        }
    }
}

#[test]
fn group_by_each_takes_only_an_expression() {
    for bad in [
        "[{ every = 'event.tags' }]",
        "[{ each = 'event.tags', also = 1 }]",
        "[{ each = 1 }]",
    ] {
        let errors = try_def(&format!(
            "[{{ aggregate = {{ window = {{ tumbling_s = 10 }}, group_by = {bad}, \
             emit = {{ n = 'count()' }} }} }}]"
        ))
        .expect_err(bad);
        assert!(
            errors
                .iter()
                .any(|e| e.contains("a `group_by` table is `{ each")),
            "{bad}: {errors:?}"
        );
    }
}

#[test]
fn a_chain_of_windows_rolls_10_s_windows_into_1_min_windows() {
    // Events over 0..150 s in two groups; the 1 min results are computed here from the events.
    let mut rows = Vec::new();
    for i in 0..150_u64 {
        let ts = i * 1000 + (i * 7) % 1000;
        let g = if i % 3 == 0 { "a" } else { "b" };
        let v = (i * 37) % 101;
        rows.push((ts, g, v));
    }
    let input = format!(
        "[{}]",
        rows.iter()
            .map(|(ts, g, v)| format!(r#"{{ ts = {ts}, g = "{g}", v = {v}, u = {} }}"#, v % 13))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let got = run_all(
        r#"[{ aggregate = { window = [{ tumbling_s = 10 }, { tumbling_s = 60 }], time = 'event.ts',
            group_by = ['event.g'],
            emit = { n = 'count()', sum = 'sum(event.v)', min = 'min(event.v)', max = 'max(event.v)',
                     mean = 'mean(event.v)', var = 'var(event.v)', p90 = 'percentile(event.v, 0.9)',
                     first = 'first(event.v)', last = 'last(event.v)', all = 'collect(event.v, 15)',
                     uniq = 'distinct(event.u)' } } }]"#,
        &[&input],
    );
    let out = port(&got, "out");
    assert!(port(&got, "err").is_empty());
    let tens = out
        .iter()
        .filter(|r| field(r, &["window_s"]) == &Value::from(10_u64));
    let minutes: Vec<&Value> = out
        .iter()
        .copied()
        .filter(|r| field(r, &["window_s"]) == &Value::from(60_u64))
        .collect();
    // 15 ten-second windows of two groups; three minutes (the last one partial, emitted at
    // the end) of two groups.
    assert_eq!(tens.count(), 30);
    assert_eq!(minutes.len(), 6);
    for r in &minutes {
        let start = field(r, &["window_start_ms"]).as_u64().expect("a start");
        assert_eq!(field(r, &["window_end_ms"]).as_u64(), Some(start + 60_000));
        let g = field(r, &["group", "event.g"]).as_str().expect("a group");
        let vs: Vec<u64> = rows
            .iter()
            .filter(|(ts, gg, _)| *gg == g && (start..start + 60_000).contains(ts))
            .map(|(_, _, v)| *v)
            .collect();
        let n = vs.len() as u64;
        assert_eq!(field(r, &["n"]).as_u64(), Some(n), "{r}");
        assert_eq!(field(r, &["sum"]).as_u64(), Some(vs.iter().sum()), "{r}");
        assert_eq!(field(r, &["min"]).as_u64(), vs.iter().min().copied(), "{r}");
        assert_eq!(field(r, &["max"]).as_u64(), vs.iter().max().copied(), "{r}");
        assert_eq!(field(r, &["first"]).as_u64(), vs.first().copied(), "{r}");
        assert_eq!(field(r, &["last"]).as_u64(), vs.last().copied(), "{r}");
        let all: Vec<u64> = field(r, &["all"])
            .as_array()
            .expect("an array")
            .iter()
            .filter_map(Value::as_u64)
            .collect();
        assert_eq!(all, vs[..vs.len().min(15)], "{r}");
        let mut uniq: Vec<u64> = vs.iter().map(|v| v % 13).collect();
        uniq.sort_unstable();
        uniq.dedup();
        assert_eq!(field(r, &["uniq"]).as_u64(), Some(uniq.len() as u64), "{r}");
        #[allow(clippy::cast_precision_loss)]
        let xs: Vec<f64> = vs.iter().map(|&v| v as f64).collect();
        #[allow(clippy::cast_precision_loss)]
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        #[allow(clippy::cast_precision_loss)]
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (xs.len() - 1) as f64;
        assert!((f64_of(field(r, &["mean"])) - mean).abs() < 1e-9, "{r}");
        assert!((f64_of(field(r, &["var"])) - var).abs() < 1e-6, "{r} {var}");
        let mut sorted = xs.clone();
        sorted.sort_by(f64::total_cmp);
        #[allow(
            clippy::cast_precision_loss,
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss
        )]
        let rank = (0.9 * (sorted.len() - 1) as f64).floor() as usize;
        let p90 = f64_of(field(r, &["p90"]));
        assert!(
            (p90 - sorted[rank]).abs() <= sorted[rank] * PERCENTILE_ERROR + 1e-9,
            "{r}: {p90} vs {}",
            sorted[rank]
        );
    }
    // The minutes come in order, and after the ten-second windows they hold.
    let starts: Vec<u64> = minutes
        .iter()
        .filter_map(|r| field(r, &["window_start_ms"]).as_u64())
        .collect();
    assert_eq!(starts, [0, 0, 60_000, 60_000, 120_000, 120_000]);
}

#[test]
fn a_chain_of_windows_must_grow_by_multiples() {
    // (window, a part of the error)
    let cases = [
        ("[{ tumbling_s = 10 }]", "at least two"),
        ("[{ tumbling_s = 10 }, { tumbling_s = 15 }]", "multiple"),
        ("[{ tumbling_s = 10 }, { tumbling_s = 10 }]", "multiple"),
        (
            "[{ tumbling_s = 10 }, { tumbling_n = 5 }]",
            "window 2: a chain",
        ),
        (
            "[{ size_s = 10, every_s = 5 }, { tumbling_s = 60 }]",
            "window 1: a chain",
        ),
        ("[{ tumbling_s = 10 }, 60]", "window 2: expected"),
    ];
    for (window, want) in cases {
        let errors = try_def(&format!(
            "[{{ aggregate = {{ window = {window}, emit = {{ n = 'count()' }} }} }}]"
        ))
        .expect_err(window);
        assert!(
            errors.iter().any(|e| e.contains(want)),
            "{window}: {errors:?}"
        );
    }
    assert!(
        try_def(
            "[{ aggregate = { window = [{ tumbling_s = 0.5 }, { tumbling_s = 10 }, { tumbling_s = 3600 }], \
             emit = { n = 'count()' } } }]"
        )
        .is_ok()
    );
}

#[test]
fn a_chain_of_processing_time_windows_emits_every_level_at_its_end_and_on_shutdown() {
    let d = def(
        r#"[{ aggregate = { window = [{ tumbling_s = 1 }, { tumbling_s = 3 }], group_by = ['event.g'],
            emit = { n = 'count()' } } }]"#,
    );
    let summary = |got: &[(String, Vec<Value>)]| -> Vec<String> {
        port(got, "out")
            .iter()
            .map(|r| {
                format!(
                    "{} {} {}",
                    field(r, &["window_s"]),
                    field(r, &["group", "event.g"]),
                    field(r, &["n"])
                )
            })
            .collect()
    };
    let t0 = Instant::now();
    let mut p = Pipeline::new(&d, t0);
    let mut out = Output::default();
    p.process(events("[{ g = 1 }, { g = 2 }, { g = 1 }]"), t0, &mut out);
    // The first level's window ends first (the 3 s window may end with it, on the wall clock).
    let deadline = p.deadline().expect("a deadline");
    p.tick(deadline, &mut out);
    let mut all = summary(&outputs(&d, &mut out));
    assert_eq!(all[..2], ["1 1 2", "1 2 1"]);
    // One more event, then shutdown: every open window of both levels is emitted.
    p.process(events("[{ g = 1 }]"), deadline, &mut out);
    p.finish(deadline, &mut out);
    let rest = summary(&outputs(&d, &mut out));
    assert!(rest.contains(&"1 1 1".to_owned()), "{rest:?}");
    all.extend(rest);
    let total = |size: &str| -> u64 {
        all.iter()
            .filter(|s| s.split(' ').next() == Some(size))
            .filter_map(|s| s.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    };
    assert_eq!(total("1"), 4, "{all:?}");
    assert_eq!(total("3"), 4, "{all:?}");
    assert_eq!(p.deadline(), None);
}

#[test]
fn every_level_of_a_chain_is_bounded_by_max_groups() {
    let got = run_all(
        r#"[{ aggregate = { window = [{ tumbling_s = 10 }, { tumbling_s = 60 }], time = 'event.ts',
            group_by = ['event.g'], max_groups = 1, emit = { n = 'count()' } } }]"#,
        &[
            r#"[{ ts = 1000, g = "a" }, { ts = 2000, g = "b" }, { ts = 3000, g = "a" },
              { ts = 15000, g = "b" }, { ts = 70000, g = "a" }]"#,
        ],
    );
    let out = port(&got, "out");
    // (window_s, the events counted, the early records)
    let per_level = |size: u64| -> (u64, usize) {
        let level: Vec<&&Value> = out
            .iter()
            .filter(|r| field(r, &["window_s"]) == &Value::from(size))
            .collect();
        let n = level.iter().filter_map(|r| field(r, &["n"]).as_u64()).sum();
        let early = level.iter().filter(|r| r.get("early").is_some()).count();
        (n, early)
    };
    // Every event is counted once per level, however often groups were emitted early. With
    // one group held per level, each new group pushes the other out: at 10 s, a by b, b by a,
    // a by b (at 15 s), b by a (at 70 s); each of those rolls into the first minute and pushes
    // the group there out but the first; that minute's last group (b) closes normally when the
    // watermark passes 60 s, and a's minute from 60 s at the end.
    assert_eq!(per_level(10), (5, 4));
    assert_eq!(per_level(60), (5, 3));
}

#[test]
fn state_bytes_grow_with_groups_and_fall_when_windows_close() {
    let windows = [
        "{ tumbling_s = 10 }",
        "[{ tumbling_s = 10 }, { tumbling_s = 60 }]",
    ];
    let batch = |from: u64, to: u64| {
        events(&format!(
            "[{}]",
            (from..to)
                .map(|g| format!(r#"{{ ts = 1000, g = {g}, s = "value {g}" }}"#))
                .collect::<Vec<_>>()
                .join(", ")
        ))
    };
    for window in windows {
        let d = def(&format!(
            "[{{ aggregate = {{ window = {window}, time = 'event.ts', group_by = ['event.g'], \
             emit = {{ n = 'count()', all = 'collect(event.s)', p = 'percentile(event.g, 0.5)', \
             u = 'distinct(event.s)' }} }} }}]"
        ));
        let t0 = Instant::now();
        let mut p = Pipeline::new(&d, t0);
        let mut out = Output::default();
        assert_eq!(p.state_bytes(), 0, "{window}");
        p.process(batch(0, 10), t0, &mut out);
        let ten = p.state_bytes();
        assert_eq!(p.state().0, 10, "{window}");
        p.process(batch(10, 110), t0, &mut out);
        let many = p.state_bytes();
        assert_eq!(p.state().0, 110, "{window}");
        // About proportional: 11 times the groups, well over 5 times the bytes.
        assert!(ten > 0 && many > ten * 5, "{window}: {ten} then {many}");
        // An event past every window: they close, one group is left.
        p.process(events("[{ ts = 125000, g = 0, s = \"x\" }]"), t0, &mut out);
        assert_eq!(p.state().0, 1, "{window}");
        let one = p.state_bytes();
        assert!(one > 0 && one * 5 < ten, "{window}: {one} after {ten}");
        p.finish(t0, &mut out);
        assert_eq!(p.state_bytes(), 0, "{window}");
        assert_eq!(
            port(&outputs(&d, &mut out), "out").len(),
            if window.starts_with('[') { 222 } else { 111 }
        );
    }
}
