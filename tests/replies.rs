//! Replies fit what API Gateway carries (128 KB), and never repeat what the client sent beyond
//! its request id: a corpus of messages built to make large or echoing replies, through `serve`.

mod support;

use serde_json::{Value, json};
use support::{Moto, Server, Ws, assert_subset, write_file};

const LIMIT: usize = 128 * 1024;

/// A piece of text that must never come back.
const CANARY: &str = "EchoCanaryQx7Zp";

fn env(moto: &Moto) -> Vec<(&str, &str)> {
    vec![
        ("AWS_ENDPOINT_URL", moto.url.as_str()),
        ("AWS_ACCESS_KEY_ID", "AKIAREPLIESEXAMPLE01"),
        (
            "AWS_SECRET_ACCESS_KEY",
            "repliesSecretExample00000000000000000000",
        ),
        ("AWS_REGION", "us-east-1"),
        ("RATE_LIMIT_BURST", "100000"),
        ("CREDENTIAL_RATE_LIMIT_BURST", "100000"),
    ]
}

/// Sends `message` and returns the raw reply, checked against the limit and the canary.
async fn exchange(ws: &mut Ws, message: String) -> Value {
    let shown: String = message.chars().take(100).collect();
    ws.send_text(message).await;
    let reply = match ws.next_event().await {
        support::Event::Text(text) => text,
        other => panic!("{shown}: {other:?}"),
    };
    assert!(
        reply.len() <= LIMIT,
        "{shown}: a reply of {} bytes",
        reply.len()
    );
    assert!(
        !reply.contains(CANARY),
        "{shown}: the reply echoes: {reply}"
    );
    serde_json::from_str(&reply).expect("reply is JSON")
}

fn rpc(id: Value, method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_are_answered_within_128_kb_and_nothing_runs_unanswered() {
    let moto = Moto::start();
    let server = Server::start(&env(&moto));
    let mut ws = server.connect().await;

    // 50 tools/list: about 8 KB each, 400 KB in all.
    let batch: Vec<Value> = (0..50)
        .map(|i| rpc(json!(i), "tools/list", json!({})))
        .collect();
    let text = Value::Array(batch).to_string();
    assert!(text.len() < 3000);
    let reply = exchange(&mut ws, text).await;
    let answers = reply.as_array().expect("an array");
    assert_eq!(answers.len(), 50, "every request answered");
    let listed = answers
        .iter()
        .take_while(|a| a.get("result").is_some())
        .count();
    assert!(listed > 0 && listed < 50, "{listed} listed");
    for (i, answer) in answers.iter().enumerate() {
        assert_eq!(answer["id"], json!(i), "in order");
        if i >= listed {
            assert_eq!(answer["error"]["code"], -32011, "{answer}");
            let message = answer["error"]["message"].as_str().unwrap();
            assert!(message.contains("128 KB"), "{message}");
        }
    }

    // A batch that sets an environment past the limit: every request that ran is answered.
    let mut batch: Vec<Value> = (0..20)
        .map(|i| rpc(json!(i), "tools/list", json!({})))
        .collect();
    batch.push(rpc(
        json!("set"),
        "tools/call",
        json!({"name": "aws_set_environment", "arguments": {"region": "eu-west-1"}}),
    ));
    let reply = exchange(&mut ws, Value::Array(batch).to_string()).await;
    let set = reply
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == "set")
        .expect("answered");
    assert_eq!(set["error"]["code"], -32011, "{set}");
    let creds = ws.call_tool("aws_get_credentials", json!({})).await;
    assert_eq!(
        creds["structuredContent"]["credentials"]["region"], "us-east-1",
        "a request refused for size did not run"
    );

    // 50 tool calls fit.
    let batch: Vec<Value> = (0..50)
        .map(|i| {
            rpc(
                json!(i),
                "tools/call",
                json!({"name": "aws_get_credentials", "arguments": {}}),
            )
        })
        .collect();
    let reply = exchange(&mut ws, Value::Array(batch).to_string()).await;
    assert!(
        reply
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["result"]["isError"] == false)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_or_foreign_input_is_never_echoed() {
    let moto = Moto::start();
    let server = Server::start(&env(&moto));
    let mut ws = server.connect().await;
    let big = |n: usize| CANARY.repeat(n / CANARY.len() + 1)[..n].to_owned();

    // (message, what the reply must show)
    let cases: Vec<(String, Value)> = vec![
        (
            rpc(
                json!(1),
                "initialize",
                json!({"protocolVersion": "2025-06-18", "capabilities": big(127_000), "clientInfo": {"name": "x", "version": "1"}}),
            )
            .to_string(),
            json!({"id": 1, "error": {"code": -32602, "message": "invalid initialize params: capabilities must be an object"}}),
        ),
        (
            json!({"message_type": "REQUEST", "protocol_version": "2.0", "message_id": big(130_000), "method": "aws/list-profiles"}).to_string(),
            json!({"message_type": "ERROR", "request_id": null, "error_code": "INVALID_REQUEST", "error_message": "message_id is longer than 256 bytes"}),
        ),
        (
            rpc(json!(big(130_000)), "ping", json!({})).to_string(),
            json!({"id": null, "error": {"code": -32600, "message": "id is longer than 256 bytes"}}),
        ),
        (
            rpc(json!(2), "tools/call", json!({"name": big(1000), "arguments": {}})).to_string(),
            json!({"id": 2, "error": {"code": -32602}}),
        ),
        (
            rpc(json!(3), "tools/call", json!({"name": "aws_list_profiles", "arguments": {CANARY: 1}})).to_string(),
            json!({"id": 3, "result": {"isError": true, "structuredContent": {"error": "validation_error", "message": "unknown argument: this tool takes no arguments"}}}),
        ),
        (
            rpc(json!(4), "tools/call", json!({"name": "aws_get_credentials", "arguments": {"profile": CANARY.repeat(20)}})).to_string(),
            json!({"id": 4, "result": {"isError": true, "structuredContent": {"error": "validation_error", "field": "profile"}}}),
        ),
        (
            rpc(json!(5), "tools/call", json!({"name": "aws_get_credentials", "arguments": {"profile": CANARY}})).to_string(),
            json!({"id": 5, "result": {"isError": true, "structuredContent": {"error": "validation_error", "field": "profile"}}}),
        ),
        (
            rpc(json!(6), CANARY, json!({})).to_string(),
            json!({"id": 6, "error": {"code": -32601}}),
        ),
        (
            json!({"message_type": "REQUEST", "protocol_version": "2.0", "message_id": "m", "method": format!("aws/{CANARY}")}).to_string(),
            json!({"request_id": "m", "error_code": "METHOD_NOT_FOUND"}),
        ),
        (
            json!({"message_type": "REQUEST", "protocol_version": CANARY, "message_id": "v", "method": "aws/list-profiles"}).to_string(),
            json!({"request_id": "v", "error_code": "UNSUPPORTED_PROTOCOL_VERSION"}),
        ),
        (
            format!("{{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"{CANARY}"),
            json!({"error": {"code": -32700}}),
        ),
        (
            rpc(json!(8), "tools/call", json!({"name": "aws_set_environment", "arguments": {"region": CANARY}})).to_string(),
            json!({"id": 8, "result": {"isError": true, "structuredContent": {"field": "region"}}}),
        ),
    ];
    for (message, expected) in cases {
        let shown: String = message.chars().take(80).collect();
        let reply = exchange(&mut ws, message).await;
        assert_subset(&expected, &reply, &shown);
    }
    // The connection is still usable.
    assert_eq!(ws.rpc("ping", json!({})).await["result"], json!({}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_profile_list_fits_in_one_frame() {
    let moto = Moto::start();
    let home = support::temp_dir("many-profiles");
    let config: String = (0..10_000)
        .map(|i| {
            format!("[profile team-{i:05}-with-a-rather-long-profile-name]\nregion = us-east-1\n")
        })
        .collect();
    write_file(&home.join(".aws/config"), &config);
    let server = Server::start_in(home, &env(&moto));
    let mut ws = server.connect().await;
    for message in [
        rpc(
            json!(1),
            "tools/call",
            json!({"name": "aws_list_profiles", "arguments": {}}),
        ),
        json!({"message_type": "REQUEST", "protocol_version": "2.0", "message_id": "l", "method": "aws/list-profiles"}),
    ] {
        ws.send_json(&message).await;
        let support::Event::Text(text) = ws.next_event().await else {
            panic!("no reply");
        };
        assert!(text.len() <= 32 * 1024, "{} bytes", text.len());
        let reply: Value = serde_json::from_str(&text).unwrap();
        let body = reply
            .pointer("/result/structuredContent")
            .or(reply.get("result"))
            .unwrap();
        assert_eq!(body["count"], 10_000, "{body}");
        assert_eq!(body["truncated"], true);
        let listed = body["profiles"].as_array().unwrap();
        assert!(listed.len() > 100, "{}", listed.len());
        assert_eq!(listed[0], "team-00000-with-a-rather-long-profile-name");
    }
}
