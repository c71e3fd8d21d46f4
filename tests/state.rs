//! Connection state that is right on every instance: `serve --instances N` over a DynamoDB table
//! (moto) with secrets sealed under a KMS key (moto), as Lambda runs N environments over one
//! table. Overrides follow a connection to every instance and no further; the table never holds
//! a secret; a store that cannot be read refuses the call instead of answering with other
//! credentials; the credential-tool limit is one across instances; `environment_id` handles are
//! bound to their caller and expire; the caller is reported and logged.

mod support;

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{Value, json};
use support::runtime_api::{Outcome, RuntimeApi};
use support::{LambdaProcess, Moto, Server, Ws};

const EXECUTION_KEY: &str = "ASIAEXECUTIONROLE001";
const EXECUTION_SECRET: &str = "xRsHv7Lq2Wz9Rt4Yp1Kd6Bx3Jm8Nc5Gf0Ts2Vq7Pw";

/// The keys connection A sets, and what they must never leave sealed.
const A_KEY: &str = "AKIACONNECTIONA00001";
const A_SECRET: &str = "aSk9Qz7Kp3mNb8TyU2Wd4Lx6Hr1Gv5Jc0Fe3Bn8Mq";
const A_TOKEN: &str = "FQoGZXIvYXdzEaTk4Vb6Cx2Zn8Qw5Rt1Yu7Io3Pa9Sd6Fg0Hj";

fn shared(moto: &Moto) -> Vec<(&str, &str)> {
    vec![
        ("AWS_ENDPOINT_URL", moto.url.as_str()),
        ("AWS_ACCESS_KEY_ID", EXECUTION_KEY),
        ("AWS_SECRET_ACCESS_KEY", EXECUTION_SECRET),
        ("AWS_REGION", "us-east-1"),
        ("SESSION_TABLE", moto.table.as_str()),
        ("KMS_KEY_ID", moto.kms_key_id.as_str()),
        ("RATE_LIMIT_BURST", "100000"),
        ("CREDENTIAL_RATE_LIMIT_BURST", "100000"),
    ]
}

fn two_instances(moto: &Moto, extra: &[(&str, &str)]) -> Server {
    let mut env = shared(moto);
    env.extend_from_slice(extra);
    Server::start_with(support::temp_dir("state-home"), &["--instances", "2"], &env)
}

async fn set_a(ws: &mut Ws) -> Value {
    let set = ws
        .call_tool(
            "aws_set_environment",
            json!({"access_key_id": A_KEY, "secret_access_key": A_SECRET, "session_token": A_TOKEN, "region": "eu-west-1"}),
        )
        .await;
    assert_eq!(set["isError"], false, "{set}");
    set["structuredContent"].clone()
}

fn source_of(result: &Value) -> (String, String) {
    let body = &result["structuredContent"];
    (
        body["credentials"]["access_key_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        body["metadata"]["credentials_source"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

/// The connection ids `serve` logged at `$connect`, in order.
/// The ids of the first `n` connections, from the server's "connected" records: waited for,
/// since a record can reach the log reader after the client has finished its handshake.
fn connection_ids(server: &Server, n: usize) -> Vec<String> {
    let ids = || -> Vec<String> {
        server
            .logs
            .records()
            .iter()
            .filter(|r| r["fields"]["message"] == "connected")
            .filter_map(|r| r["fields"]["connection_id"].as_str().map(str::to_owned))
            .collect()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let found = ids();
        if found.len() >= n {
            return found;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} of {n} connections logged: {}",
            found.len(),
            server.logs.text()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

async fn table_client(moto: &Moto) -> aws_sdk_dynamodb::Client {
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
        .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
        .endpoint_url(&moto.url)
        .http_client(mcp_aws_tools::aws::https_client(
            mcp_aws_tools::aws::TrustRoots::Compiled,
        ))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "AKIATESTSCANNER00001",
            "scannerSecret",
            None,
            None,
            "test",
        ))
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

/// Every item of the table: its key, and every attribute's bytes.
async fn scan(moto: &Moto) -> Vec<(String, Vec<Vec<u8>>)> {
    let output = table_client(moto)
        .await
        .scan()
        .table_name(&moto.table)
        .send()
        .await
        .expect("scan");
    output
        .items()
        .iter()
        .map(|item| {
            let key = item["pk"].as_s().cloned().unwrap_or_default();
            let values = item
                .values()
                .map(|v| match v {
                    AttributeValue::S(s) | AttributeValue::N(s) => s.clone().into_bytes(),
                    AttributeValue::B(b) => b.as_ref().to_vec(),
                    other => format!("{other:?}").into_bytes(),
                })
                .collect();
            (key, values)
        })
        .collect()
}

fn contains_piece(haystack: &[u8], secret: &str) -> bool {
    let secret = secret.as_bytes();
    secret
        .windows(8)
        .any(|piece| haystack.windows(piece.len()).any(|w| w == piece))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overrides_follow_a_connection_to_every_instance_and_no_further() {
    let moto = Moto::start();
    let server = two_instances(&moto, &[]);
    let mut a = server.connect().await;
    let mut b = server.connect().await;
    let ids = connection_ids(&server, 2);
    let (a_id, b_id) = (ids[0].clone(), ids[1].clone());
    set_a(&mut a).await;

    for _ in 0..100 {
        let result = a.call_tool("aws_get_credentials", json!({})).await;
        assert_eq!(
            source_of(&result),
            ("AKIACONNEC...".to_owned(), "set_environment".to_owned())
        );
        assert_eq!(
            result["structuredContent"]["credentials"]["region"],
            "eu-west-1"
        );
    }
    let other = b.call_tool("aws_get_credentials", json!({})).await;
    assert_eq!(
        source_of(&other),
        (
            "ASIAEXECUT...".to_owned(),
            "environment_variables".to_owned()
        )
    );

    // Both instances answered connection A: the state came from the table, not from memory.
    let served_by: std::collections::BTreeSet<u64> = server
        .logs
        .records()
        .iter()
        .filter(|r| {
            r["fields"]["message"] == "message"
                && r["fields"]["connection_id"] == a_id.as_str()
                && r["fields"]["tool"] == "aws/get-credentials"
        })
        .filter_map(|r| r["fields"]["instance"].as_u64())
        .collect();
    assert_eq!(served_by.into_iter().collect::<Vec<_>>(), vec![0, 1]);

    // The table holds A's state (and A's handle), with no piece of a secret in clear.
    let items = scan(&moto).await;
    let keys: Vec<&str> = items.iter().map(|(k, _)| k.as_str()).collect();
    assert!(
        keys.contains(&format!("connection#{a_id}").as_str()),
        "{keys:?}"
    );
    assert!(
        keys.iter().any(|k| k.starts_with("environment#env_")),
        "{keys:?}"
    );
    for (key, values) in &items {
        for value in values {
            for secret in [A_SECRET, A_TOKEN, EXECUTION_SECRET] {
                assert!(
                    !contains_piece(value, secret),
                    "a piece of a secret in {key}: {:?}",
                    String::from_utf8_lossy(value)
                );
            }
        }
    }

    // $disconnect, on whichever instance it lands, clears A's state for all.
    a.close().await;
    server.logs.wait_for("A's $disconnect", |r| {
        r["fields"]["message"] == "disconnected" && r["fields"]["connection_id"] == a_id.as_str()
    });
    let keys: Vec<String> = scan(&moto).await.into_iter().map(|(k, _)| k).collect();
    assert!(!keys.contains(&format!("connection#{a_id}")), "{keys:?}");
    assert!(keys.contains(&format!("connection#{b_id}")), "{keys:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handle_carries_overrides_to_another_connection_of_the_same_caller() {
    let moto = Moto::start();
    let server = two_instances(&moto, &[]);
    let mut a = server.connect().await;
    let mut b = server.connect().await;
    let set = set_a(&mut a).await;
    let handle = set["environment_id"].as_str().expect("an environment_id");
    assert!(handle.starts_with("env_") && handle.len() == 26, "{handle}");
    assert!(set["environment_expires_at"].is_string());

    let result = b
        .call_tool("aws_get_credentials", json!({"environment_id": handle}))
        .await;
    assert_eq!(
        source_of(&result),
        ("AKIACONNEC...".to_owned(), "set_environment".to_owned())
    );
    // The handle can be changed (a region), and keeps its id.
    let changed = b
        .call_tool(
            "aws_set_environment",
            json!({"environment_id": handle, "region": "ap-southeast-2"}),
        )
        .await;
    assert_eq!(changed["structuredContent"]["environment_id"], handle);
    let result = a
        .call_tool("aws_get_credentials", json!({"environment_id": handle}))
        .await;
    assert_eq!(
        result["structuredContent"]["credentials"]["region"],
        "ap-southeast-2"
    );
    // The connection's own overrides are unchanged by the handle's.
    let own = a.call_tool("aws_get_credentials", json!({})).await;
    assert_eq!(
        own["structuredContent"]["credentials"]["region"],
        "eu-west-1"
    );

    // A handle never issued, and one that is not a handle.
    for (id, message) in [
        (
            "env_AAAAAAAAAAAAAAAAAAAAAA",
            "the environment_id is not known, has expired, or belongs to another caller",
        ),
        (
            "not-a-handle",
            "'environment_id' must be one that aws_set_environment answered: env_ and 22 letters, digits, - or _",
        ),
    ] {
        let result = b
            .call_tool("aws_get_account_info", json!({"environment_id": id}))
            .await;
        assert_eq!(result["isError"], true);
        assert_eq!(result["structuredContent"]["error"], "validation_error");
        assert_eq!(result["structuredContent"]["field"], "environment_id");
        assert_eq!(result["structuredContent"]["message"], message);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handles_expire() {
    let moto = Moto::start();
    // Three seconds, not one: expiry is in whole seconds, so with one a handle set late in a
    // second had less than a second to live, and a loaded machine could take that long to use
    // it once.
    let server = two_instances(&moto, &[("ENVIRONMENT_TTL_SECS", "3")]);
    let mut a = server.connect().await;
    let handle = set_a(&mut a).await["environment_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let fresh = a
        .call_tool("aws_get_credentials", json!({"environment_id": handle}))
        .await;
    assert_eq!(fresh["isError"], false, "{fresh}");
    // Expiry is in whole seconds: a second and a half more than the time-to-live is past it,
    // whatever the machine's load.
    tokio::time::sleep(Duration::from_millis(4500)).await;
    let expired = a
        .call_tool("aws_get_credentials", json!({"environment_id": handle}))
        .await;
    assert_eq!(
        expired["structuredContent"]["field"], "environment_id",
        "{expired}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_credential_tool_limit_is_one_across_instances() {
    let moto = Moto::start();
    let mut refused = Vec::new();
    for instances in ["1", "2"] {
        let mut env = shared(&moto);
        env.retain(|(name, _)| *name != "CREDENTIAL_RATE_LIMIT_BURST");
        env.extend([
            ("CREDENTIAL_RATE_LIMIT_BURST", "3"),
            ("CREDENTIAL_RATE_LIMIT_PER_MINUTE", "0.001"),
        ]);
        let server = Server::start_with(
            support::temp_dir("limit-home"),
            &["--instances", instances],
            &env,
        );
        let mut ws = server.connect().await;
        let mut count = 0;
        for _ in 0..10 {
            let reply = ws
                .rpc(
                    "tools/call",
                    json!({"name": "aws_validate_credentials", "arguments": {}}),
                )
                .await;
            if reply.get("error").is_some() {
                assert!(
                    reply["error"]["message"]
                        .as_str()
                        .unwrap()
                        .contains("credential-testing tools"),
                    "{reply}"
                );
                count += 1;
            }
        }
        refused.push(count);
    }
    assert_eq!(refused, vec![7, 7], "refusals with 1 and with 2 instances");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_store_refuses_calls_instead_of_answering_with_other_credentials() {
    let sts = Moto::start();
    let store = Moto::start();
    let env = [
        ("AWS_ENDPOINT_URL", sts.url.as_str()),
        ("AWS_ENDPOINT_URL_DYNAMODB", store.url.as_str()),
        ("AWS_ENDPOINT_URL_KMS", store.url.as_str()),
        ("SESSION_TABLE", store.table.as_str()),
        ("KMS_KEY_ID", store.kms_key_id.as_str()),
        ("AWS_LAMBDA_FUNCTION_NAME", "mcp-aws-tools"),
        ("AWS_ACCESS_KEY_ID", EXECUTION_KEY),
        ("AWS_SECRET_ACCESS_KEY", EXECUTION_SECRET),
        ("AWS_REGION", "us-east-1"),
        ("OPERATION_TIMEOUT_MS", "1500"),
        ("CONNECT_TIMEOUT_MS", "500"),
        ("RATE_LIMIT_BURST", "1000"),
        ("CREDENTIAL_RATE_LIMIT_BURST", "1000"),
    ];
    let server = Server::start_with(support::temp_dir("dead-store"), &["--instances", "2"], &env);
    let mut a = server.connect().await;
    set_a(&mut a).await;
    let before = a.call_tool("aws_get_credentials", json!({})).await;
    assert_eq!(source_of(&before).1, "set_environment");

    drop(store); // the table (and KMS) are gone
    let deadline = Duration::from_millis(2 * 1500 + 500) + Duration::from_secs(10);
    for (tool, arguments) in [
        ("aws_get_credentials", json!({})),
        ("aws_get_account_info", json!({})),
        ("aws_validate_credentials", json!({})),
        ("aws_set_environment", json!({"region": "us-west-2"})),
    ] {
        let started = Instant::now();
        let result = a.call_tool(tool, arguments).await;
        assert!(
            started.elapsed() < deadline,
            "{tool} took {:?}",
            started.elapsed()
        );
        let text = result.to_string();
        assert!(!text.contains("lambda_execution_role"), "{tool}: {text}");
        assert!(!text.contains("ASIAEXECUT"), "{tool}: {text}");
        assert_eq!(result["isError"], true, "{tool}: {text}");
        assert_eq!(
            result["structuredContent"]["error"], "session_unavailable",
            "{tool}"
        );
        let message = result["structuredContent"]["message"].as_str().unwrap();
        assert_eq!(
            message,
            "this connection's stored settings could not be read, so the call was not made; try again"
        );
    }
    // What needs no stored state still works, and the connection is usable.
    let profiles = a.call_tool("aws_list_profiles", json!({})).await;
    assert_eq!(profiles["isError"], false);
    assert_eq!(a.rpc("ping", json!({})).await["result"], json!({}));
    // A new connection is refused: its state could not be kept.
    let refused = tokio_tungstenite::connect_async(server.ws_url()).await;
    assert!(
        refused.is_err(),
        "a connection without a store was accepted"
    );
}

/// With IAM authorization on `$connect`, API Gateway says who the caller is: kept with the
/// connection, reported by the tools, logged with every call, and what a handle is bound to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_caller_is_kept_reported_and_binds_handles() {
    let moto = Moto::start();
    let api = RuntimeApi::start().await;
    let function = LambdaProcess::start(
        &api.address(),
        &[
            ("AWS_ENDPOINT_URL", &moto.url),
            ("AWS_ACCESS_KEY_ID", EXECUTION_KEY),
            ("AWS_SECRET_ACCESS_KEY", EXECUTION_SECRET),
            ("AWS_REGION", "us-east-1"),
        ],
    );
    let event = |name: &str| -> Value {
        serde_json::from_str(
            &std::fs::read_to_string(support::repo().join("events").join(name)).unwrap(),
        )
        .unwrap()
    };
    let as_caller = |mut e: Value, connection: &str, user: &str| {
        e["requestContext"]["connectionId"] = json!(connection);
        e["requestContext"]["identity"]["userArn"] =
            json!(format!("arn:aws:iam::123456789012:user/{user}"));
        e["requestContext"]["identity"]["accountId"] = json!("123456789012");
        e
    };
    let call = |connection: &str, user: &str, id: i64, name: &str, arguments: Value| {
        let mut e = as_caller(event("mcp-ping.json"), connection, user);
        e["body"] = json!(json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": name, "arguments": arguments}}).to_string());
        e.to_string()
    };
    let reply = |outcome: Outcome| -> Value {
        let Outcome::Response(text) = outcome else {
            panic!("{outcome:?}");
        };
        let response: Value = serde_json::from_str(&text).unwrap();
        serde_json::from_str::<Value>(response["body"].as_str().unwrap()).unwrap()["result"].clone()
    };
    // Alice connects (her identity comes with $connect only) and sets credentials.
    let connect = as_caller(event("connect.json"), "aliceConn=", "alice");
    assert!(matches!(
        api.invoke(&connect.to_string()).await,
        Outcome::Response(_)
    ));
    let mut message = event("mcp-ping.json");
    message["requestContext"]["connectionId"] = json!("aliceConn=");
    message["body"] = json!(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "aws_set_environment", "arguments": {"access_key_id": A_KEY, "secret_access_key": A_SECRET}}}).to_string());
    let set = reply(api.invoke(&message.to_string()).await);
    let handle = set["structuredContent"]["environment_id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Her next message carries no identity: the caller comes from $connect.
    message["body"] = json!(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "aws_get_account_info", "arguments": {}}}).to_string());
    let info = reply(api.invoke(&message.to_string()).await);
    assert_eq!(
        info["structuredContent"]["caller"]["arn"], "arn:aws:iam::123456789012:user/alice",
        "{info}"
    );
    assert_eq!(
        info["structuredContent"]["caller"]["account_id"],
        "123456789012"
    );
    assert_eq!(
        info["structuredContent"]["credentials_source"],
        "set_environment"
    );

    // Alice on another connection may use her handle; Bob may not.
    let own = reply(
        api.invoke(&call(
            "aliceOther=",
            "alice",
            3,
            "aws_get_credentials",
            json!({"environment_id": handle}),
        ))
        .await,
    );
    assert_eq!(
        own["structuredContent"]["credentials"]["access_key_id"],
        "AKIACONNEC..."
    );
    assert_eq!(
        own["structuredContent"]["caller"]["arn"],
        "arn:aws:iam::123456789012:user/alice"
    );
    let bobs = reply(
        api.invoke(&call(
            "bobConn=",
            "bob",
            4,
            "aws_get_credentials",
            json!({"environment_id": handle}),
        ))
        .await,
    );
    assert_eq!(
        bobs["structuredContent"]["field"], "environment_id",
        "{bobs}"
    );

    // The audit record of each tool call: who, which tool, which credentials, the outcome.
    let record = function.logs.wait_for("alice's get-account-info", |r| {
        r["fields"]["tool"] == "aws/get-account-info"
    });
    let fields = &record["fields"];
    assert_eq!(fields["caller_arn"], "arn:aws:iam::123456789012:user/alice");
    assert_eq!(fields["caller_account"], "123456789012");
    assert_eq!(fields["credentials_source"], "set_environment");
    assert_eq!(fields["outcome"], "ok");
    function.terminate();
}
