//! The five AWS tools and their registry: names, schemas, and [`run`], where a tool call runs.
//!
//! Both wire formats call [`run`]. A tool that ran and failed answers with a [`ToolError`]
//! carrying one of the reference document's error codes; protocol errors (unknown tool, bad
//! envelope) never get this far.

mod args;
mod get_account_info;
mod get_credentials;
mod list_profiles;
mod set_environment;
mod validate_credentials;

use std::sync::{Arc, LazyLock};

use rmcp::model::{JsonObject, Tool, ToolAnnotations};
use serde_json::{Map, Value, json};

use crate::aws::credentials::{CredentialError, Resolved};
use crate::aws::sts::StsError;
use crate::session::Bucket;
use crate::state::AppState;

use args::Args;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ToolName {
    GetCredentials,
    SetEnvironment,
    ListProfiles,
    GetAccountInfo,
    ValidateCredentials,
}

impl ToolName {
    pub const ALL: [ToolName; 5] = [
        ToolName::GetCredentials,
        ToolName::SetEnvironment,
        ToolName::ListProfiles,
        ToolName::GetAccountInfo,
        ToolName::ValidateCredentials,
    ];

    /// Accepts the reference document's names (`aws/get-credentials`) and the MCP-safe ones
    /// (`aws_get_credentials`).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|t| t.reference_name() == name || t.mcp_name() == name)
    }

    pub fn reference_name(self) -> &'static str {
        match self {
            ToolName::GetCredentials => "aws/get-credentials",
            ToolName::SetEnvironment => "aws/set-environment",
            ToolName::ListProfiles => "aws/list-profiles",
            ToolName::GetAccountInfo => "aws/get-account-info",
            ToolName::ValidateCredentials => "aws/validate-credentials",
        }
    }

    /// The name in `tools/list`: many MCP hosts reject `/` in tool names.
    pub fn mcp_name(self) -> &'static str {
        match self {
            ToolName::GetCredentials => "aws_get_credentials",
            ToolName::SetEnvironment => "aws_set_environment",
            ToolName::ListProfiles => "aws_list_profiles",
            ToolName::GetAccountInfo => "aws_get_account_info",
            ToolName::ValidateCredentials => "aws_validate_credentials",
        }
    }

    pub fn bucket(self) -> Bucket {
        match self {
            ToolName::SetEnvironment | ToolName::ValidateCredentials => Bucket::CredentialTools,
            _ => Bucket::Tools,
        }
    }
}

/// The reference document's error codes for a tool that ran and failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    NoCredentials,
    InvalidCredentials,
    ClientError,
    ValidationError,
    ExecutionError,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 5] = [
        ErrorKind::NoCredentials,
        ErrorKind::InvalidCredentials,
        ErrorKind::ClientError,
        ErrorKind::ValidationError,
        ErrorKind::ExecutionError,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NoCredentials => "no_credentials",
            ErrorKind::InvalidCredentials => "invalid_credentials",
            ErrorKind::ClientError => "client_error",
            ErrorKind::ValidationError => "validation_error",
            ErrorKind::ExecutionError => "execution_error",
        }
    }
}

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

/// Runs a tool for a connection. Bounded in time: credential resolution and the AWS call each
/// have the operation time-out, and the whole call gets twice that plus a margin.
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
        ToolReply::Failure(ToolError::new(
            ErrorKind::ClientError,
            format!("the tool did not finish within {} ms", limit.as_millis()),
        ))
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
            .await
            .map_err(credential_error)?;
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

fn credential_error(err: CredentialError) -> ToolError {
    match err {
        CredentialError::NotFound { ref reason } => {
            tracing::debug!(reason = %reason, "no credentials from the default chain");
            ToolError::new(ErrorKind::NoCredentials, err.to_string())
        }
        CredentialError::NotFoundInProfile { .. } => {
            ToolError::new(ErrorKind::NoCredentials, err.to_string())
        }
        CredentialError::UnknownProfile(_) => ToolError::validation("profile", err.to_string()),
        CredentialError::TimedOut(_) => ToolError::new(ErrorKind::ClientError, err.to_string()),
        CredentialError::Provider {
            refusal: Some(refusal),
            message,
        } => {
            let kind = if refusal.invalid_credentials {
                ErrorKind::InvalidCredentials
            } else {
                ErrorKind::ClientError
            };
            ToolError {
                error_code: Some(refusal.code),
                ..ToolError::new(kind, message)
            }
        }
        CredentialError::Provider {
            refusal: None,
            message,
        } => ToolError::new(ErrorKind::ExecutionError, message),
        CredentialError::Profiles(err) => {
            tracing::warn!(detail = %err.detail, "AWS config files could not be read");
            ToolError::new(ErrorKind::ExecutionError, err.to_string())
        }
    }
}

fn sts_error(err: StsError) -> ToolError {
    match err {
        StsError::InvalidCredentials { code, message } => ToolError {
            error_code: Some(code),
            ..ToolError::new(ErrorKind::InvalidCredentials, message)
        },
        StsError::Service { code, message } => ToolError {
            error_code: Some(code),
            ..ToolError::new(ErrorKind::ClientError, message)
        },
        other => ToolError::new(ErrorKind::ClientError, other.to_string()),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_name_styles_are_accepted() {
        for tool in ToolName::ALL {
            assert_eq!(ToolName::parse(tool.reference_name()), Some(tool));
            assert_eq!(ToolName::parse(tool.mcp_name()), Some(tool));
            assert!(!tool.mcp_name().contains('/'));
        }
        assert_eq!(ToolName::parse("aws/unknown"), None);
    }

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
