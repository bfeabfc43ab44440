//! The deployment file `temblor run` reads (TOML, see `temblor_core::deploy`), built from
//! types: a test says which connectors, pipelines and links it wants, and gets the same file
//! a user writes.
//!
//! ```
//! use std::path::Path;
//!
//! use temblor_harness::deploy::{Connector, Deployment, Pipeline};
//!
//! let deploy = Deployment::new()
//!     .connector(Connector::file_read("in", "json", Path::new("in.json")))
//!     .connector(Connector::file_write("out", Path::new("out.json")))
//!     .pipeline(Pipeline::new("main").op(r#"{ filter = 'event.a > 1' }"#))
//!     .connect("in", "main")
//!     .connect("main", "out");
//! assert!(deploy.to_toml().contains("operators = [\n  { filter = 'event.a > 1' },\n]"));
//! ```

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
};

use temblor_shim::Value;

use crate::path_value;

/// One `[[connector]]` table.
#[derive(Debug, Clone)]
#[must_use]
pub struct Connector {
    id: String,
    plugin: String,
    codec: Option<Value>,
    preprocessors: Vec<Value>,
    postprocessors: Vec<Value>,
    config: Vec<(String, Value)>,
    /// `key = value` lines written as they are (`restart = { ... }`, `retries = 2`).
    raw: Vec<String>,
}

impl Connector {
    /// A connector of `plugin` named `id`, with no codec, processors or config.
    pub fn new(id: &str, plugin: &str) -> Self {
        Self {
            id: id.to_owned(),
            plugin: plugin.to_owned(),
            codec: None,
            preprocessors: Vec::new(),
            postprocessors: Vec::new(),
            config: Vec::new(),
            raw: Vec::new(),
        }
    }

    /// A `file` source reading `path` line by line (`separate`) with `codec`.
    pub fn file_read(id: &str, codec: &str, path: &Path) -> Self {
        Self::new(id, "file")
            .codec(codec)
            .pre("separate")
            .set("path", path_value(path))
            .set("mode", "read")
    }

    /// A `file` sink writing one JSON event a line to `path`.
    pub fn file_write(id: &str, path: &Path) -> Self {
        Self::new(id, "file")
            .codec("json")
            .post("separate")
            .set("path", path_value(path))
            .set("mode", "write")
    }

    /// The codec: a name, or a table with `name` and `config`.
    pub fn codec(mut self, codec: impl Into<Value>) -> Self {
        self.codec = Some(codec.into());
        self
    }

    /// One more preprocessor: a name, or a table.
    pub fn pre(mut self, processor: impl Into<Value>) -> Self {
        self.preprocessors.push(processor.into());
        self
    }

    /// One more postprocessor: a name, or a table.
    pub fn post(mut self, processor: impl Into<Value>) -> Self {
        self.postprocessors.push(processor.into());
        self
    }

    /// Sets `key` in the connector's `config` table.
    pub fn set(mut self, key: &str, value: impl Into<Value>) -> Self {
        match self.config.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value.into(),
            None => self.config.push((key.to_owned(), value.into())),
        }
        self
    }

    /// Sets `key` in the connector's `config` table to a path.
    pub fn set_path(self, key: &str, path: &Path) -> Self {
        self.set(key, path_value(path))
    }

    /// A line of TOML for this table as it is, such as `retries = 2` or
    /// `restart = { backoff_ms = 10 }`.
    pub fn line(mut self, toml: &str) -> Self {
        self.raw.push(toml.to_owned());
        self
    }

    fn write(&self, out: &mut String) {
        let _ = writeln!(out, "[[connector]]\nid = {}", string(&self.id));
        let _ = writeln!(out, "plugin = {}", string(&self.plugin));
        if let Some(codec) = &self.codec {
            let _ = writeln!(out, "codec = {}", toml(codec));
        }
        for (key, list) in [
            ("preprocessors", &self.preprocessors),
            ("postprocessors", &self.postprocessors),
        ] {
            if !list.is_empty() {
                let _ = writeln!(out, "{key} = {}", toml(&Value::from(list.clone())));
            }
        }
        if !self.config.is_empty() {
            let _ = writeln!(out, "config = {}", table(&self.config));
        }
        for line in &self.raw {
            let _ = writeln!(out, "{line}");
        }
        out.push('\n');
    }
}

/// One `[[pipeline]]` table.
#[derive(Debug, Clone)]
#[must_use]
pub struct Pipeline {
    id: String,
    operators: Vec<String>,
}

impl Pipeline {
    /// A pipeline with no operators: it passes every event on.
    pub fn new(id: &str) -> Self {
        Self {
            id: id.to_owned(),
            operators: Vec::new(),
        }
    }

    /// Its id.
    #[must_use]
    pub fn id(&self) -> &str {
        &self.id
    }

    /// One more operator, as a TOML inline table (`{ filter = 'event.a > 1' }`): operators are
    /// the pipeline language, which a test writes as a user does.
    pub fn op(mut self, operator: &str) -> Self {
        self.operators.push(operator.to_owned());
        self
    }

    fn write(&self, out: &mut String) {
        let _ = writeln!(out, "[[pipeline]]\nid = {}", string(&self.id));
        if self.operators.is_empty() {
            out.push_str("operators = []\n\n");
        } else {
            out.push_str("operators = [\n");
            for op in &self.operators {
                let _ = writeln!(out, "  {op},");
            }
            out.push_str("]\n\n");
        }
    }
}

/// A whole deployment: connectors, pipelines, links and plugin pins, in the order given.
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct Deployment {
    text: String,
}

impl Deployment {
    /// An empty deployment.
    pub fn new() -> Self {
        Self::default()
    }

    /// `source` → `main` (no operators) → `sink`: the smallest deployment that moves events.
    pub fn passthrough(source: Connector, sink: Connector) -> Self {
        Self::pipe(source, Pipeline::new("main"), sink)
    }

    /// `source` → `pipeline` → `sink`.
    pub fn pipe(source: Connector, pipeline: Pipeline, sink: Connector) -> Self {
        Self::new().flow(source, pipeline, sink)
    }

    /// One more `source` → `pipeline` → `sink`, beside what is there (a deployment that sends
    /// to itself has two).
    pub fn flow(self, source: Connector, pipeline: Pipeline, sink: Connector) -> Self {
        let (from, via, to) = (source.id.clone(), pipeline.id.clone(), sink.id.clone());
        self.connector(source)
            .connector(sink)
            .pipeline(pipeline)
            .connect(&from, &via)
            .connect(&via, &to)
    }

    /// One more connector, linked into `to` (a pipeline, `pipeline/port`, or a connector).
    pub fn source(self, source: Connector, to: &str) -> Self {
        let from = source.id.clone();
        self.connector(source).connect(&from, to)
    }

    /// One more connector.
    pub fn connector(mut self, connector: Connector) -> Self {
        connector.write(&mut self.text);
        self
    }

    /// One more pipeline.
    pub fn pipeline(mut self, pipeline: Pipeline) -> Self {
        pipeline.write(&mut self.text);
        self
    }

    /// A link (`[[connect]]`): `from` and `to` are ids, `pipeline/port` for a port.
    pub fn connect(mut self, from: &str, to: &str) -> Self {
        let _ = writeln!(
            self.text,
            "[[connect]]\nfrom = {}\nto = {}\n",
            string(from),
            string(to)
        );
        self
    }

    /// TOML text as it is (a table the builder has no type for, such as a pipeline whose
    /// operators come from an example file).
    pub fn raw(mut self, toml: &str) -> Self {
        self.text.push_str(toml);
        if !toml.ends_with('\n') {
            self.text.push('\n');
        }
        self.text.push('\n');
        self
    }

    /// A plugin pin (`[[plugin]]` with `name` and `sha256`).
    pub fn pin(mut self, name: &str, sha256: &str) -> Self {
        let _ = writeln!(
            self.text,
            "[[plugin]]\nname = {}\nsha256 = {}\n",
            string(name),
            string(sha256)
        );
        self
    }

    /// The TOML text.
    #[must_use]
    pub fn to_toml(&self) -> String {
        self.text.clone()
    }

    /// Writes the file as `deploy.toml` in `dir`, created when missing; its path.
    ///
    /// # Panics
    /// When it cannot be written.
    pub fn write(&self, dir: impl AsRef<Path>) -> PathBuf {
        let path = dir.as_ref().join("deploy.toml");
        std::fs::create_dir_all(dir.as_ref())
            .and_then(|()| std::fs::write(&path, &self.text))
            .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }
}

/// A TOML basic string (JSON's string escapes are TOML's).
fn string(s: &str) -> String {
    Value::from(s).to_json()
}

fn table(pairs: &[(String, Value)]) -> String {
    if pairs.is_empty() {
        return "{}".to_owned();
    }
    let fields: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{} = {}", string(k), toml(v)))
        .collect();
    format!("{{ {} }}", fields.join(", "))
}

/// `value` as a TOML value (inline tables for objects).
///
/// # Panics
/// On null and bytes, which TOML cannot say.
fn toml(value: &Value) -> String {
    match value {
        Value::Null | Value::Bytes(_) => panic!("TOML has no {value:?}"),
        Value::F64(f) if f.fract() == 0.0 && f.is_finite() => format!("{f:.1}"),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(toml).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Object(object) => table(
            &object
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect::<Vec<_>>(),
        ),
        other => other.to_json(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;

    #[test]
    fn writes_the_format_users_write() {
        let text = Deployment::passthrough(
            Connector::file_read("in", "json", Path::new("/data/in \"x\".json")),
            Connector::new("out", "tcp_client")
                .codec(config(&[("name", "csv".into()), ("config", config(&[]))]))
                .post(config(&[
                    ("name", "length-prefixed".into()),
                    ("width", 8.into()),
                ]))
                .set("url", "127.0.0.1:9")
                .set("tls", config(&[("ca", "ca.pem".into())]))
                .set("ratio", 2.0)
                .line("retries = 2"),
        )
        .to_toml();
        let tables: Vec<&str> = text.split("\n\n").collect();
        assert_eq!(
            tables[..2],
            [
                "[[connector]]\nid = \"in\"\nplugin = \"file\"\ncodec = \"json\"\n\
                 preprocessors = [\"separate\"]\n\
                 config = { \"path\" = \"/data/in \\\"x\\\".json\", \"mode\" = \"read\" }",
                "[[connector]]\nid = \"out\"\nplugin = \"tcp_client\"\n\
                 codec = { \"name\" = \"csv\", \"config\" = {} }\n\
                 postprocessors = [{ \"name\" = \"length-prefixed\", \"width\" = 8 }]\n\
                 config = { \"url\" = \"127.0.0.1:9\", \"tls\" = { \"ca\" = \"ca.pem\" }, \"ratio\" = 2.0 }\n\
                 retries = 2",
            ]
        );
        // The pipeline, then `in` → `main` → `out`.
        assert_eq!(
            tables[2..],
            [
                "[[pipeline]]\nid = \"main\"\noperators = []",
                "[[connect]]\nfrom = \"in\"\nto = \"main\"",
                "[[connect]]\nfrom = \"main\"\nto = \"out\"",
                "",
            ]
        );
    }
}
