//! [`AppState`]: everything built once at start-up and borrowed by every message.

use aws_config::provider_config::ProviderConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;

use crate::aws::credentials::CredentialResolver;
use crate::aws::profiles::Profiles;
use crate::aws::sts::{FALLBACK_REGION, Sts};
use crate::config::Config;
use crate::session::Sessions;

pub struct AppState {
    pub config: Config,
    pub credentials: CredentialResolver,
    pub profiles: Profiles,
    pub sts: Sts,
    pub sessions: Sessions,
}

impl AppState {
    /// Builds the HTTP client, the SDK configuration and the STS client. Nothing here touches
    /// the network: TLS roots are loaded and connections made on the first AWS call.
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
            .retry_config(RetryConfig::standard())
            .region(region.clone())
            .no_credentials()
            .load()
            .await;
        let provider_config = ProviderConfig::without_region()
            .with_http_client(http_client)
            .with_timeout_config(timeouts)
            .with_retry_config(RetryConfig::standard())
            .with_region(Some(region));
        let credentials = CredentialResolver::new(
            provider_config,
            &config.aws,
            config.lambda_function_name.is_some(),
            config.operation_timeout,
        );
        let sts = Sts::new(
            sts_client(&sdk_config, config.aws.sts_endpoint_url.as_deref()),
            config.identity_cache_ttl,
        );
        let sessions = Sessions::new(config.rate_limits, config.idle_timeout);
        Self {
            config,
            credentials,
            profiles: Profiles::default(),
            sts,
            sessions,
        }
    }
}

/// One HTTPS client for every AWS call: hyper with rustls on ring.
fn https_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

fn sts_client(sdk_config: &SdkConfig, endpoint_url: Option<&str>) -> aws_sdk_sts::Client {
    let mut builder = aws_sdk_sts::config::Builder::from(sdk_config);
    if let Some(url) = endpoint_url {
        builder = builder.endpoint_url(url);
    }
    aws_sdk_sts::Client::from_conf(builder.build())
}
