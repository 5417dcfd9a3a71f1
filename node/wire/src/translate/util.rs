//! Small helpers shared by the translators: ids, clock, data URLs, JSON
//! type checks that produce path-carrying errors.

use std::borrow::Cow;
use std::marker::PhantomData;
use std::ops::Deref;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::de::{self, Deserialize, Deserializer, Visitor};
use serde_json::{Map, Value};

use super::TranslateError;

/// Seconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `prefix` followed by 32 random hex digits.
pub(crate) fn new_id(prefix: &str) -> String {
    let mut id = String::with_capacity(prefix.len() + 32);
    id.push_str(prefix);
    id.push_str(
        uuid::Uuid::new_v4()
            .simple()
            .encode_lower(&mut uuid::Uuid::encode_buffer()),
    );
    id
}

/// Anthropic requires tool ids to match `^[a-zA-Z0-9_-]+$`; OpenAI allows
/// any string. Replacing the other characters the same way in `tool_use.id`
/// and `tool_result.tool_use_id` keeps the pair matching.
pub(crate) fn anthropic_tool_id(id: &str) -> Cow<'_, str> {
    let ok = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    if id.is_empty() {
        Cow::Borrowed("_")
    } else if id.chars().all(ok) {
        Cow::Borrowed(id)
    } else {
        Cow::Owned(id.chars().map(|c| if ok(c) { c } else { '_' }).collect())
    }
}

/// A parsed `data:<media type>;base64,<data>` URL.
pub(crate) struct DataUrl<'a> {
    pub media_type: &'a str,
    pub data: &'a str,
}

/// Parses a base64 data URL; `None` if it is not one (or not base64).
pub(crate) fn parse_data_url(url: &str) -> Option<DataUrl<'_>> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let mut params = meta.split(';');
    let media_type = params.next().unwrap_or_default();
    if !params.any(|p| p.eq_ignore_ascii_case("base64")) {
        return None;
    }
    Some(DataUrl { media_type, data })
}

/// The JSON type of a value, for error messages.
pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn expected(path: &str, what: &'static str, got: &Value) -> TranslateError {
    TranslateError::invalid(path, format!("expected {what}, got {}", type_name(got)))
}

/// The request body as an object.
pub(crate) fn body_object(req: &Value) -> Result<&Map<String, Value>, TranslateError> {
    req.as_object()
        .ok_or_else(|| expected("$", "a JSON object", req))
}

/// `v` as an object, else an error naming `path`.
pub(crate) fn as_object(
    v: &Value,
    path: impl FnOnce() -> String,
) -> Result<&Map<String, Value>, TranslateError> {
    v.as_object()
        .ok_or_else(|| expected(&path(), "an object", v))
}

/// `v` as a string, else an error naming `path`.
pub(crate) fn as_str(v: &Value, path: impl FnOnce() -> String) -> Result<&str, TranslateError> {
    v.as_str().ok_or_else(|| expected(&path(), "a string", v))
}

/// `v` as an array, else an error naming `path`.
pub(crate) fn as_array(
    v: &Value,
    path: impl FnOnce() -> String,
) -> Result<&[Value], TranslateError> {
    v.as_array()
        .map(Vec::as_slice)
        .ok_or_else(|| expected(&path(), "an array", v))
}

/// A required string field of `obj`.
pub(crate) fn req_str<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    path: impl Fn() -> String,
) -> Result<&'a str, TranslateError> {
    match obj.get(key) {
        Some(v) => as_str(v, || format!("{}.{key}", path())),
        None => Err(TranslateError::invalid(
            format!("{}.{key}", path()),
            "is required",
        )),
    }
}

/// An optional field, treating JSON `null` as absent (both APIs do).
pub(crate) fn opt<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

/// An optional positive integer field (`max_tokens` and friends).
pub(crate) fn opt_positive_int(
    obj: &Map<String, Value>,
    key: &str,
) -> Result<Option<u64>, TranslateError> {
    match opt(obj, key) {
        None => Ok(None),
        Some(v) => match v.as_u64() {
            Some(n) if n > 0 => Ok(Some(n)),
            _ => Err(TranslateError::invalid(key, "expected a positive integer")),
        },
    }
}

/// An optional number field.
pub(crate) fn opt_number(
    obj: &Map<String, Value>,
    key: &str,
) -> Result<Option<f64>, TranslateError> {
    match opt(obj, key) {
        None => Ok(None),
        Some(v) => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| expected(key, "a number", v)),
    }
}

/// Builds a JSON object from a fixed list of fields.
pub(crate) fn obj<const N: usize>(fields: [(&str, Value); N]) -> Value {
    let mut m = Map::new();
    for (k, v) in fields {
        m.insert(k.to_owned(), v);
    }
    Value::Object(m)
}

/// A JSON string that borrows from the input when it has no escapes.
/// (`Option<Cow<str>>` fields always allocate with serde's derive; this
/// newtype does not, which matters for per-token stream deltas.)
#[derive(Debug)]
pub(crate) struct Str<'a>(pub Cow<'a, str>);

impl Deref for Str<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Str<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V(PhantomData))
    }
}

/// The string, unless absent or empty (empty deltas are not forwarded).
pub(crate) fn non_empty<'s>(s: &'s Option<Str<'_>>) -> Option<&'s str> {
    s.as_deref().filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_urls() {
        let d = parse_data_url("data:image/png;base64,iVBOR").expect("data url");
        assert_eq!((d.media_type, d.data), ("image/png", "iVBOR"));
        let d = parse_data_url("data:image/jpeg;name=a.jpg;BASE64,/9j/").expect("data url");
        assert_eq!((d.media_type, d.data), ("image/jpeg", "/9j/"));
        assert!(parse_data_url("data:text/plain,hello").is_none());
        assert!(parse_data_url("https://example.com/a.png").is_none());
        assert!(parse_data_url("data:image/png;base64").is_none());
    }

    #[test]
    fn tool_ids_are_sanitized_for_anthropic() {
        assert_eq!(anthropic_tool_id("call_abc-1"), "call_abc-1");
        assert_eq!(anthropic_tool_id("call:1.2"), "call_1_2");
        assert_eq!(anthropic_tool_id(""), "_");
    }

    #[test]
    fn str_borrows_unless_escaped() {
        #[derive(serde::Deserialize)]
        struct T<'a> {
            #[serde(borrow)]
            a: Option<Str<'a>>,
            #[serde(borrow)]
            b: Option<Str<'a>>,
        }
        let t: T<'_> = serde_json::from_str(r#"{"a":"plain","b":"esc\naped"}"#).expect("json");
        assert!(matches!(t.a.map(|s| s.0), Some(Cow::Borrowed("plain"))));
        assert!(matches!(t.b.as_ref().map(|s| &s.0), Some(Cow::Owned(s)) if s == "esc\naped"));
    }

    #[test]
    fn ids_are_unique_and_prefixed() {
        let (a, b) = (new_id("msg_"), new_id("msg_"));
        assert!(a.starts_with("msg_") && a.len() == 36);
        assert_ne!(a, b);
    }
}
