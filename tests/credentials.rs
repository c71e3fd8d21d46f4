//! Where credentials come from and what happens when AWS refuses them or does not answer:
//! named profiles that assume roles, invalid credentials refused by moto's IAM
//! authentication, no credentials at all, and dead or silent endpoints.

mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Moto, Server, write_file};

/// Keys for the `base` profile where the tests do not care whose they are.
const BASE_KEYS: (&str, &str) = (
    "AKIABASEPROFILE00001",
    "baseProfileSecret00000000000000000000000",
);

const GENEROUS_LIMITS: [(&str, &str); 2] = [
    ("RATE_LIMIT_BURST", "1000"),
    ("CREDENTIAL_RATE_LIMIT_BURST", "1000"),
];

fn with_limits<'a>(env: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut all = env.to_vec();
    all.extend(GENEROUS_LIMITS);
    all
}

/// A home whose config names `base` (static keys), `deploy` (assumes moto's role from `base`),
/// `ci` (assumes it from the environment) and `broken` (a source profile that does not exist).
fn home_with_profiles(moto: &Moto, base_keys: (&str, &str)) -> std::path::PathBuf {
    let home = support::temp_dir("profiles-home");
    write_file(
        &home.join(".aws/credentials"),
        &format!(
            "[base]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            base_keys.0, base_keys.1
        ),
    );
    write_file(
        &home.join(".aws/config"),
        &format!(
            "[profile base]\nregion = us-east-2\n\n\
             [profile deploy]\nrole_arn = {role}\nsource_profile = base\nregion = eu-west-1\n\n\
             [profile ci]\nrole_arn = {role}\ncredential_source = Environment\n\n\
             [profile broken]\nrole_arn = {role}\nsource_profile = missing\n",
            role = moto.role_arn
        ),
    );
    home
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_profiles_assume_roles() {
    let moto = Moto::start();
    let (key_id, secret) = support::fake_keys("base");
    let home = home_with_profiles(&moto, (&key_id, &secret));
    let server = Server::start_in(
        home,
        &with_limits(&[
            ("AWS_ENDPOINT_URL", &moto.url),
            ("AWS_ACCESS_KEY_ID", "AKIAENVIRONMENT00001"),
            (
                "AWS_SECRET_ACCESS_KEY",
                "environmentSecret000000000000000000000000",
            ),
        ]),
    );
    let mut ws = server.connect().await;

    let info = ws
        .call_tool("aws_get_account_info", json!({"profile": "deploy"}))
        .await;
    assert_eq!(info["isError"], false, "{info}");
    let body = &info["structuredContent"];
    assert!(
        body["arn"]
            .as_str()
            .unwrap()
            .contains(":assumed-role/deploy/"),
        "{body}"
    );
    assert_eq!(body["credentials_source"], "aws_config_profile:deploy");
    assert_eq!(body["profile"], "deploy");
    assert_eq!(
        body["region"], "eu-west-1",
        "the profile's region when the environment names none"
    );

    let creds = ws
        .envelope(
            "aws/get-credentials",
            json!({"profile": "deploy", "include_session_token": true}),
        )
        .await;
    let shown = &creds["result"]["credentials"];
    assert_eq!(shown["has_session_token"], true);
    assert!(shown["access_key_id"].as_str().unwrap().ends_with("..."));
    assert!(shown["session_token"].as_str().unwrap().ends_with("..."));
    assert!(shown["expiration"].is_string());

    // The assumed credentials are kept: the second call is answered from the identity cache.
    let again = ws
        .call_tool("aws_get_account_info", json!({"profile": "deploy"}))
        .await;
    assert_eq!(again["structuredContent"]["cached"], true);
    let valid = ws
        .call_tool("aws_validate_credentials", json!({"profile": "deploy"}))
        .await;
    assert_eq!(valid["structuredContent"]["valid"], true);

    // credential_source = Environment: the role is assumed with the environment's keys.
    let ci = ws
        .call_tool("aws_get_account_info", json!({"profile": "ci"}))
        .await;
    assert!(
        ci["structuredContent"]["arn"]
            .as_str()
            .unwrap()
            .contains(":assumed-role/deploy/"),
        "{ci}"
    );

    let broken = ws
        .call_tool("aws_get_account_info", json!({"profile": "broken"}))
        .await;
    assert_eq!(broken["isError"], true);
    assert_eq!(
        broken["structuredContent"]["error"], "no_credentials",
        "{broken}"
    );
    let message = broken["structuredContent"]["message"].as_str().unwrap();
    assert!(
        message.contains("profile 'broken'") && message.contains("missing"),
        "{message}"
    );

    let unknown = ws
        .call_tool("aws_get_account_info", json!({"profile": "nope"}))
        .await;
    assert_eq!(unknown["structuredContent"]["error"], "validation_error");
    assert_eq!(unknown["structuredContent"]["field"], "profile");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_profile_selects_the_default_chain_profile() {
    let moto = Moto::start();
    let home = home_with_profiles(&moto, BASE_KEYS);
    let server = Server::start_in(
        home,
        &with_limits(&[("AWS_ENDPOINT_URL", &moto.url), ("AWS_PROFILE", "base")]),
    );
    let mut ws = server.connect().await;
    let creds = ws.call_tool("aws_get_credentials", json!({})).await;
    let body = &creds["structuredContent"];
    assert_eq!(
        body["metadata"]["credentials_source"],
        "aws_config_profile:base"
    );
    assert_eq!(body["credentials"]["profile"], "base");
    assert_eq!(body["credentials"]["access_key_id"], "AKIABASEPR...");
    assert_eq!(body["credentials"]["region"], "us-east-2");
    assert_eq!(body["environment_variables"]["AWS_PROFILE"], "base");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lambda_execution_role_is_named() {
    let moto = Moto::start();
    let server = Server::start(&with_limits(&[
        ("AWS_ENDPOINT_URL", &moto.url),
        ("AWS_LAMBDA_FUNCTION_NAME", "mcp-aws-tools"),
        ("AWS_ACCESS_KEY_ID", "ASIALAMBDAROLE000001"),
        (
            "AWS_SECRET_ACCESS_KEY",
            "lambdaRoleSecret000000000000000000000000",
        ),
        (
            "AWS_SESSION_TOKEN",
            "IQoJb3JpZ2luX2VjELambdaSessionToken0000000000",
        ),
        ("AWS_REGION", "eu-north-1"),
    ]));
    let mut ws = server.connect().await;
    let creds = ws.envelope("aws/get-credentials", json!({})).await;
    assert_eq!(
        creds["result"]["metadata"]["credentials_source"],
        "lambda_execution_role"
    );
    assert_eq!(creds["result"]["credentials"]["region"], "eu-north-1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_credentials_anywhere() {
    let moto = Moto::start();
    let server = Server::start(&with_limits(&[("AWS_ENDPOINT_URL", &moto.url)]));
    let mut ws = server.connect().await;
    for tool in [
        "aws_get_credentials",
        "aws_get_account_info",
        "aws_validate_credentials",
    ] {
        let result = ws.call_tool(tool, json!({})).await;
        assert_eq!(result["isError"], true, "{tool}");
        assert_eq!(
            result["structuredContent"],
            json!({"error": "no_credentials", "message": "AWS credentials not found"}),
            "{tool}"
        );
    }
    let reply = ws.envelope("aws/get-account-info", json!({})).await;
    assert_eq!(reply["message_type"], "ERROR");
    assert_eq!(reply["error_code"], "EXECUTION_FAILED");
    assert_eq!(reply["error_message"], "AWS credentials not found");
    assert_eq!(reply["details"]["error"], "no_credentials");
    // Listing profiles needs no credentials.
    let profiles = ws.call_tool("aws_list_profiles", json!({})).await;
    assert_eq!(profiles["isError"], false);
}

/// An instance metadata service that answers a token's request (`PUT`) with a token, or with
/// `token_status` when it is not 200, and everything else with `status` (and no body).
fn metadata_service(token_status: u16, status: u16) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    let reply = match (buf.starts_with(b"PUT "), token_status) {
                        (true, 200) => "HTTP/1.1 200 OK\r\nx-aws-ec2-metadata-token-ttl-seconds: 21600\r\ncontent-length: 5\r\n\r\ntoken".to_owned(),
                        (true, refused) => format!("HTTP/1.1 {refused} Refused\r\ncontent-length: 0\r\n\r\n"),
                        (false, _) => format!("HTTP/1.1 {status} Refused\r\ncontent-length: 0\r\n\r\n"),
                    };
                    if stream.write_all(reply.as_bytes()).is_err() {
                        break;
                    }
                }
            });
        }
    });
    port
}

/// On a host whose instance metadata service refuses this process (turned off, or refusing
/// this caller), every path says so as a credentials problem, whether the token's request or
/// the credentials' was refused, instead of an unexpected failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_instance_metadata_service_is_named() {
    for (token_status, status) in [(403, 403), (200, 403)] {
        let refused = if token_status == 200 {
            status
        } else {
            token_status
        };
        let message = format!(
            "the instance metadata service refused to give credentials (HTTP {refused}): it is turned off for this instance or refuses this caller"
        );
        let imds = format!(
            "http://127.0.0.1:{}",
            metadata_service(token_status, status)
        );
        let server = Server::start(&with_limits(&[
            ("AWS_EC2_METADATA_DISABLED", "false"),
            ("AWS_EC2_METADATA_SERVICE_ENDPOINT", &imds),
            ("AWS_REGION", "us-east-1"),
        ]));
        let mut ws = server.connect().await;
        for tool in [
            "aws_get_credentials",
            "aws_get_account_info",
            "aws_validate_credentials",
        ] {
            let result = ws.call_tool(tool, json!({})).await;
            assert_eq!(result["isError"], true, "{tool}");
            assert_eq!(
                result["structuredContent"],
                json!({"error": "no_credentials", "message": message}),
                "{tool}, token {token_status}, credentials {status}"
            );
        }
        let reply = ws.envelope("aws/get-credentials", json!({})).await;
        assert_eq!(reply["error_message"], message.as_str());
        assert_eq!(reply["details"]["error"], "no_credentials");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_credentials_are_refused_by_sts() {
    let moto = Moto::start_with_iam_auth();
    let (alice_key, alice_secret) = moto.user.clone().expect("IAM user");
    let (unknown_key, unknown_secret) = support::fake_keys("bogus");
    let home = home_with_profiles(&moto, (&unknown_key, &unknown_secret));
    let server = Server::start_in(
        home,
        &with_limits(&[
            ("AWS_ENDPOINT_URL", &moto.url),
            ("AWS_ACCESS_KEY_ID", &alice_key),
            ("AWS_SECRET_ACCESS_KEY", &alice_secret),
            ("AWS_REGION", "us-east-1"),
        ]),
    );
    let mut ws = server.connect().await;

    let valid = ws.call_tool("aws_validate_credentials", json!({})).await;
    assert_eq!(valid["isError"], false, "{valid}");
    assert_eq!(valid["structuredContent"]["valid"], true);
    assert!(
        valid["structuredContent"]["arn"]
            .as_str()
            .unwrap()
            .ends_with(":user/alice")
    );

    // Keys moto never issued.
    let mut other = server.connect().await;
    other
        .call_tool(
            "aws_set_environment",
            json!({"access_key_id": unknown_key, "secret_access_key": unknown_secret}),
        )
        .await;
    let invalid = other.call_tool("aws_validate_credentials", json!({})).await;
    assert_eq!(invalid["isError"], true);
    let body = &invalid["structuredContent"];
    assert_eq!(body["valid"], false);
    assert_eq!(body["error"], "invalid_credentials");
    assert_eq!(body["error_code"], "InvalidClientTokenId", "{body}");
    assert!(body["message"].as_str().unwrap().len() > 10);

    // The reference envelope answers valid: false as a RESPONSE, as the reference shows.
    let reply = other.envelope("aws/validate-credentials", json!({})).await;
    assert_eq!(reply["message_type"], "RESPONSE");
    assert_eq!(reply["result"]["valid"], false);
    assert_eq!(reply["result"]["error_code"], "InvalidClientTokenId");

    let info = other.call_tool("aws_get_account_info", json!({})).await;
    assert_eq!(info["isError"], true);
    assert_eq!(info["structuredContent"]["error"], "invalid_credentials");
    let reply = other.envelope("aws/get-account-info", json!({})).await;
    assert_eq!(reply["message_type"], "ERROR");
    assert_eq!(reply["details"]["error"], "invalid_credentials");

    // A real key id with the wrong secret.
    other
        .call_tool(
            "aws_set_environment",
            json!({"access_key_id": alice_key, "secret_access_key": "wrongSecretForAlice000000000000000000000"}),
        )
        .await;
    let wrong = other.call_tool("aws_validate_credentials", json!({})).await;
    assert_eq!(wrong["structuredContent"]["valid"], false);
    assert_eq!(
        wrong["structuredContent"]["error_code"], "SignatureDoesNotMatch",
        "{wrong}"
    );

    // A profile that assumes a role from refused keys: AssumeRole is refused.
    let assumed = ws
        .call_tool("aws_validate_credentials", json!({"profile": "deploy"}))
        .await;
    assert_eq!(assumed["structuredContent"]["valid"], false, "{assumed}");
    assert_eq!(
        assumed["structuredContent"]["error_code"],
        "InvalidClientTokenId"
    );
    // AWS's own message, the same whichever call AWS refused (AssumeRole here,
    // GetCallerIdentity above), never the chain of errors.
    assert_eq!(
        assumed["structuredContent"]["message"],
        invalid["structuredContent"]["message"]
    );
    assert_plain(assumed["structuredContent"]["message"].as_str().unwrap());
    let assumed = ws
        .call_tool("aws_get_account_info", json!({"profile": "deploy"}))
        .await;
    assert_eq!(
        assumed["structuredContent"]["error"], "invalid_credentials",
        "{assumed}"
    );
    assert_eq!(
        assumed["structuredContent"]["error_code"], info["structuredContent"]["error_code"],
        "the same refusal, the same code, on every path"
    );

    // The first connection still has the environment's valid keys.
    let still = ws.call_tool("aws_validate_credentials", json!({})).await;
    assert_eq!(still["structuredContent"]["valid"], true);
}

/// Accepts connections and never answers.
fn silent_endpoint() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            held.push(stream);
        }
    });
    port
}

/// An STS endpoint that keeps its connections open, as the real one does (moto closes each
/// after one answer): answers every GetCallerIdentity for account 111122223333 and counts
/// the connections it accepted and the requests it answered.
struct KeepAliveSts {
    port: u16,
    connections: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
}

impl KeepAliveSts {
    fn start() -> KeepAliveSts {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let (accepted, answered) = (connections.clone(), requests.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                accepted.fetch_add(1, Ordering::SeqCst);
                let answered = answered.clone();
                std::thread::spawn(move || Self::answer_all(stream, &answered));
            }
        });
        KeepAliveSts {
            port,
            connections,
            requests,
        }
    }

    /// Reads request after request (a head, then the body its content-length announces) and
    /// answers each, until the client hangs up.
    fn answer_all(mut stream: std::net::TcpStream, answered: &AtomicUsize) {
        let body = "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><GetCallerIdentityResult><Arn>arn:aws:iam::111122223333:user/kept</Arn><UserId>AIDAEXAMPLEKEPT</UserId><Account>111122223333</Account></GetCallerIdentityResult><ResponseMetadata><RequestId>k</RequestId></ResponseMetadata></GetCallerIdentityResponse>";
        let mut pending = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            let request_end = loop {
                if let Some(head) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                    let length = String::from_utf8_lossy(&pending[..head])
                        .to_ascii_lowercase()
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    if pending.len() >= head + 4 + length {
                        break head + 4 + length;
                    }
                }
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => pending.extend_from_slice(&buf[..n]),
                }
            };
            pending.drain(..request_end);
            answered.fetch_add(1, Ordering::SeqCst);
            let reply = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/xml\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            if stream.write_all(reply.as_bytes()).is_err() {
                return;
            }
        }
    }
}

/// Every AWS call of a warm process goes over the connection the first one opened, from every
/// client connection and for every set of credentials, when the endpoint keeps it open (with
/// real STS, each new connection is a TLS handshake of tens of milliseconds).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_calls_reuse_the_connection_to_the_endpoint() {
    let sts = KeepAliveSts::start();
    let endpoint = format!("http://127.0.0.1:{}", sts.port);
    let server = Server::start(&with_limits(&[
        ("AWS_ENDPOINT_URL_STS", &endpoint),
        ("AWS_ACCESS_KEY_ID", "AKIAKEEPALIVEEXAMPLE"),
        (
            "AWS_SECRET_ACCESS_KEY",
            "keepAliveSecret0000000000000000000000000",
        ),
        ("AWS_REGION", "us-east-1"),
    ]));
    let mut first = server.connect().await;
    for _ in 0..3 {
        let valid = first.call_tool("aws_validate_credentials", json!({})).await;
        assert_eq!(valid["structuredContent"]["valid"], true, "{valid}");
    }
    let info = first.call_tool("aws_get_account_info", json!({})).await;
    assert_eq!(
        info["structuredContent"]["account_id"], "111122223333",
        "{info}"
    );

    // Another client, with credentials of its own.
    let mut second = server.connect().await;
    let set = second
        .call_tool(
            "aws_set_environment",
            json!({
                "access_key_id": "AKIAKEEPALIVEOTHER01",
                "secret_access_key": "keepAliveOtherSecret00000000000000000000",
                "region": "us-east-1"
            }),
        )
        .await;
    assert_eq!(set["isError"], false, "{set}");
    let valid = second
        .call_tool("aws_validate_credentials", json!({}))
        .await;
    assert_eq!(valid["structuredContent"]["valid"], true, "{valid}");

    assert_eq!(sts.requests.load(Ordering::SeqCst), 5);
    assert_eq!(
        sts.connections.load(Ordering::SeqCst),
        1,
        "five STS calls, one connection"
    );
}

/// A message a client may see: one short sentence, no Rust type names or Debug dumps, no
/// endpoint address, no chain of causes.
fn assert_plain(message: &str) {
    for sign in [
        "Error {",
        "Error(",
        "::",
        "127.0.0.1",
        "ConnectorError",
        "DisplayErrorContext",
        "an error occurred while",
        "already taken",
    ] {
        assert!(!message.contains(sign), "{sign:?} in {message:?}");
    }
    assert!(!message.contains('\n'), "{message:?}");
    assert!(message.len() < 300, "{message:?}");
}

/// The parts of a failed call that name its cause: `error`, `error_code` and `message`.
fn cause_of(result: &Value) -> (Value, Value, String) {
    let body = &result["structuredContent"];
    assert_eq!(result["isError"], true, "{result}");
    let message = body["message"].as_str().unwrap_or_default().to_owned();
    assert_plain(&message);
    (body["error"].clone(), body["error_code"].clone(), message)
}

/// Each way in to an STS call: GetCallerIdentity with the environment's keys (get-account-info
/// and validate-credentials), and an AssumeRole for a profile.
const STS_PATHS: [(&str, &str); 4] = [
    ("aws_get_account_info", "{}"),
    ("aws_validate_credentials", "{}"),
    ("aws_get_account_info", r#"{"profile": "deploy"}"#),
    ("aws_get_credentials", r#"{"profile": "deploy"}"#),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_endpoint_is_one_cause_on_every_path() {
    let closed = support::closed_port();
    let endpoint = format!("http://127.0.0.1:{}", closed.port);
    let moto = Moto::start();
    let home = home_with_profiles(&moto, BASE_KEYS);
    let server = Server::start_in(
        home,
        &with_limits(&[
            ("AWS_ENDPOINT_URL", &endpoint),
            ("AWS_ACCESS_KEY_ID", "AKIADEADENDPOINT0001"),
            (
                "AWS_SECRET_ACCESS_KEY",
                "deadEndpointSecret0000000000000000000000",
            ),
            ("OPERATION_TIMEOUT_MS", "2000"),
            ("CONNECT_TIMEOUT_MS", "500"),
        ]),
    );
    let mut ws = server.connect().await;
    let mut causes = Vec::new();
    for (tool, arguments) in STS_PATHS {
        let arguments: Value = serde_json::from_str(arguments).unwrap();
        let result = ws.call_tool(tool, arguments).await;
        causes.push(cause_of(&result));
    }
    for cause in &causes {
        assert_eq!(
            cause,
            &(
                json!("client_error"),
                Value::Null,
                "AWS STS could not be reached".to_owned()
            )
        );
    }
}

/// AWS endpoints are checked against the roots compiled into the binary, which do not include
/// a private CA; `SSL_CERT_FILE` or `AWS_CA_BUNDLE` puts a bundle of one's own in their place,
/// as for a VPC endpoint or a TLS-inspecting proxy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_ca_is_trusted_through_its_bundle_only() {
    let moto = Moto::start();
    let front = support::TlsFront::start(moto.port);
    let ca_pem = front.ca_pem.display().to_string();
    let env = [
        ("AWS_ENDPOINT_URL_STS", front.url.as_str()),
        ("AWS_ACCESS_KEY_ID", "AKIAPRIVATECAEXAMPLE"),
        (
            "AWS_SECRET_ACCESS_KEY",
            "privateCaSecret0000000000000000000000000",
        ),
        ("AWS_REGION", "us-east-1"),
    ];
    let untrusted = Server::start(&with_limits(&env));
    let mut ws = untrusted.connect().await;
    for (tool, arguments) in &STS_PATHS[..2] {
        let arguments: Value = serde_json::from_str(arguments).unwrap();
        let result = ws.call_tool(tool, arguments).await;
        assert_eq!(
            cause_of(&result),
            (
                json!("client_error"),
                Value::Null,
                "AWS STS presented a certificate no trusted root vouches for; set AWS_CA_BUNDLE (or SSL_CERT_FILE) to the CA bundle of the endpoint or proxy".to_owned()
            )
        );
    }

    for variable in ["SSL_CERT_FILE", "AWS_CA_BUNDLE"] {
        let mut trusting_env = with_limits(&env);
        trusting_env.push((variable, &ca_pem));
        let trusting = Server::start(&trusting_env);
        let mut ws = trusting.connect().await;
        let info = ws.call_tool("aws_get_account_info", json!({})).await;
        assert_eq!(info["isError"], false, "{variable}: {info}");
        assert_eq!(info["structuredContent"]["account_id"], "123456789012");
        let valid = ws.call_tool("aws_validate_credentials", json!({})).await;
        assert_eq!(
            valid["structuredContent"]["valid"], true,
            "{variable}: {valid}"
        );
    }
}

/// Both deadlines of a call (the SDK's operation time-out, the tool call's own) end in the same
/// answer, whichever fires: the call timed out. No wall-clock window is asserted beyond the
/// tool call's deadline, with a margin of seconds for a loaded machine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_endpoint_is_one_cause_on_every_path() {
    let endpoint = format!("http://127.0.0.1:{}", silent_endpoint());
    let moto = Moto::start();
    let home = home_with_profiles(&moto, BASE_KEYS);
    let server = Server::start_in(
        home,
        &with_limits(&[
            ("AWS_ENDPOINT_URL", &endpoint),
            ("AWS_ACCESS_KEY_ID", "AKIASILENTENDPOINT01"),
            (
                "AWS_SECRET_ACCESS_KEY",
                "silentEndpointSecret00000000000000000000",
            ),
            ("OPERATION_TIMEOUT_MS", "1500"),
            ("CONNECT_TIMEOUT_MS", "500"),
        ]),
    );
    let deadline = Duration::from_millis(2 * 1500 + 500);
    let mut ws = server.connect().await;
    for (tool, arguments) in STS_PATHS {
        let arguments: Value = serde_json::from_str(arguments).unwrap();
        let started = Instant::now();
        let result = ws.call_tool(tool, arguments.clone()).await;
        let took = started.elapsed();
        let (error, code, message) = cause_of(&result);
        assert_eq!(error, "client_error", "{tool} {arguments}");
        assert_eq!(code, Value::Null, "{tool} {arguments}");
        assert!(
            message == "AWS STS did not answer within the time-out"
                || message == "AWS did not answer within the time-out",
            "{tool} {arguments}: {message}"
        );
        assert!(
            took < deadline + Duration::from_secs(10),
            "{tool} {arguments} took {took:?}, past its deadline"
        );
    }
    // The connection is still usable.
    assert_eq!(ws.rpc("ping", json!({})).await["result"], json!({}));
}

/// With these in the config, each must give the same clear, specific error every time, on every
/// connection, and never affect another profile.
fn home_with_broken_profiles(moto: &Moto) -> std::path::PathBuf {
    let home = home_with_profiles(moto, BASE_KEYS);
    let role = &moto.role_arn;
    let mut config = std::fs::read_to_string(home.join(".aws/config")).unwrap();
    config.push_str(&format!(
        "\n[profile badsource]\nrole_arn = {role}\nsource_profile = doesnotexist\n\
         [profile bogus]\nrole_arn = {role}\ncredential_source = Bogus\n\
         [profile process]\ncredential_process = /bin/echo never-run\n\
         [profile sso]\nsso_start_url = https://example.awsapps.com/start\nsso_region = us-east-1\nsso_account_id = 123456789012\nsso_role_name = Admin\n\
         [profile loop1]\nrole_arn = {role}\nsource_profile = loop2\n\
         [profile loop2]\nrole_arn = {role}\nsource_profile = loop1\n"
    ));
    write_file(&home.join(".aws/config"), &config);
    home
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_profile_gives_the_same_specific_error_every_time() {
    let moto = Moto::start();
    let server = Server::start_in(
        home_with_broken_profiles(&moto),
        &with_limits(&[("AWS_ENDPOINT_URL", &moto.url)]),
    );
    let expected = [
        (
            "badsource",
            "profile 'badsource' names source_profile 'doesnotexist', which is not defined in the AWS config files",
        ),
        (
            "bogus",
            "profile 'bogus' has credential_source 'Bogus'; it must be Environment, Ec2InstanceMetadata or EcsContainer",
        ),
        (
            "process",
            "profile 'process' uses credential_process, which this server does not support; use keys, a role or a credential_source",
        ),
        (
            "sso",
            "profile 'sso' uses AWS IAM Identity Center (SSO), which this server does not support; use keys, a role or a credential_source",
        ),
        (
            "loop1",
            "profile 'loop1' forms a source_profile loop: loop1 -> loop2 -> loop1",
        ),
    ];
    let mut first = server.connect().await;
    let mut second = server.connect().await;
    for round in 0..2 {
        for ws in [&mut first, &mut second] {
            for (profile, message) in expected {
                for tool in [
                    "aws_get_credentials",
                    "aws_get_account_info",
                    "aws_validate_credentials",
                ] {
                    let result = ws.call_tool(tool, json!({ "profile": profile })).await;
                    let (error, code, said) = cause_of(&result);
                    assert_eq!(error, "no_credentials", "round {round}: {tool} {profile}");
                    assert_eq!(code, Value::Null);
                    assert_eq!(said, message, "round {round}: {tool} {profile}");
                }
                // Other profiles are not affected.
                let good = ws
                    .call_tool("aws_get_account_info", json!({"profile": "deploy"}))
                    .await;
                assert_eq!(good["isError"], false, "after {profile}: {good}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_aws_profile_is_named_for_the_default_chain() {
    let moto = Moto::start();
    let server = Server::start_in(
        home_with_broken_profiles(&moto),
        &with_limits(&[("AWS_ENDPOINT_URL", &moto.url), ("AWS_PROFILE", "bogus")]),
    );
    let mut ws = server.connect().await;
    for _ in 0..2 {
        let result = ws.call_tool("aws_get_credentials", json!({})).await;
        let (error, _, message) = cause_of(&result);
        assert_eq!(error, "no_credentials");
        assert!(
            message.starts_with("profile 'bogus' has credential_source 'Bogus'"),
            "{message}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_config_file_is_logged_with_its_file_and_line() {
    let moto = Moto::start();
    let home = support::temp_dir("bad-config-home");
    write_file(
        &home.join(".aws/config"),
        "[profile fine]\nregion = us-east-1\nthis line is not a property\n",
    );
    let server = Server::start_in(
        home.clone(),
        &with_limits(&[("AWS_ENDPOINT_URL", &moto.url)]),
    );
    let mut ws = server.connect().await;
    let result = ws.call_tool("aws_list_profiles", json!({})).await;
    let (error, _, message) = cause_of(&result);
    assert_eq!(error, "execution_error");
    assert_eq!(message, "the AWS config files could not be read");
    let record = server.logs.wait_for("the config file warning", |r| {
        r["fields"]["message"] == "AWS config files could not be read"
    });
    let detail = record["fields"]["detail"].as_str().unwrap();
    assert!(detail.contains(".aws/config"), "{detail}");
    assert!(detail.contains("line 3"), "{detail}");
}
