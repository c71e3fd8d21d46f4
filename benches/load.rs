//! Load through `serve` (the release binary), two scenarios:
//!
//! - `connections`: 1,000 concurrent WebSocket connections, each sending 100 mixed messages
//!   (`ping`, `tools/list`, `tools/call` of each read-only tool, envelope requests, and bad ones
//!   that get errors), four in flight per connection. Every request must be answered exactly
//!   once (matched by id). Reports the time, the answers, and serve's RSS before, at peak and
//!   after the connections close.
//! - `hostile`: ten connections that send 300 messages each (a batch of 50 `tools/list`, whose
//!   answer is 128 KB) and never read. Reports serve's RSS before, at peak and after they are
//!   closed (with 1008).
//!
//! `cargo bench --bench load` (`BENCH_LOAD_CONNECTIONS`, default 1,000; `BENCH_LOAD_MESSAGES`,
//! default 100; `BENCH_OUT`, a file for the JSON results).

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// The `seq`th message of a connection, and whether its answer is an error.
fn mixed(seq: usize) -> (Value, bool) {
    let id = seq as u64;
    let call = |name: &str, arguments: Value| json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": name, "arguments": arguments}});
    match seq % 10 {
        0 => (json!({"jsonrpc": "2.0", "id": id, "method": "ping"}), false),
        1 => (
            json!({"jsonrpc": "2.0", "id": id, "method": "tools/list"}),
            false,
        ),
        2 => (call("aws_get_credentials", json!({})), false),
        3 => (call("aws_get_account_info", json!({})), false),
        4 => (call("aws_list_profiles", json!({})), false),
        5 => (
            json!({"message_type": "REQUEST", "protocol_version": "2.0", "message_id": id, "method": "aws/get-credentials", "params": {}}),
            false,
        ),
        6 => (
            call(
                "aws_get_credentials",
                json!({"include_session_token": "yes"}),
            ),
            true,
        ),
        7 => (
            json!({"jsonrpc": "2.0", "id": id, "method": "resources/list"}),
            true,
        ),
        8 => (
            call(
                "aws_get_credentials",
                json!({"include_session_token": true}),
            ),
            false,
        ),
        _ => (
            call("aws_get_account_info", json!({"profile": "missing"})),
            true,
        ),
    }
}

/// The id an answer carries, in either format.
fn answer_id(answer: &Value) -> Option<u64> {
    answer
        .get("id")
        .or_else(|| answer.get("request_id"))
        .and_then(Value::as_u64)
}

fn is_error(answer: &Value) -> bool {
    answer.get("error").is_some()
        || answer["message_type"] == "ERROR"
        || answer["result"]["isError"] == true
}

#[derive(Default)]
struct Tally {
    answered: usize,
    missing: usize,
    duplicated: usize,
    unexpected: usize,
}

async fn connection(url: String, count: usize, window: usize) -> Tally {
    let mut tally = Tally::default();
    let Ok((stream, _)) = support::ws_connect(url.as_str()).await else {
        tally.missing = count;
        return tally;
    };
    let (mut sink, mut source) = stream.split();
    let mut waiting: HashMap<u64, bool> = HashMap::new();
    let mut answered: HashMap<u64, ()> = HashMap::new();
    let mut next = 0;
    while next < count || !waiting.is_empty() {
        while next < count && waiting.len() < window {
            let (message, error) = mixed(next);
            waiting.insert(next as u64, error);
            if sink.send(Message::text(message.to_string())).await.is_err() {
                break;
            }
            next += 1;
        }
        let reply = match tokio::time::timeout(Duration::from_secs(60), source.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => text,
            Ok(Some(Ok(_))) => continue,
            _ => break,
        };
        let answer: Value = serde_json::from_str(&reply).unwrap_or(Value::Null);
        let Some(id) = answer_id(&answer) else {
            tally.unexpected += 1;
            continue;
        };
        if answered.insert(id, ()).is_some() {
            tally.duplicated += 1;
            continue;
        }
        match waiting.remove(&id) {
            Some(error) => {
                tally.answered += 1;
                if error != is_error(&answer) {
                    tally.unexpected += 1;
                }
            }
            None => tally.unexpected += 1,
        }
    }
    tally.missing += waiting.len() + (count - next);
    let _ = sink.close().await;
    tally
}

/// Serve's RSS once it has settled after a load: the lowest of `BENCH_SETTLE_SECS` (default
/// 15) of samples, long enough for jemalloc's 10 s decay to give freed memory back.
fn settled_rss(pid: u32) -> u64 {
    let samples = support::bench_setting("BENCH_SETTLE_SECS", 15) * 2;
    let mut lowest = support::rss_kb(pid);
    for _ in 0..samples {
        std::thread::sleep(Duration::from_millis(500));
        lowest = lowest.min(support::rss_kb(pid));
    }
    lowest
}

fn connections_scenario(runtime: &tokio::runtime::Runtime, moto: &support::Moto) -> Value {
    let connections = support::bench_setting("BENCH_LOAD_CONNECTIONS", 1000);
    let messages = support::bench_setting("BENCH_LOAD_MESSAGES", 100);
    let server = support::Server::start(&env(moto));
    server.logs.discard();
    let url = server.ws_url();
    // Warm: the identity cache and moto's first answer.
    runtime.block_on(connection(url.clone(), 20, 1));
    let before = settled_rss(server.pid());
    let started = Instant::now();
    let tallies = runtime.block_on(async {
        let tasks: Vec<_> = (0..connections)
            .map(|_| tokio::spawn(connection(url.clone(), messages, 4)))
            .collect();
        let mut tallies = Vec::new();
        for task in tasks {
            tallies.push(task.await.unwrap_or_default());
        }
        tallies
    });
    let elapsed = started.elapsed();
    let peak = server.peak_rss_kb();
    let after = settled_rss(server.pid());
    let sum = |f: fn(&Tally) -> usize| tallies.iter().map(f).sum::<usize>();
    json!({
        "connections": connections,
        "messages_per_connection": messages,
        "requests": connections * messages,
        "answered_once": sum(|t| t.answered),
        "missing": sum(|t| t.missing),
        "duplicated": sum(|t| t.duplicated),
        "unexpected": sum(|t| t.unexpected),
        "seconds": elapsed.as_secs_f64(),
        "messages_per_second": sum(|t| t.answered) as f64 / elapsed.as_secs_f64(),
        "rss_kb": {"before": before, "peak": peak, "after": after},
    })
}

fn hostile_scenario(moto: &support::Moto) -> Value {
    let mut vars = env(moto);
    vars.push(("SEND_TIMEOUT_SECS", "2"));
    let server = support::Server::start(&vars);
    let before = settled_rss(server.pid());
    let batch: Vec<Value> = (0..50)
        .map(|i| json!({"jsonrpc": "2.0", "id": i, "method": "tools/list"}))
        .collect();
    let frame = support::RawWs::frame(1, true, true, Value::Array(batch).to_string().as_bytes());
    let started = Instant::now();
    let clients: Vec<_> = (0..10)
        .map(|_| {
            let mut raw = support::RawWs::connect(&server.addr);
            let frame = frame.clone();
            std::thread::spawn(move || {
                let _ = raw.stream.set_write_timeout(Some(Duration::from_secs(5)));
                let mut sent = 0;
                for _ in 0..300 {
                    if raw.send(&frame).is_err() {
                        break;
                    }
                    sent += 1;
                }
                (raw, sent)
            })
        })
        .collect();
    // They stay connected, never reading, until the server closes them.
    let held: Vec<(support::RawWs, usize)> =
        clients.into_iter().filter_map(|c| c.join().ok()).collect();
    let sent: usize = held.iter().map(|(_, sent)| sent).sum();
    let deadline = Instant::now() + Duration::from_secs(60);
    let closed = loop {
        let closed = server
            .logs
            .records()
            .into_iter()
            .filter(|r| r["fields"]["status_code"] == 1008)
            .count();
        if closed == 10 || Instant::now() > deadline {
            break closed;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let elapsed = started.elapsed();
    drop(held);
    let peak = server.peak_rss_kb();
    let after = settled_rss(server.pid());
    json!({
        "clients": 10,
        "messages_sent": sent,
        "closed_with_1008": closed,
        "seconds_to_close_all": elapsed.as_secs_f64(),
        "rss_kb": {"before": before, "peak": peak, "after": after},
    })
}

fn env(moto: &support::Moto) -> Vec<(&str, &str)> {
    vec![
        ("AWS_ENDPOINT_URL", moto.url.as_str()),
        ("AWS_ACCESS_KEY_ID", "AKIALOADBENCHEXAMPLE"),
        (
            "AWS_SECRET_ACCESS_KEY",
            "loadBenchSecretExample000000000000000000",
        ),
        (
            "AWS_SESSION_TOKEN",
            "FQoGZXIvYXdzELoadBenchSessionToken000000",
        ),
        ("AWS_REGION", "us-east-1"),
        ("RATE_LIMIT_PER_SECOND", "1000000"),
        ("RATE_LIMIT_BURST", "1000000"),
    ]
}

fn main() {
    let runtime = support::bench_runtime();
    let moto = support::Moto::start();
    let results = json!({
        "connections": connections_scenario(&runtime, &moto),
        "hostile": hostile_scenario(&moto),
    });
    println!("{}", serde_json::to_string_pretty(&results).expect("JSON"));
    if let Ok(path) = std::env::var("BENCH_OUT") {
        std::fs::write(path, results.to_string()).expect("write BENCH_OUT");
    }
}
