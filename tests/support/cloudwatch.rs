//! A CloudWatch stand-in that reads what the SDK sends.
//!
//! aws-sdk-cloudwatch 1.100 and later speaks Smithy RPC v2 CBOR, which moto does not serve.
//! This endpoint accepts `PutMetricData` in that protocol, gunzips the body if the SDK
//! compressed it, decodes the CBOR, and keeps each request (as JSON, with its arrival time) for
//! the tests to inspect. It can answer slowly or with errors.

#![allow(dead_code)]

use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::IntoResponse;
use serde_json::{Map, Value};

#[derive(Debug, Clone)]
pub struct Received {
    pub at: Instant,
    pub path: String,
    pub headers: HeaderMap,
    /// The decoded PutMetricData input.
    pub body: Value,
}

#[derive(Clone, Copy)]
pub struct Behaviour {
    pub delay: Duration,
    pub status: u16,
}

struct Shared {
    received: Mutex<Vec<Received>>,
    behaviour: Behaviour,
}

pub struct CloudWatch {
    pub url: String,
    shared: Arc<Shared>,
}

impl CloudWatch {
    pub async fn start() -> CloudWatch {
        Self::start_with(Behaviour {
            delay: Duration::ZERO,
            status: 200,
        })
        .await
    }

    pub async fn start_with(behaviour: Behaviour) -> CloudWatch {
        let shared = Arc::new(Shared {
            received: Mutex::new(Vec::new()),
            behaviour,
        });
        let router = Router::new()
            .fallback(put_metric_data)
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        CloudWatch { url, shared }
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().expect("lock").clone()
    }

    /// Waits until `predicate` holds for the requests received so far.
    pub async fn wait_for(
        &self,
        what: &str,
        predicate: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let received = self.received();
            if predicate(&received) {
                return received;
            }
            assert!(
                Instant::now() < deadline,
                "CloudWatch stand-in: {what}; got {} requests",
                received.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn put_metric_data(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let at = Instant::now();
    let raw = if headers.get("content-encoding").is_some_and(|v| v == "gzip") {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_end(&mut out)
            .expect("gunzip");
        out
    } else {
        body.to_vec()
    };
    let decoded: ciborium::Value = ciborium::from_reader(&raw[..]).expect("body is CBOR");
    shared.received.lock().expect("lock").push(Received {
        at,
        path: uri.path().to_owned(),
        headers: headers.clone(),
        body: to_json(decoded),
    });
    tokio::time::sleep(shared.behaviour.delay).await;
    let mut reply = HeaderMap::new();
    reply.insert("smithy-protocol", "rpc-v2-cbor".parse().expect("header"));
    reply.insert("content-type", "application/cbor".parse().expect("header"));
    let status = StatusCode::from_u16(shared.behaviour.status).expect("status");
    if status.is_success() {
        (status, reply, vec![0xa0]) // an empty CBOR map
    } else {
        let mut error = Vec::new();
        let value = ciborium::Value::Map(vec![
            (
                ciborium::Value::Text("__type".into()),
                ciborium::Value::Text("InternalServiceError".into()),
            ),
            (
                ciborium::Value::Text("message".into()),
                ciborium::Value::Text("stand-in failure".into()),
            ),
        ]);
        ciborium::into_writer(&value, &mut error).expect("encode");
        (status, reply, error)
    }
}

fn to_json(value: ciborium::Value) -> Value {
    match value {
        ciborium::Value::Integer(i) => {
            let i: i128 = i.into();
            Value::from(i as i64)
        }
        ciborium::Value::Float(f) => Value::from(f),
        ciborium::Value::Text(s) => Value::String(s),
        ciborium::Value::Bool(b) => Value::Bool(b),
        ciborium::Value::Null => Value::Null,
        ciborium::Value::Bytes(b) => Value::from(b),
        ciborium::Value::Array(items) => Value::Array(items.into_iter().map(to_json).collect()),
        ciborium::Value::Map(entries) => Value::Object(
            entries
                .into_iter()
                .map(|(k, v)| {
                    let key = match k {
                        ciborium::Value::Text(s) => s,
                        other => format!("{other:?}"),
                    };
                    (key, to_json(v))
                })
                .collect::<Map<String, Value>>(),
        ),
        ciborium::Value::Tag(_, inner) => to_json(*inner),
        _ => Value::Null,
    }
}

/// Every datum of every request, with the request's namespace.
pub fn datums(received: &[Received]) -> Vec<(String, Value)> {
    received
        .iter()
        .flat_map(|r| {
            let namespace = r.body["Namespace"].as_str().unwrap_or("").to_owned();
            r.body["MetricData"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(move |d| (namespace.clone(), d))
        })
        .collect()
}

/// A datum's dimensions as sorted `name=value` pairs.
pub fn dimensions(datum: &Value) -> Vec<String> {
    let mut dims: Vec<String> = datum["Dimensions"]
        .as_array()
        .map(|d| {
            d.iter()
                .map(|x| {
                    format!(
                        "{}={}",
                        x["Name"].as_str().unwrap_or(""),
                        x["Value"].as_str().unwrap_or("")
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    dims.sort();
    dims
}
