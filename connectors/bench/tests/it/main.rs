//! Drives the bench connector through its ABI objects, as the engine does.

use std::path::Path;

use temblor_harness::TempDir;
use temblor_shim::{
    ErrorKind, Frames, PluginError, Pull, Value, abi::SourceBox, abi_stable::std_types::RStr,
};

const DATA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../examples/data/data.json.xz"
);

fn config(path: &Path, extra: &[(&str, Value)]) -> Value {
    let mut fields = vec![("path", Value::from(path.to_str().expect("utf-8 path")))];
    fields.extend(extra.iter().cloned());
    Value::Object(fields.into_iter().collect())
}

fn source(config: &Value) -> Result<SourceBox, PluginError> {
    (connector_bench::plugin_module().new_source())(RStr::from("t"), config).into_result()
}

/// Pulls until `Exhausted`; returns every frame, and the frame count of each pull.
fn replay(source: &mut SourceBox) -> (Vec<Vec<u8>>, Vec<usize>) {
    let mut all = Vec::new();
    let mut per_pull = Vec::new();
    let mut frames = Frames::new();
    for _ in 0..100_000 {
        frames.clear();
        let pull = source.pull(&mut frames).into_result().expect("pull");
        per_pull.push(frames.len());
        all.extend(frames.iter().map(<[u8]>::to_vec));
        if pull == Pull::Exhausted {
            // And it stays exhausted.
            frames.clear();
            assert_eq!(source.pull(&mut frames).into_result(), Ok(Pull::Exhausted));
            assert!(frames.is_empty());
            return (all, per_pull);
        }
        assert_eq!(pull, Pull::Ready);
    }
    panic!("the bench source never ended");
}

#[test]
fn iters_replays_every_line_in_order() {
    let dir = TempDir::new("iters");
    let path = dir.write("four.txt", b"one\ntwo\r\nthree\nfour\n");
    let mut source = source(&config(&path, &[("iters", Value::from(3))])).expect("source");
    let (frames, _) = replay(&mut source);
    let expected: Vec<&[u8]> = [&b"one"[..], b"two", b"three", b"four"].repeat(3);
    assert_eq!(frames, expected);
}

#[test]
fn neither_key_replays_once() {
    let dir = TempDir::new("once");
    let path = dir.write("two.txt", b"a\nb");
    let (frames, per_pull) = replay(&mut source(&config(&path, &[])).expect("source"));
    assert_eq!(frames, [b"a".to_vec(), b"b".to_vec()]);
    assert_eq!(per_pull, [2]);
}

#[test]
fn compressed_example_data_has_100_lines_per_iteration() {
    let mut source =
        source(&config(Path::new(DATA), &[("iters", Value::from(25))])).expect("source");
    let (frames, per_pull) = replay(&mut source);
    assert_eq!(frames.len(), 2_500);
    // Batches of 1024, the rest in the last one.
    assert_eq!(per_pull, [1024, 1024, 452]);
    for (i, frame) in frames.iter().enumerate() {
        assert!(
            frame.starts_with(b"{") && frame.ends_with(b"}"),
            "frame {i} is one JSON line"
        );
        assert_eq!(
            frame,
            &frames[i % 100],
            "frame {i} repeats line {}",
            i % 100
        );
    }
    assert_ne!(frames[0], frames[1]);
}

#[test]
fn gzip_files_load_too() {
    let dir = TempDir::new("gzip");
    let path = dir.join("lines.txt.gz");
    let mut writer = temblor_compress::open_write(&path, false).expect("open");
    std::io::Write::write_all(&mut writer, b"x\ny\n").expect("write");
    writer.finish().expect("finish");
    let (frames, _) =
        replay(&mut source(&config(&path, &[("iters", Value::from(2))])).expect("source"));
    assert_eq!(frames, [&b"x"[..], b"y", b"x", b"y"]);
}

#[test]
fn duration_zero_ends_at_once() {
    let dir = TempDir::new("duration-zero");
    let path = dir.write("lines.txt", b"a\nb\n");
    let mut source = source(&config(&path, &[("duration_s", Value::from(0))])).expect("source");
    let mut frames = Frames::new();
    assert_eq!(source.pull(&mut frames).into_result(), Ok(Pull::Exhausted));
    assert!(frames.is_empty());
}

#[test]
fn duration_replays_until_time_is_up() {
    let dir = TempDir::new("duration");
    let path = dir.write("lines.txt", b"a\nb\nc\n");
    let begin = std::time::Instant::now();
    let mut source = source(&config(&path, &[("duration_s", Value::from(0.05))])).expect("source");
    let (frames, _) = replay(&mut source);
    assert!(begin.elapsed().as_secs_f64() >= 0.05);
    assert!(
        frames.len() > 3,
        "more than one pass in 50 ms: {}",
        frames.len()
    );
    assert_eq!(&frames[..4], [&b"a"[..], b"b", b"c", b"a"]);
}

#[test]
fn both_iters_and_duration_is_a_config_error() {
    let dir = TempDir::new("both");
    let path = dir.write("lines.txt", b"a\n");
    let cfg = config(
        &path,
        &[("iters", Value::from(2)), ("duration_s", Value::from(1))],
    );
    let err = source(&cfg).err().expect("both keys");
    assert_eq!(err.kind, ErrorKind::Config, "{err}");
    assert!(
        err.message.contains("iters") && err.message.contains("duration_s"),
        "{err}"
    );
    assert!(!err.message.contains("'t'"), "{err}");
}

#[test]
fn bad_values_are_config_errors() {
    let dir = TempDir::new("bad-values");
    let path = dir.write("lines.txt", b"a\n");
    for extra in [
        ("iters", Value::from(0)),
        ("iters", Value::from(-1)),
        ("duration_s", Value::from(-1.5)),
        ("duration_s", Value::from("soon")),
        ("iterations", Value::from(3)),
    ] {
        let name = extra.0;
        let err = source(&config(&path, &[extra])).err().expect("bad value");
        assert_eq!(err.kind, ErrorKind::Config, "{name}: {err}");
    }
}

#[test]
fn empty_file_is_a_config_error() {
    let dir = TempDir::new("empty");
    let path = dir.write("empty.txt", b"");
    let err = source(&config(&path, &[])).err().expect("empty file");
    assert_eq!(err.kind, ErrorKind::Config, "{err}");
    assert!(err.message.contains("no lines"), "{err}");
    assert!(err.message.contains(path.to_str().expect("utf-8")), "{err}");
}

#[test]
fn missing_file_is_an_io_error_naming_the_path() {
    let dir = TempDir::new("missing");
    let path = dir.join("missing.json.xz");
    let err = source(&config(&path, &[])).err().expect("missing file");
    assert_eq!(err.kind, ErrorKind::Io, "{err}");
    assert!(err.message.contains(path.to_str().expect("utf-8")), "{err}");
}

#[test]
fn bench_has_no_sink() {
    let dir = TempDir::new("no-sink");
    let path = dir.write("lines.txt", b"a\n");
    let result =
        (connector_bench::plugin_module().new_sink())(RStr::from("t"), &config(&path, &[]))
            .into_result();
    let err = result.err().expect("no sink");
    assert_eq!(err.kind, ErrorKind::Unsupported, "{err}");
    let manifest = (connector_bench::plugin_module().manifest())();
    assert_eq!(manifest.name.as_str(), "bench");
}

#[test]
fn acks_are_off_by_default_and_taken_when_asked() {
    let dir = TempDir::new("acks");
    let path = dir.write("lines.txt", b"a\nb\n");
    assert!(!source(&config(&path, &[])).expect("source").wants_acks());
    let mut source = source(&config(&path, &[("acks", Value::from(true))])).expect("source");
    assert!(source.wants_acks());
    let mut batch = temblor_shim::SourceBatch::new();
    batch.reset(1);
    let pull = source.pull_batch(&mut batch).into_result().expect("pull");
    assert_eq!(pull, Pull::Exhausted);
    assert_eq!(batch.len(), 2);
    source.ack(1).into_result().expect("ack");
    source.fail(2, "lost".into()).into_result().expect("fail");
    // Dropping logs the counts.
    drop(source);
    let err = self::source(&config(&path, &[("acks", Value::from("yes"))]))
        .err()
        .expect("not a boolean");
    assert_eq!(err.kind, ErrorKind::Config, "{err}");
}

/// The shared compliance checks.
mod compliance {
    use std::time::Duration;

    use temblor_harness::{config, connector};
    use temblor_shim::Value;

    fn module() -> temblor_shim::abi::PluginModRef {
        connector_bench::plugin_module()
    }

    fn data_once() -> Value {
        config(&[
            ("path", Value::from(super::DATA)),
            ("iters", Value::from(1)),
        ])
    }

    #[test]
    fn source_delivers_the_example_data_once() {
        let frames =
            connector::source_delivers(module(), &data_once(), 100, Duration::from_secs(10));
        assert_eq!(frames.len(), 100);
        assert!(
            frames
                .iter()
                .all(|f| f.starts_with(b"{") && f.ends_with(b"}"))
        );
        // Nothing more once exhausted.
        let mut source = connector::source(module(), &data_once()).expect("source");
        let (frames, exhausted) =
            connector::pull_frames(&mut source, 1000, Duration::from_secs(10));
        assert_eq!(frames.len(), 100);
        assert!(exhausted);
    }

    #[test]
    fn compliance() {
        connector::compliance(module(), "bench", &data_once(), connector::Offers::Source);
    }
}
