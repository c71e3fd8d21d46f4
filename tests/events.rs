//! Every file in events/ is an API Gateway WebSocket event that aws_lambda_events parses and
//! round-trips, and that `mcp-aws-tools invoke` runs through the handler with the expected
//! answer (against moto).

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use serde_json::{Value, json};
use support::{Moto, invoke, reply_of, repo};

fn event_files() -> BTreeMap<String, PathBuf> {
    std::fs::read_dir(repo().join("events"))
        .expect("events/")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .map(|path| {
            (
                path.file_name().unwrap().to_string_lossy().into_owned(),
                path,
            )
        })
        .collect()
}

#[test]
fn every_event_parses_and_round_trips() {
    let files = event_files();
    assert!(files.len() >= 20, "events/ holds {} files", files.len());
    for (name, path) in files {
        let text = std::fs::read_to_string(&path).expect("read event");
        let parsed: ApiGatewayWebsocketProxyRequest =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            parsed.request_context.connected_at > 0,
            "{name}: connectedAt"
        );
        assert!(
            parsed.request_context.request_time_epoch > 0,
            "{name}: requestTimeEpoch"
        );
        assert!(
            parsed.request_context.connection_id.is_some(),
            "{name}: connectionId"
        );
        let reserialized = serde_json::to_string(&parsed).expect("serialize");
        let reparsed: ApiGatewayWebsocketProxyRequest =
            serde_json::from_str(&reserialized).expect("reparse");
        assert_eq!(parsed, reparsed, "{name} does not round-trip");
    }
}

type Check = fn(&Value);

fn expectations() -> BTreeMap<&'static str, Check> {
    let mut checks: BTreeMap<&'static str, Check> = BTreeMap::new();
    checks.insert("connect.json", |r| {
        assert_eq!(r["statusCode"], 200);
        assert_eq!(r["headers"]["sec-websocket-protocol"], "mcp");
        assert!(r.get("body").is_none());
    });
    checks.insert("disconnect.json", |r| {
        assert_eq!(r["statusCode"], 200);
        assert!(r.get("body").is_none());
    });
    checks.insert("mcp-initialized-notification.json", |r| {
        assert_eq!(r["statusCode"], 200);
        assert!(r.get("body").is_none(), "a notification gets no reply");
    });
    checks.insert("mcp-initialize.json", |r| {
        assert_eq!(reply_of(r)["result"]["protocolVersion"], "2025-06-18");
    });
    checks.insert("mcp-ping.json", |r| {
        assert_eq!(reply_of(r)["result"], json!({}))
    });
    checks.insert("mcp-tools-list.json", |r| {
        assert_eq!(reply_of(r)["result"]["tools"].as_array().unwrap().len(), 5);
    });
    checks.insert("mcp-get-credentials.json", |r| {
        let result = &reply_of(r)["result"];
        assert_eq!(result["isError"], false);
        assert_eq!(
            result["structuredContent"]["credentials"]["access_key_id"],
            "AKIAEVENTS..."
        );
        assert_eq!(
            result["structuredContent"]["credentials"]["secret_access_key"],
            "***"
        );
    });
    checks.insert("mcp-set-environment.json", |r| {
        assert_eq!(reply_of(r)["result"]["structuredContent"]["success"], true);
    });
    checks.insert("mcp-list-profiles.json", |r| {
        assert_eq!(reply_of(r)["result"]["structuredContent"]["count"], 0);
    });
    checks.insert("mcp-get-account-info.json", |r| {
        assert_eq!(
            reply_of(r)["result"]["structuredContent"]["account_id"],
            "123456789012"
        );
    });
    checks.insert("mcp-validate-credentials.json", |r| {
        assert_eq!(reply_of(r)["result"]["structuredContent"]["valid"], true);
    });
    checks.insert("envelope-get-credentials.json", |r| {
        let reply = reply_of(r);
        assert_eq!(reply["message_type"], "RESPONSE");
        assert_eq!(reply["request_id"], "req-1");
        assert_eq!(
            reply["result"]["metadata"]["credentials_source"],
            "environment_variables"
        );
    });
    checks.insert("envelope-set-environment.json", |r| {
        assert_eq!(
            reply_of(r)["result"]["updated_variables"],
            json!(["AWS_DEFAULT_REGION", "AWS_REGION"])
        );
    });
    checks.insert("envelope-list-profiles.json", |r| {
        assert_eq!(reply_of(r)["result"]["profiles"], json!([]));
    });
    checks.insert("envelope-get-account-info.json", |r| {
        assert_eq!(reply_of(r)["result"]["account_id"], "123456789012");
    });
    checks.insert("envelope-validate-credentials.json", |r| {
        assert_eq!(reply_of(r)["result"]["valid"], true);
    });
    checks.insert("malformed-json.json", |r| {
        assert_eq!(reply_of(r)["error"]["code"], -32700)
    });
    checks.insert("malformed-not-utf8.json", |r| {
        let reply = reply_of(r);
        assert_eq!(reply["error"]["code"], -32700);
        assert!(
            reply["error"]["message"]
                .as_str()
                .unwrap()
                .contains("UTF-8")
        );
    });
    checks.insert("malformed-unknown-method.json", |r| {
        assert_eq!(reply_of(r)["error"]["code"], -32601)
    });
    checks.insert("malformed-unknown-tool.json", |r| {
        assert_eq!(reply_of(r)["error"]["code"], -32602)
    });
    checks.insert("malformed-tool-arguments.json", |r| {
        let result = &reply_of(r)["result"];
        assert_eq!(result["isError"], true);
        assert_eq!(result["structuredContent"]["error"], "validation_error");
        assert_eq!(
            result["structuredContent"]["field"],
            "include_session_token"
        );
    });
    checks.insert("malformed-envelope-version.json", |r| {
        assert_eq!(reply_of(r)["error_code"], "UNSUPPORTED_PROTOCOL_VERSION");
    });
    checks.insert("malformed-envelope-method.json", |r| {
        assert_eq!(reply_of(r)["error_code"], "METHOD_NOT_FOUND");
    });
    checks
}

#[test]
fn every_event_runs_through_the_handler() {
    let moto = Moto::start();
    let env = [
        ("AWS_ENDPOINT_URL", moto.url.as_str()),
        ("AWS_ACCESS_KEY_ID", "AKIAEVENTSEXAMPLE000"),
        (
            "AWS_SECRET_ACCESS_KEY",
            "eventsSecretKeyExample0000000000000000000",
        ),
        ("AWS_REGION", "us-east-1"),
    ];
    let checks = expectations();
    let files = event_files();
    for name in files.keys() {
        assert!(
            checks.contains_key(name.as_str()),
            "events/{name} has no expectation in this test"
        );
    }
    for (name, check) in checks {
        let path = files
            .get(name)
            .unwrap_or_else(|| panic!("events/{name} is missing"));
        let (response, logs) = invoke(path, &env);
        let outcome = std::panic::catch_unwind(|| check(&response));
        assert!(
            outcome.is_ok(),
            "events/{name}: unexpected response {response:#}\nlogs:\n{logs}"
        );
    }
}

/// `invoke` with an event that is not one: every missing field named with its path, in one
/// run, and the path of a field of the wrong type.
#[test]
fn invoke_names_every_missing_field_by_its_path() {
    let dir = support::temp_dir("bad-events");
    let run = |event: serde_json::Value| {
        let path = dir.join("event.json");
        std::fs::write(&path, event.to_string()).unwrap();
        let output = std::process::Command::new(support::BINARY)
            .arg("invoke")
            .arg(&path)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", &dir)
            .output()
            .expect("run invoke");
        assert!(!output.status.success());
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let mut event: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(support::repo().join("events/mcp-ping.json")).unwrap(),
    )
    .unwrap();
    let context = event["requestContext"].as_object_mut().unwrap();
    context.remove("connectedAt");
    context.remove("requestTimeEpoch");
    let stderr = run(event.clone());
    assert!(
        stderr.contains(
            "the event is missing requestContext.connectedAt, requestContext.requestTimeEpoch"
        ),
        "{stderr}"
    );
    event["requestContext"]["connectedAt"] = serde_json::json!(1);
    event["requestContext"]["requestTimeEpoch"] = serde_json::json!(1);
    event["requestContext"]["identity"]["sourceIp"] = serde_json::json!(203);
    let stderr = run(event);
    assert!(
        stderr.contains("requestContext.identity.sourceIp has the wrong type"),
        "{stderr}"
    );
}

fn http_event_files() -> BTreeMap<String, PathBuf> {
    std::fs::read_dir(repo().join("events/http"))
        .expect("events/http/")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .map(|path| {
            (
                path.file_name().unwrap().to_string_lossy().into_owned(),
                path,
            )
        })
        .collect()
}

fn body_of(response: &Value) -> Value {
    serde_json::from_str(response["body"].as_str().expect("body")).expect("body JSON")
}

fn http_expectations() -> BTreeMap<&'static str, Check> {
    let mut checks: BTreeMap<&'static str, Check> = BTreeMap::new();
    checks.insert("api-metrics.json", |r| {
        assert_eq!(r["statusCode"], 200);
        assert!(body_of(r)["tools"].is_object());
    });
    checks.insert("function-url-metrics.json", |r| {
        assert_eq!(r["statusCode"], 200);
    });
    checks.insert("stage-api-metrics.json", |r| {
        // An HTTP API's named stage starts the path (`/prod/api/metrics`): same route.
        assert_eq!(r["statusCode"], 200);
        assert!(body_of(r)["tools"].is_object());
    });
    checks.insert("rest-api-mcp-get-credentials.json", |r| {
        // A REST API answer: the headers in multiValueHeaders only (API Gateway merges the
        // two maps, which would repeat a header), the body as text.
        assert_eq!(r["statusCode"], 200);
        assert_eq!(
            r["multiValueHeaders"]["content-type"][0],
            "application/json"
        );
        assert_eq!(r["isBase64Encoded"], false);
        let result = &body_of(r)["result"];
        assert_eq!(result["isError"], false, "{result}");
        // The IAM principal that signed, from a REST API's requestContext.identity.
        assert_eq!(
            result["structuredContent"]["caller"]["arn"],
            "arn:aws:sts::123456789012:assumed-role/Developer/alice"
        );
    });
    checks.insert("mcp-discover.json", |r| {
        assert_eq!(r["statusCode"], 200);
        let result = &body_of(r)["result"];
        assert_eq!(result["resultType"], "complete");
        assert_eq!(result["supportedVersions"][0], "2026-07-28");
    });
    checks.insert("mcp-tools-list.json", |r| {
        let result = &body_of(r)["result"];
        assert_eq!(result["tools"].as_array().unwrap().len(), 5);
        assert_eq!(result["cacheScope"], "public");
    });
    checks.insert("mcp-get-credentials.json", |r| {
        // A base64-encoded body, as API Gateway passes bodies it does not take for text.
        let result = &body_of(r)["result"];
        assert_eq!(result["isError"], false, "{result}");
        assert_eq!(
            result["structuredContent"]["credentials"]["access_key_id"],
            "AKIAEVENTS..."
        );
        // The IAM principal that signed the request, from the authorizer's context.
        assert_eq!(
            result["structuredContent"]["caller"]["arn"],
            "arn:aws:sts::123456789012:assumed-role/Developer/alice"
        );
    });
    checks.insert("mcp-get-account-info.json", |r| {
        assert_eq!(
            body_of(r)["result"]["structuredContent"]["account_id"],
            "123456789012"
        );
    });
    checks.insert("mcp-initialize.json", |r| {
        assert_eq!(r["statusCode"], 200);
        assert_eq!(body_of(r)["result"]["protocolVersion"], "2025-11-25");
    });
    checks.insert("mcp-header-mismatch.json", |r| {
        assert_eq!(r["statusCode"], 400);
        assert_eq!(body_of(r)["error"]["code"], -32020);
        assert_eq!(body_of(r)["id"], 5);
    });
    checks.insert("mcp-get.json", |r| {
        assert_eq!(r["statusCode"], 405);
        assert_eq!(r["headers"]["allow"], "POST");
    });
    checks
}

/// events/http/ holds HTTP API (payload 2.0), Function URL and REST API (payload 1.0, named
/// `rest-api-*`) events; `invoke` answers each through the same handler as in Lambda.
#[test]
fn every_http_event_parses_and_runs_through_the_handler() {
    use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayV2httpRequest};
    fn round_trips<T>(name: &str, text: &str)
    where
        T: serde::de::DeserializeOwned + serde::Serialize + PartialEq + std::fmt::Debug,
    {
        let parsed: T = serde_json::from_str(text).unwrap_or_else(|e| panic!("{name}: {e}"));
        let reparsed: T =
            serde_json::from_str(&serde_json::to_string(&parsed).unwrap()).expect("reparse");
        assert_eq!(parsed, reparsed, "{name} does not round-trip");
    }
    let files = http_event_files();
    for (name, path) in &files {
        let text = std::fs::read_to_string(path).expect("read event");
        if name.starts_with("rest-api-") {
            round_trips::<ApiGatewayProxyRequest>(name, &text);
        } else {
            round_trips::<ApiGatewayV2httpRequest>(name, &text);
        }
    }
    let moto = Moto::start();
    let env = [
        ("AWS_ENDPOINT_URL", moto.url.as_str()),
        ("AWS_ACCESS_KEY_ID", "AKIAEVENTSEXAMPLE000"),
        (
            "AWS_SECRET_ACCESS_KEY",
            "eventsSecretKeyExample0000000000000000000",
        ),
        ("AWS_REGION", "us-east-1"),
    ];
    let checks = http_expectations();
    for name in files.keys() {
        assert!(
            checks.contains_key(name.as_str()),
            "events/http/{name} has no expectation in this test"
        );
    }
    for (name, check) in checks {
        let path = files
            .get(name)
            .unwrap_or_else(|| panic!("events/http/{name} is missing"));
        let (response, logs) = invoke(path, &env);
        let outcome = std::panic::catch_unwind(|| check(&response));
        assert!(
            outcome.is_ok(),
            "events/http/{name}: unexpected response {response:#}\nlogs:\n{logs}"
        );
    }
}
