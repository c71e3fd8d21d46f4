//! aws/get-account-info: account, ARN and user id of the credentials, from STS
//! GetCallerIdentity, cached per credential fingerprint.

use serde::Serialize;
use serde_json::{Map, Value, json};

use super::{
    Args, Call, Spec, ToolError, ToolReply, annotations, caller_property, environment_id_property,
    identity_properties, profile_property, timestamp,
};
use crate::aws::sts::FALLBACK_REGION;
use crate::session::Caller;

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

/// The answer, written straight from typed fields (no `Value` tree: a cached call is on the
/// hot path), in the order the other tools' answers have them.
#[derive(Serialize)]
struct Answer<'a> {
    timestamp: String,
    account_id: &'a str,
    arn: &'a str,
    user_id: &'a str,
    region: Option<&'a str>,
    profile: Option<&'a str>,
    credentials_source: &'a str,
    cached: bool,
    caller: Option<&'a Caller>,
}

pub(super) async fn run(call: &mut Call<'_>, arguments: &Map<String, Value>) -> ToolReply {
    match answer(call, arguments).await {
        Ok(reply) => reply,
        Err(err) => ToolReply::Failure(err),
    }
}

async fn answer(
    call: &mut Call<'_>,
    arguments: &Map<String, Value>,
) -> Result<ToolReply, ToolError> {
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
    Ok(ToolReply::answer(&Answer {
        timestamp: timestamp(),
        account_id: &identity.account,
        arn: &identity.arn,
        user_id: &identity.user_id,
        region: context.region.as_deref(),
        profile: context.resolved.source.profile(),
        credentials_source: call.credentials_source(),
        cached,
        caller: caller.is_known().then_some(caller),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The typed answer is, byte for byte, the object the tool wrote as a `Value` before:
    /// every field, in the same order, with and without a region, a profile and a caller.
    #[test]
    fn answers_are_the_objects_they_were() {
        let someone = Caller {
            arn: Some("arn:aws:iam::123456789012:user/a \"q\"".to_owned()),
            account_id: Some("123456789012".to_owned()),
            source_ip: None,
        };
        for (region, profile, caller, cached) in [
            (Some("eu-west-1"), Some("dev"), Some(&someone), true),
            (None, None, None, false),
        ] {
            let answer = Answer {
                timestamp: "2026-11-25T00:00:00.000Z".to_owned(),
                account_id: "123456789012",
                arn: "arn:aws:iam::123456789012:user/alice",
                user_id: "AIDAEXAMPLE",
                region,
                profile,
                credentials_source: "environment_variables",
                cached,
                caller,
            };
            let before = json!({
                "timestamp": "2026-11-25T00:00:00.000Z",
                "account_id": "123456789012",
                "arn": "arn:aws:iam::123456789012:user/alice",
                "user_id": "AIDAEXAMPLE",
                "region": region,
                "profile": profile,
                "credentials_source": "environment_variables",
                "cached": cached,
                "caller": caller,
            });
            let ToolReply::Answer { body, .. } = ToolReply::answer(&answer) else {
                panic!("not an answer");
            };
            assert_eq!(body.get(), before.to_string());
        }
    }
}
