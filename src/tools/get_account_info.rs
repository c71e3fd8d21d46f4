//! aws/get-account-info: account, ARN and user id of the credentials, from STS
//! GetCallerIdentity, cached per credential fingerprint.

use rmcp::model::ToolAnnotations;
use serde_json::{Map, Value, json};

use super::{Args, Call, Spec, ToolError, nullable_string, profile_property, sts_error, timestamp};
use crate::aws::sts::FALLBACK_REGION;

pub(super) fn spec() -> Spec {
    Spec {
        title: "Get AWS account info",
        description: "Returns the AWS account id, ARN and user id of the credentials in effect \
            (STS GetCallerIdentity). The answer is cached per set of credentials.",
        input: json!({
            "type": "object",
            "properties": { "profile": profile_property() },
            "additionalProperties": false
        }),
        output: json!({
            "type": "object",
            "required": ["timestamp", "account_id", "arn", "user_id", "region", "profile"],
            "properties": {
                "timestamp": { "type": "string" },
                "account_id": { "type": "string" },
                "arn": { "type": "string" },
                "user_id": { "type": "string" },
                "region": nullable_string(),
                "profile": nullable_string(),
                "credentials_source": { "type": "string" },
                "cached": { "type": "boolean" }
            }
        }),
        annotations: ToolAnnotations::with_title("Get AWS account info")
            .read_only(true)
            .destructive(false)
            .idempotent(true)
            .open_world(true),
    }
}

pub(super) async fn run(
    call: &Call<'_>,
    arguments: &Map<String, Value>,
) -> Result<Value, ToolError> {
    let args = Args::new(arguments, &["profile"])?;
    let context = call.context(args.profile()?).await?;
    let region = context.region.as_deref().unwrap_or(FALLBACK_REGION);
    let (identity, cached) = call
        .state
        .sts
        .identity(&context.resolved.credentials, region)
        .await
        .map_err(sts_error)?;
    Ok(json!({
        "timestamp": timestamp(),
        "account_id": identity.account,
        "arn": identity.arn,
        "user_id": identity.user_id,
        "region": context.region,
        "profile": context.resolved.source.profile(),
        "credentials_source": context.resolved.source.label(),
        "cached": cached,
    }))
}
