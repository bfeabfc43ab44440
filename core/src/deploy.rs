//! The deployment file (TOML): connectors, pipelines and the links between them.
//!
//! ```toml
//! [[connector]]
//! id = "in"
//! plugin = "file"
//! codec = "json"
//! preprocessors = ["separate"]
//! config = { path = "in.json", mode = "read" }
//!
//! [[pipeline]]
//! id = "main"
//! operators = []
//!
//! [[connect]]
//! from = "in"
//! to = "main"
//! ```
//! Parsing checks the shape; [`Deployment::validate`] checks the meaning (ids, plugins,
//! operators and their expressions, links and ports) and reports every problem at once, each
//! with its line and column. What is valid but likely a mistake (a pipeline that nothing feeds,
//! or whose events go nowhere) is a warning: [`Plan::warnings`], [`DeployError::warnings`].

use std::{collections::HashMap, ops::Range};

use serde::Deserialize;
use temblor_shim::{Object, Value, abi::PluginKind};
use toml::Spanned;

pub use temblor_processors::Named;

use crate::{pipeline::PipelineDef, processors, registry::Registry};

/// One problem in a deployment file, with where it is: `LINE:COLUMN: message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{line}:{column}: {message}")]
pub struct Diagnostic {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

/// Every problem found in a deployment file: one `FILE:LINE:COLUMN: message` line each.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.lines().join("\n"))]
pub struct DeployError {
    /// The file's name, as given.
    pub file: String,
    /// The problems, in file order.
    pub diagnostics: Vec<Diagnostic>,
    /// What is valid but likely a mistake, in file order (not part of `Display`).
    pub warnings: Vec<Diagnostic>,
}

impl DeployError {
    /// The warnings, one `FILE:LINE:COLUMN: message` line each.
    #[must_use]
    pub fn warning_lines(&self) -> Vec<String> {
        self.warnings
            .iter()
            .map(|d| format!("{}:{d}", self.file))
            .collect()
    }

    /// The problems, one `FILE:LINE:COLUMN: message` line each.
    fn lines(&self) -> Vec<String> {
        self.diagnostics
            .iter()
            .map(|d| format!("{}:{d}", self.file))
            .collect()
    }
}

/// A parsed deployment.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deployment {
    /// `[[connector]]` tables.
    #[serde(default, rename = "connector")]
    pub connectors: Vec<ConnectorSpec>,
    /// `[[pipeline]]` tables.
    #[serde(default, rename = "pipeline")]
    pub pipelines: Vec<PipelineSpec>,
    /// `[[connect]]` tables.
    #[serde(default, rename = "connect")]
    pub links: Vec<LinkSpec>,
    /// `[[plugin]]` tables: plugins pinned to the SHA-256 of their file (checked when parsing).
    #[serde(default, rename = "plugin")]
    pub pins: Vec<PinSpec>,
    #[serde(skip)]
    text: String,
}

/// A `[[plugin]]`: the plugin with this name may only be loaded from a file with this SHA-256.
/// The `temblor` binary enforces it when it loads plugin files (see `docs/security.md`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinSpec {
    /// The plugin's name, as connectors and codecs name it.
    pub name: Spanned<String>,
    /// The SHA-256 of the plugin file: 64 hexadecimal digits (`temblor plugins list` shows it).
    pub sha256: Spanned<String>,
}

/// A checked `[[plugin]]` pin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    /// The plugin's name.
    pub name: String,
    /// The SHA-256 of its file, 64 lower-case hexadecimal digits.
    pub sha256: String,
    /// Where its `[[plugin]]` table's `name` is: 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
}

/// The length of a SHA-256 in hexadecimal digits.
const SHA256_HEX_LEN: usize = 64;

/// A `[[connector]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectorSpec {
    /// Its id, unique among connectors and pipelines.
    pub id: Spanned<String>,
    /// The connector plugin's name.
    pub plugin: Spanned<String>,
    /// `"name"` or `{ name = "...", config = { ... } }`.
    pub codec: Option<Spanned<Value>>,
    /// Applied to incoming bytes, in order, before decoding.
    #[serde(default)]
    pub preprocessors: Vec<Spanned<Value>>,
    /// Applied to outgoing bytes, in order, after encoding.
    #[serde(default)]
    pub postprocessors: Vec<Spanned<Value>>,
    /// Handed to the plugin as it is.
    #[serde(default)]
    pub config: Option<Value>,
    /// How a failed or panicked source or sink is restarted (defaults: [`RestartPolicy`]).
    #[serde(default)]
    pub restart: Option<Spanned<RestartPolicy>>,
    /// Sink side: how often a batch whose write failed is tried again before it is given up
    /// (default 3).
    #[serde(default)]
    pub retries: Option<u32>,
    /// Sink side: a file that receives what could not be delivered after the retries, one frame
    /// a line (a newline is added unless the frame ends with one; appended; created when
    /// needed). Events the codec could not encode go there as JSON. Without it such events are
    /// counted as `lost`.
    #[serde(default)]
    pub dead_letter: Option<String>,
}

/// How a failing source or sink is restarted: after a failed or panicked call the engine
/// waits `backoff_ms`, doubling after each further failure up to `max_backoff_ms`; a
/// successful call resets the wait. After `max_restarts` restarts in a row without a
/// successful call in between, the connector is stopped (0: never restart).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RestartPolicy {
    /// The first wait, in milliseconds (default 100).
    pub backoff_ms: u64,
    /// The longest wait, in milliseconds (default 5000).
    pub max_backoff_ms: u64,
    /// Restarts in a row before giving up (default 10).
    pub max_restarts: u32,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            backoff_ms: 100,
            max_backoff_ms: 5000,
            max_restarts: 10,
        }
    }
}

impl RestartPolicy {
    /// The wait before restart number `attempt` (1 for the first).
    #[must_use]
    pub fn backoff(&self, attempt: u32) -> std::time::Duration {
        let factor = 1_u64 << attempt.saturating_sub(1).min(32);
        std::time::Duration::from_millis(
            self.backoff_ms
                .saturating_mul(factor)
                .min(self.max_backoff_ms.max(self.backoff_ms)),
        )
    }
}

/// The default number of retries of a sink's failed write.
pub const DEFAULT_RETRIES: u32 = 3;

/// A `[[pipeline]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineSpec {
    /// Its id, unique among connectors and pipelines.
    pub id: Spanned<String>,
    /// Operators, applied in order (none: passthrough).
    #[serde(default)]
    pub operators: Vec<Spanned<Value>>,
}

/// A `[[connect]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkSpec {
    /// A connector id, or a pipeline's `id` / `id/PORT`.
    pub from: Spanned<String>,
    /// A pipeline id or a connector id.
    pub to: Spanned<String>,
}

/// Where a link starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    /// A pipeline's `out` port (the default).
    Out,
    /// A pipeline's `err` port: events that failed.
    Err,
    /// A port named by a `route` operator: its index in [`PipelineDef::ports`] (2 or more).
    Route(usize),
}

impl Port {
    /// `out`, `err`, or `route` for a route port (its name is in [`PipelineDef::ports`]).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Out => "out",
            Self::Err => "err",
            Self::Route(_) => "route",
        }
    }

    /// The index in [`PipelineDef::ports`].
    #[must_use]
    pub fn index(self) -> usize {
        match self {
            Self::Out => crate::pipeline::OUT,
            Self::Err => crate::pipeline::ERR,
            Self::Route(i) => i,
        }
    }
}

/// What an id names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Node {
    /// The connector at this index of `connectors`.
    Connector(usize),
    /// The pipeline at this index of `pipelines`.
    Pipeline(usize),
}

/// A checked link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// Events from a source connector into a pipeline.
    SourceToPipeline {
        /// Index into `connectors`.
        connector: usize,
        /// Index into `pipelines`.
        pipeline: usize,
    },
    /// Events from a pipeline's port into a sink connector.
    PipelineToSink {
        /// Index into `pipelines`.
        pipeline: usize,
        /// Which port.
        port: Port,
        /// Index into `connectors`.
        connector: usize,
    },
}

/// A connector's codec, processors and config, checked.
#[derive(Debug, Clone)]
pub struct ConnectorPlan {
    /// The codec (`binary` when none is given: bytes as they are).
    pub codec: Named,
    /// Preprocessors in order.
    pub preprocessors: Vec<Named>,
    /// Postprocessors in order.
    pub postprocessors: Vec<Named>,
    /// The plugin config (an empty object when none is given).
    pub config: Value,
    /// How it is restarted after a failure.
    pub restart: RestartPolicy,
    /// Sink side: retries of a failed write.
    pub retries: u32,
    /// Sink side: where undeliverable frames go.
    pub dead_letter: Option<std::path::PathBuf>,
}

/// A deployment whose every reference resolved: what the engine runs.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Per connector, in `connectors` order.
    pub connectors: Vec<ConnectorPlan>,
    /// Per pipeline, in `pipelines` order: the operators, read and checked.
    pub pipelines: Vec<PipelineDef>,
    /// The links, in file order.
    pub links: Vec<Link>,
    /// What is valid but likely a mistake, in file order.
    pub warnings: Vec<Diagnostic>,
}

impl Deployment {
    /// Parses a deployment file. `file` is used in messages only.
    ///
    /// # Errors
    /// A syntax or shape error, with line and column.
    pub fn parse(text: &str, file: &str) -> Result<Self, DeployError> {
        match toml::from_str::<Self>(text) {
            Ok(mut deployment) => {
                text.clone_into(&mut deployment.text);
                let diagnostics = deployment.check_pins();
                if diagnostics.is_empty() {
                    Ok(deployment)
                } else {
                    Err(DeployError {
                        file: file.to_owned(),
                        diagnostics,
                        warnings: Vec::new(),
                    })
                }
            }
            Err(e) => {
                let (line, column) = e.span().map_or((1, 1), |s| line_col(text, s.start));
                Err(DeployError {
                    file: file.to_owned(),
                    diagnostics: vec![Diagnostic {
                        line,
                        column,
                        message: e.message().trim().to_owned(),
                    }],
                    warnings: Vec::new(),
                })
            }
        }
    }

    /// The connector with this id.
    #[must_use]
    pub fn connector(&self, id: &str) -> Option<&ConnectorSpec> {
        self.connectors.iter().find(|c| c.id.get_ref() == id)
    }

    /// The `[[plugin]]` pins, checked by [`Deployment::parse`]: known to be well formed.
    #[must_use]
    pub fn pins(&self) -> Vec<Pin> {
        self.pins
            .iter()
            .map(|p| {
                let (line, column) = line_col(&self.text, p.name.span().start);
                Pin {
                    name: p.name.get_ref().clone(),
                    sha256: p.sha256.get_ref().to_ascii_lowercase(),
                    line,
                    column,
                }
            })
            .collect()
    }

    /// Checks every `[[plugin]]`: a name, 64 hexadecimal digits, each name pinned once.
    fn check_pins(&self) -> Vec<Diagnostic> {
        let mut diagnostics = Vec::new();
        let mut at = |span: Range<usize>, message: String| {
            let (line, column) = line_col(&self.text, span.start);
            diagnostics.push(Diagnostic {
                line,
                column,
                message,
            });
        };
        let mut seen: HashMap<&str, (usize, usize)> = HashMap::new();
        for pin in &self.pins {
            let name = pin.name.get_ref();
            if name.is_empty() {
                at(
                    pin.name.span(),
                    "[[plugin]]: `name` must not be empty".to_owned(),
                );
            } else if let Some((line, column)) = seen.get(name.as_str()) {
                at(
                    pin.name.span(),
                    format!(
                        "[[plugin]]: plugin '{name}' is pinned twice (first at {line}:{column})"
                    ),
                );
            } else {
                seen.insert(name, line_col(&self.text, pin.name.span().start));
            }
            let hash = pin.sha256.get_ref();
            let bad = hash
                .chars()
                .enumerate()
                .find(|(_, c)| !c.is_ascii_hexdigit());
            let problem = match bad {
                Some((i, c)) => Some(format!("found {c:?} at position {}", i + 1)),
                None if hash.len() != SHA256_HEX_LEN => {
                    Some(format!("found {} digits", hash.len()))
                }
                None => None,
            };
            if let Some(problem) = problem {
                at(
                    pin.sha256.span(),
                    format!(
                        "[[plugin]] '{name}': `sha256` must be {SHA256_HEX_LEN} hexadecimal digits \
                         (the file's SHA-256, as `temblor plugins list` shows it); {problem}"
                    ),
                );
            }
        }
        diagnostics.sort_by_key(|d| (d.line, d.column));
        diagnostics
    }

    /// Checks every reference against the registry: unique ids, known plugins of the right
    /// kind, known processors, operators and their expressions, links between existing
    /// components and ports. Reports all problems at once; pipelines that nothing feeds or
    /// whose events go nowhere are warnings.
    ///
    /// # Errors
    /// Every problem found, each with line and column.
    pub fn validate(&self, registry: &Registry, file: &str) -> Result<Plan, DeployError> {
        let mut v = Validator {
            text: &self.text,
            diagnostics: Vec::new(),
            warnings: Vec::new(),
            pins: self.pins(),
        };
        let ids = v.ids(self);
        let connectors = self
            .connectors
            .iter()
            .map(|c| v.connector(c, registry))
            .collect();
        let pipelines: Vec<PipelineDef> = self.pipelines.iter().map(|p| v.pipeline(p)).collect();
        let mut refused = Vec::new();
        let links = self
            .links
            .iter()
            .filter_map(|l| {
                let link = v.link(l, &ids, &pipelines);
                if link.is_none() {
                    refused.push(l);
                }
                link
            })
            .collect::<Vec<_>>();
        v.reachability(self, &links, &refused);
        v.diagnostics.sort_by_key(|d| (d.line, d.column));
        v.warnings.sort_by_key(|d| (d.line, d.column));
        if v.diagnostics.is_empty() {
            Ok(Plan {
                connectors,
                pipelines,
                links,
                warnings: v.warnings,
            })
        } else {
            Err(DeployError {
                file: file.to_owned(),
                diagnostics: v.diagnostics,
                warnings: v.warnings,
            })
        }
    }
}

struct Validator<'a> {
    text: &'a str,
    diagnostics: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
    /// The `[[plugin]]` pins, to explain a pinned plugin that is not loaded.
    pins: Vec<Pin>,
}

impl Validator<'_> {
    /// For a plugin that is not loaded: why, when it is pinned.
    fn pin_hint(&self, name: &str) -> Option<String> {
        let pin = self.pins.iter().find(|p| p.name == name)?;
        Some(format!(
            " (it is pinned by the [[plugin]] at {}:{}, and no plugin file with sha256 {} was \
             loaded: a file with another hash is refused, see the refused plugin files above)",
            pin.line, pin.column, pin.sha256
        ))
    }

    fn at(&mut self, span: Range<usize>, message: String) {
        let diagnostic = self.diagnostic(&span, message);
        self.diagnostics.push(diagnostic);
    }

    fn warn_at(&mut self, span: Range<usize>, message: String) {
        let diagnostic = self.diagnostic(&span, message);
        self.warnings.push(diagnostic);
    }

    /// `message` at the start of `span`.
    fn diagnostic(&self, span: &Range<usize>, message: String) -> Diagnostic {
        let (line, column) = line_col(self.text, span.start);
        Diagnostic {
            line,
            column,
            message,
        }
    }

    /// Reads a pipeline's operators; each bad one is reported at its place in the file. The
    /// pipeline comes back even then, with every port its operators name, to check links.
    fn pipeline(&mut self, p: &PipelineSpec) -> PipelineDef {
        let (def, errors) =
            PipelineDef::compile_partial(p.id.get_ref(), p.operators.iter().map(Spanned::get_ref));
        for e in errors {
            self.at(p.operators[e.operator].span(), e.to_string());
        }
        def
    }

    /// Warns about pipelines that nothing feeds and pipelines whose events go nowhere. A
    /// pipeline named by a refused link is not judged in that link's direction: the broken
    /// link is already reported.
    fn reachability(&mut self, d: &Deployment, links: &[Link], refused: &[&LinkSpec]) {
        let names = |spec: &Spanned<String>, id: &str| spec.get_ref().split('/').next() == Some(id);
        for (i, p) in d.pipelines.iter().enumerate() {
            let id = p.id.get_ref();
            let fed = links
                .iter()
                .any(|l| matches!(l, Link::SourceToPipeline { pipeline, .. } if *pipeline == i));
            if !fed && !refused.iter().any(|l| names(&l.to, id)) {
                self.warn_at(
                    p.id.span(),
                    format!(
                        "pipeline '{id}' has no input: no [[connect]] has `to = \"{id}\"`, \
                         so it never sees an event"
                    ),
                );
            }
            let drained = links.iter().any(|l| {
                matches!(l, Link::PipelineToSink { pipeline, port, .. }
                    if *pipeline == i && *port != Port::Err)
            });
            if !drained && !refused.iter().any(|l| names(&l.from, id)) {
                self.warn_at(
                    p.id.span(),
                    format!(
                        "pipeline '{id}': its events go nowhere: no [[connect]] has \
                         `from = \"{id}\"` (or another of its ports but `err`) to a sink"
                    ),
                );
            }
        }
    }

    fn ids(&mut self, d: &Deployment) -> HashMap<String, Node> {
        let mut ids = HashMap::new();
        let all = d
            .connectors
            .iter()
            .enumerate()
            .map(|(i, c)| (&c.id, Node::Connector(i)))
            .chain(
                d.pipelines
                    .iter()
                    .enumerate()
                    .map(|(i, p)| (&p.id, Node::Pipeline(i))),
            );
        for (id, node) in all {
            if id.get_ref().is_empty() || id.get_ref().contains('/') {
                self.at(
                    id.span(),
                    format!("id '{}' must be non-empty and without '/'", id.get_ref()),
                );
            } else if ids.insert(id.get_ref().clone(), node).is_some() {
                self.at(id.span(), format!("id '{}' is used twice", id.get_ref()));
            }
        }
        ids
    }

    fn named(&mut self, spec: &Spanned<Value>) -> Option<Named> {
        Named::from_value(spec.get_ref())
            .map_err(|e| self.at(spec.span(), e.to_string()))
            .ok()
    }

    fn connector(&mut self, c: &ConnectorSpec, registry: &Registry) -> ConnectorPlan {
        let id = c.id.get_ref();
        match registry.get(c.plugin.get_ref()) {
            None => self.at(
                c.plugin.span(),
                format!(
                    "connector '{id}': no plugin named '{}' is loaded{}",
                    c.plugin.get_ref(),
                    self.pin_hint(c.plugin.get_ref())
                        .unwrap_or_else(|| registry.names_hint(PluginKind::Connector))
                ),
            ),
            Some(p) if p.kind != PluginKind::Connector => self.at(
                c.plugin.span(),
                format!(
                    "connector '{id}': plugin '{}' is a {}, not a connector",
                    p.name,
                    p.kind.as_str()
                ),
            ),
            Some(_) => {}
        }
        let codec = match &c.codec {
            None => Some(Named {
                name: "binary".to_owned(),
                config: Value::Object(Object::new()),
            }),
            Some(spec) => self
                .named(spec)
                .inspect(|named| match registry.get(&named.name) {
                    Some(p) if p.kind == PluginKind::Codec => {}
                    Some(p) => self.at(
                        spec.span(),
                        format!(
                            "connector '{id}': plugin '{}' is a {}, not a codec",
                            p.name,
                            p.kind.as_str()
                        ),
                    ),
                    None => self.at(
                        spec.span(),
                        format!(
                            "connector '{id}': no codec named '{}' is loaded{}",
                            named.name,
                            self.pin_hint(&named.name)
                                .unwrap_or_else(|| registry.names_hint(PluginKind::Codec))
                        ),
                    ),
                }),
        };
        let mut processors = |list: &[Spanned<Value>], post: bool| -> Vec<Named> {
            let mut out = Vec::new();
            for spec in list {
                let Some(named) = self.named(spec) else {
                    continue;
                };
                let check = if post {
                    processors::Postprocessor::new(&named).map(drop)
                } else {
                    processors::Preprocessor::new(&named).map(drop)
                };
                match check {
                    Ok(()) => out.push(named),
                    Err(e) => self.at(spec.span(), format!("connector '{id}': {e}")),
                }
            }
            out
        };
        let preprocessors = processors(&c.preprocessors, false);
        let postprocessors = processors(&c.postprocessors, true);
        ConnectorPlan {
            codec: codec.unwrap_or(Named {
                name: String::new(),
                config: Value::Null,
            }),
            preprocessors,
            postprocessors,
            config: c
                .config
                .clone()
                .unwrap_or_else(|| Value::Object(Object::new())),
            restart: self.restart(c),
            retries: c.retries.unwrap_or(DEFAULT_RETRIES),
            dead_letter: c.dead_letter.as_ref().map(std::path::PathBuf::from),
        }
    }

    fn restart(&mut self, c: &ConnectorSpec) -> RestartPolicy {
        let Some(spec) = &c.restart else {
            return RestartPolicy::default();
        };
        let policy = *spec.get_ref();
        if policy.backoff_ms == 0 || policy.max_backoff_ms < policy.backoff_ms {
            self.at(
                spec.span(),
                format!(
                    "connector '{}': restart needs 0 < backoff_ms <= max_backoff_ms (got {} and {})",
                    c.id.get_ref(),
                    policy.backoff_ms,
                    policy.max_backoff_ms
                ),
            );
        }
        policy
    }

    fn link(
        &mut self,
        l: &LinkSpec,
        ids: &HashMap<String, Node>,
        pipelines: &[PipelineDef],
    ) -> Option<Link> {
        let (from_id, port) = match l.from.get_ref().split_once('/') {
            None => (l.from.get_ref().as_str(), None),
            Some((id, port)) => (id, Some(port)),
        };
        let from = ids.get(from_id).copied();
        let to = ids.get(l.to.get_ref().as_str()).copied();
        if from.is_none() {
            self.at(
                l.from.span(),
                format!("connect: no connector or pipeline has the id '{from_id}'"),
            );
        }
        if to.is_none() {
            self.at(
                l.to.span(),
                format!(
                    "connect: no connector or pipeline has the id '{}'",
                    l.to.get_ref()
                ),
            );
        }
        match (from?, to?, port) {
            (Node::Connector(connector), Node::Pipeline(pipeline), None) => {
                Some(Link::SourceToPipeline {
                    connector,
                    pipeline,
                })
            }
            (Node::Connector(_), _, Some(port)) => {
                self.at(
                    l.from.span(),
                    format!("connect: connector '{from_id}' has no ports (found '/{port}')"),
                );
                None
            }
            (Node::Pipeline(pipeline), Node::Connector(connector), port) => {
                let def = &pipelines[pipeline];
                let port = match port {
                    None | Some("out") => Port::Out,
                    Some("err") => Port::Err,
                    Some(other) => match def.port(other) {
                        Some(i) => Port::Route(i),
                        None => {
                            let known: Vec<String> =
                                def.ports().iter().map(|p| format!("'{p}'")).collect();
                            self.at(
                                l.from.span(),
                                format!(
                                    "connect: pipeline '{from_id}' has no port '{other}' \
                                     (its ports are {})",
                                    known.join(", ")
                                ),
                            );
                            return None;
                        }
                    },
                };
                Some(Link::PipelineToSink {
                    pipeline,
                    port,
                    connector,
                })
            }
            (Node::Connector(_), Node::Connector(_), None) => {
                self.at(
                    l.from.span(),
                    format!(
                        "connect: '{from_id}' and '{}' are both connectors; \
                         connect a source to a pipeline and a pipeline to a sink",
                        l.to.get_ref()
                    ),
                );
                None
            }
            (Node::Pipeline(_), Node::Pipeline(_), _) => {
                self.at(
                    l.from.span(),
                    format!(
                        "connect: '{from_id}' and '{}' are both pipelines; \
                         linking pipelines is not available in this version",
                        l.to.get_ref()
                    ),
                );
                None
            }
        }
    }
}

/// The 1-based line and column (in characters) of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_from_one() {
        assert_eq!(line_col("ab\ncd", 0), (1, 1));
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
        assert_eq!(line_col("é\nx", 3), (2, 1));
    }

    #[test]
    fn syntax_errors_have_line_and_column() {
        let err = Deployment::parse("[[connector]]\nid = \"in\"\nplugin = \n", "d.toml")
            .expect_err("syntax error");
        assert_eq!(err.diagnostics.len(), 1);
        assert_eq!(err.diagnostics[0].line, 3);
        assert!(err.to_string().starts_with("d.toml:3:"), "{err}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = Deployment::parse(
            "[[connector]]\nid = \"in\"\nplugin = \"x\"\ncodex = \"json\"\n",
            "d",
        )
        .expect_err("unknown key");
        assert!(err.to_string().contains("codex"), "{err}");
        assert_eq!(err.diagnostics[0].line, 4);
    }

    const HASH: &str = "0123456789abcdef0123456789ABCDEF0123456789abcdef0123456789abcdef";

    #[test]
    fn plugin_pins_are_read_in_lower_case_with_their_place() {
        let text = format!(
            "[[plugin]]\nname = \"file\"\nsha256 = \"{HASH}\"\n\n[[plugin]]\nname = \"json\"\nsha256 = \"{}\"\n",
            "f".repeat(64)
        );
        let d = Deployment::parse(&text, "d").expect("valid pins");
        let pins = d.pins();
        assert_eq!(pins.len(), 2);
        assert_eq!(pins[0].name, "file");
        assert_eq!(pins[0].sha256, HASH.to_ascii_lowercase());
        assert_eq!((pins[0].line, pins[0].column), (2, 8));
        assert_eq!((pins[1].name.as_str(), pins[1].line), ("json", 6));
    }

    #[test]
    fn malformed_pins_are_reported_with_line_and_column() {
        let text = format!(
            "[[plugin]]\nname = \"file\"\nsha256 = \"{}\"\n\n[[plugin]]\nname = \"json\"\nsha256 = \"{}g\"\n\n[[plugin]]\nname = \"file\"\nsha256 = \"{HASH}\"\n",
            &HASH[..63],
            &HASH[..63],
        );
        let err = Deployment::parse(&text, "d.toml").expect_err("malformed pins");
        let lines: Vec<String> = err.to_string().lines().map(str::to_owned).collect();
        assert_eq!(lines.len(), 3, "{err}");
        assert!(
            lines[0].starts_with(
                "d.toml:3:10: [[plugin]] 'file': `sha256` must be 64 hexadecimal digits"
            ) && lines[0].ends_with("found 63 digits"),
            "{}",
            lines[0]
        );
        assert!(
            lines[1].starts_with("d.toml:7:10: [[plugin]] 'json'")
                && lines[1].ends_with("found 'g' at position 64"),
            "{}",
            lines[1]
        );
        assert_eq!(
            lines[2],
            "d.toml:10:8: [[plugin]]: plugin 'file' is pinned twice (first at 2:8)"
        );
        let err = Deployment::parse("[[plugin]]\nname = \"x\"\nsha = \"00\"\n", "d")
            .expect_err("unknown key");
        assert!(err.to_string().contains("sha"), "{err}");
        assert_eq!(err.diagnostics[0].line, 3);
    }

    #[test]
    fn a_pinned_plugin_that_is_not_loaded_says_so() {
        let text = format!(
            "[[connector]]\nid = \"in\"\nplugin = \"file\"\n\n[[plugin]]\nname = \"file\"\nsha256 = \"{HASH}\"\n"
        );
        let d = Deployment::parse(&text, "d").unwrap();
        let err = d.validate(&Registry::new(), "d").expect_err("not loaded");
        assert!(
            err.to_string().contains(&format!(
                "d:3:10: connector 'in': no plugin named 'file' is loaded (it is pinned by the [[plugin]] at 6:8, and no plugin file with sha256 {} was loaded",
                HASH.to_ascii_lowercase()
            )),
            "{err}"
        );
    }
}
