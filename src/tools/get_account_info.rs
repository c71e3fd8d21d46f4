//! aws/get-account-info: account, ARN and user id of the credentials, from STS
//! GetCallerIdentity, cached per credential fingerprint.

use serde_json::{Map, Value, json};

use super::{
    Args, Call, Spec, ToolError, annotations, caller_property, environment_id_property,
    identity_properties, profile_property, timestamp,
};
use crate::aws::sts::FALLBACK_REGION;

pub(super) fn spec() -> Spec {
    Spec {
        title: "Get AWS account info",
        description: "Returns the AWS account id, ARN and user id of the credentials in effect \
            (STS GetCallerIdentity), and who is calling. The answer is cached per set of \
            credentials. Pass environment_id to use the credentials an earlier \
            aws_set_environment set.",
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
            "required": ["timestamp", "account_id", "arn", "user_id", "region", "profile"],
            "properties": identity_properties(json!({
                "user_id": { "type": "string" },
                "credentials_source": { "type": "string" },
                "cached": { "type": "boolean" },
                "caller": caller_property()
            }))
        }),
        annotations: annotations("Get AWS account info", true, true),
    }
}

pub(super) async fn run(
    call: &Call<'_>,
    arguments: &Map<String, Value>,
) -> Result<Value, ToolError> {
    let args = Args::new(arguments, &["profile", "environment_id"])?;
    let context = call
        .context(args.profile()?, args.environment_id()?)
        .await?;
    let region = context.region.as_deref().unwrap_or(FALLBACK_REGION);
    let (identity, cached) = call
        .state
        .sts
        .identity(&context.resolved.credentials, region)
        .await?;
    let caller = call.caller();
    Ok(json!({
        "timestamp": timestamp(),
        "account_id": identity.account,
        "arn": identity.arn,
        "user_id": identity.user_id,
        "region": context.region,
        "profile": context.resolved.source.profile(),
        "credentials_source": context.resolved.source.label(),
        "cached": cached,
        "caller": caller.is_known().then_some(caller),
    }))
}
