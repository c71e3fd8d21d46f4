//! MCP over Streamable HTTP on `serve`'s `/mcp`: 2026-07-28 per request and the handshake era on
//! the same endpoint, and a corpus of bad requests, each answered with the status and JSON-RPC
//! error the specification gives, after which the endpoint still answers.

mod support;

use serde_json::{Value, json};
use support::{HttpReply, Moto, Server, http_request};

const MODERN: &str = "2026-07-28";
const ACCEPT: (&str, &str) = ("Accept", "application/json, text/event-stream");
const JSON: (&str, &str) = ("Content-Type", "application/json");

fn server(moto: &Moto) -> Server {
    Server::start(&[
        ("AWS_ENDPOINT_URL", moto.url.as_str()),
        ("AWS_ACCESS_KEY_ID", "AKIAHTTPTESTS0000001"),
        (
            "AWS_SECRET_ACCESS_KEY",
            "hTtPsEcReT0000000000000000000000000000001",
        ),
        ("AWS_REGION", "us-east-1"),
    ])
}

/// A 2026-07-28 request: `_meta` in the body, and the routing headers that match it.
fn modern(id: i64, method: &str, mut params: Value) -> (Value, Vec<(String, String)>) {
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {},
    });
    let mut headers = vec![
        ("MCP-Protocol-Version".to_owned(), MODERN.to_owned()),
        ("Mcp-Method".to_owned(), method.to_owned()),
    ];
    if let Some(name) = params["name"].as_str() {
        headers.push(("Mcp-Name".to_owned(), name.to_owned()));
    }
    (
        json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}),
        headers,
    )
}

fn post(server: &Server, headers: &[(&str, &str)], body: &[u8]) -> HttpReply {
    http_request(&server.addr, "POST", "/mcp", headers, body)
}

fn post_modern(server: &Server, body: &Value, extra: &[(String, String)]) -> HttpReply {
    let mut headers = vec![ACCEPT, JSON];
    headers.extend(extra.iter().map(|(n, v)| (n.as_str(), v.as_str())));
    post(server, &headers, body.to_string().as_bytes())
}

#[test]
fn modern_clients_discover_list_and_call_without_a_session() {
    let moto = Moto::start();
    let server = server(&moto);

    let (discover, headers) = modern(1, "server/discover", json!({}));
    let reply = post_modern(&server, &discover, &headers);
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert!(reply.header("mcp-session-id").is_none(), "{reply:?}");
    let result = &reply.json()["result"];
    assert_eq!(result["resultType"], "complete", "{result}");
    assert_eq!(
        result["supportedVersions"],
        json!(["2026-07-28", "2025-11-25", "2025-06-18", "2025-03-26"])
    );
    assert!(result["capabilities"]["tools"].is_object(), "{result}");
    assert_eq!(
        result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"],
        "mcp-aws-tools"
    );
    assert_eq!(result["cacheScope"], "public");
    assert!(
        result["instructions"]
            .as_str()
            .is_some_and(|i| i.contains("environment_id")),
        "{result}"
    );

    let (list, headers) = modern(2, "tools/list", json!({}));
    let reply = post_modern(&server, &list, &headers);
    assert_eq!(reply.status, 200, "{reply:?}");
    let result = &reply.json()["result"];
    assert_eq!(result["resultType"], "complete");
    assert_eq!(result["cacheScope"], "public");
    assert!(result["ttlMs"].as_u64().is_some_and(|t| t > 0), "{result}");
    assert_eq!(
        result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"],
        "mcp-aws-tools"
    );
    assert_eq!(result["tools"].as_array().map(Vec::len), Some(5));

    // set-environment answers a handle; a later request, on another connection, uses it.
    let (set, headers) = modern(
        3,
        "tools/call",
        json!({"name": "aws_set_environment", "arguments": {"region": "eu-west-1"}}),
    );
    let reply = post_modern(&server, &set, &headers);
    assert_eq!(reply.status, 200, "{reply:?}");
    let set = &reply.json()["result"];
    assert_eq!(set["isError"], false, "{set}");
    assert_eq!(set["resultType"], "complete");
    let handle = set["structuredContent"]["environment_id"]
        .as_str()
        .expect("environment_id")
        .to_owned();
    let (get, headers) = modern(
        4,
        "tools/call",
        json!({"name": "aws_get_credentials", "arguments": {"environment_id": handle}}),
    );
    let reply = post_modern(&server, &get, &headers);
    let got = &reply.json()["result"];
    assert_eq!(
        got["structuredContent"]["credentials"]["region"], "eu-west-1",
        "{got}"
    );
    // Without the handle, nothing carries over: the process's region.
    let (get, headers) = modern(
        5,
        "tools/call",
        json!({"name": "aws_get_credentials", "arguments": {}}),
    );
    let got = &post_modern(&server, &get, &headers).json()["result"];
    assert_eq!(
        got["structuredContent"]["credentials"]["region"], "us-east-1",
        "{got}"
    );

    // An STS tool: who the process's credentials belong to, in moto.
    let (who, headers) = modern(
        6,
        "tools/call",
        json!({"name": "aws_get_account_info", "arguments": {}}),
    );
    let who = &post_modern(&server, &who, &headers).json()["result"];
    assert_eq!(who["isError"], false, "{who}");
    assert!(who["structuredContent"]["account_id"].is_string(), "{who}");
}

#[test]
fn handshake_clients_keep_initialize_on_the_same_endpoint() {
    let moto = Moto::start();
    let server = server(&moto);
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "test", "version": "1"}}});
    let reply = post(&server, &[ACCEPT, JSON], initialize.to_string().as_bytes());
    assert_eq!(reply.status, 200, "{reply:?}");
    let result = &reply.json()["result"];
    assert_eq!(result["protocolVersion"], "2025-11-25");
    assert!(result.get("resultType").is_none(), "{result}");
    assert!(reply.header("mcp-session-id").is_none());

    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let version = ("MCP-Protocol-Version", "2025-11-25");
    let reply = post(
        &server,
        &[ACCEPT, JSON, version],
        initialized.to_string().as_bytes(),
    );
    assert_eq!(reply.status, 202, "{reply:?}");
    assert_eq!(reply.body, "");

    for (id, method) in [(2, "ping"), (3, "tools/list")] {
        let request = json!({"jsonrpc": "2.0", "id": id, "method": method});
        let reply = post(
            &server,
            &[ACCEPT, JSON, version],
            request.to_string().as_bytes(),
        );
        assert_eq!(reply.status, 200, "{reply:?}");
        assert_eq!(reply.json()["id"], id);
        assert!(reply.json()["result"].is_object(), "{reply:?}");
    }
    let call = json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call",
        "params": {"name": "aws_list_profiles", "arguments": {}}});
    let reply = post(
        &server,
        &[ACCEPT, JSON, version],
        call.to_string().as_bytes(),
    );
    assert_eq!(reply.json()["result"]["isError"], false, "{reply:?}");
    assert!(reply.json()["result"].get("resultType").is_none());
}

/// One bad request: what is sent, and the status and JSON-RPC code that must come back
/// (`None` for no body).
struct Case {
    what: &'static str,
    method: &'static str,
    path: &'static str,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    status: u16,
    code: Option<i64>,
}

fn case(what: &'static str, headers: &[(&str, &str)], body: impl Into<Vec<u8>>) -> Case {
    Case {
        what,
        method: "POST",
        path: "/mcp",
        headers: headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
        body: body.into(),
        status: 0,
        code: None,
    }
}

impl Case {
    fn expect(mut self, status: u16, code: Option<i64>) -> Case {
        self.status = status;
        self.code = code;
        self
    }

    fn method(mut self, method: &'static str) -> Case {
        self.method = method;
        self
    }

    fn path(mut self, path: &'static str) -> Case {
        self.path = path;
        self
    }
}

fn modern_case(what: &'static str, body: Value, headers: Vec<(String, String)>) -> Case {
    let mut all = vec![
        (ACCEPT.0.to_owned(), ACCEPT.1.to_owned()),
        (JSON.0.to_owned(), JSON.1.to_owned()),
    ];
    all.extend(headers);
    Case {
        what,
        method: "POST",
        path: "/mcp",
        headers: all,
        body: body.to_string().into_bytes(),
        status: 0,
        code: None,
    }
}

fn without(headers: &[(String, String)], name: &str) -> Vec<(String, String)> {
    headers.iter().filter(|(n, _)| n != name).cloned().collect()
}

fn with(headers: &[(String, String)], name: &str, value: &str) -> Vec<(String, String)> {
    let mut headers = without(headers, name);
    headers.push((name.to_owned(), value.to_owned()));
    headers
}

#[test]
fn bad_requests_get_the_status_and_error_the_specification_gives() {
    let moto = Moto::start();
    let server = server(&moto);
    let list = br#"{"jsonrpc":"2.0","id":7,"method":"tools/list"}"#.to_vec();
    let (call, call_headers) = modern(
        8,
        "tools/call",
        json!({"name": "aws_list_profiles", "arguments": {}}),
    );
    let (discover, discover_headers) = modern(9, "server/discover", json!({}));
    let mut missing_capabilities = discover.clone();
    missing_capabilities["params"]["_meta"]
        .as_object_mut()
        .unwrap()
        .remove("io.modelcontextprotocol/clientCapabilities");
    let mut future = discover.clone();
    future["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] = json!("2099-01-01");
    let (ping, ping_headers) = modern(10, "ping", json!({}));
    let (unknown, unknown_headers) = modern(11, "resources/list", json!({}));

    let cases = vec![
        // The transport's own rules, before the body is read.
        case("GET opens no stream", &[ACCEPT], "")
            .method("GET")
            .expect(405, Some(-32600)),
        case("DELETE ends no session", &[ACCEPT], "")
            .method("DELETE")
            .expect(405, Some(-32600)),
        case("PUT", &[ACCEPT, JSON], list.clone())
            .method("PUT")
            .expect(405, Some(-32600)),
        case(
            "a foreign Origin (DNS rebinding)",
            &[ACCEPT, JSON, ("Origin", "https://evil.example")],
            list.clone(),
        )
        .expect(403, Some(-32600)),
        case(
            "an Origin that looks local but is not",
            &[ACCEPT, JSON, ("Origin", "http://localhost.evil.example")],
            list.clone(),
        )
        .expect(403, Some(-32600)),
        case("no Accept", &[JSON], list.clone()).expect(406, Some(-32600)),
        case(
            "Accept without JSON",
            &[("Accept", "text/event-stream"), JSON],
            list.clone(),
        )
        .expect(406, Some(-32600)),
        case("no Content-Type", &[ACCEPT], list.clone()).expect(415, Some(-32600)),
        case(
            "Content-Type text/plain",
            &[ACCEPT, ("Content-Type", "text/plain")],
            list.clone(),
        )
        .expect(415, Some(-32600)),
        case(
            "a form",
            &[
                ACCEPT,
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            "a=1",
        )
        .expect(415, Some(-32600)),
        case(
            "a body over 128 KB",
            &[ACCEPT, JSON],
            vec![b' '; 200 * 1024],
        )
        .expect(413, Some(-32600)),
        // The body.
        case("an empty body", &[ACCEPT, JSON], "").expect(400, Some(-32700)),
        case("not JSON", &[ACCEPT, JSON], "{nope").expect(400, Some(-32700)),
        case("not UTF-8", &[ACCEPT, JSON], vec![b'"', 0xff, 0xfe, b'"']).expect(400, Some(-32700)),
        case(
            "a batch",
            &[ACCEPT, JSON],
            format!("[{}]", String::from_utf8_lossy(&list)),
        )
        .expect(400, Some(-32600)),
        case("an empty batch", &[ACCEPT, JSON], "[]").expect(400, Some(-32600)),
        case("a string", &[ACCEPT, JSON], "\"tools/list\"").expect(400, Some(-32600)),
        case(
            "no jsonrpc member",
            &[ACCEPT, JSON],
            r#"{"id":1,"method":"tools/list"}"#,
        )
        .expect(200, Some(-32600)),
        case(
            "an unknown method (handshake era)",
            &[ACCEPT, JSON],
            r#"{"jsonrpc":"2.0","id":1,"method":"resources/list"}"#,
        )
        .expect(200, Some(-32601)),
        case(
            "a notification is accepted, not answered",
            &[ACCEPT, JSON],
            r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}"#,
        )
        .expect(202, None),
        case(
            "a response is accepted, not answered",
            &[ACCEPT, JSON],
            r#"{"jsonrpc":"2.0","id":"s-1","result":{}}"#,
        )
        .expect(202, None),
        // Versions.
        case(
            "a version header no revision has",
            &[ACCEPT, JSON, ("MCP-Protocol-Version", "1999-01-01")],
            list.clone(),
        )
        .expect(400, Some(-32022)),
        case(
            "MCP-Protocol-Version twice",
            &[
                ACCEPT,
                JSON,
                ("MCP-Protocol-Version", "2025-11-25"),
                ("MCP-Protocol-Version", "2025-06-18"),
            ],
            list.clone(),
        )
        .expect(400, Some(-32020)),
        modern_case("2026-07-28 with a version it does not serve", future, {
            with(&discover_headers, "MCP-Protocol-Version", "2099-01-01")
        })
        .expect(400, Some(-32022)),
        modern_case(
            "2026-07-28 in the header, the body's _meta missing",
            json!({"jsonrpc": "2.0", "id": 12, "method": "tools/list"}),
            vec![
                ("MCP-Protocol-Version".into(), MODERN.into()),
                ("Mcp-Method".into(), "tools/list".into()),
            ],
        )
        .expect(400, Some(-32602)),
        modern_case(
            "2026-07-28 without clientCapabilities",
            missing_capabilities,
            discover_headers.clone(),
        )
        .expect(400, Some(-32602)),
        modern_case(
            "2026-07-28 without MCP-Protocol-Version",
            discover.clone(),
            without(&discover_headers, "MCP-Protocol-Version"),
        )
        .expect(400, Some(-32020)),
        modern_case(
            "2026-07-28 with an older MCP-Protocol-Version",
            discover.clone(),
            with(&discover_headers, "MCP-Protocol-Version", "2025-11-25"),
        )
        .expect(400, Some(-32020)),
        modern_case(
            "2026-07-28 without Mcp-Method",
            discover.clone(),
            without(&discover_headers, "Mcp-Method"),
        )
        .expect(400, Some(-32020)),
        modern_case(
            "2026-07-28 with another Mcp-Method",
            discover.clone(),
            with(&discover_headers, "Mcp-Method", "tools/list"),
        )
        .expect(400, Some(-32020)),
        modern_case(
            "2026-07-28 tools/call without Mcp-Name",
            call.clone(),
            without(&call_headers, "Mcp-Name"),
        )
        .expect(400, Some(-32020)),
        modern_case(
            "2026-07-28 tools/call with another Mcp-Name",
            call.clone(),
            with(&call_headers, "Mcp-Name", "aws_get_credentials"),
        )
        .expect(400, Some(-32020)),
        modern_case("2026-07-28 has no ping", ping, ping_headers).expect(404, Some(-32601)),
        modern_case("2026-07-28 unknown method", unknown, unknown_headers)
            .expect(404, Some(-32601)),
        modern_case(
            "2026-07-28 unknown tool",
            modern(
                13,
                "tools/call",
                json!({"name": "aws_nope", "arguments": {}}),
            )
            .0,
            modern(
                13,
                "tools/call",
                json!({"name": "aws_nope", "arguments": {}}),
            )
            .1,
        )
        .expect(400, Some(-32602)),
        // Paths.
        case("another path", &[ACCEPT, JSON], list.clone())
            .path("/nope")
            .expect(404, None),
    ];

    for case in &cases {
        let headers: Vec<(&str, &str)> = case
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let reply = http_request(&server.addr, case.method, case.path, &headers, &case.body);
        assert_eq!(reply.status, case.status, "{}: {reply:?}", case.what);
        match case.code {
            Some(code) => {
                let body = reply.json();
                assert_eq!(body["jsonrpc"], "2.0", "{}: {body}", case.what);
                assert_eq!(body["error"]["code"], code, "{}: {body}", case.what);
                let message = body["error"]["message"].as_str().unwrap_or_default();
                assert!(!message.is_empty(), "{}: {body}", case.what);
                assert!(
                    !message.contains("Error {"),
                    "{}: a Debug dump: {body}",
                    case.what
                );
                assert_eq!(
                    reply.header("content-type"),
                    Some("application/json"),
                    "{}",
                    case.what
                );
            }
            None if case.status == 202 => assert_eq!(reply.body, "", "{}", case.what),
            None => {}
        }
        if case.status == 405 {
            assert_eq!(reply.header("allow"), Some("POST"), "{}", case.what);
        }
        if case.code == Some(-32022) {
            let data = &reply.json()["error"]["data"];
            assert_eq!(data["supported"][0], MODERN, "{}: {data}", case.what);
            assert!(data["requested"].is_string(), "{}: {data}", case.what);
        }
        // The id is echoed when it could be read.
        if case.code.is_some() && case.status == 400 && case.what.starts_with("2026-07-28") {
            assert!(reply.json()["id"].is_number(), "{}: {reply:?}", case.what);
        }

        // And the endpoint still answers.
        let reply = post(&server, &[ACCEPT, JSON], &list);
        assert_eq!(reply.status, 200, "after {}: {reply:?}", case.what);
        assert_eq!(reply.json()["id"], 7);
    }
}

#[test]
fn loopback_origins_are_welcome_and_allowed_origins_configurable() {
    let moto = Moto::start();
    let server = Server::start(&[
        ("AWS_ENDPOINT_URL", moto.url.as_str()),
        ("AWS_REGION", "us-east-1"),
        ("ALLOWED_ORIGINS", "https://console.example.com"),
    ]);
    let list = br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
    for (origin, status) in [
        ("http://localhost:6274", 200),
        ("http://127.0.0.1:6274", 200),
        ("https://console.example.com", 200),
        ("https://console.example.com.evil.example", 403),
        ("null", 403),
    ] {
        let reply = post(&server, &[ACCEPT, JSON, ("Origin", origin)], list);
        assert_eq!(reply.status, status, "{origin}: {reply:?}");
    }
}
