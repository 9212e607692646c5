//! Spool statistics: counts by state, by destination domain and by age
//! (Postfix `qshape`).

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use serde::{Deserialize, Serialize};

use crate::error::SpoolError;
use crate::record::{StateName, domain_of};
use crate::spool::{CommitStats, Spool};

/// Upper bounds (minutes, exclusive) of the age buckets; the last bucket is
/// open-ended. Doubling like qshape's default.
pub const AGE_BUCKETS_MIN: [u64; 9] = [5, 10, 20, 40, 80, 160, 320, 640, 1280];

/// The labels of the age buckets (`0-5m`, …, `1280m+`).
pub fn age_labels() -> Vec<String> {
    let mut out = Vec::new();
    let mut lo = 0;
    for hi in AGE_BUCKETS_MIN {
        out.push(format!("{lo}-{hi}m"));
        lo = hi;
    }
    out.push(format!("{lo}m+"));
    out
}

/// The bucket of an age in ms.
pub fn age_bucket(age_ms: u64) -> usize {
    let minutes = age_ms / 60_000;
    AGE_BUCKETS_MIN
        .iter()
        .position(|hi| minutes < *hi)
        .unwrap_or(AGE_BUCKETS_MIN.len())
}

/// Counts for one destination domain.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainStats {
    /// Recipients by state.
    pub by_state: BTreeMap<StateName, u64>,
    /// Pending (not final) recipients by age bucket (see [`age_labels`]).
    pub by_age: Vec<u64>,
}

/// A snapshot of the spool's shape.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// When taken (ms since the epoch).
    pub at_ms: u64,
    /// Datagrams.
    pub datagrams: u64,
    /// Datagrams on operator hold.
    pub on_hold: u64,
    /// Content bytes of all datagrams.
    pub content_bytes: u64,
    /// Recipients by state.
    pub by_state: BTreeMap<StateName, u64>,
    /// Per destination domain (the recipient's).
    pub by_domain: BTreeMap<String, DomainStats>,
    /// Per originator domain, counting the same recipients (qshape's
    /// sender view: who fills the queue).
    #[serde(default)]
    pub by_origin: BTreeMap<String, DomainStats>,
    /// Pending (not final) recipients by age bucket, all domains.
    pub by_age: Vec<u64>,
    /// The age bucket labels.
    pub age_labels: Vec<String>,
    /// Records in quarantine.
    pub quarantined: u64,
    /// Ids remembered for duplicate detection.
    pub dedup_entries: u64,
    /// Durable commits this process made since it opened the spool, and
    /// the operations they carried (group commit: operations per commit).
    /// A benchmark reads it before and after a run for commits per
    /// datagram. Absent in replies from older relays.
    #[serde(default)]
    pub commits: CommitStats,
}

impl Spool {
    /// Scans the envelopes (never the content) and counts.
    pub fn stats(&self) -> Result<Stats, SpoolError> {
        let now = self.now_ms();
        let buckets = AGE_BUCKETS_MIN.len() + 1;
        let mut s = Stats {
            at_ms: now,
            by_age: vec![0; buckets],
            age_labels: age_labels(),
            ..Default::default()
        };
        for st in StateName::ALL {
            s.by_state.insert(st, 0);
        }
        self.for_each(|env| {
            s.datagrams += 1;
            s.content_bytes += env.size;
            if env.admin_hold {
                s.on_hold += 1;
            }
            let bucket = age_bucket(now.saturating_sub(env.queued_ms));
            let origin = domain_of(&env.originator);
            for r in &env.recipients {
                let st = r.state.kind();
                let pending = !r.state.is_final();
                *s.by_state.entry(st).or_default() += 1;
                if pending {
                    s.by_age[bucket] += 1;
                }
                for (map, domain) in [
                    (&mut s.by_domain, domain_of(&r.endpoint)),
                    (&mut s.by_origin, origin.clone()),
                ] {
                    let d = map.entry(domain).or_insert_with(|| DomainStats {
                        by_state: BTreeMap::new(),
                        by_age: vec![0; buckets],
                    });
                    *d.by_state.entry(st).or_default() += 1;
                    if pending {
                        d.by_age[bucket] += 1;
                    }
                }
            }
            ControlFlow::Continue(())
        })?;
        s.quarantined = self.quarantine_len()?;
        s.dedup_entries = self.dedup_len()?;
        s.commits = self.commit_stats();
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets() {
        assert_eq!(age_bucket(0), 0);
        assert_eq!(age_bucket(5 * 60_000 - 1), 0);
        assert_eq!(age_bucket(5 * 60_000), 1);
        assert_eq!(age_bucket(1279 * 60_000), 8);
        assert_eq!(age_bucket(u64::MAX), 9);
        assert_eq!(age_labels().len(), 10);
        assert_eq!(age_labels()[9], "1280m+");
    }
}
