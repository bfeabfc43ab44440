//! Exports the C allocation functions from the `temblor` executable (Linux), so that the
//! plugins it loads, which call `malloc` and `free` like any library, bind to the executable's
//! mimalloc (built with `override`, see `ALLOCATOR` in src/main.rs) instead of glibc's: the
//! executable comes first in the dynamic linker's lookup order. Without this export the plugins
//! would keep using glibc's allocator while the engine uses mimalloc.

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

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        for f in ALLOCATION_FUNCTIONS {
            println!("cargo::rustc-link-arg-bins=-Wl,--export-dynamic-symbol={f}");
        }
    }
}
