//! Lambda mode: the runtime loop. The event's shape decides: API Gateway WebSocket events go to
//! [`super::handle`]; HTTP API, REST API and Function URL events (`GET /api/metrics`) go
//! through lambda_http to [`super::http`]. [`on_shutdown`] gets the environment's SIGTERM.

use std::convert::Infallible;

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use lambda_http::request::LambdaRequest;
use lambda_runtime::{Error, LambdaEvent, Service, service_fn};
use serde_json::Value;

use crate::state::AppState;

pub async fn run(state: &AppState) -> Result<(), Error> {
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| handle(state, event))).await
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

/// One invocation, WebSocket or HTTP.
pub async fn handle(
    state: &AppState,
    event: LambdaEvent<Value>,
) -> Result<Response<impl serde::Serialize + std::fmt::Debug>, Error> {
    let LambdaEvent { payload, context } = event;
    if is_websocket(&payload) {
        let event: ApiGatewayWebsocketProxyRequest = serde_json::from_value(payload)?;
        return Ok(Response::WebSocket(super::handle(state, event).await));
    }
    state.metrics.note_invocation();
    let request: LambdaRequest = serde_json::from_value(payload)?;
    let mut adapter =
        lambda_http::Adapter::from(service_fn(|request: lambda_http::Request| async move {
            Ok::<_, Infallible>(super::http::respond(
                state,
                request.method(),
                request.uri().path(),
            ))
        }));
    let response = adapter.call(LambdaEvent::new(request, context)).await?;
    Ok(Response::Http(response))
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
