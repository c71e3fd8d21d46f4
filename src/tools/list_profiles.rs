//! aws/list-profiles: every named profile in the AWS config and credentials files.

use rmcp::model::ToolAnnotations;
use serde_json::{Map, Value, json};

use super::{Args, Call, ErrorKind, Spec, ToolError, timestamp};

pub(super) fn spec() -> Spec {
    Spec {
        title: "List AWS profiles",
        description: "Lists the named profiles defined in the AWS config file and the shared \
            credentials file (AWS_CONFIG_FILE, AWS_SHARED_CREDENTIALS_FILE).",
        input: json!({ "type": "object", "properties": {}, "additionalProperties": false }),
        output: json!({
            "type": "object",
            "required": ["timestamp", "profiles", "count"],
            "properties": {
                "timestamp": { "type": "string" },
                "profiles": { "type": "array", "items": { "type": "string" } },
                "count": { "type": "integer", "minimum": 0 },
                "boto3_available": { "type": "boolean" }
            }
        }),
        annotations: ToolAnnotations::with_title("List AWS profiles")
            .read_only(true)
            .destructive(false)
            .idempotent(true)
            .open_world(false),
    }
}

pub(super) async fn run(
    call: &Call<'_>,
    arguments: &Map<String, Value>,
) -> Result<Value, ToolError> {
    Args::new(arguments, &[])?;
    let profiles = call.state.profiles.names().await.map_err(|err| {
        tracing::warn!(detail = %err.detail, "AWS config files could not be read");
        ToolError::new(ErrorKind::ExecutionError, err.to_string())
    })?;
    Ok(json!({
        "timestamp": timestamp(),
        "count": profiles.len(),
        "profiles": profiles,
        // Kept for clients written against the reference document.
        "boto3_available": true,
    }))
}
