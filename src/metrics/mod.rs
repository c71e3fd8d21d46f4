//! Tool-call metrics: where a metric leaves.
//!
//! Every tool call, in either wire format, passes through [`Recorder::record`] (from
//! `protocol::call_tool`): a short update of the calling thread's own part of the recorder,
//! under a lock that no other thread's calls take and that is never held across an await. The
//! recorder keeps two things: totals since start, served as JSON at `/api/metrics`, and the
//! interval since the last publication, which [`publisher`] takes (gathering every thread's
//! part) and hands to a sink ([`cloudwatch`] PutMetricData, or [`emf`] lines on stdout) from a
//! background task, never on the reply path.

pub mod cloudwatch;
pub mod emf;
pub mod publisher;

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use hdrhistogram::Histogram;
use serde_json::{Map, Value, json};
use thread_local::ThreadLocal;
use tokio::sync::Notify;

use crate::names::{ErrorKind, ToolName};

/// The `Service` dimension's value.
pub const SERVICE: &str = "mcp-aws-tools";

/// Metric names, shared by both sinks.
pub mod name {
    pub const INVOCATIONS: &str = "ToolInvocations";
    pub const ERRORS: &str = "ToolErrors";
    pub const DURATION: &str = "ToolDuration";
    pub const COLD_START: &str = "ColdStart";
    pub const HTTP_CLIENT_ERRORS: &str = "HttpClientErrors";
}

/// Why a tool call did not succeed: the tool's error code, or the rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorType {
    Tool(ErrorKind),
    RateLimited,
}

const ERROR_TYPES: usize = ErrorKind::ALL.len() + 1;

impl ErrorType {
    pub const ALL: [ErrorType; ERROR_TYPES] = [
        ErrorType::Tool(ErrorKind::NoCredentials),
        ErrorType::Tool(ErrorKind::InvalidCredentials),
        ErrorType::Tool(ErrorKind::ClientError),
        ErrorType::Tool(ErrorKind::ValidationError),
        ErrorType::Tool(ErrorKind::ExecutionError),
        ErrorType::Tool(ErrorKind::SessionUnavailable),
        ErrorType::RateLimited,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::Tool(kind) => kind.as_str(),
            ErrorType::RateLimited => "rate_limited",
        }
    }

    fn index(self) -> usize {
        Self::ALL.iter().position(|t| *t == self).unwrap_or(0)
    }
}

const TOOLS: usize = ToolName::ALL.len();

fn tool_index(tool: ToolName) -> usize {
    ToolName::ALL.iter().position(|t| *t == tool).unwrap_or(0)
}

/// Durations in microseconds, from 1 µs to an hour, to two significant digits. The histogram
/// (about 28 KB) is allocated on the first value: a cold Lambda invocation that calls one tool
/// does not zero ten of them.
#[derive(Default)]
struct Durations(Option<Histogram<u64>>);

impl Durations {
    fn histogram(&mut self) -> &mut Histogram<u64> {
        self.0.get_or_insert_with(|| {
            Histogram::new_with_bounds(1, 3_600_000_000, 2)
                .unwrap_or_else(|_| unreachable!("valid bounds"))
        })
    }

    fn record(&mut self, us: u64) {
        let _ = self.histogram().record(us);
    }

    fn add(&mut self, other: &Durations) {
        if let Some(other) = &other.0 {
            let _ = self.histogram().add(other);
        }
    }

    fn quantile(&self, q: f64) -> u64 {
        self.0.as_ref().map_or(0, |h| h.value_at_quantile(q))
    }

    /// Each recorded value (its bucket's median) with its count.
    fn recorded(&self) -> Vec<(u64, u64)> {
        self.0.as_ref().map_or_else(Vec::new, |h| {
            h.iter_recorded()
                .map(|v| {
                    (
                        h.median_equivalent(v.value_iterated_to()),
                        v.count_at_value(),
                    )
                })
                .collect()
        })
    }

    fn reset(&mut self) {
        if let Some(h) = &mut self.0 {
            h.reset();
        }
    }
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros())
        .unwrap_or(u64::MAX)
        .clamp(1, 3_600_000_000)
}

struct Totals {
    count: u64,
    errors: [u64; ERROR_TYPES],
    durations: Durations,
    sum_us: u64,
    min_us: u64,
    max_us: u64,
}

impl Totals {
    fn new() -> Self {
        Self {
            count: 0,
            errors: [0; ERROR_TYPES],
            durations: Durations::default(),
            sum_us: 0,
            min_us: u64::MAX,
            max_us: 0,
        }
    }

    fn add(&mut self, error: Option<ErrorType>, us: u64) {
        self.count += 1;
        if let Some(error) = error {
            self.errors[error.index()] += 1;
        }
        self.durations.record(us);
        self.sum_us = self.sum_us.saturating_add(us);
        self.min_us = self.min_us.min(us);
        self.max_us = self.max_us.max(us);
    }

    fn merge(&mut self, other: &Totals) {
        self.count += other.count;
        for (sum, n) in self.errors.iter_mut().zip(other.errors) {
            *sum += n;
        }
        self.durations.add(&other.durations);
        self.sum_us = self.sum_us.saturating_add(other.sum_us);
        self.min_us = self.min_us.min(other.min_us);
        self.max_us = self.max_us.max(other.max_us);
    }

    fn to_json(&self) -> Value {
        let failures: u64 = self.errors.iter().sum();
        let error_types: Map<String, Value> = ErrorType::ALL
            .iter()
            .zip(self.errors)
            .filter(|(_, n)| *n > 0)
            .map(|(t, n)| (t.as_str().to_owned(), json!(n)))
            .collect();
        let ms = |us: u64| us as f64 / 1000.0;
        let duration = (self.count > 0).then(|| {
            json!({
                "min": ms(self.min_us),
                "avg": ms(self.sum_us) / self.count as f64,
                "p50": ms(self.durations.quantile(0.50)),
                "p95": ms(self.durations.quantile(0.95)),
                "max": ms(self.max_us),
            })
        });
        json!({
            "count": self.count,
            "successes": self.count - failures,
            "failures": failures,
            "error_types": error_types,
            "duration_ms": duration,
        })
    }
}

struct ToolInterval {
    invocations: u64,
    errors: [u64; ERROR_TYPES],
    durations: Durations,
}

struct Interval {
    started: Option<SystemTime>,
    tools: [ToolInterval; TOOLS],
    cold_starts: u64,
    http_client_errors: u64,
}

impl Interval {
    fn new() -> Self {
        Self {
            started: None,
            tools: std::array::from_fn(|_| ToolInterval {
                invocations: 0,
                errors: [0; ERROR_TYPES],
                durations: Durations::default(),
            }),
            cold_starts: 0,
            http_client_errors: 0,
        }
    }

    /// Adds `other` to this interval and starts `other` again, keeping its histograms' memory.
    fn drain(&mut self, other: &mut Interval) {
        self.started = match (self.started, other.started.take()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.cold_starts += std::mem::take(&mut other.cold_starts);
        self.http_client_errors += std::mem::take(&mut other.http_client_errors);
        for (into, from) in self.tools.iter_mut().zip(other.tools.iter_mut()) {
            if from.invocations == 0 {
                continue;
            }
            into.invocations += std::mem::take(&mut from.invocations);
            for (sum, n) in into.errors.iter_mut().zip(&mut from.errors) {
                *sum += std::mem::take(n);
            }
            into.durations.add(&from.durations);
            from.durations.reset();
        }
    }

    /// Copies the interval out and starts a new one, keeping the histograms' memory.
    fn take(&mut self) -> Batch {
        let tools = ToolName::ALL
            .iter()
            .zip(self.tools.iter_mut())
            .filter(|(_, t)| t.invocations > 0)
            .map(|(tool, t)| {
                let durations = t.durations.recorded();
                let errors = ErrorType::ALL
                    .iter()
                    .zip(t.errors)
                    .filter(|(_, n)| *n > 0)
                    .map(|(e, n)| (*e, n))
                    .collect();
                let batch = ToolBatch {
                    tool: *tool,
                    invocations: t.invocations,
                    errors,
                    durations,
                };
                t.invocations = 0;
                t.errors = [0; ERROR_TYPES];
                t.durations.reset();
                batch
            })
            .collect();
        let batch = Batch {
            timestamp: self.started.unwrap_or_else(SystemTime::now),
            tools,
            cold_starts: self.cold_starts,
            http_client_errors: self.http_client_errors,
        };
        self.started = None;
        self.cold_starts = 0;
        self.http_client_errors = 0;
        batch
    }
}

/// The metrics of one interval, as the sinks publish them.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// When the interval's first call was recorded.
    pub timestamp: SystemTime,
    pub tools: Vec<ToolBatch>,
    pub cold_starts: u64,
    /// HTTP requests the function itself answered with a 4xx status: the share of API
    /// Gateway's `4xx` metric that API Gateway did not refuse itself.
    pub http_client_errors: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ToolBatch {
    pub tool: ToolName,
    pub invocations: u64,
    pub errors: Vec<(ErrorType, u64)>,
    /// Durations in microseconds (quantized to two significant digits) with their counts.
    pub durations: Vec<(u64, u64)>,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.tools.is_empty() && self.cold_starts == 0 && self.http_client_errors == 0
    }

    /// Tool calls the batch covers.
    pub fn calls(&self) -> u64 {
        self.tools.iter().map(|t| t.invocations).sum()
    }

    /// The durations of every tool together, for the service-level rollup.
    pub fn all_durations(&self) -> Vec<(u64, u64)> {
        let mut merged = std::collections::BTreeMap::<u64, u64>::new();
        for (us, count) in self.tools.iter().flat_map(|t| &t.durations) {
            *merged.entry(*us).or_default() += count;
        }
        merged.into_iter().collect()
    }

    /// Errors of every tool by type, for the rollup.
    pub fn all_errors(&self) -> Vec<(ErrorType, u64)> {
        ErrorType::ALL
            .iter()
            .map(|e| {
                let n = self
                    .tools
                    .iter()
                    .flat_map(|t| &t.errors)
                    .filter(|(t, _)| t == e)
                    .map(|(_, n)| n)
                    .sum();
                (*e, n)
            })
            .filter(|(_, n)| *n > 0)
            .collect()
    }
}

/// What the publisher did, for `/api/metrics` and the logs.
#[derive(Debug, Default)]
pub struct PublishStats {
    pub flushes: AtomicU64,
    pub requests: AtomicU64,
    pub datums_sent: AtomicU64,
    pub datums_dropped: AtomicU64,
    pub failures: AtomicU64,
}

/// One thread's part, on cache lines of its own: the parts are allocated side by side, and a
/// part written by one core would otherwise slow down its neighbour's.
#[repr(align(128))]
struct Part(Mutex<State>);

/// One thread's part of the recorder.
struct State {
    totals: [Totals; TOOLS],
    interval: Interval,
    /// Calls of this part's interval not yet added to [`Recorder::waiting`].
    unreported: u64,
    /// HTTP requests answered with a 4xx since start.
    http_client_errors: u64,
}

impl State {
    fn new() -> Self {
        Self {
            totals: std::array::from_fn(|_| Totals::new()),
            interval: Interval::new(),
            unreported: 0,
            http_client_errors: 0,
        }
    }
}

pub struct Recorder {
    /// One part per thread that records. A call locks only its own thread's part, which other
    /// threads' calls never take (only [`Recorder::take`] and [`Recorder::snapshot`] visit every
    /// part), so connections served by different threads do not wait for one another. In
    /// Lambda there is one thread, and one part.
    parts: ThreadLocal<Part>,
    /// An empty interval with the histograms of the last [`Recorder::take`], given to the
    /// first part by the next.
    spare: Mutex<Interval>,
    /// Calls recorded since the interval was last taken, over every part, less those each part
    /// has not reported yet: a part adds its calls every `report_every`, so that threads do not
    /// write this one counter on every call. The publisher is woken when it reaches
    /// `flush_max_calls`; with N threads, up to N x (`report_every` - 1) more calls may wait.
    waiting: AtomicU64,
    report_every: u64,
    started: SystemTime,
    started_at: Instant,
    cold_start_seen: AtomicBool,
    flush_max_calls: u64,
    flush_wanted: Notify,
    sink: &'static str,
    namespace: String,
    pub published: PublishStats,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl Recorder {
    pub fn new(flush_max_calls: u64, sink: &'static str, namespace: String) -> Self {
        Self {
            parts: ThreadLocal::new(),
            spare: Mutex::new(Interval::new()),
            waiting: AtomicU64::new(0),
            report_every: (flush_max_calls / 64).clamp(1, 64),
            started: SystemTime::now(),
            started_at: Instant::now(),
            cold_start_seen: AtomicBool::new(false),
            flush_max_calls,
            flush_wanted: Notify::new(),
            sink,
            namespace,
            published: PublishStats::default(),
        }
    }

    /// This thread's part.
    fn own(&self) -> std::sync::MutexGuard<'_, State> {
        lock(&self.parts.get_or(|| Part(Mutex::new(State::new()))).0)
    }

    /// Records one tool call. If enough calls are waiting, wakes the publisher (which runs
    /// elsewhere); nothing here waits.
    pub fn record(&self, tool: ToolName, error: Option<ErrorType>, duration: Duration) {
        let us = micros(duration);
        let index = tool_index(tool);
        let full = {
            let mut state = self.own();
            state.totals[index].add(error, us);
            let interval = &mut state.interval;
            interval.started.get_or_insert_with(SystemTime::now);
            let t = &mut interval.tools[index];
            t.invocations += 1;
            if let Some(error) = error {
                t.errors[error.index()] += 1;
            }
            t.durations.record(us);
            state.unreported += 1;
            // Reported under the part's lock, so that `take` sees each call either reported
            // or not.
            state.unreported >= self.report_every && {
                let n = std::mem::take(&mut state.unreported);
                self.waiting.fetch_add(n, Ordering::Relaxed) + n >= self.flush_max_calls
            }
        };
        if full {
            self.flush_wanted.notify_one();
        }
    }

    /// Called for every event the handler gets; the first one of the process counts a cold start.
    /// After it, only a read: every message passes here, and a write on every one would bounce
    /// the flag's cache line between the threads serving them.
    pub fn note_invocation(&self) {
        if !self.cold_start_seen.load(Ordering::Relaxed)
            && !self.cold_start_seen.swap(true, Ordering::Relaxed)
        {
            let mut state = self.own();
            state.interval.started.get_or_insert_with(SystemTime::now);
            state.interval.cold_starts += 1;
        }
    }

    /// Counts an HTTP request (Streamable HTTP, `/api/metrics`) that the function answered with
    /// a 4xx status: a client's mistake, or a method the endpoint does not offer (the `GET` for
    /// a stream that MCP clients send after `initialize`, answered 405).
    pub fn note_http_client_error(&self) {
        let mut state = self.own();
        state.http_client_errors += 1;
        state.interval.started.get_or_insert_with(SystemTime::now);
        state.interval.http_client_errors += 1;
    }

    /// Takes the interval's metrics and starts a new interval.
    ///
    /// The first part's interval is swapped for the spare, an empty interval whose histograms
    /// were kept from the last take; the others are drained into it. In Lambda (one part, a
    /// take per invocation with EMF) no histogram is allocated or added after the second
    /// invocation.
    pub fn take(&self) -> Batch {
        let mut gathered = std::mem::replace(&mut *lock(&self.spare), Interval::new());
        let mut reported = 0;
        for (i, part) in self.parts.iter().enumerate() {
            let mut part = lock(&part.0);
            let calls: u64 = part.interval.tools.iter().map(|t| t.invocations).sum();
            reported += calls - std::mem::take(&mut part.unreported);
            if i == 0 {
                std::mem::swap(&mut gathered, &mut part.interval);
            } else {
                gathered.drain(&mut part.interval);
            }
        }
        // Calls a part reported after it was visited stay counted for the next interval.
        let _ = self
            .waiting
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_sub(reported))
            });
        let batch = gathered.take();
        *lock(&self.spare) = gathered;
        batch
    }

    /// Resolves when enough calls are waiting to be published.
    pub async fn flush_wanted(&self) {
        self.flush_wanted.notified().await;
    }

    /// Totals since start, as `/api/metrics` serves them.
    pub fn snapshot(&self) -> Value {
        let mut per_tool: [Totals; TOOLS] = std::array::from_fn(|_| Totals::new());
        let mut http_client_errors = 0;
        for part in self.parts.iter() {
            let part = lock(&part.0);
            for (sum, totals) in per_tool.iter_mut().zip(&part.totals) {
                sum.merge(totals);
            }
            http_client_errors += part.http_client_errors;
        }
        let mut total = Totals::new();
        let mut tools = Map::new();
        for (tool, totals) in ToolName::ALL.iter().zip(&per_tool) {
            tools.insert(tool.reference_name().to_owned(), totals.to_json());
            total.merge(totals);
        }
        let since = chrono::DateTime::<chrono::Utc>::from(self.started)
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let load = |n: &AtomicU64| n.load(Ordering::Relaxed);
        json!({
            "service": SERVICE,
            "since": since,
            "uptime_seconds": self.started_at.elapsed().as_secs_f64(),
            "tools": tools,
            "total": total.to_json(),
            "http_client_errors": http_client_errors,
            "publishing": {
                "sink": self.sink,
                "namespace": self.namespace,
                "flushes": load(&self.published.flushes),
                "requests": load(&self.published.requests),
                "datums_sent": load(&self.published.datums_sent),
                "datums_dropped": load(&self.published.datums_dropped),
                "failures": load(&self.published.failures),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorder() -> Recorder {
        Recorder::new(3, "off", "Test".into())
    }

    #[test]
    fn totals_and_interval() {
        let r = recorder();
        r.record(ToolName::GetCredentials, None, Duration::from_micros(1500));
        r.record(
            ToolName::GetCredentials,
            Some(ErrorType::Tool(ErrorKind::NoCredentials)),
            Duration::from_micros(500),
        );
        r.record(
            ToolName::ListProfiles,
            Some(ErrorType::RateLimited),
            Duration::from_micros(10),
        );
        let snapshot = r.snapshot();
        let creds = &snapshot["tools"]["aws/get-credentials"];
        assert_eq!(creds["count"], 2);
        assert_eq!(creds["successes"], 1);
        assert_eq!(creds["failures"], 1);
        assert_eq!(creds["error_types"], json!({"no_credentials": 1}));
        assert_eq!(creds["duration_ms"]["min"], 0.5);
        assert_eq!(creds["duration_ms"]["max"], 1.5);
        assert_eq!(creds["duration_ms"]["avg"], 1.0);
        assert_eq!(snapshot["total"]["count"], 3);
        assert_eq!(
            snapshot["total"]["error_types"],
            json!({"no_credentials": 1, "rate_limited": 1})
        );
        assert_eq!(
            snapshot["tools"]["aws/validate-credentials"]["duration_ms"],
            Value::Null
        );

        let batch = r.take();
        assert_eq!(batch.calls(), 3);
        assert_eq!(batch.tools.len(), 2);
        let creds = &batch.tools[0];
        assert_eq!(creds.tool, ToolName::GetCredentials);
        assert_eq!(creds.durations.iter().map(|(_, n)| n).sum::<u64>(), 2);
        assert_eq!(batch.all_errors().len(), 2);
        // The interval starts again; the totals do not.
        assert!(r.take().is_empty());
        assert_eq!(r.snapshot()["total"]["count"], 3);
    }

    /// Take after take, the spare's histograms and the part's change places: each batch holds
    /// its own interval's calls, never an earlier one's, on one thread and on several.
    #[test]
    fn each_take_holds_only_its_interval() {
        let r = recorder();
        for round in 1..=4u64 {
            for _ in 0..round {
                r.record(
                    ToolName::GetAccountInfo,
                    None,
                    Duration::from_micros(10 * round),
                );
            }
            let batch = r.take();
            assert_eq!(batch.calls(), round);
            assert_eq!(
                batch.tools[0].durations,
                vec![(10 * round, round)],
                "{round}"
            );
            assert!(r.take().is_empty());
        }
        std::thread::scope(|scope| {
            for n in 1..=2u64 {
                let r = &r;
                scope.spawn(move || {
                    r.record(
                        ToolName::GetAccountInfo,
                        None,
                        Duration::from_micros(20 * n),
                    )
                });
            }
        });
        r.record(ToolName::GetAccountInfo, None, Duration::from_micros(90));
        let batch = r.take();
        // Below 256 µs a duration is its own bucket.
        assert_eq!(batch.tools[0].durations, vec![(20, 1), (40, 1), (90, 1)]);
        assert!(r.take().is_empty());
    }

    #[test]
    fn durations_are_quantized_to_two_digits() {
        let r = recorder();
        r.record(ToolName::ListProfiles, None, Duration::from_micros(12_345));
        let batch = r.take();
        let (us, count) = batch.tools[0].durations[0];
        assert_eq!(count, 1);
        assert!(us.abs_diff(12_345) * 100 <= 12_345, "{us}");
    }

    #[test]
    fn cold_start_counts_once() {
        let r = recorder();
        r.note_invocation();
        r.note_invocation();
        assert_eq!(r.take().cold_starts, 1);
        r.note_invocation();
        assert_eq!(r.take().cold_starts, 0);
    }

    #[test]
    fn every_threads_calls_are_gathered() {
        let r = Recorder::new(u64::MAX, "off", "Test".into());
        std::thread::scope(|scope| {
            for n in 0..4u64 {
                let r = &r;
                scope.spawn(move || {
                    for _ in 0..100 {
                        r.record(
                            ToolName::GetCredentials,
                            None,
                            Duration::from_micros(10 + n),
                        );
                    }
                    r.record(
                        ToolName::ListProfiles,
                        Some(ErrorType::RateLimited),
                        Duration::from_micros(1000 * (n + 1)),
                    );
                });
            }
        });
        let snapshot = r.snapshot();
        assert_eq!(snapshot["tools"]["aws/get-credentials"]["count"], 400);
        assert_eq!(snapshot["tools"]["aws/list-profiles"]["failures"], 4);
        assert_eq!(snapshot["total"]["count"], 404);
        assert_eq!(
            snapshot["tools"]["aws/list-profiles"]["duration_ms"]["min"],
            1.0
        );
        assert_eq!(
            snapshot["tools"]["aws/list-profiles"]["duration_ms"]["max"],
            4.0
        );

        let batch = r.take();
        assert_eq!(batch.calls(), 404);
        let creds = &batch.tools[0];
        assert_eq!(creds.tool, ToolName::GetCredentials);
        assert_eq!(creds.invocations, 400);
        assert_eq!(creds.durations.iter().map(|(_, n)| n).sum::<u64>(), 400);
        assert_eq!(batch.all_errors(), vec![(ErrorType::RateLimited, 4)]);
        assert_eq!(r.waiting.load(Ordering::Relaxed), 0);
        // Every part starts its interval again.
        assert!(r.take().is_empty());
        assert_eq!(r.snapshot()["total"]["count"], 404);
    }

    #[test]
    fn the_publisher_is_woken_when_the_waiting_calls_reach_the_limit() {
        use futures_util::FutureExt;
        // Parts report every 10 calls.
        let r = Recorder::new(640, "off", "Test".into());
        let call = || r.record(ToolName::ListProfiles, None, Duration::from_micros(5));
        (0..639).for_each(|_| call());
        assert!(r.flush_wanted().now_or_never().is_none());
        call();
        assert!(r.flush_wanted().now_or_never().is_some());
        // Once taken, the interval counts from zero again.
        assert_eq!(r.take().calls(), 640);
        (0..639).for_each(|_| call());
        assert!(r.flush_wanted().now_or_never().is_none());
        call();
        assert!(r.flush_wanted().now_or_never().is_some());
    }

    #[tokio::test]
    async fn a_full_interval_wakes_the_publisher() {
        let r = recorder();
        for _ in 0..3 {
            r.record(ToolName::ListProfiles, None, Duration::from_micros(5));
        }
        tokio::time::timeout(Duration::from_secs(1), r.flush_wanted())
            .await
            .expect("woken");
    }
}
