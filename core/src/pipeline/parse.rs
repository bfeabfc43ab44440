//! The expression grammar, parsed with winnow (already in the build through `toml`).
//!
//! ```text
//! expr     = or
//! or       = and ("or" and)*
//! and      = not ("and" not)*
//! not      = "not" not | compare
//! compare  = sum (("==" | "!=" | "<" | "<=" | ">" | ">=" | "in" | "not" "in") sum)?
//! sum      = product (("+" | "-") product)*
//! product  = unary (("*" | "/" | "%") unary)*
//! unary    = "-" unary | primary
//! primary  = number | string | "true" | "false" | "null" | array | path | call | "(" expr ")"
//! array    = "[" (expr ("," expr)* ","?)? "]"
//! path     = ("event" | "meta") ("." key | "[" (integer | string) "]")*
//! call     = name "(" (expr ("," expr)*)? ")"
//! ```
//! Strings are in double or single quotes with `\"`, `\'`, `\\`, `\/`, `\n`, `\r`, `\t`, `\0`
//! and `\uXXXX` escapes; numbers are decimal integers (up to `u64::MAX`) or floats (`1.5`,
//! `2e3`). Constant sub-expressions are evaluated here, once ([`Expr::fold`]).

use temblor_shim::Value;
use winnow::{
    LocatingSlice, ModalResult, Parser,
    ascii::{digit1, multispace0},
    combinator::{alt, cut_err, not, opt, terminated},
    error::{ContextError, ErrMode, FromExternalError, StrContext, StrContextValue},
    stream::{Location, Stream},
    token::{any, literal, one_of, take_till, take_while},
};

use std::cell::RefCell;

use super::expr::{Arm, BinOp, Expr, Func, Path, Pattern, Root, Segment, UnOp};

type In<'i> = LocatingSlice<&'i str>;
type R<T> = ModalResult<T>;

/// A syntax error in an expression or a path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {message}")]
pub struct SyntaxError {
    /// 1-based column (in characters) in the expression's text.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

/// A message for an error that no grammar rule describes.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Msg(String);

/// Parses an expression.
///
/// # Errors
/// A syntax error, or a constant sub-expression that cannot be evaluated, with its column.
pub fn parse_expr(text: &str) -> Result<Expr, SyntaxError> {
    parse_expr_with(text, Vec::new())
}

thread_local! {
    /// The names in scope while parsing: `match` bindings, and the names an operator gives
    /// (an aggregate's emitted fields in `having`). Each stands for an expression.
    static SCOPE: RefCell<Vec<(String, Expr)>> = const { RefCell::new(Vec::new()) };
}

/// Restores the scope to its length at creation when dropped (also when a parse fails).
struct ScopeGuard(usize);

impl ScopeGuard {
    fn new() -> Self {
        Self(SCOPE.with(|s| s.borrow().len()))
    }
}

impl Drop for ScopeGuard {
    fn drop(&mut self) {
        SCOPE.with(|s| s.borrow_mut().truncate(self.0));
    }
}

fn lookup(name: &str) -> Option<Expr> {
    SCOPE.with(|s| {
        s.borrow()
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, e)| e.clone())
    })
}

/// Parses an expression in which each of `names` stands for its expression.
///
/// # Errors
/// As [`parse_expr`].
pub fn parse_expr_with(text: &str, names: Vec<(String, Expr)>) -> Result<Expr, SyntaxError> {
    let _guard = ScopeGuard::new();
    SCOPE.with(|s| s.borrow_mut().extend(names));
    let expr = (ws, expr, ws, end)
        .map(|(_, e, _, _)| e)
        .parse(LocatingSlice::new(text))
        .map_err(|e| syntax_error(text, e.offset(), e.inner()))?;
    let mut expr = expr.fold().map_err(|e| SyntaxError {
        column: e.column as usize,
        message: e.message,
    })?;
    to_char_columns(&mut expr, text);
    Ok(expr)
}

/// Parses a path on its own (`set`, `remove`, `rename`, `count`'s `by`).
///
/// # Errors
/// A syntax error with its column.
pub fn parse_path(text: &str) -> Result<Path, SyntaxError> {
    let root = |i: &mut In<'_>| -> R<Root> {
        let at = i.checkpoint();
        match opt(ident).parse_next(i)? {
            Some("event") => Ok(Root::Event),
            Some("meta") => Ok(Root::Meta),
            _ => cut_at(
                i,
                &at,
                "a path starts with `event` or `meta` (`event.a.b`, `meta.x`)".to_owned(),
            ),
        }
    };
    (ws, root.flat_map(path), ws, end)
        .map(|(_, p, _, _)| p)
        .parse(LocatingSlice::new(text))
        .map_err(|e| syntax_error(text, e.offset(), e.inner()))
}

fn syntax_error(text: &str, offset: usize, e: &ContextError) -> SyntaxError {
    let mut parts: Vec<String> = e
        .context()
        .map(|c| match c {
            StrContext::Label(l) => format!("invalid {l}"),
            StrContext::Expected(v) => format!("expected {v}"),
            other => other.to_string(),
        })
        .collect();
    if let Some(cause) = e.cause() {
        parts.push(cause.to_string());
    }
    if parts.is_empty() {
        parts.push(match text[offset..].chars().next() {
            Some(c) => format!("unexpected `{c}`"),
            None => "unexpected end of the expression".to_owned(),
        });
    }
    SyntaxError {
        column: char_column(text, offset),
        message: parts.join("; "),
    }
}

fn char_column(text: &str, offset: usize) -> usize {
    text.get(..offset).map_or(offset, |s| s.chars().count()) + 1
}

/// Node columns are byte offsets + 1 while parsing; messages want characters.
fn to_char_columns(expr: &mut Expr, text: &str) {
    if text.is_ascii() {
        return;
    }
    let fix = |col: &mut u32| {
        *col = u32::try_from(char_column(text, *col as usize - 1)).unwrap_or(u32::MAX);
    };
    match expr {
        Expr::Lit(_) | Expr::Path(_) | Expr::Exists(_) => {}
        Expr::Array(items) => items.iter_mut().for_each(|e| to_char_columns(e, text)),
        Expr::Unary(_, e, col) => {
            fix(col);
            to_char_columns(e, text);
        }
        Expr::Binary(_, a, b, col) => {
            fix(col);
            to_char_columns(a, text);
            to_char_columns(b, text);
        }
        Expr::Call(_, args, col) => {
            fix(col);
            args.iter_mut().for_each(|e| to_char_columns(e, text));
        }
        Expr::Regex(_, e, _, col) => {
            fix(col);
            to_char_columns(e, text);
        }
        Expr::Match(subject, arms, col) => {
            fix(col);
            to_char_columns(subject, text);
            for arm in arms {
                if let Some(g) = &mut arm.guard {
                    to_char_columns(g, text);
                }
                to_char_columns(&mut arm.body, text);
            }
        }
        Expr::Get(e, _) => to_char_columns(e, text),
    }
}

/// A cut (no backtracking) error with a message, at the current position.
fn cut<T>(i: &In<'_>, message: String) -> R<T> {
    Err(ErrMode::Cut(ContextError::from_external_error(
        i,
        Msg(message),
    )))
}

/// A cut error at an earlier position.
fn cut_at<'i, T>(i: &mut In<'i>, at: &<In<'i> as Stream>::Checkpoint, message: String) -> R<T> {
    i.reset(at);
    cut(i, message)
}

fn expected(what: &'static str) -> StrContext {
    StrContext::Expected(StrContextValue::Description(what))
}

fn column(i: &In<'_>) -> u32 {
    u32::try_from(i.current_token_start() + 1).unwrap_or(u32::MAX)
}

fn ws(i: &mut In<'_>) -> R<()> {
    multispace0.void().parse_next(i)
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn ident<'i>(i: &mut In<'i>) -> R<&'i str> {
    (one_of(is_ident_start), take_while(0.., is_ident_char))
        .take()
        .parse_next(i)
}

/// A keyword: the word, not followed by a letter, digit or `_`.
fn kw<'i>(word: &'static str) -> impl Parser<In<'i>, &'i str, ErrMode<ContextError>> {
    terminated(literal(word), not(one_of(is_ident_char)))
}

fn end(i: &mut In<'_>) -> R<()> {
    let rest = i.peek_finish();
    let message = if rest.is_empty() {
        return Ok(());
    } else if rest.starts_with('=') {
        "`=` is not an operator: compare with `==`".to_owned()
    } else if rest.starts_with("&&") {
        "use `and` instead of `&&`".to_owned()
    } else if rest.starts_with("||") {
        "use `or` instead of `||`".to_owned()
    } else {
        let found: String = rest.chars().take_while(|c| !c.is_whitespace()).collect();
        format!("expected an operator or the end of the expression, found `{found}`")
    };
    cut(i, message)
}

fn expr(i: &mut In<'_>) -> R<Expr> {
    left_assoc(i, and_expr, |i| kw("or").value(BinOp::Or).parse_next(i))
}

fn and_expr(i: &mut In<'_>) -> R<Expr> {
    left_assoc(i, not_expr, |i| kw("and").value(BinOp::And).parse_next(i))
}

/// `operand (op operand)*`, folded to the left.
fn left_assoc(
    i: &mut In<'_>,
    operand: fn(&mut In<'_>) -> R<Expr>,
    op: fn(&mut In<'_>) -> R<BinOp>,
) -> R<Expr> {
    let mut lhs = operand(i)?;
    while let Some((op, rhs, col)) = binary_next(i, operand, op)? {
        lhs = Expr::Binary(op, Box::new(lhs), Box::new(rhs), col);
    }
    Ok(lhs)
}

/// After a left operand: an operator of `op` (with its column) and the right operand; `None`,
/// with the input as it was, when no such operator follows.
fn binary_next(
    i: &mut In<'_>,
    operand: fn(&mut In<'_>) -> R<Expr>,
    op: fn(&mut In<'_>) -> R<BinOp>,
) -> R<Option<(BinOp, Expr, u32)>> {
    let before = i.checkpoint();
    ws(i)?;
    let col = column(i);
    let Some(op) = opt(op).parse_next(i)? else {
        i.reset(&before);
        return Ok(None);
    };
    Ok(Some((op, operand(i)?, col)))
}

fn not_expr(i: &mut In<'_>) -> R<Expr> {
    ws(i)?;
    let col = column(i);
    if opt(kw("not")).parse_next(i)?.is_some() {
        let operand = not_expr(i)?;
        return Ok(Expr::Unary(UnOp::Not, Box::new(operand), col));
    }
    compare(i)
}

fn compare_op(i: &mut In<'_>) -> R<BinOp> {
    alt((
        "==".value(BinOp::Eq),
        "!=".value(BinOp::Ne),
        "<=".value(BinOp::Le),
        ">=".value(BinOp::Ge),
        "<".value(BinOp::Lt),
        ">".value(BinOp::Gt),
        kw("in").value(BinOp::In),
        (kw("not"), ws, kw("in")).value(BinOp::NotIn),
    ))
    .parse_next(i)
}

fn compare(i: &mut In<'_>) -> R<Expr> {
    let lhs = sum(i)?;
    let Some((op, rhs, col)) = binary_next(i, sum, compare_op)? else {
        return Ok(lhs);
    };
    let after = i.checkpoint();
    ws(i)?;
    let next = i.checkpoint();
    if let Some(again) = opt(compare_op).parse_next(i)? {
        return cut_at(
            i,
            &next,
            format!(
                "comparisons do not chain: combine them with `and` (`a {} b and b {} c`)",
                op.as_str(),
                again.as_str()
            ),
        );
    }
    i.reset(&after);
    Ok(Expr::Binary(op, Box::new(lhs), Box::new(rhs), col))
}

fn sum(i: &mut In<'_>) -> R<Expr> {
    left_assoc(i, product, |i| {
        alt(('+'.value(BinOp::Add), '-'.value(BinOp::Sub))).parse_next(i)
    })
}

fn product(i: &mut In<'_>) -> R<Expr> {
    left_assoc(i, unary, |i| {
        alt((
            '*'.value(BinOp::Mul),
            '/'.value(BinOp::Div),
            '%'.value(BinOp::Rem),
        ))
        .parse_next(i)
    })
}

fn unary(i: &mut In<'_>) -> R<Expr> {
    ws(i)?;
    let col = column(i);
    if opt('-').parse_next(i)?.is_some() {
        let operand = unary(i)?;
        return Ok(Expr::Unary(UnOp::Neg, Box::new(operand), col));
    }
    primary(i)
}

fn primary(i: &mut In<'_>) -> R<Expr> {
    ws(i)?;
    match i.peek_token() {
        Some('(') => {
            '('.parse_next(i)?;
            let inner = expr(i)?;
            ws(i)?;
            cut_err(')').context(expected("`)`")).parse_next(i)?;
            Ok(inner)
        }
        Some('[') => array(i),
        Some('"' | '\'') => Ok(Expr::Lit(Value::from(string(i)?))),
        Some(c) if c.is_ascii_digit() => number(i).map(Expr::Lit),
        Some(c) if is_ident_start(c) => word(i),
        Some('!') => cut(i, "use `not` instead of `!`".to_owned()),
        Some(c) => cut(
            i,
            format!("expected a value, a path (`event.a`), a function call or `(`, found `{c}`"),
        ),
        None => cut(
            i,
            "expected a value, a path (`event.a`), a function call or `(`, found the end"
                .to_owned(),
        ),
    }
}

fn array(i: &mut In<'_>) -> R<Expr> {
    '['.parse_next(i)?;
    let mut items = Vec::new();
    loop {
        ws(i)?;
        if opt(']').parse_next(i)?.is_some() {
            return Ok(Expr::Array(items));
        }
        items.push(expr(i)?);
        ws(i)?;
        match i.peek_token() {
            Some(',') => {
                ','.parse_next(i)?;
            }
            Some(']') => {}
            _ => return cut(i, "expected `,` or `]` in the array".to_owned()),
        }
    }
}

fn string(i: &mut In<'_>) -> R<String> {
    let quote = one_of(['"', '\'']).parse_next(i)?;
    let mut out = String::new();
    loop {
        let chunk = take_till(0.., (quote, '\\')).parse_next(i)?;
        out.push_str(chunk);
        match opt(any).parse_next(i)? {
            Some(c) if c == quote => return Ok(out),
            Some(_) => out.push(escape(i)?),
            None => return cut(i, format!("the string has no closing {quote}")),
        }
    }
}

fn escape(i: &mut In<'_>) -> R<char> {
    let at = i.checkpoint();
    match opt(any).parse_next(i)? {
        Some('n') => Ok('\n'),
        Some('t') => Ok('\t'),
        Some('r') => Ok('\r'),
        Some('0') => Ok('\0'),
        Some(c @ ('"' | '\'' | '\\' | '/')) => Ok(c),
        Some('u') => {
            let hex = take_while(4, |c: char| c.is_ascii_hexdigit())
                .parse_next(i)
                .or_else(|_: ErrMode<ContextError>| {
                    cut_at(i, &at, "`\\u` takes four hex digits (`\\u00e9`)".to_owned())
                })?;
            u32::from_str_radix(hex, 16)
                .ok()
                .and_then(char::from_u32)
                .map_or_else(
                    || cut_at(i, &at, format!("`\\u{hex}` is not a character")),
                    Ok,
                )
        }
        _ => cut_at(
            i,
            &at,
            "unknown escape: use \\\" \\' \\\\ \\/ \\n \\r \\t \\0 or \\uXXXX".to_owned(),
        ),
    }
}

fn number(i: &mut In<'_>) -> R<Value> {
    let at = i.checkpoint();
    let text = (
        digit1,
        opt(('.', digit1)),
        opt((
            one_of(['e', 'E']),
            opt(one_of(['+', '-'])),
            cut_err(digit1).context(expected("the exponent's digits")),
        )),
    )
        .take()
        .parse_next(i)?;
    if text.contains(['.', 'e', 'E']) {
        match text.parse::<f64>() {
            Ok(f) if f.is_finite() => Ok(Value::F64(f)),
            _ => cut_at(i, &at, format!("{text} is too large for a float")),
        }
    } else {
        match text.parse::<u64>() {
            Ok(u) => Ok(Value::from(u)),
            Err(_) => cut_at(
                i,
                &at,
                format!("{text} is too large for an integer (at most {})", u64::MAX),
            ),
        }
    }
}

/// What starts with a name: a literal, a path or a function call.
fn word(i: &mut In<'_>) -> R<Expr> {
    let at = i.checkpoint();
    let col = column(i);
    let name = ident(i)?;
    match name {
        "true" => return Ok(Expr::Lit(Value::Bool(true))),
        "false" => return Ok(Expr::Lit(Value::Bool(false))),
        "null" => return Ok(Expr::Lit(Value::Null)),
        "event" => return path(Root::Event).map(Expr::Path).parse_next(i),
        "meta" => return path(Root::Meta).map(Expr::Path).parse_next(i),
        "match" => return match_expr(i, col),
        "and" | "or" | "not" | "in" | "when" => {
            return cut_at(i, &at, format!("expected an operand, found `{name}`"));
        }
        _ => {}
    }
    let before_paren = i.checkpoint();
    ws(i)?;
    if opt('(').parse_next(i)?.is_none() {
        i.reset(&before_paren);
        if let Some(bound) = lookup(name) {
            return Ok(bound);
        }
        return cut_at(
            i,
            &at,
            format!(
                "unknown name `{name}`: a path starts with `event` or `meta`, a string is \
                 quoted (\"{name}\")"
            ),
        );
    }
    let known = Func::ALL.iter().find(|(n, _, _, _)| *n == name);
    if known.is_none() && name != "exists" {
        let names: Vec<&str> = Func::ALL.iter().map(|(n, _, _, _)| *n).collect();
        return cut_at(
            i,
            &at,
            format!(
                "unknown function `{name}` (the functions are {} and exists)",
                names.join(", ")
            ),
        );
    }
    let mut args = Vec::new();
    loop {
        ws(i)?;
        if opt(')').parse_next(i)?.is_some() {
            break;
        }
        if !args.is_empty() {
            cut_err(',').context(expected("`,` or `)`")).parse_next(i)?;
        }
        args.push(expr(i)?);
    }
    let (least, most) = known.map_or((1, 1), |(_, _, least, most)| (*least, *most));
    if args.len() < least || args.len() > most {
        let wanted = if least == most {
            format!("{least} argument{}", if least == 1 { "" } else { "s" })
        } else if most == usize::MAX {
            format!(
                "at least {least} argument{}",
                if least == 1 { "" } else { "s" }
            )
        } else {
            format!("{least} to {most} arguments")
        };
        return cut_at(
            i,
            &at,
            format!("`{name}` takes {wanted}, found {}", args.len()),
        );
    }
    match known {
        Some((_, f, _, _)) => Ok(Expr::Call(*f, args, col)),
        None => match args.pop() {
            Some(Expr::Path(p)) => Ok(Expr::Exists(p)),
            _ => cut_at(
                i,
                &at,
                "`exists` takes a path (`exists(event.a.b)`)".to_owned(),
            ),
        },
    }
}

/// The segments after a root name.
fn path<'i>(root: Root) -> impl Parser<In<'i>, Path, ErrMode<ContextError>> {
    move |i: &mut In<'i>| {
        let mut segments = Vec::new();
        loop {
            match i.peek_token() {
                Some('.') => {
                    '.'.parse_next(i)?;
                    let key = cut_err(take_while(1.., is_ident_char))
                        .context(expected("a field name after `.`"))
                        .parse_next(i)?;
                    segments.push(Segment::Key(key.to_owned()));
                }
                Some('[') => {
                    '['.parse_next(i)?;
                    ws(i)?;
                    let at = i.checkpoint();
                    let segment = match i.peek_token() {
                        Some('"' | '\'') => Segment::Key(string(i)?),
                        Some(c) if c == '-' || c.is_ascii_digit() => {
                            let text = (opt('-'), digit1).take().parse_next(i)?;
                            match text.parse::<i64>() {
                                Ok(n) => Segment::Index(n),
                                Err(_) => {
                                    return cut_at(i, &at, format!("index {text} is too large"));
                                }
                            }
                        }
                        _ => {
                            return cut(
                                i,
                                "expected an integer index (`[0]`, `[-1]`) or a quoted key \
                                 (`[\"a-b\"]`)"
                                    .to_owned(),
                            );
                        }
                    };
                    ws(i)?;
                    cut_err(']').context(expected("`]`")).parse_next(i)?;
                    segments.push(segment);
                }
                _ => return Ok(Path::new(root, segments)),
            }
        }
    }
}

/// `match subject { pattern | pattern when guard => body, ... }` (after `match`).
fn match_expr(i: &mut In<'_>, col: u32) -> R<Expr> {
    let subject = expr(i)?;
    ws(i)?;
    cut_err('{')
        .context(expected("`{` after the value to match"))
        .parse_next(i)?;
    let mut arms = Vec::new();
    loop {
        ws(i)?;
        if opt('}').parse_next(i)?.is_some() {
            break;
        }
        let _scope = ScopeGuard::new();
        let mut patterns = vec![pattern(i, &subject)?];
        loop {
            ws(i)?;
            if opt('|').parse_next(i)?.is_none() {
                break;
            }
            patterns.push(pattern(i, &subject)?);
        }
        ws(i)?;
        let guard = if opt(kw("when")).parse_next(i)?.is_some() {
            Some(expr(i)?)
        } else {
            None
        };
        ws(i)?;
        cut_err("=>")
            .context(expected("`=>` (or `|`, `when`) after the pattern"))
            .parse_next(i)?;
        let body = expr(i)?;
        arms.push(Arm {
            patterns,
            guard,
            body,
        });
        ws(i)?;
        match i.peek_token() {
            Some(',') => {
                ','.parse_next(i)?;
            }
            Some('}') => {}
            _ => return cut(i, "expected `,` or `}` after the arm".to_owned()),
        }
    }
    if arms.is_empty() {
        return cut(i, "a `match` needs at least one arm".to_owned());
    }
    Ok(Expr::Match(Box::new(subject), arms, col))
}

/// What `value` with `segments` after it is, as an expression (what a binding stands for).
fn field_of(value: &Expr, key: &str) -> Expr {
    let key = Segment::Key(key.to_owned());
    match value {
        Expr::Path(p) => {
            let mut segments = p.segments.clone();
            segments.push(key);
            Expr::Path(Path::new(p.root, segments))
        }
        Expr::Get(e, segments) => {
            let mut segments = segments.clone();
            segments.push(key);
            Expr::Get(e.clone(), segments)
        }
        other => Expr::Get(Box::new(other.clone()), vec![key]),
    }
}

/// A pattern for values that `value` gives; its bindings are added to the scope.
fn pattern(i: &mut In<'_>, value: &Expr) -> R<Pattern> {
    ws(i)?;
    let at = i.checkpoint();
    match i.peek_token() {
        Some('{') => {
            '{'.parse_next(i)?;
            let mut fields = Vec::new();
            loop {
                ws(i)?;
                if opt('}').parse_next(i)?.is_some() {
                    return Ok(Pattern::Record(fields));
                }
                let key = match i.peek_token() {
                    Some('"' | '\'') => string(i)?,
                    Some(c) if is_ident_start(c) => ident(i)?.to_owned(),
                    _ => return cut(i, "expected a field name in the record pattern".to_owned()),
                };
                ws(i)?;
                cut_err(':')
                    .context(expected("`:` after the field name"))
                    .parse_next(i)?;
                let inner = pattern(i, &field_of(value, &key))?;
                fields.push((key, inner));
                ws(i)?;
                match i.peek_token() {
                    Some(',') => {
                        ','.parse_next(i)?;
                    }
                    Some('}') => {}
                    _ => return cut(i, "expected `,` or `}` in the record pattern".to_owned()),
                }
            }
        }
        Some('"' | '\'') => Ok(Pattern::Lit(Value::from(string(i)?))),
        Some(c) if c.is_ascii_digit() => number(i).map(Pattern::Lit),
        Some('-') => {
            '-'.parse_next(i)?;
            match (Expr::Unary(UnOp::Neg, Box::new(Expr::Lit(number(i)?)), 0)).fold() {
                Ok(Expr::Lit(v)) => Ok(Pattern::Lit(v)),
                _ => cut_at(i, &at, "the number is out of range".to_owned()),
            }
        }
        Some(c) if is_ident_start(c) => {
            let name = ident(i)?;
            match name {
                "_" => Ok(Pattern::Any),
                "true" => Ok(Pattern::Lit(Value::Bool(true))),
                "false" => Ok(Pattern::Lit(Value::Bool(false))),
                "null" => Ok(Pattern::Lit(Value::Null)),
                "event" | "meta" | "match" | "when" | "and" | "or" | "not" | "in" => cut_at(
                    i,
                    &at,
                    format!("`{name}` can not be a binding's name in a pattern"),
                ),
                _ => {
                    SCOPE.with(|s| s.borrow_mut().push((name.to_owned(), value.clone())));
                    Ok(Pattern::Any)
                }
            }
        }
        _ => cut(
            i,
            "expected a pattern: a literal, `_`, a name or a record `{field: pattern}`".to_owned(),
        ),
    }
}
