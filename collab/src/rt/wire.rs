//! The envelope of `/ws/rt` (`docs/realtime.md`): parsing a client's frame within bounds, and
//! building the server's replies and events.

use serde_json::{Map, Value, json};

/// The only envelope version spoken.
pub const VERSION: u64 = 1;
/// Deepest nesting of arrays and objects accepted in one frame.
pub const MAX_DEPTH: usize = 16;
/// Longest request id accepted.
pub const MAX_ID_CHARS: usize = 64;

/// A request as the client sent it.
#[derive(Debug)]
pub(crate) struct Request {
    pub kind: String,
    pub id: Option<String>,
    pub data: Map<String, Value>,
}

/// Why a frame is not a request; each carries the request id when it could be read.
#[derive(Debug)]
pub(crate) struct WireError {
    pub code: &'static str,
    pub message: String,
    pub re: Option<String>,
}

impl WireError {
    fn new(code: &'static str, message: impl Into<String>, re: Option<String>) -> Self {
        WireError {
            code,
            message: message.into(),
            re,
        }
    }
}

/// Nesting depth of a JSON text, counted without parsing it (brackets inside strings do not
/// count), so a deeply nested frame is refused before serde_json recurses into it.
pub(crate) fn nesting_depth(text: &str) -> usize {
    let (mut depth, mut max, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for b in text.bytes() {
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
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// Parses one text frame (already checked against the size limit).
pub(crate) fn parse(text: &str) -> Result<Request, WireError> {
    if nesting_depth(text) > MAX_DEPTH {
        return Err(WireError::new(
            "malformed",
            format!("nesting deeper than {MAX_DEPTH}"),
            None,
        ));
    }
    let value: Value = serde_json::from_str(text)
        .map_err(|e| WireError::new("malformed", format!("not JSON: {e}"), None))?;
    let Value::Object(mut obj) = value else {
        return Err(WireError::new(
            "malformed",
            "a frame is one JSON object",
            None,
        ));
    };
    let id = match obj.remove("id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if (1..=MAX_ID_CHARS).contains(&s.chars().count()) => Some(s),
        Some(_) => {
            return Err(WireError::new(
                "bad_request",
                format!("id must be a string of 1 to {MAX_ID_CHARS} characters"),
                None,
            ));
        }
    };
    match obj.get("v").and_then(Value::as_u64) {
        Some(VERSION) => {}
        _ => {
            return Err(WireError::new(
                "unsupported_version",
                format!("this server speaks envelope version {VERSION}"),
                id,
            ));
        }
    }
    let kind = match obj.remove("type") {
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 64 => s,
        _ => {
            return Err(WireError::new(
                "malformed",
                "type must be a short string",
                id,
            ));
        }
    };
    let data = match obj.remove("data") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m,
        Some(_) => return Err(WireError::new("malformed", "data must be an object", id)),
    };
    Ok(Request { kind, id, data })
}

/// `{"v":1,"type":"ok","re":ID,"data":{...}}`
pub(crate) fn ok(re: &str, data: Value) -> String {
    json!({"v": VERSION, "type": "ok", "re": re, "data": data}).to_string()
}

/// `{"v":1,"type":"error","re":ID,"data":{"code","message"}}`; `re` absent when the request
/// had no readable id.
pub(crate) fn error(re: Option<&str>, code: &str, message: &str) -> String {
    let mut obj =
        json!({"v": VERSION, "type": "error", "data": {"code": code, "message": message}});
    if let (Some(re), Some(map)) = (re, obj.as_object_mut()) {
        map.insert("re".to_owned(), Value::String(re.to_owned()));
    }
    obj.to_string()
}

/// An event with its session sequence number, its `data` already JSON: one message delivered to a thousand sessions is
/// encoded once, and each session only puts its own sequence number around it (measured:
/// encoding per recipient was a third of the server's CPU fanning out to 1,000 members).
pub(crate) fn event_encoded(kind: &str, seq: u64, data: &str) -> String {
    let kind = Value::String(kind.to_owned());
    format!(r#"{{"v":{VERSION},"type":{kind},"seq":{seq},"data":{data}}}"#)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_encoded_event_is_the_same_event() {
        let data = json!({"text": "a \"quoted\" line", "n": [1, 2]});
        let a = json!({"v": VERSION, "type": "msg.new", "seq": 7, "data": data});
        let b: Value =
            serde_json::from_str(&event_encoded("msg.new", 7, &data.to_string())).unwrap();
        assert_eq!(a, b);
        assert_eq!(a["v"], 1);
        assert_eq!(a["seq"], 7);
        assert_eq!(a["data"], data);
    }

    #[test]
    fn depth_ignores_brackets_in_strings() {
        assert_eq!(nesting_depth(r#"{"a":"[[[[{{{{\"]]"}"#), 1);
        assert_eq!(nesting_depth(r#"{"a":[[{"b":[]}]]}"#), 5);
        let deep = format!("{}{}", "[".repeat(17), "]".repeat(17));
        assert_eq!(parse(&deep).unwrap_err().code, "malformed");
    }

    #[test]
    fn envelope_errors_carry_codes_and_ids() {
        assert_eq!(parse("nope").unwrap_err().code, "malformed");
        assert_eq!(parse("[1]").unwrap_err().code, "malformed");
        let e = parse(r#"{"v":2,"id":"7","type":"ping"}"#).unwrap_err();
        assert_eq!(
            (e.code, e.re.as_deref()),
            ("unsupported_version", Some("7"))
        );
        let e = parse(&format!(
            r#"{{"v":1,"id":"{}","type":"ping"}}"#,
            "x".repeat(65)
        ));
        assert_eq!(e.unwrap_err().code, "bad_request");
        let e = parse(r#"{"v":1,"id":"1","type":"ping","data":[1]}"#).unwrap_err();
        assert_eq!(e.code, "malformed");
        let r = parse(r#"{"v":1,"id":"1","type":"ping"}"#).unwrap();
        assert_eq!((r.kind.as_str(), r.id.as_deref()), ("ping", Some("1")));
    }

    #[test]
    fn replies_are_valid_json() {
        let e: Value = serde_json::from_str(&error(Some("9"), "too_large", "x\"y")).unwrap();
        assert_eq!(e["re"], "9");
        assert_eq!(e["data"]["code"], "too_large");
        let e: Value = serde_json::from_str(&error(None, "malformed", "m")).unwrap();
        assert!(e.get("re").is_none());
    }
}
