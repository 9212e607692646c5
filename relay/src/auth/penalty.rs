//! Slowing down failed authentication, per peer address.
//!
//! Every failed SASL exchange adds one to the peer's score, which halves
//! every [`FailurePolicy::half_life`]; the failure reply is held back for
//! `base × 2^(score − 1)`, at most `max`. A peer guessing passwords thus
//! waits longer and longer, an honest typo costs a fraction of a second,
//! and the penalty fades when the peer stops.
//!
//! The delay is served by the failing session's own driver task (a timer,
//! [`imxp_beep::io::DriverConfig::auth_failure_delay`]): other sessions,
//! from this peer or others, are not slowed, and the shared table is only
//! locked to update one entry. IPv6 peers are grouped by /64 (one host
//! usually has a whole /64).

use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Entries above this count trigger a sweep of the faded ones.
const SWEEP_ABOVE: usize = 4096;
/// A score below this is forgotten.
const FORGET_BELOW: f64 = 0.05;

/// The delay policy, a pure function of the peer's history and the time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FailurePolicy {
    /// The delay after a first failure.
    pub base: Duration,
    /// The largest delay.
    pub max: Duration,
    /// The time for a score to halve.
    pub half_life: Duration,
}

impl Default for FailurePolicy {
    fn default() -> Self {
        Self {
            base: Duration::from_millis(250),
            max: Duration::from_secs(10),
            half_life: Duration::from_secs(60),
        }
    }
}

/// One peer's decaying failure score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score {
    value: f64,
    at: Instant,
}

impl FailurePolicy {
    /// The score at `now` (decayed since it was last updated).
    pub fn decayed(&self, score: Option<Score>, now: Instant) -> f64 {
        score.map_or(0.0, |score| {
            let elapsed = now.saturating_duration_since(score.at).as_secs_f64();
            let half_life = self.half_life.as_secs_f64().max(f64::MIN_POSITIVE);
            score.value * 0.5f64.powf(elapsed / half_life)
        })
    }

    /// Records a failure at `now`: the new score and the delay to impose.
    pub fn fail(&self, score: Option<Score>, now: Instant) -> (Score, Duration) {
        let value = self.decayed(score, now) + 1.0;
        // 2^(value − 1), computed in floating point and capped.
        let factor = 2f64.powf((value - 1.0).min(62.0));
        let delay = self.base.mul_f64(factor.min(1e9)).min(self.max);
        (Score { value, at: now }, delay)
    }
}

/// The failure scores of all peers.
#[derive(Debug, Default)]
pub struct Penalties {
    policy: FailurePolicy,
    scores: Mutex<HashMap<IpAddr, Score>>,
}

impl Penalties {
    /// Penalties under `policy`.
    pub fn new(policy: FailurePolicy) -> Self {
        Self {
            policy,
            scores: Mutex::new(HashMap::new()),
        }
    }

    /// Records a failed authentication by `peer`; returns how long to hold
    /// the failure reply back.
    pub fn fail(&self, peer: IpAddr, now: Instant) -> Duration {
        let key = group(peer);
        let mut scores = self.scores.lock();
        let (score, delay) = self.policy.fail(scores.get(&key).copied(), now);
        scores.insert(key, score);
        if scores.len() > SWEEP_ABOVE {
            let policy = self.policy;
            scores.retain(|_, s| policy.decayed(Some(*s), now) >= FORGET_BELOW);
        }
        delay
    }

    /// The peer's current score (for tests and diagnostics).
    pub fn score(&self, peer: IpAddr, now: Instant) -> f64 {
        let scores = self.scores.lock();
        self.policy.decayed(scores.get(&group(peer)).copied(), now)
    }
}

/// The address penalties are kept for: IPv4 as is, IPv6 by /64 (an
/// IPv4-mapped IPv6 address as its IPv4 address).
fn group(peer: IpAddr) -> IpAddr {
    match peer {
        IpAddr::V4(_) => peer,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut octets = v6.octets();
                octets[8..].fill(0);
                IpAddr::V6(octets.into())
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn delay_doubles_up_to_the_cap_and_decays() {
        let policy = FailurePolicy {
            base: ms(100),
            max: ms(1000),
            half_life: Duration::from_secs(10),
        };
        let t0 = Instant::now();
        let mut score = None;
        let mut delays = Vec::new();
        for _ in 0..6 {
            let (next, delay) = policy.fail(score, t0);
            score = Some(next);
            delays.push(delay);
        }
        assert_eq!(
            delays,
            [ms(100), ms(200), ms(400), ms(800), ms(1000), ms(1000)]
        );
        // Six failures, then one half-life: score 3 → the next is 4 → 800 ms.
        let later = t0 + Duration::from_secs(10);
        assert!((policy.decayed(score, later) - 3.0).abs() < 1e-9);
        assert_eq!(policy.fail(score, later).1, ms(800));
        // Long quiet: back to the base delay.
        let much_later = t0 + Duration::from_secs(600);
        let (_, delay) = policy.fail(score, much_later);
        assert!(delay >= ms(100) && delay < ms(101), "{delay:?}");
        // A clock that goes backwards does not increase the score.
        assert!((policy.decayed(score, t0 - Duration::from_secs(1)) - 6.0).abs() < 1e-9);
    }

    #[test]
    fn peers_are_independent_and_ipv6_grouped_by_64() {
        let penalties = Penalties::new(FailurePolicy {
            base: ms(10),
            max: ms(10_000),
            half_life: Duration::from_secs(60),
        });
        let now = Instant::now();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        assert_eq!(penalties.fail(a, now), ms(10));
        assert_eq!(penalties.fail(a, now), ms(20));
        assert_eq!(penalties.fail(a, now), ms(40));
        assert_eq!(penalties.fail(b, now), ms(10));
        let v6a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let v6b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let v6c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(penalties.fail(v6a, now), ms(10));
        assert_eq!(penalties.fail(v6b, now), ms(20));
        assert_eq!(penalties.fail(v6c, now), ms(10));
        let mapped: IpAddr = "::ffff:192.0.2.2".parse().unwrap();
        assert_eq!(penalties.fail(mapped, now), ms(20));
        assert!((penalties.score(a, now) - 3.0).abs() < 1e-9);
    }
}
