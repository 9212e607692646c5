//! The writes of [`Spool`]: each builds an [`Op`] (most are envelope
//! mutations) and submits it to the committer, and the recipient-state
//! transitions they perform: claim (in flight, expired, reports due),
//! record (delivered, deferred per the retry policy, failed, held for the
//! endpoint within the hold limits of RFC 3342 §3 and §7), report
//! confirmation, operator hold/release, requeue, flush, delete, import,
//! restore, dedup pruning, repair and quarantine.

use std::collections::HashMap;

use super::op::{Ctx, Op};
use super::pending::{Output, changed, claim, count, enqueued, recorded, superseding, unit};
use super::{
    Claim, Enqueued, Fix, HeldUsage, HoldPolicy, NewDatagram, Outcome, Pending, Recorded, Spool,
    Superseding,
};
use crate::engine::Tree;
use crate::error::SpoolError;
use crate::record::{
    DatagramId, Envelope, Failure, FailureKind, QueueOptions, Recipient, RecipientState,
    ReportState,
};
use crate::retry::Retry;

impl Spool {
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

    /// Restores a presence record (raw key and value) from a dump; kept as
    /// is if the key exists.
    pub fn restore_presence(&self, key: Vec<u8>, value: Vec<u8>) -> Pending<bool> {
        self.submit(
            Op::Restore {
                tree: Tree::Presence,
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
    /// Enqueues `datagram` in place of the datagrams `old`: in the same
    /// durable batch, each of them is deleted unless one of its recipients
    /// is in flight (those stay, and are named in the result, so that the
    /// next newer datagram can supersede them once they are back in the
    /// queue). For a sender whose newer datagram makes older ones
    /// worthless, e.g. presence updates to one subscriber: only the newest
    /// state waits in the queue.
    pub fn enqueue_superseding(
        &self,
        datagram: NewDatagram,
        old: Vec<DatagramId>,
    ) -> Pending<Superseding> {
        self.submit(Op::Supersede { datagram, old }, superseding)
    }

    /// Puts (`Some`) or deletes (`None`) records of the presence tree,
    /// atomically and durably (group commit, like every spool write).
    pub fn presence_write(&self, records: Vec<(Vec<u8>, Option<Vec<u8>>)>) -> Pending<()> {
        self.submit(Op::Presence(records), unit)
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
pub(super) fn claim_due(env: &mut Envelope, now: u64, held_for: Option<&str>) -> Option<Claim> {
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
