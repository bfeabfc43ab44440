//! Compliance checks for codec plugins, and what their tests share: [`compliance`] through the
//! ABI object, the helpers of the unit tests (a codec as a plain [`Codec`]: [`decoded`],
//! [`refused`], [`encoded`], [`encode_refused`], [`exact`], and [`codec_unit_helpers!`] that
//! names them `ok`, `err`, `enc`, `enc_bytes`, `enc_err`, `obj`, `exact` for one codec),
//! [`refuses_config_key`], and [`codec_tests!`](crate::codec_tests), which writes the standard
//! integration tests of a codec crate.
//!
//! [`codec_unit_helpers!`]: crate::codec_unit_helpers

use temblor_shim::{
    Codec, ErrorKind, FrameError, Frames, RVec, Value,
    abi::{CodecBox, PluginKind, PluginModRef, SHIM_INTERFACE_VERSION},
    abi_stable::std_types::{RResult, RSlice, RStr},
};

use crate::with_unknown_key;

/// Builds a codec from `module` with `config`, failing the test with the plugin's message.
///
/// # Panics
/// When the plugin refuses the config.
#[must_use]
pub fn build(module: PluginModRef, config: &Value) -> CodecBox {
    match module.new_codec()(RStr::from_str("compliance"), config) {
        RResult::ROk(codec) => codec,
        RResult::RErr(e) => panic!("the codec refused {config}: {e}"),
    }
}

/// Decodes a batch: the events, and the per-frame errors (frames skipped on purpose,
/// [`FrameError::skipped`], are left out, as the engine leaves them out; see
/// [`decode_all`]).
///
/// # Panics
/// When the whole batch fails.
pub fn decode(codec: &mut CodecBox, frames: &Frames) -> (Vec<Value>, Vec<FrameError>) {
    let (events, mut errors) = decode_all(codec, frames);
    errors.retain(|e| !e.is_skipped());
    (events, errors)
}

/// Decodes a batch: the events, and every per-frame error including the skipped frames.
///
/// # Panics
/// When the whole batch fails.
pub fn decode_all(codec: &mut CodecBox, frames: &Frames) -> (Vec<Value>, Vec<FrameError>) {
    let mut events = RVec::new();
    let mut errors = RVec::new();
    if let RResult::RErr(e) = codec.decode(frames, &mut events, &mut errors) {
        panic!("decoding a batch of {} frames failed: {e}", frames.len());
    }
    (events.into_vec(), errors.into_vec())
}

/// Encodes a batch.
///
/// # Panics
/// When encoding fails.
pub fn encode(codec: &mut CodecBox, events: &[Value]) -> Frames {
    let mut frames = Frames::new();
    if let RResult::RErr(e) = codec.encode(RSlice::from_slice(events), &mut frames) {
        panic!("encoding {} events failed: {e}", events.len());
    }
    frames
}

/// Every check, for a codec plugin and frames it must decode (`samples`):
/// - the manifest says codec, with a name and the shim's interface version;
/// - an empty batch gives nothing;
/// - every sample decodes, encodes to one frame per event, and decodes back to equal events;
/// - garbage (random bytes, every sample cut short, invalid UTF-8, empty frames) never makes it
///   panic, and each frame gives either an event or an error with its index (an error with an
///   empty reason is a frame skipped on purpose, [`FrameError::skipped`]);
/// - a batch of many (10 000 frames) gives as many events, in order;
/// - an unknown config key is a config error that names it.
///
/// # Panics
/// When a check fails, with what failed.
pub fn compliance(module: PluginModRef, config: &Value, samples: &[&[u8]]) {
    assert!(!samples.is_empty(), "give the harness at least one sample");
    let manifest = module.manifest()();
    assert_eq!(manifest.kind, PluginKind::Codec, "the manifest says codec");
    assert!(!manifest.name.is_empty(), "the plugin has a name");
    assert_eq!(manifest.shim_interface, SHIM_INTERFACE_VERSION);

    let mut codec = build(module, config);

    // Empty input.
    let (events, errors) = decode(&mut codec, &Frames::new());
    assert!(
        events.is_empty() && errors.is_empty(),
        "an empty batch gives nothing"
    );
    assert!(
        encode(&mut codec, &[]).is_empty(),
        "no events encode to no frames"
    );

    // Round trip.
    let frames: Frames = samples.iter().copied().collect();
    let (events, errors) = decode(&mut codec, &frames);
    assert!(errors.is_empty(), "every sample decodes: {errors:?}");
    assert_eq!(events.len(), samples.len(), "one event per sample");
    let encoded = encode(&mut codec, &events);
    assert_eq!(encoded.len(), events.len(), "one frame per event");
    let (again, errors) = decode(&mut codec, &encoded);
    assert!(errors.is_empty(), "what it encodes decodes: {errors:?}");
    assert_eq!(again, events, "decode(encode(events)) == events");

    // Garbage never panics; every frame is accounted for.
    let mut garbage = Frames::new();
    let mut seed: u32 = 0x9e37_79b9;
    for len in [1_usize, 7, 64, 1000] {
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                seed.to_le_bytes()[0]
            })
            .collect();
        garbage.push(&bytes);
    }
    for sample in samples {
        garbage.push(&sample[..sample.len() / 2]);
        garbage.push(&sample[..sample.len().saturating_sub(1)]);
    }
    garbage.push(b"");
    garbage.push(&[0xff, 0xfe, 0xc3, 0x28, b'"', b'\\']);
    let mut events = RVec::new();
    let mut errors = RVec::new();
    match codec.decode(&garbage, &mut events, &mut errors) {
        RResult::ROk(()) => {
            assert_eq!(
                events.len() + errors.len(),
                garbage.len(),
                "each garbage frame gives an event or an error"
            );
            assert!(
                errors.iter().all(|e| (e.index as usize) < garbage.len()),
                "errors point at a frame: {errors:?}"
            );
            let mut indices: Vec<u32> = errors.iter().map(|e| e.index).collect();
            indices.dedup();
            assert_eq!(indices.len(), errors.len(), "one error per frame at most");
        }
        RResult::RErr(e) => assert_ne!(
            e.kind,
            ErrorKind::Panic,
            "garbage made the codec panic: {e}"
        ),
    }

    // A batch of many, in order.
    let many: Frames = samples.iter().copied().cycle().take(10_000).collect();
    let (events, errors) = decode(&mut codec, &many);
    assert!(errors.is_empty());
    assert_eq!(events.len(), 10_000);
    let first: Vec<Value> = decode(&mut codec, &frames).0;
    for (i, event) in events.iter().enumerate().take(samples.len() * 3) {
        assert_eq!(event, &first[i % samples.len()], "event {i} in order");
    }

    // Unknown config keys are refused, by name.
    match module.new_codec()(RStr::from_str("compliance"), &with_unknown_key(config)) {
        RResult::ROk(_) => panic!("an unknown config key was accepted"),
        RResult::RErr(e) => {
            assert_eq!(e.kind, ErrorKind::Config, "{e}");
            assert!(
                e.message.contains("no_such_key_anywhere"),
                "the key is named: {e}"
            );
        }
    }
}

/// The manifest says codec, named `name`.
///
/// # Panics
/// When it does not.
pub fn manifest_names(module: PluginModRef, name: &str) {
    let manifest = module.manifest()();
    assert_eq!(manifest.name.as_str(), name);
    assert_eq!(manifest.kind, PluginKind::Codec);
}

/// Decodes a data set shipped in `examples/data/` (`file`, one frame a line, `count` of them)
/// in one batch, with no error: its lines and the events.
///
/// # Panics
/// When the file is not there, has another number of lines, or a line does not decode.
pub fn decode_data_set(
    codec: &mut CodecBox,
    file: &str,
    count: usize,
) -> (Vec<Vec<u8>>, Vec<Value>) {
    let lines = crate::data_lines(file);
    assert_eq!(lines.len(), count, "{file}");
    let frames: Frames = lines.iter().map(Vec::as_slice).collect();
    let (events, errors) = decode(codec, &frames);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(events.len(), count, "{file}");
    (lines, events)
}

/// The JSON data set (`data.json.xz`, 100 records) decodes ([`decodes_the_data_set`]) and
/// round trips ([`round_trips`]): its lines and the frames the codec wrote.
///
/// # Panics
/// When it does not.
pub fn the_json_data_set_round_trips(codec: &mut CodecBox) -> (Vec<Vec<u8>>, Frames) {
    let lines = crate::data_lines("data.json.xz");
    assert_eq!(lines.len(), 100);
    let frames: Frames = lines.iter().map(Vec::as_slice).collect();
    let events = decodes_the_data_set(codec, &frames);
    (lines, round_trips(codec, &events))
}

/// Decodes the shipped data set (`examples/data/data.json.xz`, 100 records, in this codec's
/// form: `frames`) and checks what every record holds; the events.
///
/// # Panics
/// When a frame does not decode or a record lacks a field.
pub fn decodes_the_data_set(codec: &mut CodecBox, frames: &Frames) -> Vec<Value> {
    let (events, errors) = decode(codec, frames);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(events.len(), 100);
    for event in &events {
        let object = event.as_object().expect("every record is an object");
        assert!(
            object.get("guid").and_then(Value::as_str).is_some(),
            "{event}"
        );
        assert!(
            object.get("aint").and_then(Value::as_i64).is_some(),
            "{event}"
        );
        assert!(
            matches!(object.get("abool"), Some(Value::Bool(_))),
            "{event}"
        );
        assert!(
            object.get("tags").and_then(Value::as_array).is_some(),
            "{event}"
        );
    }
    assert_eq!(
        events[0].get("guid").and_then(Value::as_str),
        Some("a95bb929-2567-4066-8023-8bf532665121")
    );
    assert_eq!(events[0].get("aint"), Some(&Value::I64(33)));
    events
}

/// Encodes `events` (one frame each) and decodes them back to equal events; the frames.
///
/// # Panics
/// When they do not come back equal.
pub fn round_trips(codec: &mut CodecBox, events: &[Value]) -> Frames {
    let encoded = encode(codec, events);
    assert_eq!(encoded.len(), events.len(), "one frame per event");
    let (again, errors) = decode(codec, &encoded);
    assert!(errors.is_empty(), "what it encodes decodes: {errors:?}");
    assert_eq!(again, events, "decode(encode(events)) == events");
    encoded
}

/// Decodes a good frame, a bad one and a good one: two events, and one error at index 1 whose
/// reason says `reason`; the events.
///
/// # Panics
/// When it is otherwise.
pub fn good_bad_good(codec: &mut CodecBox, frames: [&[u8]; 3], reason: &str) -> Vec<Value> {
    let frames: Frames = frames.into_iter().collect();
    let (events, errors) = decode(codec, &frames);
    assert_eq!(events.len(), 2, "{events:?} {errors:?}");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].index, 1);
    assert!(errors[0].reason.contains(reason), "{}", errors[0].reason);
    events
}

/// The event `frame` decodes to, as [`Codec::decode_one`] gives it.
///
/// # Panics
/// When the frame does not decode, with the reason.
pub fn decoded<C: Codec>(codec: &mut C, frame: &[u8]) -> Value {
    codec
        .decode_one(frame)
        .unwrap_or_else(|e| panic!("{:?}: {e}", String::from_utf8_lossy(frame)))
}

/// Why [`Codec::decode_one`] refuses `frame`.
///
/// # Panics
/// When the frame decodes.
pub fn refused<C: Codec>(codec: &mut C, frame: &[u8]) -> String {
    match codec.decode_one(frame) {
        Ok(v) => panic!("{:?} decoded to {v:?}", String::from_utf8_lossy(frame)),
        Err(e) => e,
    }
}

/// The frame [`Codec::encode_one`] writes for `event`.
///
/// # Panics
/// When the event cannot be encoded.
pub fn encoded<C: Codec>(codec: &mut C, event: &Value) -> Vec<u8> {
    let mut out = RVec::new();
    codec
        .encode_one(event, &mut out)
        .unwrap_or_else(|e| panic!("{event}: {e}"));
    out.into_vec()
}

/// Why [`Codec::encode_one`] refuses `event` (the message of its error).
///
/// # Panics
/// When the event encodes.
pub fn encode_refused<C: Codec>(codec: &mut C, event: &Value) -> String {
    let mut out = RVec::new();
    match codec.encode_one(event, &mut out) {
        Ok(()) => panic!("{event} encoded to {:?}", String::from_utf8_lossy(&out)),
        Err(e) => e.message.into_string(),
    }
}

/// `frame` decodes to `want`, and `want` encodes back to `frame`, byte for byte.
///
/// # Panics
/// When it does not.
pub fn exact<C: Codec>(codec: &mut C, frame: &str, want: &Value) {
    let got = decoded(codec, frame.as_bytes());
    assert_eq!(&got, want, "{frame}");
    assert_eq!(String::from_utf8_lossy(&encoded(codec, &got)), frame);
}

/// Decodes `frames` as one batch with [`Codec::decode`]: the events, and every per-frame error
/// (skipped frames included).
///
/// # Panics
/// When the whole batch fails.
pub fn decode_batch<C: Codec>(codec: &mut C, frames: &[&[u8]]) -> (Vec<Value>, Vec<FrameError>) {
    let frames: Frames = frames.iter().copied().collect();
    let mut events = RVec::new();
    let mut errors = RVec::new();
    if let Err(e) = codec.decode(&frames, &mut events, &mut errors) {
        panic!("decoding a batch of {} frames failed: {e}", frames.len());
    }
    (events.into_vec(), errors.into_vec())
}

/// Encodes `events` as one batch with [`Codec::encode`]: the frames.
///
/// # Panics
/// When the batch fails.
pub fn encode_batch<C: Codec>(codec: &mut C, events: &[Value]) -> Vec<Vec<u8>> {
    let mut frames = Frames::new();
    if let Err(e) = codec.encode(events, &mut frames) {
        panic!("encoding {} events failed: {e}", events.len());
    }
    frames.iter().map(<[u8]>::to_vec).collect()
}

/// The frame index of each error.
#[must_use]
pub fn indexes(errors: &[FrameError]) -> Vec<u32> {
    errors.iter().map(|e| e.index).collect()
}

/// Defines the helpers of a codec's unit tests, each on a codec made by `$codec` (an
/// expression, evaluated at each call: `Influx`, `Json::new()`): `ok(frame) -> Value` and
/// `err(frame) -> String` ([`decoded`], [`refused`]), `enc(event) -> String` (the frame as
/// UTF-8 text), `enc_bytes(event) -> Vec<u8>` ([`encoded`]), `enc_err(event) -> String`
/// ([`encode_refused`]), `obj(pairs) -> Value` (an object) and `exact(frame, want)` ([`exact`]). Invoke it in the `tests` module;
/// the module uses what it needs of them.
#[macro_export]
macro_rules! codec_unit_helpers {
    ($codec:expr) => {
        #[allow(dead_code)]
        fn ok<F: AsRef<[u8]> + ?Sized>(frame: &F) -> ::temblor_shim::Value {
            $crate::codec::decoded(&mut $codec, frame.as_ref())
        }
        #[allow(dead_code)]
        fn err<F: AsRef<[u8]> + ?Sized>(frame: &F) -> String {
            $crate::codec::refused(&mut $codec, frame.as_ref())
        }
        #[allow(dead_code)]
        fn enc(event: &::temblor_shim::Value) -> String {
            String::from_utf8($crate::codec::encoded(&mut $codec, event)).expect("UTF-8")
        }
        #[allow(dead_code)]
        fn enc_bytes(event: &::temblor_shim::Value) -> Vec<u8> {
            $crate::codec::encoded(&mut $codec, event)
        }
        #[allow(dead_code)]
        fn enc_err(event: &::temblor_shim::Value) -> String {
            $crate::codec::encode_refused(&mut $codec, event)
        }
        #[allow(dead_code)]
        fn obj(pairs: &[(&str, ::temblor_shim::Value)]) -> ::temblor_shim::Value {
            $crate::config(pairs)
        }
        #[allow(dead_code)]
        fn exact(frame: &str, want: &::temblor_shim::Value) {
            $crate::codec::exact(&mut $codec, frame, want);
        }
    };
}

/// The codec accepts an empty config and refuses one with `key` (set to `value`): a `Config`
/// error that names the key.
///
/// # Panics
/// When it does not.
pub fn refuses_config_key(module: PluginModRef, key: &str, value: Value) {
    drop(build(module, &crate::config(&[])));
    let config = crate::config(&[(key, value)]);
    // (`CodecBox` is not `Debug`, so no `unwrap_err`.)
    let Err(e) = module.new_codec()(RStr::from_str("t"), &config).into_result() else {
        panic!("the config key {key} was accepted");
    };
    assert_eq!(e.kind, ErrorKind::Config);
    assert!(e.message.contains(&format!("unknown field `{key}`")), "{e}");
}

/// Writes the standard integration tests of a codec crate: `manifest_names_the_codec` (the
/// manifest says codec, named `$name`) and `passes_the_codec_compliance_harness` ([`compliance`]
/// with the config pairs `$config` and the frames `$samples`); and `fn module()` and
/// `fn codec()` (the codec built with `$config`) for the crate's other tests.
///
/// ```text
/// temblor_harness::codec_tests!(codec_json, "json", &[], &[b"{}", b"[1]"]);
/// ```
#[macro_export]
macro_rules! codec_tests {
    ($krate:ident, $name:literal, $config:expr, $samples:expr $(,)?) => {
        #[allow(dead_code)]
        fn module() -> ::temblor_shim::abi::PluginModRef {
            $krate::plugin_module()
        }

        #[allow(dead_code)]
        fn codec() -> ::temblor_shim::abi::CodecBox {
            $crate::codec::build(module(), &$crate::config($config))
        }

        #[test]
        fn manifest_names_the_codec() {
            $crate::codec::manifest_names(module(), $name);
        }

        #[test]
        fn passes_the_codec_compliance_harness() {
            $crate::codec::compliance(module(), &$crate::config($config), $samples);
        }
    };
}
