//! Tests of the expression language (table-driven) and of each operator.

use std::time::{Duration, Instant};

use temblor_shim::{RVec, Value};

use super::{
    ERR, Events, OUT, Output, Pipeline, PipelineDef,
    expr::Expr,
    parse::{parse_expr, parse_path},
};

/// A value written in TOML (`v = ...`); TOML has no null, so `null` fields come from `nulls`.
pub(super) fn toml_value(text: &str) -> Value {
    #[derive(serde::Deserialize)]
    struct Doc {
        v: Value,
    }
    toml::from_str::<Doc>(&format!("v = {text}"))
        .unwrap_or_else(|e| panic!("bad test TOML {text}: {e}"))
        .v
}

/// The event the expression cases run against.
pub(super) fn event() -> Value {
    let mut e = toml_value(
        r#"{ a = 1, f = 1.5, s = "Hello", tags = ["x", "y"], nested = { b = { c = true } },
             "doc-type" = "doc", min = -9223372036854775808, e = "" }"#,
    );
    e.as_object_mut().unwrap().insert("nothing", Value::Null);
    e
}

pub(super) fn meta() -> Value {
    toml_value(r#"{ x = 7, seen = true }"#)
}

/// A constant written in the expression language.
fn constant(text: &str) -> Value {
    match parse_expr(text) {
        Ok(Expr::Lit(v)) => v,
        other => panic!("expected value `{text}` is not a constant: {other:?}"),
    }
}

#[test]
fn expressions_evaluate_as_documented() {
    // (expression, expected value written as a constant expression)
    let cases: &[(&str, &str)] = &[
        // literals
        ("1", "1"),
        ("-1", "0 - 1"),
        ("1.5", "3.0 / 2"),
        ("\"a\\\"b\"", "'a\"b'"),
        ("'it\\'s'", "\"it's\""),
        ("'\\u00e9\\n'", "\"é\n\""),
        ("true", "not false"),
        ("null", "null"),
        ("[1, 'a', [true],]", "[1, \"a\", [true]]"),
        ("[]", "[]"),
        ("18446744073709551615", "18446744073709551614 + 1"),
        ("-9223372036854775808", "0 - 9223372036854775807 - 1"),
        // paths; a path that leads nowhere is null
        ("event.a", "1"),
        ("event.nested.b.c", "true"),
        ("event.tags[0]", "'x'"),
        ("event.tags[-1]", "'y'"),
        ("event.tags[2]", "null"),
        ("event.tags[-3]", "null"),
        ("event[\"doc-type\"]", "'doc'"),
        ("event['nested'].b['c']", "true"),
        ("event.missing", "null"),
        ("event.a.b", "null"),
        ("event.s[0]", "null"),
        ("event.nothing", "null"),
        ("meta.x", "7"),
        ("meta.none.deeper", "null"),
        ("exists(event.a)", "true"),
        ("exists(event.missing)", "false"),
        ("exists(event.nothing)", "true"),
        ("exists(event.tags[1])", "true"),
        ("exists(event.tags[2])", "false"),
        ("exists(meta.seen)", "true"),
        ("exists(event)", "true"),
        ("event.nothing == null and event.missing == null", "true"),
        // precedence and associativity
        ("1 + 2 * 3", "7"),
        ("(1 + 2) * 3", "9"),
        ("10 - 2 - 3", "5"),
        ("2 * 3 % 4", "2"),
        ("100 / 10 / 5", "2"),
        ("-2 * 3", "0 - 6"),
        ("- -2", "2"),
        ("-(1 + 2)", "0 - 3"),
        ("true or false and false", "true"),
        ("(true or false) and false", "false"),
        ("not true or true", "true"),
        ("not (true or true)", "false"),
        ("not 1 == 2", "true"),
        ("not not true", "true"),
        ("1 + 1 == 2 and 2 > 1", "true"),
        ("event.a + 1 > 1 and event.s == 'Hello'", "true"),
        ("event.a == 1 or event.a == 2 and false", "true"),
        ("  event.a\n  ==\t1  ", "true"),
        // comparison
        ("1 < 2", "true"),
        ("2 <= 2", "true"),
        ("3 >= 4", "false"),
        ("1.5 > 1", "true"),
        ("18446744073709551615 > 9223372036854775807", "true"),
        ("-1 < 18446744073709551615", "true"),
        ("'a' < 'b'", "true"),
        ("'B' < 'a'", "true"),
        ("1 == 1.0", "true"),
        ("1 != '1'", "true"),
        ("[1, 2] == [1, 2.0]", "true"),
        ("[1, 2] == [2, 1]", "false"),
        ("null == null", "true"),
        ("null == false", "false"),
        ("event.nested == event.nested", "true"),
        ("event.a == 1", "true"),
        // in / not in: arrays (by ==), strings (substring), objects (key)
        ("'x' in event.tags", "true"),
        ("'z' in event.tags", "false"),
        ("'zz' not in event.tags", "true"),
        ("'ell' in event.s", "true"),
        ("'' in event.s", "true"),
        ("'hell' in event.s", "false"),
        ("'a' in event", "true"),
        ("'zz' in event", "false"),
        ("1 in [1.0, 2]", "true"),
        ("event.a in [1, 2, 3]", "true"),
        ("event.missing in [null]", "true"),
        ("[1] in [[1], [2]]", "true"),
        // string functions
        ("contains(event.s, 'ell')", "true"),
        ("contains(event.tags, 'y')", "true"),
        ("contains(event.nested, 'b')", "true"),
        ("starts_with(event.s, 'He')", "true"),
        ("starts_with(event.s, 'he')", "false"),
        ("ends_with(event.s, 'lo')", "true"),
        ("lower(event.s)", "'hello'"),
        ("upper(event.s)", "'HELLO'"),
        ("lower(event.s) == 'hello'", "true"),
        ("len(event.s)", "5"),
        ("len('héllo')", "5"),
        ("len(event.e)", "0"),
        ("len(event.tags)", "2"),
        ("len(event.nested)", "1"),
        ("len(event)", "9"),
        ("upper('é')", "'É'"),
        ("len ( event.s )", "5"),
        // arithmetic: integers stay integers, `/` on integers truncates
        ("'a' + 'b'", "'ab'"),
        ("event.s + '!'", "'Hello!'"),
        ("[1] + [2]", "[1, 2]"),
        ("7 / 2", "3"),
        ("-7 / 2", "0 - 3"),
        ("7 % 3", "1"),
        ("-7 % 3", "0 - 1"),
        ("7 / 2.0", "3.5"),
        ("1 + 1.5", "2.5"),
        ("event.f * 2", "3.0"),
        ("5.5 % 2", "1.5"),
        ("9223372036854775807 + 1", "9223372036854775808"),
        ("event.min - 0", "-9223372036854775808"),
        ("-event.min", "9223372036854775808"),
        ("event.min / -1", "9223372036854775808"),
        ("-9223372036854775808 + 9223372036854775808", "0"),
        ("1e3", "1000.0"),
        ("2.5E-1", "0.25"),
        // and/or look at their right side only when needed
        ("false and event.s > 1", "false"),
        ("true or event.s > 1", "true"),
    ];
    let (e, m) = (event(), meta());
    check_all(cases, |(text, expected)| {
        let expected = constant(expected);
        match parse_expr(text).map(|x| x.eval(&e, &m).map(std::borrow::Cow::into_owned)) {
            Ok(Ok(got)) if got == expected && got.type_name() == expected.type_name() => None,
            other => Some(format!("`{text}`: expected {expected:?}, got {other:?}")),
        }
    });
}

#[test]
fn evaluation_errors_name_the_column_and_the_types() {
    // (expression, column of the operator at fault, part of the message)
    let cases: &[(&str, u32, &str)] = &[
        (
            "event.s > 1",
            9,
            "`>` compares two numbers or two strings, found string and integer",
        ),
        ("event.missing > 1", 15, "found null and integer"),
        (
            "event.s + 1",
            9,
            "`+` needs two numbers, two strings or two arrays",
        ),
        (
            "event.s * 2",
            9,
            "`*` needs two numbers, found string and integer",
        ),
        ("not event.a", 1, "`not` needs a bool, found integer"),
        ("event.a and true", 9, "`and` needs a bool, found integer"),
        ("false or event.s", 7, "`or` needs a bool, found string"),
        (
            "event.a > 0 and event.s > 1",
            25,
            "found string and integer",
        ),
        ("-event.s", 1, "`-` needs a number, found string"),
        (
            "lower(event.a)",
            1,
            "`lower` needs a string as argument 1, found integer",
        ),
        (
            "starts_with(event.s, 1)",
            1,
            "`starts_with` needs a string as argument 2",
        ),
        (
            "len(event.a)",
            1,
            "`len` needs a string, an array, an object or bytes",
        ),
        (
            "1 in event.a",
            3,
            "`in` looks in an array, a string or an object, found integer",
        ),
        (
            "1 in event.s",
            3,
            "`in` looks for a string in a string, found integer",
        ),
        (
            "contains(event.nested, 1)",
            1,
            "`contains` looks for a string in a object",
        ),
        // overflow is an error, never a wrap or a panic
        (
            "event.a * 18446744073709551615 * 2",
            32,
            "integer overflow in `*`",
        ),
        (
            "event.a + 18446744073709551615",
            9,
            "integer overflow in `+`",
        ),
        (
            "event.a - 18446744073709551615",
            9,
            "integer overflow in `-`",
        ),
        ("event.min - 1", 11, "integer overflow in `-`"),
        (
            "-(event.a + 18446744073709551614)",
            1,
            "integer overflow in `-`",
        ),
        ("event.f * 1e308 * 10", 17, "too large for a float"),
        // division by zero, integer and float
        ("event.a / 0", 9, "division by zero"),
        ("event.a % 0", 9, "division by zero"),
        ("event.f / 0.0", 9, "division by zero"),
        ("event.f % 0", 9, "division by zero"),
        // columns count characters
        ("'é' + event.a", 5, "`+` needs"),
    ];
    let (e, m) = (event(), meta());
    check_all(cases, |(text, column, message)| {
        match parse_expr(text).map(|x| x.eval(&e, &m).map(|v| v.into_owned())) {
            Ok(Err(err)) if err.column == *column && err.message.contains(message) => None,
            other => Some(format!(
                "`{text}`: expected error at column {column} containing {message:?}, got {other:?}"
            )),
        }
    });
}

#[test]
fn syntax_errors_name_the_column() {
    // (expression, column, part of the message)
    let cases: &[(&str, usize, &str)] = &[
        ("", 1, "expected a value"),
        ("event.a ==", 11, "expected a value"),
        (
            "event.a = 1",
            9,
            "`=` is not an operator: compare with `==`",
        ),
        ("event.a && true", 9, "use `and` instead of `&&`"),
        ("event.a || true", 9, "use `or` instead of `||`"),
        ("!event.a", 1, "use `not` instead of `!`"),
        ("1 +", 4, "found the end"),
        ("1 + * 2", 5, "found `*`"),
        ("(1 + 2", 7, "expected `)`"),
        (
            "1 2",
            3,
            "expected an operator or the end of the expression, found `2`",
        ),
        ("foo(1)", 1, "unknown function `foo`"),
        ("foo", 1, "unknown name `foo`"),
        ("event.a == error", 12, "unknown name `error`"),
        ("lower(1, 2)", 1, "`lower` takes 1 argument, found 2"),
        ("contains('a')", 1, "`contains` takes 2 arguments, found 1"),
        ("exists(1)", 1, "`exists` takes a path"),
        ("exists(event.a, event.b)", 1, "takes 1 argument"),
        ("len(event.s event.a)", 13, "expected `,` or `)`"),
        ("'abc", 5, "the string has no closing '"),
        ("\"abc", 5, "the string has no closing \""),
        ("'\\q'", 3, "unknown escape"),
        ("'\\u12'", 3, "four hex digits"),
        ("'\\ud800'", 3, "is not a character"),
        ("event.", 7, "a field name after `.`"),
        ("event[x]", 7, "an integer index"),
        ("event.tags[0", 13, "expected `]`"),
        ("event.tags[99999999999999999999]", 12, "too large"),
        ("[1, 2", 6, "expected `,` or `]`"),
        ("[1 2]", 4, "expected `,` or `]`"),
        ("1 < 2 < 3", 7, "comparisons do not chain"),
        ("1 == 2 in [1]", 8, "comparisons do not chain"),
        ("99999999999999999999", 1, "too large for an integer"),
        ("1e", 3, "the exponent's digits"),
        ("1e999", 1, "too large for a float"),
        ("event.a == and", 12, "expected an operand, found `and`"),
        ("not", 4, "found the end"),
        ("eventx", 1, "unknown name `eventx`"),
        // constant sub-expressions are evaluated at start-up
        ("1 / 0", 3, "division by zero"),
        ("event.a > 'a' < 1", 15, "comparisons do not chain"),
        ("'a' < 1", 5, "found string and integer"),
        ("18446744073709551615 + 1", 22, "integer overflow"),
        ("-18446744073709551615", 1, "integer overflow in `-`"),
        ("event.a == lower(1)", 12, "`lower` needs a string"),
        // columns count characters, not bytes
        ("'é' == 1 +", 11, "found the end"),
    ];
    check_all(cases, |(text, column, message)| match parse_expr(text) {
        Err(e) if e.column == *column && e.message.contains(message) => None,
        other => Some(format!(
            "`{text}`: expected a syntax error at column {column} containing {message:?}, \
             got {other:?}"
        )),
    });
}

#[test]
fn paths_parse_on_their_own() {
    let p = parse_path("event.a[\"b-c\"][-1]").unwrap();
    assert_eq!(p.text, "event.a[\"b-c\"][-1]");
    assert_eq!(parse_path(" meta.x ").unwrap().text, "meta.x");
    assert_eq!(parse_path("event").unwrap().segments.len(), 0);
    let e = parse_path("a.b").unwrap_err();
    assert_eq!(e.column, 1);
    assert!(e.message.contains("starts with `event` or `meta`"), "{e}");
    let e = parse_path("event.a b").unwrap_err();
    assert_eq!(e.column, 9, "{e}");
}

// ---- operators -------------------------------------------------------------------------

pub(super) fn def(operators: &str) -> PipelineDef {
    try_def(operators).unwrap_or_else(|e| panic!("{e:?}"))
}

/// Checks every case: `check` says why one fails, if it does; the failures are reported
/// together.
pub(super) fn check_all<C>(
    cases: impl IntoIterator<Item = C>,
    check: impl FnMut(C) -> Option<String>,
) {
    let failures: Vec<String> = cases.into_iter().filter_map(check).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

pub(super) fn try_def(operators: &str) -> Result<PipelineDef, Vec<String>> {
    let list = toml_value(operators);
    let list = list.as_array().expect("operators are an array");
    PipelineDef::compile("p", list).map_err(|e| e.into_iter().map(|e| e.to_string()).collect())
}

pub(super) fn events(text: &str) -> Events {
    let v = toml_value(text);
    Events::local(RVec::from(
        v.as_array().expect("events are an array").to_vec(),
    ))
}

/// What came out, per port name (`out`, `err`, route ports), in order.
pub(super) fn outputs(def: &PipelineDef, out: &mut Output) -> Vec<(String, Vec<Value>)> {
    out.drain()
        .map(|(port, e)| (def.ports()[port].clone(), e.values.to_vec()))
        .collect()
}

pub(super) fn run(def: &PipelineDef, input: &str) -> Vec<(String, Vec<Value>)> {
    let mut p = Pipeline::new(def, Instant::now());
    let mut out = Output::default();
    p.process(events(input), Instant::now(), &mut out);
    outputs(def, &mut out)
}

/// Why each event on `err` failed (its `error` field).
pub(super) fn reasons(outputs: &[(String, Vec<Value>)]) -> Vec<&str> {
    port(outputs, "err")
        .into_iter()
        .map(|e| e.get("error").and_then(Value::as_str).unwrap_or(""))
        .collect()
}

pub(super) fn port<'a>(outputs: &'a [(String, Vec<Value>)], name: &str) -> Vec<&'a Value> {
    outputs
        .iter()
        .filter(|(p, _)| p == name)
        .flat_map(|(_, v)| v)
        .collect()
}

pub(super) fn values(text: &str) -> Vec<Value> {
    toml_value(text).as_array().unwrap().to_vec()
}

#[test]
fn filter_keeps_matching_events_in_order_and_sends_type_errors_to_err() {
    let d = def(r#"[{ filter = 'event.n > 1' }]"#);
    let got = run(
        &d,
        r#"[{ n = 1 }, { n = 2 }, { n = "x" }, { n = 3 }, { m = 0 }]"#,
    );
    assert_eq!(
        port(&got, "out"),
        values("[{ n = 2 }, { n = 3 }]").iter().collect::<Vec<_>>()
    );
    let errors = port(&got, "err");
    assert_eq!(errors.len(), 2, "{got:?}");
    let e = errors[0];
    assert_eq!(e.get("pipeline"), Some(&Value::from("p")));
    assert_eq!(e.get("operator"), Some(&Value::from(0)));
    assert_eq!(e.get("event"), Some(&toml_value(r#"{ n = "x" }"#)));
    let reason = e.get("error").and_then(Value::as_str).unwrap();
    assert!(
        reason.starts_with("filter: column 9: `>` compares two numbers or two strings"),
        "{reason}"
    );
    assert!(
        errors[1]
            .get("error")
            .and_then(Value::as_str)
            .unwrap()
            .contains("found null"),
        "{errors:?}"
    );
}

#[test]
fn a_filter_that_gives_no_bool_is_an_error_per_event() {
    let d = def(r#"[{ filter = 'event.n' }]"#);
    let got = run(&d, r#"[{ n = true }, { n = 1 }]"#);
    assert_eq!(port(&got, "out").len(), 1);
    let err = reasons(&got);
    assert!(
        err[0].contains("the expression gave an integer, not a bool"),
        "{err:?}"
    );
}

#[test]
fn set_writes_literals_expressions_nested_paths_and_meta() {
    let d = def(r#"[
        { set = { "event.b" = 'event.a * 2', "event.x.y" = 'upper(event.s)', "event.lit" = [1, "two"],
                  "event.text" = '"quoted"', "event.t" = { k = 1 }, "meta.seen" = true, "event.tags[-1]" = 'len(event.tags)' } },
        { filter = 'meta.seen and exists(event.x.y)' },
        { set = { "event.from_meta" = 'meta.seen' } },
    ]"#);
    let got = run(&d, r#"[{ a = 2, s = "hi", tags = ["a", "b"] }]"#);
    let out = port(&got, "out");
    assert_eq!(
        out,
        values(
            r#"[{ a = 2, s = "hi", tags = ["a", 2], b = 4, x = { y = "HI" }, lit = [1, "two"],
                  text = "quoted", t = { k = 1 }, from_meta = true }]"#
        )
        .iter()
        .collect::<Vec<_>>()
    );
}

#[test]
fn set_through_a_non_object_or_out_of_range_is_an_error() {
    let d = def(r#"[{ set = { "event.s.x" = 1 } }, { set = { "event.tags[5]" = 1 } }]"#);
    let got = run(
        &d,
        r#"[{ s = "str" }, { s = {}, tags = [] }, { tags = [0, 1, 2, 3, 4, 5] }]"#,
    );
    let err = port(&got, "err");
    assert_eq!(err.len(), 2, "{got:?}");
    assert_eq!(
        port(&got, "out"),
        values("[{ tags = [0, 1, 2, 3, 4, 1], s = { x = 1 } }]")
            .iter()
            .collect::<Vec<_>>()
    );
    let reason = |i: usize| {
        err[i]
            .get("error")
            .and_then(Value::as_str)
            .unwrap()
            .to_owned()
    };
    assert!(
        reason(0).contains("cannot set event.s.x: event.s is a string, not an object"),
        "{}",
        reason(0)
    );
    assert_eq!(err[0].get("operator"), Some(&Value::from(0)));
    assert!(
        reason(1).contains("index 5 is out of range"),
        "{}",
        reason(1)
    );
    assert_eq!(err[1].get("operator"), Some(&Value::from(1)));
    // A null (or missing) object on the way becomes one.
    let d = def(r#"[{ set = { "event.a.b" = 1 } }]"#);
    let got = run(&d, r#"[{}]"#);
    assert_eq!(
        port(&got, "out"),
        values("[{ a = { b = 1 } }]").iter().collect::<Vec<_>>()
    );
}

#[test]
fn remove_and_rename_change_events_in_place() {
    let d = def(
        r#"[{ remove = ["event.a", "event.tags[0]", "event.missing.deep"] },
            { rename = { "event.b" = "event.c.d", "event.nope" = "event.x" } }]"#,
    );
    let got = run(&d, r#"[{ a = 1, b = 2, tags = ["x", "y"], keep = true }]"#);
    assert_eq!(
        port(&got, "out"),
        values(r#"[{ tags = ["y"], keep = true, c = { d = 2 } }]"#)
            .iter()
            .collect::<Vec<_>>()
    );
    // A failed rename leaves the event as it was and sends it to err.
    let d = def(r#"[{ rename = { "event.b" = "event.s.x" } }]"#);
    let got = run(&d, r#"[{ b = 2, s = "str" }]"#);
    let err = port(&got, "err");
    assert_eq!(
        err[0].get("event"),
        Some(&toml_value(r#"{ b = 2, s = "str" }"#))
    );
}

#[test]
fn route_sends_each_event_to_the_first_matching_port_and_the_rest_to_default() {
    let d = def(
        r#"[{ route = { "big" = 'event.n > 10', "even" = 'event.n % 2 == 0' } },
            { set = { "event.after" = true } }]"#,
    );
    assert_eq!(d.ports(), ["out", "err", "big", "even"]);
    let got = run(
        &d,
        r#"[{ n = 1 }, { n = 12 }, { n = 4 }, { n = 13 }, { n = "x" }, { n = 3 }]"#,
    );
    assert_eq!(
        port(&got, "big"),
        values("[{ n = 12 }, { n = 13 }]")
            .iter()
            .collect::<Vec<_>>()
    );
    assert_eq!(
        port(&got, "even"),
        values("[{ n = 4 }]").iter().collect::<Vec<_>>()
    );
    // Events routed to `out` go on through the next operators; the others left the pipeline.
    assert_eq!(
        port(&got, "out"),
        values("[{ n = 1, after = true }, { n = 3, after = true }]")
            .iter()
            .collect::<Vec<_>>()
    );
    let err = reasons(&got);
    assert_eq!(err.len(), 1);
    assert!(
        err[0].starts_with("route: port 'big': column 9: `>` compares"),
        "{err:?}"
    );
}

#[test]
fn route_default_can_name_a_port_and_meta_travels_with_events() {
    let d = def(r#"[{ set = { "meta.n" = 'event.n' } },
            { route = { "out" = 'meta.n == 1' }, default = "rest" }]"#);
    assert_eq!(d.ports(), ["out", "err", "rest"]);
    let mut p = Pipeline::new(&d, Instant::now());
    let mut out = Output::default();
    p.process(
        events("[{ n = 1 }, { n = 2 }, { n = 3 }]"),
        Instant::now(),
        &mut out,
    );
    let got: Vec<(usize, Vec<Value>, Vec<Value>)> = out
        .drain()
        .map(|(port, e)| (port, e.values.to_vec(), e.meta.to_vec()))
        .collect();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(
        got[0].0, 2,
        "the rest port comes first (the route produced it)"
    );
    assert_eq!(got[0].1, values("[{ n = 2 }, { n = 3 }]"));
    assert_eq!(got[0].2, values("[{ n = 2 }, { n = 3 }]"));
    assert_eq!(got[1].0, OUT);
    assert_eq!(got[1].2, values("[{ n = 1 }]"));
}

#[test]
fn batch_groups_by_count_and_flushes_on_timeout_and_at_the_end() {
    let d = def(
        r#"[{ batch = { count = 2, timeout_ms = 100 } }, { set = { "event[0].first" = true } }]"#,
    );
    let t0 = Instant::now();
    let mut p = Pipeline::new(&d, t0);
    let mut out = Output::default();
    p.process(events("[{ n = 1 }, { n = 2 }, { n = 3 }]"), t0, &mut out);
    let got = outputs(&d, &mut out);
    assert_eq!(
        port(&got, "out"),
        values("[[{ n = 1, first = true }, { n = 2 }]]")
            .iter()
            .collect::<Vec<_>>(),
        "a full batch goes on through the next operator"
    );
    assert_eq!(p.deadline(), Some(t0 + Duration::from_millis(100)));
    p.tick(t0 + Duration::from_millis(99), &mut out);
    assert!(outputs(&d, &mut out).is_empty(), "not yet");
    p.tick(t0 + Duration::from_millis(100), &mut out);
    assert_eq!(
        port(&outputs(&d, &mut out), "out"),
        values("[[{ n = 3, first = true }]]")
            .iter()
            .collect::<Vec<_>>()
    );
    assert_eq!(p.deadline(), None);
    // Without a timeout, what is held waits for the count or the end of the input.
    let d = def(r#"[{ batch = { count = 10 } }]"#);
    let mut p = Pipeline::new(&d, t0);
    p.process(events("[1, 2, 3]"), t0, &mut out);
    assert_eq!(p.deadline(), None);
    assert!(outputs(&d, &mut out).is_empty());
    p.finish(t0, &mut out);
    assert_eq!(
        port(&outputs(&d, &mut out), "out"),
        values("[[1, 2, 3]]").iter().collect::<Vec<_>>()
    );
}

#[test]
fn count_emits_counts_per_value_at_the_end_of_each_window() {
    let d = def(r#"[{ count = { by = "event.app", window_s = 10 } }]"#);
    let t0 = Instant::now();
    let s = Duration::from_secs;
    let mut p = Pipeline::new(&d, t0);
    let mut out = Output::default();
    p.process(
        events(r#"[{ app = "b" }, { app = "a" }, { app = "b" }, {}, { app = 1 }]"#),
        t0 + s(1),
        &mut out,
    );
    p.process(
        events(r#"[{ app = "a" }, { app = 1.0 }]"#),
        t0 + s(5),
        &mut out,
    );
    assert!(
        outputs(&d, &mut out).is_empty(),
        "counted events are consumed"
    );
    assert_eq!(p.deadline(), Some(t0 + s(10)));
    p.tick(t0 + s(9), &mut out);
    assert!(outputs(&d, &mut out).is_empty());
    p.tick(t0 + s(10), &mut out);
    let got = outputs(&d, &mut out);
    let counts: Vec<(Value, Value)> = port(&got, "out")
        .iter()
        .map(|c| {
            (
                c.get("value").cloned().unwrap(),
                c.get("count").cloned().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        counts,
        [
            (Value::from("b"), Value::from(2)),
            (Value::from("a"), Value::from(2)),
            (Value::Null, Value::from(1)),
            (Value::from(1), Value::from(2)),
        ],
        "first seen first; a missing field counts as null; 1 and 1.0 are one value"
    );
    let first = port(&got, "out")[0];
    assert_eq!(first.get("by"), Some(&Value::from("event.app")));
    assert_eq!(first.get("window_s"), Some(&Value::from(10)));
    assert!(
        first
            .get("window_start_ms")
            .and_then(Value::as_u64)
            .is_some_and(|ms| ms > 0)
    );
    // The next window: only what came after; nothing is held, so no deadline until an event.
    assert_eq!(p.deadline(), None);
    p.process(events(r#"[{ app = "c" }]"#), t0 + s(25), &mut out);
    assert_eq!(
        p.deadline(),
        Some(t0 + s(30)),
        "windows stay aligned to the start"
    );
    // An event after the window's end first closes it.
    p.process(events(r#"[{ app = "d" }]"#), t0 + s(31), &mut out);
    let got = outputs(&d, &mut out);
    assert_eq!(port(&got, "out").len(), 1);
    assert_eq!(port(&got, "out")[0].get("value"), Some(&Value::from("c")));
    // At the end of the input the open window is flushed.
    p.finish(t0 + s(32), &mut out);
    let got = outputs(&d, &mut out);
    assert_eq!(port(&got, "out")[0].get("value"), Some(&Value::from("d")));
}

#[test]
fn count_without_by_counts_everything_and_later_operators_see_the_counts() {
    let d = def(r#"[{ count = { window_s = 0.5 } }, { filter = 'event.count > 2' }]"#);
    let t0 = Instant::now();
    let mut p = Pipeline::new(&d, t0);
    let mut out = Output::default();
    p.process(events("[1, 2, 3]"), t0, &mut out);
    p.finish(t0, &mut out);
    let got = outputs(&d, &mut out);
    let out_events = port(&got, "out");
    assert_eq!(out_events.len(), 1);
    assert_eq!(out_events[0].get("count"), Some(&Value::from(3)));
    assert_eq!(out_events[0].get("value"), None);
    let d = def(r#"[{ count = { window_s = 1 } }, { filter = 'event.count > 2' }]"#);
    let mut p = Pipeline::new(&d, t0);
    p.process(events("[1, 2]"), t0, &mut out);
    p.finish(t0, &mut out);
    assert!(
        outputs(&d, &mut out).is_empty(),
        "the count of 2 was filtered out"
    );
}

#[test]
fn no_operators_pass_batches_through_and_errors_come_last() {
    let d = def("[]");
    assert!(d.is_empty());
    let got = run(&d, "[1, 2]");
    assert_eq!(got, [("out".to_owned(), values("[1, 2]"))]);
    let d = def(r#"[{ filter = 'event > 1' }]"#);
    let got = run(&d, r#"[3, "x", 1]"#);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].0, "out");
    assert_eq!(got[1].0, "err");
    assert_eq!(d.port("err"), Some(ERR));
}

#[test]
fn bad_operators_are_reported_each_with_its_index() {
    let cases: &[(&str, &str)] = &[
        (r#"["x"]"#, "operators[0]: an operator is a table"),
        (
            r#"[{ fliter = 'x' }]"#,
            "operators[0]: no operator in this table (keys: fliter)",
        ),
        (
            r#"[{ filter = 'true', set = {} }]"#,
            "operators[0] (filter): one operator per table",
        ),
        (
            r#"[{ filter = 'true', default = "x" }]"#,
            "(filter): unknown key `default`",
        ),
        (
            r#"[{ filter = 'event.a ==' }]"#,
            "operators[0] (filter): column 11: expected a value",
        ),
        (
            r#"[{ filter = 1 }]"#,
            "a filter expression must be a string, found integer",
        ),
        (r#"[{ filter = '1 + 1' }]"#, "is always 2, not a bool"),
        (r#"[{ set = {} }]"#, "(set): the table is empty"),
        (
            r#"[{ set = { "a" = 1 } }]"#,
            "path \"a\": column 1: a path starts with `event` or `meta`",
        ),
        (
            r#"[{ set = { "event.a" = 'event.b +' } }]"#,
            "(set): column 10: expected a value",
        ),
        (
            r#"[{ remove = ["event"] }]"#,
            "cannot remove the event itself",
        ),
        (r#"[{ remove = [1] }]"#, "a path to remove must be a string"),
        (
            r#"[{ rename = { "event.a" = "event.a.b" } }]"#,
            "one is inside the other",
        ),
        (
            r#"[{ rename = { "event.a" = 1 } }]"#,
            "the new path must be a string",
        ),
        (
            r#"[{ route = { "err" = 'true' } }]"#,
            "'err' is the error port",
        ),
        (
            r#"[{ route = { "a/b" = 'true' } }]"#,
            "must be non-empty and without '/'",
        ),
        (
            r#"[{ route = { "x" = 'event.' } }]"#,
            "(route): port 'x': column 7",
        ),
        (
            r#"[{ route = { "x" = 'true' }, default = 3 }]"#,
            "`default` must be a string",
        ),
        (
            r#"[{ batch = { count = 0 } }]"#,
            "`count` must be an integer of at least 1",
        ),
        (
            r#"[{ batch = { count = 2, timeout = 5 } }]"#,
            "unknown key `timeout`",
        ),
        (
            r#"[{ batch = { count = 2, timeout_ms = -5 } }]"#,
            "`timeout_ms` must be a non-negative integer",
        ),
        (
            r#"[{ count = { by = "event.a" } }]"#,
            "`window_s` (seconds, above 0) is required",
        ),
        (
            r#"[{ count = { by = "event.a", window_s = 0 } }]"#,
            "must be a number of seconds above 0",
        ),
        (r#"[{ count = { by = "x", window_s = 1 } }]"#, "path \"x\""),
    ];
    check_all(cases, |(ops, message)| match try_def(ops) {
        Err(e)
            if e.len() == 1
                && e[0].starts_with("pipeline 'p' operators[0]")
                && e[0].contains(message) =>
        {
            None
        }
        other => Some(format!("{ops}: expected {message:?}, got {other:?}")),
    });
    // Every bad operator is reported, not only the first.
    let e = try_def(r#"[{ filter = 'true' }, { filter = '(' }, { nope = 1 }]"#).unwrap_err();
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(
        e[0].starts_with("pipeline 'p' operators[1] (filter): column 2"),
        "{e:?}"
    );
    assert!(e[1].starts_with("pipeline 'p' operators[2]:"), "{e:?}");
}

#[test]
fn route_ports_are_collected_across_operators_in_order() {
    let d = def(r#"[{ route = { "a" = 'event == 1', "b" = 'event == 2' } },
            { route = { "b" = 'event == 3', "c" = 'event == 4' }, default = "d" }]"#);
    assert_eq!(d.ports(), ["out", "err", "a", "b", "c", "d"]);
    let got = run(&d, "[1, 2, 3, 4, 5]");
    assert_eq!(port(&got, "b"), [&Value::from(2), &Value::from(3)]);
    assert_eq!(port(&got, "d"), [&Value::from(5)]);
    assert!(port(&got, "out").is_empty());
}
