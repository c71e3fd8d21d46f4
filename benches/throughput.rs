//! Throughput end to end: a WebSocket load generator against `serve` (the release binary).
//! N connections each send M messages, keeping a window of requests in flight; every reply is
//! matched to its request id exactly once. Reports messages per second, p50/p99 latency and
//! errors, for `ping`, and for a mix of `tools/call` against moto. Then the peak RSS (VmHWM) of
//! `serve`.
//!
//! `cargo bench --bench throughput` (`BENCH_CONNECTIONS`, default 64; `BENCH_MESSAGES`, default
//! 2,000 per connection; `BENCH_WINDOW`, default 16; `BENCH_SECONDS`, a bound on each run,
//! default 120; `BENCH_OUT`, a file for the JSON results).

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

struct Run {
    errors: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

/// One connection: `count` messages made by `make(seq)`, `window` in flight.
async fn connection(
    url: String,
    count: usize,
    window: usize,
    make: fn(usize) -> Value,
) -> (usize, Vec<Duration>) {
    let (stream, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .expect("connect");
    let (mut sink, mut source) = stream.split();
    let mut sent_at: HashMap<u64, Instant> = HashMap::with_capacity(window * 2);
    let mut latencies = Vec::with_capacity(count);
    let mut errors = 0;
    let mut next = 0usize;
    let mut answered = 0usize;
    while answered < count {
        while next < count && sent_at.len() < window {
            let message = make(next);
            sent_at.insert(next as u64, Instant::now());
            sink.send(Message::text(message.to_string()))
                .await
                .expect("send");
            next += 1;
        }
        let Some(Ok(Message::Text(text))) = source.next().await else {
            errors += count - answered;
            break;
        };
        let reply: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let matched = reply["id"].as_u64().and_then(|id| sent_at.remove(&id));
        match matched {
            Some(at) => latencies.push(at.elapsed()),
            None => errors += 1, // unknown or repeated id
        }
        if reply.get("error").is_some() || reply["result"]["isError"] == true {
            errors += 1;
        }
        answered += 1;
    }
    errors += sent_at.len();
    let _ = sink.close().await;
    (errors, latencies)
}

async fn run(
    url: &str,
    connections: usize,
    per_connection: usize,
    window: usize,
    bound: Duration,
    make: fn(usize) -> Value,
) -> Run {
    let started = Instant::now();
    let tasks: Vec<_> = (0..connections)
        .map(|_| tokio::spawn(connection(url.to_owned(), per_connection, window, make)))
        .collect();
    let mut errors = 0;
    let mut latencies = Vec::with_capacity(connections * per_connection);
    for task in tasks {
        match tokio::time::timeout(bound.saturating_sub(started.elapsed()), task).await {
            Ok(Ok((e, l))) => {
                errors += e;
                latencies.extend(l);
            }
            _ => errors += per_connection,
        }
    }
    Run {
        errors,
        elapsed: started.elapsed(),
        latencies,
    }
}

fn report(run: &mut Run) -> Value {
    support::latency_report(&mut run.latencies, run.errors, run.elapsed)
}

fn ping(seq: usize) -> Value {
    json!({"jsonrpc": "2.0", "id": seq, "method": "ping"})
}

fn tool_mix(seq: usize) -> Value {
    let (name, arguments) = match seq % 4 {
        0 => ("aws_get_account_info", json!({})),
        1 => ("aws_get_credentials", json!({})),
        2 => ("aws_validate_credentials", json!({})),
        _ => ("aws_list_profiles", json!({})),
    };
    json!({"jsonrpc": "2.0", "id": seq, "method": "tools/call", "params": {"name": name, "arguments": arguments}})
}

fn main() {
    let connections = support::bench_setting("BENCH_CONNECTIONS", 64);
    let messages = support::bench_setting("BENCH_MESSAGES", 2000);
    let window = support::bench_setting("BENCH_WINDOW", 16);
    let bound = Duration::from_secs(support::bench_setting("BENCH_SECONDS", 120) as u64);
    let runtime = support::bench_runtime();
    let moto = support::Moto::start();
    let server = support::Server::start(&[
        ("AWS_ENDPOINT_URL", &moto.url),
        ("AWS_ACCESS_KEY_ID", "AKIATHROUGHPUTEXAMPL"),
        (
            "AWS_SECRET_ACCESS_KEY",
            "throughputSecretExample00000000000000000",
        ),
        ("AWS_REGION", "us-east-1"),
        ("RATE_LIMIT_PER_SECOND", "1000000"),
        ("RATE_LIMIT_BURST", "1000000"),
        ("CREDENTIAL_RATE_LIMIT_PER_MINUTE", "60000000"),
        ("CREDENTIAL_RATE_LIMIT_BURST", "1000000"),
    ]);
    let url = server.ws_url();
    let results = runtime.block_on(async {
        // Warm up: connections, moto's first answers.
        run(&url, 4, 50, 4, bound, tool_mix).await;
        let mut pings = run(&url, connections, messages, window, bound, ping).await;
        let mix_messages = (messages / 10).max(10);
        let mut tools = run(
            &url,
            connections,
            mix_messages,
            window.min(4),
            bound,
            tool_mix,
        )
        .await;
        json!({
            "connections": connections,
            "window": window,
            "ping": report(&mut pings),
            "tools_call_mix": report(&mut tools),
        })
    });
    let mut results = results;
    results["serve_peak_rss_kb"] = json!(server.peak_rss_kb());
    println!("{}", serde_json::to_string_pretty(&results).expect("JSON"));
    if let Ok(path) = std::env::var("BENCH_OUT") {
        std::fs::write(path, results.to_string()).expect("write BENCH_OUT");
    }
}
