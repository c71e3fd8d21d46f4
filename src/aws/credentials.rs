//! Which credentials a tool call runs with, and where they came from.
//!
//! Order: an explicit `profile` argument; else the connection's set-environment overrides; else
//! the process environment (in Lambda, the execution role); else aws-config's default chain
//! (`AWS_PROFILE` or `default` profile, web identity, container, instance metadata).
//! Named profiles may assume roles (`role_arn` with `source_profile` or `credential_source`);
//! aws-config does the AssumeRole call. Resolved credentials are kept until five minutes before
//! they expire, so a warm instance does not assume a role per message.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_config::default_provider::credentials::DefaultCredentialsChain;
use aws_config::profile::ProfileFileCredentialsProvider;
use aws_config::provider_config::ProviderConfig;
use aws_credential_types::Credentials;
use aws_credential_types::credential_feature::AwsCredentialFeature;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider, future};
use aws_smithy_types::error::display::DisplayErrorContext;
use tokio::sync::OnceCell;

use super::profiles::{Profiles, ProfilesError};
use super::secret;
use super::sts::Refusal;
use crate::config::AwsEnvironment;

/// Where the credentials of a call came from, as reported in `credentials_source`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A named profile from the config or credentials file.
    Profile(String),
    /// Overrides set by set-environment on this connection.
    Connection,
    /// `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` in the process environment.
    Environment,
    /// The Lambda function's execution role (Lambda puts it in the environment).
    LambdaExecutionRole,
    /// Another provider of the default chain: `web_identity`, `container`, `instance_metadata`, ...
    DefaultChain(&'static str),
}

impl Source {
    pub fn label(&self) -> String {
        match self {
            Source::Profile(name) => format!("aws_config_profile:{name}"),
            Source::Connection => "set_environment".into(),
            Source::Environment => "environment_variables".into(),
            Source::LambdaExecutionRole => "lambda_execution_role".into(),
            Source::DefaultChain(kind) => format!("default_chain:{kind}"),
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

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// No provider had credentials; `reason` is aws-config's account of why, for the log.
    #[error("AWS credentials not found")]
    NotFound { reason: String },
    /// A named profile that yields no credentials, with aws-config's reason.
    #[error("AWS credentials not found for profile '{profile}': {reason}")]
    NotFoundInProfile { profile: String, reason: String },
    /// The name is the client's text, so the message does not repeat it.
    #[error("the profile named in 'profile' is not defined in the AWS config or credentials file")]
    UnknownProfile(String),
    #[error("the credential provider did not answer within {0:?}")]
    TimedOut(Duration),
    /// A provider failed; `refusal` is what AWS said when an AWS call (AssumeRole) was refused.
    #[error("{message}")]
    Provider {
        refusal: Option<Refusal>,
        message: String,
    },
    #[error(transparent)]
    Profiles(#[from] ProfilesError),
}

/// A provider and the last credentials it gave, reused until they are about to expire.
#[derive(Debug)]
struct Cached {
    provider: SharedCredentialsProvider,
    last: tokio::sync::Mutex<Option<Credentials>>,
}

const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(300);

impl Cached {
    fn new(provider: impl ProvideCredentials + 'static) -> Self {
        Self {
            provider: SharedCredentialsProvider::new(provider),
            last: tokio::sync::Mutex::new(None),
        }
    }

    async fn get(&self, timeout: Duration) -> Result<Credentials, CredentialError> {
        let mut last = self.last.lock().await;
        if let Some(credentials) = last.as_ref() {
            let fresh = credentials
                .expiry()
                .is_none_or(|expiry| expiry > SystemTime::now() + REFRESH_BEFORE_EXPIRY);
            if fresh {
                return Ok(credentials.clone());
            }
        }
        let credentials = tokio::time::timeout(timeout, self.provider.provide_credentials())
            .await
            .map_err(|_| CredentialError::TimedOut(timeout))?
            .map_err(classify)?;
        *last = Some(credentials.clone());
        Ok(credentials)
    }
}

fn classify(error: CredentialsError) -> CredentialError {
    match &error {
        CredentialsError::CredentialsNotLoaded(_) => CredentialError::NotFound {
            reason: DisplayErrorContext(&error).to_string(),
        },
        CredentialsError::ProviderTimedOut(timed_out) => {
            CredentialError::TimedOut(timed_out.timeout_duration())
        }
        _ => CredentialError::Provider {
            refusal: assume_role_refusal(&error),
            message: DisplayErrorContext(&error).to_string(),
        },
    }
}

/// What AWS said to a refused AssumeRole somewhere in the error's sources.
fn assume_role_refusal(error: &(dyn std::error::Error + 'static)) -> Option<Refusal> {
    use aws_sdk_sts::error::SdkError;
    use aws_sdk_sts::operation::assume_role::AssumeRoleError;
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(err) = current {
        if let Some(SdkError::ServiceError(service)) =
            err.downcast_ref::<SdkError<AssumeRoleError>>()
        {
            return Some(Refusal::of(service.err(), service.raw()));
        }
        current = err.source();
    }
    None
}

pub struct CredentialResolver {
    provider_config: ProviderConfig,
    environment: Option<Credentials>,
    in_lambda: bool,
    named: Mutex<HashMap<String, Arc<Cached>>>,
    default_chain: Cached,
    timeout: Duration,
}

impl CredentialResolver {
    pub fn new(
        provider_config: ProviderConfig,
        env: &AwsEnvironment,
        in_lambda: bool,
        timeout: Duration,
    ) -> Self {
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
            default_chain: Cached::new(LazyDefaultChain {
                provider_config: provider_config.clone(),
                chain: OnceCell::new(),
            }),
            provider_config,
            environment,
            in_lambda,
            named: Mutex::new(HashMap::new()),
            timeout,
        }
    }

    /// The process's own credentials, for its own AWS calls (PutMetricData): the environment's,
    /// else the default chain's (resolved on first use). Never a connection's.
    pub fn own(&self) -> SharedCredentialsProvider {
        match &self.environment {
            Some(credentials) => SharedCredentialsProvider::new(credentials.clone()),
            None => self.default_chain.provider.clone(),
        }
    }

    /// The credentials for a call, by the order described at the top of this module.
    pub async fn resolve(
        &self,
        profile: Option<&str>,
        connection: Option<&Credentials>,
        profiles: &Profiles,
    ) -> Result<Resolved, CredentialError> {
        if let Some(name) = profile {
            if !profiles.contains(name).await? {
                return Err(CredentialError::UnknownProfile(name.to_owned()));
            }
            let credentials =
                self.named(name)
                    .get(self.timeout)
                    .await
                    .map_err(|err| match err {
                        CredentialError::NotFound { reason } => {
                            CredentialError::NotFoundInProfile {
                                profile: name.to_owned(),
                                reason,
                            }
                        }
                        other => other,
                    })?;
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
        let credentials = self.default_chain.get(self.timeout).await?;
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

    fn named(&self, name: &str) -> Arc<Cached> {
        let mut named = self
            .named
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        named
            .entry(name.to_owned())
            .or_insert_with(|| {
                Arc::new(Cached::new(
                    ProfileFileCredentialsProvider::builder()
                        .configure(&self.provider_config)
                        .profile_name(name)
                        .build(),
                ))
            })
            .clone()
    }
}

/// aws-config's default chain, built on its first use: building it builds an instance-metadata
/// client, which loads the TLS roots.
#[derive(Debug)]
struct LazyDefaultChain {
    provider_config: ProviderConfig,
    chain: OnceCell<DefaultCredentialsChain>,
}

impl ProvideCredentials for LazyDefaultChain {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move {
            let chain = self
                .chain
                .get_or_init(|| {
                    DefaultCredentialsChain::builder()
                        .configure(self.provider_config.clone())
                        .build()
                })
                .await;
            chain.provide_credentials().await
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

/// The secrets of a set of credentials, for [`secret::scrub`].
fn secrets_of(credentials: &Credentials) -> [&str; 2] {
    [
        credentials.secret_access_key(),
        credentials.session_token().unwrap_or(""),
    ]
}

/// Removes the credentials' secrets from a text that came from elsewhere.
pub fn scrub(text: &str, credentials: &Credentials) -> String {
    secret::scrub(text, &secrets_of(credentials))
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn credentials_not_loaded_means_not_found() {
        let err = classify(CredentialsError::not_loaded("nothing configured"));
        assert!(matches!(err, CredentialError::NotFound { .. }));
    }
}
