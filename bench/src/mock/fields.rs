//! Typed access to untrusted JSON request bodies.
//!
//! Every accessor returns a [`FieldError`] naming the field (with its path, e.g.
//! `messages[2].content`) instead of panicking, and each API renders that error in its own
//! format and wording.

use serde_json::{Map, Value};

/// What is wrong with a request field.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum FieldError {
    /// A required field is absent (or null).
    Missing(String),
    /// The field has the wrong JSON type.
    WrongType {
        field: String,
        expected: &'static str,
        got: &'static str,
    },
    /// The field has the right type but a bad value.
    Invalid { field: String, message: String },
}

impl FieldError {
    /// The field path.
    pub(crate) fn field(&self) -> &str {
        match self {
            FieldError::Missing(f) => f,
            FieldError::WrongType { field, .. } | FieldError::Invalid { field, .. } => field,
        }
    }

    /// OpenAI wording and error code.
    pub(crate) fn openai_message(&self) -> (String, &'static str) {
        match self {
            FieldError::Missing(f) => (
                format!("Missing required parameter: '{f}'."),
                "missing_required_parameter",
            ),
            FieldError::WrongType {
                field,
                expected,
                got,
            } => (
                format!(
                    "Invalid type for '{field}': expected {}, but got {} instead.",
                    article(expected),
                    article(got)
                ),
                "invalid_type",
            ),
            FieldError::Invalid { field, message } => {
                (format!("Invalid '{field}': {message}"), "invalid_value")
            }
        }
    }

    /// Anthropic wording (`field: message`, pydantic style).
    pub(crate) fn anthropic_message(&self) -> String {
        match self {
            FieldError::Missing(f) => format!("{f}: Field required"),
            FieldError::WrongType {
                field, expected, ..
            } => format!("{field}: Input should be a valid {expected}"),
            FieldError::Invalid { field, message } => format!("{field}: {message}"),
        }
    }
}

fn article(t: &str) -> String {
    match t {
        "null" => "null".to_owned(),
        "array" | "object" | "integer" => format!("an {t}"),
        _ => format!("a {t}"),
    }
}

/// The JSON type name of a value, as used in error messages.
pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A JSON object being read, with the path prefix used in error messages.
#[derive(Clone, Copy)]
pub(crate) struct Fields<'a, 'p> {
    obj: &'a Map<String, Value>,
    prefix: &'p str,
}

impl<'a, 'p> Fields<'a, 'p> {
    /// Wraps an object whose fields are named `prefix` + key in errors.
    pub(crate) fn new(obj: &'a Map<String, Value>, prefix: &'p str) -> Self {
        Self { obj, prefix }
    }

    /// The full path of a field.
    pub(crate) fn path(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn wrong(&self, key: &str, expected: &'static str, v: &Value) -> FieldError {
        FieldError::WrongType {
            field: self.path(key),
            expected,
            got: type_name(v),
        }
    }

    /// The raw value; JSON null counts as absent, as the providers treat it.
    pub(crate) fn get(&self, key: &str) -> Option<&'a Value> {
        self.obj.get(key).filter(|v| !v.is_null())
    }

    /// A required value of any type.
    pub(crate) fn req(&self, key: &str) -> Result<&'a Value, FieldError> {
        self.get(key)
            .ok_or_else(|| FieldError::Missing(self.path(key)))
    }

    pub(crate) fn str_opt(&self, key: &str) -> Result<Option<&'a str>, FieldError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(v) => Err(self.wrong(key, "string", v)),
        }
    }

    pub(crate) fn str_req(&self, key: &str) -> Result<&'a str, FieldError> {
        self.str_opt(key)?
            .ok_or_else(|| FieldError::Missing(self.path(key)))
    }

    pub(crate) fn bool_opt(&self, key: &str) -> Result<Option<bool>, FieldError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(self.wrong(key, "boolean", v)),
        }
    }

    /// A non-negative integer within `min..=max`.
    pub(crate) fn uint_opt(
        &self,
        key: &str,
        min: u64,
        max: u64,
    ) -> Result<Option<u64>, FieldError> {
        match self.get(key) {
            None => Ok(None),
            Some(v @ Value::Number(n)) => match n.as_u64() {
                Some(x) if (min..=max).contains(&x) => Ok(Some(x)),
                Some(_) => Err(self.range(key, min, max)),
                None if n.is_i64() => Err(self.range(key, min, max)),
                None => Err(self.wrong(key, "integer", v)),
            },
            Some(v) => Err(self.wrong(key, "integer", v)),
        }
    }

    fn range(&self, key: &str, min: u64, max: u64) -> FieldError {
        FieldError::Invalid {
            field: self.path(key),
            message: if max == u64::MAX {
                format!("integer below minimum value. Expected a value >= {min}.")
            } else {
                format!("integer out of range. Expected a value between {min} and {max}.")
            },
        }
    }

    pub(crate) fn array_opt(&self, key: &str) -> Result<Option<&'a Vec<Value>>, FieldError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(a)) => Ok(Some(a)),
            Some(v) => Err(self.wrong(key, "array", v)),
        }
    }

    pub(crate) fn array_req(&self, key: &str) -> Result<&'a Vec<Value>, FieldError> {
        self.array_opt(key)?
            .ok_or_else(|| FieldError::Missing(self.path(key)))
    }

    pub(crate) fn object_opt(
        &self,
        key: &str,
    ) -> Result<Option<&'a Map<String, Value>>, FieldError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Object(o)) => Ok(Some(o)),
            Some(v) => Err(self.wrong(key, "object", v)),
        }
    }
}

impl<'a> Fields<'a, '_> {
    /// The model: the Azure deployment from the URL when there is one, else the body's `model`.
    pub(crate) fn model_or_deployment(
        &self,
        deployment: Option<&str>,
    ) -> Result<String, FieldError> {
        match deployment {
            Some(d) => Ok(d.to_owned()),
            None => self.str_req("model").map(str::to_owned),
        }
    }

    /// OpenAI's `stream` and `stream_options.include_usage`, rejecting `stream_options` without
    /// `stream` as the real API does.
    pub(crate) fn stream_and_usage(&self) -> Result<(bool, bool), FieldError> {
        let stream = self.bool_opt("stream")?.unwrap_or(false);
        let include_usage = match self.object_opt("stream_options")? {
            Some(_) if !stream => {
                return Err(FieldError::Invalid {
                    field: "stream_options".into(),
                    message:
                        "The 'stream_options' parameter is only allowed when 'stream' is enabled."
                            .into(),
                });
            }
            Some(so) => Fields::new(so, "stream_options.")
                .bool_opt("include_usage")?
                .unwrap_or(false),
            None => false,
        };
        Ok((stream, include_usage))
    }
}

/// Requires `v` (found at `path`) to be an object.
pub(crate) fn as_object<'a>(
    v: &'a Value,
    path: &str,
) -> Result<&'a Map<String, Value>, FieldError> {
    match v {
        Value::Object(o) => Ok(o),
        other => Err(FieldError::WrongType {
            field: path.to_owned(),
            expected: "object",
            got: type_name(other),
        }),
    }
}

/// A string or an array of strings (OpenAI `stop`, Anthropic `stop_sequences` use one of them).
pub(crate) fn string_list(
    v: Option<&Value>,
    path: &str,
    max: usize,
) -> Result<Vec<String>, FieldError> {
    let wrong = |v: &Value| FieldError::WrongType {
        field: path.to_owned(),
        expected: "string",
        got: type_name(v),
    };
    match v {
        None => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(a)) => {
            if a.len() > max {
                return Err(FieldError::Invalid {
                    field: path.to_owned(),
                    message: format!(
                        "array too long. Expected an array with maximum length {max}, but got an array with length {} instead.",
                        a.len()
                    ),
                });
            }
            a.iter()
                .map(|x| x.as_str().map(str::to_owned).ok_or_else(|| wrong(x)))
                .collect()
        }
        Some(other) => Err(wrong(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn typed_access() {
        let v =
            json!({"s": "x", "n": 5, "neg": -1, "f": 1.5, "b": true, "a": [1], "o": {}, "z": null});
        let o = v.as_object().expect("object");
        let f = Fields::new(o, "p.");
        assert_eq!(f.str_req("s"), Ok("x"));
        assert_eq!(f.str_opt("z"), Ok(None));
        assert_eq!(f.str_req("z"), Err(FieldError::Missing("p.z".into())));
        assert_eq!(f.uint_opt("n", 1, 10), Ok(Some(5)));
        assert!(matches!(
            f.uint_opt("n", 6, 10),
            Err(FieldError::Invalid { .. })
        ));
        assert!(matches!(
            f.uint_opt("neg", 0, 10),
            Err(FieldError::Invalid { .. })
        ));
        let e = f.uint_opt("s", 0, 10).expect_err("wrong type");
        assert_eq!(e.field(), "p.s");
        assert_eq!(
            e.openai_message().0,
            "Invalid type for 'p.s': expected an integer, but got a string instead."
        );
        assert_eq!(
            e.anthropic_message(),
            "p.s: Input should be a valid integer"
        );
        assert!(f.uint_opt("f", 0, 10).is_err());
        assert_eq!(f.bool_opt("b"), Ok(Some(true)));
        assert!(f.array_req("a").is_ok());
        assert!(f.object_opt("o").is_ok());
        assert!(f.object_opt("a").is_err());
        assert_eq!(
            string_list(Some(&json!("x")), "stop", 4),
            Ok(vec!["x".to_owned()])
        );
        assert!(string_list(Some(&json!([1])), "stop", 4).is_err());
        assert!(string_list(Some(&json!(["a", "b", "c", "d", "e"])), "stop", 4).is_err());
    }
}
