//! Drives the `yaml` codec through its ABI object, as the engine does.

use temblor_harness::codec::good_bad_good;
use temblor_shim::Value;

temblor_harness::codec_tests!(
    codec_yaml,
    "yaml",
    &[],
    &[
        b"a: 1\nb: [true, null, x]\nc:\n  d: -2.5\n  e: !!binary AAH/",
        b"- 1\n- 'two'\n- {three: 3}",
        br#""just a \"string\"""#,
        b"18446744073709551615",
        b"base: &b {x: 1}\ncopy: *b\nlit: |\n  two\n  lines\n",
    ],
);

#[test]
fn the_json_data_set_decodes_as_yaml_and_round_trips() {
    let (_, encoded) = temblor_harness::codec::the_json_data_set_round_trips(&mut codec());
    let first = String::from_utf8(encoded.get(0).unwrap().to_vec()).unwrap();
    // Plain scalars wherever they read back the same.
    assert!(
        first.starts_with("---\nabout: Pariatur nulla tempor"),
        "{first}"
    );
    assert!(
        first.contains("\nguid: a95bb929-2567-4066-8023-8bf532665121\n"),
        "{first}"
    );
    assert!(first.contains("\nabool: false\naint: 33\n"), "{first}");
    assert!(first.contains("\ntags:\n  - tag4\n  - tag1\n"), "{first}");
}

#[test]
fn good_bad_good_gives_two_events_and_one_error() {
    let mut c = codec();
    let events = good_bad_good(&mut c, [b"a: 1", b"a: [1", b"[true, x]"], " at byte ");
    assert_eq!(events[0].get("a"), Some(&Value::I64(1)));
    assert_eq!(
        events[1],
        Value::from(vec![Value::Bool(true), Value::from("x")])
    );
}
