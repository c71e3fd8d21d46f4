//! Lambda mode: the binary started with no subcommand and `AWS_LAMBDA_RUNTIME_API` set serves
//! API Gateway WebSocket events through lambda_runtime, keeping connection state across
//! invocations until `$disconnect`.

mod support;

use serde_json::{Value, json};
use support::runtime_api::{Outcome, RuntimeApi};
use support::{LambdaProcess, Moto, repo};

fn event_file(name: &str) -> Value {
    let text = std::fs::read_to_string(repo().join("events").join(name)).expect("event file");
    serde_json::from_str(&text).expect("event JSON")
}

/// A `$default` message event on the connection of events/connect.json.
fn message(body: Value) -> String {
    let mut event = event_file("mcp-ping.json");
    event["body"] = Value::String(body.to_string());
    event.to_string()
}

fn reply(outcome: Outcome) -> Value {
    let Outcome::Response(text) = outcome else {
        panic!("the function failed: {outcome:?}");
    };
    let response: Value = serde_json::from_str(&text).expect("response JSON");
    assert_eq!(response["statusCode"], 200);
    serde_json::from_str(response["body"].as_str().expect("body")).expect("reply JSON")
}

fn tool_call(id: i64, name: &str, arguments: Value) -> String {
    message(
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": name, "arguments": arguments}}),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_websocket_events_through_the_runtime() {
    let moto = Moto::start();
    let api = RuntimeApi::start().await;
    let function = LambdaProcess::start(
        &api.address(),
        &[
            ("AWS_ENDPOINT_URL", &moto.url),
            ("AWS_ACCESS_KEY_ID", "ASIALAMBDAEXECROLE01"),
            (
                "AWS_SECRET_ACCESS_KEY",
                "lambdaExecutionRoleSecret000000000000000",
            ),
            (
                "AWS_SESSION_TOKEN",
                "IQoJb3JpZ2luX2VjEexecutionRoleSessionToken000000",
            ),
            ("AWS_REGION", "us-east-1"),
        ],
    );

    let Outcome::Response(connected) = api.invoke(&event_file("connect.json").to_string()).await
    else {
        panic!("$connect failed");
    };
    let connected: Value = serde_json::from_str(&connected).expect("JSON");
    assert_eq!(connected["statusCode"], 200);
    assert_eq!(connected["headers"]["sec-websocket-protocol"], "mcp");

    let creds = reply(
        api.invoke(&tool_call(1, "aws_get_credentials", json!({})))
            .await,
    );
    assert_eq!(
        creds["result"]["structuredContent"]["metadata"]["credentials_source"],
        "lambda_execution_role"
    );

    let set = reply(
        api.invoke(&tool_call(
            2,
            "aws_set_environment",
            json!({"access_key_id": "AKIACONNECTIONKEY001", "secret_access_key": "connectionSecret00000000000000000000000000"}),
        ))
        .await,
    );
    assert_eq!(set["result"]["isError"], false);
    let creds = reply(
        api.invoke(&tool_call(3, "aws_get_credentials", json!({})))
            .await,
    );
    assert_eq!(
        creds["result"]["structuredContent"]["metadata"]["credentials_source"],
        "set_environment"
    );

    let info = reply(
        api.invoke(&tool_call(4, "aws_get_account_info", json!({})))
            .await,
    );
    assert_eq!(
        info["result"]["structuredContent"]["account_id"],
        "123456789012"
    );

    // $disconnect drops what the connection owned: the same id starts from the environment.
    let Outcome::Response(_) = api.invoke(&event_file("disconnect.json").to_string()).await else {
        panic!("$disconnect failed");
    };
    let creds = reply(
        api.invoke(&tool_call(5, "aws_get_credentials", json!({})))
            .await,
    );
    assert_eq!(
        creds["result"]["structuredContent"]["metadata"]["credentials_source"],
        "lambda_execution_role"
    );

    // A notification: a response with no body, so API Gateway sends nothing.
    let Outcome::Response(text) = api
        .invoke(&message(
            json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        ))
        .await
    else {
        panic!("notification failed");
    };
    let response: Value = serde_json::from_str(&text).expect("JSON");
    assert!(response.get("body").is_none(), "{response}");

    // One log record per message, with connection id, method, tool, outcome and duration.
    let record = function.logs.wait_for("tools/call record", |r| {
        r["fields"]["tool"] == "aws/get-account-info"
    });
    let fields = &record["fields"];
    assert_eq!(fields["connection_id"], "L0SM9cOFvHcCIhw=");
    assert_eq!(fields["method"], "tools/call");
    assert_eq!(fields["outcome"], "ok");
    assert!(fields["duration_ms"].as_f64().is_some());
    assert!(api.init_error().is_none());
    function.terminate();
}

fn http_event(name: &str) -> Value {
    let text = std::fs::read_to_string(repo().join("events/http").join(name)).expect("event file");
    serde_json::from_str(&text).expect("event JSON")
}

/// A 2026-07-28 `tools/call` as an HTTP API event (the shape of events/http/).
fn http_tool_call(id: i64, name: &str, arguments: Value) -> String {
    let mut event = http_event("mcp-get-account-info.json");
    event["headers"]["mcp-name"] = json!(name);
    event["body"] = json!(
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {
        "name": name, "arguments": arguments,
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                  "io.modelcontextprotocol/clientCapabilities": {}}}})
        .to_string()
    );
    event.to_string()
}

fn http_reply(outcome: Outcome) -> (Value, Value) {
    let Outcome::Response(text) = outcome else {
        panic!("the function failed: {outcome:?}");
    };
    let response: Value = serde_json::from_str(&text).expect("response JSON");
    let body =
        serde_json::from_str(response["body"].as_str().unwrap_or("null")).unwrap_or(Value::Null);
    (response, body)
}

/// Streamable HTTP in Lambda: HTTP API events for `/mcp` (payload 2.0), stateless, an
/// `environment_id` from one invocation honoured by the next, and the caller taken from the
/// IAM authorizer's context.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_streamable_http_events_through_the_runtime() {
    let moto = Moto::start();
    let api = RuntimeApi::start().await;
    let function = LambdaProcess::start(
        &api.address(),
        &[
            ("AWS_ENDPOINT_URL", &moto.url),
            ("AWS_ACCESS_KEY_ID", "ASIALAMBDAEXECROLE01"),
            (
                "AWS_SECRET_ACCESS_KEY",
                "lambdaExecutionRoleSecret000000000000000",
            ),
            ("AWS_REGION", "us-east-1"),
        ],
    );

    let (response, discover) = http_reply(
        api.invoke(&http_event("mcp-discover.json").to_string())
            .await,
    );
    assert_eq!(response["statusCode"], 200, "{response}");
    assert_eq!(discover["result"]["supportedVersions"][0], "2026-07-28");

    let (_, set) = http_reply(
        api.invoke(&http_tool_call(
            2,
            "aws_set_environment",
            json!({"region": "ap-south-1"}),
        ))
        .await,
    );
    let handle = set["result"]["structuredContent"]["environment_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no environment_id: {set}"))
        .to_owned();
    let (_, got) = http_reply(
        api.invoke(&http_tool_call(
            3,
            "aws_get_credentials",
            json!({"environment_id": handle}),
        ))
        .await,
    );
    let got = &got["result"]["structuredContent"];
    assert_eq!(got["credentials"]["region"], "ap-south-1", "{got}");
    assert_eq!(
        got["caller"]["arn"],
        "arn:aws:sts::123456789012:assumed-role/Developer/alice"
    );

    let (response, _) = http_reply(api.invoke(&http_event("mcp-get.json").to_string()).await);
    assert_eq!(response["statusCode"], 405);
    let (response, mismatch) = http_reply(
        api.invoke(&http_event("mcp-header-mismatch.json").to_string())
            .await,
    );
    assert_eq!(response["statusCode"], 400);
    assert_eq!(mismatch["error"]["code"], -32020);
    drop(function);
}

/// Once the first event is answered, the function prepares STS in the background: the client
/// and its TLS configuration, a connection, and the identity of its own credentials; the first
/// `get_account_info` then finds the identity ready (`cached`), the account moto's. With
/// provisioned concurrency that happens in init, before the first event. A dead STS endpoint
/// changes nothing but that call's answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sts_is_warmed_up_after_the_first_event_or_in_a_provisioned_init() {
    let moto = Moto::start();
    let role = [
        ("AWS_ACCESS_KEY_ID", "ASIAWARMUPEXAMPLE001"),
        (
            "AWS_SECRET_ACCESS_KEY",
            "warmUpSecretExample000000000000000000000",
        ),
        ("AWS_REGION", "us-east-1"),
    ];
    let list = message(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}));
    let warmed = |line: &Value| {
        line["fields"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("warm-up done"))
    };

    let api = RuntimeApi::start().await;
    let mut env = role.to_vec();
    env.push(("AWS_ENDPOINT_URL", &moto.url));
    let function = LambdaProcess::start(&api.address(), &env);
    let tools = reply(api.invoke(&list).await);
    assert_eq!(tools["result"]["tools"].as_array().map(Vec::len), Some(5));
    function.logs.wait_for("the warm-up", warmed);
    let info = reply(
        api.invoke(&tool_call(2, "aws_get_account_info", json!({})))
            .await,
    );
    let body = &info["result"]["structuredContent"];
    assert_eq!(body["cached"], true, "{info}");
    assert_eq!(body["account_id"], "123456789012");
    assert_eq!(body["credentials_source"], "lambda_execution_role");
    let logs = function.logs.text();
    assert!(!logs.contains("ASIAWARMUPEXAMPLE001"), "{logs}");
    assert!(!logs.contains("warmUpSecretExample"), "{logs}");

    // Provisioned: warmed before the first event is even asked for.
    let api = RuntimeApi::start().await;
    env.push(("AWS_LAMBDA_INITIALIZATION_TYPE", "provisioned-concurrency"));
    let _function = LambdaProcess::start(&api.address(), &env);
    let info = reply(
        api.invoke(&tool_call(3, "aws_get_account_info", json!({})))
            .await,
    );
    assert_eq!(
        info["result"]["structuredContent"]["cached"], true,
        "{info}"
    );

    let closed = support::closed_port();
    let dead = format!("http://127.0.0.1:{}", closed.port);
    let api = RuntimeApi::start().await;
    let mut env = role.to_vec();
    env.extend([
        ("AWS_ENDPOINT_URL", dead.as_str()),
        ("OPERATION_TIMEOUT_MS", "2000"),
        ("CONNECT_TIMEOUT_MS", "500"),
    ]);
    let function = LambdaProcess::start(&api.address(), &env);
    let tools = reply(api.invoke(&list).await);
    assert_eq!(tools["result"]["tools"].as_array().map(Vec::len), Some(5));
    let info = reply(
        api.invoke(&tool_call(3, "aws_get_account_info", json!({})))
            .await,
    );
    let body = &info["result"]["structuredContent"];
    assert_eq!(info["result"]["isError"], true, "{info}");
    assert_eq!(body["message"], "AWS STS could not be reached");
    assert!(!function.logs.text().contains("warm-up done"));
}
