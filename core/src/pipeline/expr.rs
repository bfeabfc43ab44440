//! Expressions: the tree [`parse`](super::parse) builds, and its evaluation against one event.
//!
//! Evaluation borrows what it can: a path yields a reference into the event, a literal a
//! reference into the tree, so `event.level == "error"` allocates nothing. Only computed values
//! (arithmetic, `lower`, array literals with paths in them) are owned.
//!
//! Rules (see `docs/pipeline.md`): a path that leads nowhere is `null`; `==` and `!=` compare
//! any two values (numbers by value across integer and float); ordering, arithmetic, `and`,
//! `or`, `not` and the functions need the right types, and anything else is an evaluation
//! error, as are integer overflow, division by zero and non-finite floats.

use std::{borrow::Cow, cmp::Ordering, fmt};

use temblor_shim::{Object, RVec, Value};

use super::error::SetError;

/// `null`, to borrow when a path leads nowhere.
pub(crate) static NULL: Value = Value::Null;

/// Where a path starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Root {
    /// The event itself.
    Event,
    /// The event's metadata (`null` until an operator sets it).
    Meta,
}

/// One step of a path.
#[derive(Debug, Clone, PartialEq)]
pub enum Segment {
    /// `.key` or `["key"]`: a field of an object.
    Key(String),
    /// `[i]`: an element of an array; negative counts from the end (`[-1]` is the last).
    Index(i64),
}

/// A path into the event or its metadata: `event.a.b`, `event.tags[0]`, `meta.x`.
#[derive(Debug, Clone)]
pub struct Path {
    /// Where it starts.
    pub root: Root,
    /// The steps from there.
    pub segments: Vec<Segment>,
    /// The path as written, for messages.
    pub text: String,
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn index_of(len: usize, i: i64) -> Option<usize> {
    if i >= 0 {
        usize::try_from(i).ok().filter(|&i| i < len)
    } else {
        len.checked_sub(usize::try_from(i.unsigned_abs()).ok()?)
    }
}

pub(super) fn step<'a>(value: &'a Value, segment: &Segment) -> Option<&'a Value> {
    match (value, segment) {
        (Value::Object(o), Segment::Key(k)) => o.get(k),
        (Value::Array(a), Segment::Index(i)) => a.get(index_of(a.len(), *i)?),
        _ => None,
    }
}

fn step_mut<'a>(value: &'a mut Value, segment: &Segment) -> Option<&'a mut Value> {
    match (value, segment) {
        (Value::Object(o), Segment::Key(k)) => o.get_mut(k),
        (Value::Array(a), Segment::Index(i)) => {
            let at = index_of(a.len(), *i)?;
            a.get_mut(at)
        }
        _ => None,
    }
}

impl Path {
    /// A path from its root and segments (its text is written from them).
    #[must_use]
    pub fn new(root: Root, segments: Vec<Segment>) -> Self {
        let mut path = Self {
            root,
            segments,
            text: String::new(),
        };
        path.text = path.prefix_text(path.segments.len());
        path
    }

    /// The value this path leads to, if it leads anywhere.
    #[must_use]
    pub fn get<'a>(&self, event: &'a Value, meta: &'a Value) -> Option<&'a Value> {
        let mut at = match self.root {
            Root::Event => event,
            Root::Meta => meta,
        };
        for s in &self.segments {
            at = step(at, s)?;
        }
        Some(at)
    }

    fn root_mut<'a>(&self, event: &'a mut Value, meta: &'a mut Value) -> &'a mut Value {
        match self.root {
            Root::Event => event,
            Root::Meta => meta,
        }
    }

    /// Sets the value at this path. A missing or `null` object on the way (and `null` at the
    /// root) becomes an object; an index must be within its array.
    ///
    /// # Errors
    /// The path crosses a value that is neither an object nor `null` (for a key) or an array
    /// with that index: why, and the value back.
    pub fn set(
        &self,
        event: &mut Value,
        meta: &mut Value,
        value: Value,
    ) -> Result<(), (SetError, Value)> {
        let mut at = self.root_mut(event, meta);
        for (n, s) in self.segments.iter().enumerate() {
            if matches!((&*at, s), (Value::Null, Segment::Key(_))) {
                *at = Value::Object(Object::new());
            }
            at = match (at, s) {
                (Value::Object(o), Segment::Key(k)) => {
                    if o.get(k).is_none() {
                        o.push(k.as_str().into(), Value::Null);
                    }
                    o.get_mut(k)
                        .unwrap_or_else(|| unreachable!("just inserted"))
                }
                (Value::Array(a), Segment::Index(i)) => {
                    let len = a.len();
                    match index_of(len, *i) {
                        Some(i) => &mut a[i],
                        None => {
                            let error = SetError::OutOfRange {
                                path: self.text.clone(),
                                index: *i,
                                len,
                            };
                            return Err((error, value));
                        }
                    }
                }
                (other, _) => {
                    let what = match s {
                        Segment::Key(_) => "an object",
                        Segment::Index(_) => "an array",
                    };
                    let error = SetError::NotAContainer {
                        path: self.text.clone(),
                        prefix: self.prefix_text(n),
                        found: other.type_name(),
                        wanted: what,
                    };
                    return Err((error, value));
                }
            };
        }
        *at = value;
        Ok(())
    }

    /// Removes the value at this path (not the root) and returns it; `None` when there is none.
    pub fn remove(&self, event: &mut Value, meta: &mut Value) -> Option<Value> {
        let (last, parents) = self.segments.split_last()?;
        let mut at = self.root_mut(event, meta);
        for s in parents {
            at = step_mut(at, s)?;
        }
        match (at, last) {
            (Value::Object(o), Segment::Key(k)) => o.remove(k),
            (Value::Array(a), Segment::Index(i)) => {
                let at = index_of(a.len(), *i)?;
                Some(a.remove(at))
            }
            _ => None,
        }
    }

    /// The text of the root and the first `n` segments.
    fn prefix_text(&self, n: usize) -> String {
        let mut out = String::from(match self.root {
            Root::Event => "event",
            Root::Meta => "meta",
        });
        for s in &self.segments[..n] {
            match s {
                Segment::Key(k) if is_plain_key(k) => {
                    out.push('.');
                    out.push_str(k);
                }
                Segment::Key(k) => out.push_str(&format!("[{}]", Value::from(k.as_str()))),
                Segment::Index(i) => out.push_str(&format!("[{i}]")),
            }
        }
        out
    }
}

/// Whether `.key` can be written without quotes.
pub(crate) fn is_plain_key(k: &str) -> bool {
    let mut chars = k.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

pub(super) fn article(type_name: &str) -> String {
    match type_name {
        "integer" | "array" | "object" => format!("an {type_name}"),
        "null" => "null".to_owned(),
        _ => format!("a {type_name}"),
    }
}

/// A unary operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnOp {
    /// `not`
    Not,
    /// `-`
    Neg,
}

/// A binary operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    /// `or`
    Or,
    /// `and`
    And,
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `in`
    In,
    /// `not in`
    NotIn,
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `%`
    Rem,
}

impl BinOp {
    /// The operator as written.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Or => "or",
            Self::And => "and",
            Self::Eq => "==",
            Self::Ne => "!=",
            Self::Lt => "<",
            Self::Le => "<=",
            Self::Gt => ">",
            Self::Ge => ">=",
            Self::In => "in",
            Self::NotIn => "not in",
            Self::Add => "+",
            Self::Sub => "-",
            Self::Mul => "*",
            Self::Div => "/",
            Self::Rem => "%",
        }
    }
}

/// A built-in function (`exists` is [`Expr::Exists`]: it takes a path, not a value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Func {
    /// `contains(haystack, needle)`: substring, array element or object key.
    Contains,
    /// `starts_with(string, prefix)`
    StartsWith,
    /// `ends_with(string, suffix)`
    EndsWith,
    /// `lower(string)`
    Lower,
    /// `upper(string)`
    Upper,
    /// `len(string | array | object | bytes)`: characters, elements, fields or bytes.
    Len,
    /// `split(string, separator)`: an array of strings.
    Split,
    /// `join(array of strings, separator)`
    Join,
    /// `replace(string, from, to)`: every occurrence.
    Replace,
    /// `trim(string)`: without leading and trailing whitespace.
    Trim,
    /// `substr(string, start, length?)`: in characters.
    Substr,
    /// `format(template, args...)`: each `{}` replaced by the next argument.
    Format,
    /// `matches(string, regex)`
    Matches,
    /// `capture(string, regex)`: the groups of the first match, or `null`.
    Capture,
    /// `round(number)`
    Round,
    /// `floor(number)`
    Floor,
    /// `abs(number)`
    Abs,
    /// `now_ms()`: the wall clock, in milliseconds since the Unix epoch.
    NowMs,
    /// `to_string(x)`
    ToString,
    /// `to_int(x)`
    ToInt,
    /// `to_float(x)`
    ToFloat,
    /// `keys(object)`
    Keys,
    /// `values(object)`
    Values,
    /// `merge(object, object)`: a JSON merge patch of the second onto the first.
    Merge,
}

impl Func {
    /// Every function with its name and the least and most arguments it takes.
    pub const ALL: [(&'static str, Self, usize, usize); 24] = [
        ("contains", Self::Contains, 2, 2),
        ("starts_with", Self::StartsWith, 2, 2),
        ("ends_with", Self::EndsWith, 2, 2),
        ("lower", Self::Lower, 1, 1),
        ("upper", Self::Upper, 1, 1),
        ("len", Self::Len, 1, 1),
        ("split", Self::Split, 2, 2),
        ("join", Self::Join, 2, 2),
        ("replace", Self::Replace, 3, 3),
        ("trim", Self::Trim, 1, 1),
        ("substr", Self::Substr, 2, 3),
        ("format", Self::Format, 1, usize::MAX),
        ("matches", Self::Matches, 2, 2),
        ("capture", Self::Capture, 2, 2),
        ("round", Self::Round, 1, 1),
        ("floor", Self::Floor, 1, 1),
        ("abs", Self::Abs, 1, 1),
        ("now_ms", Self::NowMs, 0, 0),
        ("to_string", Self::ToString, 1, 1),
        ("to_int", Self::ToInt, 1, 1),
        ("to_float", Self::ToFloat, 1, 1),
        ("keys", Self::Keys, 1, 1),
        ("values", Self::Values, 1, 1),
        ("merge", Self::Merge, 2, 2),
    ];

    /// The function's name.
    #[must_use]
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, f, _, _)| *f == self)
            .map_or("?", |(n, _, _, _)| n)
    }

    /// Whether the result depends on something else than the arguments (the clock).
    fn is_pure(self) -> bool {
        self != Self::NowMs
    }
}

/// A pattern of a `match` arm. Bindings (`x`, `{level: l}`) are resolved by the parser (a
/// name stands for the value it binds), so here they match anything.
#[derive(Debug, Clone)]
pub enum Pattern {
    /// `_` or a binding: anything.
    Any,
    /// A literal: an equal value (`==`).
    Lit(Value),
    /// `{key: pattern, ...}`: an object with each of these fields, each matching its pattern.
    Record(Vec<(String, Pattern)>),
}

impl Pattern {
    /// Whether `v` matches.
    #[must_use]
    pub fn matches(&self, v: &Value) -> bool {
        match self {
            Self::Any => true,
            Self::Lit(l) => l == v,
            Self::Record(fields) => match v {
                Value::Object(o) => fields
                    .iter()
                    .all(|(k, p)| o.get(k).is_some_and(|f| p.matches(f))),
                _ => false,
            },
        }
    }
}

/// One arm of a `match`: `pattern | pattern when guard => body`.
#[derive(Debug, Clone)]
pub struct Arm {
    /// The alternatives.
    pub patterns: Vec<Pattern>,
    /// `when ...`: must be `true` too.
    pub guard: Option<Expr>,
    /// The arm's value.
    pub body: Expr,
}

/// An expression. `col` fields are 1-based columns in the expression's text, for messages.
#[derive(Debug, Clone)]
pub enum Expr {
    /// A literal (also what constant sub-expressions fold into).
    Lit(Value),
    /// A path: its value, or `null` when it leads nowhere.
    Path(Path),
    /// `exists(path)`
    Exists(Path),
    /// `[a, b, ...]` with at least one non-constant element.
    Array(Vec<Expr>),
    /// `not x`, `-x`
    Unary(UnOp, Box<Expr>, u32),
    /// `a OP b`
    Binary(BinOp, Box<Expr>, Box<Expr>, u32),
    /// `f(args)`
    Call(Func, Vec<Expr>, u32),
    /// `matches(x, "re")` or `capture(x, "re")` with a literal pattern, compiled at load.
    Regex(Func, Box<Expr>, regex::Regex, u32),
    /// `match subject { arms }`
    Match(Box<Expr>, Vec<Arm>, u32),
    /// A field of a computed value (what a record pattern binds).
    Get(Box<Expr>, Vec<Segment>),
}

/// Why an expression could not be evaluated for an event: `column N: message` (the message
/// alone for column 0).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", if *column == 0 { String::new() } else { format!("column {column}: ") })]
pub struct EvalError {
    /// 1-based column of the operator or function at fault (0: the whole expression).
    pub column: u32,
    /// What went wrong.
    pub message: String,
}

type Eval<'a> = Result<Cow<'a, Value>, EvalError>;

pub(super) fn err<T>(column: u32, message: impl Into<String>) -> Result<T, EvalError> {
    Err(EvalError {
        column,
        message: message.into(),
    })
}

pub(super) fn int_of(v: &Value) -> Option<i128> {
    match v {
        Value::I64(i) => Some(i128::from(*i)),
        Value::U64(u) => Some(i128::from(*u)),
        _ => None,
    }
}

#[allow(clippy::cast_precision_loss)]
pub(super) fn float_of(v: &Value) -> Option<f64> {
    match v {
        Value::I64(i) => Some(*i as f64),
        Value::U64(u) => Some(*u as f64),
        Value::F64(f) => Some(*f),
        _ => None,
    }
}

/// `i` as a value: an `I64`, or a `U64` above `i64::MAX`; `None` beyond both.
pub(super) fn int_in_range(i: i128) -> Option<Value> {
    i64::try_from(i)
        .map(Value::I64)
        .or_else(|_| u64::try_from(i).map(Value::U64))
        .ok()
}

fn int_value(i: i128, col: u32, op: BinOp) -> Result<Value, EvalError> {
    int_in_range(i).map_or_else(
        || err(col, format!("integer overflow in `{}`", op.as_str())),
        Ok,
    )
}

fn arith(op: BinOp, a: &Value, b: &Value, col: u32) -> Result<Value, EvalError> {
    if let (Some(x), Some(y)) = (int_of(a), int_of(b)) {
        let r = match op {
            BinOp::Add => x.checked_add(y),
            BinOp::Sub => x.checked_sub(y),
            BinOp::Mul => x.checked_mul(y),
            BinOp::Div | BinOp::Rem if y == 0 => return err(col, "division by zero"),
            BinOp::Div => x.checked_div(y),
            _ => x.checked_rem(y),
        };
        return match r {
            Some(r) => int_value(r, col, op),
            None => err(col, format!("integer overflow in `{}`", op.as_str())),
        };
    }
    if let (Some(x), Some(y)) = (float_of(a), float_of(b)) {
        if matches!(op, BinOp::Div | BinOp::Rem) && y == 0.0 {
            return err(col, "division by zero");
        }
        let r = match op {
            BinOp::Add => x + y,
            BinOp::Sub => x - y,
            BinOp::Mul => x * y,
            BinOp::Div => x / y,
            _ => x % y,
        };
        return if r.is_finite() {
            Ok(Value::F64(r))
        } else {
            err(
                col,
                format!("`{}` gave a number too large for a float", op.as_str()),
            )
        };
    }
    match (op, a, b) {
        (BinOp::Add, Value::String(x), Value::String(y)) => {
            let mut s = String::with_capacity(x.len() + y.len());
            s.push_str(x);
            s.push_str(y);
            Ok(Value::from(s))
        }
        (BinOp::Add, Value::Array(x), Value::Array(y)) => {
            let mut v = RVec::with_capacity(x.len() + y.len());
            v.extend(x.iter().cloned());
            v.extend(y.iter().cloned());
            Ok(Value::Array(v))
        }
        _ => err(
            col,
            format!(
                "`{}` needs {}, found {} and {}",
                op.as_str(),
                if op == BinOp::Add {
                    "two numbers, two strings or two arrays"
                } else {
                    "two numbers"
                },
                a.type_name(),
                b.type_name()
            ),
        ),
    }
}

fn order(op: BinOp, a: &Value, b: &Value, col: u32) -> Result<Ordering, EvalError> {
    if let (Some(x), Some(y)) = (int_of(a), int_of(b)) {
        return Ok(x.cmp(&y));
    }
    if let (Some(x), Some(y)) = (float_of(a), float_of(b)) {
        // Values hold no NaN: JSON has none, and arithmetic refuses non-finite results.
        return Ok(x.partial_cmp(&y).unwrap_or(Ordering::Equal));
    }
    match (a, b) {
        (Value::String(x), Value::String(y)) => Ok(x.as_str().cmp(y.as_str())),
        _ => err(
            col,
            format!(
                "`{}` compares two numbers or two strings, found {} and {}",
                op.as_str(),
                a.type_name(),
                b.type_name()
            ),
        ),
    }
}

/// `needle in haystack`.
fn contains(haystack: &Value, needle: &Value, what: &str, col: u32) -> Result<bool, EvalError> {
    match (haystack, needle) {
        (Value::Array(items), _) => Ok(items.iter().any(|i| i == needle)),
        (Value::String(s), Value::String(n)) => Ok(s.contains(n.as_str())),
        (Value::Object(o), Value::String(k)) => Ok(o.get(k).is_some()),
        (Value::String(_) | Value::Object(_), _) => err(
            col,
            format!(
                "{what} looks for a string in a {}, found {}",
                haystack.type_name(),
                needle.type_name()
            ),
        ),
        _ => err(
            col,
            format!(
                "{what} looks in an array, a string or an object, found {}",
                haystack.type_name()
            ),
        ),
    }
}

pub(super) fn string_arg(v: &Value, f: Func, n: usize, col: u32) -> Result<&str, EvalError> {
    v.as_str().map_or_else(
        || {
            err(
                col,
                format!(
                    "`{}` needs a string as argument {n}, found {}",
                    f.name(),
                    v.type_name()
                ),
            )
        },
        Ok,
    )
}

fn bool_arg(v: &Value, what: &str, col: u32) -> Result<bool, EvalError> {
    match v {
        Value::Bool(b) => Ok(*b),
        other => err(
            col,
            format!("{what} needs a bool, found {}", other.type_name()),
        ),
    }
}

/// Applies `f` to its arguments.
fn call(f: Func, args: &[&Value], col: u32) -> Result<Value, EvalError> {
    let arg = |n: usize| args.get(n).copied().unwrap_or(&NULL);
    Ok(match f {
        Func::Contains => Value::Bool(contains(arg(0), arg(1), "`contains`", col)?),
        Func::StartsWith => {
            Value::Bool(string_arg(arg(0), f, 1, col)?.starts_with(string_arg(arg(1), f, 2, col)?))
        }
        Func::EndsWith => {
            Value::Bool(string_arg(arg(0), f, 1, col)?.ends_with(string_arg(arg(1), f, 2, col)?))
        }
        Func::Lower => Value::from(string_arg(arg(0), f, 1, col)?.to_lowercase()),
        Func::Upper => Value::from(string_arg(arg(0), f, 1, col)?.to_uppercase()),
        Func::Len => Value::from(match arg(0) {
            Value::String(s) => s.chars().count(),
            Value::Array(a) => a.len(),
            Value::Object(o) => o.len(),
            Value::Bytes(b) => b.len(),
            other => {
                return err(
                    col,
                    format!(
                        "`len` needs a string, an array, an object or bytes, found {}",
                        other.type_name()
                    ),
                );
            }
        }),
        Func::Matches | Func::Capture => {
            let pattern = string_arg(arg(1), f, 2, col)?;
            let re = regex::Regex::new(pattern)
                .or_else(|e| err(col, format!("`{}`: bad regex: {e}", f.name())))?;
            super::funcs::regex_call(f, &re, arg(0), col)?
        }
        _ => super::funcs::call(f, args, col)?,
    })
}

impl Expr {
    /// Evaluates the expression for one event and its metadata.
    ///
    /// # Errors
    /// A type mismatch, an integer overflow, a division by zero, a non-finite float.
    pub fn eval<'a>(&'a self, event: &'a Value, meta: &'a Value) -> Eval<'a> {
        Ok(match self {
            Self::Lit(v) => Cow::Borrowed(v),
            Self::Path(p) => Cow::Borrowed(p.get(event, meta).unwrap_or(&NULL)),
            Self::Exists(p) => Cow::Owned(Value::Bool(p.get(event, meta).is_some())),
            Self::Array(items) => Cow::Owned(Value::Array(
                items
                    .iter()
                    .map(|e| e.eval(event, meta).map(Cow::into_owned))
                    .collect::<Result<_, _>>()?,
            )),
            Self::Unary(UnOp::Not, e, col) => Cow::Owned(Value::Bool(!bool_arg(
                e.eval(event, meta)?.as_ref(),
                "`not`",
                *col,
            )?)),
            Self::Unary(UnOp::Neg, e, col) => Cow::Owned(match e.eval(event, meta)?.as_ref() {
                Value::I64(i) => match i.checked_neg() {
                    Some(n) => Value::I64(n),
                    None => Value::U64(i.unsigned_abs()),
                },
                Value::U64(u) => match 0_i64.checked_sub_unsigned(*u) {
                    Some(n) => Value::I64(n),
                    None => return err(*col, "integer overflow in `-`"),
                },
                Value::F64(f) => Value::F64(-f),
                other => {
                    return err(
                        *col,
                        format!("`-` needs a number, found {}", other.type_name()),
                    );
                }
            }),
            Self::Binary(op, a, b, col) => return self.binary(*op, a, b, *col, event, meta),
            Self::Call(f, args, col) => {
                if args.len() <= 3 {
                    // Up to three arguments: no vector for them.
                    let arg = |n: usize| match args.get(n) {
                        Some(a) => a.eval(event, meta),
                        None => Ok(Cow::Borrowed(&NULL)),
                    };
                    let (a, b, c) = (arg(0)?, arg(1)?, arg(2)?);
                    let all = [a.as_ref(), b.as_ref(), c.as_ref()];
                    Cow::Owned(call(*f, &all[..args.len()], *col)?)
                } else {
                    let values = args
                        .iter()
                        .map(|a| a.eval(event, meta))
                        .collect::<Result<Vec<_>, _>>()?;
                    let refs: Vec<&Value> = values.iter().map(|v| &**v).collect();
                    Cow::Owned(call(*f, &refs, *col)?)
                }
            }
            Self::Regex(f, subject, re, col) => Cow::Owned(super::funcs::regex_call(
                *f,
                re,
                subject.eval(event, meta)?.as_ref(),
                *col,
            )?),
            Self::Match(subject, arms, col) => {
                let v = subject.eval(event, meta)?;
                for arm in arms {
                    if !arm.patterns.iter().any(|p| p.matches(&v)) {
                        continue;
                    }
                    if let Some(guard) = &arm.guard
                        && !bool_arg(guard.eval(event, meta)?.as_ref(), "`when`", *col)?
                    {
                        continue;
                    }
                    return arm.body.eval(event, meta);
                }
                let mut shown = v.to_json();
                if shown.len() > 80 {
                    let mut cut = 77;
                    while !shown.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    shown.truncate(cut);
                    shown.push_str("...");
                }
                return err(*col, format!("no arm of `match` matched {shown}"));
            }
            Self::Get(e, segments) => {
                let walk = |v: &'a Value| segments.iter().try_fold(v, |at, s| step(at, s));
                match e.eval(event, meta)? {
                    Cow::Borrowed(v) => Cow::Borrowed(walk(v).unwrap_or(&NULL)),
                    Cow::Owned(v) => Cow::Owned(
                        segments
                            .iter()
                            .try_fold(&v, |at, s| step(at, s))
                            .cloned()
                            .unwrap_or_default(),
                    ),
                }
            }
        })
    }

    fn binary<'a>(
        &self,
        op: BinOp,
        a: &'a Self,
        b: &'a Self,
        col: u32,
        event: &'a Value,
        meta: &'a Value,
    ) -> Eval<'a> {
        let what = match op {
            BinOp::And => "`and`",
            _ => "`or`",
        };
        let value = match op {
            BinOp::And | BinOp::Or => {
                let left = bool_arg(a.eval(event, meta)?.as_ref(), what, col)?;
                // Short-circuit: `false and x` and `true or x` do not look at x.
                if left == (op == BinOp::Or) {
                    left
                } else {
                    bool_arg(b.eval(event, meta)?.as_ref(), what, col)?
                }
            }
            _ => {
                let (x, y) = (a.eval(event, meta)?, b.eval(event, meta)?);
                let (x, y) = (x.as_ref(), y.as_ref());
                match op {
                    BinOp::Eq => x == y,
                    BinOp::Ne => x != y,
                    BinOp::Lt => order(op, x, y, col)?.is_lt(),
                    BinOp::Le => order(op, x, y, col)?.is_le(),
                    BinOp::Gt => order(op, x, y, col)?.is_gt(),
                    BinOp::Ge => order(op, x, y, col)?.is_ge(),
                    BinOp::In => contains(y, x, "`in`", col)?,
                    BinOp::NotIn => !contains(y, x, "`not in`", col)?,
                    _ => return Ok(Cow::Owned(arith(op, x, y, col)?)),
                }
            }
        };
        Ok(Cow::Owned(Value::Bool(value)))
    }

    /// Evaluates to a bool (filters, route conditions).
    ///
    /// # Errors
    /// As [`Expr::eval`], and a result that is not a bool.
    pub fn eval_bool(&self, event: &Value, meta: &Value) -> Result<bool, EvalError> {
        match self.eval(event, meta)?.as_ref() {
            Value::Bool(b) => Ok(*b),
            other => err(
                0,
                format!(
                    "the expression gave {}, not a bool",
                    article(other.type_name())
                ),
            ),
        }
    }

    /// Whether the expression's value does not depend on the event.
    fn is_const(&self) -> bool {
        matches!(self, Self::Lit(_))
    }

    /// Evaluates every sub-expression that does not depend on the event, once, at start-up.
    ///
    /// # Errors
    /// A constant sub-expression that cannot be evaluated (`1 / 0`, `"a" < 1`).
    pub fn fold(self) -> Result<Self, EvalError> {
        let folded = match self {
            Self::Array(items) => Self::Array(
                items
                    .into_iter()
                    .map(Self::fold)
                    .collect::<Result<_, _>>()?,
            ),
            Self::Unary(op, e, col) => Self::Unary(op, Box::new(e.fold()?), col),
            Self::Binary(op, a, b, col) => {
                Self::Binary(op, Box::new(a.fold()?), Box::new(b.fold()?), col)
            }
            Self::Call(f, args, col) => {
                let mut args = args
                    .into_iter()
                    .map(Self::fold)
                    .collect::<Result<Vec<_>, _>>()?;
                if matches!(f, Func::Matches | Func::Capture)
                    && let [subject, Self::Lit(Value::String(pattern))] = args.as_mut_slice()
                {
                    let re = regex::Regex::new(pattern)
                        .or_else(|e| err(col, format!("`{}`: bad regex: {e}", f.name())))?;
                    let subject = std::mem::replace(subject, Self::Lit(Value::Null));
                    let compiled = Self::Regex(f, Box::new(subject), re, col);
                    return if compiled_is_const(&compiled) {
                        Ok(Self::Lit(compiled.eval(&NULL, &NULL)?.into_owned()))
                    } else {
                        Ok(compiled)
                    };
                }
                Self::Call(f, args, col)
            }
            Self::Match(subject, arms, col) => Self::Match(
                Box::new(subject.fold()?),
                arms.into_iter()
                    .map(|arm| {
                        Ok(Arm {
                            patterns: arm.patterns,
                            guard: arm.guard.map(Self::fold).transpose()?,
                            body: arm.body.fold()?,
                        })
                    })
                    .collect::<Result<_, EvalError>>()?,
                col,
            ),
            Self::Get(e, segments) => Self::Get(Box::new(e.fold()?), segments),
            other => return Ok(other),
        };
        let constant = match &folded {
            Self::Array(items) => items.iter().all(Self::is_const),
            Self::Unary(_, e, _) => e.is_const(),
            Self::Binary(_, a, b, _) => a.is_const() && b.is_const(),
            Self::Call(f, args, _) => f.is_pure() && args.iter().all(Self::is_const),
            Self::Get(e, _) => e.is_const(),
            _ => false,
        };
        if constant {
            let value = folded.eval(&NULL, &NULL)?.into_owned();
            Ok(Self::Lit(value))
        } else {
            Ok(folded)
        }
    }
}

fn compiled_is_const(e: &Expr) -> bool {
    matches!(e, Expr::Regex(_, subject, _, _) if subject.is_const())
}
