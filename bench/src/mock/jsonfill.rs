//! Builds a sample value that satisfies a JSON schema, for forced tool calls and
//! `response_format: json_schema` answers (which SDK helpers such as `parse()` validate).

use serde_json::{Map, Value, json};

/// Schemas are untrusted: recursion stops here (deeper values become `null`).
const MAX_DEPTH: usize = 12;

/// A deterministic value matching `schema` (local `$ref`s into `$defs`/`definitions` resolved).
pub(crate) fn sample(schema: &Value) -> Value {
    sample_at(schema, schema, 0)
}

fn resolve<'a>(root: &'a Value, reference: &str) -> Option<&'a Value> {
    if reference == "#" {
        return Some(root);
    }
    let path = reference.strip_prefix("#/")?;
    path.split('/').try_fold(root, |v, seg| {
        v.get(seg.replace("~1", "/").replace("~0", "~"))
    })
}

fn sample_at(schema: &Value, root: &Value, depth: usize) -> Value {
    if depth > MAX_DEPTH {
        return Value::Null;
    }
    let Some(obj) = schema.as_object() else {
        return Value::Null;
    };
    if let Some(target) = obj
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| resolve(root, r))
    {
        return sample_at(target, root, depth + 1);
    }
    if let Some(c) = obj.get("const") {
        return c.clone();
    }
    if let Some(first) = obj
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
    {
        return first.clone();
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        if let Some(branches) = obj.get(key).and_then(Value::as_array) {
            // Prefer a non-null branch so that optional fields get a real value.
            let branch = branches
                .iter()
                .find(|b| b.get("type").and_then(Value::as_str) != Some("null"))
                .or_else(|| branches.first());
            if let Some(b) = branch {
                return sample_at(b, root, depth + 1);
            }
        }
    }
    let ty = match obj.get("type") {
        Some(Value::String(s)) => s.as_str(),
        Some(Value::Array(types)) => types
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or("null"),
        _ if obj.contains_key("properties") => "object",
        _ if obj.contains_key("items") => "array",
        _ => "string",
    };
    match ty {
        "object" => {
            let mut out = Map::new();
            if let Some(props) = obj.get("properties").and_then(Value::as_object) {
                for (k, v) in props {
                    out.insert(k.clone(), sample_at(v, root, depth + 1));
                }
            }
            Value::Object(out)
        }
        "array" => {
            let min = obj
                .get("minItems")
                .and_then(Value::as_u64)
                .unwrap_or(1)
                .clamp(1, 3);
            let item = obj
                .get("items")
                .map(|i| sample_at(i, root, depth + 1))
                .unwrap_or(Value::Null);
            Value::Array(vec![item; usize::try_from(min).unwrap_or(1)])
        }
        "integer" => json!(obj.get("minimum").and_then(Value::as_i64).unwrap_or(1)),
        "number" => json!(obj.get("minimum").and_then(Value::as_f64).unwrap_or(1.5)),
        "boolean" => json!(true),
        "null" => Value::Null,
        _ => match obj.get("format").and_then(Value::as_str) {
            Some("date-time") => json!("2025-01-01T00:00:00Z"),
            Some("date") => json!("2025-01-01"),
            Some("email") => json!("mock@example.com"),
            Some("uri") => json!("https://example.com/mock"),
            _ => json!("mock"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_pydantic_style_schema() {
        let schema = json!({
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "days": {"type": "integer", "minimum": 3},
                "unit": {"enum": ["c", "f"]},
                "tags": {"type": "array", "items": {"type": "string"}},
                "loc": {"$ref": "#/$defs/Loc"},
                "note": {"anyOf": [{"type": "null"}, {"type": "string"}]},
            },
            "$defs": {"Loc": {"type": "object", "properties": {"lat": {"type": "number"}}}},
        });
        assert_eq!(
            sample(&schema),
            json!({"city": "mock", "days": 3, "unit": "c", "tags": ["mock"],
                   "loc": {"lat": 1.5}, "note": "mock"})
        );
    }

    #[test]
    fn survives_hostile_schemas() {
        let looped = json!({"$ref": "#"});
        assert_eq!(sample(&looped), Value::Null);
        assert_eq!(sample(&json!("not a schema")), Value::Null);
        assert_eq!(sample(&json!({"$ref": "#/nope"})), json!("mock"));
    }
}
