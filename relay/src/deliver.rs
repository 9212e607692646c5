//! Delivery workers: hand one datagram to its recipients of one
//! destination domain and return a typed outcome per recipient. They never
//! write the spool (DESIGN rule 4).
//!
//! * Local domain: a new `data` carrying only that recipient on the channel
//!   of its attachment; success is the endpoint's `ok` (RFC 3340 §4.4.4.1
//!   step 5.3). Not attached: dropped, as RFC 3340 says for the core
//!   service (hold4Endpoint comes with the options work).
//! * Foreign domain: a new `data` with those recipients on the pooled
//!   mesh session; success is the next relay's `ok` (step 5.2).
//!
//! Each new `data` is built just before it is sent
//! ([`datagram::prepare`]): per-originator and per-recipient options are
//! checked, `targetHop='this'` options removed, `dataTiming` reduced by the
//! time spent here (queueing, routing and binding included: RFC 3342 §2),
//! and `dataHopping` decremented on the way to a next relay (§4).

use crate::datagram::{self, Prepared};
use crate::outbound::Outbound;
use crate::report::Reporter;
use crate::route::{Route, Router};
use crate::server::Relay;
use bytes::Bytes;
use imxp_apex::Hop;
use imxp_beep::io::Response;
use imxp_spool::{Envelope, Failure, FailureKind, Outcome};
use std::sync::Arc;
use std::time::Duration;

/// Time an endpoint or a next relay has to answer a `data`.
const REPLY_TIMEOUT: Duration = Duration::from_secs(60);

pub(crate) struct Deliverer {
    relay: Arc<Relay>,
    router: Router,
    outbound: Outbound,
    reporter: Arc<Reporter>,
}

impl Deliverer {
    pub(crate) fn new(
        relay: Arc<Relay>,
        router: Router,
        outbound: Outbound,
        reporter: Arc<Reporter>,
    ) -> Self {
        Self {
            relay,
            router,
            outbound,
            reporter,
        }
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
        let elapsed = self.relay.spool.now_ms().saturating_sub(envelope.queued_ms);
        let prepared = datagram::prepare(content, recipients, hop, elapsed)
            .map_err(|(code, text)| Failure::new(FailureKind::Reply { code }, text))?;
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
        if self.relay.config.serves(domain) {
            let mut outcomes = Vec::new();
            for &index in indexes {
                let recipient = &envelope.recipients[index].endpoint;
                let outcome = match self.access_check(&envelope.originator, recipient) {
                    Some(AccessHook::Service) => {
                        crate::access::serve(&self.relay, recipient, &envelope.originator, content)
                            .await
                    }
                    Some(AccessHook::Blocked(outcome)) => outcome,
                    None => self.deliver_local(envelope, content, recipient).await,
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
    fn access_check(&self, originator: &str, recipient: &str) -> Option<AccessHook> {
        if recipient.starts_with("apex=access@") {
            return Some(AccessHook::Service);
        }
        if self.relay.access.permits_data(originator, recipient) {
            return None;
        }
        tracing::info!(%originator, %recipient, event = "blocked", "core:data not granted");
        // Exactly what an endpoint that is not attached gets, so that a
        // report cannot tell the two apart.
        Some(AccessHook::Blocked(Outcome::Failed(Failure::new(
            FailureKind::Other,
            format!("{recipient} is not attached"),
        ))))
    }

    async fn deliver_local(
        &self,
        envelope: &Envelope,
        content: &Bytes,
        recipient: &str,
    ) -> Outcome {
        let Some(channel) = self.relay.attachments.channel(recipient) else {
            return Outcome::Failed(Failure::new(
                FailureKind::Other,
                format!("{recipient} is not attached"),
            ));
        };
        let prepared = match self
            .prepare(envelope, content, &[recipient.to_owned()], Hop::Final)
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
        // RFC 3342 §2.1, step 5.3: no `ok` within what is left of
        // noLaterThan is a (timing) failure.
        let (wait, timing) = match prepared.time_left_ms {
            Some(left) if Duration::from_millis(left) < REPLY_TIMEOUT => {
                (Duration::from_millis(left), true)
            }
            _ => (REPLY_TIMEOUT, false),
        };
        let started = tokio::time::Instant::now();
        let request = channel.request(payload);
        tokio::pin!(request);
        // RFC 3342 §2.2, step 5.3: no `ok` within what is left of
        // reportAfter → the transient report, and keep waiting.
        if let Some(left) = prepared.report_after_left_ms
            && Duration::from_millis(left) < wait
            && let Err(_) = tokio::time::timeout(Duration::from_millis(left), &mut request).await
        {
            // Not answered yet: report, then wait for the rest.
            self.send_transient(envelope, content, recipient).await;
        }
        let answered = tokio::time::timeout_at(started + wait, &mut request).await;
        match answered {
            Ok(Ok(response)) => outcome_of(&response, Some("local".into())),
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
        }
    }

    /// Sends the transient (350) report for `recipient` (RFC 3342 §2.2.1).
    async fn send_transient(&self, envelope: &Envelope, content: &Bytes, recipient: &str) {
        self.reporter
            .send_transient(envelope, content, &[recipient.to_owned()])
            .await;
    }

    async fn deliver_remote(
        &self,
        envelope: &Envelope,
        content: &Bytes,
        domain: &str,
        indexes: &[usize],
    ) -> Vec<(usize, Outcome)> {
        let all = |outcome: Outcome| indexes.iter().map(|&i| (i, outcome.clone())).collect();
        let targets = match self.router.route(domain).await {
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
    /// The recipient does not accept data from the originator.
    Blocked(Outcome),
}

/// `ok` → delivered; an `error` with a 4xx code → deferred; 5xx → failed.
fn outcome_of(response: &Response, via: Option<String>) -> Outcome {
    match datagram::check_response(response) {
        Ok(()) => Outcome::Delivered { via },
        Err((code, text)) => {
            let failure = Failure::new(FailureKind::Reply { code }, text);
            if (400..500).contains(&code) {
                Outcome::Deferred(failure)
            } else {
                Outcome::Failed(failure)
            }
        }
    }
}
