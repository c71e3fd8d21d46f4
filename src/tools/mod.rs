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

use std::borrow::Cow;
use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::{Arc, LazyLock};
use std::task::Poll;
use std::time::Instant;

use rmcp::model::{JsonObject, Tool, ToolAnnotations};
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::aws::credentials::{ResolveError, Resolved};
use crate::aws::error::{AwsError, Cause};
use crate::json::{self, Json};
use crate::metrics::ErrorType;
use crate::names::{ErrorKind, ToolName};
use crate::session::{Caller, Origin, RateLimited, Refused, SessionError, Stored};
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
            Cause::TimedOut | Cause::Unreachable | Cause::Untrusted => {
                (ErrorKind::ClientError, None)
            }
            Cause::Unexpected => (ErrorKind::ExecutionError, None),
        };
        ToolError {
            error_code,
            ..ToolError::new(kind, err.to_string())
        }
    }
}

impl From<SessionError> for ToolError {
    fn from(err: SessionError) -> Self {
        match err {
            SessionError::Unavailable => {
                ToolError::new(ErrorKind::SessionUnavailable, err.to_string())
            }
            SessionError::UnknownEnvironment => {
                ToolError::validation("environment_id", err.to_string())
            }
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
#[derive(Debug, Clone)]
pub enum ToolReply {
    /// The tool answered, its JSON encoded once (both wire formats place it as it is). `error`
    /// is set when the answer is itself a negative verdict (validate-credentials:
    /// `valid: false`), with AWS's `error_code`: MCP marks it `isError`, the envelope still
    /// answers RESPONSE, as the reference document shows.
    Answer {
        body: Json,
        error: Option<ErrorKind>,
        error_code: Option<String>,
    },
    Failure(ToolError),
}

impl PartialEq for ToolReply {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (
                ToolReply::Answer {
                    body,
                    error,
                    error_code,
                },
                ToolReply::Answer {
                    body: b,
                    error: e,
                    error_code: c,
                },
            ) => body == b && error == e && error_code == c,
            (ToolReply::Failure(a), ToolReply::Failure(b)) => a == b,
            _ => false,
        }
    }
}

/// The length a tool's answer is written for: get-credentials', the answer sent most, fits
/// without growing (and being copied) as it is written.
pub(crate) const ANSWER_BYTES: usize = 1024;

/// The failure of a call whose answer could not be written as JSON. Answers are plain data,
/// which serde_json always writes; should one ever fail, the call says so rather than panic.
fn unencodable() -> ToolError {
    ToolError::new(
        ErrorKind::ExecutionError,
        "the tool's answer could not be encoded as JSON",
    )
}

impl ToolReply {
    pub fn ok(body: Value) -> Self {
        Self::answer(&body)
    }

    /// A successful answer from any serializable type (the hot tools write theirs straight
    /// from typed data, without a `Value` tree).
    pub fn answer(body: &impl Serialize) -> Self {
        Self::written(json::to_json(body, ANSWER_BYTES))
    }

    /// A successful answer from its text, as a tool wrote it.
    pub(crate) fn written(body: Result<Json, serde_json::Error>) -> Self {
        match body {
            Ok(body) => ToolReply::Answer {
                body,
                error: None,
                error_code: None,
            },
            Err(_) => ToolReply::Failure(unencodable()),
        }
    }

    /// An answer that is a negative verdict, with the AWS error code it carries.
    pub fn verdict(body: Value, error: ErrorKind) -> Self {
        let error_code = body
            .get("error_code")
            .and_then(Value::as_str)
            .map(str::to_owned);
        match Self::written(json::to_json(&body, ANSWER_BYTES)) {
            ToolReply::Answer { body, .. } => ToolReply::Answer {
                body,
                error: Some(error),
                error_code,
            },
            failure => failure,
        }
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
            ToolReply::Answer { error_code, .. } => error_code.as_deref(),
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

/// What a tool call produced, and where its credentials came from (for the audit record).
#[derive(Debug)]
pub struct Called {
    pub reply: ToolReply,
    /// `credentials_source`, when the call resolved credentials.
    pub credentials_source: Option<Cow<'static, str>>,
    /// The caller, as the connection's `$connect` (or the handle's maker) saw it, when the call
    /// read one; else the caller is the request's, which is not copied here.
    pub caller: Option<Caller>,
}

/// Every tool call passes through here, whatever its wire format: the rate limits, the tool,
/// and the metrics recorder. A call refused by a rate limit is recorded as `rate_limited` and
/// not run; one that cannot be admitted because the session store failed is answered
/// `session_unavailable`.
pub async fn call(
    state: &AppState,
    origin: &Origin,
    tool: ToolName,
    arguments: &Map<String, Value>,
) -> Result<Called, RateLimited> {
    let started = Instant::now();
    let admitted = state
        .sessions
        .admit(&origin.subject(), tool.tests_credentials())
        .await;
    let mut call = Call {
        state,
        origin,
        source: None,
        caller: None,
    };
    let reply = match admitted {
        Ok(()) => run(&mut call, tool, arguments, started).await,
        Err(Refused::Limited(limited)) => {
            state
                .metrics
                .record(tool, Some(ErrorType::RateLimited), started.elapsed());
            return Err(limited);
        }
        Err(Refused::Unavailable) => ToolReply::Failure(SessionError::Unavailable.into()),
    };
    let error = reply.error_kind().map(ErrorType::Tool);
    state.metrics.record(tool, error, started.elapsed());
    Ok(Called {
        reply,
        credentials_source: call.source,
        caller: call.caller,
    })
}

/// Runs a tool. The tool call's deadline is owned here: twice the operation time-out plus the
/// connect time-out from `started`, above any one AWS call's own (the SDK owns those), so a
/// call that makes two AWS calls (an AssumeRole, then GetCallerIdentity) can finish. Either
/// deadline ends in the same answer: the call timed out.
async fn run(
    call: &mut Call<'_>,
    tool: ToolName,
    arguments: &Map<String, Value>,
    started: Instant,
) -> ToolReply {
    let config = &call.state.config;
    let limit = config.operation_timeout * 2 + config.connect_timeout;
    // The tools that call AWS have large futures (the SDK's operation state): boxed, so that
    // the future of every call, get-credentials' included, stays small and is not copied
    // around at its full size on each move; pinned here, where it is made, and lent.
    let work = pin!(async {
        match tool {
            ToolName::GetCredentials => get_credentials::run(call, arguments).await,
            ToolName::SetEnvironment => {
                Box::pin(set_environment::run(call, arguments)).await.into()
            }
            ToolName::ListProfiles => Box::pin(list_profiles::run(call, arguments)).await.into(),
            ToolName::GetAccountInfo => Box::pin(get_account_info::run(call, arguments)).await,
            ToolName::ValidateCredentials => {
                Box::pin(validate_credentials::run(call, arguments)).await
            }
        }
    });
    by(started + limit, work).await.unwrap_or_else(|| {
        tracing::info!(
            tool = tool.reference_name(),
            limit_ms = limit.as_millis() as u64,
            "tool call deadline passed"
        );
        ToolReply::Failure(AwsError::new("AWS", Cause::TimedOut).into())
    })
}

/// `work`'s output, or `None` if it is not done by `deadline`. Most calls need nothing from
/// the network (get-credentials, a cached answer) and finish on their first poll, which is
/// made before the deadline's timer: making the timer costs more than such a call. Work that
/// is still waiting gets the timer.
async fn by<F: Future>(deadline: Instant, mut work: Pin<&mut F>) -> Option<F::Output> {
    if let Poll::Ready(output) = poll_fn(|cx| Poll::Ready(work.as_mut().poll(cx))).await {
        return Some(output);
    }
    tokio::time::timeout_at(deadline.into(), work).await.ok()
}

/// What a tool sees of the world: the state, where the message came from, and what the call
/// found out on the way (for the audit record), each the first it found. A call is one tool's,
/// lent to it alone (`&mut`): what it finds is written without a lock.
pub(crate) struct Call<'a> {
    pub state: &'a AppState,
    pub origin: &'a Origin,
    source: Option<Cow<'static, str>>,
    caller: Option<Caller>,
}

/// Credentials and region a call runs with.
pub(crate) struct Context<'a> {
    pub resolved: Resolved,
    /// The region in effect, if one is configured anywhere: the configuration's is borrowed.
    pub region: Option<Cow<'a, str>>,
    /// The overrides of the connection or handle, as stored.
    pub stored: Stored,
}

impl<'a> Call<'a> {
    /// The overrides of the handle named by `environment_id`, else of the connection, read
    /// from the session store.
    pub async fn stored(&mut self, environment_id: Option<&str>) -> Result<Stored, ToolError> {
        let mut stored = self
            .state
            .sessions
            .read(self.origin, environment_id)
            .await?;
        // Moved, not copied: tools read the caller through [`Call::caller`], not `Stored`.
        if let Some(caller) = stored.caller.take() {
            self.caller.get_or_insert(caller);
        }
        Ok(stored)
    }

    /// The caller as known: `$connect`'s identity (or the handle's), else this request's.
    pub fn caller(&self) -> &Caller {
        self.caller.as_ref().unwrap_or(&self.origin.caller)
    }

    /// The `credentials_source` label of the credentials [`Call::context`] resolved, as the
    /// audit record carries it; empty before they are resolved.
    pub fn credentials_source(&self) -> &str {
        self.source.as_deref().unwrap_or("")
    }

    /// Resolves credentials (explicit profile, stored overrides, environment, default chain)
    /// and the region: stored override, then `AWS_REGION`/`AWS_DEFAULT_REGION`, then the
    /// profile's `region`, as the AWS CLI orders them.
    pub async fn context(
        &mut self,
        profile: Option<&str>,
        environment_id: Option<&str>,
    ) -> Result<Context<'a>, ToolError> {
        let state = self.state;
        let stored = self.stored(environment_id).await?;
        let resolved = state
            .credentials
            .resolve(profile, stored.credentials.as_ref(), &state.profiles)
            .await?;
        self.source.get_or_insert_with(|| resolved.source.label());
        let region = match (&stored.region, state.config.aws.effective_region()) {
            (Some(region), _) => Some(Cow::Owned(region.clone())),
            (None, Some(region)) => Some(Cow::Borrowed(region)),
            (None, None) => match resolved.source.profile() {
                Some(name) => state.profiles.region(name).await.map(Cow::Owned),
                None => None,
            },
        };
        Ok(Context {
            resolved,
            region,
            stored,
        })
    }
}

/// Now, as the reference document writes it: `2025-09-30T12:00:00.000Z`.
pub(crate) fn timestamp() -> String {
    with_timestamp(str::to_owned)
}

/// `f` of [`timestamp`]'s text, written in a buffer of this thread's rather than a new string.
pub(crate) fn with_timestamp<R>(f: impl FnOnce(&str) -> R) -> R {
    with_formatted(chrono::Utc::now(), f)
}

/// `f` of `now` as [`timestamp`] writes it. The date and time up to the second are formatted
/// once per second on each thread, and the milliseconds added: formatting all of it took 5%
/// of a get-credentials call.
fn with_formatted<R>(now: chrono::DateTime<chrono::Utc>, f: impl FnOnce(&str) -> R) -> R {
    use std::cell::RefCell;
    thread_local! {
        /// The second last formatted, its text's length up to the second (`…T12:00:00`), and
        /// the text, which may end with the last call's milliseconds: they are cut off when
        /// the next are added, so that an `f` that did not return leaves nothing behind.
        static SECOND: RefCell<(i64, usize, String)> =
            const { RefCell::new((i64::MIN, 0, String::new())) };
    }
    let millis = now.timestamp_subsec_millis();
    let whole = |now: chrono::DateTime<chrono::Utc>| {
        now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    };
    if millis >= 1000 {
        // A leap second: chrono writes it as `:60`.
        return f(&whole(now));
    }
    SECOND.with(|second| {
        let Ok(mut second) = second.try_borrow_mut() else {
            // `f` of an outer call asked for a timestamp.
            return f(&whole(now));
        };
        let (at, length, text) = &mut *second;
        if *at != now.timestamp() {
            *text = now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            text.pop(); // the `Z`
            *at = now.timestamp();
            *length = text.len();
        }
        text.truncate(*length);
        // `.mmmZ`, digit by digit: `write!` goes through the formatting machinery, a tenth of
        // the call's cost here.
        let digit = |value: u32| char::from(b'0' + (value % 10) as u8);
        text.push('.');
        text.extend([digit(millis / 100), digit(millis / 10), digit(millis), 'Z']);
        f(text)
    })
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

/// Schema for `environment_id`, taken by every tool that uses credentials.
fn environment_id_property() -> Value {
    json!({
        "type": "string",
        "pattern": "^env_[A-Za-z0-9_-]{22}$",
        "description": "The environment_id an earlier aws_set_environment answered: its credentials and region are used instead of the connection's. Needed over HTTP, where calls share no connection."
    })
}

/// The caller in an answer: who is asking, beside whose credentials answer.
fn caller_property() -> Value {
    json!({
        "type": ["object", "null"],
        "description": "Who is calling, as API Gateway authenticated the connection or request (null when not known).",
        "properties": {
            "arn": nullable_string(),
            "account_id": nullable_string(),
            "source_ip": nullable_string()
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

    /// Work done on its first poll is answered, whatever the deadline; work still waiting is
    /// answered if it finishes in time and given up at the deadline, which counts from the
    /// instant passed, not from the first poll.
    #[tokio::test]
    async fn work_is_given_up_at_its_deadline() {
        use std::time::Duration;
        let far = Instant::now() + Duration::from_secs(600);
        let passed = Instant::now();
        assert_eq!(by(passed, pin!(async { 1 })).await, Some(1));
        let waits_once = async {
            tokio::task::yield_now().await;
            2
        };
        assert_eq!(by(far, pin!(waits_once)).await, Some(2));
        let never = std::future::pending::<u8>;
        assert_eq!(by(passed, pin!(never())).await, None);
        let soon = Instant::now() + Duration::from_millis(20);
        assert_eq!(by(soon, pin!(never())).await, None);
        assert!(Instant::now() >= soon, "given up before its deadline");
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

    /// The timestamp is chrono's RFC 3339 with milliseconds, whether its second was formatted
    /// for an earlier call or not: within one second, into the next, back to an earlier one,
    /// and in a leap second.
    #[test]
    fn timestamps_are_rfc_3339_with_milliseconds() {
        use chrono::{DateTime, TimeZone, Utc};
        let at = |secs: i64, nanos: u32| Utc.timestamp_opt(secs, nanos).unwrap();
        let leap = chrono::NaiveDate::from_ymd_opt(2016, 12, 31)
            .unwrap()
            .and_hms_nano_opt(23, 59, 59, 1_500_000_000)
            .unwrap()
            .and_utc();
        let instants: [DateTime<Utc>; 7] = [
            at(1_795_000_000, 0),
            at(1_795_000_000, 7_000_000),
            at(1_795_000_000, 999_999_999),
            at(1_795_000_001, 50_000_000),
            at(1_700_000_000, 123_456_789),
            leap,
            at(1_795_000_001, 51_000_000),
        ];
        let format_timestamp = |now| with_formatted(now, str::to_owned);
        for now in instants {
            assert_eq!(
                format_timestamp(now),
                now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "{now:?}"
            );
        }
        assert_eq!(
            format_timestamp(at(1_795_000_001, 51_000_000)),
            "2026-11-18T11:06:41.051Z"
        );
        assert_eq!(format_timestamp(leap), "2016-12-31T23:59:60.500Z");
        // Asked for again while the thread's buffer is lent out: written whole, both right.
        let outer = at(1_795_000_001, 51_000_000);
        let inner = at(1_700_000_000, 123_456_789);
        let both = with_formatted(outer, |first| [first, &format_timestamp(inner)].join(" "));
        assert_eq!(both, "2026-11-18T11:06:41.051Z 2023-11-14T22:13:20.123Z");
        assert_eq!(format_timestamp(outer), "2026-11-18T11:06:41.051Z");
        // An `f` that does not return leaves the next timestamp whole.
        let unwound = std::panic::catch_unwind(|| with_formatted(outer, |_| panic!("f failed")));
        assert!(unwound.is_err());
        assert_eq!(format_timestamp(outer), "2026-11-18T11:06:41.051Z");
    }
}
