//! `panicky`: a codec for the engine's tests, never shipped. It decodes a frame as a string,
//! except a frame that reads `boom`, on which it panics; encoding panics on the string `boom`.
//! The engine must report the panic, send the batch's frames to the error port and keep running.

use temblor_shim::{Codec, PluginError, RVec, Setup, Value};

/// Panics on `boom`, passes everything else as a string.
pub struct Panicky;

impl Codec for Panicky {
    fn decode_one(&mut self, frame: &[u8]) -> Result<Value, String> {
        assert!(frame != b"boom", "boom in decode");
        Ok(Value::from(String::from_utf8_lossy(frame).into_owned()))
    }

    fn encode_one(&mut self, event: &Value, out: &mut RVec<u8>) -> Result<(), PluginError> {
        let text = event.as_str().unwrap_or("");
        assert!(text != "boom", "boom in encode");
        out.extend_from_copy_slice(text.as_bytes());
        Ok(())
    }
}

fn new(_: &Setup<'_>) -> Result<Panicky, PluginError> {
    Ok(Panicky)
}

temblor_shim::export_plugin! { name: "panicky", kind: Codec, codec: new }

#[cfg(test)]
mod tests {
    use temblor_shim::{ErrorKind, Frames, abi_stable::std_types::RStr};

    use super::*;

    #[test]
    fn panic_in_decode_comes_back_as_an_error() {
        let module = plugin_module();
        let mut codec = module.new_codec()(RStr::from("t"), &Value::Null).unwrap();
        let frames: Frames = [&b"fine"[..], b"boom"].into_iter().collect();
        let mut out = RVec::new();
        let mut errors = RVec::new();
        let err = codec.decode(&frames, &mut out, &mut errors).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Panic);
        assert!(err.message.contains("boom in decode"), "{err}");
        // The instance still works after the caught panic.
        let fine: Frames = [&b"ok"[..]].into_iter().collect();
        out.clear();
        codec.decode(&fine, &mut out, &mut errors).unwrap();
        assert_eq!(out.as_slice(), [Value::from("ok")]);
    }
}
