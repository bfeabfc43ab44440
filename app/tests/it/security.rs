//! Plugin file permissions: a library (or its directory) that someone other than this user or
//! root could have written is refused before it is opened, unless `--allow-insecure-plugins`.

use std::{
    fs::Permissions,
    os::unix::fs::{PermissionsExt as _, chown},
    path::{Path, PathBuf},
};

use temblor_harness::TempDir;
use temblor_shim::Value;

use crate::{
    loading::temblor_only,
    support::{output, plugin_dir, temp_dir},
};

/// The uid of `nobody` on Debian and most Linux systems; any uid but ours and root's will do.
const NOBODY: u32 = 65_534;

/// A fresh directory (mode 0755) holding a copy of the json codec plugin (mode 0755).
fn dir_with_json(test: &str) -> (TempDir, PathBuf) {
    let dir = temp_dir(test);
    std::fs::set_permissions(&dir, Permissions::from_mode(0o755)).unwrap();
    let file = dir.join("libcodec_json.so");
    std::fs::copy(plugin_dir("plugins").join("libcodec_json.so"), &file).unwrap();
    std::fs::set_permissions(&file, Permissions::from_mode(0o755)).unwrap();
    (dir, file)
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, Permissions::from_mode(mode)).unwrap();
}

/// `plugins list --format json` of `dir` alone: (exit code, loaded names, refused (path, reason)).
fn list(dir: &Path, extra: &[&str]) -> (Option<i32>, Vec<String>, Vec<(String, String)>) {
    let mut cmd = temblor_only(&[dir]);
    cmd.args(["plugins", "list", "--format", "json"])
        .args(extra);
    let (status, stdout, stderr) = output(&mut cmd);
    let doc: Value = codec_json::decode_slice(stdout.trim().as_bytes())
        .unwrap_or_else(|e| panic!("{e}: {stdout} {stderr}"));
    let names = doc
        .get("plugins")
        .and_then(Value::as_array)
        .unwrap()
        .iter()
        .filter_map(|p| Some(p.get("name")?.as_str()?.to_owned()))
        .collect();
    let refused = doc
        .get("refused")
        .and_then(Value::as_array)
        .unwrap()
        .iter()
        .map(|r| {
            let field = |k: &str| r.get(k).and_then(Value::as_str).unwrap().to_owned();
            (field("path"), field("reason"))
        })
        .collect();
    (status.status.code(), names, refused)
}

/// Asserts that `dir` loads nothing and refuses its json plugin with a reason containing `why`,
/// that `plugins check` says the same with exit code 2, and that `--allow-insecure-plugins`
/// loads it.
fn assert_refused_unless_allowed(dir: &Path, file: &Path, why: &str) {
    let (code, names, refused) = list(dir, &[]);
    assert_eq!(code, Some(0), "refusals are not fatal without --strict");
    assert!(names.is_empty(), "{names:?}");
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0].0, file.display().to_string());
    assert!(refused[0].1.contains(why), "{refused:?}");
    assert!(
        refused[0].1.contains("--allow-insecure-plugins"),
        "the reason names the override: {refused:?}"
    );

    let (code, _, _) = list(dir, &["--strict"]);
    assert_eq!(code, Some(2), "--strict makes an insecure file fatal");

    let (status, stdout, _) = output(temblor_only(&[]).args(["plugins", "check"]).arg(file));
    assert_eq!(status.status.code(), Some(2), "{stdout}");
    assert!(
        stdout.starts_with(&format!("{}: refused: ", file.display())) && stdout.contains(why),
        "{stdout}"
    );

    let (code, names, refused) = list(dir, &["--allow-insecure-plugins"]);
    assert_eq!(code, Some(0));
    assert_eq!(names, ["json"], "{refused:?}");
    assert!(refused.is_empty(), "{refused:?}");

    let (status, stdout, stderr) = output(
        temblor_only(&[])
            .args(["plugins", "check", "--allow-insecure-plugins"])
            .arg(file),
    );
    assert_eq!(status.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("ok: codec plugin 'json'"), "{stdout}");
    assert!(
        stdout.contains("warning: ")
            && stdout.contains(why)
            && stdout.contains("--allow-insecure-plugins"),
        "the override is not silent: {stdout}"
    );
}

#[test]
fn a_secure_copy_loads() {
    let (dir, _) = dir_with_json("secure");
    let (code, names, refused) = list(&dir, &["--strict"]);
    assert_eq!(code, Some(0), "{refused:?}");
    assert_eq!(names, ["json"]);
}

#[test]
fn a_plugin_file_writable_by_others_is_refused() {
    let (dir, file) = dir_with_json("file-666");
    chmod(&file, 0o666);
    assert_refused_unless_allowed(&dir, &file, "writable by group or others (mode 0666)");
}

#[test]
fn a_plugin_file_writable_by_its_group_is_refused() {
    let (dir, file) = dir_with_json("file-775");
    chmod(&file, 0o775);
    assert_refused_unless_allowed(&dir, &file, "writable by group or others (mode 0775)");
}

#[test]
fn a_plugin_directory_writable_by_others_is_refused() {
    let (dir, file) = dir_with_json("dir-777");
    chmod(&dir, 0o777);
    assert_refused_unless_allowed(
        &dir,
        &file,
        &format!(
            "its directory {} is writable by group or others (mode 0777)",
            dir.display()
        ),
    );
}

#[test]
fn a_refused_file_is_never_opened() {
    // glibc's dynamic loader reports every library it opens with LD_DEBUG=files; a refused
    // plugin must not be opened (its constructors would run), so it must not appear.
    let (dir, file) = dir_with_json("never-opened");
    chmod(&file, 0o666);
    let opened = |extra: &[&str]| {
        let mut cmd = temblor_only(&[&dir]);
        cmd.env("LD_DEBUG", "files")
            .args(["plugins", "list"])
            .args(extra);
        let (status, _, stderr) = output(&mut cmd);
        assert!(status.status.success(), "{stderr}");
        stderr
            .lines()
            .any(|l| l.contains(&format!("file={}", file.display())))
    };
    assert!(
        opened(&["--allow-insecure-plugins"]),
        "LD_DEBUG=files reports a plugin that is loaded"
    );
    assert!(!opened(&[]), "the refused plugin was opened");
}

/// Gives `path` to `nobody`; false when this process may not (only root may give files away).
fn give_to_nobody(path: &Path) -> bool {
    match chown(path, Some(NOBODY), None) {
        Ok(()) => true,
        Err(e) => {
            assert_eq!(
                e.kind(),
                std::io::ErrorKind::PermissionDenied,
                "chown {}: {e}",
                path.display()
            );
            eprintln!("not root: the ownership refusals cannot be set up here (CI runs as root)");
            false
        }
    }
}

/// The user running the tests (and the binary under test), as `/proc/self` says.
fn my_uid() -> u32 {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/self").unwrap().uid()
}

#[test]
fn a_plugin_file_owned_by_another_user_is_refused() {
    let (dir, file) = dir_with_json("owner-file");
    if give_to_nobody(&file) {
        assert_refused_unless_allowed(
            &dir,
            &file,
            &format!(
                "not owned by the user running temblor (uid {}) or root but by uid {NOBODY}",
                my_uid()
            ),
        );
    }
}

#[test]
fn a_plugin_directory_owned_by_another_user_is_refused() {
    let (dir, file) = dir_with_json("owner-dir");
    if give_to_nobody(&dir) {
        assert_refused_unless_allowed(
            &dir,
            &file,
            &format!(
                "its directory {} is not owned by the user running temblor (uid {}) or root",
                dir.display(),
                my_uid()
            ),
        );
    }
}
