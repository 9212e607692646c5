//! The spool: records, indexes, state transitions and group commit over an
//! [`Engine`].
//!
//! # Group commit
//!
//! Every write is an operation sent to one committer thread. The thread takes
//! everything queued (up to [`SpoolConfig::max_batch`]), applies the
//! operations in order against an overlay of the batch so far, commits the
//! whole batch with one durable [`Engine::commit`], and only then completes
//! each operation's [`Pending`]. A lone producer waits for exactly one
//! commit: there is no timer; batches form from whatever arrived while the
//! previous commit was running.
//!
//! # Consistency
//!
//! There is one writer, so a transition reads the envelope, changes it and
//! rewrites it with its index entries (due, held, in-flight) in the same
//! batch; the index keys are a pure function of the envelope
//! ([`Envelope::due_ms`], [`Envelope::held_endpoints`],
//! [`Envelope::has_claim`]), which is also what `check` verifies.
//!
//! # Layout
//!
//! - `types`: the public operation types ([`NewDatagram`], [`Enqueued`],
//!   [`Claim`], [`Outcome`], [`Recorded`], ...).
//! - `clock`, `config`: [`Clock`] and [`SpoolConfig`] (with the hold
//!   limits).
//! - `pending`: [`Pending`], a write's handle, resolved after its commit.
//! - `op`: the operations sent to the committer, and [`Fix`].
//! - `transitions`: the writes of [`Spool`] and the recipient-state
//!   transitions they make.
//! - `apply`: how the committer applies each operation.
//! - `overlay`: the committer's view of the engine plus the batch so far.
//! - `index`: the index entries of an envelope, and writing them.
//! - `committer`: the group-commit thread.
//! - `reads`: the reads of [`Spool`].
//! - `lock`: the lock file.
//! - `hex`: hex of raw keys.
//!
//! This module holds [`Spool`] itself: open (lock, engine, schema, resume
//! of outstanding claims), the handle's accessors, and the submission of
//! operations to the committer.

mod apply;
mod clock;
mod committer;
mod config;
mod hex;
mod index;
mod lock;
mod op;
mod overlay;
mod pending;
mod reads;
mod transitions;
mod types;

use std::ops::{Bound, ControlFlow};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::Instant;

use tokio::sync::{oneshot, watch};

pub use clock::{Clock, system_now_ms};
pub use config::{CommitObserver, CommitSample, HeldUsage, HoldPolicy, SpoolConfig};
pub(crate) use hex::key_hex;
pub(crate) use index::index_keys;
pub use lock::{LOCK_FILE, is_locked};
pub use op::Fix;
pub use pending::Pending;
pub use types::{
    Claim, CommitStats, Enqueued, FreshClaim, IdOrigin, NewDatagram, OpenReport, Outcome, RawEntry,
    Recorded, Superseding,
};

use committer::committer_loop;
use lock::LockFile;
use op::{Ctx, Job, Op};
use pending::{Output, changed};

use crate::engine::{Batch, Engine, EngineKind, Tree};
use crate::error::SpoolError;
use crate::keys;
use crate::record::{DatagramId, Envelope, RecipientState, ReportState};

/// The schema version this build writes and reads.
pub const SCHEMA_VERSION: u32 = 1;

/// The durable spool. Cheap to clone (shared handle); the last clone
/// dropped stops the committer (after finishing queued writes) and releases
/// the lock.
#[derive(Clone)]
pub struct Spool {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Arc<dyn Engine>,
    dir: PathBuf,
    config: SpoolConfig,
    tx: Mutex<Option<mpsc::Sender<Job>>>,
    committer: Mutex<Option<JoinHandle<()>>>,
    poisoned: Arc<AtomicBool>,
    commits: Arc<AtomicU64>,
    operations: Arc<AtomicU64>,
    changed: watch::Receiver<u64>,
    /// Where the committer hands claims made at enqueue
    /// ([`Spool::fresh_claims`]); `None` until the relay asks.
    fresh: Arc<Mutex<Option<tokio::sync::mpsc::Sender<FreshClaim>>>>,
    open_report: OpenReport,
    _lock: LockFile,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.tx.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = self
            .committer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            let _ = h.join();
        }
    }
}

impl Spool {
    /// Opens the spool in `dir`: takes the lock (or fails with
    /// [`SpoolError::Locked`] at once), opens or creates the engine, checks
    /// the schema, resets claims left outstanding by a crash, and starts the
    /// committer.
    pub fn open(dir: impl AsRef<Path>, config: SpoolConfig) -> Result<Self, SpoolError> {
        let dir = dir.as_ref().to_path_buf();
        if !dir.exists() {
            if !config.create {
                return Err(SpoolError::NoSpool(dir));
            }
            std::fs::create_dir_all(&dir).map_err(|e| SpoolError::io(&dir, e))?;
        }
        let lock = LockFile::acquire(&dir)?;
        let found = EngineKind::detect(&dir);
        let kind = match found {
            Some(found) if found != config.engine => {
                return Err(SpoolError::EngineMismatch {
                    found,
                    configured: config.engine,
                });
            }
            Some(found) => found,
            None if config.create => config.engine,
            None => return Err(SpoolError::NoSpool(dir)),
        };
        let t0 = Instant::now();
        let engine: Arc<dyn Engine> = Arc::from(kind.open(&dir)?);
        let open_engine = t0.elapsed();
        let now = config.clock.now_ms();
        let mut created = false;
        match engine.get(Tree::Meta, keys::META_SCHEMA)? {
            None => {
                let mut b = Batch::new();
                b.put(
                    Tree::Meta,
                    keys::META_SCHEMA,
                    SCHEMA_VERSION.to_be_bytes().to_vec(),
                );
                b.put(Tree::Meta, keys::META_CREATED, now.to_be_bytes().to_vec());
                b.put(
                    Tree::Meta,
                    keys::META_ENGINE,
                    kind.name().as_bytes().to_vec(),
                );
                engine.commit(&b)?;
                created = true;
            }
            Some(v) => {
                let version = <[u8; 4]>::try_from(v.as_slice())
                    .map(u32::from_be_bytes)
                    .unwrap_or(u32::MAX);
                if version != SCHEMA_VERSION {
                    return Err(SpoolError::UnsupportedSchema(version));
                }
            }
        }

        let (tx, rx) = mpsc::channel::<Job>();
        let (changed_tx, changed_rx) = watch::channel(0u64);
        let poisoned = Arc::new(AtomicBool::new(false));
        let commits = Arc::new(AtomicU64::new(0));
        let operations = Arc::new(AtomicU64::new(0));
        let fresh = Arc::new(Mutex::new(None));
        let committer = {
            let fresh = fresh.clone();
            let engine = engine.clone();
            let config = config.clone();
            let poisoned = poisoned.clone();
            let commits = commits.clone();
            let operations = operations.clone();
            std::thread::Builder::new()
                .name("imxp-spool-commit".into())
                .spawn(move || {
                    committer_loop(
                        &*engine,
                        &config,
                        &rx,
                        &changed_tx,
                        &poisoned,
                        &commits,
                        &operations,
                        &fresh,
                    );
                })
                .map_err(|e| SpoolError::io(&dir, e))?
        };
        let mut spool = Self {
            inner: Arc::new(Inner {
                engine,
                dir,
                config,
                tx: Mutex::new(Some(tx)),
                committer: Mutex::new(Some(committer)),
                poisoned,
                commits,
                operations,
                changed: changed_rx,
                fresh,
                open_report: OpenReport::default(),
                _lock: lock,
            }),
        };
        let t1 = Instant::now();
        let resumed = spool.resume_claims()?;
        let report = OpenReport {
            created,
            resumed,
            open_engine,
            resume: t1.elapsed(),
        };
        if let Some(inner) = Arc::get_mut(&mut spool.inner) {
            inner.open_report = report;
        }
        tracing::info!(
            dir = %spool.inner.dir.display(),
            engine = %kind,
            resumed,
            "spool opened"
        );
        Ok(spool)
    }

    /// Resets every outstanding claim (in flight → queued due now, claimed
    /// report → owed). Done at open; a relay never calls it while running.
    fn resume_claims(&self) -> Result<u64, SpoolError> {
        let mut ids = Vec::new();
        self.inner.engine.scan(
            Tree::Inflight,
            Bound::Unbounded,
            Bound::Unbounded,
            &mut |k, _| {
                if let Some(id) = DatagramId::from_slice(k) {
                    ids.push(id);
                }
                ControlFlow::Continue(())
            },
        )?;
        let pending: Vec<_> = ids
            .iter()
            .map(|id| {
                self.mutate(
                    *id,
                    changed,
                    || Output::Changed(false),
                    |env, ctx| {
                        let mut any = false;
                        for r in &mut env.recipients {
                            if let RecipientState::InFlight { .. } = r.state {
                                r.state = RecipientState::Queued { due_ms: ctx.now_ms };
                                any = true;
                            }
                            if let ReportState::Claimed { .. } = r.report {
                                r.report = ReportState::Owed;
                                any = true;
                            }
                        }
                        Output::Changed(any)
                    },
                )
            })
            .collect();
        let mut n = 0;
        for p in pending {
            match p.wait() {
                Ok(true) => n += 1,
                Ok(false) | Err(SpoolError::Corrupt { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }

    /// What the open did (created, claims resumed, timings).
    pub fn open_report(&self) -> &OpenReport {
        &self.inner.open_report
    }

    /// The spool directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The engine in use.
    pub fn engine_kind(&self) -> EngineKind {
        self.inner.engine.kind()
    }

    /// The configuration it was opened with.
    pub fn config(&self) -> &SpoolConfig {
        &self.inner.config
    }

    /// The current time by the spool's clock.
    pub fn now_ms(&self) -> u64 {
        self.inner.config.clock.now_ms()
    }

    /// A receiver that changes after every commit that may have made work
    /// due earlier (enqueue, release, requeue, flush, resume): a scheduler
    /// waits on it instead of polling.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.changed.clone()
    }

    /// Commits made and operations carried (for benchmarks and metrics).
    pub fn commit_stats(&self) -> CommitStats {
        CommitStats {
            commits: self.inner.commits.load(Ordering::Relaxed),
            operations: self.inner.operations.load(Ordering::Relaxed),
        }
    }

    /// From now on, enqueues are claimed in the commit that queues them
    /// while this receiver has room for them (up to `capacity` waiting),
    /// and handed to it once durable ([`FreshClaim`]); the others are
    /// queued due now as before. For the relay's dispatcher, which then
    /// needs no separate [`Spool::claim`] for most datagrams. `None` if a
    /// receiver was already taken. Dropping the receiver ends the hand-over;
    /// claims it did not take stay in flight until the next open resets
    /// them, like any claim outstanding at a stop.
    pub fn fresh_claims(&self, capacity: usize) -> Option<tokio::sync::mpsc::Receiver<FreshClaim>> {
        let mut slot = self.inner.fresh.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_some() {
            return None;
        }
        let (tx, rx) = tokio::sync::mpsc::channel(capacity.max(1));
        *slot = Some(tx);
        Some(rx)
    }

    fn submit<T>(&self, op: Op, map: fn(Output) -> T) -> Pending<T> {
        if self.inner.poisoned.load(Ordering::Acquire) {
            return Pending::failed(SpoolError::Poisoned, map);
        }
        let (reply, rx) = oneshot::channel();
        let guard = self.inner.tx.lock().unwrap_or_else(|p| p.into_inner());
        match guard.as_ref() {
            Some(tx)
                if tx
                    .send(Job {
                        op,
                        reply: Some(reply),
                    })
                    .is_ok() =>
            {
                Pending::new(rx, map)
            }
            _ => Pending::failed(SpoolError::Closed, map),
        }
    }

    fn submit_detached(&self, op: Op) {
        let guard = self.inner.tx.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = guard.as_ref() {
            let _ = tx.send(Job { op, reply: None });
        }
    }

    fn mutate<T>(
        &self,
        id: DatagramId,
        map: fn(Output) -> T,
        missing: fn() -> Output,
        f: impl FnOnce(&mut Envelope, &Ctx<'_>) -> Output + Send + 'static,
    ) -> Pending<T> {
        self.submit(
            Op::Mutate {
                id,
                f: Box::new(f),
                missing,
                usage: false,
            },
            map,
        )
    }
}
