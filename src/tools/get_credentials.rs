//! aws/get-credentials: which credentials a call would run with, masked.

use serde::Serialize;
use serde_json::{Map, Value, json};

use super::{
    Args, Call, Context, Spec, ToolError, ToolReply, annotations, caller_property,
    environment_id_property, nullable_string, profile_property, timestamp,
};
use crate::aws::secret::{MASKED_SECRET, mask_access_key_id, mask_session_token};

pub(super) fn spec() -> Spec {
    Spec {
        title: "Get AWS credentials",
        description: "Shows the AWS credentials this connection's calls run with (access key id \
            masked to its first 10 characters, secret access key always hidden), their region \
            and source, the AWS variables in effect, and who is calling. Session tokens are \
            shown masked only when include_session_token is true. Pass environment_id to see \
            the credentials an earlier aws_set_environment set.",
        input: json!({
            "type": "object",
            "properties": {
                "profile": profile_property(),
                "include_session_token": {
                    "type": "boolean",
                    "default": false,
                    "description": "Also show the session token's first 20 characters."
                },
                "environment_id": environment_id_property()
            },
            "additionalProperties": false
        }),
        output: json!({
            "type": "object",
            "required": ["timestamp", "credentials", "environment_variables", "metadata"],
            "properties": {
                "timestamp": { "type": "string" },
                "credentials": {
                    "type": "object",
                    "required": ["access_key_id", "secret_access_key", "region", "profile", "has_session_token"],
                    "properties": {
                        "access_key_id": { "type": "string" },
                        "secret_access_key": { "const": MASKED_SECRET },
                        "region": nullable_string(),
                        "profile": nullable_string(),
                        "has_session_token": { "type": "boolean" },
                        "session_token": { "type": "string" },
                        "expiration": nullable_string()
                    }
                },
                "environment_variables": {
                    "type": "object",
                    "additionalProperties": { "type": "string" }
                },
                "metadata": {
                    "type": "object",
                    "required": ["credentials_source"],
                    "properties": {
                        "boto3_available": { "type": "boolean" },
                        "credentials_source": { "type": "string" }
                    }
                },
                "caller": caller_property()
            }
        }),
        annotations: annotations("Get AWS credentials", true, false),
    }
}

/// The answer, written straight from typed data: this is the tool assistants call most, so it
/// builds no `Value` tree. Keys as the reference document has them (in the same order the
/// other tools' JSON has: sorted).
#[derive(Serialize)]
struct Answer<'a> {
    caller: Option<Value>,
    credentials: Shown<'a>,
    environment_variables: Variables<'a>,
    metadata: Metadata,
    timestamp: String,
}

#[derive(Serialize)]
struct Shown<'a> {
    access_key_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    expiration: Option<String>,
    has_session_token: bool,
    profile: Option<&'a str>,
    region: Option<&'a str>,
    secret_access_key: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    session_token: Option<String>,
}

#[derive(Serialize)]
struct Metadata {
    /// Kept for clients written against the reference document: the Rust SDK is always
    /// compiled in, so full functionality is always available.
    boto3_available: bool,
    credentials_source: String,
}

pub(super) async fn run(call: &Call<'_>, arguments: &Map<String, Value>) -> ToolReply {
    let args = match Args::new(
        arguments,
        &["profile", "include_session_token", "environment_id"],
    ) {
        Ok(args) => args,
        Err(err) => return ToolReply::Failure(err),
    };
    match answer(call, &args).await {
        Ok(reply) => reply,
        Err(err) => ToolReply::Failure(err),
    }
}

async fn answer(call: &Call<'_>, args: &Args<'_>) -> Result<ToolReply, ToolError> {
    let profile = args.profile()?;
    let include_session_token = args.boolean("include_session_token")?.unwrap_or(false);
    let context = call.context(profile, args.environment_id()?).await?;
    let credentials = &context.resolved.credentials;

    let shown = Shown {
        access_key_id: mask_access_key_id(credentials.access_key_id()),
        secret_access_key: MASKED_SECRET,
        region: context.region.as_deref(),
        profile: context.resolved.source.profile(),
        has_session_token: credentials.session_token().is_some(),
        session_token: credentials
            .session_token()
            .filter(|_| include_session_token)
            .map(mask_session_token),
        expiration: credentials.expiry().map(|expiry| {
            chrono::DateTime::<chrono::Utc>::from(expiry)
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        }),
    };
    let caller = call.caller();
    Ok(ToolReply::answer(&Answer {
        timestamp: timestamp(),
        credentials: shown,
        environment_variables: environment_variables(call, &context, include_session_token),
        caller: caller.is_known().then(|| caller.to_json()),
        metadata: Metadata {
            boto3_available: true,
            credentials_source: context.resolved.source.label(),
        },
    }))
}

/// The AWS credential and region variables in effect for this connection, masked: the
/// process environment with the stored set-environment overrides on top. Fields in the order
/// of their names (sorted, as a JSON object of the other tools is); a variable that is not set
/// is left out.
#[derive(Serialize)]
struct Variables<'a> {
    #[serde(rename = "AWS_ACCESS_KEY_ID", skip_serializing_if = "Option::is_none")]
    access_key_id: Option<String>,
    #[serde(rename = "AWS_DEFAULT_REGION", skip_serializing_if = "Option::is_none")]
    default_region: Option<&'a str>,
    #[serde(rename = "AWS_PROFILE", skip_serializing_if = "Option::is_none")]
    profile: Option<&'a str>,
    #[serde(rename = "AWS_REGION", skip_serializing_if = "Option::is_none")]
    region: Option<&'a str>,
    #[serde(
        rename = "AWS_SECRET_ACCESS_KEY",
        skip_serializing_if = "Option::is_none"
    )]
    secret_access_key: Option<&'static str>,
    #[serde(rename = "AWS_SESSION_TOKEN", skip_serializing_if = "Option::is_none")]
    session_token: Option<String>,
}

fn environment_variables<'a>(
    call: &Call<'a>,
    context: &'a Context,
    include_session_token: bool,
) -> Variables<'a> {
    let env = &call.state.config.aws;
    let overrides = &context.stored;
    let token_shown = |token: &str| {
        if include_session_token {
            mask_session_token(token)
        } else {
            MASKED_SECRET.to_owned()
        }
    };
    let (access_key_id, secret_access_key, session_token) = match &overrides.credentials {
        Some(credentials) => (
            Some(mask_access_key_id(credentials.access_key_id())),
            Some(MASKED_SECRET),
            credentials.session_token().map(token_shown),
        ),
        None => (
            env.access_key_id.as_deref().map(mask_access_key_id),
            env.secret_access_key.as_ref().map(|_| MASKED_SECRET),
            env.session_token.as_ref().map(|t| token_shown(t.expose())),
        ),
    };
    let (default_region, region) = match &overrides.region {
        Some(region) => (Some(region.as_str()), Some(region.as_str())),
        None => (env.default_region.as_deref(), env.region.as_deref()),
    };
    Variables {
        access_key_id,
        default_region,
        profile: env.profile.as_deref(),
        region,
        secret_access_key,
        session_token,
    }
}
