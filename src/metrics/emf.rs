//! The EMF sink: a [`Batch`] as CloudWatch Embedded Metric Format lines on stdout, which
//! CloudWatch Logs turns into the same metrics the CloudWatch sink sends.
//!
//! EMF carries no counts beside values, so each duration appears as often as it was seen, at
//! most 100 values a line. Rollups come from the dimension sets: a line for one tool declares
//! both `[Service, Tool]` and `[Service]`.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::{Batch, SERVICE, name};

/// EMF's limit on the values of one metric in one line.
pub const MAX_VALUES_PER_LINE: usize = 100;

#[derive(Clone)]
pub struct EmfSink {
    namespace: String,
}

impl EmfSink {
    pub fn new(namespace: String) -> Self {
        Self { namespace }
    }

    /// Writes the batch's lines to stdout in one go. Returns how many lines were written. In
    /// Lambda each line carries the invocation's `requestId`, as Lambda's own log records do.
    pub fn write(&self, batch: &Batch, request_id: Option<&str>) -> std::io::Result<usize> {
        let mut lines = lines(&self.namespace, batch);
        if let Some(id) = request_id {
            for line in &mut lines {
                line["requestId"] = Value::String(id.to_owned());
            }
        }
        let mut text = String::new();
        for line in &lines {
            text.push_str(&line.to_string());
            text.push('\n');
        }
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(text.as_bytes())?;
        stdout.flush()?;
        Ok(lines.len())
    }
}

fn line(
    namespace: &str,
    timestamp: u64,
    dimensions: Value,
    metrics: &[(&str, &str)],
    members: Value,
) -> Value {
    let mut line = json!({
        "_aws": {
            "Timestamp": timestamp,
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": dimensions,
                "Metrics": metrics.iter().map(|(n, unit)| json!({"Name": n, "Unit": unit})).collect::<Vec<_>>(),
            }]
        },
        "Service": SERVICE,
    });
    if let (Some(line), Value::Object(members)) = (line.as_object_mut(), members) {
        line.extend(members);
    }
    line
}

/// The EMF documents of a batch.
pub fn lines(namespace: &str, batch: &Batch) -> Vec<Value> {
    let timestamp = batch
        .timestamp
        .duration_since(UNIX_EPOCH)
        .unwrap_or_else(|_| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
        })
        .as_millis() as u64;
    let mut out = Vec::new();
    for tool in &batch.tools {
        let tool_name = tool.tool.reference_name();
        let per_tool = json!([["Service", "Tool"], ["Service"]]);
        let values: Vec<f64> = tool
            .durations
            .iter()
            .flat_map(|(us, n)| std::iter::repeat_n(*us as f64 / 1000.0, *n as usize))
            .collect();
        for (i, chunk) in values.chunks(MAX_VALUES_PER_LINE).enumerate() {
            if i == 0 {
                out.push(line(
                    namespace,
                    timestamp,
                    per_tool.clone(),
                    &[(name::INVOCATIONS, "Count"), (name::DURATION, "Milliseconds")],
                    json!({"Tool": tool_name, name::INVOCATIONS: tool.invocations, name::DURATION: chunk}),
                ));
            } else {
                out.push(line(
                    namespace,
                    timestamp,
                    per_tool.clone(),
                    &[(name::DURATION, "Milliseconds")],
                    json!({"Tool": tool_name, name::DURATION: chunk}),
                ));
            }
        }
        for (error, n) in &tool.errors {
            out.push(line(
                namespace,
                timestamp,
                json!([
                    ["Service", "Tool", "ErrorType"],
                    ["Service", "ErrorType"],
                    ["Service"]
                ]),
                &[(name::ERRORS, "Count")],
                json!({"Tool": tool_name, "ErrorType": error.as_str(), name::ERRORS: n}),
            ));
        }
    }
    // The counts of the service as a whole, each on a line of its own when there is one.
    for (metric, n) in [
        (name::COLD_START, batch.cold_starts),
        (name::HTTP_CLIENT_ERRORS, batch.http_client_errors),
    ] {
        if n > 0 {
            out.push(line(
                namespace,
                timestamp,
                json!([["Service"]]),
                &[(metric, "Count")],
                json!({metric: n}),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{ErrorType, ToolBatch};
    use crate::names::{ErrorKind, ToolName};

    #[test]
    fn values_repeat_by_count_and_split_at_100() {
        let batch = Batch {
            timestamp: SystemTime::now(),
            tools: vec![ToolBatch {
                tool: ToolName::GetCredentials,
                invocations: 150,
                errors: vec![(ErrorType::Tool(ErrorKind::NoCredentials), 3)],
                durations: vec![(1000, 100), (2000, 50)],
            }],
            cold_starts: 1,
            http_client_errors: 2,
        };
        let lines = lines("NS", &batch);
        assert_eq!(lines.len(), 5);
        assert_eq!(lines[0]["ToolInvocations"], 150);
        assert_eq!(lines[0]["ToolDuration"].as_array().unwrap().len(), 100);
        assert_eq!(lines[1]["ToolDuration"].as_array().unwrap().len(), 50);
        assert!(lines[1].get("ToolInvocations").is_none());
        assert_eq!(
            lines[1]["_aws"]["CloudWatchMetrics"][0]["Metrics"],
            json!([{"Name": "ToolDuration", "Unit": "Milliseconds"}])
        );
        assert_eq!(lines[2]["ErrorType"], "no_credentials");
        assert_eq!(lines[2]["ToolErrors"], 3);
        assert_eq!(lines[3]["ColdStart"], 1);
        assert_eq!(lines[4]["HttpClientErrors"], 2);
        assert_eq!(
            lines[4]["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Service"]])
        );
        for line in &lines {
            assert_eq!(line["_aws"]["CloudWatchMetrics"][0]["Namespace"], "NS");
            assert_eq!(line["Service"], SERVICE);
        }
    }
}
