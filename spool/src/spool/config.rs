//! How a spool is opened ([`SpoolConfig`]) and the limits of the
//! held-by-endpoint queue ([`HoldPolicy`], [`HeldUsage`]). The committer
//! reads them for every batch (see `committer`); the transitions apply the
//! retry and hold policies (see `transitions`).

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Clock;
use crate::engine::EngineKind;
use crate::retry::RetryPolicy;

/// How to open a spool.
#[derive(Clone, Debug)]
pub struct SpoolConfig {
    /// The engine to create a new spool with; an existing spool must match.
    pub engine: EngineKind,
    /// Create the spool when the directory holds none.
    pub create: bool,
    /// Retry policy and maximum lifetime.
    pub retry: RetryPolicy,
    /// How long a datagram id is remembered for duplicate detection (ms).
    pub dedup_window_ms: u64,
    /// The most operations one commit takes.
    pub max_batch: usize,
    /// Wall-clock source.
    pub clock: Clock,
    /// Limits of datagrams held for endpoints (`hold4Endpoint`).
    pub hold: HoldPolicy,
    /// Told about every durable commit (metrics); `None`: nobody.
    pub observer: Option<CommitObserver>,
}

/// One durable commit of the committer, as a [`CommitObserver`] sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommitSample {
    /// Operations the commit carried (its group size).
    pub operations: usize,
    /// Time the engine took to make the batch durable.
    pub duration: Duration,
}

/// A function the committer calls after each durable commit, on its own
/// thread: it must be quick (count, never block).
#[derive(Clone)]
pub struct CommitObserver(Arc<dyn Fn(CommitSample) + Send + Sync>);

impl CommitObserver {
    /// An observer calling `f`.
    pub fn new(f: impl Fn(CommitSample) + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }

    /// Tells the observer about `sample`.
    pub fn observe(&self, sample: CommitSample) {
        (self.0)(sample);
    }
}

impl std::fmt::Debug for CommitObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CommitObserver")
    }
}

/// Limits of the held-by-endpoint queue (RFC 3342 §3 and §7: holding is a
/// denial-of-service vector, so a site bounds it).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HoldPolicy {
    /// The most datagrams held for one endpoint; `None`: unlimited.
    pub max_per_endpoint: Option<u64>,
    /// The most content bytes held for one endpoint; `None`: unlimited.
    pub max_bytes_per_endpoint: Option<u64>,
    /// How long a recipient may wait held when the datagram has no
    /// `dataTiming` deadline (`QueueOptions::deadline_ms`); `None`: until
    /// the maximum lifetime.
    pub default_ttl_ms: Option<u64>,
}

/// What is held for one endpoint.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldUsage {
    /// Datagrams held.
    pub count: u64,
    /// Their content bytes.
    pub bytes: u64,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        Self {
            engine: EngineKind::Redb,
            create: true,
            retry: RetryPolicy::default(),
            dedup_window_ms: 24 * 60 * 60 * 1000,
            max_batch: 4096,
            clock: Clock::system(),
            hold: HoldPolicy::default(),
            observer: None,
        }
    }
}
