//! Cold start: the Lambda build of the function (`--no-default-features`, what `cargo lambda
//! build` and `sam build` ship) spawned as Lambda spawns it, against a Lambda Runtime API
//! emulator (tests/support/runtime_api.rs), measured from spawn to its first
//! `invocation/next` (init) and to its first `response`; the same for a lambda_runtime
//! hello-world (`examples/hello.rs`) built in the same run, as the reference. Spawns are
//! interleaved. Events: `tools/list`, and `tools/call aws_get_account_info` against moto (warmed
//! first, since moto is slow on its first call). Also the peak RSS (VmHWM) of each function
//! process after its first response, and, after each `get_account_info` spawn, how long moto
//! itself takes to answer a GetCallerIdentity on a new connection (sent by the benchmark), which
//! the cold `get_account_info` waits for.
//!
//! Then warm invocations, event in to response out through the same emulator: `ping`,
//! `tools/list` and a cached `get_account_info` on one warm function, and the hello-world's
//! event, `BENCH_WARM_INVOCATIONS` (default 10,000) of each, p50/p99.
//!
//! `scripts/bench` builds both binaries; by hand:
//! `cargo build --release --no-default-features && mkdir -p target/bench/lambda &&
//! cp target/release/mcp-aws-tools target/bench/lambda/bootstrap &&
//! cargo build --release --example hello && cargo bench --bench coldstart`
//! (`BENCH_SPAWNS`, default 30; `BENCH_LAMBDA_BINARY`, another build to measure; `BENCH_OUT`, a
//! file for the JSON results).

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::runtime_api::{Outcome, RuntimeApi};

struct Sample {
    init: Duration,
    first_response: Duration,
    peak_rss_kb: u64,
}

/// The function as Lambda starts it: Lambda's variables, an execution role's keys, `env`.
fn lambda_command(binary: &Path, api: &RuntimeApi, home: &Path, env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(binary);
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("AWS_LAMBDA_RUNTIME_API", api.address())
        .env("AWS_LAMBDA_FUNCTION_NAME", "mcp-aws-tools")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/mcp-aws-tools")
        .env(
            "AWS_LAMBDA_LOG_STREAM_NAME",
            "2026/11/24/[$LATEST]0123456789abcdef",
        )
        .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
        .env("_HANDLER", "bootstrap")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "ASIACOLDSTARTEXAMPLE")
        .env(
            "AWS_SECRET_ACCESS_KEY",
            "coldStartSecretExample000000000000000000",
        )
        .env(
            "AWS_SESSION_TOKEN",
            "IQoJb3JpZ2luX2VjEColdStartSessionToken0000000000",
        )
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
}

/// moto's own answer to a GetCallerIdentity, as the function's first call makes it: a new
/// connection, the query form, the function's access key id in the `Authorization` header
/// (moto does not check the signature unless told to), until the whole body is read.
async fn moto_answer(port: u16) -> Duration {
    use http_body_util::{BodyExt, Full};
    let request = http::Request::post("/")
        .header("host", format!("127.0.0.1:{port}"))
        .header(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        )
        .header("x-amz-date", "20261207T000000Z")
        .header(
            "authorization",
            format!(
                "AWS4-HMAC-SHA256 Credential=ASIACOLDSTARTEXAMPLE/20261207/us-east-1/sts/aws4_request, \
                 SignedHeaders=content-type;host;x-amz-date, Signature={}",
                "0".repeat(64)
            ),
        )
        .body(Full::new(bytes::Bytes::from_static(
            b"Action=GetCallerIdentity&Version=2011-06-15",
        )))
        .expect("request");
    let exchange = async {
        let started = Instant::now();
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect to moto");
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .expect("handshake");
        let connection = tokio::spawn(connection);
        let response = sender.send_request(request).await.expect("moto's answer");
        let status = response.status();
        let body = response.into_body().collect().await.expect("its body");
        let took = started.elapsed();
        connection.abort();
        let body = String::from_utf8_lossy(&body.to_bytes()).into_owned();
        assert!(
            status == http::StatusCode::OK && body.contains("GetCallerIdentityResult"),
            "moto's answer: {status} {body}"
        );
        took
    };
    tokio::time::timeout(Duration::from_secs(30), exchange)
        .await
        .expect("moto answers within 30 s")
}

/// One cold start: spawn, wait for the first response, read the peak RSS, kill.
async fn cold_start(binary: &Path, event: &str, env: &[(&str, &str)]) -> Sample {
    let api = RuntimeApi::start().await;
    let home = support::temp_dir("coldstart-home");
    let mut command = lambda_command(binary, &api, &home, env);
    let spawned = Instant::now();
    let mut child = command.spawn().expect("spawn the function");
    let outcome = tokio::time::timeout(Duration::from_secs(30), api.invoke(event))
        .await
        .unwrap_or_else(|_| panic!("{}: no first answer", binary.display()));
    let responded = Instant::now();
    let Outcome::Response(body) = outcome else {
        panic!("{}: {outcome:?}", binary.display());
    };
    assert!(body.contains("statusCode"), "{body}");
    let init = api.first_next().expect("asked for an event") - spawned;
    let peak_rss_kb = support::peak_rss_kb(child.id());
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(home);
    Sample {
        init,
        first_response: responded - spawned,
        peak_rss_kb,
    }
}

/// One warm function (started, and its first answer awaited), then `n` invocations of each
/// event in turn, each timed from the moment the emulator hands it over to the moment the
/// response arrives.
async fn warm_invocations_of<'a>(
    binary: &Path,
    events: &[(&'a str, &str)],
    env: &[(&str, &str)],
    n: usize,
) -> Vec<(&'a str, Value)> {
    let api = RuntimeApi::start().await;
    let home = support::temp_dir("warm-home");
    let mut child = lambda_command(binary, &api, &home, env)
        .env("RATE_LIMIT_BURST", "1000000000")
        .env("RATE_LIMIT_PER_SECOND", "1000000000")
        .spawn()
        .expect("spawn the function");
    let mut results = Vec::new();
    for (name, event) in events {
        // The first answers warm the function up (and fill the identity cache).
        for _ in 0..100 {
            let outcome = tokio::time::timeout(Duration::from_secs(30), api.invoke(event))
                .await
                .unwrap_or_else(|_| panic!("{}: no answer to {name}", binary.display()));
            assert!(matches!(outcome, Outcome::Response(_)), "{outcome:?}");
        }
        let mut latencies = Vec::with_capacity(n);
        let started = Instant::now();
        for _ in 0..n {
            let sent = Instant::now();
            let outcome = api.invoke(event).await;
            latencies.push(sent.elapsed());
            let Outcome::Response(body) = outcome else {
                panic!("{name}: {outcome:?}");
            };
            assert!(body.contains("statusCode"), "{body}");
            assert!(!body.contains(r#"\"isError\":true"#), "{body}");
        }
        results.push((
            *name,
            support::latency_report(&mut latencies, 0, started.elapsed()),
        ));
    }
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(home);
    results
}

fn stats<T>(samples: &[T], pick: impl Fn(&T) -> f64) -> Value {
    let mut values: Vec<f64> = samples.iter().map(pick).collect();
    values.sort_by(f64::total_cmp);
    let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
    json!({"median": at(0.5), "p10": at(0.1), "p90": at(0.9), "min": values[0], "max": values[values.len() - 1]})
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let spawns: usize = std::env::var("BENCH_SPAWNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let release = PathBuf::from(support::BINARY)
        .parent()
        .expect("dir")
        .to_path_buf();
    let ours = std::env::var_os("BENCH_LAMBDA_BINARY")
        .map(PathBuf::from)
        .unwrap_or_else(|| support::repo().join("target/bench/lambda/bootstrap"));
    let hello = release.join("examples/hello");
    for (binary, build) in [
        (
            &ours,
            "the Lambda build (see the top of benches/coldstart.rs)",
        ),
        (&hello, "cargo build --release --example hello"),
    ] {
        assert!(
            binary.is_file(),
            "{} is missing: {build} first",
            binary.display()
        );
    }
    let warm_invocations = support::bench_setting("BENCH_WARM_INVOCATIONS", 10_000);
    let runtime = support::bench_runtime();
    let moto = support::Moto::start();
    let event = |body: Value| {
        let text =
            std::fs::read_to_string(support::repo().join("events/mcp-ping.json")).expect("event");
        let mut event: Value = serde_json::from_str(&text).expect("JSON");
        event["body"] = Value::String(body.to_string());
        event.to_string()
    };
    let tools_list = event(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}));
    let account_info = event(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "aws_get_account_info", "arguments": {}}}));
    // BENCH_EXTRA_ENV="NAME=value,NAME=value": more variables for the function, for experiments.
    let extra = std::env::var("BENCH_EXTRA_ENV").unwrap_or_default();
    let mut moto_env = vec![("AWS_ENDPOINT_URL", moto.url.as_str())];
    moto_env.extend(extra.split(',').filter_map(|pair| pair.split_once('=')));

    let ping = event(json!({"jsonrpc": "2.0", "id": 3, "method": "ping"}));
    let warm = runtime.block_on(async {
        let mut report = serde_json::Map::new();
        let mut hello_event = vec![("hello_world", tools_list.as_str())];
        let mut our_events = vec![
            ("ping", ping.as_str()),
            ("tools_list", tools_list.as_str()),
            ("get_account_info_cached", account_info.as_str()),
        ];
        for (binary, events, env) in [
            (&hello, &mut hello_event, &[][..]),
            (&ours, &mut our_events, &moto_env[..]),
        ] {
            for (name, latencies) in
                warm_invocations_of(binary, events, env, warm_invocations).await
            {
                report.insert(name.to_owned(), latencies);
            }
        }
        Value::Object(report)
    });

    let (hello_samples, list_samples, info_samples, moto_samples) = runtime.block_on(async {
        // moto's first answers are slow: warm it.
        for _ in 0..3 {
            cold_start(&ours, &account_info, &moto_env).await;
        }
        let (mut hello_s, mut list_s, mut info_s) = (Vec::new(), Vec::new(), Vec::new());
        let mut moto_s = Vec::new();
        for _ in 0..spawns {
            hello_s.push(cold_start(&hello, &tools_list, &[]).await);
            list_s.push(cold_start(&ours, &tools_list, &moto_env).await);
            info_s.push(cold_start(&ours, &account_info, &moto_env).await);
            moto_s.push(moto_answer(moto.port).await);
        }
        (hello_s, list_s, info_s, moto_s)
    });

    let summary = |samples: &[Sample]| {
        json!({
            "init_ms": stats(samples, |s| ms(s.init)),
            "first_response_ms": stats(samples, |s| ms(s.first_response)),
            "peak_rss_kb": stats(samples, |s| s.peak_rss_kb as f64),
        })
    };
    let median = |samples: &[Sample], f: fn(&Sample) -> Duration| {
        let mut v: Vec<f64> = samples.iter().map(|s| ms(f(s))).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let hello_response = median(&hello_samples, |s| s.first_response);
    let info_response = median(&info_samples, |s| s.first_response);
    let moto_summary = stats(&moto_samples, |took| ms(*took));
    let moto_median = moto_summary["median"].as_f64().unwrap_or(0.0);
    let hello_init = median(&hello_samples, |s| s.init);
    let results = json!({
        "spawns": spawns,
        "hello_world": summary(&hello_samples),
        "tools_list": summary(&list_samples),
        "get_account_info": summary(&info_samples),
        "ratio_first_response": {
            "tools_list": median(&list_samples, |s| s.first_response) / hello_response,
            "get_account_info": info_response / hello_response,
        },
        // moto's own answer time, measured beside the spawns, and the cold get_account_info
        // with it taken away: what the function itself spends, against the hello-world.
        "moto_get_caller_identity_ms": moto_summary,
        "ratio_first_response_beyond_moto": {
            "get_account_info": (info_response - moto_median) / hello_response,
        },
        "ratio_init": {
            "tools_list": median(&list_samples, |s| s.init) / hello_init,
            "get_account_info": median(&info_samples, |s| s.init) / hello_init,
        },
        "warm_invocations": warm,
        "binary": ours.display().to_string(),
        "binary_bytes": std::fs::metadata(&ours).map(|m| m.len()).unwrap_or(0),
        "hello_binary_bytes": std::fs::metadata(&hello).map(|m| m.len()).unwrap_or(0),
    });
    println!("{}", serde_json::to_string_pretty(&results).expect("JSON"));
    if let Ok(path) = std::env::var("BENCH_OUT") {
        std::fs::write(path, results.to_string()).expect("write BENCH_OUT");
    }
}
