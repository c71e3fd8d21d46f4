//! Real clients, unmodified: the official MCP Python SDK 1.x over WebSocket, Streamable HTTP
//! (2025-11-25) and stdio; the SDK 2.x over Streamable HTTP and stdio (2026-07-28, found with
//! `server/discover`); the TypeScript SDK 1.x and 2.x over Streamable HTTP, and 1.x over
//! WebSocket; AWS's `mcp-proxy-for-aws` and this product's `proxy` against `serve --iam`, which
//! checks their SigV4 signatures; and the reference document's Example 4 (Node, `ws`).

mod support;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{BINARY, Moto, Server, node_dir, python, python_bin, python_mcp2, repo, write_file};

fn server(moto: &Moto) -> Server {
    let home = support::temp_dir("clients-home");
    write_file(
        &home.join(".aws/credentials"),
        "[default]\naws_access_key_id = AKIADEFAULTCLIENT001\naws_secret_access_key = defaultClientSecret000000000000000000000\n",
    );
    write_file(&home.join(".aws/config"), "[default]\nregion = us-east-1\n");
    Server::start_in(
        home,
        &[
            ("AWS_ENDPOINT_URL", &moto.url),
            ("AWS_ACCESS_KEY_ID", "AKIACLIENTSEXAMPLE01"),
            (
                "AWS_SECRET_ACCESS_KEY",
                "clientsSecretExample00000000000000000000",
            ),
            (
                "AWS_SESSION_TOKEN",
                "FQoGZXIvYXdzEClientsSessionTokenExample00000000",
            ),
            ("AWS_REGION", "us-west-2"),
        ],
    )
}

/// Runs a client to completion, killing it after `limit`: a client that hangs fails the test
/// instead of stalling the suite.
fn output_within(command: &mut Command, limit: Duration) -> Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the client");
    let started = Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let output = child.wait_with_output().expect("output");
            panic!(
                "the client did not finish within {limit:?}:\n{}\n{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("output")
}

/// A client script's report (one JSON object on stdout), asserted to be a success.
fn report(output: &Output, server: &Server) -> Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let seen: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "client output is not JSON ({e}):\n{stdout}\n{}\nserver logs:\n{}",
            String::from_utf8_lossy(&output.stderr),
            server.logs.text()
        )
    });
    assert!(
        output.status.success() && seen.get("error").is_none(),
        "the client failed: {seen:#}\n{}\nserver logs:\n{}",
        String::from_utf8_lossy(&output.stderr),
        server.logs.text()
    );
    seen
}

const LIMIT: Duration = Duration::from_secs(120);

/// What the 1.x client script checks after its calls, on any transport.
fn assert_handshake_session(seen: &Value, server: &Server) {
    assert_eq!(seen["protocol_version"], "2025-11-25", "{seen}");
    assert_eq!(seen["tools"].as_array().map(Vec::len), Some(5), "{seen}");
    let calls = &seen["calls"];
    for (call, result) in calls.as_object().expect("calls") {
        if !call.ends_with("aws_get_account_info") || call.starts_with("2:") {
            assert_eq!(
                result["is_error"],
                false,
                "{call}: {result}\n{}",
                server.logs.text()
            );
        }
    }
    assert_eq!(
        calls["5:aws_get_credentials"]["structured"]["credentials"]["region"], "eu-west-3",
        "the environment_id of set-environment carried the region"
    );
    assert_eq!(
        calls["6:aws_get_account_info"]["structured"]["error"],
        "validation_error"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_mcp_python_sdk_over_websocket() {
    let moto = Moto::start();
    let server = server(&moto);
    let output = output_within(
        Command::new(python())
            .arg(repo().join("tests/support/mcp_client.py"))
            .args(["ws", &server.ws_url()]),
        LIMIT,
    );
    let seen = report(&output, &server);
    assert_eq!(seen["protocol_version"], "2025-11-25");
    assert_eq!(seen["server_name"], "mcp-aws-tools");
    assert_eq!(seen["tools"].as_array().unwrap().len(), 5);
    assert_eq!(seen["read_only"]["aws_set_environment"], false);
    assert_eq!(seen["read_only"]["aws_get_credentials"], true);

    let calls = &seen["calls"];
    assert_eq!(
        calls["0:aws_list_profiles"]["structured"]["profiles"],
        json!(["default"])
    );
    let creds = &calls["1:aws_get_credentials"]["structured"];
    assert_eq!(creds["credentials"]["access_key_id"], "AKIACLIENT...");
    assert_eq!(creds["credentials"]["secret_access_key"], "***");
    assert_eq!(
        creds["credentials"]["session_token"],
        "FQoGZXIvYXdzEClients..."
    );
    assert_eq!(
        calls["2:aws_get_account_info"]["structured"]["account_id"],
        "123456789012"
    );
    assert_eq!(
        calls["3:aws_validate_credentials"]["structured"]["valid"],
        true
    );
    assert_eq!(calls["4:aws_set_environment"]["is_error"], false);
    assert_eq!(
        calls["5:aws_get_credentials"]["structured"]["credentials"]["region"],
        "eu-west-3"
    );
    // A tool error reaches the SDK as a result it can read (validated against the schema too).
    let failed = &calls["6:aws_get_account_info"];
    assert_eq!(failed["is_error"], true);
    assert_eq!(failed["structured"]["error"], "validation_error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_example_4_with_node_ws() {
    let moto = Moto::start();
    let server = server(&moto);
    let script = node_dir().join("example4.js");
    let output = Command::new("node")
        .arg(&script)
        .arg(server.ws_url())
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "Example 4 failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("AWS Credentials:"), "{stdout}");
    let raw = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RAW "))
        .expect("raw reply");
    let reply: Value = serde_json::from_str(raw).expect("reply JSON");
    assert_eq!(reply["message_type"], "RESPONSE");
    assert_eq!(reply["request_id"], "req-1");
    let result = &reply["result"];
    assert_eq!(result["credentials"]["profile"], "default");
    assert_eq!(result["credentials"]["access_key_id"], "AKIADEFAUL...");
    assert_eq!(
        result["metadata"]["credentials_source"],
        "aws_config_profile:default"
    );
}

/// The 1.x SDK's Streamable HTTP client (2025-11-25, `initialize`) and the 2.x SDK's (2026-07-28,
/// `server/discover`, no handshake) on the same endpoint of the same server.
#[test]
fn python_sdks_over_streamable_http_in_both_eras() {
    let moto = Moto::start();
    let server = server(&moto);
    let url = format!("http://{}/mcp", server.addr);

    let output = output_within(
        Command::new(python())
            .arg(repo().join("tests/support/mcp_client.py"))
            .args(["http", &url]),
        LIMIT,
    );
    let seen = report(&output, &server);
    assert_handshake_session(&seen, &server);
    assert_eq!(seen["server_name"], "mcp-aws-tools");
    assert_eq!(
        seen["calls"]["2:aws_get_account_info"]["structured"]["account_id"],
        "123456789012"
    );

    let output = output_within(
        Command::new(python_mcp2())
            .arg(repo().join("tests/support/mcp2_client.py"))
            .args(["http", &url]),
        LIMIT,
    );
    let seen = report(&output, &server);
    assert_eq!(seen["protocol_version"], "2026-07-28", "{seen}");
    assert_eq!(seen["server_name"], "mcp-aws-tools");
    assert!(
        seen["instructions"]
            .as_str()
            .is_some_and(|i| i.contains("environment_id"))
    );
    assert_eq!(seen["tools"].as_array().map(Vec::len), Some(5));
    let calls = &seen["calls"];
    for (call, result) in calls.as_object().expect("calls") {
        assert_eq!(result["is_error"], false, "{call}: {result}");
    }
    assert_eq!(
        calls["2:aws_get_account_info"]["structured"]["account_id"],
        "123456789012"
    );
    assert_eq!(
        calls["3:aws_validate_credentials"]["structured"]["valid"],
        true
    );
    assert_eq!(
        calls["5:aws_get_credentials"]["structured"]["credentials"]["region"],
        "ap-northeast-1"
    );
    // The 2.x client found 2026-07-28 by asking server/discover, and sent no initialize.
    let methods: Vec<String> = server
        .logs
        .records()
        .iter()
        .filter(|r| r["fields"]["format"] == "mcp 2026-07-28")
        .filter_map(|r| r["fields"]["method"].as_str().map(str::to_owned))
        .collect();
    assert!(
        methods.iter().any(|m| m == "server/discover"),
        "{methods:?}"
    );
    assert!(methods.iter().any(|m| m == "tools/call"), "{methods:?}");
}

/// The official TypeScript SDK's Streamable HTTP client (the MCP Inspector's, and most desktop
/// hosts'), 1.x (`@modelcontextprotocol/sdk`) and 2.x (`@modelcontextprotocol/client`, as it
/// comes, and with its opt-in negotiation that finds 2026-07-28 through `server/discover`), and
/// the 1.x SDK's WebSocket client, unmodified: each connects, lists the tools and calls them,
/// and reads a tool error as a result. Each also asks for a server-sent stream with a GET after `initialized`: 405 (none is
/// offered) is what the SDKs accept silently; any other refusal reaches `errors`.
#[test]
fn typescript_sdks_over_streamable_http_and_websocket() {
    let moto = Moto::start();
    let server = server(&moto);
    let url = format!("http://{}/mcp", server.addr);
    let ws_url = server.ws_url();
    let script = node_dir().join("ts_client.mjs");
    for (generation, url, version) in [
        ("1", &url, "2025-11-25"),
        ("1-ws", &ws_url, "2025-11-25"),
        ("2", &url, "2025-11-25"),
        ("2-auto", &url, "2026-07-28"),
    ] {
        let output = output_within(
            Command::new("node")
                .arg(&script)
                .args([url.as_str(), generation]),
            LIMIT,
        );
        let seen = report(&output, &server);
        assert_eq!(seen["protocol_version"], version, "{generation}: {seen}");
        assert_eq!(
            seen["server"]["name"], "mcp-aws-tools",
            "{generation}: {seen}"
        );
        assert_eq!(
            seen["tools"],
            json!([
                "aws_get_account_info",
                "aws_get_credentials",
                "aws_list_profiles",
                "aws_set_environment",
                "aws_validate_credentials"
            ]),
            "{generation}: {seen}"
        );
        assert_eq!(seen["errors"], json!([]), "{generation}: {seen}");
        let calls = &seen["calls"];
        let credentials = &calls["1:aws_get_credentials"];
        assert_eq!(
            credentials["is_error"], false,
            "{generation}: {credentials}"
        );
        assert_eq!(
            credentials["structured"]["credentials"]["access_key_id"],
            "AKIACLIENT..."
        );
        assert_eq!(
            credentials["structured"]["credentials"]["secret_access_key"],
            "***"
        );
        assert_eq!(
            calls["2:aws_get_account_info"]["structured"]["account_id"], "123456789012",
            "{generation}: {calls}"
        );
        let refused = &calls["3:aws_get_credentials"];
        assert_eq!(refused["is_error"], true, "{generation}: {refused}");
        assert_eq!(refused["structured"]["error"], "validation_error");
        assert_eq!(refused["structured"]["field"], "profile");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(!stdout.contains("clientsSecretExample"), "{stdout}");
    }
    // The opt-in client asked server/discover and sent no initialize in 2026-07-28.
    let modern: Vec<String> = server
        .logs
        .records()
        .iter()
        .filter(|r| r["fields"]["format"] == "mcp 2026-07-28")
        .filter_map(|r| r["fields"]["method"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        modern.first().map(String::as_str),
        Some("server/discover"),
        "{modern:?}"
    );
    assert!(!modern.iter().any(|m| m == "initialize"), "{modern:?}");
    assert!(modern.iter().any(|m| m == "tools/call"), "{modern:?}");
}

/// `serve --iam` with moto's IAM user as its credentials: only requests signed with them pass.
fn iam_server(moto: &Moto) -> (Server, (String, String)) {
    let (key, secret) = moto.user.clone().expect("moto's IAM user");
    let server = Server::start_with(
        support::temp_dir("iam-home"),
        &["--iam"],
        &[
            ("AWS_ENDPOINT_URL", &moto.url),
            ("AWS_ACCESS_KEY_ID", &key),
            ("AWS_SECRET_ACCESS_KEY", &secret),
            ("AWS_REGION", "us-east-1"),
        ],
    );
    (server, (key, secret))
}

/// A client process's environment: the signing credentials, and a HOME with no AWS files.
fn signing_env(command: &mut Command, key: &str, secret: &str) {
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", support::temp_dir("client-home"))
        .env("AWS_ACCESS_KEY_ID", key)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true");
}

/// AWS's own SigV4 proxy for MCP, launched by the SDK's stdio client, against `/mcp` behind
/// `serve --iam`: its signatures pass, and the caller the tools report is the signer.
#[test]
fn mcp_proxy_for_aws_lists_and_calls_tools_through_iam() {
    let moto = Moto::start_with_iam_auth();
    let (server, (key, secret)) = iam_server(&moto);
    let url = format!("http://{}/mcp", server.addr);
    let proxy = python_bin().join("mcp-proxy-for-aws");
    let mut command = Command::new(python());
    signing_env(&mut command, &key, &secret);
    command
        .arg(repo().join("tests/support/mcp_client.py"))
        .arg("stdio")
        .arg(&proxy)
        .args([
            url.as_str(),
            "--service",
            "execute-api",
            "--region",
            "us-east-1",
        ]);
    let seen = report(&output_within(&mut command, LIMIT), &server);
    assert_handshake_session(&seen, &server);
    // It presents itself to the host as its own server, and forwards the tools.
    assert_eq!(seen["server_name"], "MCP Proxy for AWS");
    let creds = &seen["calls"]["1:aws_get_credentials"]["structured"];
    assert_eq!(
        creds["caller"]["arn"], "arn:aws:iam::123456789012:user/alice",
        "{creds}"
    );
}

/// The SDK's stdio client driving `mcp-aws-tools proxy`: the 1.x client over the WebSocket API
/// (`$connect` presigned), the 2.x client over Streamable HTTP (each request signed).
#[test]
fn our_proxy_carries_sdk_stdio_clients_over_websocket_and_http() {
    let moto = Moto::start_with_iam_auth();
    let (server, (key, secret)) = iam_server(&moto);

    let mut command = Command::new(python());
    signing_env(&mut command, &key, &secret);
    command
        .arg(repo().join("tests/support/mcp_client.py"))
        .args(["stdio", BINARY, "proxy", &server.ws_url()]);
    let seen = report(&output_within(&mut command, LIMIT), &server);
    assert_handshake_session(&seen, &server);
    assert_eq!(seen["server_name"], "mcp-aws-tools");
    assert_eq!(
        seen["calls"]["1:aws_get_credentials"]["structured"]["caller"]["arn"],
        "arn:aws:iam::123456789012:user/alice"
    );
    assert_eq!(seen["stderr"], "", "the proxy had nothing to report");

    let mut command = Command::new(python_mcp2());
    signing_env(&mut command, &key, &secret);
    command
        .arg(repo().join("tests/support/mcp2_client.py"))
        .args([
            "stdio",
            BINARY,
            "proxy",
            &format!("http://{}/mcp", server.addr),
        ]);
    let seen = report(&output_within(&mut command, LIMIT), &server);
    assert_eq!(seen["protocol_version"], "2026-07-28", "{seen}");
    for (call, result) in seen["calls"].as_object().expect("calls") {
        assert_eq!(result["is_error"], false, "{call}: {result}");
    }
    assert_eq!(
        seen["calls"]["5:aws_get_credentials"]["structured"]["credentials"]["region"],
        "ap-northeast-1"
    );
    assert_eq!(seen["stderr"], "");
}

/// A wrong secret key: `serve --iam` refuses the signature (403), and the proxy says so in one
/// line on stderr and answers the host's request with an error, over both transports, instead
/// of leaving it waiting.
#[test]
fn a_refused_signature_is_one_line_on_stderr_not_a_hang() {
    let moto = Moto::start_with_iam_auth();
    let (server, (key, _)) = iam_server(&moto);
    for url in [server.ws_url(), format!("http://{}/mcp", server.addr)] {
        let mut command = Command::new(python());
        signing_env(
            &mut command,
            &key,
            "not-the-secret-key-000000000000000000000",
        );
        command
            .arg(repo().join("tests/support/mcp_client.py"))
            .args(["stdio", BINARY, "proxy", &url]);
        let output = output_within(&mut command, LIMIT);
        let seen: Value = serde_json::from_slice(&output.stdout).expect("the client's report");
        assert_eq!(output.status.code(), Some(3), "{url}: {seen}");
        let error = seen["error"].as_str().unwrap_or_default();
        assert!(
            error.contains("refused the request's signature"),
            "{url}: {error}"
        );
        let stderr = seen["stderr"].as_str().unwrap_or_default();
        let lines: Vec<&str> = stderr
            .lines()
            .filter(|l| l.contains("refused the request's signature"))
            .collect();
        assert_eq!(lines.len(), 1, "{url}: {stderr}");
        assert!(lines[0].contains("HTTP 403"), "{}", lines[0]);
        assert!(
            !stderr.contains("not-the-secret"),
            "the secret stays out of the log"
        );
    }
    // serve saw the refusals, and ran no tool for them.
    let refused = server
        .logs
        .records()
        .iter()
        .filter(|r| r["fields"]["message"] == "request refused: signature")
        .count();
    assert!(refused >= 2, "{}", server.logs.text());
}
