//! The one retry policy: how many attempts a request gets and how long to
//! wait between them. Which failures may be retried at all is decided by
//! the client (see the crate docs); this only bounds how often and how fast.

use std::time::Duration;

/// Most attempts of one request, the first included. With the default
/// backoff the waits between them add up to 9.15 s (plus the attempts
/// themselves): a master failover must finish within that for a request to
/// ride it out; raise it for a `lease_period` longer than a few seconds.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 10;
/// Wait before the second attempt; doubled before each following one.
pub const DEFAULT_BACKOFF_INITIAL: Duration = Duration::from_millis(50);
/// Longest wait between two attempts.
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(2);

/// Bounded exponential backoff.
///
/// ```
/// use client::RetryPolicy;
/// use std::time::Duration;
/// let policy = RetryPolicy::default();
/// assert_eq!(policy.backoff(1), Duration::from_millis(50));
/// assert_eq!(policy.backoff(2), Duration::from_millis(100));
/// assert_eq!(RetryPolicy::no_retry().max_attempts, 1);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Most attempts of one request, the first included (at least 1).
    pub max_attempts: u32,
    /// Wait after the first failed attempt.
    pub backoff_initial: Duration,
    /// Longest wait between two attempts.
    pub backoff_max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            backoff_initial: DEFAULT_BACKOFF_INITIAL,
            backoff_max: DEFAULT_BACKOFF_MAX,
        }
    }
}

impl RetryPolicy {
    /// One attempt, never a retry.
    pub fn no_retry() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// The wait after failed attempt number `failed_attempts` (1-based):
    /// `backoff_initial * 2^(failed_attempts - 1)`, at most `backoff_max`.
    pub fn backoff(&self, failed_attempts: u32) -> Duration {
        let doublings = failed_attempts.saturating_sub(1).min(31);
        self.backoff_initial
            .saturating_mul(1u32 << doublings)
            .min(self.backoff_max)
    }

    /// Whether another attempt is allowed after `failed_attempts` failures.
    pub fn allows_another(&self, failed_attempts: u32) -> bool {
        failed_attempts < self.max_attempts.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = RetryPolicy::default();
        let waits: Vec<_> = (1..=8).map(|n| p.backoff(n).as_millis()).collect();
        assert_eq!(waits, [50, 100, 200, 400, 800, 1600, 2000, 2000]);
        let total: Duration = (1..DEFAULT_MAX_ATTEMPTS).map(|n| p.backoff(n)).sum();
        assert_eq!(total, Duration::from_millis(9150));
        assert_eq!(p.backoff(u32::MAX), DEFAULT_BACKOFF_MAX);
    }

    #[test]
    fn attempts_are_bounded() {
        let p = RetryPolicy::default();
        assert!(p.allows_another(DEFAULT_MAX_ATTEMPTS - 1));
        assert!(!p.allows_another(DEFAULT_MAX_ATTEMPTS));
        let zero = RetryPolicy {
            max_attempts: 0,
            ..p
        };
        assert!(!zero.allows_another(1), "0 attempts means 1");
    }
}
