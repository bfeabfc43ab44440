//! `wrong-layout`: a library for the loader's tests, never shipped. It exports the abi_stable
//! root-module header under the symbol every abi_stable library uses
//! (`_1as_0lib_1header_0root_bmodule_bloader`, what `#[export_root_module]` emits and what
//! temblor's `export_plugin!` emits too), with the same abi_stable and the same package version
//! as temblor's shim, but its root module is not temblor's `PluginMod`: it is the plugin of
//! some other abi_stable program. abi_stable's layout check must catch it, so the loader refuses
//! the file with one line saying the layout does not match, before any of its functions is
//! called.

// `#[derive(StableAbi)]` on a prefix type expands to impl blocks inside consts.
#![allow(non_local_definitions)]

use abi_stable::{
    StableAbi,
    library::RootModule,
    package_version_strings,
    sabi_types::VersionStrings,
    std_types::{RStr, RString},
};

/// The root module of another program's plugins: other fields, other types.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = OtherModRef)))]
#[sabi(missing_field(panic))]
pub struct OtherMod {
    /// A greeting.
    pub greet: extern "C" fn(RStr<'_>) -> RString,
    /// A number.
    #[sabi(last_prefix_field)]
    pub answer: extern "C" fn(u64) -> u64,
}

impl RootModule for OtherModRef {
    abi_stable::declare_root_module_statics! {OtherModRef}
    const BASE_NAME: &'static str = "other_plugin";
    const NAME: &'static str = "other plugin";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}

extern "C" fn greet(name: RStr<'_>) -> RString {
    format!("hello, {name}").into()
}

extern "C" fn answer(x: u64) -> u64 {
    x.wrapping_add(42)
}

/// This library's root module.
#[must_use]
pub fn root_module() -> OtherModRef {
    use abi_stable::prefix_type::WithMetadata;
    const MODULE: &WithMetadata<OtherMod> = &WithMetadata::new(OtherMod { greet, answer });
    OtherModRef(MODULE.static_as_prefix())
}

/// The header abi_stable looks for, as `#[export_root_module]` writes it (spelled out here:
/// the attribute emits `#[no_mangle]`, which edition 2024 only accepts as `unsafe(...)`).
#[cfg(feature = "export")]
#[unsafe(export_name = "_1as_0lib_1header_0root_bmodule_bloader")]
pub static OTHER_PLUGIN_HEADER: abi_stable::library::LibHeader = {
    extern "C" fn loader() -> abi_stable::library::RootModuleResult {
        abi_stable::library::__call_root_module_loader(root_module)
    }
    // SAFETY: `loader` returns this crate's `OtherModRef`, the type named here; whoever loads
    // the library checks the layout against the type it expects.
    unsafe {
        abi_stable::library::LibHeader::from_constructor::<OtherModRef>(
            loader,
            abi_stable::library::CheckTypeLayout::Yes,
        )
    }
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_module_works_for_its_own_program() {
        let module = root_module();
        assert_eq!(module.answer()(0), 42);
        assert_eq!(module.greet()(RStr::from("x")).as_str(), "hello, x");
    }

    #[test]
    fn abi_stable_tells_it_from_temblors_root_module() {
        use abi_stable::{StableAbi as _, abi_stability::abi_checking::check_layout_compatibility};
        use temblor_shim::abi::PluginModRef;
        let errors = check_layout_compatibility(PluginModRef::LAYOUT, OtherModRef::LAYOUT)
            .expect_err("another layout");
        assert!(!errors.errors.is_empty());
        // And temblor's own root module passes the same check.
        check_layout_compatibility(PluginModRef::LAYOUT, PluginModRef::LAYOUT).unwrap();
    }
}
