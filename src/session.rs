//! What a WebSocket connection owns: its set-environment overrides and its rate limiters.
//! `$disconnect` drops all of it.
//!
//! A connection's state lives in the process that saw its messages. A session is created on
//! `$connect` or on the first message (API Gateway may deliver a connection's messages to a
//! Lambda instance that did not see its `$connect`), and is forgotten on `$disconnect` or after
//! the idle time-out, since API Gateway closes idle connections and the `$disconnect` may reach
//! another instance.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_credential_types::Credentials;
use governor::clock::{Clock, DefaultClock};
use governor::{Quota, RateLimiter};

use crate::config::{Rate, RateLimits};

/// What set-environment stored for a connection. The credentials' `Debug` hides the secret.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub credentials: Option<Credentials>,
    pub region: Option<String>,
}

/// Which rate limits a tool call is subject to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    /// Every tool call.
    Tools,
    /// Tools that test credentials (set-environment, validate-credentials): both buckets.
    CredentialTools,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rate limit exceeded for {bucket}; retry after {} ms", retry_after.as_millis())]
pub struct RateLimited {
    pub bucket: &'static str,
    pub retry_after: Duration,
}

type Limiter = RateLimiter<
    governor::state::NotKeyed,
    governor::state::InMemoryState,
    DefaultClock,
    governor::middleware::NoOpMiddleware<<DefaultClock as Clock>::Instant>,
>;

struct Session {
    overrides: Overrides,
    tools: Limiter,
    credential_tools: Limiter,
    last_seen: Instant,
}

pub struct Sessions {
    sessions: Mutex<HashMap<String, Session>>,
    limits: RateLimits,
    idle_timeout: Duration,
    clock: DefaultClock,
}

/// Past this many sessions, idle ones are swept on every new connection.
const SWEEP_ABOVE: usize = 1024;

fn limiter(rate: Rate) -> Limiter {
    let burst = NonZeroU32::new(rate.burst).unwrap_or(NonZeroU32::MIN);
    let quota = Quota::with_period(rate.period)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(burst);
    RateLimiter::direct(quota)
}

impl Sessions {
    pub fn new(limits: RateLimits, idle_timeout: Duration) -> Self {
        Self {
            sessions: Mutex::new(HashMap::new()),
            limits,
            idle_timeout,
            clock: DefaultClock::default(),
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
                tools: limiter(self.limits.tools),
                credential_tools: limiter(self.limits.credential_tools),
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

    /// Takes a token for a tool call, or says how long to wait for one.
    pub fn admit(&self, connection_id: &str, bucket: Bucket) -> Result<(), RateLimited> {
        let clock = &self.clock;
        self.with(connection_id, |s| {
            if bucket == Bucket::CredentialTools {
                s.credential_tools
                    .check()
                    .map_err(|not_until| RateLimited {
                        bucket: "credential-testing tools",
                        retry_after: not_until.wait_time_from(clock.now()),
                    })?;
            }
            s.tools.check().map_err(|not_until| RateLimited {
                bucket: "tool calls",
                retry_after: not_until.wait_time_from(clock.now()),
            })
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
    fn burst_then_limited_with_a_retry_delay() {
        let s = sessions(1.0, 3);
        for _ in 0..3 {
            s.admit("a", Bucket::Tools).unwrap();
        }
        let limited = s.admit("a", Bucket::Tools).unwrap_err();
        assert!(limited.retry_after > Duration::ZERO);
        assert!(limited.retry_after <= Duration::from_secs(1));
        // Another connection has its own bucket.
        s.admit("b", Bucket::Tools).unwrap();
    }

    #[test]
    fn credential_tools_are_stricter() {
        let s = sessions(100.0, 100);
        s.admit("a", Bucket::CredentialTools).unwrap();
        s.admit("a", Bucket::CredentialTools).unwrap();
        let limited = s.admit("a", Bucket::CredentialTools).unwrap_err();
        assert_eq!(limited.bucket, "credential-testing tools");
        assert!(limited.retry_after > Duration::from_secs(1));
        s.admit("a", Bucket::Tools).unwrap();
    }

    #[test]
    fn idle_sessions_are_forgotten() {
        let s = Sessions::new(sessions(1.0, 1).limits, Duration::from_millis(1));
        s.update_overrides("a", |o| o.region = Some("eu-west-1".into()));
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(s.overrides("a").region, None);
    }
}
