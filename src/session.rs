//! What a WebSocket connection owns: its set-environment overrides and its rate limits.
//! `$disconnect` drops all of it.
//!
//! A connection's state lives in the process that saw its messages. A session is created on
//! `$connect` or on the first message (API Gateway may deliver a connection's messages to a
//! Lambda instance that did not see its `$connect`), and is forgotten on `$disconnect` or after
//! the idle time-out, since API Gateway closes idle connections and the `$disconnect` may reach
//! another instance.
//!
//! Rate limits are token buckets kept as GCRA (one number per bucket: the theoretical arrival
//! time of the next call), so that a refusal can say exactly when a retry will be admitted.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_credential_types::Credentials;

use crate::config::{Rate, RateLimits};

/// What set-environment stored for a connection. The credentials' `Debug` hides the secret.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub credentials: Option<Credentials>,
    pub region: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rate limit exceeded for {bucket}; retry after {} ms", self.retry_after_ms())]
pub struct RateLimited {
    pub bucket: &'static str,
    pub retry_after: Duration,
}

impl RateLimited {
    /// The wait in whole milliseconds, rounded up: a retry after this long is admitted (unless
    /// other calls spend the token first).
    pub fn retry_after_ms(&self) -> u64 {
        let micros = self.retry_after.as_micros();
        u64::try_from(micros.div_ceil(1000))
            .unwrap_or(u64::MAX)
            .max(1)
    }
}

/// A token bucket as GCRA: `rate.period` earns one token, at most `rate.burst` are kept. The
/// state is the theoretical arrival time (TAT) of the next call, in microseconds on the
/// caller's clock.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gcra {
    period_us: u64,
    tolerance_us: u64,
}

impl Gcra {
    pub fn new(rate: Rate) -> Self {
        let period_us = u64::try_from(rate.period.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        Self {
            period_us,
            tolerance_us: period_us.saturating_mul(u64::from(rate.burst.max(1))),
        }
    }

    /// Takes a token at `now_us`: the new TAT, or how long until a token is free.
    pub fn take(&self, tat_us: Option<u64>, now_us: u64) -> Result<u64, Duration> {
        let next = tat_us
            .unwrap_or(now_us)
            .max(now_us)
            .saturating_add(self.period_us);
        let ahead = next - now_us;
        if ahead <= self.tolerance_us {
            Ok(next)
        } else {
            Err(Duration::from_micros(ahead - self.tolerance_us))
        }
    }

    /// Gives back the token a call took (its TAT was `tat_us`), when the call was refused by
    /// another limit after all.
    pub fn refund(&self, tat_us: u64) -> u64 {
        tat_us.saturating_sub(self.period_us)
    }
}

struct Session {
    overrides: Overrides,
    tools_tat: Option<u64>,
    credential_tat: Option<u64>,
    last_seen: Instant,
}

pub struct Sessions {
    sessions: Mutex<HashMap<String, Session>>,
    tools: Gcra,
    credential_tools: Gcra,
    idle_timeout: Duration,
    /// The clock of the buckets: microseconds since this instant.
    epoch: Instant,
}

/// Past this many sessions, idle ones are swept on every new connection.
const SWEEP_ABOVE: usize = 1024;

impl Sessions {
    pub fn new(limits: RateLimits, idle_timeout: Duration) -> Self {
        Self {
            sessions: Mutex::new(HashMap::new()),
            tools: Gcra::new(limits.tools),
            credential_tools: Gcra::new(limits.credential_tools),
            idle_timeout,
            epoch: Instant::now(),
        }
    }

    fn with<T>(&self, connection_id: &str, f: impl FnOnce(&mut Session) -> T) -> T {
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if let Some(session) = sessions.get_mut(connection_id)
            && now.duration_since(session.last_seen) <= self.idle_timeout
        {
            session.last_seen = now;
            return f(session);
        }
        if sessions.len() >= SWEEP_ABOVE {
            let idle = self.idle_timeout;
            sessions.retain(|_, s| now.duration_since(s.last_seen) <= idle);
        }
        let session = sessions
            .entry(connection_id.to_owned())
            .insert_entry(Session {
                overrides: Overrides::default(),
                tools_tat: None,
                credential_tat: None,
                last_seen: now,
            })
            .into_mut();
        f(session)
    }

    /// `$connect`: a fresh session, whatever an earlier connection with this id left.
    pub fn open(&self, connection_id: &str) {
        self.close(connection_id);
        self.with(connection_id, |_| ());
    }

    /// `$disconnect`: forget everything the connection owned.
    pub fn close(&self, connection_id: &str) {
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        sessions.remove(connection_id);
    }

    pub fn overrides(&self, connection_id: &str) -> Overrides {
        self.with(connection_id, |s| s.overrides.clone())
    }

    pub fn update_overrides(&self, connection_id: &str, update: impl FnOnce(&mut Overrides)) {
        self.with(connection_id, |s| update(&mut s.overrides));
    }

    fn now_us(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// Takes a token for a tool call, or says how long to wait for one. A credential-testing
    /// tool needs a token from both buckets; when either refuses, neither is spent.
    pub fn admit(&self, connection_id: &str, tests_credentials: bool) -> Result<(), RateLimited> {
        let now = self.now_us();
        let (tools, credential_tools) = (self.tools, self.credential_tools);
        self.with(connection_id, |s| {
            let tools_tat = tools.take(s.tools_tat, now).map_err(|wait| RateLimited {
                bucket: "tool calls",
                retry_after: wait,
            })?;
            if tests_credentials {
                let credential_tat =
                    credential_tools
                        .take(s.credential_tat, now)
                        .map_err(|wait| RateLimited {
                            bucket: "credential-testing tools",
                            retry_after: wait,
                        })?;
                s.credential_tat = Some(credential_tat);
            }
            s.tools_tat = Some(tools_tat);
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sessions(per_second: f64, burst: u32) -> Sessions {
        let rate = Rate::per_second(per_second, burst).unwrap();
        Sessions::new(
            RateLimits {
                tools: rate,
                credential_tools: Rate::per_second(1.0 / 60.0, 2).unwrap(),
            },
            Duration::from_secs(600),
        )
    }

    #[test]
    fn overrides_belong_to_one_connection() {
        let s = sessions(10.0, 10);
        s.update_overrides("a", |o| o.region = Some("eu-west-1".into()));
        assert_eq!(s.overrides("a").region.as_deref(), Some("eu-west-1"));
        assert_eq!(s.overrides("b").region, None);
        s.close("a");
        assert_eq!(s.overrides("a").region, None);
    }

    #[test]
    fn connect_starts_clean() {
        let s = sessions(10.0, 10);
        s.update_overrides("a", |o| o.region = Some("eu-west-1".into()));
        s.open("a");
        assert_eq!(s.overrides("a").region, None);
    }

    #[test]
    fn gcra_admits_a_burst_then_one_per_period() {
        let bucket = Gcra::new(Rate::per_second(1.0, 3).unwrap());
        let mut tat = None;
        for _ in 0..3 {
            tat = Some(bucket.take(tat, 0).unwrap());
        }
        let wait = bucket.take(tat, 0).unwrap_err();
        assert_eq!(wait, Duration::from_secs(1));
        // Exactly when the refusal said: admitted.
        assert!(bucket.take(tat, 1_000_000).is_ok());
        // A moment before: refused, with the rest of the wait.
        assert_eq!(
            bucket.take(tat, 999_999).unwrap_err(),
            Duration::from_micros(1)
        );
    }

    #[test]
    fn retry_after_is_rounded_up_and_never_zero() {
        let limited = |micros| RateLimited {
            bucket: "x",
            retry_after: Duration::from_micros(micros),
        };
        assert_eq!(limited(1).retry_after_ms(), 1);
        assert_eq!(limited(1_000).retry_after_ms(), 1);
        assert_eq!(limited(1_001).retry_after_ms(), 2);
        assert_eq!(limited(0).retry_after_ms(), 1);
        assert!(limited(1).to_string().contains("retry after 1 ms"));
    }

    #[test]
    fn burst_then_limited_with_a_retry_delay() {
        let s = sessions(1.0, 3);
        for _ in 0..3 {
            s.admit("a", false).unwrap();
        }
        let limited = s.admit("a", false).unwrap_err();
        assert!(limited.retry_after > Duration::ZERO);
        assert!(limited.retry_after <= Duration::from_secs(1));
        // Another connection has its own bucket.
        s.admit("b", false).unwrap();
    }

    #[test]
    fn credential_tools_are_stricter() {
        let s = sessions(100.0, 100);
        s.admit("a", true).unwrap();
        s.admit("a", true).unwrap();
        let limited = s.admit("a", true).unwrap_err();
        assert_eq!(limited.bucket, "credential-testing tools");
        assert!(limited.retry_after > Duration::from_secs(1));
        s.admit("a", false).unwrap();
    }

    #[test]
    fn a_refusal_spends_no_token() {
        // Tools bucket of 3, credential bucket of 2, neither refilling within the test.
        let s = sessions(1.0 / 3600.0, 3);
        for _ in 0..3 {
            s.admit("a", false).unwrap();
        }
        // The tools bucket refuses: the credential bucket is not spent.
        assert_eq!(s.admit("a", true).unwrap_err().bucket, "tool calls");
        assert_eq!(s.with("a", |session| session.credential_tat), None);

        s.admit("b", true).unwrap();
        s.admit("b", true).unwrap();
        // The credential bucket refuses: the tools token it would have used is not spent.
        assert_eq!(
            s.admit("b", true).unwrap_err().bucket,
            "credential-testing tools"
        );
        s.admit("b", false).unwrap();
        assert_eq!(s.admit("b", false).unwrap_err().bucket, "tool calls");
    }

    #[test]
    fn idle_sessions_are_forgotten() {
        let limits = RateLimits {
            tools: Rate::per_second(1.0, 1).unwrap(),
            credential_tools: Rate::per_second(1.0, 1).unwrap(),
        };
        let s = Sessions::new(limits, Duration::from_millis(1));
        s.update_overrides("a", |o| o.region = Some("eu-west-1".into()));
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(s.overrides("a").region, None);
    }
}
