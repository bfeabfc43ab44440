//! The pipeline's errors: why an operator is refused at start-up ([`ConfigError`], which
//! [`super::OperatorError`] places in its pipeline), and why an event failed in an operator
//! ([`EventError`], the `error` field of the event on the `err` port).
//!
//! Each message names the key, path, expression or emitted field at fault. Errors are made
//! only when something fails: an event that passes costs nothing here.

use std::fmt;

use temblor_shim::Value;

use super::{expr::EvalError, parse::SyntaxError};

/// Why an operator's configuration is refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// The operator is not a table.
    #[error("an operator is a table such as `{{ filter = '...' }}`, found {found}")]
    NotATable { found: &'static str },
    /// The table names no operator.
    #[error(
        "no operator in this table (keys: {keys}); the operators are {}",
        super::ops::NAMES.join(", ")
    )]
    NoOperator { keys: String },
    /// The table names two operators.
    #[error("one operator per table: found both `{name}` and `{other}`")]
    TwoOperators {
        name: &'static str,
        other: &'static str,
    },
    /// A key beside the operator's own (only `route` takes one: `default`).
    #[error("unknown key `{key}` here")]
    UnknownKey { key: String },
    /// A key the operator's table does not take.
    #[error("unknown key `{key}` ({operator} takes {})", Keys(.takes))]
    UnknownSetting {
        key: String,
        operator: &'static str,
        takes: &'static [&'static str],
    },
    /// An expression that does not parse.
    #[error("{source} (in `{text}`)")]
    Expression { text: String, source: SyntaxError },
    /// The expression of a key (`group_by`, `having`, `rate`, ...) that does not parse.
    #[error("{key}: {source} (in `{text}`)")]
    KeyExpression {
        key: &'static str,
        text: String,
        source: SyntaxError,
    },
    /// A path that does not parse.
    #[error("path \"{text}\": {source}")]
    Path { text: String, source: SyntaxError },
    /// `event` or `meta` itself where a field must be named.
    #[error("path \"{text}\": cannot {what} the {root} itself; name a field (`{root}.a`)")]
    WholeRoot {
        text: String,
        what: &'static str,
        root: String,
    },
    /// An empty table.
    #[error("the table is empty; expected {expected}")]
    EmptyTable { expected: &'static str },
    /// A value of the wrong shape.
    #[error("expected {expected}, found {found}")]
    Expected {
        expected: &'static str,
        found: &'static str,
    },
    /// A key's value of the wrong type: `is` says what it must be.
    #[error("`{key}` {is}, found {found}")]
    Type {
        key: &'static str,
        is: &'static str,
        found: &'static str,
    },
    /// Not a string where one is needed.
    #[error("{what} must be a string, found {found}")]
    NotAString {
        what: &'static str,
        found: &'static str,
    },
    /// A condition that is a constant other than a bool.
    #[error("the condition `{text}` is always {value}, not a bool")]
    NotABool { text: String, value: Value },
    /// `remove` without paths.
    #[error("expected a list of paths (`[\"event.a\", \"meta.b\"]`)")]
    NoPaths,
    /// `rename` into itself.
    #[error("cannot rename {from} to {to}: one is inside the other")]
    RenameInside { from: String, to: String },
    /// A port name that cannot be linked.
    #[error("port name '{name}' must be non-empty and without '/'")]
    PortName { name: String },
    /// A route to `err`.
    #[error("'err' is the error port: the engine sends failed events there; route to another name")]
    ErrPort,
    /// A route's condition.
    #[error("port '{port}': {source}")]
    Route {
        port: String,
        source: Box<ConfigError>,
    },
    /// A setting's value out of its range: "`key` must `rule`".
    #[error("`{key}` must {rule}")]
    Must {
        key: &'static str,
        rule: &'static str,
    },
    /// A number beyond what this machine can hold.
    #[error("{key} is too large")]
    TooLarge { key: &'static str },
    /// A required key is missing.
    #[error("`{key}` ({hint}) is required")]
    Required {
        key: &'static str,
        hint: &'static str,
    },
    /// A required table is missing or of the wrong shape.
    #[error("`{key}` is required: {shape}")]
    RequiredShape {
        key: &'static str,
        shape: &'static str,
    },
    /// A duration that is not a number of seconds.
    #[error("`{key}` must be a number of seconds, found {found}")]
    Seconds {
        key: &'static str,
        found: &'static str,
    },
    /// A `group_by` table other than `{ each = '...' }`.
    #[error(
        "a `group_by` table is `{{ each = 'EXPRESSION' }}` (an array: the event counts in the \
         group of each element)"
    )]
    GroupByTable,
    /// `allowed_lateness_s` in processing time.
    #[error("`allowed_lateness_s` needs `time` (event time); processing time is never late")]
    LatenessWithoutTime,
    /// A field of `emit`.
    #[error("emit \"{name}\": {source}")]
    Emit { name: String, source: EmitError },
    /// One window of a chain (1-based).
    #[error("window {index}: {source}")]
    Window {
        index: usize,
        source: Box<ConfigError>,
    },
    /// A chain of one window.
    #[error(
        "a chain of windows has at least two: `[{{ tumbling_s = S1 }}, {{ tumbling_s = S2 }}]`"
    )]
    ShortChain,
    /// A sliding or count window in a chain.
    #[error("a chain of windows takes only `{{ tumbling_s = S }}`")]
    ChainNotTumbling,
    /// A window of a chain that is no multiple of the one before.
    #[error(
        "each window of a chain is a multiple (more than 1) of the one before, found {} s after \
         {} s",
        Value::F64(seconds(*.size_ms)),
        Value::F64(seconds(*.before_ms))
    )]
    ChainNotMultiple { size_ms: u64, before_ms: u64 },
    /// A sliding window that slides too little.
    #[error("`size_s` / `every_s` is at most 100 (each event is added to that many windows)")]
    TooManyWindows,
    /// A `window` table of no known kind.
    #[error(
        "`window` is `{{ tumbling_s = S }}`, `{{ tumbling_n = N }}` or \
         `{{ size_s = S, every_s = E }}`, found keys: {keys}"
    )]
    WindowShape { keys: String },
}

/// Why a field of an `aggregate`'s `emit` is refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EmitError {
    /// The name of a field every record has.
    #[error(
        "the name is taken by the emitted record's own fields ({})",
        super::aggregate::RESERVED.join(", ")
    )]
    Reserved,
    /// Not a string.
    #[error("expected an expression string")]
    NotAString,
    /// Not a call of an aggregate function.
    #[error(
        "expected an aggregate function call such as 'count()' or 'percentile(event.ms, 0.99)' \
         (the functions are {}), found `{text}`",
        super::aggregate::AggFn::names()
    )]
    NotACall { text: String },
    /// The arguments do not parse (`column` counts in the whole call).
    #[error("column {column}: {message} (in `{text}`)")]
    Syntax {
        column: usize,
        message: String,
        text: String,
    },
    /// Too few or too many arguments.
    #[error(
        "`{func}` takes {}, found {found}",
        if .least == .most { format!("{least} argument(s)") } else { format!("{least} to {most} arguments") }
    )]
    Arity {
        func: &'static str,
        least: usize,
        most: usize,
        found: usize,
    },
    /// `percentile`'s quantile outside 0 to 1.
    #[error("the quantile of `percentile` is a number from 0 to 1, found {value}")]
    Quantile { value: Value },
    /// `collect`'s bound below 1.
    #[error("the bound of `collect` is an integer of at least 1, found {value}")]
    Bound { value: Value },
    /// A second argument that is computed per event.
    #[error("the second argument of `{func}` must be a constant")]
    NotConstant { func: &'static str },
}

/// Why an event failed in an operator.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EventError {
    /// A `filter`'s condition failed.
    #[error(transparent)]
    Expression(#[from] EvalError),
    /// A condition or expression of the operator (`time`, `having`, `rate`, `class`,
    /// `dimension`, a route's port, a set's target path, an emitted field) failed.
    #[error("{at}: {source}")]
    Eval { at: At, source: EvalError },
    /// A value cannot be set at a path.
    #[error(transparent)]
    Set(#[from] SetError),
    /// `time` gave no time.
    #[error("time: expected milliseconds since the epoch (a number, not negative), found {found}")]
    Time { found: Value },
    /// `group_by { each = ... }` gave no array.
    #[error("group_by `{{ each = '{text}' }}`: expected an array, found {found}")]
    NotAnArray { text: String, found: &'static str },
    /// A numeric aggregate function got something else.
    #[error("{name}: `{func}` needs a number, found {found}")]
    NotANumber {
        name: String,
        func: &'static str,
        found: &'static str,
    },
    /// `rate` gave no rate.
    #[error("rate: expected a non-negative integer, found {found}")]
    Rate { found: &'static str },
}

/// Where in an operator an expression failed, for [`EventError::Eval`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum At {
    /// A key of the operator (`time`, `having`, `rate`, `class`, `dimension`).
    Key(&'static str),
    /// A `group_by` expression, as written.
    GroupBy(String),
    /// A route's port.
    Port(String),
    /// A path being set, or an emitted field.
    Field(String),
}

impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Key(key) => f.write_str(key),
            Self::GroupBy(text) => write!(f, "group_by `{text}`"),
            Self::Port(port) => write!(f, "port '{port}'"),
            Self::Field(name) => f.write_str(name),
        }
    }
}

/// Why a value cannot be set at a path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetError {
    /// An index beyond the array.
    #[error("cannot set {path}: index {index} is out of range (the array has {len} elements)")]
    OutOfRange {
        path: String,
        index: i64,
        len: usize,
    },
    /// A step through something that is not an object (for a key) or an array (for an index).
    #[error(
        "cannot set {path}: {prefix} is {}, not {wanted}",
        super::expr::article(found)
    )]
    NotAContainer {
        path: String,
        prefix: String,
        /// The type of what is there.
        found: &'static str,
        wanted: &'static str,
    },
}

/// Keys as a list: `a and b`, or `a, b, c`.
struct Keys<'a>(&'a [&'a str]);

impl fmt::Display for Keys<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            [a, b] => write!(f, "{a} and {b}"),
            keys => f.write_str(&keys.join(", ")),
        }
    }
}

/// Milliseconds as seconds.
#[allow(clippy::cast_precision_loss)]
pub(super) fn seconds(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

/// The expression of `key`, parsed by `parse`.
pub(super) fn key_expression(
    key: &'static str,
    text: &str,
    parse: impl FnOnce(&str) -> Result<super::expr::Expr, SyntaxError>,
) -> Result<super::expr::Expr, ConfigError> {
    parse(text).map_err(|source| ConfigError::KeyExpression {
        key,
        text: text.to_owned(),
        source,
    })
}

/// The expression string of `key` in `t`, if it is there, parsed by `parse`; `is` says what
/// the key must be.
pub(super) fn optional_expression(
    t: &temblor_shim::Object,
    (key, is): (&'static str, &'static str),
    parse: impl FnOnce(&str) -> Result<super::expr::Expr, SyntaxError>,
) -> Result<Option<super::expr::Expr>, ConfigError> {
    match t.get(key) {
        None => Ok(None),
        Some(Value::String(text)) => key_expression(key, text, parse).map(Some),
        Some(other) => Err(ConfigError::Type {
            key,
            is,
            found: other.type_name(),
        }),
    }
}

/// An expression of the operator's `key` failed.
pub(super) fn at_key(key: &'static str) -> impl FnOnce(EvalError) -> EventError {
    move |source| EventError::Eval {
        at: At::Key(key),
        source,
    }
}

/// Refuses the first key of `table` that is not in `takes`.
pub(super) fn known_keys(
    table: &temblor_shim::Object,
    operator: &'static str,
    takes: &'static [&'static str],
) -> Result<(), ConfigError> {
    match table.iter().find(|(k, _)| !takes.contains(k)) {
        Some((key, _)) => Err(ConfigError::UnknownSetting {
            key: key.to_owned(),
            operator,
            takes,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_what_is_at_fault() {
        let cases: Vec<(String, &str)> = vec![
            (
                ConfigError::UnknownSetting {
                    key: "x".into(),
                    operator: "batch",
                    takes: &["count", "timeout_ms"],
                }
                .to_string(),
                "unknown key `x` (batch takes count and timeout_ms)",
            ),
            (
                ConfigError::UnknownSetting {
                    key: "x".into(),
                    operator: "bucket",
                    takes: &["class", "rate", "windows"],
                }
                .to_string(),
                "unknown key `x` (bucket takes class, rate, windows)",
            ),
            (
                ConfigError::Window {
                    index: 2,
                    source: Box::new(ConfigError::ChainNotMultiple {
                        size_ms: 1500,
                        before_ms: 1000,
                    }),
                }
                .to_string(),
                "window 2: each window of a chain is a multiple (more than 1) of the one before, \
                 found 1.5 s after 1.0 s",
            ),
            (
                ConfigError::Emit {
                    name: "n".into(),
                    source: EmitError::Arity {
                        func: "count",
                        least: 0,
                        most: 0,
                        found: 1,
                    },
                }
                .to_string(),
                "emit \"n\": `count` takes 0 argument(s), found 1",
            ),
            (
                EmitError::Arity {
                    func: "percentile",
                    least: 1,
                    most: 2,
                    found: 3,
                }
                .to_string(),
                "`percentile` takes 1 to 2 arguments, found 3",
            ),
            (
                ConfigError::Must {
                    key: "windows",
                    rule: "be an integer from 1 to 10000",
                }
                .to_string(),
                "`windows` must be an integer from 1 to 10000",
            ),
            (
                ConfigError::Required {
                    key: "rate",
                    hint: "an expression, such as 'meta.rate'",
                }
                .to_string(),
                "`rate` (an expression, such as 'meta.rate') is required",
            ),
            (
                EventError::Eval {
                    at: At::GroupBy("event.g".into()),
                    source: EvalError {
                        column: 7,
                        message: "boom".into(),
                    },
                }
                .to_string(),
                "group_by `event.g`: column 7: boom",
            ),
            (
                EventError::Eval {
                    at: At::Port("alerts".into()),
                    source: EvalError {
                        column: 0,
                        message: "boom".into(),
                    },
                }
                .to_string(),
                "port 'alerts': boom",
            ),
            (
                EventError::from(SetError::OutOfRange {
                    path: "event.a[3]".into(),
                    index: 3,
                    len: 1,
                })
                .to_string(),
                "cannot set event.a[3]: index 3 is out of range (the array has 1 elements)",
            ),
        ];
        for (got, want) in cases {
            assert_eq!(got, want);
        }
    }
}
