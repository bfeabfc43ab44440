//! Finds and loads plugin libraries, and reports every file it cannot use.
//!
//! Each library is opened with abi_stable's per-file path
//! (`lib_header_from_path(..).init_root_module()`), never `RootModule::load_from*`, which caches
//! one module per root-module type and would hand back the first plugin for every file.
//! Libraries are never unloaded (abi_stable leaks them on purpose).
//!
//! Before a file is opened, its permissions are checked ([`check_permissions`]): a plugin is
//! native code that runs with the engine's rights as soon as it is opened (its constructors
//! run at `dlopen`), so a file that someone other than this user or root could have written is
//! refused unless `--allow-insecure-plugins` is given. See `docs/security.md`.

use std::{
    collections::BTreeMap,
    fmt,
    path::{Path, PathBuf},
};

use temblor_core::{Plugin, Registry};
use temblor_shim::{
    abi::{
        HostLog, LogLevel, MIN_SHIM_INTERFACE_VERSION, PluginModRef, RUSTC_VERSION,
        SHIM_INTERFACE_VERSION,
    },
    abi_stable::{
        library::{LibraryError, lib_header_from_path},
        std_types::RStr,
    },
};
use tracing::{debug, level_filters::LevelFilter, warn};

use crate::pinning::{self, Pins};

/// The environment variable with more plugin directories, colon-separated.
pub const PLUGIN_PATH_VAR: &str = "TEMBLOR_PLUGIN_PATH";

/// The directory searched last, relative to the working directory.
pub const DEFAULT_PLUGIN_DIR: &str = "target/plugins";

/// A file that was not loaded, and why.
#[derive(Debug, Clone)]
pub struct Refused {
    /// The file (or directory).
    pub path: PathBuf,
    /// Why, in one line.
    pub reason: String,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.reason)
    }
}

/// What loading the plugin directories found.
#[derive(Debug, Default)]
pub struct LoadReport {
    /// Files not loaded.
    pub refused: Vec<Refused>,
    /// Loaded files with something to look at (another rustc).
    pub warnings: Vec<Refused>,
    /// The SHA-256 of every registered plugin's file, by its path as the registry's `origin`
    /// shows it.
    pub sha256: BTreeMap<String, String>,
}

/// The directories to search, in order: `--plugin-dir`s, then `TEMBLOR_PLUGIN_PATH`, then
/// `./target/plugins` (when `default_dir`). Each with whether it was asked for explicitly.
#[must_use]
pub fn plugin_dirs(cli: &[PathBuf], env: Option<&str>, default_dir: bool) -> Vec<(PathBuf, bool)> {
    let mut dirs: Vec<(PathBuf, bool)> = cli.iter().map(|d| (d.clone(), true)).collect();
    if let Some(env) = env {
        dirs.extend(
            env.split(':')
                .filter(|s| !s.is_empty())
                .map(|s| (PathBuf::from(s), true)),
        );
    }
    if default_dir {
        dirs.push((PathBuf::from(DEFAULT_PLUGIN_DIR), false));
    }
    dirs
}

/// Whether the file name has the platform's shared-library extension.
fn is_library(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e == std::env::consts::DLL_EXTENSION)
}

/// Whether files that fail the permission checks are loaded anyway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Permissions {
    /// Refuse them (the default).
    #[default]
    Enforce,
    /// Load them with a warning (`--allow-insecure-plugins`: development only).
    AllowInsecure,
}

/// Loads every library in `dirs` into `registry`. The first plugin with a name keeps it.
///
/// Each file is hashed (SHA-256) before it is opened; with `pins`, a file named after a pinned
/// plugin with another hash is refused before it is opened, and a plugin whose declared name is
/// pinned is registered only when its file has the pinned hash (see [`crate::pinning`]).
pub fn load_dirs(
    dirs: &[(PathBuf, bool)],
    registry: &mut Registry,
    permissions: Permissions,
    pins: &Pins,
) -> LoadReport {
    let mut report = LoadReport::default();
    let mut searched: Vec<PathBuf> = Vec::new();
    for (dir, explicit) in dirs {
        // A directory given twice (say `--plugin-dir target/plugins` run from the project root,
        // where it is also the default) is searched once.
        if let Ok(canonical) = dir.canonicalize() {
            if searched.contains(&canonical) {
                debug!(dir = %dir.display(), "plugin directory already searched");
                continue;
            }
            searched.push(canonical);
        }
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if *explicit => {
                report.refused.push(Refused {
                    path: dir.clone(),
                    reason: format!("cannot read plugin directory: {e}"),
                });
                continue;
            }
            Err(e) => {
                debug!(dir = %dir.display(), error = %e, "default plugin directory not read");
                continue;
            }
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| is_library(p))
            .collect();
        files.sort();
        for path in files {
            let sha256 = match pinning::sha256_file(&path) {
                Ok(sha256) => sha256,
                Err(e) => {
                    let reason = format!("cannot read it: {e}");
                    report.refused.push(Refused { path, reason });
                    continue;
                }
            };
            if let Err(reason) = pins.check_file(&path, &sha256) {
                report.refused.push(Refused { path, reason });
                continue;
            }
            match load_file(&path, permissions) {
                Err(reason) => report.refused.push(Refused { path, reason }),
                Ok(loaded) => {
                    let module = loaded.module;
                    if let Some(insecure) = &loaded.insecure {
                        warn!(path = %path.display(), reason = %insecure, "loading an insecure plugin file (--allow-insecure-plugins)");
                    }
                    let plugin = Plugin::new(module, path.display().to_string());
                    if let Err(reason) = pins.check_loaded(&plugin.name, &sha256) {
                        report.refused.push(Refused { path, reason });
                        continue;
                    }
                    let origin = plugin.origin.clone();
                    match registry.add(plugin) {
                        Err(dup) => report.refused.push(Refused {
                            path,
                            reason: dup.to_string(),
                        }),
                        Ok(()) => {
                            report.sha256.insert(origin, sha256);
                            init_logging(module);
                            if let Some(warning) = loaded.warning {
                                report.warnings.push(Refused {
                                    path,
                                    reason: warning,
                                });
                            }
                        }
                    }
                }
            }
        }
    }
    report
}

/// A library that loaded, with a warning if it deserves one.
pub struct Loaded {
    /// Its root module.
    pub module: PluginModRef,
    /// Why it may misbehave (built by another rustc).
    pub warning: Option<String>,
    /// Why it would have been refused without `--allow-insecure-plugins`.
    pub insecure: Option<String>,
}

/// Loads one library and checks it is a temblor plugin this binary can use.
///
/// The file's permissions are checked first ([`check_permissions`]): an insecure file is never
/// opened unless `permissions` allows it.
///
/// # Errors
/// One line saying why not: writable by others or owned by another user, not a shared
/// library, no temblor root module, an incompatible abi_stable or layout, another shim
/// interface version.
pub fn load_file(path: &Path, permissions: Permissions) -> Result<Loaded, String> {
    let insecure = match check_permissions(path) {
        Ok(()) => None,
        Err(reason) if permissions == Permissions::AllowInsecure => Some(reason),
        Err(reason) => {
            return Err(format!(
                "{reason}; refusing to load it (--allow-insecure-plugins overrides)"
            ));
        }
    };
    let header = lib_header_from_path(path).map_err(|e| describe(&e))?;
    let module = match header.init_root_module::<PluginModRef>() {
        Ok(module) => module,
        Err(e @ LibraryError::AbiInstability(_))
            if header.root_mod_consts().base_name().as_str()
                == <PluginModRef as temblor_shim::abi_stable::library::RootModule>::BASE_NAME =>
        {
            older_interface(header, &e)?
        }
        Err(e) => return Err(describe(&e)),
    };
    let manifest = module.manifest()();
    if !(MIN_SHIM_INTERFACE_VERSION..=SHIM_INTERFACE_VERSION).contains(&manifest.shim_interface) {
        return Err(format!(
            "plugin '{}' was built against shim interface version {}, this temblor speaks versions {} to {}: rebuild it",
            manifest.name,
            manifest.shim_interface,
            MIN_SHIM_INTERFACE_VERSION,
            SHIM_INTERFACE_VERSION
        ));
    }
    let mut warnings = Vec::new();
    if manifest.shim_interface < SHIM_INTERFACE_VERSION {
        warnings.push(format!(
            "plugin '{}' was built against shim interface version {}, this temblor speaks version {}: it works without {} (rebuild it for them)",
            manifest.name,
            manifest.shim_interface,
            SHIM_INTERFACE_VERSION,
            missing_since(manifest.shim_interface)
        ));
    }
    if manifest.rustc.as_str() != RUSTC_VERSION {
        warnings.push(format!(
            "plugin '{}' was built by rustc {}, this temblor by rustc {}",
            manifest.name, manifest.rustc, RUSTC_VERSION
        ));
    }
    let warning = (!warnings.is_empty()).then(|| warnings.join("; "));
    Ok(Loaded {
        module,
        warning,
        insecure,
    })
}

/// Checks that nobody but this user and root can have written the plugin file: the file and
/// its directory (and, for a symbolic link, the file and directory it points to) must not be
/// writable by group or others and must be owned by the effective user or root.
///
/// The directories above the plugin directory are not checked. On other platforms than Unix
/// this checks nothing.
///
/// # Errors
/// One line naming what is at fault and why (a file that cannot be read is left to the loader
/// to report).
pub fn check_permissions(path: &Path) -> Result<(), String> {
    #[cfg(unix)]
    {
        unix::check(path)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Ok(())
    }
}

#[cfg(unix)]
mod unix {
    use std::{
        os::unix::fs::MetadataExt as _,
        path::{Path, PathBuf},
    };

    // The C library std links anyway; no dependency needed for one call.
    unsafe extern "C" {
        /// The effective user id (`uid_t` is 32 bits on every Unix Rust supports).
        safe fn geteuid() -> u32;
    }

    /// The effective user id of this process.
    pub fn euid() -> u32 {
        geteuid()
    }

    /// What the mode and owner of one file or directory say. `subject` names it for people
    /// (`its directory /x`), empty for the plugin file itself.
    pub fn judge(subject: &str, mode: u32, uid: u32, euid: u32) -> Result<(), String> {
        let subject = if subject.is_empty() {
            String::new()
        } else {
            format!("{subject} is ")
        };
        if mode & 0o022 != 0 {
            return Err(format!(
                "{subject}writable by group or others (mode {:04o})",
                mode & 0o7777
            ));
        }
        if uid != euid && uid != 0 {
            return Err(format!(
                "{subject}not owned by the user running temblor (uid {euid}) or root but by uid {uid}"
            ));
        }
        Ok(())
    }

    /// The directory holding `path` (`.` for a bare file name).
    fn parent(path: &Path) -> PathBuf {
        match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }

    pub fn check(path: &Path) -> Result<(), String> {
        let euid = euid();
        // The file as named (links followed) and its directory; for a link, also the
        // directory of the file it points to (whoever can write there can replace it).
        let dir = parent(path);
        let mut targets = vec![
            (String::new(), path.to_path_buf()),
            (format!("its directory {}", dir.display()), dir),
        ];
        if let Ok(real) = std::fs::canonicalize(path) {
            let real_dir = parent(&real);
            if std::fs::canonicalize(&targets[1].1).ok().as_ref() != Some(&real_dir) {
                targets.push((
                    format!("the directory of its target {}", real.display()),
                    real_dir,
                ));
            }
        }
        for (subject, target) in targets {
            // A file that cannot be read is the loader's to report ("cannot open").
            if let Ok(meta) = std::fs::metadata(&target) {
                judge(&subject, meta.mode(), meta.uid(), euid)?;
            }
        }
        Ok(())
    }
}

/// A temblor plugin whose root module did not pass the layout check: one built against an
/// older shim interface this one still drives is used as it is; any other is refused, naming
/// its version.
///
/// abi_stable's checker refuses a library whose prefix types have fewer fields than the
/// host's, but every interface after 1 only appended fields and methods (with defaults) after
/// the older ones, and the prefix metadata each library carries tells its accessors which
/// fields it has: an older plugin's missing methods run their default bodies in the host.
fn older_interface(
    header: &temblor_shim::abi_stable::library::LibHeader,
    e: &LibraryError,
) -> Result<PluginModRef, String> {
    // SAFETY: the library is a temblor plugin (its root module's base name says so), and the
    // first field of every version's root module is `manifest`, unchanged since interface 1:
    // reading it is sound whatever the rest of the layout. The module is used beyond that only
    // when the manifest names an older interface still driven, whose layout is a prefix of
    // this one.
    let module = unsafe { header.unchecked_layout::<PluginModRef>() }.map_err(|_| describe(e))?;
    let manifest = module.manifest()();
    if (MIN_SHIM_INTERFACE_VERSION..SHIM_INTERFACE_VERSION).contains(&manifest.shim_interface) {
        return Ok(module);
    }
    Err(format!(
        "plugin '{}' was built against shim interface version {}, this temblor speaks versions {} to {}: rebuild it ({})",
        manifest.name,
        manifest.shim_interface,
        MIN_SHIM_INTERFACE_VERSION,
        SHIM_INTERFACE_VERSION,
        describe(e)
    ))
}

/// What a plugin built against interface `version` (older than this one) goes without.
fn missing_since(version: u32) -> &'static str {
    match version {
        1 => "streams, metadata, acknowledgements or wake-ups",
        _ => "wake-ups (its sources poll)",
    }
}

/// Says in one line why a library is not a usable plugin.
fn describe(e: &LibraryError) -> String {
    match e {
        LibraryError::OpenError { err, .. } => {
            format!(
                "not a loadable shared library: {}",
                one_line(&err.to_string())
            )
        }
        LibraryError::GetSymbolError { .. } => {
            "a shared library, but not a temblor plugin: it exports no abi_stable root module"
                .to_owned()
        }
        LibraryError::InvalidAbiHeader(header) => format!(
            "built with an incompatible abi_stable ({header:?}); rebuild it against this temblor's shim"
        ),
        LibraryError::AbiInstability(details) => {
            tracing::debug!(details = %details, "layout mismatch in full");
            format!(
                "layout mismatch: its root module is not this temblor's plugin interface (a library of \
             another abi_stable program, or a plugin built against another temblor-shim); {}",
                layout_summary(&details.to_string())
            )
        }
        LibraryError::IncompatibleVersionNumber { .. } => {
            format!(
                "its plugin interface does not match this temblor's (built against another temblor-shim): {}",
                one_line(&e.to_string())
            )
        }
        _ => one_line(&e.to_string()),
    }
}

/// The longest part of an abi_stable message a report line quotes.
const QUOTED_MAX: usize = 240;

/// abi_stable's layout report (many lines: both layouts, then `Error:` / `Expected:` / `Found:`
/// blocks) in a few words: the first difference, and how many there are.
fn layout_summary(message: &str) -> String {
    let lines: Vec<&str> = message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let errors: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].starts_with("Error:"))
        .collect();
    let Some(&first) = errors.first() else {
        return shortened(&one_line(message));
    };
    let after = |label: &str| {
        let at = lines[first..].iter().position(|l| *l == label)?;
        lines.get(first + at + 1).copied()
    };
    let mut out = format!(
        "first difference: {}",
        lines[first].trim_start_matches("Error:").trim()
    );
    if let (Some(expected), Some(found)) = (after("Expected:"), after("Found:")) {
        out.push_str(&format!(": expected {expected}, found {found}"));
    }
    if errors.len() > 1 {
        out.push_str(&format!(" ({} differences in all)", errors.len()));
    }
    shortened(&out)
}

/// At most [`QUOTED_MAX`] characters, with `...` when cut.
fn shortened(text: &str) -> String {
    match text.char_indices().nth(QUOTED_MAX) {
        None => text.to_owned(),
        Some((cut, _)) => format!("{}...", &text[..cut]),
    }
}

/// abi_stable's messages span several lines; a report line is one.
fn one_line(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for part in message.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(part);
    }
    out
}

/// Gives a dynamically loaded plugin the host's log callback.
pub fn init_logging(module: PluginModRef) {
    let max = match LevelFilter::current() {
        LevelFilter::TRACE => LogLevel::Trace,
        LevelFilter::DEBUG => LogLevel::Debug,
        LevelFilter::INFO => LogLevel::Info,
        LevelFilter::WARN => LogLevel::Warn,
        _ => LogLevel::Error,
    };
    module.init_logging()(HostLog { func: host_log }, max);
}

/// Where plugins' log lines arrive: re-emitted through the host's subscriber, tagged with the
/// plugin's name.
extern "C" fn host_log(level: LogLevel, plugin: RStr<'_>, target: RStr<'_>, message: RStr<'_>) {
    let (plugin, target, message) = (plugin.as_str(), target.as_str(), message.as_str());
    match level {
        LogLevel::Trace => tracing::trace!(plugin, target, "{message}"),
        LogLevel::Debug => tracing::debug!(plugin, target, "{message}"),
        LogLevel::Info => tracing::info!(plugin, target, "{message}"),
        LogLevel::Warn => tracing::warn!(plugin, target, "{message}"),
        LogLevel::Error => tracing::error!(plugin, target, "{message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dirs_come_in_order_cli_env_default() {
        let dirs = plugin_dirs(&[PathBuf::from("a")], Some("b::c"), true);
        let names: Vec<_> = dirs
            .iter()
            .map(|(d, e)| (d.to_str().unwrap(), *e))
            .collect();
        assert_eq!(
            names,
            [
                ("a", true),
                ("b", true),
                ("c", true),
                (DEFAULT_PLUGIN_DIR, false)
            ]
        );
        assert_eq!(plugin_dirs(&[], None, false), []);
    }

    #[test]
    fn only_shared_libraries_are_candidates() {
        assert!(is_library(Path::new("x/libcodec_json.so")));
        assert!(!is_library(Path::new("x/README.md")));
        assert!(!is_library(Path::new("x/so")));
    }

    #[cfg(unix)]
    #[test]
    fn permissions_are_judged_by_mode_then_owner() {
        use super::unix::judge;
        assert_eq!(judge("", 0o100_755, 1000, 1000), Ok(()));
        assert_eq!(
            judge("", 0o100_700, 0, 1000),
            Ok(()),
            "root's files are trusted"
        );
        assert_eq!(
            judge("", 0o100_775, 1000, 1000),
            Err("writable by group or others (mode 0775)".to_owned())
        );
        assert_eq!(
            judge("its directory /p", 0o041_777, 0, 0),
            Err("its directory /p is writable by group or others (mode 1777)".to_owned()),
            "the sticky bit does not stop others from adding a library"
        );
        assert_eq!(
            judge("", 0o100_644, 1001, 1000),
            Err(
                "not owned by the user running temblor (uid 1000) or root but by uid 1001"
                    .to_owned()
            )
        );
        assert!(judge("", 0o100_600, 0, 1000).is_ok());
        assert!(judge("", 0o100_602, 1000, 1000).is_err());
        assert!(judge("", 0o100_620, 1000, 1000).is_err());
    }

    #[cfg(unix)]
    #[test]
    fn a_secure_file_in_a_secure_directory_passes() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = std::env::temp_dir().join(format!("temblor-loader-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let file = dir.join("libx.so");
        std::fs::write(&file, b"x").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(check_permissions(&file), Ok(()));
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o646)).unwrap();
        assert_eq!(
            check_permissions(&file),
            Err("writable by group or others (mode 0646)".to_owned())
        );
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        // A link from a secure directory into an insecure one.
        let open = dir.join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        std::fs::rename(&file, open.join("libx.so")).unwrap();
        std::os::unix::fs::symlink(open.join("libx.so"), &file).unwrap();
        let reason = check_permissions(&file).unwrap_err();
        assert!(
            reason.starts_with("the directory of its target") && reason.contains("(mode 0777)"),
            "{reason}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn messages_become_one_line() {
        assert_eq!(one_line("a\n  b\n\nc"), "a b c");
    }

    #[test]
    fn layout_reports_come_down_to_their_first_difference() {
        let report = "Compared <this>:\n    PluginMod\nTo <other>:\n    OtherMod\n\n1 error(s).\n\n\
                      Error:mismatched type\nExpected:\n    PluginMod\nFound:\n    OtherMod\n\n\
                      Error:too many fields\nExpected:\n    5\nFound:\n    2\n";
        assert_eq!(
            layout_summary(report),
            "first difference: mismatched type: expected PluginMod, found OtherMod (2 differences in all)"
        );
        assert_eq!(layout_summary("odd\n  message"), "odd message");
        let long = shortened(&"é".repeat(500));
        assert_eq!(long.chars().count(), QUOTED_MAX + 3);
        assert!(long.ends_with("..."));
    }
}
