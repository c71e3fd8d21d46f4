//! A Lambda Runtime API emulator: enough of `/2018-06-01/runtime` (and the extensions API the
//! runtime's graceful-shutdown support registers with) to run the real binary as Lambda would.
//!
//! Events queued with [`RuntimeApi::invoke`] are handed out by `invocation/next`; what the
//! function posts to `response` or `error` comes back from `invoke`. The time of the first
//! `next` is kept, for measuring cold starts.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use tokio::sync::{Mutex as AsyncMutex, mpsc, oneshot};

/// What the function answered to one invocation.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Response(String),
    Error(String),
}

struct Pending {
    request_id: String,
    event: String,
    done: oneshot::Sender<Outcome>,
}

/// A request from the function, as the emulator receives it (see [`RuntimeApi::observe`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Seen {
    /// `invocation/next`: the function is done with its invocation, if it had one.
    Next,
    /// `invocation/{id}/response`, before it is answered.
    Response(String),
}

type Observer = Arc<dyn Fn(&Seen) + Send + Sync>;

#[derive(Default)]
struct Timeline {
    first_next: Option<Instant>,
    init_error: Option<String>,
    extensions: Vec<String>,
}

struct Shared {
    queue: AsyncMutex<mpsc::UnboundedReceiver<Pending>>,
    in_flight: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
    timeline: Mutex<Timeline>,
    shutdown: tokio::sync::watch::Receiver<bool>,
    observer: Mutex<Option<Observer>>,
}

impl Shared {
    fn seen(&self, seen: Seen) {
        let observer = self.observer.lock().expect("lock").clone();
        if let Some(observer) = observer {
            observer(&seen);
        }
    }
}

pub struct RuntimeApi {
    pub addr: SocketAddr,
    sender: mpsc::UnboundedSender<Pending>,
    shared: Arc<Shared>,
    counter: std::sync::atomic::AtomicU64,
    shutdown: tokio::sync::watch::Sender<bool>,
}

impl RuntimeApi {
    pub async fn start() -> RuntimeApi {
        let (sender, receiver) = mpsc::unbounded_channel();
        let (shutdown, shutdown_rx) = tokio::sync::watch::channel(false);
        let shared = Arc::new(Shared {
            queue: AsyncMutex::new(receiver),
            in_flight: Mutex::new(HashMap::new()),
            timeline: Mutex::new(Timeline::default()),
            shutdown: shutdown_rx,
            observer: Mutex::new(None),
        });
        let router = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .route("/2020-01-01/extension/register", post(register_extension))
            .route("/2020-01-01/extension/event/next", get(extension_next))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind runtime API");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        RuntimeApi {
            addr,
            sender,
            shared,
            counter: std::sync::atomic::AtomicU64::new(0),
            shutdown,
        }
    }

    /// `AWS_LAMBDA_RUNTIME_API`'s value.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// Hands `event` to the function and waits for its answer.
    pub async fn invoke(&self, event: &str) -> Outcome {
        self.invoke_with_id(event).await.1
    }

    /// The same, with the invocation's request id (`Lambda-Runtime-Aws-Request-Id`).
    pub async fn invoke_with_id(&self, event: &str) -> (String, Outcome) {
        let n = self
            .counter
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let request_id = format!("00000000-0000-4000-8000-{n:012}");
        let (done, answer) = oneshot::channel();
        self.sender
            .send(Pending {
                request_id: request_id.clone(),
                event: event.to_owned(),
                done,
            })
            .expect("queue event");
        (request_id, answer.await.expect("the function answered"))
    }

    /// Calls `observer` with each `next` and `response` request as it arrives, before it is
    /// answered: what the function had done by then is done.
    pub fn observe(&self, observer: impl Fn(&Seen) + Send + Sync + 'static) {
        *self.shared.observer.lock().expect("lock") = Some(Arc::new(observer));
    }

    /// When the function first asked for an invocation.
    pub fn first_next(&self) -> Option<Instant> {
        self.shared.timeline.lock().expect("lock").first_next
    }

    pub fn init_error(&self) -> Option<String> {
        self.shared
            .timeline
            .lock()
            .expect("lock")
            .init_error
            .clone()
    }

    /// Names of registered extensions.
    pub fn extensions(&self) -> Vec<String> {
        self.shared
            .timeline
            .lock()
            .expect("lock")
            .extensions
            .clone()
    }

    /// Sends SHUTDOWN to registered extensions, as Lambda does before it stops an environment.
    pub fn shut_down(&self) {
        let _ = self.shutdown.send(true);
    }
}

async fn next(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    {
        let mut timeline = shared.timeline.lock().expect("lock");
        timeline.first_next.get_or_insert_with(Instant::now);
    }
    shared.seen(Seen::Next);
    let pending = shared.queue.lock().await.recv().await;
    let Some(pending) = pending else {
        return (StatusCode::GONE, HeaderMap::new(), String::new());
    };
    let deadline = chrono::Utc::now().timestamp_millis() + 30_000;
    let mut headers = HeaderMap::new();
    let header = |v: &str| HeaderValue::from_str(v).expect("header value");
    headers.insert("lambda-runtime-aws-request-id", header(&pending.request_id));
    headers.insert("lambda-runtime-deadline-ms", header(&deadline.to_string()));
    headers.insert(
        "lambda-runtime-invoked-function-arn",
        header("arn:aws:lambda:us-east-1:123456789012:function:mcp-aws-tools"),
    );
    headers.insert(
        "lambda-runtime-trace-id",
        header("Root=1-00000000-000000000000000000000000"),
    );
    headers.insert("content-type", header("application/json"));
    shared
        .in_flight
        .lock()
        .expect("lock")
        .insert(pending.request_id, pending.done);
    (StatusCode::OK, headers, pending.event)
}

fn finish(shared: &Shared, id: &str, outcome: Outcome) -> StatusCode {
    match shared.in_flight.lock().expect("lock").remove(id) {
        Some(done) => {
            let _ = done.send(outcome);
            StatusCode::ACCEPTED
        }
        None => StatusCode::BAD_REQUEST,
    }
}

async fn response(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: Bytes,
) -> StatusCode {
    shared.seen(Seen::Response(id.clone()));
    finish(
        &shared,
        &id,
        Outcome::Response(String::from_utf8_lossy(&body).into_owned()),
    )
}

async fn error(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: Bytes,
) -> StatusCode {
    finish(
        &shared,
        &id,
        Outcome::Error(String::from_utf8_lossy(&body).into_owned()),
    )
}

async fn init_error(State(shared): State<Arc<Shared>>, body: Bytes) -> StatusCode {
    shared.timeline.lock().expect("lock").init_error =
        Some(String::from_utf8_lossy(&body).into_owned());
    StatusCode::ACCEPTED
}

async fn register_extension(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
) -> impl IntoResponse {
    let name = headers
        .get("lambda-extension-name")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    shared
        .timeline
        .lock()
        .expect("lock")
        .extensions
        .push(name.clone());
    let mut reply = HeaderMap::new();
    reply.insert(
        "lambda-extension-identifier",
        HeaderValue::from_static("extension-1"),
    );
    (
        StatusCode::OK,
        reply,
        serde_json::json!({"functionName": "mcp-aws-tools", "functionVersion": "$LATEST", "handler": "bootstrap"}).to_string(),
    )
}

async fn extension_next(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    let mut shutdown = shared.shutdown.clone();
    let _ = shutdown.wait_for(|down| *down).await;
    let deadline = chrono::Utc::now().timestamp_millis() + 2_000;
    (
        StatusCode::OK,
        serde_json::json!({"eventType": "SHUTDOWN", "shutdownReason": "spindown", "deadlineMs": deadline}).to_string(),
    )
}
