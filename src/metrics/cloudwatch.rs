//! The CloudWatch sink: a [`Batch`] as PutMetricData requests.
//!
//! Durations go as `Values`/`Counts` (so CloudWatch keeps percentiles), per tool and rolled up
//! for the service; counts as single values. Requests stay within PutMetricData's limits:
//! 1,000 metrics, 150 values per metric, 1 MB.

use std::sync::Arc;
use std::time::SystemTime;

use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};

use super::{Batch, SERVICE, name};
use crate::aws::OnFirstUse;

pub const MAX_DATUMS_PER_REQUEST: usize = 1000;
pub const MAX_VALUES_PER_DATUM: usize = 150;
/// PutMetricData takes 1 MB; this leaves room for the envelope and estimate errors.
pub const MAX_REQUEST_BYTES: usize = 900_000;

#[derive(Clone)]
pub struct CloudWatchSink {
    client: Arc<OnFirstUse<aws_sdk_cloudwatch::Client>>,
    namespace: String,
}

impl CloudWatchSink {
    pub fn new(client: OnFirstUse<aws_sdk_cloudwatch::Client>, namespace: String) -> Self {
        Self {
            client: Arc::new(client),
            namespace,
        }
    }

    /// Sends one request's worth of datums.
    pub async fn put(&self, datums: Vec<MetricDatum>) -> Result<(), String> {
        self.client
            .get()
            .put_metric_data()
            .namespace(&self.namespace)
            .set_metric_data(Some(datums))
            .send()
            .await
            .map(|_| ())
            .map_err(|err| aws_smithy_types::error::display::DisplayErrorContext(err).to_string())
    }
}

fn dimension(name: &str, value: &str) -> Dimension {
    Dimension::builder().name(name).value(value).build()
}

/// Every datum of a batch.
pub fn datums(batch: &Batch) -> Vec<MetricDatum> {
    let timestamp = aws_smithy_types::DateTime::from(batch.timestamp.max(SystemTime::UNIX_EPOCH));
    let service = dimension("Service", SERVICE);
    let datum = |metric: &str, dimensions: Vec<Dimension>, unit: StandardUnit| {
        MetricDatum::builder()
            .metric_name(metric)
            .set_dimensions(Some(dimensions))
            .timestamp(timestamp)
            .unit(unit)
    };
    let count = |metric: &str, dimensions: Vec<Dimension>, n: u64| {
        datum(metric, dimensions, StandardUnit::Count)
            .value(n as f64)
            .build()
    };
    let durations = |dimensions: Vec<Dimension>, values: &[(u64, u64)]| {
        values
            .chunks(MAX_VALUES_PER_DATUM)
            .map(|chunk| {
                datum(
                    name::DURATION,
                    dimensions.clone(),
                    StandardUnit::Milliseconds,
                )
                .set_values(Some(
                    chunk.iter().map(|(us, _)| *us as f64 / 1000.0).collect(),
                ))
                .set_counts(Some(chunk.iter().map(|(_, n)| *n as f64).collect()))
                .build()
            })
            .collect::<Vec<_>>()
    };

    let mut out = Vec::new();
    for tool in &batch.tools {
        let tool_dimension = dimension("Tool", tool.tool.reference_name());
        let per_tool = vec![service.clone(), tool_dimension.clone()];
        out.push(count(name::INVOCATIONS, per_tool.clone(), tool.invocations));
        out.extend(durations(per_tool, &tool.durations));
        for (error, n) in &tool.errors {
            out.push(count(
                name::ERRORS,
                vec![
                    service.clone(),
                    tool_dimension.clone(),
                    dimension("ErrorType", error.as_str()),
                ],
                *n,
            ));
        }
    }
    if !batch.tools.is_empty() {
        out.push(count(
            name::INVOCATIONS,
            vec![service.clone()],
            batch.calls(),
        ));
        out.extend(durations(vec![service.clone()], &batch.all_durations()));
        let errors = batch.all_errors();
        for (error, n) in &errors {
            out.push(count(
                name::ERRORS,
                vec![service.clone(), dimension("ErrorType", error.as_str())],
                *n,
            ));
        }
        let total_errors = errors.iter().map(|(_, n)| n).sum();
        out.push(count(name::ERRORS, vec![service.clone()], total_errors));
    }
    for (metric, n) in [
        (name::COLD_START, batch.cold_starts),
        (name::HTTP_CLIENT_ERRORS, batch.http_client_errors),
    ] {
        if n > 0 {
            out.push(count(metric, vec![service.clone()], n));
        }
    }
    out
}

/// An upper bound on a datum's encoded size.
fn estimated_bytes(datum: &MetricDatum) -> usize {
    let dimensions: usize = datum
        .dimensions()
        .iter()
        .map(|d| 16 + d.name().map_or(0, str::len) + d.value().map_or(0, str::len))
        .sum();
    64 + datum.metric_name().map_or(0, str::len) + dimensions + 18 * datum.values().len()
}

/// Splits datums into requests within PutMetricData's limits.
pub fn requests(datums: Vec<MetricDatum>) -> Vec<Vec<MetricDatum>> {
    let mut requests = Vec::new();
    let mut current = Vec::new();
    let mut bytes = 0;
    for datum in datums {
        let size = estimated_bytes(&datum);
        if !current.is_empty()
            && (current.len() == MAX_DATUMS_PER_REQUEST || bytes + size > MAX_REQUEST_BYTES)
        {
            requests.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += size;
        current.push(datum);
    }
    if !current.is_empty() {
        requests.push(current);
    }
    requests
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{ErrorType, ToolBatch};
    use crate::names::{ErrorKind, ToolName};

    fn batch(distinct_durations: u64) -> Batch {
        Batch {
            timestamp: SystemTime::now(),
            tools: vec![
                ToolBatch {
                    tool: ToolName::GetAccountInfo,
                    invocations: 10,
                    errors: vec![(ErrorType::Tool(ErrorKind::ClientError), 2)],
                    durations: (1..=distinct_durations).map(|i| (i * 1000, 1)).collect(),
                },
                ToolBatch {
                    tool: ToolName::ListProfiles,
                    invocations: 4,
                    errors: vec![(ErrorType::RateLimited, 1)],
                    durations: vec![(100, 4)],
                },
            ],
            cold_starts: 1,
            http_client_errors: 3,
        }
    }

    fn find<'a>(
        datums: &'a [MetricDatum],
        metric: &str,
        dims: &[(&str, &str)],
    ) -> Vec<&'a MetricDatum> {
        datums
            .iter()
            .filter(|d| d.metric_name() == Some(metric))
            .filter(|d| {
                d.dimensions().len() == dims.len()
                    && dims.iter().all(|(n, v)| {
                        d.dimensions()
                            .iter()
                            .any(|x| x.name() == Some(n) && x.value() == Some(v))
                    })
            })
            .collect()
    }

    #[test]
    fn per_tool_and_rollup() {
        let datums = datums(&batch(3));
        let svc = ("Service", SERVICE);
        let invocations = find(
            &datums,
            name::INVOCATIONS,
            &[svc, ("Tool", "aws/get-account-info")],
        );
        assert_eq!(invocations[0].value(), Some(10.0));
        assert_eq!(
            find(&datums, name::INVOCATIONS, &[svc])[0].value(),
            Some(14.0)
        );
        let durations = find(
            &datums,
            name::DURATION,
            &[svc, ("Tool", "aws/get-account-info")],
        );
        assert_eq!(durations[0].values(), &[1.0, 2.0, 3.0]);
        assert_eq!(durations[0].counts(), &[1.0, 1.0, 1.0]);
        assert_eq!(durations[0].unit(), Some(&StandardUnit::Milliseconds));
        let rollup = find(&datums, name::DURATION, &[svc]);
        assert_eq!(rollup[0].counts().iter().sum::<f64>(), 7.0);
        let errors = find(
            &datums,
            name::ERRORS,
            &[
                svc,
                ("Tool", "aws/get-account-info"),
                ("ErrorType", "client_error"),
            ],
        );
        assert_eq!(errors[0].value(), Some(2.0));
        assert_eq!(
            find(&datums, name::ERRORS, &[svc, ("ErrorType", "rate_limited")])[0].value(),
            Some(1.0)
        );
        assert_eq!(find(&datums, name::ERRORS, &[svc])[0].value(), Some(3.0));
        assert_eq!(
            find(&datums, name::COLD_START, &[svc])[0].value(),
            Some(1.0)
        );
        assert_eq!(
            find(&datums, name::HTTP_CLIENT_ERRORS, &[svc])[0].value(),
            Some(3.0)
        );
    }

    #[test]
    fn values_split_at_150() {
        let datums = datums(&batch(400));
        let durations = find(
            &datums,
            name::DURATION,
            &[("Service", SERVICE), ("Tool", "aws/get-account-info")],
        );
        assert_eq!(
            durations
                .iter()
                .map(|d| d.values().len())
                .collect::<Vec<_>>(),
            vec![150, 150, 100]
        );
    }

    #[test]
    fn requests_split_at_1000_datums_and_the_size_limit() {
        let many: Vec<MetricDatum> = (0..2500)
            .map(|i| {
                MetricDatum::builder()
                    .metric_name(format!("m{i}"))
                    .value(1.0)
                    .build()
            })
            .collect();
        let split = requests(many);
        assert_eq!(
            split.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![1000, 1000, 500]
        );

        let heavy: Vec<MetricDatum> = (0..1000)
            .map(|_| {
                MetricDatum::builder()
                    .metric_name(name::DURATION)
                    .set_values(Some(vec![1.0; MAX_VALUES_PER_DATUM]))
                    .set_counts(Some(vec![1.0; MAX_VALUES_PER_DATUM]))
                    .build()
            })
            .collect();
        let split = requests(heavy);
        assert!(split.len() > 1);
        for request in &split {
            assert!(request.iter().map(estimated_bytes).sum::<usize>() <= MAX_REQUEST_BYTES);
        }
    }
}
