//! The WebSocket API: one connection, its `$connect` presigned with SigV4 (a handshake cannot
//! carry `Authorization` from a browser, so API Gateway takes the signature in the query).
//! Messages go out as text frames and answers come back in any order. Every request the host
//! sends is tracked until its answer: when the connection closes first, or no answer comes
//! within [`REQUEST_TIMEOUT`], the host gets an error for it instead of waiting.
//!
//! API Gateway closes a connection after 10 minutes of silence or 2 hours of age, with 1001:
//! the proxy then connects again, once; for any other close, or if that fails, it connects
//! again when the host next sends something.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use http::HeaderValue;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::{Mutex, Notify};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use super::{CONNECT_TIMEOUT, Output, Peek, REQUEST_TIMEOUT, Signer, root_cause, unreached};
use crate::aws::CaBundle;
use crate::aws::sigv4;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long the presigned `$connect` URL is valid.
const PRESIGN_EXPIRES: Duration = Duration::from_secs(300);
/// The largest message taken from the endpoint (API Gateway's replies are at most 128 KB).
const MAX_MESSAGE_BYTES: usize = 1024 * 1024;
/// API Gateway's close code for idleness and age.
const GOING_AWAY: u16 = 1001;
/// The most one read of the socket takes. tungstenite fills the whole of it with zeros before
/// every read (one that finds nothing included): its default, 128 KiB, cost more CPU per reply
/// than the rest of the reading. A larger message is read in more than one go.
const READ_CHUNK_BYTES: usize = 8 * 1024;

pub struct Forwarder {
    inner: Arc<Inner>,
}

struct Inner {
    url: url::Url,
    signer: Arc<Signer>,
    output: Output,
    tls: Option<Arc<rustls::ClientConfig>>,
    link: Mutex<Link>,
    /// Which connection is current: a reader of an older one changes nothing.
    generation: AtomicU64,
    /// Requests sent and not yet answered, by their id's JSON text: the id, and the timer that
    /// answers it if the endpoint does not.
    pending: std::sync::Mutex<HashMap<String, Owed>>,
    answered: Notify,
    /// Numbers the answers owed under `id: null`.
    unreadable: AtomicU64,
}

struct Owed {
    id: Value,
    timer: tokio::task::AbortHandle,
}

impl Owed {
    /// The id, the timer stopped.
    fn settle(self) -> Value {
        self.timer.abort();
        self.id
    }
}

enum Link {
    Open(SplitSink<Socket, Message>),
    /// Why the last connection ended or could not be made.
    Closed(String),
}

impl Forwarder {
    pub fn new(
        url: url::Url,
        signer: Arc<Signer>,
        output: Output,
        bundle: Option<&CaBundle>,
    ) -> Result<Forwarder, super::StartError> {
        let tls = (url.scheme() == "wss")
            .then(|| super::tls_config(true, bundle))
            .transpose()?;
        Ok(Forwarder {
            inner: Arc::new(Inner {
                url,
                signer,
                output,
                tls,
                link: Mutex::new(Link::Closed("not connected yet".into())),
                generation: AtomicU64::new(0),
                pending: std::sync::Mutex::new(HashMap::new()),
                answered: Notify::new(),
                unreadable: AtomicU64::new(0),
            }),
        })
    }

    /// Connects unless a connection is open.
    pub async fn connect_if_closed(&self) {
        if let Err(why) = Inner::connect_if_closed(&self.inner).await {
            self.inner.output.report(&why);
        }
    }

    /// Sends one message. A request is answered by the endpoint, or by the proxy with an error
    /// when that cannot happen.
    pub async fn forward(&self, line: String, peek: Peek) {
        let inner = &self.inner;
        let keys: Vec<String> = peek.owed.iter().map(|id| inner.owe(id)).collect();
        let failed = match Inner::connect_if_closed(inner).await {
            Err(why) => Some(why),
            Ok(()) => {
                let mut link = inner.link.lock().await;
                match &mut *link {
                    Link::Open(sink) => {
                        match tokio::time::timeout(REQUEST_TIMEOUT, sink.send(Message::text(line)))
                            .await
                        {
                            Ok(Ok(())) => None,
                            Ok(Err(err)) => {
                                let why = format!("the WebSocket failed ({})", root_cause(&err));
                                *link = Link::Closed(why.clone());
                                Some(why)
                            }
                            Err(_) => {
                                let why =
                                    "the WebSocket did not take the message in time".to_owned();
                                *link = Link::Closed(why.clone());
                                Some(why)
                            }
                        }
                    }
                    Link::Closed(why) => Some(why.clone()),
                }
            }
        };
        if let Some(why) = failed {
            if keys.is_empty() {
                inner
                    .output
                    .report(&format!("a notification was not sent: {why}"));
            }
            for key in &keys {
                let owed = inner.pending().remove(key);
                if let Some(owed) = owed {
                    let id = owed.settle();
                    inner
                        .output
                        .error(&id, &format!("the message was not sent: {why}"));
                }
            }
            inner.answered.notify_waiters();
        }
    }

    /// Waits for the answers still owed, at most `limit`, then closes the connection (1000).
    pub async fn drain(&self, limit: Duration) {
        let inner = &self.inner;
        let _ = tokio::time::timeout(limit, async {
            loop {
                let answered = inner.answered.notified();
                if inner.pending().is_empty() {
                    break;
                }
                answered.await;
            }
        })
        .await;
        let mut link = inner.link.lock().await;
        // The reader of this connection ends silently: the close is ours.
        inner.generation.fetch_add(1, Ordering::SeqCst);
        if let Link::Open(sink) = &mut *link {
            let _ = tokio::time::timeout(Duration::from_secs(2), sink.close()).await;
        }
        *link = Link::Closed("the proxy stopped".into());
    }
}

impl Inner {
    /// Notes an answer owed under `id` (`null`: for a message the endpoint cannot read), with
    /// a timer that answers it with an error if the endpoint does not; returns its key.
    fn owe(self: &Arc<Inner>, id: &Value) -> String {
        let key = if id.is_null() {
            format!("null#{}", self.unreadable.fetch_add(1, Ordering::Relaxed))
        } else {
            id.to_string()
        };
        let waiting = self.clone();
        let timer_key = key.clone();
        let timer = tokio::spawn(async move {
            tokio::time::sleep(REQUEST_TIMEOUT).await;
            let owed = waiting.pending().remove(&timer_key);
            if let Some(owed) = owed {
                waiting.output.error(
                    &owed.id,
                    &format!(
                        "the endpoint did not answer within {}s",
                        REQUEST_TIMEOUT.as_secs()
                    ),
                );
                waiting.answered.notify_waiters();
            }
        });
        let owed = Owed {
            id: id.clone(),
            timer: timer.abort_handle(),
        };
        if let Some(earlier) = self.pending().insert(key.clone(), owed) {
            // The host reused an id still in flight: the first answer under it settles both.
            earlier.timer.abort();
        }
        key
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<String, Owed>> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// [`Inner::connect_if_closed`] from a reader, boxed: the reader it starts is the same
    /// kind of task.
    fn reconnect(
        this: Arc<Inner>,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<(), String>> + Send>> {
        Box::pin(async move { Inner::connect_if_closed(&this).await })
    }

    async fn connect_if_closed(this: &Arc<Inner>) -> Result<(), String> {
        let mut link = this.link.lock().await;
        if matches!(*link, Link::Open(_)) {
            return Ok(());
        }
        match this.connect().await {
            Ok(socket) => {
                let (sink, stream) = socket.split();
                let generation = this.generation.fetch_add(1, Ordering::SeqCst) + 1;
                *link = Link::Open(sink);
                tokio::spawn(Inner::read(this.clone(), stream, generation));
                Ok(())
            }
            Err(why) => {
                *link = Link::Closed(why.clone());
                Err(why)
            }
        }
    }

    async fn connect(&self) -> Result<Socket, String> {
        let uri: http::Uri = self
            .url
            .as_str()
            .parse()
            .map_err(|e| format!("the URL is not valid ({e})"))?;
        let uri = if self.signer.signs() {
            let credentials = self.signer.credentials(&self.output).await?;
            sigv4::presign(
                &uri,
                &credentials,
                &self.signer.region,
                self.signer.service,
                PRESIGN_EXPIRES,
                SystemTime::now(),
            )
            .map_err(|e| e.to_string())?
        } else {
            uri
        };
        let mut request = uri
            .into_client_request()
            .map_err(|e| format!("the URL cannot be connected to ({e})"))?;
        let headers = request.headers_mut();
        headers.insert("sec-websocket-protocol", HeaderValue::from_static("mcp"));
        headers.insert(
            http::header::USER_AGENT,
            HeaderValue::from_static(concat!("mcp-aws-tools-proxy/", env!("CARGO_PKG_VERSION"))),
        );
        let config = WebSocketConfig::default()
            .max_message_size(Some(MAX_MESSAGE_BYTES))
            .max_frame_size(Some(MAX_MESSAGE_BYTES))
            .read_buffer_size(READ_CHUNK_BYTES);
        let connector = self.tls.clone().map(Connector::Rustls);
        let host = self.url.host_str().unwrap_or_default();
        let connected = tokio::time::timeout(
            CONNECT_TIMEOUT,
            tokio_tungstenite::connect_async_tls_with_config(
                request,
                Some(config),
                true,
                connector,
            ),
        )
        .await
        .map_err(|_| {
            format!(
                "the endpoint at {host} did not accept the connection within {}s",
                CONNECT_TIMEOUT.as_secs()
            )
        })?;
        match connected {
            Ok((socket, _)) => Ok(socket),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                let status = response.status();
                let message = response
                    .body()
                    .as_deref()
                    .and_then(|b| serde_json::from_slice::<Value>(b).ok())
                    .and_then(|v| v["message"].as_str().map(str::to_owned))
                    .unwrap_or_else(|| status.canonical_reason().unwrap_or("").to_owned());
                let detail = format!("HTTP {}: {message}", status.as_u16());
                if status == http::StatusCode::FORBIDDEN || status == http::StatusCode::UNAUTHORIZED
                {
                    Err(self.output.refused(&detail))
                } else {
                    Err(format!("the endpoint refused the connection ({detail})"))
                }
            }
            Err(err) => Err(unreached(host, &err)),
        }
    }

    /// Passes the endpoint's messages to the host until the connection ends.
    async fn read(this: Arc<Inner>, mut stream: SplitStream<Socket>, generation: u64) {
        let mut closed: Option<(u16, String)> = None;
        while let Some(frame) = stream.next().await {
            match frame {
                Ok(Message::Text(text)) => this.deliver(text.as_str()),
                Ok(Message::Binary(_)) => this
                    .output
                    .report("the endpoint sent a binary message; it was not passed on"),
                Ok(Message::Close(frame)) => {
                    closed = Some(frame.map_or((1005, String::new()), |f| {
                        (u16::from(f.code), f.reason.to_string())
                    }));
                    break;
                }
                Ok(_) => {}
                Err(err) => {
                    closed = Some((1006, root_cause(&err)));
                    break;
                }
            }
        }
        let (code, reason) = closed.unwrap_or((1006, "the connection ended".into()));
        if this.generation.load(Ordering::SeqCst) != generation {
            return;
        }
        let why = if reason.is_empty() {
            format!("the WebSocket was closed ({code})")
        } else {
            format!("the WebSocket was closed ({code}: {reason})")
        };
        {
            let mut link = this.link.lock().await;
            if this.generation.load(Ordering::SeqCst) == generation {
                *link = Link::Closed(why.clone());
            }
        }
        let owed: Vec<Value> = this
            .pending()
            .drain()
            .map(|(_, owed)| owed.settle())
            .collect();
        for id in &owed {
            this.output.error(
                id,
                &format!("{why} before the answer came; send the request again"),
            );
        }
        this.answered.notify_waiters();
        if code == GOING_AWAY {
            // Idle for 10 minutes, or 2 hours old: connect again, once, now.
            match Inner::reconnect(this.clone()).await {
                Ok(()) => {
                    tracing::info!("reconnected after the endpoint closed the connection (1001)")
                }
                Err(problem) => this
                    .output
                    .report(&format!("{why}, and connecting again failed: {problem}")),
            }
        } else {
            this.output.report(&why);
        }
    }

    /// An answer for the host, if a request is owed it.
    fn deliver(&self, text: &str) {
        let Ok(message) = serde_json::from_str::<Value>(text) else {
            self.output
                .report("the endpoint sent a message that is not JSON; it was not passed on");
            return;
        };
        let is_json_rpc = |m: &Value| m.get("jsonrpc").is_some();
        let ours = match &message {
            Value::Object(_) if is_json_rpc(&message) => true,
            Value::Array(items) => items.iter().any(is_json_rpc),
            _ => false,
        };
        if !ours {
            // API Gateway's own messages (`{"message": "Internal server error", ...}`) carry no
            // id; the request they concern is answered when its time is up.
            let said = message["message"].as_str().unwrap_or("no message");
            self.output
                .report(&format!("the API sent a message that is not MCP: {said}"));
            return;
        }
        let ids: Vec<&Value> = match &message {
            Value::Array(items) => items.iter().map(|m| &m["id"]).collect(),
            other => vec![&other["id"]],
        };
        let mut owed = false;
        {
            let mut pending = self.pending();
            for id in ids {
                let key = if id.is_null() {
                    pending.keys().find(|k| k.starts_with("null#")).cloned()
                } else {
                    Some(id.to_string())
                };
                if let Some(settled) = key.and_then(|key| pending.remove(&key)) {
                    settled.settle();
                    owed = true;
                }
            }
        }
        self.answered.notify_waiters();
        // Passed on: answers owed, a server's requests and notifications, and errors about a
        // message whose id the endpoint could not read (`id: null`). Not passed on: an answer
        // to a request already answered (late, after its time was up).
        let unowned = |m: &Value| m.get("method").is_none() && !m["id"].is_null();
        let late = match &message {
            Value::Array(items) => items.iter().all(unowned),
            other => unowned(other),
        };
        if owed || !late {
            // As it came, unless it spans lines (stdio carries one message per line).
            if text.contains(['\n', '\r']) {
                self.output.send(message.to_string());
            } else {
                self.output.send(text.to_owned());
            }
        } else {
            self.output
                .report("an answer came after its request was given up; it was not passed on");
        }
    }
}
