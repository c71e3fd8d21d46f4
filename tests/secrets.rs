//! Canary secrets, set through set-environment, the process environment and a profile file,
//! never appear in any response or log line, whatever is asked and whatever fails, even with
//! logging at TRACE (which includes every level). Nor do access key ids (not even the ones AWS
//! issues for an assumed role), nor a profile's `credential_process` command or SSO start URL.

mod support;

use serde_json::json;
use support::{Moto, Server, Ws, write_file};

struct Canaries {
    command: String,
    start_url: String,
    env_secret: String,
    env_token: String,
    profile_secret: String,
    set_secret: String,
    set_token: String,
}

impl Canaries {
    fn new() -> Self {
        let pid = std::process::id();
        Canaries {
            command: format!("/usr/bin/canary-command-{pid}"),
            start_url: format!("https://canary-start-{pid}.awsapps.com/start"),
            env_secret: format!("CnryEnvSecret{pid:010}zQxWv7Kp3mNb8TyU2"),
            env_token: format!("CnryEnvSessionToken{pid:010}Lq8Rt5Zx2Vb7Nm4Kj9Hg6Fd3Sa1"),
            profile_secret: format!("CnryProfileSecret{pid:010}Hy6Tg5Rf4Ed3Ws2Qa1"),
            set_secret: format!("CnrySetSecret{pid:010}Pl0Ok9Ij8Uh7Yg6Tf5Rd"),
            set_token: format!("CnrySetSessionToken{pid:010}Mn3Bv4Cx5Za6Sd7Fg8Hj9Kl0"),
        }
    }

    /// Asserts that no 12-character piece of a secret appears in `text`. Session tokens may show
    /// their first 20 characters (masked form, on request), so only what follows is checked.
    fn assert_absent(&self, text: &str, what: &str) {
        let check = |secret: &str, shown_prefix: usize| {
            let chars: Vec<char> = secret.chars().collect();
            for start in 0..=chars.len() - 12 {
                if start + 12 <= shown_prefix {
                    continue;
                }
                let piece: String = chars[start..start + 12].iter().collect();
                if let Some(at) = text.find(&piece) {
                    let context: String =
                        text[at.saturating_sub(200)..(at + 100).min(text.len())].to_string();
                    panic!("a piece of a secret ({piece}) leaked into {what}: ...{context}...");
                }
            }
        };
        check(&self.env_secret, 0);
        check(&self.profile_secret, 0);
        check(&self.set_secret, 0);
        check(&self.env_token, 20);
        check(&self.set_token, 20);
        // Access key ids show their first 10 characters at most: no 12 in a row.
        for key_id in KEY_IDS {
            check(key_id, 0);
        }
        for text_from_config in [&self.command, &self.start_url] {
            assert!(
                !text.contains(text_from_config.as_str()),
                "{text_from_config} leaked into {what}"
            );
        }
    }
}

const KEY_IDS: [&str; 4] = [
    "AKIACANARYENVIRON001",
    "AKIACANARYPROFILE001",
    "AKIACANARYKEYID00001",
    "AKIACANARYSOURCE0001",
];

/// Any whole access key id (`AKIA...`, `ASIA...` for temporary credentials), including the
/// ones AWS issues that the test cannot know in advance.
fn assert_no_key_id(text: &str, what: &str) {
    let bytes = text.as_bytes();
    for at in 0..bytes.len().saturating_sub(20) {
        let candidate = &bytes[at..at + 20];
        let prefixed = candidate.starts_with(b"AKIA") || candidate.starts_with(b"ASIA");
        if prefixed
            && candidate[4..]
                .iter()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        {
            let found = String::from_utf8_lossy(candidate);
            panic!("an access key id ({found}) appears in {what}");
        }
    }
}

async fn exercise(ws: &mut Ws, canaries: &Canaries, transcript: &mut String) {
    let mut record = |value: serde_json::Value| transcript.push_str(&value.to_string());
    for (name, arguments) in [
        (
            "aws_get_credentials",
            json!({"include_session_token": true}),
        ),
        (
            "aws_get_credentials",
            json!({"profile": "canary", "include_session_token": true}),
        ),
        ("aws_get_account_info", json!({})),
        ("aws_validate_credentials", json!({})),
        ("aws_validate_credentials", json!({"profile": "canary"})),
        ("aws_list_profiles", json!({})),
        // Profiles whose configuration holds a command and a URL, and one that assumes a role
        // with valid keys, so that AWS issues temporary credentials.
        ("aws_get_credentials", json!({"profile": "process"})),
        ("aws_get_credentials", json!({"profile": "sso"})),
        ("aws_get_account_info", json!({"profile": "assumed"})),
        (
            "aws_get_credentials",
            json!({"profile": "assumed", "include_session_token": true}),
        ),
        // Secrets in the wrong places.
        (
            "aws_get_credentials",
            json!({"include_session_token": canaries.set_secret}),
        ),
        (
            "aws_get_credentials",
            json!({"profile": canaries.set_secret}),
        ),
        (
            "aws_set_environment",
            json!({"secret_access_key": canaries.set_secret}),
        ),
        (
            "aws_set_environment",
            json!({"access_key_id": canaries.set_secret, "secret_access_key": canaries.set_secret}),
        ),
        (
            "aws_set_environment",
            json!({"access_key_id": "AKIACANARYKEYID00001", "secret_access_key": canaries.set_secret, "session_token": format!("{} bad", canaries.set_token)}),
        ),
        // Then properly, and everything again with them.
        (
            "aws_set_environment",
            json!({"access_key_id": "AKIACANARYKEYID00001", "secret_access_key": canaries.set_secret, "session_token": canaries.set_token}),
        ),
        (
            "aws_get_credentials",
            json!({"include_session_token": true}),
        ),
        ("aws_get_account_info", json!({})),
        ("aws_validate_credentials", json!({})),
    ] {
        let reply = ws
            .rpc("tools/call", json!({"name": name, "arguments": arguments}))
            .await;
        record(reply);
        let reply = ws
            .envelope(
                &name.replacen("aws_", "aws/", 1).replace('_', "-"),
                arguments,
            )
            .await;
        record(reply);
    }
    // Protocol errors echo nothing of the message either.
    ws.send_text(format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"{}\"",
        canaries.set_secret
    ))
    .await;
    record(ws.recv().await);
    ws.send_text(format!("{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{{\"name\":\"x\",\"arguments\":\"{}\"}}}}", canaries.set_secret)).await;
    record(ws.recv().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_secrets_never_leak() {
    let canaries = Canaries::new();
    // moto authenticates, so these made-up keys are refused: the refusal paths run too.
    let moto = Moto::start_with_iam_auth();
    let (alice_key, alice_secret) = moto.user.clone().expect("IAM user");
    let home = support::temp_dir("canary-home");
    write_file(
        &home.join(".aws/credentials"),
        &format!(
            "[canary]\naws_access_key_id = AKIACANARYPROFILE001\naws_secret_access_key = {}\n\
             [alice]\naws_access_key_id = {alice_key}\naws_secret_access_key = {alice_secret}\n",
            canaries.profile_secret
        ),
    );
    write_file(
        &home.join(".aws/config"),
        &format!(
            "[profile process]\ncredential_process = {}\n\
             [profile sso]\nsso_start_url = {}\nsso_region = us-east-1\nsso_account_id = 123456789012\nsso_role_name = Admin\n\
             [profile assumed]\nrole_arn = {}\nsource_profile = alice\n",
            canaries.command, canaries.start_url, moto.role_arn
        ),
    );
    let server = Server::start_in(
        home,
        &[
            ("AWS_ENDPOINT_URL", &moto.url),
            ("AWS_ACCESS_KEY_ID", "AKIACANARYENVIRON001"),
            ("AWS_SECRET_ACCESS_KEY", &canaries.env_secret),
            ("AWS_SESSION_TOKEN", &canaries.env_token),
            ("AWS_REGION", "us-east-1"),
            ("AWS_LAMBDA_LOG_LEVEL", "TRACE"),
            ("RUST_LOG", "trace"),
            ("RATE_LIMIT_BURST", "1000"),
            ("CREDENTIAL_RATE_LIMIT_BURST", "1000"),
        ],
    );
    let mut transcript = String::new();
    let mut ws = server.connect_mcp().await;
    exercise(&mut ws, &canaries, &mut transcript).await;
    ws.close().await;
    server
        .logs
        .wait_for("$disconnect", |r| r["fields"]["message"] == "disconnected");

    // The test sees what it should: masked forms, and real refusals.
    assert!(transcript.contains("\"secret_access_key\":\"***\""));
    assert!(transcript.contains(&format!("{}...", &canaries.set_token[..20])));
    assert!(
        transcript.contains("InvalidClientTokenId"),
        "moto refused nothing?"
    );
    assert!(
        transcript.contains(":assumed-role/deploy/"),
        "AWS issued temporary credentials"
    );
    let logs = server.logs.text();
    let records = server.logs.records();
    assert!(
        records
            .iter()
            .any(|r| r["fields"]["message"] == "AWS call failed"),
        "refusals were logged, with their causes"
    );
    let messages = records
        .iter()
        .filter(|r| r["fields"]["message"] == "message")
        .count();
    assert!(messages >= 40, "a record per message: {messages}");

    canaries.assert_absent(&transcript, "a response");
    canaries.assert_absent(&logs, "the logs");
    assert_no_key_id(&logs, "the logs");
}
