//! The retry policy, as data and a pure function.
//!
//! [`RetryPolicy::next_retry`] computes when a deferred recipient is tried
//! again: exponential backoff (`min_backoff × 2^(attempt−1)`), spread by a
//! jitter of ±`jitter` (a fraction) from a caller-supplied sample in
//! `[0, 1)`, clamped to `[min_backoff, max_backoff]`; and gives up when the
//! next attempt would not come before the deadline, which is the earlier of
//! the datagram's `queued + max_lifetime` and its own `noLaterThan`.
//! No clock, no randomness, no tokio: callers pass `now` and the sample.

use serde::{Deserialize, Serialize};

/// How deferred recipients are retried and when datagrams expire.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// The smallest delay between attempts (ms), and the first one.
    pub min_backoff_ms: u64,
    /// The largest delay between attempts (ms).
    pub max_backoff_ms: u64,
    /// Jitter as a fraction of the delay: 0.2 spreads a 100 s delay over
    /// 80..120 s. Between 0 and 1.
    pub jitter: f64,
    /// The maximum time a datagram stays in the spool (ms).
    pub max_lifetime_ms: u64,
}

impl Default for RetryPolicy {
    /// Postfix-like defaults: 5 min first retry, at most 1 h apart, ±20 %
    /// jitter, 5 days lifetime.
    fn default() -> Self {
        Self {
            min_backoff_ms: 5 * 60 * 1000,
            max_backoff_ms: 60 * 60 * 1000,
            jitter: 0.2,
            max_lifetime_ms: 5 * 24 * 60 * 60 * 1000,
        }
    }
}

/// What to do after a temporary failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retry {
    /// Try again at this time (ms since the epoch).
    At(u64),
    /// Give up: the deadline has passed or would pass before the next try.
    GiveUp,
}

impl RetryPolicy {
    /// The deadline of a datagram queued at `queued_ms` with its own
    /// optional deadline: `min(queued + max_lifetime, deadline)`.
    pub fn deadline(&self, queued_ms: u64, own_deadline_ms: Option<u64>) -> u64 {
        let lifetime = queued_ms.saturating_add(self.max_lifetime_ms);
        own_deadline_ms.map_or(lifetime, |d| d.min(lifetime))
    }

    /// The delay before attempt `attempt + 1`, after `attempt` (≥ 1) failed
    /// attempts, with jitter from `sample` in `[0, 1)`.
    pub fn backoff(&self, attempt: u32, sample: f64) -> u64 {
        // An inverted configuration (min > max) means a fixed min delay.
        let min = self.min_backoff_ms;
        let max = self.max_backoff_ms.max(min);
        let exp = attempt.saturating_sub(1).min(63);
        let base = min.saturating_mul(1u64 << exp.min(62)).min(max);
        let jitter = self.jitter.clamp(0.0, 1.0);
        let sample = if sample.is_finite() {
            sample.clamp(0.0, 1.0)
        } else {
            0.5
        };
        // factor in [1 - jitter, 1 + jitter)
        let factor = 1.0 - jitter + 2.0 * jitter * sample;
        let delay = (base as f64 * factor).round();
        (delay as u64).clamp(min, max)
    }

    /// When to retry after `attempt` failed attempts, at `now_ms`, for a
    /// datagram whose deadline is `deadline_ms` (see [`Self::deadline`]).
    pub fn next_retry(&self, attempt: u32, now_ms: u64, deadline_ms: u64, sample: f64) -> Retry {
        let at = now_ms.saturating_add(self.backoff(attempt, sample));
        if now_ms >= deadline_ms || at >= deadline_ms {
            Retry::GiveUp
        } else {
            Retry::At(at)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            min_backoff_ms: 1_000,
            max_backoff_ms: 60_000,
            jitter: 0.0,
            max_lifetime_ms: 1_000_000,
        }
    }

    #[test]
    fn backoff_doubles_then_clamps() {
        let p = policy();
        let delays: Vec<u64> = (1..=9).map(|a| p.backoff(a, 0.5)).collect();
        assert_eq!(
            delays,
            vec![
                1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000, 60_000
            ]
        );
        // Huge attempt counts do not overflow.
        assert_eq!(p.backoff(u32::MAX, 0.5), 60_000);
        assert_eq!(p.backoff(0, 0.5), 1_000);
    }

    #[test]
    fn jitter_spreads_within_bounds_and_clamps() {
        let p = RetryPolicy {
            jitter: 0.2,
            ..policy()
        };
        assert_eq!(p.backoff(3, 0.0), 3_200);
        assert_eq!(p.backoff(3, 0.5), 4_000);
        assert_eq!(p.backoff(3, 0.999_999), 4_800);
        // Jitter never goes below the minimum or above the maximum.
        assert_eq!(p.backoff(1, 0.0), 1_000);
        assert_eq!(p.backoff(20, 0.999), 60_000);
        // Nonsense samples are tamed.
        assert_eq!(p.backoff(3, f64::NAN), 4_000);
        assert_eq!(p.backoff(3, 7.0), 4_800);
    }

    #[test]
    fn deadline_is_the_earlier_of_lifetime_and_own() {
        let p = policy();
        assert_eq!(p.deadline(100, None), 1_000_100);
        assert_eq!(p.deadline(100, Some(5_000)), 5_000);
        assert_eq!(p.deadline(100, Some(9_000_000)), 1_000_100);
        assert_eq!(p.deadline(u64::MAX - 1, None), u64::MAX);
    }

    #[test]
    fn next_retry_gives_up_at_the_deadline() {
        let p = policy();
        assert_eq!(p.next_retry(1, 10_000, 20_000, 0.5), Retry::At(11_000));
        assert_eq!(p.next_retry(4, 10_000, 20_000, 0.5), Retry::At(18_000));
        // 16 s later would be past the deadline.
        assert_eq!(p.next_retry(5, 10_000, 20_000, 0.5), Retry::GiveUp);
        assert_eq!(p.next_retry(1, 20_000, 20_000, 0.5), Retry::GiveUp);
        assert_eq!(p.next_retry(1, 30_000, 20_000, 0.5), Retry::GiveUp);
    }

    #[test]
    fn inverted_bounds_are_tolerated() {
        let p = RetryPolicy {
            min_backoff_ms: 10_000,
            max_backoff_ms: 1_000,
            ..policy()
        };
        assert_eq!(p.backoff(1, 0.5), 10_000);
        assert_eq!(p.backoff(5, 0.5), 10_000);
    }
}
