//! Every environment variable the service reads, read once at start-up into [`Config`].
//!
//! The AWS SDK also reads the standard AWS variables itself (profiles, the default credential
//! chain, endpoint configuration); the copies kept here are what the tools report and what the
//! "environment" credential source uses, so both see the same process environment.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use crate::aws::secret::Secret;
use crate::aws::{CaBundle, TrustRoots};

/// The largest message API Gateway accepts on a WebSocket connection (128 KB).
pub const MAX_MESSAGE_BYTES: usize = 128 * 1024;

#[derive(Debug, Clone)]
pub struct Config {
    pub aws: AwsEnvironment,
    /// Connect time-out for every AWS call (`CONNECT_TIMEOUT_MS`, default 2,000).
    pub connect_timeout: Duration,
    /// Time-out for a whole AWS operation, retries included (`OPERATION_TIMEOUT_MS`, default 5,000).
    pub operation_timeout: Duration,
    pub rate_limits: RateLimits,
    /// How long a connection may stay silent before the emulator closes it, as API Gateway
    /// does (`IDLE_TIMEOUT_SECS`, default 600), and how long a silent connection's state is kept.
    pub idle_timeout: Duration,
    /// How long `serve` waits for a client to make room for a reply before it closes the
    /// connection with 1008: the client does not read (`SEND_TIMEOUT_SECS`, default 10).
    pub send_timeout: Duration,
    /// How long `get-account-info` trusts a cached identity (`IDENTITY_CACHE_TTL_SECS`, default 900).
    pub identity_cache_ttl: Duration,
    /// Set when running in AWS Lambda (`AWS_LAMBDA_FUNCTION_NAME`).
    pub lambda_function_name: Option<String>,
    /// The environment is initialized ahead of its events
    /// (`AWS_LAMBDA_INITIALIZATION_TYPE=provisioned-concurrency`).
    pub provisioned_concurrency: bool,
    pub metrics: MetricsConfig,
    pub sessions: SessionConfig,
    /// The roots AWS endpoints are checked against: the bundle `AWS_CA_BUNDLE` names (read and
    /// checked here: a bundle that cannot be used stops the start), else the system's loader
    /// when `SSL_CERT_FILE` or `SSL_CERT_DIR` is set, else the compiled-in roots.
    pub trust_roots: TrustRoots,
    /// Browser origins the `/mcp` endpoint takes besides loopback ones (`ALLOWED_ORIGINS`,
    /// comma-separated, such as `https://console.example.com`): DNS rebinding protection.
    pub allowed_origins: Vec<String>,
}

/// Where connection state lives, and how its secrets are sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// `SESSION_TABLE`: a DynamoDB table shared by every instance; unset, state is in memory.
    pub table: Option<String>,
    /// `KMS_KEY_ID`: the KMS key of envelope encryption; unset, a key made at start.
    pub kms_key_id: Option<String>,
    /// `AWS_ENDPOINT_URL_DYNAMODB`, else `AWS_ENDPOINT_URL`.
    pub dynamodb_endpoint_url: Option<String>,
    /// `AWS_ENDPOINT_URL_KMS`, else `AWS_ENDPOINT_URL`.
    pub kms_endpoint_url: Option<String>,
    /// How long an `environment_id` stays valid (`ENVIRONMENT_TTL_SECS`, default 7,200: a
    /// WebSocket connection's longest life).
    pub environment_ttl: Duration,
}

/// Where tool-call metrics are published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsSink {
    /// PutMetricData, batched, from a background task.
    CloudWatch,
    /// CloudWatch Embedded Metric Format lines on stdout.
    Emf,
    /// Recorded for `/api/metrics` only.
    Off,
}

impl MetricsSink {
    pub fn as_str(self) -> &'static str {
        match self {
            MetricsSink::CloudWatch => "cloudwatch",
            MetricsSink::Emf => "emf",
            MetricsSink::Off => "off",
        }
    }
}

#[derive(Debug, Clone)]
pub struct MetricsConfig {
    /// `METRICS_SINK` = `cloudwatch`, `emf` or `off`; default `emf` in Lambda, else `off`.
    pub sink: MetricsSink,
    /// `METRICS_NAMESPACE`, default `MCPAwsTools`.
    pub namespace: String,
    /// Publish at least this often while there is data (`METRICS_FLUSH_INTERVAL_SECS`, default 60).
    pub flush_interval: Duration,
    /// Publish once this many tool calls are waiting (`METRICS_FLUSH_MAX_CALLS`, default 10,000).
    pub flush_max_calls: u64,
    /// Time allowed for one publication, one retry included (`METRICS_FLUSH_TIMEOUT_MS`, default 5,000).
    pub flush_timeout: Duration,
    /// `AWS_ENDPOINT_URL_CLOUDWATCH`, else `AWS_ENDPOINT_URL`, unless `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS`.
    pub cloudwatch_endpoint_url: Option<String>,
}

/// The AWS variables as the process saw them at start-up.
#[derive(Debug, Clone, Default)]
pub struct AwsEnvironment {
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<Secret>,
    pub session_token: Option<Secret>,
    /// `AWS_REGION`.
    pub region: Option<String>,
    /// `AWS_DEFAULT_REGION`, which the AWS CLI honours and the Rust SDK does not.
    pub default_region: Option<String>,
    /// `AWS_PROFILE`.
    pub profile: Option<String>,
    /// `AWS_ENDPOINT_URL_STS`, else `AWS_ENDPOINT_URL`, unless `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS`.
    pub sts_endpoint_url: Option<String>,
}

impl AwsEnvironment {
    /// The region in effect from the environment: `AWS_REGION`, else `AWS_DEFAULT_REGION`.
    pub fn effective_region(&self) -> Option<&str> {
        self.region.as_deref().or(self.default_region.as_deref())
    }
}

/// Token buckets applied per connection to tool calls.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimits {
    /// Every tool call (`RATE_LIMIT_PER_SECOND`, default 10; `RATE_LIMIT_BURST`, default 20).
    pub tools: Rate,
    /// The credential-testing tools, set-environment and validate-credentials, on top of the
    /// above (`CREDENTIAL_RATE_LIMIT_PER_MINUTE`, default 12; `CREDENTIAL_RATE_LIMIT_BURST`, default 5).
    pub credential_tools: Rate,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Time to earn back one token.
    pub period: Duration,
    pub burst: u32,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("environment variable {variable}: {reason}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub reason: String,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var_os(name).map(|v| v.into_string().map_err(|_| ())))
    }

    /// Reads variables through `lookup`, which answers `None` for an unset variable and
    /// `Some(Err(()))` for one that is not valid Unicode. Empty values count as unset.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<Result<String, ()>>,
    ) -> Result<Self, ConfigError> {
        let vars = Vars(&lookup);
        let ignore_endpoints = vars
            .parse::<bool>("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")?
            .unwrap_or(false);
        let endpoint = |service_variable: &'static str| -> Result<Option<String>, ConfigError> {
            if ignore_endpoints {
                return Ok(None);
            }
            Ok(vars
                .string(service_variable)?
                .or(vars.string("AWS_ENDPOINT_URL")?))
        };
        let sts_endpoint_url = endpoint("AWS_ENDPOINT_URL_STS")?;
        let lambda_function_name = vars.string("AWS_LAMBDA_FUNCTION_NAME")?;
        let sessions = SessionConfig {
            table: vars.string("SESSION_TABLE")?,
            kms_key_id: vars.string("KMS_KEY_ID")?,
            dynamodb_endpoint_url: endpoint("AWS_ENDPOINT_URL_DYNAMODB")?,
            kms_endpoint_url: endpoint("AWS_ENDPOINT_URL_KMS")?,
            environment_ttl: Duration::from_secs(vars.positive("ENVIRONMENT_TTL_SECS", 7200)?),
        };
        if lambda_function_name.is_some()
            && sessions.table.is_some()
            && sessions.kms_key_id.is_none()
        {
            // Each instance would seal with a key of its own, and no other could open it.
            return Err(ConfigError {
                variable: "KMS_KEY_ID",
                reason: "must be set with SESSION_TABLE in Lambda: instances share sealed secrets through KMS".into(),
            });
        }
        let metrics = MetricsConfig {
            sink: match vars
                .string("METRICS_SINK")?
                .as_deref()
                .map(str::to_ascii_lowercase)
            {
                None if lambda_function_name.is_some() => MetricsSink::Emf,
                None => MetricsSink::Off,
                Some(sink) => match sink.as_str() {
                    "cloudwatch" => MetricsSink::CloudWatch,
                    "emf" => MetricsSink::Emf,
                    "off" => MetricsSink::Off,
                    _ => {
                        return Err(ConfigError {
                            variable: "METRICS_SINK",
                            reason: format!("must be cloudwatch, emf or off, got {sink:?}"),
                        });
                    }
                },
            },
            namespace: vars
                .string("METRICS_NAMESPACE")?
                .unwrap_or_else(|| "MCPAwsTools".to_owned()),
            flush_interval: Duration::from_secs(vars.positive("METRICS_FLUSH_INTERVAL_SECS", 60)?),
            flush_max_calls: vars.positive("METRICS_FLUSH_MAX_CALLS", 10_000)?,
            flush_timeout: vars.millis("METRICS_FLUSH_TIMEOUT_MS", 5_000)?,
            cloudwatch_endpoint_url: endpoint("AWS_ENDPOINT_URL_CLOUDWATCH")?,
        };
        let aws = AwsEnvironment {
            access_key_id: vars.string("AWS_ACCESS_KEY_ID")?,
            secret_access_key: vars.string("AWS_SECRET_ACCESS_KEY")?.map(Secret::new),
            session_token: vars.string("AWS_SESSION_TOKEN")?.map(Secret::new),
            region: vars.string("AWS_REGION")?,
            default_region: vars.string("AWS_DEFAULT_REGION")?,
            profile: vars.string("AWS_PROFILE")?,
            sts_endpoint_url,
        };
        let rate_limits = RateLimits {
            tools: Rate::per_second(
                vars.parse("RATE_LIMIT_PER_SECOND")?.unwrap_or(10.0),
                vars.parse("RATE_LIMIT_BURST")?.unwrap_or(20),
            )
            .map_err(|reason| ConfigError {
                variable: "RATE_LIMIT_PER_SECOND",
                reason,
            })?,
            credential_tools: Rate::per_second(
                vars.parse::<f64>("CREDENTIAL_RATE_LIMIT_PER_MINUTE")?
                    .unwrap_or(12.0)
                    / 60.0,
                vars.parse("CREDENTIAL_RATE_LIMIT_BURST")?.unwrap_or(5),
            )
            .map_err(|reason| ConfigError {
                variable: "CREDENTIAL_RATE_LIMIT_PER_MINUTE",
                reason,
            })?,
        };
        Ok(Self {
            aws,
            connect_timeout: vars.millis("CONNECT_TIMEOUT_MS", 2_000)?,
            operation_timeout: vars.millis("OPERATION_TIMEOUT_MS", 5_000)?,
            rate_limits,
            idle_timeout: Duration::from_secs(vars.positive("IDLE_TIMEOUT_SECS", 600)?),
            send_timeout: Duration::from_secs(vars.positive("SEND_TIMEOUT_SECS", 10)?),
            identity_cache_ttl: Duration::from_secs(
                vars.parse("IDENTITY_CACHE_TTL_SECS")?.unwrap_or(900),
            ),
            lambda_function_name,
            provisioned_concurrency: vars.string("AWS_LAMBDA_INITIALIZATION_TYPE")?.as_deref()
                == Some("provisioned-concurrency"),
            metrics,
            sessions,
            trust_roots: if let Some(path) = vars.string("AWS_CA_BUNDLE")? {
                TrustRoots::Bundle(CaBundle::read(Path::new(&path)).map_err(|reason| {
                    ConfigError {
                        variable: "AWS_CA_BUNDLE",
                        reason,
                    }
                })?)
            } else if vars.string("SSL_CERT_FILE")?.is_some()
                || vars.string("SSL_CERT_DIR")?.is_some()
            {
                TrustRoots::System
            } else {
                TrustRoots::Compiled
            },
            allowed_origins: vars
                .string("ALLOWED_ORIGINS")?
                .map(|list| {
                    list.split(',')
                        .map(|o| o.trim().trim_end_matches('/').to_owned())
                        .filter(|o| !o.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
        })
    }
}

impl Rate {
    pub fn per_second(per_second: f64, burst: u32) -> Result<Self, String> {
        if !per_second.is_finite() || per_second <= 0.0 {
            return Err(format!("must be a positive number, got {per_second}"));
        }
        if burst == 0 {
            return Err("burst must be at least 1".into());
        }
        Ok(Self {
            period: Duration::from_secs_f64(1.0 / per_second),
            burst,
        })
    }
}

struct Vars<'a, F>(&'a F);

impl<F: Fn(&str) -> Option<Result<String, ()>>> Vars<'_, F> {
    fn string(&self, variable: &'static str) -> Result<Option<String>, ConfigError> {
        match (self.0)(variable) {
            None => Ok(None),
            Some(Ok(value)) if value.is_empty() => Ok(None),
            Some(Ok(value)) => Ok(Some(value)),
            Some(Err(())) => Err(ConfigError {
                variable,
                reason: "is not valid Unicode".into(),
            }),
        }
    }

    fn parse<T: FromStr>(&self, variable: &'static str) -> Result<Option<T>, ConfigError> {
        let Some(raw) = self.string(variable)? else {
            return Ok(None);
        };
        raw.trim()
            .to_ascii_lowercase()
            .parse()
            .map(Some)
            .map_err(|_| ConfigError {
                variable,
                reason: format!("cannot parse {raw:?} as {}", std::any::type_name::<T>()),
            })
    }

    fn positive(&self, variable: &'static str, default: u64) -> Result<u64, ConfigError> {
        match self.parse::<u64>(variable)?.unwrap_or(default) {
            0 => Err(ConfigError {
                variable,
                reason: "must be greater than zero".into(),
            }),
            value => Ok(value),
        }
    }

    fn millis(&self, variable: &'static str, default: u64) -> Result<Duration, ConfigError> {
        self.positive(variable, default).map(Duration::from_millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| map.get(name).cloned().map(Ok))
    }

    #[test]
    fn defaults() {
        let config = config(&[]).unwrap();
        assert_eq!(config.connect_timeout, Duration::from_secs(2));
        assert_eq!(config.operation_timeout, Duration::from_secs(5));
        assert_eq!(config.idle_timeout, Duration::from_secs(600));
        assert_eq!(config.rate_limits.tools.burst, 20);
        assert_eq!(config.rate_limits.tools.period, Duration::from_millis(100));
        assert_eq!(
            config.rate_limits.credential_tools.period,
            Duration::from_secs(5)
        );
        assert!(config.aws.access_key_id.is_none());
    }

    #[test]
    fn default_region_is_honoured_after_region() {
        let only_default = config(&[("AWS_DEFAULT_REGION", "eu-west-1")]).unwrap();
        assert_eq!(only_default.aws.effective_region(), Some("eu-west-1"));
        let both = config(&[
            ("AWS_DEFAULT_REGION", "eu-west-1"),
            ("AWS_REGION", "us-west-2"),
        ])
        .unwrap();
        assert_eq!(both.aws.effective_region(), Some("us-west-2"));
    }

    #[test]
    fn service_endpoint_wins_over_global_and_can_be_ignored() {
        let c = config(&[
            ("AWS_ENDPOINT_URL", "http://global"),
            ("AWS_ENDPOINT_URL_STS", "http://sts"),
        ])
        .unwrap();
        assert_eq!(c.aws.sts_endpoint_url.as_deref(), Some("http://sts"));
        let c = config(&[("AWS_ENDPOINT_URL", "http://global")]).unwrap();
        assert_eq!(c.aws.sts_endpoint_url.as_deref(), Some("http://global"));
        let c = config(&[
            ("AWS_ENDPOINT_URL", "http://global"),
            ("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true"),
        ])
        .unwrap();
        assert_eq!(c.aws.sts_endpoint_url, None);
    }

    #[test]
    fn bad_values_name_the_variable() {
        let err = config(&[("OPERATION_TIMEOUT_MS", "soon")]).unwrap_err();
        assert_eq!(err.variable, "OPERATION_TIMEOUT_MS");
        let err = config(&[("IDLE_TIMEOUT_SECS", "0")]).unwrap_err();
        assert_eq!(err.variable, "IDLE_TIMEOUT_SECS");
        let err = config(&[("RATE_LIMIT_PER_SECOND", "-1")]).unwrap_err();
        assert_eq!(err.variable, "RATE_LIMIT_PER_SECOND");
    }

    #[test]
    fn secrets_do_not_show_in_debug() {
        let c = config(&[
            ("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE"),
            (
                "AWS_SECRET_ACCESS_KEY",
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            ),
        ])
        .unwrap();
        assert!(!format!("{c:?}").contains("wJalrXUtnFEMI"));
    }

    #[test]
    fn metrics_sink_defaults_to_emf_in_lambda_only() {
        assert_eq!(config(&[]).unwrap().metrics.sink, MetricsSink::Off);
        let lambda = config(&[("AWS_LAMBDA_FUNCTION_NAME", "f")]).unwrap();
        assert_eq!(lambda.metrics.sink, MetricsSink::Emf);
        assert_eq!(lambda.metrics.namespace, "MCPAwsTools");
        let chosen = config(&[("METRICS_SINK", "CloudWatch")]).unwrap();
        assert_eq!(chosen.metrics.sink, MetricsSink::CloudWatch);
        let err = config(&[("METRICS_SINK", "statsd")]).unwrap_err();
        assert_eq!(err.variable, "METRICS_SINK");
    }

    #[test]
    fn cloudwatch_endpoint_follows_the_sdk_variables() {
        let c = config(&[
            ("AWS_ENDPOINT_URL", "http://global"),
            ("AWS_ENDPOINT_URL_CLOUDWATCH", "http://cw"),
        ])
        .unwrap();
        assert_eq!(
            c.metrics.cloudwatch_endpoint_url.as_deref(),
            Some("http://cw")
        );
        assert_eq!(c.aws.sts_endpoint_url.as_deref(), Some("http://global"));
    }

    #[test]
    fn session_store_settings() {
        let c = config(&[]).unwrap();
        assert_eq!(c.sessions.table, None);
        assert_eq!(c.sessions.environment_ttl, Duration::from_secs(7200));
        let c = config(&[
            ("SESSION_TABLE", "sessions"),
            ("AWS_ENDPOINT_URL", "http://global"),
            ("AWS_ENDPOINT_URL_KMS", "http://kms"),
        ])
        .unwrap();
        assert_eq!(c.sessions.table.as_deref(), Some("sessions"));
        assert_eq!(
            c.sessions.dynamodb_endpoint_url.as_deref(),
            Some("http://global")
        );
        assert_eq!(c.sessions.kms_endpoint_url.as_deref(), Some("http://kms"));
        let err = config(&[("SESSION_TABLE", "t"), ("AWS_LAMBDA_FUNCTION_NAME", "f")]).unwrap_err();
        assert_eq!(err.variable, "KMS_KEY_ID");
    }

    #[test]
    fn empty_values_are_unset() {
        let c = config(&[("AWS_PROFILE", "")]).unwrap();
        assert_eq!(c.aws.profile, None);
    }

    /// `AWS_CA_BUNDLE` comes first, then the system's loader, then the compiled-in roots; a
    /// bundle that cannot be used stops the start, naming the variable and why.
    #[test]
    fn trust_roots_come_from_aws_ca_bundle_then_ssl_cert_file() {
        let pem = crate::aws::tests::compiled_pem(1);
        let dir = std::env::temp_dir().join(format!("mcp-aws-tools-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.pem");
        let empty = dir.join("empty.pem");
        std::fs::write(&good, &pem).unwrap();
        std::fs::write(&empty, "").unwrap();
        let (good, empty) = (good.to_str().unwrap(), empty.to_str().unwrap());

        assert_eq!(config(&[]).unwrap().trust_roots, TrustRoots::Compiled);
        assert_eq!(
            config(&[("SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt")])
                .unwrap()
                .trust_roots,
            TrustRoots::System
        );
        let bundled = config(&[("AWS_CA_BUNDLE", good), ("SSL_CERT_FILE", "/x")]).unwrap();
        assert_eq!(
            bundled.trust_roots,
            TrustRoots::Bundle(CaBundle::from_pem(pem).unwrap())
        );
        let err = config(&[("AWS_CA_BUNDLE", empty)]).unwrap_err();
        assert_eq!(err.variable, "AWS_CA_BUNDLE");
        assert_eq!(
            err.to_string(),
            format!("environment variable AWS_CA_BUNDLE: {empty}: it holds no PEM certificate")
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
