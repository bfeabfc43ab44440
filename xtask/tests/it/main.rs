//! `tidy`: the architecture's invariants, checked on the tree (module `tidy`).
//!
//! End to end: `cargo xtask new-plugin` for a connector and a codec in a copy of the workspace,
//! then the generated crates' own tests and clippy there, then the monolith with both linked
//! in, running a deployment through them.
//!
//! The copy is `target/scaffold-test/workspace` (the workspace's files as git lists them, with
//! their modification times) and builds into `target/scaffold-test/target`, so a second run
//! rebuilds only the generated crates and the app. A lock file serializes concurrent runs.

mod tidy;

/// The deployment writer xtask's tasks use (a file of xtask's own: this test is another crate).
#[path = "../../src/deploy.rs"]
mod deploy;

use std::{
    fs::File,
    path::{Path, PathBuf},
    process::{Command, Output},
    time::Instant,
};

const CONNECTOR: &str = "scaffold_conn";
const CODEC: &str = "scaffold_codec";

/// A file of this workspace (not the copy).
fn read_root(rel: &str) -> String {
    std::fs::read_to_string(project_root().join(rel)).expect(rel)
}

fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask is in the workspace")
        .to_path_buf()
}

/// `target/scaffold-test` under the target directory that built this test.
fn scratch() -> PathBuf {
    let xtask = Path::new(env!("CARGO_BIN_EXE_xtask"));
    // target/<profile>/xtask
    let target = xtask
        .parent()
        .and_then(Path::parent)
        .expect("the xtask binary is in the target directory");
    target.join("scaffold-test")
}

/// The workspace's files, relative to `root`: tracked and untracked but not ignored ones, as
/// git lists them; without git, every file outside `target/` and `.git/`.
fn workspace_files(root: &Path) -> Vec<PathBuf> {
    let listed = Command::new("git")
        .arg("-C")
        .arg(root)
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .output();
    if let Ok(out) = listed
        && out.status.success()
    {
        return out
            .stdout
            .split(|&b| b == 0)
            .filter(|p| !p.is_empty())
            .map(|p| PathBuf::from(String::from_utf8_lossy(p).into_owned()))
            .collect();
    }
    let mut files = Vec::new();
    walk(root, Path::new(""), &mut files);
    files
}

fn walk(root: &Path, rel: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(root.join(rel)) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if name == "target" || name == ".git" {
            continue;
        }
        let rel = rel.join(&name);
        match entry.file_type() {
            Ok(t) if t.is_dir() => walk(root, &rel, files),
            Ok(t) if t.is_file() => files.push(rel),
            _ => {}
        }
    }
}

/// Copies the workspace to `to` (emptied first), keeping modification times so cargo sees
/// unchanged files as unchanged.
fn copy_workspace(from: &Path, to: &Path) {
    if to.exists() {
        std::fs::remove_dir_all(to).expect("remove the previous copy");
    }
    let skip = [
        Path::new("connectors").join(CONNECTOR),
        Path::new("codecs").join(CODEC),
        Path::new("fuzz/fuzz_targets").join(format!("codec_{CODEC}.rs")),
    ];
    for rel in workspace_files(from) {
        let src = from.join(&rel);
        if !src.is_file() || skip.iter().any(|s| rel.starts_with(s)) {
            // Deleted but not yet staged, or a leftover of a real run.
            continue;
        }
        let dst = to.join(&rel);
        std::fs::create_dir_all(dst.parent().expect("a file has a folder")).expect("mkdir");
        std::fs::copy(&src, &dst).unwrap_or_else(|e| panic!("copy {}: {e}", src.display()));
        let modified = std::fs::metadata(&src)
            .and_then(|m| m.modified())
            .expect("mtime");
        File::options()
            .write(true)
            .open(&dst)
            .and_then(|f| f.set_modified(modified))
            .expect("set mtime");
    }
}

/// Runs `cmd`, failing the test with its output when it fails; returns its output.
fn ok(cmd: &mut Command) -> Output {
    let started = Instant::now();
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{stderr}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
    eprintln!("{:>6.1} s  {cmd:?}", started.elapsed().as_secs_f64());
    out
}

fn xtask(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.args(args);
    cmd
}

fn cargo(workspace: &Path, target: &Path) -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(workspace).env("CARGO_TARGET_DIR", target);
    cmd
}

fn dylib(lib: &str) -> String {
    format!(
        "{}{lib}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    )
}

#[test]
fn new_plugins_build_pass_their_tests_and_run_in_the_monolith() {
    let started = Instant::now();
    let scratch = scratch();
    std::fs::create_dir_all(&scratch).expect("mkdir scratch");
    let lock = File::create(scratch.join("lock")).expect("lock file");
    lock.lock().expect("lock");
    let workspace = scratch.join("workspace");
    let target = scratch.join("target");
    copy_workspace(&project_root(), &workspace);
    eprintln!("{:>6.1} s  copied", started.elapsed().as_secs_f64());
    let root = workspace.to_str().expect("a UTF-8 path");

    for (kind, name) in [("connector", CONNECTOR), ("codec", CODEC)] {
        ok(&mut xtask(&[
            "new-plugin",
            kind,
            name,
            "--root",
            root,
            "--no-build",
        ]));
    }
    let conn_dir = workspace.join("connectors").join(CONNECTOR);
    let codec_dir = workspace.join("codecs").join(CODEC);
    assert!(conn_dir.join("dev.toml").is_file());
    for file in ["Cargo.toml", "src/lib.rs", "tests/it/main.rs"] {
        assert!(conn_dir.join(file).is_file(), "{file}");
        assert!(codec_dir.join(file).is_file(), "{file}");
    }
    let fuzz_target = workspace.join(format!("fuzz/fuzz_targets/codec_{CODEC}.rs"));
    assert!(fuzz_target.is_file());
    let read = |rel: &str| std::fs::read_to_string(workspace.join(rel)).expect(rel);
    // Wired in: the app's optional dependency and `monolith` feature, the codec's fuzz target;
    // the workspace members (globs), the built-in list (app/build.rs) and the release example
    // (shim/lto.rs) need nothing.
    let app = read("app/Cargo.toml");
    for package in [format!("connector-{CONNECTOR}"), format!("codec-{CODEC}")] {
        assert!(app.contains(&format!("    \"{package}\",\n")), "{app}");
    }
    assert!(app.contains(&format!(
        "codec-{CODEC} = {{ path = \"../codecs/{CODEC}\", default-features = false, optional = true }}"
    )));
    let fuzz = read("fuzz/Cargo.toml");
    assert!(fuzz.contains(&format!(
        "codec-{CODEC} = {{ path = \"../codecs/{CODEC}\", default-features = false }}"
    )));
    assert!(fuzz.contains(&format!(
        "name = \"codec_{CODEC}\"\npath = \"fuzz_targets/codec_{CODEC}.rs\""
    )));
    assert_eq!(read("Cargo.toml"), read_root("Cargo.toml"));

    // A second time, and a bad name, fail without touching anything.
    for (name, needle) in [
        (CODEC, "already exists"),
        ("Bad-Name", "invalid plugin name"),
    ] {
        let out = xtask(&["new-plugin", "codec", name, "--root", root, "--no-build"])
            .output()
            .expect("run xtask");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains(needle), "{stderr}");
    }
    assert_eq!(read("app/Cargo.toml"), app);
    assert_eq!(read("fuzz/Cargo.toml"), fuzz);

    // The generated files are formatted.
    ok(Command::new("rustfmt")
        .current_dir(&workspace)
        .args(["--edition", "2024", "--check"])
        .args([
            conn_dir.join("src/lib.rs"),
            conn_dir.join("tests/it/main.rs"),
            codec_dir.join("src/lib.rs"),
            codec_dir.join("tests/it/main.rs"),
            fuzz_target.clone(),
        ]));

    // Their own tests: unit tests, and the compliance harness through the ABI.
    let conn_package = format!("connector-{CONNECTOR}");
    let codec_package = format!("codec-{CODEC}");
    let out =
        ok(cargo(&workspace, &target).args(["test", "-p", &conn_package, "-p", &codec_package]));
    // Every generated test ran (`codec_tests!` writes two).
    let written: usize = [
        conn_dir.join("src/lib.rs"),
        conn_dir.join("tests/it/main.rs"),
        codec_dir.join("src/lib.rs"),
        codec_dir.join("tests/it/main.rs"),
    ]
    .iter()
    .map(|f| {
        let text = std::fs::read_to_string(f).expect("read");
        text.matches("#[test]").count() + 2 * text.matches("codec_tests!(").count()
    })
    .sum();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let passed: usize = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("test result: ok. "))
        .filter_map(|l| {
            l.split_once(" passed")
                .and_then(|(n, _)| n.parse::<usize>().ok())
        })
        .sum();
    assert!(written >= 10, "{written} tests generated");
    assert_eq!(passed, written, "{stdout}");
    // And they are clean for `cargo xtask test`'s lint step.
    ok(cargo(&workspace, &target).args([
        "clippy",
        "-p",
        &conn_package,
        "-p",
        &codec_package,
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]));

    // The cdylibs those tests built (in deps/: a test build does not copy them up) load as
    // plugins. Kept aside: the monolith build below rebuilds them without their header.
    let plugins = scratch.join("plugins");
    std::fs::create_dir_all(&plugins).expect("mkdir plugins");
    let mut libraries = Vec::new();
    for lib in [format!("connector_{CONNECTOR}"), format!("codec_{CODEC}")] {
        let file = dylib(&lib);
        let to = plugins.join(&file);
        std::fs::copy(target.join("debug/deps").join(&file), &to)
            .unwrap_or_else(|e| panic!("{file} was built by cargo test: {e}"));
        libraries.push(to);
        // The `<lib>_lto` example release builds ship (cargo test builds examples too).
        let file = dylib(&format!("{lib}_lto"));
        let to = plugins.join(&file);
        std::fs::copy(target.join("debug/examples").join(&file), &to)
            .unwrap_or_else(|e| panic!("{file} was built by cargo test: {e}"));
        libraries.push(to);
    }

    // The monolith links both and runs a deployment through them: the connector's source
    // emits `hi 0`..`hi 2`, the codec decodes them after the prefix `hi ` and encodes them
    // back, the connector's sink writes them one per line.
    ok(cargo(&workspace, &target).args(["build", "-p", "temblor", "--features", "monolith"]));
    let temblor = target
        .join("debug")
        .join(format!("temblor{}", std::env::consts::EXE_SUFFIX));
    for library in &libraries {
        let out = ok(Command::new(&temblor)
            .args(["plugins", "check", "--allow-insecure-plugins"])
            .arg(library));
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(said.contains(": ok: "), "{said}");
    }
    // The connector's dev.toml (what `cargo xtask dev` runs) is a valid deployment.
    ok(Command::new(&temblor)
        .current_dir(&workspace)
        .args(["validate"])
        .arg(conn_dir.join("dev.toml")));

    let run = scratch.join("run");
    std::fs::create_dir_all(&run).expect("mkdir run");
    let out_file = run.join("out.txt");
    let _ = std::fs::remove_file(&out_file);
    let codec = format!("codec = {{ name = \"{CODEC}\", config = {{ prefix = \"hi \" }} }}");
    let deployment = deploy::passthrough(
        "# Written by the scaffold test.",
        &deploy::connector(
            "in",
            CONNECTOR,
            &[&codec, r#"config = { count = 3, text = "hi" }"#],
        ),
        &deploy::connector(
            "out",
            CONNECTOR,
            &[
                &codec,
                r#"postprocessors = ["separate"]"#,
                r#"config = { path = "out.txt" }"#,
            ],
        ),
        "[]",
    );
    std::fs::write(run.join("deployment.toml"), deployment).expect("write deployment");
    ok(Command::new(&temblor)
        .current_dir(&run)
        .args(["run", "deployment.toml"]));
    assert_eq!(
        std::fs::read_to_string(&out_file).expect("the sink wrote its file"),
        "hi 0\nhi 1\nhi 2\n"
    );
    eprintln!("{:>6.1} s  in all", started.elapsed().as_secs_f64());
}
