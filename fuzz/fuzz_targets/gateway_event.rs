//! The Lambda event decoder on arbitrary bytes: what Lambda hands the function (API Gateway
//! WebSocket, HTTP API, REST API and Function URL events), decoded and answered. No panic; a
//! WebSocket reply body obeys the message rules.
#![no_main]

#[path = "harness.rs"]
mod harness;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // As the runtime hands an event over: its text, checked to be JSON.
    let Ok(payload) = serde_json::from_slice::<Box<serde_json::value::RawValue>>(data) else {
        return;
    };
    let harness = &*harness::HARNESS;
    let event = lambda_runtime::LambdaEvent::new(payload, lambda_runtime::Context::default());
    let response = harness
        .runtime
        .block_on(mcp_aws_tools::gateway::lambda::handle(&harness.state, event));
    if let Ok(response) = response
        && let Ok(value) = serde_json::to_value(&response)
        && let Some(body) = value.get("body").and_then(|b| b.as_str())
        && value.get("statusCode").is_some()
        && !body.is_empty()
        && body.starts_with(['{', '['])
    {
        harness::check_reply(body, data);
    }
});
