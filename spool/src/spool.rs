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

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::future::Future;
use std::io::{Read, Write as _};
use std::ops::{Bound, ControlFlow};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::{oneshot, watch};

use crate::engine::{Batch, Engine, EngineKind, Tree};
use crate::error::SpoolError;
use crate::keys;
use crate::record::{
    DatagramId, Envelope, Failure, FailureKind, QuarantineEntry, QueueOptions, Recipient,
    RecipientState, ReportState, decode_envelope, decode_quarantine, encode_envelope,
    encode_quarantine,
};
use crate::retry::{Retry, RetryPolicy};

/// A raw `(key, value)` pair of a tree.
pub type RawEntry = (Vec<u8>, Vec<u8>);

/// The schema version this build writes and reads.
pub const SCHEMA_VERSION: u32 = 1;

// ===== Clock =====

/// The spool's source of wall-clock time (ms since the UNIX epoch).
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> u64 + Send + Sync>);

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self(Arc::new(system_now_ms))
    }

    /// A clock reading a shared counter (tests).
    pub fn manual(now: Arc<AtomicU64>) -> Self {
        Self(Arc::new(move || now.load(Ordering::SeqCst)))
    }

    /// The current time.
    pub fn now_ms(&self) -> u64 {
        (self.0)()
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::system()
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Clock")
    }
}

/// Milliseconds since the UNIX epoch, from the system clock.
pub fn system_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

// ===== Config =====

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
        }
    }
}

// ===== Public operation types =====

/// A datagram to enqueue.
#[derive(Clone, Debug)]
pub struct NewDatagram {
    /// Its id: derived from an identity the sender gives the datagram (see
    /// [`IdOrigin::Derived`]), or generated ([`DatagramId::generate`]).
    pub id: DatagramId,
    /// Where the id comes from, which decides whether it is a dedup key.
    pub id_origin: IdOrigin,
    /// The originator endpoint.
    pub originator: String,
    /// Recipient endpoints (at least one; no NUL bytes).
    pub recipients: Vec<String>,
    /// Queueing options.
    pub options: QueueOptions,
    /// The content, stored byte-exact.
    pub content: Vec<u8>,
}

/// Where a [`NewDatagram`]'s id comes from.
///
/// Content equality is not identity: two datagrams with the same text are
/// two datagrams. Only an id derived from something a *retransmission* of
/// the same datagram carries again (the previous hop's own id for it, or
/// the Content-ID its originator gave it) may be used to recognise a
/// duplicate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdOrigin {
    /// Derived from the sender's identity for the datagram: remembered for
    /// the dedup window, and a datagram with the same id within it is a
    /// duplicate ([`Enqueued::Duplicate`]).
    Derived,
    /// Freshly generated: the datagram has no identity a resend would
    /// repeat, so it is never recognised as a duplicate (at-least-once) and
    /// its id is not remembered.
    Generated,
}

/// The result of an enqueue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Enqueued {
    /// Durably queued.
    Queued(DatagramId),
    /// The id was seen within the dedup window (or is still queued): nothing
    /// was written; the earlier copy stands.
    Duplicate(DatagramId),
}

impl Enqueued {
    /// The id.
    pub fn id(&self) -> DatagramId {
        match self {
            Self::Queued(id) | Self::Duplicate(id) => *id,
        }
    }
}

/// Work handed to the relay by [`Spool::claim`] or [`Spool::claim_held`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    /// The envelope after the claim.
    pub envelope: Envelope,
    /// Recipients (indexes) now in flight: attempt them, then [`Spool::record`].
    pub attempt: Vec<usize>,
    /// Recipients that just expired (failed) in this claim.
    pub expired: Vec<usize>,
    /// Failed recipients whose report the relay must now send, then confirm
    /// with [`Spool::mark_reported`].
    pub report_due: Vec<usize>,
    /// Recipients still waiting when `reportAfter` ran out
    /// ([`QueueOptions::report_after_ms`], cleared by this claim): the
    /// relay sends their transient report (RFC 3342 §2.2.1), once.
    pub transient_due: Vec<usize>,
}

/// The outcome of one delivery attempt for one recipient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted by the next hop or the endpoint.
    Delivered {
        /// The next hop (or `local`).
        via: Option<String>,
    },
    /// Temporary failure: retry per policy (or fail if the deadline would pass).
    Deferred(Failure),
    /// Permanent failure.
    Failed(Failure),
    /// The endpoint is not attached and the datagram asked `hold4Endpoint`.
    Held,
    /// Not attempted after all (e.g. shutdown): back to queued, due now, and
    /// the attempt is not counted.
    NotAttempted,
}

/// The result of [`Spool::record`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    /// The envelope after the change.
    pub envelope: Envelope,
    /// Whether the datagram is complete and was removed.
    pub removed: bool,
    /// Recipients that failed (or, with [`QueueOptions::report_delivery`],
    /// were delivered) in this call and owe a report (claimed for the
    /// caller: send the report, then [`Spool::mark_reported`]).
    pub report_due: Vec<usize>,
}

/// Counters of the committer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitStats {
    /// Durable commits made.
    pub commits: u64,
    /// Operations carried by them.
    pub operations: u64,
}

/// What [`Spool::open`] did.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct OpenReport {
    /// Whether the spool was created.
    pub created: bool,
    /// Claims outstanding at open (a crash or stop while in flight) that
    /// were reset to due now.
    pub resumed: u64,
    /// Time spent opening the engine.
    pub open_engine: Duration,
    /// Time spent resetting outstanding claims.
    pub resume: Duration,
}

// ===== Pending =====

enum Output {
    Unit,
    Enqueued(Enqueued),
    Claim(Option<Claim>),
    Recorded(Option<Recorded>),
    Changed(bool),
    Count(u64),
}

type Reply = oneshot::Sender<Result<Output, SpoolError>>;

/// A submitted write: await it, or [`Pending::wait`] outside async code.
/// Resolves only when the write is durable (or failed).
#[must_use = "a spool write is only known durable when its Pending resolves"]
pub struct Pending<T> {
    rx: Result<oneshot::Receiver<Result<Output, SpoolError>>, Option<SpoolError>>,
    map: fn(Output) -> T,
}

impl<T> Pending<T> {
    fn new(rx: oneshot::Receiver<Result<Output, SpoolError>>, map: fn(Output) -> T) -> Self {
        Self { rx: Ok(rx), map }
    }

    fn failed(e: SpoolError, map: fn(Output) -> T) -> Self {
        Self {
            rx: Err(Some(e)),
            map,
        }
    }

    /// Blocks the thread until the write is durable. Do not call it on an
    /// async runtime thread; `.await` the `Pending` there.
    pub fn wait(self) -> Result<T, SpoolError> {
        match self.rx {
            Ok(rx) => rx
                .blocking_recv()
                .map_err(|_| SpoolError::Closed)?
                .map(self.map),
            Err(e) => Err(e.unwrap_or(SpoolError::Closed)),
        }
    }
}

impl<T> Future for Pending<T> {
    type Output = Result<T, SpoolError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        match &mut this.rx {
            Ok(rx) => match Pin::new(rx).poll(cx) {
                Poll::Ready(Ok(r)) => Poll::Ready(r.map(this.map)),
                Poll::Ready(Err(_)) => Poll::Ready(Err(SpoolError::Closed)),
                Poll::Pending => Poll::Pending,
            },
            Err(e) => Poll::Ready(Err(e.take().unwrap_or(SpoolError::Closed))),
        }
    }
}

fn unit(_: Output) {}
fn enqueued(o: Output) -> Enqueued {
    match o {
        Output::Enqueued(e) => e,
        _ => unreachable!("enqueue yields Enqueued"),
    }
}
fn claim(o: Output) -> Option<Claim> {
    match o {
        Output::Claim(c) => c,
        _ => unreachable!("claim yields Claim"),
    }
}
fn recorded(o: Output) -> Option<Recorded> {
    match o {
        Output::Recorded(r) => r,
        _ => unreachable!("record yields Recorded"),
    }
}
fn changed(o: Output) -> bool {
    match o {
        Output::Changed(c) => c,
        _ => unreachable!("yields Changed"),
    }
}
fn count(o: Output) -> u64 {
    match o {
        Output::Count(c) => c,
        Output::Changed(c) => u64::from(c),
        _ => unreachable!("yields Count"),
    }
}

// ===== Operations =====

#[derive(Clone)]
struct Ctx<'a> {
    now_ms: u64,
    retry: &'a RetryPolicy,
    dedup_window_ms: u64,
    hold: &'a HoldPolicy,
    /// The last arrival sequence handed out (see [`Envelope::arrival`]).
    arrival: &'a std::cell::Cell<u64>,
    /// Held usage of the endpoints of the envelope being changed, before
    /// the change (filled for mutations that may hold a recipient).
    usage: HashMap<String, HeldUsage>,
}

impl Ctx<'_> {
    /// The next arrival sequence: now in microseconds, or just past the
    /// last one handed out.
    fn next_arrival(&self) -> u64 {
        let next = self
            .now_ms
            .saturating_mul(1000)
            .max(self.arrival.get().saturating_add(1));
        self.arrival.set(next);
        next
    }
}

type MutateFn = Box<dyn FnOnce(&mut Envelope, &Ctx<'_>) -> Output + Send>;

enum Op {
    Enqueue(NewDatagram),
    /// Change an envelope; `None` output if it does not exist.
    Mutate {
        id: DatagramId,
        f: MutateFn,
        missing: fn() -> Output,
        /// Whether `f` needs the held usage of the envelope's endpoints.
        usage: bool,
    },
    Delete(DatagramId),
    Quarantine {
        tree: Tree,
        key: Vec<u8>,
        reason: String,
    },
    Import {
        envelope: Box<Envelope>,
        content: Vec<u8>,
    },
    PruneDedup,
    Repair(Fix),
    /// Restore a dedup or quarantine entry from a dump (kept if present).
    Restore {
        tree: Tree,
        key: Vec<u8>,
        value: Vec<u8>,
    },
}

/// A repair found by `check`, re-validated by the committer before it is
/// applied (the relay may have changed things since).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "fix")]
pub enum Fix {
    /// Rewrite the index entries of an envelope.
    Reindex {
        /// The datagram.
        id: DatagramId,
    },
    /// Delete an index entry that matches no envelope.
    DropStaleIndex {
        /// The index tree.
        tree: Tree,
        /// The key, hex.
        key: String,
    },
    /// Quarantine a record (undecodable envelope, envelope without content,
    /// content without envelope).
    Quarantine {
        /// The tree.
        tree: Tree,
        /// The key, hex.
        key: String,
        /// Why.
        reason: String,
    },
}

struct Job {
    op: Op,
    reply: Option<Reply>,
}

// ===== The overlay view used by the committer =====

struct View<'e> {
    engine: &'e dyn Engine,
    batch: HashMap<(Tree, Vec<u8>), Option<Vec<u8>>>,
    op: HashMap<(Tree, Vec<u8>), Option<Vec<u8>>>,
}

impl<'e> View<'e> {
    /// What the held index (with this batch's changes) holds for `endpoint`.
    fn held_usage(&self, endpoint: &str) -> Result<HeldUsage, SpoolError> {
        let prefix = keys::held_prefix(endpoint);
        let mut present = std::collections::BTreeSet::new();
        self.engine.scan_prefix(Tree::Held, &prefix, &mut |k, _| {
            present.insert(k.to_vec());
            ControlFlow::Continue(())
        })?;
        for layer in [&self.batch, &self.op] {
            for ((tree, key), value) in layer {
                if *tree == Tree::Held && key.starts_with(&prefix) {
                    if value.is_some() {
                        present.insert(key.clone());
                    } else {
                        present.remove(key);
                    }
                }
            }
        }
        let mut usage = HeldUsage::default();
        for key in &present {
            if let Some(held) = keys::parse_held_key(key) {
                usage.count += 1;
                usage.bytes = usage.bytes.saturating_add(held.size);
            }
        }
        Ok(usage)
    }

    fn new(engine: &'e dyn Engine) -> Self {
        Self {
            engine,
            batch: HashMap::new(),
            op: HashMap::new(),
        }
    }

    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, SpoolError> {
        let k = (tree, key.to_vec());
        if let Some(v) = self.op.get(&k) {
            return Ok(v.clone());
        }
        if let Some(v) = self.batch.get(&k) {
            return Ok(v.clone());
        }
        Ok(self.engine.get(tree, key)?)
    }

    fn put(&mut self, tree: Tree, key: Vec<u8>, value: Vec<u8>) {
        self.op.insert((tree, key), Some(value));
    }

    fn delete(&mut self, tree: Tree, key: Vec<u8>) {
        self.op.insert((tree, key), None);
    }

    fn finish_op(&mut self, keep: bool) {
        if keep {
            self.batch.extend(self.op.drain());
        } else {
            self.op.clear();
        }
    }

    fn into_batch(self) -> Batch {
        let mut b = Batch::new();
        for ((tree, key), v) in self.batch {
            match v {
                Some(v) => b.put(tree, key, v),
                None => b.delete(tree, key),
            }
        }
        b
    }
}

/// The index entries an envelope must have.
#[derive(Default, PartialEq, Eq, Debug)]
pub(crate) struct IndexKeys {
    pub(crate) due: Option<Vec<u8>>,
    pub(crate) held: Vec<Vec<u8>>,
    pub(crate) inflight: bool,
}

pub(crate) fn index_keys(env: &Envelope) -> IndexKeys {
    if env.is_complete() {
        return IndexKeys::default();
    }
    IndexKeys {
        due: env.due_ms().map(|d| keys::due(d, &env.id)),
        held: env
            .held_endpoints()
            .into_iter()
            .map(|e| keys::held(e, env.arrival_order(), env.size, &env.id))
            .collect(),
        inflight: env.has_claim(),
    }
}

/// Writes `new` (or removes the datagram when `new` is `None` or complete)
/// with the index changes from `old`.
fn write_envelope(
    view: &mut View<'_>,
    id: &DatagramId,
    old: Option<&Envelope>,
    new: Option<&Envelope>,
) -> Result<bool, SpoolError> {
    let old_keys = old.map(index_keys).unwrap_or_default();
    let removed = new.is_none_or(Envelope::is_complete);
    let new_keys = match new {
        Some(n) if !removed => index_keys(n),
        _ => IndexKeys::default(),
    };
    if old_keys.due != new_keys.due {
        if let Some(k) = old_keys.due {
            view.delete(Tree::Due, k);
        }
        if let Some(k) = new_keys.due {
            view.put(Tree::Due, k, Vec::new());
        }
    }
    for k in &old_keys.held {
        if !new_keys.held.contains(k) {
            view.delete(Tree::Held, k.clone());
        }
    }
    for k in &new_keys.held {
        if !old_keys.held.contains(k) {
            view.put(Tree::Held, k.clone(), Vec::new());
        }
    }
    if old_keys.inflight != new_keys.inflight {
        if new_keys.inflight {
            view.put(Tree::Inflight, id.as_bytes().to_vec(), Vec::new());
        } else {
            view.delete(Tree::Inflight, id.as_bytes().to_vec());
        }
    }
    match new {
        Some(n) if !removed => {
            view.put(Tree::Envelopes, id.as_bytes().to_vec(), encode_envelope(n)?);
        }
        _ => {
            view.delete(Tree::Envelopes, id.as_bytes().to_vec());
            view.delete(Tree::Content, id.as_bytes().to_vec());
        }
    }
    Ok(removed)
}

fn validate_endpoint(e: &str) -> Result<(), SpoolError> {
    if e.is_empty() || e.as_bytes().contains(&0) {
        return Err(SpoolError::Invalid(format!("bad endpoint {e:?}")));
    }
    Ok(())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

/// Why holding one more datagram of `size` bytes for `endpoint` (which has
/// `usage` held) would break the hold limits, if it would.
fn hold_refusal(
    policy: &HoldPolicy,
    endpoint: &str,
    usage: HeldUsage,
    size: u64,
) -> Option<Failure> {
    if let Some(max) = policy.max_per_endpoint
        && usage.count >= max
    {
        return Some(Failure::new(
            FailureKind::Policy,
            format!("hold limit reached: {max} datagram(s) already held for {endpoint}"),
        ));
    }
    if let Some(max) = policy.max_bytes_per_endpoint
        && usage.bytes.saturating_add(size) > max
    {
        return Some(Failure::new(
            FailureKind::Policy,
            format!(
                "hold limit reached: {} byte(s) held for {endpoint}, {size} more would pass the limit of {max}",
                usage.bytes
            ),
        ));
    }
    None
}

/// Marks a recipient failed, with a report owed if the originator wants one.
fn fail(r: &mut Recipient, options: &QueueOptions, now: u64, error: Failure) {
    r.last_error = Some(error.clone());
    r.state = RecipientState::Failed { at_ms: now, error };
    r.report = if options.wants_failure_report() {
        ReportState::Owed
    } else {
        ReportState::None
    };
}

/// Moves every owed report to claimed; returns their indexes.
fn claim_reports(env: &mut Envelope, now: u64) -> Vec<usize> {
    let mut out = Vec::new();
    for (i, r) in env.recipients.iter_mut().enumerate() {
        if r.report == ReportState::Owed {
            r.report = ReportState::Claimed { since_ms: now };
            out.push(i);
        }
    }
    out
}

fn apply(view: &mut View<'_>, op: Op, ctx: &Ctx<'_>) -> Result<Output, SpoolError> {
    match op {
        Op::Enqueue(d) => enqueue_op(view, d, ctx),
        Op::Mutate {
            id,
            f,
            missing,
            usage,
        } => {
            let Some(old) = load(view, &id)? else {
                return Ok(missing());
            };
            let mut new = old.clone();
            let out = if usage {
                let mut ctx = ctx.clone();
                for r in &old.recipients {
                    if !ctx.usage.contains_key(&r.endpoint) {
                        let held = view.held_usage(&r.endpoint)?;
                        ctx.usage.insert(r.endpoint.clone(), held);
                    }
                }
                f(&mut new, &ctx)
            } else {
                f(&mut new, ctx)
            };
            if new != old {
                write_envelope(view, &id, Some(&old), Some(&new))?;
            }
            Ok(out)
        }
        Op::Delete(id) => {
            let Some(old) = load(view, &id)? else {
                return Ok(Output::Changed(false));
            };
            write_envelope(view, &id, Some(&old), None)?;
            Ok(Output::Changed(true))
        }
        Op::Quarantine { tree, key, reason } => {
            quarantine_op(view, tree, &key, &reason, ctx.now_ms)?;
            Ok(Output::Unit)
        }
        Op::Import { envelope, content } => {
            let mut env = *envelope;
            let id = env.id;
            if view.get(Tree::Envelopes, id.as_bytes())?.is_some() {
                return Ok(Output::Changed(false));
            }
            for r in &mut env.recipients {
                validate_endpoint(&r.endpoint)?;
                if let RecipientState::InFlight { .. } = r.state {
                    r.state = RecipientState::Queued { due_ms: ctx.now_ms };
                }
                if let ReportState::Claimed { .. } = r.report {
                    r.report = ReportState::Owed;
                }
            }
            env.size = content.len() as u64;
            if !env.is_complete() {
                view.put(Tree::Content, id.as_bytes().to_vec(), content);
            }
            write_envelope(view, &id, None, Some(&env))?;
            remember(view, &id, ctx.now_ms)?;
            Ok(Output::Changed(true))
        }
        Op::PruneDedup => {
            let cutoff = ctx.now_ms.saturating_sub(ctx.dedup_window_ms);
            let mut expired = Vec::new();
            view.engine.scan(
                Tree::Dedup,
                Bound::Included(&[keys::DEDUP_BY_TIME][..]),
                Bound::Excluded(&keys::dedup_time(cutoff, &DatagramId::from_bytes([0; 16]))),
                &mut |k, _| {
                    if let Some(x) = keys::parse_dedup_time(k) {
                        expired.push(x);
                    }
                    ControlFlow::Continue(())
                },
            )?;
            let n = expired.len() as u64;
            for (seen, id) in expired {
                view.delete(Tree::Dedup, keys::dedup_time(seen, &id));
                let by_id = keys::dedup_id(&id);
                if view.get(Tree::Dedup, &by_id)?.as_deref() == Some(&seen.to_be_bytes()[..]) {
                    view.delete(Tree::Dedup, by_id);
                }
            }
            Ok(Output::Count(n))
        }
        Op::Repair(fix) => repair_op(view, fix, ctx),
        Op::Restore { tree, key, value } => {
            if view.get(tree, &key)?.is_some() {
                return Ok(Output::Changed(false));
            }
            match tree {
                Tree::Quarantine => view.put(tree, key, value),
                Tree::Dedup => {
                    let id = DatagramId::from_slice(&key)
                        .ok_or_else(|| SpoolError::Invalid("bad dedup id".into()))?;
                    let seen = <[u8; 8]>::try_from(value.as_slice())
                        .map(u64::from_be_bytes)
                        .map_err(|_| SpoolError::Invalid("bad dedup time".into()))?;
                    if view.get(Tree::Dedup, &keys::dedup_id(&id))?.is_some() {
                        return Ok(Output::Changed(false));
                    }
                    view.put(Tree::Dedup, keys::dedup_id(&id), value);
                    view.put(Tree::Dedup, keys::dedup_time(seen, &id), Vec::new());
                }
                _ => return Err(SpoolError::Invalid(format!("cannot restore into {tree}"))),
            }
            Ok(Output::Changed(true))
        }
    }
}

fn remember(view: &mut View<'_>, id: &DatagramId, now: u64) -> Result<(), SpoolError> {
    let by_id = keys::dedup_id(id);
    if let Some(old) = view.get(Tree::Dedup, &by_id)?
        && let Ok(b) = <[u8; 8]>::try_from(old.as_slice())
    {
        view.delete(Tree::Dedup, keys::dedup_time(u64::from_be_bytes(b), id));
    }
    view.put(Tree::Dedup, by_id, now.to_be_bytes().to_vec());
    view.put(Tree::Dedup, keys::dedup_time(now, id), Vec::new());
    Ok(())
}

fn enqueue_op(view: &mut View<'_>, d: NewDatagram, ctx: &Ctx<'_>) -> Result<Output, SpoolError> {
    if d.recipients.is_empty() {
        return Err(SpoolError::Invalid("a datagram needs a recipient".into()));
    }
    for r in &d.recipients {
        validate_endpoint(r)?;
    }
    let now = ctx.now_ms;
    let derived = d.id_origin == IdOrigin::Derived;
    if derived
        && let Some(seen) = view.get(Tree::Dedup, &keys::dedup_id(&d.id))?
        && let Ok(b) = <[u8; 8]>::try_from(seen.as_slice())
        && u64::from_be_bytes(b).saturating_add(ctx.dedup_window_ms) > now
    {
        return Ok(Output::Enqueued(Enqueued::Duplicate(d.id)));
    }
    if view.get(Tree::Envelopes, d.id.as_bytes())?.is_some() {
        return Ok(Output::Enqueued(Enqueued::Duplicate(d.id)));
    }
    let env = Envelope {
        id: d.id,
        originator: d.originator,
        recipients: d
            .recipients
            .into_iter()
            .map(|endpoint| Recipient {
                endpoint,
                state: RecipientState::Queued { due_ms: now },
                attempts: 0,
                last_error: None,
                report: ReportState::None,
            })
            .collect(),
        expires_ms: ctx.retry.deadline(now, d.options.deadline_ms),
        options: d.options,
        queued_ms: now,
        size: d.content.len() as u64,
        admin_hold: false,
        arrival: ctx.next_arrival(),
    };
    view.put(Tree::Content, d.id.as_bytes().to_vec(), d.content);
    write_envelope(view, &d.id, None, Some(&env))?;
    if derived {
        remember(view, &d.id, now)?;
    }
    Ok(Output::Enqueued(Enqueued::Queued(d.id)))
}

/// Loads an envelope through the view; an undecodable one is quarantined in
/// this batch and reported as [`SpoolError::Corrupt`].
fn load(view: &mut View<'_>, id: &DatagramId) -> Result<Option<Envelope>, SpoolError> {
    let Some(bytes) = view.get(Tree::Envelopes, id.as_bytes())? else {
        return Ok(None);
    };
    match decode_envelope(&bytes) {
        Ok(env) => Ok(Some(env)),
        Err(e) => {
            let reason = e.to_string();
            Err(SpoolError::Corrupt { id: *id, reason })
        }
    }
}

fn quarantine_op(
    view: &mut View<'_>,
    tree: Tree,
    key: &[u8],
    reason: &str,
    now: u64,
) -> Result<(), SpoolError> {
    let Some(value) = view.get(tree, key)? else {
        return Ok(());
    };
    let entry = QuarantineEntry {
        tree,
        key: key.to_vec(),
        value,
        reason: reason.to_owned(),
        at_ms: now,
    };
    view.put(
        Tree::Quarantine,
        keys::quarantine(now, tree, key),
        encode_quarantine(&entry)?,
    );
    view.delete(tree, key.to_vec());
    if tree == Tree::Envelopes
        && let Some(id) = DatagramId::from_slice(key)
    {
        // Its index entries cannot be derived from an unreadable envelope:
        // find them by id (rare, so a scan is fine).
        for t in [Tree::Due, Tree::Held] {
            let mut stale = Vec::new();
            view.engine
                .scan(t, Bound::Unbounded, Bound::Unbounded, &mut |k, _| {
                    if k.ends_with(id.as_bytes()) {
                        stale.push(k.to_vec());
                    }
                    ControlFlow::Continue(())
                })?;
            for k in stale {
                view.delete(t, k);
            }
        }
        view.delete(Tree::Inflight, key.to_vec());
        // Its content goes along, so nothing is left orphaned.
        if let Some(content) = view.get(Tree::Content, key)? {
            let entry = QuarantineEntry {
                tree: Tree::Content,
                key: key.to_vec(),
                value: content,
                reason: format!("content of a quarantined envelope ({reason})"),
                at_ms: now,
            };
            view.put(
                Tree::Quarantine,
                keys::quarantine(now, Tree::Content, key),
                encode_quarantine(&entry)?,
            );
            view.delete(Tree::Content, key.to_vec());
        }
    }
    Ok(())
}

fn repair_op(view: &mut View<'_>, fix: Fix, ctx: &Ctx<'_>) -> Result<Output, SpoolError> {
    match fix {
        Fix::Reindex { id } => {
            let Some(env) = load(view, &id)? else {
                return Ok(Output::Changed(false));
            };
            let want = index_keys(&env);
            let mut changed = false;
            if let Some(k) = want.due
                && view.get(Tree::Due, &k)?.is_none()
            {
                view.put(Tree::Due, k, Vec::new());
                changed = true;
            }
            for k in want.held {
                if view.get(Tree::Held, &k)?.is_none() {
                    view.put(Tree::Held, k, Vec::new());
                    changed = true;
                }
            }
            if want.inflight && view.get(Tree::Inflight, id.as_bytes())?.is_none() {
                view.put(Tree::Inflight, id.as_bytes().to_vec(), Vec::new());
                changed = true;
            }
            Ok(Output::Changed(changed))
        }
        Fix::DropStaleIndex { tree, key } => {
            let key = unhex(&key).ok_or_else(|| SpoolError::Invalid("bad hex key".into()))?;
            let id = match tree {
                Tree::Due => keys::parse_due(&key).map(|(_, id)| id),
                Tree::Held => keys::parse_held(&key).map(|(_, id)| id),
                Tree::Inflight => DatagramId::from_slice(&key),
                _ => return Err(SpoolError::Invalid(format!("{tree} is not an index"))),
            };
            let still_stale = match id {
                None => true,
                Some(id) => match load(view, &id) {
                    Ok(None) => true,
                    Ok(Some(env)) => {
                        let want = index_keys(&env);
                        match tree {
                            Tree::Due => want.due.as_deref() != Some(&key[..]),
                            Tree::Held => !want.held.contains(&key),
                            _ => !want.inflight,
                        }
                    }
                    Err(_) => false,
                },
            };
            if still_stale && view.get(tree, &key)?.is_some() {
                view.delete(tree, key);
                return Ok(Output::Changed(true));
            }
            Ok(Output::Changed(false))
        }
        Fix::Quarantine { tree, key, reason } => {
            let key = unhex(&key).ok_or_else(|| SpoolError::Invalid("bad hex key".into()))?;
            let id = DatagramId::from_slice(&key);
            let still = match (tree, id) {
                (Tree::Envelopes, Some(id)) => match view.get(Tree::Envelopes, id.as_bytes())? {
                    None => false,
                    Some(bytes) => {
                        decode_envelope(&bytes).is_err()
                            || view.get(Tree::Content, id.as_bytes())?.is_none()
                    }
                },
                (Tree::Content, Some(id)) => view.get(Tree::Envelopes, id.as_bytes())?.is_none(),
                _ => true,
            };
            if still {
                quarantine_op(view, tree, &key, &reason, ctx.now_ms)?;
            }
            Ok(Output::Changed(still))
        }
    }
}

// ===== Lock file =====

struct LockFile {
    _file: File,
}

impl LockFile {
    fn acquire(dir: &Path) -> Result<Self, SpoolError> {
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| SpoolError::io(&path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(SpoolError::Locked {
                    path,
                    holder: (!holder.is_empty()).then(|| holder.to_owned()),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(SpoolError::io(&path, e)),
        }
        file.set_len(0).map_err(|e| SpoolError::io(&path, e))?;
        writeln!(file, "{}", std::process::id()).map_err(|e| SpoolError::io(&path, e))?;
        Ok(Self { _file: file })
    }
}

/// The lock file's name in the spool directory. Whoever holds an exclusive
/// lock on it (`flock(2)`, released by the kernel when the process dies) owns
/// the spool; it contains the owner's pid.
pub const LOCK_FILE: &str = "lock";

/// Whether another process holds the lock of the spool in `dir` (a probe:
/// takes and releases the lock if free).
pub fn is_locked(dir: &Path) -> bool {
    let Ok(file) = OpenOptions::new().read(true).open(dir.join(LOCK_FILE)) else {
        return false;
    };
    matches!(file.try_lock(), Err(std::fs::TryLockError::WouldBlock))
}

// ===== Spool =====

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
        let committer = {
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

    // ===== writes =====

    /// Queues a datagram; resolves when it is durable (or recognized as a
    /// duplicate). All its recipients start queued, due now.
    pub fn enqueue(&self, datagram: NewDatagram) -> Pending<Enqueued> {
        self.submit(Op::Enqueue(datagram), enqueued)
    }

    /// Claims the due work of a datagram: queued and deferred recipients
    /// due by now go in flight; recipients past the deadline fail as
    /// expired; owed reports are handed out. `None` if the datagram does not
    /// exist, is on hold, or nothing of it is due.
    pub fn claim(&self, id: DatagramId) -> Pending<Option<Claim>> {
        self.mutate(
            id,
            claim,
            || Output::Claim(None),
            |env, ctx| Output::Claim(claim_due(env, ctx.now_ms, None)),
        )
    }

    /// Claims the recipients of a datagram held for `endpoint` (it just
    /// attached): they go in flight whatever their due time. Recipients
    /// whose hold has run out are left for [`Spool::claim`], which fails
    /// them as expired and hands out their reports.
    pub fn claim_held(&self, id: DatagramId, endpoint: &str) -> Pending<Option<Claim>> {
        let endpoint = endpoint.to_owned();
        self.mutate(
            id,
            claim,
            || Output::Claim(None),
            move |env, ctx| Output::Claim(claim_due(env, ctx.now_ms, Some(&endpoint))),
        )
    }

    /// Records the outcomes of attempts (recipient index → outcome). A
    /// datagram whose recipients are all final with no report owed is
    /// removed. `None` if the datagram does not exist.
    ///
    /// [`Outcome::Held`] holds the recipient for its endpoint (in arrival
    /// order) until [`Spool::claim_held`], the expiry, or the
    /// [`HoldPolicy::default_ttl_ms`] when the datagram has no deadline. A
    /// hold that would take the endpoint past
    /// [`HoldPolicy::max_per_endpoint`] or
    /// [`HoldPolicy::max_bytes_per_endpoint`] fails the recipient instead
    /// ([`FailureKind::Policy`], report owed if asked).
    pub fn record(
        &self,
        id: DatagramId,
        outcomes: Vec<(usize, Outcome)>,
    ) -> Pending<Option<Recorded>> {
        let usage = outcomes.iter().any(|(_, o)| *o == Outcome::Held);
        let f = move |env: &mut Envelope, ctx: &Ctx<'_>| {
            let sample: f64 = rand::random();
            let mut failed = Vec::new();
            let mut held: HashMap<String, HeldUsage> = HashMap::new();
            for (i, outcome) in outcomes {
                let Some(r) = env.recipients.get_mut(i) else {
                    continue;
                };
                if r.state.is_final() {
                    continue;
                }
                match outcome {
                    Outcome::Delivered { via } => {
                        r.state = RecipientState::Delivered {
                            at_ms: ctx.now_ms,
                            via,
                        };
                        if env.options.report_delivery {
                            r.report = ReportState::Owed;
                            failed.push(i);
                        }
                    }
                    Outcome::Deferred(error) => {
                        let attempt = r.attempts.max(1);
                        match ctx
                            .retry
                            .next_retry(attempt, ctx.now_ms, env.expires_ms, sample)
                        {
                            Retry::At(next_due_ms) => {
                                r.last_error = Some(error.clone());
                                r.state = RecipientState::Deferred {
                                    attempt,
                                    next_due_ms,
                                    last_error: error,
                                };
                            }
                            Retry::GiveUp => {
                                let text = format!(
                                    "deadline reached after {attempt} attempt(s); last error: {error}"
                                );
                                fail(
                                    r,
                                    &env.options,
                                    ctx.now_ms,
                                    Failure::new(FailureKind::Expired, text),
                                );
                                failed.push(i);
                            }
                        }
                    }
                    Outcome::Failed(error) => {
                        fail(r, &env.options, ctx.now_ms, error);
                        failed.push(i);
                    }
                    Outcome::Held => {
                        let usage = held.entry(r.endpoint.clone()).or_insert_with(|| {
                            ctx.usage.get(&r.endpoint).copied().unwrap_or_default()
                        });
                        match hold_refusal(ctx.hold, &r.endpoint, *usage, env.size) {
                            Some(error) => {
                                fail(r, &env.options, ctx.now_ms, error);
                                failed.push(i);
                            }
                            None => {
                                usage.count += 1;
                                usage.bytes = usage.bytes.saturating_add(env.size);
                                let until_ms = match env.options.deadline_ms {
                                    Some(_) => None,
                                    None => ctx
                                        .hold
                                        .default_ttl_ms
                                        .map(|ttl| ctx.now_ms.saturating_add(ttl)),
                                };
                                r.state = RecipientState::Held {
                                    since_ms: ctx.now_ms,
                                    until_ms,
                                };
                            }
                        }
                    }
                    Outcome::NotAttempted => {
                        r.attempts = r.attempts.saturating_sub(1);
                        r.state = RecipientState::Queued { due_ms: ctx.now_ms };
                    }
                }
            }
            let mut report_due = Vec::new();
            for i in failed {
                if env.recipients[i].report == ReportState::Owed {
                    env.recipients[i].report = ReportState::Claimed {
                        since_ms: ctx.now_ms,
                    };
                    report_due.push(i);
                }
            }
            Output::Recorded(Some(Recorded {
                removed: env.is_complete(),
                envelope: env.clone(),
                report_due,
            }))
        };
        self.submit(
            Op::Mutate {
                id,
                f: Box::new(f),
                missing: || Output::Recorded(None),
                usage,
            },
            recorded,
        )
    }

    /// What is held for `endpoint`: datagrams and content bytes (a prefix
    /// scan of the held index, which carries each datagram's size).
    pub fn held_usage(&self, endpoint: &str) -> Result<HeldUsage, SpoolError> {
        let mut usage = HeldUsage::default();
        self.inner
            .engine
            .scan_prefix(Tree::Held, &keys::held_prefix(endpoint), &mut |k, _| {
                if let Some(held) = keys::parse_held_key(k) {
                    usage.count += 1;
                    usage.bytes = usage.bytes.saturating_add(held.size);
                }
                ControlFlow::Continue(())
            })?;
        Ok(usage)
    }

    /// Confirms that the reports of these recipients are queued; the
    /// datagram is removed if nothing else remains. Resolves `false` if it
    /// does not exist.
    pub fn mark_reported(&self, id: DatagramId, recipients: Vec<usize>) -> Pending<bool> {
        self.mutate(
            id,
            changed,
            || Output::Changed(false),
            move |env, _| {
                for i in recipients {
                    if let Some(r) = env.recipients.get_mut(i)
                        && matches!(r.report, ReportState::Owed | ReportState::Claimed { .. })
                    {
                        r.report = ReportState::Sent;
                    }
                }
                Output::Changed(true)
            },
        )
    }

    /// Puts a datagram on hold (operator): it is not scheduled until
    /// released. Resolves whether anything changed.
    pub fn hold(&self, id: DatagramId) -> Pending<bool> {
        self.mutate(
            id,
            changed,
            || Output::Changed(false),
            |env, _| {
                let was = env.admin_hold;
                env.admin_hold = true;
                Output::Changed(!was)
            },
        )
    }

    /// Releases an operator hold. Resolves whether anything changed.
    pub fn release(&self, id: DatagramId) -> Pending<bool> {
        self.mutate(
            id,
            changed,
            || Output::Changed(false),
            |env, _| {
                let was = env.admin_hold;
                env.admin_hold = false;
                Output::Changed(was)
            },
        )
    }

    /// Makes every waiting recipient (queued, deferred, or held for an
    /// endpoint) due now. Resolves whether anything changed.
    pub fn requeue(&self, id: DatagramId) -> Pending<bool> {
        self.mutate(
            id,
            changed,
            || Output::Changed(false),
            |env, ctx| {
                let mut any = false;
                for r in &mut env.recipients {
                    match r.state {
                        RecipientState::Queued { due_ms } if due_ms <= ctx.now_ms => {}
                        RecipientState::Queued { .. }
                        | RecipientState::Deferred { .. }
                        | RecipientState::Held { .. } => {
                            r.state = RecipientState::Queued { due_ms: ctx.now_ms };
                            any = true;
                        }
                        _ => {}
                    }
                }
                Output::Changed(any)
            },
        )
    }

    /// Makes the deferred recipients of a datagram due now (the per-datagram
    /// step of [`Spool::flush`]). Resolves whether anything changed.
    pub fn flush_one(&self, id: DatagramId) -> Pending<bool> {
        self.mutate(
            id,
            changed,
            || Output::Changed(false),
            |env, ctx| {
                let mut any = false;
                for r in &mut env.recipients {
                    if let RecipientState::Deferred { next_due_ms, .. } = r.state
                        && next_due_ms > ctx.now_ms
                    {
                        r.state = RecipientState::Queued { due_ms: ctx.now_ms };
                        any = true;
                    }
                }
                Output::Changed(any)
            },
        )
    }

    /// Makes every deferred recipient in the spool due now (`postqueue -f`).
    /// Returns how many datagrams changed.
    pub async fn flush(&self) -> Result<u64, SpoolError> {
        let ids = self.due_ids(u64::MAX, usize::MAX)?;
        let pending: Vec<_> = ids.into_iter().map(|(_, id)| self.flush_one(id)).collect();
        let mut n = 0;
        for p in pending {
            if p.await? {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Deletes a datagram (envelope, content, indexes; its dedup entry stays).
    /// Resolves whether it existed.
    pub fn delete(&self, id: DatagramId) -> Pending<bool> {
        self.submit(Op::Delete(id), changed)
    }

    /// Inserts a datagram from a dump as it was (claims reset); skipped
    /// (resolves `false`) if the id exists.
    pub fn import(&self, envelope: Envelope, content: Vec<u8>) -> Pending<bool> {
        self.submit(
            Op::Import {
                envelope: Box::new(envelope),
                content,
            },
            changed,
        )
    }

    /// Restores a quarantine entry (raw key and value) from a dump; kept
    /// as is if the key exists.
    pub fn restore_quarantine(&self, key: Vec<u8>, value: Vec<u8>) -> Pending<bool> {
        self.submit(
            Op::Restore {
                tree: Tree::Quarantine,
                key,
                value,
            },
            changed,
        )
    }

    /// Restores a dedup entry (id seen at `seen_ms`) from a dump.
    pub fn restore_dedup(&self, id: DatagramId, seen_ms: u64) -> Pending<bool> {
        self.submit(
            Op::Restore {
                tree: Tree::Dedup,
                key: id.as_bytes().to_vec(),
                value: seen_ms.to_be_bytes().to_vec(),
            },
            changed,
        )
    }

    /// The dedup entries: `(id, seen_ms)`, in id order.
    pub fn dedup_entries(&self) -> Result<Vec<(DatagramId, u64)>, SpoolError> {
        let mut out = Vec::new();
        self.inner
            .engine
            .scan_prefix(Tree::Dedup, &[keys::DEDUP_BY_ID], &mut |k, v| {
                if let (Some(id), Ok(b)) = (DatagramId::from_slice(&k[1..]), <[u8; 8]>::try_from(v))
                {
                    out.push((id, u64::from_be_bytes(b)));
                }
                ControlFlow::Continue(())
            })?;
        Ok(out)
    }

    /// Raw quarantine entries: `(key, value)` as stored.
    pub fn quarantine_raw(&self) -> Result<Vec<RawEntry>, SpoolError> {
        let mut out = Vec::new();
        self.inner.engine.scan(
            Tree::Quarantine,
            Bound::Unbounded,
            Bound::Unbounded,
            &mut |k, v| {
                out.push((k.to_vec(), v.to_vec()));
                ControlFlow::Continue(())
            },
        )?;
        Ok(out)
    }

    /// Forgets dedup entries older than the window. Resolves how many.
    pub fn prune_dedup(&self) -> Pending<u64> {
        self.submit(Op::PruneDedup, count)
    }

    /// Applies a repair found by [`Spool::check`], re-validated first.
    pub fn repair(&self, fix: Fix) -> Pending<bool> {
        self.submit(Op::Repair(fix), changed)
    }

    /// Moves a record to quarantine (waits for the commit).
    pub fn quarantine(&self, tree: Tree, key: Vec<u8>, reason: String) -> Pending<()> {
        self.submit(Op::Quarantine { tree, key, reason }, unit)
    }

    // ===== reads =====

    /// Decodes a stored envelope; an undecodable one is sent to quarantine
    /// (asynchronously) and reported as [`SpoolError::Corrupt`].
    fn decode_or_quarantine(&self, key: &[u8], bytes: &[u8]) -> Result<Envelope, SpoolError> {
        decode_envelope(bytes).map_err(|e| {
            let reason = e.to_string();
            tracing::warn!(key = %hex(key), %reason, "quarantining undecodable envelope");
            self.submit_detached(Op::Quarantine {
                tree: Tree::Envelopes,
                key: key.to_vec(),
                reason: reason.clone(),
            });
            SpoolError::Corrupt {
                id: DatagramId::from_slice(key).unwrap_or(DatagramId::from_bytes([0; 16])),
                reason,
            }
        })
    }

    /// The envelope of a datagram.
    pub fn get(&self, id: DatagramId) -> Result<Option<Envelope>, SpoolError> {
        match self.inner.engine.get(Tree::Envelopes, id.as_bytes())? {
            None => Ok(None),
            Some(b) => self.decode_or_quarantine(id.as_bytes(), &b).map(Some),
        }
    }

    /// The content bytes of a datagram.
    pub fn content(&self, id: DatagramId) -> Result<Option<Vec<u8>>, SpoolError> {
        Ok(self.inner.engine.get(Tree::Content, id.as_bytes())?)
    }

    /// The work list: up to `limit` entries of the due index with due time
    /// ≤ `up_to_ms`, earliest first.
    pub fn due_ids(
        &self,
        up_to_ms: u64,
        limit: usize,
    ) -> Result<Vec<(u64, DatagramId)>, SpoolError> {
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        let hi = keys::due(up_to_ms, &DatagramId::from_bytes([0xff; 16]));
        self.inner.engine.scan(
            Tree::Due,
            Bound::Unbounded,
            Bound::Included(&hi),
            &mut |k, _| {
                if let Some(x) = keys::parse_due(k) {
                    out.push(x);
                }
                if out.len() >= limit {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            },
        )?;
        Ok(out)
    }

    /// The work due now (see [`Spool::due_ids`]).
    pub fn due_now(&self, limit: usize) -> Result<Vec<(u64, DatagramId)>, SpoolError> {
        self.due_ids(self.now_ms(), limit)
    }

    /// The earliest due time in the spool, for the scheduler's sleep.
    pub fn next_due(&self) -> Result<Option<u64>, SpoolError> {
        Ok(self.due_ids(u64::MAX, 1)?.first().map(|(d, _)| *d))
    }

    /// Datagrams with recipients held for `endpoint` (prefix scan of the
    /// held index; the endpoint must match exactly).
    pub fn held_for(&self, endpoint: &str) -> Result<Vec<DatagramId>, SpoolError> {
        let mut out = Vec::new();
        self.inner
            .engine
            .scan_prefix(Tree::Held, &keys::held_prefix(endpoint), &mut |k, _| {
                if let Some((_, id)) = keys::parse_held(k) {
                    out.push(id);
                }
                ControlFlow::Continue(())
            })?;
        Ok(out)
    }

    /// Visits every envelope in id order (never loads content). Undecodable
    /// envelopes are quarantined and skipped; returns how many were.
    pub fn for_each(
        &self,
        mut visit: impl FnMut(Envelope) -> ControlFlow<()>,
    ) -> Result<u64, SpoolError> {
        let mut bad = 0;
        self.inner.engine.scan(
            Tree::Envelopes,
            Bound::Unbounded,
            Bound::Unbounded,
            &mut |k, v| match self.decode_or_quarantine(k, v) {
                Ok(env) => visit(env),
                Err(_) => {
                    bad += 1;
                    ControlFlow::Continue(())
                }
            },
        )?;
        Ok(bad)
    }

    /// Number of datagrams.
    pub fn len(&self) -> Result<u64, SpoolError> {
        Ok(self.inner.engine.len(Tree::Envelopes)?)
    }

    /// Whether the spool holds no datagram.
    pub fn is_empty(&self) -> Result<bool, SpoolError> {
        Ok(self.len()? == 0)
    }

    /// The quarantine: `(key, entry)` pairs (key hex), oldest first. An entry
    /// that itself cannot be decoded is shown with its raw bytes.
    pub fn quarantined(&self) -> Result<Vec<(String, QuarantineEntry)>, SpoolError> {
        let mut out = Vec::new();
        self.inner.engine.scan(
            Tree::Quarantine,
            Bound::Unbounded,
            Bound::Unbounded,
            &mut |k, v| {
                let entry = decode_quarantine(v).unwrap_or_else(|e| QuarantineEntry {
                    tree: Tree::Quarantine,
                    key: k.to_vec(),
                    value: v.to_vec(),
                    reason: format!("undecodable quarantine entry: {e}"),
                    at_ms: 0,
                });
                out.push((hex(k), entry));
                ControlFlow::Continue(())
            },
        )?;
        Ok(out)
    }

    /// Number of quarantined records.
    pub fn quarantine_len(&self) -> Result<u64, SpoolError> {
        Ok(self.inner.engine.len(Tree::Quarantine)?)
    }

    /// Number of dedup entries (ids remembered).
    pub fn dedup_len(&self) -> Result<u64, SpoolError> {
        let mut n = 0;
        self.inner
            .engine
            .scan_prefix(Tree::Dedup, &[keys::DEDUP_BY_ID], &mut |_, _| {
                n += 1;
                ControlFlow::Continue(())
            })?;
        Ok(n)
    }

    /// Whether a datagram id was seen within the dedup window.
    pub fn seen(&self, id: DatagramId) -> Result<bool, SpoolError> {
        Ok(self
            .inner
            .engine
            .get(Tree::Dedup, &keys::dedup_id(&id))?
            .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
            .is_some_and(|b| {
                u64::from_be_bytes(b).saturating_add(self.inner.config.dedup_window_ms)
                    > self.now_ms()
            }))
    }

    pub(crate) fn engine(&self) -> &dyn Engine {
        &*self.inner.engine
    }
}

fn claim_due(env: &mut Envelope, now: u64, held_for: Option<&str>) -> Option<Claim> {
    if env.admin_hold {
        return None;
    }
    let mut attempt = Vec::new();
    let mut expired = Vec::new();
    let options = env.options.clone();
    let expires_ms = env.expires_ms;
    let held_deadline = |until_ms: Option<u64>| until_ms.map_or(expires_ms, |u| u.min(expires_ms));
    for (i, r) in env.recipients.iter_mut().enumerate() {
        if let Some(endpoint) = held_for {
            // Only the endpoint's held recipients, and only while their hold
            // lasts: expiry and reports stay with the scheduler's claims.
            if let RecipientState::Held { until_ms, .. } = r.state
                && r.endpoint == endpoint
                && now < held_deadline(until_ms)
            {
                r.state = RecipientState::InFlight { since_ms: now };
                r.attempts += 1;
                attempt.push(i);
            }
            continue;
        }
        if let RecipientState::Held { until_ms, .. } = r.state {
            if now >= held_deadline(until_ms) {
                let text = if now >= expires_ms {
                    "deadline reached while held for the endpoint"
                } else {
                    "hold time limit reached while held for the endpoint"
                };
                fail(r, &options, now, Failure::new(FailureKind::Expired, text));
                expired.push(i);
            }
            continue;
        }
        let due = match r.state {
            RecipientState::Queued { due_ms } => Some(due_ms),
            RecipientState::Deferred { next_due_ms, .. } => Some(next_due_ms),
            _ => None,
        };
        let Some(due) = due else { continue };
        if now >= expires_ms {
            let text = match &r.last_error {
                Some(e) => format!("deadline reached; last error: {e}"),
                None => "deadline reached".to_owned(),
            };
            fail(r, &options, now, Failure::new(FailureKind::Expired, text));
            expired.push(i);
        } else if due <= now {
            r.state = RecipientState::InFlight { since_ms: now };
            r.attempts += 1;
            attempt.push(i);
        }
    }
    let report_due = if held_for.is_some() {
        Vec::new()
    } else {
        claim_reports(env, now)
    };
    let mut transient_due = Vec::new();
    if held_for.is_none()
        && let Some(at) = env.options.report_after_ms
        && at <= now
    {
        env.options.report_after_ms = None;
        transient_due = env
            .recipients
            .iter()
            .enumerate()
            .filter(|(_, r)| {
                // Recipients attempted now get theirs from delivery.
                matches!(
                    r.state,
                    RecipientState::Queued { .. }
                        | RecipientState::Deferred { .. }
                        | RecipientState::Held { .. }
                )
            })
            .map(|(i, _)| i)
            .collect();
    }
    if attempt.is_empty() && expired.is_empty() && report_due.is_empty() && transient_due.is_empty()
    {
        return None;
    }
    Some(Claim {
        envelope: env.clone(),
        attempt,
        expired,
        report_due,
        transient_due,
    })
}

#[allow(clippy::too_many_arguments)] // the committer's shared state, spelled out
fn committer_loop(
    engine: &dyn Engine,
    config: &SpoolConfig,
    rx: &mpsc::Receiver<Job>,
    changed: &watch::Sender<u64>,
    poisoned: &AtomicBool,
    commits: &AtomicU64,
    operations: &AtomicU64,
) {
    let mut generation = 0u64;
    let arrival = std::cell::Cell::new(0u64);
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while jobs.len() < config.max_batch.max(1) {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        if poisoned.load(Ordering::Acquire) {
            for job in jobs {
                if let Some(r) = job.reply {
                    let _ = r.send(Err(SpoolError::Poisoned));
                }
            }
            continue;
        }
        let ctx = Ctx {
            now_ms: config.clock.now_ms(),
            retry: &config.retry,
            dedup_window_ms: config.dedup_window_ms,
            hold: &config.hold,
            arrival: &arrival,
            usage: HashMap::new(),
        };
        let mut view = View::new(engine);
        let mut results = Vec::with_capacity(jobs.len());
        let mut replies = Vec::with_capacity(jobs.len());
        let mut wake = false;
        let mut corrupt = Vec::new();
        for job in jobs {
            wake |= matches!(
                job.op,
                Op::Enqueue(_) | Op::Mutate { .. } | Op::Import { .. } | Op::Repair(_)
            );
            let r = apply(&mut view, job.op, &ctx);
            view.finish_op(r.is_ok());
            if let Err(SpoolError::Corrupt { id, reason }) = &r {
                corrupt.push((*id, reason.clone()));
            }
            results.push(r);
            replies.push(job.reply);
        }
        // Undecodable envelopes met by operations go to quarantine in the
        // same commit.
        for (id, reason) in corrupt {
            let ok = quarantine_op(
                &mut view,
                Tree::Envelopes,
                id.as_bytes(),
                &reason,
                ctx.now_ms,
            );
            view.finish_op(ok.is_ok());
            tracing::warn!(%id, %reason, "datagram quarantined");
        }
        let batch = view.into_batch();
        let outcome = if batch.is_empty() {
            Ok(())
        } else {
            engine.commit(&batch)
        };
        match outcome {
            Ok(()) => {
                if !batch.is_empty() {
                    commits.fetch_add(1, Ordering::Relaxed);
                }
                operations.fetch_add(results.len() as u64, Ordering::Relaxed);
                for (r, reply) in results.into_iter().zip(replies) {
                    if let Some(reply) = reply {
                        let _ = reply.send(r);
                    }
                }
                if wake && !batch.is_empty() {
                    generation += 1;
                    changed.send_replace(generation);
                }
            }
            Err(e) => {
                // After a failed (possibly partial) durable commit nothing
                // can be promised any more: refuse further writes.
                poisoned.store(true, Ordering::Release);
                let msg = e.to_string();
                tracing::error!(error = %msg, "spool commit failed; spool poisoned");
                for reply in replies.into_iter().flatten() {
                    let _ = reply.send(Err(SpoolError::CommitFailed(msg.clone())));
                }
            }
        }
    }
}

/// Hex of a key (check reports, fixes).
pub(crate) fn key_hex(k: &[u8]) -> String {
    hex(k)
}
