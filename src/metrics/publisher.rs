//! The background task that publishes metrics: when enough calls are waiting (after a short
//! pause, so the reply that tipped the interval goes out first), when the interval is old
//! enough, and once more at shutdown. A slow or failing sink costs this task time, never a
//! tool call: each request is tried at most twice within the flush time-out, then dropped and
//! counted.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::Recorder;
use super::cloudwatch::{self, CloudWatchSink};
use super::emf::EmfSink;

/// How long a size-triggered flush waits, so that the reply of the call that filled the
/// interval is sent before any request for it begins.
pub const SIZE_FLUSH_DELAY: Duration = Duration::from_millis(100);

#[derive(Clone)]
pub enum Sink {
    CloudWatch(CloudWatchSink),
    Emf(EmfSink),
}

impl Sink {
    fn name(&self) -> &'static str {
        match self {
            Sink::CloudWatch(_) => "cloudwatch",
            Sink::Emf(_) => "emf",
        }
    }
}

pub struct Publisher {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
    timeout: Duration,
}

impl Publisher {
    pub fn start(
        recorder: Arc<Recorder>,
        sink: Sink,
        interval: Duration,
        timeout: Duration,
    ) -> Self {
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(run(recorder, sink, interval, timeout, stopped));
        Self {
            stop,
            task,
            timeout,
        }
    }

    /// Publishes what is left and stops: at `serve`'s end and when Lambda shuts the
    /// environment down.
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        let _ = tokio::time::timeout(self.timeout + Duration::from_secs(1), self.task).await;
    }
}

async fn run(
    recorder: Arc<Recorder>,
    sink: Sink,
    interval: Duration,
    timeout: Duration,
    mut stopped: oneshot::Receiver<()>,
) {
    loop {
        let last = tokio::select! {
            biased;
            _ = &mut stopped => true,
            _ = recorder.flush_wanted() => {
                tokio::time::sleep(SIZE_FLUSH_DELAY).await;
                false
            }
            _ = tokio::time::sleep(interval) => false,
        };
        publish(&recorder, &sink, timeout).await;
        if last {
            break;
        }
    }
}

/// Takes the recorder's interval and sends it to the sink.
pub async fn publish(recorder: &Recorder, sink: &Sink, timeout: Duration) {
    publish_for(recorder, sink, timeout, None).await;
}

/// In Lambda with the EMF sink: what this invocation recorded, written once its response is
/// posted and before the runtime asks for the next event (Lambda freezes the environment at
/// that `next`, never between). The lines carry the invocation's request id.
pub async fn publish_invocation(recorder: &Recorder, emf: &EmfSink, request_id: &str) {
    let sink = Sink::Emf(emf.clone());
    publish_for(recorder, &sink, Duration::ZERO, Some(request_id)).await;
}

async fn publish_for(
    recorder: &Recorder,
    sink: &Sink,
    timeout: Duration,
    request_id: Option<&str>,
) {
    let batch = recorder.take();
    if batch.is_empty() {
        return;
    }
    let stats = &recorder.published;
    stats.flushes.fetch_add(1, Ordering::Relaxed);
    let started = Instant::now();
    let (mut sent, mut dropped, mut requests) = (0u64, 0u64, 0u64);
    match sink {
        Sink::Emf(emf) => {
            requests = 1;
            match emf.write(&batch, request_id) {
                Ok(lines) => sent = lines as u64,
                Err(err) => {
                    dropped = super::emf::lines("", &batch).len() as u64;
                    stats.failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %err, "EMF lines could not be written");
                }
            }
        }
        Sink::CloudWatch(cloudwatch) => {
            let deadline = started + timeout;
            for request in cloudwatch::requests(cloudwatch::datums(&batch)) {
                let n = request.len() as u64;
                let mut delivered = false;
                for attempt in 1..=2 {
                    let remaining = deadline.saturating_duration_since(Instant::now());
                    if remaining.is_zero() {
                        break;
                    }
                    requests += 1;
                    let outcome =
                        tokio::time::timeout(remaining, cloudwatch.put(request.clone())).await;
                    match outcome {
                        Ok(Ok(())) => {
                            delivered = true;
                            break;
                        }
                        Ok(Err(err)) => {
                            stats.failures.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(attempt, error = %err, "PutMetricData failed");
                        }
                        Err(_) => {
                            stats.failures.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(
                                attempt,
                                timeout_ms = timeout.as_millis() as u64,
                                "PutMetricData timed out"
                            );
                        }
                    }
                }
                if delivered {
                    sent += n;
                } else {
                    dropped += n;
                }
            }
        }
    }
    stats.requests.fetch_add(requests, Ordering::Relaxed);
    stats.datums_sent.fetch_add(sent, Ordering::Relaxed);
    stats.datums_dropped.fetch_add(dropped, Ordering::Relaxed);
    tracing::info!(
        sink = sink.name(),
        calls = batch.calls(),
        datums_sent = sent,
        datums_dropped = dropped,
        requests,
        duration_ms = started.elapsed().as_secs_f64() * 1000.0,
        "metrics published"
    );
}
