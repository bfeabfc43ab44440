//! Drives the `dogstatsd` codec through its ABI object with the compliance harness, as the
//! engine does.

use temblor_harness::codec::decode_data_set;
use temblor_shim::Value;

temblor_harness::codec_tests!(
    codec_dogstatsd,
    "dogstatsd",
    &[],
    &[
        b"dog:111:222:333:4.44|g|@0.5|#foo:bar,fizz:buzz|c:123abc",
        b"page.views:15|c|#env:dev|T1656581400",
        b"users:alice|s",
        b"_e{21,36}:An exception occurred|Cannot parse CSV file from 10.0.0.17|t:warning|#err_type:bad_file",
        b"_sc|Redis connection|2|#env:dev|m:Redis connection timed out after 10s",
    ],
);

/// Tremor's statsd data set is DogStatsD too (plain metrics): every line decodes, one value
/// each, and encodes back to an equal event.
#[test]
fn the_statsd_data_set_decodes_and_round_trips() {
    let mut c = codec();
    let (_, events) = decode_data_set(&mut c, "data.statsd.xz", 8);
    for event in &events {
        let values = event
            .get("metric")
            .and_then(|m| m.get("values"))
            .and_then(Value::as_array);
        assert_eq!(values.map(<[Value]>::len), Some(1), "{event}");
    }
    temblor_harness::codec::round_trips(&mut c, &events);
}
