//! The `serve` emulator as a WebSocket client sees it: subprotocol negotiation, connection
//! isolation, API Gateway's limits (128 KB, binary frames, idle time-out), rate limits, and a
//! corpus of bad input after each of which the connection still works.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Event, Moto, RawWs, Server, Ws, assert_subset};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

fn env(moto: &Moto) -> Vec<(&str, &str)> {
    vec![
        ("AWS_ENDPOINT_URL", moto.url.as_str()),
        ("AWS_ACCESS_KEY_ID", "AKIAWEBSOCKETTEST001"),
        (
            "AWS_SECRET_ACCESS_KEY",
            "websocketSecret0000000000000000000000000",
        ),
        ("AWS_REGION", "us-east-1"),
        ("RATE_LIMIT_BURST", "1000"),
        ("CREDENTIAL_RATE_LIMIT_BURST", "1000"),
    ]
}

async fn still_usable(ws: &mut Ws) {
    assert_eq!(
        ws.rpc("ping", json!({})).await["result"],
        json!({}),
        "connection unusable"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subprotocol_mcp_is_chosen_when_offered() {
    let moto = Moto::start();
    let server = Server::start(&env(&moto));
    let offered = Ws::connect(&server.ws_url(), &["mcp"]).await;
    assert_eq!(offered.subprotocol.as_deref(), Some("mcp"));
    let among_others = Ws::connect(&server.ws_url(), &["graphql-ws", "mcp"]).await;
    assert_eq!(among_others.subprotocol.as_deref(), Some("mcp"));
    let plain = Ws::connect(&server.ws_url(), &[]).await;
    assert_eq!(plain.subprotocol, None);

    let connect = server.logs.wait_for("$connect", |r| {
        r["fields"]["message"] == "connected" && r["fields"]["subprotocol"] == "mcp"
    });
    assert!(connect["fields"]["connection_id"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_is_refused() {
    let moto = Moto::start();
    let server = Server::start(&env(&moto));
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(&server.addr).expect("connect");
    stream
        .write_all(b"GET /ws HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    assert!(response.starts_with("HTTP/1.1 426"), "{response}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_environment_belongs_to_its_connection() {
    let moto = Moto::start();
    let server = Server::start(&env(&moto));
    let mut alice = server.connect().await;
    let mut bob = server.connect().await;

    let set = alice
        .call_tool(
            "aws_set_environment",
            json!({"access_key_id": "AKIAALICEEXAMPLE0001", "secret_access_key": "aliceSecretExample000000000000000000000000", "region": "eu-west-2"}),
        )
        .await;
    assert_eq!(set["isError"], false);

    let alice_view = alice.call_tool("aws_get_credentials", json!({})).await;
    assert_eq!(
        alice_view["structuredContent"]["credentials"]["access_key_id"],
        "AKIAALICEE..."
    );
    assert_eq!(
        alice_view["structuredContent"]["metadata"]["credentials_source"],
        "set_environment"
    );
    assert_eq!(
        alice_view["structuredContent"]["credentials"]["region"],
        "eu-west-2"
    );

    let bob_view = bob.call_tool("aws_get_credentials", json!({})).await;
    assert_eq!(
        bob_view["structuredContent"]["credentials"]["access_key_id"],
        "AKIAWEBSOC..."
    );
    assert_eq!(
        bob_view["structuredContent"]["metadata"]["credentials_source"],
        "environment_variables"
    );
    assert_eq!(
        bob_view["structuredContent"]["credentials"]["region"],
        "us-east-1"
    );

    // A new connection starts from the environment again.
    alice.close().await;
    server.logs.wait_for("alice's $disconnect", |r| {
        r["fields"]["message"] == "disconnected"
    });
    let mut again = server.connect().await;
    let fresh = again.call_tool("aws_get_credentials", json!({})).await;
    assert_eq!(
        fresh["structuredContent"]["metadata"]["credentials_source"],
        "environment_variables"
    );
}

/// A ping whose serialized form is exactly `size` bytes.
fn ping_of_size(size: usize) -> String {
    let skeleton =
        json!({"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"pad": ""}}).to_string();
    let pad = "x".repeat(size - skeleton.len());
    json!({"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"pad": pad}}).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_up_to_128_kb_pass_and_larger_close_with_1009() {
    let moto = Moto::start();
    let server = Server::start(&env(&moto));
    let limit = 128 * 1024;

    let mut ws = server.connect().await;
    let largest = ping_of_size(limit);
    assert_eq!(largest.len(), limit);
    ws.send_text(largest).await;
    assert_eq!(ws.recv().await["result"], json!({}));

    ws.send_text(ping_of_size(limit + 1)).await;
    match ws.next_event().await {
        Event::Closed(code, _) => assert_eq!(code, Some(1009)),
        other => panic!("expected a close, got {other:?}"),
    }
    let disconnect = server
        .logs
        .wait_for("$disconnect 1009", |r| r["fields"]["status_code"] == 1009);
    assert_eq!(disconnect["fields"]["route"], "$disconnect");

    // The same limit for a message split over several frames.
    let mut fragmented = server.connect().await;
    let chunk = vec![b'x'; 40 * 1024];
    fragmented
        .send_raw_fragment(OpCode::Data(Data::Text), chunk.clone(), false)
        .await;
    for _ in 0..3 {
        fragmented
            .send_raw_fragment(OpCode::Data(Data::Continue), chunk.clone(), false)
            .await;
    }
    match fragmented.next_event().await {
        Event::Closed(code, _) => assert_eq!(code, Some(1009)),
        other => panic!("expected a close, got {other:?}"),
    }

    // A fragmented message within the limit is answered.
    let mut ok = server.connect().await;
    let message = ping_of_size(1000).into_bytes();
    let (first, rest) = message.split_at(400);
    ok.send_raw_fragment(OpCode::Data(Data::Text), first.to_vec(), false)
        .await;
    ok.send_raw_fragment(OpCode::Data(Data::Continue), rest.to_vec(), true)
        .await;
    assert_eq!(ok.recv().await["result"], json!({}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_frames_close_with_1003() {
    let moto = Moto::start();
    let server = Server::start(&env(&moto));
    let mut ws = server.connect().await;
    still_usable(&mut ws).await;
    ws.send_binary(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}".to_vec())
        .await;
    match ws.next_event().await {
        Event::Closed(code, _) => assert_eq!(code, Some(1003)),
        other => panic!("expected a close, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_close_with_1001() {
    let moto = Moto::start();
    let mut vars = env(&moto);
    vars.push(("IDLE_TIMEOUT_SECS", "1"));
    let server = Server::start(&vars);
    let mut ws = server.connect().await;
    // The server's idle timer starts when it has read the ping, after this instant.
    let sent = Instant::now();
    still_usable(&mut ws).await;
    match ws.next_event().await {
        Event::Closed(code, reason) => {
            assert_eq!(code, Some(1001));
            assert!(reason.contains("idle"), "{reason}");
        }
        other => panic!("expected a close, got {other:?}"),
    }
    // Never before the idle time-out (timers do not fire early); no upper window: a loaded
    // machine may be late, and the client's own reply time-out bounds the wait.
    assert!(sent.elapsed() >= Duration::from_secs(1));
}

/// The idle time-out counts silence, not the connection's age: messages keep a connection open
/// past it (the server's one timer, set at the handshake, fires while the client is busy and is
/// moved on), and silence after the last of them still closes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_keep_a_connection_open_past_the_idle_timeout() {
    let moto = Moto::start();
    let mut vars = env(&moto);
    vars.push(("IDLE_TIMEOUT_SECS", "2"));
    let server = Server::start(&vars);
    let mut ws = server.connect().await;
    let opened = Instant::now();
    // A message every 0.3 s for more than twice the time-out: each answered.
    while opened.elapsed() < Duration::from_millis(4500) {
        still_usable(&mut ws).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // The server counts silence from when it has read the last message, after this instant
    // (not after its reply arrives here, which on a loaded machine can be much later).
    let last = Instant::now();
    still_usable(&mut ws).await;
    match ws.next_event().await {
        Event::Closed(code, reason) => {
            assert_eq!(code, Some(1001));
            assert!(reason.contains("idle"), "{reason}");
        }
        other => panic!("expected a close, got {other:?}"),
    }
    assert!(last.elapsed() >= Duration::from_secs(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_per_connection() {
    let moto = Moto::start();
    let server = Server::start(&[
        ("AWS_ENDPOINT_URL", moto.url.as_str()),
        ("AWS_ACCESS_KEY_ID", "AKIAWEBSOCKETTEST001"),
        (
            "AWS_SECRET_ACCESS_KEY",
            "websocketSecret0000000000000000000000000",
        ),
        // Buckets that earn no token back while the test runs, however slowly it runs.
        ("RATE_LIMIT_PER_SECOND", "0.0001"),
        ("RATE_LIMIT_BURST", "4"),
        ("CREDENTIAL_RATE_LIMIT_PER_MINUTE", "0.001"),
        ("CREDENTIAL_RATE_LIMIT_BURST", "2"),
    ]);
    let mut ws = server.connect().await;

    // The credential-testing tools run out first.
    for _ in 0..2 {
        let reply = ws.envelope("aws/validate-credentials", json!({})).await;
        assert_eq!(reply["message_type"], "RESPONSE", "{reply}");
    }
    let limited = ws
        .envelope("aws/set-environment", json!({"region": "us-east-2"}))
        .await;
    assert_eq!(limited["message_type"], "ERROR");
    assert_eq!(limited["error_code"], "RATE_LIMITED");
    assert!(
        limited["retry_after_ms"].as_u64().unwrap() > 1000,
        "{limited}"
    );

    // Then every tool call (2 of the burst of 4 are spent).
    for _ in 0..2 {
        let ok = ws
            .rpc(
                "tools/call",
                json!({"name": "aws_list_profiles", "arguments": {}}),
            )
            .await;
        assert!(ok.get("result").is_some(), "{ok}");
    }
    let limited = ws
        .rpc(
            "tools/call",
            json!({"name": "aws_list_profiles", "arguments": {}}),
        )
        .await;
    assert_eq!(limited["error"]["code"], -32010, "{limited}");
    assert!(limited["error"]["data"]["retryAfterMs"].as_u64().unwrap() > 0);
    assert!(
        limited["error"]["message"]
            .as_str()
            .unwrap()
            .contains("retry after")
    );

    // The connection stays open and protocol messages still work; another connection has its
    // own buckets.
    still_usable(&mut ws).await;
    let mut other = server.connect().await;
    let reply = other.envelope("aws/validate-credentials", json!({})).await;
    assert_eq!(reply["message_type"], "RESPONSE");
}

/// Bad input, each answered with a structured error; `ping` works after each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_structured_errors_and_the_connection_stays_usable() {
    let moto = Moto::start();
    let server = Server::start(&env(&moto));
    let mut ws = server.connect().await;
    let deep = format!("{}{}", "[".repeat(60_000), "]".repeat(60_000));
    let cases: Vec<(String, Value)> = vec![
        (String::new(), json!({"error": {"code": -32700}})),
        ("{".into(), json!({"error": {"code": -32700}})),
        ("null".into(), json!({"error": {"code": -32600}})),
        ("42".into(), json!({"error": {"code": -32600}})),
        ("\"ping\"".into(), json!({"error": {"code": -32600}})),
        ("[]".into(), json!({"error": {"code": -32600}})),
        ("[1]".into(), json!([{"error": {"code": -32600}}])),
        ("{}".into(), json!({"error": {"code": -32600}})),
        (deep, json!({"error": {"code": -32700}})),
        (r#"{"jsonrpc":"2.0","id":1e400,"method":"ping"}"#.into(), json!({"error": {"code": -32700}})),
        (r#"{"jsonrpc":"2.0","id":123456789012345678901234567890,"method":"ping"}"#.into(), json!({"error": {"code": -32600}})),
        (r#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#.into(), json!({"error": {"code": -32600}})),
        (r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#.into(), json!({"error": {"code": -32600}})),
        (r#"{"jsonrpc":"2.0","id":{},"method":"ping"}"#.into(), json!({"error": {"code": -32600}})),
        (r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#.into(), json!({"id": 1, "error": {"code": -32600}})),
        (r#"{"jsonrpc":"2.0","id":1,"method":5}"#.into(), json!({"id": 1, "error": {"code": -32600}})),
        (r#"{"jsonrpc":"2.0","id":1}"#.into(), json!({"id": 1, "error": {"code": -32600}})),
        (r#"{"jsonrpc":"2.0","id":1,"method":"resources/list"}"#.into(), json!({"id": 1, "error": {"code": -32601}})),
        (r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":7}"#.into(), json!({"error": {"code": -32602}})),
        (r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}"#.into(), json!({"error": {"code": -32602}})),
        (r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":7}}"#.into(), json!({"error": {"code": -32602}})),
        (r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"aws_nope"}}"#.into(), json!({"error": {"code": -32602}})),
        (r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"aws_list_profiles","arguments":[]}}"#.into(), json!({"error": {"code": -32602}})),
        (r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"cursor":"next"}}"#.into(), json!({"error": {"code": -32602}})),
        (r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":5}}"#.into(), json!({"error": {"code": -32602}})),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"aws_get_credentials","arguments":{"include_session_token":"yes"}}}"#.into(),
            json!({"result": {"isError": true, "structuredContent": {"error": "validation_error", "field": "include_session_token"}}}),
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"aws_get_account_info","arguments":{"profile":["a"]}}}"#.into(),
            json!({"result": {"isError": true, "structuredContent": {"error": "validation_error", "field": "profile"}}}),
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"aws_list_profiles","arguments":{"verbose":true}}}"#.into(),
            json!({"result": {"isError": true, "structuredContent": {"error": "validation_error", "message": "unknown argument: this tool takes no arguments"}}}),
        ),
        (r#"{"message_type":"REQUEST"}"#.into(), json!({"message_type": "ERROR", "error_code": "INVALID_REQUEST"})),
        (r#"{"message_type":"REQUEST","message_id":"a","protocol_version":"1.0","method":"aws/list-profiles"}"#.into(), json!({"message_type": "ERROR", "request_id": "a", "error_code": "UNSUPPORTED_PROTOCOL_VERSION"})),
        (r#"{"message_type":"REQUEST","message_id":"a","protocol_version":"2.0","method":"aws/nope"}"#.into(), json!({"request_id": "a", "error_code": "METHOD_NOT_FOUND"})),
        (r#"{"message_type":"REQUEST","message_id":"a","protocol_version":"2.0","method":"aws/list-profiles","params":"x"}"#.into(), json!({"request_id": "a", "error_code": "INVALID_PARAMS"})),
        (r#"{"message_type":"RESPONSE","message_id":"a","protocol_version":"2.0"}"#.into(), json!({"error_code": "INVALID_REQUEST"})),
        (r#"{"message_type":"REQUEST","message_id":"a","protocol_version":"2.0","method":"aws/get-credentials","params":{"profile":"../../etc/passwd"}}"#.into(), json!({"error_code": "VALIDATION_ERROR", "details": {"field": "profile"}})),
        (r#"{"message_type": "REQUEST", "message_id": "a""#.into(), json!({"message_type": "ERROR", "error_code": "PARSE_ERROR"})),
        (r#"{"method":"aws/list-profiles","params":{}}"#.into(), json!({"message_type": "ERROR", "error_code": "INVALID_REQUEST"})),
    ];
    for (input, expected) in cases {
        ws.send_text(input.clone()).await;
        let reply = ws.recv().await;
        let shown: String = input.chars().take(120).collect();
        assert_subset(&expected, &reply, &shown);
        if let Some(message) = reply
            .pointer("/error/message")
            .or(reply.get("error_message"))
        {
            assert!(
                !message.as_str().unwrap_or("").is_empty(),
                "{shown}: empty message"
            );
        }
        still_usable(&mut ws).await;
    }

    // Text that is not UTF-8.
    ws.send_invalid_utf8().await;
    let reply = ws.recv().await;
    assert_eq!(reply["error"]["code"], -32700, "{reply}");
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .contains("UTF-8")
    );
    still_usable(&mut ws).await;

    // Notifications and stray responses get no reply, but are logged; the next reply is the
    // ping's own.
    ws.send_json(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .await;
    ws.send_json(&json!({"jsonrpc": "2.0", "id": 99, "result": {}}))
        .await;
    still_usable(&mut ws).await;
    server.logs.wait_for("notification record", |r| {
        r["fields"]["outcome"] == "notification"
    });
    server.logs.wait_for("stray response record", |r| {
        r["fields"]["outcome"] == "unexpected_response"
    });

    // A batch (2025-03-26) gets one array of answers.
    let reply = ws
        .request(json!([
            {"jsonrpc": "2.0", "id": "a", "method": "ping"},
            {"jsonrpc": "2.0", "method": "notifications/initialized"},
            {"jsonrpc": "2.0", "id": "b", "method": "nope"}
        ]))
        .await;
    assert_subset(
        &json!([{"id": "a", "result": {}}, {"id": "b", "error": {"code": -32601}}]),
        &reply,
        "batch",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmasked_frames_close_with_1002() {
    let moto = Moto::start();
    let server = Server::start(&env(&moto));
    let mut raw = RawWs::connect(&server.addr);
    // A masked ping is answered...
    let ping = br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
    raw.send(&RawWs::frame(1, true, true, ping)).unwrap();
    let (opcode, reply) = raw.read_frame().unwrap();
    assert_eq!(opcode, 1);
    let reply: Value = serde_json::from_slice(&reply).unwrap();
    assert_eq!(reply["result"], json!({}));
    // ...the same frame unmasked fails the connection (RFC 6455 section 5.1).
    raw.send(&RawWs::frame(1, true, false, ping)).unwrap();
    assert_eq!(raw.close_code(), Some(1002));
    server
        .logs
        .wait_for("$disconnect 1002", |r| r["fields"]["status_code"] == 1002);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_message_inside_a_fragmented_one_closes_with_1002() {
    let moto = Moto::start();
    let server = Server::start(&env(&moto));
    let mut ws = server.connect().await;
    ws.send_raw_fragment(OpCode::Data(Data::Text), b"{\"jsonrpc\":".to_vec(), false)
        .await;
    ws.send_raw_fragment(
        OpCode::Data(Data::Text),
        br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#.to_vec(),
        true,
    )
    .await;
    match ws.next_event().await {
        Event::Closed(code, reason) => {
            assert_eq!(code, Some(1002));
            assert!(reason.contains("fragmented"), "{reason}");
        }
        other => panic!("expected a close, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_every_connection_with_1001_and_runs_disconnect() {
    let moto = Moto::start();
    let mut server = Server::start(&env(&moto));
    let mut clients = Vec::new();
    for _ in 0..3 {
        let mut ws = server.connect().await;
        still_usable(&mut ws).await;
        clients.push(ws);
    }
    let stopping = std::thread::spawn(move || {
        let status = server.terminate();
        (status, server.logs.clone())
    });
    for ws in &mut clients {
        match ws.next_event().await {
            Event::Closed(code, reason) => {
                assert_eq!(code, Some(1001));
                assert!(reason.contains("stopping"), "{reason}");
            }
            other => panic!("expected a close, got {other:?}"),
        }
    }
    let (status, logs) = stopping.join().unwrap();
    assert!(status.success(), "{status}");
    let disconnects = logs
        .records()
        .into_iter()
        .filter(|r| r["fields"]["message"] == "disconnected" && r["fields"]["status_code"] == 1001)
        .count();
    assert_eq!(disconnects, 3, "a $disconnect for every connection");
}

/// `serve` writes its log records in batches from a writer thread: still one record for every
/// message (with API Gateway's request id in its span), none lost or doubled, and every record
/// of the shutdown (a `$disconnect` for each of many connections, then the shutdown's own
/// record, made just before the process exits, which the shutdown makes whenever it closed a
/// connection) is written, in that order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_record_is_written_including_those_of_the_shutdown() {
    const CONNECTIONS: u64 = 100;
    const MESSAGES: u64 = 500;
    let moto = Moto::start();
    let mut server = Server::start(&env(&moto));
    let mut clients = Vec::new();
    for _ in 0..CONNECTIONS {
        clients.push(server.connect().await);
    }
    let ws = &mut clients[0];
    for id in 0..MESSAGES {
        ws.send_json(&json!({"jsonrpc": "2.0", "id": id, "method": "ping"}))
            .await;
    }
    for _ in 0..MESSAGES {
        assert_eq!(ws.recv().await["result"], json!({}));
    }
    let status = server.terminate();
    assert!(status.success(), "{status}");
    let records = server.logs.records();
    let mut logged: Vec<u64> = records
        .iter()
        .filter(|r| r["fields"]["method"] == "ping")
        .map(|r| {
            // API Gateway's request id comes with the record's span, once.
            assert!(r["span"]["api_request_id"].is_string(), "{r}");
            assert!(r.get("spans").is_none(), "{r}");
            r["fields"]["request_id"]
                .as_str()
                .and_then(|id| id.parse().ok())
                .unwrap_or_else(|| panic!("a request id: {r}"))
        })
        .collect();
    logged.sort_unstable();
    assert_eq!(logged, (0..MESSAGES).collect::<Vec<_>>());
    let disconnects = records
        .iter()
        .filter(|r| r["fields"]["message"] == "disconnected" && r["fields"]["status_code"] == 1001)
        .count();
    assert_eq!(disconnects as u64, CONNECTIONS);
    let position = |message: &str| {
        records
            .iter()
            .rposition(|r| r["fields"]["message"] == message)
            .unwrap_or_else(|| panic!("no record {message:?}"))
    };
    assert!(
        position("connections closed for shutdown") > position("disconnected"),
        "the shutdown's own record comes after the disconnects"
    );
    // It counts the connections open when the shutdown began, however many of them had
    // closed by the time the HTTP server stopped.
    assert_eq!(
        records[position("connections closed for shutdown")]["fields"]["connections"],
        CONNECTIONS
    );
    drop(clients);
}

/// Clients that send and never read: each is stopped being read, then closed with 1008, and
/// the server's memory stays bounded and goes back down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_do_not_read_are_closed_and_memory_stays_bounded() {
    let moto = Moto::start();
    let mut vars = env(&moto);
    vars.push(("SEND_TIMEOUT_SECS", "2"));
    let server = Server::start(&vars);
    let mut ws = server.connect().await;
    still_usable(&mut ws).await;
    let idle_kb = support::rss_kb(server.pid());

    // 50 tools/list in one message: each answer is about 128 KB.
    let batch: Vec<Value> = (0..50)
        .map(|i| json!({"jsonrpc": "2.0", "id": i, "method": "tools/list"}))
        .collect();
    let frame = RawWs::frame(1, true, true, Value::Array(batch).to_string().as_bytes());
    let hostile: Vec<_> = (0..10)
        .map(|_| {
            let mut raw = RawWs::connect(&server.addr);
            let frame = frame.clone();
            std::thread::spawn(move || {
                raw.stream
                    .set_write_timeout(Some(Duration::from_secs(5)))
                    .unwrap();
                for _ in 0..300 {
                    if raw.send(&frame).is_err() {
                        break;
                    }
                }
                raw
            })
        })
        .collect();
    // They stay connected, never reading, until the server closes them.
    let _held: Vec<RawWs> = hostile.into_iter().map(|c| c.join().unwrap()).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let closed = server
            .logs
            .records()
            .into_iter()
            .filter(|r| {
                r["fields"]["message"] == "disconnected" && r["fields"]["status_code"] == 1008
            })
            .count();
        if closed == 10 {
            break;
        }
        assert!(Instant::now() < deadline, "{closed} of 10 closed with 1008");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The well-behaved connection was served throughout.
    still_usable(&mut ws).await;
    let peak_kb = server.peak_rss_kb();
    assert!(peak_kb < 64 * 1024, "peak RSS {peak_kb} kB");
    // The allocator gives freed memory back within seconds (jemalloc's decay is 10 s).
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let after_kb = support::rss_kb(server.pid());
        if after_kb < idle_kb + 8 * 1024 {
            eprintln!("idle {idle_kb} kB, peak {peak_kb} kB, after {after_kb} kB");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "RSS {after_kb} kB after the clients went, {idle_kb} kB before (peak {peak_kb} kB)"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// A refusal promises a retry delay; a retry after that delay is admitted, and no refusal
/// promises 0 ms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_the_promised_delay_is_admitted() {
    let moto = Moto::start();
    let server = Server::start(&[
        ("AWS_ENDPOINT_URL", moto.url.as_str()),
        ("AWS_ACCESS_KEY_ID", "AKIAWEBSOCKETTEST001"),
        (
            "AWS_SECRET_ACCESS_KEY",
            "websocketSecret0000000000000000000000000",
        ),
        ("RATE_LIMIT_PER_SECOND", "50"),
        ("RATE_LIMIT_BURST", "1"),
    ]);
    let mut ws = server.connect().await;
    let call = json!({"name": "aws_list_profiles", "arguments": {}});
    let mut refusals = 0;
    for _ in 0..20 {
        let reply = ws.rpc("tools/call", call.clone()).await;
        let Some(error) = reply.get("error") else {
            continue;
        };
        refusals += 1;
        let wait = error["data"]["retryAfterMs"].as_u64().expect("a delay");
        assert!(wait >= 1, "{reply}");
        assert!(
            error["message"]
                .as_str()
                .unwrap()
                .contains(&format!("retry after {wait} ms")),
            "{reply}"
        );
        tokio::time::sleep(Duration::from_millis(wait)).await;
        let retried = ws.rpc("tools/call", call.clone()).await;
        assert!(retried.get("result").is_some(), "refused again: {retried}");
    }
    assert!(
        refusals > 0,
        "the bucket of one refused the back-to-back calls"
    );
}
