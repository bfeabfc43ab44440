//! `cargo xtask new-plugin connector|codec NAME`: scaffolds a plugin crate and wires it in.
//!
//! 1. Checks NAME: lowercase ASCII letters, digits and `_`, starting with a letter, and no
//!    plugin folder of that name yet (plugin names are shared by connectors and codecs).
//! 2. Prepares the text edits: the crate in the root `Cargo.toml`'s `[workspace.dependencies]`,
//!    an optional dependency of `app/Cargo.toml` in its `monolith` feature, and a line in
//!    `builtin_modules` of `app/src/main.rs`. Each entry goes in sorted order among its
//!    group's; a missing anchor fails before anything is written, saying what to add by hand.
//! 3. Writes `connectors/NAME/` (package `connector-NAME`) or `codecs/NAME/` (`codec-NAME`)
//!    from the templates in `xtask/templates/`: a small working plugin with its doc, `Config`,
//!    unit tests and a `tests/it/main.rs` that runs the compliance harness (and, for a
//!    connector, the `dev.toml` deployment `cargo xtask dev NAME` runs); then the edits.
//! 4. Runs `cargo hakari generate` and `manage-deps` when cargo-hakari is installed (as
//!    `cargo xtask hakari` does), so the workspace-hack check stays green.
//! 5. Unless `--no-build`: `cargo build -p PACKAGE`, then installs it into `target/plugins`
//!    (dev profile) and checks that it loads, as `cargo xtask build-plugins --only NAME` does.
//!
//! `--root DIR` does all of it in another copy of the workspace (the end-to-end test uses it).

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail};

use crate::{
    build_plugins::{self, Profile},
    util::{project_root, run as run_cmd},
};

/// What kind of plugin to create.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A source and a sink (`connectors/NAME`, package `connector-NAME`).
    Connector,
    /// A codec (`codecs/NAME`, package `codec-NAME`).
    Codec,
}

impl Kind {
    /// The folder its crates live in.
    pub fn folder(self) -> &'static str {
        match self {
            Self::Connector => "connectors",
            Self::Codec => "codecs",
        }
    }

    /// The package name prefix (`connector` in `connector-file`).
    pub fn prefix(self) -> &'static str {
        match self {
            Self::Connector => "connector",
            Self::Codec => "codec",
        }
    }
}

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// What to create.
    #[arg(value_enum)]
    pub kind: Kind,
    /// The plugin's name: lowercase ASCII letters, digits and '_', starting with a letter.
    pub name: String,
    /// The workspace to add the plugin to (default: this project's root).
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Only create and wire in the files: build nothing, install nothing.
    #[arg(long)]
    pub no_build: bool,
}

/// The folders whose subfolders are plugins: a new name must not be taken in any of them.
const PLUGIN_FOLDERS: [&str; 3] = ["connectors", "codecs", "test-plugins"];

/// The crate to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCrate {
    pub kind: Kind,
    /// The plugin's name (`my_source`).
    pub name: String,
    /// `connector-my_source`.
    pub package: String,
    /// `connector_my_source`.
    pub lib: String,
    /// `connectors/my_source`, relative to the root.
    pub dir: PathBuf,
}

impl NewCrate {
    /// The names of a new plugin; checks the syntax of `name` only.
    ///
    /// # Errors
    /// When `name` is not a valid plugin name.
    pub fn new(kind: Kind, name: &str) -> Result<Self> {
        validate_name(name)?;
        let package = format!("{}-{name}", kind.prefix());
        Ok(Self {
            kind,
            name: name.to_owned(),
            lib: package.replace('-', "_"),
            package,
            dir: Path::new(kind.folder()).join(name),
        })
    }
}

/// Fails unless `name` is lowercase ASCII letters, digits and `_`, starting with a letter.
pub fn validate_name(name: &str) -> Result<()> {
    let rule = "a plugin name is lowercase ASCII letters, digits and '_', starting with a letter \
                (e.g. `my_source`)";
    let Some(first) = name.chars().next() else {
        bail!("the plugin name is empty: {rule}");
    };
    if !first.is_ascii_lowercase() {
        bail!("invalid plugin name '{name}': it starts with '{first}'; {rule}");
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_'))
    {
        bail!("invalid plugin name '{name}': '{bad}' is not allowed; {rule}");
    }
    if name.len() > 64 {
        bail!("invalid plugin name '{name}': longer than 64 characters");
    }
    Ok(())
}

/// Fails when a plugin folder named `name` exists under `root` (in any plugin folder: the
/// engine refuses two plugins of one name, whatever their kinds).
pub fn check_not_taken(root: &Path, name: &str) -> Result<()> {
    for folder in PLUGIN_FOLDERS {
        let dir = root.join(folder).join(name);
        if dir.exists() {
            bail!(
                "a plugin named '{name}' already exists: {} (plugin names are shared by \
                 connectors, codecs and test plugins; choose another name)",
                dir.display()
            );
        }
    }
    Ok(())
}

/// `my_source2` → `MySource2`: the prefix of the generated type names.
pub fn camel_case(name: &str) -> String {
    name.split('_')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect()
}

const CARGO_TOML: &str = include_str!("../templates/Cargo.toml.tmpl");
const CONNECTOR_LIB: &str = include_str!("../templates/connector/lib.rs.tmpl");
const CONNECTOR_IT: &str = include_str!("../templates/connector/it.rs.tmpl");
const CONNECTOR_DEV: &str = include_str!("../templates/connector/dev.toml.tmpl");
const LTO_EXAMPLE: &str = include_str!("../templates/lto.rs.tmpl");
const CODEC_LIB: &str = include_str!("../templates/codec/lib.rs.tmpl");
const CODEC_IT: &str = include_str!("../templates/codec/it.rs.tmpl");

/// Replaces every `{{key}}` of `template`.
fn render(template: &str, vars: &[(&str, &str)]) -> String {
    vars.iter().fold(template.to_owned(), |text, (key, value)| {
        text.replace(&format!("{{{{{key}}}}}"), value)
    })
}

/// The files of the new crate: paths relative to the root, and their contents.
pub fn crate_files(c: &NewCrate) -> Vec<(PathBuf, String)> {
    let camel = camel_case(&c.name);
    let description = match c.kind {
        Kind::Connector => "A source that emits `count` text frames; a sink that counts frames \
                            and writes them to a file."
            .to_owned(),
        Kind::Codec => {
            "Each frame is UTF-8 text after a fixed prefix; encodes the prefix back.".to_owned()
        }
    };
    let vars = [
        ("name", c.name.as_str()),
        ("package", c.package.as_str()),
        ("lib", c.lib.as_str()),
        ("Camel", camel.as_str()),
        ("description", description.as_str()),
    ];
    let (lib, it) = match c.kind {
        Kind::Connector => (CONNECTOR_LIB, CONNECTOR_IT),
        Kind::Codec => (CODEC_LIB, CODEC_IT),
    };
    let mut files = vec![
        (c.dir.join("Cargo.toml"), render(CARGO_TOML, &vars)),
        (c.dir.join("src/lib.rs"), render(lib, &vars)),
        (c.dir.join("tests/it/main.rs"), render(it, &vars)),
        (c.dir.join("examples/lto.rs"), render(LTO_EXAMPLE, &vars)),
    ];
    if c.kind == Kind::Connector {
        // The deployment `cargo xtask dev NAME` runs (for a codec it writes its own).
        files.push((c.dir.join("dev.toml"), render(CONNECTOR_DEV, &vars)));
    }
    files
}

/// A part of a file that holds a group of entries, one per line.
struct Region {
    /// What it is, for messages.
    what: &'static str,
    /// Whether a line (without its line break) opens it.
    starts: fn(&str) -> bool,
    /// Whether a later line closes it.
    ends: fn(&str) -> bool,
}

/// A TOML table `[name]`: from its header to the next header.
fn is_table_header(line: &str) -> bool {
    line.trim_start().starts_with('[')
}

const WORKSPACE_DEPS: Region = Region {
    what: "the `[workspace.dependencies]` table",
    starts: |l| l.trim() == "[workspace.dependencies]",
    ends: is_table_header,
};

const MONOLITH_FEATURE: Region = Region {
    what: "the `monolith = [` feature list (one entry per line)",
    starts: |l| l.trim() == "monolith = [",
    ends: |l| l.trim_start().starts_with(']'),
};

const APP_DEPS: Region = Region {
    what: "the `[dependencies]` table",
    starts: |l| l.trim() == "[dependencies]",
    ends: is_table_header,
};

const BUILTIN_MODULES: Region = Region {
    what: "`fn builtin_modules` (up to its closing `}` in column 0)",
    starts: |l| l.contains("fn builtin_modules("),
    ends: |l| l == "}",
};

/// The plugin name of a group entry: what follows `prefix` up to the first character that
/// cannot be in a name (`connector-file = ...` with prefix `connector-` gives `file`).
fn entry_key<'a>(line: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = line.trim_start().strip_prefix(prefix)?;
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    Some(&rest[..end])
}

/// Inserts `entry` as a line of the group of lines starting with `prefix` inside `region` of
/// `text`, before the first entry whose name sorts after `name`, with the group's indentation.
/// `Ok(None)` when the group already has an entry for `name` (nothing to do).
///
/// # Errors
/// When the region or the group cannot be found: `file` and what to add by hand are named.
fn insert_in_group(
    text: &str,
    file: &str,
    region: &Region,
    prefix: &str,
    name: &str,
    entry: &str,
) -> Result<Option<String>> {
    let by_hand = || format!("add `{entry}` there by hand, or restore the anchor");
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let bare = |i: usize| lines[i].trim_end_matches(['\n', '\r']);
    let start = (0..lines.len())
        .find(|&i| (region.starts)(bare(i)))
        .with_context(|| format!("{file}: cannot find {}; {}", region.what, by_hand()))?;
    let end = (start + 1..lines.len())
        .find(|&i| (region.ends)(bare(i)))
        .unwrap_or(lines.len());
    let members: Vec<(usize, &str)> = (start + 1..end)
        .filter_map(|i| entry_key(lines[i], prefix).map(|key| (i, key)))
        .collect();
    let (Some(&(first, _)), Some(&(last, _))) = (members.first(), members.last()) else {
        bail!(
            "{file}: {} has no line starting with `{prefix}` to put the new entry beside; {}",
            region.what,
            by_hand()
        );
    };
    if members.iter().any(|&(_, key)| key == name) {
        return Ok(None);
    }
    let at = members
        .iter()
        .find(|&&(_, key)| key > name)
        .map_or(last + 1, |&(i, _)| i);
    let indent_len = lines[first].len() - lines[first].trim_start().len();
    let indent = &lines[first][..indent_len];
    let line_break = if lines[first].ends_with("\r\n") {
        "\r\n"
    } else {
        "\n"
    };
    let mut out = String::with_capacity(text.len() + entry.len() + indent.len() + 2);
    out.extend(lines[..at].iter().copied());
    if at > 0 && !lines[at - 1].ends_with('\n') {
        out.push_str(line_break);
    }
    out.push_str(indent);
    out.push_str(entry);
    out.push_str(line_break);
    out.extend(lines[at..].iter().copied());
    Ok(Some(out))
}

/// Adds the crate to the root `Cargo.toml`'s `[workspace.dependencies]`, among its kind's.
pub fn add_workspace_dependency(text: &str, c: &NewCrate) -> Result<Option<String>> {
    let entry = format!(
        "{} = {{ path = \"{}/{}\", default-features = false }}",
        c.package,
        c.kind.folder(),
        c.name
    );
    let prefix = format!("{}-", c.kind.prefix());
    insert_in_group(
        text,
        "Cargo.toml",
        &WORKSPACE_DEPS,
        &prefix,
        &c.name,
        &entry,
    )
}

/// Adds `dep:PACKAGE` to the `monolith` feature and the optional dependency to
/// `app/Cargo.toml`.
pub fn add_app_dependency(text: &str, c: &NewCrate) -> Result<Option<String>> {
    let file = "app/Cargo.toml";
    let feature = format!("\"dep:{}\",", c.package);
    let feature_prefix = format!("\"dep:{}-", c.kind.prefix());
    let after_feature = insert_in_group(
        text,
        file,
        &MONOLITH_FEATURE,
        &feature_prefix,
        &c.name,
        &feature,
    )?;
    let current = after_feature.as_deref().unwrap_or(text);
    let dependency = format!("{} = {{ workspace = true, optional = true }}", c.package);
    let dep_prefix = format!("{}-", c.kind.prefix());
    let after_dependency =
        insert_in_group(current, file, &APP_DEPS, &dep_prefix, &c.name, &dependency)?;
    Ok(after_dependency.or(after_feature))
}

/// Adds `LIB::plugin_module(),` to `builtin_modules` in `app/src/main.rs`.
pub fn add_builtin_module(text: &str, c: &NewCrate) -> Result<Option<String>> {
    let entry = format!("{}::plugin_module(),", c.lib);
    let prefix = format!("{}_", c.kind.prefix());
    insert_in_group(
        text,
        "app/src/main.rs",
        &BUILTIN_MODULES,
        &prefix,
        &c.name,
        &entry,
    )
}

/// A shared file and its edited text.
struct Edit {
    path: PathBuf,
    text: String,
}

/// Reads the shared files and prepares every edit, so a missing anchor fails before anything
/// is written.
fn prepare_edits(root: &Path, c: &NewCrate) -> Result<Vec<Edit>> {
    type EditFn = fn(&str, &NewCrate) -> Result<Option<String>>;
    let steps: [(&str, EditFn); 3] = [
        ("Cargo.toml", add_workspace_dependency),
        ("app/Cargo.toml", add_app_dependency),
        ("app/src/main.rs", add_builtin_module),
    ];
    let mut edits = Vec::new();
    for (file, edit) in steps {
        let path = root.join(file);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        match edit(&text, c)? {
            Some(text) => edits.push(Edit { path, text }),
            None => eprintln!("{file} already lists {}", c.package),
        }
    }
    Ok(edits)
}

/// `cargo` (as the user invoked it) run in `root`.
fn cargo_in(root: &Path) -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(root);
    cmd
}

/// Writes the crate's files; removes the folder again when that fails halfway.
fn write_crate(root: &Path, c: &NewCrate) -> Result<()> {
    let write_all = || -> Result<()> {
        for (rel, contents) in crate_files(c) {
            let path = root.join(rel);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("cannot create {}", parent.display()))?;
            }
            std::fs::write(&path, contents)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        Ok(())
    };
    write_all().inspect_err(|_| {
        let _ = std::fs::remove_dir_all(root.join(&c.dir));
    })
}

/// Formats the generated Rust files (the templates are formatted, but a long name can change
/// where rustfmt breaks lines). A missing rustfmt is a warning, not a failure.
fn format_files(root: &Path, c: &NewCrate) {
    let files = [c.dir.join("src/lib.rs"), c.dir.join("tests/it/main.rs")];
    let status = Command::new("rustfmt")
        .args(["--edition", "2024"])
        .args(&files)
        .current_dir(root)
        .status();
    if !status.is_ok_and(|s| s.success()) {
        eprintln!(
            "warning: could not run rustfmt on {}: run `cargo fmt -p {}`",
            c.dir.display(),
            c.package
        );
    }
}

/// Whether `cargo hakari` can be run in `root`.
fn hakari_available(root: &Path) -> bool {
    cargo_in(root)
        .args(["hakari", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// What `cargo xtask hakari` does, in `root`.
fn hakari(root: &Path) -> Result<()> {
    if !hakari_available(root) {
        eprintln!(
            "cargo-hakari is not installed, so workspace-hack was not updated: \
             `cargo install cargo-hakari --locked`, then `cargo xtask hakari` \
             (`cargo xtask test` checks it when cargo-hakari is installed)"
        );
        return Ok(());
    }
    run_cmd(cargo_in(root).args(["hakari", "generate"]))?;
    run_cmd(cargo_in(root).args(["hakari", "manage-deps", "--yes"]))?;
    run_cmd(cargo_in(root).args(["hakari", "verify"]))
}

/// Builds the crate and installs it into `target/plugins` (dev profile), checking it loads.
fn build(root: &Path, c: &NewCrate) -> Result<()> {
    run_cmd(cargo_in(root).args(["build", "-p", &c.package]))?;
    if same_dir(root, &project_root()) {
        build_plugins::run(&build_plugins::Args {
            profile: Profile::Dev,
            only: vec![c.name.clone()],
            out: None,
            test_plugins: false,
        })?;
    } else {
        // Another copy of the workspace: its own xtask knows its own paths.
        run_cmd(cargo_in(root).args([
            "xtask",
            "build-plugins",
            "--profile",
            "dev",
            "--only",
            &c.name,
        ]))?;
    }
    Ok(())
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

pub fn run(args: &Args) -> Result<()> {
    let root = args.root.clone().unwrap_or_else(project_root);
    let root = root
        .canonicalize()
        .with_context(|| format!("no such folder: {}", root.display()))?;
    if !root.join("Cargo.toml").is_file() {
        bail!(
            "{} has no Cargo.toml: give --root the workspace root",
            root.display()
        );
    }
    let c = NewCrate::new(args.kind, &args.name)?;
    check_not_taken(&root, &c.name)?;
    let edits = prepare_edits(&root, &c)?;

    write_crate(&root, &c)?;
    for edit in &edits {
        std::fs::write(&edit.path, &edit.text)
            .with_context(|| format!("cannot write {}", edit.path.display()))?;
        eprintln!("updated {}", edit.path.display());
    }
    format_files(&root, &c);
    eprintln!("created {} ({})", root.join(&c.dir).display(), c.package);
    hakari(&root).context("the plugin was created, but updating workspace-hack failed")?;

    if args.no_build {
        eprintln!("not built (--no-build)");
    } else {
        build(&root, &c).context("the plugin was created, but building it failed")?;
    }
    print!("{}", next_steps(&root, &c, args.no_build));
    Ok(())
}

/// Two columns: what to look at or run, and why.
fn table(rows: &[(String, &str)]) -> String {
    let width = rows.iter().map(|(left, _)| left.len()).max().unwrap_or(0);
    rows.iter()
        .map(|(left, right)| format!("  {left:<width$}   {right}\n"))
        .collect()
}

/// Where the code is and what to run next.
fn next_steps(root: &Path, c: &NewCrate, no_build: bool) -> String {
    let dir = root.join(&c.dir);
    let mut files = vec![
        (
            "src/lib.rs".to_owned(),
            "the code: its doc (config keys, an example), Config, the implementation, tests",
        ),
        (
            "tests/it/main.rs".to_owned(),
            "the compliance harness, through the plugin's ABI objects",
        ),
    ];
    if c.kind == Kind::Connector {
        files.push((
            "dev.toml".to_owned(),
            "the deployment `cargo xtask dev` runs with it",
        ));
    }
    let mut commands = vec![(
        format!("cargo test -p {}", c.package),
        "its unit tests and the compliance harness",
    )];
    if no_build {
        commands.push((
            format!("cargo xtask build-plugins --only {}", c.name),
            "build it into target/plugins, check it loads",
        ));
    }
    commands.push((
        format!("cargo xtask dev {}", c.name),
        "run it, rebuild and hot-reload it on every save",
    ));
    commands.push((
        "cargo build -p temblor --features monolith".to_owned(),
        "the monolith, with it linked in",
    ));
    format!(
        "\nNew {} plugin '{}' (package {}) in {}:\n{}\nNext:\n{}",
        c.kind.prefix(),
        c.name,
        c.package,
        dir.display(),
        table(&files),
        table(&commands)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connector(name: &str) -> NewCrate {
        NewCrate::new(Kind::Connector, name).unwrap()
    }

    fn codec(name: &str) -> NewCrate {
        NewCrate::new(Kind::Codec, name).unwrap()
    }

    #[test]
    fn next_steps_say_where_and_what() {
        let text = next_steps(Path::new("/w"), &connector("my_source"), true);
        assert!(text.contains("in /w/connectors/my_source:"), "{text}");
        assert!(
            text.contains("\n  cargo test -p connector-my_source   "),
            "{text}"
        );
        assert!(
            text.contains("cargo xtask build-plugins --only my_source"),
            "{text}"
        );
        assert!(text.contains("cargo xtask dev my_source"), "{text}");
        assert!(text.contains("dev.toml"), "{text}");
        let text = next_steps(Path::new("/w"), &codec("upper"), false);
        assert!(
            !text.contains("build-plugins") && !text.contains("dev.toml"),
            "{text}"
        );
    }

    #[test]
    fn valid_names() {
        for name in ["a", "my_source", "http2", "s3_sink_v2", "x_"] {
            validate_name(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    #[test]
    fn invalid_names_say_why() {
        let long = "a".repeat(65);
        for (name, needle) in [
            ("", "empty"),
            ("My", "starts with 'M'"),
            ("1st", "starts with '1'"),
            ("_x", "starts with '_'"),
            ("my-source", "'-' is not allowed"),
            ("mySource", "'S' is not allowed"),
            ("a b", "' ' is not allowed"),
            ("café", "'é' is not allowed"),
            ("a/b", "'/' is not allowed"),
            (long.as_str(), "longer than 64"),
        ] {
            let err = validate_name(name).expect_err(name).to_string();
            assert!(err.contains(needle), "{name}: {err}");
        }
    }

    #[test]
    fn names_of_the_crate() {
        let c = connector("my_source");
        assert_eq!(c.package, "connector-my_source");
        assert_eq!(c.lib, "connector_my_source");
        assert_eq!(c.dir, Path::new("connectors/my_source"));
        let c = codec("upper");
        assert_eq!(c.package, "codec-upper");
        assert_eq!(c.dir, Path::new("codecs/upper"));
        assert_eq!(camel_case("my_source2"), "MySource2");
        assert_eq!(camel_case("a__b_"), "AB");
        assert_eq!(camel_case("x"), "X");
    }

    #[test]
    fn existing_plugin_folders_are_taken_whatever_their_kind() {
        let root = project_root();
        for name in ["file", "json", "panicky"] {
            let err = check_not_taken(&root, name).expect_err(name).to_string();
            assert!(err.contains("already exists"), "{err}");
        }
        check_not_taken(&root, "no_such_plugin_here").unwrap();
    }

    #[test]
    fn templates_are_fully_rendered() {
        for c in [connector("my_source"), codec("upper")] {
            for (path, text) in crate_files(&c) {
                assert!(!text.contains("{{"), "{}: {text}", path.display());
                assert!(text.contains(&c.name) || path.ends_with("Cargo.toml"));
            }
        }
        let files = crate_files(&connector("my_source"));
        assert!(files[0].1.contains("name = \"connector-my_source\""));
        assert!(files[0].1.contains("name = \"connector_my_source\""));
        assert!(files[1].1.contains("pub struct MySourceSource"));
        assert!(files[1].1.contains("name: \"my_source\""));
        assert!(files[2].1.contains("connector_my_source::plugin_module()"));
        assert!(files[3].1.contains("use connector_my_source as _;"));
        assert!(files[0].1.contains("name = \"connector_my_source_lto\""));
        assert!(files[4].1.contains("plugin = \"my_source\""));
        assert_eq!(crate_files(&codec("upper")).len(), 4);
    }

    const WORKSPACE: &str = r#"[workspace]
members = ["connectors/*"]

[workspace.dependencies]
# internal
temblor-shim = { path = "shim" }
connector-bench = { path = "connectors/bench", default-features = false }
connector-file = { path = "connectors/file", default-features = false }
connector-http_client = { path = "connectors/http_client", default-features = false }
codec-json = { path = "codecs/json", default-features = false }
codec-yaml = { path = "codecs/yaml", default-features = false }

# external
anyhow = "1"

[workspace.lints.rust]
"#;

    #[test]
    fn workspace_dependency_goes_in_sorted_order_in_its_group() {
        let out = add_workspace_dependency(WORKSPACE, &connector("exit"))
            .unwrap()
            .unwrap();
        let expected = WORKSPACE.replace(
            "connector-file =",
            "connector-exit = { path = \"connectors/exit\", default-features = false }\n\
             connector-file =",
        );
        assert_eq!(out, expected);

        // Before the first, after the last, and `http` before `http_client`.
        let out = add_workspace_dependency(WORKSPACE, &connector("a"))
            .unwrap()
            .unwrap();
        assert!(out.contains("# internal\ntemblor-shim = { path = \"shim\" }\nconnector-a = "));
        let out = add_workspace_dependency(WORKSPACE, &connector("zz"))
            .unwrap()
            .unwrap();
        assert!(out.contains("connectors/http_client\", default-features = false }\nconnector-zz"));
        let out = add_workspace_dependency(WORKSPACE, &connector("http"))
            .unwrap()
            .unwrap();
        assert!(
            out.contains("connectors/http\", default-features = false }\nconnector-http_client")
        );
        let out = add_workspace_dependency(WORKSPACE, &codec("zz"))
            .unwrap()
            .unwrap();
        assert!(out.contains(
            "codec-yaml = { path = \"codecs/yaml\", default-features = false }\n\
             codec-zz = { path = \"codecs/zz\", default-features = false }\n\n# external"
        ));
    }

    #[test]
    fn edits_are_idempotent() {
        let once = add_workspace_dependency(WORKSPACE, &codec("csv"))
            .unwrap()
            .unwrap();
        assert_eq!(
            add_workspace_dependency(&once, &codec("csv")).unwrap(),
            None
        );
        // An existing entry is found whatever its form.
        assert_eq!(
            add_workspace_dependency(WORKSPACE, &codec("json")).unwrap(),
            None
        );
        // A name that prefixes an existing one is not a duplicate.
        assert!(
            add_workspace_dependency(WORKSPACE, &codec("jso"))
                .unwrap()
                .is_some()
        );

        let app = add_app_dependency(APP, &codec("csv")).unwrap().unwrap();
        assert_eq!(add_app_dependency(&app, &codec("csv")).unwrap(), None);
        let main = add_builtin_module(MAIN, &codec("csv")).unwrap().unwrap();
        assert_eq!(add_builtin_module(&main, &codec("csv")).unwrap(), None);
    }

    #[test]
    fn a_missing_anchor_is_a_clear_error() {
        let err = add_workspace_dependency("[workspace]\n", &connector("x"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("Cargo.toml: cannot find the `[workspace.dependencies]`"),
            "{err}"
        );
        assert!(
            err.contains("connector-x = { path = \"connectors/x\""),
            "{err}"
        );

        let no_codecs = WORKSPACE
            .lines()
            .filter(|l| !l.starts_with("codec-"))
            .collect::<Vec<_>>()
            .join("\n");
        let err = add_workspace_dependency(&no_codecs, &codec("x"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("no line starting with `codec-`"), "{err}");

        let err = add_app_dependency("[dependencies]\n", &codec("x"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("app/Cargo.toml: cannot find the `monolith = [`"),
            "{err}"
        );
        let err = add_builtin_module("fn main() {}\n", &codec("x"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("app/src/main.rs: cannot find `fn builtin_modules`"),
            "{err}"
        );
        assert!(err.contains("codec_x::plugin_module(),"), "{err}");
    }

    const APP: &str = r#"[package]
name = "temblor"

[features]
# Links every connector and codec crate.
monolith = [
    "dep:connector-bench",
    "dep:connector-file",
    "dep:codec-binary",
    "dep:codec-json",
]

[dependencies]
anyhow.workspace = true
connector-bench = { workspace = true, optional = true }
connector-file = { workspace = true, optional = true }
codec-binary = { workspace = true, optional = true }
codec-json = { workspace = true, optional = true }
workspace-hack = { version = "0.1", path = "../workspace-hack" }

[dev-dependencies]
codec-json.workspace = true
"#;

    #[test]
    fn app_gets_a_feature_entry_and_an_optional_dependency() {
        let out = add_app_dependency(APP, &codec("csv")).unwrap().unwrap();
        let expected = APP
            .replace(
                "    \"dep:codec-json\",",
                "    \"dep:codec-csv\",\n    \"dep:codec-json\",",
            )
            .replace(
                "codec-json = { workspace",
                "codec-csv = { workspace = true, optional = true }\ncodec-json = { workspace",
            );
        assert_eq!(out, expected);

        let out = add_app_dependency(APP, &connector("zz")).unwrap().unwrap();
        assert!(out.contains(
            "\"dep:connector-file\",\n    \"dep:connector-zz\",\n    \"dep:codec-binary\""
        ));
        assert!(out.contains(
            "optional = true }\nconnector-zz = { workspace = true, optional = true }\ncodec-binary"
        ));
    }

    const MAIN: &str = "/// The plugins linked into this binary.
fn builtin_modules() -> Vec<PluginModRef> {
    #[cfg(feature = \"monolith\")]
    {
        vec![
            connector_bench::plugin_module(),
            connector_file::plugin_module(),
            codec_binary::plugin_module(),
            codec_yaml::plugin_module(),
        ]
    }
    #[cfg(not(feature = \"monolith\"))]
    {
        Vec::new()
    }
}

fn connector_other() {}
";

    #[test]
    fn builtin_modules_get_a_line_in_sorted_order() {
        let out = add_builtin_module(MAIN, &connector("exit"))
            .unwrap()
            .unwrap();
        assert_eq!(
            out,
            MAIN.replace(
                "            connector_file::",
                "            connector_exit::plugin_module(),\n            connector_file::"
            )
        );
        let out = add_builtin_module(MAIN, &codec("zz")).unwrap().unwrap();
        assert!(out.contains(
            "codec_yaml::plugin_module(),\n            codec_zz::plugin_module(),\n        ]"
        ));
    }

    #[test]
    fn crlf_files_stay_crlf() {
        let crlf = WORKSPACE.replace('\n', "\r\n");
        let out = add_workspace_dependency(&crlf, &connector("exit"))
            .unwrap()
            .unwrap();
        assert!(out.contains("connector-exit = { path = \"connectors/exit\", default-features = false }\r\nconnector-file"));
        assert!(!out.replace("\r\n", "").contains('\n'));
    }

    #[test]
    fn the_real_shared_files_have_their_anchors() {
        let root = project_root();
        let c = connector("zz_not_a_plugin");
        let edits = prepare_edits(&root, &c).unwrap();
        assert_eq!(edits.len(), 3);
        for edit in edits {
            assert!(
                edit.text.contains("zz_not_a_plugin"),
                "{}",
                edit.path.display()
            );
        }
    }
}
