//! The spool API against both engines: enqueue, dedup, transitions with
//! their indexes, holds, resume after a stop, lock, quarantine, check.

use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use imxp_spool::check::CheckReport;
use imxp_spool::engine::{Batch, EngineKind, Tree};
use imxp_spool::spool::Fix;
use imxp_spool::{
    Clock, CommitObserver, CommitSample, DatagramId, Enqueued, Failure, FailureKind, HeldUsage,
    HoldPolicy, IdOrigin, NewDatagram, Outcome, QueueOptions, RecipientState, ReportState,
    RetryPolicy, Spool, SpoolConfig, SpoolError, StateName,
};

const T0: u64 = 1_800_000_000_000;

struct Env {
    dir: tempfile::TempDir,
    clock: Arc<AtomicU64>,
    kind: EngineKind,
}

impl Env {
    fn new(kind: EngineKind) -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            clock: Arc::new(AtomicU64::new(T0)),
            kind,
        }
    }

    fn config(&self) -> SpoolConfig {
        SpoolConfig {
            engine: self.kind,
            retry: RetryPolicy {
                min_backoff_ms: 1_000,
                max_backoff_ms: 8_000,
                jitter: 0.0,
                max_lifetime_ms: 60_000,
            },
            dedup_window_ms: 10_000,
            clock: Clock::manual(self.clock.clone()),
            ..SpoolConfig::default()
        }
    }

    fn open(&self) -> Spool {
        Spool::open(self.dir.path(), self.config()).unwrap()
    }

    fn advance(&self, ms: u64) {
        self.clock.fetch_add(ms, Ordering::SeqCst);
    }

    fn now(&self) -> u64 {
        self.clock.load(Ordering::SeqCst)
    }
}

fn datagram(id: DatagramId, rcpts: &[&str], options: QueueOptions) -> NewDatagram {
    NewDatagram {
        id,
        id_origin: IdOrigin::Derived,
        originator: "alice@a.example".into(),
        recipients: rcpts.iter().map(|s| s.to_string()).collect(),
        options,
        content: format!("content of {id}").into_bytes(),
    }
}

fn id(n: u8) -> DatagramId {
    DatagramId::from_bytes([n; 16])
}

fn assert_clean(spool: &Spool) -> CheckReport {
    let r = spool.check().unwrap();
    assert!(r.is_clean(), "check found problems: {:#?}", r.problems);
    r
}

fn enqueue_get_content_due(kind: EngineKind) {
    let env = Env::new(kind);
    let spool = env.open();
    assert!(spool.open_report().created);
    let d = datagram(
        id(1),
        &["bob@b.example", "carol@c.example"],
        QueueOptions::default(),
    );
    assert_eq!(
        spool.enqueue(d.clone()).wait().unwrap(),
        Enqueued::Queued(id(1))
    );
    let e = spool.get(id(1)).unwrap().unwrap();
    assert_eq!(e.recipients.len(), 2);
    assert_eq!(e.size, d.content.len() as u64);
    assert_eq!(e.expires_ms, T0 + 60_000);
    assert_eq!(spool.content(id(1)).unwrap().unwrap(), d.content);
    assert_eq!(spool.due_now(10).unwrap(), vec![(T0, id(1))]);
    assert_eq!(spool.next_due().unwrap(), Some(T0));
    assert_eq!(spool.len().unwrap(), 1);
    assert!(spool.seen(id(1)).unwrap());
    assert_clean(&spool);
    // Invalid input is refused without writing.
    assert!(matches!(
        spool
            .enqueue(datagram(id(2), &[], QueueOptions::default()))
            .wait(),
        Err(SpoolError::Invalid(_))
    ));
    assert!(matches!(
        spool
            .enqueue(datagram(id(2), &["a\0b"], QueueOptions::default()))
            .wait(),
        Err(SpoolError::Invalid(_))
    ));
    assert_eq!(spool.len().unwrap(), 1);
}

fn dedup_window(kind: EngineKind) {
    let env = Env::new(kind);
    let spool = env.open();
    let d = datagram(id(1), &["bob@b.example"], QueueOptions::default());
    assert_eq!(
        spool.enqueue(d.clone()).wait().unwrap(),
        Enqueued::Queued(id(1))
    );
    assert_eq!(
        spool.enqueue(d.clone()).wait().unwrap(),
        Enqueued::Duplicate(id(1))
    );
    // Delivered and removed: a resend within the window is still recognized.
    let c = spool.claim(id(1)).wait().unwrap().unwrap();
    let r = spool
        .record(
            id(1),
            vec![(c.attempt[0], Outcome::Delivered { via: None })],
        )
        .wait()
        .unwrap()
        .unwrap();
    assert!(r.removed);
    assert!(spool.get(id(1)).unwrap().is_none());
    assert!(spool.content(id(1)).unwrap().is_none());
    assert_eq!(
        spool.enqueue(d.clone()).wait().unwrap(),
        Enqueued::Duplicate(id(1))
    );
    // After the window it is a new datagram; pruning forgets old entries.
    env.advance(10_001);
    assert!(!spool.seen(id(1)).unwrap());
    assert_eq!(spool.prune_dedup().wait().unwrap(), 1);
    assert_eq!(spool.dedup_len().unwrap(), 0);
    assert_eq!(spool.enqueue(d).wait().unwrap(), Enqueued::Queued(id(1)));
    assert_eq!(spool.dedup_len().unwrap(), 1);
    assert_clean(&spool);
}

/// A generated id is no dedup key: it is not remembered, so the index
/// does not grow with datagrams that have no identity of their own, and a
/// second datagram is queued even when its content is the same.
fn generated_ids_are_not_remembered(kind: EngineKind) {
    let env = Env::new(kind);
    let spool = env.open();
    let mut first = datagram(id(1), &["bob@b.example"], QueueOptions::default());
    first.id_origin = IdOrigin::Generated;
    let mut second = first.clone();
    second.id = id(2);
    assert_eq!(
        spool.enqueue(first).wait().unwrap(),
        Enqueued::Queued(id(1))
    );
    assert_eq!(
        spool.enqueue(second).wait().unwrap(),
        Enqueued::Queued(id(2))
    );
    assert_eq!(spool.dedup_len().unwrap(), 0);
    assert!(!spool.seen(id(1)).unwrap());
    assert_eq!(spool.len().unwrap(), 2);
    assert_clean(&spool);
}

/// A newer datagram supersedes a queued older one in the same commit, but
/// never one that is in flight (its delivery may already be under way).
fn a_newer_datagram_supersedes_a_queued_one(kind: EngineKind) {
    let env = Env::new(kind);
    let spool = env.open();
    let mut first = datagram(id(1), &["wilma@b.example"], QueueOptions::default());
    first.id_origin = IdOrigin::Generated;
    spool.enqueue(first.clone()).wait().unwrap();
    let mut second = first.clone();
    second.id = id(2);
    let superseding = spool
        .enqueue_superseding(second, vec![id(1)])
        .wait()
        .unwrap();
    assert_eq!(superseding.enqueued, Enqueued::Queued(id(2)));
    assert!(superseding.in_flight.is_empty());
    assert!(
        spool.get(id(1)).unwrap().is_none(),
        "the queued one is gone"
    );
    assert_eq!(spool.len().unwrap(), 1);
    // In flight: kept, the newer one queued beside it.
    spool.claim(id(2)).wait().unwrap().unwrap();
    let mut third = first.clone();
    third.id = id(3);
    let kept = spool
        .enqueue_superseding(third, vec![id(2)])
        .wait()
        .unwrap();
    assert_eq!(kept.in_flight, vec![id(2)], "in flight: not superseded");
    assert!(spool.get(id(2)).unwrap().is_some());
    assert_eq!(spool.len().unwrap(), 2);
    // Back in the queue (deferred), the next one supersedes it.
    spool
        .record(
            id(2),
            vec![(
                0,
                Outcome::Deferred(Failure::new(FailureKind::Connect, "down")),
            )],
        )
        .wait()
        .unwrap();
    let mut fifth = first.clone();
    fifth.id = id(5);
    let superseding = spool
        .enqueue_superseding(fifth, vec![id(2), id(3)])
        .wait()
        .unwrap();
    assert!(superseding.in_flight.is_empty());
    assert!(spool.get(id(2)).unwrap().is_none() && spool.get(id(3)).unwrap().is_none());
    assert_eq!(spool.len().unwrap(), 1);
    // Superseding a datagram that no longer exists just enqueues.
    let mut fourth = first;
    fourth.id = id(4);
    spool
        .enqueue_superseding(fourth, vec![id(1)])
        .wait()
        .unwrap();
    assert_eq!(spool.len().unwrap(), 2);
    assert_clean(&spool);
}

/// Presence records are written atomically, survive a reopen, and deleting
/// one removes it.
fn presence_records_are_durable(kind: EngineKind) {
    let env = Env::new(kind);
    let spool = env.open();
    spool
        .presence_write(vec![
            (b"e\0fred".to_vec(), Some(b"entry".to_vec())),
            (b"s\0fred\0wilma".to_vec(), Some(b"sub".to_vec())),
        ])
        .wait()
        .unwrap();
    spool
        .presence_write(vec![(b"s\0fred\0wilma".to_vec(), None)])
        .wait()
        .unwrap();
    drop(spool);
    let spool = env.open();
    assert_eq!(
        spool.presence_records().unwrap(),
        vec![(b"e\0fred".to_vec(), b"entry".to_vec())]
    );
    assert_clean(&spool);
    // They travel in a dump, to either engine.
    let mut dump = Vec::new();
    let exported = imxp_spool::dump::export(&spool, &mut dump, &mut |_, _| {}).unwrap();
    assert_eq!(exported.presence, 1);
    for other in EngineKind::ALL {
        let target = Env::new(other);
        let copy = target.open();
        let imported = imxp_spool::dump::import(&copy, &dump[..], &mut |_, _| {}).unwrap();
        assert_eq!(imported.presence, 1);
        assert_eq!(
            copy.presence_records().unwrap(),
            spool.presence_records().unwrap()
        );
    }
}

fn deliver_defer_expire_report(kind: EngineKind) {
    let env = Env::new(kind);
    let spool = env.open();
    let opts = QueueOptions {
        status_request: Some("t1".into()),
        ..Default::default()
    };
    spool
        .enqueue(datagram(id(1), &["bob@b.example", "carol@c.example"], opts))
        .wait()
        .unwrap();
    let c = spool.claim(id(1)).wait().unwrap().unwrap();
    assert_eq!(c.attempt, vec![0, 1]);
    assert!(spool.due_now(10).unwrap().is_empty(), "in flight: not due");
    assert!(
        spool.claim(id(1)).wait().unwrap().is_none(),
        "nothing left to claim"
    );
    assert_clean(&spool);

    let busy = Failure::new(FailureKind::Reply { code: 450 }, "busy");
    let r = spool
        .record(
            id(1),
            vec![
                (
                    0,
                    Outcome::Delivered {
                        via: Some("b.example".into()),
                    },
                ),
                (1, Outcome::Deferred(busy.clone())),
            ],
        )
        .wait()
        .unwrap()
        .unwrap();
    assert!(!r.removed);
    assert!(r.report_due.is_empty());
    match &r.envelope.recipients[1].state {
        RecipientState::Deferred {
            attempt,
            next_due_ms,
            last_error,
        } => {
            assert_eq!(*attempt, 1);
            assert_eq!(*next_due_ms, T0 + 1_000);
            assert_eq!(last_error, &busy);
        }
        s => panic!("unexpected {s:?}"),
    }
    assert_eq!(
        spool.due_ids(u64::MAX, 10).unwrap(),
        vec![(T0 + 1_000, id(1))]
    );
    assert!(spool.due_now(10).unwrap().is_empty());
    assert!(spool.claim(id(1)).wait().unwrap().is_none(), "not due yet");
    assert_clean(&spool);

    // Retries back off: 1 s, 2 s, 4 s, 8 s, 8 s ... until the deadline.
    let mut attempts = 1;
    loop {
        env.advance(8_000);
        let c = spool.claim(id(1)).wait().unwrap().unwrap();
        if !c.expired.is_empty() {
            assert_eq!(c.expired, vec![1]);
            assert_eq!(c.report_due, vec![1]);
            break;
        }
        attempts += 1;
        let r = spool
            .record(id(1), vec![(1, Outcome::Deferred(busy.clone()))])
            .wait()
            .unwrap()
            .unwrap();
        if !r.report_due.is_empty() {
            // Gave up: the next retry would pass the deadline.
            assert!(matches!(
                &r.envelope.recipients[1].state,
                RecipientState::Failed { error, .. } if error.kind == FailureKind::Expired
            ));
            break;
        }
        assert!(attempts < 20);
    }
    let e = spool.get(id(1)).unwrap().unwrap();
    assert!(matches!(
        e.recipients[1].report,
        ReportState::Claimed { .. }
    ));
    assert_eq!(e.recipients[1].attempts, attempts);
    assert_clean(&spool);
    assert!(spool.mark_reported(id(1), vec![1]).wait().unwrap());
    assert!(spool.get(id(1)).unwrap().is_none());
    assert!(spool.is_empty().unwrap());
    assert_clean(&spool);
}

fn permanent_failure_without_report_removes(kind: EngineKind) {
    let env = Env::new(kind);
    let spool = env.open();
    spool
        .enqueue(datagram(id(1), &["bob@b.example"], QueueOptions::default()))
        .wait()
        .unwrap();
    spool.claim(id(1)).wait().unwrap().unwrap();
    let r = spool
        .record(
            id(1),
            vec![(0, Outcome::Failed(Failure::new(FailureKind::Policy, "no")))],
        )
        .wait()
        .unwrap()
        .unwrap();
    assert!(r.removed);
    assert!(r.report_due.is_empty());
    assert!(spool.is_empty().unwrap());
    assert_clean(&spool);
}

/// With `report_delivery`, a delivered recipient owes a report like a
/// failed one; a report handed out but not confirmed before a stop is owed
/// again after the restart (never lost), and once confirmed the datagram
/// goes.
fn delivery_report_owed_until_confirmed(kind: EngineKind) {
    let env = Env::new(kind);
    let opts = QueueOptions {
        status_request: Some("86".into()),
        report_delivery: true,
        ..Default::default()
    };
    {
        let spool = env.open();
        spool
            .enqueue(datagram(id(1), &["bob@b.example", "carol@b.example"], opts))
            .wait()
            .unwrap();
        spool.claim(id(1)).wait().unwrap().unwrap();
        let r = spool
            .record(
                id(1),
                vec![
                    (0, Outcome::Delivered { via: None }),
                    (
                        1,
                        Outcome::Failed(Failure::new(FailureKind::HopLimit, "no hops")),
                    ),
                ],
            )
            .wait()
            .unwrap()
            .unwrap();
        assert!(!r.removed);
        assert_eq!(r.report_due, vec![0, 1]);
        assert_clean(&spool);
    }
    let spool = env.open();
    let e = spool.get(id(1)).unwrap().unwrap();
    assert_eq!(e.recipients[0].report, ReportState::Owed);
    assert_eq!(e.due_ms(), Some(T0));
    let c = spool.claim(id(1)).wait().unwrap().unwrap();
    assert!(c.attempt.is_empty());
    assert_eq!(c.report_due, vec![0, 1]);
    assert!(spool.mark_reported(id(1), vec![0, 1]).wait().unwrap());
    assert!(spool.is_empty().unwrap());
    assert_clean(&spool);
}

/// `report_after_ms` wakes a waiting datagram once: the claim hands out
/// the transient report and clears it.
fn transient_report_due_once(kind: EngineKind) {
    let env = Env::new(kind);
    let spool = env.open();
    let opts = QueueOptions {
        report_after_ms: Some(T0 + 500),
        ..Default::default()
    };
    spool
        .enqueue(datagram(id(1), &["bob@b.example"], opts))
        .wait()
        .unwrap();
    let c = spool.claim(id(1)).wait().unwrap().unwrap();
    assert_eq!(c.attempt, vec![0]);
    assert!(c.transient_due.is_empty(), "not yet");
    let busy = Failure::new(FailureKind::Connect, "refused");
    spool
        .record(id(1), vec![(0, Outcome::Deferred(busy))])
        .wait()
        .unwrap();
    assert_eq!(spool.get(id(1)).unwrap().unwrap().due_ms(), Some(T0 + 500));
    env.advance(500);
    let c = spool.claim(id(1)).wait().unwrap().unwrap();
    assert!(c.attempt.is_empty(), "the retry is not due yet");
    assert_eq!(c.transient_due, vec![0]);
    let e = spool.get(id(1)).unwrap().unwrap();
    assert_eq!(e.options.report_after_ms, None);
    assert_eq!(e.due_ms(), Some(T0 + 1_000));
    assert!(spool.claim(id(1)).wait().unwrap().is_none(), "once");
    assert_clean(&spool);
}

fn hold_for_endpoint(kind: EngineKind) {
    let env = Env::new(kind);
    let spool = env.open();
    let opts = QueueOptions {
        hold_for_endpoint: true,
        ..Default::default()
    };
    for n in 1..=3 {
        spool
            .enqueue(datagram(
                id(n),
                &["bob/phone@b.example", "bob@b.example"],
                opts.clone(),
            ))
            .wait()
            .unwrap();
        spool.claim(id(n)).wait().unwrap().unwrap();
        spool
            .record(id(n), vec![(0, Outcome::Held), (1, Outcome::Held)])
            .wait()
            .unwrap()
            .unwrap();
    }
    assert_eq!(
        spool.held_for("bob@b.example").unwrap(),
        vec![id(1), id(2), id(3)]
    );
    assert_eq!(spool.held_for("bob/phone@b.example").unwrap().len(), 3);
    assert!(spool.held_for("bob@b.exampl").unwrap().is_empty());
    // Held recipients wait until the expiry (the due index says when).
    assert_eq!(spool.next_due().unwrap(), Some(T0 + 60_000));
    assert!(spool.claim(id(1)).wait().unwrap().is_none());
    assert_clean(&spool);

    // bob attaches: only his recipient goes in flight.
    let c = spool
        .claim_held(id(2), "bob@b.example")
        .wait()
        .unwrap()
        .unwrap();
    assert_eq!(c.attempt, vec![1]);
    spool
        .record(
            id(2),
            vec![(
                1,
                Outcome::Delivered {
                    via: Some("local".into()),
                },
            )],
        )
        .wait()
        .unwrap();
    assert_eq!(spool.held_for("bob@b.example").unwrap(), vec![id(1), id(3)]);
    assert_clean(&spool);

    // Past the deadline the held recipients expire.
    env.advance(60_000);
    let c = spool.claim(id(3)).wait().unwrap().unwrap();
    assert_eq!(c.expired, vec![0, 1]);
    assert!(c.report_due.is_empty());
    assert!(spool.get(id(3)).unwrap().is_none());
    assert_clean(&spool);
}

/// Holds `ids` for bob (all enqueued in one batch, in this order) and
/// returns the outcome recorded for each.
fn hold_all(spool: &Spool, ids: &[DatagramId], options: &QueueOptions) -> Vec<RecipientState> {
    let pending: Vec<_> = ids
        .iter()
        .map(|&i| spool.enqueue(datagram(i, &["bob@b.example"], options.clone())))
        .collect();
    for p in pending {
        p.wait().unwrap();
    }
    ids.iter()
        .map(|&i| {
            spool.claim(i).wait().unwrap().unwrap();
            let recorded = spool
                .record(i, vec![(0, Outcome::Held)])
                .wait()
                .unwrap()
                .unwrap();
            recorded.envelope.recipients[0].state.clone()
        })
        .collect()
}

fn held_in_arrival_order_with_limits_and_ttl(kind: EngineKind) {
    let env = Env::new(kind);
    let size = datagram(id(1), &["x@y"], QueueOptions::default())
        .content
        .len() as u64;
    let config = SpoolConfig {
        hold: HoldPolicy {
            max_per_endpoint: Some(3),
            max_bytes_per_endpoint: None,
            default_ttl_ms: Some(10_000),
        },
        ..env.config()
    };
    let spool = Spool::open(env.dir.path(), config.clone()).unwrap();
    let options = QueueOptions {
        hold_for_endpoint: true,
        status_request: Some("7".into()),
        ..Default::default()
    };
    // Same millisecond, ids in descending order: arrival order still wins.
    let states = hold_all(&spool, &[id(9), id(8), id(7), id(6)], &options);
    for state in &states[..3] {
        assert_eq!(
            *state,
            RecipientState::Held {
                since_ms: T0,
                until_ms: Some(T0 + 10_000)
            }
        );
    }
    let RecipientState::Failed { error, .. } = &states[3] else {
        panic!("the fourth hold passes the count limit: {:?}", states[3]);
    };
    assert_eq!(error.kind, FailureKind::Policy);
    assert!(
        error
            .text
            .contains("3 datagram(s) already held for bob@b.example")
    );
    assert_eq!(
        spool.get(id(6)).unwrap().unwrap().recipients[0].report,
        ReportState::Claimed { since_ms: T0 },
        "the refused hold owes the asked-for report"
    );
    assert!(spool.mark_reported(id(6), vec![0]).wait().unwrap());
    assert_eq!(
        spool.held_usage("bob@b.example").unwrap(),
        HeldUsage {
            count: 3,
            bytes: 3 * size
        }
    );
    assert_clean(&spool);
    drop(spool);

    // After a restart: same order, same usage.
    let spool = Spool::open(env.dir.path(), config).unwrap();
    assert_eq!(
        spool.held_for("bob@b.example").unwrap(),
        vec![id(9), id(8), id(7)]
    );
    assert_eq!(spool.held_usage("bob@b.example").unwrap().count, 3);
    // Released to an attach: usage goes down with the index.
    spool
        .claim_held(id(8), "bob@b.example")
        .wait()
        .unwrap()
        .unwrap();
    assert_eq!(spool.held_usage("bob@b.example").unwrap().count, 2);
    spool
        .record(id(8), vec![(0, Outcome::Delivered { via: None })])
        .wait()
        .unwrap();
    // Past the hold TTL (but within the lifetime) the rest expire through
    // the scheduler's claim, reports owed; claim_held leaves them alone.
    env.advance(10_000);
    assert!(
        spool
            .claim_held(id(9), "bob@b.example")
            .wait()
            .unwrap()
            .is_none()
    );
    assert_eq!(spool.next_due().unwrap(), Some(T0 + 10_000));
    let c = spool.claim(id(9)).wait().unwrap().unwrap();
    assert_eq!(
        (c.expired.clone(), c.report_due.clone()),
        (vec![0], vec![0])
    );
    let RecipientState::Failed { error, .. } = &c.envelope.recipients[0].state else {
        panic!("expired");
    };
    assert_eq!(error.kind, FailureKind::Expired);
    assert!(error.text.contains("hold time limit"), "{error}");
    assert_eq!(spool.held_for("bob@b.example").unwrap(), vec![id(7)]);
    assert_clean(&spool);
    drop(spool);

    // A byte limit, and a dataTiming deadline instead of the TTL.
    let env = Env::new(kind);
    let config = SpoolConfig {
        hold: HoldPolicy {
            max_per_endpoint: None,
            max_bytes_per_endpoint: Some(2 * size + 1),
            default_ttl_ms: Some(1_000),
        },
        ..env.config()
    };
    let spool = Spool::open(env.dir.path(), config).unwrap();
    let options = QueueOptions {
        hold_for_endpoint: true,
        deadline_ms: Some(T0 + 30_000),
        ..Default::default()
    };
    let states = hold_all(&spool, &[id(1), id(2), id(3)], &options);
    assert_eq!(
        states[0],
        RecipientState::Held {
            since_ms: T0,
            until_ms: None
        }
    );
    let RecipientState::Failed { error, .. } = &states[2] else {
        panic!("the third hold passes the byte limit: {:?}", states[2]);
    };
    assert!(error.text.contains("would pass the limit"), "{error}");
    assert!(spool.get(id(3)).unwrap().is_none(), "no report asked: gone");
    assert_eq!(spool.next_due().unwrap(), Some(T0 + 30_000));
    assert_clean(&spool);
}

fn admin_operations(kind: EngineKind) {
    let env = Env::new(kind);
    let spool = env.open();
    for n in 1..=3 {
        spool
            .enqueue(datagram(id(n), &["bob@b.example"], QueueOptions::default()))
            .wait()
            .unwrap();
    }
    assert!(spool.hold(id(1)).wait().unwrap());
    assert!(!spool.hold(id(1)).wait().unwrap());
    assert!(
        spool.claim(id(1)).wait().unwrap().is_none(),
        "held: not claimable"
    );
    assert_eq!(spool.due_now(10).unwrap(), vec![(T0, id(2)), (T0, id(3))]);
    assert!(spool.release(id(1)).wait().unwrap());
    assert_eq!(spool.due_now(10).unwrap().len(), 3);

    // Defer 2, then flush makes it due now.
    spool.claim(id(2)).wait().unwrap().unwrap();
    spool
        .record(
            id(2),
            vec![(
                0,
                Outcome::Deferred(Failure::new(FailureKind::Connect, "refused")),
            )],
        )
        .wait()
        .unwrap();
    assert_eq!(spool.due_now(10).unwrap().len(), 2);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    assert_eq!(rt.block_on(spool.flush()).unwrap(), 1);
    assert_eq!(spool.due_now(10).unwrap().len(), 3);

    // Requeue a deferred one.
    spool.claim(id(2)).wait().unwrap().unwrap();
    spool
        .record(
            id(2),
            vec![(
                0,
                Outcome::Deferred(Failure::new(FailureKind::Connect, "refused")),
            )],
        )
        .wait()
        .unwrap();
    assert!(spool.requeue(id(2)).wait().unwrap());
    assert!(!spool.requeue(id(2)).wait().unwrap());
    let e = spool.get(id(2)).unwrap().unwrap();
    assert_eq!(
        e.recipients[0].state,
        RecipientState::Queued { due_ms: env.now() }
    );
    assert_eq!(e.recipients[0].attempts, 2);

    assert!(spool.delete(id(3)).wait().unwrap());
    assert!(!spool.delete(id(3)).wait().unwrap());
    assert!(spool.content(id(3)).unwrap().is_none());
    assert!(!spool.hold(id(3)).wait().unwrap());

    let stats = spool.stats().unwrap();
    assert_eq!(stats.datagrams, 2);
    assert_eq!(stats.by_state[&StateName::Queued], 2);
    assert_eq!(stats.by_domain["b.example"].by_age[0], 2);
    assert_eq!(stats.dedup_entries, 3);
    assert_eq!(stats.commits, spool.commit_stats());
    assert!(stats.commits.commits > 0);
    assert!(stats.commits.operations >= stats.commits.commits);
    assert_clean(&spool);
}

fn resume_after_stop(kind: EngineKind) {
    let env = Env::new(kind);
    {
        let spool = env.open();
        let opts = QueueOptions {
            report_errors: true,
            ..Default::default()
        };
        spool
            .enqueue(datagram(id(1), &["bob@b.example", "x@y.example"], opts))
            .wait()
            .unwrap();
        spool
            .enqueue(datagram(id(2), &["bob@b.example"], QueueOptions::default()))
            .wait()
            .unwrap();
        spool.claim(id(1)).wait().unwrap().unwrap();
        let r = spool
            .record(
                id(1),
                vec![(1, Outcome::Failed(Failure::new(FailureKind::Policy, "no")))],
            )
            .wait()
            .unwrap()
            .unwrap();
        assert_eq!(r.report_due, vec![1]);
        // Second open while the first holds the lock: refused at once.
        match Spool::open(env.dir.path(), env.config()) {
            Err(SpoolError::Locked { holder, .. }) => {
                assert_eq!(holder, Some(std::process::id().to_string()));
            }
            Err(e) => panic!("unexpected {e}"),
            Ok(_) => panic!("opened a locked spool"),
        }
        assert!(imxp_spool::spool::is_locked(env.dir.path()) || cfg!(not(target_os = "linux")));
    }
    env.advance(5);
    let spool = env.open();
    assert!(!spool.open_report().created);
    assert_eq!(spool.open_report().resumed, 1);
    let e = spool.get(id(1)).unwrap().unwrap();
    assert_eq!(
        e.recipients[0].state,
        RecipientState::Queued { due_ms: env.now() }
    );
    assert_eq!(e.recipients[1].report, ReportState::Owed);
    assert_eq!(spool.len().unwrap(), 2);
    assert_clean(&spool);
    // The owed report is handed out again.
    let c = spool.claim(id(1)).wait().unwrap().unwrap();
    assert_eq!(c.attempt, vec![0]);
    assert_eq!(c.report_due, vec![1]);
}

fn engine_mismatch_and_missing(kind: EngineKind) {
    let env = Env::new(kind);
    drop(env.open());
    let other = if kind == EngineKind::Redb {
        EngineKind::Sled
    } else {
        EngineKind::Redb
    };
    let cfg = SpoolConfig {
        engine: other,
        ..env.config()
    };
    assert!(matches!(
        Spool::open(env.dir.path(), cfg),
        Err(SpoolError::EngineMismatch { .. })
    ));
    let empty = tempfile::tempdir().unwrap();
    let cfg = SpoolConfig {
        create: false,
        ..env.config()
    };
    assert!(matches!(
        Spool::open(empty.path().join("none"), cfg.clone()),
        Err(SpoolError::NoSpool(_))
    ));
    assert!(matches!(
        Spool::open(empty.path(), cfg),
        Err(SpoolError::NoSpool(_))
    ));
}

fn corrupt(dir: &Path, kind: EngineKind, f: impl FnOnce(&mut Batch)) {
    let engine = kind.open(dir).unwrap();
    let mut b = Batch::new();
    f(&mut b);
    engine.commit(&b).unwrap();
}

fn quarantine_and_repair(kind: EngineKind) {
    let env = Env::new(kind);
    {
        let spool = env.open();
        for n in 1..=4 {
            spool
                .enqueue(datagram(id(n), &["bob@b.example"], QueueOptions::default()))
                .wait()
                .unwrap();
        }
    }
    corrupt(env.dir.path(), kind, |b| {
        b.put(
            Tree::Envelopes,
            id(1).as_bytes().to_vec(),
            vec![1, 0xff, 0x00],
        );
        b.delete(Tree::Content, id(2).as_bytes().to_vec());
        b.put(Tree::Content, id(9).as_bytes().to_vec(), b"orphan".to_vec());
        b.delete(Tree::Due, imxp_spool::keys::due(T0, &id(3)));
        b.put(
            Tree::Held,
            imxp_spool::keys::held("x@y", 1, 2, &id(4)),
            Vec::new(),
        );
    });
    let spool = env.open();
    let report = spool.check().unwrap();
    assert_eq!(report.problems.len(), 5, "{:#?}", report.problems);
    assert!(report.problems.iter().all(|p| p.fix.is_some()));
    for p in &report.problems {
        assert!(
            spool.repair(p.fix.clone().unwrap()).wait().unwrap(),
            "{p:?}"
        );
    }
    assert_clean(&spool);
    let q = spool.quarantined().unwrap();
    assert_eq!(q.len(), 4);
    assert!(
        q.iter()
            .any(|(_, e)| e.tree == Tree::Envelopes && e.value == vec![1, 0xff, 0x00])
    );
    assert!(
        q.iter()
            .any(|(_, e)| e.tree == Tree::Content && e.value == b"orphan")
    );
    assert_eq!(spool.len().unwrap(), 2);
    assert_eq!(spool.due_now(10).unwrap(), vec![(T0, id(3)), (T0, id(4))]);
    // A stale fix is refused by the committer's re-validation.
    assert!(!spool.repair(Fix::Reindex { id: id(3) }).wait().unwrap());
}

fn undecodable_record_met_by_operations_is_quarantined(kind: EngineKind) {
    let env = Env::new(kind);
    {
        let spool = env.open();
        for n in 1..=2 {
            spool
                .enqueue(datagram(id(n), &["bob@b.example"], QueueOptions::default()))
                .wait()
                .unwrap();
        }
    }
    corrupt(env.dir.path(), kind, |b| {
        b.put(Tree::Envelopes, id(1).as_bytes().to_vec(), vec![7, 1, 2, 3]);
    });
    let spool = env.open();
    assert!(matches!(
        spool.claim(id(1)).wait(),
        Err(SpoolError::Corrupt { .. })
    ));
    assert!(spool.get(id(1)).unwrap().is_none());
    // The envelope and its content, side by side.
    assert_eq!(spool.quarantine_len().unwrap(), 2);
    assert!(spool.content(id(1)).unwrap().is_none());
    // The other datagram is untouched and nothing is left inconsistent.
    assert!(spool.get(id(2)).unwrap().is_some());
    assert_clean(&spool);

    // A scan meets it too.
    corrupt_live(&spool);
}

fn corrupt_live(spool: &Spool) {
    let mut n = 0;
    let bad = spool
        .for_each(|_| {
            n += 1;
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!((n, bad), (1, 0));
}

fn group_commit_batches_concurrent_producers(kind: EngineKind) {
    let env = Env::new(kind);
    // The observer sees every durable commit with its group size.
    let seen = Arc::new(std::sync::Mutex::new(Vec::<CommitSample>::new()));
    let observer = {
        let seen = seen.clone();
        CommitObserver::new(move |sample| seen.lock().unwrap().push(sample))
    };
    let spool = Spool::open(
        env.dir.path(),
        SpoolConfig {
            observer: Some(observer),
            ..env.config()
        },
    )
    .unwrap();
    seen.lock().unwrap().clear();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let before = spool.commit_stats();
    rt.block_on(async {
        let mut tasks = Vec::new();
        for p in 0..64u8 {
            let spool = spool.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..8u8 {
                    let mut b = [p; 16];
                    b[15] = i;
                    let id = DatagramId::from_bytes(b);
                    let r = spool
                        .enqueue(datagram(id, &["bob@b.example"], QueueOptions::default()))
                        .await
                        .unwrap();
                    assert_eq!(r, Enqueued::Queued(id));
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    let after = spool.commit_stats();
    let ops = after.operations - before.operations;
    let commits = after.commits - before.commits;
    assert_eq!(ops, 512);
    assert!(commits < ops, "{commits} commits for {ops} operations");
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len() as u64, commits, "one sample per commit");
        let carried: usize = seen.iter().map(|s| s.operations).sum();
        assert_eq!(carried as u64, ops);
        assert!(seen.iter().any(|s| s.operations > 1), "{seen:?}");
    }
    // A lone producer is served by exactly one commit.
    let c0 = spool.commit_stats().commits;
    spool
        .enqueue(datagram(
            id(200),
            &["bob@b.example"],
            QueueOptions::default(),
        ))
        .wait()
        .unwrap();
    assert_eq!(spool.commit_stats().commits, c0 + 1);
    drop(spool);
    let spool = env.open();
    assert_eq!(spool.len().unwrap(), 513);
    assert_clean(&spool);
}

/// Enqueues claimed in their own commit while the relay's receiver has
/// room; queued due now when it is full; a duplicate is not handed out; a
/// claim not taken before a stop is reset at the next open.
fn fresh_claims_at_enqueue(kind: EngineKind) {
    let env = Env::new(kind);
    {
        let spool = env.open();
        let mut fresh = spool.fresh_claims(1).unwrap();
        assert!(spool.fresh_claims(1).is_none(), "one receiver only");
        let d = datagram(id(1), &["bob@b.example"], QueueOptions::default());
        spool.enqueue(d.clone()).wait().unwrap();
        let f = fresh.try_recv().unwrap();
        assert_eq!(f.content, d.content);
        assert_eq!(f.claim.attempt, vec![0]);
        assert!(f.claim.report_due.is_empty() && f.claim.expired.is_empty());
        let stored = spool.get(id(1)).unwrap().unwrap();
        assert_eq!(
            stored.recipients[0].state,
            RecipientState::InFlight {
                since_ms: env.now()
            }
        );
        assert_eq!(stored.recipients[0].attempts, 1);
        assert_eq!(f.claim.envelope, stored);
        assert!(spool.due_now(10).unwrap().is_empty());
        assert!(spool.claim(id(1)).wait().unwrap().is_none());
        assert_clean(&spool);
        // A resend of it: a duplicate, nothing handed out.
        assert_eq!(spool.enqueue(d).wait().unwrap(), Enqueued::Duplicate(id(1)));
        assert!(fresh.try_recv().is_err());
        // Recorded like any claim.
        let r = spool
            .record(id(1), vec![(0, Outcome::Delivered { via: None })])
            .wait()
            .unwrap()
            .unwrap();
        assert!(r.removed);
        // The receiver holds one: the second waits there, the third is
        // queued due now for a scan.
        for n in [2, 3] {
            spool
                .enqueue(datagram(id(n), &["bob@b.example"], QueueOptions::default()))
                .wait()
                .unwrap();
        }
        assert_eq!(spool.due_now(10).unwrap(), vec![(env.now(), id(3))]);
        assert_eq!(
            spool.get(id(3)).unwrap().unwrap().recipients[0].state,
            RecipientState::Queued { due_ms: env.now() }
        );
        assert_clean(&spool);
        // id(2) stays in the receiver, untaken, as the relay stops.
    }
    env.advance(5);
    let spool = env.open();
    assert_eq!(spool.open_report().resumed, 1);
    assert_eq!(
        spool.get(id(2)).unwrap().unwrap().recipients[0].state,
        RecipientState::Queued { due_ms: env.now() }
    );
    assert_eq!(spool.due_now(10).unwrap().len(), 2);
    assert_clean(&spool);
}

macro_rules! both_engines {
    ($($test:ident),* $(,)?) => {
        mod redb {
            $( #[test] fn $test() { super::$test(super::EngineKind::Redb) } )*
        }
        mod sled {
            $( #[test] fn $test() { super::$test(super::EngineKind::Sled) } )*
        }
    };
}

both_engines!(
    enqueue_get_content_due,
    dedup_window,
    generated_ids_are_not_remembered,
    a_newer_datagram_supersedes_a_queued_one,
    presence_records_are_durable,
    deliver_defer_expire_report,
    permanent_failure_without_report_removes,
    delivery_report_owed_until_confirmed,
    transient_report_due_once,
    hold_for_endpoint,
    held_in_arrival_order_with_limits_and_ttl,
    admin_operations,
    resume_after_stop,
    engine_mismatch_and_missing,
    quarantine_and_repair,
    undecodable_record_met_by_operations_is_quarantined,
    group_commit_batches_concurrent_producers,
    fresh_claims_at_enqueue,
);
