//! Reading admin request bodies and queries: bounded, strict, and with errors that name the
//! field (`budgets[1].amount_usd: invalid type: string "5", expected f64`).

use axum::extract::Query;
use axum::extract::rejection::QueryRejection;
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

use super::error::AdminError;

/// Largest governance request body: keys, teams and customers are small; metadata is the only
/// free-form part.
pub(crate) const MAX_BODY_BYTES: usize = 64 * 1024;

/// Parses a JSON body into `T`. `T` should deny unknown fields, so that a misspelt field is an
/// error naming it rather than silently ignored.
pub(crate) fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, AdminError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(AdminError::too_large(MAX_BODY_BYTES));
    }
    // Checked by hand because serde also reads a struct from an array of its fields.
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        None => return Err(AdminError::invalid("the body is empty: send a JSON object")),
        Some(b'{') => {}
        Some(_) => return Err(AdminError::invalid("the body: send a JSON object")),
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        // A syntax error has no meaningful field path (serde_path_to_error says "?").
        if inner.is_syntax() || inner.is_eof() || path == "." || path == "?" {
            AdminError::invalid(format!("the body: {inner}"))
        } else {
            AdminError::field(&path, inner)
        }
    })?;
    de.end()
        .map_err(|e| AdminError::invalid(format!("the body: {e}")))?;
    Ok(value)
}

/// A query string, or an error in the admin shape (axum's own rejection is plain text).
pub(crate) fn query<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, AdminError> {
    query
        .map(|Query(q)| q)
        .map_err(|e| AdminError::invalid(format!("the query string: {}", e.body_text())))
}

/// A field of a create or update body: absent (keep), `null` (clear) or a value (set).
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) enum Field<T> {
    /// Not in the body.
    #[default]
    Absent,
    /// `null`.
    Null,
    /// A value.
    Value(T),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Field<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Option::<T>::deserialize(d).map(|v| v.map_or(Self::Null, Self::Value))
    }
}

impl<T> Field<T> {
    /// Whether the body named the field at all.
    pub(crate) fn is_present(&self) -> bool {
        !matches!(self, Self::Absent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        #[serde(default)]
        name: Field<String>,
        #[serde(default)]
        items: Field<Vec<Item>>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Item {
        n: u64,
    }

    fn message(body: &str) -> String {
        parse::<Body>(&Bytes::from(body.to_owned()))
            .map(|_| String::new())
            .unwrap_or_else(|e| e.message)
    }

    #[test]
    fn fields_are_absent_null_or_set() {
        let b: Body = parse(&Bytes::from_static(b"{\"name\": null}")).expect("valid");
        assert_eq!(b.name, Field::Null);
        assert!(matches!(b.items, Field::Absent));
        let b: Body = parse(&Bytes::from_static(b"{\"name\": \"x\"}")).expect("valid");
        assert_eq!(b.name, Field::Value("x".into()));
    }

    #[test]
    fn errors_name_the_field() {
        assert!(message(r#"{"nmae": "x"}"#).contains("unknown field `nmae`"));
        let m = message(r#"{"items": [{"n": 1}, {"n": "2"}]}"#);
        assert!(m.starts_with("items[1].n: invalid type"), "{m}");
        let m = message(r#"{"items": [{"x": 1}]}"#);
        assert!(m.starts_with("items[0].x: unknown field `x`"), "{m}");
        assert_eq!(message("[]"), "the body: send a JSON object");
        assert!(message("{\"name\": 1").starts_with("name: invalid type"));
        let m = message("{\"name\": \"x\"");
        assert!(m.contains("EOF while parsing"), "{m}");
        assert!(message("{} {}").starts_with("the body: trailing"));
        assert!(message(" ").contains("empty"));
        let m = message("{not json");
        assert!(m.starts_with("the body: key must be a string"), "{m}");
        let big = format!("{{\"name\": \"{}\"}}", "x".repeat(MAX_BODY_BYTES));
        assert!(message(&big).contains("limited"));
    }
}
