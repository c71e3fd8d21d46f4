//! Every tool in both wire formats, through `serve` and a real WebSocket client, against moto.

mod support;

use serde_json::{Value, json};
use support::{Moto, Server, write_file};

const KEY_ID: &str = "AKIATOOLSEXAMPLE0001";
const SECRET: &str = "toolsSecretKeyExample/0000000000000000000";
const TOKEN: &str = "FQoGZXIvYXdzEJrTOOLSsessionTokenExample0000000000000000000000";

fn server(moto: &Moto) -> Server {
    let home = support::temp_dir("tools-home");
    write_file(
        &home.join(".aws/credentials"),
        "[default]\naws_access_key_id = AKIADEFAULTEXAMPLE01\naws_secret_access_key = defaultSecretExample000000000000000000000\n\n\
         [production]\naws_access_key_id = AKIAPRODEXAMPLE00001\naws_secret_access_key = prodSecretExample0000000000000000000000000\n",
    );
    write_file(
        &home.join(".aws/config"),
        "[default]\nregion = us-east-1\n\n[profile production]\nregion = eu-west-1\n\n[profile staging]\nregion = ap-southeast-2\n",
    );
    Server::start_in(
        home,
        &[
            ("AWS_ENDPOINT_URL", &moto.url),
            ("AWS_ACCESS_KEY_ID", KEY_ID),
            ("AWS_SECRET_ACCESS_KEY", SECRET),
            ("AWS_SESSION_TOKEN", TOKEN),
            ("AWS_DEFAULT_REGION", "us-west-2"),
            // These tests make many calls on one connection; rate limits have tests of their own.
            ("RATE_LIMIT_BURST", "1000"),
            ("CREDENTIAL_RATE_LIMIT_BURST", "1000"),
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initialize_negotiates_versions_and_lists_tools() {
    let moto = Moto::start();
    let server = server(&moto);
    let mut ws = server.connect_mcp().await;
    for (asked, answered) in [
        ("2025-03-26", "2025-03-26"),
        ("2025-06-18", "2025-06-18"),
        ("2025-11-25", "2025-11-25"),
        ("2024-11-05", "2025-11-25"),
        ("2099-01-01", "2025-11-25"),
    ] {
        let reply = ws
            .rpc(
                "initialize",
                json!({"protocolVersion": asked, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}),
            )
            .await;
        assert_eq!(reply["result"]["protocolVersion"], answered, "{reply}");
        assert!(reply["result"].get("resultType").is_none());
        assert_eq!(
            reply["result"]["capabilities"]["tools"],
            json!({"listChanged": false})
        );
    }
    assert_eq!(ws.rpc("ping", json!({})).await["result"], json!({}));

    let list = ws.rpc("tools/list", json!({})).await;
    assert!(list["result"].get("resultType").is_none());
    let tools = list["result"]["tools"].as_array().expect("tools");
    let names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "aws_get_credentials",
            "aws_set_environment",
            "aws_list_profiles",
            "aws_get_account_info",
            "aws_validate_credentials"
        ]
    );
    for tool in tools {
        assert_eq!(tool["inputSchema"]["type"], "object");
        assert_eq!(tool["outputSchema"]["type"], "object");
        let read_only = tool["name"] != "aws_set_environment";
        assert_eq!(
            tool["annotations"]["readOnlyHint"], read_only,
            "{}",
            tool["name"]
        );
    }
    // A call by the reference document's name works too.
    let result = ws.call_tool("aws/list-profiles", json!({})).await;
    assert_eq!(result["isError"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_credentials_masks_in_both_formats() {
    let moto = Moto::start();
    let server = server(&moto);
    let mut ws = server.connect().await;

    let result = ws.call_tool("aws_get_credentials", json!({})).await;
    assert_eq!(result["isError"], false);
    let body = &result["structuredContent"];
    assert_eq!(body["credentials"]["access_key_id"], "AKIATOOLSE...");
    assert_eq!(body["credentials"]["secret_access_key"], "***");
    assert_eq!(body["credentials"]["has_session_token"], true);
    assert!(body["credentials"].get("session_token").is_none());
    assert_eq!(body["credentials"]["region"], "us-west-2");
    assert_eq!(body["credentials"]["profile"], Value::Null);
    assert_eq!(
        body["metadata"]["credentials_source"],
        "environment_variables"
    );
    assert_eq!(
        body["environment_variables"],
        json!({
            "AWS_ACCESS_KEY_ID": "AKIATOOLSE...",
            "AWS_SECRET_ACCESS_KEY": "***",
            "AWS_SESSION_TOKEN": "***",
            "AWS_DEFAULT_REGION": "us-west-2"
        })
    );

    let reply = ws
        .envelope(
            "aws/get-credentials",
            json!({"include_session_token": true}),
        )
        .await;
    assert_eq!(reply["message_type"], "RESPONSE");
    assert_eq!(reply["protocol_version"], "2.0");
    let body = &reply["result"];
    assert_eq!(
        body["credentials"]["session_token"],
        format!("{}...", &TOKEN[..20])
    );
    assert_eq!(
        body["environment_variables"]["AWS_SESSION_TOKEN"],
        format!("{}...", &TOKEN[..20])
    );

    // A named profile: its keys and its region ... unless the environment names a region, as
    // with the AWS CLI.
    let result = ws
        .call_tool("aws_get_credentials", json!({"profile": "production"}))
        .await;
    let body = &result["structuredContent"];
    assert_eq!(body["credentials"]["access_key_id"], "AKIAPRODEX...");
    assert_eq!(body["credentials"]["profile"], "production");
    assert_eq!(body["credentials"]["region"], "us-west-2");
    assert_eq!(
        body["metadata"]["credentials_source"],
        "aws_config_profile:production"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_profiles_in_both_formats() {
    let moto = Moto::start();
    let server = server(&moto);
    let mut ws = server.connect().await;
    let expected = json!(["default", "production", "staging"]);

    let result = ws.call_tool("aws_list_profiles", json!({})).await;
    assert_eq!(result["structuredContent"]["profiles"], expected);
    assert_eq!(result["structuredContent"]["count"], 3);

    let reply = ws.envelope("aws/list-profiles", json!({})).await;
    assert_eq!(reply["result"]["profiles"], expected);
    assert_eq!(reply["result"]["count"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_account_info_in_both_formats_and_cached() {
    let moto = Moto::start();
    let server = server(&moto);
    let mut ws = server.connect().await;

    let result = ws.call_tool("aws_get_account_info", json!({})).await;
    assert_eq!(result["isError"], false, "{result}");
    let body = &result["structuredContent"];
    assert_eq!(body["account_id"], "123456789012");
    assert!(body["arn"].as_str().unwrap().starts_with("arn:aws:"));
    assert_eq!(body["region"], "us-west-2");
    assert_eq!(body["cached"], false);

    let reply = ws.envelope("aws/get-account-info", json!({})).await;
    assert_eq!(reply["message_type"], "RESPONSE");
    assert_eq!(reply["result"]["account_id"], "123456789012");
    assert_eq!(
        reply["result"]["cached"], true,
        "a warm instance asks STS once per credentials"
    );

    // Other credentials, another STS call.
    let reply = ws
        .envelope("aws/get-account-info", json!({"profile": "production"}))
        .await;
    assert_eq!(reply["result"]["cached"], false);
    assert_eq!(reply["result"]["profile"], "production");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_credentials_in_both_formats() {
    let moto = Moto::start();
    let server = server(&moto);
    let mut ws = server.connect().await;

    let result = ws.call_tool("aws_validate_credentials", json!({})).await;
    assert_eq!(result["isError"], false);
    assert_eq!(result["structuredContent"]["valid"], true);
    assert_eq!(result["structuredContent"]["account_id"], "123456789012");

    let reply = ws
        .envelope("aws/validate-credentials", json!({"profile": "staging"}))
        .await;
    // staging has a region but no keys in either file.
    assert_eq!(reply["message_type"], "ERROR", "{reply}");
    assert_eq!(reply["error_code"], "EXECUTION_FAILED");

    let reply = ws.envelope("aws/validate-credentials", json!({})).await;
    assert_eq!(reply["message_type"], "RESPONSE");
    assert_eq!(reply["result"]["valid"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_environment_in_both_formats() {
    let moto = Moto::start();
    let server = server(&moto);
    let mut ws = server.connect().await;

    let result = ws
        .call_tool(
            "aws_set_environment",
            json!({"access_key_id": "AKIAIOSFODNN7EXAMPLE", "secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "region": "us-west-2"}),
        )
        .await;
    assert_eq!(result["isError"], false);
    assert_eq!(
        result["structuredContent"]["updated_variables"],
        json!([
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_DEFAULT_REGION",
            "AWS_REGION"
        ])
    );
    assert!(
        result["structuredContent"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Successfully set 4 AWS environment variable(s)")
    );

    let reply = ws.envelope("aws/get-credentials", json!({})).await;
    let body = &reply["result"];
    assert_eq!(body["credentials"]["access_key_id"], "AKIAIOSFOD...");
    assert_eq!(body["credentials"]["has_session_token"], false);
    assert_eq!(body["metadata"]["credentials_source"], "set_environment");
    assert_eq!(body["environment_variables"]["AWS_REGION"], "us-west-2");
    assert!(
        body["environment_variables"]
            .get("AWS_SESSION_TOKEN")
            .is_none()
    );

    let reply = ws
        .envelope("aws/set-environment", json!({"region": "eu-central-1"}))
        .await;
    assert_eq!(
        reply["result"]["updated_variables"],
        json!(["AWS_DEFAULT_REGION", "AWS_REGION"])
    );
    let reply = ws.envelope("aws/get-account-info", json!({})).await;
    assert_eq!(reply["result"]["region"], "eu-central-1");
    assert_eq!(reply["result"]["credentials_source"], "set_environment");

    // Validation errors name the field, in both formats.
    for (arguments, field) in [
        (
            json!({"access_key_id": "AKIAIOSFODNN7EXAMPLE"}),
            "secret_access_key",
        ),
        (
            json!({"secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}),
            "access_key_id",
        ),
        (json!({"session_token": TOKEN}), "session_token"),
        (
            json!({"access_key_id": "not a key", "secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}),
            "access_key_id",
        ),
        (
            json!({"access_key_id": "AKIAIOSFODNN7EXAMPLE", "secret_access_key": "short"}),
            "secret_access_key",
        ),
        (json!({"region": "Mars-1"}), "region"),
        (json!({"region": 42}), "region"),
    ] {
        let result = ws.call_tool("aws_set_environment", arguments.clone()).await;
        assert_eq!(result["isError"], true, "{arguments}");
        assert_eq!(result["structuredContent"]["error"], "validation_error");
        assert_eq!(result["structuredContent"]["field"], field, "{arguments}");

        let reply = ws.envelope("aws/set-environment", arguments.clone()).await;
        assert_eq!(reply["message_type"], "ERROR");
        assert_eq!(reply["error_code"], "VALIDATION_ERROR");
        assert_eq!(reply["details"]["field"], field);
    }
    // An argument the tool does not take: the error names the ones it takes, not the one it
    // was sent (which may be a secret in the wrong place).
    let result = ws
        .call_tool("aws_set_environment", json!({"regoin": "us-east-1"}))
        .await;
    assert_eq!(result["structuredContent"]["error"], "validation_error");
    assert_eq!(
        result["structuredContent"]["message"],
        "unknown argument: this tool takes access_key_id, secret_access_key, session_token, region, environment_id"
    );
    assert!(result["structuredContent"].get("field").is_none());
    let result = ws.call_tool("aws_set_environment", json!({})).await;
    assert_eq!(result["structuredContent"]["error"], "validation_error");
}
