//! [`AppState`]: everything built once at start-up and borrowed by every message.

use aws_config::provider_config::ProviderConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;

use std::sync::Arc;

use crate::aws::OnFirstUse;
use crate::aws::credentials::CredentialResolver;
use crate::aws::profiles::Profiles;
use crate::aws::sts::{FALLBACK_REGION, Sts};
use crate::config::{Config, MetricsSink};
use crate::metrics::Recorder;
use crate::metrics::cloudwatch::CloudWatchSink;
use crate::metrics::emf::EmfSink;
use crate::metrics::publisher::{Publisher, Sink};
use crate::session::Sessions;

pub struct AppState {
    pub config: Config,
    pub credentials: CredentialResolver,
    pub profiles: Profiles,
    pub sts: Sts,
    pub sessions: Sessions,
    pub metrics: Arc<Recorder>,
    metrics_sink: Option<Sink>,
}

impl AppState {
    /// Builds the HTTP client, the SDK configuration and the AWS clients' configurations. Nothing
    /// here touches the network or loads TLS roots: the clients are built on first use.
    pub async fn new(config: Config) -> Self {
        let http_client = https_client();
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
            // CloudWatch); the loader's default chain would build an instance-metadata client at
            // start-up, and with it load the TLS roots.
            .no_credentials()
            .load()
            .await;
        let provider_config = ProviderConfig::without_region()
            .with_http_client(http_client)
            .with_timeout_config(timeouts)
            .with_retry_config(retries(config.operation_timeout))
            .with_region(Some(region));
        let credentials = CredentialResolver::new(
            provider_config,
            &config.aws,
            config.lambda_function_name.is_some(),
        );
        let sts = Sts::new(
            sts_client(&sdk_config, config.aws.sts_endpoint_url.as_deref()),
            config.identity_cache_ttl,
        );
        let sessions = Sessions::new(config.rate_limits, config.idle_timeout);
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
                cloudwatch_client(&sdk_config, &config, credentials.own()),
                metrics_config.namespace.clone(),
            ))),
        };
        Self {
            config,
            credentials,
            profiles: Profiles::default(),
            sts,
            sessions,
            metrics,
            metrics_sink,
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

/// The SDK's standard retries (three attempts), with back-off scaled to the operation
/// time-out so that every retry happens within it: a call to an endpoint that refuses
/// connections ends as "could not be reached", never as a time-out that won a race against the
/// third attempt. The operation time-out stays the one deadline of the call.
fn retries(operation_timeout: std::time::Duration) -> RetryConfig {
    RetryConfig::standard()
        .with_initial_backoff((operation_timeout / 8).min(std::time::Duration::from_secs(1)))
        .with_max_backoff(operation_timeout / 4)
}

/// One HTTPS client for every AWS call: hyper with rustls on ring.
fn https_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// The CloudWatch client publishes with the process's own credentials (never a connection's),
/// tries once (the publisher retries within its
/// budget) and gives up within the flush time-out.
fn cloudwatch_client(
    sdk_config: &SdkConfig,
    config: &Config,
    credentials: aws_credential_types::provider::SharedCredentialsProvider,
) -> OnFirstUse<aws_sdk_cloudwatch::Client> {
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(config.connect_timeout)
        .operation_timeout(config.metrics.flush_timeout)
        .build();
    let mut builder = aws_sdk_cloudwatch::config::Builder::from(sdk_config)
        .retry_config(RetryConfig::standard().with_max_attempts(1))
        .timeout_config(timeouts);
    if let Some(url) = &config.metrics.cloudwatch_endpoint_url {
        builder = builder.endpoint_url(url);
    }
    builder = builder.credentials_provider(credentials);
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
