//! Forwards a dynamically loaded plugin's `tracing` events to the host.
//!
//! A plugin library has its own copy of `tracing`'s global dispatcher, so without this its log
//! lines would go nowhere. The host hands over a callback once at load time; this module installs
//! a subscriber in the plugin that formats each event and calls the callback, and a panic hook
//! that reports where a panic happened (the panic itself is caught and returned as an error).

use std::fmt::{self, Write as _};

use abi_stable::std_types::RStr;
use tracing::{
    Event, Level, Metadata, Subscriber,
    field::{Field, Visit},
    level_filters::LevelFilter,
    span,
};

use crate::abi::{LogFn, LogLevel};

fn to_log_level(level: Level) -> LogLevel {
    match level {
        Level::TRACE => LogLevel::Trace,
        Level::DEBUG => LogLevel::Debug,
        Level::INFO => LogLevel::Info,
        Level::WARN => LogLevel::Warn,
        Level::ERROR => LogLevel::Error,
    }
}

/// Maps the host's most verbose wanted level to a `tracing` filter.
#[must_use]
pub fn level_filter(max: LogLevel) -> LevelFilter {
    match max {
        LogLevel::Trace => LevelFilter::TRACE,
        LogLevel::Debug => LevelFilter::DEBUG,
        LogLevel::Info => LevelFilter::INFO,
        LogLevel::Warn => LevelFilter::WARN,
        LogLevel::Error => LevelFilter::ERROR,
    }
}

struct Forwarder {
    plugin: &'static str,
    log: LogFn,
    max: LogLevel,
}

/// Formats an event's fields: the message first, then ` key=value` for each other field.
#[derive(Default)]
struct Line {
    message: String,
    fields: String,
}

impl Visit for Line {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }
}

impl Subscriber for Forwarder {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        to_log_level(*metadata.level()) >= self.max
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(level_filter(self.max))
    }

    fn new_span(&self, _span: &span::Attributes<'_>) -> span::Id {
        span::Id::from_u64(1)
    }

    fn record(&self, _span: &span::Id, _values: &span::Record<'_>) {}

    fn record_follows_from(&self, _span: &span::Id, _follows: &span::Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut line = Line::default();
        event.record(&mut line);
        line.message.push_str(&line.fields);
        let meta = event.metadata();
        (self.log)(
            to_log_level(*meta.level()),
            RStr::from_str(self.plugin),
            RStr::from_str(meta.target()),
            RStr::from_str(&line.message),
        );
    }

    fn enter(&self, _span: &span::Id) {}

    fn exit(&self, _span: &span::Id) {}
}

/// Installs the forwarding subscriber and panic hook in this (plugin) library.
/// Only the first call has an effect.
pub fn init(plugin: &'static str, log: LogFn, max: LogLevel) {
    if tracing::subscriber::set_global_default(Forwarder { plugin, log, max }).is_err() {
        return;
    }
    std::panic::set_hook(Box::new(move |info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let what = crate::error::panic_message(info.payload());
        log(
            LogLevel::Warn,
            RStr::from_str(plugin),
            RStr::from_str("panic"),
            RStr::from_str(&format!("panicked at {location}: {what}")),
        );
    }));
}
