//! Where a sink writes what it could not deliver: one frame a line (a newline is added unless
//! the frame ends with one), appended, flushed before the write counts.

use std::{
    fs::{File, OpenOptions},
    io::{BufWriter, Write as _},
    path::PathBuf,
};

/// A dead letter file, opened at its first use.
pub(crate) struct DeadLetter {
    pub(crate) path: PathBuf,
    file: Option<BufWriter<File>>,
}

impl DeadLetter {
    pub(crate) fn new(path: PathBuf) -> Self {
        Self { path, file: None }
    }

    /// Appends every line and flushes.
    pub(crate) fn write<'a>(
        &mut self,
        lines: impl Iterator<Item = &'a [u8]>,
    ) -> std::io::Result<()> {
        let out = match &mut self.file {
            Some(out) => out,
            None => {
                let file = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)?;
                self.file.insert(BufWriter::new(file))
            }
        };
        for line in lines {
            out.write_all(line)?;
            if !line.ends_with(b"\n") {
                out.write_all(b"\n")?;
            }
        }
        out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_appended_one_a_line() {
        let dir = std::env::temp_dir().join(format!("temblor-dl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("dead.jsonl");
        let _ = std::fs::remove_file(&path);
        std::fs::write(&path, "old\n").expect("seed");
        let mut dl = DeadLetter::new(path.clone());
        dl.write([&b"a"[..], b"b\n"].into_iter()).expect("write");
        dl.write(std::iter::once(&b""[..])).expect("write");
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            "old\na\nb\n\n"
        );
        let mut bad = DeadLetter::new(dir.join("no/such/dir/x"));
        assert!(bad.write(std::iter::once(&b"x"[..])).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
