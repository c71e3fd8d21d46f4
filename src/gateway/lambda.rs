//! Lambda mode: the runtime loop. The event's shape decides: API Gateway WebSocket events go to
//! [`super::handle`]; HTTP API, REST API and Function URL events (`POST /mcp`,
//! `GET /api/metrics`) to [`super::http`], each answered in its integration's shape.
//! [`on_shutdown`] gets the environment's SIGTERM.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use lambda_runtime::layers::TracingLayer;
use lambda_runtime::tower::{self, Service};
use lambda_runtime::{Error, LambdaEvent, LambdaInvocation, Runtime, service_fn};
use serde_json::Value;
use serde_json::value::RawValue;
use tokio::sync::Notify;

use super::event::{HttpApiEvent, Probe, RestApiEvent, Seen, WebSocketEvent};
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
    let handler = service_fn(|event: LambdaEvent<Box<RawValue>>| async move {
        let response = handle(state, event).await;
        // A permit for the warm-up task; after the first, nobody waits for one.
        first_answered.notify_one();
        response
    });
    Runtime::new(handler)
        .layer(tower::layer::layer_fn(|posts| AfterResponse {
            posts,
            state,
        }))
        .layer(TracingLayer::new())
        .run()
        .await
}

/// Around the runtime's service that runs the handler and posts its response: what an
/// invocation still has to do once its response is out, done before the runtime asks for the
/// next event. Lambda freezes the environment only then, at `next` (the runtime's `next` is
/// how it says it is done), so the invocation's EMF lines still leave within the invocation
/// but no longer delay its response.
struct AfterResponse<'a, S> {
    posts: S,
    state: &'a AppState,
}

impl<'a, S> Service<LambdaInvocation> for AfterResponse<'a, S>
where
    S: Service<LambdaInvocation, Response = (), Error = Error>,
    S::Future: 'a,
{
    type Response = ();
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<(), Error>> + 'a>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.posts.poll_ready(cx)
    }

    fn call(&mut self, invocation: LambdaInvocation) -> Self::Future {
        let request_id = invocation.context.request_id.clone();
        let posted = self.posts.call(invocation);
        let state = self.state;
        Box::pin(async move {
            let posted = posted.await;
            after_invocation(state, &request_id).await;
            posted
        })
    }
}

/// In Lambda with EMF metrics: the invocation's metric lines, carrying its request id.
pub async fn after_invocation(state: &AppState, request_id: &str) {
    if let Some(emf) = state.per_invocation_metrics() {
        crate::metrics::publisher::publish_invocation(&state.metrics, emf, request_id).await;
    }
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
    use lambda_runtime_api_client::{PooledClient, body::Body as RequestBody, build_request};
    let client = PooledClient::builder().build();
    let request = build_request()
        .method("POST")
        .uri("/2020-01-01/extension/register")
        .header("Lambda-Extension-Name", EXTENSION_NAME)
        .body(RequestBody::from(r#"{"events":[]}"#))?;
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
        .body(RequestBody::empty())?;
    tokio::spawn(async move {
        let _ = client.call(next).await;
    });
    Ok(())
}

/// An invocation's answer, in the shape its event's integration expects; serialized once by
/// the runtime.
#[derive(Debug, serde::Serialize)]
#[serde(untagged)]
#[allow(clippy::large_enum_variant)] // one per invocation, moved once
pub enum Response {
    /// WebSocket events, and REST API (payload 1.0) events.
    Proxy(ApiGatewayProxyResponse),
    /// HTTP API (payload 2.0) and Function URL events.
    HttpV2(ApiGatewayV2httpResponse),
}

/// One invocation, WebSocket or HTTP: its response (metrics are written after it is posted,
/// by [`after_invocation`]). The runtime hands the event over as its text, checked to be JSON.
pub async fn handle(
    state: &AppState,
    event: LambdaEvent<Box<RawValue>>,
) -> Result<Response, Error> {
    Ok(dispatch(state, event.payload.get()).await?)
}

async fn dispatch(state: &AppState, text: &str) -> Result<Response, EventError> {
    let event = match decode(text)? {
        Decoded::WebSocket(event) => {
            return Ok(Response::Proxy(super::handle(state, event).await));
        }
        Decoded::Http(event) => {
            state.metrics.note_invocation();
            event?
        }
    };
    match event {
        HttpEvent::V2(event) => {
            let body = body_of(event.body.as_deref(), event.is_base64_encoded)?;
            let context = &event.request_context;
            let iam = context.authorizer.as_ref().and_then(|a| a.iam.as_ref());
            let caller = crate::session::Caller {
                arn: iam.and_then(|iam| iam.user_arn.clone()),
                account_id: iam.and_then(|iam| iam.account_id.clone()),
                source_ip: context.http.source_ip.clone(),
            };
            let path = event.raw_path.as_deref().unwrap_or_default();
            let request = super::http::HttpRequest {
                method: &context.http.method,
                path: without_stage(path, context.stage.as_deref()),
                headers: &event.headers,
                body: Some(&body),
                caller,
            };
            let (status_code, headers, body) = answer_http(state, request).await;
            let mut answer = ApiGatewayV2httpResponse::default();
            (answer.status_code, answer.headers, answer.body) = (status_code, headers, body);
            Ok(Response::HttpV2(answer))
        }
        HttpEvent::V1(event) => {
            let body = body_of(event.body.as_deref(), event.is_base64_encoded)?;
            // API Gateway gives a header in both maps; where they differ, the single value wins.
            let mut headers = event.multi_value_headers;
            headers.extend(event.headers);
            let identity = &event.request_context.identity;
            let caller = crate::session::Caller {
                arn: identity.user_arn.clone(),
                account_id: identity.account_id.clone(),
                source_ip: identity.source_ip.clone(),
            };
            let request = super::http::HttpRequest {
                method: &event.http_method,
                // A REST API's `path` is the resource's, without the stage.
                path: event.path.as_deref().unwrap_or_default(),
                headers: &headers,
                body: Some(&body),
                caller,
            };
            let (status_code, headers, body) = answer_http(state, request).await;
            let mut answer = ApiGatewayProxyResponse::default();
            // Only one of the two maps: API Gateway merges them, which would repeat a header.
            (answer.status_code, answer.multi_value_headers, answer.body) =
                (status_code, headers, body);
            Ok(Response::Proxy(answer))
        }
    }
}

/// The handler's answer as an integration's response carries it: status, headers, and the
/// body as text.
async fn answer_http(
    state: &AppState,
    request: super::http::HttpRequest<'_>,
) -> (i64, http::HeaderMap, Option<Body>) {
    let (parts, body) = super::http::respond(state, request).await.into_parts();
    let status = i64::from(parts.status.as_u16());
    (status, parts.headers, Some(Body::Text(body)))
}

/// An HTTP event, as API Gateway or a Function URL delivers it.
#[derive(Debug)]
enum HttpEvent {
    /// HTTP API (payload 2.0) and Function URL events: `requestContext.http`.
    V2(HttpApiEvent),
    /// REST API events, and HTTP API events in payload 1.0: `httpMethod`.
    V1(RestApiEvent),
}

/// An event read: a WebSocket event, or an HTTP event or why it could not be read (an HTTP
/// invocation is counted either way).
#[derive(Debug)]
enum Decoded {
    WebSocket(WebSocketEvent),
    Http(Result<HttpEvent, EventError>),
}

/// Reads an event from its text. An event that holds what its kind needs is read straight into
/// its type ([`decode_text`]); any other, and any the straight read refuses, is read into a tree
/// first ([`decode_tree`]), which names the fields at fault. Both give the same event.
fn decode(text: &str) -> Result<Decoded, EventError> {
    if let Some(event) = decode_text(text) {
        return Ok(event);
    }
    let payload: Value =
        serde_json::from_str(text).map_err(|err| EventError::NotJson(err.line(), err.column()))?;
    decode_tree(payload)
}

/// The straight read: the event's kind and the WebSocket fields it must hold told from its text
/// ([`Probe`], which skips every other field), then the event read into its type. `None` when
/// either read fails or the event lacks what its kind needs; the tree then says why.
fn decode_text(text: &str) -> Option<Decoded> {
    let probe: Probe = serde_json::from_str(text).ok()?;
    let present = |seen: Seen| seen != Seen::Absent;
    let websocket = is_websocket_by(Markers {
        connection_id: present(probe.context(|c| c.connection_id)),
        event_type: present(probe.context(|c| c.event_type)),
        http: present(probe.context(|c| c.http)),
        http_method: present(probe.http_method),
    });
    if websocket {
        let complete = WEBSOCKET_FIELDS
            .iter()
            .all(|(_, wanted, seen)| seen(&probe) == *wanted);
        if !complete {
            return None;
        }
        return serde_json::from_str(text).ok().map(Decoded::WebSocket);
    }
    let event = if present(probe.context(|c| c.http)) {
        HttpEvent::V2(serde_json::from_str(text).ok()?)
    } else {
        HttpEvent::V1(serde_json::from_str(text).ok()?)
    };
    Some(Decoded::Http(Ok(event)))
}

/// The event read into a tree first: its kind told by the fields it has, then its fields read
/// with their paths tracked, so that a refusal names each field at fault.
fn decode_tree(payload: Value) -> Result<Decoded, EventError> {
    if is_websocket(&payload) {
        Ok(Decoded::WebSocket(decode_websocket(payload)?))
    } else {
        Ok(Decoded::Http(decode_http(payload)))
    }
}

fn decode_http(payload: Value) -> Result<HttpEvent, EventError> {
    if payload["requestContext"].get("http").is_some() {
        Ok(HttpEvent::V2(serde_path_to_error::deserialize(payload)?))
    } else {
        Ok(HttpEvent::V1(serde_path_to_error::deserialize(payload)?))
    }
}

/// An HTTP API's `rawPath` starts with the stage's name unless the stage is `$default`; the
/// routes are the same on every stage.
fn without_stage<'a>(path: &'a str, stage: Option<&str>) -> &'a str {
    match stage {
        None | Some("$default") | Some("") => path,
        Some(stage) => match path.strip_prefix('/').and_then(|p| p.strip_prefix(stage)) {
            Some("") => "/",
            Some(rest) if rest.starts_with('/') => rest,
            _ => path,
        },
    }
}

/// The body's bytes: decoded when the event marks it base64.
fn body_of(body: Option<&str>, base64: bool) -> Result<std::borrow::Cow<'_, [u8]>, EventError> {
    use base64::Engine;
    match body {
        None => Ok(std::borrow::Cow::Borrowed(&[])),
        Some(body) if !base64 => Ok(std::borrow::Cow::Borrowed(body.as_bytes())),
        Some(encoded) => base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map(std::borrow::Cow::Owned)
            .map_err(|_| {
                EventError::WrongType(
                    "body".to_owned(),
                    "isBase64Encoded is true but the body is not base64".to_owned(),
                )
            }),
    }
}

/// An event this function cannot take, named by the paths at fault.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("the event is missing {}", .0.join(", "))]
    Missing(Vec<&'static str>),
    #[error("{0} has the wrong type: {1}")]
    WrongType(String, String),
    /// Text the runtime took for JSON that does not read as a value (a string with half of a
    /// surrogate pair, nesting too deep), where.
    #[error("the event is not JSON this function can read (line {0}, column {1})")]
    NotJson(usize, usize),
}

impl From<serde_path_to_error::Error<serde_json::Error>> for EventError {
    fn from(err: serde_path_to_error::Error<serde_json::Error>) -> Self {
        EventError::WrongType(err.path().to_string(), err.inner().to_string())
    }
}

/// What a WebSocket event must hold: API Gateway always sends these, and the handler needs
/// them (the connection a message belongs to, and the route). Path, the kind of value expected,
/// and what the probe saw there, for the straight read.
type Field = (&'static str, Seen, fn(&Probe) -> Seen);

const WEBSOCKET_FIELDS: [Field; 5] = [
    ("requestContext", Seen::Object, |p| {
        p.context(|_| Seen::Object)
    }),
    ("requestContext.connectionId", Seen::String, |p| {
        p.context(|c| c.connection_id)
    }),
    ("requestContext.routeKey", Seen::String, |p| {
        p.context(|c| c.route_key)
    }),
    ("requestContext.connectedAt", Seen::Integer, |p| {
        p.context(|c| c.connected_at)
    }),
    ("requestContext.requestTimeEpoch", Seen::Integer, |p| {
        p.context(|c| c.request_time_epoch)
    }),
];

/// What a refusal says a field of the wrong kind should have been.
fn expected(kind: Seen) -> &'static str {
    match kind {
        Seen::Object => "expected an object",
        Seen::String => "expected a string",
        Seen::Integer => "expected an integer (milliseconds since the epoch)",
        Seen::Absent | Seen::Null | Seen::Other => "expected a value",
    }
}

fn at<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .try_fold(value, |value, key| value.get(key))
        .filter(|value| !value.is_null())
}

/// Decodes a WebSocket event, naming every missing field (`requestContext.connectedAt`) at
/// once, and the path of a field of the wrong type.
pub fn decode_websocket(payload: Value) -> Result<WebSocketEvent, EventError> {
    match at(&payload, "requestContext") {
        None => return Err(EventError::Missing(vec!["requestContext"])),
        Some(context) if !context.is_object() => {
            return Err(EventError::WrongType(
                "requestContext".into(),
                expected(Seen::Object).into(),
            ));
        }
        Some(_) => {}
    }
    let missing: Vec<&'static str> = WEBSOCKET_FIELDS
        .iter()
        .filter(|(path, ..)| at(&payload, path).is_none())
        .map(|(path, ..)| *path)
        .collect();
    if !missing.is_empty() {
        return Err(EventError::Missing(missing));
    }
    if let Some((path, kind, _)) = WEBSOCKET_FIELDS
        .iter()
        .find(|(path, kind, _)| at(&payload, path).is_some_and(|v| Seen::of(v) != *kind))
    {
        return Err(EventError::WrongType(
            (*path).to_owned(),
            expected(*kind).to_owned(),
        ));
    }
    Ok(serde_path_to_error::deserialize(payload)?)
}

/// Which of the fields that tell the kinds of event apart an event has (a field given as `null`
/// is there).
struct Markers {
    connection_id: bool,
    event_type: bool,
    http: bool,
    http_method: bool,
}

/// WebSocket events carry a connection id and an event type (CONNECT, MESSAGE, DISCONNECT);
/// HTTP API and Function URL events carry `requestContext.http`, REST API events an
/// `httpMethod`.
fn is_websocket_by(markers: Markers) -> bool {
    markers.connection_id || markers.event_type || (!markers.http && !markers.http_method)
}

fn is_websocket(event: &Value) -> bool {
    let context = &event["requestContext"];
    is_websocket_by(Markers {
        connection_id: context.get("connectionId").is_some(),
        event_type: context.get("eventType").is_some(),
        http: context.get("http").is_some(),
        http_method: event.get("httpMethod").is_some(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Every event in `events/` (WebSocket and HTTP, as API Gateway and Function URLs write them).
    fn sample_events() -> Vec<(String, String)> {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/events");
        let mut events = Vec::new();
        for dir in [root.to_owned(), format!("{root}/http")] {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.extension().is_some_and(|e| e == "json") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    events.push((path.display().to_string(), text));
                }
            }
        }
        assert!(events.len() > 30, "{}", events.len());
        events
    }

    /// What reading an event gives, as text to compare: the event's fields, or the error.
    fn read(decoded: Result<Decoded, EventError>) -> String {
        format!("{decoded:?}")
    }

    fn through_tree(text: &str) -> String {
        read(decode_tree(serde_json::from_str(text).unwrap()))
    }

    /// The events API Gateway sends are read straight from their text, not through a tree.
    #[test]
    fn events_as_api_gateway_writes_them_are_read_straight_from_their_text() {
        for (name, text) in sample_events() {
            let straight =
                decode_text(&text).unwrap_or_else(|| panic!("{name}: not read straight"));
            assert_eq!(read(Ok(straight)), through_tree(&text), "{name}");
        }
    }

    /// Each value at `path` replaced by each of `values`, and removed.
    fn variants(event: &Value) -> Vec<Value> {
        let kinds = [
            Value::Null,
            json!(5),
            json!(-5),
            json!(1.5),
            json!(9_223_372_036_854_775_808_u64),
            json!("x"),
            json!(""),
            json!({}),
            json!([]),
            json!(["a", "b"]),
            json!({"connectionId": "c"}),
            json!(true),
        ];
        let mut out = Vec::new();
        let mut paths = Vec::new();
        fn walk(value: &Value, path: &mut Vec<String>, paths: &mut Vec<Vec<String>>) {
            if let Value::Object(map) = value {
                for (key, inner) in map {
                    path.push(key.clone());
                    paths.push(path.clone());
                    walk(inner, path, paths);
                    path.pop();
                }
            }
        }
        walk(event, &mut Vec::new(), &mut paths);
        for path in paths {
            let (last, parents) = path.split_last().unwrap();
            fn at<'a>(
                event: &'a mut Value,
                parents: &[String],
            ) -> &'a mut serde_json::Map<String, Value> {
                parents
                    .iter()
                    .fold(event, |value, key| &mut value[key.as_str()])
                    .as_object_mut()
                    .unwrap()
            }
            let mut removed = event.clone();
            at(&mut removed, parents).remove(last);
            out.push(removed);
            for kind in &kinds {
                let mut changed = event.clone();
                at(&mut changed, parents).insert(last.clone(), kind.clone());
                out.push(changed);
            }
        }
        // Fields that tell the kinds apart, added where an event has none.
        for (parent, key) in [
            (None, "httpMethod"),
            (Some("requestContext"), "connectionId"),
            (Some("requestContext"), "eventType"),
            (Some("requestContext"), "http"),
        ] {
            for kind in [Value::Null, json!("GET"), json!({"method": "POST"})] {
                let mut added = event.clone();
                let target = match parent {
                    Some(parent) => added.get_mut(parent).and_then(Value::as_object_mut),
                    None => added.as_object_mut(),
                };
                if let Some(target) = target {
                    target.insert(key.to_owned(), kind);
                    out.push(added);
                }
            }
        }
        out
    }

    /// A member given a second time, ahead of the first, wherever `"name":` appears: the tree
    /// keeps the last; the straight read must not differ.
    fn duplicated(text: &str) -> Vec<String> {
        let mut out = Vec::new();
        for (at, _) in text.match_indices("\":") {
            let Some(start) = text[..at].rfind('"') else {
                continue;
            };
            let key = &text[start..=at];
            let Some(open) = text[..start].rfind(['{', ',']) else {
                continue;
            };
            for value in ["\"dup\"", "1", "null", "{}"] {
                let mut copy = text.to_owned();
                copy.insert_str(open + 1, &format!("{key}:{value},"));
                out.push(copy);
            }
            // The same header name in another case: both are kept, in the text's order.
            let lower = key.to_lowercase();
            if lower != key {
                let mut copy = text.to_owned();
                copy.insert_str(open + 1, &format!("{lower}:\"dup\","));
                out.push(copy);
            }
        }
        out
    }

    /// Whatever an event holds, reading it from its text gives what reading it through a tree
    /// gives: the same fields, or the same error naming the same fields.
    #[test]
    fn an_event_read_from_its_text_is_what_the_tree_reads() {
        let mut texts = Vec::new();
        for (_, text) in sample_events() {
            let event: Value = serde_json::from_str(&text).unwrap();
            let compact = event.to_string();
            // A `"name":` inside a string (the body's own JSON) makes no JSON when copied.
            texts.extend(
                duplicated(&compact)
                    .into_iter()
                    .filter(|text| serde_json::from_str::<Value>(text).is_ok()),
            );
            texts.extend(variants(&event).iter().map(Value::to_string));
            texts.push(compact);
        }
        texts.push("{}".to_owned());
        texts.push("[]".to_owned());
        texts.push("5".to_owned());
        texts.push("null".to_owned());
        texts.push(r#"{"requestContext":5}"#.to_owned());
        let mut straight = 0;
        for text in &texts {
            if decode_text(text).is_some() {
                straight += 1;
            }
            assert_eq!(read(decode(text)), through_tree(text), "{text}");
        }
        // Most variants are still events that can be read straight.
        assert!(straight > texts.len() / 4, "{straight} of {}", texts.len());
    }

    /// Text the runtime accepts as JSON that no value can be read from is refused with where it
    /// is, whatever the event: never a panic.
    #[test]
    fn text_that_reads_as_no_value_is_refused() {
        let lone = r#"{"requestContext":{"connectionId":"c"},"body":"\ud800"}"#;
        let err = decode(lone).unwrap_err();
        assert!(matches!(err, EventError::NotJson(1, _)), "{err:?}");
        assert!(
            err.to_string().starts_with("the event is not JSON"),
            "{err}"
        );
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert!(matches!(decode(&deep), Err(EventError::NotJson(..))));
    }

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
    fn a_named_stage_is_not_part_of_the_route() {
        assert_eq!(
            without_stage("/prod/api/metrics", Some("prod")),
            "/api/metrics"
        );
        assert_eq!(without_stage("/prod", Some("prod")), "/");
        assert_eq!(
            without_stage("/api/metrics", Some("$default")),
            "/api/metrics"
        );
        assert_eq!(without_stage("/api/metrics", None), "/api/metrics");
        assert_eq!(
            without_stage("/production/mcp", Some("prod")),
            "/production/mcp"
        );
        assert_eq!(without_stage("/mcp", Some("prod")), "/mcp");
    }

    #[test]
    fn a_body_marked_base64_must_be_base64() {
        assert_eq!(&*body_of(Some("e30="), true).unwrap(), b"{}");
        assert_eq!(
            &*body_of(Some("not base64!"), false).unwrap(),
            b"not base64!"
        );
        assert_eq!(&*body_of(None, true).unwrap(), b"");
        let err = body_of(Some("not base64!"), true).unwrap_err();
        assert_eq!(
            err.to_string(),
            "body has the wrong type: isBase64Encoded is true but the body is not base64"
        );
    }

    #[test]
    fn an_odd_http_event_is_named_by_its_path() {
        let err = decode_http(
            json!({"version": "2.0", "rawPath": "/mcp", "headers": {"host": 5},
            "requestContext": {"http": {"method": "POST", "path": "/mcp"}}}),
        )
        .err()
        .unwrap();
        assert!(err.to_string().starts_with("headers"), "{err}");
        let err = decode_http(json!({"httpMethod": "NOT A METHOD", "path": "/mcp"}))
            .err()
            .unwrap();
        assert!(err.to_string().starts_with("httpMethod"), "{err}");
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
