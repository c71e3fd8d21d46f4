//! Throughput end to end: a WebSocket load generator against `serve` (the release binary).
//! N connections each send M messages, keeping a window of requests in flight; every reply is
//! matched to its request id exactly once. Reports messages per second, p50/p99 latency and
//! errors, for `ping`, and for a mix of `tools/call` against moto. Then, closed loop (one
//! request in flight on each of 16 connections): `ping`, the envelope's `aws/get-credentials`
//! and `tools/call aws_get_credentials` through `serve`, and the envelope's
//! `aws/get-credentials` through the reference document's tool in Python
//! (benches/reference/aws_tools_server.py), with the ratios between them. Two more rows in the
//! same rounds say where a ratio's limit lies: the envelope's call through a second `serve`
//! whose per-message log records are off, and `ping` through a WebSocket echo on `serve`'s
//! stack (this program in a process of its own: tokio, hyper's upgrade, fastwebsockets, and
//! nothing else), the most any server on that stack reaches with this client on this machine.
//! Then the peak RSS (VmHWM) of `serve`.
//!
//! `cargo bench --bench throughput` (`BENCH_CONNECTIONS`, default 64; `BENCH_MESSAGES`, default
//! 2,000 per connection; `BENCH_WINDOW`, default 16; `BENCH_CLOSED_CONNECTIONS`, default 16;
//! `BENCH_CLOSED_MESSAGES`, default 3,000 per connection; `BENCH_CLOSED_ROUNDS`, default 5;
//! `BENCH_SECONDS`, a bound on each run, default 120; `BENCH_OUT`, a file for the JSON results).
//! For a profiler, `BENCH_ONLY=MIX` (`ping`, `envelope_get_credentials`, ...) runs only that
//! closed-loop mix, `BENCH_CLOSED_ROUNDS` times, and prints each round's report (rate, latency,
//! CPU per message): e.g. `perf record -p <serve's pid>` while it runs.

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use fastwebsockets::{Frame, OpCode, Payload, WebSocketError};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// What the client checks in a reply (JSON-RPC or envelope), read without building a `Value`
/// tree, so that the client's share of the two cores does not grow with the reply's size.
#[derive(serde::Deserialize)]
struct Reply {
    id: Option<u64>,
    request_id: Option<String>,
    error: Option<serde::de::IgnoredAny>,
    message_type: Option<String>,
    result: Option<ReplyResult>,
}

#[derive(serde::Deserialize)]
struct ReplyResult {
    #[serde(rename = "isError")]
    is_error: Option<bool>,
}

struct Run {
    errors: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
    /// CPU time of the server's process and of this one (the client) during the run; closed
    /// loop only.
    cpu: Option<Cpu>,
}

#[derive(Clone, Copy)]
struct Cpu {
    server: Duration,
    client: Duration,
}

/// The CPU time a process's threads have used so far (the first field of each thread's
/// `schedstat`, in nanoseconds: the scheduler's own count, not the 10 ms ticks of `stat`).
fn cpu_time(pid: u32) -> Duration {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Duration::ZERO;
    };
    let nanos: u64 = tasks
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok())
        .filter_map(|stat| stat.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    Duration::from_nanos(nanos)
}

/// `run`, with the CPU time the server (`server_pid`) and the client spent on it.
async fn run_timed(
    url: &str,
    server_pid: u32,
    connections: usize,
    per_connection: usize,
    make: Make,
    bound: Duration,
) -> Run {
    let client_pid = std::process::id();
    let (server, client) = (cpu_time(server_pid), cpu_time(client_pid));
    let mut this = run(url, connections, per_connection, 1, bound, make).await;
    this.cpu = Some(Cpu {
        server: cpu_time(server_pid).saturating_sub(server),
        client: cpu_time(client_pid).saturating_sub(client),
    });
    this
}

/// One connection: `count` messages made by `make(seq)`, `window` in flight.
async fn connection(
    url: String,
    count: usize,
    window: usize,
    make: Make,
) -> (usize, Vec<Duration>) {
    let (stream, _) = support::ws_connect(url.as_str()).await.expect("connect");
    let (mut sink, mut source) = stream.split();
    let mut sent_at: HashMap<u64, Instant> = HashMap::with_capacity(window * 2);
    let mut latencies = Vec::with_capacity(count);
    let mut errors = 0;
    let mut next = 0usize;
    let mut answered = 0usize;
    while answered < count {
        while next < count && sent_at.len() < window {
            let message = make(next);
            sent_at.insert(next as u64, Instant::now());
            sink.send(Message::text(message)).await.expect("send");
            next += 1;
        }
        let Some(Ok(Message::Text(text))) = source.next().await else {
            errors += count - answered;
            break;
        };
        let Ok(reply) = serde_json::from_str::<Reply>(&text) else {
            errors += 1;
            answered += 1;
            continue;
        };
        // JSON-RPC's `id`, or the envelope's `request_id` (the message_id sent, a string).
        let id = reply
            .id
            .or_else(|| reply.request_id.and_then(|id| id.parse().ok()));
        match id.and_then(|id| sent_at.remove(&id)) {
            Some(at) => latencies.push(at.elapsed()),
            None => errors += 1, // unknown or repeated id
        }
        if reply.error.is_some()
            || reply
                .result
                .is_some_and(|result| result.is_error == Some(true))
            || reply.message_type.is_some_and(|kind| kind != "RESPONSE")
        {
            errors += 1;
        }
        answered += 1;
    }
    errors += sent_at.len();
    let _ = sink.close().await;
    (errors, latencies)
}

async fn run(
    url: &str,
    connections: usize,
    per_connection: usize,
    window: usize,
    bound: Duration,
    make: Make,
) -> Run {
    let started = Instant::now();
    let tasks: Vec<_> = (0..connections)
        .map(|_| tokio::spawn(connection(url.to_owned(), per_connection, window, make)))
        .collect();
    let mut errors = 0;
    let mut latencies = Vec::with_capacity(connections * per_connection);
    for task in tasks {
        match tokio::time::timeout(bound.saturating_sub(started.elapsed()), task).await {
            Ok(Ok((e, l))) => {
                errors += e;
                latencies.extend(l);
            }
            _ => errors += per_connection,
        }
    }
    Run {
        errors,
        elapsed: started.elapsed(),
        latencies,
        cpu: None,
    }
}

/// The median of sorted values (the mean of the middle two for an even count).
fn median(sorted: &[f64]) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

fn report(run: &mut Run) -> Value {
    let mut report = support::latency_report(&mut run.latencies, run.errors, run.elapsed);
    if let Some(cpu) = run.cpu {
        let per_message = |time: Duration| time.as_secs_f64() * 1e6 / run.latencies.len() as f64;
        report["server_cpu_us_per_message"] = json!(per_message(cpu.server));
        report["client_cpu_us_per_message"] = json!(per_message(cpu.client));
    }
    report
}

// Each message is written as text, as a load generator does, rather than built as a tree
// and then written: that cost grew with the message, and the client shares the two cores
// with the server it measures.

fn ping(seq: usize) -> String {
    format!(r#"{{"jsonrpc":"2.0","id":{seq},"method":"ping"}}"#)
}

fn tool_mix(seq: usize) -> String {
    let name = match seq % 4 {
        0 => "aws_get_account_info",
        1 => "aws_get_credentials",
        2 => "aws_validate_credentials",
        _ => "aws_list_profiles",
    };
    tools_call(seq, name)
}

/// A `tools/call` of `name` without arguments.
fn tools_call(seq: usize, name: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":{seq},"method":"tools/call","params":{{"name":"{name}","arguments":{{}}}}}}"#
    )
}

/// Makes the message with sequence number `seq`.
type Make = fn(usize) -> String;

fn envelope_get_credentials(seq: usize) -> String {
    format!(
        r#"{{"message_type":"REQUEST","protocol_version":"2.0","message_id":"{seq}","method":"aws/get-credentials","params":{{}}}}"#
    )
}

fn tools_call_get_credentials(seq: usize) -> String {
    tools_call(seq, "aws_get_credentials")
}

/// A WebSocket server the benchmark compares `serve` with, in a helper process of its own (so
/// that its CPU time is its own, not the client's), serving `/ws` on the port it prints.
struct Peer {
    helper: support::Helper,
    url: String,
}

impl Peer {
    fn start(command: &mut std::process::Command, what: &str) -> Peer {
        let helper = support::Helper::start(command, what);
        Peer {
            url: format!("ws://127.0.0.1:{}/ws", helper.info["port"]),
            helper,
        }
    }

    /// The reference document's tool in Python (benches/reference/aws_tools_server.py), with
    /// the same credentials in its environment as `serve` has.
    fn reference(env: &[(&str, &str)]) -> Peer {
        let mut reference = Peer::start(
            std::process::Command::new(support::python())
                .arg(support::repo().join("benches/reference/aws_tools_server.py"))
                .env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .env("HOME", support::temp_dir("reference-home"))
                .envs(env.iter().copied())
                // Its log records go down a pipe that is read, as `serve`'s do.
                .stderr(std::process::Stdio::piped()),
            "the Python reference",
        );
        let mut log = reference.helper.child.stderr.take().expect("stderr");
        std::thread::spawn(move || std::io::copy(&mut log, &mut std::io::sink()));
        reference
    }

    /// The WebSocket echo ([`echo_server`]): this program again.
    fn echo() -> Peer {
        let program = std::env::current_exe().expect("this program");
        Peer::start(
            std::process::Command::new(program).env(ECHO_SERVER, "1"),
            "the WebSocket echo",
        )
    }

    fn pid(&self) -> u32 {
        self.helper.child.id()
    }
}

/// Set in the environment of the echo's process.
const ECHO_SERVER: &str = "BENCH_ECHO_SERVER";

/// The echo's process: `serve`'s WebSocket stack (tokio's multi-threaded runtime, a connection
/// per task with Nagle off, hyper's HTTP/1.1 upgrade, fastwebsockets) answering each text
/// message with its own text, and doing nothing else. Prints its port as a JSON line, and
/// runs until its stdin closes (as the other helpers do: also when the benchmark is killed).
fn echo_server() {
    std::thread::spawn(|| {
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        std::process::exit(0);
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("address").port();
        println!("{}", json!({ "port": port }));
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|mut request| async move {
                    let (response, upgrade) = fastwebsockets::upgrade::upgrade(&mut request)?;
                    tokio::spawn(async move {
                        if let Ok(socket) = upgrade.await {
                            echo(socket).await;
                        }
                    });
                    Ok::<_, WebSocketError>(response)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .with_upgrades()
                    .await;
            });
        }
    });
}

/// Each text frame back as it came (fastwebsockets answers pings and closes itself).
async fn echo<S>(mut socket: fastwebsockets::WebSocket<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        let text = match socket.read_frame().await {
            Ok(frame) if frame.opcode == OpCode::Text => frame.payload.to_vec(),
            Ok(frame) if frame.opcode == OpCode::Close => return,
            Ok(_) => continue,
            Err(_) => return,
        };
        if socket
            .write_frame(Frame::text(Payload::Owned(text)))
            .await
            .is_err()
        {
            return;
        }
    }
}

fn main() {
    if std::env::var_os(ECHO_SERVER).is_some() {
        return echo_server();
    }
    let connections = support::bench_setting("BENCH_CONNECTIONS", 64);
    let messages = support::bench_setting("BENCH_MESSAGES", 2000);
    let window = support::bench_setting("BENCH_WINDOW", 16);
    let bound = Duration::from_secs(support::bench_setting("BENCH_SECONDS", 120) as u64);
    let runtime = support::bench_runtime();
    let moto = support::Moto::start();
    let closed_connections = support::bench_setting("BENCH_CLOSED_CONNECTIONS", 16);
    let closed_messages = support::bench_setting("BENCH_CLOSED_MESSAGES", 3000);
    let closed_rounds = support::bench_setting("BENCH_CLOSED_ROUNDS", 5).max(1);
    let credentials = [
        ("AWS_ACCESS_KEY_ID", "AKIATHROUGHPUTEXAMPL"),
        (
            "AWS_SECRET_ACCESS_KEY",
            "throughputSecretExample00000000000000000",
        ),
        ("AWS_REGION", "us-east-1"),
    ];
    let reference = Peer::reference(&credentials);
    let serve_env = [
        ("AWS_ENDPOINT_URL", moto.url.as_str()),
        ("AWS_ACCESS_KEY_ID", "AKIATHROUGHPUTEXAMPL"),
        (
            "AWS_SECRET_ACCESS_KEY",
            "throughputSecretExample00000000000000000",
        ),
        ("AWS_REGION", "us-east-1"),
        ("RATE_LIMIT_PER_SECOND", "1000000"),
        ("RATE_LIMIT_BURST", "1000000"),
        ("CREDENTIAL_RATE_LIMIT_PER_MINUTE", "60000000"),
        ("CREDENTIAL_RATE_LIMIT_BURST", "1000000"),
    ];
    let server = support::Server::start(&serve_env);
    // The same, without a record per message (and without the span of each event that they
    // carry): what the log costs a message.
    let unlogged = support::Server::start(
        &[
            &serve_env[..],
            &[(
                "RUST_LOG",
                "info,mcp_aws_tools::protocol=warn,mcp_aws_tools::gateway=warn",
            )],
        ]
        .concat(),
    );
    let echo = Peer::echo();
    // Their logs are read and dropped, as the reference's are.
    server.logs.discard();
    unlogged.logs.discard();
    let url = server.ws_url();
    let unlogged_url = unlogged.ws_url();
    let results = runtime.block_on(async {
        // Warm up: connections, moto's first answers.
        run(&url, 4, 50, 4, bound, tool_mix).await;
        let (serve_pid, reference_pid) = (server.pid(), reference.pid());
        let mixes: [(&str, &str, u32, Make); 6] = [
            ("ping", &url, serve_pid, ping),
            ("envelope_get_credentials", &url, serve_pid, envelope_get_credentials),
            ("tools_call_get_credentials", &url, serve_pid, tools_call_get_credentials),
            ("reference_envelope_get_credentials", &reference.url, reference_pid, envelope_get_credentials),
            ("unlogged_envelope_get_credentials", &unlogged_url, unlogged.pid(), envelope_get_credentials),
            ("echo_ping", &echo.url, echo.pid(), ping),
        ];
        if let Ok(only) = std::env::var("BENCH_ONLY") {
            let (_, target, pid, make) = mixes
                .iter()
                .find(|(name, ..)| *name == only)
                .expect("BENCH_ONLY names a closed-loop mix");
            run(target, 2, 200, 1, bound, *make).await;
            for _round in 0..closed_rounds {
                let mut this = run_timed(
                    target,
                    *pid,
                    closed_connections,
                    closed_messages,
                    *make,
                    bound,
                )
                .await;
                eprintln!("{only}: {}", report(&mut this));
            }
            return Value::Null;
        }
        let mut pings = run(&url, connections, messages, window, bound, ping).await;
        let mix_messages = (messages / 10).max(10);
        let mut tools = run(
            &url,
            connections,
            mix_messages,
            window.min(4),
            bound,
            tool_mix,
        )
        .await;
        // Closed loop: one request in flight per connection; the same client for every mix,
        // the mixes interleaved over `closed_rounds` rounds. Each mix is reported by its median
        // round, and each ratio is the median of the ratios within a round (both mixes of a
        // ratio measured minutes apart would compare the machine's moods, not the code).
        let mut closed: HashMap<&str, Vec<Run>> = HashMap::new();
        for (_, target, _, make) in &mixes {
            run(target, 2, 200, 1, bound, *make).await;
        }
        for _round in 0..closed_rounds {
            for (name, target, pid, make) in &mixes {
                let this = run_timed(
                    target,
                    *pid,
                    closed_connections,
                    closed_messages,
                    *make,
                    bound,
                )
                .await;
                closed.entry(name).or_default().push(this);
            }
        }
        let rate = |run: &Run| run.latencies.len() as f64 / run.elapsed.as_secs_f64();
        let ratio = |of: &str, to: &str| -> Value {
            let mut ratios: Vec<f64> = closed[of]
                .iter()
                .zip(&closed[to])
                .map(|(of, to)| rate(of) / rate(to))
                .collect();
            ratios.sort_by(f64::total_cmp);
            json!({
                "median": median(&ratios),
                "min": ratios.first(),
                "max": ratios.last(),
                "rounds": ratios,
            })
        };
        // The server's CPU time per message, the reference's to `serve`'s, per round: what the
        // closed loop's rate hides when the client and the kernel take most of the cores.
        let server_cpu = |run: &Run| {
            run.cpu.map_or(f64::NAN, |cpu| cpu.server.as_secs_f64()) / run.latencies.len() as f64
        };
        let mut cpu_ratios: Vec<f64> = closed["reference_envelope_get_credentials"]
            .iter()
            .zip(&closed["envelope_get_credentials"])
            .map(|(reference, ours)| server_cpu(reference) / server_cpu(ours))
            .collect();
        cpu_ratios.sort_by(f64::total_cmp);
        let ratios = json!({
            "reference_server_cpu_to_envelope_get_credentials": {
                "median": median(&cpu_ratios),
                "min": cpu_ratios.first(),
                "max": cpu_ratios.last(),
                "rounds": cpu_ratios,
            },
            "envelope_get_credentials_to_reference": ratio("envelope_get_credentials", "reference_envelope_get_credentials"),
            "envelope_get_credentials_to_ping": ratio("envelope_get_credentials", "ping"),
            "tools_call_get_credentials_to_ping": ratio("tools_call_get_credentials", "ping"),
            "unlogged_envelope_get_credentials_to_reference": ratio("unlogged_envelope_get_credentials", "reference_envelope_get_credentials"),
            "echo_ping_to_reference": ratio("echo_ping", "reference_envelope_get_credentials"),
        });
        let mut closed_report = serde_json::Map::new();
        for (name, _, _, _) in &mixes {
            let runs = closed.get_mut(name).expect("measured");
            let rates: Vec<f64> = runs.iter().map(rate).collect();
            runs.sort_by(|a, b| rate(a).total_cmp(&rate(b)));
            let middle = runs.len() / 2;
            let mut this = report(&mut runs[middle]);
            this["rounds_messages_per_second"] = json!(rates);
            closed_report.insert((*name).to_owned(), this);
        }
        json!({
            "connections": connections,
            "window": window,
            "ping": report(&mut pings),
            "tools_call_mix": report(&mut tools),
            "closed_loop": {
                "connections": closed_connections,
                "rounds": closed_rounds,
                "messages_per_connection": closed_messages,
                "runs": Value::Object(closed_report),
                "ratios": ratios,
            },
        })
    });
    if results.is_null() {
        return; // BENCH_ONLY: the figures went to stderr
    }
    let mut results = results;
    results["serve_peak_rss_kb"] = json!(server.peak_rss_kb());
    println!("{}", serde_json::to_string_pretty(&results).expect("JSON"));
    if let Ok(path) = std::env::var("BENCH_OUT") {
        std::fs::write(path, results.to_string()).expect("write BENCH_OUT");
    }
}
