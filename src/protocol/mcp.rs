//! MCP over JSON-RPC 2.0, with rmcp's model types, in both eras of the protocol, chosen per
//! message:
//!
//! - **2026-07-28** (modern): a request whose `params._meta` carries
//!   `io.modelcontextprotocol/protocolVersion` is served statelessly: the required `_meta` keys
//!   are checked, an unsupported version gets -32022 with the supported list, and
//!   `server/discover`, `tools/list` and `tools/call` answer with `resultType: "complete"` and
//!   the server's identity in `_meta` (and cache hints on `tools/list`); there is no `ping`.
//! - **2025-03-26, 2025-06-18, 2025-11-25** (handshake era): `initialize`, `ping`, `tools/list`,
//!   `tools/call`, notifications, and batches (2025-03-26).
//!
//! A request that cannot be routed or read is a JSON-RPC error (-32700 parse, -32600 invalid
//! request, -32601 unknown method, -32602 invalid params, [`RATE_LIMITED`]); a tool that ran
//! and failed is a `tools/call` result with `isError: true`, which the model can read.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::sync::LazyLock;

use rmcp::model::{
    CacheScope, DiscoverResult, EmptyResult, ErrorCode, ErrorData, Implementation,
    InitializeResult, ListToolsResult, NumberOrString, ProtocolVersion, RequestId,
    ServerCapabilities, ToolsCapability,
};
use serde::Serialize;
use serde::de::value::SeqAccessDeserializer;
use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use super::{MAX_ID_BYTES, MAX_REPLY_BYTES, MAX_TOOL_REPLY_BYTES, Outcome, Summary, loggable};
use crate::json;
use crate::names::ToolName;
use crate::session::Origin;
use crate::state::AppState;
use crate::tools::{self, ToolReply};

/// The handshake-era revisions this server speaks, newest first. An `initialize` asking for
/// another gets the newest.
pub const SUPPORTED_VERSIONS: [ProtocolVersion; 3] = [
    ProtocolVersion::V_2025_11_25,
    ProtocolVersion::V_2025_06_18,
    ProtocolVersion::V_2025_03_26,
];

/// The revision served per request, without a handshake.
pub const MODERN_VERSION: ProtocolVersion = ProtocolVersion::V_2026_07_28;

/// Every revision this server speaks, newest first: what `server/discover` and -32022 list.
pub const ALL_VERSIONS: [ProtocolVersion; 4] = [
    ProtocolVersion::V_2026_07_28,
    ProtocolVersion::V_2025_11_25,
    ProtocolVersion::V_2025_06_18,
    ProtocolVersion::V_2025_03_26,
];

/// The `_meta` keys of a 2026-07-28 request.
pub const PROTOCOL_VERSION_KEY: &str = "io.modelcontextprotocol/protocolVersion";
pub const CLIENT_CAPABILITIES_KEY: &str = "io.modelcontextprotocol/clientCapabilities";
const SERVER_INFO_KEY: &str = "io.modelcontextprotocol/serverInfo";

/// Codes the specification defines (-32020 to -32099 are its own).
pub const HEADER_MISMATCH: ErrorCode = ErrorCode(-32020);
pub const UNSUPPORTED_PROTOCOL_VERSION: ErrorCode = ErrorCode(-32022);

/// Implementation-defined server error (-32000 to -32019; -32002 avoided, it meant "resource
/// not found" up to 2025-11-25): the connection's rate limit is exhausted. `data` carries
/// `retryAfterMs`.
pub const RATE_LIMITED: ErrorCode = ErrorCode(-32010);

/// Implementation-defined server error: a request of a batch was not run, because its reply
/// would not have fitted in the batch's answer (128 KB).
pub const BATCH_REPLY_TOO_LARGE: ErrorCode = ErrorCode(-32011);

/// How long a client may keep `tools/list` and `server/discover` answers (2026-07-28 cache
/// hints): the tools change only when the function is deployed again.
pub const LIST_TTL_MS: u64 = 60 * 60 * 1000;

/// Most messages a batch may hold.
pub const MAX_BATCH: usize = 50;

#[derive(Serialize)]
struct Response<'a, T: Serialize> {
    jsonrpc: &'static str,
    id: &'a RequestId,
    result: T,
}

/// An error answer; `id` is `null` when the request's id could not be read, as JSON-RPC 2.0 says.
#[derive(Serialize)]
struct ErrorResponse<'a> {
    jsonrpc: &'static str,
    id: Option<&'a RequestId>,
    error: &'a ErrorData,
}

/// The length an answer other than `tools/call`'s is written for: `ping`'s and the errors fit
/// without growing as they are written.
const ANSWER_BYTES: usize = 256;

fn respond<T: Serialize>(id: &RequestId, result: T) -> String {
    json::to_string(
        &Response {
            jsonrpc: "2.0",
            id,
            result,
        },
        ANSWER_BYTES,
    )
    .unwrap_or_else(|_| unencodable(id))
}

/// The answer should a result ever fail to encode (the results are plain data, which always
/// do): an internal error, never a panic or an answer cut short.
fn unencodable(id: &RequestId) -> String {
    error_text(
        Some(id),
        &ErrorData::internal_error("could not encode the result", None),
    )
}

fn error_text(id: Option<&RequestId>, error: &ErrorData) -> String {
    json::to_string(
        &ErrorResponse {
            jsonrpc: "2.0",
            id,
            error,
        },
        ANSWER_BYTES,
    )
    .unwrap_or_else(|_| {
        r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32603,"message":"internal error"}}"#
            .to_owned()
    })
}

/// A JSON-RPC error for a message refused before it could be routed.
pub fn refusal(id: Option<&RequestId>, code: ErrorCode, message: String) -> (String, Summary) {
    let mut summary = Summary::new("mcp");
    summary.outcome = Outcome::Rejected(code.0.to_string());
    (
        error_text(id, &ErrorData::new(code, message, None)),
        summary,
    )
}

/// The `tools/list` result, encoded from [`tools::definitions`] ahead of time: building the
/// schemas and encoding them is a third of a cold Lambda's work for its first `tools/list`.
/// `tools_list_json_is_current` checks that the file matches the definitions, and rewrites it
/// with `UPDATE_TOOLS_LIST=1 cargo test --lib tools_list_json_is_current`.
const TOOLS_LIST_JSON: &str = include_str!("tools_list.json");

fn encode_tools_list() -> String {
    let mut result = ListToolsResult::with_all_items(tools::definitions().to_vec());
    // rmcp 3.11 adds `resultType` for 2026-07-28, which clients on the versions this list is
    // for must not get.
    result.result_type = None;
    serde_json::to_string(&result).unwrap_or_else(|_| "{\"tools\":[]}".to_owned())
}

fn tools_list() -> &'static RawValue {
    static LIST: LazyLock<&'static RawValue> = LazyLock::new(|| {
        serde_json::from_str::<&'static RawValue>(TOOLS_LIST_JSON.trim_end()).unwrap_or_else(|_| {
            // Unreachable while the test passes; encode the definitions rather than fail.
            let encoded =
                RawValue::from_string(encode_tools_list()).unwrap_or_else(|_| unreachable!());
            &*Box::leak(encoded)
        })
    });
    *LIST
}

fn capabilities() -> ServerCapabilities {
    let mut tools = ToolsCapability::default();
    tools.list_changed = Some(false);
    let mut capabilities = ServerCapabilities::default();
    capabilities.tools = Some(tools);
    capabilities
}

fn server_info() -> Implementation {
    Implementation::new(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"))
        .with_title("AWS identity tools")
}

const INSTRUCTIONS: &str = "AWS identity tools: aws_get_credentials shows the credentials in \
    effect (masked), aws_list_profiles the named profiles, aws_get_account_info and \
    aws_validate_credentials ask STS who the credentials belong to, and aws_set_environment sets \
    credentials or a region and answers an environment_id; pass that environment_id to later \
    calls to use them (needed over HTTP, where calls share no connection).";

/// `initialize`'s answer, serialized as itself: through rmcp's `ServerResult`, every result's
/// serializer would be in the build.
fn initialize_result(version: ProtocolVersion) -> InitializeResult {
    InitializeResult::new(capabilities())
        .with_protocol_version(version)
        .with_server_info(server_info())
        .with_instructions(INSTRUCTIONS)
}

/// `server/discover`'s answer (2026-07-28).
fn discover_result() -> DiscoverResult {
    let mut result = DiscoverResult::new(ALL_VERSIONS.to_vec(), capabilities())
        .with_server_info(server_info())
        .with_ttl_ms(LIST_TTL_MS)
        .with_cache_scope(CacheScope::Public);
    result.instructions = Some(INSTRUCTIONS.to_owned());
    result
}

/// A 2026-07-28 result: `resultType: "complete"` and the server's identity in `_meta`.
fn modern(mut result: Value) -> Value {
    if let Value::Object(object) = &mut result {
        object.insert("resultType".into(), json!("complete"));
        let meta = object
            .entry("_meta")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(meta) = meta {
            meta.insert(SERVER_INFO_KEY.into(), json!(server_info()));
        }
    }
    result
}

/// The `tools/list` result of 2026-07-28: the same tools, with cache hints (public: the list is
/// the same for every caller).
fn modern_tools_list() -> &'static RawValue {
    static LIST: LazyLock<&'static RawValue> = LazyLock::new(|| {
        let mut list: Value = serde_json::from_str(tools_list().get()).unwrap_or_default();
        list["ttlMs"] = json!(LIST_TTL_MS);
        list["cacheScope"] = json!("public");
        let text = modern(list).to_string();
        let raw = RawValue::from_string(text).unwrap_or_else(|_| unreachable!("JSON"));
        &*Box::leak(raw)
    });
    *LIST
}

/// The fields of a JSON-RPC message this server reads; any other is ignored. A field that is
/// present holds its value, `null` included; one that is absent is `None`. `params` may carry a
/// secret key (`aws_set_environment`), so there is no `Debug` outside the tests.
#[derive(Default)]
#[cfg_attr(test, derive(Debug, PartialEq))]
pub struct Message<'a> {
    jsonrpc: Option<Value>,
    id: Option<Value>,
    method: Option<Value>,
    params: Option<Params<'a>>,
    /// A response's fields: a message with either is an answer, not a request.
    result: Option<IgnoredAny>,
    error: Option<IgnoredAny>,
}

impl<'a> Message<'a> {
    /// Read straight from a message's text into its fields, without building a tree of the
    /// whole message (its keys allocated and hashed into a map, then looked up and removed): the
    /// common case. `None` for anything else (not an object, a field twice, no `jsonrpc`,
    /// `tools/call` params that are not what it takes), which [`super::dispatch`] then reads as
    /// a tree and routes.
    pub fn read(text: &'a str) -> Option<Self> {
        super::read_fields(text).filter(|message: &Self| message.jsonrpc.is_some())
    }

    /// The fields of a message already read as a tree (a batch's items, the general path).
    pub fn take(mut object: Map<String, Value>) -> Self {
        Self {
            jsonrpc: object.remove("jsonrpc"),
            id: object.remove("id"),
            method: object.remove("method"),
            params: object.remove("params").map(Params::from_value),
            result: object.contains_key("result").then_some(IgnoredAny),
            error: object.contains_key("error").then_some(IgnoredAny),
        }
    }
}

/// A message's fields by name; any other is ignored.
#[derive(serde::Deserialize)]
#[serde(field_identifier, rename_all = "lowercase")]
enum Field {
    Jsonrpc,
    Id,
    Method,
    Params,
    Result,
    Error,
    #[serde(other)]
    Other,
}

impl<'de> Deserialize<'de> for Message<'de> {
    fn deserialize<D: Deserializer<'de>>(value: D) -> Result<Self, D::Error> {
        value.deserialize_map(MessageVisitor)
    }
}

/// Reads a message's fields in the order they come. `params` that follow a `tools/call`
/// method are read straight into that method's fields.
struct MessageVisitor;

impl<'de> Visitor<'de> for MessageVisitor {
    type Value = Message<'de>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a JSON-RPC message")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Message<'de>, A::Error> {
        /// Each field once: a field given twice is left to the tree, as a map reads it.
        /// Inlined: called, it cost every message about 40 instructions (callgrind).
        #[inline(always)]
        fn once<'de, S: de::DeserializeSeed<'de>, A: MapAccess<'de>>(
            field: &mut Option<S::Value>,
            name: &'static str,
            map: &mut A,
            seed: S,
        ) -> Result<(), A::Error> {
            if field.is_some() {
                return Err(de::Error::duplicate_field(name));
            }
            *field = Some(map.next_value_seed(seed)?);
            Ok(())
        }
        let mut message = Message::default();
        while let Some(field) = map.next_key::<Field>()? {
            match field {
                Field::Jsonrpc => once(&mut message.jsonrpc, "jsonrpc", &mut map, PhantomData)?,
                Field::Id => once(&mut message.id, "id", &mut map, PhantomData)?,
                Field::Method => once(&mut message.method, "method", &mut map, PhantomData)?,
                Field::Params => {
                    let call =
                        matches!(&message.method, Some(Value::String(m)) if m == "tools/call");
                    once(&mut message.params, "params", &mut map, ParamsSeed { call })?;
                }
                Field::Result => once(&mut message.result, "result", &mut map, PhantomData)?,
                Field::Error => once(&mut message.error, "error", &mut map, PhantomData)?,
                Field::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(message)
    }
}

/// A request's params as read. Like the message, they may carry a secret: no `Debug` outside
/// the tests.
#[cfg_attr(test, derive(Debug, PartialEq))]
enum Params<'a> {
    /// `tools/call`'s, the request sent most, read straight into their fields: when the method
    /// comes before them, as clients write it.
    Call(CallParams<'a>),
    /// An object's members in their order: not made a map (each key hashed, a table allocated)
    /// unless the method wants one.
    Members(Vec<(String, Value)>),
    /// Any other value.
    Other(Value),
}

impl Params<'_> {
    fn from_value(value: Value) -> Self {
        match value {
            Value::Object(object) => Params::Members(object.into_iter().collect()),
            other => Params::Other(other),
        }
    }

    /// `_meta`: the last member of the name, as a map of the params would hold it.
    fn meta(&self) -> Option<&Value> {
        match self {
            Params::Call(call) => call.meta.as_ref(),
            Params::Members(members) => member(members, "_meta"),
            Params::Other(_) => None,
        }
    }

    /// The members of params that are an object.
    fn members(self) -> Vec<(String, Value)> {
        match self {
            Params::Members(members) => members,
            // Read into fields only after a `tools/call` method, which reads them so.
            Params::Call(_) | Params::Other(_) => Vec::new(),
        }
    }
}

/// `tools/call` params read straight into their fields: an object with a string `name`, and
/// `arguments` an object or `null`; other members are ignored. Params that are not so make the
/// message one for the tree, whose members say what is wrong with them.
#[derive(serde::Deserialize)]
#[cfg_attr(test, derive(Debug, PartialEq))]
struct CallParams<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(default)]
    arguments: Option<Map<String, Value>>,
    #[serde(rename = "_meta", default, deserialize_with = "super::present")]
    meta: Option<Value>,
}

/// The last member named `key` (a key given twice means its last value, as in a map).
fn member<'a>(members: &'a [(String, Value)], key: &str) -> Option<&'a Value> {
    members
        .iter()
        .rev()
        .find(|(name, _)| name == key)
        .map(|(_, value)| value)
}

/// Reads params: after a `tools/call` method into its fields, else an object into its members
/// and any other value as serde_json reads it.
struct ParamsSeed {
    call: bool,
}

impl<'de> de::DeserializeSeed<'de> for ParamsSeed {
    type Value = Params<'de>;

    fn deserialize<D: Deserializer<'de>>(self, value: D) -> Result<Params<'de>, D::Error> {
        if self.call {
            CallParams::deserialize(value).map(Params::Call)
        } else {
            value.deserialize_any(self)
        }
    }
}

impl<'de> Visitor<'de> for ParamsSeed {
    type Value = Params<'de>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Params<'de>, A::Error> {
        let mut members = Vec::new();
        while let Some(member) = map.next_entry::<String, Value>()? {
            members.push(member);
        }
        Ok(Params::Members(members))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Params<'de>, A::Error> {
        Value::deserialize(SeqAccessDeserializer::new(seq)).map(Params::Other)
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Params<'de>, E> {
        Ok(Params::Other(Value::Bool(value)))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Params<'de>, E> {
        Ok(Params::Other(Value::from(value)))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Params<'de>, E> {
        Ok(Params::Other(Value::from(value)))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Params<'de>, E> {
        Ok(Params::Other(Value::from(value)))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Params<'de>, E> {
        Ok(Params::Other(Value::String(value.to_owned())))
    }

    fn visit_string<E: de::Error>(self, value: String) -> Result<Params<'de>, E> {
        Ok(Params::Other(Value::String(value)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Params<'de>, E> {
        Ok(Params::Other(Value::Null))
    }
}

pub async fn handle(
    state: &AppState,
    origin: &Origin,
    message: Message<'_>,
) -> (Option<String>, Summary) {
    let id = match &message.id {
        None => None,
        Some(Value::String(s)) if s.len() > MAX_ID_BYTES => {
            let (reply, summary) = refusal(
                None,
                ErrorCode::INVALID_REQUEST,
                format!("id is longer than {MAX_ID_BYTES} bytes"),
            );
            return (Some(reply), summary);
        }
        Some(Value::String(s)) => Some(NumberOrString::String(s.as_str().into())),
        Some(Value::Number(n)) if n.is_i64() => n.as_i64().map(NumberOrString::Number),
        Some(_) => {
            let (reply, summary) = refusal(
                None,
                ErrorCode::INVALID_REQUEST,
                "id must be a string or an integer".into(),
            );
            return (Some(reply), summary);
        }
    };
    let (reply, mut summary) = handle_message(state, origin, id.as_ref(), message).await;
    summary.request_id = id.as_ref().map(|id| loggable(&id.to_string()).to_owned());
    (reply, summary)
}

/// Which rules a request is served by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Era {
    /// 2025-03-26 to 2025-11-25: the `initialize` handshake.
    Handshake,
    /// 2026-07-28: per-request `_meta`, no handshake.
    Modern,
}

/// A request that the 2026-07-28 rules refuse: its code, message and `data`.
pub type Refusal = (ErrorCode, String, Option<Value>);

/// The era of a request: 2026-07-28 when its `_meta` names a protocol version, or when the
/// transport declared one (the `MCP-Protocol-Version` header); then the required `_meta` keys
/// must be there (the first rung of the specification's validation ladder).
pub fn era(params: Option<&Value>, declared_modern: bool) -> Result<Era, Refusal> {
    era_of(params.and_then(|p| p.get("_meta")), declared_modern)
}

/// [`era`], from the request's `params._meta`.
fn era_of(meta: Option<&Value>, declared_modern: bool) -> Result<Era, Refusal> {
    let names_version = meta.is_some_and(|m| m.get(PROTOCOL_VERSION_KEY).is_some());
    if !names_version && !declared_modern {
        return Ok(Era::Handshake);
    }
    let Some(meta) = meta.and_then(Value::as_object) else {
        return Err((
            ErrorCode::INVALID_PARAMS,
            format!(
                "params._meta must be an object carrying {PROTOCOL_VERSION_KEY} and {CLIENT_CAPABILITIES_KEY}"
            ),
            None,
        ));
    };
    let missing: Vec<&str> = [PROTOCOL_VERSION_KEY, CLIENT_CAPABILITIES_KEY]
        .into_iter()
        .filter(|key| !meta.contains_key(*key))
        .collect();
    if !missing.is_empty() {
        return Err((
            ErrorCode::INVALID_PARAMS,
            format!(
                "params._meta is missing the required key(s): {}",
                missing.join(", ")
            ),
            None,
        ));
    }
    Ok(Era::Modern)
}

/// The last rung: the version in `params._meta` is one this server serves per request.
fn modern_version(meta: Option<&Value>) -> Result<(), Refusal> {
    match meta.and_then(|m| m.get(PROTOCOL_VERSION_KEY)) {
        Some(Value::String(version)) if *version == MODERN_VERSION.as_str() => Ok(()),
        Some(Value::String(version)) => Err(unsupported_version(version)),
        _ => Err((
            ErrorCode::INVALID_PARAMS,
            format!("{PROTOCOL_VERSION_KEY} must be a string"),
            None,
        )),
    }
}

/// -32022 for a version this server does not serve, with the ones it does.
pub fn unsupported_version(requested: &str) -> Refusal {
    (
        UNSUPPORTED_PROTOCOL_VERSION,
        "Unsupported protocol version".to_owned(),
        Some(json!({
            "supported": ALL_VERSIONS.map(|v| v.as_str().to_owned()),
            // The client's own value, bounded: it names what it asked for.
            "requested": requested.chars().take(64).collect::<String>(),
        })),
    )
}

async fn handle_message(
    state: &AppState,
    origin: &Origin,
    id: Option<&RequestId>,
    mut message: Message<'_>,
) -> (Option<String>, Summary) {
    let refuse = |code: ErrorCode, message: String| {
        let (reply, summary) = refusal(id, code, message);
        (Some(reply), summary)
    };
    if message.jsonrpc.as_ref().and_then(Value::as_str) != Some("2.0") {
        return refuse(ErrorCode::INVALID_REQUEST, "jsonrpc must be \"2.0\"".into());
    }
    let method = match message.method.take() {
        Some(Value::String(method)) => method,
        Some(_) => return refuse(ErrorCode::INVALID_REQUEST, "method must be a string".into()),
        None if message.result.is_some() || message.error.is_some() => {
            // A response to a request this server never sends: nothing to answer, but logged.
            let mut summary = Summary::new("mcp");
            summary.outcome = Outcome::NoReply("unexpected_response");
            return (None, summary);
        }
        None => return refuse(ErrorCode::INVALID_REQUEST, "missing field method".into()),
    };
    let mut summary = Summary::new("mcp");
    summary.method = Some(known_method(&method));

    let Some(id) = id else {
        // Notifications (notifications/initialized, notifications/cancelled, ...) get no reply.
        summary.outcome = Outcome::NoReply("notification");
        return (None, summary);
    };
    let era = match era_of(
        message.params.as_ref().and_then(Params::meta),
        origin.declared_modern,
    ) {
        Ok(era) => era,
        Err((code, message, data)) => {
            let mut summary = summary;
            summary.outcome = Outcome::Rejected(code.0.to_string());
            return (
                Some(error_text(Some(id), &ErrorData::new(code, message, data))),
                summary,
            );
        }
    };
    let params = match message.params.take() {
        None | Some(Params::Other(Value::Null)) => Params::Members(Vec::new()),
        Some(Params::Other(_)) => {
            return refuse(ErrorCode::INVALID_PARAMS, "params must be an object".into());
        }
        Some(params) => params,
    };
    if era == Era::Modern {
        summary.format = "mcp 2026-07-28";
        if let Err((code, message, data)) = modern_version(params.meta()) {
            summary.outcome = Outcome::Rejected(code.0.to_string());
            let error = ErrorData::new(code, message, data);
            return (Some(error_text(Some(id), &error)), summary);
        }
    }

    let reply = match (era, method.as_str()) {
        (Era::Handshake, "initialize") => {
            match initialize_version(&params.members().into_iter().collect()) {
                Ok(version) => respond(id, initialize_result(version)),
                Err(message) => {
                    return refuse(
                        ErrorCode::INVALID_PARAMS,
                        format!("invalid initialize params: {message}"),
                    );
                }
            }
        }
        (Era::Handshake, "ping") => respond(id, EmptyResult {}),
        (Era::Modern, "server/discover") => respond(id, modern(json!(discover_result()))),
        (_, "tools/list") => {
            if member(&params.members(), "cursor").is_some_and(|c| !c.is_null()) {
                return refuse(
                    ErrorCode::INVALID_PARAMS,
                    "invalid cursor: tools/list has a single page".into(),
                );
            }
            match era {
                Era::Handshake => respond(id, tools_list()),
                Era::Modern => respond(id, modern_tools_list()),
            }
        }
        (_, "tools/call") => match call_tool(state, origin, id, params, era, &mut summary).await {
            Ok(reply) => reply,
            Err((code, message, data)) => {
                summary.outcome = Outcome::Rejected(code.0.to_string());
                let error = ErrorData::new(code, message, data);
                return (Some(error_text(Some(id), &error)), summary);
            }
        },
        (Era::Handshake, _) => {
            return refuse(
                ErrorCode::METHOD_NOT_FOUND,
                "method not found; this server answers initialize, ping, tools/list and tools/call"
                    .into(),
            );
        }
        (Era::Modern, _) => {
            return refuse(
                ErrorCode::METHOD_NOT_FOUND,
                "method not found; with 2026-07-28 this server answers server/discover, tools/list and tools/call"
                    .into(),
            );
        }
    };
    (Some(reply), summary)
}

/// `tools/call`: the tool, through [`tools::call`]; the result in the request's era.
async fn call_tool(
    state: &AppState,
    origin: &Origin,
    id: &RequestId,
    params: Params<'_>,
    era: Era,
    summary: &mut Summary,
) -> Result<String, Refusal> {
    let (name, arguments) =
        call_params(params).map_err(|message| (ErrorCode::INVALID_PARAMS, message, None))?;
    let Some(tool) = ToolName::parse(&name) else {
        let known: Vec<&str> = ToolName::ALL.iter().map(|t| t.mcp_name()).collect();
        return Err((
            ErrorCode::INVALID_PARAMS,
            format!("unknown tool; available: {}", known.join(", ")),
            None,
        ));
    };
    summary.tool = Some(tool);
    let called = match tools::call(state, origin, tool, &arguments).await {
        Ok(called) => called,
        Err(limited) => {
            return Err((
                RATE_LIMITED,
                limited.to_string(),
                Some(json!({ "retryAfterMs": limited.retry_after_ms() })),
            ));
        }
    };
    summary.credentials_source = called.credentials_source;
    summary.caller = called.caller;
    let reply = called.reply;
    summary.error_code = reply.error_code().map(str::to_owned);
    summary.outcome = reply.error_kind().map_or(Outcome::Ok, Outcome::ToolError);
    let encode = |reply: ToolReply| encode_call_result(id, era, reply);
    let text = encode(reply);
    if text.len() <= MAX_TOOL_REPLY_BYTES {
        return Ok(text);
    }
    tracing::error!(bytes = text.len(), "a tool result exceeded its bound");
    summary.outcome = Outcome::ToolError(crate::names::ErrorKind::ExecutionError);
    Ok(encode(ToolReply::Failure(tools::ToolError::new(
        crate::names::ErrorKind::ExecutionError,
        "the tool's result is too large to send",
    ))))
}

/// The version to answer an `initialize` with: the client's, when this server speaks it, else
/// the newest this server speaks. The params are checked for the shape the specification gives
/// (`protocolVersion`, `capabilities`, `clientInfo` with `name` and `version`); an error names
/// the field, never the value.
fn initialize_version(params: &Map<String, Value>) -> Result<ProtocolVersion, String> {
    let version = match params.get("protocolVersion") {
        Some(Value::String(version)) => version,
        Some(_) => return Err("protocolVersion must be a string".into()),
        None => return Err("missing field protocolVersion".into()),
    };
    match params.get("capabilities") {
        Some(Value::Object(_)) => {}
        Some(_) => return Err("capabilities must be an object".into()),
        None => return Err("missing field capabilities".into()),
    }
    match params.get("clientInfo") {
        Some(Value::Object(info)) => {
            for field in ["name", "version"] {
                match info.get(field) {
                    Some(Value::String(_)) => {}
                    Some(_) => return Err(format!("clientInfo.{field} must be a string")),
                    None => return Err(format!("missing field clientInfo.{field}")),
                }
            }
        }
        Some(_) => return Err("clientInfo must be an object".into()),
        None => return Err("missing field clientInfo".into()),
    }
    Ok(SUPPORTED_VERSIONS
        .into_iter()
        .find(|v| v.to_string() == *version)
        .unwrap_or(ProtocolVersion::V_2025_11_25))
}

/// MCP methods by name, for the log; anything else is logged as `unknown`.
const KNOWN_METHODS: &[&str] = &[
    "server/discover",
    "subscriptions/listen",
    "initialize",
    "ping",
    "tools/list",
    "tools/call",
    "notifications/initialized",
    "notifications/cancelled",
    "notifications/progress",
    "notifications/roots/list_changed",
    "resources/list",
    "resources/read",
    "resources/templates/list",
    "resources/subscribe",
    "prompts/list",
    "prompts/get",
    "logging/setLevel",
    "completion/complete",
];

fn known_method(method: &str) -> &'static str {
    KNOWN_METHODS
        .iter()
        .find(|known| **known == method)
        .copied()
        .unwrap_or("unknown")
}

/// `tools/call` params: `name` (string) and `arguments` (object, optional). Messages name the
/// field, never the value. Members are taken apart in one pass, the last of a name kept (as a
/// map keeps it).
fn call_params(params: Params<'_>) -> Result<(Cow<'_, str>, Map<String, Value>), String> {
    if let Params::Call(call) = params {
        return Ok((call.name, call.arguments.unwrap_or_default()));
    }
    let (mut name, mut arguments) = (None, None);
    for (key, value) in params.members() {
        match key.as_str() {
            "name" => name = Some(value),
            "arguments" => arguments = Some(value),
            _ => {}
        }
    }
    let name = match name {
        Some(Value::String(name)) => Cow::Owned(name),
        Some(_) => return Err("name must be a string".into()),
        None => return Err("missing field name".into()),
    };
    let arguments = match arguments {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(arguments)) => arguments,
        Some(_) => return Err("arguments must be an object".into()),
    };
    Ok((name, arguments))
}

/// `{"io.modelcontextprotocol/serverInfo": …}`, encoded once.
fn server_info_meta() -> &'static RawValue {
    static META: LazyLock<&'static RawValue> = LazyLock::new(|| {
        let text = json!({ SERVER_INFO_KEY: server_info() }).to_string();
        &*Box::leak(RawValue::from_string(text).unwrap_or_else(|_| unreachable!("JSON")))
    });
    *META
}

/// The frame of a `tools/call` answer, without the result and its text copy.
const CALL_FRAME_BYTES: usize = 512;

/// A `tools/call` answer, written straight from its parts: the tool's JSON is written once and
/// placed twice, as `structuredContent` and, for clients that read only text, as text (the
/// schema's `CallToolResult`; 2026-07-28 adds `resultType` and the server info in `_meta`):
/// `{"jsonrpc":"2.0","id":…,"result":{"content":[{"type":"text","text":…}],
/// "structuredContent":…,"isError":…}}`.
fn encode_call_result(id: &RequestId, era: Era, reply: ToolReply) -> String {
    let failure;
    let (structured, answer, is_error) = match &reply {
        ToolReply::Answer { body, error, .. } => (body.get(), Some(body), error.is_some()),
        ToolReply::Failure(err) => {
            failure = err.body().to_string();
            (failure.as_str(), None, true)
        }
    };
    // The text copy is longer than the JSON by its escapes, one per quote.
    let mut text =
        json::Writer::with_capacity(structured.len() * 5 / 2 + CALL_FRAME_BYTES + MAX_ID_BYTES);
    text.raw(r#"{"jsonrpc":"2.0","id":"#);
    text.value(id);
    text.raw(r#","result":{"content":[{"type":"text","text":"#);
    match answer {
        Some(body) => text.string_of(body),
        None => text.string(structured),
    }
    text.raw(r#"}],"structuredContent":"#);
    text.raw(structured);
    text.raw(if is_error {
        r#","isError":true"#
    } else {
        r#","isError":false"#
    });
    if era == Era::Modern {
        text.raw(r#","resultType":"complete","_meta":"#);
        text.raw(server_info_meta().get());
    }
    text.raw("}}");
    text.finish().unwrap_or_else(|_| unencodable(id))
}

/// A JSON-RPC batch (MCP 2025-03-26): each message answered, the answers in one array that
/// fits in 128 KB by construction. Requests run in order; before each, the largest reply it
/// could produce, plus the refusals still owed to the requests after it, must fit in what is
/// left. A request that would not fit is not run, and is answered with
/// [`BATCH_REPLY_TOO_LARGE`], so nothing runs without its reply reaching the client.
pub async fn handle_batch(
    state: &AppState,
    origin: &Origin,
    items: Vec<Value>,
) -> (Option<String>, Vec<Summary>) {
    if items.is_empty() || items.len() > MAX_BATCH {
        let message = if items.is_empty() {
            "empty batch".to_owned()
        } else {
            format!(
                "batch of {} messages; at most {MAX_BATCH} are accepted",
                items.len()
            )
        };
        let (reply, summary) = refusal(None, ErrorCode::INVALID_REQUEST, message);
        return (Some(reply), vec![summary]);
    }
    // What each item costs if it is not run: its refusal, or nothing for a notification.
    let refusals: Vec<Option<String>> = items.iter().map(batch_refusal).collect();
    let mut owed: usize = refusals.iter().flatten().map(|r| r.len() + 1).sum();
    let mut used = 2; // the brackets
    let mut replies = Vec::new();
    let mut summaries = Vec::new();
    for (item, refused) in items.into_iter().zip(refusals) {
        let refused_len = refused.as_ref().map_or(0, |r| r.len() + 1);
        owed -= refused_len;
        let (reply, summary) = if used + largest_reply(&item) + owed > MAX_REPLY_BYTES {
            let mut summary = Summary::new("mcp");
            summary.outcome = Outcome::Rejected(BATCH_REPLY_TOO_LARGE.0.to_string());
            (refused, summary)
        } else {
            match item {
                Value::Object(object) => handle(state, origin, Message::take(object)).await,
                _ => {
                    let (reply, summary) = refusal(
                        None,
                        ErrorCode::INVALID_REQUEST,
                        "a batch holds JSON-RPC message objects".into(),
                    );
                    (Some(reply), summary)
                }
            }
        };
        if let Some(reply) = reply {
            used += reply.len() + 1;
            replies.push(reply);
        }
        summaries.push(summary);
    }
    let reply = (!replies.is_empty()).then(|| format!("[{}]", replies.join(",")));
    (reply, summaries)
}

/// The answer to a batch item that is not run: a refusal with its id, or nothing for a
/// notification (which gets no answer either way).
fn batch_refusal(item: &Value) -> Option<String> {
    let Value::Object(object) = item else {
        return Some(error_text(
            None,
            &ErrorData::new(
                ErrorCode::INVALID_REQUEST,
                "a batch holds JSON-RPC message objects",
                None,
            ),
        ));
    };
    let id = match object.get("id") {
        None if object.contains_key("method") => return None,
        Some(Value::String(s)) if s.len() <= MAX_ID_BYTES => {
            Some(NumberOrString::String(s.as_str().into()))
        }
        Some(Value::Number(n)) => n.as_i64().map(NumberOrString::Number),
        _ => None,
    };
    Some(error_text(
        id.as_ref(),
        &ErrorData::new(
            BATCH_REPLY_TOO_LARGE,
            "not run: the batch's replies would exceed 128 KB; send this request alone or in a smaller batch",
            None,
        ),
    ))
}

/// The largest reply an item can produce, from its method; what is never known in advance (a
/// tool's result) is bounded by [`MAX_TOOL_REPLY_BYTES`].
fn largest_reply(item: &Value) -> usize {
    // Room for the envelope and an id (bounded, escaped at worst six bytes a byte).
    const ENVELOPE: usize = 64 + 6 * MAX_ID_BYTES;
    let method = item.get("method").and_then(Value::as_str);
    match method {
        Some("tools/list") => ENVELOPE + tools_list().get().len(),
        Some("tools/call") => MAX_TOOL_REPLY_BYTES,
        Some("initialize") => ENVELOPE + 2048,
        _ => ENVELOPE + 512,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmcp::model::CallToolResult;

    /// A message read from its text holds what the tree of the same text holds; anything the
    /// fields cannot say the same of (a field twice, no `jsonrpc`, not an object) is left to the
    /// tree.
    #[test]
    fn messages_read_from_text_are_those_of_the_tree() {
        let same = [
            r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"aws_get_credentials","arguments":{}}}"#,
            r#"{"jsonrpc":"2.0","id":"a\u0062c","method":"ping","extra":{"x":[1,{"y":null}]}}"#,
            r#"{"jsonrpc":2,"id":null,"method":null,"params":null}"#,
            r#"{"jsonrpc":"2.0","id":1,"result":null}"#,
            r#"{"jsonrpc":"2.0","id":1,"error":{"code":-1}}"#,
            r#" {"params":[1,2],"method":7,"id":1.5,"\u006asonrpc":"2.0"}"#,
            r#"{"jsonrpc":"2.0","extra":1,"extra":2}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"m","params":"a\"b"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"m","params":true}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"m","params":-3}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"m","params":18446744073709551615}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"m","params":1.5e3}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"m","params":[{"a":[]},null]}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"m","params":{}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"_meta":{"k":[1]},"name":"x","arguments":{"a":{"b":null}},"z":1}}"#,
        ];
        for text in same {
            let tree: Value = serde_json::from_str(text).unwrap();
            let mut taken = Message::take(tree.as_object().cloned().unwrap());
            let mut read = Message::read(text).unwrap();
            // `tools/call` params read into their fields say what the tree's members say.
            if let Some(Params::Call(_)) = &read.params {
                let (call, members) = (read.params.take().unwrap(), taken.params.take().unwrap());
                assert_eq!(call.meta(), members.meta(), "{text}");
                assert_eq!(call_params(call), call_params(members), "{text}");
            }
            assert_eq!(read, taken, "{text}");
        }
        let general = [
            r#"{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}"#,
            r#"{"message_type":"REQUEST","message_id":"r","params":{"jsonrpc":"2.0"}}"#,
            r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#,
            r#"["2.0", 1, "ping"]"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"ping"} x"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"ping""#,
        ];
        for text in general {
            assert!(Message::read(text).is_none(), "{text}");
        }
    }

    #[test]
    fn tools_list_json_is_current() {
        let current = encode_tools_list();
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/protocol/tools_list.json");
        if std::env::var_os("UPDATE_TOOLS_LIST").is_some() {
            std::fs::write(path, format!("{current}\n")).unwrap();
            return;
        }
        assert_eq!(
            TOOLS_LIST_JSON.trim_end(),
            current,
            "src/protocol/tools_list.json is stale: UPDATE_TOOLS_LIST=1 cargo test --lib tools_list_json_is_current"
        );
    }

    #[test]
    fn tools_list_has_no_result_type() {
        let list: Value = serde_json::from_str(tools_list().get()).unwrap();
        assert!(list.get("resultType").is_none());
        assert_eq!(list["tools"].as_array().unwrap().len(), 5);
        assert_eq!(list["tools"][0]["name"], "aws_get_credentials");
    }

    #[test]
    fn initialize_result_shape() {
        let result =
            serde_json::to_value(initialize_result(ProtocolVersion::V_2025_06_18)).unwrap();
        assert_eq!(result["protocolVersion"], "2025-06-18");
        assert!(result["capabilities"]["tools"].is_object());
        assert_eq!(result["serverInfo"]["name"], "mcp-aws-tools");
        assert!(result.get("resultType").is_none());
    }

    #[test]
    fn call_results_in_both_eras() {
        let id = RequestId::Number(7);
        let reply = |era| {
            let text = encode_call_result(&id, era, ToolReply::ok(json!({"a": 1, "b": "\"x\""})));
            serde_json::from_str::<Value>(&text).unwrap()["result"].clone()
        };
        let legacy = reply(Era::Handshake);
        assert!(legacy.get("resultType").is_none());
        assert!(legacy.get("_meta").is_none());
        assert_eq!(legacy["structuredContent"], json!({"a": 1, "b": "\"x\""}));
        assert_eq!(legacy["content"][0]["type"], "text");
        let text = legacy["content"][0]["text"].as_str().unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(text).unwrap(),
            legacy["structuredContent"]
        );
        assert_eq!(legacy["isError"], false);
        // What the SDK's types read back is the same result.
        let typed: CallToolResult = serde_json::from_value(legacy.clone()).unwrap();
        assert_eq!(
            typed.structured_content,
            Some(legacy["structuredContent"].clone())
        );
        assert_eq!(typed.is_error, Some(false));

        let modern = reply(Era::Modern);
        assert_eq!(modern["resultType"], "complete");
        assert_eq!(modern["_meta"][SERVER_INFO_KEY]["name"], "mcp-aws-tools");
        assert_eq!(modern["structuredContent"], legacy["structuredContent"]);

        let failed = encode_call_result(
            &id,
            Era::Handshake,
            ToolReply::Failure(tools::ToolError::new(
                crate::names::ErrorKind::ExecutionError,
                "no",
            )),
        );
        let failed: Value = serde_json::from_str(&failed).unwrap();
        assert_eq!(failed["result"]["isError"], true);
        assert_eq!(
            failed["result"]["structuredContent"]["error"],
            "execution_error"
        );
    }

    /// `tools/call`'s result as the schema's types describe it, written by serde.
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct CallResult<'a> {
        content: [TextContent<'a>; 1],
        structured_content: &'a RawValue,
        is_error: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        result_type: Option<&'static str>,
        #[serde(rename = "_meta", skip_serializing_if = "Option::is_none")]
        meta: Option<&'static RawValue>,
    }

    #[derive(Serialize)]
    struct TextContent<'a> {
        #[serde(rename = "type")]
        kind: &'static str,
        text: &'a str,
    }

    /// The frame written piece by piece is, byte for byte, what serde writes for the typed
    /// result: for either era, an answer or a failure, and ids that need escaping.
    #[test]
    fn call_result_frames_are_what_serde_writes() {
        let ids = [
            RequestId::Number(7),
            RequestId::Number(-1),
            RequestId::String("quote \" and \\ and é and \u{1}".into()),
        ];
        let answer = json!({"a": 1, "b": "\"x\"\n", "c": ["é", null]});
        let replies = [
            (ToolReply::ok(answer.clone()), answer.to_string(), false),
            (
                ToolReply::Failure(tools::ToolError::new(
                    crate::names::ErrorKind::ExecutionError,
                    "no \"way\"",
                )),
                tools::ToolError::new(crate::names::ErrorKind::ExecutionError, "no \"way\"")
                    .body()
                    .to_string(),
                true,
            ),
        ];
        for id in &ids {
            for (reply, body, is_error) in &replies {
                for era in [Era::Handshake, Era::Modern] {
                    let structured = RawValue::from_string(body.clone()).unwrap();
                    let modern = era == Era::Modern;
                    let typed = serde_json::to_string(&Response {
                        jsonrpc: "2.0",
                        id,
                        result: CallResult {
                            content: [TextContent {
                                kind: "text",
                                text: body,
                            }],
                            structured_content: &structured,
                            is_error: *is_error,
                            result_type: modern.then_some("complete"),
                            meta: modern.then(server_info_meta),
                        },
                    })
                    .unwrap();
                    assert_eq!(encode_call_result(id, era, reply.clone()), typed);
                }
            }
        }
    }

    /// `tools/call` params: the name and arguments wherever they stand among other keys, and
    /// each wrong shape refused with its own message.
    #[test]
    fn call_params_are_read_whatever_their_order() {
        let read = |params: Value| {
            call_params(Params::from_value(params))
                .map(|(name, arguments)| (name.into_owned(), arguments))
        };
        let arguments = json!({"profile": "dev"});
        for params in [
            json!({"name": "aws_list_profiles", "arguments": arguments}),
            json!({"arguments": arguments, "_meta": {"progressToken": 1}, "name": "aws_list_profiles"}),
        ] {
            let (name, read_arguments) = read(params).unwrap();
            assert_eq!(name, "aws_list_profiles");
            assert_eq!(Value::Object(read_arguments), arguments);
        }
        for params in [
            json!({"name": "aws_list_profiles"}),
            json!({"name": "aws_list_profiles", "arguments": null}),
        ] {
            assert_eq!(read(params).unwrap().1, Map::new());
        }
        // Members given twice, read from text (params before the method are read into their
        // members): the last of each, as a map of the params holds it.
        let text = r#"{"jsonrpc":"2.0","id":1,"params":{"name":"a","arguments":{"x":1},"name":"aws_list_profiles","arguments":{},"_meta":1,"_meta":{"m":2}},"method":"tools/call"}"#;
        let params = Message::read(text).unwrap().params.unwrap();
        assert!(matches!(params, Params::Members(_)), "{params:?}");
        assert_eq!(params.meta(), Some(&json!({"m": 2})));
        let (name, arguments) = call_params(params).unwrap();
        assert_eq!((&*name, arguments), ("aws_list_profiles", Map::new()));
        for (params, message) in [
            (json!({}), "missing field name"),
            (json!({"arguments": {}}), "missing field name"),
            (json!({"name": 7}), "name must be a string"),
            (
                json!({"name": "x", "arguments": []}),
                "arguments must be an object",
            ),
        ] {
            assert_eq!(read(params).unwrap_err(), message);
        }
    }

    /// `tools/call` params read from a message's text into their fields say what the tree's
    /// members say. Params that are not what `tools/call` takes (a member twice, a wrong shape,
    /// not an object) leave the message to the tree, whose members refuse them as ever; params
    /// before the method are read into members.
    #[test]
    fn call_params_read_into_fields_are_those_of_the_members() {
        let message = |params: &str| {
            format!(r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{params}}}"#)
        };
        let tree = |text: &str| {
            let tree: Value = serde_json::from_str(text).unwrap();
            Message::take(tree.as_object().cloned().unwrap())
        };
        for params in [
            r#"{"name":"aws_get_credentials","arguments":{}}"#,
            r#"{"name":"aws_get_credentials"}"#,
            r#"{"name":"aws_get_credentials","arguments":null}"#,
            r#" {"arguments":{"profile":"dev","x":[1,{"y":null}]},"z":{"name":1},"name":"aws_list_profiles"}"#,
            r#"{"n\u0061me":"aws_get_\u0063redentials","_meta":{"progressToken":1}}"#,
            r#"{"name":"x","_meta":null,"arguments":{"a":"b"}}"#,
        ] {
            let text = message(params);
            let Some(Params::Call(call)) = Message::read(&text).unwrap().params else {
                panic!("{params} read into fields");
            };
            let (call, members) = (Params::Call(call), tree(&text).params.unwrap());
            assert!(matches!(members, Params::Members(_)), "{params}");
            assert_eq!(call.meta(), members.meta(), "{params}");
            assert_eq!(call_params(call), call_params(members), "{params}");
        }
        for params in [
            r#"{"name":"a","name":"aws_list_profiles"}"#,
            r#"{"name":"a","arguments":{},"arguments":null}"#,
            r#"{"_meta":1,"_meta":{"m":2},"name":"x"}"#,
            r#"{"name":7}"#,
            r#"{"arguments":{}}"#,
            r#"{"name":"x","arguments":[]}"#,
            r#"{"name":"x","arguments":"{}"}"#,
            r#"{}"#,
            "[]",
            "null",
            r#""{}""#,
        ] {
            assert!(Message::read(&message(params)).is_none(), "{params}");
        }
        let text = r#"{"jsonrpc":"2.0","id":1,"params":{"name":"aws_list_profiles"},"method":"tools/call"}"#;
        assert_eq!(Message::read(text), Some(tree(text)));
    }

    #[test]
    fn unknown_ids_are_null() {
        let (text, _) = refusal(None, ErrorCode::PARSE_ERROR, "bad".into());
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["id"], Value::Null);
        assert_eq!(value["error"]["code"], -32700);
    }
}
