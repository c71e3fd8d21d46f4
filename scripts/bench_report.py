"""Assembles the benchmark results under target/bench/ into BENCHMARKS.md and benchmarks.json.

Usage: bench_report.py RESULTS_DIR MARKDOWN_OUT JSON_OUT COMMAND
"""

import datetime
import json
import os
import platform
import subprocess
import sys

results_dir, markdown_out, json_out, command = sys.argv[1:5]


def load(name):
    with open(os.path.join(results_dir, name)) as f:
        return json.load(f)


def run(*args):
    try:
        return subprocess.run(args, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


message = load("message.json")
cold = load("coldstart.json")
throughput = load("throughput.json")
metrics = load("metrics.json")
load_results = load("load.json")
sessions = load("sessions.json")
http_results = load("http.json")

binary = "target/release/mcp-aws-tools"
binary_bytes = os.path.getsize(binary)
stripped = "not stripped" not in run("file", binary)
lambda_binary = os.path.join(results_dir, "lambda", "bootstrap")
lambda_bytes = os.path.getsize(lambda_binary)
tree = open(os.path.join(results_dir, "tree.txt")).read().split()
duplicates_text = open(os.path.join(results_dir, "duplicates.txt")).read()
stacks = {}
for crate in ["hyper", "h2", "rustls", "ring", "aws-lc-rs", "openssl", "native-tls"]:
    versions = sorted({line.split()[1] for line in open(os.path.join(results_dir, "tree.txt")) if line.split() and line.split()[0] == crate})
    stacks[crate] = versions
duplicate_names = sorted({line.split()[0] for line in duplicates_text.splitlines() if line and not line.startswith((" ", "│", "├", "└")) and line.split()})

def busy_before_steps():
    """Each step of scripts/bench and how busy the cores were (%) just before it, while the run
    itself did nothing (scripts/busy.py)."""
    try:
        with open(os.path.join(results_dir, "idle.tsv")) as f:
            rows = [line.rstrip("\n").split("\t") for line in f if line.strip()]
    except OSError:
        return []
    return [{"step": step, "busy_percent": float(busy)} for step, busy in rows]


# Other work above this share of the cores before a step makes the run's absolute figures slow.
BUSY_LIMIT_PERCENT = 10.0

machine = {
    "cores": os.cpu_count(),
    "cpu": cpu_model(),
    "kernel": platform.release(),
    "rustc": run("rustc", "--version"),
    "busy_before_steps": busy_before_steps(),
}
report = {
    "command": command,
    "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    "commit": run("git", "rev-parse", "--short", "HEAD"),
    "machine": machine,
    "message": message,
    "coldstart": cold,
    "throughput": throughput,
    "metrics": metrics,
    "load": load_results,
    "sessions": sessions,
    "http": http_results,
    "size": {
        "binary_bytes": binary_bytes,
        "lambda_binary_bytes": lambda_bytes,
        "stripped": stripped,
        "stacks": stacks,
        "duplicate_crates": duplicate_names,
    },
}

targets = []


def target(name, value, limit, unit, lower_is_better=True):
    met = value <= limit if lower_is_better else value >= limit
    targets.append((name, value, limit, unit, met, lower_is_better))


hello_first = cold["hello_world"]["first_response_ms"]["median"]
closed = throughput["closed_loop"]
# Issue 11's goals, each measured in this run.
target("cold start to the first tools/list response vs hello-world (Lambda build)", cold["ratio_first_response"]["tools_list"], 1.3, "x")
target("cold start to the first tools/call aws_get_account_info response (moto) vs hello-world", cold["ratio_first_response"]["get_account_info"], 3.0, "x")
target("envelope aws/get-credentials through serve, 16 connections closed loop, vs the Python reference (median of the rounds)", closed["ratios"]["envelope_get_credentials_to_reference"]["median"], 10.0, "x", lower_is_better=False)
target("envelope aws/get-credentials vs ping through serve, same run (median of the rounds)", closed["ratios"]["envelope_get_credentials_to_ping"]["median"], 0.85, "x", lower_is_better=False)
target("tools/call aws_get_credentials vs ping through serve, same run (median of the rounds)", closed["ratios"]["tools_call_get_credentials_to_ping"]["median"], 0.85, "x", lower_is_better=False)
target("envelope aws/get-credentials in-process p50", message["envelope aws/get-credentials"]["p50_us"], 3.0, "µs")
target("Lambda build (--no-default-features), stripped", lambda_bytes / 1e6, 6.0, "MB")
# Earlier goals, kept.
protocol_p50 = max(message["ping"]["p50_us"], message["tools/list"]["p50_us"])
target("protocol-only message p50 in-process (ping, tools/list)", protocol_p50, 20.0, "µs")
target("ping through serve, 0 errors", throughput["ping"]["messages_per_second"], 25000, "messages/s", lower_is_better=False)
target("peak RSS in Lambda mode", cold["get_account_info"]["peak_rss_kb"]["max"] / 1024, 16.0, "MiB")
connections = load_results["connections"]
target(
    f"requests unanswered or answered twice, {connections['connections']:,} connections x {connections['messages_per_connection']} messages",
    connections["missing"] + connections["duplicated"] + connections["unexpected"],
    0,
    "",
)
hostile = load_results["hostile"]
target("serve peak RSS, 10 clients that do not read", hostile["rss_kb"]["peak"] / 1024, 64.0, "MiB")
report["targets"] = [
    {"name": n, "value": v, "limit": l, "unit": u, "met": m} for n, v, l, u, m, _ in targets
]

with open(json_out, "w") as f:
    json.dump(report, f, indent=2)
    f.write("\n")


def fmt(x, digits=2):
    return f"{x:,.{digits}f}"


lines = []
w = lines.append
w("# Benchmarks")
w("")
w(f"Generated by `{command}` on {report['date']} at commit `{report['commit']}`.")
w(f"Machine: {machine['cores']} cores, {machine['cpu']}, Linux {machine['kernel']}, {machine['rustc']}.")
busy = machine["busy_before_steps"]
if busy:
    busiest = max(busy, key=lambda row: row["busy_percent"])
    w(f"Other work on the machine, measured over 2 s before each step while the run did nothing: at most "
      f"{fmt(busiest['busy_percent'], 1)}% of the cores (before \"{busiest['step']}\"; every step: "
      + ", ".join(fmt(row["busy_percent"], 1) + "%" for row in busy) + ").")
    if busiest["busy_percent"] > BUSY_LIMIT_PERCENT:
        w(f"**The machine was busy with other work during this run (over {fmt(BUSY_LIMIT_PERCENT, 0)}% of the cores):"
          " ratios measured within the run hold, absolute times and rates are slower than the machine's own.**")
else:
    w("Other work on the machine: not measured (`idle.tsv` missing; `scripts/bench` writes it).")
w("Each figure is a median with its spread unless said otherwise; comparisons are ratios measured in")
w("the same run. Raw results: `benchmarks.json`.")
w("")
w("## Targets")
w("")
w("| figure | measured | target | |")
w("|---|---|---|---|")
for n, v, l, u, m, lower in targets:
    sign = "≤" if lower else "≥"
    # As many digits as it takes for a figure that is not its target not to read as it.
    digits = 2
    while v != l and fmt(v, digits) == fmt(l, digits) and digits < 6:
        digits += 1
    w(f"| {n} | {fmt(v, digits)} {u} | {sign} {fmt(l)} {u} | {'met' if m else '**missed**'} |")
w("")
w("## Cold start")
w("")
w(f"The Lambda build spawned as Lambda spawns it (`AWS_LAMBDA_RUNTIME_API` pointing at an emulator in")
w(f"the benchmark), {cold['spawns']} spawns of each, interleaved; the reference is a lambda_runtime")
w("hello-world built in the same run and profile (`examples/hello.rs`). Init is spawn to the first")
w("`invocation/next`; first response is spawn to the first `response`. Peak RSS is VmHWM after it.")
w("The event is waiting when the function starts, so the first tools/call is the first event: it builds the STS")
w("client (compiled-in roots, no bundle to read) and makes the STS call itself; the background warm-up starts once")
w("the first event is answered (in init with provisioned concurrency).")
moto = cold.get("moto_get_caller_identity_ms")
if moto:
    beyond = cold["ratio_first_response_beyond_moto"]["get_account_info"]
    w("moto's own answer to a GetCallerIdentity (a new connection, sent by the benchmark after each")
    w(f"get_account_info spawn) took {fmt(moto['median'])} ms ({fmt(moto['p10'])}–{fmt(moto['p90'])}) in this run; the cold")
    w(f"get_account_info less that is {fmt(beyond)}x the hello-world's first response (not a goal: what the function")
    w("itself spends, comparable across sittings in which moto's speed differs).")
w("")
w("| function, event | init ms (p10–p90) | first response ms (p10–p90) | ratio to hello-world | peak RSS MiB |")
w("|---|---|---|---|---|")
for key, label in [("hello_world", "hello-world, any"), ("tools_list", "mcp-aws-tools, tools/list"), ("get_account_info", "mcp-aws-tools, tools/call aws_get_account_info (moto)")]:
    c = cold[key]
    ratio = "1.00" if key == "hello_world" else fmt(cold["ratio_first_response"][key])
    w(f"| {label} | {fmt(c['init_ms']['median'])} ({fmt(c['init_ms']['p10'])}–{fmt(c['init_ms']['p90'])}) "
      f"| {fmt(c['first_response_ms']['median'])} ({fmt(c['first_response_ms']['p10'])}–{fmt(c['first_response_ms']['p90'])}) "
      f"| {ratio} | {fmt(c['peak_rss_kb']['median'] / 1024, 1)} |")
w("")
w("## Warm invocations")
w("")
w(f"One warm function, event in to response out through the same Runtime API emulator (its HTTP round trips")
w(f"included, as Lambda's own are), {cold['warm_invocations']['ping']['messages']:,} invocations of each event after 100 to warm up;")
w("the hello-world answers the tools/list event with its fixed response. The in-process share (event decoded,")
w("handled, response encoded, as lambda_runtime does it) is in the next section, rows `Lambda event: ...`.")
w("")
w("| function, event | p50 ms | p99 ms |")
w("|---|---|---|")
for key, label in [("hello_world", "hello-world"), ("ping", "mcp-aws-tools, ping"), ("tools_list", "mcp-aws-tools, tools/list"), ("get_account_info_cached", "mcp-aws-tools, tools/call aws_get_account_info (cached)")]:
    wi = cold["warm_invocations"][key]
    w(f"| {label} | {fmt(wi['latency_ms']['p50'], 3)} | {fmt(wi['latency_ms']['p99'], 3)} |")
w("")
w("## Per-message cost, in-process")
w("")
w("`protocol::handle`: decode, dispatch and encode, one message at a time (criterion measures the")
w("same; these percentiles come from timing every call of a long run).")
w("")
w("| message | p50 µs | p99 µs | calls |")
w("|---|---|---|---|")
for name, m in message.items():
    w(f"| {name} | {fmt(m['p50_us'])} | {fmt(m['p99_us'])} | {m['calls']:,} |")
w("")
w("## Throughput through `serve`")
w("")
w(f"{throughput['connections']} WebSocket connections, each keeping up to {throughput['window']} requests in flight;")
w("every reply matched to its request id exactly once. Client and server share the machine's cores.")
w("")
w("| mix | messages | seconds | messages/s | p50 ms | p99 ms | errors |")
w("|---|---|---|---|---|---|---|")
for key, label in [("ping", "ping"), ("tools_call_mix", "tools/call: get_account_info, get_credentials, validate_credentials, list_profiles (moto)")]:
    t = throughput[key]
    w(f"| {label} | {t['messages']:,} | {fmt(t['seconds'])} | {fmt(t['messages_per_second'], 0)} | {fmt(t['latency_ms']['p50'], 3)} | {fmt(t['latency_ms']['p99'], 3)} | {t['errors']} |")
w("")
w(f"Closed loop: {closed['connections']} connections, one request in flight on each, {closed['messages_per_connection']:,} requests per connection;")
w(f"the same client for every row, rows interleaved over {closed['rounds']} rounds; each row shows its median round, and each")
w("ratio is the median of the ratios within a round (their range in brackets). The reference is the")
w("reference document's `aws/get-credentials` written in Python (`benches/reference/aws_tools_server.py`: the")
w("`websockets` server, environment credentials, a log record per call), with the same credentials. Two rows")
w("say where the ratios' limit lies: the same call through a second `serve` whose record per message (and the")
w("span of each event it carries) is off (`RUST_LOG=info,mcp_aws_tools::protocol=warn,mcp_aws_tools::gateway=warn`),")
w("and `ping` through a WebSocket echo on `serve`'s stack (tokio's multi-threaded runtime, hyper's upgrade,")
w("fastwebsockets; each message answered with its own text, nothing else: the bench in a process of its own),")
w("the most a server on that stack reaches with this client on these two cores.")
w("")
w("| request | through | messages/s (median round) | every round | p50 ms | p99 ms | server CPU µs/message | client CPU µs/message | errors |")
w("|---|---|---|---|---|---|---|---|---|")
for key, label, through in [("ping", "ping", "serve"), ("envelope_get_credentials", "envelope aws/get-credentials", "serve"), ("tools_call_get_credentials", "tools/call aws_get_credentials", "serve"), ("reference_envelope_get_credentials", "envelope aws/get-credentials", "Python reference"), ("unlogged_envelope_get_credentials", "envelope aws/get-credentials", "serve, no record per message"), ("echo_ping", "ping", "WebSocket echo")]:
    t = closed["runs"][key]
    rounds = ", ".join(fmt(x, 0) for x in t["rounds_messages_per_second"])
    w(f"| {label} | {through} | {fmt(t['messages_per_second'], 0)} | {rounds} | {fmt(t['latency_ms']['p50'], 3)} | {fmt(t['latency_ms']['p99'], 3)} "
      f"| {fmt(t['server_cpu_us_per_message'], 1)} | {fmt(t['client_cpu_us_per_message'], 1)} | {t['errors']} |")
w("")
r = closed["ratios"]
def spread(name, digits=2):
    x = r[name]
    return f"{fmt(x['median'], digits)}x ({fmt(x['min'], digits)}x to {fmt(x['max'], digits)}x)"
w(f"Envelope get-credentials to the Python reference: {spread('envelope_get_credentials_to_reference')}; to ping: {spread('envelope_get_credentials_to_ping', 3)};")
w(f"tools/call get-credentials to ping: {spread('tools_call_get_credentials_to_ping', 3)}.")
w(f"Without the record per message, envelope get-credentials to the Python reference: {spread('unlogged_envelope_get_credentials_to_reference')};")
w(f"the echo's ping to it: {spread('echo_ping_to_reference')}.")
w("")
w("CPU per message is the server's process (every thread, from the scheduler's `schedstat`) and the client's, over")
w("the round, divided by its messages. The Python reference's server CPU per message to `serve`'s, envelope")
w(f"get-credentials: {spread('reference_server_cpu_to_envelope_get_credentials')}. The rate's ratio is the")
w("smaller of the two: the client and the kernel's loopback take a share of the two cores that does not shrink")
w("with the server's.")
w("")
w(f"Peak RSS of `serve` after these runs: {fmt(throughput['serve_peak_rss_kb'] / 1024, 1)} MiB.")
w("")
w("## Streamable HTTP and the stdio proxy")
w("")
hr = http_results
w(f"`tools/call {hr['tool']}` (2026-07-28, cached identity, moto behind it) through `serve`, {hr['connections']} connections")
w(f"at once, each closed loop (one request in flight, as an HTTP/1.1 connection allows), {hr['messages_per_connection']} calls each;")
w("`/mcp` on keep-alive connections with the routing headers, the WebSocket API with the `mcp` subprotocol, in the same")
w("run (the better of two interleaved rounds of each).")
w("")
w("| transport | messages | messages/s | p50 ms | p99 ms | errors |")
w("|---|---|---|---|---|---|")
for key, label in [("http", "Streamable HTTP `/mcp`"), ("websocket", "WebSocket `/ws`")]:
    t = hr[key]
    w(f"| {label} | {t['messages']:,} | {fmt(t['messages_per_second'], 0)} | {fmt(t['latency_ms']['p50'], 3)} | {fmt(t['latency_ms']['p99'], 3)} | {t['errors']} |")
w("")
w(f"HTTP to WebSocket: {fmt(hr['http_to_websocket'])}x.")
w("")
p = hr["proxy"]
w(f"The proxy's added latency: {p['calls']:,} calls one at a time through `mcp-aws-tools proxy URL --no-sign` (stdin to stdout)")
w("against the same calls sent directly by the benchmark over one connection.")
w("")
w("| upstream | direct p50 ms | through the proxy p50 ms | added p50 ms | added p99 ms | errors |")
w("|---|---|---|---|---|---|")
for key, label in [("http", "http://…/mcp"), ("websocket", "ws://…/ws")]:
    t = p[key]
    w(f"| {label} | {fmt(t['direct']['latency_ms']['p50'], 3)} | {fmt(t['proxy']['latency_ms']['p50'], 3)} | {fmt(t['added_ms']['p50'], 3)} | {fmt(t['added_ms']['p99'], 3)} | {t['direct']['errors'] + t['proxy']['errors']} |")
w("")
w("## Load through `serve`")
w("")
c = load_results["connections"]
w(f"{c['connections']:,} WebSocket connections at once, each sending {c['messages_per_connection']} mixed messages (ping, tools/list,")
w("tool calls of each read-only tool, envelope requests, and bad requests that get errors), four in flight each.")
w("")
w("| requests | answered exactly once | unanswered | answered twice | wrong kind of answer | seconds | messages/s |")
w("|---|---|---|---|---|---|---|")
w(f"| {c['requests']:,} | {c['answered_once']:,} | {c['missing']} | {c['duplicated']} | {c['unexpected']} | {fmt(c['seconds'])} | {fmt(c['messages_per_second'], 0)} |")
w("")
h = load_results["hostile"]
w(f"RSS of `serve` (MiB): before {fmt(c['rss_kb']['before'] / 1024, 1)}, peak {fmt(c['rss_kb']['peak'] / 1024, 1)}, after the connections closed "
  f"{fmt(c['rss_kb']['after'] / 1024, 1)}.")
w("")
w(f"Ten clients that send {h['messages_sent']:,} messages in all (each a batch of 50 `tools/list`, a 128 KB answer) and never read:")
w(f"{h['closed_with_1008']} of 10 closed with 1008 within {fmt(h['seconds_to_close_all'], 1)} s; RSS of `serve` (MiB): before "
  f"{fmt(h['rss_kb']['before'] / 1024, 1)}, peak {fmt(h['rss_kb']['peak'] / 1024, 1)}, after {fmt(h['rss_kb']['after'] / 1024, 1)}.")
w("")
w("## Connection state")
w("")
w(f"`tools/call aws_get_credentials` after a `set-environment`, {sessions['calls_per_store']:,} calls per store, in-process; with DynamoDB,")
w(f"{sessions['instances']} instances share the table (moto on loopback) and each call goes to either at random; secrets sealed with KMS")
w("envelope encryption (moto).")
w("")
w("| store | p50 µs | p99 µs |")
w("|---|---|---|")
w(f"| memory | {fmt(sessions['memory_us']['p50'])} | {fmt(sessions['memory_us']['p99'])} |")
w(f"| DynamoDB + KMS (moto) | {fmt(sessions['dynamodb_us']['p50'])} | {fmt(sessions['dynamodb_us']['p99'])} |")
w(f"| added | {fmt(sessions['added_us']['p50'])} | {fmt(sessions['added_us']['p99'])} |")
w("")
w(f"KMS calls: {sessions['kms_calls']} for {sessions['tool_calls']:,} tool calls ({fmt(sessions['kms_calls_per_1000_tool_calls'], 2)} per 1,000): one")
w("GenerateDataKey by the instance that sealed, one Decrypt by the other, then none. The added time is")
w("moto's answer time on this machine (a GetItem); DynamoDB in the same region answers in single milliseconds.")
w("")
w("## Metrics overhead")
w("")
w(f"{metrics['calls_per_configuration']:,} calls per configuration, interleaved in blocks of 1,000.")
w("")
w("| | p50 µs | p99 µs |")
w("|---|---|---|")
w(f"| sink off (recorder on) | {fmt(metrics['sink_off_us']['p50'])} | {fmt(metrics['sink_off_us']['p99'])} |")
w(f"| CloudWatch sink publishing | {fmt(metrics['sink_cloudwatch_us']['p50'])} | {fmt(metrics['sink_cloudwatch_us']['p99'])} |")
w(f"| added | {fmt(metrics['added_us']['p50'])} | {fmt(metrics['added_us']['p99'])} |")
w("")
w(f"`Recorder::record` alone: {fmt(metrics['recorder_record_ns'], 1)} ns; from two threads at once "
  f"{fmt(metrics['recorder_record_two_threads_ns'], 1)} ns per call on each (each thread has its own part of the recorder). "
  f"PutMetricData requests: {metrics['put_metric_data_requests']} for "
  f"{metrics['tool_calls_recorded']:,} tool calls, {fmt(metrics['put_metric_data_requests_per_1000_calls'], 3)} per 1,000.")
w("")
w("## Size")
w("")
w(f"The Lambda build (`--no-default-features`, what `cargo lambda build` and `sam build` ship): {lambda_bytes:,} bytes ({fmt(lambda_bytes / 1e6)} MB), stripped;")
w(f"it includes Mozilla's roots as trust anchors (from `webpki-root-certs` by build.rs, about 54 KB). The default build (with `serve` and `proxy`):")
w(f"{binary_bytes:,} bytes ({fmt(binary_bytes / 1e6)} MB), {'stripped' if stripped else 'not stripped'}.")
w("")
w("| crate | versions in the binary's tree |")
w("|---|---|")
for crate, versions in stacks.items():
    w(f"| {crate} | {', '.join(versions) if versions else 'none'} |")
w("")
w(f"Crates present in more than one version (`cargo tree --duplicates -e normal`): {', '.join(duplicate_names) if duplicate_names else 'none'}.")
w("")
with open(markdown_out, "w") as f:
    f.write("\n".join(lines))
print("\n".join(lines))
