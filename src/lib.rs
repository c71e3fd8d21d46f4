//! mcp-aws-tools: AWS identity tools for AI assistants over MCP.
//!
//! One handler serves API Gateway WebSocket events ([`gateway`]). Each message is decoded as
//! either the reference envelope or MCP JSON-RPC 2.0 ([`protocol`]), routed to one of five tools
//! ([`tools`]) that resolve credentials and call STS ([`aws`]). Connection-scoped state (overrides
//! set by `set-environment`, rate limits) lives in [`session`]; everything built once at start-up
//! lives in [`state::AppState`], configured from the environment by [`config`]. Every tool call
//! is counted and timed by [`metrics`], which publishes off the reply path. `proxy` (a feature)
//! is the other end: a stdio MCP server for desktop hosts that forwards to a deployed stack.

// The futures of a tool call nest deeply (the Lambda runtime, the handler, the tool, the SDK's
// orchestrator); computing their layout needs more than the default depth.
#![recursion_limit = "256"]

pub mod aws;
pub mod config;
pub mod gateway;
pub mod json;
pub mod logging;
pub mod metrics;
pub mod names;
pub mod protocol;
#[cfg(feature = "proxy")]
pub mod proxy;
pub mod session;
pub mod state;
pub mod tools;
