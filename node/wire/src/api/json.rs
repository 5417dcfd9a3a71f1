//! Reading a client's JSON body: one object, nested no deeper than the server allows.

use serde_json::{Map, Value};

use super::{ApiError, ErrorKind};

/// Parses a JSON object, refusing nesting deeper than `max_depth` before building any value.
pub fn parse_json_object(bytes: &[u8], max_depth: usize) -> Result<Map<String, Value>, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::new(
            ErrorKind::InvalidRequest,
            "the request body is empty; expected a JSON object",
        ));
    }
    if exceeds_depth(bytes, max_depth) {
        return Err(ApiError::new(
            ErrorKind::InvalidRequest,
            format!("the request body nests JSON deeper than {max_depth} levels"),
        ));
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::new(
            ErrorKind::InvalidRequest,
            "the request body must be a JSON object",
        )),
        Err(e) => Err(ApiError::new(
            ErrorKind::InvalidRequest,
            format!("the request body is not valid JSON: {e}"),
        )),
    }
}

/// Whether brackets outside strings nest deeper than `max_depth`. Malformed input may pass;
/// the parser rejects it next.
fn exceeds_depth(bytes: &[u8], max_depth: usize) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in bytes {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > max_depth {
                    return true;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_counts_only_outside_strings() {
        assert!(!exceeds_depth(br#"{"a":"[[[[[[[["}"#, 2));
        assert!(exceeds_depth(br#"{"a":[[[1]]]}"#, 3));
        assert!(!exceeds_depth(br#"{"a":[[[1]]]}"#, 4));
        assert!(!exceeds_depth(br#"{"a":"\"[[[["}"#, 1));
    }

    #[test]
    fn malformed_and_non_object_bodies_are_400() {
        for body in [&b""[..], b"   ", b"{", b"[1,2]", b"\"x\"", b"{\"model\": }"] {
            let e = parse_json_object(body, 64).expect_err("must fail");
            assert_eq!(e.kind(), ErrorKind::InvalidRequest, "{body:?}");
        }
    }

    #[test]
    fn deep_nesting_is_refused() {
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(100), "]".repeat(100));
        let e = parse_json_object(deep.as_bytes(), 64).expect_err("too deep");
        assert!(e.message().contains("deeper"));
    }
}
