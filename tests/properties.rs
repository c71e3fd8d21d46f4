//! Properties of the message handler over generated messages (proptest, in-process): it never
//! panics; every reply is JSON, answers the request's id (or `null` when the id could not be
//! read), fits in 128 KB, and holds no secret, whatever the message.

use std::collections::HashMap;
use std::sync::LazyLock;

use mcp_aws_tools::config::Config;
use mcp_aws_tools::protocol;
use mcp_aws_tools::state::AppState;
use proptest::prelude::*;
use serde_json::{Map, Value, json};

const LIMIT: usize = 128 * 1024;
const ENV_SECRET: &str = "PropEnvSecretKeyNeverShown0000000000000";
const SET_SECRET: &str = "PropSetSecretKeyNeverShown1111111111111";
const SET_TOKEN: &str = "PropSessionTokenPrefix20charsThenNeverShownZz9";

struct Harness {
    runtime: tokio::runtime::Runtime,
    state: AppState,
}

/// One handler for every case: STS at a closed port with short time-outs, so that calls that
/// reach AWS fail fast (and their failures are exercised too).
static HARNESS: LazyLock<Harness> = LazyLock::new(|| {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("http://127.0.0.1:{closed}");
    let vars: HashMap<&str, &str> = HashMap::from([
        ("AWS_ACCESS_KEY_ID", "AKIAPROPERTYTEST0001"),
        ("AWS_SECRET_ACCESS_KEY", ENV_SECRET),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("OPERATION_TIMEOUT_MS", "100"),
        ("CONNECT_TIMEOUT_MS", "50"),
        ("RATE_LIMIT_BURST", "1000000000"),
        ("RATE_LIMIT_PER_SECOND", "1000000000"),
        ("CREDENTIAL_RATE_LIMIT_BURST", "1000000000"),
    ]);
    let config =
        Config::from_lookup(|name| vars.get(name).map(|v| Ok(v.to_string()))).expect("config");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let state = runtime.block_on(AppState::new(config)).expect("state");
    Harness { runtime, state }
});

fn handle(body: &[u8]) -> Option<String> {
    let harness = &*HARNESS;
    harness.runtime.block_on(protocol::handle(
        &harness.state,
        &mcp_aws_tools::session::Origin::connection("property"),
        body,
    ))
}

/// Scalars the client might send anywhere.
fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        "\\PC{0,40}".prop_map(Value::from),
    ]
}

/// The same, and a secret sent where it does not belong (an id is echoed by the protocol, so
/// ids are never given one).
fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![scalar(), Just(json!(SET_SECRET))]
}

fn any_json() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,12}", inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<String, Value>>())),
        ]
    })
}

fn id() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        Just(None),
        any::<i64>().prop_map(|n| Some(json!(n))),
        "[a-zA-Z0-9-]{0,24}".prop_map(|s| Some(json!(s))),
        (250usize..270).prop_map(|n| Some(json!("i".repeat(n)))),
        scalar().prop_map(Some),
    ]
}

fn tool_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("aws_get_credentials".to_owned()),
        Just("aws/get-credentials".to_owned()),
        Just("aws_set_environment".to_owned()),
        Just("aws_list_profiles".to_owned()),
        Just("aws_get_account_info".to_owned()),
        Just("aws_validate_credentials".to_owned()),
        "\\PC{0,20}",
    ]
}

fn arguments() -> impl Strategy<Value = Value> {
    prop_oneof![
        any_json(),
        Just(
            json!({"access_key_id": "AKIAPROPERTYSETKEY01", "secret_access_key": SET_SECRET, "session_token": SET_TOKEN})
        ),
        Just(json!({"include_session_token": true})),
        Just(json!({"profile": "default"})),
        Just(json!({"region": "eu-west-1"})),
    ]
}

fn method() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("initialize".to_owned()),
        Just("ping".to_owned()),
        Just("tools/list".to_owned()),
        Just("tools/call".to_owned()),
        Just("notifications/initialized".to_owned()),
        "\\PC{0,20}",
    ]
}

fn json_rpc() -> impl Strategy<Value = Value> {
    (
        id(),
        method(),
        tool_name(),
        arguments(),
        any_json(),
        any::<bool>(),
    )
        .prop_map(|(id, method, name, arguments, other, call_shaped)| {
            let mut message = json!({"jsonrpc": "2.0", "method": method});
            if let Some(id) = id {
                message["id"] = id;
            }
            message["params"] = if call_shaped {
                json!({"name": name, "arguments": arguments})
            } else {
                other
            };
            message
        })
}

fn envelope() -> impl Strategy<Value = Value> {
    (id(), tool_name(), arguments()).prop_map(|(id, name, params)| {
        let mut message = json!({
            "message_type": "REQUEST", "protocol_version": "2.0",
            "method": name.replacen("aws_", "aws/", 1).replace('_', "-"), "params": params
        });
        if let Some(id) = id {
            message["message_id"] = id;
        }
        message
    })
}

/// Bytes: JSON-RPC and envelope messages, batches, JSON of any shape, truncated JSON, and
/// arbitrary bytes.
fn text(value: Value) -> Vec<u8> {
    value.to_string().into_bytes()
}

fn message() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => json_rpc().prop_map(text),
        2 => envelope().prop_map(text),
        1 => prop::collection::vec(prop_oneof![json_rpc(), any_json()], 0..60).prop_map(|v| text(Value::Array(v))),
        1 => any_json().prop_map(text),
        1 => (json_rpc(), any::<prop::sample::Index>()).prop_map(|(m, cut)| {
            let bytes = m.to_string().into_bytes();
            let at = cut.index(bytes.len().max(1));
            bytes[..at].to_vec()
        }),
        1 => prop::collection::vec(any::<u8>(), 0..200),
    ]
}

/// The id a reply must carry: the request's, when it could be read.
fn expected_id(request: &Value) -> Option<Value> {
    let id = request.get("id")?;
    match id {
        Value::String(s) if s.len() <= 256 => Some(id.clone()),
        Value::Number(n) if n.is_i64() => Some(id.clone()),
        _ => None,
    }
}

fn check(body: &[u8]) -> Result<(), TestCaseError> {
    let Some(reply) = handle(body) else {
        // No reply: only for notifications, responses and batches of them.
        let request: Value = serde_json::from_slice(body)
            .map_err(|_| TestCaseError::fail("unparsable input got no reply"))?;
        let no_reply = |m: &Value| m.get("id").is_none() || m.get("method").is_none();
        let silent = match &request {
            Value::Array(items) => !items.is_empty() && items.iter().all(no_reply),
            other => other.get("jsonrpc").is_some() && no_reply(other),
        };
        prop_assert!(silent, "no reply to {request}");
        return Ok(());
    };
    prop_assert!(reply.len() <= LIMIT, "a reply of {} bytes", reply.len());
    for secret in [ENV_SECRET, SET_SECRET, &SET_TOKEN[20..]] {
        prop_assert!(!reply.contains(secret), "a secret in {reply}");
    }
    let answer: Value = serde_json::from_str(&reply)
        .map_err(|e| TestCaseError::fail(format!("reply is not JSON ({e}): {reply}")))?;
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        // Not JSON: a parse error, with a null id.
        let id = answer.get("id").or(answer.get("request_id"));
        prop_assert_eq!(id, Some(&Value::Null), "{}", reply);
        return Ok(());
    };
    match (&request, &answer) {
        (Value::Object(object), _) if object.contains_key("jsonrpc") => {
            let expected = expected_id(&request).unwrap_or(Value::Null);
            prop_assert_eq!(&answer["id"], &expected, "{}", reply);
        }
        (Value::Object(object), _) if object.contains_key("message_type") => {
            let expected = match object.get("message_id") {
                Some(Value::String(s)) if s.len() <= 256 => json!(s),
                Some(n @ Value::Number(_)) if n.is_i64() || n.is_u64() => n.clone(),
                _ => Value::Null,
            };
            prop_assert_eq!(&answer["request_id"], &expected, "{}", reply);
        }
        (Value::Array(items), Value::Array(answers)) => {
            // Each answer carries the id of a request of the batch, or null.
            for answer in answers {
                let id = &answer["id"];
                prop_assert!(
                    id.is_null() || items.iter().any(|i| expected_id(i).as_ref() == Some(id)),
                    "{}",
                    reply
                );
            }
        }
        _ => {}
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 3000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn every_message_gets_a_bounded_json_reply_with_its_id_and_no_secret(body in message()) {
        check(&body)?;
    }
}

#[test]
fn the_harness_sees_what_it_should() {
    // A set-environment with the canary secret is accepted (so the property covers it), and a
    // call then runs with it and fails to reach the closed port without showing it.
    let set = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "aws_set_environment", "arguments": {"access_key_id": "AKIAPROPERTYSETKEY01", "secret_access_key": SET_SECRET}}});
    let reply: Value = serde_json::from_str(&handle(set.to_string().as_bytes()).unwrap()).unwrap();
    assert_eq!(reply["result"]["isError"], false, "{reply}");
}
