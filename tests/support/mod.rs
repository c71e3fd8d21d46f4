//! Test support: provisions and runs what the tests talk to.
//!
//! - Python packages (moto, the MCP SDK 1.x, mcp-proxy-for-aws) in a virtualenv under `target/`,
//!   from `tests/support/requirements.txt`, and the MCP SDK 2.x in a second one, from
//!   `requirements-mcp2.txt`, installed on first use with `python3 -m venv` and pip.
//! - Node packages (the `ws` client of the reference document's Example 4) with `npm ci`.
//! - moto on 127.0.0.1 on a free port ([`Moto`]), stopped when the test process ends.
//! - The real binary: `serve` on a free port ([`Server`]) and `invoke` ([`invoke`]).
//! - A WebSocket client ([`Ws`]).
//!
//! Provisioning is serialised across test processes with a file lock.

#![allow(dead_code)]

pub mod cloudwatch;
pub mod runtime_api;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::{Frame, FrameHeader};
use tokio_tungstenite::tungstenite::{Bytes, Message};

pub const BINARY: &str = env!("CARGO_BIN_EXE_mcp-aws-tools");

pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn scratch() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
}

/// A fresh directory under `target/tmp` for one test's files.
pub fn temp_dir(name: &str) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let dir = scratch().join(format!(
        "{name}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

fn run(command: &mut Command, what: &str) {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Runs `install` once per change of `manifest`, under a lock shared by every test process.
fn provision(name: &str, manifest: &Path, install: impl FnOnce(&Path)) -> PathBuf {
    let dir = scratch().join("provisioned").join(name);
    std::fs::create_dir_all(&dir).expect("create provisioning dir");
    let lock = std::fs::File::create(dir.with_extension("lock")).expect("create lock file");
    lock.lock().expect("lock provisioning");
    let wanted = std::fs::read(manifest).expect("read manifest");
    let stamp = dir.join(".installed-from");
    if std::fs::read(&stamp).ok().as_deref() != Some(wanted.as_slice()) {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create provisioning dir");
        install(&dir);
        std::fs::write(&stamp, &wanted).expect("write stamp");
    }
    dir
}

/// The virtualenv's python, with `tests/support/requirements.txt` installed (moto, the MCP
/// Python SDK 1.x, mcp-proxy-for-aws).
pub fn python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| venv("python", "tests/support/requirements.txt"))
}

/// A second virtualenv, with the MCP Python SDK 2.x (`tests/support/requirements-mcp2.txt`),
/// which cannot share one with the 1.x SDK.
pub fn python_mcp2() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| venv("python-mcp2", "tests/support/requirements-mcp2.txt"))
}

/// The directory of `python()`'s scripts (`mcp-proxy-for-aws`).
pub fn python_bin() -> PathBuf {
    python()
        .parent()
        .expect("the venv's bin directory")
        .to_path_buf()
}

fn venv(name: &str, requirements: &str) -> PathBuf {
    let what = format!("pip install -r {requirements}");
    let requirements = repo().join(requirements);
    let dir = provision(name, &requirements, |dir| {
        run(
            Command::new("python3")
                .args(["-m", "venv"])
                .arg(dir.join("venv")),
            "python3 -m venv",
        );
        run(
            Command::new(dir.join("venv/bin/python"))
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    "-r",
                ])
                .arg(&requirements),
            &what,
        );
    });
    dir.join("venv/bin/python")
}

/// `tests/support/node` with its `node_modules` installed by `npm ci` (again when the lock file
/// changes); its scripts are copied beside them on every run, so that an edited script is run.
pub fn node_dir() -> &'static Path {
    static NODE: OnceLock<PathBuf> = OnceLock::new();
    NODE.get_or_init(|| {
        let source = repo().join("tests/support/node");
        let lock = source.join("package-lock.json");
        let dir = provision("node", &lock, |dir| {
            for file in ["package.json", "package-lock.json"] {
                std::fs::copy(source.join(file), dir.join(file)).expect("copy node files");
            }
            run(
                Command::new("npm")
                    .args(["ci", "--no-audit", "--no-fund", "--silent"])
                    .current_dir(dir),
                "npm ci",
            );
        });
        for file in ["example4.js", "ts_client.mjs"] {
            std::fs::copy(source.join(file), dir.join(file)).expect("copy node scripts");
        }
        dir
    })
}

/// moto, serving STS and IAM on 127.0.0.1. Stops when dropped or when the test process ends.
pub struct Moto {
    _helper: Helper,
    pub port: u16,
    pub url: String,
    /// An IAM role moto knows, for AssumeRole profiles.
    pub role_arn: String,
    /// With IAM authentication: an IAM user's real keys (access key id, secret access key).
    pub user: Option<(String, String)>,
    /// A session table (TTL on `expires_at`) and a KMS key, for SESSION_TABLE and KMS_KEY_ID.
    pub table: String,
    pub kms_key_id: String,
}

impl Moto {
    pub fn start() -> Moto {
        Self::launch(false)
    }

    /// moto that authenticates every request, with one IAM user whose keys are valid.
    pub fn start_with_iam_auth() -> Moto {
        Self::launch(true)
    }

    fn launch(iam_auth: bool) -> Moto {
        let mut command = Command::new(python());
        command
            .arg(repo().join("tests/support/moto_server.py"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if iam_auth {
            command.arg("--iam-auth");
        }
        let helper = Helper::start(&mut command, "moto");
        let info = &helper.info;
        let port = info["port"].as_u64().expect("port") as u16;
        let user = info.get("user").map(|u| {
            (
                u["access_key_id"].as_str().expect("key id").to_owned(),
                u["secret_access_key"].as_str().expect("secret").to_owned(),
            )
        });
        Moto {
            port,
            url: format!("http://127.0.0.1:{port}"),
            role_arn: info["role_arn"].as_str().expect("role arn").to_owned(),
            user,
            table: info["table"].as_str().expect("table").to_owned(),
            kms_key_id: info["kms_key_id"].as_str().expect("kms key").to_owned(),
            _helper: helper,
        }
    }
}

/// A helper process (a Python script, or a benchmark's own program) that prints one JSON line when it is ready and runs
/// until stdin closes; stopped when dropped, also when the test panics.
pub struct Helper {
    pub child: Child,
    /// Its first line.
    pub info: Value,
}

impl Helper {
    pub fn start(command: &mut Command, what: &str) -> Helper {
        command.stdin(Stdio::piped()).stdout(Stdio::piped());
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        let mut helper = Helper {
            child,
            info: Value::Null,
        };
        let mut line = String::new();
        BufReader::new(helper.child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .unwrap_or_else(|e| panic!("{what}: no first line: {e}"));
        helper.info = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("{what} did not start ({e}): {line:?}"));
        helper
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port nothing listens on: connections to it are refused. The port stays bound
/// (never listening) while this lives, so no server the suite starts meanwhile (moto binds a
/// free port too) can be given it.
pub struct ClosedPort {
    pub port: u16,
    _bound: tokio::net::TcpSocket,
}

pub fn closed_port() -> ClosedPort {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
        .expect("bind");
    let port = socket.local_addr().expect("addr").port();
    ClosedPort {
        port,
        _bound: socket,
    }
}

/// A server on loopback (moto, `serve`) behind TLS with a private CA
/// (tests/support/tls_front.py): `https://localhost:PORT`, and the CA's certificate in
/// `ca_pem`. Stops when dropped.
pub struct TlsFront {
    _helper: Helper,
    pub url: String,
    pub ca_pem: PathBuf,
}

impl TlsFront {
    pub fn start(upstream_port: u16) -> TlsFront {
        let dir = temp_dir("tls-front");
        let helper = Helper::start(
            Command::new(python())
                .arg(repo().join("tests/support/tls_front.py"))
                .arg(upstream_port.to_string())
                .arg(&dir)
                .stderr(Stdio::null()),
            "the TLS front",
        );
        TlsFront {
            url: format!("https://localhost:{}", helper.info["port"]),
            ca_pem: dir.join("ca.pem"),
            _helper: helper,
        }
    }
}

/// The variables every run of the binary gets: a home without AWS files, no instance metadata
/// lookups, JSON logs.
fn base_env(home: &Path) -> Vec<(String, String)> {
    vec![
        ("PATH".into(), std::env::var("PATH").unwrap_or_default()),
        ("HOME".into(), home.display().to_string()),
        ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
        ("AWS_LAMBDA_LOG_FORMAT".into(), "JSON".into()),
    ]
}

/// Log lines captured from a child process.
#[derive(Clone, Default)]
pub struct Logs {
    lines: Arc<Mutex<Vec<String>>>,
    discarding: Arc<AtomicBool>,
}

impl Logs {
    fn capture(&self, stream: impl std::io::Read + Send + 'static) {
        let logs = self.clone();
        std::thread::spawn(move || {
            let mut reader = BufReader::with_capacity(64 * 1024, stream);
            let mut line = String::new();
            loop {
                if logs.discarding.load(Ordering::Relaxed) {
                    let _ = std::io::copy(&mut reader, &mut std::io::sink());
                    break;
                }
                line.clear();
                match reader.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                let text = line.strip_suffix('\n').unwrap_or(&line);
                let text = text.strip_suffix('\r').unwrap_or(text);
                logs.lines.lock().expect("log lock").push(text.to_owned());
            }
        });
    }

    /// From now on the lines are read and dropped, not kept: a load generator's process reads
    /// the server's logs as they come (a pipe that is not read would stall the server), and
    /// keeping them, a line at a time, would charge its CPU for work the Python reference's
    /// logs do not cost it.
    pub fn discard(&self) {
        self.discarding.store(true, Ordering::Relaxed);
    }

    pub fn text(&self) -> String {
        self.lines.lock().expect("log lock").join("\n")
    }

    /// The JSON log records.
    pub fn records(&self) -> Vec<Value> {
        self.lines
            .lock()
            .expect("log lock")
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Waits until a record satisfies `predicate`.
    pub fn wait_for(&self, what: &str, predicate: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(record) = self.records().into_iter().find(|r| predicate(r)) {
                return record;
            }
            assert!(
                Instant::now() < deadline,
                "no log record for {what}; logs:\n{}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// `mcp-aws-tools serve` on a free port.
pub struct Server {
    child: Child,
    pub addr: String,
    pub logs: Logs,
    pub home: PathBuf,
}

impl Server {
    pub fn start(env: &[(&str, &str)]) -> Server {
        Self::start_in(temp_dir("home"), env)
    }

    /// With `home` as HOME (where `~/.aws` files may be written first).
    pub fn start_in(home: PathBuf, env: &[(&str, &str)]) -> Server {
        Self::start_with(home, &[], env)
    }

    /// `serve` with more arguments (`--instances N`).
    pub fn start_with(home: PathBuf, arguments: &[&str], env: &[(&str, &str)]) -> Server {
        let mut command = Command::new(BINARY);
        command
            .args(["serve", "--addr", "127.0.0.1:0"])
            .args(arguments)
            .env_clear()
            .envs(base_env(&home))
            .envs(env.iter().map(|(k, v)| (k.to_string(), v.to_string())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("start serve");
        let logs = Logs::default();
        logs.capture(child.stdout.take().expect("stdout"));
        logs.capture(child.stderr.take().expect("stderr"));
        // Owned by a Server from here, so that a server that never says it serves is stopped
        // when the panic below unwinds, instead of outliving the test.
        let mut server = Server {
            child,
            addr: String::new(),
            logs,
            home,
        };
        let serving = server
            .logs
            .wait_for("serving", |r| r["fields"]["message"] == "serving");
        server.addr = serving["fields"]["address"]
            .as_str()
            .expect("address")
            .to_owned();
        server
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    pub async fn connect(&self) -> Ws {
        Ws::connect(&self.ws_url(), &[]).await
    }

    pub async fn connect_mcp(&self) -> Ws {
        Ws::connect(&self.ws_url(), &["mcp"]).await
    }

    /// An HTTP GET on the server's address: status code and body.
    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(&self.addr, path)
    }

    /// Sends SIGTERM and waits for the exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        terminate(&mut self.child)
    }

    /// The process's peak resident set size (VmHWM), in kB.
    pub fn peak_rss_kb(&self) -> u64 {
        peak_rss_kb(self.child.id())
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// A process's resident set size now (VmRSS), in kB; 0 if unknown.
pub fn rss_kb(pid: u32) -> u64 {
    status_kb(pid, "VmRSS:")
}

/// A process's peak resident set size (VmHWM), in kB; 0 if unknown.
pub fn peak_rss_kb(pid: u32) -> u64 {
    status_kb(pid, "VmHWM:")
}

fn status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse().ok())
        })
        .unwrap_or(0)
}

/// The runtime the benchmarks drive their clients and emulators from: two workers.
/// A benchmark's setting from the environment, else its default.
pub fn bench_setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A load run's figures: messages, errors, seconds, rate and p50/p99 latency (ms).
pub fn latency_report(latencies: &mut [Duration], errors: usize, elapsed: Duration) -> Value {
    latencies.sort();
    let at = |q: f64| {
        latencies
            .get(((latencies.len().max(1) - 1) as f64 * q) as usize)
            .map(|d| d.as_secs_f64() * 1000.0)
            .unwrap_or(0.0)
    };
    json!({
        "messages": latencies.len(),
        "errors": errors,
        "seconds": elapsed.as_secs_f64(),
        "messages_per_second": latencies.len() as f64 / elapsed.as_secs_f64(),
        "latency_ms": {"p50": at(0.5), "p99": at(0.99)},
    })
}

pub fn bench_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn terminate(child: &mut Child) -> std::process::ExitStatus {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        assert!(Instant::now() < deadline, "did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A plain HTTP/1.1 GET: status code and body.
pub fn http_get(addr: &str, path: &str) -> (u16, String) {
    use std::io::Read;
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// An HTTP/1.1 answer: status, headers (names lower-cased) and body.
#[derive(Debug)]
pub struct HttpReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpReply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {self:?}"))
    }
}

/// One HTTP/1.1 request on its own connection, with exactly the headers given (and `Host`,
/// `Content-Length`, `Connection: close`).
pub fn http_request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpReply {
    use std::io::Read;
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).expect("write head");
    // A server may answer (413) before reading a large body, and close.
    let _ = stream.write_all(body);
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let response = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    HttpReply {
        status,
        headers,
        body: body.to_owned(),
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The binary in Lambda mode (no subcommand, `AWS_LAMBDA_RUNTIME_API` set), as Lambda starts it.
pub struct LambdaProcess {
    child: Child,
    pub logs: Logs,
}

impl LambdaProcess {
    pub fn start(runtime_api: &str, env: &[(&str, &str)]) -> LambdaProcess {
        Self::start_with_stdout(runtime_api, env, None)
    }

    /// The same, with stdout written to `stdout` (its lines are not in `logs`): what the
    /// function has written is in the file as soon as its write returns.
    pub fn start_with_stdout(
        runtime_api: &str,
        env: &[(&str, &str)],
        stdout: Option<std::fs::File>,
    ) -> LambdaProcess {
        let home = temp_dir("lambda-home");
        let mut command = Command::new(BINARY);
        command
            .env_clear()
            .envs(base_env(&home))
            .envs([
                ("AWS_LAMBDA_RUNTIME_API", runtime_api),
                ("AWS_LAMBDA_FUNCTION_NAME", "mcp-aws-tools"),
                ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"),
                ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
                ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/mcp-aws-tools"),
                (
                    "AWS_LAMBDA_LOG_STREAM_NAME",
                    "2026/11/24/[$LATEST]0123456789abcdef",
                ),
            ])
            .envs(env.iter().map(|(k, v)| (k.to_string(), v.to_string())))
            .stdin(Stdio::null())
            .stdout(stdout.map_or_else(Stdio::piped, Stdio::from))
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("start Lambda mode");
        let logs = Logs::default();
        if let Some(stdout) = child.stdout.take() {
            logs.capture(stdout);
        }
        logs.capture(child.stderr.take().expect("stderr"));
        LambdaProcess { child, logs }
    }

    /// Sends SIGTERM, as Lambda does at shutdown, and waits for the exit.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "did not exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for LambdaProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `mcp-aws-tools invoke FILE`: the handler's response and the logs.
pub fn invoke(event: &Path, env: &[(&str, &str)]) -> (Value, String) {
    let home = temp_dir("invoke-home");
    let output = Command::new(BINARY)
        .arg("invoke")
        .arg(event)
        .env_clear()
        .envs(base_env(&home))
        .envs(env.iter().map(|(k, v)| (k.to_string(), v.to_string())))
        .output()
        .expect("run invoke");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "invoke {} failed:\n{stdout}\n{stderr}",
        event.display()
    );
    let response = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("invoke printed no JSON ({e}):\n{stdout}"));
    (response, stderr)
}

/// The reply body of a handler response, parsed.
pub fn reply_of(response: &Value) -> Value {
    let body = response["body"]
        .as_str()
        .unwrap_or_else(|| panic!("no body in {response}"));
    serde_json::from_str(body).expect("reply is JSON")
}

type Stream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A WebSocket client connection.
pub struct Ws {
    stream: Stream,
    /// The subprotocol the server chose, if any.
    pub subprotocol: Option<String>,
    next_id: i64,
}

/// A WebSocket client connection as the tests and benchmarks make it: tungstenite fills its
/// whole read chunk with zeros before every read, and its default chunk (128 KiB) took more of
/// a load generator's CPU than the rest of its reading, on cores it shares with the server.
pub async fn ws_connect(
    request: impl IntoClientRequest + Unpin,
) -> Result<
    (
        tokio_tungstenite::WebSocketStream<
            tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
        >,
        tokio_tungstenite::tungstenite::handshake::client::Response,
    ),
    tokio_tungstenite::tungstenite::Error,
> {
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(8 * 1024);
    // Nagle off, as the stdio proxy and most clients have it.
    tokio_tungstenite::connect_async_with_config(request, Some(config), true).await
}

pub const REPLY_TIMEOUT: Duration = Duration::from_secs(20);

impl Ws {
    pub async fn connect(url: &str, protocols: &[&str]) -> Ws {
        let mut request = url.into_client_request().expect("request");
        if !protocols.is_empty() {
            request.headers_mut().insert(
                "Sec-WebSocket-Protocol",
                protocols.join(", ").parse().expect("header"),
            );
        }
        let (stream, response) = ws_connect(request).await.expect("connect");
        let subprotocol = response
            .headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ws {
            stream,
            subprotocol,
            next_id: 1,
        }
    }

    pub async fn send_text(&mut self, text: impl Into<String>) {
        self.stream
            .send(Message::text(text.into()))
            .await
            .expect("send");
    }

    pub async fn send_json(&mut self, value: &Value) {
        self.send_text(value.to_string()).await;
    }

    /// Sends one frame as raw bytes: text that need not be UTF-8, or a fragment of a message
    /// (`is_final` false, then continuation frames).
    pub async fn send_raw_fragment(&mut self, opcode: OpCode, payload: Vec<u8>, is_final: bool) {
        let frame = Frame::from_payload(
            FrameHeader {
                opcode,
                is_final,
                ..FrameHeader::default()
            },
            Bytes::from(payload),
        );
        self.stream
            .send(Message::Frame(frame))
            .await
            .expect("send frame");
    }

    pub async fn send_invalid_utf8(&mut self) {
        let payload = b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\xff\xfe\"}".to_vec();
        self.send_raw_fragment(OpCode::Data(Data::Text), payload, true)
            .await;
    }

    pub async fn send_binary(&mut self, payload: Vec<u8>) {
        self.stream
            .send(Message::binary(payload))
            .await
            .expect("send binary");
    }

    /// The next text message, parsed as JSON.
    pub async fn recv(&mut self) -> Value {
        match self.next_event().await {
            Event::Text(text) => serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("reply is not JSON ({e}): {text}")),
            Event::Closed(code, reason) => {
                panic!("connection closed ({code:?} {reason}) while waiting for a reply")
            }
        }
    }

    /// The next thing that happens: a text message, or the close (code and reason).
    pub async fn next_event(&mut self) -> Event {
        loop {
            let next = tokio::time::timeout(REPLY_TIMEOUT, self.stream.next())
                .await
                .expect("no reply within the time-out");
            match next {
                Some(Ok(Message::Text(text))) => return Event::Text(text.to_string()),
                Some(Ok(Message::Close(frame))) => {
                    return Event::Closed(
                        frame.as_ref().map(|f| u16::from(f.code)),
                        frame.map(|f| f.reason.to_string()).unwrap_or_default(),
                    );
                }
                Some(Ok(_)) => continue,
                Some(Err(err)) => return Event::Closed(None, err.to_string()),
                None => return Event::Closed(None, "stream ended".into()),
            }
        }
    }

    /// Sends a request and waits for its reply.
    pub async fn request(&mut self, message: Value) -> Value {
        self.send_json(&message).await;
        self.recv().await
    }

    /// MCP `method` with `params`, answered.
    pub async fn rpc(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let reply = self
            .request(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await;
        assert_eq!(reply["id"], json!(id), "reply to another request: {reply}");
        reply
    }

    /// MCP `tools/call`: the result (content, structuredContent, isError).
    pub async fn call_tool(&mut self, name: &str, arguments: Value) -> Value {
        let reply = self
            .rpc("tools/call", json!({"name": name, "arguments": arguments}))
            .await;
        assert!(
            reply.get("error").is_none(),
            "tools/call {name} was refused: {reply}"
        );
        let result = reply["result"].clone();
        let text = result["content"][0]["text"].as_str().expect("text content");
        assert_eq!(
            serde_json::from_str::<Value>(text).expect("text is JSON"),
            result["structuredContent"],
            "text and structuredContent differ"
        );
        result
    }

    /// A reference-envelope request for `method`, answered.
    pub async fn envelope(&mut self, method: &str, params: Value) -> Value {
        let id = format!("req-{}", self.next_id);
        self.next_id += 1;
        let reply = self
            .request(json!({
                "message_type": "REQUEST", "protocol_version": "2.0",
                "message_id": id, "method": method, "params": params
            }))
            .await;
        assert_eq!(
            reply["request_id"],
            json!(id),
            "reply to another request: {reply}"
        );
        reply
    }

    pub async fn close(mut self) {
        let _ = self.stream.close(None).await;
    }
}

#[derive(Debug, PartialEq)]
pub enum Event {
    Text(String),
    Closed(Option<u16>, String),
}

/// Writes an AWS config or credentials file.
pub fn write_file(path: &Path, contents: &str) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("create dir");
    }
    let mut file = std::fs::File::create(path).expect("create file");
    file.write_all(contents.as_bytes()).expect("write file");
}

/// Keys in the shapes AWS uses, different for every call.
pub fn fake_keys(tag: &str) -> (String, String) {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed) + std::process::id() as usize * 1000;
    let tag: String = tag
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(6)
        .collect::<String>()
        .to_ascii_uppercase();
    let key_id = format!("AKIA{tag:0<6}{n:010}");
    let secret = format!("Secret{tag}{n:012}abcdefghijKLMNOPQRSTuv/+=");
    (key_id, secret)
}

/// A WebSocket client on a bare TCP stream, for what a well-behaved client library will not
/// do: send unmasked frames, or never read.
pub struct RawWs {
    pub stream: std::net::TcpStream,
}

impl RawWs {
    /// Opens `/ws` on `addr` with the handshake of RFC 6455 §4.1.
    pub fn connect(addr: &str) -> RawWs {
        use std::io::Read;
        let mut stream = std::net::TcpStream::connect(addr).expect("connect");
        write!(
            stream,
            "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        .expect("handshake");
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            stream.read_exact(&mut byte).expect("handshake response");
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head);
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        assert!(
            head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
            "the accept key of RFC 6455's example: {head}"
        );
        RawWs { stream }
    }

    /// One frame: `opcode` (1 text, 0 continuation, ...), masked or not.
    pub fn frame(opcode: u8, fin: bool, masked: bool, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![(if fin { 0x80 } else { 0 }) | opcode];
        let mask_bit = if masked { 0x80 } else { 0 };
        match payload.len() {
            n @ 0..=125 => out.push(mask_bit | n as u8),
            n @ 126..=65535 => {
                out.push(mask_bit | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(mask_bit | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        if masked {
            let key = [0x37, 0xfa, 0x21, 0x3d];
            out.extend_from_slice(&key);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        } else {
            out.extend_from_slice(payload);
        }
        out
    }

    pub fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// The next frame from the server: opcode and payload (server frames are not masked).
    pub fn read_frame(&mut self) -> std::io::Result<(u8, Vec<u8>)> {
        use std::io::Read;
        self.stream.set_read_timeout(Some(REPLY_TIMEOUT))?;
        let mut head = [0u8; 2];
        self.stream.read_exact(&mut head)?;
        let length = match head[1] & 0x7f {
            126 => {
                let mut n = [0u8; 2];
                self.stream.read_exact(&mut n)?;
                u64::from(u16::from_be_bytes(n))
            }
            127 => {
                let mut n = [0u8; 8];
                self.stream.read_exact(&mut n)?;
                u64::from_be_bytes(n)
            }
            n => u64::from(n),
        };
        let mut payload = vec![0u8; length as usize];
        self.stream.read_exact(&mut payload)?;
        Ok((head[0] & 0x0f, payload))
    }

    /// Reads until a close frame: its code.
    pub fn close_code(&mut self) -> Option<u16> {
        loop {
            match self.read_frame() {
                Ok((8, payload)) if payload.len() >= 2 => {
                    return Some(u16::from_be_bytes([payload[0], payload[1]]));
                }
                Ok((8, _)) => return None,
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
    }
}

/// Every field of `expected` is in `actual` (arrays element by element).
pub fn assert_subset(expected: &Value, actual: &Value, context: &str) {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (key, value) in e {
                let Some(found) = a.get(key) else {
                    panic!("{context}: no {key} in {actual}");
                };
                assert_subset(value, found, context);
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            assert_eq!(e.len(), a.len(), "{context}: {actual}");
            for (e, a) in e.iter().zip(a) {
                assert_subset(e, a, context);
            }
        }
        _ => assert_eq!(expected, actual, "{context}: {actual}"),
    }
}
