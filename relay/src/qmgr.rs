//! The queue manager: the one scheduler deciding what to try next (DESIGN
//! rule 4). It wakes on new work (the spool's change notifications) and on
//! the earliest due time, claims due datagrams, hands them to delivery
//! with a bounded number in flight overall and per destination, and
//! records the typed outcomes in the spool. Delivery never writes the spool.

use crate::deliver::Deliverer;
use crate::report::Reporter;
use imxp_spool::{DatagramId, Outcome, Spool};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Datagrams taken from the due index per scan.
const SCAN_BATCH: usize = 1024;

/// The scheduler's shared state.
pub(crate) struct Scheduler {
    spool: Spool,
    deliverer: Arc<Deliverer>,
    reporter: Arc<Reporter>,
    in_flight: Arc<Semaphore>,
    per_destination: usize,
    destinations: Mutex<HashMap<String, Arc<Semaphore>>>,
    /// Datagrams being worked on (so a scan does not start them twice).
    busy: Mutex<HashSet<DatagramId>>,
    finished: Notify,
}

impl Scheduler {
    pub(crate) fn new(
        spool: Spool,
        deliverer: Arc<Deliverer>,
        reporter: Arc<Reporter>,
        max_in_flight: usize,
        per_destination: usize,
    ) -> Arc<Self> {
        Arc::new(Self {
            spool,
            deliverer,
            reporter,
            in_flight: Arc::new(Semaphore::new(max_in_flight)),
            per_destination,
            destinations: Mutex::new(HashMap::new()),
            busy: Mutex::new(HashSet::new()),
            finished: Notify::new(),
        })
    }

    /// Runs until `shutdown`; then waits for deliveries in flight.
    pub(crate) async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let tasks = TaskTracker::new();
        let mut changes = self.spool.subscribe();
        loop {
            if shutdown.is_cancelled() {
                break;
            }
            let due = match self.spool.due_now(SCAN_BATCH) {
                Ok(due) => due,
                Err(error) => {
                    tracing::error!(%error, "spool scan failed");
                    Vec::new()
                }
            };
            let mut started = 0;
            for (_, id) in due {
                // The mutex guards a set briefly, never across an await.
                if !self.busy.lock().expect("busy set").insert(id) {
                    continue;
                }
                let permit = tokio::select! {
                    permit = self.in_flight.clone().acquire_owned() => permit.expect("never closed"),
                    () = shutdown.cancelled() => {
                        self.busy.lock().expect("busy set").remove(&id);
                        break;
                    }
                };
                started += 1;
                let this = self.clone();
                tasks.spawn(async move {
                    this.attempt(id).await;
                    drop(permit);
                    this.busy.lock().expect("busy set").remove(&id);
                    this.finished.notify_one();
                });
            }
            if started == SCAN_BATCH {
                continue;
            }
            let sleep = match self.spool.next_due() {
                Ok(Some(due_ms)) => {
                    Duration::from_millis(due_ms.saturating_sub(self.spool.now_ms()).max(5))
                }
                _ => Duration::from_secs(60),
            };
            tokio::select! {
                _ = changes.changed() => {}
                () = self.finished.notified() => {}
                () = tokio::time::sleep(sleep.min(Duration::from_secs(60))) => {}
                () = shutdown.cancelled() => break,
            }
        }
        tasks.close();
        tasks.wait().await;
    }

    /// One delivery attempt of one datagram: claim, deliver, record.
    async fn attempt(&self, id: DatagramId) {
        let claim = match self.spool.claim(id).await {
            Ok(Some(claim)) => claim,
            Ok(None) => return,
            Err(error) => {
                tracing::error!(%id, %error, "claim failed");
                return;
            }
        };
        for &index in &claim.expired {
            tracing::info!(%id, recipient = %claim.envelope.recipients[index].endpoint, event = "expired");
        }
        // Reports owed from before (expiry now, or handed out before a
        // restart): send them first.
        self.reporter
            .send_owed(&claim.envelope, &claim.report_due)
            .await;
        // reportAfter ran out while recipients wait here (RFC 3342 §2.2.1).
        self.reporter
            .send_transient_due(&claim.envelope, &claim.transient_due)
            .await;
        if claim.attempt.is_empty() {
            return;
        }
        let content = match self.spool.content(id) {
            Ok(Some(content)) => bytes::Bytes::from(content),
            Ok(None) | Err(_) => {
                tracing::error!(%id, "content missing; deferring");
                let outcomes = claim
                    .attempt
                    .iter()
                    .map(|&i| (i, Outcome::NotAttempted))
                    .collect();
                let _ = self.spool.record(id, outcomes).await;
                return;
            }
        };
        // Group the recipients by destination domain: one attempt each.
        let mut groups: HashMap<String, Vec<usize>> = HashMap::new();
        for &index in &claim.attempt {
            groups
                .entry(claim.envelope.recipients[index].domain())
                .or_default()
                .push(index);
        }
        let mut outcomes = Vec::new();
        for (domain, indexes) in groups {
            let limit = self.destination_limit(&domain);
            let _permit = limit.acquire_owned().await.expect("never closed");
            outcomes.extend(
                self.deliverer
                    .deliver(&claim.envelope, &content, &domain, &indexes)
                    .await,
            );
        }
        for (index, outcome) in &outcomes {
            let recipient = &claim.envelope.recipients[*index].endpoint;
            match outcome {
                Outcome::Delivered { via } => {
                    tracing::info!(%id, %recipient, via = via.as_deref().unwrap_or("-"), event = "delivered")
                }
                Outcome::Deferred(failure) => {
                    tracing::info!(%id, %recipient, %failure, event = "deferred")
                }
                Outcome::Failed(failure) => {
                    tracing::info!(%id, %recipient, %failure, event = "failed")
                }
                Outcome::Held => tracing::info!(%id, %recipient, event = "held"),
                Outcome::NotAttempted => {}
            }
        }
        let held: Vec<String> = outcomes
            .iter()
            .filter(|(_, outcome)| *outcome == Outcome::Held)
            .map(|(index, _)| claim.envelope.recipients[*index].endpoint.clone())
            .collect();
        match self.spool.record(id, outcomes).await {
            Ok(Some(recorded)) => {
                if recorded.removed {
                    tracing::info!(%id, event = "removed");
                } else if !recorded.report_due.is_empty() {
                    self.reporter
                        .send_owed(&recorded.envelope, &recorded.report_due)
                        .await;
                }
            }
            Ok(None) => {}
            Err(error) => tracing::error!(%id, %error, "recording the outcome failed"),
        }
        for endpoint in held {
            self.deliverer.held_recorded(&endpoint);
        }
    }

    fn destination_limit(&self, domain: &str) -> Arc<Semaphore> {
        self.destinations
            .lock()
            .expect("destinations")
            .entry(domain.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_destination)))
            .clone()
    }
}
