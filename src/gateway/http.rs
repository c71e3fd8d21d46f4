//! The HTTP side: `GET /api/metrics`, served by `serve` on the WebSocket's address and, in
//! Lambda, for HTTP API, REST API or Function URL events (through lambda_http).

use http::{Method, Response, StatusCode, header};

use crate::state::AppState;

pub const METRICS_PATH: &str = "/api/metrics";

/// Answers an HTTP request: the metrics as JSON, or a JSON error.
pub fn respond(state: &AppState, method: &Method, path: &str) -> Response<String> {
    let (status, body) = match (path.trim_end_matches('/'), method) {
        (METRICS_PATH, &Method::GET) | (METRICS_PATH, &Method::HEAD) => {
            let mut snapshot = state.metrics.snapshot();
            snapshot["sessions"] = serde_json::json!({
                "store": state.sessions.store().name(),
                "kms_calls": state.sessions.kms_calls(),
            });
            (StatusCode::OK, snapshot.to_string())
        }
        (METRICS_PATH, _) => (
            StatusCode::METHOD_NOT_ALLOWED,
            r#"{"error":"method not allowed: use GET"}"#.to_owned(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            r#"{"error":"not found: this API serves GET /api/metrics"}"#.to_owned(),
        ),
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    if status == StatusCode::METHOD_NOT_ALLOWED {
        response
            .headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
    }
    response
}
