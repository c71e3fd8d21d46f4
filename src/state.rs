//! [`AppState`]: everything built once at start-up and borrowed by every message.
//!
//! One `AppState` is one instance of the function: its caches (credentials, identities,
//! profiles, the tool-call buckets) are its own. What instances share is the session store, and
//! with it the only state a connection has beyond one message; `serve --instances N` builds N
//! of them over one store, as Lambda runs N environments over one table.

use std::sync::Arc;
use std::time::Duration;

use aws_config::provider_config::ProviderConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;
use ring::aead::LessSafeKey;

use crate::aws::OnFirstUse;
use crate::aws::credentials::CredentialResolver;
use crate::aws::profiles::Profiles;
use crate::aws::sts::{FALLBACK_REGION, Sts};
use crate::config::{Config, MetricsSink};
use crate::metrics::Recorder;
use crate::metrics::cloudwatch::CloudWatchSink;
use crate::metrics::emf::EmfSink;
use crate::metrics::publisher::{Publisher, Sink};
use crate::session::dynamodb::DynamoStore;
use crate::session::memory::MemoryStore;
use crate::session::seal::{Kms, SealError, Sealer};
use crate::session::{SessionStore, Sessions};

pub struct AppState {
    pub config: Config,
    pub credentials: CredentialResolver,
    pub profiles: Profiles,
    pub sts: Sts,
    pub sessions: Sessions,
    pub metrics: Arc<Recorder>,
    metrics_sink: Option<Sink>,
    /// Which instance this is (`serve --instances N`; 0 otherwise), for the log.
    pub instance: usize,
}

/// The AWS side of one instance: the SDK configuration its clients are made from.
struct Aws {
    sdk_config: SdkConfig,
    provider_config: ProviderConfig,
}

/// What the instances of one process share.
struct Shared {
    store: Arc<SessionStore>,
    /// The sealing key when KMS is not used: one per process.
    local_key: Arc<LessSafeKey>,
    metrics: Arc<Recorder>,
    metrics_sink: Option<Sink>,
}

/// Why the state could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot start: {0}")]
pub struct StartError(#[from] SealError);

impl AppState {
    /// One instance. Nothing here touches the network or loads TLS roots: AWS clients are built
    /// on first use.
    pub async fn new(config: Config) -> Result<Self, StartError> {
        let mut instances = Self::instances(config, 1).await?;
        Ok(instances.remove(0))
    }

    /// `n` instances sharing the session store (and, without KMS, the sealing key and the
    /// metrics).
    pub async fn instances(config: Config, n: usize) -> Result<Vec<Self>, StartError> {
        let first_aws = Aws::new(&config).await;
        let first_credentials = CredentialResolver::new(
            first_aws.provider_config.clone(),
            &config.aws,
            config.lambda_function_name.is_some(),
        );
        let shared = Shared::new(&config, &first_aws, first_credentials.own())?;
        let mut instances = Vec::with_capacity(n);
        let mut first = Some((first_aws, first_credentials));
        for instance in 0..n.max(1) {
            let (aws, credentials) = match first.take() {
                Some(first) => first,
                None => {
                    let aws = Aws::new(&config).await;
                    let credentials = CredentialResolver::new(
                        aws.provider_config.clone(),
                        &config.aws,
                        config.lambda_function_name.is_some(),
                    );
                    (aws, credentials)
                }
            };
            instances.push(Self::build(
                config.clone(),
                aws,
                credentials,
                &shared,
                instance,
            ));
        }
        Ok(instances)
    }

    fn build(
        config: Config,
        aws: Aws,
        credentials: CredentialResolver,
        shared: &Shared,
        instance: usize,
    ) -> Self {
        let sts = Sts::new(
            sts_client(&aws.sdk_config, config.aws.sts_endpoint_url.as_deref()),
            config.identity_cache_ttl,
        );
        let function = config
            .lambda_function_name
            .clone()
            .unwrap_or_else(|| "local".to_owned());
        // With KMS each instance has data keys of its own, as each Lambda environment does.
        let sealer = match &config.sessions.kms_key_id {
            Some(key_id) => Sealer::kms(Kms::new(
                kms_client(&aws.sdk_config, &config, credentials.own()),
                key_id.clone(),
                &function,
            )),
            None => Sealer::local(shared.local_key.clone()),
        };
        let sessions = Sessions::new(
            shared.store.clone(),
            Arc::new(sealer),
            config.rate_limits,
            function,
            config.sessions.environment_ttl,
        );
        Self {
            credentials,
            profiles: Profiles::default(),
            sts,
            sessions,
            metrics: shared.metrics.clone(),
            metrics_sink: shared.metrics_sink.clone(),
            instance,
            config,
        }
    }

    /// What the first tool call that reaches STS would otherwise pay for: the STS client, built
    /// on a blocking thread (not the runtime's one thread, which answers events meanwhile),
    /// then a GetCallerIdentity with the function's own credentials, which builds the TLS
    /// connector, opens the connection to the STS endpoint and leaves it in the pool; its answer
    /// goes into the identity cache, as a tool call's would. A failure is logged like any AWS
    /// failure and changes nothing: the first tool call does the work itself, within its own
    /// time-out. [`crate::gateway::lambda`] says when it runs.
    pub async fn warm_up(self: Arc<Self>) {
        let Some(credentials) = self.credentials.environment().cloned() else {
            return;
        };

        let started = std::time::Instant::now();
        let state = self.clone();
        if tokio::task::spawn_blocking(move || state.sts.prepare())
            .await
            .is_err()
        {
            return;
        }
        let region = self
            .config
            .aws
            .effective_region()
            .unwrap_or(FALLBACK_REGION);
        if self.sts.identity(&credentials, region).await.is_ok() {
            tracing::info!(
                elapsed_ms = started.elapsed().as_millis() as u64,
                "warm-up done: STS client, TLS and a connection ready"
            );
        }
    }

    /// The EMF sink when metrics are written per invocation: in Lambda, where the environment
    /// is frozen between invocations and a timer cannot be trusted to fire.
    pub fn per_invocation_metrics(&self) -> Option<&EmfSink> {
        match &self.metrics_sink {
            Some(Sink::Emf(emf)) if self.config.lambda_function_name.is_some() => Some(emf),
            _ => None,
        }
    }

    /// Starts publishing metrics in the background, unless the sink is `off` or metrics are
    /// written per invocation.
    pub fn start_metrics(&self) -> Option<Publisher> {
        if self.per_invocation_metrics().is_some() {
            return None;
        }
        let sink = self.metrics_sink.clone()?;
        Some(Publisher::start(
            self.metrics.clone(),
            sink,
            self.config.metrics.flush_interval,
            self.config.metrics.flush_timeout,
        ))
    }
}

impl Aws {
    async fn new(config: &Config) -> Self {
        let http_client = crate::aws::https_client(config.trust_roots.clone());
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(config.connect_timeout)
            .operation_attempt_timeout(config.operation_timeout)
            .operation_timeout(config.operation_timeout)
            .build();
        let region = Region::new(
            config
                .aws
                .effective_region()
                .unwrap_or(FALLBACK_REGION)
                .to_owned(),
        );
        let sdk_config = aws_config::defaults(BehaviorVersion::latest())
            .http_client(http_client.clone())
            .timeout_config(timeouts.clone())
            .retry_config(retries(config.operation_timeout))
            .region(region.clone())
            // Credentials come from CredentialResolver (per call for STS, the process's own for
            // its own calls); the loader's default chain would build an instance-metadata client
            // at start-up, and with it load the TLS roots.
            .no_credentials()
            .load()
            .await;
        let provider_config = ProviderConfig::without_region()
            .with_http_client(http_client)
            .with_timeout_config(timeouts)
            .with_retry_config(retries(config.operation_timeout))
            .with_region(Some(region));
        Self {
            sdk_config,
            provider_config,
        }
    }
}

impl Shared {
    fn new(config: &Config, aws: &Aws, own: SharedCredentialsProvider) -> Result<Self, StartError> {
        let store = match &config.sessions.table {
            Some(table) => SessionStore::DynamoDb(DynamoStore::new(
                dynamodb_client(&aws.sdk_config, config, own.clone()),
                table.clone(),
            )),
            None => SessionStore::Memory(MemoryStore::new()),
        };
        let metrics_config = &config.metrics;
        let metrics = Arc::new(Recorder::new(
            metrics_config.flush_max_calls,
            metrics_config.sink.as_str(),
            metrics_config.namespace.clone(),
        ));
        let metrics_sink = match metrics_config.sink {
            MetricsSink::Off => None,
            MetricsSink::Emf => Some(Sink::Emf(EmfSink::new(metrics_config.namespace.clone()))),
            MetricsSink::CloudWatch => Some(Sink::CloudWatch(CloudWatchSink::new(
                cloudwatch_client(&aws.sdk_config, config, own),
                metrics_config.namespace.clone(),
            ))),
        };
        Ok(Self {
            store: Arc::new(store),
            local_key: Sealer::new_local_key()?,
            metrics,
            metrics_sink,
        })
    }
}

/// The SDK's standard retries (three attempts), with back-off scaled to the operation
/// time-out so that every retry happens within it: a call to an endpoint that refuses
/// connections ends as "could not be reached", never as a time-out that won a race against the
/// third attempt. The operation time-out stays the one deadline of the call.
fn retries(operation_timeout: Duration) -> RetryConfig {
    RetryConfig::standard()
        .with_initial_backoff((operation_timeout / 8).min(Duration::from_secs(1)))
        .with_max_backoff(operation_timeout / 4)
}

/// The CloudWatch client publishes with the process's own credentials (never a connection's),
/// tries once (the publisher retries within its budget) and gives up within the flush time-out.
fn cloudwatch_client(
    sdk_config: &SdkConfig,
    config: &Config,
    credentials: SharedCredentialsProvider,
) -> OnFirstUse<aws_sdk_cloudwatch::Client> {
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(config.connect_timeout)
        .operation_timeout(config.metrics.flush_timeout)
        .build();
    let mut builder = aws_sdk_cloudwatch::config::Builder::from(sdk_config)
        .retry_config(RetryConfig::standard().with_max_attempts(1))
        .timeout_config(timeouts)
        .credentials_provider(credentials);
    if let Some(url) = &config.metrics.cloudwatch_endpoint_url {
        builder = builder.endpoint_url(url);
    }
    let client_config = builder.build();
    OnFirstUse::new(move || aws_sdk_cloudwatch::Client::from_conf(client_config.clone()))
}

fn sts_client(
    sdk_config: &SdkConfig,
    endpoint_url: Option<&str>,
) -> OnFirstUse<aws_sdk_sts::Client> {
    let mut builder = aws_sdk_sts::config::Builder::from(sdk_config);
    if let Some(url) = endpoint_url {
        builder = builder.endpoint_url(url);
    }
    let client_config = builder.build();
    OnFirstUse::new(move || aws_sdk_sts::Client::from_conf(client_config.clone()))
}

/// The session table's client: the process's own credentials, the AWS call time-outs.
fn dynamodb_client(
    sdk_config: &SdkConfig,
    config: &Config,
    credentials: SharedCredentialsProvider,
) -> OnFirstUse<aws_sdk_dynamodb::Client> {
    let mut builder =
        aws_sdk_dynamodb::config::Builder::from(sdk_config).credentials_provider(credentials);
    if let Some(url) = &config.sessions.dynamodb_endpoint_url {
        builder = builder.endpoint_url(url);
    }
    let client_config = builder.build();
    OnFirstUse::new(move || aws_sdk_dynamodb::Client::from_conf(client_config.clone()))
}

fn kms_client(
    sdk_config: &SdkConfig,
    config: &Config,
    credentials: SharedCredentialsProvider,
) -> OnFirstUse<aws_sdk_kms::Client> {
    let mut builder =
        aws_sdk_kms::config::Builder::from(sdk_config).credentials_provider(credentials);
    if let Some(url) = &config.sessions.kms_endpoint_url {
        builder = builder.endpoint_url(url);
    }
    let client_config = builder.build();
    OnFirstUse::new(move || aws_sdk_kms::Client::from_conf(client_config.clone()))
}
