//! Rate limits as GCRA: a token bucket kept as one number, the theoretical arrival time (TAT) of
//! the next call, so that a refusal can say exactly when a retry will be admitted, and so that a
//! shared store can update a bucket with one conditional write.
//!
//! The general tool-call bucket is kept per instance ([`Local`]); the stricter bucket of the
//! credential-testing tools is kept in the session store, so that every instance takes from
//! the same one (see [`super::Sessions::admit`]).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dashmap::DashMap;

use crate::config::Rate;

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

/// A token bucket as GCRA: `rate.period` earns one token, at most `rate.burst` are kept. Times
/// are microseconds on a clock every user of the bucket shares (the Unix epoch, for buckets in
/// the shared store).
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

    /// The TAT with the token taken at `tat_us` given back.
    pub fn refund(&self, tat_us: u64) -> u64 {
        tat_us.saturating_sub(self.period_us)
    }
}

/// Microseconds since the Unix epoch: the clock of buckets shared by instances.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Buckets kept by this instance, one per subject (a connection, or a caller without one).
pub struct Local {
    bucket: Gcra,
    tats: DashMap<String, u64, super::MapHasher>,
}

/// Past this many subjects, the buckets that are full again are forgotten.
const SWEEP_ABOVE: usize = 4096;

impl Local {
    pub fn new(rate: Rate) -> Self {
        Self {
            bucket: Gcra::new(rate),
            tats: DashMap::with_hasher_and_shard_amount(
                super::MapHasher::default(),
                super::shards(),
            ),
        }
    }

    /// Takes a token for `subject`. A subject seen before touches only its own shard; the
    /// count of subjects, which locks every shard, is looked at only when one is added.
    pub fn take(&self, subject: &str, now_us: u64) -> Result<(), Duration> {
        if let Some(mut tat) = self.tats.get_mut(subject) {
            *tat = self.bucket.take(Some(*tat), now_us)?;
            return Ok(());
        }
        if self.tats.len() >= SWEEP_ABOVE {
            // A bucket whose TAT has passed is full again: nothing to remember.
            self.tats.retain(|_, tat| *tat > now_us);
        }
        let tat = self.bucket.take(None, now_us)?;
        self.tats.insert(subject.to_owned(), tat);
        Ok(())
    }

    /// Gives back a token taken for `subject`.
    pub fn refund(&self, subject: &str) {
        if let Some(mut tat) = self.tats.get_mut(subject) {
            *tat = self.bucket.refund(*tat);
        }
    }

    /// Forgets a subject (its connection closed).
    pub fn forget(&self, subject: &str) {
        self.tats.remove(subject);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn a_refund_gives_the_token_back() {
        let bucket = Gcra::new(Rate::per_second(1.0, 1).unwrap());
        let tat = bucket.take(None, 0).unwrap();
        assert!(bucket.take(Some(tat), 0).is_err());
        assert!(bucket.take(Some(bucket.refund(tat)), 0).is_ok());
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
    fn local_buckets_are_per_subject() {
        let local = Local::new(Rate::per_second(1.0, 2).unwrap());
        local.take("a", 0).unwrap();
        local.take("a", 0).unwrap();
        assert!(local.take("a", 0).is_err());
        local.take("b", 0).unwrap();
        local.refund("a");
        local.take("a", 0).unwrap();
        local.forget("a");
        local.take("a", 0).unwrap();
    }

    /// Past SWEEP_ABOVE subjects, adding one forgets the buckets that are full again, and only
    /// those: a subject still limited stays limited, and so does one seen again meanwhile.
    #[test]
    fn full_buckets_are_forgotten_when_a_subject_is_added_past_the_bound() {
        let local = Local::new(Rate::per_second(1.0, 1).unwrap());
        local.take("limited", 0).unwrap();
        for n in 1..SWEEP_ABOVE {
            local.take(&format!("idle-{n}"), 0).unwrap();
        }
        assert_eq!(local.tats.len(), SWEEP_ABOVE);
        // Later, when every bucket taken at 0 is full again: "limited" takes again (refilled
        // at 1 s, now empty until 2 s), a known subject, so nothing is swept.
        local.take("limited", 1_500_000).unwrap();
        assert_eq!(local.tats.len(), SWEEP_ABOVE);
        // A new subject: the idle buckets are forgotten, "limited" is kept, still empty.
        local.take("new", 1_500_000).unwrap();
        assert_eq!(local.tats.len(), 2);
        assert!(local.take("limited", 1_500_000).is_err());
        assert!(local.take("new", 1_500_000).is_err());
    }
}
