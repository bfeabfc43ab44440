//! Drives the `csv` codec through its ABI object, as the engine does.

use temblor_harness::{
    codec::{build, decode, encode},
    config,
};
use temblor_shim::{Frames, Value};

// Without a header.
temblor_harness::codec_tests!(
    codec_csv,
    "csv",
    &[],
    &[
        b"a,b,c",
        b"1,\"two, three\",\"say \"\"hi\"\"\"",
        b"\"\"",
        b",,",
        "é,😀,\"multi\nline\"".as_bytes(),
    ],
);

fn strings(items: &[&str]) -> Value {
    Value::from(items.iter().map(|s| Value::from(*s)).collect::<Vec<_>>())
}

fn obj(pairs: &[(&str, &str)]) -> Value {
    Value::Object(pairs.iter().map(|(k, v)| (*k, Value::from(*v))).collect())
}

const FILE: &str =
    "id,name,note\n1,ann,\"likes \"\"csv\"\", commas\"\n2,bob,\n3,\"li, zhi\",é 😀\n";

/// The lines of `FILE`, as the `separate` preprocessor cuts them.
fn lines() -> Frames {
    FILE.lines().map(str::as_bytes).collect()
}

#[test]
fn a_file_without_header_is_arrays_and_writes_back_the_same() {
    let mut c = codec();
    let frames = lines();
    let (events, errors) = decode(&mut c, &frames);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(
        events.as_slice(),
        [
            strings(&["id", "name", "note"]),
            strings(&["1", "ann", "likes \"csv\", commas"]),
            strings(&["2", "bob", ""]),
            strings(&["3", "li, zhi", "é 😀"]),
        ]
    );
    assert_eq!(encode(&mut c, &events), frames);
}

#[test]
fn a_file_with_header_is_objects_and_writes_back_the_same() {
    let header = config(&[("header", Value::Bool(true))]);
    let mut reader = build(module(), &header);
    let frames = lines();
    let (events, errors) = decode(&mut reader, &frames);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(
        events.as_slice(),
        [
            obj(&[
                ("id", "1"),
                ("name", "ann"),
                ("note", "likes \"csv\", commas")
            ]),
            obj(&[("id", "2"), ("name", "bob"), ("note", "")]),
            obj(&[("id", "3"), ("name", "li, zhi"), ("note", "é 😀")]),
        ]
    );
    // Another codec (a sink's) writes the header from the first object, then the rows.
    let mut writer = build(module(), &header);
    assert_eq!(encode(&mut writer, &events), frames);
    // A second batch has no header.
    let more = encode(&mut writer, &events[..1]);
    assert_eq!(more.len(), 1);
    assert_eq!(more.get(0), frames.get(1));
}

#[test]
fn passes_the_codec_compliance_harness_with_explicit_headers() {
    let headers = Value::from(vec![Value::from("x"), Value::from("y")]);
    temblor_harness::codec::compliance(
        module(),
        &config(&[("headers", headers)]),
        &[b"1,2", b"\"a,b\",", b"\"q\"\"\",z"],
    );
}

#[test]
fn passes_the_codec_compliance_harness_with_tabs_and_single_quotes() {
    temblor_harness::codec::compliance(
        module(),
        &config(&[
            ("delimiter", Value::from("\t")),
            ("quote", Value::from("'")),
        ]),
        &[b"a\tb", b"'x\ty'\t'it''s'\t\"", b"''"],
    );
}
