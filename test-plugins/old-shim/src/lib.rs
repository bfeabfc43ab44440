//! `old-shim`: a codec for the loader's tests, never shipped. It claims shim interface
//! version 0, as a plugin built against an older temblor would; the loader must refuse it with
//! a reason that names both versions.

use temblor_shim::{Codec, PluginError, RVec, Setup, Value};

/// Would pass bytes through, if it were ever loaded.
pub struct OldShim;

impl Codec for OldShim {
    fn decode_one(&mut self, frame: &[u8]) -> Result<Value, String> {
        Ok(Value::Bytes(frame.into()))
    }

    fn encode_one(&mut self, event: &Value, out: &mut RVec<u8>) -> Result<(), PluginError> {
        out.extend_from_copy_slice(event.to_json().as_bytes());
        Ok(())
    }
}

fn new(_: &Setup<'_>) -> Result<OldShim, PluginError> {
    Ok(OldShim)
}

temblor_shim::export_plugin! { name: "old-shim", kind: Codec, codec: new, shim_interface: 0 }

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_interface_version_zero() {
        let manifest = plugin_module().manifest()();
        assert_eq!(manifest.shim_interface, 0);
        assert_ne!(
            manifest.shim_interface,
            temblor_shim::abi::SHIM_INTERFACE_VERSION
        );
    }
}
