//! STS GetCallerIdentity: the call and the identity cache; failures are classified by
//! [`super::error`].
//!
//! One STS client (built on first use, see [`super::OnFirstUse`]); each call overrides its
//! credentials and region for that operation only. `get-account-info` goes through
//! [`Sts::identity`], which caches the answer per credential fingerprint (a keyed hash: the
//! secret itself is never stored), so a warm instance makes one STS call per set of
//! credentials, not one per message, and reads the cache without taking a lock.
//! `validate-credentials` uses [`Sts::caller_identity`], which always asks STS.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use aws_credential_types::Credentials;
use aws_sdk_sts::config::Region;
use ring::hmac;

use super::OnFirstUse;
use super::credentials::scrubbed;
use super::error::{AwsError, STS};

/// Region used for STS when none is configured anywhere: STS answers GetCallerIdentity from
/// every region, and us-east-1 is the global endpoint's home.
pub const FALLBACK_REGION: &str = "us-east-1";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerIdentity {
    pub account: String,
    pub arn: String,
    pub user_id: String,
}

pub struct Sts {
    client: OnFirstUse<aws_sdk_sts::Client>,
    /// Read without a lock by every cached `get-account-info`; replaced whole (copied, then
    /// swapped in) when STS has answered for new credentials, which is rare.
    cache: ArcSwap<HashMap<[u8; 32], (CallerIdentity, Instant)>>,
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
            cache: ArcSwap::default(),
            cache_ttl,
            fingerprint_key,
        }
    }

    /// Builds the client now, if it is not built yet (with the system's bundle, that loads its
    /// roots); the first request builds the TLS connector. Blocks for up to a few
    /// milliseconds; [`crate::state::AppState::warm_up`] calls it off the runtime's thread.
    pub fn prepare(&self) {
        self.client.get();
    }

    /// The caller identity, from the cache when these credentials were seen recently.
    /// Returns whether the answer came from the cache.
    pub async fn identity(
        &self,
        credentials: &Credentials,
        region: &str,
    ) -> Result<(CallerIdentity, bool), AwsError> {
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
    ) -> Result<CallerIdentity, AwsError> {
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
            .map_err(|err| scrubbed(AwsError::logged_sdk(STS, &err), credentials))?;
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
        let cache = self.cache.load();
        let (identity, at) = cache.get(fingerprint)?;
        (at.elapsed() < self.cache_ttl).then(|| identity.clone())
    }

    fn remember(&self, fingerprint: [u8; 32], identity: CallerIdentity) {
        let now = Instant::now();
        let ttl = self.cache_ttl;
        self.cache.rcu(|cache| {
            let mut cache = HashMap::clone(cache);
            if cache.len() >= CACHE_CAPACITY {
                cache.retain(|_, (_, at)| at.elapsed() < ttl);
                if cache.len() >= CACHE_CAPACITY {
                    cache.clear();
                }
            }
            cache.insert(fingerprint, (identity.clone(), now));
            cache
        });
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::error::{Cause, Refusal};
    use aws_sdk_sts::operation::get_caller_identity::GetCallerIdentityOutput;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
    use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
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

    async fn error_for(status: u16, body: String) -> AwsError {
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
                err.cause,
                Cause::Refused(Refusal {
                    code: code.into(),
                    message: message.into(),
                    invalid_credentials: true,
                })
            );
            assert_eq!(err.to_string(), message);
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
            matches!(err.cause, Cause::Refused(ref r) if r.code == "RegionDisabledException" && !r.invalid_credentials)
        );
        let err = error_for(400, sts_error_body("Throttling", "Rate exceeded")).await;
        assert!(matches!(err.cause, Cause::Refused(ref r) if r.code == "Throttling"));
    }

    #[tokio::test]
    async fn unparsed_error_bodies_still_yield_a_code() {
        // moto's IAM-auth errors: <Errors> in text/html, which the SDK does not parse.
        let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Errors><Error>\
                    <Code>InvalidClientTokenId</Code><Message>The security token included in the request is invalid.</Message>\
                    </Error></Errors><RequestID>x</RequestID></Response>";
        let err = error_for(403, body.into()).await;
        assert_eq!(err.error_code(), Some("InvalidClientTokenId"), "{err:?}");
        assert!(matches!(err.cause, Cause::Refused(ref r) if r.invalid_credentials));
        let err = error_for(403, "forbidden".into()).await;
        assert!(
            matches!(err.cause, Cause::Refused(ref r) if r.invalid_credentials),
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
