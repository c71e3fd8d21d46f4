//! Lambda mode: the runtime loop, each invocation an API Gateway WebSocket event.

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use lambda_runtime::{Error, LambdaEvent, service_fn};

use crate::state::AppState;

pub async fn run(state: &AppState) -> Result<(), Error> {
    lambda_runtime::run(service_fn(
        |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| async move {
            Ok::<ApiGatewayProxyResponse, Error>(super::handle(state, event.payload).await)
        },
    ))
    .await
}
