//! The binary: Lambda mode, `serve` or `invoke`. Everything else is in the library.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use mcp_aws_tools::config::Config;
use mcp_aws_tools::gateway;
use mcp_aws_tools::logging::{self, Output};
use mcp_aws_tools::state::AppState;

/// In builds with `serve`: jemalloc, which gives memory back to the system after a burst of
/// connections, where glibc's allocator keeps it. Lambda builds keep the system allocator.
#[cfg(feature = "serve")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const USAGE: &str = "\
AWS identity tools for AI assistants over MCP, as an AWS Lambda behind an API Gateway WebSocket
API. Started by Lambda (AWS_LAMBDA_RUNTIME_API set) with no command, it runs the Lambda runtime.

Usage:
  mcp-aws-tools serve [--addr HOST:PORT] [--instances N] [--iam]
                                           serve the WebSocket API on ws://HOST:PORT/ws and MCP
                                           over Streamable HTTP on http://HOST:PORT/mcp, as API
                                           Gateway would in front of the Lambda (default
                                           127.0.0.1:8000); with N instances of the function
                                           sharing only the session store, each message handed
                                           to one at random; with --iam, $connect and /mcp need
                                           a SigV4 signature made with the AWS credentials in
                                           serve's environment, as AWS_IAM authorization does
  mcp-aws-tools proxy URL [--profile NAME] [--region REGION] [--no-sign]
                                           speak MCP on stdin/stdout (for desktop hosts) and
                                           forward to URL: a WebSocket API stage (wss://...) with
                                           its $connect SigV4-presigned, or a Streamable HTTP
                                           endpoint (https://.../mcp) with each request signed,
                                           with the local AWS credentials (of NAME); --no-sign
                                           for a local serve without --iam
  mcp-aws-tools invoke FILE                run one API Gateway WebSocket event (a JSON file, - for
                                           stdin) through the handler and print the response
  mcp-aws-tools --help | --version";

/// `proxy`'s arguments (the type exists in builds without the proxy, to say it is missing).
#[derive(Debug)]
#[cfg_attr(not(feature = "proxy"), allow(dead_code))]
struct ProxyOptions {
    url: String,
    profile: Option<String>,
    region: Option<String>,
    sign: bool,
}

#[derive(Debug)]
enum Command {
    Lambda,
    Serve {
        addr: String,
        instances: usize,
        iam: bool,
    },
    Invoke {
        file: PathBuf,
    },
    Proxy(ProxyOptions),
    Help,
    Version,
}

/// The command line. A few commands and options: parsed by hand, which keeps an argument
/// parser (about 250 KB) out of a binary that Lambda loads on every cold start. Arguments need
/// not be valid Unicode where they are paths (`invoke FILE`); elsewhere a clear error says so.
fn parse(args: &[OsString]) -> Result<Command, String> {
    if let [command, file] = args
        && command == "invoke"
    {
        return Ok(Command::Invoke {
            file: PathBuf::from(file),
        });
    }
    let args: Vec<String> = args
        .iter()
        .map(|arg| {
            arg.to_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("argument '{}' is not valid Unicode", arg.to_string_lossy()))
        })
        .collect::<Result<_, _>>()?;
    match args.as_slice() {
        [] => Ok(Command::Lambda),
        [flag] if flag == "--help" || flag == "-h" || flag == "help" => Ok(Command::Help),
        [flag] if flag == "--version" || flag == "-V" => Ok(Command::Version),
        [command, rest @ ..] if command == "serve" => {
            let mut addr = "127.0.0.1:8000".to_owned();
            let mut instances = 1;
            let mut iam = false;
            let mut rest = rest.iter();
            let count = |text: &str| match text.parse::<usize>() {
                Ok(n @ 1..=64) => Ok(n),
                _ => Err("--instances needs a number from 1 to 64".to_owned()),
            };
            while let Some(arg) = rest.next() {
                match arg.as_str() {
                    "--addr" => addr = rest.next().ok_or("--addr needs HOST:PORT")?.clone(),
                    other if other.starts_with("--addr=") => {
                        addr = other["--addr=".len()..].to_owned()
                    }
                    "--instances" => {
                        instances = count(rest.next().ok_or("--instances needs a number")?)?
                    }
                    other if other.starts_with("--instances=") => {
                        instances = count(&other["--instances=".len()..])?
                    }
                    "--iam" => iam = true,
                    other => return Err(format!("serve: unexpected argument '{other}'")),
                }
            }
            Ok(Command::Serve {
                addr,
                instances,
                iam,
            })
        }
        [command, rest @ ..] if command == "proxy" => {
            let mut options = ProxyOptions {
                url: String::new(),
                profile: None,
                region: None,
                sign: true,
            };
            let mut rest = rest.iter();
            while let Some(arg) = rest.next() {
                let mut value = |name: &str, inline: Option<&str>| match inline {
                    Some(value) => Ok(value.to_owned()),
                    None => rest
                        .next()
                        .cloned()
                        .ok_or_else(|| format!("{name} needs a value")),
                };
                match arg.split_once('=') {
                    _ if arg == "--no-sign" => options.sign = false,
                    Some(("--profile", v)) => options.profile = Some(value("--profile", Some(v))?),
                    Some(("--region", v)) => options.region = Some(value("--region", Some(v))?),
                    None if arg == "--profile" => options.profile = Some(value("--profile", None)?),
                    None if arg == "--region" => options.region = Some(value("--region", None)?),
                    _ if arg.starts_with("--") => {
                        return Err(format!("proxy: unexpected option '{arg}'"));
                    }
                    _ if options.url.is_empty() => options.url = arg.clone(),
                    _ => return Err(format!("proxy: unexpected argument '{arg}'")),
                }
            }
            if options.url.is_empty() {
                return Err("proxy needs the endpoint's URL (wss://... or https://.../mcp)".into());
            }
            Ok(Command::Proxy(options))
        }
        [command, ..] if command == "invoke" => {
            Err("invoke takes one FILE (or - for stdin)".into())
        }
        [other, ..] => Err(format!("unknown command '{other}'")),
    }
}

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let command = match parse(&args) {
        Ok(command) => command,
        Err(err) => {
            eprintln!("mcp-aws-tools: {err}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    // Lambda hands an environment one invocation at a time: a single-threaded runtime starts
    // no worker threads (a shorter cold start), and background work (publishing metrics) runs
    // while the runtime waits for the next event. `serve` uses every core.
    let runtime = match command {
        Command::Lambda | Command::Invoke { .. } => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        #[cfg(feature = "serve")]
        Command::Serve { .. } => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
        _ => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
    };
    match runtime {
        Ok(runtime) => runtime.block_on(run(command)),
        Err(err) => {
            eprintln!("mcp-aws-tools: cannot start the async runtime: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> ExitCode {
    // Held to the end: dropping it writes out the log records still waiting.
    let _flush = match command {
        Command::Help => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Command::Version => {
            println!("mcp-aws-tools {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Command::Invoke { .. } => logging::init(Output::Stderr),
        // stdout carries MCP; the host shows stderr as the server's log: warnings only.
        Command::Proxy(options) => {
            let _flush = logging::init_with_default(Output::Stderr, Some("warn"));
            return proxy(options).await;
        }
        #[cfg(feature = "serve")]
        Command::Serve { .. } => logging::init(Output::StdoutBatched),
        _ => logging::init(Output::Stdout),
    };
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("mcp-aws-tools: {err}");
            return ExitCode::from(2);
        }
    };
    match command {
        Command::Serve {
            addr,
            instances,
            iam,
        } => serve(config, &addr, instances, iam).await,
        Command::Invoke { file } => invoke(config, &file).await,
        Command::Lambda if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() => {
            lambda(config).await
        }
        _ => {
            eprintln!(
                "mcp-aws-tools: no command and not in Lambda (AWS_LAMBDA_RUNTIME_API is unset)\n\n{USAGE}"
            );
            ExitCode::from(2)
        }
    }
}

async fn lambda(config: Config) -> ExitCode {
    let state = match AppState::new(config).await {
        Ok(state) => Arc::new(state),
        Err(err) => {
            eprintln!("mcp-aws-tools: {err}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(publisher) = state.start_metrics() {
        // Publish what is left when Lambda shuts the environment down.
        gateway::lambda::on_shutdown(move || publisher.shutdown()).await;
    }
    match gateway::lambda::run(state).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("mcp-aws-tools: {err}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(feature = "proxy")]
async fn proxy(options: ProxyOptions) -> ExitCode {
    let options = mcp_aws_tools::proxy::Options {
        url: options.url,
        profile: options.profile,
        region: options.region,
        sign: options.sign,
    };
    match mcp_aws_tools::proxy::run(options).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("mcp-aws-tools proxy: {err}");
            ExitCode::from(2)
        }
    }
}

#[cfg(not(feature = "proxy"))]
async fn proxy(_options: ProxyOptions) -> ExitCode {
    eprintln!(
        "mcp-aws-tools: this build has no proxy: it was built without the proxy feature (a Lambda build)"
    );
    ExitCode::from(2)
}

#[cfg(not(feature = "serve"))]
async fn serve(_config: Config, _addr: &str, _instances: usize, _iam: bool) -> ExitCode {
    eprintln!(
        "mcp-aws-tools: this build has no serve: it was built without the serve feature (a Lambda build)"
    );
    ExitCode::from(2)
}

#[cfg(feature = "serve")]
async fn serve(config: Config, addr: &str, instances: usize, iam: bool) -> ExitCode {
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("mcp-aws-tools: cannot listen on {addr}: {err}");
            return ExitCode::FAILURE;
        }
    };
    let states = match AppState::instances(config, instances).await {
        Ok(states) => states,
        Err(err) => {
            eprintln!("mcp-aws-tools: {err}");
            return ExitCode::FAILURE;
        }
    };
    let iam = if iam {
        match iam_authorization(&states[0]).await {
            Ok(iam) => Some(iam),
            Err(err) => {
                eprintln!("mcp-aws-tools: {err}");
                return ExitCode::from(2);
            }
        }
    } else {
        None
    };
    let local = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| addr.to_owned());
    tracing::info!(
        address = %local,
        url = %format!("ws://{local}/ws"),
        mcp_url = %format!("http://{local}/mcp"),
        instances,
        iam = iam.is_some(),
        session_store = states[0].sessions.store().name(),
        "serving"
    );
    // The instances share the metrics: one publisher.
    let publisher = states[0].start_metrics();
    let states = states.into_iter().map(std::sync::Arc::new).collect();
    let served = gateway::emulator::serve(listener, states, iam, shutdown_signal()).await;
    if let Some(publisher) = publisher {
        publisher.shutdown().await;
    }
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("mcp-aws-tools: {err}");
            ExitCode::FAILURE
        }
    }
}

/// `serve --iam`: signatures are checked against the credentials in serve's environment, and
/// reported as made by their principal (asked of STS once; unknown if STS does not answer).
#[cfg(feature = "serve")]
async fn iam_authorization(state: &AppState) -> Result<gateway::emulator::Iam, String> {
    use mcp_aws_tools::aws::sigv4::Verifier;
    let env = &state.config.aws;
    let (Some(key), Some(secret)) = (&env.access_key_id, &env.secret_access_key) else {
        return Err("serve --iam checks signatures against the credentials in its environment: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY".into());
    };
    let credentials = aws_credential_types::Credentials::new(
        key.clone(),
        secret.expose().to_owned(),
        env.session_token.as_ref().map(|t| t.expose().to_owned()),
        None,
        "serve --iam",
    );
    let region = env.effective_region().map(str::to_owned);
    let mut caller = mcp_aws_tools::session::Caller::default();
    let sts_region = region
        .as_deref()
        .unwrap_or(mcp_aws_tools::aws::sts::FALLBACK_REGION);
    match state.sts.caller_identity(&credentials, sts_region).await {
        Ok(identity) => {
            caller.arn = Some(identity.arn);
            caller.account_id = Some(identity.account);
        }
        Err(err) => tracing::warn!(
            cause = err.cause.as_str(),
            "serve --iam: STS did not say whose the credentials are; callers are reported without an ARN"
        ),
    }
    Ok(gateway::emulator::Iam {
        verifier: Verifier::new(credentials, region),
        caller,
    })
}

/// `invoke` prints the response on stdout, so metrics are not published (EMF would share stdout).
async fn invoke(mut config: Config, file: &PathBuf) -> ExitCode {
    config.metrics.sink = mcp_aws_tools::config::MetricsSink::Off;
    let read = if file.as_os_str() == "-" {
        let mut text = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut tokio::io::stdin(), &mut text)
            .await
            .map(|_| text)
    } else {
        tokio::fs::read_to_string(file).await
    };
    let event = match read {
        Ok(event) => event,
        Err(err) => {
            eprintln!("mcp-aws-tools: cannot read {}: {err}", file.display());
            return ExitCode::FAILURE;
        }
    };
    let state = match AppState::new(config).await {
        Ok(state) => state,
        Err(err) => {
            eprintln!("mcp-aws-tools: {err}");
            return ExitCode::FAILURE;
        }
    };
    match gateway::invoke(&state, &event).await {
        Ok(response) => {
            println!("{response}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!(
                "mcp-aws-tools: {} is not an API Gateway WebSocket or HTTP event: {err}",
                file.display()
            );
            ExitCode::FAILURE
        }
    }
}

/// Ctrl-C or SIGTERM.
#[cfg(feature = "serve")]
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn commands() {
        assert!(matches!(parse(&args(&[])), Ok(Command::Lambda)));
        assert!(
            matches!(parse(&args(&["serve"])), Ok(Command::Serve { addr, instances: 1, iam: false }) if addr == "127.0.0.1:8000")
        );
        assert!(
            matches!(parse(&args(&["serve", "--addr", "0.0.0.0:9", "--instances", "3"])), Ok(Command::Serve { addr, instances: 3, iam: false }) if addr == "0.0.0.0:9")
        );
        assert!(
            matches!(parse(&args(&["serve", "--addr=[::1]:9", "--instances=2", "--iam"])), Ok(Command::Serve { addr, instances: 2, iam: true }) if addr == "[::1]:9")
        );
        assert!(matches!(
            parse(&args(&["proxy", "wss://x.execute-api.eu-west-1.amazonaws.com/prod", "--profile", "dev", "--region=eu-west-1"])),
            Ok(Command::Proxy(ProxyOptions { url, profile: Some(profile), region: Some(region), sign: true }))
                if url.starts_with("wss://") && profile == "dev" && region == "eu-west-1"
        ));
        assert!(matches!(
            parse(&args(&["proxy", "--no-sign", "http://127.0.0.1:8000/mcp"])),
            Ok(Command::Proxy(ProxyOptions { sign: false, .. }))
        ));
        assert!(
            matches!(parse(&args(&["invoke", "-"])), Ok(Command::Invoke { file }) if file.as_os_str() == "-")
        );
        assert!(matches!(parse(&args(&["--help"])), Ok(Command::Help)));
        assert!(matches!(parse(&args(&["--version"])), Ok(Command::Version)));
    }

    #[test]
    fn mistakes_are_named() {
        assert!(
            parse(&args(&["serve", "--port", "1"]))
                .unwrap_err()
                .contains("--port")
        );
        assert!(
            parse(&args(&["serve", "--addr"]))
                .unwrap_err()
                .contains("HOST:PORT")
        );
        assert!(parse(&args(&["invoke"])).unwrap_err().contains("FILE"));
        assert!(
            parse(&args(&["serve", "--instances", "0"]))
                .unwrap_err()
                .contains("1 to 64")
        );
        assert!(parse(&args(&["deploy"])).unwrap_err().contains("deploy"));
    }

    #[cfg(unix)]
    #[test]
    fn arguments_that_are_not_unicode() {
        use std::os::unix::ffi::OsStringExt;
        let odd = OsString::from_vec(vec![b'x', 0xff]);
        let invoke = parse(&[OsString::from("invoke"), odd.clone()]).unwrap();
        assert!(matches!(invoke, Command::Invoke { file } if file.as_os_str() == odd));
        let err = parse(&[OsString::from("serve"), odd]).unwrap_err();
        assert!(err.contains("not valid Unicode"), "{err}");
    }
}
