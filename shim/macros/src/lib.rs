//! `link_plugin!()`, re-exported by `temblor-shim`: the one line of `shim/lto.rs`, the shared
//! source of every plugin crate's `<lib>_lto` example (the cdylib release builds ship, see
//! ARCHITECTURE.md, "Release builds of plugins").
//!
//! That example must link its own package's library, and a crate that is not named is not
//! linked. A shared file cannot name it, so this macro does: cargo compiles the example as the
//! crate `<lib>_lto` (`CARGO_CRATE_NAME`, set for the compiler, which runs this macro), and the
//! macro expands to `extern crate <lib> as _;`. Plain `proc_macro`, no dependencies.

use proc_macro::TokenStream;

/// The suffix of every plugin's release example (`build_plugins::built_library` relies on it).
const SUFFIX: &str = "_lto";

/// The library an example crate named `crate_name` links: `codec_json_lto` gives `codec_json`.
fn library_of(crate_name: &str) -> Result<&str, String> {
    crate_name
        .strip_suffix(SUFFIX)
        .filter(|lib| !lib.is_empty())
        .ok_or_else(|| {
            format!(
                "link_plugin!() is for a plugin's `<lib>{SUFFIX}` example, and this crate is \
                 `{crate_name}`: name the example `<lib>{SUFFIX}` in the plugin's Cargo.toml"
            )
        })
}

/// Links the library of the package whose `<lib>_lto` example this is: expands to
/// `extern crate <lib> as _;`, so the example's cdylib exports the library's header.
#[proc_macro]
pub fn link_plugin(input: TokenStream) -> TokenStream {
    let expansion = if input.is_empty() {
        let crate_name = std::env::var("CARGO_CRATE_NAME").unwrap_or_default();
        library_of(&crate_name).map(|lib| format!("extern crate {lib} as _;"))
    } else {
        Err("link_plugin!() takes no arguments".to_owned())
    };
    let source = expansion.unwrap_or_else(|e| format!("::core::compile_error!({e:?});"));
    source.parse().expect("the expansion is valid Rust")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_library_is_the_crate_name_without_the_suffix() {
        assert_eq!(library_of("codec_json_lto"), Ok("codec_json"));
        assert_eq!(
            library_of("connector_http_server_lto"),
            Ok("connector_http_server")
        );
        assert!(
            library_of("codec_json")
                .unwrap_err()
                .contains("`codec_json`")
        );
        assert!(library_of("_lto").is_err());
    }
}
