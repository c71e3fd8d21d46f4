//! The binary: Lambda mode, `serve` or `invoke`. Everything else is in the library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use mcp_aws_tools::config::Config;
use mcp_aws_tools::gateway::{self, emulator};
use mcp_aws_tools::logging::{self, Output};
use mcp_aws_tools::state::AppState;

/// AWS identity tools for AI assistants over MCP, as an AWS Lambda behind an API Gateway
/// WebSocket API. Started by Lambda with no subcommand, it runs the Lambda runtime loop.
#[derive(Parser)]
#[command(name = "mcp-aws-tools", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the WebSocket API locally on ws://ADDR/ws, as API Gateway would in front of the Lambda.
    Serve {
        /// Address to listen on, HOST:PORT.
        #[arg(long, default_value = "127.0.0.1:8000")]
        addr: String,
    },
    /// Run one API Gateway WebSocket event (a JSON file, `-` for stdin) through the handler and
    /// print the handler's response. HTTP API events for /api/metrics work too.
    Invoke { file: PathBuf },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let output = match cli.command {
        Some(Command::Invoke { .. }) => Output::Stderr,
        _ => Output::Stdout,
    };
    logging::init(output);
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("mcp-aws-tools: {err}");
            return ExitCode::from(2);
        }
    };
    match cli.command {
        Some(Command::Serve { addr }) => serve(config, &addr).await,
        Some(Command::Invoke { file }) => invoke(config, &file).await,
        None if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() => {
            let state = AppState::new(config).await;
            if let Some(publisher) = state.start_metrics() {
                // Lambda sends SIGTERM before it shuts the environment down: publish what is left.
                lambda_runtime::spawn_graceful_shutdown_handler(move || publisher.shutdown()).await;
            }
            match gateway::lambda::run(&state).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    eprintln!("mcp-aws-tools: {err}");
                    ExitCode::FAILURE
                }
            }
        }
        None => {
            eprintln!(
                "mcp-aws-tools: no subcommand and not in Lambda (AWS_LAMBDA_RUNTIME_API is unset); try --help"
            );
            ExitCode::from(2)
        }
    }
}

async fn serve(config: Config, addr: &str) -> ExitCode {
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("mcp-aws-tools: cannot listen on {addr}: {err}");
            return ExitCode::FAILURE;
        }
    };
    let state = Arc::new(AppState::new(config).await);
    let local = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| addr.to_owned());
    tracing::info!(address = %local, url = %format!("ws://{local}/ws"), "serving");
    let publisher = state.start_metrics();
    let router = emulator::router(state);
    let served = emulator::serve(listener, router, shutdown_signal()).await;
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
    let state = AppState::new(config).await;
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
