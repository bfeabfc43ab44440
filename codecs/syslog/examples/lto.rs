//! This plugin as release builds ship it: a cdylib of its own, so that cargo applies the release
//! profile's LTO (it applies none to the crate's own cdylib, which is also an rlib). Linking the
//! crate is all it takes: the cdylib exports the crate's library header.

use codec_syslog as _;
