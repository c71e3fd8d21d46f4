//! Streamable HTTP beside the WebSocket API, and what the stdio proxy adds.
//!
//! 1. `tools/call aws_get_account_info` (cached after the first call, moto behind it) through
//!    `serve`: over `/mcp` on keep-alive HTTP/1.1 connections, MCP 2026-07-28 with its routing
//!    headers, and over the WebSocket API, the same number of connections, each closed loop (one
//!    request in flight, as an HTTP/1.1 connection allows), in the same run.
//! 2. The proxy's added latency: one request at a time through `mcp-aws-tools proxy` (stdin to
//!    stdout) against the same message sent directly, for `http://…/mcp` and for `ws://…/ws`;
//!    the difference of the medians is what a desktop host pays per message for the proxy.
//!
//! `cargo bench --bench http` (`BENCH_CONNECTIONS`, default 64; `BENCH_MESSAGES`, per
//! connection, default 300; `BENCH_CALLS`, sequential calls for the proxy figure, default 2,000;
//! `BENCH_OUT`, a file for the JSON results).

#[path = "../tests/support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const VERSION: &str = "2026-07-28";
const TOOL: &str = "aws_get_account_info";

/// The request both transports send: a 2026-07-28 `tools/call`.
fn call(id: usize) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {
    "name": TOOL, "arguments": {},
    "_meta": {
        "io.modelcontextprotocol/protocolVersion": VERSION,
        "io.modelcontextprotocol/clientCapabilities": {},
    }}})
}

/// A reply is good when it answers `id` with a result that is not a tool error.
fn good(reply: &Value, id: usize) -> bool {
    reply["id"].as_u64() == Some(id as u64)
        && reply.get("result").is_some()
        && reply["result"]["isError"] != true
}

#[derive(Clone)]
struct Figures {
    latencies: Vec<Duration>,
    errors: usize,
    elapsed: Duration,
}

impl Figures {
    fn report(mut self) -> Value {
        support::latency_report(&mut self.latencies, self.errors, self.elapsed)
    }
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn http_connection(addr: &str) -> Sender {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(connection);
    sender
}

async fn http_call(sender: &mut Sender, addr: &str, id: usize) -> Option<Value> {
    let request = http::Request::post("/mcp")
        .header("host", addr)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", VERSION)
        .header("mcp-method", "tools/call")
        .header("mcp-name", TOOL)
        .body(Full::new(Bytes::from(call(id).to_string())))
        .expect("request");
    sender.ready().await.ok()?;
    let response = sender.send_request(request).await.ok()?;
    let body = response.into_body().collect().await.ok()?.to_bytes();
    serde_json::from_slice(&body).ok()
}

async fn http_loop(addr: String, count: usize) -> (Vec<Duration>, usize) {
    let mut sender = http_connection(&addr).await;
    let mut latencies = Vec::with_capacity(count);
    let mut errors = 0;
    for id in 0..count {
        let at = Instant::now();
        match http_call(&mut sender, &addr, id).await {
            Some(reply) if good(&reply, id) => latencies.push(at.elapsed()),
            _ => errors += 1,
        }
    }
    (latencies, errors)
}

async fn ws_loop(url: String, count: usize) -> (Vec<Duration>, usize) {
    let (stream, _) = support::ws_connect(mcp_request(&url))
        .await
        .expect("connect");
    let (mut sink, mut source) = stream.split();
    let mut latencies = Vec::with_capacity(count);
    let mut errors = 0;
    for id in 0..count {
        let at = Instant::now();
        sink.send(Message::text(call(id).to_string()))
            .await
            .expect("send");
        match source.next().await {
            Some(Ok(Message::Text(text))) => {
                let reply: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                if good(&reply, id) {
                    latencies.push(at.elapsed());
                } else {
                    errors += 1;
                }
            }
            _ => {
                errors += count - id;
                break;
            }
        }
    }
    let _ = sink.close().await;
    (latencies, errors)
}

/// The handshake an MCP client makes: the `mcp` subprotocol.
fn mcp_request(url: &str) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = url.into_client_request().expect("URL");
    request.headers_mut().insert(
        "sec-websocket-protocol",
        http::HeaderValue::from_static("mcp"),
    );
    request
}

async fn fan_out<F, Fut>(connections: usize, each: F) -> Figures
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = (Vec<Duration>, usize)> + Send + 'static,
{
    let started = Instant::now();
    let tasks: Vec<_> = (0..connections).map(|_| tokio::spawn(each())).collect();
    let mut figures = Figures {
        latencies: Vec::new(),
        errors: 0,
        elapsed: Duration::ZERO,
    };
    for task in tasks {
        let (latencies, errors) = task.await.expect("task");
        figures.latencies.extend(latencies);
        figures.errors += errors;
    }
    figures.elapsed = started.elapsed();
    figures
}

/// One request at a time through `mcp-aws-tools proxy URL --no-sign`, stdin to stdout.
fn through_proxy(url: &str, calls: usize) -> Figures {
    let mut child = Command::new(support::BINARY)
        .args(["proxy", url, "--no-sign"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", support::temp_dir("proxy-bench-home"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start proxy");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut figures = Figures {
        latencies: Vec::with_capacity(calls),
        errors: 0,
        elapsed: Duration::ZERO,
    };
    let started = Instant::now();
    let mut line = String::new();
    // The first exchange opens the connection; it is not counted.
    for id in 0..=calls {
        let at = Instant::now();
        writeln!(stdin, "{}", call(id)).expect("write");
        stdin.flush().expect("flush");
        line.clear();
        if stdout.read_line(&mut line).expect("read") == 0 {
            figures.errors += calls + 1 - id;
            break;
        }
        let reply: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
        if id == 0 {
            continue;
        }
        if good(&reply, id) {
            figures.latencies.push(at.elapsed());
        } else {
            figures.errors += 1;
        }
    }
    figures.elapsed = started.elapsed();
    drop(stdin);
    let _ = child.wait();
    figures
}

fn added(direct: &Value, proxied: &Value) -> Value {
    let p50 = |v: &Value| v["latency_ms"]["p50"].as_f64().unwrap_or(0.0);
    let p99 = |v: &Value| v["latency_ms"]["p99"].as_f64().unwrap_or(0.0);
    json!({
        "direct": direct,
        "proxy": proxied,
        "added_ms": {"p50": p50(proxied) - p50(direct), "p99": p99(proxied) - p99(direct)},
    })
}

fn main() {
    let connections = support::bench_setting("BENCH_CONNECTIONS", 64);
    let messages = support::bench_setting("BENCH_MESSAGES", 300);
    let calls = support::bench_setting("BENCH_CALLS", 2000);
    let runtime = support::bench_runtime();
    let moto = support::Moto::start();
    let server = support::Server::start(&[
        ("AWS_ENDPOINT_URL", &moto.url),
        ("AWS_ACCESS_KEY_ID", "AKIAHTTPBENCHEXAMPLE"),
        (
            "AWS_SECRET_ACCESS_KEY",
            "httpBenchSecretExample000000000000000000",
        ),
        ("AWS_REGION", "us-east-1"),
        ("RATE_LIMIT_PER_SECOND", "1000000"),
        ("RATE_LIMIT_BURST", "1000000"),
    ]);
    server.logs.discard();
    let addr = server.addr.clone();
    let ws_url = server.ws_url();
    let results = runtime.block_on(async {
        // Warm up: the identity cache, connections, both paths.
        http_loop(addr.clone(), 20).await;
        ws_loop(ws_url.clone(), 20).await;
        let mut rounds = Vec::new();
        // Interleaved, twice, so that neither transport gets the quieter machine.
        for _ in 0..2 {
            let a = addr.clone();
            let http = fan_out(connections, || http_loop(a.clone(), messages)).await;
            let u = ws_url.clone();
            let ws = fan_out(connections, || ws_loop(u.clone(), messages)).await;
            rounds.push((http, ws));
        }
        // The better round of each, reported whole.
        let best = |pick: fn(&(Figures, Figures)) -> &Figures| {
            let rate = |f: &Figures| f.latencies.len() as f64 / f.elapsed.as_secs_f64();
            rounds
                .iter()
                .map(pick)
                .max_by(|a, b| rate(a).total_cmp(&rate(b)))
                .cloned()
                .expect("a round")
        };
        let http = best(|r| &r.0).report();
        let ws = best(|r| &r.1).report();
        let ratio = http["messages_per_second"].as_f64().unwrap_or(0.0)
            / ws["messages_per_second"].as_f64().unwrap_or(1.0);
        let direct_http = http_loop_figures(addr.clone(), calls).await.report();
        let direct_ws = ws_loop_figures(ws_url.clone(), calls).await.report();
        (http, ws, ratio, direct_http, direct_ws)
    });
    let (http, ws, ratio, direct_http, direct_ws) = results;
    let proxy_http = through_proxy(&format!("http://{addr}/mcp"), calls).report();
    let proxy_ws = through_proxy(&ws_url, calls).report();
    let results = json!({
        "connections": connections,
        "messages_per_connection": messages,
        "tool": TOOL,
        "http": http,
        "websocket": ws,
        "http_to_websocket": ratio,
        "proxy": {
            "calls": calls,
            "http": added(&direct_http, &proxy_http),
            "websocket": added(&direct_ws, &proxy_ws),
        },
    });
    println!("{}", serde_json::to_string_pretty(&results).expect("JSON"));
    if let Ok(path) = std::env::var("BENCH_OUT") {
        std::fs::write(path, results.to_string()).expect("write BENCH_OUT");
    }
}

async fn http_loop_figures(addr: String, count: usize) -> Figures {
    let started = Instant::now();
    let (latencies, errors) = http_loop(addr, count).await;
    Figures {
        latencies,
        errors,
        elapsed: started.elapsed(),
    }
}

async fn ws_loop_figures(url: String, count: usize) -> Figures {
    let started = Instant::now();
    let (latencies, errors) = ws_loop(url, count).await;
    Figures {
        latencies,
        errors,
        elapsed: started.elapsed(),
    }
}
