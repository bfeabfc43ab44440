//! Throughput baselines and micro-benchmarks for temblor.
//!
//! - `raw-simdjson` (a binary): the plain single-thread loop that decodes and re-encodes lines
//!   with simd-json and the engine's own value type, no engine around it. `cargo xtask bench`
//!   runs it beside the engine on the same data, in the same run.
//! - `benches/codec.rs`, `benches/boundary.rs` (criterion, `--features criterion`): where the
//!   time goes: codec decode/encode per event and per batch, and one boundary crossing through a
//!   loaded plugin against a static call.

use std::path::Path;

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
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/data/data.json.xz");
        let lines = read_lines(&path).unwrap();
        assert_eq!(lines.len(), 100);
        assert_eq!(lines.iter().map(Vec::len).sum::<usize>() + 100, 63015);
    }
}
