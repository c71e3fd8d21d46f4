//! template.yaml's security and operability properties, which cfn-lint checks only loosely for
//! ApiGatewayV2: IAM authorization on `$connect` and on `/mcp`, no `*` action in any policy, PutMetricData
//! limited to the namespace, AssumeRole limited to the listed roles, the route response that
//! carries replies back, throttling, log retention, a function the binary can run as, and a
//! dashboard that is JSON and shows the Streamable HTTP endpoint the stack has.

use serde_norway::Value;

fn template() -> Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/template.yaml"))
        .expect("template.yaml");
    serde_norway::from_str(&text).expect("template.yaml is YAML")
}

/// A value without its CloudFormation tag (`!Ref X` -> `X`), and the tag.
fn untag(value: &Value) -> (Option<String>, &Value) {
    match value {
        Value::Tagged(tagged) => (
            Some(tagged.tag.to_string().trim_start_matches('!').to_owned()),
            &tagged.value,
        ),
        other => (None, other),
    }
}

fn is_ref(value: &Value, name: &str) -> bool {
    match untag(value) {
        (Some(tag), inner) if tag == "Ref" => inner.as_str() == Some(name),
        _ => value.get("Ref").and_then(Value::as_str) == Some(name),
    }
}

fn resources_of_type<'a>(template: &'a Value, kind: &str) -> Vec<(&'a str, &'a Value)> {
    template["Resources"]
        .as_mapping()
        .expect("Resources")
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some(kind))
        .map(|(name, r)| (name.as_str().expect("name"), r))
        .collect()
}

fn resource<'a>(template: &'a Value, name: &str) -> &'a Value {
    let resource = &template["Resources"][name];
    assert!(!resource.is_null(), "no resource {name}");
    resource
}

fn parameter_default<'a>(template: &'a Value, name: &str) -> &'a Value {
    &template["Parameters"][name]["Default"]
}

/// Every IAM statement in the template, `!If` branches included.
fn statements(value: &Value, out: &mut Vec<Value>) {
    let (_, value) = untag(value);
    match value {
        Value::Mapping(map) => {
            if let Some(statement) = map.get("Statement") {
                let (_, statement) = untag(statement);
                match statement {
                    Value::Sequence(items) => {
                        for item in items {
                            collect_statement(item, out);
                        }
                    }
                    other => collect_statement(other, out),
                }
            }
            for (_, v) in map {
                statements(v, out);
            }
        }
        Value::Sequence(items) => items.iter().for_each(|v| statements(v, out)),
        _ => {}
    }
}

fn collect_statement(item: &Value, out: &mut Vec<Value>) {
    match untag(item) {
        (Some(tag), Value::Sequence(branches)) if tag == "If" => {
            for branch in &branches[1..] {
                if !is_ref(branch, "AWS::NoValue") {
                    collect_statement(branch, out);
                }
            }
        }
        (_, value) => out.push(value.clone()),
    }
}

fn strings(value: &Value) -> Vec<String> {
    match untag(value).1 {
        Value::String(s) => vec![s.clone()],
        Value::Sequence(items) => items.iter().flat_map(strings).collect(),
        _ => vec![],
    }
}

#[test]
fn connect_requires_iam_authorization_by_default() {
    let t = template();
    let connect = resource(&t, "ConnectRoute");
    assert_eq!(connect["Properties"]["RouteKey"], "$connect");
    assert!(is_ref(
        &connect["Properties"]["AuthorizationType"],
        "ConnectAuthorization"
    ));
    assert_eq!(parameter_default(&t, "ConnectAuthorization"), "AWS_IAM");
}

#[test]
fn no_policy_grants_a_wildcard_action() {
    let t = template();
    let mut all = Vec::new();
    statements(&t["Resources"], &mut all);
    assert!(all.len() >= 5, "found {} statements", all.len());
    // In a key policy, `Resource: "*"` is the key itself.
    let mut key_policies = Vec::new();
    for (_, key) in resources_of_type(&t, "AWS::KMS::Key") {
        statements(&key["Properties"]["KeyPolicy"], &mut key_policies);
    }
    for statement in &all {
        if key_policies.contains(statement) {
            for action in strings(&statement["Action"]) {
                assert!(!action.contains('*'), "wildcard action {action}");
            }
            continue;
        }
        assert!(
            statement.get("NotAction").is_none(),
            "NotAction in {statement:?}"
        );
        for action in strings(&statement["Action"]) {
            assert!(!action.contains('*'), "wildcard action {action}");
        }
        // A "*" resource only for actions that have no resource-level permissions.
        if strings(&statement["Resource"]).iter().any(|r| r == "*") {
            for action in strings(&statement["Action"]) {
                assert!(
                    ["sts:GetCallerIdentity", "cloudwatch:PutMetricData"]
                        .contains(&action.as_str()),
                    "{action} on every resource"
                );
            }
        }
    }
}

#[test]
fn put_metric_data_is_limited_to_the_namespace() {
    let t = template();
    let mut all = Vec::new();
    statements(&t["Resources"], &mut all);
    let put: Vec<&Value> = all
        .iter()
        .filter(|s| strings(&s["Action"]).contains(&"cloudwatch:PutMetricData".to_owned()))
        .collect();
    assert_eq!(put.len(), 1);
    let namespace = &put[0]["Condition"]["StringEquals"]["cloudwatch:namespace"];
    assert!(is_ref(namespace, "MetricsNamespace"), "{namespace:?}");
    assert!(
        is_ref(
            &resource(&t, "Function")["Properties"]["Environment"]["Variables"]["METRICS_NAMESPACE"],
            "MetricsNamespace"
        ),
        "the function publishes to the namespace it may publish to"
    );
}

#[test]
fn assume_role_only_on_the_listed_roles() {
    let t = template();
    let mut all = Vec::new();
    statements(&t["Resources"], &mut all);
    let lambda_trust = all
        .iter()
        .filter(|s| s["Principal"]["Service"] == "lambda.amazonaws.com")
        .count();
    assert_eq!(lambda_trust, 1);
    for statement in all
        .iter()
        .filter(|s| strings(&s["Action"]).contains(&"sts:AssumeRole".to_owned()))
    {
        if statement.get("Principal").is_some() {
            continue; // a trust policy
        }
        assert!(
            is_ref(&statement["Resource"], "AssumableRoleArns"),
            "{statement:?}"
        );
    }
}

#[test]
fn replies_reach_the_client_through_a_route_response() {
    let t = template();
    let default = resource(&t, "DefaultRoute");
    assert_eq!(default["Properties"]["RouteKey"], "$default");
    assert_eq!(
        default["Properties"]["RouteResponseSelectionExpression"],
        "$default"
    );
    let responses = resources_of_type(&t, "AWS::ApiGatewayV2::RouteResponse");
    assert_eq!(responses.len(), 1);
    let response = responses[0].1;
    assert!(is_ref(&response["Properties"]["RouteId"], "DefaultRoute"));
    assert_eq!(response["Properties"]["RouteResponseKey"], "$default");
    let api = resource(&t, "WebSocketApi");
    assert_eq!(api["Properties"]["ProtocolType"], "WEBSOCKET");
    let routes: Vec<&str> = resources_of_type(&t, "AWS::ApiGatewayV2::Route")
        .iter()
        .filter(|(_, r)| is_ref(&r["Properties"]["ApiId"], "WebSocketApi"))
        .map(|(_, r)| r["Properties"]["RouteKey"].as_str().unwrap())
        .collect();
    assert_eq!(routes.len(), 3);
    for key in ["$connect", "$disconnect", "$default"] {
        assert!(routes.contains(&key), "{key}");
    }
    let integration = resource(&t, "Integration");
    assert_eq!(integration["Properties"]["IntegrationType"], "AWS_PROXY");
}

#[test]
fn stage_and_connect_route_are_throttled() {
    let t = template();
    let stage = &resource(&t, "Stage")["Properties"];
    assert_eq!(stage["AutoDeploy"], true);
    let defaults = &stage["DefaultRouteSettings"];
    assert!(is_ref(
        &defaults["ThrottlingRateLimit"],
        "ThrottlingRateLimit"
    ));
    assert!(is_ref(
        &defaults["ThrottlingBurstLimit"],
        "ThrottlingBurstLimit"
    ));
    let connect = &stage["RouteSettings"]["$connect"];
    assert!(is_ref(
        &connect["ThrottlingRateLimit"],
        "ConnectThrottlingRateLimit"
    ));
    assert!(is_ref(
        &connect["ThrottlingBurstLimit"],
        "ConnectThrottlingBurstLimit"
    ));
    assert_eq!(
        defaults["DataTraceEnabled"], false,
        "no message bodies in execution logs"
    );
}

#[test]
fn every_log_group_has_a_retention_and_the_function_logs_json() {
    let t = template();
    let groups = resources_of_type(&t, "AWS::Logs::LogGroup");
    assert!(groups.len() >= 2);
    for (name, group) in groups {
        assert!(
            is_ref(&group["Properties"]["RetentionInDays"], "LogRetentionDays"),
            "{name}"
        );
    }
    let logging = &resource(&t, "Function")["Properties"]["LoggingConfig"];
    assert_eq!(logging["LogFormat"], "JSON");
    assert!(is_ref(&logging["LogGroup"], "FunctionLogGroup"));
    let (_, access) = untag(&resource(&t, "Stage")["Properties"]["AccessLogSettings"]);
    let text = format!("{access:?}");
    assert!(
        text.contains("ApiAccessLogGroup") && text.contains("$context.connectionId"),
        "access logging"
    );
}

#[test]
fn the_function_is_this_binary() {
    let t = template();
    let function = resource(&t, "Function");
    let properties = &function["Properties"];
    assert_eq!(function["Type"], "AWS::Serverless::Function");
    assert_eq!(properties["Runtime"], "provided.al2023");
    assert_eq!(properties["Handler"], "bootstrap");
    assert!(is_ref(&properties["Architectures"][0], "Architecture"));
    assert_eq!(parameter_default(&t, "Architecture"), "arm64");
    assert_eq!(function["Metadata"]["BuildMethod"], "rust-cargolambda");
    assert_eq!(
        function["Metadata"]["BuildProperties"]["Binary"],
        env!("CARGO_PKG_NAME")
    );
    // Every variable the template sets is one the code reads.
    let config =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/config.rs")).unwrap();
    for (name, _) in properties["Environment"]["Variables"].as_mapping().unwrap() {
        let name = name.as_str().unwrap();
        let read_by_sdk = name == "AWS_CONFIG_FILE";
        assert!(
            read_by_sdk || config.contains(&format!("\"{name}\"")),
            "{name} is not read by src/config.rs"
        );
    }
    // Timeout covers the longest tool call: 2 x operation + connect time-outs.
    let number = |n: &str| parameter_default(&t, n).as_f64().unwrap();
    assert!(
        number("Timeout") * 1000.0
            > 2.0 * number("OperationTimeoutMs") + number("ConnectTimeoutMs")
    );
    assert!(
        number("Timeout") <= 29.0,
        "API Gateway's integration time-out"
    );
}

#[test]
fn dashboard_alarms_and_outputs() {
    let t = template();
    let dashboard = format!(
        "{:?}",
        resource(&t, "Dashboard")["Properties"]["DashboardBody"]
    );
    for needle in [
        "ToolInvocations",
        "ToolErrors",
        "ErrorType",
        "p50",
        "p99",
        "ClientError",
        "Throttles",
        "ColdStart",
    ] {
        assert!(dashboard.contains(needle), "dashboard lacks {needle}");
    }
    let alarms = resources_of_type(&t, "AWS::CloudWatch::Alarm");
    assert_eq!(alarms.len(), 3);
    for (name, alarm) in &alarms {
        let alarm_name = format!("{:?}", alarm["Properties"]["AlarmName"]);
        assert!(
            alarm_name.contains("NamePrefix"),
            "{name}'s name is not parameterised"
        );
    }
    let outputs = &t["Outputs"];
    assert!(format!("{:?}", outputs["WebSocketUrl"]["Value"]).contains("wss://"));
    assert!(!outputs["FunctionName"].is_null());
    assert!(!outputs["DashboardUrl"].is_null());
}

#[test]
fn profiles_ship_in_a_layer_read_through_aws_config_file() {
    let t = template();
    let layer = resource(&t, "ProfilesLayer");
    assert_eq!(layer["Condition"], "HasProfiles");
    let content = layer["Properties"]["ContentUri"].as_str().unwrap();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(content)
        .join("profiles");
    assert!(dir.join("example-config").is_file(), "{}", dir.display());
    let config_file = format!(
        "{:?}",
        resource(&t, "Function")["Properties"]["Environment"]["Variables"]["AWS_CONFIG_FILE"]
    );
    assert!(config_file.contains("/opt/profiles/"), "{config_file}");
}

#[test]
fn sessions_live_in_an_encrypted_expiring_table_with_least_privilege() {
    let t = template();
    let table = resource(&t, "SessionTable");
    assert_eq!(table["Type"], "AWS::DynamoDB::Table");
    let properties = &table["Properties"];
    assert_eq!(properties["BillingMode"], "PAY_PER_REQUEST");
    assert_eq!(properties["KeySchema"][0]["AttributeName"], "pk");
    assert_eq!(
        properties["TimeToLiveSpecification"]["AttributeName"],
        "expires_at"
    );
    assert_eq!(properties["TimeToLiveSpecification"]["Enabled"], true);
    assert_eq!(properties["SSESpecification"]["SSEEnabled"], true);
    // Retained or deleted with the stack, as a parameter says.
    assert!(is_ref(&table["DeletionPolicy"], "SessionTableRetention"));
    assert!(is_ref(
        &table["UpdateReplacePolicy"],
        "SessionTableRetention"
    ));
    assert_eq!(
        strings(&t["Parameters"]["SessionTableRetention"]["AllowedValues"]),
        ["Delete", "Retain"]
    );

    // The role: the four item actions on that table, nothing else of DynamoDB, no KMS.
    let role = resource(&t, "FunctionRole");
    let mut role_statements = Vec::new();
    statements(&role["Properties"], &mut role_statements);
    let dynamodb: Vec<&Value> = role_statements
        .iter()
        .filter(|s| {
            strings(&s["Action"])
                .iter()
                .any(|a| a.starts_with("dynamodb:"))
        })
        .collect();
    assert_eq!(dynamodb.len(), 1);
    assert_eq!(
        strings(&dynamodb[0]["Action"]),
        [
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:DeleteItem"
        ]
    );
    let (tag, target) = untag(&dynamodb[0]["Resource"]);
    assert_eq!(tag.as_deref(), Some("GetAtt"));
    assert_eq!(target.as_str(), Some("SessionTable.Arn"));
    assert!(
        !role_statements
            .iter()
            .any(|s| strings(&s["Action"]).iter().any(|a| a.starts_with("kms:"))),
        "the key's own policy grants its use"
    );

    // The key: rotated; used only by the function's role, only for data keys, only with the
    // function's encryption context; administered by the account, which cannot use it.
    let key = resource(&t, "SessionKey");
    assert_eq!(key["Properties"]["EnableKeyRotation"], true);
    let mut key_statements = Vec::new();
    statements(&key["Properties"]["KeyPolicy"], &mut key_statements);
    let crypto = [
        "kms:Encrypt",
        "kms:Decrypt",
        "kms:GenerateDataKey",
        "kms:ReEncrypt",
    ];
    for statement in &key_statements {
        let actions = strings(&statement["Action"]);
        if actions
            .iter()
            .any(|a| crypto.iter().any(|c| a.starts_with(c)))
        {
            assert_eq!(actions, ["kms:GenerateDataKey", "kms:Decrypt"]);
            let (tag, principal) = untag(&statement["Principal"]["AWS"]);
            assert_eq!(tag.as_deref(), Some("GetAtt"));
            assert_eq!(principal.as_str(), Some("FunctionRole.Arn"));
            let context = &statement["Condition"]["StringEquals"];
            assert_eq!(context["kms:EncryptionContext:service"], "mcp-aws-tools");
            assert!(is_ref(
                &context["kms:EncryptionContext:function"],
                "NamePrefix"
            ));
        }
    }
    assert_eq!(
        key_statements
            .iter()
            .filter(|s| strings(&s["Action"]).contains(&"kms:Decrypt".to_owned()))
            .count(),
        1
    );

    // The function finds both, and its name is the encryption context's.
    let function = resource(&t, "Function");
    let variables = &function["Properties"]["Environment"]["Variables"];
    assert!(is_ref(&variables["SESSION_TABLE"], "SessionTable"));
    let (tag, target) = untag(&variables["KMS_KEY_ID"]);
    assert_eq!(tag.as_deref(), Some("GetAtt"));
    assert_eq!(target.as_str(), Some("SessionKey.Arn"));
    assert!(is_ref(
        &function["Properties"]["FunctionName"],
        "NamePrefix"
    ));
}

/// Streamable HTTP: `ANY /mcp` on an HTTP API with AWS_IAM authorization, payload 2.0 to the
/// same function, throttled, invocable by that API only; or a Function URL with AWS_IAM; the
/// URL in the outputs either way.
#[test]
fn streamable_http_is_iam_authorized_and_its_url_an_output() {
    let t = template();
    assert_eq!(parameter_default(&t, "HttpEndpoint"), "HttpApi");
    let api = resource(&t, "HttpApi");
    assert_eq!(api["Properties"]["ProtocolType"], "HTTP");
    assert_eq!(api["Condition"], "UseHttpApi");
    let route = resource(&t, "HttpMcpRoute");
    assert_eq!(route["Properties"]["RouteKey"], "ANY /mcp");
    assert_eq!(route["Properties"]["AuthorizationType"], "AWS_IAM");
    assert!(format!("{:?}", route["Properties"]["Target"]).contains("HttpIntegration"));
    let integration = resource(&t, "HttpIntegration");
    assert_eq!(integration["Properties"]["PayloadFormatVersion"], "2.0");
    assert_eq!(integration["Properties"]["IntegrationType"], "AWS_PROXY");
    assert!(format!("{:?}", integration["Properties"]["IntegrationUri"]).contains("Function"));
    let stage = resource(&t, "HttpStage");
    assert_eq!(stage["Properties"]["StageName"], "$default");
    assert!(is_ref(
        &stage["Properties"]["DefaultRouteSettings"]["ThrottlingRateLimit"],
        "HttpThrottlingRateLimit"
    ));
    let permission = resource(&t, "HttpInvokePermission");
    let source = format!("{:?}", permission["Properties"]["SourceArn"]);
    assert!(source.contains("${HttpApi}/*/*/mcp"), "{source}");

    let url = resource(&t, "FunctionUrl");
    assert_eq!(url["Condition"], "UseFunctionUrl");
    assert_eq!(url["Properties"]["AuthType"], "AWS_IAM");

    let outputs = &t["Outputs"];
    let mcp_url = format!("{:?}", outputs["McpUrl"]["Value"]);
    assert!(
        mcp_url.contains("execute-api") && mcp_url.contains("/mcp"),
        "{mcp_url}"
    );
    assert!(mcp_url.contains("FunctionUrl.FunctionUrl"), "{mcp_url}");
    assert!(!outputs["McpInvokeResourceArn"].is_null());
    // The WebSocket API is still there, unchanged.
    assert_eq!(
        resource(&t, "WebSocketApi")["Properties"]["ProtocolType"],
        "WEBSOCKET"
    );
}

/// Text built with `!Join`, `!If` and `!Sub` (its one-string form), for one value of the
/// template's conditions: each `${Name}` becomes `<Name>`, and the names are returned.
fn text_of(value: &Value, holds: &dyn Fn(&str) -> bool, names: &mut Vec<String>) -> String {
    match untag(value) {
        (Some(tag), Value::Sequence(items)) if tag == "Join" => {
            let separator = items[0].as_str().expect("separator");
            let parts: Vec<String> = items[1]
                .as_sequence()
                .expect("parts")
                .iter()
                .map(|part| text_of(part, holds, names))
                .collect();
            parts.join(separator)
        }
        (Some(tag), Value::Sequence(items)) if tag == "If" => {
            let branch = if holds(items[0].as_str().expect("condition")) {
                &items[1]
            } else {
                &items[2]
            };
            text_of(branch, holds, names)
        }
        (Some(tag), Value::String(text)) if tag == "Sub" => {
            let mut out = String::new();
            let mut rest = text.as_str();
            while let Some(at) = rest.find("${") {
                out.push_str(&rest[..at]);
                let end = rest[at..].find('}').expect("closed ${") + at;
                let name = &rest[at + 2..end];
                names.push(name.to_owned());
                out.push_str(&format!("<{name}>"));
                rest = &rest[end + 1..];
            }
            out + rest
        }
        (None, Value::String(text)) => text.clone(),
        other => panic!("not text: {other:?}"),
    }
}

/// The dashboard is JSON whichever way the stack serves Streamable HTTP, its widgets do not
/// overlap, and its Streamable HTTP row shows that endpoint's requests, latency and 4xx: what
/// its refused requests are (4xx less the function's own `HttpClientErrors`, as the alarm
/// counts them), from the endpoint the stack has, never from one it left out.
#[test]
fn the_dashboard_shows_the_streamable_http_endpoint_the_stack_has() {
    let t = template();
    let body = &resource(&t, "Dashboard")["Properties"]["DashboardBody"];
    for (endpoint, namespace, four_xx, present, absent) in [
        ("HttpApi", "AWS/ApiGateway", "4xx", "HttpApi", "FunctionUrl"),
        (
            "FunctionUrl",
            "AWS/Lambda",
            "Url4xxCount",
            "Function",
            "HttpApi",
        ),
    ] {
        let holds = |condition: &str| match condition {
            "UseHttpApi" => endpoint == "HttpApi",
            other => panic!("the dashboard depends on {other}"),
        };
        let mut names = Vec::new();
        let text = text_of(body, &holds, &mut names);
        for name in &names {
            let known = name.starts_with("AWS::")
                || !t["Resources"][name.as_str()].is_null()
                || !t["Parameters"][name.as_str()].is_null();
            assert!(
                known,
                "{endpoint}: ${{{name}}} is neither a resource nor a parameter"
            );
        }
        assert!(
            !names.iter().any(|name| name == absent),
            "{endpoint}: the dashboard names {absent}, which this stack does not create"
        );
        let dashboard: serde_json::Value = serde_json::from_str(&text)
            .unwrap_or_else(|err| panic!("{endpoint}: the dashboard is not JSON ({err}):\n{text}"));
        let widgets = dashboard["widgets"].as_array().expect("widgets");
        let cells = |w: &serde_json::Value| {
            let n = |k: &str| w[k].as_u64().expect("position");
            let (x, y, height) = (n("x"), n("y"), n("height"));
            (x..x + n("width"))
                .flat_map(|x| (y..y + height).map(move |y| (x, y)))
                .collect::<Vec<_>>()
        };
        let mut taken = std::collections::HashSet::new();
        for widget in widgets {
            for cell in cells(widget) {
                assert!(
                    cell.0 < 24,
                    "{endpoint}: wider than the dashboard: {widget}"
                );
                assert!(
                    taken.insert(cell),
                    "{endpoint}: widgets overlap at {cell:?}"
                );
            }
        }
        let http: Vec<&serde_json::Value> = widgets
            .iter()
            .filter(|w| {
                w["properties"]["title"]
                    .as_str()
                    .unwrap()
                    .contains("Streamable HTTP")
            })
            .collect();
        assert_eq!(http.len(), 3, "{endpoint}");
        let lines: Vec<&Vec<serde_json::Value>> = http
            .iter()
            .flat_map(|w| w["properties"]["metrics"].as_array().unwrap())
            .map(|line| line.as_array().unwrap())
            .collect();
        let of_endpoint = format!("<{present}>");
        for metric in ["requests", "5xx", "latency", four_xx] {
            let name = match (metric, namespace) {
                ("requests", "AWS/ApiGateway") => "Count",
                ("requests", _) => "UrlRequestCount",
                ("5xx", "AWS/ApiGateway") => "5xx",
                ("5xx", _) => "Url5xxCount",
                ("latency", "AWS/ApiGateway") => "Latency",
                ("latency", _) => "UrlRequestLatency",
                (other, _) => other,
            };
            assert!(
                lines.iter().any(|line| line[0] == namespace
                    && line.get(1).and_then(|v| v.as_str()) == Some(name)
                    && line.contains(&serde_json::json!(of_endpoint))),
                "{endpoint}: no {namespace} {name} of {present}"
            );
        }
        let four_xx_widget = http
            .iter()
            .find(|w| w["properties"]["title"].as_str().unwrap().contains("4xx"))
            .expect("a 4xx widget");
        let metrics = four_xx_widget["properties"]["metrics"].as_array().unwrap();
        let id_of = |name: &str| {
            metrics
                .iter()
                .map(|line| line.as_array().unwrap())
                .find(|line| line.get(1).and_then(|v| v.as_str()) == Some(name))
                .and_then(|line| line.last().unwrap()["id"].as_str())
                .unwrap_or_else(|| panic!("{endpoint}: no id for {name}"))
                .to_owned()
        };
        let function = metrics
            .iter()
            .map(|line| line.as_array().unwrap())
            .find(|line| {
                line.get(1).and_then(|v| v.as_str())
                    == Some(mcp_aws_tools::metrics::name::HTTP_CLIENT_ERRORS)
            })
            .expect("HttpClientErrors");
        assert_eq!(function[0], "<MetricsNamespace>");
        assert_eq!(function[2], "Service");
        assert_eq!(function[3], mcp_aws_tools::metrics::SERVICE);
        let expression = format!(
            "FILL({}, 0) - FILL({}, 0)",
            id_of(four_xx),
            id_of(mcp_aws_tools::metrics::name::HTTP_CLIENT_ERRORS)
        );
        assert!(
            metrics
                .iter()
                .any(|line| line[0]["expression"] == expression.as_str()),
            "{endpoint}: no {expression}"
        );
    }
}

/// The HTTP API's alarm counts what API Gateway refused itself: its `4xx` less the 4xx the
/// function answered (`HttpClientErrors`, which the function publishes under the stack's
/// namespace), so that the 405 every MCP client's GET for a stream gets raises no alarm.
#[test]
fn the_http_alarm_counts_only_what_api_gateway_refused() {
    let t = template();
    let alarm = &resource(&t, "HttpApiErrorAlarm")["Properties"];
    assert!(
        alarm.get("MetricName").is_none(),
        "one metric alone: {alarm:?}"
    );
    let metrics = alarm["Metrics"].as_sequence().unwrap();
    let by_id = |id: &str| {
        metrics
            .iter()
            .find(|m| m["Id"] == id)
            .unwrap_or_else(|| panic!("no metric {id}: {alarm:?}"))
    };
    let returned: Vec<_> = metrics.iter().filter(|m| m["ReturnData"] == true).collect();
    assert_eq!(returned.len(), 1);
    assert_eq!(
        returned[0]["Expression"],
        "FILL(gateway, 0) - FILL(function, 0)"
    );
    let gateway = &by_id("gateway")["MetricStat"];
    assert_eq!(gateway["Metric"]["Namespace"], "AWS/ApiGateway");
    assert_eq!(gateway["Metric"]["MetricName"], "4xx");
    assert!(is_ref(
        &gateway["Metric"]["Dimensions"][0]["Value"],
        "HttpApi"
    ));
    let function = &by_id("function")["MetricStat"];
    assert!(is_ref(&function["Metric"]["Namespace"], "MetricsNamespace"));
    assert_eq!(
        function["Metric"]["MetricName"],
        mcp_aws_tools::metrics::name::HTTP_CLIENT_ERRORS
    );
    let dimensions = function["Metric"]["Dimensions"].as_sequence().unwrap();
    assert_eq!(dimensions.len(), 1);
    assert_eq!(dimensions[0]["Name"], "Service");
    assert_eq!(dimensions[0]["Value"], mcp_aws_tools::metrics::SERVICE);
    for stat in [gateway, function] {
        assert_eq!(stat["Stat"], "Sum");
        assert_eq!(stat["Period"], 300);
    }
    assert!(is_ref(&alarm["Threshold"], "AlarmThrottleThreshold"));
}
