//! The five AWS tools and their registry: names, schemas, and [`call`], where a tool call is
//! admitted (rate limits), run, and recorded (metrics), whatever the wire format.
//!
//! A tool that ran and failed answers with a [`ToolError`] carrying one of the reference
//! document's error codes; protocol errors (unknown tool, bad envelope) never get this far.

mod args;
mod get_account_info;
mod get_credentials;
mod list_profiles;
mod set_environment;
mod validate_credentials;

use std::sync::{Arc, LazyLock};
use std::time::Instant;

use rmcp::model::{JsonObject, Tool, ToolAnnotations};
use serde_json::{Map, Value, json};

use crate::aws::credentials::{ResolveError, Resolved};
use crate::aws::error::{AwsError, Cause};
use crate::metrics::ErrorType;
use crate::names::{ErrorKind, ToolName};
use crate::session::RateLimited;
use crate::state::AppState;

use args::Args;

/// A tool that ran and failed. The message is safe to show: it never holds a secret.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}: {message}", kind.as_str())]
pub struct ToolError {
    pub kind: ErrorKind,
    pub message: String,
    /// The argument at fault, for validation errors.
    pub field: Option<String>,
    /// The AWS error code, when AWS refused.
    pub error_code: Option<String>,
}

impl ToolError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            field: None,
            error_code: None,
        }
    }

    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: Some(field.into()),
            ..Self::new(ErrorKind::ValidationError, message)
        }
    }

    /// The error as the tool's result body: `{"error": "no_credentials", "message": ...}`.
    pub fn body(&self) -> Value {
        let mut body = json!({ "error": self.kind.as_str(), "message": self.message });
        if let Some(field) = &self.field {
            body["field"] = json!(field);
        }
        if let Some(code) = &self.error_code {
            body["error_code"] = json!(code);
        }
        body
    }
}

impl From<AwsError> for ToolError {
    /// One mapping from cause to error code, whichever tool and credential source failed.
    fn from(err: AwsError) -> Self {
        let (kind, error_code) = match &err.cause {
            Cause::NoCredentials | Cause::Misconfigured(_) => (ErrorKind::NoCredentials, None),
            Cause::Refused(refusal) if refusal.invalid_credentials => {
                (ErrorKind::InvalidCredentials, Some(refusal.code.clone()))
            }
            Cause::Refused(refusal) => (ErrorKind::ClientError, Some(refusal.code.clone())),
            Cause::TimedOut | Cause::Unreachable => (ErrorKind::ClientError, None),
            Cause::Unexpected => (ErrorKind::ExecutionError, None),
        };
        ToolError {
            error_code,
            ..ToolError::new(kind, err.to_string())
        }
    }
}

impl From<ResolveError> for ToolError {
    fn from(err: ResolveError) -> Self {
        match err {
            ResolveError::UnknownProfile => ToolError::validation("profile", err.to_string()),
            ResolveError::ConfigFiles(err) => {
                err.log();
                ToolError::new(ErrorKind::ExecutionError, err.to_string())
            }
            ResolveError::Aws(err) => err.into(),
        }
    }
}

/// What a tool call produced.
#[derive(Debug, Clone, PartialEq)]
pub enum ToolReply {
    /// The tool answered. `error` is set when the answer is itself a negative verdict
    /// (validate-credentials: `valid: false`): MCP marks it `isError`, the envelope still
    /// answers RESPONSE, as the reference document shows.
    Answer {
        body: Value,
        error: Option<ErrorKind>,
    },
    Failure(ToolError),
}

impl ToolReply {
    pub fn ok(body: Value) -> Self {
        ToolReply::Answer { body, error: None }
    }

    /// The error kind, if the call did not succeed.
    pub fn error_kind(&self) -> Option<ErrorKind> {
        match self {
            ToolReply::Answer { error, .. } => *error,
            ToolReply::Failure(err) => Some(err.kind),
        }
    }

    /// The AWS error code, if AWS refused.
    pub fn error_code(&self) -> Option<&str> {
        match self {
            ToolReply::Answer { body, .. } => body.get("error_code").and_then(Value::as_str),
            ToolReply::Failure(err) => err.error_code.as_deref(),
        }
    }
}

impl From<Result<Value, ToolError>> for ToolReply {
    fn from(result: Result<Value, ToolError>) -> Self {
        match result {
            Ok(body) => ToolReply::ok(body),
            Err(err) => ToolReply::Failure(err),
        }
    }
}

/// Every tool call passes through here, whatever its wire format: the rate limits, the tool,
/// and the metrics recorder. A refused call is recorded as `rate_limited` and not run.
pub async fn call(
    state: &AppState,
    connection_id: &str,
    tool: ToolName,
    arguments: &Map<String, Value>,
) -> Result<ToolReply, RateLimited> {
    let started = Instant::now();
    if let Err(limited) = state
        .sessions
        .admit(connection_id, tool.tests_credentials())
    {
        state
            .metrics
            .record(tool, Some(ErrorType::RateLimited), started.elapsed());
        return Err(limited);
    }
    let reply = run(state, connection_id, tool, arguments).await;
    let error = reply.error_kind().map(ErrorType::Tool);
    state.metrics.record(tool, error, started.elapsed());
    Ok(reply)
}

/// Runs a tool for a connection. The tool call's deadline is owned here: twice the operation
/// time-out plus the connect time-out, above any one AWS call's own (the SDK owns those), so a
/// call that makes two AWS calls (an AssumeRole, then GetCallerIdentity) can finish. Either
/// deadline ends in the same answer: the call timed out.
pub async fn run(
    state: &AppState,
    connection_id: &str,
    tool: ToolName,
    arguments: &Map<String, Value>,
) -> ToolReply {
    let call = Call {
        state,
        connection_id,
    };
    let limit = state.config.operation_timeout * 2 + state.config.connect_timeout;
    let work = async {
        match tool {
            ToolName::GetCredentials => get_credentials::run(&call, arguments).await.into(),
            ToolName::SetEnvironment => set_environment::run(&call, arguments).into(),
            ToolName::ListProfiles => list_profiles::run(&call, arguments).await.into(),
            ToolName::GetAccountInfo => get_account_info::run(&call, arguments).await.into(),
            ToolName::ValidateCredentials => validate_credentials::run(&call, arguments).await,
        }
    };
    tokio::time::timeout(limit, work).await.unwrap_or_else(|_| {
        tracing::info!(
            tool = tool.reference_name(),
            limit_ms = limit.as_millis() as u64,
            "tool call deadline passed"
        );
        ToolReply::Failure(AwsError::new("AWS", Cause::TimedOut).into())
    })
}

/// What a tool sees of the world.
pub(crate) struct Call<'a> {
    pub state: &'a AppState,
    pub connection_id: &'a str,
}

/// Credentials and region a call runs with.
pub(crate) struct Context {
    pub resolved: Resolved,
    /// The region in effect, if one is configured anywhere.
    pub region: Option<String>,
}

impl Call<'_> {
    /// Resolves credentials (explicit profile, connection overrides, environment, default
    /// chain) and the region: connection override, then `AWS_REGION`/`AWS_DEFAULT_REGION`, then
    /// the profile's `region`, as the AWS CLI orders them.
    pub async fn context(&self, profile: Option<&str>) -> Result<Context, ToolError> {
        let state = self.state;
        let overrides = state.sessions.overrides(self.connection_id);
        let resolved = state
            .credentials
            .resolve(profile, overrides.credentials.as_ref(), &state.profiles)
            .await?;
        let region = match overrides
            .region
            .or_else(|| state.config.aws.effective_region().map(str::to_owned))
        {
            Some(region) => Some(region),
            None => match resolved.source.profile() {
                Some(name) => state.profiles.region(name).await,
                None => None,
            },
        };
        Ok(Context { resolved, region })
    }
}

/// Now, as the reference document writes it: `2025-09-30T12:00:00.000Z`.
pub(crate) fn timestamp() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The tools as `tools/list` shows them, built once.
pub fn definitions() -> &'static [Tool] {
    static TOOLS: LazyLock<Vec<Tool>> = LazyLock::new(|| {
        ToolName::ALL
            .into_iter()
            .map(|name| {
                let spec = spec(name);
                Tool::new(name.mcp_name(), spec.description, object(spec.input))
                    .with_title(spec.title)
                    .with_raw_output_schema(Arc::new(output_schema(spec.output)))
                    .with_annotations(spec.annotations)
            })
            .collect()
    });
    &TOOLS
}

/// The pieces of a tool's definition, written next to the tool.
pub(crate) struct Spec {
    pub title: &'static str,
    pub description: &'static str,
    pub input: Value,
    pub output: Value,
    pub annotations: ToolAnnotations,
}

fn spec(name: ToolName) -> Spec {
    match name {
        ToolName::GetCredentials => get_credentials::spec(),
        ToolName::SetEnvironment => set_environment::spec(),
        ToolName::ListProfiles => list_profiles::spec(),
        ToolName::GetAccountInfo => get_account_info::spec(),
        ToolName::ValidateCredentials => validate_credentials::spec(),
    }
}

fn object(value: Value) -> JsonObject {
    match value {
        Value::Object(map) => map,
        _ => JsonObject::new(),
    }
}

/// A tool's output schema: its success shape, or the error shape every tool can answer with.
/// MCP clients validate `structuredContent` against it even when `isError` is set.
fn output_schema(success: Value) -> JsonObject {
    object(json!({
        "type": "object",
        "anyOf": [success, error_schema()],
    }))
}

fn error_schema() -> Value {
    json!({
        "type": "object",
        "required": ["error", "message"],
        "properties": {
            "error": {
                "type": "string",
                "enum": ErrorKind::ALL.map(ErrorKind::as_str),
            },
            "message": { "type": "string" },
            "field": { "type": "string", "description": "The argument at fault." },
            "error_code": { "type": "string", "description": "The AWS error code." }
        }
    })
}

/// Schema for `{ "profile": string? }`, shared by three tools.
fn profile_property() -> Value {
    json!({
        "type": "string",
        "minLength": 1,
        "maxLength": 128,
        "description": "A named profile from the AWS config or credentials file. Default: the connection's set-environment credentials, else the environment, else the default credential chain."
    })
}

fn nullable_string() -> Value {
    json!({ "type": ["string", "null"] })
}

/// The output properties of the tools that ask STS who the credentials are: account and ARN,
/// with the region and profile they were asked with. Each tool adds its own.
fn identity_properties(extra: Value) -> Value {
    let mut properties = json!({
        "timestamp": { "type": "string" },
        "account_id": { "type": "string" },
        "arn": { "type": "string" },
        "region": nullable_string(),
        "profile": nullable_string(),
    });
    if let (Some(properties), Value::Object(extra)) = (properties.as_object_mut(), extra) {
        properties.extend(extra);
    }
    properties
}

/// Annotations: no tool destroys anything, and asking twice gives the same answer.
fn annotations(title: &str, read_only: bool, open_world: bool) -> ToolAnnotations {
    ToolAnnotations::with_title(title)
        .read_only(read_only)
        .destructive(false)
        .idempotent(true)
        .open_world(open_world)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tool_has_schemas_and_annotations() {
        let tools = definitions();
        assert_eq!(tools.len(), 5);
        for tool in tools {
            assert_eq!(tool.input_schema["type"], "object");
            let output = tool.output_schema.as_ref().expect("output schema");
            assert_eq!(output["type"], "object");
            let annotations = tool.annotations.as_ref().expect("annotations");
            let read_only = tool.name != "aws_set_environment";
            assert_eq!(annotations.read_only_hint, Some(read_only), "{}", tool.name);
        }
    }

    #[test]
    fn error_body_carries_field_and_code() {
        let err = ToolError {
            error_code: Some("InvalidClientTokenId".into()),
            ..ToolError::new(ErrorKind::InvalidCredentials, "no")
        };
        assert_eq!(
            err.body(),
            json!({"error": "invalid_credentials", "message": "no", "error_code": "InvalidClientTokenId"})
        );
    }
}
