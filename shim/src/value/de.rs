//! serde for [`Value`]: any self-describing format (the deployment's TOML) deserializes into a
//! `Value`, and a `Value` deserializes into a plugin's typed `Config`.

use std::fmt;

use abi_stable::std_types::{RString, RVec};
use serde::de::{
    self, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, SeqAccess, Visitor,
    value::{MapDeserializer, SeqDeserializer},
};

use super::{Object, Value};

impl<'de> serde::Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::I64(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::F64(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_bytes<E>(self, v: &[u8]) -> Result<Value, E> {
        Ok(Value::Bytes(RVec::from(v)))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        serde::Deserialize::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = RVec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Object::with_capacity(map.size_hint().unwrap_or(0));
        while let Some((key, value)) = map.next_entry::<String, Value>()? {
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// Why a [`Value`] did not fit the type asked of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FromValueError(pub String);

impl fmt::Display for FromValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FromValueError {}

impl de::Error for FromValueError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Self(msg.to_string())
    }
}

/// Deserializes a `T` (a plugin's `Config`) from a [`Value`].
///
/// # Errors
/// When the value does not have the shape of `T`: the message names the field at fault.
pub fn from_value<'de, T: serde::Deserialize<'de>>(value: &'de Value) -> Result<T, FromValueError> {
    T::deserialize(value)
}

impl<'de> IntoDeserializer<'de, FromValueError> for &'de Value {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

struct Key<'de>(&'de RString);

impl<'de> IntoDeserializer<'de, FromValueError> for Key<'de> {
    type Deserializer = de::value::BorrowedStrDeserializer<'de, FromValueError>;
    fn into_deserializer(self) -> Self::Deserializer {
        de::value::BorrowedStrDeserializer::new(self.0.as_str())
    }
}

impl<'de> Deserializer<'de> for &'de Value {
    type Error = FromValueError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::I64(i) => visitor.visit_i64(*i),
            Value::U64(u) => visitor.visit_u64(*u),
            Value::F64(f) => visitor.visit_f64(*f),
            Value::String(s) => visitor.visit_borrowed_str(s.as_str()),
            Value::Bytes(b) => visitor.visit_borrowed_bytes(b.as_slice()),
            Value::Array(items) => {
                let mut seq = SeqDeserializer::new(items.iter());
                let out = visitor.visit_seq(&mut seq)?;
                seq.end()?;
                Ok(out)
            }
            Value::Object(object) => {
                let mut map =
                    MapDeserializer::new(object.0.iter().map(|f| (Key(&f.key), &f.value)));
                let out = visitor.visit_map(&mut map)?;
                map.end()?;
                Ok(out)
            }
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        match self {
            Value::String(s) => visitor.visit_enum(s.as_str().into_deserializer()),
            Value::Object(o) if o.len() == 1 => {
                let field = &o.0[0];
                visitor.visit_enum(de::value::MapAccessDeserializer::new(MapDeserializer::new(
                    std::iter::once((Key(&field.key), &field.value)),
                )))
            }
            other => Err(de::Error::invalid_type(unexpected(other), &"a string")),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_newtype_struct(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map struct identifier ignored_any
    }
}

fn unexpected(v: &Value) -> de::Unexpected<'_> {
    match v {
        Value::Null => de::Unexpected::Unit,
        Value::Bool(b) => de::Unexpected::Bool(*b),
        Value::I64(i) => de::Unexpected::Signed(*i),
        Value::U64(u) => de::Unexpected::Unsigned(*u),
        Value::F64(f) => de::Unexpected::Float(*f),
        Value::String(s) => de::Unexpected::Str(s.as_str()),
        Value::Bytes(b) => de::Unexpected::Bytes(b.as_slice()),
        Value::Array(_) => de::Unexpected::Seq,
        Value::Object(_) => de::Unexpected::Map,
    }
}

impl<'de> DeserializeSeed<'de> for &Value {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        serde::Deserialize::deserialize(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Debug, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Config {
        path: String,
        #[serde(default)]
        mode: Mode,
        iters: Option<u64>,
    }

    #[derive(Deserialize, Debug, PartialEq, Default)]
    #[serde(rename_all = "lowercase")]
    enum Mode {
        #[default]
        Read,
        Write,
    }

    fn obj(fields: &[(&str, Value)]) -> Value {
        Value::Object(fields.iter().cloned().collect())
    }

    #[test]
    fn deserializes_a_typed_config() {
        let v = obj(&[
            ("path", "a.json".into()),
            ("mode", "write".into()),
            ("iters", 3.into()),
        ]);
        let c: Config = from_value(&v).expect("valid config");
        assert_eq!(
            c,
            Config {
                path: "a.json".into(),
                mode: Mode::Write,
                iters: Some(3)
            }
        );
    }

    #[test]
    fn unknown_field_is_named() {
        let v = obj(&[("pth", "a.json".into())]);
        let err = from_value::<Config>(&v).expect_err("unknown field");
        assert!(err.0.contains("unknown field `pth`"), "{err}");
    }

    #[test]
    fn bad_enum_and_missing_field_are_reported() {
        let v = obj(&[("path", "a".into()), ("mode", "sideways".into())]);
        let err = from_value::<Config>(&v).expect_err("bad variant");
        assert!(err.0.contains("sideways"), "{err}");
        let err = from_value::<Config>(&obj(&[])).expect_err("missing path");
        assert!(err.0.contains("missing field `path`"), "{err}");
    }
}
