//! The functions added with `match` (issue #17): strings, regexes, numbers, conversions and
//! objects. `expr.rs` dispatches here; the older functions stay there.

use std::time::{SystemTime, UNIX_EPOCH};

use temblor_shim::{Object, RVec, Value};

use super::expr::{EvalError, Func, NULL, article, err, float_of, int_of, string_arg};

/// `matches` and `capture` with a compiled regex.
pub(super) fn regex_call(
    f: Func,
    re: &regex::Regex,
    subject: &Value,
    col: u32,
) -> Result<Value, EvalError> {
    let s = string_arg(subject, f, 1, col)?;
    if f == Func::Matches {
        return Ok(Value::Bool(re.is_match(s)));
    }
    let Some(caps) = re.captures(s) else {
        return Ok(Value::Null);
    };
    let group = |m: Option<regex::Match<'_>>| m.map_or(Value::Null, |m| Value::from(m.as_str()));
    if re.capture_names().flatten().next().is_some() {
        // Named groups: an object of them.
        let mut o = Object::new();
        for name in re.capture_names().flatten() {
            o.push(name.into(), group(caps.name(name)));
        }
        Ok(Value::Object(o))
    } else {
        // Unnamed: the whole match, then each group.
        Ok(Value::Array(caps.iter().map(group).collect()))
    }
}

fn int_arg(v: &Value, f: Func, n: usize, col: u32) -> Result<i128, EvalError> {
    int_of(v).map_or_else(
        || {
            err(
                col,
                format!(
                    "`{}` needs an integer as argument {n}, found {}",
                    f.name(),
                    v.type_name()
                ),
            )
        },
        Ok,
    )
}

fn int_result(i: i128, f: Func, col: u32) -> Result<Value, EvalError> {
    super::expr::int_in_range(i).map_or_else(
        || err(col, format!("`{}`: the integer is out of range", f.name())),
        Ok,
    )
}

/// A float with no fraction as an integer, if it is in range.
#[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
fn whole(x: f64, f: Func, col: u32) -> Result<Value, EvalError> {
    if x.is_finite() && x >= i64::MIN as f64 && x < u64::MAX as f64 {
        int_result(x as i128, f, col)
    } else {
        err(
            col,
            format!("`{}`: {x} is out of the integer range", f.name()),
        )
    }
}

/// A value as text: a string as it is, anything else as JSON.
fn text_of(v: &Value, out: &mut String) {
    match v {
        Value::String(s) => out.push_str(s),
        other => out.push_str(&other.to_json()),
    }
}

fn object_arg(v: &Value, f: Func, n: usize, col: u32) -> Result<&Object, EvalError> {
    v.as_object().map_or_else(
        || {
            err(
                col,
                format!(
                    "`{}` needs an object as argument {n}, found {}",
                    f.name(),
                    v.type_name()
                ),
            )
        },
        Ok,
    )
}

/// RFC 7396 merge patch: `null` in the patch removes, objects merge, the rest replaces.
fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !matches!(target, Value::Object(_)) {
        *target = Value::Object(Object::new());
    }
    let Value::Object(t) = target else {
        unreachable!("just made an object")
    };
    for (k, v) in p.iter() {
        if matches!(v, Value::Null) {
            t.remove(k);
        } else if let Some(existing) = t.get_mut(k) {
            merge_patch(existing, v);
        } else {
            let mut fresh = Value::Null;
            merge_patch(&mut fresh, v);
            t.push(k.into(), fresh);
        }
    }
}

/// The functions of this module.
#[allow(clippy::too_many_lines)]
pub(super) fn call(f: Func, args: &[&Value], col: u32) -> Result<Value, EvalError> {
    let arg = |n: usize| args.get(n).copied().unwrap_or(&NULL);
    let s = |n: usize| string_arg(arg(n), f, n + 1, col);
    Ok(match f {
        Func::Split => {
            let sep = s(1)?;
            if sep.is_empty() {
                return err(col, "`split`: the separator is empty");
            }
            Value::Array(s(0)?.split(sep).map(Value::from).collect())
        }
        Func::Join => {
            let Value::Array(items) = arg(0) else {
                return err(
                    col,
                    format!(
                        "`join` needs an array as argument 1, found {}",
                        arg(0).type_name()
                    ),
                );
            };
            let sep = s(1)?;
            let mut out = String::new();
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(sep);
                }
                text_of(item, &mut out);
            }
            Value::from(out)
        }
        Func::Replace => {
            let from = s(1)?;
            if from.is_empty() {
                return err(col, "`replace`: the text to replace is empty");
            }
            Value::from(s(0)?.replace(from, s(2)?))
        }
        Func::Trim => Value::from(s(0)?.trim()),
        Func::Substr => {
            let text = s(0)?;
            let start = int_arg(arg(1), f, 2, col)?;
            let len = match args.get(2) {
                Some(v) => Some(int_arg(v, f, 3, col)?),
                None => None,
            };
            if start < 0 || len.is_some_and(|l| l < 0) {
                return err(col, "`substr`: start and length are not negative");
            }
            let start = usize::try_from(start).unwrap_or(usize::MAX);
            let chars = text.chars().skip(start);
            Value::from(match len {
                Some(l) => chars
                    .take(usize::try_from(l).unwrap_or(usize::MAX))
                    .collect::<String>(),
                None => chars.collect::<String>(),
            })
        }
        Func::Format => {
            let template = s(0)?;
            let mut out = String::with_capacity(template.len());
            let mut next = 1;
            let mut chars = template.chars().peekable();
            while let Some(c) = chars.next() {
                match (c, chars.peek()) {
                    ('{', Some('{')) | ('}', Some('}')) => {
                        chars.next();
                        out.push(c);
                    }
                    ('{', Some('}')) => {
                        chars.next();
                        let Some(v) = args.get(next) else {
                            return err(
                                col,
                                format!(
                                    "`format`: the template has more `{{}}` than the {} \
                                     argument(s) after it",
                                    args.len() - 1
                                ),
                            );
                        };
                        text_of(v, &mut out);
                        next += 1;
                    }
                    ('{' | '}', _) => {
                        return err(
                            col,
                            "`format`: a lone `{` or `}` (write `{{` or `}}`)".to_owned(),
                        );
                    }
                    _ => out.push(c),
                }
            }
            if next != args.len() {
                return err(
                    col,
                    format!(
                        "`format`: {} argument(s) for {} `{{}}`",
                        args.len() - 1,
                        next - 1
                    ),
                );
            }
            Value::from(out)
        }
        Func::Round | Func::Floor | Func::Abs => match arg(0) {
            Value::I64(i) if f == Func::Abs => match i.checked_abs() {
                Some(a) => Value::I64(a),
                None => Value::U64(i.unsigned_abs()),
            },
            v @ (Value::I64(_) | Value::U64(_)) => v.clone(),
            Value::F64(x) => match f {
                Func::Round => whole(x.round(), f, col)?,
                Func::Floor => whole(x.floor(), f, col)?,
                _ => Value::F64(x.abs()),
            },
            other => {
                return err(
                    col,
                    format!("`{}` needs a number, found {}", f.name(), other.type_name()),
                );
            }
        },
        Func::NowMs => Value::from(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        ),
        Func::ToString => {
            let mut out = String::new();
            text_of(arg(0), &mut out);
            Value::from(out)
        }
        Func::ToInt => match arg(0) {
            v @ (Value::I64(_) | Value::U64(_)) => v.clone(),
            Value::F64(x) => whole(x.trunc(), f, col)?,
            Value::Bool(b) => Value::I64(i64::from(*b)),
            Value::String(t) => match t.trim().parse::<i128>() {
                Ok(i) => int_result(i, f, col)?,
                Err(_) => return err(col, format!("`to_int`: \"{t}\" is not an integer")),
            },
            other => {
                return err(
                    col,
                    format!("`to_int` cannot convert {}", article(other.type_name())),
                );
            }
        },
        Func::ToFloat => match arg(0) {
            Value::String(t) => match t.trim().parse::<f64>() {
                Ok(x) if x.is_finite() => Value::F64(x),
                _ => return err(col, format!("`to_float`: \"{t}\" is not a number")),
            },
            v => match float_of(v) {
                Some(x) => Value::F64(x),
                None => {
                    return err(
                        col,
                        format!("`to_float` cannot convert {}", article(v.type_name())),
                    );
                }
            },
        },
        Func::Keys => Value::Array(
            object_arg(arg(0), f, 1, col)?
                .iter()
                .map(|(k, _)| Value::from(k))
                .collect::<RVec<_>>(),
        ),
        Func::Values => Value::Array(
            object_arg(arg(0), f, 1, col)?
                .iter()
                .map(|(_, v)| v.clone())
                .collect::<RVec<_>>(),
        ),
        Func::Merge => {
            let mut target = Value::Object(object_arg(arg(0), f, 1, col)?.clone());
            object_arg(arg(1), f, 2, col)?;
            merge_patch(&mut target, arg(1));
            target
        }
        Func::Contains
        | Func::StartsWith
        | Func::EndsWith
        | Func::Lower
        | Func::Upper
        | Func::Len
        | Func::Matches
        | Func::Capture => unreachable!("evaluated in expr.rs"),
    })
}
