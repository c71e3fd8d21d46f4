//! Logs: the Lambda runtime's default subscriber, with one addition.
//!
//! Like `lambda_runtime::tracing::init_default_subscriber`: records on stdout, level from
//! `AWS_LAMBDA_LOG_LEVEL` (else `RUST_LOG`, else INFO), JSON when `AWS_LAMBDA_LOG_FORMAT=JSON`.
//! The addition: the AWS SDK and the HTTP stack are capped at DEBUG, because at TRACE they log
//! whole HTTP requests and responses (an AssumeRole response carries a secret access key, a
//! signed request a session token). Whatever level an operator picks, no secret reaches a log
//! record.

use lambda_runtime::tracing::subscriber::filter::{Directive, EnvFilter, LevelFilter};

/// The AWS SDK and HTTP stack, which at TRACE log requests, responses and signing inputs.
const CAPPED: &[&str] = &[
    "aws_smithy_runtime=debug",
    "aws_smithy_http_client=debug",
    "aws_sigv4=debug",
    "aws_runtime=debug",
    "aws_config=debug",
    "aws_credential_types=debug",
    "aws_sdk_sts=debug",
    "aws_sdk_cloudwatch=debug",
    "hyper=debug",
    "hyper_util=debug",
    "h2=debug",
    "rustls=debug",
];

/// Where log records go: stdout, as Lambda expects, or stderr when stdout carries output
/// (`invoke`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Stdout,
    Stderr,
}

pub fn init(output: Output) {
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok()
        .and_then(|level| level.parse::<LevelFilter>().ok())
        .unwrap_or(LevelFilter::INFO);
    let mut filter = EnvFilter::builder()
        .with_default_directive(level.into())
        .from_env_lossy();
    // Only when something asks for TRACE: a directive for these targets would otherwise
    // raise them above the chosen level.
    if filter.max_level_hint() == Some(LevelFilter::TRACE) {
        for cap in CAPPED {
            if let Ok(directive) = cap.parse::<Directive>() {
                filter = filter.add_directive(directive);
            }
        }
    }
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let writer = lambda_runtime::tracing::subscriber::fmt::writer::BoxMakeWriter::new(
        move || -> Box<dyn std::io::Write> {
            match output {
                Output::Stdout => Box::new(std::io::stdout()),
                Output::Stderr => Box::new(std::io::stderr()),
            }
        },
    );
    let builder = lambda_runtime::tracing::subscriber::fmt()
        .with_target(false)
        .without_time()
        .with_env_filter(filter)
        .with_writer(writer);
    let installed = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    if installed.is_err() {
        eprintln!("a log subscriber was already installed");
    }
}
