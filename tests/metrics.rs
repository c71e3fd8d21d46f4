//! Metrics: what PutMetricData carries (checked on the wire, CBOR decoded), EMF lines, the
//! `/api/metrics` endpoint, and that publishing never delays or changes a reply.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::cloudwatch::{Behaviour, CloudWatch, datums, dimensions};
use support::runtime_api::{Outcome, RuntimeApi, Seen};
use support::{LambdaProcess, Moto, Server, Ws};

fn base_env<'a>(moto: &'a Moto, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut env = vec![
        ("AWS_ENDPOINT_URL_STS", moto.url.as_str()),
        ("AWS_ACCESS_KEY_ID", "AKIAMETRICSEXAMPLE01"),
        (
            "AWS_SECRET_ACCESS_KEY",
            "metricsSecretExample00000000000000000000",
        ),
        ("AWS_REGION", "us-east-1"),
        ("RATE_LIMIT_BURST", "1000"),
        ("CREDENTIAL_RATE_LIMIT_BURST", "2"),
    ];
    env.extend_from_slice(extra);
    env
}

/// A session of known outcomes: what each tool should count.
async fn mixed_session(ws: &mut Ws) {
    for _ in 0..3 {
        ws.call_tool("aws_get_credentials", json!({})).await;
    }
    for _ in 0..2 {
        ws.call_tool("aws_get_account_info", json!({})).await;
    }
    // validation_error
    ws.call_tool("aws_get_account_info", json!({"profile": "missing"}))
        .await;
    // envelope calls count the same
    ws.envelope("aws/list-profiles", json!({})).await;
    // credential bucket of 2: the third is rate limited
    for _ in 0..2 {
        ws.call_tool("aws_validate_credentials", json!({})).await;
    }
    let limited = ws
        .rpc(
            "tools/call",
            json!({"name": "aws_validate_credentials", "arguments": {}}),
        )
        .await;
    assert_eq!(limited["error"]["code"], -32010);
    // protocol messages are not tool calls
    ws.rpc("ping", json!({})).await;
    ws.rpc("tools/list", json!({})).await;
}

/// What `mixed_session` should count: calls per tool, and errors per (tool, error type).
struct Expected {
    calls: BTreeMap<&'static str, f64>,
    errors: BTreeMap<(&'static str, &'static str), f64>,
}

fn expected() -> Expected {
    let calls = BTreeMap::from([
        ("aws/get-credentials", 3.0),
        ("aws/get-account-info", 3.0),
        ("aws/list-profiles", 1.0),
        ("aws/validate-credentials", 3.0),
    ]);
    let errors = BTreeMap::from([
        (("aws/get-account-info", "validation_error"), 1.0),
        (("aws/validate-credentials", "rate_limited"), 1.0),
    ]);
    Expected { calls, errors }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_metric_data_on_the_wire() {
    let moto = Moto::start();
    let cloudwatch = CloudWatch::start().await;
    let server = Server::start(&base_env(
        &moto,
        &[
            ("METRICS_SINK", "cloudwatch"),
            ("METRICS_NAMESPACE", "TestNamespace"),
            ("AWS_ENDPOINT_URL_CLOUDWATCH", &cloudwatch.url),
            ("METRICS_FLUSH_INTERVAL_SECS", "1"),
        ],
    ));
    let mut ws = server.connect().await;
    mixed_session(&mut ws).await;

    let Expected { calls, errors } = expected();
    let total_calls: f64 = calls.values().sum();
    let received = cloudwatch
        .wait_for("all calls published", |r| {
            datums(r)
                .iter()
                .filter(|(_, d)| {
                    d["MetricName"] == "ToolInvocations"
                        && dimensions(d) == ["Service=mcp-aws-tools"]
                })
                .map(|(_, d)| d["Value"].as_f64().unwrap_or(0.0))
                .sum::<f64>()
                >= total_calls
        })
        .await;
    for request in &received {
        assert_eq!(
            request.path,
            "/service/GraniteServiceVersion20100801/operation/PutMetricData"
        );
        assert_eq!(request.headers["smithy-protocol"], "rpc-v2-cbor");
        assert_eq!(request.body["Namespace"], "TestNamespace");
        assert!(request.body["MetricData"].as_array().unwrap().len() <= 1000);
    }
    let all = datums(&received);
    let sum = |metric: &str, dims: &[String]| -> f64 {
        all.iter()
            .filter(|(_, d)| d["MetricName"] == metric && dimensions(d) == dims)
            .map(|(_, d)| d["Value"].as_f64().unwrap_or(0.0))
            .sum()
    };
    let service = "Service=mcp-aws-tools".to_owned();
    for (tool, n) in &calls {
        let dims = vec![service.clone(), format!("Tool={tool}")];
        assert_eq!(sum("ToolInvocations", &dims), *n, "{tool}");
        // Durations as Values/Counts, one count per call, in milliseconds.
        let durations: Vec<&Value> = all
            .iter()
            .filter(|(_, d)| d["MetricName"] == "ToolDuration" && dimensions(d) == dims)
            .map(|(_, d)| d)
            .collect();
        assert!(!durations.is_empty(), "{tool}");
        let mut counted = 0.0;
        for datum in durations {
            assert_eq!(datum["Unit"], "Milliseconds");
            let values = datum["Values"].as_array().unwrap();
            let counts = datum["Counts"].as_array().unwrap();
            assert_eq!(values.len(), counts.len());
            assert!(values.len() <= 150);
            assert!(
                values
                    .iter()
                    .all(|v| v.as_f64().unwrap() > 0.0 && v.as_f64().unwrap() < 10_000.0)
            );
            counted += counts.iter().map(|c| c.as_f64().unwrap()).sum::<f64>();
        }
        assert_eq!(counted, *n, "{tool} durations");
    }
    for ((tool, error_type), n) in &errors {
        let dims = vec![
            format!("ErrorType={error_type}"),
            service.clone(),
            format!("Tool={tool}"),
        ];
        assert_eq!(sum("ToolErrors", &dims), *n, "{tool} {error_type}");
        let rollup = vec![format!("ErrorType={error_type}"), service.clone()];
        assert_eq!(sum("ToolErrors", &rollup), *n, "{error_type} rollup");
    }
    assert_eq!(sum("ToolErrors", std::slice::from_ref(&service)), 2.0);
    assert_eq!(
        sum("ToolInvocations", std::slice::from_ref(&service)),
        total_calls
    );
    assert_eq!(sum("ColdStart", std::slice::from_ref(&service)), 1.0);
    let rollup_counts: f64 = all
        .iter()
        .filter(|(_, d)| d["MetricName"] == "ToolDuration" && dimensions(d) == [service.clone()])
        .flat_map(|(_, d)| d["Counts"].as_array().unwrap().clone())
        .map(|c| c.as_f64().unwrap())
        .sum();
    assert_eq!(rollup_counts, total_calls);

    let record = server.logs.wait_for("flush record", |r| {
        r["fields"]["message"] == "metrics published"
    });
    assert_eq!(record["fields"]["sink"], "cloudwatch");
    assert!(record["fields"]["datums_sent"].as_u64().unwrap() > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_cloudwatch_neither_changes_nor_delays_replies() {
    let moto = Moto::start();
    // A CloudWatch that accepts connections and never answers: each publication takes the
    // whole flush time-out (5 s). Had a reply waited for it, it would have taken as long.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in silent.incoming() {
            held.push(stream);
        }
    });
    let dead = format!("http://127.0.0.1:{port}");
    let flush_timeout = Duration::from_secs(5);
    let failing = Server::start(&base_env(
        &moto,
        &[
            ("METRICS_SINK", "cloudwatch"),
            ("AWS_ENDPOINT_URL_CLOUDWATCH", &dead),
            ("METRICS_FLUSH_MAX_CALLS", "1"),
            ("METRICS_FLUSH_TIMEOUT_MS", "5000"),
        ],
    ));
    let quiet = Server::start(&base_env(&moto, &[("METRICS_SINK", "off")]));

    let mut with_sink = failing.connect().await;
    let mut without = quiet.connect().await;
    let strip = |mut v: Value| {
        if let Some(content) = v.get_mut("structuredContent") {
            content.as_object_mut().unwrap().remove("timestamp");
        }
        v.as_object_mut().unwrap().remove("content");
        v
    };
    let mut slowest = Duration::ZERO;
    for (tool, arguments) in [
        ("aws_get_credentials", json!({})),
        ("aws_list_profiles", json!({})),
        ("aws_get_account_info", json!({"profile": "missing"})),
        (
            "aws_get_credentials",
            json!({"include_session_token": true}),
        ),
    ] {
        for _ in 0..3 {
            let started = Instant::now();
            let a = with_sink.call_tool(tool, arguments.clone()).await;
            slowest = slowest.max(started.elapsed());
            let b = without.call_tool(tool, arguments.clone()).await;
            assert_eq!(strip(a), strip(b), "{tool}");
        }
    }
    assert!(
        slowest < flush_timeout,
        "a reply took {slowest:?}: it waited for PutMetricData"
    );

    let record = failing.logs.wait_for("dropped datums", |r| {
        r["fields"]["message"] == "metrics published"
            && r["fields"]["datums_dropped"].as_u64() > Some(0)
    });
    assert_eq!(record["fields"]["datums_sent"], 0);
    let (status, body) = failing.get("/api/metrics");
    assert_eq!(status, 200);
    let metrics: Value = serde_json::from_str(&body).unwrap();
    assert!(
        metrics["publishing"]["datums_dropped"].as_u64().unwrap() > 0,
        "{metrics}"
    );
    assert!(metrics["publishing"]["failures"].as_u64().unwrap() > 0);
    assert_eq!(metrics["publishing"]["datums_sent"], 0);
    assert_eq!(metrics["total"]["count"], 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_go_out_before_put_metric_data() {
    let moto = Moto::start();
    let delay = Duration::from_secs(5);
    let slow = CloudWatch::start_with(Behaviour { delay, status: 200 }).await;
    let server = Server::start(&base_env(
        &moto,
        &[
            ("METRICS_SINK", "cloudwatch"),
            ("AWS_ENDPOINT_URL_CLOUDWATCH", &slow.url),
            ("METRICS_FLUSH_MAX_CALLS", "1"),
        ],
    ));
    let mut ws = server.connect().await;
    let sent = Instant::now();
    let result = ws.call_tool("aws_get_credentials", json!({})).await;
    let replied = Instant::now();
    assert_eq!(result["isError"], false);
    // The stand-in answers after 5 s: a reply that waited for it would take longer.
    assert!(
        replied - sent < delay,
        "reply took {:?}: it waited for PutMetricData",
        replied - sent
    );

    // The call was published, and that publication took the stand-in's 5 s: the reply above
    // did not wait for it. (When the request began, against when the reply reached this
    // client, is not asserted: both sides are scheduled on a loaded machine.)
    let received = slow
        .wait_for("the PutMetricData of that call", |r| !r.is_empty())
        .await;
    assert!(received[0].at >= sent);
    let record = server.logs.wait_for("flush record", |r| {
        r["fields"]["message"] == "metrics published"
    });
    assert!(record["fields"]["duration_ms"].as_f64().unwrap() >= delay.as_secs_f64() * 1000.0);
}

/// Checks one EMF document against the specification's structure; returns its metrics.
fn validate_emf(line: &Value) -> Vec<(String, Value)> {
    let aws = &line["_aws"];
    assert!(
        aws["Timestamp"]
            .as_u64()
            .is_some_and(|t| t > 1_600_000_000_000),
        "Timestamp in ms: {line}"
    );
    let directives = aws["CloudWatchMetrics"]
        .as_array()
        .expect("CloudWatchMetrics array");
    assert!(!directives.is_empty());
    let mut metrics = Vec::new();
    for directive in directives {
        assert!(
            directive["Namespace"]
                .as_str()
                .is_some_and(|n| !n.is_empty()),
            "Namespace"
        );
        let dimension_sets = directive["Dimensions"].as_array().expect("Dimensions");
        for set in dimension_sets {
            let keys = set.as_array().expect("a dimension set is an array");
            assert!(keys.len() <= 30);
            for key in keys {
                let key = key.as_str().expect("dimension keys are strings");
                assert!(
                    line[key].is_string(),
                    "dimension {key} is a string member of the root: {line}"
                );
            }
        }
        for metric in directive["Metrics"].as_array().expect("Metrics") {
            let name = metric["Name"].as_str().expect("Name");
            assert!(["Count", "Milliseconds"].contains(&metric["Unit"].as_str().unwrap_or("")));
            let value = &line[name];
            match value {
                Value::Number(_) => {}
                Value::Array(values) => {
                    assert!(
                        !values.is_empty() && values.len() <= 100,
                        "{name}: at most 100 values"
                    );
                    assert!(values.iter().all(Value::is_number));
                }
                _ => panic!("metric {name} is not a member of the root: {line}"),
            }
            metrics.push((name.to_owned(), value.clone()));
        }
    }
    metrics
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emf_lines_follow_the_specification_and_add_up() {
    let moto = Moto::start();
    let server = Server::start(&base_env(
        &moto,
        &[
            ("METRICS_SINK", "emf"),
            ("METRICS_FLUSH_INTERVAL_SECS", "1"),
        ],
    ));
    let mut ws = server.connect().await;
    mixed_session(&mut ws).await;
    let Expected { calls, errors } = expected();
    let total: f64 = calls.values().sum();

    let emf_lines = || -> Vec<Value> {
        server
            .logs
            .records()
            .into_iter()
            .filter(|r| r.get("_aws").is_some())
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let counted: f64 = emf_lines()
            .iter()
            .filter_map(|l| l["ToolInvocations"].as_f64())
            .sum();
        if counted >= total {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "EMF lines for {counted} of {total} calls"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut invocations = BTreeMap::<String, f64>::new();
    let mut durations = BTreeMap::<String, usize>::new();
    let mut error_counts = BTreeMap::<(String, String), f64>::new();
    let mut cold_starts = 0.0;
    for line in emf_lines() {
        assert_eq!(
            line["_aws"]["CloudWatchMetrics"][0]["Namespace"],
            "MCPAwsTools"
        );
        assert_eq!(line["Service"], "mcp-aws-tools");
        for (name, value) in validate_emf(&line) {
            let tool = line["Tool"].as_str().unwrap_or("").to_owned();
            match name.as_str() {
                "ToolInvocations" => {
                    *invocations.entry(tool).or_default() += value.as_f64().unwrap()
                }
                "ToolDuration" => {
                    *durations.entry(tool).or_default() += value.as_array().unwrap().len()
                }
                "ToolErrors" => {
                    let error_type = line["ErrorType"].as_str().unwrap().to_owned();
                    *error_counts.entry((tool, error_type)).or_default() += value.as_f64().unwrap();
                }
                "ColdStart" => cold_starts += value.as_f64().unwrap(),
                other => panic!("unexpected metric {other}"),
            }
        }
    }
    for (tool, n) in &calls {
        assert_eq!(invocations.get(*tool), Some(n), "{tool}");
        assert_eq!(
            durations.get(*tool).copied(),
            Some(*n as usize),
            "{tool} duration values"
        );
    }
    for ((tool, error_type), n) in &errors {
        assert_eq!(
            error_counts.get(&(tool.to_string(), error_type.to_string())),
            Some(n)
        );
    }
    assert_eq!(cold_starts, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_metrics_after_a_mixed_session() {
    let moto = Moto::start();
    let server = Server::start(&base_env(&moto, &[]));
    let mut ws = server.connect().await;
    mixed_session(&mut ws).await;

    let (status, body) = server.get("/api/metrics");
    assert_eq!(status, 200, "{body}");
    let metrics: Value = serde_json::from_str(&body).expect("JSON");
    let Expected { calls, errors } = expected();
    for (tool, n) in &calls {
        let stats = &metrics["tools"][*tool];
        assert_eq!(stats["count"].as_f64(), Some(*n), "{tool}");
        let failures: f64 = errors
            .iter()
            .filter(|((t, _), _)| t == tool)
            .map(|(_, n)| n)
            .sum();
        assert_eq!(stats["failures"].as_f64(), Some(failures), "{tool}");
        assert_eq!(stats["successes"].as_f64(), Some(n - failures), "{tool}");
        let d = &stats["duration_ms"];
        let (min, p50, p95, max, avg) = (
            d["min"].as_f64().unwrap(),
            d["p50"].as_f64().unwrap(),
            d["p95"].as_f64().unwrap(),
            d["max"].as_f64().unwrap(),
            d["avg"].as_f64().unwrap(),
        );
        assert!(min > 0.0 && min <= avg && avg <= max, "{tool}: {d}");
        // p50 and p95 come from a histogram with two significant digits.
        assert!(
            p50 >= min * 0.99 && p50 <= p95 && p95 <= max * 1.01,
            "{tool}: {d}"
        );
    }
    for ((tool, error_type), n) in &errors {
        assert_eq!(
            metrics["tools"][*tool]["error_types"][*error_type].as_f64(),
            Some(*n)
        );
    }
    assert_eq!(metrics["tools"]["aws/set-environment"]["count"], 0);
    assert_eq!(
        metrics["tools"]["aws/set-environment"]["duration_ms"],
        Value::Null
    );
    assert_eq!(metrics["total"]["count"], 10);
    assert_eq!(metrics["total"]["failures"], 2);
    assert_eq!(metrics["publishing"]["sink"], "off");
    assert!(metrics["since"].is_string());

    let (status, _) = server.get("/api/nothing");
    assert_eq!(status, 404);
}

// Multi-threaded: the stand-in must answer while the test blocks waiting for the exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_publishes_what_is_left_when_it_stops() {
    let moto = Moto::start();
    let cloudwatch = CloudWatch::start().await;
    let mut server = Server::start(&base_env(
        &moto,
        &[
            ("METRICS_SINK", "cloudwatch"),
            ("AWS_ENDPOINT_URL_CLOUDWATCH", &cloudwatch.url),
            ("METRICS_FLUSH_INTERVAL_SECS", "3600"),
        ],
    ));
    let mut ws = server.connect().await;
    ws.call_tool("aws_list_profiles", json!({})).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        cloudwatch.received().is_empty(),
        "nothing is due before the hour"
    );
    let status = server.terminate();
    assert!(status.success(), "{status}");
    let received = cloudwatch.received();
    assert!(
        !received.is_empty(),
        "SIGTERM published nothing; logs:\n{}",
        server.logs.text()
    );
    assert!(
        datums(&received)
            .iter()
            .any(|(_, d)| d["MetricName"] == "ToolInvocations")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lambda_publishes_at_shutdown_and_serves_api_metrics() {
    let moto = Moto::start();
    let cloudwatch = CloudWatch::start().await;
    let api = RuntimeApi::start().await;
    let function = LambdaProcess::start(
        &api.address(),
        &base_env(
            &moto,
            &[
                ("METRICS_SINK", "cloudwatch"),
                ("AWS_ENDPOINT_URL_CLOUDWATCH", &cloudwatch.url),
                ("METRICS_FLUSH_INTERVAL_SECS", "3600"),
            ],
        ),
    );
    let event = |body: Value| {
        let mut event: Value = serde_json::from_str(
            &std::fs::read_to_string(support::repo().join("events/mcp-ping.json")).unwrap(),
        )
        .unwrap();
        event["body"] = Value::String(body.to_string());
        event.to_string()
    };
    let outcome = api
        .invoke(&event(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "aws_list_profiles", "arguments": {}}})))
        .await;
    assert!(matches!(outcome, Outcome::Response(_)), "{outcome:?}");

    // An HTTP API event on the same function: GET /api/metrics, answered by the same handler.
    let http =
        std::fs::read_to_string(support::repo().join("events/http/api-metrics.json")).unwrap();
    let Outcome::Response(text) = api.invoke(&http).await else {
        panic!("HTTP event failed");
    };
    let response: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(response["statusCode"], 200);
    assert_eq!(response["headers"]["content-type"], "application/json");
    let metrics: Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
    assert_eq!(metrics["tools"]["aws/list-profiles"]["count"], 1);

    assert_eq!(
        api.extensions().len(),
        1,
        "the graceful-shutdown extension registered"
    );
    assert!(cloudwatch.received().is_empty());
    api.shut_down();
    let logs = function.logs.clone();
    let status = function.terminate();
    assert!(status.success(), "{status}");
    let received = cloudwatch.received();
    let all = datums(&received);
    assert!(
        all.iter()
            .any(|(_, d)| d["MetricName"] == "ToolInvocations"),
        "nothing published at shutdown; logs:\n{}",
        logs.text()
    );
    assert!(all.iter().any(|(_, d)| d["MetricName"] == "ColdStart"));
}

/// In Lambda the environment is frozen between invocations, so each invocation's EMF lines are
/// written during that invocation: each line carries the invocation's request id, which the
/// function knows only while the invocation runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lambda_writes_each_invocations_emf_lines_within_it() {
    let moto = Moto::start();
    let api = RuntimeApi::start().await;
    // The default sink in Lambda is EMF; a flush interval of an hour shows that no timer is
    // needed.
    let function = LambdaProcess::start(
        &api.address(),
        &base_env(&moto, &[("METRICS_FLUSH_INTERVAL_SECS", "3600")]),
    );
    let event = |body: Value| {
        let mut event: Value = serde_json::from_str(
            &std::fs::read_to_string(support::repo().join("events/mcp-ping.json")).unwrap(),
        )
        .unwrap();
        event["body"] = Value::String(body.to_string());
        event.to_string()
    };
    let tools = [
        "aws_list_profiles",
        "aws_get_credentials",
        "aws_list_profiles",
    ];
    let mut invocations = Vec::new();
    for (i, tool) in tools.into_iter().enumerate() {
        let (request_id, outcome) = api
            .invoke_with_id(&event(json!({"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {"name": tool, "arguments": {}}})))
            .await;
        assert!(matches!(outcome, Outcome::Response(_)), "{outcome:?}");
        invocations.push((request_id, tool));
    }
    let (ping_id, _) = api
        .invoke_with_id(&event(json!({"jsonrpc": "2.0", "id": 9, "method": "ping"})))
        .await;
    for (request_id, tool) in &invocations {
        let reference = tool.replacen("aws_", "aws/", 1).replace('_', "-");
        let line = function.logs.wait_for("the invocation's EMF line", |r| {
            r["requestId"] == request_id.as_str() && r.get("ToolInvocations").is_some()
        });
        assert_eq!(line["Tool"], reference, "{line}");
        assert_eq!(
            line["ToolInvocations"], 1,
            "one call, in its own invocation"
        );
    }
    // The cold start is counted in the first invocation; a ping is not a tool call.
    function.logs.wait_for("the cold start line", |r| {
        r["requestId"] == invocations[0].0.as_str() && r["ColdStart"] == 1
    });
    let records = function.logs.records();
    assert!(
        !records
            .iter()
            .any(|r| r["requestId"] == ping_id.as_str() && r.get("_aws").is_some()),
        "no metric line for a ping"
    );
    let lines = records
        .iter()
        .filter(|r| r.get("ToolInvocations").is_some())
        .count();
    assert_eq!(lines, 3, "a line for each call, no more");
}

/// An invocation's EMF lines are written once its response is posted, so they never delay it,
/// and before the runtime asks for the next event, since Lambda freezes the environment at
/// that `next`. Stdout goes to a file, read as each request reaches the Runtime API: a line the
/// function wrote before sending the request is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lambda_writes_an_invocations_emf_lines_after_its_response_and_before_next() {
    let moto = Moto::start();
    let api = RuntimeApi::start().await;
    let stdout = support::temp_dir("lambda-stdout").join("stdout");
    let file = std::fs::File::create(&stdout).expect("stdout file");
    // What each request found written: (request, request ids of the tool-call lines).
    let found = Arc::new(Mutex::new(Vec::<(Seen, Vec<String>)>::new()));
    let (path, record) = (stdout.clone(), found.clone());
    api.observe(move |seen| {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let lines = text
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|line| line.get("ToolInvocations").is_some())
            .map(|line| line["requestId"].as_str().unwrap_or_default().to_owned())
            .collect();
        record.lock().unwrap().push((seen.clone(), lines));
    });
    let _function = LambdaProcess::start_with_stdout(
        &api.address(),
        &base_env(&moto, &[("METRICS_FLUSH_INTERVAL_SECS", "3600")]),
        Some(file),
    );
    let mut event: Value = serde_json::from_str(
        &std::fs::read_to_string(support::repo().join("events/mcp-ping.json")).unwrap(),
    )
    .unwrap();
    event["body"] = Value::String(
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "aws_list_profiles", "arguments": {}}})
            .to_string(),
    );
    let mut ids = Vec::new();
    for _ in 0..2 {
        let (id, outcome) = api.invoke_with_id(&event.to_string()).await;
        assert!(matches!(outcome, Outcome::Response(_)), "{outcome:?}");
        ids.push(id);
    }
    // The `next` after the second response: it comes once that invocation is done.
    let deadline = Instant::now() + Duration::from_secs(20);
    while found
        .lock()
        .unwrap()
        .iter()
        .filter(|(s, _)| *s == Seen::Next)
        .count()
        < 3
    {
        assert!(
            Instant::now() < deadline,
            "no third next: {:?}",
            found.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let found = found.lock().unwrap().clone();
    for id in &ids {
        let at = found
            .iter()
            .position(|(seen, _)| *seen == Seen::Response(id.clone()))
            .expect("its response");
        assert!(
            !found[at].1.contains(id),
            "{id}'s EMF line was written before its response: {found:?}"
        );
        let (seen, lines) = &found[at + 1];
        assert_eq!(*seen, Seen::Next, "{found:?}");
        assert_eq!(
            lines.iter().filter(|line| *line == id).count(),
            1,
            "{id}'s EMF line is written before the next `next`: {found:?}"
        );
    }
}

/// The function counts the HTTP requests it answers with a 4xx itself (`HttpClientErrors`),
/// which the stack's HTTP API alarm takes away from API Gateway's `4xx`: the 405 that an MCP
/// client's GET for a stream gets is counted, in the invocation that answered it; an answered
/// `initialize` is not. `/api/metrics` shows the total.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lambda_counts_the_http_requests_it_answers_with_a_4xx() {
    let moto = Moto::start();
    let api = RuntimeApi::start().await;
    let function = LambdaProcess::start(
        &api.address(),
        &base_env(&moto, &[("METRICS_FLUSH_INTERVAL_SECS", "3600")]),
    );
    let event = |name: &str| {
        std::fs::read_to_string(support::repo().join("events/http").join(name)).unwrap()
    };
    let status = |outcome: &Outcome| match outcome {
        Outcome::Response(body) => serde_json::from_str::<Value>(body).unwrap()["statusCode"]
            .as_u64()
            .unwrap(),
        Outcome::Error(error) => panic!("{error}"),
    };
    let (initialize_id, initialize) = api.invoke_with_id(&event("mcp-initialize.json")).await;
    assert_eq!(status(&initialize), 200);
    let (get_id, get) = api.invoke_with_id(&event("mcp-get.json")).await;
    assert_eq!(status(&get), 405);
    let line = function.logs.wait_for("the 405's EMF line", |r| {
        r["requestId"] == get_id.as_str() && r.get("HttpClientErrors").is_some()
    });
    assert_eq!(line["HttpClientErrors"], 1, "{line}");
    assert_eq!(line["Service"], "mcp-aws-tools", "{line}");
    assert_eq!(
        line["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"],
        "HttpClientErrors"
    );
    let records = function.logs.records();
    let counted: Vec<_> = records
        .iter()
        .filter(|r| r.get("HttpClientErrors").is_some())
        .collect();
    assert_eq!(counted.len(), 1, "the 405 only: {counted:?}");
    assert!(
        !records.iter().any(
            |r| r["requestId"] == initialize_id.as_str() && r.get("HttpClientErrors").is_some()
        )
    );
    let (_, metrics) = api.invoke_with_id(&event("api-metrics.json")).await;
    let Outcome::Response(metrics) = metrics else {
        panic!("{metrics:?}")
    };
    let body: Value = serde_json::from_str(
        serde_json::from_str::<Value>(&metrics).unwrap()["body"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(body["http_client_errors"], 1, "{body}");
}
