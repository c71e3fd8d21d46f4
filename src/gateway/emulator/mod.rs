//! `serve`: a local stand-in for the API Gateway WebSocket API in front of the Lambda.
//!
//! WebSocket traffic on `/ws` becomes the events API Gateway would send (`$connect` with the
//! handshake's headers, `$default` per message with a message id, `$disconnect` with the close
//! code), each run through [`super::handle`]. API Gateway's limits are kept: a message over
//! 128 KB closes the connection with 1009, a binary frame with 1003, ten minutes of silence
//! (configurable) with 1001, and a connection lasts at most two hours. As with API Gateway,
//! messages on one connection are handled concurrently, so replies may come out of order.
//!
//! Memory stays bounded whatever a client does: a connection handles at most
//! [`MAX_IN_FLIGHT`] messages at once and queues at most [`MAX_QUEUED_BYTES`] of replies; a
//! client that does not read its replies stops being read, and is closed with 1008 when a reply
//! has waited [`crate::config::Config::send_timeout`] for room. RFC 6455's framing rules are
//! kept (an unmasked frame, or a new message inside a fragmented one, closes with 1002). On
//! shutdown every connection is closed with 1001 and its `$disconnect` runs, as when API
//! Gateway's deployment goes away.
//!
//! With [`Iam`] (`serve --iam`), `$connect` and `/mcp` are authorized as API Gateway's
//! `AWS_IAM` authorization does: a SigV4 signature (presigned query or `Authorization` header)
//! made with the credentials `serve` holds, else 403 with API Gateway's message.

mod masking;

use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};

use aws_lambda_events::apigw::ApiGatewayProxyResponse;
use aws_lambda_events::encodings::Body;
use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::ListenerExt;
use base64::Engine;
use fastwebsockets::{Frame, OpCode, Payload, WebSocketError};
use http::{HeaderMap, StatusCode, header};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, TryAcquireError, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::event::{Identity, WebSocketContext, WebSocketEvent};
use super::{CONNECT, DEFAULT, DISCONNECT};
use crate::aws::sigv4::{Refused, Verifier};
use crate::config::MAX_MESSAGE_BYTES;
use crate::protocol::{self, loggable};
use crate::session::Caller;
use crate::state::AppState;
use masking::MaskChecked;

/// API Gateway closes every connection after two hours.
pub const MAX_CONNECTION_DURATION: Duration = Duration::from_secs(2 * 60 * 60);
/// Messages of one connection handled at once; reading pauses beyond this.
pub const MAX_IN_FLIGHT: usize = 8;
/// Bytes of replies queued for one connection; handling pauses beyond this.
pub const MAX_QUEUED_BYTES: usize = 512 * 1024;
/// Replies up to this size go out as one buffer (the frame's head and the reply copied into
/// the connection's write buffer, one `send`), larger ones as two slices (`writev`).
/// fastwebsockets' default, 1 KB, sent a `tools/call` reply (about 1 KB) with `writev`, which
/// cost `serve` 0.6 to 1.2 µs more CPU a message than the copy and `send` (closed loop, two
/// sittings of 15 rounds each: 12.5 against 11.9 µs, 13.2 against 11.9). The write buffer each
/// connection keeps grows to at most this and a frame's head.
const WRITEV_THRESHOLD: usize = 4096;
/// How long connections get to close and run `$disconnect` when `serve` stops.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// WebSocket close codes API Gateway uses.
pub mod close {
    pub const NORMAL: u16 = 1000;
    pub const GOING_AWAY: u16 = 1001;
    pub const PROTOCOL_ERROR: u16 = 1002;
    pub const UNSUPPORTED_DATA: u16 = 1003;
    pub const POLICY_VIOLATION: u16 = 1008;
    pub const MESSAGE_TOO_BIG: u16 = 1009;
}

/// `AWS_IAM` authorization: the signatures to accept, and who signs them.
pub struct Iam {
    pub verifier: Verifier,
    /// The principal of the accepted credentials (from STS when it answered at start-up), as
    /// API Gateway reports a verified caller to the function.
    pub caller: Caller,
}

struct Emulator {
    iam: Option<Iam>,
    /// The function's instances: each event goes to one of them at random, as API Gateway's
    /// invocations go to any of a function's execution environments.
    instances: Vec<Arc<AppState>>,
    idle_timeout: Duration,
    send_timeout: Duration,
    /// Cancelled when `serve` stops: every connection closes with 1001.
    shutdown: CancellationToken,
    /// Every connection task, so that `serve` can wait for their `$disconnect`s.
    connections: TaskTracker,
}

/// Serves the WebSocket API on `/ws` and the HTTP API (`/api/metrics`) until `shutdown`
/// completes, then closes every connection (1001, `$disconnect`) within [`SHUTDOWN_GRACE`].
pub async fn serve(
    listener: TcpListener,
    instances: Vec<Arc<AppState>>,
    iam: Option<Iam>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let Some(first) = instances.first() else {
        return Err(std::io::Error::other("no instance to serve with"));
    };
    let emulator = Arc::new(Emulator {
        iam,
        idle_timeout: first.config.idle_timeout,
        send_timeout: first.config.send_timeout,
        instances,
        shutdown: CancellationToken::new(),
        connections: TaskTracker::new(),
    });
    let router = Router::new()
        .route("/ws", get(upgrade))
        .fallback(http_api)
        .with_state(emulator.clone());
    let stopping = emulator.shutdown.clone();
    // The connections the shutdown closes: those open when it begins. Counted after axum has
    // stopped, some or all of them may have closed already.
    let open_at_shutdown = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (counted, tracked) = (open_at_shutdown.clone(), emulator.connections.clone());
    let listener = listener.tap_io(no_delay);
    let served = axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        shutdown.await;
        counted.store(tracked.len(), Ordering::SeqCst);
        stopping.cancel();
    })
    .await;
    if !emulator.shutdown.is_cancelled() {
        // axum stopped on its own (the listener failed): every connection open now is closed.
        open_at_shutdown.store(emulator.connections.len(), Ordering::SeqCst);
        emulator.shutdown.cancel();
    }
    emulator.connections.close();
    let open = open_at_shutdown.load(Ordering::SeqCst);
    if tokio::time::timeout(SHUTDOWN_GRACE, emulator.connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            connections = emulator.connections.len(),
            "connections still open after the grace period"
        );
    } else if open > 0 {
        tracing::info!(connections = open, "connections closed for shutdown");
    }
    served
}

impl Emulator {
    /// The instance an event goes to: any of them.
    fn instance(&self) -> &AppState {
        let index = if self.instances.len() > 1 {
            fastrand::usize(..self.instances.len())
        } else {
            0
        };
        &self.instances[index]
    }

    /// `AWS_IAM` authorization of a request: who signed it, or the 403 API Gateway answers.
    #[allow(clippy::result_large_err)]
    fn authorize(
        &self,
        method: &http::Method,
        uri: &http::Uri,
        headers: &HeaderMap,
        body: &[u8],
        source_ip: String,
    ) -> Result<Caller, Response> {
        let Some(iam) = &self.iam else {
            return Ok(Caller {
                source_ip: Some(source_ip),
                ..Default::default()
            });
        };
        match iam
            .verifier
            .verify(method, uri, headers, body, std::time::SystemTime::now())
        {
            Ok(()) => Ok(Caller {
                source_ip: Some(source_ip),
                ..iam.caller.clone()
            }),
            Err(refused) => {
                tracing::info!(
                    path = uri.path(),
                    refused = refused.error_type(),
                    "request refused: signature"
                );
                Err(forbidden(&refused))
            }
        }
    }
}

/// API Gateway's answer to a request its `AWS_IAM` authorization refuses.
fn forbidden(refused: &Refused) -> Response {
    let body = serde_json::json!({ "message": refused.to_string() }).to_string();
    (
        StatusCode::FORBIDDEN,
        [
            (header::CONTENT_TYPE, "application/json"),
            (
                header::HeaderName::from_static("x-amzn-errortype"),
                refused.error_type(),
            ),
        ],
        body,
    )
        .into_response()
}

/// `/mcp` (Streamable HTTP) and `/api/metrics`, through the same handler as in Lambda.
async fn http_api(
    State(emulator): State<Arc<Emulator>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    // Read no more than a message may have; past that the body is too large, and not kept.
    let body = axum::body::to_bytes(body, MAX_MESSAGE_BYTES).await.ok();
    let source_ip = peer.ip().to_string();
    // `/mcp` is behind IAM authorization, as in the deployed HTTP API; a body too large to
    // read is answered 413 by the handler.
    let is_mcp = parts
        .uri
        .path()
        .trim_end_matches('/')
        .ends_with(super::http::MCP_PATH);
    let caller = match &body {
        Some(bytes) if is_mcp => {
            match emulator.authorize(&parts.method, &parts.uri, &parts.headers, bytes, source_ip) {
                Ok(caller) => caller,
                Err(refused) => return refused,
            }
        }
        _ => Caller {
            source_ip: Some(source_ip),
            ..Default::default()
        },
    };
    let request = super::http::HttpRequest {
        method: &parts.method,
        path: parts.uri.path(),
        headers: &parts.headers,
        body: body.as_deref(),
        caller,
    };
    super::http::respond(emulator.instance(), request)
        .await
        .into_response()
}

/// What the emulator knows of a connection, for the events it sends (shared by the tasks of
/// its messages).
struct Connection {
    id: String,
    connected_at: i64,
    source_ip: String,
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
    if emulator.shutdown.is_cancelled() {
        return (StatusCode::SERVICE_UNAVAILABLE, "the server is stopping").into_response();
    }
    let caller = match emulator.authorize(
        request.method(),
        request.uri(),
        request.headers(),
        &[],
        peer.ip().to_string(),
    ) {
        Ok(caller) => caller,
        Err(refused) => return refused,
    };
    let connection = Arc::new(Connection {
        id: random_id(),
        connected_at: now_millis(),
        source_ip: peer.ip().to_string(),
    });
    let mut event = new_event(&connection, CONNECT);
    // The signing principal, as API Gateway reports it on `$connect` after IAM authorization.
    event.request_context.identity.user_arn = caller.arn;
    event.request_context.identity.account_id = caller.account_id;
    event.headers = request.headers().clone();

    let accepted = super::handle(emulator.instance(), event).await;
    if !(200..300).contains(&accepted.status_code) {
        let status = u16::try_from(accepted.status_code)
            .ok()
            .and_then(|s| StatusCode::from_u16(s).ok())
            .unwrap_or(StatusCode::FORBIDDEN);
        return (status, "connection refused by $connect").into_response();
    }
    let Some(accept) = accept_key(request.headers()) else {
        return (
            StatusCode::BAD_REQUEST,
            "WebSocket handshake needs Sec-WebSocket-Key and Sec-WebSocket-Version: 13",
        )
            .into_response();
    };
    let upgraded = hyper::upgrade::on(&mut request);
    let mut response = Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "upgrade")
        .header(header::UPGRADE, "websocket")
        .header(header::SEC_WEBSOCKET_ACCEPT, accept)
        .body(axum::body::Body::empty())
        .unwrap_or_default();
    if let Some(protocol) = accepted.headers.get(header::SEC_WEBSOCKET_PROTOCOL) {
        response
            .headers_mut()
            .insert(header::SEC_WEBSOCKET_PROTOCOL, protocol.clone());
    }
    let tracked = emulator.clone();
    tracked.connections.spawn(async move {
        let code = match upgraded.await {
            Ok(upgraded) => run(&emulator, &connection, upgraded).await,
            Err(err) => {
                tracing::warn!(error = %err, "WebSocket upgrade failed");
                close::PROTOCOL_ERROR
            }
        };
        let mut event = new_event(&connection, DISCONNECT);
        event.request_context.disconnect_status_code = Some(i64::from(code));
        super::handle(emulator.instance(), event).await;
    });
    response
}

/// `Sec-WebSocket-Accept` for the request's key (RFC 6455 §4.2.2), if the handshake is one.
fn accept_key(headers: &HeaderMap) -> Option<String> {
    if headers.get(header::SEC_WEBSOCKET_VERSION)?.as_bytes() != b"13" {
        return None;
    }
    let key = headers.get(header::SEC_WEBSOCKET_KEY)?;
    let mut digest = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    digest.update(key.as_bytes());
    digest.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    Some(base64::engine::general_purpose::STANDARD.encode(digest.finish()))
}

const NOT_READING: &str = "Policy violation: the client does not read its replies";

/// A reply waiting for the socket, with its share of the connection's queue.
struct Outgoing {
    frame: Frame<'static>,
    _room: Option<tokio::sync::OwnedSemaphorePermit>,
}

/// The sending side of a connection: a queue bounded in bytes.
#[derive(Clone)]
struct Outbox {
    frames: mpsc::UnboundedSender<Outgoing>,
    room: Arc<Semaphore>,
    send_timeout: Duration,
}

/// What became of a reply handed to the [`Outbox`].
#[derive(Debug, PartialEq, Eq)]
enum Sent {
    Queued,
    /// The client made no room for `send_timeout`: it does not read its replies.
    Stalled,
    /// The connection is gone: nothing more can be sent.
    Gone,
}

impl Outbox {
    /// Queues a reply, waiting for room.
    async fn send(&self, text: String) -> Sent {
        let size = u32::try_from(text.len().clamp(1, MAX_QUEUED_BYTES)).unwrap_or(u32::MAX);
        // There is room unless the client has stopped reading: only then a timer.
        let room = match self.room.clone().try_acquire_many_owned(size) {
            Ok(room) => room,
            Err(TryAcquireError::Closed) => return Sent::Gone,
            Err(TryAcquireError::NoPermits) => match tokio::time::timeout(
                self.send_timeout,
                self.room.clone().acquire_many_owned(size),
            )
            .await
            {
                Ok(Ok(room)) => room,
                Ok(Err(_)) => return Sent::Gone,
                Err(_) if self.frames.is_closed() => return Sent::Gone,
                Err(_) => return Sent::Stalled,
            },
        };
        let frame = Frame::text(Payload::Owned(text.into_bytes()));
        let queued = self.frames.send(Outgoing {
            frame,
            _room: Some(room),
        });
        if queued.is_ok() {
            Sent::Queued
        } else {
            Sent::Gone
        }
    }

    /// A control frame (close, pong): small, and never waits for room.
    fn control(&self, frame: Frame<'static>) {
        let _ = self.frames.send(Outgoing { frame, _room: None });
    }
}

/// What stops a connection's read loop from outside it: `serve` stopping (its token is a child
/// of the shutdown's), or a reply that could not be sent. One per connection, so that a message
/// touches no lock shared with other connections, and the read loop waits on one future.
struct Stop {
    token: CancellationToken,
    /// [`Stop::STALLED`] or [`Stop::GONE`], the first that happened; 0 for the shutdown.
    why: AtomicU8,
}

impl Stop {
    const STALLED: u8 = 1;
    const GONE: u8 = 2;

    fn new(shutdown: &CancellationToken) -> Self {
        Self {
            token: shutdown.child_token(),
            why: AtomicU8::new(0),
        }
    }

    /// What became of a reply: the read loop stops if it could not be sent.
    fn after(&self, sent: Sent) {
        let why = match sent {
            Sent::Queued => return,
            Sent::Stalled => Self::STALLED,
            Sent::Gone => Self::GONE,
        };
        let _ = self
            .why
            .compare_exchange(0, why, Ordering::SeqCst, Ordering::SeqCst);
        self.token.cancel();
    }

    fn ending(&self) -> Ending {
        match self.why.load(Ordering::SeqCst) {
            Self::STALLED => Ending::Close(close::POLICY_VIOLATION, NOT_READING),
            Self::GONE => Ending::Gone(close::GOING_AWAY),
            _ => Ending::Close(close::GOING_AWAY, "Going away: the server is stopping"),
        }
    }
}

/// Why the read loop stopped.
enum Ending {
    /// Send a close frame with this code and reason.
    Close(u16, &'static str),
    /// The client closed (its code), or the connection is gone: no close frame to send.
    Gone(u16),
}

type Socket = fastwebsockets::WebSocket<MaskChecked<TokioIo<hyper::upgrade::Upgraded>>>;

/// One connection, from the handshake to the close. Returns the close code.
async fn run(
    emulator: &Arc<Emulator>,
    connection: &Arc<Connection>,
    upgraded: hyper::upgrade::Upgraded,
) -> u16 {
    let checked = MaskChecked::new(TokioIo::new(upgraded));
    let unmasked = checked.unmasked.clone();
    let mut socket: Socket =
        fastwebsockets::WebSocket::after_handshake(checked, fastwebsockets::Role::Server);
    // Control frames are answered here (after the payload is unmasked).
    socket.set_auto_close(false);
    socket.set_auto_pong(false);
    // Single frames over the limit are refused before they are read (fastwebsockets refuses a
    // frame of max_message_size bytes or more); fragmented messages are counted below.
    socket.set_max_message_size(MAX_MESSAGE_BYTES + 1);
    socket.set_writev_threshold(WRITEV_THRESHOLD);
    let (mut reader, mut writer) = socket.split(tokio::io::split);
    let (frames, mut queued) = mpsc::unbounded_channel::<Outgoing>();
    let outbox = Outbox {
        frames,
        room: Arc::new(Semaphore::new(MAX_QUEUED_BYTES)),
        send_timeout: emulator.send_timeout,
    };
    // When a reply cannot be sent, the read loop stops: the client does not read (stalled),
    // or the connection is gone.
    let stop = Arc::new(Stop::new(&emulator.shutdown));
    let writing = tokio::spawn(async move {
        while let Some(outgoing) = queued.recv().await {
            let closing = outgoing.frame.opcode == OpCode::Close;
            if writer.write_frame(outgoing.frame).await.is_err() || closing {
                break;
            }
        }
    });
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut partial: Option<Vec<u8>> = None;
    let started = Instant::now();
    let mut obligated = |_frame: Frame<'_>| async { Ok::<(), WebSocketError>(()) };
    // One timer for the connection, moved on only when it fires early (a timer made per
    // message would be entered into and taken out of the runtime's timer wheel each time).
    let limit = started + MAX_CONNECTION_DURATION;
    let idle = tokio::time::sleep_until(limit.min(started + emulator.idle_timeout).into());
    let stopped = stop.token.cancelled();
    tokio::pin!(idle, stopped);

    let ending = loop {
        // Silence is counted from the end of the last frame's handling.
        let deadline = limit.min(Instant::now() + emulator.idle_timeout);
        let read = {
            let reading = reader.read_frame(&mut obligated);
            tokio::pin!(reading);
            loop {
                tokio::select! {
                    read = &mut reading => break Ok(read),
                    () = &mut idle => {
                        if Instant::now() < deadline {
                            idle.as_mut().reset(deadline.into());
                        } else if deadline == limit {
                            break Err(Ending::Close(
                                close::GOING_AWAY,
                                "Going away: connection duration limit",
                            ));
                        } else {
                            break Err(Ending::Close(close::GOING_AWAY, "Going away: idle timeout"));
                        }
                    }
                    () = &mut stopped => break Err(stop.ending()),
                }
            }
        };
        let frame = match read {
            Err(ending) => break ending,
            Ok(Err(_)) if unmasked.load(Ordering::Relaxed) => {
                break Ending::Close(
                    close::PROTOCOL_ERROR,
                    "Protocol error: client frames must be masked",
                );
            }
            Ok(Err(WebSocketError::FrameTooLarge)) => {
                break Ending::Close(close::MESSAGE_TOO_BIG, "Message too big");
            }
            Ok(Err(WebSocketError::InvalidUTF8)) => {
                // RFC 6455 would fail the connection; this service answers with an error and
                // keeps the connection usable, as for every other bad input.
                let origin = crate::session::Origin {
                    connection_id: Some(connection.id.clone()),
                    caller: crate::session::Caller {
                        source_ip: Some(connection.source_ip.clone()),
                        ..Default::default()
                    },
                    declared_modern: false,
                };
                let reply = protocol::refuse_invalid_utf8(emulator.instance(), &origin);
                match outbox.send(reply).await {
                    Sent::Queued => continue,
                    unsent => {
                        stop.after(unsent);
                        break stop.ending();
                    }
                }
            }
            Ok(Err(
                WebSocketError::ConnectionClosed
                | WebSocketError::UnexpectedEOF
                | WebSocketError::IoError(_),
            )) => break Ending::Gone(close::GOING_AWAY),
            Ok(Err(err)) => {
                tracing::debug!(connection_id = loggable(&connection.id), error = %err, "WebSocket protocol error");
                break Ending::Close(close::PROTOCOL_ERROR, "Protocol error");
            }
            Ok(Ok(frame)) => frame,
        };
        let message = match frame.opcode {
            OpCode::Close => match frame.payload.len() {
                0 => {
                    outbox.control(Frame::close_raw(Vec::new().into()));
                    break Ending::Gone(close::NORMAL);
                }
                1 => break Ending::Close(close::PROTOCOL_ERROR, "Protocol error: bad close frame"),
                _ => {
                    let code = close_code(&frame.payload);
                    outbox.control(Frame::close(code, b""));
                    break Ending::Gone(code);
                }
            },
            OpCode::Binary => {
                break Ending::Close(close::UNSUPPORTED_DATA, "Binary frames are not supported");
            }
            OpCode::Ping => {
                outbox.control(Frame::pong(Payload::Owned(frame.payload.to_vec())));
                continue;
            }
            OpCode::Pong => continue,
            OpCode::Text if partial.is_some() => {
                break Ending::Close(
                    close::PROTOCOL_ERROR,
                    "Protocol error: a new message began inside a fragmented one",
                );
            }
            OpCode::Text if frame.fin => frame.payload.to_vec(),
            OpCode::Text => {
                partial = Some(frame.payload.to_vec());
                continue;
            }
            OpCode::Continuation => {
                let Some(buffer) = partial.as_mut() else {
                    break Ending::Close(close::PROTOCOL_ERROR, "Unexpected continuation frame");
                };
                buffer.extend_from_slice(&frame.payload);
                if buffer.len() > MAX_MESSAGE_BYTES {
                    break Ending::Close(close::MESSAGE_TOO_BIG, "Message too big");
                }
                if !frame.fin {
                    continue;
                }
                partial.take().unwrap_or_default()
            }
        };
        let permit = match in_flight.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => tokio::select! {
                permit = in_flight.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => break Ending::Gone(close::GOING_AWAY),
                },
                () = &mut stopped => break stop.ending(),
            },
        };
        let emulator = emulator.clone();
        let connection = connection.clone();
        let outbox = outbox.clone();
        let stop = stop.clone();
        let handling: Handling = Box::pin(async move {
            let response = deliver(emulator.instance(), &connection, message).await;
            if let Some(Body::Text(text)) = response.body
                && !text.is_empty()
            {
                stop.after(outbox.send(text).await);
            }
            drop(permit);
        });
        if let Some(waiting) = answer_now(handling).await {
            tokio::spawn(waiting);
        }
    };
    if let Ending::Close(close::POLICY_VIOLATION, _) = ending {
        // The client takes nothing: drop what is queued (and its room), send nothing more.
        writing.abort();
    }
    // In-flight messages finish first, so their replies go out before the close frame.
    let _ = tokio::time::timeout(
        emulator.send_timeout,
        in_flight.acquire_many(MAX_IN_FLIGHT as u32),
    )
    .await;
    let code = match ending {
        Ending::Close(code, reason) => {
            outbox.control(Frame::close(code, reason.as_bytes()));
            code
        }
        Ending::Gone(code) => code,
    };
    drop(outbox);
    let _ = tokio::time::timeout(emulator.send_timeout, writing).await;
    code
}

/// Each reply goes out as it is written, not held back while an earlier one on the connection
/// is unacknowledged (Nagle's algorithm, which with the client's delayed acknowledgement held
/// answers to a client with several requests in flight for up to 40 ms: in a short run of the
/// throughput benchmark's 64 connections x 16 `ping`s in flight, p99 45 ms with it, 6 to 11 ms
/// without).
fn no_delay(tcp: &mut tokio::net::TcpStream) {
    if let Err(err) = tcp.set_nodelay(true) {
        tracing::warn!(detail = %err, "TCP_NODELAY could not be set on a connection");
    }
}

/// A message's handling: its event through the handler, and the reply queued.
type Handling = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Polls a message's handling once, here: most messages wait on nothing (no AWS call), and are
/// answered without a task of their own (spawning one, scheduling it and freeing it: about
/// 0.4 µs of the 8.6 µs of CPU a `ping` costs `serve`, measured A/B). A handling that waits is
/// returned, to go on in its own task while the connection's next messages are read. A
/// handling that panics is dropped with its message, as a task that panics would be, and the
/// connection goes on.
async fn answer_now(mut handling: Handling) -> Option<Handling> {
    let polled = std::future::poll_fn(|cx| {
        Poll::Ready(std::panic::catch_unwind(AssertUnwindSafe(|| {
            handling.as_mut().poll(cx)
        })))
    })
    .await;
    match polled {
        Ok(Poll::Ready(())) => None,
        Ok(Poll::Pending) => Some(handling),
        Err(_) => {
            tracing::error!("a message's handling panicked; it is dropped");
            None
        }
    }
}

/// A `$default` message event; text that is not UTF-8 is passed base64-encoded, as API Gateway
/// does with bodies it cannot pass as text.
fn deliver(
    state: &AppState,
    connection: &Connection,
    message: Vec<u8>,
) -> impl Future<Output = ApiGatewayProxyResponse> {
    let mut event = new_event(connection, DEFAULT);
    event.body = Some(match String::from_utf8(message) {
        Ok(text) => text,
        Err(err) => {
            event.is_base64_encoded = true;
            base64::engine::general_purpose::STANDARD.encode(err.into_bytes())
        }
    });
    // The handler's future, not one around it that would hold the event a second time.
    super::handle(state, event)
}

fn close_code(payload: &[u8]) -> u16 {
    match payload {
        [high, low, ..] => u16::from_be_bytes([*high, *low]),
        _ => close::NORMAL,
    }
}

/// An event with what the handler reads of the request context API Gateway fills in for every
/// route ([`super::event`]).
fn new_event(connection: &Connection, route_key: &str) -> WebSocketEvent {
    WebSocketEvent {
        request_context: WebSocketContext {
            route_key: Some(route_key.to_owned()),
            connection_id: Some(connection.id.clone()),
            request_id: Some(sequence_id()),
            connected_at: connection.connected_at,
            disconnect_status_code: None,
            identity: Identity {
                source_ip: Some(connection.source_ip.clone()),
                ..Identity::default()
            },
        },
        ..WebSocketEvent::default()
    }
}

fn now_millis() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A message or request id in API Gateway's style, unique within the process: a per-process
/// random prefix and a counter (no system call per message).
fn sequence_id() -> String {
    use std::sync::LazyLock;
    use std::sync::atomic::AtomicU64;
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

#[cfg(test)]
mod tests {
    /// Every connection `serve` accepts goes through `no_delay`: Nagle's algorithm is off.
    #[tokio::test]
    async fn accepted_connections_send_without_delay() {
        use axum::serve::Listener;
        use axum::serve::ListenerExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut listener = listener.tap_io(super::no_delay);
        let client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (accepted, _) = listener.accept().await;
        assert!(accepted.nodelay().unwrap());
        assert!(!client.nodelay().unwrap(), "off unless set");
    }
}
