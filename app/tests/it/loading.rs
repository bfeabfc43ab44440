//! Loading plugin files: good ones, bad ones, duplicates, `--strict`, and a plugin that panics.

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::atomic::{AtomicUsize, Ordering},
};

use codec_json::decode_slice;

use crate::support::{Connector, Deployment, output, plugin_dir, temblor, temp_dir};
use temblor_harness::TempDir;

/// The binary under test with only the plugin directories given here: run from an empty
/// directory, so that the default `./target/plugins` is not found.
pub fn temblor_only(dirs: &[&Path]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_temblor"));
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    let cwd = temp_dir(&format!("cwd{}", RUNS.fetch_add(1, Ordering::Relaxed))).keep();
    cmd.current_dir(cwd).env_remove("TEMBLOR_PLUGIN_PATH");
    for dir in dirs {
        cmd.arg("--plugin-dir").arg(dir);
    }
    cmd
}

/// An ordinary shared library of the system, not a temblor plugin.
fn system_library() -> PathBuf {
    let candidates = [
        "/lib/x86_64-linux-gnu/libz.so.1",
        "/usr/lib/x86_64-linux-gnu/libz.so.1",
        "/lib/x86_64-linux-gnu/liblzma.so.5",
        "/usr/lib/x86_64-linux-gnu/liblzma.so.5",
        "/lib64/libz.so.1",
        "/usr/lib64/libz.so.1",
    ];
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .expect("a system shared library (libz or liblzma) to test with")
}

/// A plugin directory: every shipped plugin plus the bad files, with their names.
fn dir_with_bad_files(test: &str) -> TempDir {
    let dir = temp_dir(test);
    for entry in std::fs::read_dir(plugin_dir("plugins")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
    }
    let noise: Vec<u8> = (0..4096_u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(dir.join("random.so"), noise).unwrap();
    std::fs::write(dir.join("empty.so"), b"").unwrap();
    std::fs::copy(system_library(), dir.join("libsystem.so")).unwrap();
    std::fs::copy(
        dir.join("libcodec_json.so"),
        dir.join("libzz_json_again.so"),
    )
    .unwrap();
    std::fs::write(
        dir.join("notes.txt"),
        b"not a library, not even a candidate",
    )
    .unwrap();
    dir
}

fn list_json(dir: &Path, strict: bool) -> (Option<i32>, temblor_shim::Value) {
    let mut cmd = temblor_only(&[dir]);
    cmd.args(["plugins", "list", "--format", "json"]);
    if strict {
        cmd.arg("--strict");
    }
    let (status, stdout, stderr) = output(&mut cmd);
    let doc =
        decode_slice(stdout.trim().as_bytes()).unwrap_or_else(|e| panic!("{e}: {stdout} {stderr}"));
    (status.status.code(), doc)
}

#[test]
fn bad_files_are_each_reported_and_the_rest_load() {
    let dir = dir_with_bad_files("badfiles");
    // Only this directory: the default one is searched last and holds the same names.
    let (code, doc) = list_json(&dir, false);
    assert_eq!(code, Some(0));
    let plugins = doc.get("plugins").and_then(|p| p.as_array()).unwrap();
    let names: Vec<_> = plugins
        .iter()
        .filter_map(|p| p.get("name")?.as_str())
        .collect();
    for name in [
        "bench",
        "blackhole",
        "file",
        "stdio",
        "binary",
        "json",
        "string",
    ] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    for p in plugins {
        assert_eq!(
            p.get("rustc").and_then(|r| r.as_str()),
            Some(temblor_shim::abi::RUSTC_VERSION)
        );
        let path = p.get("path").and_then(|r| r.as_str()).unwrap();
        let name = p.get("name").and_then(|r| r.as_str()).unwrap();
        // Each file gives its own module, not the first one loaded again.
        assert!(path.contains(&format!("_{name}.so")), "{name} from {path}");
    }
    let refused: Vec<(String, String)> = doc
        .get("refused")
        .and_then(|r| r.as_array())
        .unwrap()
        .iter()
        .map(|r| {
            let path = r.get("path").and_then(|p| p.as_str()).unwrap();
            let file = Path::new(path)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            (
                file,
                r.get("reason").and_then(|p| p.as_str()).unwrap().to_owned(),
            )
        })
        .collect();
    let reason = |file: &str| {
        refused
            .iter()
            .find(|(f, _)| f == file)
            .map(|(_, r)| r.clone())
            .unwrap_or_else(|| panic!("{file} not refused: {refused:?}"))
    };
    assert_eq!(refused.len(), 4, "{refused:?}");
    // (file, whether the reason starts with the text, the text)
    for (file, at_start, says) in [
        ("random.so", true, "not a loadable shared library"),
        ("random.so", false, "invalid ELF header"),
        ("empty.so", true, "not a loadable shared library"),
        ("libsystem.so", false, "not a temblor plugin"),
        ("libzz_json_again.so", false, "duplicate plugin name 'json'"),
    ] {
        let reason = reason(file);
        let found = if at_start {
            reason.starts_with(says)
        } else {
            reason.contains(says)
        };
        assert!(found, "{file}: {reason}");
    }
    assert!(!refused.iter().any(|(f, _)| f == "notes.txt"));
}

#[test]
fn strict_makes_a_refused_file_fatal() {
    let dir = dir_with_bad_files("strict");
    let (code, _) = list_json(&dir, true);
    assert_eq!(code, Some(2));
    let (status, _, stderr) = output(temblor().arg("--plugin-dir").arg(&dir).args([
        "--strict",
        "run",
        "examples/passthrough.toml",
    ]));
    assert_eq!(status.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("random.so"), "{stderr}");
    // Without --strict the same directory runs.
    let (status, _, stderr) = output(
        temblor()
            .arg("--plugin-dir")
            .arg(&dir)
            .args(["validate", "examples/passthrough.toml"]),
    );
    assert!(status.status.success(), "{stderr}");
    assert!(stderr.contains("plugin file refused"), "{stderr}");
}

#[test]
fn plugins_check_says_why() {
    let dir = dir_with_bad_files("check");
    let (status, stdout, _) = output(
        temblor()
            .args(["plugins", "check"])
            .arg(dir.join("libcodec_json.so")),
    );
    assert_eq!(status.status.code(), Some(0));
    assert!(stdout.contains("ok: codec plugin 'json'"), "{stdout}");
    for bad in ["random.so", "empty.so", "libsystem.so"] {
        let (status, stdout, _) = output(temblor().args(["plugins", "check"]).arg(dir.join(bad)));
        assert_eq!(status.status.code(), Some(2), "{bad}: {stdout}");
        assert!(stdout.contains("refused"), "{stdout}");
    }
    let (status, stdout, _) = output(temblor().args(["plugins", "check", "/no/such/libx.so"]));
    assert_eq!(status.status.code(), Some(2));
    assert!(stdout.contains("/no/such/libx.so"), "{stdout}");
}

#[test]
fn plugins_list_text_shows_each_plugin() {
    let (status, stdout, _) = output(temblor().args(["plugins", "list"]));
    assert!(status.status.success());
    let header = stdout.lines().next().unwrap();
    assert!(header.starts_with("NAME") && header.contains("RUSTC") && header.contains("PATH"));
    assert!(
        stdout.lines().any(|l| l.starts_with("json")
            && l.contains("codec")
            && l.contains("libcodec_json.so")),
        "{stdout}"
    );
}

#[test]
fn a_plugin_that_panics_in_decode_is_isolated() {
    let dir = temp_dir("panicky");
    let input = dir.join("in.txt");
    // 3000 lines, one of which makes the codec panic: bench emits batches of 1024 lines.
    let lines: Vec<String> = (0..3000)
        .map(|i| {
            if i == 1500 {
                "boom".to_owned()
            } else {
                format!("line {i}")
            }
        })
        .collect();
    std::fs::write(&input, lines.join("\n")).unwrap();
    let (out, errors) = (dir.join("out.txt"), dir.join("err.json"));
    let deploy = Deployment::passthrough(
        Connector::new("in", "bench")
            .codec("panicky")
            .set_path("path", &input),
        Connector::file_write("out", &out).codec("string"),
    )
    .connector(Connector::file_write("errors", &errors))
    .connect("main/err", "errors")
    .write(&dir);
    let (status, _, stderr) = output(
        temblor()
            .arg("--plugin-dir")
            .arg(plugin_dir("test-plugins"))
            .arg("run")
            .arg(&deploy),
    );
    assert!(status.status.success(), "{stderr}");
    assert!(
        stderr.contains("panicked in decode: boom in decode"),
        "{stderr}"
    );
    assert!(
        stderr.contains("plugin=\"panicky\""),
        "the plugin's panic location reaches the host log: {stderr}"
    );
    let good = std::fs::read_to_string(&out).unwrap();
    let bad = std::fs::read_to_string(&errors).unwrap();
    let (good, bad) = (good.lines().count(), bad.lines().count());
    assert_eq!(good + bad, 3000, "every line is accounted for");
    assert!(
        bad >= 1 && good >= 1000,
        "only the batch with the panic failed: {good} good, {bad} bad"
    );
}

#[test]
fn a_plugin_built_against_another_shim_interface_is_refused() {
    let file = plugin_dir("test-plugins").join("libtest_plugin_old_shim.so");
    let (status, stdout, _) = output(temblor().args(["plugins", "check"]).arg(&file));
    assert_eq!(status.status.code(), Some(2), "{stdout}");
    assert!(
        stdout.contains("plugin 'old-shim' was built against shim interface version 0, this temblor speaks versions 1 to 3"),
        "{stdout}"
    );
    // In a directory, it is refused and the others still load.
    let (code, doc) = list_json(&plugin_dir("test-plugins"), false);
    assert_eq!(code, Some(0));
    let names: Vec<_> = doc
        .get("plugins")
        .and_then(|p| p.as_array())
        .unwrap()
        .iter()
        .filter_map(|p| p.get("name")?.as_str())
        .collect();
    for name in ["panicky", "faulty"] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    assert!(!names.contains(&"old-shim"), "{names:?}");
    let refused = refused_files(&doc);
    let old_shim = refused
        .iter()
        .find(|(file, _)| file == "libtest_plugin_old_shim.so")
        .unwrap_or_else(|| panic!("old-shim not refused: {refused:?}"));
    assert!(
        old_shim.1.contains("shim interface version 0"),
        "{old_shim:?}"
    );
}

/// The refused files of a `plugins list --format json` document: (file name, reason).
fn refused_files(doc: &temblor_shim::Value) -> Vec<(String, String)> {
    doc.get("refused")
        .and_then(|r| r.as_array())
        .unwrap()
        .iter()
        .map(|r| {
            let path = r.get("path").and_then(|p| p.as_str()).unwrap();
            let file = Path::new(path).file_name().unwrap().to_string_lossy();
            let reason = r.get("reason").and_then(|p| p.as_str()).unwrap();
            (file.into_owned(), reason.to_owned())
        })
        .collect()
}

#[test]
fn a_library_with_another_root_module_layout_is_refused_in_one_line() {
    let fixture = plugin_dir("test-plugins").join("libtest_plugin_wrong_layout.so");
    let (status, stdout, _) = output(temblor().args(["plugins", "check"]).arg(&fixture));
    assert_eq!(status.status.code(), Some(2), "{stdout}");
    assert_eq!(stdout.lines().count(), 1, "one line: {stdout}");
    assert!(
        stdout.starts_with(&format!(
            "{}: refused: layout mismatch: its root module is not this temblor's plugin interface",
            fixture.display()
        )),
        "{stdout}"
    );
    assert!(stdout.contains("first difference: "), "{stdout}");
    assert!(stdout.len() < 800, "short enough to read: {stdout}");

    // Among good plugins: refused with the same reason, and every other file loads.
    let dir = temp_dir("wrong-layout");
    for entry in std::fs::read_dir(plugin_dir("plugins")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
    }
    std::fs::copy(&fixture, dir.join("libtest_plugin_wrong_layout.so")).unwrap();
    let (code, doc) = list_json(&dir, false);
    assert_eq!(code, Some(0));
    let refused = refused_files(&doc);
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0].0, "libtest_plugin_wrong_layout.so");
    assert!(refused[0].1.starts_with("layout mismatch: "), "{refused:?}");
    let loaded = doc.get("plugins").and_then(|p| p.as_array()).unwrap().len();
    let shipped = std::fs::read_dir(plugin_dir("plugins")).unwrap().count();
    assert_eq!(loaded, shipped, "every shipped plugin still loads");
    // And a deployment runs beside it.
    let (status, _, stderr) = output(
        temblor_only(&[&dir])
            .args(["validate"])
            .arg(crate::support::root().join("examples/passthrough.toml")),
    );
    assert!(status.status.success(), "{stderr}");
    assert!(stderr.contains("layout mismatch"), "{stderr}");
}
