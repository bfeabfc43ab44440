//! The error type that crosses the plugin boundary.

use std::{any::Any, fmt};

use abi_stable::{StableAbi, std_types::RString};

/// What went wrong, so the engine can decide what to do about it.
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The component's `config` is invalid: nothing will work until it is changed.
    Config,
    /// Reading or writing outside the engine failed (a file, a socket).
    Io,
    /// Input that cannot be decoded or encoded.
    Data,
    /// The plugin panicked; the panic was caught inside the plugin.
    Panic,
    /// The plugin does not offer what was asked of it (e.g. a sink from a source-only connector).
    Unsupported,
    /// Anything else.
    Other,
}

impl ErrorKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Config => "invalid config",
            Self::Io => "i/o error",
            Self::Data => "bad data",
            Self::Panic => "panic",
            Self::Unsupported => "unsupported",
            Self::Other => "error",
        }
    }
}

/// An error as it crosses the plugin boundary: a kind and a message.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub struct PluginError {
    /// What kind of failure.
    pub kind: ErrorKind,
    /// A message for people: what failed and why.
    pub message: RString,
}

impl PluginError {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl fmt::Display) -> Self {
        Self {
            kind,
            message: RString::from(message.to_string()),
        }
    }

    /// An invalid-config error.
    pub fn config(message: impl fmt::Display) -> Self {
        Self::new(ErrorKind::Config, message)
    }

    /// An I/O error, with what was being done.
    pub fn io(context: impl fmt::Display, err: &std::io::Error) -> Self {
        Self::new(ErrorKind::Io, format_args!("{context}: {err}"))
    }

    /// A bad-data error.
    pub fn data(message: impl fmt::Display) -> Self {
        Self::new(ErrorKind::Data, message)
    }

    /// The error for a caught panic, from its payload.
    #[must_use]
    pub fn from_panic(during: &str, payload: &(dyn Any + Send)) -> Self {
        let what = panic_message(payload);
        Self::new(
            ErrorKind::Panic,
            format_args!("panicked in {during}: {what}"),
        )
    }
}

/// The message of a panic payload (`panic!` with a literal or a formatted message).
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

impl fmt::Display for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.as_str(), self.message)
    }
}

impl std::error::Error for PluginError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_payloads_become_messages() {
        let e = PluginError::from_panic("decode", &"boom");
        assert_eq!(e.kind, ErrorKind::Panic);
        assert_eq!(e.to_string(), "panic: panicked in decode: boom");
        let e = PluginError::from_panic("pull", &String::from("owned"));
        assert!(e.message.contains("owned"));
        let e = PluginError::from_panic("push", &42_u8);
        assert!(e.message.contains("no message"));
    }
}
