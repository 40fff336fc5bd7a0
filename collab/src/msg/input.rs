//! Reading the `data` of messaging requests: every field typed and bounded before use.

use serde_json::{Map, Value};

use super::config::MsgConfig;
use super::layout::ConvMeta;

/// Mentions one message may carry.
pub(crate) const MAX_MENTIONS: usize = 50;
/// Documents one message may link.
pub(crate) const MAX_DOCS: usize = 10;
/// Attachments one message may carry.
pub(crate) const MAX_ATTACHMENTS: usize = 10;
/// Characters of a user id, a document id or a client reference.
const MAX_ID: usize = 256;

/// A refused request: an error code of `docs/messaging.md` and a message.
#[derive(Debug)]
pub(crate) struct Bad {
    pub code: &'static str,
    pub message: String,
}

impl Bad {
    pub(crate) fn new(code: &'static str, message: String) -> Self {
        Bad { code, message }
    }
    pub(crate) fn request(message: &str) -> Self {
        Bad::new("bad_request", message.to_owned())
    }
    pub(crate) fn unavailable() -> Self {
        Bad::new(
            "unavailable",
            "the conversation cannot be stored right now; try again".to_owned(),
        )
    }
}

pub(crate) fn conversation(data: &Map<String, Value>) -> Result<String, Bad> {
    match data.get("conversation").and_then(Value::as_str) {
        Some(id) if super::layout::is_conversation_id(id) => Ok(id.to_owned()),
        // A malformed id names no conversation: the same answer as an unknown one.
        Some(_) => Err(Bad::new("not_found", "no such conversation".to_owned())),
        None => Err(Bad::request("conversation is required")),
    }
}

pub(crate) fn req_seq(data: &Map<String, Value>, key: &str) -> Result<u64, Bad> {
    match data.get(key).and_then(Value::as_u64) {
        Some(s) if s >= 1 => Ok(s),
        _ => Err(Bad::request(&format!(
            "{key} must be a sequence number (1 or more)"
        ))),
    }
}

pub(crate) fn opt_seq(data: &Map<String, Value>, key: &str) -> Result<Option<u64>, Bad> {
    match data.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| Bad::request(&format!("{key} must be a sequence number or null"))),
    }
}

pub(crate) fn limit(data: &Map<String, Value>, default: u64, max: u64) -> Result<usize, Bad> {
    match data.get("limit") {
        None | Some(Value::Null) => Ok(default as usize),
        Some(v) => match v.as_u64() {
            Some(n) if (1..=max).contains(&n) => Ok(n as usize),
            _ => Err(Bad::request(&format!("limit must be 1 to {max}"))),
        },
    }
}

/// The text of a message: a string (may be empty) of at most `max` characters.
pub(crate) fn text(data: &Map<String, Value>, max: usize) -> Result<String, Bad> {
    match data.get("text") {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => {
            if s.chars().count() > max {
                return Err(Bad::new(
                    "too_large",
                    format!("a message has at most {max} characters"),
                ));
            }
            Ok(s.clone())
        }
        Some(_) => Err(Bad::request("text must be a string")),
    }
}

pub(crate) fn title(data: &Map<String, Value>) -> Result<String, Bad> {
    match data.get("title").and_then(Value::as_str).map(str::trim) {
        Some(t)
            if !t.is_empty() && t.chars().count() <= 200 && !t.chars().any(char::is_control) =>
        {
            Ok(t.to_owned())
        }
        _ => Err(Bad::request("title must be 1 to 200 characters")),
    }
}

fn id_str(v: &Value, what: &str) -> Result<String, Bad> {
    match v.as_str() {
        Some(s) if !s.is_empty() && s.chars().count() <= MAX_ID => Ok(s.to_owned()),
        _ => Err(Bad::request(&format!(
            "{what} must be strings of 1 to {MAX_ID} characters"
        ))),
    }
}

pub(crate) fn user(data: &Map<String, Value>, key: &str) -> Result<String, Bad> {
    data.get(key)
        .ok_or_else(|| Bad::request(&format!("{key} is required")))
        .and_then(|v| id_str(v, key))
}

/// A list of distinct strings, at most `max` of them.
pub(crate) fn user_list(
    data: &Map<String, Value>,
    key: &str,
    max: usize,
) -> Result<Vec<String>, Bad> {
    let list = match data.get(key) {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(a)) if a.len() <= max => a,
        Some(_) => {
            return Err(Bad::request(&format!(
                "{key} must be a list of at most {max}"
            )));
        }
    };
    let mut out: Vec<String> = Vec::with_capacity(list.len());
    for v in list {
        let s = id_str(v, key)?;
        if !out.contains(&s) {
            out.push(s);
        }
    }
    Ok(out)
}

/// A message as sent, checked (attachments are checked by the service).
pub(crate) struct Send {
    pub text: String,
    pub client_ref: Option<String>,
    pub reply_to: Option<u64>,
    pub mentions: Vec<String>,
    pub docs: Vec<String>,
}

pub(crate) fn parse_send(
    data: &Map<String, Value>,
    cfg: &MsgConfig,
    meta: &ConvMeta,
    last_seq: u64,
) -> Result<Send, Bad> {
    let text = text(data, cfg.max_message_chars)?;
    let client_ref = match data.get("client_ref") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.chars().count() <= 64 => Some(s.clone()),
        Some(_) => {
            return Err(Bad::request(
                "client_ref must be a string of at most 64 characters",
            ));
        }
    };
    let reply_to = opt_seq(data, "reply_to")?;
    if reply_to.is_some_and(|s| s == 0 || s > last_seq) {
        return Err(Bad::new(
            "not_found",
            "reply_to names no message".to_owned(),
        ));
    }
    let mentions = user_list(data, "mentions", MAX_MENTIONS)?;
    if let Some(u) = mentions.iter().find(|u| meta.member(u).is_none()) {
        return Err(Bad::request(&format!(
            "{u} is not a member and cannot be mentioned"
        )));
    }
    let docs = user_list(data, "docs", MAX_DOCS)?;
    if docs.iter().any(|d| {
        d.len() > 64
            || !d
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    }) {
        return Err(Bad::request("docs must be document ids"));
    }
    Ok(Send {
        text,
        client_ref,
        reply_to,
        mentions,
        docs,
    })
}

pub(crate) fn attachment_ids(data: &Map<String, Value>) -> Result<Vec<String>, Bad> {
    let ids = user_list(data, "attachments", MAX_ATTACHMENTS)?;
    if ids.iter().any(|f| !super::layout::is_file_id(f)) {
        return Err(Bad::new("not_found", "no such file".to_owned()));
    }
    Ok(ids)
}
