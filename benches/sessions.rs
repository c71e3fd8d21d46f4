//! What shared connection state costs a tool call: `tools/call aws_get_credentials` (one
//! strongly consistent read of the connection's item, the secrets opened) through the message
//! handler, in-process, with the session store in memory and with DynamoDB (moto on loopback)
//! and KMS envelope encryption (moto), two instances sharing the table, calls handed to either
//! at random. Reports p50/p99 of each and the difference, and the KMS calls per 1,000 tool calls.
//!
//! `cargo bench --bench sessions` (`BENCH_CALLS`, default 2,000 per store; `BENCH_OUT`, a file for
//! the JSON results).

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use mcp_aws_tools::config::Config;
use mcp_aws_tools::protocol;
use mcp_aws_tools::session::Origin;
use mcp_aws_tools::state::AppState;
use serde_json::{Value, json};

fn config(extra: &[(&str, &str)]) -> Config {
    let mut vars: HashMap<&str, &str> = HashMap::from([
        ("AWS_ACCESS_KEY_ID", "AKIASESSIONSBENCH001"),
        (
            "AWS_SECRET_ACCESS_KEY",
            "sessionsBenchSecretExample00000000000000",
        ),
        ("AWS_REGION", "us-east-1"),
        ("RATE_LIMIT_PER_SECOND", "1000000000"),
        ("RATE_LIMIT_BURST", "1000000000"),
        ("CREDENTIAL_RATE_LIMIT_PER_MINUTE", "1000000000"),
        ("CREDENTIAL_RATE_LIMIT_BURST", "1000000000"),
    ]);
    vars.extend(extra.iter().copied());
    Config::from_lookup(|name| vars.get(name).map(|v| Ok(v.to_string()))).expect("config")
}

fn percentile(sorted: &[Duration], q: f64) -> f64 {
    let index = ((sorted.len().max(1) - 1) as f64 * q) as usize;
    sorted.get(index).map_or(0.0, |d| d.as_secs_f64() * 1e6)
}

struct Measured {
    p50_us: f64,
    p99_us: f64,
    kms_calls: u64,
}

/// Sets credentials on a connection, then times `calls` get-credentials on random instances.
async fn measure(instances: &[AppState], calls: usize) -> Measured {
    let origin = Origin::connection("bench-connection");
    let set = json!({"jsonrpc": "2.0", "id": 0, "method": "tools/call", "params": {"name": "aws_set_environment", "arguments": {"access_key_id": "AKIASESSIONSCONNECT1", "secret_access_key": "benchConnectionSecret0000000000000000000", "session_token": "FQoGZXIvYXdzEBenchSessionToken000000000000"}}})
        .to_string();
    let reply = protocol::handle(&instances[0], &origin, set.as_bytes())
        .await
        .expect("a reply");
    assert!(!reply.contains("isError\":true"), "{reply}");
    let message = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "aws_get_credentials", "arguments": {}}})
        .to_string()
        .into_bytes();
    let mut times = Vec::with_capacity(calls);
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..calls {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let state = &instances[(seed % instances.len() as u64) as usize];
        let started = Instant::now();
        let reply = protocol::handle(state, &origin, &message)
            .await
            .expect("a reply");
        times.push(started.elapsed());
        let value: Value = serde_json::from_str(&reply).expect("JSON");
        assert_eq!(
            value["result"]["structuredContent"]["metadata"]["credentials_source"],
            "set_environment",
            "{reply}"
        );
    }
    times.sort();
    Measured {
        p50_us: percentile(&times, 0.5),
        p99_us: percentile(&times, 0.99),
        kms_calls: instances.iter().map(|s| s.sessions.kms_calls()).sum(),
    }
}

fn main() {
    let calls: usize = std::env::var("BENCH_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let runtime = support::bench_runtime();
    let moto = support::Moto::start();
    let results = runtime.block_on(async {
        let memory = AppState::instances(config(&[]), 1).await.expect("state");
        let shared = AppState::instances(
            config(&[
                ("SESSION_TABLE", &moto.table),
                ("KMS_KEY_ID", &moto.kms_key_id),
                ("AWS_ENDPOINT_URL", &moto.url),
            ]),
            2,
        )
        .await
        .expect("state");
        // Warm both (moto's first answers are slow). KMS calls are counted from the start: the
        // warm-up's are the data keys' first uses.
        let warm = 20;
        measure(&shared, warm).await;
        let in_memory = measure(&memory, calls).await;
        let in_dynamodb = measure(&shared, calls).await;
        let kms_calls = in_dynamodb.kms_calls;
        let tool_calls = calls + warm + 2;
        json!({
            "calls_per_store": calls,
            "memory_us": {"p50": in_memory.p50_us, "p99": in_memory.p99_us},
            "dynamodb_us": {"p50": in_dynamodb.p50_us, "p99": in_dynamodb.p99_us},
            "added_us": {
                "p50": in_dynamodb.p50_us - in_memory.p50_us,
                "p99": in_dynamodb.p99_us - in_memory.p99_us,
            },
            // Every tool call of the two instances, warm-up and set-environment included.
            "tool_calls": tool_calls,
            "kms_calls": kms_calls,
            "kms_calls_per_1000_tool_calls": kms_calls as f64 * 1000.0 / tool_calls as f64,
            "instances": 2,
        })
    });
    println!("{}", serde_json::to_string_pretty(&results).expect("JSON"));
    if let Ok(path) = std::env::var("BENCH_OUT") {
        std::fs::write(path, results.to_string()).expect("write BENCH_OUT");
    }
}
