//! The event value: one type for the whole engine, ABI-stable itself.
//!
//! Codecs build it, the pipeline reads and changes it, codecs write it out again; it crosses
//! every plugin boundary as it is (a pointer to a batch), never converted.

mod de;
mod json;

use abi_stable::{
    StableAbi,
    std_types::{RString, RVec},
};

pub use de::{FromValueError, from_value};
pub use json::ByteSink;

/// A JSON-like value: null, bool, integers, float, string, bytes, array, object.
#[repr(u8)]
#[derive(StableAbi, Clone, Debug, Default)]
pub enum Value {
    /// `null`
    #[default]
    Null,
    /// `true` / `false`
    Bool(bool),
    /// A signed integer.
    I64(i64),
    /// An unsigned integer too large for `I64`.
    U64(u64),
    /// A float.
    F64(f64),
    /// A UTF-8 string.
    String(RString),
    /// Raw bytes (JSON writes them as an array of numbers).
    Bytes(RVec<u8>),
    /// An array.
    Array(RVec<Value>),
    /// An object: fields in insertion order.
    Object(Object),
}

/// One field of an [`Object`].
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct Field {
    /// The key.
    pub key: RString,
    /// The value.
    pub value: Value,
}

/// An object: fields in insertion order, looked up by a linear scan.
///
/// Events carry a few dozen keys at most; a scan over a contiguous vector beats hashing there,
/// and insertion order is kept, so what is decoded is written back in the same order.
#[repr(transparent)]
#[derive(StableAbi, Clone, Debug, Default)]
pub struct Object(RVec<Field>);

impl Object {
    /// An empty object.
    #[must_use]
    pub fn new() -> Self {
        Self(RVec::new())
    }

    /// An empty object with room for `n` fields.
    #[must_use]
    pub fn with_capacity(n: usize) -> Self {
        Self(RVec::with_capacity(n))
    }

    /// The number of fields.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no fields.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The value under `key`.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|f| f.key == key).map(|f| &f.value)
    }

    /// The value under `key`, mutably.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Value> {
        self.0
            .iter_mut()
            .find(|f| f.key == key)
            .map(|f| &mut f.value)
    }

    /// Sets `key` to `value`, returning the value it replaces.
    pub fn insert(&mut self, key: impl Into<RString> + AsRef<str>, value: Value) -> Option<Value> {
        if let Some(old) = self.get_mut(key.as_ref()) {
            return Some(std::mem::replace(old, value));
        }
        self.0.push(Field {
            key: key.into(),
            value,
        });
        None
    }

    /// Appends a field without looking for an existing one with the same key
    /// (for decoders, which see each key once).
    pub fn push(&mut self, key: RString, value: Value) {
        self.0.push(Field { key, value });
    }

    /// The value of the field at `index` (in insertion order), mutably.
    pub fn value_at_mut(&mut self, index: usize) -> Option<&mut Value> {
        self.0.get_mut(index).map(|f| &mut f.value)
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let at = self.0.iter().position(|f| f.key == key)?;
        Some(self.0.remove(at).value)
    }

    /// The fields in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &Value)> {
        self.0.iter().map(|f| (f.key.as_str(), &f.value))
    }
}

impl PartialEq for Object {
    /// Objects are equal when they hold the same keys with equal values, in any order.
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().all(|(k, v)| other.get(k) == Some(v))
    }
}

impl<K: Into<RString> + AsRef<str>> FromIterator<(K, Value)> for Object {
    fn from_iter<I: IntoIterator<Item = (K, Value)>>(iter: I) -> Self {
        let mut object = Self::new();
        for (k, v) in iter {
            object.insert(k, v);
        }
        object
    }
}

impl PartialEq for Value {
    /// Numbers compare by value across `I64`, `U64` and `F64`; objects ignore key order.
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Null, Self::Null) => true,
            (Self::Bool(a), Self::Bool(b)) => a == b,
            (Self::String(a), Self::String(b)) => a == b,
            (Self::Bytes(a), Self::Bytes(b)) => a == b,
            (Self::Array(a), Self::Array(b)) => a == b,
            (Self::Object(a), Self::Object(b)) => a == b,
            (Self::I64(a), Self::I64(b)) => a == b,
            (Self::U64(a), Self::U64(b)) => a == b,
            (Self::I64(a), Self::U64(b)) | (Self::U64(b), Self::I64(a)) => {
                u64::try_from(*a).is_ok_and(|a| a == *b)
            }
            #[allow(clippy::cast_precision_loss, clippy::float_cmp)]
            (Self::F64(a), Self::I64(b)) | (Self::I64(b), Self::F64(a)) => *a == *b as f64,
            #[allow(clippy::cast_precision_loss, clippy::float_cmp)]
            (Self::F64(a), Self::U64(b)) | (Self::U64(b), Self::F64(a)) => *a == *b as f64,
            #[allow(clippy::float_cmp)]
            (Self::F64(a), Self::F64(b)) => a == b,
            _ => false,
        }
    }
}

impl Value {
    /// The name of this value's type, for error messages.
    #[must_use]
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Null => "null",
            Self::Bool(_) => "bool",
            Self::I64(_) | Self::U64(_) => "integer",
            Self::F64(_) => "float",
            Self::String(_) => "string",
            Self::Bytes(_) => "bytes",
            Self::Array(_) => "array",
            Self::Object(_) => "object",
        }
    }

    /// The string, if this is one.
    #[must_use]
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::String(s) => Some(s.as_str()),
            _ => None,
        }
    }

    /// The object, if this is one.
    #[must_use]
    pub fn as_object(&self) -> Option<&Object> {
        match self {
            Self::Object(o) => Some(o),
            _ => None,
        }
    }

    /// The object, mutably, if this is one.
    pub fn as_object_mut(&mut self) -> Option<&mut Object> {
        match self {
            Self::Object(o) => Some(o),
            _ => None,
        }
    }

    /// The array, if this is one.
    #[must_use]
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Self::Array(a) => Some(a.as_slice()),
            _ => None,
        }
    }

    /// The integer, if this is one that fits an `i64`.
    #[must_use]
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Self::I64(i) => Some(*i),
            Self::U64(u) => i64::try_from(*u).ok(),
            _ => None,
        }
    }

    /// The integer, if this is a non-negative one.
    #[must_use]
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Self::I64(i) => u64::try_from(*i).ok(),
            Self::U64(u) => Some(*u),
            _ => None,
        }
    }

    /// The value under `key`, if this is an object that has it.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.as_object()?.get(key)
    }

    /// Appends this value as JSON to `out`.
    pub fn write_json<B: ByteSink>(&self, out: &mut B) {
        json::write(self, out);
    }

    /// This value as a JSON string.
    #[must_use]
    pub fn to_json(&self) -> String {
        let mut out = Vec::new();
        self.write_json(&mut out);
        // The writer only emits UTF-8: strings are UTF-8 and everything else is ASCII.
        String::from_utf8(out).unwrap_or_default()
    }
}

impl std::fmt::Display for Value {
    /// Writes the value as JSON.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_json())
    }
}

macro_rules! from_impls {
    ($($t:ty => |$v:ident| $e:expr),* $(,)?) => {
        $(impl From<$t> for Value {
            fn from($v: $t) -> Self {
                $e
            }
        })*
    };
}

from_impls! {
    bool => |v| Self::Bool(v),
    i32 => |v| Self::I64(i64::from(v)),
    i64 => |v| Self::I64(v),
    u32 => |v| Self::I64(i64::from(v)),
    u64 => |v| i64::try_from(v).map_or(Self::U64(v), Self::I64),
    usize => |v| Self::from(v as u64),
    f64 => |v| Self::F64(v),
    &str => |v| Self::String(RString::from(v)),
    String => |v| Self::String(RString::from(v)),
    RString => |v| Self::String(v),
    Vec<Value> => |v| Self::Array(RVec::from(v)),
    Object => |v| Self::Object(v),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_insert_replaces_and_keeps_order() {
        let mut o = Object::new();
        assert_eq!(o.insert("a", 1.into()), None);
        assert_eq!(o.insert("b", 2.into()), None);
        assert_eq!(o.insert("a", 3.into()), Some(Value::I64(1)));
        let keys: Vec<_> = o.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["a", "b"]);
        assert_eq!(o.get("a"), Some(&Value::I64(3)));
        assert_eq!(o.remove("a"), Some(Value::I64(3)));
        assert_eq!(o.len(), 1);
    }

    #[test]
    fn equality_ignores_key_order_and_integer_kind() {
        let a: Object = [("x", Value::from(1)), ("y", Value::from("s"))]
            .into_iter()
            .collect();
        let b: Object = [("y", Value::from("s")), ("x", Value::U64(1))]
            .into_iter()
            .collect();
        assert_eq!(Value::Object(a.clone()), Value::Object(b));
        let c: Object = [("x", Value::from(2)), ("y", Value::from("s"))]
            .into_iter()
            .collect();
        assert_ne!(Value::Object(a), Value::Object(c));
        assert_ne!(Value::I64(-1), Value::U64(u64::MAX));
        assert_eq!(Value::F64(2.0), Value::I64(2));
    }

    #[test]
    fn u64_prefers_i64_when_it_fits() {
        assert!(matches!(Value::from(5_u64), Value::I64(5)));
        assert!(matches!(Value::from(u64::MAX), Value::U64(u64::MAX)));
    }
}
