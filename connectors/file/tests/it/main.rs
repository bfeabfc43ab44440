//! Drives the file connector through its ABI objects, as the engine does.

use std::path::Path;

use temblor_harness::TempDir;
use temblor_shim::{
    ErrorKind, Frames, PluginError, Pull, Value,
    abi::{SinkBox, SourceBox},
    abi_stable::std_types::RStr,
};

fn config(path: &Path, mode: Option<&str>) -> Value {
    let mut fields = vec![("path", Value::from(path.to_str().expect("utf-8 path")))];
    if let Some(mode) = mode {
        fields.push(("mode", Value::from(mode)));
    }
    Value::Object(fields.into_iter().collect())
}

fn source(config: &Value) -> Result<SourceBox, PluginError> {
    (connector_file::plugin_module().new_source())(RStr::from("t"), config).into_result()
}

fn sink(config: &Value) -> Result<SinkBox, PluginError> {
    (connector_file::plugin_module().new_sink())(RStr::from("t"), config).into_result()
}

/// Pulls until `Exhausted`; returns the bytes of all frames and the number of pulls.
fn read_all(source: &mut SourceBox) -> (Vec<u8>, usize) {
    let mut bytes = Vec::new();
    let mut frames = Frames::new();
    for pulls in 1..10_000 {
        frames.clear();
        let pull = source.pull(&mut frames).into_result().expect("pull");
        bytes.extend(frames.iter().flatten());
        if pull == Pull::Exhausted {
            return (bytes, pulls);
        }
        assert_eq!(pull, Pull::Ready);
    }
    panic!("the file source never ended");
}

fn lines(n: usize) -> Frames {
    (0..n)
        .map(|i| format!("{{\"n\":{i},\"pad\":\"{}\"}}\n", "x".repeat(i % 50)))
        .collect::<Vec<_>>()
        .iter()
        .map(String::as_bytes)
        .collect()
}

fn write_frames(path: &Path, mode: &str, frames: &Frames) {
    let mut sink = sink(&config(path, Some(mode))).expect("sink");
    sink.push(frames).into_result().expect("push");
    sink.flush().into_result().expect("flush");
    drop(sink);
}

fn round_trip(name: &str) {
    let dir = TempDir::new(&format!("round-trip-{name}"));
    let path = dir.join(name);
    // Several batches, more than one 64 KiB chunk in all.
    let batch = lines(2_000);
    let mut sink = sink(&config(&path, Some("write"))).expect("sink");
    for _ in 0..3 {
        sink.push(&batch).into_result().expect("push");
    }
    sink.flush().into_result().expect("flush");
    drop(sink);

    let expected: Vec<u8> = batch
        .iter()
        .flatten()
        .copied()
        .collect::<Vec<u8>>()
        .repeat(3);
    assert!(expected.len() > 64 * 1024);
    let mut source = source(&config(&path, None)).expect("source");
    let (bytes, pulls) = read_all(&mut source);
    assert_eq!(bytes.len(), expected.len(), "{name}");
    assert!(bytes == expected, "{name}: bytes differ");
    assert!(pulls >= 1);
    // Once exhausted, it stays so.
    let mut frames = Frames::new();
    assert_eq!(source.pull(&mut frames).into_result(), Ok(Pull::Exhausted));
    assert!(frames.is_empty());
}

#[test]
fn plain_round_trip() {
    round_trip("out.json");
}

#[test]
fn gzip_round_trip() {
    round_trip("out.json.gz");
}

#[test]
fn xz_round_trip() {
    round_trip("out.json.xz");
}

#[test]
fn compressed_output_is_compressed() {
    let dir = TempDir::new("compressed");
    for (name, magic) in [("c.gz", &[0x1f_u8, 0x8b][..]), ("c.xz", b"\xfd7zXZ\0")] {
        let path = dir.join(name);
        write_frames(&path, "write", &lines(500));
        let raw = std::fs::read(&path).expect("read raw");
        assert!(raw.starts_with(magic), "{name}");
    }
}

#[test]
fn frames_are_written_as_they_are() {
    let dir = TempDir::new("as-is");
    let path = dir.join("raw.bin");
    let frames: Frames = [&b"no separator"[..], b"", b"\x00\xffbinary", b"\n"]
        .into_iter()
        .collect();
    write_frames(&path, "write", &frames);
    assert_eq!(
        std::fs::read(&path).expect("read"),
        b"no separator\x00\xffbinary\n"
    );
}

#[test]
fn append_mode_appends() {
    for name in ["a.json", "a.json.gz", "a.json.xz"] {
        let dir = TempDir::new(&format!("append-{name}"));
        let path = dir.join(name);
        let first: Frames = [&b"one\n"[..]].into_iter().collect();
        let second: Frames = [&b"two\n"[..], b"three\n"].into_iter().collect();
        write_frames(&path, "write", &first);
        write_frames(&path, "append", &second);
        let (bytes, _) = read_all(&mut source(&config(&path, Some("read"))).expect("source"));
        assert_eq!(bytes, b"one\ntwo\nthree\n", "{name}");
        // Write mode starts over.
        write_frames(&path, "write", &first);
        let (bytes, _) = read_all(&mut source(&config(&path, None)).expect("source"));
        assert_eq!(bytes, b"one\n", "{name}");
    }
}

#[test]
fn append_mode_creates_a_missing_file() {
    let dir = TempDir::new("append-create");
    let path = dir.join("new.txt");
    write_frames(&path, "append", &[&b"first\n"[..]].into_iter().collect());
    assert_eq!(std::fs::read(&path).expect("read"), b"first\n");
}

#[test]
fn empty_file_is_exhausted_at_once() {
    let dir = TempDir::new("empty");
    let path = dir.join("empty.json");
    std::fs::write(&path, b"").expect("write");
    let mut source = source(&config(&path, None)).expect("source");
    let mut frames = Frames::new();
    assert_eq!(source.pull(&mut frames).into_result(), Ok(Pull::Exhausted));
    assert!(frames.is_empty());
}

#[test]
fn missing_file_is_an_io_error_naming_the_path() {
    let dir = TempDir::new("missing");
    for name in ["missing.json", "missing.json.xz"] {
        let path = dir.join(name);
        let err = source(&config(&path, None)).err().expect("no such file");
        assert_eq!(err.kind, ErrorKind::Io, "{err}");
        assert!(err.message.contains(path.to_str().expect("utf-8")), "{err}");
        assert!(!err.message.contains("'t'"), "{err}");
    }
    let path = dir.join("no-such-folder/out.json");
    let err = sink(&config(&path, Some("write")))
        .err()
        .expect("no such folder");
    assert_eq!(err.kind, ErrorKind::Io, "{err}");
    assert!(err.message.contains(path.to_str().expect("utf-8")), "{err}");
}

#[test]
fn unknown_config_key_is_a_config_error_naming_it() {
    let cfg: Value = Value::Object(
        [
            ("path", Value::from("x.json")),
            ("pth", Value::from("y.json")),
        ]
        .into_iter()
        .collect(),
    );
    for err in [source(&cfg).err(), sink(&cfg).err()] {
        let err = err.expect("unknown key");
        assert_eq!(err.kind, ErrorKind::Config, "{err}");
        assert!(err.message.contains("unknown field `pth`"), "{err}");
    }
}

#[test]
fn missing_path_and_bad_mode_are_config_errors() {
    let err = source(&Value::Object(
        [("mode", Value::from("read"))].into_iter().collect(),
    ))
    .err()
    .expect("no path");
    assert_eq!(err.kind, ErrorKind::Config);
    assert!(err.message.contains("path"), "{err}");
    let err = sink(&config(Path::new("x.json"), Some("overwrite")))
        .err()
        .expect("bad mode");
    assert_eq!(err.kind, ErrorKind::Config);
    assert!(err.message.contains("overwrite"), "{err}");
}

#[test]
fn wrong_direction_is_a_config_error() {
    let dir = TempDir::new("direction");
    let path = dir.join("d.json");
    let err = source(&config(&path, Some("write")))
        .err()
        .expect("write mode has no source");
    assert_eq!(err.kind, ErrorKind::Config);
    assert!(err.message.contains("write mode"), "{err}");
    let err = sink(&config(&path, None))
        .err()
        .expect("read mode has no sink");
    assert_eq!(err.kind, ErrorKind::Config);
    assert!(err.message.contains("read mode"), "{err}");
    assert!(!path.exists());
}

#[test]
fn manifest_names_the_connector() {
    let manifest = (connector_file::plugin_module().manifest())();
    assert_eq!(manifest.name.as_str(), "file");
    assert_eq!(manifest.kind, temblor_shim::abi::PluginKind::Connector);
}

/// The shared compliance checks.
mod compliance {
    use std::time::Duration;

    use temblor_harness::{TempDir, connector};

    use super::config;

    fn module() -> temblor_shim::abi::PluginModRef {
        connector_file::plugin_module()
    }

    #[test]
    fn source_delivers_a_file() {
        let dir = TempDir::new("compliance-source");
        let path = dir.join("in.txt");
        let contents = b"line one\nline two\n".repeat(10_000);
        std::fs::write(&path, &contents).expect("write");
        let frames =
            connector::source_delivers(module(), &config(&path, None), 1, Duration::from_secs(10));
        assert!(
            contents.starts_with(&frames[0]),
            "the file's first chunk comes first"
        );
        // All of it, then the end.
        let mut source = connector::source(module(), &config(&path, None)).expect("source");
        let (frames, exhausted) =
            connector::pull_frames(&mut source, usize::MAX, Duration::from_secs(10));
        assert!(exhausted);
        assert_eq!(frames.concat(), contents);
    }

    #[test]
    fn sink_accepts_and_writes() {
        let dir = TempDir::new("compliance-sink");
        for (name, mode) in [
            ("out.txt", "write"),
            ("out.txt.gz", "write"),
            ("app.txt", "append"),
        ] {
            let path = dir.join(name);
            connector::sink_accepts(module(), &config(&path, Some(mode)), &[b"a\n", b"", b"b\n"]);
            let mut source = connector::source(module(), &config(&path, None)).expect("source");
            let (frames, _) =
                connector::pull_frames(&mut source, usize::MAX, Duration::from_secs(10));
            assert_eq!(frames.concat(), b"a\nb\n", "{name}");
        }
    }

    #[test]
    fn compliance_reading_and_writing() {
        let dir = TempDir::new("compliance");
        let path = dir.write("f.txt", b"x");
        // A reading config makes no sink, a writing one no source.
        connector::compliance(
            module(),
            "file",
            &config(&path, None),
            connector::Offers::Source,
        );
        assert_eq!(
            std::fs::read(&path).expect("read"),
            b"x",
            "reading did not touch the file"
        );
        let out = dir.join("out.txt");
        connector::compliance(
            module(),
            "file",
            &config(&out, Some("write")),
            connector::Offers::Sink,
        );
    }
}

#[test]
fn paths_are_used_as_given_without_shell_expansion() {
    let dir = TempDir::new("no-expansion");
    // `$HOME`, `~` and `*` are file name characters here, not shell syntax.
    let literal = dir.join("$HOME ~ *.txt");
    write_frames(&literal, "write", &lines(2));
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["$HOME ~ *.txt"]);
    // A leading `~` is not the home folder either.
    let tilde = Path::new("~/temblor-no-such-file.json");
    let err = source(&config(tilde, None)).err().expect("no such file");
    assert_eq!(err.kind, ErrorKind::Io, "{err}");
    assert!(err.message.contains("~/temblor-no-such-file.json"), "{err}");
}

/// Checkpoints through the ABI: acks, fails, resuming in a new instance.
mod checkpoint {
    use std::path::Path;

    use temblor_shim::{ErrorKind, Pull, SourceBatch, Value, abi::SourceBox};

    use temblor_harness::TempDir;

    use super::{lines, source, write_frames};

    fn config(path: &Path, checkpoint: &Path) -> Value {
        Value::Object(
            [
                ("path", Value::from(path.to_str().expect("utf-8 path"))),
                (
                    "checkpoint",
                    Value::from(checkpoint.to_str().expect("utf-8 path")),
                ),
            ]
            .into_iter()
            .collect(),
        )
    }

    fn stored(checkpoint: &Path) -> u64 {
        std::fs::read_to_string(checkpoint)
            .expect("a checkpoint file")
            .trim()
            .parse()
            .expect("an offset")
    }

    /// Pulls once under `token`; returns the pull and the bytes handed over.
    fn pull(source: &mut SourceBox, token: u64) -> (Pull, Vec<u8>) {
        let mut batch = SourceBatch::new();
        batch.reset(token);
        let pulled = source.pull_batch(&mut batch).into_result().expect("pull");
        (pulled, batch.iter().flatten().copied().collect())
    }

    fn input(dir: &TempDir, name: &str) -> (std::path::PathBuf, Vec<u8>) {
        let path = dir.join(name);
        let frames = lines(20_000);
        write_frames(&path, "write", &frames);
        (path, frames.iter().flatten().copied().collect())
    }

    #[test]
    fn a_new_instance_resumes_after_the_last_acked_line() {
        for name in ["in.json", "in.json.gz", "in.json.xz"] {
            let dir = TempDir::new(&format!("cp-resume-{name}"));
            let (path, data) = input(&dir, name);
            let cp = dir.join("cp");
            let mut first = source(&config(&path, &cp)).expect("source");
            assert!(first.wants_acks(), "{name}");
            let (p1, a) = pull(&mut first, 1);
            assert_eq!(p1, Pull::Ready, "{name}");
            // Held back until 1 is acked.
            assert_eq!(pull(&mut first, 2), (Pull::Idle, Vec::new()), "{name}");
            first.ack(1).into_result().expect("ack");
            assert_eq!(stored(&cp), a.len() as u64, "{name}");
            // Pulled, not acked: read again by the next instance.
            let (_, b) = pull(&mut first, 3);
            assert!(!b.is_empty());
            drop(first);

            let mut second = source(&config(&path, &cp)).expect("source");
            let mut rest = Vec::new();
            for token in 10.. {
                let (pulled, bytes) = pull(&mut second, token);
                rest.extend(bytes);
                second.ack(token).into_result().expect("ack");
                if pulled == Pull::Exhausted {
                    break;
                }
            }
            assert!(rest.starts_with(&b), "{name}: the unacked pull comes again");
            assert!(
                [a, rest].concat() == data,
                "{name}: the rest of the file, once"
            );
            assert_eq!(stored(&cp), data.len() as u64, "{name}");
        }
    }

    #[test]
    fn a_failed_pull_is_read_again_on_the_next_start() {
        let dir = TempDir::new("cp-fail");
        let (path, data) = input(&dir, "in.json");
        let cp = dir.join("cp");
        let mut first = source(&config(&path, &cp)).expect("source");
        let (_, a) = pull(&mut first, 1);
        first.ack(1).into_result().expect("ack");
        let (_, b) = pull(&mut first, 2);
        first
            .fail(2, "the sink gave up".into())
            .into_result()
            .expect("fail");
        // Reading goes on (the failed pull is not outstanding), the checkpoint does not.
        let (pulled, c) = pull(&mut first, 3);
        assert_eq!(pulled, Pull::Ready);
        assert!(!c.is_empty());
        first.ack(3).into_result().expect("ack");
        assert_eq!(stored(&cp), a.len() as u64);
        drop(first);
        let mut second = source(&config(&path, &cp)).expect("source");
        let (_, again) = pull(&mut second, 1);
        assert!(again.starts_with(&b));
        assert!(data[a.len()..].starts_with(&again));
    }

    #[test]
    fn an_unparsable_checkpoint_is_a_config_error_naming_it() {
        let dir = TempDir::new("cp-garbage");
        let (path, _) = input(&dir, "in.json");
        let cp = dir.join("cp");
        std::fs::write(&cp, b"{\"offset\": 3}").expect("write");
        let err = source(&config(&path, &cp)).err().expect("refused");
        assert_eq!(err.kind, ErrorKind::Config, "{err}");
        assert!(err.message.contains(cp.to_str().expect("utf-8")), "{err}");
    }

    #[test]
    fn without_a_checkpoint_no_acks_are_wanted() {
        let dir = TempDir::new("cp-none");
        let (path, _) = input(&dir, "in.json");
        let source = source(&super::config(&path, None)).expect("source");
        assert!(!source.wants_acks());
    }
}
