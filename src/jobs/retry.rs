//! How a job is retried after a transient error: the policy a bot declares
//! and the delay before the next attempt.
//!
//! `delay(n) = min(cap, base · 2^(n−1) · (1 + jitter · u))`, where `n` is the
//! number of attempts that have failed so far (1 after the first failure) and
//! `u` is uniform in [−1, 1]. The doubling follows Oban and River; the jitter
//! spreads out jobs that failed together (a server that went down for all of
//! them) so they do not all come back in the same second.

use std::time::Duration;

/// How a job is retried after a transient failure.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts that may end in a transient error before the job is dead.
    pub max_attempts: u32,
    /// Delay before the second attempt; doubles with each further attempt.
    pub backoff: Duration,
    /// No delay is longer than this.
    pub backoff_cap: Duration,
    /// Fraction of the delay added or taken at random (0.0–1.0) so that jobs
    /// that failed together do not all come back together.
    pub jitter: f64,
    /// Attempts whose worker vanished (lease expired) before the job is dead.
    pub max_lost: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            backoff: Duration::from_secs(10),
            backoff_cap: Duration::from_secs(3600),
            jitter: 0.2,
            max_lost: 3,
        }
    }
}

/// Delay before the next attempt after `failed` transient failures, with a
/// random jitter.
pub fn backoff_delay(policy: &RetryPolicy, failed: u32) -> Duration {
    let u = rand::random::<f64>() * 2.0 - 1.0;
    delay_with(policy, failed, u)
}

/// [`backoff_delay`] with the random draw `u` ∈ [−1, 1] given.
pub(crate) fn delay_with(policy: &RetryPolicy, failed: u32, u: f64) -> Duration {
    let exponent = failed.saturating_sub(1).min(62);
    let base = policy.backoff.as_secs_f64() * (1u64 << exponent) as f64;
    let jitter = policy.jitter.clamp(0.0, 1.0) * u.clamp(-1.0, 1.0);
    let secs = (base * (1.0 + jitter)).min(policy.backoff_cap.as_secs_f64());
    Duration::from_secs_f64(secs.max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(base: u64, cap: u64, jitter: f64) -> RetryPolicy {
        RetryPolicy {
            backoff: Duration::from_secs(base),
            backoff_cap: Duration::from_secs(cap),
            jitter,
            ..RetryPolicy::default()
        }
    }

    #[test]
    fn doubles_from_the_base() {
        let p = policy(10, 3600, 0.0);
        let secs: Vec<u64> = (1..=5).map(|n| delay_with(&p, n, 0.7).as_secs()).collect();
        assert_eq!(secs, vec![10, 20, 40, 80, 160]);
    }

    #[test]
    fn never_exceeds_the_cap_even_with_jitter() {
        let p = policy(10, 60, 0.5);
        assert_eq!(delay_with(&p, 10, 1.0), Duration::from_secs(60));
        assert_eq!(delay_with(&p, 1000, 1.0), Duration::from_secs(60));
    }

    #[test]
    fn jitter_stays_within_its_fraction() {
        let p = policy(100, 100_000, 0.2);
        assert_eq!(delay_with(&p, 1, -1.0), Duration::from_secs(80));
        assert_eq!(delay_with(&p, 1, 1.0), Duration::from_secs(120));
        for _ in 0..1000 {
            let d = backoff_delay(&p, 2).as_secs_f64();
            assert!((160.0..=240.0).contains(&d), "{d}");
        }
    }
}
