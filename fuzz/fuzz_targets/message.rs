//! `protocol::handle` on arbitrary bytes: the message decoder and everything behind it. No
//! panic; every reply is JSON, at most 128 KB, without the configured secret.
#![no_main]

#[path = "harness.rs"]
mod harness;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let harness = &*harness::HARNESS;
    let reply = harness.runtime.block_on(mcp_aws_tools::protocol::handle(&harness.state, &mcp_aws_tools::session::Origin::connection("fuzz"),
        data,
    ));
    if let Some(reply) = reply {
        harness::check_reply(&reply, data);
    }
});
