//! aws/validate-credentials: asks STS, every time, whether the credentials are valid.

use serde_json::{Map, Value, json};

use super::{
    Args, Call, ErrorKind, Spec, ToolError, ToolReply, annotations, environment_id_property,
    identity_properties, profile_property, timestamp,
};
use crate::aws::error::{AwsError, Cause};
use crate::aws::sts::FALLBACK_REGION;

pub(super) fn spec() -> Spec {
    Spec {
        title: "Validate AWS credentials",
        description: "Checks the credentials in effect with a real STS GetCallerIdentity call. \
            Answers valid: true with the account and ARN, or valid: false with the AWS error \
            code (InvalidClientTokenId, SignatureDoesNotMatch, ExpiredToken, ...). Pass \
            environment_id to check the credentials an earlier aws_set_environment set.",
        input: json!({
            "type": "object",
            "properties": {
                "profile": profile_property(),
                "environment_id": environment_id_property()
            },
            "additionalProperties": false
        }),
        output: json!({
            "type": "object",
            "required": ["valid", "timestamp"],
            "properties": identity_properties(json!({
                "valid": { "type": "boolean" },
                "error": { "const": "invalid_credentials" },
                "error_code": { "type": "string" },
                "message": { "type": "string" }
            }))
        }),
        annotations: annotations("Validate AWS credentials", true, true),
    }
}

pub(super) async fn run(call: &mut Call<'_>, arguments: &Map<String, Value>) -> ToolReply {
    match validate(call, arguments).await {
        Ok(reply) => reply,
        Err(err) => ToolReply::Failure(err),
    }
}

async fn validate(
    call: &mut Call<'_>,
    arguments: &Map<String, Value>,
) -> Result<ToolReply, ToolError> {
    let args = Args::new(arguments, &["profile", "environment_id"])?;
    let profile_argument = args.profile()?;
    let context = match call.context(profile_argument, args.environment_id()?).await {
        Ok(context) => context,
        // A profile whose AssumeRole was refused: its source credentials are not valid.
        Err(err) if err.kind == ErrorKind::InvalidCredentials => {
            return Ok(invalid(
                err.error_code.unwrap_or_default(),
                err.message,
                None,
                profile_argument,
            ));
        }
        Err(err) => return Err(err),
    };
    let region = context.region.as_deref().unwrap_or(FALLBACK_REGION);
    let profile = context.resolved.source.profile();
    match call
        .state
        .sts
        .caller_identity(&context.resolved.credentials, region)
        .await
    {
        Ok(identity) => Ok(ToolReply::ok(json!({
            "valid": true,
            "timestamp": timestamp(),
            "account_id": identity.account,
            "arn": identity.arn,
            "region": context.region,
            "profile": profile,
        }))),
        Err(AwsError {
            cause: Cause::Refused(refusal),
            ..
        }) if refusal.invalid_credentials => Ok(invalid(
            refusal.code,
            refusal.message,
            context.region.as_deref(),
            profile,
        )),
        Err(other) => Err(other.into()),
    }
}

/// `valid: false`: the answer, not a failure of the tool (though MCP marks it `isError`).
fn invalid(
    code: String,
    message: String,
    region: Option<&str>,
    profile: Option<&str>,
) -> ToolReply {
    ToolReply::verdict(
        json!({
            "valid": false,
            "timestamp": timestamp(),
            "error": ErrorKind::InvalidCredentials.as_str(),
            "error_code": code,
            "message": message,
            "region": region,
            "profile": profile,
        }),
        ErrorKind::InvalidCredentials,
    )
}
