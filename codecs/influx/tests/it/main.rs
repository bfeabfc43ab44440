//! Drives the `influx` codec through its ABI object, as the engine does.

use temblor_harness::codec::{decode, decode_data_set, encode};
use temblor_shim::{Frames, Object, Value};

temblor_harness::codec_tests!(
    codec_influx,
    "influx",
    &[],
    &[
        b"weather,location=us-midwest temperature=82 1465839830100400200",
        br#"wea\ ther,loc\,a=us\=west t=82i,u=7u,b=TRUE,s="too \"hot\" \\ x" -1"#,
        b"cpu usage=0.5",
        br#"m s="too hot\cold" 1465839830100400202"#,
    ],
);

/// Whether a point's value has the right shape.
type Shape = fn(&Value) -> bool;

fn field<'a>(event: &'a Value, key: &str) -> Option<&'a Value> {
    event.get("fields")?.get(key)
}

#[test]
fn the_data_set_decodes_and_round_trips() {
    let mut c = codec();
    let (lines, events) = decode_data_set(&mut c, "data.influx.xz", 108);
    // Every point has a measurement, tags, at least one field and a timestamp.
    let shapes: [(&str, Shape); 4] = [
        ("measurement", |v| v.as_str().is_some()),
        ("tags", |v| v.as_object().is_some()),
        ("fields", |v| v.as_object().is_some_and(|f| !f.is_empty())),
        ("timestamp", |v| v.as_i64().is_some()),
    ];
    for event in &events {
        for (key, shape) in shapes {
            assert!(event.get(key).is_some_and(shape), "{key}: {event}");
        }
    }

    // The edge cases decode as InfluxDB reads them (the data set repeats 27 lines 4 times).
    assert_eq!(field(&events[0], "too_hot"), Some(&Value::Bool(true)));
    assert_eq!(field(&events[5], "too_hot"), Some(&Value::Bool(false)));
    assert_eq!(
        events[9].get("measurement"),
        Some(&Value::from("weacrther"))
    );
    assert!(matches!(field(&events[10], "temperature"), Some(Value::F64(f)) if *f == 82.0));
    assert_eq!(
        events[11].get("tags"),
        Some(&Value::Object(
            [
                ("location", Value::from("us-midwest")),
                ("season", Value::from("summer"))
            ]
            .into_iter()
            .collect()
        ))
    );
    assert_eq!(events[12].get("tags"), Some(&Value::Object(Object::new())));
    assert!(matches!(
        field(&events[13], "temperature_i"),
        Some(Value::I64(82))
    ));
    for (i, text) in [
        (14, "too warm"),
        (20, "too\"hot\""),
        (21, "too hot/cold"),
        (22, r"too hot\cold"),
        (23, r"too hot\cold"),
        (24, r"too hot\\cold"),
        (25, r"too hot\\cold"),
        (26, r"too hot\\\cold"),
    ] {
        let want = Value::from(text);
        assert_eq!(
            field(&events[i], "temperature_str"),
            Some(&want),
            "line {i}"
        );
    }
    assert_eq!(
        events[15].get("tags").and_then(|t| t.get("location")),
        Some(&Value::from("us,midwest"))
    );
    assert!(field(&events[16], "temp=rature").is_some());
    assert_eq!(
        events[17].get("tags").and_then(|t| t.get("location place")),
        Some(&Value::from("us-midwest"))
    );
    assert_eq!(
        events[18].get("measurement"),
        Some(&Value::from("wea,ther"))
    );
    assert_eq!(
        events[19].get("measurement"),
        Some(&Value::from("wea ther"))
    );
    assert_eq!(
        events[26].get("timestamp"),
        Some(&Value::I64(1_465_839_830_100_400_206))
    );
    assert_eq!(events[27], events[0]);

    // decode(encode(decode(line))) == decode(line), for every line.
    let encoded = temblor_harness::codec::round_trips(&mut c, &events);
    assert_eq!(encoded.len(), 108);
    // And what is encoded is stable: decoding it and encoding again gives the same bytes.
    let again = temblor_harness::codec::decode(&mut c, &encoded).0;
    assert_eq!(encode(&mut c, &again), encoded);
    // Lines already in the canonical form come back byte for byte.
    let written: Vec<&[u8]> = encoded.iter().collect();
    assert_eq!(
        written[13],
        b"weather temperature_i=82i 1465839830100400200"
    );
    assert_eq!(
        written[18],
        br"wea\,ther,location=us-midwest temperature=82.0 1465839830100400200"
    );
    assert_eq!(written[20], lines[20].as_slice());
    assert_eq!(
        written[22],
        &br#"weather,location=us-midwest temperature_str="too hot\\cold" 1465839830100400202"#[..]
    );
}

#[test]
fn comments_and_blank_lines_are_skipped() {
    let mut c = codec();
    let frames: Frames = [&b"# header"[..], b"", b"   ", b"cpu v=1i", b"m f=x"]
        .into_iter()
        .collect();
    let (events, errors) = temblor_harness::codec::decode_all(&mut c, &frames);
    assert_eq!(events.len(), 1);
    let reasons: Vec<(u32, bool)> = errors.iter().map(|e| (e.index, e.is_skipped())).collect();
    assert_eq!(
        reasons,
        [(0, true), (1, true), (2, true), (4, false)],
        "{errors:?}"
    );
    // As the engine sees it: one event and one error, nothing for the three skipped frames.
    let (events, errors) = decode(&mut c, &frames);
    assert_eq!(events.len(), 1);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].reason.as_str(), "bad field value \"x\" at byte 4");
}

#[test]
fn never_panics_on_cut_or_mangled_lines() {
    let mut c = codec();
    let lines = temblor_harness::data_lines("data.influx.xz");
    let mut garbage = Vec::new();
    for line in lines.iter().take(27) {
        for cut in 0..line.len() {
            garbage.push(line[..cut].to_vec());
            garbage.push(line[cut..].to_vec());
        }
        for i in 0..line.len() {
            for b in [b'\\', b'"', b',', b'=', b' ', 0xff] {
                let mut mangled = line.clone();
                mangled[i] = b;
                garbage.push(mangled);
            }
        }
    }
    let frames: Frames = garbage.iter().map(Vec::as_slice).collect();
    let (events, errors) = temblor_harness::codec::decode_all(&mut c, &frames);
    assert_eq!(events.len() + errors.len(), garbage.len());
    assert!(!events.is_empty() && !errors.is_empty());
    // Whatever decoded round-trips.
    temblor_harness::codec::round_trips(&mut c, &events);
}
