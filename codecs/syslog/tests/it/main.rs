//! Drives the `syslog` codec through its ABI object with the compliance harness, as the engine
//! does.

use temblor_harness::codec::{decode, encode};
use temblor_shim::{Frames, Value};

temblor_harness::codec_tests!(codec_syslog, "syslog", &[], &SAMPLES);

/// RFC 5424 §6.5's examples (1, 3 and 4 without their BOM: it is not written back), and
/// RFC 3164 §5.4's examples 1 and 4.
const SAMPLES: [&[u8]; 6] = [
    b"<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - 'su root' failed for lonvick on /dev/pts/8",
    b"<165>1 2003-08-24T12:14:15.000003Z 192.0.2.1 myproc 8710 - - %% It's time to make the do-nuts.",
    b"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"1011\"] An application event log entry...",
    b"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"1011\"][examplePriority@32473 class=\"high\"]",
    b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8",
    b"<0>1990 Oct 22 10:52:01 TZ-6 scapegoat.dmz.example.org 10.1.2.3 sched[0]: That's All Folks!",
];

#[test]
fn decodes_a_batch_and_encodes_it_back_as_it_was() {
    let mut c = codec();
    let mut frames: Frames = SAMPLES.into_iter().collect();
    frames.push(b"");
    let (events, errors) = decode(&mut c, &frames);
    assert_eq!(events.len(), SAMPLES.len());
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].index, 6);
    assert_eq!(errors[0].reason, "an empty frame is no syslog message");
    assert_eq!(events[2].get("msgid"), Some(&Value::from("ID47")));
    assert_eq!(events[4].get("appname"), Some(&Value::from("su")));

    // The RFC 5424 ones are written as they were (UTC, no BOM).
    let encoded = encode(&mut c, &events);
    for (i, sample) in SAMPLES.iter().enumerate().take(5) {
        assert_eq!(encoded.get(i), Some(*sample), "sample {i}");
    }
}
