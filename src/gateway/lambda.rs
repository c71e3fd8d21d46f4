//! Lambda mode: the runtime loop. The event's shape decides: API Gateway WebSocket events go to
//! [`super::handle`]; HTTP API, REST API and Function URL events (`GET /api/metrics`) go
//! through lambda_http to [`super::http`]. [`on_shutdown`] gets the environment's SIGTERM.

use std::convert::Infallible;
use std::sync::Arc;

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use lambda_http::request::LambdaRequest;
use lambda_runtime::{Error, LambdaEvent, Service, service_fn};
use serde_json::Value;
use tokio::sync::Notify;

use crate::state::AppState;

/// Serves events until the runtime stops, and warms the AWS side up ([`AppState::warm_up`]):
/// in the init phase when the environment is provisioned ahead of its events (provisioned
/// concurrency: nobody waits for init then), else in the background once the first event is
/// answered, so that the first event, whichever it is, never shares the CPU with it. An MCP
/// client's first event is `$connect`, `initialize` or `server/discover`, and its first tool
/// call comes a network round trip later.
pub async fn run(state: Arc<AppState>) -> Result<(), Error> {
    let first_answered = Arc::new(Notify::new());
    if state.config.provisioned_concurrency {
        state.clone().warm_up().await;
    } else {
        let (state, first_answered) = (state.clone(), first_answered.clone());
        tokio::spawn(async move {
            first_answered.notified().await;
            // The permit comes before the runtime posts the answer: let its connection task
            // write it first.
            tokio::task::yield_now().await;
            state.warm_up().await;
        });
    }
    let state = &*state;
    let first_answered = &*first_answered;
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        let response = handle(state, event).await;
        // A permit for the warm-up task; after the first, nobody waits for one.
        first_answered.notify_one();
        response
    }))
    .await
}

/// Runs `hook` when Lambda shuts the execution environment down.
///
/// Lambda sends SIGTERM (and waits up to 500 ms) only to functions with an extension
/// registered, so this registers an internal extension that subscribes to no events, as
/// lambda_runtime's graceful-shutdown support does; done here with lambda_runtime_api_client
/// so that a failed registration is logged instead of aborting the start. Must run before
/// [`run`], in the init phase.
pub async fn on_shutdown<F, Fut>(hook: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    if let Err(err) = register_extension().await {
        tracing::warn!(error = %err, "no shutdown extension: metrics left at shutdown may be lost");
        return;
    }
    let Ok(mut terminate) =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    else {
        return;
    };
    tokio::spawn(async move {
        terminate.recv().await;
        hook().await;
        std::process::exit(0);
    });
}

const EXTENSION_NAME: &str = "mcp-aws-tools-shutdown";

async fn register_extension() -> Result<(), Error> {
    use lambda_runtime_api_client::{PooledClient, body::Body, build_request};
    let client = PooledClient::builder().build();
    let request = build_request()
        .method("POST")
        .uri("/2020-01-01/extension/register")
        .header("Lambda-Extension-Name", EXTENSION_NAME)
        .body(Body::from(r#"{"events":[]}"#))?;
    let response = client.call(request).await?;
    if !response.status().is_success() {
        return Err(format!("extension registration answered {}", response.status()).into());
    }
    let id = response
        .headers()
        .get("lambda-extension-identifier")
        .cloned()
        .ok_or("no extension identifier")?;
    // An extension must ask for its next event; with none subscribed the call waits until the
    // environment shuts down.
    let next = build_request()
        .method("GET")
        .uri("/2020-01-01/extension/event/next")
        .header("Lambda-Extension-Identifier", id)
        .body(Body::empty())?;
    tokio::spawn(async move {
        let _ = client.call(next).await;
    });
    Ok(())
}

/// An invocation's answer, serialized once by the runtime. `H` is lambda_http's response type,
/// which it does not name publicly.
#[derive(Debug, serde::Serialize)]
#[serde(untagged)]
#[allow(clippy::large_enum_variant)] // one per invocation, moved once
pub enum Response<H> {
    WebSocket(ApiGatewayProxyResponse),
    Http(H),
}

/// One invocation, WebSocket or HTTP; in Lambda with EMF metrics, the invocation's metric
/// lines are written before its response is returned.
pub async fn handle(
    state: &AppState,
    event: LambdaEvent<Value>,
) -> Result<Response<impl serde::Serialize + std::fmt::Debug>, Error> {
    let request_id = event.context.request_id.clone();
    let response = dispatch(state, event).await;
    if let Some(emf) = state.per_invocation_metrics() {
        crate::metrics::publisher::publish_invocation(&state.metrics, emf, &request_id).await;
    }
    response
}

async fn dispatch(
    state: &AppState,
    event: LambdaEvent<Value>,
) -> Result<Response<impl serde::Serialize + std::fmt::Debug>, Error> {
    let LambdaEvent { payload, context } = event;
    if is_websocket(&payload) {
        let event = decode_websocket(payload)?;
        return Ok(Response::WebSocket(super::handle(state, event).await));
    }
    state.metrics.note_invocation();
    let request: LambdaRequest =
        serde_path_to_error::deserialize(payload).map_err(EventError::from)?;
    check_http(&request)?;
    let mut adapter =
        lambda_http::Adapter::from(service_fn(|request: lambda_http::Request| async move {
            let caller = caller_of(&request);
            let body: &[u8] = match request.body() {
                lambda_http::Body::Empty => &[],
                lambda_http::Body::Text(text) => text.as_bytes(),
                lambda_http::Body::Binary(bytes) => bytes,
                _ => &[],
            };
            let request = super::http::HttpRequest {
                method: request.method(),
                path: request.uri().path(),
                headers: request.headers(),
                body: Some(body),
                caller,
            };
            Ok::<_, Infallible>(super::http::respond(state, request).await)
        }));
    let response = adapter.call(LambdaEvent::new(request, context)).await?;
    Ok(Response::Http(response))
}

/// Who sent an HTTP event: with `AWS_IAM` authorization, the signing principal
/// (`requestContext.authorizer.iam`), and the source address.
fn caller_of(request: &lambda_http::Request) -> crate::session::Caller {
    use lambda_http::RequestExt;
    use lambda_http::request::RequestContext;
    let mut caller = crate::session::Caller::default();
    match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(context)) => {
            if let Some(iam) = context.authorizer.as_ref().and_then(|a| a.iam.as_ref()) {
                caller.arn = iam.user_arn.clone();
                caller.account_id = iam.account_id.clone();
            }
            caller.source_ip = context.http.source_ip.clone();
        }
        Some(RequestContext::ApiGatewayV1(context)) => {
            caller.arn = context.identity.user_arn.clone();
            caller.account_id = context.identity.account_id.clone();
            caller.source_ip = context.identity.source_ip.clone();
        }
        _ => {}
    }
    caller
}

/// An event this function cannot take, named by the paths at fault.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("the event is missing {}", .0.join(", "))]
    Missing(Vec<&'static str>),
    #[error("{0} has the wrong type: {1}")]
    WrongType(String, String),
}

impl From<serde_path_to_error::Error<serde_json::Error>> for EventError {
    fn from(err: serde_path_to_error::Error<serde_json::Error>) -> Self {
        EventError::WrongType(err.path().to_string(), err.inner().to_string())
    }
}

/// What a WebSocket event must hold: API Gateway always sends these, and the handler needs
/// them (the connection a message belongs to, and the route). Path, and the type expected.
const WEBSOCKET_FIELDS: [(&str, Kind); 5] = [
    ("requestContext", Kind::Object),
    ("requestContext.connectionId", Kind::String),
    ("requestContext.routeKey", Kind::String),
    ("requestContext.connectedAt", Kind::Millis),
    ("requestContext.requestTimeEpoch", Kind::Millis),
];

#[derive(Clone, Copy)]
enum Kind {
    Object,
    String,
    Millis,
}

impl Kind {
    fn matches(self, value: &Value) -> bool {
        match self {
            Kind::Object => value.is_object(),
            Kind::String => value.is_string(),
            Kind::Millis => value.is_i64(),
        }
    }

    fn expected(self) -> &'static str {
        match self {
            Kind::Object => "expected an object",
            Kind::String => "expected a string",
            Kind::Millis => "expected an integer (milliseconds since the epoch)",
        }
    }
}

fn at<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .try_fold(value, |value, key| value.get(key))
        .filter(|value| !value.is_null())
}

/// Decodes a WebSocket event, naming every missing field (`requestContext.connectedAt`) at
/// once, and the path of a field of the wrong type.
pub fn decode_websocket(payload: Value) -> Result<ApiGatewayWebsocketProxyRequest, EventError> {
    match at(&payload, "requestContext") {
        None => return Err(EventError::Missing(vec!["requestContext"])),
        Some(context) if !context.is_object() => {
            return Err(EventError::WrongType(
                "requestContext".into(),
                Kind::Object.expected().into(),
            ));
        }
        Some(_) => {}
    }
    let missing: Vec<&'static str> = WEBSOCKET_FIELDS
        .iter()
        .filter(|(path, _)| at(&payload, path).is_none())
        .map(|(path, _)| *path)
        .collect();
    if !missing.is_empty() {
        return Err(EventError::Missing(missing));
    }
    if let Some((path, kind)) = WEBSOCKET_FIELDS
        .iter()
        .find(|(path, kind)| at(&payload, path).is_some_and(|v| !kind.matches(v)))
    {
        return Err(EventError::WrongType(
            (*path).to_owned(),
            kind.expected().to_owned(),
        ));
    }
    Ok(serde_path_to_error::deserialize(payload)?)
}

/// What lambda_http turns into the request's URI (`{x-forwarded-proto}://{host}{/stage}{path}`)
/// and unwraps: parsed here first, with the same parser, so that an odd event (a host that is
/// not one, a scheme that is not http) is an error instead of a panic.
fn check_http(request: &LambdaRequest) -> Result<(), EventError> {
    let (headers, domain, stage, path, raw_query, body) = match request {
        LambdaRequest::ApiGatewayV2(event) => (
            &event.headers,
            event.request_context.domain_name.as_deref(),
            &event.request_context.stage,
            event.raw_path.as_deref(),
            event.raw_query_string.as_deref(),
            event.body.as_deref().filter(|_| event.is_base64_encoded),
        ),
        // lambda_http encodes a REST event's query parameters itself.
        LambdaRequest::ApiGatewayV1(event) => (
            &event.headers,
            event.request_context.domain_name.as_deref(),
            &event.request_context.stage,
            event.path.as_deref(),
            None,
            event.body.as_deref().filter(|_| event.is_base64_encoded),
        ),
        _ => return Ok(()),
    };
    // lambda_http decodes a body marked base64 and panics when it is not.
    if let Some(encoded) = body {
        use base64::Engine;
        if base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .is_err()
        {
            return Err(EventError::WrongType(
                "body".to_owned(),
                "isBase64Encoded is true but the body is not base64".to_owned(),
            ));
        }
    }
    let bad = || {
        EventError::WrongType(
            "headers.host".to_owned(),
            "the host, x-forwarded-proto, path and query do not make a URI".to_owned(),
        )
    };
    let path = path.unwrap_or_default();
    let path = match stage.as_deref() {
        _ if std::env::var_os("AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH").is_some() => path.to_owned(),
        None | Some("$default") => path.to_owned(),
        Some(stage) if path.starts_with(&format!("/{stage}/")) => path.to_owned(),
        Some(stage) => format!("/{stage}{path}"),
    };
    let host = headers
        .get(::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or(domain);
    let mut uri = match host {
        None => url::Url::parse(&format!("http://localhost{path}"))
            .map_err(|_| bad())?
            .path()
            .to_owned(),
        Some(host) => {
            let scheme = headers
                .get("x-forwarded-proto")
                .and_then(|h| h.to_str().ok())
                .unwrap_or("https");
            url::Url::parse(&format!("{scheme}://{host}{path}"))
                .map_err(|_| bad())?
                .to_string()
        }
    };
    if let Some(query) = raw_query.filter(|q| !q.is_empty()) {
        uri.push('?');
        uri.push_str(query);
    }
    ::http::Uri::try_from(uri).map_err(|_| bad())?;
    Ok(())
}

/// WebSocket events carry a connection id and an event type (CONNECT, MESSAGE, DISCONNECT);
/// HTTP API and Function URL events carry `requestContext.http`, REST API events an
/// `httpMethod`.
fn is_websocket(event: &Value) -> bool {
    let context = &event["requestContext"];
    context.get("connectionId").is_some()
        || context.get("eventType").is_some()
        || (context.get("http").is_none() && event.get("httpMethod").is_none())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_missing_field_is_named_with_its_path() {
        let err =
            decode_websocket(json!({"requestContext": {"routeKey": "$default"}})).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the event is missing requestContext.connectionId, requestContext.connectedAt, requestContext.requestTimeEpoch"
        );
        let err = decode_websocket(json!({"body": "x"})).unwrap_err();
        assert_eq!(err.to_string(), "the event is missing requestContext");
        let err = decode_websocket(json!({"requestContext": {"routeKey": "$default", "connectionId": "c", "connectedAt": "soon", "requestTimeEpoch": 1}})).unwrap_err();
        assert_eq!(
            err.to_string(),
            "requestContext.connectedAt has the wrong type: expected an integer (milliseconds since the epoch)"
        );
        let err = decode_websocket(json!({"requestContext": {"routeKey": "$default", "connectionId": "c", "connectedAt": 1, "requestTimeEpoch": 1, "identity": {"sourceIp": 5}}})).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("requestContext.identity.sourceIp has the wrong type"),
            "{err}"
        );
    }

    #[test]
    fn odd_http_events_are_errors_not_panics() {
        let event = |host: &str| {
            json!({"version": "2.0", "rawPath": "/api/metrics", "headers": {"host": host},
                "requestContext": {"http": {"method": "GET", "path": "/api/metrics"}, "domainName": "x"}})
        };
        for host in ["a%b", "abcdef113.10", "a b"] {
            let request: LambdaRequest = serde_json::from_value(event(host)).unwrap();
            assert!(check_http(&request).is_err(), "{host}");
        }
        let request: LambdaRequest = serde_json::from_value(event("a%b")).unwrap();
        assert!(
            check_http(&request)
                .unwrap_err()
                .to_string()
                .starts_with("headers.host")
        );
        let request: LambdaRequest = serde_json::from_value(event("api.example.com")).unwrap();
        assert!(check_http(&request).is_ok());
    }

    /// Whatever `check_http` lets through, lambda_http turns into a request without panicking
    /// (cases the fuzzer found: a host that is not one, a scheme that is not http, a domain
    /// that is not ASCII, a query that is not a URI's).
    #[test]
    fn what_check_http_passes_lambda_http_can_build() {
        let cases = [
            json!({"host": "a%b"}),
            json!({"host": "abcdef113.10"}),
            json!({"domain": "a1b2.execute-api.us\u{4d5}ast-1.amazonaws.com", "proto": "httpr"}),
            json!({"domain": "a1b2.execute-api.us-east-1.amazonaws.com", "query": "a=b c"}),
            json!({"domain": "a1b2.execute-api.us-east-1.amazonaws.com", "query": "a=\u{e9}"}),
            json!({"domain": "api.example.com", "query": "a=b&c=%20"}),
            json!({"path": "[x"}),
            json!({"host": "api.example.com", "stage": "prod", "path": "/mcp"}),
        ];
        let mut passed = 0;
        let base64_cases = [
            json!({"domain": "api.example.com", "body": "e30=", "base64": true}),
            json!({"domain": "api.example.com", "body": "not base64!", "base64": true}),
            json!({"domain": "api.example.com", "body": "not base64!", "base64": false}),
        ];
        for case in cases.into_iter().chain(base64_cases) {
            let mut event = json!({"version": "2.0", "rawPath": case.get("path").cloned().unwrap_or(json!("/mcp")),
                "rawQueryString": case.get("query").cloned().unwrap_or(json!("")),
                "headers": {},
                "requestContext": {"http": {"method": "POST", "path": "/mcp"}, "stage": case.get("stage").cloned().unwrap_or(json!("$default"))}});
            if let Some(host) = case.get("host") {
                event["headers"]["host"] = host.clone();
            }
            if let Some(proto) = case.get("proto") {
                event["headers"]["x-forwarded-proto"] = proto.clone();
            }
            if let Some(domain) = case.get("domain") {
                event["requestContext"]["domainName"] = domain.clone();
            }
            if let Some(body) = case.get("body") {
                event["body"] = body.clone();
                event["isBase64Encoded"] = case["base64"].clone();
            }
            let request: LambdaRequest = serde_json::from_value(event).unwrap();
            if check_http(&request).is_ok() {
                passed += 1;
                let built = std::panic::catch_unwind(|| lambda_http::http::Request::from(request));
                assert!(built.is_ok(), "{case}");
            }
        }
        assert!(passed >= 4, "the well-formed cases pass");
    }

    #[test]
    fn shapes() {
        assert!(is_websocket(
            &json!({"requestContext": {"connectionId": "x", "eventType": "MESSAGE", "routeKey": "$default"}})
        ));
        assert!(!is_websocket(
            &json!({"version": "2.0", "rawPath": "/api/metrics", "requestContext": {"http": {"method": "GET", "path": "/api/metrics"}}})
        ));
        assert!(!is_websocket(
            &json!({"httpMethod": "GET", "path": "/api/metrics", "requestContext": {"httpMethod": "GET"}})
        ));
    }
}
