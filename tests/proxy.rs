//! `mcp-aws-tools proxy` driven line by line, as a desktop host drives it: every request gets
//! an answer (the endpoint's, or an error naming why not), messages pass through unchanged, a
//! WebSocket closed for idleness is connected again, and the proxy exits when stdin closes.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{BINARY, Moto, Server};

const KEY: &str = "AKIAPROXYTESTS000001";
const SECRET: &str = "proxyTestsSecret000000000000000000000000";

/// Answers are waited for this long at most: a missing one fails the test.
const ANSWER_WITHIN: Duration = Duration::from_secs(60);

struct Proxy {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Proxy {
    fn start(args: &[&str], env: &[(&str, &str)]) -> Proxy {
        let mut child = Command::new(BINARY)
            .arg("proxy")
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", support::temp_dir("proxy-home"))
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the proxy");
        let (sender, lines) = mpsc::channel();
        let stdout = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let collected = stderr.clone();
        let pipe = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                let mut text = collected.lock().unwrap();
                text.push_str(&line);
                text.push('\n');
            }
        });
        Proxy {
            stdin: child.stdin.take(),
            child,
            lines,
            stderr,
        }
    }

    fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(line.as_bytes()).expect("write");
        stdin.write_all(b"\n").expect("write");
        stdin.flush().expect("flush");
    }

    fn recv(&self) -> Value {
        let line = self
            .lines
            .recv_timeout(ANSWER_WITHIN)
            .unwrap_or_else(|_| panic!("no answer; stderr:\n{}", self.stderr()));
        assert!(!line.contains('\n'));
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
    }

    /// `count` answers, by id.
    fn answers(&self, count: usize) -> Vec<Value> {
        (0..count).map(|_| self.recv()).collect()
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Closes stdin and waits for the exit.
    fn finish(mut self) -> (ExitStatus, Vec<String>, String) {
        drop(self.stdin.take());
        let started = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            assert!(
                started.elapsed() < ANSWER_WITHIN,
                "the proxy did not exit after stdin closed; stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let rest: Vec<String> = self.lines.try_iter().collect();
        std::thread::sleep(Duration::from_millis(50));
        let stderr = self.stderr();
        (status, rest, stderr)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn server(moto: &Moto, extra: &[(&str, &str)]) -> Server {
    let mut env = vec![
        ("AWS_ENDPOINT_URL", moto.url.as_str()),
        ("AWS_ACCESS_KEY_ID", KEY),
        ("AWS_SECRET_ACCESS_KEY", SECRET),
        ("AWS_REGION", "us-east-1"),
    ];
    env.extend_from_slice(extra);
    Server::start_with(support::temp_dir("proxy-serve"), &["--iam"], &env)
}

fn signing() -> Vec<(&'static str, &'static str)> {
    vec![
        ("AWS_ACCESS_KEY_ID", KEY),
        ("AWS_SECRET_ACCESS_KEY", SECRET),
        ("AWS_REGION", "us-east-1"),
    ]
}

fn by_id(answers: Vec<Value>) -> std::collections::BTreeMap<String, Value> {
    answers
        .into_iter()
        .map(|a| match &a {
            Value::Array(items) => (format!("batch:{}", items[0]["id"]), a.clone()),
            _ => (a["id"].to_string(), a),
        })
        .collect()
}

/// Over both transports: requests, a notification, a batch, a line that is not JSON and a
/// response each get what the endpoint gives them, the endpoint's own text passed on as it is.
#[test]
fn every_message_is_answered_over_both_transports() {
    let moto = Moto::start();
    let server = server(&moto, &[]);
    for url in [server.ws_url(), format!("http://{}/mcp", server.addr)] {
        let mut proxy = Proxy::start(&[&url], &signing());
        proxy.send(r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#);
        let initialized = proxy.recv();
        assert_eq!(
            initialized["result"]["protocolVersion"], "2025-06-18",
            "{url}"
        );
        proxy.send(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
        proxy.send(r#"{"jsonrpc":"2.0","id":"two","method":"tools/call","params":{"name":"aws_list_profiles","arguments":{}}}"#);
        proxy.send("this is not JSON");
        proxy.send(r#"{"jsonrpc":"2.0","id":99,"result":{}}"#);
        proxy.send(r#"[{"jsonrpc":"2.0","id":3,"method":"ping"},{"jsonrpc":"2.0","id":4,"method":"tools/list"}]"#);
        let is_ws = url.starts_with("ws");
        // Over HTTP a batch is refused for each of its requests; over WebSocket (2025-03-26's
        // batches) it is answered in one array.
        let expected = if is_ws { 3 } else { 4 };
        let answers = by_id(proxy.answers(expected));
        assert_eq!(answers[r#""two""#]["result"]["isError"], false, "{url}");
        assert_eq!(answers["null"]["error"]["code"], -32700, "{url}");
        if is_ws {
            let batch = &answers["batch:3"];
            assert_eq!(batch[1]["id"], 4);
            assert!(batch[1]["result"]["tools"].is_array());
        } else {
            assert_eq!(answers["3"]["error"]["code"], -32600, "{url}");
            assert_eq!(answers["4"]["error"]["code"], -32600, "{url}");
        }
        let (status, rest, stderr) = proxy.finish();
        assert!(status.success(), "{url}: {status}; {stderr}");
        assert!(
            rest.is_empty(),
            "{url}: nothing answers the response: {rest:?}"
        );
        assert_eq!(stderr, "", "{url}");
    }
}

/// A reply many times the proxy's read chunk (8 KiB) comes through whole: a batch of eight
/// `tools/list` requests, answered over WebSocket in one array of about 80 KB, each answer the
/// same list as a single request's.
#[test]
fn a_reply_larger_than_a_read_comes_through_whole() {
    let moto = Moto::start();
    let server = server(&moto, &[]);
    let mut proxy = Proxy::start(&[&server.ws_url()], &signing());
    proxy.send(r#"{"jsonrpc":"2.0","id":0,"method":"tools/list"}"#);
    let single = proxy.recv();
    let tools = &single["result"]["tools"];
    assert!(tools.as_array().is_some_and(|t| t.len() == 5), "{single}");
    let batch: Vec<Value> = (1..=8)
        .map(|id| json!({"jsonrpc": "2.0", "id": id, "method": "tools/list"}))
        .collect();
    let text = Value::Array(batch).to_string();
    proxy.send(&text);
    let answers = proxy.recv();
    let answers = answers.as_array().expect("one array");
    assert_eq!(answers.len(), 8);
    assert!(
        serde_json::to_string(answers).unwrap().len() > 64 * 1024,
        "the reply spans many reads"
    );
    for (answer, id) in answers.iter().zip(1..) {
        assert_eq!(answer["id"], id);
        assert_eq!(&answer["result"]["tools"], tools);
    }
    let (status, _, stderr) = proxy.finish();
    assert!(status.success(), "{stderr}");
}

/// Over HTTP the proxy adds the headers of 2026-07-28 (`MCP-Protocol-Version`, `Mcp-Method`,
/// `Mcp-Name`, base64 when the name is not plain ASCII) that the endpoint checks against the
/// body, and the negotiated version for the handshake era.
#[test]
fn http_requests_carry_the_routing_headers() {
    let moto = Moto::start();
    let server = server(&moto, &[]);
    let mut proxy = Proxy::start(&[&format!("http://{}/mcp", server.addr)], &signing());
    let meta = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                      "io.modelcontextprotocol/clientCapabilities": {}});
    for (id, method, params) in [
        (1, "server/discover", json!({"_meta": meta})),
        (
            2,
            "tools/call",
            json!({"name": "aws_get_credentials", "arguments": {}, "_meta": meta}),
        ),
        // Not a tool: a name that is not ASCII reaches the server base64-encoded, matches the
        // body, and is refused as an unknown tool, not as a header mismatch.
        (
            3,
            "tools/call",
            json!({"name": "outil_é", "arguments": {}, "_meta": meta}),
        ),
    ] {
        proxy.send(
            &json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string(),
        );
        let answer = proxy.recv();
        assert_eq!(answer["id"], id);
        match id {
            3 => assert_eq!(answer["error"]["code"], -32602, "{answer}"),
            _ => assert_eq!(answer["result"]["resultType"], "complete", "{answer}"),
        }
    }
    let (status, _, stderr) = proxy.finish();
    assert!(status.success(), "{stderr}");
}

/// API Gateway closes a silent connection with 1001 (here after 2 s, `IDLE_TIMEOUT_SECS`): the
/// proxy connects again, and the next request is answered on the new connection.
#[test]
fn a_websocket_closed_for_idleness_is_connected_again() {
    let moto = Moto::start();
    let server = server(&moto, &[("IDLE_TIMEOUT_SECS", "2")]);
    let mut proxy = Proxy::start(&[&server.ws_url()], &signing());
    proxy.send(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#);
    assert!(proxy.recv()["result"]["tools"].is_array());
    // The server closes the first connection for idleness...
    server.logs.wait_for("the idle close", |r| {
        r["fields"]["message"] == "disconnected" && r["fields"]["status_code"] == 1001
    });
    // ...and the proxy has connected again, without being asked.
    let started = Instant::now();
    while server
        .logs
        .records()
        .iter()
        .filter(|r| r["fields"]["message"] == "connected")
        .count()
        < 2
    {
        assert!(started.elapsed() < ANSWER_WITHIN, "{}", server.logs.text());
        std::thread::sleep(Duration::from_millis(50));
    }
    proxy.send(r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"aws_list_profiles","arguments":{}}}"#);
    let answer = proxy.recv();
    assert_eq!(answer["id"], 2);
    assert_eq!(answer["result"]["isError"], false, "{answer}");
    let (status, _, stderr) = proxy.finish();
    assert!(status.success());
    assert_eq!(stderr, "", "a reconnection for idleness is not trouble");
}

/// Without credentials to sign with, or an endpoint to reach, every request still gets an
/// answer naming the cause, and stderr says it once.
#[test]
fn missing_credentials_and_dead_endpoints_are_answered_not_hung() {
    // No credentials anywhere (an empty HOME, no variables).
    let mut proxy = Proxy::start(&["http://127.0.0.1:9/mcp", "--region", "us-east-1"], &[]);
    for id in 1..=2 {
        proxy.send(&format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/list"}}"#
        ));
    }
    for answer in proxy.answers(2) {
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert_eq!(answer["error"]["code"], -32000);
        assert!(
            message.contains("no AWS credentials to sign with"),
            "{message}"
        );
    }
    let (status, _, stderr) = proxy.finish();
    assert!(status.success());
    assert_eq!(
        stderr.matches("no AWS credentials").count(),
        1,
        "one line: {stderr}"
    );

    // Nothing listens on port 9 of the loopback.
    for url in ["http://127.0.0.1:9/mcp", "ws://127.0.0.1:9/"] {
        let mut proxy = Proxy::start(&[url, "--no-sign"], &[]);
        proxy.send(r#"{"jsonrpc":"2.0","id":7,"method":"tools/list"}"#);
        let answer = proxy.recv();
        assert_eq!(answer["id"], 7);
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("could not be reached"), "{url}: {message}");
        let (status, _, _) = proxy.finish();
        assert!(status.success());
    }
}

#[test]
fn bad_command_lines_say_what_to_fix() {
    for (args, says) in [
        (vec![], "needs the endpoint's URL"),
        (
            vec!["ftp://example.com/mcp"],
            "ws://, wss://, http:// or https://",
        ),
        (vec!["https://example.com/mcp"], "no AWS region"),
        (
            vec!["https://example.com/mcp", "--profile"],
            "--profile needs a value",
        ),
        (
            vec!["https://example.com/mcp", "--frobnicate"],
            "unexpected option",
        ),
    ] {
        let output = Command::new(BINARY)
            .arg("proxy")
            .args(&args)
            .env_clear()
            .env("HOME", support::temp_dir("proxy-args"))
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stdin(Stdio::null())
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert!(output.stdout.is_empty(), "stdout carries MCP only");
    }
}

/// A CA bundle named by `AWS_CA_BUNDLE` (as the AWS CLI reads it) that cannot be used stops the
/// proxy before anything is sent, with one line naming the variable, the file and why.
#[test]
fn an_unusable_aws_ca_bundle_stops_the_start() {
    let dir = support::temp_dir("proxy-ca-bundle");
    let empty = dir.join("empty.pem");
    std::fs::write(&empty, "no certificate here\n").expect("write");
    let missing = dir.join("missing.pem");
    for (path, says) in [
        (&empty, "it holds no PEM certificate"),
        (&missing, "could not be read"),
    ] {
        let output = Command::new(BINARY)
            .args(["proxy", "https://example.com/mcp", "--no-sign"])
            .env_clear()
            .env("HOME", &dir)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CA_BUNDLE", path)
            .stdin(Stdio::null())
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        let expected = format!("AWS_CA_BUNDLE: {}", path.display());
        assert!(stderr.contains(&expected), "{stderr}");
        assert!(stderr.contains(says), "{stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(output.stdout.is_empty(), "stdout carries MCP only");
    }
}

/// An endpoint whose certificate comes from a private CA, as behind a TLS-inspecting proxy
/// (here `serve` behind a TLS front): trusted over both transports through the `ca_bundle` of
/// the profile in use, as the AWS CLI trusts it; without one, every request is answered with
/// an error that says the certificate is not trusted.
#[test]
fn a_private_ca_is_trusted_through_the_profiles_ca_bundle() {
    let server = Server::start(&[]);
    let port: u16 = server
        .addr
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a port");
    let front = support::TlsFront::start(port);
    let home = support::temp_dir("proxy-profile-ca");
    support::write_file(
        &home.join(".aws/config"),
        &format!("[profile corp]\nca_bundle = {}\n", front.ca_pem.display()),
    );
    let home = home.display().to_string();
    let wss = front.url.replacen("https://", "wss://", 1);
    for url in [format!("{}/mcp", front.url), format!("{wss}/ws")] {
        let mut trusted = Proxy::start(
            &[&url, "--no-sign", "--profile", "corp"],
            &[("HOME", &home)],
        );
        trusted.send(r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#);
        let initialized = trusted.recv();
        assert_eq!(
            initialized["result"]["protocolVersion"], "2025-06-18",
            "{url}: {initialized}"
        );
        trusted.send(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
        trusted.send(r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#);
        let listed = trusted.recv();
        assert!(listed["result"]["tools"].is_array(), "{url}: {listed}");
        let (status, _, stderr) = trusted.finish();
        assert!(status.success(), "{url}: {status}; {stderr}");
        assert_eq!(stderr, "", "{url}");

        // The default profile names no bundle: the system's roots, which do not hold the CA.
        let mut refused = Proxy::start(&[&url, "--no-sign"], &[("HOME", &home)]);
        refused.send(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#);
        let answer = refused.recv();
        assert_eq!(answer["id"], 1, "{url}: {answer}");
        assert_eq!(answer["error"]["code"], -32000, "{url}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.ends_with("the endpoint at localhost presented a certificate no trusted root vouches for; set AWS_CA_BUNDLE or the profile's ca_bundle to the CA bundle of the endpoint or proxy"),
            "{url}: {message}"
        );
    }
}
