//! The cold-start reference: a minimal lambda_runtime hello-world, built in the same run and
//! profile as the function (`cargo build --release --example hello`), as lambda-perf's Rust
//! entry is.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

async fn handler(_event: LambdaEvent<Value>) -> Result<Value, Error> {
    Ok(json!({ "statusCode": 200, "body": "hello" }))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(handler)).await
}
