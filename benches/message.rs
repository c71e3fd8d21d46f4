//! Per-message cost in-process: decode, dispatch and encode through `protocol::handle`, for
//! `ping`, `tools/list`, a reference-envelope `aws/get-credentials`, `tools/call
//! aws_get_account_info` with the identity cached (moto answers the one STS call that fills
//! the cache), and `tools/call aws_get_credentials` (the same answer as the envelope's, with
//! its text copy). Then the same messages as Lambda hands them over: an API Gateway WebSocket event
//! decoded as lambda_runtime decodes it, `gateway::lambda::handle`, and the response encoded as
//! lambda_runtime encodes it (the Runtime API's HTTP round trip is the coldstart bench's), and
//! an HTTP API event carrying `tools/call aws_get_credentials` (`events/http/`).
//!
//! Criterion measures each message; a second pass times every call of a long run and reports
//! p50 and p99. `cargo bench --bench message`; `BENCH_QUICK=1` for a few iterations (CI);
//! `BENCH_OUT=file` for the JSON results. For a profiler, `BENCH_ONLY=PREFIX` runs only the
//! timed loop (`BENCH_ITERATIONS` calls, default 20,000) of the messages whose name starts with
//! `PREFIX`: e.g. `BENCH_ONLY=envelope valgrind --tool=callgrind
//! --toggle-collect='mcp_aws_tools::protocol::handle::{{closure}}' <the bench binary>`. With
//! `BENCH_LOG=1` beside it, each message also writes its log record as `serve` does (stdout,
//! through the batch writer; `AWS_LAMBDA_LOG_FORMAT=JSON` for the JSON record), which the
//! recorded figures leave out. A prefix that starts with `Lambda event: ` runs the messages
//! inside their API Gateway WebSocket events instead, and `Lambda HTTP API event: ` the HTTP API
//! events, through [`invoke_event`] (for callgrind,
//! `--toggle-collect='message::invoke_event::{{closure}}'`).

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use criterion::Criterion;
use mcp_aws_tools::config::Config;
use mcp_aws_tools::protocol;
use mcp_aws_tools::state::AppState;
use serde_json::{Value, json};

fn messages() -> Vec<(&'static str, Vec<u8>)> {
    let text = |v: Value| v.to_string().into_bytes();
    vec![
        (
            "ping",
            text(json!({"jsonrpc": "2.0", "id": 1, "method": "ping"})),
        ),
        (
            "tools/list",
            text(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}})),
        ),
        (
            "envelope aws/get-credentials",
            text(
                json!({"message_type": "REQUEST", "protocol_version": "2.0", "message_id": "req-1",
                "method": "aws/get-credentials", "params": {}}),
            ),
        ),
        (
            "tools/call aws_get_account_info (cached)",
            text(json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                "params": {"name": "aws_get_account_info", "arguments": {}}})),
        ),
        (
            "tools/call aws_get_credentials",
            text(json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call",
                "params": {"name": "aws_get_credentials", "arguments": {}}})),
        ),
    ]
}

fn config(sts: &str) -> Config {
    let vars: HashMap<&str, &str> = HashMap::from([
        ("AWS_ACCESS_KEY_ID", "AKIABENCHMARKEXAMPLE"),
        (
            "AWS_SECRET_ACCESS_KEY",
            "benchmarkSecretExample000000000000000000",
        ),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ENDPOINT_URL_STS", sts),
        ("RATE_LIMIT_PER_SECOND", "1000000000"),
        ("RATE_LIMIT_BURST", "1000000000"),
    ]);
    Config::from_lookup(|name| vars.get(name).map(|v| Ok(v.to_string()))).expect("config")
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Times each of `n` calls of `call`, one at a time.
async fn time_each<F, T>(n: usize, call: impl Fn() -> F) -> Vec<Duration>
where
    F: std::future::Future<Output = T>,
{
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        let output = call().await;
        samples.push(started.elapsed());
        std::hint::black_box(output);
    }
    samples
}

/// Prints a row's p50 and p99 and returns them for BENCH_OUT.
fn report(name: &str, mut samples: Vec<Duration>) -> Value {
    samples.sort();
    let at = |q: f64| micros(samples[((samples.len() - 1) as f64 * q) as usize]);
    println!(
        "{name:<42} p50 {:>8.2} µs   p99 {:>8.2} µs   ({} calls)",
        at(0.50),
        at(0.99),
        samples.len()
    );
    json!({"p50_us": at(0.50), "p99_us": at(0.99), "calls": samples.len()})
}

const LAMBDA_EVENT: &str = "Lambda event: ";
const HTTP_EVENT: &str = "Lambda HTTP API event: ";
/// HTTP API events, by the message they carry.
const HTTP_EVENTS: [(&str, &str); 1] = [(
    "tools/call aws_get_credentials",
    "events/http/mcp-get-credentials.json",
)];

/// `body` inside an API Gateway WebSocket event (`events/mcp-ping.json`'s), as its text.
fn lambda_event(body: &[u8]) -> Vec<u8> {
    let text =
        std::fs::read_to_string(support::repo().join("events/mcp-ping.json")).expect("event");
    let mut event: Value = serde_json::from_str(&text).expect("JSON");
    event["body"] = Value::String(String::from_utf8(body.to_vec()).expect("UTF-8"));
    serde_json::to_vec(&event).expect("JSON")
}

/// One invocation as lambda_runtime makes it: the event decoded (through serde_path_to_error,
/// as the runtime decodes it), handled, and the response encoded.
async fn invoke_event(state: &AppState, event: &[u8]) -> Vec<u8> {
    let payload: Box<serde_json::value::RawValue> =
        serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_slice(event))
            .expect("event");
    let response = mcp_aws_tools::gateway::lambda::handle(
        state,
        lambda_runtime::LambdaEvent::new(payload, lambda_runtime::Context::default()),
    )
    .await
    .expect("a response");
    serde_json::to_vec(&response).expect("JSON")
}

fn main() {
    let quick = std::env::var_os("BENCH_QUICK").is_some();
    let runtime = support::bench_runtime();
    let moto = support::Moto::start();
    let state = runtime
        .block_on(AppState::new(config(&moto.url)))
        .expect("state");
    let messages = messages();
    // Connected as `serve` and API Gateway connect one ($connect stores its caller), so that a
    // tool call reads the connection's state as it does there.
    let mut origin = mcp_aws_tools::session::Origin::connection("bench");
    origin.caller.source_ip = Some("127.0.0.1".to_owned());
    runtime
        .block_on(
            state
                .sessions
                .connect("bench", &origin.caller, 1_795_000_000_000),
        )
        .expect("connected");
    for (name, body) in &messages {
        let reply = runtime
            .block_on(protocol::handle(&state, &origin, body))
            .expect("a reply");
        let reply: Value = serde_json::from_str(&reply).expect("JSON");
        let failed = reply.get("error").is_some()
            || reply.get("error_code").is_some()
            || reply["result"]["isError"] == true;
        assert!(!failed, "{name}: {reply}");
    }
    let cached = runtime
        .block_on(protocol::handle(&state, &origin, &messages[3].1))
        .unwrap_or_default();
    assert!(
        cached.contains("\\\"cached\\\":true"),
        "the identity is cached: {cached}"
    );

    if let Ok(only) = std::env::var("BENCH_ONLY") {
        let iterations = support::bench_setting("BENCH_ITERATIONS", 20_000);
        let _log = std::env::var_os("BENCH_LOG")
            .map(|_| mcp_aws_tools::logging::init(mcp_aws_tools::logging::Output::StdoutBatched));
        if let Some(only) = only.strip_prefix(HTTP_EVENT) {
            for (_, file) in HTTP_EVENTS
                .iter()
                .filter(|(name, _)| name.starts_with(only))
            {
                let event = std::fs::read(support::repo().join(file)).expect("event");
                runtime.block_on(time_each(iterations, || invoke_event(&state, &event)));
            }
            return;
        }
        if let Some(only) = only.strip_prefix(LAMBDA_EVENT) {
            for (_, body) in messages.iter().filter(|(name, _)| name.starts_with(only)) {
                let event = lambda_event(body);
                runtime.block_on(time_each(iterations, || invoke_event(&state, &event)));
            }
            return;
        }
        for (_, body) in messages.iter().filter(|(name, _)| name.starts_with(&only)) {
            runtime.block_on(time_each(iterations, || {
                protocol::handle(&state, &origin, body)
            }));
        }
        return;
    }

    let mut criterion = Criterion::default().configure_from_args();
    if quick {
        criterion = criterion
            .sample_size(10)
            .warm_up_time(Duration::from_millis(100))
            .measurement_time(Duration::from_millis(300));
    }
    {
        let mut group = criterion.benchmark_group("message");
        for (name, body) in &messages {
            group.bench_function(*name, |b| {
                b.to_async(&runtime)
                    .iter(|| protocol::handle(&state, &origin, body));
            });
        }
        group.finish();
    }
    criterion.final_summary();

    // Every call timed: p50 and p99.
    let iterations = if quick { 2_000 } else { 200_000 };
    let mut results = serde_json::Map::new();
    for (name, body) in &messages {
        let samples = runtime.block_on(time_each(iterations, || {
            protocol::handle(&state, &origin, body)
        }));
        results.insert((*name).to_owned(), report(name, samples));
    }
    // Events as Lambda delivers them: each answered well once, then every invocation timed.
    let mut event_row = |name: String, event: Vec<u8>| {
        let first =
            String::from_utf8(runtime.block_on(invoke_event(&state, &event))).expect("UTF-8");
        assert!(
            first.contains("\"statusCode\":200") && !first.contains("isError\\\":true"),
            "{name}: {first}"
        );
        let samples = runtime.block_on(time_each(iterations, || invoke_event(&state, &event)));
        let row = report(&name, samples);
        results.insert(name, row);
    };
    // The same messages inside API Gateway WebSocket events.
    for (name, body) in messages
        .iter()
        .filter(|(name, _)| !name.starts_with("envelope"))
    {
        event_row(format!("{LAMBDA_EVENT}{name}"), lambda_event(body));
    }
    // An HTTP API event (Streamable HTTP through API Gateway or a Function URL), as written.
    for (name, file) in HTTP_EVENTS {
        let event = std::fs::read(support::repo().join(file)).expect("event");
        event_row(format!("{HTTP_EVENT}{name}"), event);
    }
    if let Ok(path) = std::env::var("BENCH_OUT") {
        std::fs::write(path, Value::Object(results).to_string()).expect("write BENCH_OUT");
    }
}
