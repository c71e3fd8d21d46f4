//! Which credentials a tool call runs with, and where they came from.
//!
//! Order: an explicit `profile` argument; else the connection's (or handle's) set-environment
//! overrides; else the process environment (in Lambda, the execution role); else aws-config's
//! default chain (`AWS_PROFILE` or `default` profile, web identity, container, instance
//! metadata). Named profiles may assume roles (`role_arn` with `source_profile` or
//! `credential_source`); aws-config does the AssumeRole call. Resolved credentials are kept until
//! five minutes before they expire, so a warm instance does not assume a role per message, and
//! are read without a lock: only a refresh (one at a time per provider) takes one.
//!
//! Deadlines: each AWS call a provider makes has the SDK's operation time-out (one owner), and
//! the tool call as a whole has its own, longer deadline in `tools::run`. A provider that fails
//! is dropped and built again on the next call, so one broken profile never poisons later calls
//! or other profiles.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::{ArcSwap, ArcSwapOption};
use aws_config::default_provider::credentials::DefaultCredentialsChain;
use aws_config::profile::ProfileFileCredentialsProvider;
use aws_config::provider_config::ProviderConfig;
use aws_credential_types::Credentials;
use aws_credential_types::credential_feature::AwsCredentialFeature;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider, future};

use super::error::{AwsError, Cause};
use super::profiles::{Profiles, ProfilesError};
use crate::config::AwsEnvironment;

/// Where the credentials of a call came from, as reported in `credentials_source`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A named profile from the config or credentials file.
    Profile(String),
    /// Overrides set by set-environment on this connection (or selected by an environment_id).
    Connection,
    /// `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` in the process environment.
    Environment,
    /// The Lambda function's execution role (Lambda puts it in the environment).
    LambdaExecutionRole,
    /// Another provider of the default chain: `web_identity`, `container`, `instance_metadata`, ...
    DefaultChain(&'static str),
}

impl Source {
    /// The `credentials_source` label; only a profile's is written out on each call.
    pub fn label(&self) -> Cow<'static, str> {
        match self {
            Source::Profile(name) => format!("aws_config_profile:{name}").into(),
            Source::Connection => "set_environment".into(),
            Source::Environment => "environment_variables".into(),
            Source::LambdaExecutionRole => "lambda_execution_role".into(),
            Source::DefaultChain(kind) => format!("default_chain:{kind}").into(),
        }
    }

    /// The profile name, when the credentials came from one.
    pub fn profile(&self) -> Option<&str> {
        match self {
            Source::Profile(name) => Some(name),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Resolved {
    pub credentials: Credentials,
    pub source: Source,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum ResolveError {
    /// The name is the client's text, so the message does not repeat it.
    #[error("the profile named in 'profile' is not defined in the AWS config or credentials file")]
    UnknownProfile,
    #[error(transparent)]
    ConfigFiles(#[from] ProfilesError),
    #[error(transparent)]
    Aws(#[from] AwsError),
}

/// Who answered when a credential provider failed, for the message.
const PROVIDER: &str = "the credential provider";

/// A provider and the last credentials it gave, reused until they are about to expire.
#[derive(Debug)]
pub struct Cached {
    provider: SharedCredentialsProvider,
    /// Read without a lock while fresh.
    last: ArcSwapOption<Credentials>,
    /// Held while the provider is asked, so concurrent callers wait for one resolution.
    refreshing: tokio::sync::Mutex<()>,
}

const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(300);

impl Cached {
    pub fn new(provider: impl ProvideCredentials + 'static) -> Self {
        Self {
            provider: SharedCredentialsProvider::new(provider),
            last: ArcSwapOption::empty(),
            refreshing: tokio::sync::Mutex::new(()),
        }
    }

    /// The cached credentials while they are fresh, else the provider's. Concurrent callers
    /// wait for one resolution rather than each asking.
    pub async fn get(&self) -> Result<Credentials, AwsError> {
        if let Some(credentials) = self.fresh() {
            return Ok(credentials);
        }
        let _refreshing = self.refreshing.lock().await;
        // Another caller may have refreshed them while this one waited.
        if let Some(credentials) = self.fresh() {
            return Ok(credentials);
        }
        let credentials = self
            .provider
            .provide_credentials()
            .await
            .map_err(|err| AwsError::logged(PROVIDER, &err))?;
        self.last.store(Some(Arc::new(credentials.clone())));
        Ok(credentials)
    }

    fn fresh(&self) -> Option<Credentials> {
        let last = self.last.load();
        let credentials = last.as_deref()?;
        credentials
            .expiry()
            .is_none_or(|expiry| expiry > SystemTime::now() + REFRESH_BEFORE_EXPIRY)
            .then(|| credentials.clone())
    }
}

pub struct CredentialResolver {
    provider_config: ProviderConfig,
    environment: Option<Credentials>,
    in_lambda: bool,
    /// Read without a lock; a profile's first use copies it with the new entry added.
    named: ArcSwap<HashMap<String, Arc<Cached>>>,
    default_chain: Arc<Cached>,
}

impl CredentialResolver {
    pub fn new(provider_config: ProviderConfig, env: &AwsEnvironment, in_lambda: bool) -> Self {
        let environment = match (&env.access_key_id, &env.secret_access_key) {
            (Some(key_id), Some(secret)) => Some(Credentials::new(
                key_id,
                secret.expose(),
                env.session_token.as_ref().map(|t| t.expose().to_owned()),
                None,
                "Environment",
            )),
            _ => None,
        };
        Self {
            default_chain: Arc::new(Cached::new(LazyDefaultChain {
                provider_config: provider_config.clone(),
                chain: tokio::sync::Mutex::new(None),
            })),
            provider_config,
            environment,
            in_lambda,
            named: ArcSwap::default(),
        }
    }

    /// The process's own credentials, for its own AWS calls (PutMetricData, the session table,
    /// KMS): the environment's, else the default chain's (resolved on first use). Never a
    /// connection's.
    pub fn own(&self) -> SharedCredentialsProvider {
        match &self.environment {
            Some(credentials) => SharedCredentialsProvider::new(credentials.clone()),
            None => self.default_chain.provider.clone(),
        }
    }

    /// The environment's credentials (in Lambda, the execution role's), which a call with no
    /// profile and no connection credentials uses.
    pub fn environment(&self) -> Option<&Credentials> {
        self.environment.as_ref()
    }

    /// The credentials for a call, by the order described at the top of this module.
    pub async fn resolve(
        &self,
        profile: Option<&str>,
        connection: Option<&Credentials>,
        profiles: &Profiles,
    ) -> Result<Resolved, ResolveError> {
        if let Some(name) = profile {
            if !profiles.contains(name).await? {
                return Err(ResolveError::UnknownProfile);
            }
            let credentials = self.named_credentials(name, profiles).await?;
            return Ok(Resolved {
                credentials,
                source: Source::Profile(name.to_owned()),
            });
        }
        if let Some(credentials) = connection {
            return Ok(Resolved {
                credentials: credentials.clone(),
                source: Source::Connection,
            });
        }
        if let Some(credentials) = &self.environment {
            let source = if self.in_lambda {
                Source::LambdaExecutionRole
            } else {
                Source::Environment
            };
            return Ok(Resolved {
                credentials: credentials.clone(),
                source,
            });
        }
        // The default chain reads the `AWS_PROFILE` (or `default`) profile: a mistake there is
        // named as it would be for an explicit profile.
        if let Some(selected) = profiles.selected().await
            && profiles.contains(&selected).await.unwrap_or(false)
            && let Some(problem) = profiles.problem(&selected).await?
        {
            return Err(misconfigured(problem));
        }
        let credentials = self.default_chain.get().await?;
        let source = match chain_provider(&credentials) {
            _ if self.in_lambda => Source::LambdaExecutionRole,
            "aws_config_profile" => match profiles.selected().await {
                Some(name) => Source::Profile(name),
                None => Source::DefaultChain("aws_config_profile"),
            },
            other => Source::DefaultChain(other),
        };
        Ok(Resolved {
            credentials,
            source,
        })
    }

    async fn named_credentials(
        &self,
        name: &str,
        profiles: &Profiles,
    ) -> Result<Credentials, ResolveError> {
        if let Some(problem) = profiles.problem(name).await? {
            return Err(misconfigured(problem));
        }
        let cached = self.named(name);
        match cached.get().await {
            Ok(credentials) => Ok(credentials),
            Err(err) => {
                // Built again next time: aws-config's provider keeps its first failure.
                self.forget(name, &cached);
                Err(match err.cause {
                    Cause::NoCredentials => misconfigured(format!(
                        "AWS credentials not found for profile '{name}': its credential source has none"
                    )),
                    _ => ResolveError::Aws(err),
                })
            }
        }
    }

    fn named(&self, name: &str) -> Arc<Cached> {
        if let Some(cached) = self.named.load().get(name) {
            return cached.clone();
        }
        let built = Arc::new(Cached::new(
            ProfileFileCredentialsProvider::builder()
                .configure(&self.provider_config)
                .profile_name(name)
                .build(),
        ));
        self.named.rcu(|named| {
            let mut named = HashMap::clone(named);
            named
                .entry(name.to_owned())
                .or_insert_with(|| built.clone());
            named
        });
        // If another call added this profile meanwhile, both use the entry that was kept.
        self.named.load().get(name).cloned().unwrap_or(built)
    }

    fn forget(&self, name: &str, failed: &Arc<Cached>) {
        self.named.rcu(|named| {
            let mut named = HashMap::clone(named);
            if named.get(name).is_some_and(|c| Arc::ptr_eq(c, failed)) {
                named.remove(name);
            }
            named
        });
    }
}

fn misconfigured(problem: String) -> ResolveError {
    ResolveError::Aws(AwsError::new(PROVIDER, Cause::Misconfigured(problem)))
}

/// aws-config's default chain, built on its first use (building it builds an
/// instance-metadata client, which loads the TLS roots), and built again after a failure.
#[derive(Debug)]
struct LazyDefaultChain {
    provider_config: ProviderConfig,
    chain: tokio::sync::Mutex<Option<Arc<DefaultCredentialsChain>>>,
}

impl ProvideCredentials for LazyDefaultChain {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move {
            let chain = {
                let mut slot = self.chain.lock().await;
                match slot.as_ref() {
                    Some(chain) => chain.clone(),
                    None => {
                        let chain = Arc::new(
                            DefaultCredentialsChain::builder()
                                .configure(self.provider_config.clone())
                                .build()
                                .await,
                        );
                        *slot = Some(chain.clone());
                        chain
                    }
                }
            };
            let result = chain.provide_credentials().await;
            if result.is_err() {
                let mut slot = self.chain.lock().await;
                if slot.as_ref().is_some_and(|c| Arc::ptr_eq(c, &chain)) {
                    *slot = None;
                }
            }
            result
        })
    }
}

/// Which provider of the default chain produced these credentials, from the features
/// aws-config records on them.
fn chain_provider(credentials: &Credentials) -> &'static str {
    let Some(features) = credentials.get_property::<Vec<AwsCredentialFeature>>() else {
        return "unknown";
    };
    let has = |feature: AwsCredentialFeature| features.contains(&feature);
    if has(AwsCredentialFeature::CredentialsProfile)
        || has(AwsCredentialFeature::CredentialsProfileSourceProfile)
        || has(AwsCredentialFeature::CredentialsProfileNamedProvider)
    {
        "aws_config_profile"
    } else if has(AwsCredentialFeature::CredentialsEnvVarsStsWebIdToken)
        || has(AwsCredentialFeature::CredentialsProfileStsWebIdToken)
        || has(AwsCredentialFeature::CredentialsStsAssumeRoleWebId)
    {
        "web_identity"
    } else if has(AwsCredentialFeature::CredentialsHttp) {
        "container"
    } else if has(AwsCredentialFeature::CredentialsImds) {
        "instance_metadata"
    } else if has(AwsCredentialFeature::CredentialsEnvVars) {
        "environment_variables"
    } else {
        "unknown"
    }
}

/// Removes the credentials' secrets (and all but the masked access key id) from an error.
pub fn scrubbed(error: AwsError, credentials: &Credentials) -> AwsError {
    error.scrubbed(
        &[
            credentials.secret_access_key(),
            credentials.session_token().unwrap_or(""),
        ],
        credentials.access_key_id(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Counts its resolutions; each yields a few times, so concurrent callers overlap.
    #[derive(Debug)]
    struct Counting {
        calls: Arc<AtomicUsize>,
        expiry: Option<SystemTime>,
    }

    impl ProvideCredentials for Counting {
        fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
        where
            Self: 'a,
        {
            future::ProvideCredentials::new(async move {
                let n = self.calls.fetch_add(1, Ordering::SeqCst);
                for _ in 0..5 {
                    tokio::task::yield_now().await;
                }
                Ok(Credentials::new(
                    format!("AKID{n}"),
                    "secret",
                    None,
                    self.expiry,
                    "counting",
                ))
            })
        }
    }

    #[tokio::test]
    async fn cached_credentials_are_resolved_once_while_fresh() {
        let calls = Arc::new(AtomicUsize::new(0));
        let cached = Cached::new(Counting {
            calls: calls.clone(),
            expiry: None,
        });
        let (a, b, c) = tokio::join!(cached.get(), cached.get(), cached.get());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        for credentials in [a, b, c] {
            assert_eq!(credentials.unwrap().access_key_id(), "AKID0");
        }
        assert_eq!(cached.get().await.unwrap().access_key_id(), "AKID0");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn credentials_about_to_expire_are_resolved_again() {
        let calls = Arc::new(AtomicUsize::new(0));
        let cached = Cached::new(Counting {
            calls: calls.clone(),
            expiry: Some(SystemTime::now() + Duration::from_secs(60)),
        });
        assert_eq!(cached.get().await.unwrap().access_key_id(), "AKID0");
        assert_eq!(cached.get().await.unwrap().access_key_id(), "AKID1");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn labels_follow_the_reference() {
        assert_eq!(
            Source::Profile("production".into()).label(),
            "aws_config_profile:production"
        );
        assert_eq!(Source::LambdaExecutionRole.label(), "lambda_execution_role");
        assert_eq!(
            Source::DefaultChain("instance_metadata").label(),
            "default_chain:instance_metadata"
        );
    }

    #[test]
    fn provider_kind_comes_from_credential_features() {
        let mut credentials = Credentials::for_tests();
        assert_eq!(chain_provider(&credentials), "unknown");
        credentials
            .get_property_mut_or_default::<Vec<AwsCredentialFeature>>()
            .push(AwsCredentialFeature::CredentialsImds);
        assert_eq!(chain_provider(&credentials), "instance_metadata");
    }
}
