//! aws/list-profiles: every named profile in the AWS config and credentials files.

use serde_json::{Map, Value, json};

use super::{Args, Call, ErrorKind, Spec, ToolError, annotations, timestamp};

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
                "truncated": {
                    "type": "boolean",
                    "description": "Present and true when only the first profiles are listed: the answer is kept small enough for one WebSocket frame."
                },
                "boto3_available": { "type": "boolean" }
            }
        }),
        annotations: annotations("List AWS profiles", true, false),
    }
}

pub(super) async fn run(
    call: &Call<'_>,
    arguments: &Map<String, Value>,
) -> Result<Value, ToolError> {
    Args::new(arguments, &[])?;
    let profiles = call.state.profiles.names().await.map_err(|err| {
        err.log();
        ToolError::new(ErrorKind::ExecutionError, err.to_string())
    })?;
    let count = profiles.len();
    let listed = within_budget(profiles);
    let mut body = json!({
        "timestamp": timestamp(),
        "count": count,
        // Kept for clients written against the reference document.
        "boto3_available": true,
    });
    if listed.len() < count {
        body["truncated"] = json!(true);
    }
    body["profiles"] = json!(listed);
    Ok(body)
}

/// The bytes of profile names one answer carries. The answer holds them twice (as structured
/// content and as text), and a tool's reply stays under 32 KB, one API Gateway frame.
const NAMES_BUDGET: usize = 12 * 1024;

/// The first names (in order) that fit in [`NAMES_BUDGET`], counted as JSON strings.
fn within_budget(mut names: Vec<String>) -> Vec<String> {
    let mut used = 0;
    let fit = names
        .iter()
        .take_while(|name| {
            used += serde_json::to_string(name).map_or(usize::MAX / 2, |s| s.len() + 1);
            used <= NAMES_BUDGET
        })
        .count();
    names.truncate(fit);
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lists_are_cut_to_the_budget() {
        let names: Vec<String> = (0..10_000).map(|i| format!("profile-{i:05}")).collect();
        let listed = within_budget(names.clone());
        assert!(listed.len() < names.len());
        assert_eq!(listed[..], names[..listed.len()]);
        assert!(serde_json::to_string(&listed).unwrap().len() <= NAMES_BUDGET + 2);
        assert_eq!(within_budget(names[..3].to_vec()).len(), 3);
    }
}
