//! Logs, as the Lambda runtime's default subscriber writes them, with one addition and one
//! omission.
//!
//! Like `lambda_runtime::tracing::init_default_subscriber`: records on stdout, level from
//! `AWS_LAMBDA_LOG_LEVEL` (else `RUST_LOG`, which may also name targets:
//! `info,mcp_aws_tools=debug`; else INFO), JSON when `AWS_LAMBDA_LOG_FORMAT=JSON`. Filtering
//! uses tracing-subscriber's `Targets` rather than `EnvFilter`, which would bring a regex
//! engine into the binary for span-field filters this service does not need.
//!
//! The addition: only this crate logs below WARN. The AWS SDK, aws-config and the HTTP stack
//! log whole requests and responses at TRACE (a signed request carries a session token, an
//! AssumeRole response a secret key), and aws-config logs loaded credentials (with their access
//! key ids) and the parsed profile chain (with `credential_process` commands and SSO start
//! URLs) at INFO and DEBUG. So every other target is capped at WARN, and aws-config's credential
//! crates are silenced: this service classifies their failures itself and logs them without
//! credentials ([`crate::aws::error`]). Whatever level an operator picks, no secret, key id,
//! command or URL from the AWS config reaches a log record.
//!
//! The omission: a JSON record carries its span (`span`: the event's `api_request_id`) but not
//! also the list of spans (`spans`), which here always held that one span again: records are
//! about a fifth smaller in CloudWatch Logs, and cheaper to write. The JSON record is written by
//! the `json` module: the same record as tracing-subscriber's JSON format, at a fraction of its cost.

#[cfg(feature = "serve")]
mod batch;
mod json;

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// This crate's target: the only one logged below WARN.
const OURS: &str = "mcp_aws_tools";

/// The most any other target logs.
const OTHERS_CAP: LevelFilter = LevelFilter::WARN;

/// Never logged: they log credentials and profile contents, and their failures reach the log
/// through this crate's classification instead.
const SILENCED: &[&str] = &[
    "aws_config",
    "aws_credential_types",
    "aws_sdk_sso",
    "aws_sdk_ssooidc",
];

/// Where log records go: stdout, as Lambda expects, or stderr when stdout carries output
/// (`invoke`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Each record written as it is made: in Lambda the environment is frozen when the runtime
    /// asks for its next event, right after an answer, so nothing may wait in a buffer.
    Stdout,
    Stderr,
    /// stdout through a writer thread that writes the records of a few milliseconds at once
    /// (`serve`, where many connections log at the same time): one write instead of one per
    /// record, each of which would wake the reader of the log (see `batch`). Nothing is
    /// dropped: when 4 MB of a thread's records wait, its next one waits for room.
    #[cfg(feature = "serve")]
    StdoutBatched,
}

/// The writer thread of [`Output::StdoutBatched`], if any: dropping it writes out the records
/// still waiting. Keep it until the process ends.
#[must_use = "dropping it stops the log's writer thread"]
pub struct Flush {
    #[cfg(feature = "serve")]
    _writer: Option<batch::Guard>,
}

impl Flush {
    fn none() -> Self {
        Self {
            #[cfg(feature = "serve")]
            _writer: None,
        }
    }
}

/// The filter from `AWS_LAMBDA_LOG_LEVEL` / `RUST_LOG`, with the caps applied.
pub fn filter(lambda_level: Option<&str>, rust_log: Option<&str>) -> Targets {
    let parsed = match (lambda_level, rust_log) {
        (Some(level), _) => level
            .parse::<LevelFilter>()
            .ok()
            .map(|level| Targets::new().with_default(level)),
        (None, Some(directives)) => directives.parse::<Targets>().ok(),
        (None, None) => None,
    };
    let parsed = parsed.unwrap_or_else(|| Targets::new().with_default(LevelFilter::INFO));
    let default = parsed.default_level().unwrap_or(LevelFilter::OFF);
    let mut targets = Targets::new()
        .with_default(default.min(OTHERS_CAP))
        .with_target(OURS, default);
    for (target, level) in parsed.iter() {
        let level = if target == OURS || target.starts_with("mcp_aws_tools::") {
            level
        } else {
            level.min(OTHERS_CAP)
        };
        targets = targets.with_target(target, level);
    }
    for target in SILENCED {
        targets = targets.with_target(*target, LevelFilter::OFF);
    }
    targets
}

pub fn init(output: Output) -> Flush {
    init_with_default(output, None)
}

/// As [`init`], with `default` as the level when neither variable sets one (`proxy` logs only
/// warnings on stderr, which hosts show as the server's log).
pub fn init_with_default(output: Output, default: Option<&str>) -> Flush {
    let rust_log = std::env::var("RUST_LOG").ok();
    let targets = filter(
        std::env::var("AWS_LAMBDA_LOG_LEVEL").ok().as_deref(),
        rust_log.as_deref().or(default),
    );
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let (writer, flush) = match output {
        Output::Stdout => (BoxMakeWriter::new(std::io::stdout), Flush::none()),
        Output::Stderr => (BoxMakeWriter::new(std::io::stderr), Flush::none()),
        #[cfg(feature = "serve")]
        Output::StdoutBatched => match batch::writer(std::io::stdout(), "log-writer") {
            Some((writer, guard)) => (
                BoxMakeWriter::new(writer),
                Flush {
                    _writer: Some(guard),
                },
            ),
            // No thread for the log: each record is written as it is made.
            None => (BoxMakeWriter::new(std::io::stdout), Flush::none()),
        },
    };
    let layer = tracing_subscriber::fmt::layer()
        .with_target(false)
        .without_time()
        .with_ansi(false)
        .with_writer(writer);
    let registry = tracing_subscriber::registry().with(targets);
    let installed = if json {
        registry
            .with(
                layer
                    .fmt_fields(json::SpanFields)
                    .event_format(json::Record),
            )
            .try_init()
    } else {
        registry.with(layer).try_init()
    };
    if installed.is_err() {
        eprintln!("a log subscriber was already installed");
    }
    flush
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
    fn only_this_crate_logs_below_warn() {
        for targets in [
            filter(Some("TRACE"), None),
            filter(None, Some("trace")),
            filter(None, Some("info,aws_smithy_runtime=trace,hyper=debug")),
        ] {
            for target in [
                "aws_smithy_runtime::client::orchestrator",
                "aws_sigv4::http_request::sign",
                "hyper",
                "h2::codec",
                "lambda_runtime",
            ] {
                assert!(!enabled(&targets, target, Level::INFO), "{target}");
                assert!(enabled(&targets, target, Level::WARN), "{target}");
            }
            assert!(enabled(&targets, "mcp_aws_tools::tools", Level::INFO));
        }
        assert!(enabled(
            &filter(Some("TRACE"), None),
            "mcp_aws_tools",
            Level::TRACE
        ));
    }

    #[test]
    fn aws_config_is_silenced_at_every_level() {
        for targets in [
            filter(Some("TRACE"), None),
            filter(None, Some("aws_config=trace")),
            filter(None, None),
        ] {
            for target in ["aws_config::profile::credentials", "aws_credential_types"] {
                assert!(!enabled(&targets, target, Level::ERROR), "{target}");
            }
        }
    }
}
