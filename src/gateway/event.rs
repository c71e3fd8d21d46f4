//! The events API Gateway and Function URLs deliver, as far as this function reads them: a
//! WebSocket event, an HTTP API or Function URL event (payload 2.0) and a REST API event
//! (payload 1.0). Every other field of an event is skipped unread.
//!
//! aws_lambda_events' request types describe every field API Gateway may send, and keep the
//! rest in a catch-all map (`#[serde(flatten)]`), which serde can only fill by buffering each
//! object before reading it. Decoding three of them, with each field's path tracked for the
//! error, was about 200 KB of the Lambda build and most of an event's decoding time; these
//! types have the fields the handler uses, with the same names, types and defaults. Responses
//! are still aws_lambda_events' types.
//!
//! [`Probe`] reads, from an event's text, what tells the kinds apart and whether a WebSocket
//! event holds the fields it must, so that [`super::lambda`] can read the event straight from
//! its text into one of these types, without a tree of it first.

use std::fmt;

use http::{HeaderMap, HeaderName, HeaderValue, Method};
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

/// An API Gateway WebSocket event: `$connect`, `$disconnect`, or a message on any other route.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebSocketEvent {
    #[serde(default, deserialize_with = "or_default")]
    pub request_context: WebSocketContext,
    /// The handshake's headers, on `$connect`.
    #[serde(default, deserialize_with = "headers")]
    pub headers: HeaderMap,
    pub body: Option<String>,
    #[serde(default, deserialize_with = "or_default")]
    pub is_base64_encoded: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebSocketContext {
    pub route_key: Option<String>,
    pub connection_id: Option<String>,
    /// API Gateway's id of this event.
    pub request_id: Option<String>,
    /// When the connection was made, in milliseconds since the epoch.
    #[serde(default)]
    pub connected_at: i64,
    /// On `$disconnect`: the close code.
    pub disconnect_status_code: Option<i64>,
    #[serde(default, deserialize_with = "or_default")]
    pub identity: Identity,
}

/// Who sent a request, as API Gateway's `requestContext.identity` says: with IAM
/// authorization, the principal's ARN and account; always the source address.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Identity {
    pub source_ip: Option<String>,
    pub user_arn: Option<String>,
    pub account_id: Option<String>,
}

/// An HTTP API (payload 2.0) or Function URL event.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpApiEvent {
    /// The path as the client sent it, with the stage's name first on a named stage.
    pub raw_path: Option<String>,
    #[serde(default, deserialize_with = "headers")]
    pub headers: HeaderMap,
    pub body: Option<String>,
    #[serde(default, deserialize_with = "or_default")]
    pub is_base64_encoded: bool,
    pub request_context: HttpApiContext,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpApiContext {
    pub stage: Option<String>,
    pub http: HttpDescription,
    pub authorizer: Option<Authorizer>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpDescription {
    #[serde(deserialize_with = "method")]
    pub method: Method,
    pub source_ip: Option<String>,
}

/// With IAM authorization: the principal that signed.
#[derive(Debug, Deserialize)]
pub struct Authorizer {
    pub iam: Option<IamPrincipal>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IamPrincipal {
    pub user_arn: Option<String>,
    pub account_id: Option<String>,
}

/// A REST API event, or an HTTP API event in payload 1.0.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestApiEvent {
    #[serde(deserialize_with = "method")]
    pub http_method: Method,
    /// The resource's path, without the stage.
    pub path: Option<String>,
    #[serde(default, deserialize_with = "headers")]
    pub headers: HeaderMap,
    #[serde(default, deserialize_with = "headers")]
    pub multi_value_headers: HeaderMap,
    pub body: Option<String>,
    #[serde(default, deserialize_with = "or_default")]
    pub is_base64_encoded: bool,
    pub request_context: RestApiContext,
}

#[derive(Debug, Deserialize)]
pub struct RestApiContext {
    #[serde(default, deserialize_with = "or_default")]
    pub identity: Identity,
}

/// What an event's kind is told by, and the fields a WebSocket event must hold, each as the kind
/// of JSON value it has; every other field is skipped unread. A field named twice fails the
/// read, as does a `requestContext` that is neither an object nor `null`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Probe {
    #[serde(default)]
    pub request_context: Option<ProbeContext>,
    #[serde(default)]
    pub http_method: Seen,
}

impl Probe {
    /// What `of` says of `requestContext` (an object), or absent when the event has none.
    pub fn context(&self, of: fn(&ProbeContext) -> Seen) -> Seen {
        self.request_context.as_ref().map_or(Seen::Absent, of)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProbeContext {
    #[serde(default)]
    pub connection_id: Seen,
    #[serde(default)]
    pub event_type: Seen,
    #[serde(default)]
    pub http: Seen,
    #[serde(default)]
    pub route_key: Seen,
    #[serde(default)]
    pub connected_at: Seen,
    #[serde(default)]
    pub request_time_epoch: Seen,
}

/// The kind of a field's value, as far as telling events apart and checking them needs it:
/// read from an event's text ([`Probe`]) or from its tree ([`Seen::of`]), the same either way.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Not in the object.
    #[default]
    Absent,
    Null,
    String,
    /// An integer that fits in an `i64`.
    Integer,
    Object,
    Other,
}

impl Seen {
    /// The kind of a value of a tree.
    pub fn of(value: &serde_json::Value) -> Seen {
        use serde_json::Value;
        match value {
            Value::Null => Seen::Null,
            Value::String(_) => Seen::String,
            Value::Number(number) if number.is_i64() => Seen::Integer,
            Value::Object(_) => Seen::Object,
            Value::Number(_) | Value::Bool(_) | Value::Array(_) => Seen::Other,
        }
    }
}

impl<'de> Deserialize<'de> for Seen {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Kind;
        impl<'de> Visitor<'de> for Kind {
            type Value = Seen;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any value")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Seen, E> {
                Ok(Seen::Null)
            }
            fn visit_none<E: de::Error>(self) -> Result<Seen, E> {
                Ok(Seen::Null)
            }
            fn visit_some<D: Deserializer<'de>>(self, inner: D) -> Result<Seen, D::Error> {
                inner.deserialize_any(self)
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Seen, E> {
                Ok(Seen::String)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Seen, E> {
                Ok(Seen::Integer)
            }
            fn visit_u64<E: de::Error>(self, value: u64) -> Result<Seen, E> {
                Ok(if i64::try_from(value).is_ok() {
                    Seen::Integer
                } else {
                    Seen::Other
                })
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Seen, E> {
                Ok(Seen::Other)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Seen, E> {
                Ok(Seen::Other)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Seen, A::Error> {
                while seq.next_element::<de::IgnoredAny>()?.is_some() {}
                Ok(Seen::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Seen, A::Error> {
                while map
                    .next_entry::<de::IgnoredAny, de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(Seen::Object)
            }
        }
        deserializer.deserialize_any(Kind)
    }
}

/// `null` read as the type's default, as a missing field is.
fn or_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// An HTTP method by its name; an empty name is `GET`, as aws_lambda_events reads it.
fn method<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Method, D::Error> {
    struct MethodName;
    impl Visitor<'_> for MethodName {
        type Value = Method;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an HTTP method")
        }
        fn visit_str<E: de::Error>(self, name: &str) -> Result<Method, E> {
            if name.is_empty() {
                return Ok(Method::GET);
            }
            Method::from_bytes(name.as_bytes())
                .map_err(|_| E::invalid_value(de::Unexpected::Str(name), &self))
        }
    }
    deserializer.deserialize_str(MethodName)
}

/// Headers: an object of names to a value (`headers`) or to a list of values
/// (`multiValueHeaders`); `null` is none. A name or value HTTP cannot carry is an error.
fn headers<'de, D: Deserializer<'de>>(deserializer: D) -> Result<HeaderMap, D::Error> {
    struct Headers;
    impl<'de> Visitor<'de> for Headers {
        type Value = HeaderMap;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object of header names to a string or a list of strings")
        }
        fn visit_unit<E: de::Error>(self) -> Result<HeaderMap, E> {
            Ok(HeaderMap::new())
        }
        fn visit_none<E: de::Error>(self) -> Result<HeaderMap, E> {
            Ok(HeaderMap::new())
        }
        fn visit_some<D: Deserializer<'de>>(self, inner: D) -> Result<HeaderMap, D::Error> {
            inner.deserialize_map(self)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<HeaderMap, A::Error> {
            let mut headers = HeaderMap::with_capacity(map.size_hint().unwrap_or(0));
            // The names as the object spells them: one given twice fails the read (an object
            // read into a tree first keeps only its last value, which this would not).
            let mut keys: Vec<std::borrow::Cow<'de, str>> = Vec::with_capacity(16);
            while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                let name = HeaderName::from_bytes(key.as_bytes()).map_err(|_| {
                    de::Error::invalid_value(de::Unexpected::Str(&key), &"a header name")
                })?;
                if headers.contains_key(&name) && keys.contains(&key) {
                    return Err(de::Error::custom(format_args!("header {key} given twice")));
                }
                keys.push(key);
                for value in map.next_value::<Values>()?.0 {
                    let value = HeaderValue::from_str(&value).map_err(|_| {
                        de::Error::invalid_value(de::Unexpected::Other("text"), &"a header value")
                    })?;
                    headers.append(&name, value);
                }
            }
            Ok(headers)
        }
    }
    deserializer.deserialize_option(Headers)
}

/// A header's value or values.
struct Values(Vec<String>);

impl<'de> Deserialize<'de> for Values {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OneOrMore;
        impl<'de> Visitor<'de> for OneOrMore {
            type Value = Values;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<Values, E> {
                Ok(Values(vec![value.to_owned()]))
            }
            fn visit_string<E: de::Error>(self, value: String) -> Result<Values, E> {
                Ok(Values(vec![value]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Values, A::Error> {
                let mut values = Vec::with_capacity(seq.size_hint().unwrap_or(1));
                while let Some(value) = seq.next_element::<String>()? {
                    values.push(value);
                }
                Ok(Values(values))
            }
        }
        deserializer.deserialize_any(OneOrMore)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn decode<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> Result<T, String> {
        serde_path_to_error::deserialize(value).map_err(|err| err.path().to_string())
    }

    /// The fields the handler reads, from an event as API Gateway writes it (every other field
    /// skipped, whatever its type).
    #[test]
    fn a_websocket_event_gives_what_the_handler_reads() {
        let event: WebSocketEvent = decode(json!({
            "headers": {"Sec-WebSocket-Protocol": "mcp", "Host": "example.com"},
            "multiValueHeaders": {"Sec-WebSocket-Protocol": ["mcp"]},
            "queryStringParameters": null,
            "requestContext": {
                "routeKey": "$connect", "eventType": "CONNECT", "connectionId": "L0SM9cOFvHcCIhw=",
                "requestId": "req", "connectedAt": 1_795_000_000_000_i64, "requestTimeEpoch": 1,
                "identity": {"sourceIp": "192.0.2.1", "userArn": "arn:aws:iam::123456789012:user/u",
                    "accountId": "123456789012", "userAgent": 7},
                "apiId": {"not": "a string"}
            },
            "isBase64Encoded": null,
        }))
        .unwrap();
        let context = &event.request_context;
        assert_eq!(context.route_key.as_deref(), Some("$connect"));
        assert_eq!(context.connection_id.as_deref(), Some("L0SM9cOFvHcCIhw="));
        assert_eq!(context.request_id.as_deref(), Some("req"));
        assert_eq!(context.connected_at, 1_795_000_000_000);
        assert_eq!(context.identity.source_ip.as_deref(), Some("192.0.2.1"));
        assert_eq!(context.identity.account_id.as_deref(), Some("123456789012"));
        assert_eq!(event.headers["sec-websocket-protocol"], "mcp");
        assert_eq!(event.headers["host"], "example.com");
        assert!(!event.is_base64_encoded);
        assert_eq!(event.body, None);
    }

    #[test]
    fn headers_take_one_value_or_many_and_null_is_none() {
        let event: RestApiEvent = decode(json!({
            "httpMethod": "POST", "path": "/mcp",
            "headers": null,
            "multiValueHeaders": {"Accept": ["application/json", "text/event-stream"]},
            "requestContext": {"identity": null},
        }))
        .unwrap();
        assert!(event.headers.is_empty());
        let accept: Vec<_> = event.multi_value_headers.get_all("accept").iter().collect();
        assert_eq!(accept, ["application/json", "text/event-stream"]);
        assert_eq!(event.http_method, Method::POST);
        assert_eq!(event.request_context.identity.source_ip, None);
    }

    /// A field the handler reads, of the wrong type or with a value HTTP cannot carry, is named
    /// by its path.
    #[test]
    fn a_field_the_handler_reads_is_checked() {
        let http = |headers, method| {
            json!({"rawPath": "/mcp", "headers": headers,
                "requestContext": {"http": {"method": method, "sourceIp": "192.0.2.1"}}})
        };
        let ok: HttpApiEvent =
            decode(http(json!({"content-type": "application/json"}), "")).unwrap();
        assert_eq!(ok.request_context.http.method, Method::GET);
        assert_eq!(
            decode::<HttpApiEvent>(http(json!({"host": 5}), "POST")).unwrap_err(),
            "headers.host"
        );
        assert_eq!(
            decode::<HttpApiEvent>(http(json!({"bad name": "x"}), "POST")).unwrap_err(),
            "headers"
        );
        assert_eq!(
            decode::<HttpApiEvent>(http(json!({"x": "line\nbreak"}), "POST")).unwrap_err(),
            "headers"
        );
        assert_eq!(
            decode::<HttpApiEvent>(http(json!({}), "NOT A METHOD")).unwrap_err(),
            "requestContext.http.method"
        );
        assert_eq!(
            decode::<HttpApiEvent>(json!({"requestContext": {}})).unwrap_err(),
            "requestContext"
        );
        assert_eq!(
            decode::<WebSocketEvent>(json!({"requestContext": {"identity": {"sourceIp": 5}}}))
                .unwrap_err(),
            "requestContext.identity.sourceIp"
        );
    }
}
