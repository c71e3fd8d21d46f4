//! Real clients, unmodified: the official MCP Python SDK's WebSocket transport, and the
//! reference document's Example 4 (Node, `ws`).

mod support;

use std::process::Command;

use serde_json::{Value, json};
use support::{Moto, Server, node_dir, python, repo, write_file};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_mcp_python_sdk_over_websocket() {
    let moto = Moto::start();
    let server = server(&moto);
    let output = Command::new(python())
        .arg(repo().join("tests/support/mcp_client.py"))
        .arg(server.ws_url())
        .output()
        .expect("run the MCP client");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "MCP SDK client failed:\n{stdout}\n{}\nserver logs:\n{}",
        String::from_utf8_lossy(&output.stderr),
        server.logs.text()
    );
    let seen: Value = serde_json::from_str(stdout.trim()).expect("client output");
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
