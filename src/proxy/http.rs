//! Streamable HTTP: each message from the host is POSTed to the endpoint, SigV4-signed, with
//! the headers the specification asks of a client (`Accept`, `Content-Type`, and for
//! 2026-07-28 `MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name`; for the handshake era the
//! negotiated `MCP-Protocol-Version` and any `Mcp-Session-Id`). The answer, JSON or an SSE
//! stream, goes to stdout as it came, one message per line.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::{CONNECT_TIMEOUT, Output, Peek, REQUEST_TIMEOUT, Signer, unreached};
use crate::aws::CaBundle;
use crate::aws::sigv4;

/// Requests in flight at once.
const CONCURRENCY: usize = 16;
/// The largest answer read.
const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

pub struct Forwarder {
    inner: Arc<Inner>,
    tasks: std::sync::Mutex<JoinSet<()>>,
    limit: Arc<Semaphore>,
}

struct Inner {
    uri: http::Uri,
    host: String,
    signer: Arc<Signer>,
    output: Output,
    client: HttpsClient,
    /// The version `initialize` settled on (handshake era), sent on every later request.
    negotiated: std::sync::Mutex<Option<String>>,
    /// A session the endpoint started (`Mcp-Session-Id`); this product's server starts none.
    session: std::sync::Mutex<Option<HeaderValue>>,
}

impl Forwarder {
    pub fn new(
        url: url::Url,
        signer: Arc<Signer>,
        output: Output,
        bundle: Option<&CaBundle>,
    ) -> Result<Forwarder, super::StartError> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        http.set_nodelay(true);
        let tls = super::tls_config(url.scheme() == "https", bundle)?;
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config((*tls).clone())
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        let uri = url.as_str().parse().unwrap_or_default();
        Ok(Forwarder {
            inner: Arc::new(Inner {
                uri,
                host: url.host_str().unwrap_or_default().to_owned(),
                signer,
                output,
                client,
                negotiated: std::sync::Mutex::new(None),
                session: std::sync::Mutex::new(None),
            }),
            tasks: std::sync::Mutex::new(JoinSet::new()),
            limit: Arc::new(Semaphore::new(CONCURRENCY)),
        })
    }

    /// Sends one message; its answer is written when it comes.
    pub async fn forward(&self, line: String, peek: Peek) {
        let Ok(permit) = self.limit.clone().acquire_owned().await else {
            return;
        };
        let inner = self.inner.clone();
        let mut tasks = self
            .tasks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Finished tasks are collected as new ones start.
        while tasks.try_join_next().is_some() {}
        tasks.spawn(async move {
            let outcome = tokio::time::timeout(REQUEST_TIMEOUT, inner.exchange(line, &peek)).await;
            let problem = match outcome {
                Ok(Ok(())) => None,
                Ok(Err(problem)) => Some(problem),
                Err(_) => Some(format!(
                    "the endpoint did not answer within {}s",
                    REQUEST_TIMEOUT.as_secs()
                )),
            };
            if let Some(problem) = problem {
                if peek.owed.is_empty() {
                    inner.output.report(&problem);
                }
                for id in &peek.owed {
                    inner.output.error(id, &problem);
                }
            }
            drop(permit);
        });
    }

    /// Waits for the answers still owed, at most `limit`.
    pub async fn drain(&self, limit: Duration) {
        let mut tasks = std::mem::take(
            &mut *self
                .tasks
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        let _ =
            tokio::time::timeout(limit, async { while tasks.join_next().await.is_some() {} }).await;
    }
}

/// A header value as 2026-07-28 carries names: plain when it is visible ASCII without
/// surrounding spaces, else `=?base64?...?=`.
pub fn header_name_value(name: &str) -> Option<HeaderValue> {
    let plain = !name.is_empty()
        && name.bytes().all(|b| (0x20..0x7f).contains(&b))
        && name.trim() == name
        && !name.starts_with("=?");
    if plain {
        return HeaderValue::from_str(name).ok();
    }
    let encoded = base64::engine::general_purpose::STANDARD.encode(name);
    HeaderValue::from_str(&format!("=?base64?{encoded}?=")).ok()
}

impl Inner {
    fn request(&self, line: String, peek: &Peek) -> Result<Request<Vec<u8>>, String> {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(self.uri.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json, text/event-stream")
            .header(
                header::USER_AGENT,
                concat!("mcp-aws-tools-proxy/", env!("CARGO_PKG_VERSION")),
            )
            .body(line.into_bytes())
            .map_err(|e| format!("the request could not be built: {e}"))?;
        let headers = request.headers_mut();
        if let Some(authority) = self.uri.authority()
            && let Ok(host) = HeaderValue::from_str(authority.as_str())
        {
            headers.insert(header::HOST, host);
        }
        let version = peek.modern_version.clone().or_else(|| {
            (peek.method.as_deref() != Some("initialize"))
                .then(|| {
                    self.negotiated
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .clone()
                })
                .flatten()
        });
        if let Some(version) = version.and_then(|v| HeaderValue::from_str(&v).ok()) {
            headers.insert("mcp-protocol-version", version);
        }
        if peek.modern_version.is_some() {
            if let Some(method) = peek.method.as_deref().and_then(header_name_value) {
                headers.insert("mcp-method", method);
            }
            if let Some(name) = peek.name.as_deref().and_then(header_name_value) {
                headers.insert("mcp-name", name);
            }
        }
        if let Some(session) = self
            .session
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
        {
            headers.insert("mcp-session-id", session);
        }
        Ok(request)
    }

    async fn exchange(&self, line: String, peek: &Peek) -> Result<(), String> {
        let mut request = self.request(line, peek)?;
        if self.signer.signs() {
            let credentials = self.signer.credentials(&self.output).await?;
            sigv4::sign_request(
                &mut request,
                &credentials,
                &self.signer.region,
                self.signer.service,
                SystemTime::now(),
            )
            .map_err(|e| e.to_string())?;
        }
        let request = request.map(|body| Full::new(Bytes::from(body)));
        let response = self
            .client
            .request(request)
            .await
            .map_err(|err| unreached(&self.host, &err))?;
        let (parts, body) = response.into_parts();
        if let Some(session) = parts.headers.get("mcp-session-id") {
            *self
                .session
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(session.clone());
        }
        let body = Limited::new(body, MAX_ANSWER_BYTES)
            .collect()
            .await
            .map_err(|err| format!("the endpoint's answer could not be read ({err})"))?
            .to_bytes();
        let content_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase();
        if content_type.starts_with("text/event-stream") {
            for data in sse_data(&String::from_utf8_lossy(&body)) {
                self.deliver(&data, peek);
            }
            return Ok(());
        }
        if body.is_empty() {
            return match (parts.status.is_success(), peek.is_request()) {
                (true, false) => Ok(()),
                (true, true) => Err(format!(
                    "the endpoint accepted the request (HTTP {}) without answering it",
                    parts.status.as_u16()
                )),
                (false, _) => Err(format!(
                    "the endpoint answered HTTP {}",
                    parts.status.as_u16()
                )),
            };
        }
        let text = String::from_utf8_lossy(&body);
        let Ok(answer) = serde_json::from_str::<Value>(&text) else {
            return Err(format!(
                "the endpoint answered HTTP {} with something that is not JSON",
                parts.status.as_u16()
            ));
        };
        if is_json_rpc(&answer) {
            self.deliver_value(&text, answer, peek);
            return Ok(());
        }
        // Not JSON-RPC: API Gateway's own answer, `{"message": ...}`.
        let message = answer["message"]
            .as_str()
            .or(answer["Message"].as_str())
            .unwrap_or("no message");
        let detail = format!("HTTP {}: {message}", parts.status.as_u16());
        match parts.status {
            StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED => Err(self.output.refused(&detail)),
            _ => Err(format!("the endpoint refused the request ({detail})")),
        }
    }

    fn deliver(&self, data: &str, peek: &Peek) {
        match serde_json::from_str::<Value>(data) {
            Ok(answer) => self.deliver_value(data, answer, peek),
            Err(_) => self
                .output
                .report("the endpoint sent an event that is not JSON; it was not passed on"),
        }
    }

    /// An answer for the host, as the endpoint wrote it (on one line). An error the endpoint
    /// could not tie to a request (`id: null`, such as for a body it could not read) is tied
    /// here to each request the message carried, so that the host is not left waiting.
    fn deliver_value(&self, raw: &str, answer: Value, peek: &Peek) {
        if peek.method.as_deref() == Some("initialize")
            && let Some(version) = answer["result"]["protocolVersion"].as_str()
        {
            *self
                .negotiated
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(version.to_owned());
        }
        let untied = answer.get("error").is_some() && answer["id"].is_null();
        let owed: Vec<&Value> = peek.owed.iter().filter(|id| !id.is_null()).collect();
        if untied && !owed.is_empty() {
            for id in owed {
                let mut tied = answer.clone();
                tied["id"] = id.clone();
                self.output.send(tied.to_string());
            }
            return;
        }
        let raw = raw.trim();
        if raw.contains(['\n', '\r']) {
            self.output.send(answer.to_string());
        } else {
            self.output.send(raw.to_owned());
        }
    }
}

fn is_json_rpc(value: &Value) -> bool {
    match value {
        Value::Object(object) => object.get("jsonrpc").is_some(),
        Value::Array(items) => items.iter().any(is_json_rpc),
        _ => false,
    }
}

/// The `data` of each event of a `text/event-stream` body (lines joined with `\n`).
fn sse_data(body: &str) -> Vec<String> {
    let mut events = Vec::new();
    let mut data: Vec<&str> = Vec::new();
    for line in body.lines().chain(std::iter::once("")) {
        if line.is_empty() {
            if !data.is_empty() {
                events.push(data.join("\n"));
                data.clear();
            }
        } else if let Some(value) = line.strip_prefix("data:") {
            data.push(value.strip_prefix(' ').unwrap_or(value));
        }
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_in_headers() {
        assert_eq!(
            header_name_value("aws_list_profiles").unwrap(),
            "aws_list_profiles"
        );
        assert_eq!(header_name_value("café").unwrap(), "=?base64?Y2Fmw6k=?=");
        assert_eq!(
            header_name_value(" padded").unwrap(),
            "=?base64?IHBhZGRlZA==?="
        );
    }

    #[test]
    fn server_sent_events() {
        let body = "event: message\ndata: {\"a\":1}\n\n: comment\ndata: {\"b\":\ndata: 2}\n\n";
        assert_eq!(sse_data(body), vec!["{\"a\":1}", "{\"b\":\n2}"]);
    }
}
