//! The committer thread (group commit): takes every queued [`Job`] (up to
//! [`SpoolConfig::max_batch`]), applies them in order to one overlay
//! ([`View`]), commits the batch with one durable [`Engine::commit`], and
//! only then answers each job. A failed commit poisons the spool.
//!
//! While the relay's receiver of [`super::Spool::fresh_claims`] has room,
//! an enqueue is claimed in the write that queues it, and the claim is
//! handed over after the commit; without room, the datagram is queued due
//! now and the relay finds it by scanning, so a relay that falls behind
//! holds no more than the receiver's capacity in memory.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, mpsc};
use std::time::Instant;

use tokio::sync::watch;

use super::FreshClaim;
use super::apply::{apply, enqueue_claimed, quarantine_op};
use super::op::{Ctx, Job, Op};
use super::overlay::View;
use super::{CommitSample, SpoolConfig};
use crate::engine::{Engine, Tree};
use crate::error::SpoolError;
use crate::event::Event;

#[allow(clippy::too_many_arguments)] // the committer's shared state, spelled out
pub(super) fn committer_loop(
    engine: &dyn Engine,
    config: &SpoolConfig,
    rx: &mpsc::Receiver<Job>,
    changed: &watch::Sender<u64>,
    poisoned: &AtomicBool,
    commits: &AtomicU64,
    operations: &AtomicU64,
    fresh: &Mutex<Option<tokio::sync::mpsc::Sender<FreshClaim>>>,
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
        let fresh_tx = fresh.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut handed = Vec::new();
        let mut view = View::new(engine);
        let mut results = Vec::with_capacity(jobs.len());
        let mut replies = Vec::with_capacity(jobs.len());
        let mut wake = false;
        let mut corrupt = Vec::new();
        for job in jobs {
            let permit = match (&job.op, &fresh_tx) {
                (Op::Enqueue(_), Some(tx)) => tx.try_reserve().ok(),
                _ => None,
            };
            let r = match (job.op, permit) {
                (Op::Enqueue(d), Some(permit)) => {
                    enqueue_claimed(&mut view, d, &ctx).map(|(out, claim)| {
                        if let Some(claim) = claim {
                            handed.push((permit, claim));
                        }
                        out
                    })
                }
                (op, _) => {
                    wake |= matches!(
                        op,
                        Op::Enqueue(_)
                            | Op::Supersede { .. }
                            | Op::Mutate { .. }
                            | Op::Import { .. }
                            | Op::Repair(_)
                    );
                    apply(&mut view, op, &ctx)
                }
            };
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
            tracing::warn!(%id, %reason, event = Event::Quarantined.as_str(), "datagram quarantined");
        }
        let batch = view.into_batch();
        let started = Instant::now();
        let outcome = if batch.is_empty() {
            Ok(())
        } else {
            engine.commit(&batch)
        };
        match outcome {
            Ok(()) => {
                if !batch.is_empty() {
                    commits.fetch_add(1, Ordering::Relaxed);
                    if let Some(observer) = &config.observer {
                        observer.observe(CommitSample {
                            operations: results.len(),
                            duration: started.elapsed(),
                        });
                    }
                }
                operations.fetch_add(results.len() as u64, Ordering::Relaxed);
                // Durable now: hand the fresh claims over (their room was
                // reserved, so this never waits).
                for (permit, claim) in handed {
                    permit.send(claim);
                }
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
