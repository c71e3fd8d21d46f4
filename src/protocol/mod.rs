//! Wire formats. [`handle`] is where a message is decoded: it detects, per message, the
//! reference envelope (`message_type`, `protocol_version`, `message_id`) or MCP JSON-RPC 2.0
//! (`jsonrpc`), answers in the same format, and logs one record per message.

pub mod envelope;
pub mod mcp;

use std::borrow::Cow;
use std::sync::LazyLock;
use std::time::Instant;

use memchr::memmem::Finder;
use serde::de::{Deserialize, Deserializer, IgnoredAny};
use serde_json::{Map, Value};

use crate::config::MAX_MESSAGE_BYTES;
use crate::names::{ErrorKind, ToolName};
use crate::session::{Caller, Origin};
use crate::state::AppState;

/// How a message ended, for the log record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Answered successfully.
    Ok,
    /// A notification or a client's response: nothing to answer.
    NoReply(&'static str),
    /// The tool ran and failed.
    ToolError(ErrorKind),
    /// The message was refused before any tool ran: a JSON-RPC code or an envelope error code.
    Rejected(String),
}

impl Outcome {
    pub fn as_str(&self) -> &str {
        match self {
            Outcome::Ok => "ok",
            Outcome::NoReply(why) => why,
            Outcome::ToolError(kind) => kind.as_str(),
            Outcome::Rejected(code) => code,
        }
    }
}

/// What the log record of a message says about it.
#[derive(Debug, Clone)]
pub struct Summary {
    pub format: &'static str,
    /// The method, when it is one this server knows (client text is not logged).
    pub method: Option<&'static str>,
    pub tool: Option<ToolName>,
    pub request_id: Option<String>,
    pub outcome: Outcome,
    /// The AWS error code, when AWS refused.
    pub error_code: Option<String>,
    /// For a tool call: where its credentials came from, and who called (the audit trail).
    pub credentials_source: Option<Cow<'static, str>>,
    /// The caller the connection's state names; `None`: the request's.
    pub caller: Option<Caller>,
}

impl Summary {
    fn new(format: &'static str) -> Self {
        Self {
            format,
            method: None,
            tool: None,
            request_id: None,
            outcome: Outcome::Ok,
            error_code: None,
            credentials_source: None,
            caller: None,
        }
    }
}

/// The largest reply API Gateway carries on a WebSocket (128 KB): no reply is larger.
pub const MAX_REPLY_BYTES: usize = MAX_MESSAGE_BYTES;

/// The largest `tools/call` reply: every single reply fits in one API Gateway frame (32 KB).
pub const MAX_TOOL_REPLY_BYTES: usize = 32 * 1024;

/// The longest request id (JSON-RPC `id`, envelope `message_id`) answered; longer ones are
/// refused, since an answer repeats its request's id.
pub const MAX_ID_BYTES: usize = 256;

/// Client-supplied identifiers (connection and request ids) as they may appear in a log record:
/// at most 64 characters. Other client text (methods, names, values) is never echoed.
pub(crate) fn loggable(text: &str) -> &str {
    const MAX_CHARS: usize = 64;
    // No more bytes than that is no more characters (the usual case: ids are ASCII).
    if text.len() <= MAX_CHARS {
        return text;
    }
    match text.char_indices().nth(MAX_CHARS) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

/// Decodes one WebSocket message, runs it, and returns the reply to send, if any. No reply is
/// larger than [`MAX_REPLY_BYTES`]: ids are bounded, tool results are bounded, batches are
/// answered within the limit; should a reply still be larger, it is replaced by an error.
pub async fn handle(state: &AppState, origin: &Origin, body: &[u8]) -> Option<String> {
    let started = Instant::now();
    let (reply, summaries) = dispatch(state, origin, body).await;
    log(state, origin, &summaries, started);
    reply.map(|reply| {
        if reply.len() <= MAX_REPLY_BYTES {
            return reply;
        }
        tracing::error!(
            bytes = reply.len(),
            "a reply exceeded 128 KB and was replaced"
        );
        mcp::refusal(
            None,
            rmcp::model::ErrorCode::INTERNAL_ERROR,
            "the reply would exceed 128 KB".into(),
        )
        .0
    })
}

/// A text frame whose payload the transport found not to be UTF-8, so it could not be passed
/// on: answered with a parse error and logged like any other message.
pub fn refuse_invalid_utf8(state: &AppState, origin: &Origin) -> String {
    let started = Instant::now();
    let (reply, summary) = mcp::refusal(
        None,
        rmcp::model::ErrorCode::PARSE_ERROR,
        "message is not valid UTF-8: text frames must carry UTF-8".into(),
    );
    log(state, origin, &[summary], started);
    reply
}

/// One record per message; for a tool call also the audit trail: who called (the caller as
/// `$connect` authenticated it), which tool, which credential source, and the outcome. Never
/// a secret, a key id or a message body.
fn log(state: &AppState, origin: &Origin, summaries: &[Summary], started: Instant) {
    let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    for summary in summaries {
        let caller = summary.caller.as_ref().unwrap_or(&origin.caller);
        tracing::info!(
            connection_id = loggable(origin.connection_label()),
            instance = state.instance,
            caller_arn = caller.arn.as_deref(),
            caller_account = caller.account_id.as_deref(),
            source_ip = caller.source_ip.as_deref(),
            credentials_source = summary.credentials_source.as_deref(),
            format = summary.format,
            method = summary.method,
            tool = summary.tool.map(ToolName::reference_name),
            request_id = summary.request_id.as_deref(),
            outcome = summary.outcome.as_str(),
            error_code = summary.error_code.as_deref(),
            duration_ms,
            "message"
        );
    }
}

async fn dispatch(
    state: &AppState,
    origin: &Origin,
    body: &[u8],
) -> (Option<String>, Vec<Summary>) {
    // Which format to refuse in is only looked for when a message is refused.
    let refuse =
        |message: String, json_rpc_code: rmcp::model::ErrorCode, envelope_code: &'static str| {
            if looks_like_envelope(body) {
                envelope::refusal(envelope_code, message)
            } else {
                mcp::refusal(None, json_rpc_code, message)
            }
        };

    if body.len() > MAX_MESSAGE_BYTES {
        let message = format!(
            "message too large: {} bytes, the limit is {MAX_MESSAGE_BYTES} bytes (128 KB)",
            body.len()
        );
        let (reply, summary) = refuse(
            message,
            rmcp::model::ErrorCode::INVALID_REQUEST,
            "MESSAGE_TOO_LARGE",
        );
        return (Some(reply), vec![summary]);
    }
    let text = match std::str::from_utf8(body) {
        Ok(text) => text,
        Err(err) => {
            let message = format!(
                "message is not valid UTF-8: invalid byte at offset {}",
                err.valid_up_to()
            );
            let (reply, summary) =
                refuse(message, rmcp::model::ErrorCode::PARSE_ERROR, "PARSE_ERROR");
            return (Some(reply), vec![summary]);
        }
    };
    // The common cases, one JSON-RPC message or one envelope request, are read straight into
    // their fields; the cheap look for "jsonrpc" picks which to try. Anything else is read as
    // a tree and routed from it.
    if contains(body, &JSONRPC) {
        if let Some(message) = mcp::Message::read(text) {
            let (reply, summary) = mcp::handle(state, origin, message).await;
            return (reply, vec![summary]);
        }
    } else if let Some(fields) = envelope::Fields::read(text) {
        let (reply, summary) = envelope::handle(state, origin, fields).await;
        return (Some(reply), vec![summary]);
    }
    let value: Value = match serde_json::from_str(text) {
        Ok(value) => value,
        Err(err) => {
            let message = format!("invalid JSON: {err}");
            let (reply, summary) =
                refuse(message, rmcp::model::ErrorCode::PARSE_ERROR, "PARSE_ERROR");
            return (Some(reply), vec![summary]);
        }
    };
    match value {
        Value::Object(object) if object.contains_key("jsonrpc") => {
            let (reply, summary) = mcp::handle(state, origin, mcp::Message::take(object)).await;
            (reply, vec![summary])
        }
        Value::Object(object) if is_envelope(&object) => {
            let (reply, summary) =
                envelope::handle(state, origin, envelope::Fields::take(object)).await;
            (Some(reply), vec![summary])
        }
        // Boxed: batches are rare (2025-03-26), and their future, which holds a message's
        // inside it, would otherwise make every message's larger.
        Value::Array(items) => Box::pin(mcp::handle_batch(state, origin, items)).await,
        Value::Object(object)
            if object
                .get("method")
                .and_then(Value::as_str)
                .is_some_and(|m| m.starts_with("aws/")) =>
        {
            let (reply, summary) =
                envelope::handle(state, origin, envelope::Fields::take(object)).await;
            (Some(reply), vec![summary])
        }
        _ => {
            let (reply, summary) = mcp::refusal(
                None,
                rmcp::model::ErrorCode::INVALID_REQUEST,
                "not a JSON-RPC 2.0 message (\"jsonrpc\": \"2.0\") nor a reference envelope (\"message_type\": \"REQUEST\")".into(),
            );
            (Some(reply), vec![summary])
        }
    }
}

/// A message's text read straight into a struct's fields, when it is a JSON object they can be
/// read from (serde also reads a struct from an array, its fields in order).
fn read_fields<'a, T: Deserialize<'a>>(text: &'a str) -> Option<T> {
    let object = text
        .trim_start_matches([' ', '\t', '\n', '\r'])
        .starts_with('{');
    if !object {
        return None;
    }
    serde_json::from_str(text).ok()
}

/// A field read into a struct (`deserialize_with`): when present it holds its value, `null`
/// included; absent, the field's default, `None`.
fn present<'de, D: Deserializer<'de>>(value: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(value).map(Some)
}

/// [`present`], for a field whose value does not matter, only that it is there.
fn present_any<'de, D: Deserializer<'de>>(value: D) -> Result<Option<IgnoredAny>, D::Error> {
    IgnoredAny::deserialize(value).map(Some)
}

fn is_envelope(object: &Map<String, Value>) -> bool {
    object.contains_key("message_type") || object.contains_key("message_id")
}

/// For a message that cannot be parsed: answer in the envelope format if it mentions one of
/// the envelope's fields, else in JSON-RPC.
fn looks_like_envelope(body: &[u8]) -> bool {
    static MESSAGE_TYPE: LazyLock<Finder> = LazyLock::new(|| Finder::new(b"\"message_type\""));
    contains(body, &MESSAGE_TYPE) && !contains(body, &JSONRPC)
}

/// Finds `"jsonrpc"` in a message; built once, as building a finder costs more than a search.
static JSONRPC: LazyLock<Finder> = LazyLock::new(|| Finder::new(b"\"jsonrpc\""));

fn contains(body: &[u8], needle: &Finder) -> bool {
    needle.find(body).is_some()
}

#[cfg(test)]
mod tests {
    use super::loggable;

    /// At most 64 characters, cut at a character's boundary, whatever the text.
    #[test]
    fn loggable_ids_are_cut_at_64_characters() {
        assert_eq!(loggable(""), "");
        assert_eq!(loggable("L3xbKdJroAMCL8g="), "L3xbKdJroAMCL8g=");
        let ascii = "a".repeat(64);
        assert_eq!(loggable(&ascii), ascii);
        assert_eq!(loggable(&"b".repeat(65)), "b".repeat(64));
        for text in [
            "é".repeat(40),
            "✓".repeat(100),
            format!("{}🦀🦀", "x".repeat(63)),
        ] {
            let expected: String = text.chars().take(64).collect();
            assert_eq!(loggable(&text), expected, "{text}");
        }
    }
}
