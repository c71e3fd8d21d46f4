//! The reference document's envelope.
//!
//! Request: `{"message_type": "REQUEST", "protocol_version": "2.0", "message_id": "req-1",
//! "method": "aws/get-credentials", "params": {...}}`.
//! Answers: `{"message_type": "RESPONSE", "protocol_version": "2.0", "request_id": "req-1",
//! "result": {...}}` or `{"message_type": "ERROR", ..., "request_id", "error_code",
//! "error_message"}`; a tool failure also carries `details`, the tool's error body
//! (`{"error": "no_credentials", "message": ...}`).

use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::{MAX_ID_BYTES, MAX_TOOL_REPLY_BYTES, Outcome, Summary, loggable};
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

pub async fn handle(
    state: &AppState,
    origin: &Origin,
    object: Map<String, Value>,
) -> (String, Summary) {
    let mut summary = Summary::new("envelope");
    let request_id = object
        .get("message_id")
        .filter(|id| {
            id.as_str().is_some_and(|s| s.len() <= MAX_ID_BYTES) || id.is_i64() || id.is_u64()
        })
        .cloned();
    summary.request_id = request_id.as_ref().map(|id| loggable(&id_text(id)));
    summary.method = Some(
        object
            .get("method")
            .and_then(Value::as_str)
            .and_then(ToolName::parse)
            .map_or("unknown", ToolName::reference_name),
    );

    let (reply, outcome) = match decode(&object) {
        Err((error_code, message)) => (
            error(request_id.as_ref(), error_code, &message, None, None),
            Outcome::Rejected(error_code.into()),
        ),
        Ok((tool, params)) => {
            summary.tool = Some(tool);
            match tools::call(state, origin, tool, params).await {
                Err(limited) => {
                    let retry_after_ms = limited.retry_after_ms();
                    let reply = error(
                        request_id.as_ref(),
                        code::RATE_LIMITED,
                        &limited.to_string(),
                        None,
                        Some(retry_after_ms),
                    );
                    (reply, Outcome::Rejected(code::RATE_LIMITED.into()))
                }
                Ok(called) => {
                    summary.credentials_source = called.credentials_source;
                    summary.caller = Some(called.caller);
                    let reply = called.reply;
                    summary.error_code = reply.error_code().map(str::to_owned);
                    let outcome = reply.error_kind().map_or(Outcome::Ok, Outcome::ToolError);
                    let text = match reply {
                        ToolReply::Answer { body, .. } => {
                            let text = response(request_id.as_ref(), &body);
                            if text.len() > MAX_TOOL_REPLY_BYTES {
                                tracing::error!(
                                    bytes = text.len(),
                                    "a tool result exceeded its bound"
                                );
                                error(
                                    request_id.as_ref(),
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
                            error(
                                request_id.as_ref(),
                                error_code,
                                &err.message,
                                Some(err.body()),
                                None,
                            )
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
fn decode(object: &Map<String, Value>) -> Result<(ToolName, &Map<String, Value>), Refused> {
    let invalid = |message: &str| (code::INVALID_REQUEST, message.to_owned());
    match object.get("message_type") {
        Some(Value::String(t)) if t == "REQUEST" => {}
        Some(Value::String(_)) => {
            return Err(invalid(
                "message_type must be \"REQUEST\": clients send requests only",
            ));
        }
        Some(_) => return Err(invalid("message_type must be the string \"REQUEST\"")),
        None => return Err(invalid("missing field message_type (\"REQUEST\")")),
    }
    match object.get("message_id") {
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
    match object.get("protocol_version") {
        Some(Value::String(v)) if v == PROTOCOL_VERSION => {}
        Some(_) => {
            return Err((
                code::UNSUPPORTED_PROTOCOL_VERSION,
                format!("protocol_version must be \"{PROTOCOL_VERSION}\""),
            ));
        }
        None => return Err(invalid("missing field protocol_version (\"2.0\")")),
    }
    let method = match object.get("method") {
        Some(Value::String(method)) => method,
        Some(_) => return Err(invalid("method must be a string")),
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
    let params = match object.get("params") {
        None | Some(Value::Null) => &*EMPTY,
        Some(Value::Object(params)) => params,
        Some(_) => return Err((code::INVALID_PARAMS, "params must be an object".into())),
    };
    Ok((tool, params))
}

fn id_text(id: &Value) -> String {
    match id {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A RESPONSE, serialized straight from its parts (no intermediate `Value`: the result is
/// written once, not copied into a new tree first).
#[derive(serde::Serialize)]
struct Response<'a> {
    message_type: &'static str,
    protocol_version: &'static str,
    request_id: Option<&'a Value>,
    result: &'a RawValue,
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

fn encode(reply: &impl serde::Serialize) -> String {
    // Serializing a map of strings and `Value`s cannot fail.
    serde_json::to_string(reply).unwrap_or_default()
}

fn response(request_id: Option<&Value>, result: &RawValue) -> String {
    encode(&Response {
        message_type: "RESPONSE",
        protocol_version: PROTOCOL_VERSION,
        request_id,
        result,
    })
}

fn error(
    request_id: Option<&Value>,
    error_code: &str,
    message: &str,
    details: Option<Value>,
    retry_after_ms: Option<u64>,
) -> String {
    encode(&ErrorReply {
        message_type: "ERROR",
        protocol_version: PROTOCOL_VERSION,
        request_id,
        error_code,
        error_message: message,
        details,
        retry_after_ms,
    })
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

    fn decoded(v: Value) -> Result<ToolName, Refused> {
        let object = v.as_object().cloned().unwrap();
        decode(&object).map(|(tool, _)| tool)
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

    #[test]
    fn mcp_safe_names_are_accepted_too() {
        let tool = decoded(
            json!({"message_type": "REQUEST", "protocol_version": "2.0", "message_id": 5, "method": "aws_validate_credentials"}),
        );
        assert_eq!(tool.unwrap(), ToolName::ValidateCredentials);
    }
}
