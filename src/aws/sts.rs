//! STS GetCallerIdentity: the call, the classification of its failures, and the identity cache.
//!
//! One STS client (built on first use, see [`super::OnFirstUse`]); each call overrides its
//! credentials and region for that operation only. `get-account-info` goes through [`Sts::identity`], which caches the answer per
//! credential fingerprint (a keyed hash: the secret itself is never stored), so a warm instance
//! makes one STS call per set of credentials, not one per message. `validate-credentials` uses
//! [`Sts::caller_identity`], which always asks STS.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_credential_types::Credentials;
use aws_sdk_sts::config::Region;
use aws_sdk_sts::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sts::operation::get_caller_identity::GetCallerIdentityError;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use ring::hmac;

use super::OnFirstUse;
use super::credentials::scrub;

/// Region used for STS when none is configured anywhere: STS answers GetCallerIdentity from
/// every region, and us-east-1 is the global endpoint's home.
pub const FALLBACK_REGION: &str = "us-east-1";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerIdentity {
    pub account: String,
    pub arn: String,
    pub user_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StsError {
    /// STS rejected the credentials: `InvalidClientTokenId`, `SignatureDoesNotMatch`, `ExpiredToken`, ...
    #[error("{code}: {message}")]
    InvalidCredentials { code: String, message: String },
    /// STS answered with another error.
    #[error("{code}: {message}")]
    Service { code: String, message: String },
    #[error("STS did not answer within the time-out")]
    TimedOut,
    #[error("STS could not be reached: {0}")]
    Unreachable(String),
    #[error("the STS call failed: {0}")]
    Other(String),
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
];

pub fn is_invalid_credentials_code(code: &str) -> bool {
    INVALID_CREDENTIAL_CODES.contains(&code)
}

pub struct Sts {
    client: OnFirstUse<aws_sdk_sts::Client>,
    cache: Mutex<HashMap<[u8; 32], (CallerIdentity, Instant)>>,
    cache_ttl: Duration,
    fingerprint_key: hmac::Key,
}

const CACHE_CAPACITY: usize = 1024;

impl Sts {
    pub fn new(client: OnFirstUse<aws_sdk_sts::Client>, cache_ttl: Duration) -> Self {
        let rng = ring::rand::SystemRandom::new();
        let fingerprint_key = hmac::Key::generate(hmac::HMAC_SHA256, &rng)
            .unwrap_or_else(|_| hmac::Key::new(hmac::HMAC_SHA256, &random_fallback_key()));
        Self {
            client,
            cache: Mutex::new(HashMap::new()),
            cache_ttl,
            fingerprint_key,
        }
    }

    /// The caller identity, from the cache when these credentials were seen recently.
    /// Returns whether the answer came from the cache.
    pub async fn identity(
        &self,
        credentials: &Credentials,
        region: &str,
    ) -> Result<(CallerIdentity, bool), StsError> {
        let fingerprint = self.fingerprint(credentials);
        if let Some(identity) = self.cached(&fingerprint) {
            return Ok((identity, true));
        }
        let identity = self.caller_identity(credentials, region).await?;
        self.remember(fingerprint, identity.clone());
        Ok((identity, false))
    }

    /// Asks STS who these credentials belong to.
    pub async fn caller_identity(
        &self,
        credentials: &Credentials,
        region: &str,
    ) -> Result<CallerIdentity, StsError> {
        let overrides = aws_sdk_sts::config::Builder::default()
            .credentials_provider(credentials.clone())
            .region(Region::new(region.to_owned()));
        let output = self
            .client
            .get()
            .get_caller_identity()
            .customize()
            .config_override(overrides)
            .send()
            .await
            .map_err(|err| classify(err, credentials))?;
        Ok(CallerIdentity {
            account: output.account.unwrap_or_default(),
            arn: output.arn.unwrap_or_default(),
            user_id: output.user_id.unwrap_or_default(),
        })
    }

    fn fingerprint(&self, credentials: &Credentials) -> [u8; 32] {
        let mut ctx = hmac::Context::with_key(&self.fingerprint_key);
        for part in [
            credentials.access_key_id(),
            credentials.secret_access_key(),
            credentials.session_token().unwrap_or(""),
        ] {
            ctx.update(&(part.len() as u64).to_be_bytes());
            ctx.update(part.as_bytes());
        }
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.sign().as_ref());
        out
    }

    fn cached(&self, fingerprint: &[u8; 32]) -> Option<CallerIdentity> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let (identity, at) = cache.get(fingerprint)?;
        (at.elapsed() < self.cache_ttl).then(|| identity.clone())
    }

    fn remember(&self, fingerprint: [u8; 32], identity: CallerIdentity) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= CACHE_CAPACITY {
            let ttl = self.cache_ttl;
            cache.retain(|_, (_, at)| at.elapsed() < ttl);
            if cache.len() >= CACHE_CAPACITY {
                cache.clear();
            }
        }
        cache.insert(fingerprint, (identity, Instant::now()));
    }
}

/// Only used if the system random source fails, which ring documents as not happening on Linux.
fn random_fallback_key() -> [u8; 32] {
    use std::hash::{BuildHasher, Hasher};
    let mut key = [0u8; 32];
    for chunk in key.chunks_mut(8) {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u128(Instant::now().elapsed().as_nanos());
        chunk.copy_from_slice(&hasher.finish().to_be_bytes());
    }
    key
}

/// Sorts an STS failure into the reference document's categories. AWS's messages are relayed
/// (with the credentials' secrets scrubbed out, in case an endpoint echoes them).
pub fn classify(
    error: SdkError<GetCallerIdentityError, HttpResponse>,
    credentials: &Credentials,
) -> StsError {
    match error {
        SdkError::TimeoutError(_) => StsError::TimedOut,
        SdkError::DispatchFailure(failure) => {
            if failure.is_timeout() {
                StsError::TimedOut
            } else {
                let detail = failure
                    .as_connector_error()
                    .map(|e| aws_smithy_types::error::display::DisplayErrorContext(e).to_string())
                    .unwrap_or_else(|| "the request could not be sent".into());
                StsError::Unreachable(scrub(&detail, credentials))
            }
        }
        SdkError::ServiceError(service) => {
            let refusal = Refusal::of(service.err(), service.raw());
            let message = scrub(&refusal.message, credentials);
            if refusal.invalid_credentials {
                StsError::InvalidCredentials {
                    code: refusal.code,
                    message,
                }
            } else {
                StsError::Service {
                    code: refusal.code,
                    message,
                }
            }
        }
        SdkError::ResponseError(_) => {
            StsError::Other("STS sent a response that could not be read".into())
        }
        SdkError::ConstructionFailure(_) => {
            StsError::Other("the STS request could not be built".into())
        }
        _ => StsError::Other("unexpected SDK error".into()),
    }
}

/// What AWS said when it refused a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: String,
    pub message: String,
    /// The code (or a bare 401/403) means the credentials were not accepted.
    pub invalid_credentials: bool,
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
            code,
            message,
            invalid_credentials,
        }
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
    let message = element("Message").unwrap_or_else(|| format!("STS answered HTTP {status}"));
    match element("Code") {
        Some(code) => (code, message, false),
        None => (
            format!("HTTP{status}"),
            message,
            matches!(status, 401 | 403),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sts::operation::get_caller_identity::GetCallerIdentityOutput;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;

    fn sts_error_body(code: &str, message: &str) -> String {
        format!(
            "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
             <Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>\
             <RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId></ErrorResponse>"
        )
    }

    fn sts_with_response(status: u16, body: String) -> Sts {
        let rule = mock!(aws_sdk_sts::Client::get_caller_identity).then_http_response(move || {
            HttpResponse::new(
                StatusCode::try_from(status).expect("valid status"),
                SdkBody::from(body.clone()),
            )
        });
        let client = mock_client!(aws_sdk_sts, RuleMode::MatchAny, [&rule]);
        Sts::new(OnFirstUse::ready(client), Duration::from_secs(60))
    }

    async fn error_for(status: u16, body: String) -> StsError {
        let sts = sts_with_response(status, body);
        sts.caller_identity(&Credentials::for_tests(), "us-east-1")
            .await
            .expect_err("STS refused")
    }

    #[tokio::test]
    async fn real_sts_auth_errors_mean_invalid_credentials() {
        for (status, code, message) in [
            (
                403,
                "InvalidClientTokenId",
                "The security token included in the request is invalid.",
            ),
            (
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided.",
            ),
            (
                400,
                "ExpiredToken",
                "The security token included in the request is expired",
            ),
        ] {
            let err = error_for(status, sts_error_body(code, message)).await;
            assert_eq!(
                err,
                StsError::InvalidCredentials {
                    code: code.into(),
                    message: message.into()
                }
            );
        }
    }

    #[tokio::test]
    async fn other_sts_errors_are_service_errors() {
        let err = error_for(
            403,
            sts_error_body(
                "RegionDisabledException",
                "STS is not activated in this region",
            ),
        )
        .await;
        assert!(
            matches!(err, StsError::Service { ref code, .. } if code == "RegionDisabledException")
        );
        let err = error_for(400, sts_error_body("Throttling", "Rate exceeded")).await;
        assert!(matches!(err, StsError::Service { ref code, .. } if code == "Throttling"));
    }

    #[tokio::test]
    async fn unparsed_error_bodies_still_yield_a_code() {
        // moto's IAM-auth errors: <Errors> in text/html, which the SDK does not parse.
        let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Errors><Error>\
                    <Code>InvalidClientTokenId</Code><Message>The security token included in the request is invalid.</Message>\
                    </Error></Errors><RequestID>x</RequestID></Response>";
        let err = error_for(403, body.into()).await;
        assert!(
            matches!(err, StsError::InvalidCredentials { ref code, .. } if code == "InvalidClientTokenId"),
            "{err:?}"
        );
        let err = error_for(403, "forbidden".into()).await;
        assert!(
            matches!(err, StsError::InvalidCredentials { .. }),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn messages_never_carry_the_secret() {
        let creds = Credentials::for_tests();
        let body = sts_error_body(
            "SignatureDoesNotMatch",
            &format!("bad signature for {}", creds.secret_access_key()),
        );
        let err = error_for(403, body).await;
        assert!(!err.to_string().contains(creds.secret_access_key()));
    }

    #[tokio::test]
    async fn identity_is_cached_per_credentials() {
        let rule = mock!(aws_sdk_sts::Client::get_caller_identity).then_output(|| {
            GetCallerIdentityOutput::builder()
                .account("123456789012")
                .arn("arn:aws:iam::123456789012:user/alice")
                .user_id("AIDAEXAMPLE")
                .build()
        });
        let client = mock_client!(aws_sdk_sts, RuleMode::MatchAny, [&rule]);
        let sts = Sts::new(OnFirstUse::ready(client), Duration::from_secs(60));
        let alice = Credentials::for_tests();
        let (first, cached) = sts.identity(&alice, "us-east-1").await.unwrap();
        assert!(!cached);
        let (second, cached) = sts.identity(&alice, "us-east-1").await.unwrap();
        assert!(cached);
        assert_eq!(first, second);
        assert_eq!(rule.num_calls(), 1);
        let bob = Credentials::new("AKIDBOB", "other-secret", None, None, "test");
        let (_, cached) = sts.identity(&bob, "us-east-1").await.unwrap();
        assert!(!cached);
        assert_eq!(rule.num_calls(), 2);
        // validate-credentials always asks.
        sts.caller_identity(&alice, "us-east-1").await.unwrap();
        assert_eq!(rule.num_calls(), 3);
    }
}
