//! AWS failures, classified by cause in one place.
//!
//! Every failure of an AWS call or a credential provider (STS GetCallerIdentity, an AssumeRole
//! made by aws-config for a profile, the default chain, the session table, KMS) comes through
//! [`classify`] or [`classify_sdk`], which walk the error's `source()` chain down to what
//! happened: no credentials, AWS refused with a code, no answer within the time-out, the
//! endpoint could not be reached, a configuration mistake, or something unexpected. So one
//! cause always gets one answer, whichever tool and credential source hit it.
//!
//! An [`AwsError`] shows one sentence naming the cause (and AWS's own message, scrubbed, where
//! AWS refused). The whole chain, with endpoint addresses and type names, goes to the log only:
//! [`AwsError::logged`] writes it once, where the failure is classified.

use std::error::Error;

use aws_config::imds::client::error::{ImdsError, TokenError};
use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_sts::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sts::operation::assume_role::AssumeRoleError;
use aws_sdk_sts::operation::get_caller_identity::GetCallerIdentityError;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_types::error::display::DisplayErrorContext;

/// The longest AWS message relayed to a client; AWS's messages are a sentence or two.
pub const MAX_AWS_MESSAGE_CHARS: usize = 512;

/// What happened, whatever the call path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// No credential provider had credentials.
    NoCredentials,
    /// AWS answered and refused.
    Refused(Refusal),
    /// No answer within the time-out.
    TimedOut,
    /// The endpoint could not be reached (connection refused, name resolution, TLS).
    Unreachable,
    /// The endpoint's certificate is not vouched for by a trusted root: the compiled-in roots,
    /// or the bundle `AWS_CA_BUNDLE` or `SSL_CERT_FILE`/`SSL_CERT_DIR` name.
    Untrusted,
    /// The configuration is wrong; the text says what, in one sentence, and is safe to show.
    Misconfigured(String),
    /// Anything else: a response that could not be read, a request that could not be built.
    Unexpected,
}

impl Cause {
    /// A short name for the log.
    pub fn as_str(&self) -> &'static str {
        match self {
            Cause::NoCredentials => "no_credentials",
            Cause::Refused(refusal) if refusal.invalid_credentials => "refused_credentials",
            Cause::Refused(_) => "refused",
            Cause::TimedOut => "timed_out",
            Cause::Unreachable => "unreachable",
            Cause::Untrusted => "untrusted_certificate",
            Cause::Misconfigured(_) => "misconfigured",
            Cause::Unexpected => "unexpected",
        }
    }
}

/// What AWS said when it refused a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: String,
    /// AWS's message, bounded; scrubbed of the call's secrets by whoever knows them.
    pub message: String,
    /// The code (or a bare 401/403) means the credentials were not accepted.
    pub invalid_credentials: bool,
}

/// AWS error codes that mean "these credentials are not valid".
const INVALID_CREDENTIAL_CODES: &[&str] = &[
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidAccessKeyId",
    "UnrecognizedClientException",
    "InvalidToken",
    "AuthFailure",
    "IncompleteSignature",
    "MissingAuthenticationToken",
    "InvalidSecurity",
    "TokenRefreshRequired",
    "InvalidSignatureException",
];

pub fn is_invalid_credentials_code(code: &str) -> bool {
    INVALID_CREDENTIAL_CODES.contains(&code)
}

impl Refusal {
    /// From the SDK's parsed error, falling back on the raw body when the SDK could not parse
    /// it (moto's IAM-auth errors come wrapped in `<Errors>` with `text/html`).
    pub fn of(error: &impl ProvideErrorMetadata, raw: &HttpResponse) -> Self {
        let (code, message, bare_refusal) = match error.code() {
            Some(code) => (
                code.to_owned(),
                error.message().unwrap_or_default().to_owned(),
                false,
            ),
            None => code_from_body(raw),
        };
        let invalid_credentials = bare_refusal || is_invalid_credentials_code(&code);
        Self {
            code: bounded(&code, 128),
            message: bounded(&message, MAX_AWS_MESSAGE_CHARS),
            invalid_credentials,
        }
    }
}

/// At most `limit` characters, with `...` when cut.
fn bounded(text: &str, limit: usize) -> String {
    let mut chars = text.char_indices();
    match chars.nth(limit) {
        None => text.to_owned(),
        Some((at, _)) => format!("{}...", &text[..at]),
    }
}

/// Reads `<Code>` and `<Message>` out of an error body. The third value says whether the
/// credentials were refused without a code: a bare 401 or 403.
fn code_from_body(raw: &HttpResponse) -> (String, String, bool) {
    let body = raw
        .body()
        .bytes()
        .and_then(|b| std::str::from_utf8(b).ok())
        .unwrap_or("");
    let element = |name: &str| {
        let open = format!("<{name}>");
        let close = format!("</{name}>");
        let start = body.find(&open)? + open.len();
        let end = body[start..].find(&close)? + start;
        Some(body[start..end].trim().to_owned())
    };
    let status = raw.status().as_u16();
    let message = element("Message").unwrap_or_else(|| format!("AWS answered HTTP {status}"));
    match element("Code") {
        Some(code) => (code, message, false),
        None => (
            format!("HTTP{status}"),
            message,
            matches!(status, 401 | 403),
        ),
    }
}

/// Classifies a typed SDK error: the variant says most of it.
pub fn classify_sdk<E>(error: &SdkError<E, HttpResponse>) -> Cause
where
    E: ProvideErrorMetadata + Error + 'static,
{
    match error {
        SdkError::ServiceError(service) => {
            Cause::Refused(Refusal::of(service.err(), service.raw()))
        }
        SdkError::TimeoutError(_) => Cause::TimedOut,
        SdkError::DispatchFailure(failure) => match failure.as_connector_error() {
            Some(connector) => connector_cause(connector),
            None => Cause::Unreachable,
        },
        SdkError::ResponseError(_) => Cause::Unexpected,
        // Building the request includes resolving its identity: a credential provider's
        // failure shows up here, and says more than "could not be built".
        SdkError::ConstructionFailure(_) => match error.source() {
            Some(source) => classify(source),
            None => Cause::Unexpected,
        },
        _ => Cause::Unexpected,
    }
}

fn connector_cause(connector: &ConnectorError) -> Cause {
    if connector.is_timeout() {
        Cause::TimedOut
    } else if connector.is_user() {
        Cause::Misconfigured("the AWS endpoint URL is not usable".into())
    } else if untrusted_certificate(connector) {
        Cause::Untrusted
    } else {
        Cause::Unreachable
    }
}

/// Whether rustls refused the peer's certificate somewhere in the chain. The TLS connector
/// wraps rustls' error in an `io::Error`, whose `source()` skips it: its `get_ref()` is looked
/// at too.
pub fn untrusted_certificate(error: &(dyn Error + 'static)) -> bool {
    if matches!(
        error.downcast_ref::<rustls::Error>(),
        Some(rustls::Error::InvalidCertificate(_))
    ) {
        return true;
    }
    if let Some(io) = error.downcast_ref::<std::io::Error>()
        && let Some(inner) = io.get_ref()
        && untrusted_certificate(inner)
    {
        return true;
    }
    error.source().is_some_and(untrusted_certificate)
}

/// Classifies any error by walking its `source()` chain to the first link that says what
/// happened.
pub fn classify(error: &(dyn Error + 'static)) -> Cause {
    classify_chain(error).0
}

/// The cause, and the AWS service that failed when the chain names one (an AssumeRole made
/// inside a credential provider is an STS call).
fn classify_chain(error: &(dyn Error + 'static)) -> (Cause, Option<&'static str>) {
    let mut current = Some(error);
    // What a credential provider said about itself, used when nothing below it says more.
    let mut provider_said: Option<Cause> = None;
    while let Some(err) = current {
        if let Some(status) = err.downcast_ref::<ImdsError>().and_then(imds_refused) {
            return (
                Cause::Misconfigured(format!(
                    "the instance metadata service refused to give credentials (HTTP {status}): it is turned off for this instance or refuses this caller"
                )),
                None,
            );
        }
        if let Some(sdk) = err.downcast_ref::<SdkError<AssumeRoleError, HttpResponse>>() {
            return (classify_sdk(sdk), Some(STS));
        }
        if let Some(sdk) = err.downcast_ref::<SdkError<GetCallerIdentityError, HttpResponse>>() {
            return (classify_sdk(sdk), Some(STS));
        }
        if let Some(connector) = err.downcast_ref::<ConnectorError>() {
            return (connector_cause(connector), None);
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            let cause = match io.kind() {
                std::io::ErrorKind::TimedOut => Cause::TimedOut,
                _ if untrusted_certificate(io) => Cause::Untrusted,
                _ => Cause::Unreachable,
            };
            return (cause, None);
        }
        if let Some(credentials) = err.downcast_ref::<CredentialsError>() {
            match credentials {
                CredentialsError::CredentialsNotLoaded(_) => return (Cause::NoCredentials, None),
                CredentialsError::ProviderTimedOut(_) => return (Cause::TimedOut, None),
                CredentialsError::InvalidConfiguration(_) => {
                    provider_said.get_or_insert(Cause::Misconfigured(
                        "the credential provider's configuration is not valid".into(),
                    ));
                }
                _ => {}
            }
        }
        current = err.source();
    }
    (provider_said.unwrap_or(Cause::Unexpected), None)
}

/// The status, when the instance metadata service answered 401 or 403 to the token's request
/// (IMDSv2) or the credentials' (the SDK reports either as a provider error, which stops the
/// default chain).
fn imds_refused(error: &ImdsError) -> Option<u16> {
    let status = match error {
        ImdsError::FailedToLoadToken(_) => error
            .source()
            .and_then(|source| source.downcast_ref::<SdkError<TokenError, HttpResponse>>())
            .and_then(SdkError::raw_response)
            .map(|response| response.status().as_u16()),
        ImdsError::ErrorResponse(context) => Some(context.response().status().as_u16()),
        _ => None,
    };
    status.filter(|status| matches!(status, 401 | 403))
}

/// How messages name STS.
pub const STS: &str = "AWS STS";

/// A classified failure of one AWS service (or credential provider), safe to show.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.message())]
pub struct AwsError {
    /// Who failed, for the message: `AWS STS`, `the credential provider`, ...
    pub service: &'static str,
    pub cause: Cause,
}

impl AwsError {
    pub fn new(service: &'static str, cause: Cause) -> Self {
        Self { service, cause }
    }

    /// Classifies `error` and writes its whole chain to the log, once, here.
    pub fn logged(service: &'static str, error: &(dyn Error + 'static)) -> Self {
        let (cause, named) = classify_chain(error);
        let classified = Self::new(named.unwrap_or(service), cause);
        classified.log(error);
        classified
    }

    /// The same for a typed SDK error.
    pub fn logged_sdk<E>(service: &'static str, error: &SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + Error + 'static,
    {
        let classified = Self::new(service, classify_sdk(error));
        classified.log(error);
        classified
    }

    fn log(&self, error: &(dyn Error + 'static)) {
        tracing::info!(
            service = self.service,
            cause = self.cause.as_str(),
            error_code = self.error_code(),
            detail = %DisplayErrorContext(error),
            "AWS call failed"
        );
    }

    /// The AWS error code, when AWS refused.
    pub fn error_code(&self) -> Option<&str> {
        match &self.cause {
            Cause::Refused(refusal) => Some(&refusal.code),
            _ => None,
        }
    }

    /// One sentence naming the cause, or AWS's own message.
    pub fn message(&self) -> String {
        let service = self.service;
        match &self.cause {
            Cause::NoCredentials => "AWS credentials not found".into(),
            Cause::Refused(refusal) if !refusal.message.is_empty() => refusal.message.clone(),
            Cause::Refused(refusal) => format!("{service} refused the request ({})", refusal.code),
            Cause::TimedOut => format!("{service} did not answer within the time-out"),
            Cause::Unreachable => format!("{service} could not be reached"),
            Cause::Untrusted => format!(
                "{service} presented a certificate no trusted root vouches for; set AWS_CA_BUNDLE (or SSL_CERT_FILE) to the CA bundle of the endpoint or proxy"
            ),
            Cause::Misconfigured(what) => what.clone(),
            Cause::Unexpected => format!("{service} failed in an unexpected way"),
        }
    }

    /// Removes secrets (and masks the access key id) in AWS's message, for a call made with
    /// known credentials.
    pub fn scrubbed(mut self, secrets: &[&str], access_key_id: &str) -> Self {
        if let Cause::Refused(refusal) = &mut self.cause {
            refusal.message = super::secret::scrub(&refusal.message, secrets, access_key_id);
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_credential_types::provider::error::CredentialsError;

    #[test]
    fn a_refused_certificate_is_named_inside_the_io_error_that_carries_it() {
        let refused = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, refused);
        assert_eq!(
            classify(&CredentialsError::provider_error(io)),
            Cause::Untrusted
        );
        let other =
            std::io::Error::new(std::io::ErrorKind::InvalidData, rustls::Error::DecryptError);
        assert_eq!(
            classify(&CredentialsError::provider_error(other)),
            Cause::Unreachable
        );
    }

    #[test]
    fn provider_errors_classify_by_their_chain() {
        assert_eq!(
            classify(&CredentialsError::not_loaded("nothing here")),
            Cause::NoCredentials
        );
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert_eq!(
            classify(&CredentialsError::provider_error(io)),
            Cause::Unreachable
        );
        let timed_out = std::io::Error::new(std::io::ErrorKind::TimedOut, "slow");
        assert_eq!(
            classify(&CredentialsError::provider_error(timed_out)),
            Cause::TimedOut
        );
        assert!(matches!(
            classify(&CredentialsError::invalid_configuration("bad")),
            Cause::Misconfigured(_)
        ));
        assert_eq!(
            classify(&CredentialsError::unhandled("odd")),
            Cause::Unexpected
        );
    }

    #[test]
    fn messages_name_the_cause_in_one_sentence() {
        let timed_out = AwsError::new("AWS STS", Cause::TimedOut);
        assert_eq!(
            timed_out.to_string(),
            "AWS STS did not answer within the time-out"
        );
        let refused = AwsError::new(
            "AWS STS",
            Cause::Refused(Refusal {
                code: "InvalidClientTokenId".into(),
                message: "The security token included in the request is invalid.".into(),
                invalid_credentials: true,
            }),
        );
        assert_eq!(refused.error_code(), Some("InvalidClientTokenId"));
        assert_eq!(
            refused.to_string(),
            "The security token included in the request is invalid."
        );
    }

    #[test]
    fn long_messages_are_bounded() {
        let long = "x".repeat(10_000);
        assert_eq!(
            bounded(&long, MAX_AWS_MESSAGE_CHARS).chars().count(),
            MAX_AWS_MESSAGE_CHARS + 3
        );
        assert_eq!(bounded("short", 10), "short");
        assert_eq!(bounded("ééé", 2), "éé...");
    }
}
