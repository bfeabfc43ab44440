//! `base64`: decodes each frame (pre), encodes each frame (post); standard alphabet.

use base64::{Engine, engine::general_purpose::STANDARD_PAD_INDIFFERENT as ENGINE};
use temblor_shim::Frames;

use super::{FrameReason, PreprocessError, decode_each};

/// The preprocessor's reused output buffer.
#[derive(Debug, Default)]
pub(super) struct Decoder {
    buf: Vec<u8>,
}

impl Decoder {
    pub(super) fn process(
        &mut self,
        input: &Frames,
        out: &mut Frames,
        errors: &mut Vec<PreprocessError>,
    ) {
        decode_each(&mut self.buf, (input, out, errors), |frame, buf| {
            ENGINE
                .decode_vec(frame, buf)
                .map(|()| true)
                .map_err(|e| ("base64", FrameReason::Base64(e)))
        });
    }
}

/// The postprocessor: encodes every frame, with padding.
pub(super) fn encode(input: &Frames, out: &mut Frames) {
    for frame in input.iter() {
        out.push_with(|buf| {
            let start = buf.len();
            // A frame is below 4 GiB, so its encoding (4/3 of it) fits a usize.
            let len = base64::encoded_len(frame.len(), true).unwrap_or(usize::MAX);
            buf.resize(start + len, 0);
            let written = ENGINE
                .encode_slice(frame, &mut buf[start..])
                .unwrap_or_default();
            buf.truncate(start + written);
        });
    }
}
