//! Metrics overhead: the time a tool call takes with the recorder and the CloudWatch sink
//! publishing (to a local stand-in that decodes each PutMetricData) against the recorder with
//! the sink off, in the same run, interleaved in blocks of 1,000 calls; the cost of
//! `Recorder::record` alone, and from two threads at once; and PutMetricData requests per 1,000 tool calls with the default
//! flush settings.
//!
//! `cargo bench --bench metrics` (`BENCH_CALLS`, default 20,000 per configuration;
//! `BENCH_OUT`, a file for the JSON results).

#[path = "../tests/support/cloudwatch.rs"]
mod cloudwatch;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use mcp_aws_tools::config::Config;
use mcp_aws_tools::metrics::Recorder;
use mcp_aws_tools::names::ToolName;
use mcp_aws_tools::protocol;
use mcp_aws_tools::state::AppState;
use serde_json::json;

fn config(extra: &[(&str, &str)]) -> Config {
    let mut vars: HashMap<String, String> = [
        ("AWS_ACCESS_KEY_ID", "AKIABENCHMARKEXAMPLE"),
        (
            "AWS_SECRET_ACCESS_KEY",
            "benchmarkSecretExample000000000000000000",
        ),
        ("AWS_REGION", "us-east-1"),
        ("RATE_LIMIT_PER_SECOND", "1000000000"),
        ("RATE_LIMIT_BURST", "1000000000"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Config::from_lookup(|name| vars.get(name).cloned().map(Ok)).expect("config")
}

fn percentile(sorted: &[Duration], q: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[index].as_secs_f64() * 1e6
}

fn main() {
    let calls: usize = std::env::var("BENCH_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let results = runtime.block_on(async move {
        let stand_in = cloudwatch::CloudWatch::start().await;
        let off = AppState::new(config(&[("METRICS_SINK", "off")]))
            .await
            .expect("state");
        let on = AppState::new(config(&[
            ("METRICS_SINK", "cloudwatch"),
            ("AWS_ENDPOINT_URL_CLOUDWATCH", &stand_in.url),
        ]))
        .await
        .expect("state");
        let publisher = on.start_metrics().expect("publisher");
        let message = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "aws_get_credentials", "arguments": {}}})
        .to_string()
        .into_bytes();

        for state in [&off, &on] {
            for _ in 0..1000 {
                protocol::handle(state, &mcp_aws_tools::session::Origin::connection("warm-up"), &message).await;
            }
        }
        let mut samples_off = Vec::with_capacity(calls);
        let mut samples_on = Vec::with_capacity(calls);
        let blocks = calls.div_ceil(1000);
        for _ in 0..blocks {
            for (state, samples) in [(&off, &mut samples_off), (&on, &mut samples_on)] {
                for _ in 0..1000 {
                    let started = Instant::now();
                    let reply = protocol::handle(state, &mcp_aws_tools::session::Origin::connection("bench"), &message).await;
                    samples.push(started.elapsed());
                    assert!(reply.is_some_and(|r| r.contains("\"isError\":false")));
                }
            }
        }
        let calls_on = on.metrics.snapshot()["total"]["count"].as_u64().unwrap_or(0);
        publisher.shutdown().await;
        let requests = stand_in.received().len();

        // Recorder::record alone.
        let recorder = Recorder::new(u64::MAX, "off", "Bench".into());
        let n = 1_000_000u32;
        let started = Instant::now();
        for i in 0..n {
            recorder.record(ToolName::GetCredentials, None, Duration::from_micros(u64::from(i % 5000)));
        }
        let record_ns = started.elapsed().as_nanos() as f64 / f64::from(n);

        // Recorder::record from two threads at once, as `serve`'s two workers call it: wall
        // time per call on each thread.
        let recorder = Recorder::new(u64::MAX, "off", "Bench".into());
        let started = Instant::now();
        std::thread::scope(|scope| {
            for _ in 0..2 {
                scope.spawn(|| {
                    for i in 0..n {
                        recorder.record(ToolName::GetCredentials, None, Duration::from_micros(u64::from(i % 5000)));
                    }
                });
            }
        });
        let record_two_threads_ns = started.elapsed().as_nanos() as f64 / f64::from(n);
        assert_eq!(recorder.take().calls(), 2 * u64::from(n));

        samples_off.sort();
        samples_on.sort();
        let (off_p50, off_p99) = (percentile(&samples_off, 0.50), percentile(&samples_off, 0.99));
        let (on_p50, on_p99) = (percentile(&samples_on, 0.50), percentile(&samples_on, 0.99));
        json!({
            "calls_per_configuration": samples_on.len(),
            "sink_off_us": {"p50": off_p50, "p99": off_p99},
            "sink_cloudwatch_us": {"p50": on_p50, "p99": on_p99},
            "added_us": {"p50": on_p50 - off_p50, "p99": on_p99 - off_p99},
            "recorder_record_ns": record_ns,
            "recorder_record_two_threads_ns": record_two_threads_ns,
            "put_metric_data_requests": requests,
            "tool_calls_recorded": calls_on,
            "put_metric_data_requests_per_1000_calls": requests as f64 * 1000.0 / calls_on.max(1) as f64,
        })
    });
    println!("{}", serde_json::to_string_pretty(&results).expect("JSON"));
    if let Ok(path) = std::env::var("BENCH_OUT") {
        std::fs::write(&path, results.to_string()).expect("write BENCH_OUT");
    }
}
