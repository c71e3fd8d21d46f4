//! Logs, as the Lambda runtime's default subscriber writes them, with one addition.
//!
//! Like `lambda_runtime::tracing::init_default_subscriber`: records on stdout, level from
//! `AWS_LAMBDA_LOG_LEVEL` (else `RUST_LOG`, which may also name targets:
//! `info,mcp_aws_tools=debug`; else INFO), JSON when `AWS_LAMBDA_LOG_FORMAT=JSON`. Filtering
//! uses tracing-subscriber's `Targets` rather than `EnvFilter`, which would bring a regex
//! engine into the binary for span-field filters this service does not need.
//!
//! The addition: the AWS SDK and the HTTP stack are capped at DEBUG, because at TRACE they log
//! whole HTTP requests and responses (an AssumeRole response carries a secret access key, a
//! signed request a session token). Whatever level an operator picks, no secret reaches a log
//! record.

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The AWS SDK and HTTP stack, which at TRACE log requests, responses and signing inputs.
const CAPPED: &[&str] = &[
    "aws_smithy_runtime",
    "aws_smithy_http_client",
    "aws_sigv4",
    "aws_runtime",
    "aws_config",
    "aws_credential_types",
    "aws_sdk_sts",
    "aws_sdk_cloudwatch",
    "hyper",
    "hyper_util",
    "h2",
    "rustls",
];

/// Where log records go: stdout, as Lambda expects, or stderr when stdout carries output
/// (`invoke`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Stdout,
    Stderr,
}

/// The filter from `AWS_LAMBDA_LOG_LEVEL` / `RUST_LOG`, with the cap applied.
pub fn filter(lambda_level: Option<&str>, rust_log: Option<&str>) -> Targets {
    let parsed = match (lambda_level, rust_log) {
        (Some(level), _) => level
            .parse::<LevelFilter>()
            .ok()
            .map(|level| Targets::new().with_default(level)),
        (None, Some(directives)) => directives.parse::<Targets>().ok(),
        (None, None) => None,
    };
    let mut targets = parsed.unwrap_or_else(|| Targets::new().with_default(LevelFilter::INFO));
    let traces = targets.default_level() == Some(LevelFilter::TRACE)
        || targets.iter().any(|(_, level)| level == LevelFilter::TRACE);
    if traces {
        for target in CAPPED {
            targets = targets.with_target(*target, LevelFilter::DEBUG);
        }
    }
    targets
}

pub fn init(output: Output) {
    let targets = filter(
        std::env::var("AWS_LAMBDA_LOG_LEVEL").ok().as_deref(),
        std::env::var("RUST_LOG").ok().as_deref(),
    );
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let writer = BoxMakeWriter::new(move || -> Box<dyn std::io::Write> {
        match output {
            Output::Stdout => Box::new(std::io::stdout()),
            Output::Stderr => Box::new(std::io::stderr()),
        }
    });
    let layer = tracing_subscriber::fmt::layer()
        .with_target(false)
        .without_time()
        .with_ansi(false)
        .with_writer(writer);
    let registry = tracing_subscriber::registry().with(targets);
    let installed = if json {
        registry.with(layer.json()).try_init()
    } else {
        registry.with(layer).try_init()
    };
    if installed.is_err() {
        eprintln!("a log subscriber was already installed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    fn enabled(targets: &Targets, target: &str, level: Level) -> bool {
        targets.would_enable(target, &level)
    }

    #[test]
    fn levels_and_directives() {
        let default = filter(None, None);
        assert!(enabled(&default, "mcp_aws_tools", Level::INFO));
        assert!(!enabled(&default, "mcp_aws_tools", Level::DEBUG));
        let lambda = filter(Some("DEBUG"), Some("trace"));
        assert!(enabled(&lambda, "mcp_aws_tools", Level::DEBUG));
        assert!(
            !enabled(&lambda, "mcp_aws_tools", Level::TRACE),
            "AWS_LAMBDA_LOG_LEVEL wins"
        );
        let rust_log = filter(None, Some("warn,mcp_aws_tools=debug"));
        assert!(enabled(&rust_log, "mcp_aws_tools::protocol", Level::DEBUG));
        assert!(!enabled(&rust_log, "hyper", Level::INFO));
    }

    #[test]
    fn the_sdk_never_logs_at_trace() {
        for targets in [
            filter(Some("TRACE"), None),
            filter(None, Some("trace")),
            filter(None, Some("info,aws_smithy_runtime=trace")),
        ] {
            assert!(!enabled(
                &targets,
                "aws_smithy_runtime::client::orchestrator",
                Level::TRACE
            ));
            assert!(!enabled(
                &targets,
                "aws_sigv4::http_request::sign",
                Level::TRACE
            ));
        }
        assert!(enabled(
            &filter(Some("TRACE"), None),
            "mcp_aws_tools",
            Level::TRACE
        ));
        // Below TRACE nothing is raised.
        assert!(!enabled(
            &filter(None, None),
            "aws_smithy_runtime",
            Level::DEBUG
        ));
    }
}
