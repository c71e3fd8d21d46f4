//! `serve`: a local stand-in for the API Gateway WebSocket API in front of the Lambda.
//!
//! WebSocket traffic on `/ws` becomes the events API Gateway would send (`$connect` with the
//! handshake's headers, `$default` per message with a message id, `$disconnect` with the close
//! code), each run through [`super::handle`]. API Gateway's limits are kept: a message over
//! 128 KB closes the connection with 1009, a binary frame with 1003, ten minutes of silence
//! (configurable) with 1001, and a connection lasts at most two hours. As with API Gateway,
//! messages on one connection are handled concurrently, so replies may come out of order.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use aws_lambda_events::encodings::Body;
use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use fastwebsockets::{Frame, OpCode, Payload, WebSocketError};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc};

use super::{CONNECT, DEFAULT, DISCONNECT};
use crate::config::MAX_MESSAGE_BYTES;
use crate::protocol::{self, loggable};
use crate::state::AppState;

/// The stage name the emulated API reports.
pub const STAGE: &str = "local";
/// API Gateway closes every connection after two hours.
pub const MAX_CONNECTION_DURATION: Duration = Duration::from_secs(2 * 60 * 60);
/// Messages of one connection handled at once; reading pauses beyond this.
const MAX_IN_FLIGHT: usize = 64;

/// WebSocket close codes API Gateway uses.
pub mod close {
    pub const NORMAL: u16 = 1000;
    pub const GOING_AWAY: u16 = 1001;
    pub const PROTOCOL_ERROR: u16 = 1002;
    pub const UNSUPPORTED_DATA: u16 = 1003;
    pub const MESSAGE_TOO_BIG: u16 = 1009;
}

struct Emulator {
    state: Arc<AppState>,
    idle_timeout: Duration,
}

/// The router: `/ws` for WebSocket connections, and the HTTP API (`/api/metrics`).
pub fn router(state: Arc<AppState>) -> Router {
    let idle_timeout = state.config.idle_timeout;
    Router::new()
        .route("/ws", get(upgrade))
        .fallback(http_api)
        .with_state(Arc::new(Emulator {
            state,
            idle_timeout,
        }))
}

async fn http_api(State(emulator): State<Arc<Emulator>>, request: Request) -> Response {
    super::http::respond(&emulator.state, request.method(), request.uri().path()).into_response()
}

/// Serves until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// What the emulator knows of a connection, for the events it sends.
#[derive(Clone)]
struct Connection {
    id: String,
    connected_at: i64,
    source_ip: String,
    user_agent: Option<String>,
    domain_name: String,
}

async fn upgrade(
    State(emulator): State<Arc<Emulator>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut request: Request,
) -> Response {
    if !fastwebsockets::upgrade::is_upgrade_request(&request) {
        return (
            StatusCode::UPGRADE_REQUIRED,
            [(header::UPGRADE, "websocket")],
            "this endpoint speaks WebSocket only",
        )
            .into_response();
    }
    let headers = request.headers();
    let connection = Connection {
        id: random_id(),
        connected_at: now_millis(),
        source_ip: peer.ip().to_string(),
        user_agent: header_text(headers, header::USER_AGENT),
        domain_name: header_text(headers, header::HOST).unwrap_or_else(|| "localhost".into()),
    };
    let mut event = new_event(&connection, CONNECT, "CONNECT");
    event.headers = request.headers().clone();
    event.multi_value_headers = request.headers().clone();
    if let Some(query) = request.uri().query() {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap_or_default();
        let mut map = std::collections::HashMap::<String, Vec<String>>::new();
        for (key, value) in pairs {
            map.entry(key).or_default().push(value);
        }
        event.query_string_parameters = map.clone().into();
        event.multi_value_query_string_parameters = map.into();
    }

    let accepted = super::handle(&emulator.state, event).await;
    if !(200..300).contains(&accepted.status_code) {
        let status = u16::try_from(accepted.status_code)
            .ok()
            .and_then(|s| StatusCode::from_u16(s).ok())
            .unwrap_or(StatusCode::FORBIDDEN);
        return (status, "connection refused by $connect").into_response();
    }
    let (mut response, upgraded) = match fastwebsockets::upgrade::upgrade(&mut request) {
        Ok(upgrade) => upgrade,
        Err(err) => {
            tracing::warn!(error = %err, "WebSocket handshake failed");
            return (StatusCode::BAD_REQUEST, err.to_string()).into_response();
        }
    };
    if let Some(protocol) = accepted.headers.get(header::SEC_WEBSOCKET_PROTOCOL) {
        response
            .headers_mut()
            .insert(header::SEC_WEBSOCKET_PROTOCOL, protocol.clone());
    }
    tokio::spawn(async move {
        let (code, reason) = match upgraded.await {
            Ok(socket) => run(&emulator, &connection, socket).await,
            Err(err) => {
                tracing::warn!(error = %err, "WebSocket upgrade failed");
                (close::PROTOCOL_ERROR, "upgrade failed")
            }
        };
        let mut event = new_event(&connection, DISCONNECT, "DISCONNECT");
        event.request_context.disconnect_status_code = Some(i64::from(code));
        event.request_context.disconnect_reason = Some(reason.to_owned());
        super::handle(&emulator.state, event).await;
    });
    response.map(|_| axum::body::Body::empty())
}

type Socket = fastwebsockets::WebSocket<TokioIo<hyper::upgrade::Upgraded>>;

/// One connection, from the handshake to the close. Returns the close code and reason.
async fn run(
    emulator: &Arc<Emulator>,
    connection: &Connection,
    mut socket: Socket,
) -> (u16, &'static str) {
    socket.set_auto_close(true);
    socket.set_auto_pong(true);
    // Single frames over the limit are refused before they are read (fastwebsockets refuses a
    // frame of max_message_size bytes or more); fragmented messages are counted below.
    socket.set_max_message_size(MAX_MESSAGE_BYTES + 1);
    let (mut reader, mut writer) = socket.split(tokio::io::split);
    let (outbox, mut outgoing) = mpsc::channel::<Frame<'static>>(MAX_IN_FLIGHT);
    let writing = tokio::spawn(async move {
        while let Some(frame) = outgoing.recv().await {
            let closing = frame.opcode == OpCode::Close;
            if writer.write_frame(frame).await.is_err() || closing {
                break;
            }
        }
    });
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut partial: Option<Vec<u8>> = None;
    let started = Instant::now();
    let reply_to = |frame: Frame<'static>| {
        let outbox = outbox.clone();
        async move {
            outbox
                .send(frame)
                .await
                .map_err(|_| WebSocketError::ConnectionClosed)
        }
    };
    let mut obligated = |frame: Frame<'static>| reply_to(frame);

    let (code, reason) = loop {
        let remaining = MAX_CONNECTION_DURATION.saturating_sub(started.elapsed());
        let wait = emulator.idle_timeout.min(remaining);
        let frame = match tokio::time::timeout(wait, reader.read_frame(&mut obligated)).await {
            Err(_) if remaining <= emulator.idle_timeout => {
                break closing(
                    &outbox,
                    close::GOING_AWAY,
                    "Going away: connection duration limit",
                )
                .await;
            }
            Err(_) => break closing(&outbox, close::GOING_AWAY, "Going away: idle timeout").await,
            Ok(Err(WebSocketError::FrameTooLarge)) => {
                break closing(&outbox, close::MESSAGE_TOO_BIG, "Message too big").await;
            }
            Ok(Err(WebSocketError::InvalidUTF8)) => {
                // RFC 6455 would fail the connection; this service answers with an error and
                // keeps the connection usable, as for every other bad input.
                let reply = protocol::refuse_invalid_utf8(&connection.id);
                let _ = outbox.send(text_frame(reply)).await;
                continue;
            }
            Ok(Err(WebSocketError::ConnectionClosed | WebSocketError::UnexpectedEOF)) => {
                break (close::GOING_AWAY, "Going away: connection lost");
            }
            Ok(Err(err)) => {
                tracing::debug!(connection_id = %loggable(&connection.id), error = %err, "WebSocket protocol error");
                break closing(&outbox, close::PROTOCOL_ERROR, "Protocol error").await;
            }
            Ok(Ok(frame)) => frame,
        };
        let message = match frame.opcode {
            OpCode::Close => break (close_code(&frame.payload), "Client closed"),
            OpCode::Binary => {
                break closing(
                    &outbox,
                    close::UNSUPPORTED_DATA,
                    "Binary frames are not supported",
                )
                .await;
            }
            OpCode::Ping | OpCode::Pong => continue,
            OpCode::Text if frame.fin => frame.payload.to_vec(),
            OpCode::Text => {
                partial = Some(frame.payload.to_vec());
                continue;
            }
            OpCode::Continuation => {
                let Some(buffer) = partial.as_mut() else {
                    break closing(
                        &outbox,
                        close::PROTOCOL_ERROR,
                        "Unexpected continuation frame",
                    )
                    .await;
                };
                buffer.extend_from_slice(&frame.payload);
                if buffer.len() > MAX_MESSAGE_BYTES {
                    break closing(&outbox, close::MESSAGE_TOO_BIG, "Message too big").await;
                }
                if !frame.fin {
                    continue;
                }
                partial.take().unwrap_or_default()
            }
        };
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            break (close::GOING_AWAY, "Going away");
        };
        let emulator = emulator.clone();
        let connection = connection.clone();
        let outbox = outbox.clone();
        tokio::spawn(async move {
            let response = deliver(&emulator.state, &connection, message).await;
            if let Some(Body::Text(text)) = response.body
                && !text.is_empty()
            {
                let _ = outbox.send(text_frame(text)).await;
            }
            drop(permit);
        });
    };
    // Let in-flight messages finish (their replies are dropped if the socket is gone).
    let _ = in_flight.acquire_many(MAX_IN_FLIGHT as u32).await;
    drop(outbox);
    let _ = writing.await;
    (code, reason)
}

/// A `$default` message event; text that is not UTF-8 is passed base64-encoded, as API Gateway
/// does with bodies it cannot pass as text.
async fn deliver(
    state: &AppState,
    connection: &Connection,
    message: Vec<u8>,
) -> ApiGatewayProxyResponse {
    let mut event = new_event(connection, DEFAULT, "MESSAGE");
    event.request_context.message_id = Some(sequence_id());
    event.body = Some(match String::from_utf8(message) {
        Ok(text) => text,
        Err(err) => {
            event.is_base64_encoded = true;
            base64::engine::general_purpose::STANDARD.encode(err.into_bytes())
        }
    });
    super::handle(state, event).await
}

async fn closing(
    outbox: &mpsc::Sender<Frame<'static>>,
    code: u16,
    reason: &'static str,
) -> (u16, &'static str) {
    let _ = outbox.send(Frame::close(code, reason.as_bytes())).await;
    (code, reason)
}

fn close_code(payload: &[u8]) -> u16 {
    match payload {
        [high, low, ..] => u16::from_be_bytes([*high, *low]),
        _ => close::NORMAL,
    }
}

fn text_frame(text: String) -> Frame<'static> {
    Frame::text(Payload::Owned(text.into_bytes()))
}

/// An event with the request context API Gateway fills in for every route.
fn new_event(
    connection: &Connection,
    route_key: &str,
    event_type: &str,
) -> ApiGatewayWebsocketProxyRequest {
    let now = chrono::Utc::now();
    let mut event = ApiGatewayWebsocketProxyRequest::default();
    let context = &mut event.request_context;
    context.route_key = Some(route_key.to_owned());
    context.event_type = Some(event_type.to_owned());
    context.message_direction = Some("IN".into());
    context.stage = Some(STAGE.into());
    context.connected_at = connection.connected_at;
    context.request_time_epoch = now.timestamp_millis();
    context.request_time = Some(now.format("%d/%b/%Y:%H:%M:%S %z").to_string());
    let request_id = sequence_id();
    context.extended_request_id = Some(request_id.clone());
    context.request_id = Some(request_id);
    context.domain_name = Some(connection.domain_name.clone());
    context.connection_id = Some(connection.id.clone());
    context.apiid = Some("local".into());
    context.identity.source_ip = Some(connection.source_ip.clone());
    context.identity.user_agent = connection.user_agent.clone();
    event
}

fn header_text(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v: &HeaderValue| v.to_str().ok())
        .map(str::to_owned)
}

fn now_millis() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A message or request id in API Gateway's style, unique within the process: a per-process
/// random prefix and a counter (no system call per message).
fn sequence_id() -> String {
    use std::sync::LazyLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static PREFIX: LazyLock<[u8; 3]> = LazyLock::new(|| {
        let id = random_id().into_bytes();
        [id[0], id[1], id[2]]
    });
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut bytes = [0u8; 11];
    bytes[..3].copy_from_slice(&*PREFIX);
    bytes[3..].copy_from_slice(&n.to_be_bytes());
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A connection id in API Gateway's style: 11 random bytes, base64 (`L0SM9cOFvHcCIhw=`).
fn random_id() -> String {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 11];
    if ring::rand::SystemRandom::new().fill(&mut bytes).is_err() {
        bytes[..8].copy_from_slice(&now_millis().to_be_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
