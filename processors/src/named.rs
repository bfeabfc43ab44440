//! [`Named`]: a codec or processor as a deployment names it, with its config.

use temblor_shim::{Object, Value};

/// A named component with its config: a codec or a processor as the deployment gives it.
#[derive(Debug, Clone, PartialEq)]
pub struct Named {
    /// The component's name.
    pub name: String,
    /// Its config (an empty object when none is given).
    pub config: Value,
}

/// A value that names no component.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NamedError {
    /// A table without a string `name`.
    #[error("a table here needs `name = \"...\"`")]
    NoName,
    /// Neither a string nor a table.
    #[error("expected a name or a table with `name`, found {found}")]
    NotNamed {
        /// The type found instead.
        found: &'static str,
    },
}

impl Named {
    /// Reads `"name"` or `{ name = "...", config = {...} }` / `{ name = "...", key = ... }`.
    ///
    /// # Errors
    /// When `value` is neither a string nor a table with a string `name`.
    pub fn from_value(value: &Value) -> Result<Self, NamedError> {
        match value {
            Value::String(name) => Ok(Self {
                name: name.to_string(),
                config: Value::Object(Object::new()),
            }),
            Value::Object(table) => {
                let name = table
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or(NamedError::NoName)?
                    .to_owned();
                let config = match table.get("config") {
                    Some(config) if table.len() == 2 => config.clone(),
                    _ => Value::Object(
                        table
                            .iter()
                            .filter(|(k, _)| *k != "name")
                            .map(|(k, v)| (k, v.clone()))
                            .collect(),
                    ),
                };
                Ok(Self { name, config })
            }
            other => Err(NamedError::NotNamed {
                found: other.type_name(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_reads_all_three_forms() {
        let n = Named::from_value(&Value::from("json")).unwrap();
        assert_eq!(n.name, "json");
        assert_eq!(n.config, Value::Object(Object::new()));
        let table: Object = [("name", Value::from("separate")), ("separator", "|".into())]
            .into_iter()
            .collect();
        let n = Named::from_value(&Value::Object(table)).unwrap();
        assert_eq!(n.name, "separate");
        assert_eq!(n.config.get("separator"), Some(&Value::from("|")));
        let inner: Object = [("x", Value::from(1))].into_iter().collect();
        let table: Object = [
            ("name", Value::from("json")),
            ("config", Value::Object(inner.clone())),
        ]
        .into_iter()
        .collect();
        let n = Named::from_value(&Value::Object(table)).unwrap();
        assert_eq!(n.config, Value::Object(inner));
    }

    #[test]
    fn what_names_nothing_says_why() {
        assert_eq!(
            Named::from_value(&Value::from(3)).unwrap_err().to_string(),
            "expected a name or a table with `name`, found integer"
        );
        let table: Object = [("separator", Value::from("|"))].into_iter().collect();
        assert_eq!(
            Named::from_value(&Value::Object(table)),
            Err(NamedError::NoName)
        );
    }
}
