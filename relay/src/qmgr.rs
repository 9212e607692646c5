//! The dispatcher (the queue manager, in Postfix's words): the one place
//! that decides what to try next and records what came of it. It takes
//! the datagrams the spool claimed as it queued them
//! ([`Spool::fresh_claims`]: the common case, one spool operation less per
//! datagram), claims due datagrams (woken by the spool's change
//! notifications and by the earliest due time) and datagrams held for an endpoint that just
//! attached (`hold4Endpoint`, RFC 3342 §3, requested through
//! [`crate::hold::Release`]); hands them to delivery with a bounded
//! number in flight overall and per destination; records the typed
//! outcomes in the spool; and confirms the reports it had sent. Delivery
//! returns outcomes and never touches the spool; new datagrams (reports)
//! enter through intake like any other.

use crate::context::Context;
use crate::deliver::Deliverer;
use crate::metrics::label;
use crate::report::Reporter;
use crate::trail::{self, Transition};
use bytes::Bytes;
use imxp_spool::Event;
use imxp_spool::{Claim, DatagramId, Envelope, Outcome, Recorded, Spool};
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Datagrams taken from the due index per scan.
const SCAN_BATCH: usize = 1024;

/// The dispatcher's state.
pub(crate) struct Dispatcher {
    spool: Spool,
    ctx: Arc<Context>,
    deliverer: Arc<Deliverer>,
    reporter: Arc<Reporter>,
    in_flight: Arc<Semaphore>,
    per_destination: usize,
    destinations: Mutex<HashMap<String, Arc<Semaphore>>>,
    /// Datagrams being worked on (so a scan does not start them twice).
    busy: Mutex<HashSet<DatagramId>>,
    finished: Notify,
}

impl Dispatcher {
    pub(crate) fn new(
        spool: Spool,
        ctx: Arc<Context>,
        deliverer: Arc<Deliverer>,
        reporter: Arc<Reporter>,
    ) -> Arc<Self> {
        let queue = &ctx.config().queue;
        Arc::new(Self {
            in_flight: Arc::new(Semaphore::new(queue.max_in_flight)),
            per_destination: queue.max_per_destination,
            spool,
            ctx,
            deliverer,
            reporter,
            destinations: Mutex::new(HashMap::new()),
            busy: Mutex::new(HashSet::new()),
            finished: Notify::new(),
        })
    }

    /// Runs until `stop`; then waits for the deliveries in flight.
    pub(crate) async fn run(self: Arc<Self>, stop: CancellationToken) {
        tokio::join!(
            self.clone().run_fresh(stop.clone()),
            self.clone().run_due(stop.clone()),
            self.run_releases(stop)
        );
    }

    /// Datagrams claimed by the spool in the commit that queued them
    /// ([`Spool::fresh_claims`]): deliver and record, with no claim of
    /// their own. Up to `max_in_flight` wait in the hand-over; beyond
    /// that the spool queues new datagrams for [`Dispatcher::run_due`].
    async fn run_fresh(self: Arc<Self>, stop: CancellationToken) {
        let Some(mut fresh) = self
            .spool
            .fresh_claims(self.ctx.config().queue.max_in_flight)
        else {
            tracing::error!("the fresh-claim loop runs once per relay");
            return;
        };
        let tasks = TaskTracker::new();
        loop {
            let next = tokio::select! {
                next = fresh.recv() => next,
                () = stop.cancelled() => None,
            };
            let Some(next) = next else { break };
            let permit = tokio::select! {
                permit = self.in_flight.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => break,
                },
                () = stop.cancelled() => break,
            };
            let id = next.claim.envelope.id;
            self.busy.lock().insert(id);
            let this = self.clone();
            tasks.spawn(async move {
                this.deliver_claim(next.claim, Bytes::from(next.content))
                    .await;
                drop(permit);
                this.busy.lock().remove(&id);
                this.finished.notify_one();
            });
        }
        tasks.close();
        tasks.wait().await;
    }

    /// Due datagrams: scan, claim, deliver, record.
    async fn run_due(self: Arc<Self>, stop: CancellationToken) {
        let tasks = TaskTracker::new();
        let mut changes = self.spool.subscribe();
        loop {
            if stop.is_cancelled() {
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
                if !self.busy.lock().insert(id) {
                    continue;
                }
                let permit = tokio::select! {
                    permit = self.in_flight.clone().acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_) => break,
                    },
                    () = stop.cancelled() => {
                        self.busy.lock().remove(&id);
                        break;
                    }
                };
                started += 1;
                let this = self.clone();
                tasks.spawn(async move {
                    this.attempt(id).await;
                    drop(permit);
                    this.busy.lock().remove(&id);
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
                () = stop.cancelled() => break,
            }
        }
        tasks.close();
        tasks.wait().await;
    }

    /// One delivery attempt of one due datagram: claim, report what is
    /// owed, deliver, record.
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
            let status = match &claim.envelope.recipients[index].state {
                imxp_spool::RecipientState::Failed { error, .. } => error.to_string(),
                _ => "deadline passed".to_owned(),
            };
            self.trail(&claim.envelope, index, Event::Expired, &status, None);
        }
        if claim.attempt.is_empty() && claim.report_due.is_empty() && claim.transient_due.is_empty()
        {
            return;
        }
        let Some(content) = self.content(&claim).await else {
            return;
        };
        self.deliver_claim(claim, content).await;
    }

    /// The work of a claim with its content: report what is owed,
    /// deliver, record.
    async fn deliver_claim(&self, claim: Claim, content: Bytes) {
        // Reports owed from before (expiry now, or handed out before a
        // restart): send them first.
        self.report(&claim.envelope, &content, &claim.report_due)
            .await;
        // reportAfter ran out while recipients wait here (RFC 3342 §2.2.1).
        self.reporter
            .send_transient_due(&claim.envelope, &content, &claim.transient_due)
            .await;
        if claim.attempt.is_empty() {
            return;
        }
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
            let Ok(_permit) = limit.acquire_owned().await else {
                continue;
            };
            let _in_flight = InFlight::start(&self.ctx, &domain);
            outcomes.extend(
                self.deliverer
                    .deliver(&claim.envelope, &content, &domain, &indexes)
                    .await,
            );
        }
        let held: Vec<String> = outcomes
            .iter()
            .filter(|(_, outcome)| *outcome == Outcome::Held)
            .map(|(index, _)| claim.envelope.recipients[*index].endpoint.clone())
            .collect();
        if let Some(recorded) = self.record(&claim.envelope, outcomes).await
            && !recorded.removed
        {
            self.report(&recorded.envelope, &content, &recorded.report_due)
                .await;
        }
        // If the endpoint attached before the hold was durable, release
        // it now.
        for endpoint in held {
            if self.ctx.attachments.is_attached(&endpoint) {
                self.ctx.release.request(&endpoint);
            }
        }
    }

    /// Runs the releases of held datagrams as they are requested.
    async fn run_releases(self: Arc<Self>, stop: CancellationToken) {
        let Some(mut requests) = self.ctx.release.take_requests() else {
            tracing::error!("the release loop runs once per relay");
            return;
        };
        let tasks = TaskTracker::new();
        loop {
            tokio::select! {
                request = requests.recv() => match request {
                    Some(endpoint) => {
                        let (this, stop) = (self.clone(), stop.clone());
                        tasks.spawn(async move {
                            loop {
                                this.release(&endpoint, &stop).await;
                                if !this.ctx.release.finish(&endpoint) {
                                    break;
                                }
                            }
                        });
                    }
                    None => break,
                },
                () = stop.cancelled() => break,
            }
        }
        tasks.close();
        tasks.wait().await;
    }

    /// One release round: every datagram held for `endpoint`, oldest
    /// first, while it stays attached. Only the endpoint's `ok` makes one
    /// delivered, so an attachment that ends mid-release loses nothing
    /// (the datagram is held again, in its place). Expiry of held
    /// datagrams is [`Dispatcher::attempt`]'s, like every other failure.
    async fn release(&self, endpoint: &str, stop: &CancellationToken) {
        let ids = match self.spool.held_for(endpoint) {
            Ok(ids) => ids,
            Err(error) => {
                tracing::error!(%endpoint, %error, "reading the held index failed");
                return;
            }
        };
        if !ids.is_empty() {
            tracing::info!(%endpoint, held = ids.len(), "releasing held datagrams");
        }
        for id in ids {
            if stop.is_cancelled() || !self.ctx.attachments.is_attached(endpoint) {
                return;
            }
            let claim = match self.spool.claim_held(id, endpoint).await {
                Ok(Some(claim)) => claim,
                Ok(None) => continue,
                Err(error) => {
                    tracing::error!(%id, %endpoint, %error, "claiming a held datagram failed");
                    return;
                }
            };
            let Some(content) = self.content(&claim).await else {
                continue;
            };
            let mut outcomes = Vec::new();
            let domain = imxp_spool::record::domain_of(endpoint);
            let _in_flight = InFlight::start(&self.ctx, &domain);
            for &index in &claim.attempt {
                let outcome = self
                    .deliverer
                    .deliver_held(&claim.envelope, &content, endpoint)
                    .await;
                outcomes.push((index, outcome));
            }
            let detached = outcomes.iter().any(|(_, o)| *o == Outcome::Held);
            self.record(&claim.envelope, outcomes).await;
            if detached {
                return;
            }
        }
    }

    /// The stored payload of a claimed datagram. Missing or unreadable:
    /// the claimed recipients go back to the queue untried, and `None`.
    async fn content(&self, claim: &Claim) -> Option<Bytes> {
        let id = claim.envelope.id;
        match self.spool.content(id) {
            Ok(Some(content)) => Some(Bytes::from(content)),
            Ok(None) | Err(_) => {
                tracing::error!(%id, "content missing; back to the queue");
                let outcomes = claim
                    .attempt
                    .iter()
                    .map(|&i| (i, Outcome::NotAttempted))
                    .collect();
                let _ = self.spool.record(id, outcomes).await;
                None
            }
        }
    }

    /// Records the outcomes in the spool, then logs and counts each (the
    /// log says what the spool now holds).
    async fn record(
        &self,
        envelope: &Envelope,
        outcomes: Vec<(usize, Outcome)>,
    ) -> Option<Recorded> {
        let id = envelope.id;
        let logged = outcomes.clone();
        let result = self.spool.record(id, outcomes).await;
        if result.is_ok() {
            for (index, outcome) in &logged {
                self.log_outcome(envelope, *index, outcome);
            }
        }
        match result {
            Ok(Some(recorded)) => {
                if recorded.removed {
                    let recipients: Vec<&str> = envelope
                        .recipients
                        .iter()
                        .map(|r| r.endpoint.as_str())
                        .collect();
                    trail::record(
                        &self.ctx.metrics,
                        &Transition {
                            event: Event::Removed,
                            id,
                            originator: &envelope.originator,
                            recipient: &recipients.join(","),
                            hop: "-",
                            delay_ms: self.ctx.now_ms().saturating_sub(envelope.queued_ms),
                            status: "every recipient final",
                        },
                    );
                }
                Some(recorded)
            }
            Ok(None) => None,
            Err(error) => {
                tracing::error!(%id, %error, "recording the outcome failed");
                None
            }
        }
    }

    /// Sends the reports owed for recipients `indexes` and, once every one
    /// is queued, confirms them to the spool. If one cannot be queued,
    /// nothing is confirmed: the spool hands them out again later.
    async fn report(&self, envelope: &Envelope, content: &Bytes, indexes: &[usize]) {
        if indexes.is_empty() || !self.reporter.send_owed(envelope, content, indexes).await {
            return;
        }
        if let Err(error) = self
            .spool
            .mark_reported(envelope.id, indexes.to_vec())
            .await
        {
            tracing::error!(id = %envelope.id, %error, "confirming reports failed");
        }
    }

    fn destination_limit(&self, domain: &str) -> Arc<Semaphore> {
        self.destinations
            .lock()
            .entry(domain.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_destination)))
            .clone()
    }
}

impl Dispatcher {
    /// One trail line (and count) per recipient outcome; a delivery's
    /// delay goes into the delivery histogram too.
    fn log_outcome(&self, envelope: &Envelope, index: usize, outcome: &Outcome) {
        match outcome {
            Outcome::Delivered { via } => {
                let via = via.as_deref().unwrap_or("local");
                let kind = if via == "local" { "local" } else { "remote" };
                let delay = self.ctx.now_ms().saturating_sub(envelope.queued_ms);
                self.ctx
                    .metrics
                    .delivery_seconds
                    .get_or_create(&label("kind", kind))
                    .observe(delay as f64 / 1000.0);
                self.trail(envelope, index, Event::Delivered, "ok", Some(via));
            }
            Outcome::Deferred(failure) => {
                self.trail(envelope, index, Event::Deferred, &failure.to_string(), None);
            }
            Outcome::Failed(failure) => {
                self.trail(envelope, index, Event::Failed, &failure.to_string(), None);
            }
            Outcome::Held => {
                self.trail(
                    envelope,
                    index,
                    Event::Held,
                    "held for the endpoint",
                    Some("local"),
                );
            }
            Outcome::NotAttempted => {}
        }
    }

    /// The trail line of recipient `index`: its hop is `via` when known,
    /// else `local` for a domain served here, else the recipient's domain.
    fn trail(
        &self,
        envelope: &Envelope,
        index: usize,
        event: Event,
        status: &str,
        via: Option<&str>,
    ) {
        let recipient = &envelope.recipients[index].endpoint;
        let domain = imxp_spool::record::domain_of(recipient);
        let hop = match via {
            Some("local") => "local".to_owned(),
            Some(via) => format!("{domain} {via}"),
            None if self.ctx.config().serves(&domain) => "local".to_owned(),
            None => domain,
        };
        trail::record(
            &self.ctx.metrics,
            &Transition {
                event,
                id: envelope.id,
                originator: &envelope.originator,
                recipient,
                hop: &hop,
                delay_ms: self.ctx.now_ms().saturating_sub(envelope.queued_ms),
                status,
            },
        );
    }
}

/// A delivery attempt to one destination, counted in
/// `imxp_deliveries_in_flight` while it lives.
struct InFlight(prometheus_client::metrics::gauge::Gauge);

impl InFlight {
    fn start(ctx: &Context, domain: &str) -> Self {
        let gauge = ctx
            .metrics
            .in_flight
            .get_or_create_owned(&label("destination", domain));
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}
