//! Exports the C allocation functions from the `temblor` executable (Linux), so that the
//! plugins it loads, which call `malloc` and `free` like any library, bind to the executable's
//! mimalloc (built with `override`, see `ALLOCATOR` in src/main.rs) instead of glibc's: the
//! executable comes first in the dynamic linker's lookup order. Without this export the plugins
//! would keep using glibc's allocator while the engine uses mimalloc.
//!
//! It also writes the list of built-in plugins (`$OUT_DIR/builtin_modules.rs`, included by
//! `builtin_modules` in src/main.rs): every plugin crate this build links. Each optional
//! `connector-*` / `codec-*` dependency is a feature of its own (the `monolith` feature enables
//! them all), so cargo tells this script which are on: `CARGO_FEATURE_CONNECTOR_FILE` means
//! `connector_file::plugin_module()`. Adding a plugin needs no line here or in main.rs.

use std::fmt::Write as _;

/// What mimalloc's `override` defines and a library may call.
const ALLOCATION_FUNCTIONS: [&str; 12] = [
    "malloc",
    "calloc",
    "realloc",
    "reallocarray",
    "free",
    "cfree",
    "aligned_alloc",
    "posix_memalign",
    "memalign",
    "valloc",
    "pvalloc",
    "malloc_usable_size",
];

/// The library names of the plugin crates whose features are on in `vars` (the environment),
/// sorted: `CARGO_FEATURE_CODEC_JSON` gives `codec_json`.
fn enabled_plugins(vars: impl Iterator<Item = (String, String)>) -> Vec<String> {
    let mut libs: Vec<String> = vars
        .filter_map(|(key, _)| {
            let feature = key.strip_prefix("CARGO_FEATURE_")?;
            (feature.starts_with("CONNECTOR_") || feature.starts_with("CODEC_"))
                .then(|| feature.to_ascii_lowercase())
        })
        .collect();
    libs.sort();
    libs
}

/// The expression `builtin_modules` returns: a `vec!` of each plugin's root module.
fn builtin_modules_source(libs: &[String]) -> String {
    let mut out = String::from("vec![\n");
    for lib in libs {
        let _ = writeln!(out, "    {lib}::plugin_module(),");
    }
    out.push(']');
    out
}

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    let out_dir = std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR for build scripts");
    let path = std::path::Path::new(&out_dir).join("builtin_modules.rs");
    let source = builtin_modules_source(&enabled_plugins(std::env::vars()));
    if let Err(e) = std::fs::write(&path, source) {
        panic!("cannot write {}: {e}", path.display());
    }
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        for f in ALLOCATION_FUNCTIONS {
            println!("cargo::rustc-link-arg-bins=-Wl,--export-dynamic-symbol={f}");
        }
    }
}
