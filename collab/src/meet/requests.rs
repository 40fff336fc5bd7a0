//! Reading the `data` of meeting requests: every field typed and bounded before use.

use serde_json::{Map, Value};

/// A field that is not what the protocol says: answered `bad_request`.
#[derive(Debug)]
pub(crate) struct BadField(pub String);

/// An optional string of at most `max` characters (`null` and absent are `None`).
pub(crate) fn opt_str(
    data: &Map<String, Value>,
    key: &str,
    max: usize,
) -> Result<Option<String>, BadField> {
    match data.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.chars().count() <= max => Ok(Some(s.clone())),
        Some(_) => Err(BadField(format!(
            "{key} must be a string of at most {max} characters"
        ))),
    }
}

/// A required string of 1 to `max` characters.
pub(crate) fn req_str(
    data: &Map<String, Value>,
    key: &str,
    max: usize,
) -> Result<String, BadField> {
    match opt_str(data, key, max)? {
        Some(s) if !s.is_empty() => Ok(s),
        _ => Err(BadField(format!(
            "{key} is required: a string of 1 to {max} characters"
        ))),
    }
}

pub(crate) fn opt_u64(data: &Map<String, Value>, key: &str) -> Result<Option<u64>, BadField> {
    match data.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| BadField(format!("{key} must be a non-negative integer"))),
    }
}

pub(crate) fn req_bool(data: &Map<String, Value>, key: &str) -> Result<bool, BadField> {
    data.get(key)
        .and_then(Value::as_bool)
        .ok_or_else(|| BadField(format!("{key} must be true or false")))
}

/// A display name: trimmed, 1–64 characters, no control characters.
pub(crate) fn display_name(raw: &str) -> Result<String, BadField> {
    let name = raw.trim();
    let n = name.chars().count();
    if n == 0 || n > 64 || name.chars().any(char::is_control) {
        return Err(BadField(
            "name must be 1 to 64 characters without control characters".to_owned(),
        ));
    }
    Ok(name.to_owned())
}

/// `meet.join`'s data.
#[derive(Debug)]
pub(crate) struct JoinRequest {
    pub slug: String,
    pub invite: Option<String>,
    pub name: Option<String>,
}

pub(crate) fn parse_join(data: &Map<String, Value>) -> Result<JoinRequest, BadField> {
    let slug = req_str(data, "slug", 64)?;
    let invite = opt_str(data, "invite", 256)?.filter(|s| !s.is_empty());
    let name = match opt_str(data, "name", 256)? {
        Some(raw) => Some(display_name(&raw)?),
        None => None,
    };
    Ok(JoinRequest { slug, invite, name })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn join_fields_are_bounded() {
        assert!(parse_join(&map(json!({}))).is_err());
        assert!(parse_join(&map(json!({"slug": 5}))).is_err());
        assert!(parse_join(&map(json!({"slug": "a", "name": "  "}))).is_err());
        assert!(parse_join(&map(json!({"slug": "a", "name": "a\u{7}b"}))).is_err());
        assert!(parse_join(&map(json!({"slug": "a", "name": "x".repeat(65)}))).is_err());
        let j = parse_join(&map(json!({"slug": "a", "invite": "", "name": " Kim "}))).unwrap();
        assert_eq!((j.invite, j.name.as_deref()), (None, Some("Kim")));
    }
}
