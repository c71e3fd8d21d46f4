//! aws/set-environment: credentials and region for this connection only, and a handle to them.
//!
//! Unlike the reference document, nothing is written to the process environment: a warm Lambda
//! serves many connections, and overrides belong to the connection that set them. They are kept
//! in the session store (secrets sealed) until the connection disconnects, and in a handle
//! (`environment_id`, bound to the caller) until it expires.

use aws_credential_types::Credentials;
use serde_json::{Map, Value, json};

use super::{
    Args, Call, ErrorKind, Spec, ToolError, annotations, environment_id_property, timestamp,
};

pub(super) fn spec() -> Spec {
    Spec {
        title: "Set AWS credentials for this connection",
        description: "Sets AWS credentials (access key id and secret access key together, \
            optionally a session token) and/or a region for later calls on this connection only, \
            and answers an environment_id naming them. Other connections never see them and the \
            server's process environment is not changed. Without a connection (over HTTP), pass \
            the environment_id to every later tool call; pass it here too to change that \
            environment instead of making a new one.",
        input: json!({
            "type": "object",
            "properties": {
                "access_key_id": {
                    "type": "string", "minLength": 16, "maxLength": 128, "pattern": "^[A-Z0-9]+$",
                    "description": "AWS access key id; requires secret_access_key."
                },
                "secret_access_key": {
                    "type": "string", "minLength": 16, "maxLength": 128, "pattern": "^[A-Za-z0-9/+=]+$",
                    "description": "AWS secret access key; requires access_key_id."
                },
                "session_token": {
                    "type": "string", "minLength": 16, "maxLength": 8192, "pattern": "^[A-Za-z0-9/+=]+$",
                    "description": "Session token for temporary credentials; requires the key pair."
                },
                "region": {
                    "type": "string", "maxLength": 32, "pattern": "^[a-z]{2}(-[a-z0-9]+)+-[0-9]{1,2}$",
                    "description": "AWS region, such as us-west-2."
                },
                "environment_id": environment_id_property()
            },
            "additionalProperties": false
        }),
        output: json!({
            "type": "object",
            "required": ["success", "timestamp", "updated_variables", "message", "environment_id", "environment_expires_at"],
            "properties": {
                "success": { "type": "boolean" },
                "timestamp": { "type": "string" },
                "updated_variables": { "type": "array", "items": { "type": "string" } },
                "message": { "type": "string" },
                "environment_id": {
                    "type": "string",
                    "description": "Names these credentials and region: pass it as environment_id to later tool calls (needed over HTTP)."
                },
                "environment_expires_at": { "type": "string" }
            }
        }),
        annotations: annotations("Set AWS credentials for this connection", false, false),
    }
}

pub(super) async fn run(
    call: &Call<'_>,
    arguments: &Map<String, Value>,
) -> Result<Value, ToolError> {
    let args = Args::new(
        arguments,
        &[
            "access_key_id",
            "secret_access_key",
            "session_token",
            "region",
            "environment_id",
        ],
    )?;
    let environment_id = args.environment_id()?;
    let key_id = args.string("access_key_id")?;
    let secret = args.string("secret_access_key")?;
    let token = args.string("session_token")?;
    let region = args.string("region")?;

    let credentials = match (key_id, secret) {
        (Some(key_id), Some(secret)) => {
            check(
                key_id,
                "access_key_id",
                16..=128,
                is_key_id_char,
                "upper-case letters and digits",
            )?;
            check(
                secret,
                "secret_access_key",
                16..=128,
                is_base64_char,
                "letters, digits, '/', '+' and '='",
            )?;
            if let Some(token) = token {
                check(
                    token,
                    "session_token",
                    16..=8192,
                    is_base64_char,
                    "letters, digits, '/', '+' and '='",
                )?;
            }
            Some(Credentials::new(
                key_id,
                secret,
                token.map(str::to_owned),
                None,
                "set-environment",
            ))
        }
        (Some(_), None) => {
            return Err(ToolError::validation(
                "secret_access_key",
                "access_key_id and secret_access_key must be given together: secret_access_key is missing",
            ));
        }
        (None, Some(_)) => {
            return Err(ToolError::validation(
                "access_key_id",
                "access_key_id and secret_access_key must be given together: access_key_id is missing",
            ));
        }
        (None, None) if token.is_some() => {
            return Err(ToolError::validation(
                "session_token",
                "session_token needs access_key_id and secret_access_key in the same call",
            ));
        }
        (None, None) => None,
    };
    if region.is_some_and(|region| !is_region(region)) {
        return Err(ToolError::validation(
            "region",
            "region must look like us-west-2: lower-case words joined by '-', ending in a number",
        ));
    }
    if credentials.is_none() && region.is_none() {
        return Err(ToolError::new(
            ErrorKind::ValidationError,
            "nothing to set: give access_key_id with secret_access_key, and/or region",
        ));
    }

    let mut updated = Vec::new();
    if let Some(credentials) = &credentials {
        updated.extend(["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]);
        if credentials.session_token().is_some() {
            updated.push("AWS_SESSION_TOKEN");
        }
    }
    if region.is_some() {
        updated.extend(["AWS_DEFAULT_REGION", "AWS_REGION"]);
    }
    let handle = call
        .state
        .sessions
        .set(call.origin, environment_id, credentials.as_ref(), region)
        .await?;
    let expires = chrono::DateTime::from_timestamp(handle.expires_at as i64, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    Ok(json!({
        "success": true,
        "timestamp": timestamp(),
        "updated_variables": updated,
        "message": format!(
            "Successfully set {} AWS environment variable(s) for this connection; the process environment is unchanged",
            updated.len()
        ),
        "environment_id": handle.id,
        "environment_expires_at": expires,
    }))
}

fn check(
    value: &str,
    field: &str,
    length: std::ops::RangeInclusive<usize>,
    allowed: fn(char) -> bool,
    described: &str,
) -> Result<(), ToolError> {
    if length.contains(&value.len()) && value.chars().all(allowed) {
        return Ok(());
    }
    Err(ToolError::validation(
        field,
        format!(
            "{field} must be {} to {} characters: {described}",
            length.start(),
            length.end()
        ),
    ))
}

fn is_key_id_char(c: char) -> bool {
    c.is_ascii_uppercase() || c.is_ascii_digit()
}

fn is_base64_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '/' | '+' | '=')
}

/// `us-west-2`, `eu-central-1`, `us-gov-west-1`, `ap-southeast-4`, `cn-north-1`.
fn is_region(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    region.len() <= 32
        && parts.len() >= 3
        && parts[0].len() == 2
        && parts[0].chars().all(|c| c.is_ascii_lowercase())
        && parts[1..parts.len() - 1].iter().all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        })
        && parts
            .last()
            .is_some_and(|n| (1..=2).contains(&n.len()) && n.chars().all(|c| c.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions() {
        for good in [
            "us-west-2",
            "eu-central-1",
            "us-gov-west-1",
            "ap-southeast-4",
            "cn-north-1",
        ] {
            assert!(is_region(good), "{good}");
        }
        for bad in [
            "",
            "us",
            "us-west",
            "US-WEST-2",
            "us-west-",
            "us--2",
            "us-west-123",
            "x-west-1",
        ] {
            assert!(!is_region(bad), "{bad}");
        }
    }

    #[test]
    fn key_formats() {
        assert!(
            check(
                "AKIAIOSFODNN7EXAMPLE",
                "access_key_id",
                16..=128,
                is_key_id_char,
                ""
            )
            .is_ok()
        );
        let err = check("akia-lower", "access_key_id", 16..=128, is_key_id_char, "x").unwrap_err();
        assert_eq!(err.field.as_deref(), Some("access_key_id"));
        assert!(!err.message.contains("akia-lower"));
        assert!(
            check(
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                "s",
                16..=128,
                is_base64_char,
                ""
            )
            .is_ok()
        );
        assert!(check("has space in it here", "s", 16..=128, is_base64_char, "").is_err());
    }
}
