//! API Gateway WebSocket: the one handler every way in goes through.
//!
//! [`handle`] takes an API Gateway WebSocket event and returns the integration response:
//! `$connect` accepts (choosing the `mcp` subprotocol when offered), `$disconnect` drops the
//! connection's state, and every other route carries one message, whose reply goes back in the
//! response body (the `$default` route has a route response). The same function serves Lambda
//! ([`lambda`]), the local emulator ([`emulator`]) and `invoke`.

#[cfg(feature = "serve")]
pub mod emulator;
pub mod event;
pub mod http;
pub mod lambda;

use std::borrow::Cow;

use ::http::{HeaderMap, HeaderValue};
use aws_lambda_events::apigw::ApiGatewayProxyResponse;
use aws_lambda_events::encodings::Body;
use base64::Engine;
use tracing::Instrument;

use self::event::WebSocketEvent;
use crate::protocol::{self, loggable};
use crate::session::{Caller, Origin};
use crate::state::AppState;

pub const CONNECT: &str = "$connect";
pub const DISCONNECT: &str = "$disconnect";
pub const DEFAULT: &str = "$default";

/// The WebSocket subprotocol MCP clients ask for.
pub const MCP_SUBPROTOCOL: &str = "mcp";

pub fn handle(
    state: &AppState,
    event: WebSocketEvent,
) -> impl Future<Output = ApiGatewayProxyResponse> + '_ {
    state.metrics.note_invocation();
    // API Gateway's request id, on every record of this event.
    let span = tracing::info_span!(
        "event",
        api_request_id = event.request_context.request_id.as_deref().map(loggable)
    );
    // The event is held once, by this block, and lent to `route`: an `async fn` taking it by
    // value would hold it twice (its argument and its local), and a future is copied whole
    // each time it moves.
    async move { route(state, &event).await }.instrument(span)
}

async fn route(state: &AppState, event: &WebSocketEvent) -> ApiGatewayProxyResponse {
    let context = &event.request_context;
    let connection_id = context.connection_id.as_deref().unwrap_or("-");
    let caller = caller_of(event);
    match context.route_key.as_deref().unwrap_or(DEFAULT) {
        CONNECT => {
            if state
                .sessions
                .connect(connection_id, &caller, context.connected_at)
                .await
                .is_err()
            {
                // Its state could not be kept: refused, rather than a connection whose
                // overrides would silently be lost.
                tracing::warn!(
                    connection_id = loggable(connection_id),
                    route = CONNECT,
                    "connection refused: session store unavailable"
                );
                let mut refused = ok(None);
                refused.status_code = 503;
                return refused;
            }
            let subprotocol = choose_subprotocol(&event.headers);
            tracing::info!(
                connection_id = loggable(connection_id),
                route = CONNECT,
                subprotocol,
                caller_arn = caller.arn.as_deref(),
                source_ip = caller.source_ip.as_deref(),
                instance = state.instance,
                "connected"
            );
            let mut response = ok(None);
            if let Some(protocol) = subprotocol {
                response
                    .headers
                    .insert("sec-websocket-protocol", HeaderValue::from_static(protocol));
            }
            response
        }
        DISCONNECT => {
            state.sessions.disconnect(connection_id).await;
            tracing::info!(
                connection_id = loggable(connection_id),
                route = DISCONNECT,
                status_code = context.disconnect_status_code,
                "disconnected"
            );
            ok(None)
        }
        _ => {
            let body = message_bytes(event);
            let origin = Origin {
                connection_id: Some(connection_id.to_owned()),
                caller,
                declared_modern: false,
            };
            let reply = protocol::handle(state, &origin, &body).await;
            ok(reply)
        }
    }
}

/// Who is calling, from API Gateway's `requestContext.identity`: with IAM authorization on
/// `$connect`, the principal's ARN and account; always the source address.
fn caller_of(event: &WebSocketEvent) -> Caller {
    let identity = &event.request_context.identity;
    Caller {
        arn: identity.user_arn.clone(),
        account_id: identity.account_id.clone(),
        source_ip: identity.source_ip.clone(),
    }
}

/// The message as bytes: API Gateway base64-encodes a body it cannot pass as text.
fn message_bytes(event: &WebSocketEvent) -> Cow<'_, [u8]> {
    let body = event.body.as_deref().unwrap_or("");
    if event.is_base64_encoded {
        // A body that is not base64 is passed on as it is, and fails to parse as JSON there.
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_or(Cow::Borrowed(body.as_bytes()), Cow::Owned)
    } else {
        Cow::Borrowed(body.as_bytes())
    }
}

/// `mcp` when the client offers it in `Sec-WebSocket-Protocol`.
pub fn choose_subprotocol(headers: &HeaderMap) -> Option<&'static str> {
    headers
        .get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim() == MCP_SUBPROTOCOL)
        .then_some(MCP_SUBPROTOCOL)
}

fn ok(body: Option<String>) -> ApiGatewayProxyResponse {
    let mut response = ApiGatewayProxyResponse::default();
    response.status_code = 200;
    response.body = body.map(Body::Text);
    response
}

/// `invoke`: runs one event (JSON) as Lambda would (WebSocket, or HTTP for `/api/metrics`) and
/// returns the response as JSON.
pub async fn invoke(state: &AppState, event_json: &str) -> Result<String, lambda_runtime::Error> {
    let event: Box<serde_json::value::RawValue> = serde_json::from_str(event_json)?;
    let context = lambda_runtime::Context::default();
    let request_id = context.request_id.clone();
    let response = lambda::handle(state, lambda_runtime::LambdaEvent::new(event, context)).await;
    lambda::after_invocation(state, &request_id).await;
    Ok(serde_json::to_string_pretty(&response?)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subprotocol_is_chosen_only_when_offered() {
        let mut headers = HeaderMap::new();
        assert_eq!(choose_subprotocol(&headers), None);
        headers.insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static("graphql-ws, mcp"),
        );
        assert_eq!(choose_subprotocol(&headers), Some("mcp"));
        headers.insert("Sec-WebSocket-Protocol", HeaderValue::from_static("mcp2"));
        assert_eq!(choose_subprotocol(&headers), None);
    }

    #[test]
    fn base64_bodies_are_decoded_and_invalid_utf8_survives() {
        let event = WebSocketEvent {
            is_base64_encoded: true,
            body: Some(base64::engine::general_purpose::STANDARD.encode([0xff, 0xfe, b'{'])),
            ..WebSocketEvent::default()
        };
        assert_eq!(&*message_bytes(&event), [0xff, 0xfe, b'{']);
    }
}
