//! The reference document's envelope.
//!
//! Request: `{"message_type": "REQUEST", "protocol_version": "2.0", "message_id": "req-1",
//! "method": "aws/get-credentials", "params": {...}}`.
//! Answers: `{"message_type": "RESPONSE", "protocol_version": "2.0", "request_id": "req-1",
//! "result": {...}}` or `{"message_type": "ERROR", ..., "request_id", "error_code",
//! "error_message"}`; a tool failure also carries `details`, the tool's error body
//! (`{"error": "no_credentials", "message": ...}`).

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::{MAX_ID_BYTES, MAX_TOOL_REPLY_BYTES, Outcome, Summary, loggable};
use crate::json::{self, Json};
use crate::names::{ErrorKind, ToolName};
use crate::session::Origin;
use crate::state::AppState;
use crate::tools::{self, ToolReply};

pub const PROTOCOL_VERSION: &str = "2.0";

/// Error codes of the ERROR envelope.
pub mod code {
    pub const PARSE_ERROR: &str = "PARSE_ERROR";
    pub const INVALID_REQUEST: &str = "INVALID_REQUEST";
    pub const UNSUPPORTED_PROTOCOL_VERSION: &str = "UNSUPPORTED_PROTOCOL_VERSION";
    pub const METHOD_NOT_FOUND: &str = "METHOD_NOT_FOUND";
    pub const INVALID_PARAMS: &str = "INVALID_PARAMS";
    pub const RATE_LIMITED: &str = "RATE_LIMITED";
    pub const VALIDATION_ERROR: &str = "VALIDATION_ERROR";
    pub const EXECUTION_FAILED: &str = "EXECUTION_FAILED";
}

/// The fields of a message an envelope is read from; any other field is ignored. A field that
/// is present holds its value, `null` included; one that is absent is `None`. The three that
/// must be strings keep only their text (borrowed from the message unless it has escapes), or
/// that they are not strings. `params` may carry a secret key (set-environment), so there is no
/// `Debug` outside the tests: nothing can format it into a log record or an error.
#[derive(Default, serde::Deserialize)]
#[cfg_attr(test, derive(Debug, PartialEq))]
pub struct Fields<'a> {
    #[serde(default, borrow, deserialize_with = "text")]
    message_type: Option<Text<'a>>,
    #[serde(default, borrow, deserialize_with = "text")]
    protocol_version: Option<Text<'a>>,
    #[serde(default, deserialize_with = "super::present")]
    message_id: Option<Value>,
    #[serde(default, borrow, deserialize_with = "text")]
    method: Option<Text<'a>>,
    #[serde(default, deserialize_with = "super::present")]
    params: Option<Value>,
    /// JSON-RPC's marker: a message that has it is not an envelope.
    #[serde(default, deserialize_with = "super::present_any")]
    jsonrpc: Option<IgnoredAny>,
}

impl<'a> Fields<'a> {
    /// Read straight from a message's text, without building its tree: the common case. `None`
    /// for anything else (not an object, a field twice, JSON-RPC, no envelope field), which
    /// [`super::dispatch`] then reads as a tree and routes.
    pub fn read(text: &'a str) -> Option<Self> {
        super::read_fields(text).filter(|fields: &Self| {
            fields.jsonrpc.is_none()
                && (fields.message_type.is_some() || fields.message_id.is_some())
        })
    }

    /// The fields of a message already read as a tree.
    pub fn take(mut object: Map<String, Value>) -> Self {
        Self {
            message_type: object.remove("message_type").map(Text::from),
            protocol_version: object.remove("protocol_version").map(Text::from),
            message_id: object.remove("message_id"),
            method: object.remove("method").map(Text::from),
            params: object.remove("params"),
            jsonrpc: None,
        }
    }
}

/// A field that must be a string: its text, or that it is some other value (which no answer
/// needs).
#[cfg_attr(test, derive(Debug, PartialEq))]
enum Text<'a> {
    Str(Cow<'a, str>),
    NotStr,
}

impl Text<'_> {
    fn as_str(&self) -> Option<&str> {
        match self {
            Text::Str(text) => Some(text),
            Text::NotStr => None,
        }
    }
}

impl From<Value> for Text<'_> {
    fn from(value: Value) -> Self {
        match value {
            Value::String(text) => Text::Str(Cow::Owned(text)),
            _ => Text::NotStr,
        }
    }
}

/// A [`Text`] field read from the message (`deserialize_with`): present, whatever its value.
fn text<'de, D: Deserializer<'de>>(value: D) -> Result<Option<Text<'de>>, D::Error> {
    struct Read;
    impl<'de> Visitor<'de> for Read {
        type Value = Text<'de>;

        fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
            formatter.write_str("a JSON value")
        }
        fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Text<'de>, E> {
            Ok(Text::Str(Cow::Borrowed(text)))
        }
        fn visit_str<E>(self, text: &str) -> Result<Text<'de>, E> {
            Ok(Text::Str(Cow::Owned(text.to_owned())))
        }
        fn visit_string<E>(self, text: String) -> Result<Text<'de>, E> {
            Ok(Text::Str(Cow::Owned(text)))
        }
        fn visit_bool<E>(self, _: bool) -> Result<Text<'de>, E> {
            Ok(Text::NotStr)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Text<'de>, E> {
            Ok(Text::NotStr)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Text<'de>, E> {
            Ok(Text::NotStr)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Text<'de>, E> {
            Ok(Text::NotStr)
        }
        fn visit_unit<E>(self) -> Result<Text<'de>, E> {
            Ok(Text::NotStr)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<Text<'de>, A::Error> {
            while items.next_element::<IgnoredAny>()?.is_some() {}
            Ok(Text::NotStr)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut members: A) -> Result<Text<'de>, A::Error> {
            while members.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok(Text::NotStr)
        }
    }
    value.deserialize_any(Read).map(Some)
}

pub async fn handle(state: &AppState, origin: &Origin, fields: Fields<'_>) -> (String, Summary) {
    let mut summary = Summary::new("envelope");
    let request_id = fields.message_id.as_ref().filter(|id| {
        id.as_str().is_some_and(|s| s.len() <= MAX_ID_BYTES) || id.is_i64() || id.is_u64()
    });
    summary.request_id = request_id.map(loggable_id);
    summary.method = Some(
        fields
            .method
            .as_ref()
            .and_then(Text::as_str)
            .and_then(ToolName::parse)
            .map_or("unknown", ToolName::reference_name),
    );

    let (reply, outcome) = match decode(&fields) {
        Err((error_code, message)) => (
            error(request_id, error_code, &message, None, None),
            Outcome::Rejected(error_code.into()),
        ),
        Ok((tool, params)) => {
            summary.tool = Some(tool);
            match tools::call(state, origin, tool, params).await {
                Err(limited) => {
                    let retry_after_ms = limited.retry_after_ms();
                    let reply = error(
                        request_id,
                        code::RATE_LIMITED,
                        &limited.to_string(),
                        None,
                        Some(retry_after_ms),
                    );
                    (reply, Outcome::Rejected(code::RATE_LIMITED.into()))
                }
                Ok(called) => {
                    summary.credentials_source = called.credentials_source;
                    summary.caller = called.caller;
                    let reply = called.reply;
                    summary.error_code = reply.error_code().map(str::to_owned);
                    let outcome = reply.error_kind().map_or(Outcome::Ok, Outcome::ToolError);
                    let text = match reply {
                        ToolReply::Answer { body, .. } => {
                            let text = response(request_id, &body);
                            if text.len() > MAX_TOOL_REPLY_BYTES {
                                tracing::error!(
                                    bytes = text.len(),
                                    "a tool result exceeded its bound"
                                );
                                error(
                                    request_id,
                                    code::EXECUTION_FAILED,
                                    "the tool's result is too large to send",
                                    None,
                                    None,
                                )
                            } else {
                                text
                            }
                        }
                        ToolReply::Failure(err) => {
                            let error_code = if err.kind == ErrorKind::ValidationError {
                                code::VALIDATION_ERROR
                            } else {
                                code::EXECUTION_FAILED
                            };
                            error(request_id, error_code, &err.message, Some(err.body()), None)
                        }
                    };
                    (text, outcome)
                }
            }
        }
    };
    summary.outcome = outcome;
    (reply, summary)
}

/// An envelope refused: its error code and a message naming what is wrong.
type Refused = (&'static str, String);

/// Checks the envelope's fields in order and names the first that is wrong.
fn decode<'a>(fields: &'a Fields<'_>) -> Result<(ToolName, &'a Map<String, Value>), Refused> {
    let invalid = |message: &str| (code::INVALID_REQUEST, message.to_owned());
    match fields.message_type.as_ref().map(Text::as_str) {
        Some(Some("REQUEST")) => {}
        Some(Some(_)) => {
            return Err(invalid(
                "message_type must be \"REQUEST\": clients send requests only",
            ));
        }
        Some(_) => return Err(invalid("message_type must be the string \"REQUEST\"")),
        None => return Err(invalid("missing field message_type (\"REQUEST\")")),
    }
    match &fields.message_id {
        Some(Value::String(id)) if id.len() > MAX_ID_BYTES => {
            return Err(invalid(&format!(
                "message_id is longer than {MAX_ID_BYTES} bytes"
            )));
        }
        Some(Value::String(id)) if !id.is_empty() => {}
        Some(id) if id.is_i64() || id.is_u64() => {}
        Some(_) => {
            return Err(invalid(
                "message_id must be a non-empty string or an integer",
            ));
        }
        None => return Err(invalid("missing field message_id")),
    }
    match fields.protocol_version.as_ref().map(Text::as_str) {
        Some(Some(PROTOCOL_VERSION)) => {}
        Some(_) => {
            return Err((
                code::UNSUPPORTED_PROTOCOL_VERSION,
                format!("protocol_version must be \"{PROTOCOL_VERSION}\""),
            ));
        }
        None => return Err(invalid("missing field protocol_version (\"2.0\")")),
    }
    let method = match fields.method.as_ref().map(Text::as_str) {
        Some(Some(method)) => method,
        Some(None) => return Err(invalid("method must be a string")),
        None => return Err(invalid("missing field method")),
    };
    let Some(tool) = ToolName::parse(method) else {
        let known: Vec<&str> = ToolName::ALL.iter().map(|t| t.reference_name()).collect();
        return Err((
            code::METHOD_NOT_FOUND,
            format!("unknown method; available: {}", known.join(", ")),
        ));
    };
    static EMPTY: std::sync::LazyLock<Map<String, Value>> = std::sync::LazyLock::new(Map::new);
    let params = match &fields.params {
        None | Some(Value::Null) => &*EMPTY,
        Some(Value::Object(params)) => params,
        Some(_) => return Err((code::INVALID_PARAMS, "params must be an object".into())),
    };
    Ok((tool, params))
}

/// The request id as the log record shows it: a string cut to what [`loggable`] keeps, a number
/// as it is written.
fn loggable_id(id: &Value) -> String {
    match id {
        Value::String(id) => loggable(id).to_owned(),
        other => other.to_string(),
    }
}

/// An ERROR; `details` and `retry_after_ms` only when there are some.
#[derive(serde::Serialize)]
struct ErrorReply<'a> {
    message_type: &'static str,
    protocol_version: &'static str,
    request_id: Option<&'a Value>,
    error_code: &'a str,
    error_message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_after_ms: Option<u64>,
}

/// The frame around a result: its fields and their names.
const RESPONSE_FRAME_BYTES: usize = 128;

/// A RESPONSE: `{"message_type":"RESPONSE","protocol_version":"2.0","request_id":…,"result":…}`,
/// the result placed as the tool wrote it (not copied into a new tree first).
fn response(request_id: Option<&Value>, result: &Json) -> String {
    let mut text =
        json::Writer::with_capacity(result.get().len() + RESPONSE_FRAME_BYTES + MAX_ID_BYTES);
    text.raw(r#"{"message_type":"RESPONSE","protocol_version":""#);
    text.raw(PROTOCOL_VERSION);
    text.raw(r#"","request_id":"#);
    text.value(&request_id);
    text.raw(r#","result":"#);
    text.raw(result.get());
    text.raw("}");
    text.finish().unwrap_or_else(|_| unencodable())
}

fn error(
    request_id: Option<&Value>,
    error_code: &str,
    message: &str,
    details: Option<Value>,
    retry_after_ms: Option<u64>,
) -> String {
    json::to_string(
        &ErrorReply {
            message_type: "ERROR",
            protocol_version: PROTOCOL_VERSION,
            request_id,
            error_code,
            error_message: message,
            details,
            retry_after_ms,
        },
        RESPONSE_FRAME_BYTES + MAX_ID_BYTES + message.len(),
    )
    .unwrap_or_else(|_| unencodable())
}

/// The ERROR sent should an answer ever fail to encode (strings, integers and JSON values
/// always do): no panic on the message path, and no answer cut short.
fn unencodable() -> String {
    format!(
        r#"{{"message_type":"ERROR","protocol_version":"{PROTOCOL_VERSION}","request_id":null,"error_code":"{}","error_message":"the answer could not be encoded as JSON"}}"#,
        code::EXECUTION_FAILED
    )
}

/// An ERROR for a message refused before it could be read as an envelope.
/// Its request id could not be read, so the answer's `request_id` is null.
pub fn refusal(error_code: &'static str, message: String) -> (String, Summary) {
    let mut summary = Summary::new("envelope");
    summary.outcome = Outcome::Rejected(error_code.into());
    (error(None, error_code, &message, None, None), summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A RESPONSE as the reference document's fields describe it, written by serde.
    #[derive(serde::Serialize)]
    struct Response<'a> {
        message_type: &'static str,
        protocol_version: &'static str,
        request_id: Option<&'a Value>,
        result: &'a serde_json::value::RawValue,
    }

    /// The RESPONSE written piece by piece is, byte for byte, what serde writes for its fields,
    /// whatever the request id (escapes, a number, none).
    #[test]
    fn responses_are_what_serde_writes() {
        let result = json!({"credentials": {"access_key_id": "AKIA12345..."}, "x": "\"é\n"});
        let raw = serde_json::value::RawValue::from_string(result.to_string()).unwrap();
        let body = crate::json::to_json(&result, 0).unwrap();
        let ids = [json!("req-1"), json!("quote \" \\ é \u{1}"), json!(42)];
        let ids = ids.iter().map(Some).chain([None]);
        for request_id in ids {
            let typed = serde_json::to_string(&Response {
                message_type: "RESPONSE",
                protocol_version: PROTOCOL_VERSION,
                request_id,
                result: &raw,
            })
            .unwrap();
            assert_eq!(response(request_id, &body), typed);
        }
    }

    fn decoded(v: Value) -> Result<ToolName, Refused> {
        let fields = Fields::take(v.as_object().cloned().unwrap());
        decode(&fields).map(|(tool, _)| tool)
    }

    #[test]
    fn reference_example_decodes() {
        let tool = decoded(json!({
            "message_type": "REQUEST", "protocol_version": "2.0", "message_id": "req-1",
            "method": "aws/get-credentials", "params": {"profile": "default"}
        }));
        assert_eq!(tool.unwrap(), ToolName::GetCredentials);
    }

    #[test]
    fn each_wrong_field_is_named() {
        let base = json!({"message_type": "REQUEST", "protocol_version": "2.0", "message_id": "1", "method": "aws/list-profiles"});
        let cases = [
            (
                "message_type",
                json!("RESPONSE"),
                code::INVALID_REQUEST,
                "message_type",
            ),
            (
                "protocol_version",
                json!("1.0"),
                code::UNSUPPORTED_PROTOCOL_VERSION,
                "protocol_version",
            ),
            ("message_id", json!(""), code::INVALID_REQUEST, "message_id"),
            (
                "method",
                json!("aws/nope"),
                code::METHOD_NOT_FOUND,
                "available: aws/get-credentials",
            ),
            ("method", json!(7), code::INVALID_REQUEST, "method"),
            ("params", json!([1]), code::INVALID_PARAMS, "params"),
        ];
        for (field, value, expected_code, mentioned) in cases {
            let mut message = base.clone();
            message[field] = value;
            let (code, text) = decoded(message).unwrap_err();
            assert_eq!(code, expected_code, "{field}");
            assert!(text.contains(mentioned), "{field}: {text}");
        }
        let mut missing = base.clone();
        missing.as_object_mut().unwrap().remove("protocol_version");
        assert!(decoded(missing).unwrap_err().1.contains("protocol_version"));
    }

    /// The fields read straight from text are those of the tree the general path reads, `null`
    /// kept apart from absent; whatever the general path must decide (a field twice, JSON-RPC's
    /// marker however it is spelled, no envelope field) is left to it.
    #[test]
    fn fields_read_from_text_are_those_of_the_tree() {
        let same = [
            r#"{"message_type":"REQUEST","protocol_version":"2.0","message_id":"r","method":"aws/list-profiles","params":{"a":[1]}}"#,
            r#"{"message_type":"REQUEST","message_id":null,"params":null,"extra":{"x":1}}"#,
            r#"{"message_id":7,"method":7}"#,
            r#"{"message_type":"REQ\u0055EST","protocol_version":2.0,"message_id":"r"}"#,
            r#"{"message_type":["REQUEST",{"a":[]}],"protocol_version":{"v":"2.0"},"message_id":"r","method":true}"#,
        ];
        for text in same {
            let tree: Value = serde_json::from_str(text).unwrap();
            let taken = Fields::take(tree.as_object().cloned().unwrap());
            assert_eq!(Fields::read(text), Some(taken), "{text}");
        }
        let refused = Fields::read(r#"{"message_type":"REQUEST","message_id":null}"#)
            .map(|fields| decode(&fields).unwrap_err());
        assert!(refused.unwrap().1.contains("message_id must be"));

        let general = [
            r#"{"message_type":"REQUEST","message_type":"RESPONSE","message_id":"r"}"#,
            r#"{"message_type":"REQUEST","message_id":"r","jsonrpc":"2.0"}"#,
            r#"{"message_type":"REQUEST","message_id":"r","\u006asonrpc":"2.0"}"#,
            r#"{"method":"aws/list-profiles"}"#,
            r#"[{"message_type":"REQUEST"}]"#,
            r#" ["REQUEST", "2.0", "r", "aws/list-profiles"]"#,
            r#"{"message_type":"REQUEST"} x"#,
        ];
        for text in general {
            assert_eq!(Fields::read(text), None, "{text}");
        }
    }

    /// The log record's request id: a string cut as every logged id is, a number written out.
    #[test]
    fn request_ids_are_logged_cut_and_numbers_as_written() {
        assert_eq!(loggable_id(&json!("req-1")), "req-1");
        assert_eq!(loggable_id(&json!("é".repeat(100))), "é".repeat(64));
        assert_eq!(loggable_id(&json!(u64::MAX)), u64::MAX.to_string());
        assert_eq!(loggable_id(&json!(-7)), "-7");
    }

    #[test]
    fn mcp_safe_names_are_accepted_too() {
        let tool = decoded(
            json!({"message_type": "REQUEST", "protocol_version": "2.0", "message_id": 5, "method": "aws_validate_credentials"}),
        );
        assert_eq!(tool.unwrap(), ToolName::ValidateCredentials);
    }
}
