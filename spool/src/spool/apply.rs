//! How the committer applies each [`Op`] to its overlay ([`View`]):
//! enqueue (with duplicate detection), envelope mutations, delete,
//! quarantine, import, dedup pruning, repairs and restores. Every handler
//! reads through the overlay, so it sees the batch so far, and writes the
//! envelope with its index entries together ([`write_envelope`]).

use std::ops::{Bound, ControlFlow};

use super::hex::unhex;
use super::index::{index_keys, write_envelope};
use super::op::{Ctx, Fix, Op};
use super::overlay::View;
use super::pending::Output;
use super::transitions::claim_due;
use super::{Enqueued, FreshClaim, IdOrigin, NewDatagram, Superseding};
use crate::engine::Tree;
use crate::error::SpoolError;
use crate::keys;
use crate::record::{
    DatagramId, Envelope, QuarantineEntry, Recipient, RecipientState, ReportState, decode_envelope,
    encode_quarantine,
};

fn validate_endpoint(e: &str) -> Result<(), SpoolError> {
    if e.is_empty() || e.as_bytes().contains(&0) {
        return Err(SpoolError::Invalid(format!("bad endpoint {e:?}")));
    }
    Ok(())
}
pub(super) fn apply(view: &mut View<'_>, op: Op, ctx: &Ctx<'_>) -> Result<Output, SpoolError> {
    match op {
        Op::Enqueue(d) => enqueue_op(view, d, ctx, false).map(|(out, _)| out),
        Op::Supersede { datagram, old } => {
            let mut in_flight = Vec::new();
            for old in old {
                let Some(envelope) = load(view, &old)? else {
                    continue;
                };
                if envelope
                    .recipients
                    .iter()
                    .any(|r| matches!(r.state, RecipientState::InFlight { .. }))
                {
                    in_flight.push(old);
                } else {
                    write_envelope(view, &old, Some(&envelope), None)?;
                }
            }
            let (Output::Enqueued(enqueued), _) = enqueue_op(view, datagram, ctx, false)? else {
                unreachable!("enqueue answers Enqueued");
            };
            Ok(Output::Superseding(Superseding {
                enqueued,
                in_flight,
            }))
        }
        Op::Presence(records) => {
            for (key, value) in records {
                match value {
                    Some(value) => view.put(Tree::Presence, key, value),
                    None => view.delete(Tree::Presence, key),
                }
            }
            Ok(Output::Unit)
        }
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
                Tree::Quarantine | Tree::Presence => view.put(tree, key, value),
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

/// Applies [`Op::Enqueue`] with its datagram claimed in the same write
/// (see [`super::FreshClaim`]): `None` for the claim if the datagram was a
/// duplicate.
pub(super) fn enqueue_claimed(
    view: &mut View<'_>,
    d: NewDatagram,
    ctx: &Ctx<'_>,
) -> Result<(Output, Option<FreshClaim>), SpoolError> {
    enqueue_op(view, d, ctx, true)
}

/// Queues a datagram (all recipients due now), or, with `claim`, queues it
/// with its recipients already in flight and returns the claim with the
/// content.
fn enqueue_op(
    view: &mut View<'_>,
    d: NewDatagram,
    ctx: &Ctx<'_>,
    claim: bool,
) -> Result<(Output, Option<FreshClaim>), SpoolError> {
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
        return Ok((Output::Enqueued(Enqueued::Duplicate(d.id)), None));
    }
    if view.get(Tree::Envelopes, d.id.as_bytes())?.is_some() {
        return Ok((Output::Enqueued(Enqueued::Duplicate(d.id)), None));
    }
    let mut env = Envelope {
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
    let fresh = if claim {
        claim_due(&mut env, now, None).map(|claim| FreshClaim {
            claim,
            content: d.content.clone(),
        })
    } else {
        None
    };
    view.put(Tree::Content, d.id.as_bytes().to_vec(), d.content);
    write_envelope(view, &d.id, None, Some(&env))?;
    if derived {
        remember(view, &d.id, now)?;
    }
    Ok((Output::Enqueued(Enqueued::Queued(d.id)), fresh))
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

pub(super) fn quarantine_op(
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
