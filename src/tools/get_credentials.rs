//! aws/get-credentials: which credentials a call would run with, masked.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::SystemTime;

use serde::Serialize;
use serde_json::{Map, Value, json};

use super::{
    ANSWER_BYTES, Args, Call, Context, Spec, ToolError, ToolReply, annotations, caller_property,
    environment_id_property, nullable_string, profile_property, with_timestamp,
};
use crate::aws::secret::{MASKED_SECRET, Masked};
use crate::json::{self, Json};
use crate::session::Caller;

pub(super) fn spec() -> Spec {
    Spec {
        title: "Get AWS credentials",
        description: "Shows the AWS credentials this connection's calls run with (access key id \
            masked to its first 10 characters, secret access key always hidden), their region \
            and source, the AWS variables in effect, and who is calling. Session tokens are \
            shown masked only when include_session_token is true. Pass environment_id to see \
            the credentials an earlier aws_set_environment set.",
        input: json!({
            "type": "object",
            "properties": {
                "profile": profile_property(),
                "include_session_token": {
                    "type": "boolean",
                    "default": false,
                    "description": "Also show the session token's first 20 characters."
                },
                "environment_id": environment_id_property()
            },
            "additionalProperties": false
        }),
        output: json!({
            "type": "object",
            "required": ["timestamp", "credentials", "environment_variables", "metadata"],
            "properties": {
                "timestamp": { "type": "string" },
                "credentials": {
                    "type": "object",
                    "required": ["access_key_id", "secret_access_key", "region", "profile", "has_session_token"],
                    "properties": {
                        "access_key_id": { "type": "string" },
                        "secret_access_key": { "const": MASKED_SECRET },
                        "region": nullable_string(),
                        "profile": nullable_string(),
                        "has_session_token": { "type": "boolean" },
                        "session_token": { "type": "string" },
                        "expiration": nullable_string()
                    }
                },
                "environment_variables": {
                    "type": "object",
                    "additionalProperties": { "type": "string" }
                },
                "metadata": {
                    "type": "object",
                    "required": ["credentials_source"],
                    "properties": {
                        "boto3_available": { "type": "boolean" },
                        "credentials_source": { "type": "string" }
                    }
                },
                "caller": caller_property()
            }
        }),
        annotations: annotations("Get AWS credentials", true, false),
    }
}

/// The answer's fields other than `caller` and `timestamp`: what the credentials, the region
/// and the overrides in effect show. Generic over how their text is held: borrowed from the
/// call's credentials, region, overrides and configuration (`&str`), built on every call
/// without copying anything; or owned (`String`), kept by each thread with the text it wrote
/// last, which is written again only when what it shows changes. Keys as the reference
/// document has them, in the order the other tools' JSON has them (sorted).
#[derive(Serialize, PartialEq)]
#[serde(bound = "S: Serialize + AsRef<str>")]
struct Shown<S> {
    credentials: ShownCredentials<S>,
    environment_variables: Variables<S>,
    metadata: Metadata<S>,
}

#[derive(Serialize, PartialEq)]
#[serde(bound = "S: Serialize + AsRef<str>")]
struct ShownCredentials<S> {
    access_key_id: Masked<S>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expiration: Option<Expiry>,
    has_session_token: bool,
    profile: Option<S>,
    region: Option<S>,
    secret_access_key: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    session_token: Option<Masked<S>>,
}

#[derive(Serialize, PartialEq)]
#[serde(bound = "S: Serialize + AsRef<str>")]
struct Metadata<S> {
    /// Kept for clients written against the reference document: the Rust SDK is always
    /// compiled in, so full functionality is always available.
    boto3_available: bool,
    credentials_source: S,
}

/// The AWS credential and region variables in effect for this connection, masked: the
/// process environment with the stored set-environment overrides on top. Fields in the order
/// of their names (sorted, as a JSON object of the other tools is); a variable that is not set
/// is left out.
#[derive(Serialize, PartialEq)]
#[serde(bound = "S: Serialize + AsRef<str>")]
struct Variables<S> {
    #[serde(rename = "AWS_ACCESS_KEY_ID", skip_serializing_if = "Option::is_none")]
    access_key_id: Option<Masked<S>>,
    #[serde(rename = "AWS_DEFAULT_REGION", skip_serializing_if = "Option::is_none")]
    default_region: Option<S>,
    #[serde(rename = "AWS_PROFILE", skip_serializing_if = "Option::is_none")]
    profile: Option<S>,
    #[serde(rename = "AWS_REGION", skip_serializing_if = "Option::is_none")]
    region: Option<S>,
    #[serde(
        rename = "AWS_SECRET_ACCESS_KEY",
        skip_serializing_if = "Option::is_none"
    )]
    secret_access_key: Option<&'static str>,
    #[serde(rename = "AWS_SESSION_TOKEN", skip_serializing_if = "Option::is_none")]
    session_token: Option<Masked<S>>,
}

/// When the credentials expire, compared to the instant and written to the second.
#[derive(Clone, Copy, PartialEq)]
struct Expiry(SystemTime);

impl Serialize for Expiry {
    fn serialize<Z: serde::Serializer>(&self, serializer: Z) -> Result<Z::Ok, Z::Error> {
        serializer.serialize_str(
            &chrono::DateTime::<chrono::Utc>::from(self.0)
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        )
    }
}

impl<S> Shown<S> {
    /// The same fields with their text held as `to` makes it from each piece.
    fn map<'a, T>(&'a self, to: impl Fn(&'a S) -> T + Copy) -> Shown<T> {
        let masked = |value: &'a Masked<S>| value.map(to);
        let (credentials, variables) = (&self.credentials, &self.environment_variables);
        Shown {
            credentials: ShownCredentials {
                access_key_id: masked(&credentials.access_key_id),
                expiration: credentials.expiration,
                has_session_token: credentials.has_session_token,
                profile: credentials.profile.as_ref().map(to),
                region: credentials.region.as_ref().map(to),
                secret_access_key: credentials.secret_access_key,
                session_token: credentials.session_token.as_ref().map(masked),
            },
            environment_variables: Variables {
                access_key_id: variables.access_key_id.as_ref().map(masked),
                default_region: variables.default_region.as_ref().map(to),
                profile: variables.profile.as_ref().map(to),
                region: variables.region.as_ref().map(to),
                secret_access_key: variables.secret_access_key,
                session_token: variables.session_token.as_ref().map(masked),
            },
            metadata: Metadata {
                boto3_available: self.metadata.boto3_available,
                credentials_source: to(&self.metadata.credentials_source),
            },
        }
    }
}

pub(super) async fn run(call: &mut Call<'_>, arguments: &Map<String, Value>) -> ToolReply {
    let args = match Args::new(
        arguments,
        &["profile", "include_session_token", "environment_id"],
    ) {
        Ok(args) => args,
        Err(err) => return ToolReply::Failure(err),
    };
    match answer(call, &args).await {
        Ok(reply) => reply,
        Err(err) => ToolReply::Failure(err),
    }
}

async fn answer(call: &mut Call<'_>, args: &Args<'_>) -> Result<ToolReply, ToolError> {
    let profile = args.profile()?;
    let include_session_token = args.boolean("include_session_token")?.unwrap_or(false);
    let context = call.context(profile, args.environment_id()?).await?;
    let credentials = &context.resolved.credentials;

    let shown = Shown {
        credentials: ShownCredentials {
            access_key_id: Masked::access_key_id(credentials.access_key_id()),
            secret_access_key: MASKED_SECRET,
            region: context.region.as_deref(),
            profile: context.resolved.source.profile(),
            has_session_token: credentials.session_token().is_some(),
            session_token: credentials
                .session_token()
                .filter(|_| include_session_token)
                .map(Masked::session_token),
            expiration: credentials.expiry().map(Expiry),
        },
        environment_variables: environment_variables(call, &context, include_session_token),
        metadata: Metadata {
            boto3_available: true,
            credentials_source: call.credentials_source(),
        },
    };
    let caller = call.caller();
    let caller = caller.is_known().then_some(caller);
    Ok(ToolReply::written(with_timestamp(|timestamp| {
        write_answer(&caller, &shown, timestamp)
    })))
}

/// The answer's text: `{"caller":…,"credentials":…,"environment_variables":…,"metadata":…,
/// "timestamp":…}`, all but the timestamp written from `caller` and `shown` unless this thread
/// wrote the same last. That head's escaped form is kept with it, for `tools/call`'s text copy,
/// so that a call escapes only its timestamp.
fn write_answer(
    caller: &Option<&Caller>,
    shown: &Shown<&str>,
    timestamp: &str,
) -> Result<Json, serde_json::Error> {
    type Written = (Option<Caller>, Shown<String>, String, Arc<str>);
    thread_local! {
        /// The caller and fields last shown on this thread, the answer's text up to its
        /// timestamp, and that text escaped.
        static LAST: RefCell<Option<Written>> = const { RefCell::new(None) };
    }
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        let fresh = match &*last {
            Some((written_caller, written, ..)) => {
                written_caller.as_ref() != *caller || written.map(String::as_str) != *shown
            }
            None => true,
        };
        if fresh {
            let head = answer_head(caller, shown)?;
            let escaped = json::escaped(&head);
            *last = Some((
                caller.cloned(),
                shown.map(|text| (*text).to_owned()),
                head,
                escaped,
            ));
        }
        let mut text = json::Writer::with_capacity(ANSWER_BYTES);
        if let Some((_, _, head, escaped)) = &*last {
            text.raw_escaped(head, escaped);
        }
        // A timestamp is digits and `-:.TZ` ([`super::with_timestamp`]): nothing to escape.
        debug_assert!(
            timestamp
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-:.".contains(&b))
        );
        text.raw("\"");
        text.raw(timestamp);
        text.raw("\"}");
        text.finish_json()
    })
}

/// The answer's text up to its timestamp's value: `{"caller":…,…,"metadata":…,"timestamp":`.
fn answer_head(caller: &Option<&Caller>, shown: &Shown<&str>) -> Result<String, serde_json::Error> {
    let fields = json::to_string(shown, ANSWER_BYTES)?;
    let inner = fields
        .strip_prefix('{')
        .and_then(|text| text.strip_suffix('}'))
        .unwrap_or_default();
    let mut head = json::Writer::with_capacity(ANSWER_BYTES);
    head.raw(r#"{"caller":"#);
    match caller {
        Some(caller) => caller.write_json(&mut head),
        None => head.raw("null"),
    }
    head.raw(",");
    head.raw(inner);
    head.raw(r#","timestamp":"#);
    head.finish()
}

/// The variables in effect: the stored overrides' credentials and region, else the process
/// environment's.
fn environment_variables<'a>(
    call: &Call<'a>,
    context: &'a Context<'_>,
    include_session_token: bool,
) -> Variables<&'a str> {
    let env = &call.state.config.aws;
    let overrides = &context.stored;
    let token_shown = |token: &'a str| {
        if include_session_token {
            Masked::session_token(token)
        } else {
            Masked::Hidden
        }
    };
    let (access_key_id, secret_access_key, session_token) = match &overrides.credentials {
        Some(credentials) => (
            Some(Masked::access_key_id(credentials.access_key_id())),
            Some(MASKED_SECRET),
            credentials.session_token().map(token_shown),
        ),
        None => (
            env.access_key_id.as_deref().map(Masked::access_key_id),
            env.secret_access_key.as_ref().map(|_| MASKED_SECRET),
            env.session_token.as_ref().map(|t| token_shown(t.expose())),
        ),
    };
    let (default_region, region) = match &overrides.region {
        Some(region) => (Some(region.as_str()), Some(region.as_str())),
        None => (env.default_region.as_deref(), env.region.as_deref()),
    };
    Variables {
        access_key_id,
        default_region,
        profile: env.profile.as_deref(),
        region,
        secret_access_key,
        session_token,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fields shown for this key, region and token, held as the thread keeps them.
    fn shown(key: &str, region: Option<&str>, token: Option<&str>) -> Shown<String> {
        let expires = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_795_000_000);
        Shown {
            credentials: ShownCredentials {
                access_key_id: Masked::access_key_id(key).map(|id| (*id).to_owned()),
                expiration: token.map(|_| Expiry(expires)),
                has_session_token: token.is_some(),
                profile: Some("dev \"q\"".to_owned()),
                region: region.map(str::to_owned),
                secret_access_key: MASKED_SECRET,
                session_token: token.map(|t| Masked::session_token(t).map(|t| (*t).to_owned())),
            },
            environment_variables: Variables {
                access_key_id: Some(Masked::access_key_id(key).map(|id| (*id).to_owned())),
                default_region: None,
                profile: None,
                region: region.map(str::to_owned),
                secret_access_key: Some(MASKED_SECRET),
                session_token: token.map(|_| Masked::Hidden),
            },
            metadata: Metadata {
                boto3_available: true,
                credentials_source: "environment_variables".to_owned(),
            },
        }
    }

    /// The answer as one object of all its fields, written by serde.
    fn typed(caller: &Option<&Caller>, shown: &Shown<String>, timestamp: &str) -> String {
        #[derive(Serialize)]
        struct Answer<'a> {
            caller: &'a Option<&'a Caller>,
            credentials: &'a ShownCredentials<String>,
            environment_variables: &'a Variables<String>,
            metadata: &'a Metadata<String>,
            timestamp: &'a str,
        }
        serde_json::to_string(&Answer {
            caller,
            credentials: &shown.credentials,
            environment_variables: &shown.environment_variables,
            metadata: &shown.metadata,
            timestamp,
        })
        .unwrap()
    }

    /// The answer is, byte for byte, the object serde writes from all its fields, when the
    /// thread wrote the same fields last and when it wrote others: a change of caller, key,
    /// region or token is never answered with the fields written before it.
    #[test]
    fn answers_are_written_again_when_what_they_show_changes() {
        let someone = Caller {
            arn: Some("arn:aws:iam::123456789012:user/a".to_owned()),
            account_id: None,
            source_ip: Some("192.0.2.7".to_owned()),
        };
        let caller = Some(&someone);
        // Another caller, with the same fields: only the caller changes.
        let someone_else = Caller {
            arn: None,
            account_id: None,
            source_ip: Some("192.0.2.\"8".to_owned()),
        };
        let other = Some(&someone_else);
        let calls = [
            (None, shown("AKIAFIRSTKEYEXAMPLE1", Some("us-east-1"), None)),
            (None, shown("AKIAFIRSTKEYEXAMPLE1", Some("us-east-1"), None)),
            (
                caller,
                shown("AKIAFIRSTKEYEXAMPLE1", Some("us-east-1"), None),
            ),
            (
                other,
                shown("AKIAFIRSTKEYEXAMPLE1", Some("us-east-1"), None),
            ),
            (None, shown("AKIAFIRSTKEYEXAMPLE1", Some("eu-west-1"), None)),
            (None, shown("AKIASECONDKEYEXAMPLE", Some("eu-west-1"), None)),
            (
                None,
                shown(
                    "AKIASECONDKEYEXAMPLE",
                    Some("eu-west-1"),
                    Some("FQoGtokenEXAMPLE1234567890"),
                ),
            ),
            (None, shown("AKIASECONDKEYEXAMPLE", None, None)),
            (None, shown("AKIAFIRSTKEYEXAMPLE1", Some("us-east-1"), None)),
        ];
        for (at, (caller, shown)) in calls.into_iter().enumerate() {
            let timestamp = format!("2026-11-25T00:00:0{at}.000Z");
            let expected = typed(&caller, &shown, &timestamp);
            let written = write_answer(&caller, &shown.map(String::as_str), &timestamp).unwrap();
            assert_eq!(written.get(), expected, "call {at}");
            let mut copy = json::Writer::with_capacity(0);
            copy.string_of(&written);
            assert_eq!(
                copy.finish().unwrap(),
                serde_json::to_string(&expected).unwrap(),
                "text copy of call {at}"
            );
        }
    }

    /// Masks, the hidden secret and the expiry are written as the reference document shows
    /// them, whichever way the text is held.
    #[test]
    fn masks_and_expiry_are_written_as_the_reference_shows() {
        let owned = shown(
            "AKIASECONDKEYEXAMPLE",
            Some("eu-west-1"),
            Some("FQoGtokenEXAMPLE1234567890"),
        );
        let expected = concat!(
            r#"{"credentials":{"access_key_id":"AKIASECOND...","#,
            r#""expiration":"2026-11-18T11:06:40Z","has_session_token":true,"#,
            r#""profile":"dev \"q\"","region":"eu-west-1","secret_access_key":"***","#,
            r#""session_token":"FQoGtokenEXAMPLE1234..."},"#,
            r#""environment_variables":{"AWS_ACCESS_KEY_ID":"AKIASECOND...","#,
            r#""AWS_REGION":"eu-west-1","AWS_SECRET_ACCESS_KEY":"***","AWS_SESSION_TOKEN":"***"},"#,
            r#""metadata":{"boto3_available":true,"credentials_source":"environment_variables"}}"#
        );
        assert_eq!(serde_json::to_string(&owned).unwrap(), expected);
        assert_eq!(
            serde_json::to_string(&owned.map(String::as_str)).unwrap(),
            expected
        );
    }
}
