//! Throughput baselines and micro-benchmarks for temblor.
//!
//! - `raw-simdjson` (a binary): the plain single-thread loop that decodes and re-encodes lines
//!   with simd-json and the engine's own value type, no engine around it. `cargo xtask bench`
//!   runs it beside the engine on the same data, in the same run.
//! - `benches/codec.rs`, `benches/boundary.rs` (criterion, `--features criterion`): where the
//!   time goes: codec decode/encode per event and per batch, and one boundary crossing through a
//!   loaded plugin against a static call; they share [`json_lines`] and [`batch_of`].
//! - `net-load`, `nats-bench` (binaries): load for the network scenarios; their command lines
//!   go through [`Cli`].

use std::{path::Path, str::FromStr};

use temblor_shim::Frames;

/// A binary's command line: its name and usage lines, for the messages of a bad call.
#[derive(Debug, Clone, Copy)]
pub struct Cli {
    /// The binary (`net-load`).
    pub name: &'static str,
    /// Its usage, one line per form, each after the first indented by seven spaces.
    pub usage: &'static str,
}

impl Cli {
    /// Says why the call is wrong and how to call, and exits with status 2.
    pub fn usage(&self, why: &str) -> ! {
        eprintln!("{}: {why}\nusage: {}", self.name, self.usage);
        std::process::exit(2)
    }

    /// Says what failed, and exits with status 1.
    pub fn fail(&self, why: &str) -> ! {
        eprintln!("{}: {why}", self.name);
        std::process::exit(1)
    }

    /// `--name value` from `args`, parsed; `default` when it is not there.
    pub fn flag<T: FromStr>(&self, args: &[String], name: &str, default: T) -> T {
        match args.iter().position(|a| a == name) {
            Some(i) => args
                .get(i + 1)
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| self.usage(&format!("{name} takes a number"))),
            None => default,
        }
    }

    /// The positional argument `at` (`what` names it in the message), parsed.
    pub fn arg<T: FromStr>(&self, args: &[String], at: usize, what: &str) -> T {
        args.get(at)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| self.usage(&format!("missing or bad {what}")))
    }
}

/// The lines of the shipped JSON data set (`examples/data/data.json.xz`, 100 records).
///
/// # Panics
/// When the file cannot be read.
#[must_use]
pub fn json_lines() -> Vec<Vec<u8>> {
    read_lines(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/data/data.json.xz"))
        .expect("examples/data/data.json.xz")
}

/// A batch of `n` frames: `lines` over and over.
#[must_use]
pub fn batch_of(lines: &[Vec<u8>], n: usize) -> Frames {
    lines.iter().map(Vec::as_slice).cycle().take(n).collect()
}

/// The lines of a data file (plain, `.gz` or `.xz`), without their newlines; empty lines dropped.
///
/// # Errors
/// When the file cannot be read.
pub fn read_lines(path: &Path) -> std::io::Result<Vec<Vec<u8>>> {
    let mut data = Vec::new();
    std::io::Read::read_to_end(&mut temblor_compress::open_read(path)?, &mut data)?;
    Ok(data
        .split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
        .map(<[u8]>::to_vec)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_shipped_data_set() {
        let lines = json_lines();
        assert_eq!(lines.len(), 100);
        assert_eq!(lines.iter().map(Vec::len).sum::<usize>() + 100, 63015);
        let batch = batch_of(&lines, 250);
        assert_eq!(batch.len(), 250);
        assert_eq!(batch.get(100), Some(lines[0].as_slice()));
    }
}
