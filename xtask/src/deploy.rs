//! The deployment files the tasks write (the bench scenarios, the dev loop's codec round trip,
//! the scaffold test's run): TOML text from its tables, so that each task says only what
//! differs. (The tests of `app/` build theirs with `temblor_harness::deploy`; xtask stays off
//! the shim's compile time.)

use std::fmt::Write as _;

/// A `[[connector]]` table: `id`, `plugin`, then each of `lines` (`codec = "json"`,
/// `config = { ... }`) as it is.
pub fn connector(id: &str, plugin: &str, lines: &[&str]) -> String {
    let mut table = format!("[[connector]]\nid = \"{id}\"\nplugin = \"{plugin}\"\n");
    for line in lines {
        table.push_str(line);
        table.push('\n');
    }
    table.push('\n');
    table
}

/// A `[[pipeline]]` table with `operators` (a TOML array, `[]` for none).
pub fn pipeline(id: &str, operators: &str) -> String {
    format!("[[pipeline]]\nid = \"{id}\"\noperators = {operators}\n\n")
}

/// A `[[connect]]` table for each `(from, to)`.
pub fn connect(links: &[(impl AsRef<str>, impl AsRef<str>)]) -> String {
    let mut text = String::new();
    for (from, to) in links {
        let (from, to) = (from.as_ref(), to.as_ref());
        let _ = write!(text, "[[connect]]\nfrom = \"{from}\"\nto = \"{to}\"\n\n");
    }
    text
}

/// `header` (a comment line), then `source` (id `in`) → `main` (`operators`) → `sink` (id
/// `out`): the tables given, the pipeline and its two links.
pub fn passthrough(header: &str, source: &str, sink: &str, operators: &str) -> String {
    format!(
        "{header}\n{source}{sink}{}{}",
        pipeline("main", operators),
        connect(&[("in", "main"), ("main", "out")])
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passthrough_writes_the_tables_in_order() {
        let text = passthrough(
            "# x",
            &connector("in", "file", &["codec = \"json\""]),
            &connector("out", "blackhole", &[]),
            "[]",
        );
        assert_eq!(
            text,
            "# x\n[[connector]]\nid = \"in\"\nplugin = \"file\"\ncodec = \"json\"\n\n\
             [[connector]]\nid = \"out\"\nplugin = \"blackhole\"\n\n\
             [[pipeline]]\nid = \"main\"\noperators = []\n\n\
             [[connect]]\nfrom = \"in\"\nto = \"main\"\n\n\
             [[connect]]\nfrom = \"main\"\nto = \"out\"\n\n"
        );
    }
}
