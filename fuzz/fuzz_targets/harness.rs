//! The handler the fuzz targets drive: built once, with STS at a closed port and short
//! time-outs (calls that reach AWS fail fast), generous rate limits, and credentials in its
//! configuration (never in the process environment).

use std::collections::HashMap;
use std::sync::LazyLock;

use mcp_aws_tools::config::Config;
use mcp_aws_tools::state::AppState;

pub const SECRET: &str = "FuzzSecretKeyNeverShownInAnyReply000000";

pub struct Harness {
    pub runtime: tokio::runtime::Runtime,
    pub state: AppState,
}

pub static HARNESS: LazyLock<Harness> = LazyLock::new(|| {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(9);
    let endpoint = format!("http://127.0.0.1:{closed}");
    let vars: HashMap<&str, &str> = HashMap::from([
        ("AWS_ACCESS_KEY_ID", "AKIAFUZZTARGET000001"),
        ("AWS_SECRET_ACCESS_KEY", SECRET),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("OPERATION_TIMEOUT_MS", "20"),
        ("CONNECT_TIMEOUT_MS", "10"),
        ("RATE_LIMIT_BURST", "1000000000"),
        ("RATE_LIMIT_PER_SECOND", "1000000000"),
        ("CREDENTIAL_RATE_LIMIT_BURST", "1000000000"),
    ]);
    let config = Config::from_lookup(|name| vars.get(name).map(|v| Ok(v.to_string())))
        .expect("config");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let state = runtime.block_on(AppState::new(config)).expect("state");
    Harness { runtime, state }
});

/// The checks every reply must pass. A client that puts the secret in its request id gets it
/// back (an answer repeats its request's id), so `input` says whether the secret may appear.
pub fn check_reply(reply: &str, input: &[u8]) {
    assert!(reply.len() <= 128 * 1024, "a reply of {} bytes", reply.len());
    let sent = input.windows(SECRET.len()).any(|w| w == SECRET.as_bytes());
    assert!(sent || !reply.contains(SECRET), "the secret in a reply");
    serde_json::from_str::<serde_json::Value>(reply).expect("a reply is JSON");
}
