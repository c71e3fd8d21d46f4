//! The HTTP side: MCP over Streamable HTTP on `/mcp`, and `GET /api/metrics`. `serve` answers
//! both on its own address; in Lambda the same function answers HTTP API (and Function URL)
//! events (src/gateway/lambda.rs). One handler, [`respond`], for both.
//!
//! Streamable HTTP, stateless, as the specification gives it for 2026-07-28 and for the
//! handshake era (2025-03-26 to 2025-11-25) on the same endpoint: one JSON-RPC message per POST,
//! answered with `application/json` (no tool streams, so no SSE); a notification or a response
//! gets 202 with no body; GET and DELETE get 405 (no server-initiated stream, no session); no
//! `Mcp-Session-Id` is issued or needed. Checked in this order, each with its status and a
//! JSON-RPC error: the `Origin` (403), the method (405), `Accept` (406), `Content-Type` (415),
//! the body's size (413), JSON (400, -32700), one message (400, -32600); then for 2026-07-28 the
//! `_meta` keys (400, -32602), the `MCP-Protocol-Version`, `Mcp-Method` and `Mcp-Name` headers
//! against the body (400, -32020) and the version (400, -32022); an unknown method is 404.
//! Handshake-era requests are answered 200, errors included, as that era's clients expect.

use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};
use serde_json::{Value, json};

use crate::config::MAX_MESSAGE_BYTES;
use crate::protocol::{self, mcp};
use crate::session::{Caller, Origin};
use crate::state::AppState;

pub const METRICS_PATH: &str = "/api/metrics";
pub const MCP_PATH: &str = "/mcp";

/// The headers of 2026-07-28's Streamable HTTP.
pub const PROTOCOL_VERSION_HEADER: &str = "mcp-protocol-version";
pub const METHOD_HEADER: &str = "mcp-method";
pub const NAME_HEADER: &str = "mcp-name";

/// An HTTP request as either way in hands it over.
pub struct HttpRequest<'a> {
    pub method: &'a Method,
    pub path: &'a str,
    pub headers: &'a HeaderMap,
    /// `None` when the body was over [`MAX_MESSAGE_BYTES`] (and so not read).
    pub body: Option<&'a [u8]>,
    /// Who is calling: the IAM principal that signed (API Gateway's `AWS_IAM` authorization,
    /// or `serve --iam`), and the source address.
    pub caller: Caller,
}

/// Answers an HTTP request. A 4xx answer is counted ([`crate::metrics::Recorder::note_http_client_error`]):
/// API Gateway's `4xx` metric counts it too, and the stack's alarm on that metric takes it away
/// again, so that the alarm counts what API Gateway refused itself.
pub async fn respond(state: &AppState, request: HttpRequest<'_>) -> Response<String> {
    let response = answer(state, request).await;
    if response.status().is_client_error() {
        state.metrics.note_http_client_error();
    }
    response
}

async fn answer(state: &AppState, request: HttpRequest<'_>) -> Response<String> {
    match request.path.trim_end_matches('/') {
        METRICS_PATH => metrics(state, request.method),
        path if path == MCP_PATH || path.ends_with(MCP_PATH) => mcp_endpoint(state, request).await,
        _ => json_response(
            StatusCode::NOT_FOUND,
            json!({"error": "not found: this API serves POST /mcp (MCP) and GET /api/metrics"})
                .to_string(),
        ),
    }
}

fn metrics(state: &AppState, method: &Method) -> Response<String> {
    if method != Method::GET && method != Method::HEAD {
        let mut response = json_response(
            StatusCode::METHOD_NOT_ALLOWED,
            r#"{"error":"method not allowed: use GET"}"#.to_owned(),
        );
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    let mut snapshot = state.metrics.snapshot();
    snapshot["sessions"] = json!({
        "store": state.sessions.store().name(),
        "kms_calls": state.sessions.kms_calls(),
    });
    json_response(StatusCode::OK, snapshot.to_string())
}

fn json_response(status: StatusCode, body: String) -> Response<String> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// A JSON-RPC error answer; `id` is `null` when the request's could not be read.
#[derive(serde::Serialize)]
struct RpcError<'a> {
    jsonrpc: &'static str,
    id: Option<&'a Value>,
    error: RpcErrorBody<'a>,
}

#[derive(serde::Serialize)]
struct RpcErrorBody<'a> {
    code: i32,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<Value>,
}

/// An HTTP refusal with a JSON-RPC error.
fn refused(status: StatusCode, id: Option<&Value>, code: i32, message: &str) -> Response<String> {
    refused_with(status, id, code, message, None)
}

fn refused_with(
    status: StatusCode,
    id: Option<&Value>,
    code: i32,
    message: &str,
    data: Option<Value>,
) -> Response<String> {
    let body = RpcError {
        jsonrpc: "2.0",
        id: id.filter(|id| id.is_string() || id.is_number()),
        error: RpcErrorBody {
            code,
            message,
            data,
        },
    };
    json_response(status, serde_json::to_string(&body).unwrap_or_default())
}

fn accepted() -> Response<String> {
    let mut response = Response::new(String::new());
    *response.status_mut() = StatusCode::ACCEPTED;
    response
}

/// A header's value, if present once and readable; `Err` when it appears more than once.
fn single<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, ()> {
    let mut values = headers.get_all(name).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(());
    }
    Ok(first.and_then(|v| v.to_str().ok()))
}

/// `Accept` lists JSON (or a wildcard that covers it).
fn accepts_json(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| {
            t.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .any(|t| t == "application/json" || t == "application/*" || t == "*/*")
}

fn is_json_content(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
}

/// DNS rebinding: a browser page may only reach the endpoint from a loopback origin (a local
/// tool) or one the operator allows (`ALLOWED_ORIGINS`). Without an `Origin` (not a browser),
/// nothing to check.
fn origin_allowed(headers: &HeaderMap, allowed: &[String]) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    if allowed.iter().any(|a| a.eq_ignore_ascii_case(origin)) {
        return true;
    }
    let Ok(url) = url::Url::parse(origin) else {
        return false;
    };
    match url.host() {
        Some(url::Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// A header value as 2026-07-28 encodes values that are not plain ASCII:
/// `=?base64?...?=`.
fn decoded_header(value: &str) -> Option<String> {
    use base64::Engine;
    match value
        .strip_prefix("=?base64?")
        .and_then(|v| v.strip_suffix("?="))
    {
        Some(payload) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(payload)
                .ok()?;
            String::from_utf8(bytes).ok()
        }
        None => Some(value.to_owned()),
    }
}

/// The second rung of 2026-07-28's validation: the routing headers say what the body says.
fn headers_match(headers: &HeaderMap, body: &Value) -> Result<(), &'static str> {
    let read = |name| single(headers, name).map_err(|()| "a routing header appears more than once");
    let version = body["params"]["_meta"][mcp::PROTOCOL_VERSION_KEY].as_str();
    match read(PROTOCOL_VERSION_HEADER)? {
        Some(header) if Some(header) == version => {}
        _ => {
            return Err(
                "MCP-Protocol-Version header does not match the request's protocol version",
            );
        }
    }
    let method = body["method"].as_str();
    if read(METHOD_HEADER)? != method {
        return Err("Mcp-Method header does not match the request's method");
    }
    if method == Some("tools/call")
        && let Some(name) = body["params"]["name"].as_str()
        && read(NAME_HEADER)?.and_then(decoded_header).as_deref() != Some(name)
    {
        return Err("Mcp-Name header does not match the request's tool name");
    }
    Ok(())
}

/// A reply's JSON-RPC error code (`error.code`, an integer), read without a tree of the reply:
/// a tool's answer, which is most of a reply, is skipped unread (reading a `tools/call` reply into
/// a tree took about 60,000 of the 342,000 instructions an HTTP API event carrying it cost).
fn error_code(reply: &str) -> Option<i64> {
    #[derive(serde::Deserialize)]
    struct Reply {
        error: Option<Error>,
    }
    #[derive(serde::Deserialize)]
    struct Error {
        code: Option<i64>,
    }
    // An object only: serde reads a struct from an array too.
    if !reply.trim_start().starts_with('{') {
        return None;
    }
    serde_json::from_str::<Reply>(reply).ok()?.error?.code
}

/// The status a 2026-07-28 JSON-RPC error is answered with (the specification's table).
fn modern_status(code: i64) -> StatusCode {
    match code {
        -32601 => StatusCode::NOT_FOUND,
        -32700 | -32600 | -32602 | -32020 | -32021 | -32022 => StatusCode::BAD_REQUEST,
        _ => StatusCode::OK,
    }
}

async fn mcp_endpoint(state: &AppState, request: HttpRequest<'_>) -> Response<String> {
    let headers = request.headers;
    if !origin_allowed(headers, &state.config.allowed_origins) {
        return refused(
            StatusCode::FORBIDDEN,
            None,
            -32600,
            "this Origin may not use the endpoint (DNS rebinding protection); see ALLOWED_ORIGINS",
        );
    }
    if request.method != Method::POST {
        let mut response = refused(
            StatusCode::METHOD_NOT_ALLOWED,
            None,
            -32600,
            "POST one JSON-RPC message: this server opens no stream (GET) and keeps no session (DELETE)",
        );
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return response;
    }
    if !accepts_json(headers) {
        return refused(
            StatusCode::NOT_ACCEPTABLE,
            None,
            -32600,
            "Accept must list application/json (and text/event-stream)",
        );
    }
    if !is_json_content(headers) {
        return refused(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            None,
            -32600,
            "Content-Type must be application/json",
        );
    }
    let Some(raw) = request.body.filter(|b| b.len() <= MAX_MESSAGE_BYTES) else {
        return refused(
            StatusCode::PAYLOAD_TOO_LARGE,
            None,
            -32600,
            "the body is over 128 KB, the largest message this server takes",
        );
    };
    let Ok(text) = std::str::from_utf8(raw) else {
        return refused(
            StatusCode::BAD_REQUEST,
            None,
            -32700,
            "the body is not valid UTF-8",
        );
    };
    let Ok(body) = serde_json::from_str::<Value>(text) else {
        return refused(
            StatusCode::BAD_REQUEST,
            None,
            -32700,
            "the body is not JSON",
        );
    };
    let Value::Object(object) = &body else {
        return refused(
            StatusCode::BAD_REQUEST,
            None,
            -32600,
            "POST one JSON-RPC message (an object): batches are not taken over HTTP",
        );
    };
    let Ok(declared) = single(headers, PROTOCOL_VERSION_HEADER) else {
        return refused(
            StatusCode::BAD_REQUEST,
            object.get("id"),
            mcp::HEADER_MISMATCH.0,
            "MCP-Protocol-Version appears more than once",
        );
    };
    // A version this server does not speak is refused whatever the body says (400, as every
    // revision's transport page asks); 2026-07-28 in the header makes the body's `_meta` required.
    if let Some(version) = declared
        && !mcp::ALL_VERSIONS.iter().any(|v| v.as_str() == version)
    {
        let (code, message, data) = mcp::unsupported_version(version);
        return refused_with(
            StatusCode::BAD_REQUEST,
            object.get("id"),
            code.0,
            &message,
            data,
        );
    }
    let declared_modern = declared == Some(mcp::MODERN_VERSION.as_str());
    let is_request = object.contains_key("method") && object.contains_key("id");
    let origin = Origin {
        connection_id: None,
        caller: request.caller.clone(),
        declared_modern,
    };
    if !is_request {
        // A notification, or a response (to a request this server never sends): accepted,
        // logged, and not answered.
        if !object.contains_key("method") && declared_modern {
            return refused(
                StatusCode::BAD_REQUEST,
                None,
                -32600,
                "with 2026-07-28 a client sends requests and notifications only",
            );
        }
        let _ = protocol::handle(state, &origin, raw).await;
        return accepted();
    }
    let era = match mcp::era(body.get("params"), declared_modern) {
        Ok(era) => era,
        Err((code, message, _)) => {
            return refused(StatusCode::BAD_REQUEST, object.get("id"), code.0, &message);
        }
    };
    if era == mcp::Era::Modern
        && let Err(message) = headers_match(headers, &body)
    {
        return refused(
            StatusCode::BAD_REQUEST,
            object.get("id"),
            mcp::HEADER_MISMATCH.0,
            message,
        );
    }
    let origin = Origin {
        declared_modern: era == mcp::Era::Modern,
        ..origin
    };
    let Some(reply) = protocol::handle(state, &origin, raw).await else {
        return accepted();
    };
    let status = match era {
        mcp::Era::Modern => error_code(&reply).map_or(StatusCode::OK, modern_status),
        mcp::Era::Handshake => StatusCode::OK,
    };
    json_response(status, reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The error code is what a tree of the reply holds at `error.code`, whatever the reply.
    #[test]
    fn a_replys_error_code_is_the_trees() {
        let replies = [
            r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"bad"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"error":{"message":"bad","code":-32601,"data":{"code":5}}}"#,
            r#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"{\"error\":{\"code\":1}}"}],"isError":true}}"#,
            r#"{"jsonrpc":"2.0","id":1,"result":{"error":{"code":7}}}"#,
            r#"{"error":{"code":1.5}}"#,
            r#"{"error":{"code":18446744073709551615}}"#,
            r#"{"error":{"code":-9223372036854775808}}"#,
            r#"{"error":{"code":null}}"#,
            r#"{"error":{"code":"-32602"}}"#,
            r#"{"error":null}"#,
            r#"{"error":"x"}"#,
            r#"{"error":[{"code":1}]}"#,
            r#"{"error":{}}"#,
            r#"  {"error":{"code":0}}"#,
            r#"[{"error":{"code":-32600}}]"#,
            r#"[{"code":-32600}]"#,
            r#"{}"#,
            r#"[]"#,
            r#"5"#,
            r#"not json"#,
        ];
        for reply in replies {
            let tree = serde_json::from_str::<Value>(reply)
                .ok()
                .and_then(|r| r["error"]["code"].as_i64());
            assert_eq!(error_code(reply), tree, "{reply}");
        }
        assert_eq!(error_code(replies[0]), Some(-32602));
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                http::header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn origins() {
        let allowed = vec!["https://console.example.com".to_owned()];
        for (origin, ok) in [
            ("http://localhost:6274", true),
            ("http://127.0.0.1:3000", true),
            ("http://[::1]:8000", true),
            ("https://console.example.com", true),
            ("https://evil.example", false),
            ("http://localhost.evil.example", false),
            ("null", false),
        ] {
            assert_eq!(
                origin_allowed(&headers(&[("origin", origin)]), &allowed),
                ok,
                "{origin}"
            );
        }
        assert!(origin_allowed(&headers(&[]), &[]));
    }

    #[test]
    fn accept_and_content_type() {
        assert!(accepts_json(&headers(&[(
            "accept",
            "application/json, text/event-stream"
        )])));
        assert!(accepts_json(&headers(&[("accept", "*/*")])));
        assert!(!accepts_json(&headers(&[("accept", "text/event-stream")])));
        assert!(!accepts_json(&headers(&[])));
        assert!(is_json_content(&headers(&[(
            "content-type",
            "application/json; charset=utf-8"
        )])));
        assert!(!is_json_content(&headers(&[(
            "content-type",
            "text/plain"
        )])));
    }

    #[test]
    fn routing_headers_must_match_the_body() {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "aws_list_profiles",
            "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}}});
        let good = [
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/call"),
            ("mcp-name", "aws_list_profiles"),
        ];
        assert!(headers_match(&headers(&good), &body).is_ok());
        let encoded = [
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/call"),
            ("mcp-name", "=?base64?YXdzX2xpc3RfcHJvZmlsZXM=?="),
        ];
        assert!(headers_match(&headers(&encoded), &body).is_ok());
        for (i, wrong) in [
            ("mcp-protocol-version", "2025-11-25"),
            ("mcp-method", "tools/list"),
            ("mcp-name", "aws_get_credentials"),
        ]
        .into_iter()
        .enumerate()
        {
            let mut pairs = good.to_vec();
            pairs[i] = wrong;
            assert!(headers_match(&headers(&pairs), &body).is_err(), "{wrong:?}");
            pairs.remove(i);
            assert!(
                headers_match(&headers(&pairs), &body).is_err(),
                "without {wrong:?}"
            );
        }
        let mut doubled = good.to_vec();
        doubled.push(("mcp-method", "tools/call"));
        assert!(headers_match(&headers(&doubled), &body).is_err());
    }

    #[test]
    fn statuses_follow_the_specification() {
        assert_eq!(modern_status(-32601), StatusCode::NOT_FOUND);
        assert_eq!(modern_status(-32022), StatusCode::BAD_REQUEST);
        assert_eq!(modern_status(-32020), StatusCode::BAD_REQUEST);
        assert_eq!(modern_status(-32010), StatusCode::OK);
    }
}
