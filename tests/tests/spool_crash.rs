//! Crash tests of the spool: SIGKILL a writer at random moments and check
//! that everything it reported durable is there, intact.
//!
//! Knobs:
//! - `IMXP_CRASH_ROUNDS` (default 50): kill rounds per engine.
//! - `IMXP_RESTART_DATAGRAMS` (default 20000): datagrams queued before the
//!   restart measurement (`IMXP_RESTART_DATAGRAMS=100000` for the full-size
//!   run; add `--nocapture` to see the timings).

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use imxp_spool::{DatagramId, EngineKind, RecipientState, SpoolConfig};
use imxp_tests::spool_crash::{Event, RECIPIENT, content_for, open_retrying};
use rand::Rng;

const CHILD: &str = env!("CARGO_BIN_EXE_imxp-spool-crash-child");
/// Above this many live datagrams the parent deletes the verified ones, so
/// the spool (and each round's full check) stays small.
const KEEP_AT_MOST: usize = 2_000;

fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn spawn(args: &[&str]) -> (Child, mpsc::Receiver<Event>) {
    let mut child = Command::new(CHILD)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(ev) = Event::parse(&line)
                && tx.send(ev).is_err()
            {
                break;
            }
        }
    });
    (child, rx)
}

/// What the parent expects of each id the child reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    Queued,
    /// Delivery started: present and intact, or gone.
    MaybeGone,
    Deferred,
    Gone,
}

fn crash_rounds(engine: EngineKind) {
    let rounds = knob("IMXP_CRASH_ROUNDS", 50);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut expect: HashMap<DatagramId, Expect> = HashMap::new();
    let mut rng = rand::rng();
    let started = Instant::now();
    let (mut killed_before_ready, mut events_total) = (0, 0u64);
    for round in 0..rounds {
        let (mut child, rx) = spawn(&["crash", dir.path().to_str().unwrap(), engine.name(), "16"]);
        // Kill at a random moment: sometimes during open/recovery, mostly
        // while producers are committing.
        let delay = if rng.random_bool(0.15) {
            rng.random_range(0..30)
        } else {
            rng.random_range(30..300)
        };
        std::thread::sleep(Duration::from_millis(delay));
        child.kill().expect("SIGKILL");
        let status = child.wait().expect("wait");
        assert!(!status.success(), "child exited by itself: {status}");
        let mut ready = false;
        for ev in rx.iter() {
            events_total += 1;
            match ev {
                Event::Ready => ready = true,
                Event::Enqueued(id) => {
                    expect.insert(id, Expect::Queued);
                }
                Event::Delivering(id) => {
                    expect.insert(id, Expect::MaybeGone);
                }
                Event::Delivered(id) => {
                    expect.insert(id, Expect::Gone);
                }
                Event::Deferred(id) => {
                    expect.insert(id, Expect::Deferred);
                }
                Event::Filled(_) => unreachable!(),
            }
        }
        if !ready {
            killed_before_ready += 1;
        }
        verify(engine, dir.path(), &mut expect, round);
    }
    println!(
        "spool crash test, {engine}: {rounds} SIGKILL rounds ({killed_before_ready} before the spool was open), \
         {events_total} events checked, {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

fn verify(
    engine: EngineKind,
    dir: &std::path::Path,
    expect: &mut HashMap<DatagramId, Expect>,
    round: u64,
) {
    let spool = open_retrying(
        dir,
        SpoolConfig {
            engine,
            create: true,
            ..SpoolConfig::default()
        },
    )
    .unwrap_or_else(|e| panic!("round {round}: reopen after SIGKILL: {e}"));
    for (id, want) in expect.iter() {
        let env = spool
            .get(*id)
            .unwrap_or_else(|e| panic!("round {round}: {id}: {e}"));
        match (want, env) {
            (Expect::Gone | Expect::MaybeGone, None) => {
                assert!(
                    spool.content(*id).unwrap().is_none(),
                    "round {round}: {id}: content left"
                );
            }
            (Expect::Gone, Some(_)) => panic!("round {round}: {id} was delivered but is back"),
            (_, None) => panic!("round {round}: acknowledged datagram {id} is lost"),
            (want, Some(env)) => {
                assert_eq!(env.recipients.len(), 1);
                assert_eq!(env.recipients[0].endpoint, RECIPIENT);
                let content = spool.content(*id).unwrap().expect("content");
                assert_eq!(
                    content,
                    content_for(id),
                    "round {round}: {id}: content differs"
                );
                assert_eq!(env.size, content.len() as u64);
                if *want == Expect::Deferred {
                    assert!(
                        matches!(env.recipients[0].state, RecipientState::Deferred { .. }),
                        "round {round}: {id}: deferred, found {:?}",
                        env.recipients[0].state
                    );
                }
            }
        }
    }
    assert_eq!(
        spool.quarantine_len().unwrap(),
        0,
        "round {round}: quarantine not empty"
    );
    let report = spool.check().unwrap();
    assert!(
        report.is_clean(),
        "round {round}: check: {:#?}",
        report.problems
    );
    // Every datagram in the spool was reported by the child (or was in flight
    // when it died, i.e. its E line may be missing): none is garbage.
    let mut bad = 0;
    spool
        .for_each(|env| {
            if content_for(&env.id).len() as u64 != env.size {
                bad += 1;
            }
            std::ops::ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(bad, 0, "round {round}: datagrams with wrong sizes");

    // Keep the spool small: delete verified live datagrams (and forget the
    // delivered ones, already checked absent).
    expect.retain(|id, w| match w {
        Expect::Gone => false,
        Expect::MaybeGone => spool.get(*id).ok().flatten().is_some(),
        _ => true,
    });
    if spool.len().unwrap() as usize > KEEP_AT_MOST {
        let mut ids = Vec::new();
        spool
            .for_each(|env| {
                ids.push(env.id);
                std::ops::ControlFlow::Continue(())
            })
            .unwrap();
        let pending: Vec<_> = ids.iter().map(|id| spool.delete(*id)).collect();
        for p in pending {
            p.wait().unwrap();
        }
        let gone: HashSet<_> = ids.into_iter().collect();
        expect.retain(|id, _| !gone.contains(id));
        assert!(spool.is_empty().unwrap());
    }
}

#[test]
fn spool_crash_redb() {
    crash_rounds(EngineKind::Redb);
}

#[test]
fn spool_crash_sled() {
    crash_rounds(EngineKind::Sled);
}

fn restart(engine: EngineKind) {
    let count = knob("IMXP_RESTART_DATAGRAMS", 20_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let fill_start = Instant::now();
    let (mut child, rx) = spawn(&[
        "fill",
        dir.path().to_str().unwrap(),
        engine.name(),
        &count.to_string(),
    ]);
    let mut filled = None;
    for ev in rx.iter() {
        if let Event::Filled(n) = ev {
            filled = Some(n);
            break;
        }
    }
    let filled = filled.expect("child filled the spool");
    assert_eq!(filled, count);
    let fill_time = fill_start.elapsed();
    // Stop it the hard way: the restart is a crash recovery.
    child.kill().expect("SIGKILL");
    child.wait().expect("wait");

    let t0 = Instant::now();
    let spool = open_retrying(
        dir.path(),
        SpoolConfig {
            engine,
            ..SpoolConfig::default()
        },
    )
    .expect("reopen");
    let opened = t0.elapsed();
    let report = spool.open_report().clone();
    let first_work = spool.due_now(1_000).expect("due");
    let resumed = t0.elapsed();
    assert_eq!(first_work.len(), 1_000);
    assert_eq!(spool.len().unwrap(), count);
    assert_eq!(report.resumed, count.div_ceil(100));
    println!(
        "spool restart, {engine}: {count} queued (filled in {:.1} s), SIGKILL, reopen: \
         engine open {:.3} s + resume of {} in-flight claims {:.3} s = {:.3} s; \
         first 1000 due datagrams after {:.3} s",
        fill_time.as_secs_f64(),
        report.open_engine.as_secs_f64(),
        report.resumed,
        report.resume.as_secs_f64(),
        opened.as_secs_f64(),
        resumed.as_secs_f64()
    );
}

#[test]
fn spool_restart_redb() {
    restart(EngineKind::Redb);
}

#[test]
fn spool_restart_sled() {
    restart(EngineKind::Sled);
}
