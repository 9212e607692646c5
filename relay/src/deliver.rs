//! Delivery workers: hand one datagram to its recipients of one
//! destination domain and return a typed outcome per recipient. They hold
//! no spool handle: the dispatcher ([`crate::qmgr`]) records what they
//! return.
//!
//! * Local domain: a new `data` carrying only that recipient on the channel
//!   of its attachment; success is the endpoint's `ok` (RFC 3340 §4.4.4.1
//!   step 5.3). Not attached: dropped (failed), as RFC 3340 says for the
//!   core service, unless the data asked `hold4Endpoint` (RFC 3342 §3):
//!   then it is held for that exact endpoint (the dispatcher delivers it
//!   when the endpoint attaches, [`crate::hold`]; newer datagrams wait for
//!   that release).
//!   If the attachment ends before the endpoint answers — another
//!   application attached with `attachOverride` (RFC 3342 §1) — the data
//!   goes to the new attachment.
//! * Foreign domain: a new `data` with those recipients on the pooled
//!   mesh session; success is the next relay's `ok` (step 5.2).
//!
//! Each new `data` is built just before it is sent
//! ([`datagram::prepare`]): per-originator and per-recipient options are
//! checked, `targetHop='this'` options removed, `dataTiming` reduced by the
//! time spent here (queueing, routing and binding included: RFC 3342 §2),
//! and `dataHopping` decremented on the way to a next relay (§4).

use crate::attachments::Lookup;
use crate::context::Context;
use crate::datagram::{self, Prepared};
use crate::gateway::Gateways;
use crate::outbound::Outbound;
use crate::report::Reporter;
use crate::route::{Route, Router};
use bytes::Bytes;
use imxp_apex::Hop;
use imxp_beep::io::Response;
use imxp_spool::Event;
use imxp_spool::{Envelope, Failure, FailureKind, Outcome};
use std::sync::Arc;
use std::time::Duration;

/// Time an endpoint or a next relay has to answer a `data`.
const REPLY_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a delivery waits for an attachment whose channel is still
/// being created.
const PENDING_ATTACH_WAIT: Duration = Duration::from_secs(5);

/// How many times one delivery follows an endpoint from an ended
/// attachment to the next before it is deferred.
const MAX_HANDOVERS: u32 = 8;

pub(crate) struct Deliverer {
    ctx: Arc<Context>,
    /// Routes and DNS in force (replaced on reload).
    router: parking_lot::RwLock<Arc<Router>>,
    outbound: Outbound,
    gateways: Gateways,
    reporter: Arc<Reporter>,
}

impl Deliverer {
    pub(crate) fn new(
        ctx: Arc<Context>,
        router: Router,
        outbound: Outbound,
        gateways: Gateways,
        reporter: Arc<Reporter>,
    ) -> Self {
        Self {
            ctx,
            router: parking_lot::RwLock::new(Arc::new(router)),
            outbound,
            gateways,
            reporter,
        }
    }

    /// Puts `limits.max_message_size` in force for new mesh sessions (a
    /// reload).
    pub(crate) fn set_max_message_size(&self, max_message_size: usize) {
        self.outbound.set_max_message_size(max_message_size);
    }

    /// Puts `router` in force (a reload of `[routes]` and `[dns]`);
    /// deliveries already routing finish with the old one.
    pub(crate) fn set_router(&self, router: Router) {
        *self.router.write() = Arc::new(router);
    }

    /// Prepares the `data` for `recipients`, sending the transient report
    /// if `reportAfter` ran out (RFC 3342 §2.2.1). `Err`: the stored
    /// datagram is unreadable.
    async fn prepare(
        &self,
        envelope: &Envelope,
        content: &Bytes,
        recipients: &[String],
        hop: Hop,
    ) -> Result<Prepared, Failure> {
        let elapsed = self.ctx.now_ms().saturating_sub(envelope.queued_ms);
        let prepared = datagram::prepare(content, recipients, hop, elapsed, &envelope.id)
            .map_err(|r| Failure::new(FailureKind::Reply { code: r.code.0 }, r.text))?;
        if prepared.report_transient {
            self.reporter
                .send_transient(envelope, content, &prepared.recipients)
                .await;
        }
        Ok(prepared)
    }

    /// Delivers `content` (the stored payload) to the recipients
    /// `indexes` of `envelope`, all in `domain`.
    pub(crate) async fn deliver(
        &self,
        envelope: &Envelope,
        content: &Bytes,
        domain: &str,
        indexes: &[usize],
    ) -> Vec<(usize, Outcome)> {
        if self.gateways.get(domain).is_some() {
            let mut outcomes = Vec::new();
            for &index in indexes {
                let recipient = &envelope.recipients[index].endpoint;
                outcomes.push((
                    index,
                    self.deliver_gateway(envelope, content, domain, recipient)
                        .await,
                ));
            }
            return outcomes;
        }
        if self.ctx.config().serves(domain) {
            let mut outcomes = Vec::new();
            for &index in indexes {
                let recipient = &envelope.recipients[index].endpoint;
                let outcome = match self.access_check(envelope, recipient) {
                    Some(AccessHook::Service) => {
                        crate::access::service::serve(
                            &self.ctx,
                            recipient,
                            &envelope.originator,
                            content,
                        )
                        .await
                    }
                    Some(AccessHook::Presence) => {
                        crate::presence::service::serve(
                            &self.ctx,
                            recipient,
                            &envelope.originator,
                            content,
                        )
                        .await
                    }
                    Some(AccessHook::Blocked(outcome)) => outcome,
                    None => {
                        // Held datagrams for the endpoint go first.
                        self.ctx.release.idle(recipient).await;
                        self.deliver_local(
                            envelope,
                            content,
                            recipient,
                            envelope.options.hold_for_endpoint,
                        )
                        .await
                    }
                };
                outcomes.push((index, outcome));
            }
            return outcomes;
        }
        self.deliver_remote(envelope, content, domain, indexes)
            .await
    }

    /// The access service's part in local delivery (RFC 3341): datagrams
    /// to `apex=access@<domain>` go to the service; others need `core:data`
    /// for the originator in the recipient's entries (RFC 3340 §4.4.4.1
    /// step 5.3). A blocked datagram fails as if the recipient were not
    /// attached, so that a requested report does not reveal the block
    /// (polite blocking, RFC 2779 §5.4.10); only the log says "blocked".
    fn access_check(&self, envelope: &Envelope, recipient: &str) -> Option<AccessHook> {
        let originator = envelope.originator.as_str();
        if recipient.starts_with("apex=access@") {
            return Some(AccessHook::Service);
        }
        if recipient.starts_with("apex=presence@") {
            return Some(AccessHook::Presence);
        }
        if self.ctx.access.permits_data(originator, recipient) {
            return None;
        }
        crate::trail::record(
            &self.ctx.metrics,
            &crate::trail::Transition {
                event: Event::Blocked,
                id: envelope.id,
                originator,
                recipient,
                hop: "local",
                delay_ms: self.ctx.now_ms().saturating_sub(envelope.queued_ms),
                status: "core:data not granted",
            },
        );
        // Exactly what an endpoint that is not attached gets, so that a
        // report cannot tell the two apart.
        Some(AccessHook::Blocked(Outcome::Failed(Failure::new(
            FailureKind::Other,
            format!("{recipient} is not attached"),
        ))))
    }

    /// Delivers a datagram held for `endpoint` (it attached): like any
    /// local delivery of a `hold4Endpoint` datagram. The access check
    /// applies as at any delivery (entries may have changed while it was
    /// held).
    pub(crate) async fn deliver_held(
        &self,
        envelope: &Envelope,
        content: &Bytes,
        endpoint: &str,
    ) -> Outcome {
        match self.access_check(envelope, endpoint) {
            Some(AccessHook::Blocked(outcome)) => outcome,
            Some(AccessHook::Service | AccessHook::Presence) | None => {
                self.deliver_local(envelope, content, endpoint, true).await
            }
        }
    }

    /// Sends the datagram for `recipient` to the application attached as
    /// it; not attached: [`Outcome::Held`] if `hold`, else failed.
    async fn deliver_local(
        &self,
        envelope: &Envelope,
        content: &Bytes,
        recipient: &str,
        hold: bool,
    ) -> Outcome {
        let mut handovers = 0;
        let mut waited = Duration::ZERO;
        // Prepared once, at the first attachment found; kept across
        // handovers (an override), with the same deadline.
        let mut prepared: Option<(Bytes, Duration, bool, Option<Duration>)> = None;
        let mut transient_sent = false;
        let mut started = None;
        loop {
            let (channel, ended) = match self.ctx.attachments.lookup(recipient) {
                Lookup::Ready { channel, ended } => (channel, ended),
                Lookup::Pending if waited < PENDING_ATTACH_WAIT => {
                    let step = Duration::from_millis(20);
                    tokio::time::sleep(step).await;
                    waited += step;
                    continue;
                }
                Lookup::Pending | Lookup::Detached if hold => return Outcome::Held,
                Lookup::Pending | Lookup::Detached if handovers > 0 => {
                    // It was sent to an attachment that ended before
                    // answering: it may or may not have been received.
                    return Outcome::Deferred(Failure::new(
                        FailureKind::Connect,
                        format!("{recipient}: the attachment ended before the endpoint answered"),
                    ));
                }
                Lookup::Pending | Lookup::Detached => {
                    return Outcome::Failed(Failure::new(
                        FailureKind::Other,
                        format!("{recipient} is not attached"),
                    ));
                }
            };
            let (payload, wait, timing, report_after) = match &prepared {
                Some(ready) => ready.clone(),
                None => {
                    let ready = match self.prepare_local(envelope, content, recipient).await {
                        Ok(ready) => ready,
                        Err(outcome) => return outcome,
                    };
                    prepared = Some(ready.clone());
                    ready
                }
            };
            let started = *started.get_or_insert_with(tokio::time::Instant::now);
            let request = channel.request(payload);
            tokio::pin!(request);
            let answered = tokio::select! {
                answered = async {
                    // RFC 3342 §2.2, step 5.3: no `ok` within what is left
                    // of reportAfter → the transient report, and keep
                    // waiting.
                    if let Some(left) = report_after
                        && !transient_sent
                        && left < wait
                        && tokio::time::timeout_at(started + left, &mut request).await.is_err()
                    {
                        transient_sent = true;
                        self.send_transient(envelope, content, recipient).await;
                    }
                    tokio::time::timeout_at(started + wait, &mut request).await
                } => answered,
                () = ended.cancelled() => {
                    if !self.ctx.attachments.is_attached(recipient) {
                        // Detached, not overridden: the request's own
                        // answer (or the session's end) decides.
                        tokio::time::timeout_at(started + wait, &mut request).await
                    } else {
                        // Overridden while in flight: RFC 3342 §1 lets data
                        // meant for the old application go to the new.
                        handovers += 1;
                    if handovers > MAX_HANDOVERS {
                        return Outcome::Deferred(Failure::new(
                            FailureKind::Connect,
                            format!("{recipient}: attachments keep ending"),
                        ));
                    }
                    continue;
                    }
                }
            };
            return match answered {
                Ok(Ok(response)) => outcome_of(&response, Some("local".into())),
                Ok(Err(_)) if hold && !self.ctx.attachments.is_attached(recipient) => Outcome::Held,
                Ok(Err(error)) => Outcome::Deferred(Failure::new(
                    FailureKind::Connect,
                    format!("{recipient}: {error}"),
                )),
                Err(_) if timing => Outcome::Failed(Failure::new(
                    FailureKind::Expired,
                    format!("{recipient}: no answer within dataTiming noLaterThan"),
                )),
                Err(_) => Outcome::Deferred(Failure::new(
                    FailureKind::Connect,
                    format!("{recipient}: no answer within {REPLY_TIMEOUT:?}"),
                )),
            };
        }
    }

    /// The `data` for a local recipient, and how long the endpoint has to
    /// answer: (payload, wait, whether the wait is dataTiming's
    /// noLaterThan, what is left of reportAfter).
    async fn prepare_local(
        &self,
        envelope: &Envelope,
        content: &Bytes,
        recipient: &str,
    ) -> Result<(Bytes, Duration, bool, Option<Duration>), Outcome> {
        let prepared: Prepared = self
            .prepare(envelope, content, &[recipient.to_owned()], Hop::Final)
            .await
            .map_err(Outcome::Failed)?;
        if let Some((_, failure)) = prepared.failed.into_iter().next() {
            return Err(Outcome::Failed(failure));
        }
        let Some(payload) = prepared.payload else {
            return Err(Outcome::Failed(Failure::new(
                FailureKind::Other,
                "nothing to deliver",
            )));
        };
        // RFC 3342 §2.1, step 5.3: no `ok` within what is left of
        // noLaterThan is a (timing) failure.
        let (wait, timing) = match prepared.time_left_ms {
            Some(left) if Duration::from_millis(left) < REPLY_TIMEOUT => {
                (Duration::from_millis(left), true)
            }
            _ => (REPLY_TIMEOUT, false),
        };
        Ok((
            payload,
            wait,
            timing,
            prepared.report_after_left_ms.map(Duration::from_millis),
        ))
    }

    /// Sends the transient (350) report for `recipient` (RFC 3342 §2.2.1).
    async fn send_transient(&self, envelope: &Envelope, content: &Bytes, recipient: &str) {
        self.reporter
            .send_transient(envelope, content, &[recipient.to_owned()])
            .await;
    }

    /// Hands the datagram for `recipient` to the gateway of `domain`
    /// ([`crate::gateway`]): the next hop, as far as the `dataHopping`
    /// budget and `dataTiming` are concerned (RFC 3342 §2, §4).
    async fn deliver_gateway(
        &self,
        envelope: &Envelope,
        content: &Bytes,
        domain: &str,
        recipient: &str,
    ) -> Outcome {
        let Some(link) = self.gateways.get(domain) else {
            return Outcome::Failed(Failure::new(
                FailureKind::Policy,
                format!("{domain} has no gateway"),
            ));
        };
        let prepared = match self
            .prepare(envelope, content, &[recipient.to_owned()], Hop::Forward)
            .await
        {
            Ok(prepared) => prepared,
            Err(failure) => return Outcome::Failed(failure),
        };
        if let Some((_, failure)) = prepared.failed.into_iter().next() {
            return Outcome::Failed(failure);
        }
        let Some(payload) = prepared.payload else {
            return Outcome::Failed(Failure::new(FailureKind::Other, "nothing to deliver"));
        };
        link.deliver(&self.ctx, &envelope.originator, recipient, &payload)
            .await
    }

    async fn deliver_remote(
        &self,
        envelope: &Envelope,
        content: &Bytes,
        domain: &str,
        indexes: &[usize],
    ) -> Vec<(usize, Outcome)> {
        let all = |outcome: Outcome| indexes.iter().map(|&i| (i, outcome.clone())).collect();
        let router = self.router.read().clone();
        let targets = match router.route(domain).await {
            Ok(Route::Remote(targets)) => targets,
            Ok(Route::Local) => {
                return all(Outcome::Failed(Failure::new(
                    FailureKind::Policy,
                    format!("{domain} routes to this relay but is not served here"),
                )));
            }
            Err(error) if error.is_permanent() => {
                return all(Outcome::Failed(Failure::new(
                    FailureKind::Dns,
                    error.to_string(),
                )));
            }
            Err(error) => {
                return all(Outcome::Deferred(Failure::new(
                    FailureKind::Dns,
                    error.to_string(),
                )));
            }
        };
        let (channel, via) = match self.outbound.channel(domain, &targets).await {
            Ok(found) => found,
            Err(failure) => return all(Outcome::Deferred(failure)),
        };
        // Built after routing and binding: that time counts (RFC 3342 §2).
        let recipients: Vec<String> = indexes
            .iter()
            .map(|&i| envelope.recipients[i].endpoint.clone())
            .collect();
        let prepared = match self
            .prepare(envelope, content, &recipients, Hop::Forward)
            .await
        {
            Ok(prepared) => prepared,
            Err(failure) => return all(Outcome::Failed(failure)),
        };
        let index_of = |name: &str| {
            indexes
                .iter()
                .copied()
                .find(|&i| envelope.recipients[i].endpoint == name)
        };
        let mut outcomes: Vec<(usize, Outcome)> = prepared
            .failed
            .iter()
            .filter_map(|(name, failure)| Some((index_of(name)?, Outcome::Failed(failure.clone()))))
            .collect();
        let Some(payload) = prepared.payload else {
            return outcomes;
        };
        let outcome = match tokio::time::timeout(REPLY_TIMEOUT, channel.request(payload)).await {
            Ok(Ok(response)) => outcome_of(&response, Some(via)),
            Ok(Err(error)) => {
                self.outbound.drop_session(domain);
                Outcome::Deferred(Failure::new(
                    FailureKind::Connect,
                    format!("{via}: {error}"),
                ))
            }
            Err(_) => {
                self.outbound.drop_session(domain);
                Outcome::Deferred(Failure::new(
                    FailureKind::Connect,
                    format!("{via}: no answer within {REPLY_TIMEOUT:?}"),
                ))
            }
        };
        outcomes.extend(
            prepared
                .recipients
                .iter()
                .filter_map(|name| Some((index_of(name)?, outcome.clone()))),
        );
        outcomes
    }
}

/// What the access service makes of a local delivery.
enum AccessHook {
    /// The recipient is the access service.
    Service,
    /// The recipient is the presence service.
    Presence,
    /// The recipient does not accept data from the originator.
    Blocked(Outcome),
}

/// `ok` → delivered; an `error` with a 4xx code → deferred; 5xx → failed.
fn outcome_of(response: &Response, via: Option<String>) -> Outcome {
    match datagram::check_response(response) {
        Ok(()) => Outcome::Delivered { via },
        Err(refusal) => {
            let code = refusal.code.0;
            let failure = Failure::new(FailureKind::Reply { code }, refusal.text);
            if (400..500).contains(&code) {
                Outcome::Deferred(failure)
            } else {
                Outcome::Failed(failure)
            }
        }
    }
}
