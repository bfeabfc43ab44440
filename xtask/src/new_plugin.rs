//! `cargo xtask new-plugin connector|codec NAME`: scaffolds a plugin crate and wires it in.
//!
//! 1. Checks NAME: lowercase ASCII letters, digits and `_`, starting with a letter, and no
//!    plugin folder of that name yet (plugin names are shared by connectors and codecs).
//! 2. Prepares the manifest edits with `toml_edit` (comments and layout kept): the optional
//!    dependency in `app/Cargo.toml` and its name in the `monolith` feature, and for a codec its
//!    fuzz target in `fuzz/Cargo.toml`. That is all there is to wire in: the workspace takes
//!    `connectors/*` and `codecs/*` as members, `app/build.rs` generates the monolith's list of
//!    built-in modules from the enabled features, and every plugin's release example is the
//!    shared `shim/lto.rs`. A manifest that cannot be edited fails before anything is written.
//! 3. Copies the templates of `xtask/templates/` with their placeholders filled in:
//!    `connectors/NAME/` (package `connector-NAME`) or `codecs/NAME/` (`codec-NAME`), a small
//!    working plugin with its doc, `Config`, unit tests and a `tests/it/main.rs` that runs the
//!    compliance harness (and, for a connector, the `dev.toml` deployment `cargo xtask dev NAME`
//!    runs; for a codec, `fuzz/fuzz_targets/codec_NAME.rs`); then the edits.
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
use toml_edit::{Array, DocumentMut, InlineTable, Item, Key, Table, value};

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
const CODEC_LIB: &str = include_str!("../templates/codec/lib.rs.tmpl");
const CODEC_IT: &str = include_str!("../templates/codec/it.rs.tmpl");
const CODEC_FUZZ: &str = include_str!("../templates/codec/fuzz.rs.tmpl");

/// Replaces every `{{key}}` of `template`.
fn render(template: &str, vars: &[(&str, &str)]) -> String {
    vars.iter().fold(template.to_owned(), |text, (key, value)| {
        text.replace(&format!("{{{{{key}}}}}"), value)
    })
}

/// A codec's fuzz target, relative to the root: `fuzz/fuzz_targets/codec_NAME.rs`.
fn fuzz_target(c: &NewCrate) -> PathBuf {
    Path::new("fuzz/fuzz_targets").join(format!("{}.rs", c.lib))
}

/// The files to write, from the templates: paths relative to the root, and their contents.
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
    ];
    match c.kind {
        // The deployment `cargo xtask dev NAME` runs (for a codec it writes its own).
        Kind::Connector => files.push((c.dir.join("dev.toml"), render(CONNECTOR_DEV, &vars))),
        Kind::Codec => files.push((fuzz_target(c), render(CODEC_FUZZ, &vars))),
    }
    files
}

/// Parses a manifest to edit.
fn parse(text: &str, file: &str) -> Result<DocumentMut> {
    text.parse()
        .with_context(|| format!("{file} is not valid TOML"))
}

/// Inserts `key = item` into `table` among the keys that start with `prefix`, in sorted order
/// (before the first that sorts after it, else after the last; with none, at the end). `false`
/// when `key` is there already: nothing to do. Comments above the entries stay with them.
fn insert_in_group(table: &mut Table, prefix: &str, key: &str, item: Item) -> bool {
    if table.contains_key(key) {
        return false;
    }
    let keys: Vec<String> = table.iter().map(|(k, _)| k.to_owned()).collect();
    let at = sorted_position(keys.iter().map(String::as_str), prefix, key);
    // A table appends: take the entries after `at` out, and put them back behind the new one.
    let tail: Vec<(Key, Item)> = keys[at..]
        .iter()
        .filter_map(|k| table.remove_entry(k))
        .collect();
    table.insert(key, item);
    for (k, item) in tail {
        table.insert_formatted(&k, item);
    }
    true
}

/// Where `name` goes among `names`: before the first that starts with `prefix` and sorts after
/// it, else after the last that starts with `prefix`, else at the end.
fn sorted_position<'a>(names: impl Iterator<Item = &'a str>, prefix: &str, name: &str) -> usize {
    let names: Vec<&str> = names.collect();
    let group: Vec<usize> = (0..names.len())
        .filter(|&i| names[i].starts_with(prefix))
        .collect();
    group
        .iter()
        .copied()
        .find(|&i| names[i] > name)
        .or_else(|| group.last().map(|&i| i + 1))
        .unwrap_or(names.len())
}

/// Inserts the string `name` into `array` as [`insert_in_group`] does, laid out as the entry
/// beside it (one entry per line). `false` when it is there already.
fn insert_in_array(array: &mut Array, prefix: &str, name: &str) -> bool {
    if array.iter().any(|v| v.as_str() == Some(name)) {
        return false;
    }
    let at = sorted_position(
        array.iter().map(|v| v.as_str().unwrap_or_default()),
        prefix,
        name,
    );
    let layout = array
        .get(at.min(array.len().saturating_sub(1)))
        .map(|v| v.decor().clone());
    array.insert(at, name);
    if let (Some(layout), Some(new)) = (layout, array.get_mut(at)) {
        *new.decor_mut() = layout;
    }
    true
}

/// `{ path = "...", default-features = false[, optional = true] }`.
fn path_dependency(path: &str, optional: bool) -> Item {
    let mut dep = InlineTable::new();
    dep.insert("path", path.into());
    dep.insert("default-features", false.into());
    if optional {
        dep.insert("optional", true.into());
    }
    value(dep)
}

/// The table `name` of `doc`, or an error naming the file and what to add by hand.
fn table_mut<'a>(
    doc: &'a mut DocumentMut,
    file: &str,
    name: &str,
    by_hand: &str,
) -> Result<&'a mut Table> {
    doc.get_mut(name)
        .and_then(Item::as_table_mut)
        .with_context(|| format!("{file}: no `[{name}]` table; add {by_hand} by hand"))
}

/// `app/Cargo.toml`: the crate as an optional dependency, and its name in the `monolith`
/// feature (an optional dependency is a feature of its own: `app/build.rs` makes the built-in
/// module list of the enabled ones). `Ok(None)` when both are there already.
///
/// # Errors
/// When the file is not TOML, or has no `[dependencies]` or no `monolith` feature array.
pub fn add_to_app(text: &str, c: &NewCrate) -> Result<Option<String>> {
    let file = "app/Cargo.toml";
    let mut doc = parse(text, file)?;
    let prefix = format!("{}-", c.kind.prefix());
    let dep_path = format!("../{}/{}", c.kind.folder(), c.name);
    let by_hand = format!(
        "`{} = {{ path = \"{dep_path}\", default-features = false, optional = true }}` and \
         \"{}\" in the `monolith` feature",
        c.package, c.package
    );
    let feature = doc
        .get_mut("features")
        .and_then(|f| f.get_mut("monolith"))
        .and_then(Item::as_array_mut)
        .with_context(|| {
            format!(
                "{file}: no `monolith` feature (an array in `[features]`); add {by_hand} by hand"
            )
        })?;
    let in_feature = insert_in_array(feature, &prefix, &c.package);
    let deps = table_mut(&mut doc, file, "dependencies", &by_hand)?;
    let in_deps = insert_in_group(deps, &prefix, &c.package, path_dependency(&dep_path, true));
    Ok((in_feature || in_deps).then(|| doc.to_string()))
}

/// `fuzz/Cargo.toml` (a codec): the crate as a dependency and its target `codec_NAME` as a
/// `[[bin]]`. `Ok(None)` when both are there already.
///
/// # Errors
/// When the file is not TOML, or has no `[dependencies]` or no `[[bin]]`.
pub fn add_to_fuzz(text: &str, c: &NewCrate) -> Result<Option<String>> {
    let file = "fuzz/Cargo.toml";
    let mut doc = parse(text, file)?;
    let dep_path = format!("../{}/{}", c.kind.folder(), c.name);
    let target = fuzz_target(c);
    let target = target
        .strip_prefix("fuzz")
        .unwrap_or(&target)
        .display()
        .to_string();
    let by_hand = format!(
        "`{} = {{ path = \"{dep_path}\", default-features = false }}` and a `[[bin]]` \
         `{}` at `{target}`",
        c.package, c.lib
    );
    let deps = table_mut(&mut doc, file, "dependencies", &by_hand)?;
    let in_deps = insert_in_group(
        deps,
        "codec-",
        &c.package,
        path_dependency(&dep_path, false),
    );
    let bins = doc
        .get_mut("bin")
        .and_then(Item::as_array_of_tables_mut)
        .with_context(|| format!("{file}: no `[[bin]]` fuzz targets; add {by_hand} by hand"))?;
    let listed = bins
        .iter()
        .any(|t| t.get("name").and_then(Item::as_str) == Some(c.lib.as_str()));
    if !listed {
        let mut bin = Table::new();
        bin.insert("name", value(c.lib.as_str()));
        bin.insert("path", value(target.as_str()));
        for key in ["test", "doc", "bench"] {
            bin.insert(key, value(false));
        }
        bin.decor_mut().set_prefix("\n");
        bins.push(bin);
    }
    Ok((in_deps || !listed).then(|| doc.to_string()))
}

/// A shared file and its edited text.
struct Edit {
    path: PathBuf,
    text: String,
}

/// Reads the manifests and prepares every edit, so a manifest that cannot be edited fails
/// before anything is written.
fn prepare_edits(root: &Path, c: &NewCrate) -> Result<Vec<Edit>> {
    type EditFn = fn(&str, &NewCrate) -> Result<Option<String>>;
    let mut steps: Vec<(&str, EditFn)> = vec![("app/Cargo.toml", add_to_app)];
    if c.kind == Kind::Codec {
        steps.push(("fuzz/Cargo.toml", add_to_fuzz));
    }
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

/// Writes the crate's files (and a codec's fuzz target); fails before writing when one of them
/// exists, and removes what it wrote when writing fails halfway.
fn write_crate(root: &Path, c: &NewCrate) -> Result<()> {
    let files = crate_files(c);
    if let Some((rel, _)) = files.iter().find(|(rel, _)| root.join(rel).exists()) {
        bail!(
            "{} exists already: remove it, or choose another name",
            root.join(rel).display()
        );
    }
    let write_all = || -> Result<()> {
        for (rel, contents) in &files {
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
        let _ = std::fs::remove_file(root.join(fuzz_target(c)));
    })
}

/// Formats the generated Rust files (the templates are formatted, but a long name can change
/// where rustfmt breaks lines). A missing rustfmt is a warning, not a failure.
fn format_files(root: &Path, c: &NewCrate) {
    let files: Vec<PathBuf> = crate_files(c)
        .into_iter()
        .map(|(rel, _)| rel)
        .filter(|rel| rel.extension().is_some_and(|x| x == "rs"))
        .collect();
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
    run_cmd(cargo_in(root).args(["hakari", "manage-deps", "--yes"]))
}

/// Builds the crate and installs it into `target/plugins` (dev profile), checking it loads.
fn build(root: &Path, c: &NewCrate) -> Result<()> {
    run_cmd(cargo_in(root).args(["build", "-p", &c.package]))?;
    if same_dir(root, &project_root()) {
        build_plugins::run(&build_plugins::Args {
            only: vec![c.name.clone()],
            ..build_plugins::Args::all(Profile::Dev, false)
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
        assert!(
            files[0]
                .1
                .contains("name = \"connector_my_source_lto\"\npath = \"../../shim/lto.rs\"")
        );
        assert!(files[3].1.contains("plugin = \"my_source\""));
        let files = crate_files(&codec("upper"));
        assert_eq!(files.len(), 4);
        assert_eq!(files[3].0, Path::new("fuzz/fuzz_targets/codec_upper.rs"));
        assert!(files[3].1.contains("codec_upper::plugin_module()"));
    }

    const APP: &str = r#"[package]
name = "temblor"

[features]
# Links every connector and codec crate.
monolith = [
    "connector-bench",
    "connector-file",
    "codec-binary",
    "codec-json",
]

[dependencies]
anyhow.workspace = true
connector-bench = { path = "../connectors/bench", default-features = false, optional = true }
# The file connector.
connector-file = { path = "../connectors/file", default-features = false, optional = true }
codec-binary = { path = "../codecs/binary", default-features = false, optional = true }
codec-json = { path = "../codecs/json", default-features = false, optional = true }
workspace-hack = { version = "0.1", path = "../workspace-hack" }

[dev-dependencies]
codec-json = { path = "../codecs/json", default-features = false }
"#;

    #[test]
    fn app_gets_a_feature_entry_and_an_optional_dependency_in_sorted_order() {
        let out = add_to_app(APP, &codec("csv")).unwrap().unwrap();
        let expected = APP
            .replace(
                "    \"codec-json\",",
                "    \"codec-csv\",\n    \"codec-json\",",
            )
            .replace(
                "codec-json = { path = \"../codecs/json\", default-features = false, optional",
                "codec-csv = { path = \"../codecs/csv\", default-features = false, optional = true }\n\
                 codec-json = { path = \"../codecs/json\", default-features = false, optional",
            );
        assert_eq!(out, expected);

        // After the last of its kind, and the comment above an entry stays with it.
        let out = add_to_app(APP, &connector("zz")).unwrap().unwrap();
        assert!(
            out.contains("\"connector-file\",\n    \"connector-zz\",\n    \"codec-binary\""),
            "{out}"
        );
        assert!(out.contains(
            "# The file connector.\nconnector-file = { path = \"../connectors/file\", default-features = false, optional = true }\n\
             connector-zz = { path = \"../connectors/zz\", default-features = false, optional = true }\n\
             codec-binary"
        ), "{out}");
        // Before the first.
        let out = add_to_app(APP, &connector("a")).unwrap().unwrap();
        assert!(
            out.contains("anyhow.workspace = true\nconnector-a = "),
            "{out}"
        );
        assert!(
            out.contains("monolith = [\n    \"connector-a\",\n    \"connector-bench\""),
            "{out}"
        );
    }

    #[test]
    fn edits_are_idempotent() {
        let once = add_to_app(APP, &codec("csv")).unwrap().unwrap();
        assert_eq!(add_to_app(&once, &codec("csv")).unwrap(), None);
        assert_eq!(add_to_app(APP, &codec("json")).unwrap(), None);
        // A name that prefixes an existing one is not a duplicate.
        assert!(add_to_app(APP, &codec("jso")).unwrap().is_some());
        let once = add_to_fuzz(FUZZ, &codec("csv")).unwrap().unwrap();
        assert_eq!(add_to_fuzz(&once, &codec("csv")).unwrap(), None);
    }

    const FUZZ: &str = r#"[package]
name = "temblor-fuzz"

[dependencies]
libfuzzer-sys = "0.4"
codec-binary = { path = "../codecs/binary", default-features = false }
codec-json = { path = "../codecs/json", default-features = false }

[[bin]]
name = "codec_binary"
path = "fuzz_targets/codec_binary.rs"
test = false

[[bin]]
name = "pre_gzip"
path = "fuzz_targets/pre_gzip.rs"
test = false
"#;

    #[test]
    fn fuzz_gets_the_codec_and_its_target() {
        let out = add_to_fuzz(FUZZ, &codec("csv")).unwrap().unwrap();
        assert!(
            out.contains(
                "codec-binary = { path = \"../codecs/binary\", default-features = false }\n\
             codec-csv = { path = \"../codecs/csv\", default-features = false }\n\
             codec-json"
            ),
            "{out}"
        );
        assert!(out.ends_with(
            "test = false\n\n[[bin]]\nname = \"codec_csv\"\npath = \"fuzz_targets/codec_csv.rs\"\n\
             test = false\ndoc = false\nbench = false\n"
        ), "{out}");
        // It parses, with the target.
        let doc: DocumentMut = out.parse().unwrap();
        assert_eq!(doc["bin"].as_array_of_tables().unwrap().len(), 3);
    }

    #[test]
    fn a_manifest_that_cannot_be_edited_is_a_clear_error() {
        let cases = [
            (
                add_to_app("[package]\n", &connector("x")),
                [
                    "app/Cargo.toml: no `monolith` feature",
                    "connector-x = { path = \"../connectors/x\"",
                ],
            ),
            (
                add_to_app("[features]\nmonolith = []\n", &codec("x")),
                ["app/Cargo.toml: no `[dependencies]` table", "\"codec-x\""],
            ),
            (
                add_to_fuzz("[dependencies]\n", &codec("x")),
                ["fuzz/Cargo.toml: no `[[bin]]`", "fuzz_targets/codec_x.rs"],
            ),
            (
                add_to_app("[features\n", &codec("x")),
                ["app/Cargo.toml is not valid TOML", "app/Cargo.toml"],
            ),
        ];
        for (result, needles) in cases {
            let err = format!("{:#}", result.unwrap_err());
            for needle in needles {
                assert!(err.contains(needle), "{needle}: {err}");
            }
        }
    }

    #[test]
    fn the_real_manifests_can_be_edited() {
        let root = project_root();
        let edits = prepare_edits(&root, &connector("zz_not_a_plugin")).unwrap();
        assert_eq!(edits.len(), 1);
        let edits = prepare_edits(&root, &codec("zz_not_a_plugin")).unwrap();
        assert_eq!(edits.len(), 2);
        for edit in edits {
            assert!(
                edit.text.contains("codec-zz_not_a_plugin"),
                "{}",
                edit.path.display()
            );
        }
    }
}
