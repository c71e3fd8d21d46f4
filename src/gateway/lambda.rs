//! Lambda mode: the runtime loop. The event's shape decides: API Gateway WebSocket events go to
//! [`super::handle`]; HTTP API, REST API and Function URL events (`GET /api/metrics`) go
//! through lambda_http to [`super::http`].

use std::convert::Infallible;

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use lambda_http::request::LambdaRequest;
use lambda_runtime::{Error, LambdaEvent, Service, service_fn};
use serde_json::Value;

use crate::state::AppState;

pub async fn run(state: &AppState) -> Result<(), Error> {
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| handle(state, event))).await
}

/// One invocation, WebSocket or HTTP.
pub async fn handle(state: &AppState, event: LambdaEvent<Value>) -> Result<Value, Error> {
    let LambdaEvent { payload, context } = event;
    if is_websocket(&payload) {
        let event: ApiGatewayWebsocketProxyRequest = serde_json::from_value(payload)?;
        return Ok(serde_json::to_value(super::handle(state, event).await)?);
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
    Ok(serde_json::to_value(response)?)
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
