//! Unit tests: the examples of RFC 5424 §6.5 and RFC 3164 §5.4, round trips, errors.

use temblor_shim::{ErrorKind, Object, Value};

use super::*;

/// 2026-12-07T10:00:00Z: RFC 3164 timestamps fall in 2026.
const NOW: i64 = 1_796_637_600 * NANOS_PER_SEC;

fn codec() -> Syslog {
    Syslog { clock: || NOW }
}

fn decode(text: &str) -> Value {
    codec().decode_one(text.as_bytes()).expect("decodes")
}

fn encode(event: &Value) -> String {
    let mut out = RVec::new();
    codec().encode_one(event, &mut out).expect("encodes");
    String::from_utf8(out.into_vec()).expect("UTF-8")
}

fn encode_err(event: &Value) -> PluginError {
    let mut out = RVec::new();
    codec().encode_one(event, &mut out).expect_err("refused")
}

fn obj(fields: &[(&str, Value)]) -> Value {
    let mut o = Object::new();
    for (k, v) in fields {
        o.push((*k).into(), v.clone());
    }
    Value::Object(o)
}

fn s(text: &str) -> Value {
    Value::from(text)
}

fn params(pairs: &[(&str, &str)]) -> Value {
    Value::Array(pairs.iter().map(|(k, v)| obj(&[(k, s(v))])).collect())
}

/// Decodes, checks field by field (in order), and checks the event round-trips.
fn check(text: &str, expected: &[(&str, Value)]) {
    let event = decode(text);
    let want = obj(expected);
    let got: Vec<_> = event
        .as_object()
        .expect("object")
        .iter()
        .map(|(k, _)| k.to_owned())
        .collect();
    let keys: Vec<_> = expected.iter().map(|(k, _)| (*k).to_owned()).collect();
    assert_eq!(got, keys, "{text}");
    assert_eq!(event, want, "{text}");
    let again = decode(&encode(&event));
    assert_eq!(again, event, "round trip of {text}: {}", encode(&event));
}

#[test]
fn rfc5424_example_1_no_structured_data() {
    check(
        "<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - \u{feff}'su root' failed for lonvick on /dev/pts/8",
        &[
            ("protocol", s("RFC5424")),
            ("protocol_version", Value::I64(1)),
            ("facility", s("auth")),
            ("severity", s("crit")),
            ("timestamp", Value::I64(1_065_910_455_003_000_000)),
            ("hostname", s("mymachine.example.com")),
            ("appname", s("su")),
            ("msgid", s("ID47")),
            ("msg", s("'su root' failed for lonvick on /dev/pts/8")),
        ],
    );
}

#[test]
fn rfc5424_example_2_offset_and_microseconds() {
    check(
        "<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %% It's time to make the do-nuts.",
        &[
            ("protocol", s("RFC5424")),
            ("protocol_version", Value::I64(1)),
            ("facility", s("local4")),
            ("severity", s("notice")),
            ("timestamp", Value::I64(1_061_727_255_000_003_000)),
            ("hostname", s("192.0.2.1")),
            ("appname", s("myproc")),
            ("procid", s("8710")),
            ("msg", s("%% It's time to make the do-nuts.")),
        ],
    );
    // Written back in UTC, with six digits.
    assert_eq!(
        encode(&decode(
            "<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - x"
        )),
        "<165>1 2003-08-24T12:14:15.000003Z 192.0.2.1 myproc 8710 - - x"
    );
}

#[test]
fn rfc5424_examples_3_and_4_structured_data() {
    let sd = obj(&[(
        "exampleSDID@32473",
        params(&[
            ("iut", "3"),
            ("eventSource", "Application"),
            ("eventID", "1011"),
        ]),
    )]);
    let head = [
        ("protocol", s("RFC5424")),
        ("protocol_version", Value::I64(1)),
        ("facility", s("local4")),
        ("severity", s("notice")),
        ("timestamp", Value::I64(1_065_910_455_003_000_000)),
        ("hostname", s("mymachine.example.com")),
        ("appname", s("evntslog")),
        ("msgid", s("ID47")),
    ];
    let mut three = head.to_vec();
    three.push(("structured_data", sd));
    three.push(("msg", s("An application event log entry...")));
    check(
        "<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"1011\"] \u{feff}An application event log entry...",
        &three,
    );
    let mut four = head.to_vec();
    let mut both = Object::new();
    both.push(
        "exampleSDID@32473".into(),
        params(&[
            ("iut", "3"),
            ("eventSource", "Application"),
            ("eventID", "1011"),
        ]),
    );
    both.push("examplePriority@32473".into(), params(&[("class", "high")]));
    four.push(("structured_data", Value::Object(both)));
    let text = "<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"1011\"][examplePriority@32473 class=\"high\"]";
    check(text, &four);
    assert_eq!(encode(&decode(text)), text, "written as the RFC writes it");
}

#[test]
fn rfc5424_param_values_escape_quote_backslash_bracket() {
    let text = r#"<13>1 - - - - - [a x="q\"b\\s\]e\n"] m"#;
    let event = decode(text);
    let sd = event.get("structured_data").expect("sd");
    assert_eq!(sd, &obj(&[("a", params(&[("x", "q\"b\\s]e\\n")]))]));
    assert_eq!(encode(&event), r#"<13>1 - - - - - [a x="q\"b\\s\]e\\n"] m"#);
    assert_eq!(decode(&encode(&event)), event);
}

#[test]
fn rfc5424_all_nil() {
    check(
        "<191>1 - - - - - -",
        &[
            ("protocol", s("RFC5424")),
            ("protocol_version", Value::I64(1)),
            ("facility", s("local7")),
            ("severity", s("debug")),
        ],
    );
    // Tremor's example: 2021-03-18T20:30:00.123Z.
    assert_eq!(
        decode("<191>1 2021-03-18T20:30:00.123Z - - - - - message").get("timestamp"),
        Some(&Value::I64(1_616_099_400_123_000_000))
    );
}

#[test]
fn rfc3164_example_1() {
    check(
        "<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8",
        &[
            ("protocol", s("RFC3164")),
            ("facility", s("auth")),
            ("severity", s("crit")),
            ("timestamp", Value::I64(1_791_756_855 * NANOS_PER_SEC)),
            ("hostname", s("mymachine")),
            ("appname", s("su")),
            ("msg", s("'su root' failed for lonvick on /dev/pts/8")),
        ],
    );
    let text = "<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8";
    assert_eq!(encode(&decode(text)), text);
}

#[test]
fn rfc3164_example_2_no_pri_is_user_notice() {
    check(
        "Use the BFG!",
        &[
            ("protocol", s("RFC3164")),
            ("facility", s("user")),
            ("severity", s("notice")),
            ("msg", s("Use the BFG!")),
        ],
    );
    assert_eq!(encode(&decode("Use the BFG!")), "<13>Use the BFG!");
}

#[test]
fn rfc3164_example_3_a_word_without_colon_is_no_tag() {
    // "CST" stands where the hostname is; "1987" is not followed by `:` or `[`, so no appname.
    check(
        "<165>Aug 24 05:34:00 CST 1987 mymachine myproc[10]: %% It's time to make the do-nuts.  %%  Ingredients: Mix=OK, Jane=Busy, Sam=Unsure, Oven=Broken, Coffee=Yes",
        &[
            ("protocol", s("RFC3164")),
            ("facility", s("local4")),
            ("severity", s("notice")),
            ("timestamp", Value::I64(1_787_549_640 * NANOS_PER_SEC)),
            ("hostname", s("CST")),
            (
                "msg",
                s(
                    "1987 mymachine myproc[10]: %% It's time to make the do-nuts.  %%  Ingredients: Mix=OK, Jane=Busy, Sam=Unsure, Oven=Broken, Coffee=Yes",
                ),
            ),
        ],
    );
    check(
        "<165>Aug 24 05:34:00 mymachine myproc[10]: %% It's time",
        &[
            ("protocol", s("RFC3164")),
            ("facility", s("local4")),
            ("severity", s("notice")),
            ("timestamp", Value::I64(1_787_549_640 * NANOS_PER_SEC)),
            ("hostname", s("mymachine")),
            ("appname", s("myproc")),
            ("procid", s("10")),
            ("msg", s("%% It's time")),
        ],
    );
}

#[test]
fn rfc3164_example_4_invalid_timestamp_makes_it_all_msg() {
    check(
        "<0>1990 Oct 22 10:52:01 TZ-6 scapegoat.dmz.example.org 10.1.2.3 sched[0]: That's All Folks!",
        &[
            ("protocol", s("RFC3164")),
            ("facility", s("kern")),
            ("severity", s("emerg")),
            (
                "msg",
                s(
                    "1990 Oct 22 10:52:01 TZ-6 scapegoat.dmz.example.org 10.1.2.3 sched[0]: That's All Folks!",
                ),
            ),
        ],
    );
}

#[test]
fn rfc3164_without_hostname_and_with_padded_days() {
    let event = decode("<13>Feb  5 17:32:18 myapp[12]: hi");
    assert_eq!(event.get("hostname"), None);
    assert_eq!(event.get("appname"), Some(&s("myapp")));
    assert_eq!(event.get("procid"), Some(&s("12")));
    assert_eq!(encode(&event), "<13>Feb  5 17:32:18 - myapp[12]: hi");
    assert_eq!(decode("<13>Feb 05 17:32:18 myapp[12]: hi"), event);
}

#[test]
fn rfc3164_a_first_word_with_a_bracket_is_no_hostname() {
    // Found by the fuzzer: "myapp[" was taken for a hostname, which cannot be written back.
    let text = "<13>Feb  6 17:32:18 myapp[ 17:32:i";
    let event = decode(text);
    assert_eq!(event.get("hostname"), None, "{event}");
    assert_eq!(event.get("msg"), Some(&s("myapp[ 17:32:i")), "{event}");
    assert_eq!(decode(&encode(&event)), event);
}

#[test]
fn no_pri_reads_as_if_13_stood_before_it() {
    // Found by the fuzzer: taken for a 3164 msg, it encoded to `<13>2 ...`, which is RFC 5424.
    let text = "2 - - - [a-x 2 - - Oct";
    assert_eq!(decode(text), decode(&format!("<13>{text}")));
    assert_eq!(decode(text).get("protocol"), Some(&s("RFC5424")));
    assert_eq!(decode(&encode(&decode(text))), decode(text));
}

#[test]
fn rfc3164_december_read_in_january_is_last_year() {
    // 2027-01-03.
    let mut january = Syslog {
        clock: || 1_798_934_400 * NANOS_PER_SEC,
    };
    let event = january
        .decode_one(b"<13>Dec 31 23:59:59 h a: m")
        .expect("decodes");
    assert_eq!(
        event.get("timestamp"),
        Some(&Value::I64(1_798_761_599 * NANOS_PER_SEC))
    );
    // February 29th does not exist in 2026: no timestamp, all msg.
    assert_eq!(
        decode("<13>Feb 29 00:00:00 h a: m").get("msg"),
        Some(&s("Feb 29 00:00:00 h a: m"))
    );
}

#[test]
fn malformed_rfc5424_is_read_as_rfc3164() {
    for text in [
        "<13>1 2003-13-11T22:14:15Z h a p m -",
        "<13>1 - h a p m [unclosed",
        "<13>1 - h a p m -x",
        "<13>01 - - - - - -",
    ] {
        let event = decode(text);
        assert_eq!(event.get("protocol"), Some(&s("RFC3164")), "{text}");
        assert_eq!(event.get("msg"), Some(&s(&text[4..])), "{text}");
    }
    assert_eq!(
        decode("<192>x"),
        obj(&[
            ("protocol", s("RFC3164")),
            ("facility", s("user")),
            ("severity", s("notice")),
            ("msg", s("<192>x"))
        ])
    );
}

#[test]
fn empty_and_non_utf8_frames_are_errors() {
    assert_eq!(
        codec().decode_one(b""),
        Err("an empty frame is no syslog message".to_owned())
    );
    assert_eq!(
        codec().decode_one(b"<13>ab\xff"),
        Err("invalid UTF-8 at byte offset 6".to_owned())
    );
}

#[test]
fn encoding_picks_the_protocol_and_fills_defaults() {
    let ts = Value::I64(1_065_910_455_003_000_000);
    assert_eq!(
        encode(&obj(&[("msg", s("hi"))])),
        "<13>1 - - - - - - hi",
        "no protocol: RFC 5424, user.notice"
    );
    assert_eq!(
        encode(&obj(&[
            ("protocol", s("RFC3164")),
            ("facility", Value::I64(4)),
            ("severity", Value::U64(2)),
            ("timestamp", ts.clone()),
            ("hostname", s("h")),
            ("appname", s("a")),
            ("msg", s("m")),
        ])),
        "<34>Oct 11 22:14:15 h a: m"
    );
    assert_eq!(
        encode(&obj(&[
            ("protocol", s("RFC5424")),
            ("protocol_version", Value::I64(2)),
            ("timestamp", Value::I64(1_065_910_455_000_000_001)),
            ("structured_data", obj(&[])),
        ])),
        "<13>2 2003-10-11T22:14:15.000000001Z - - - - -"
    );
    assert_eq!(
        encode(&obj(&[("timestamp", Value::I64(0))])),
        "<13>1 1970-01-01T00:00:00Z - - - - -"
    );
    assert_eq!(
        encode(&obj(&[("msg", s("\u{feff}bom"))])),
        "<13>1 - - - - - - \u{feff}\u{feff}bom",
        "a msg that starts with a BOM keeps it"
    );
}

#[test]
fn encoding_refuses_what_the_format_cannot_carry() {
    for (event, says) in [
        (s("text"), "must be an object, found string"),
        (
            obj(&[("facility", s("lunch"))]),
            "`facility` must be one of kern",
        ),
        (
            obj(&[("severity", Value::I64(8))]),
            "`severity` must be one of",
        ),
        (obj(&[("protocol", s("RFC1"))]), "`protocol` must be"),
        (
            obj(&[("protocol_version", Value::I64(0))]),
            "`protocol_version`",
        ),
        (
            obj(&[("hostname", s("a b"))]),
            "`hostname` must be 1 to 255",
        ),
        (
            obj(&[("msgid", s(&"x".repeat(33)))]),
            "`msgid` must be 1 to 32",
        ),
        (
            obj(&[("appname", Value::I64(1))]),
            "`appname` must be a string",
        ),
        (
            obj(&[("timestamp", s("now"))]),
            "`timestamp` must be nanoseconds",
        ),
        (
            obj(&[("structured_data", s("x"))]),
            "`structured_data` must be an object",
        ),
        (
            obj(&[(
                "structured_data",
                obj(&[("a=b", Value::Array(RVec::new()))]),
            )]),
            "SD-ID \"a=b\"",
        ),
        (
            obj(&[("protocol", s("RFC3164")), ("msgid", s("x"))]),
            "`msgid` cannot be written in RFC 3164",
        ),
        (
            obj(&[("protocol", s("RFC3164")), ("appname", s("a:b"))]),
            "`appname` must not",
        ),
        (
            obj(&[
                ("protocol", s("RFC3164")),
                ("procid", s("1")),
                ("timestamp", Value::I64(0)),
            ]),
            "`procid` needs an `appname`",
        ),
    ] {
        let err = encode_err(&event);
        assert_eq!(err.kind, ErrorKind::Data, "{event}");
        assert!(err.message.contains(says), "{event}: {err}");
    }
}

#[test]
fn civil_dates_convert_both_ways() {
    for days in [-719_468, -1, 0, 59, 365, 10_957, 20_513, 106_751] {
        let (y, m, d) = civil_from_days(days);
        assert_eq!(days_from_civil(y, m, d), days);
    }
    assert_eq!(civil_from_days(0), (1970, 1, 1));
    assert_eq!(civil_from_days(11_016), (2000, 2, 29));
}

#[test]
fn config_must_be_empty() {
    temblor_harness::codec::refuses_config_key(plugin_module(), "rfc", s("5424"));
}
