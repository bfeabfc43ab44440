//! End to end: the plugins' own runtimes: side by side, across hot reloads (no thread or socket left behind), and an idle engine.

#[allow(unused_imports)]
use crate::support;
