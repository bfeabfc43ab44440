//! Plugin pinning: `[[plugin]]` tables with the SHA-256 of a plugin file. The expected hashes
//! come from the sha2 crate, not from the code under test (the app's own hashing).

use std::{
    fs::Permissions,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
};

use temblor_harness::TempDir;
use temblor_shim::Value;

use crate::{
    loading::temblor_only,
    support::{Connector, Deployment, Pipeline, output, plugin_dir, temp_dir},
};

/// The SHA-256 of a file, in lower-case hex.
fn sha256sum(path: &Path) -> String {
    use sha2::Digest as _;
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let hash: String = sha2::Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(hash.len(), 64);
    hash
}

/// A fresh plugin directory (mode 0755) with copies of these shipped plugin files, each under
/// the name given (`(shipped, copy)`).
fn plugin_copies(test: &str, files: &[(&str, &str)]) -> TempDir {
    let dir = temp_dir(test);
    std::fs::set_permissions(&dir, Permissions::from_mode(0o755)).unwrap();
    for (shipped, copy) in files {
        let to = dir.join(copy);
        std::fs::copy(plugin_dir("plugins").join(shipped), &to).unwrap();
        std::fs::set_permissions(&to, Permissions::from_mode(0o755)).unwrap();
    }
    dir
}

const FILE: &str = "libconnector_file.so";
const BINARY: &str = "libcodec_binary.so";
const JSON: &str = "libcodec_json.so";

/// file → main → file, with `pins` (`[[plugin]]` tables: name, sha256) on top and `codec` on
/// both ends.
fn file_to_file(dir: &Path, pins: &[(&str, String)], codec: &str) -> (PathBuf, PathBuf) {
    let (input, out) = (dir.join("in.txt"), dir.join("out.txt"));
    std::fs::write(&input, LINES).unwrap();
    let mut deploy = Deployment::new();
    for (name, sha256) in pins {
        deploy = deploy.pin(name, sha256);
    }
    let deploy = deploy.flow(
        Connector::file_read("in", codec, &input),
        Pipeline::new("main"),
        Connector::file_write("out", &out).codec(codec),
    );
    (deploy.write(dir), out)
}

/// What [`file_to_file`] reads, and writes when it ran.
const LINES: &str = "{\"a\":1}\n{\"b\":2}\n";

#[test]
fn plugins_pinned_to_their_hashes_load_and_run() {
    let plugins = plugin_copies("pin-ok", &[(FILE, FILE), (BINARY, BINARY)]);
    let work = temp_dir("pin-ok-work");
    let pins = [
        ("file", sha256sum(&plugins.join(FILE))),
        // Upper case is accepted too.
        (
            "binary",
            sha256sum(&plugins.join(BINARY)).to_ascii_uppercase(),
        ),
    ];
    let (deploy, out) = file_to_file(&work, &pins, "binary");
    for command in ["validate", "run"] {
        let (status, _, stderr) = output(
            temblor_only(&[&plugins])
                .args(["--strict", command])
                .arg(&deploy),
        );
        assert!(status.status.success(), "{command}: {stderr}");
        assert!(!stderr.contains("refused"), "{stderr}");
    }
    assert_eq!(std::fs::read_to_string(&out).unwrap(), LINES);
}

#[test]
fn a_file_with_another_hash_is_refused_before_it_is_opened_and_the_run_fails() {
    let plugins = plugin_copies("pin-wrong", &[(FILE, FILE), (BINARY, BINARY)]);
    let work = temp_dir("pin-wrong-work");
    let file = plugins.join(FILE);
    let (actual, other) = (sha256sum(&file), sha256sum(&plugins.join(BINARY)));
    let (deploy, out) = file_to_file(&work, &[("file", other.clone())], "binary");
    for command in ["validate", "run"] {
        let (status, _, stderr) = output(
            temblor_only(&[&plugins])
                .env("LD_DEBUG", "files")
                .arg(command)
                .arg(&deploy),
        );
        assert_eq!(status.status.code(), Some(2), "{command}: {stderr}");
        let refusal = stderr
            .lines()
            .find(|l| l.contains("plugin file refused"))
            .unwrap_or_else(|| panic!("{command}: no refusal: {stderr}"));
        for needed in [
            file.display().to_string(),
            "plugin 'file'".to_owned(),
            format!("pinned at {}:2:8", deploy.display()),
            format!("to sha256 {other}"),
            format!("the file's sha256 is {actual}"),
        ] {
            assert!(refusal.contains(&needed), "{needed} missing: {refusal}");
        }
        // Never opened: glibc's loader (LD_DEBUG=files) reports every library it opens.
        assert!(
            !stderr
                .lines()
                .any(|l| l.contains(&format!("file={}", file.display()))),
            "the refused file was opened"
        );
        assert!(
            stderr
                .lines()
                .any(|l| l.contains(&format!("file={}", plugins.join(BINARY).display()))),
            "LD_DEBUG=files shows the files that are opened"
        );
        assert!(
            stderr.contains(&format!(
                "deploy.toml:7:10: connector 'in': no plugin named 'file' is loaded (it is pinned by the [[plugin]] at 2:8, and no plugin file with sha256 {other} was loaded"
            )),
            "{command}: {stderr}"
        );
    }
    assert!(!out.exists(), "nothing ran");
}

#[test]
fn a_renamed_file_whose_plugin_is_pinned_to_another_hash_is_not_registered() {
    let plugins = plugin_copies(
        "pin-renamed",
        &[(FILE, FILE), (BINARY, BINARY), (JSON, "libmy_json.so")],
    );
    let work = temp_dir("pin-renamed-work");
    let renamed = plugins.join("libmy_json.so");
    let wrong = sha256sum(&plugins.join(BINARY));
    let (deploy, _) = file_to_file(&work, &[("json", wrong.clone())], "json");
    let (status, _, stderr) = output(temblor_only(&[&plugins]).arg("run").arg(&deploy));
    assert_eq!(status.status.code(), Some(2), "{stderr}");
    let refusal = stderr
        .lines()
        .find(|l| l.contains("plugin file refused") && l.contains("libmy_json.so"))
        .unwrap_or_else(|| panic!("no refusal: {stderr}"));
    assert!(
        refusal.contains(&format!(
            "plugin 'json' is pinned at {}:2:8 to sha256 {wrong}, but this file's sha256 is {}; not registered",
            deploy.display(),
            sha256sum(&renamed)
        )),
        "{refusal}"
    );
    assert!(
        stderr.contains("connector 'in': no codec named 'json' is loaded (it is pinned"),
        "{stderr}"
    );

    // Pinned to its own hash, the renamed file is fine.
    let (deploy, out) = file_to_file(&work, &[("json", sha256sum(&renamed))], "json");
    let (status, _, stderr) = output(temblor_only(&[&plugins]).arg("run").arg(&deploy));
    assert!(status.status.success(), "{stderr}");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), LINES);
}

#[test]
fn a_malformed_pin_is_a_deployment_error_with_line_and_column() {
    let plugins = plugin_copies("pin-malformed", &[(FILE, FILE), (BINARY, BINARY)]);
    let work = temp_dir("pin-malformed-work");
    let short = "ab".repeat(31);
    let pins = [
        ("file", short.clone()),
        ("binary", format!("{}zz", "0".repeat(62))),
    ];
    let (deploy, _) = file_to_file(&work, &pins, "binary");
    for command in ["validate", "run"] {
        let (status, _, stderr) = output(temblor_only(&[&plugins]).arg(command).arg(&deploy));
        assert_eq!(status.status.code(), Some(2), "{command}: {stderr}");
        let name = deploy.display();
        assert!(
            stderr.contains(&format!(
                "error: {name}:3:10: [[plugin]] 'file': `sha256` must be 64 hexadecimal digits"
            )) && stderr.contains("found 62 digits"),
            "{command}: {stderr}"
        );
        assert!(
            stderr.contains(&format!("error: {name}:7:10: [[plugin]] 'binary'"))
                && stderr.contains("found 'z' at position 63"),
            "{command}: {stderr}"
        );
    }
    // An unknown key in a [[plugin]] table, too.
    std::fs::write(
        &deploy,
        format!("[[plugin]]\nname = \"file\"\nsha = \"{short}\"\n"),
    )
    .unwrap();
    let (status, _, stderr) = output(temblor_only(&[&plugins]).arg("validate").arg(&deploy));
    assert_eq!(status.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("{}:3:", deploy.display())) && stderr.contains("sha"),
        "{stderr}"
    );
}

#[test]
fn plugins_list_shows_each_file_hash() {
    let plugins = plugin_copies("pin-list", &[(FILE, FILE), (JSON, JSON)]);
    let (status, stdout, stderr) =
        output(temblor_only(&[&plugins]).args(["plugins", "list", "--format", "json"]));
    assert!(status.status.success(), "{stderr}");
    let doc: Value = codec_json::decode_slice(stdout.trim().as_bytes()).unwrap();
    let listed = doc.get("plugins").and_then(Value::as_array).unwrap();
    assert_eq!(listed.len(), 2, "{stdout}");
    for p in listed {
        let path = p.get("path").and_then(Value::as_str).unwrap();
        assert_eq!(
            p.get("sha256").and_then(Value::as_str),
            Some(sha256sum(Path::new(path)).as_str()),
            "{p}"
        );
    }
    let (status, stdout, _) = output(temblor_only(&[&plugins]).args(["plugins", "list"]));
    assert!(status.status.success());
    let header = stdout.lines().next().unwrap();
    assert!(header.contains("SHA256"), "{header}");
    let json_line = stdout.lines().find(|l| l.starts_with("json")).unwrap();
    assert!(
        json_line.contains(&sha256sum(&plugins.join(JSON))),
        "{json_line}"
    );
    let (status, stdout, _) = output(
        temblor_only(&[])
            .args(["plugins", "check"])
            .arg(plugins.join(FILE)),
    );
    assert!(status.status.success(), "{stdout}");
    assert!(
        stdout.contains(&format!("sha256 {}", sha256sum(&plugins.join(FILE)))),
        "{stdout}"
    );
}
