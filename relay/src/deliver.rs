//! Delivery workers: hand one datagram to its recipients of one
//! destination domain and return a typed outcome per recipient. They never
//! write the spool (DESIGN rule 4).
//!
//! * Local domain: a new `data` carrying only that recipient on the channel
//!   of its attachment; success is the endpoint's `ok` (RFC 3340 §4.4.4.1
//!   step 5.3). Not attached: dropped (failed), as RFC 3340 says for the
//!   core service, unless the data asked `hold4Endpoint` (RFC 3342 §3):
//!   then it is held for that exact endpoint ([`crate::hold`] delivers it
//!   when the endpoint attaches; newer datagrams wait for that release).
//!   If the attachment ends before the endpoint answers — another
//!   application attached with `attachOverride` (RFC 3342 §1) — the data
//!   goes to the new attachment.
//! * Foreign domain: a new `data` with those recipients on the pooled
//!   mesh session; success is the next relay's `ok` (step 5.2).

use crate::attachments::Lookup;
use crate::datagram;
use crate::outbound::Outbound;
use crate::route::{Route, Router};
use crate::server::Relay;
use bytes::Bytes;
use imxp_beep::io::Response;
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
    relay: Arc<Relay>,
    router: Router,
    outbound: Outbound,
}

impl Deliverer {
    pub(crate) fn new(relay: Arc<Relay>, router: Router, outbound: Outbound) -> Self {
        Self {
            relay,
            router,
            outbound,
        }
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
                    None => {
                        // Held datagrams for the endpoint go first.
                        self.relay.release.idle(recipient).await;
                        self.deliver_local(content, recipient, envelope.options.hold_for_endpoint)
                            .await
                    }
                };
                outcomes.push((index, outcome));
            }
            return outcomes;
        }
        let outcome = self
            .deliver_remote(envelope, content, domain, indexes)
            .await;
        indexes.iter().map(|&i| (i, outcome.clone())).collect()
    }

    /// The access service's part in local delivery (RFC 3341): datagrams
    /// to `apex=access@<domain>` go to the service; others need `core:data`
    /// for the originator in the recipient's entries (RFC 3340 §4.4.4.1
    /// step 5.3). A blocked datagram fails with a neutral reason, so that a
    /// requested report does not reveal the block (polite blocking, RFC
    /// 2779 §5.4.10); the log says what happened.
    fn access_check(&self, originator: &str, recipient: &str) -> Option<AccessHook> {
        if recipient.starts_with("apex=access@") {
            return Some(AccessHook::Service);
        }
        if self.relay.access.permits_data(originator, recipient) {
            return None;
        }
        tracing::info!(%originator, %recipient, event = "blocked", "core:data not granted");
        Some(AccessHook::Blocked(Outcome::Failed(Failure::new(
            FailureKind::Reply { code: 550 },
            format!("{recipient}: not delivered"),
        ))))
    }

    /// Delivers a datagram held for `endpoint` (it attached): like any
    /// local delivery of a `hold4Endpoint` datagram.
    /// The access check applies as at any delivery (entries may have
    /// changed while it was held).
    pub(crate) async fn deliver_held(
        &self,
        envelope: &Envelope,
        content: &Bytes,
        endpoint: &str,
    ) -> Outcome {
        match self.access_check(&envelope.originator, endpoint) {
            Some(AccessHook::Blocked(outcome)) => outcome,
            Some(AccessHook::Service) | None => self.deliver_local(content, endpoint, true).await,
        }
    }

    /// Sends `content` for `recipient` to the application attached as it;
    /// not attached: [`Outcome::Held`] if `hold`, else failed.
    async fn deliver_local(&self, content: &Bytes, recipient: &str, hold: bool) -> Outcome {
        let payload = match datagram::for_recipients(content, &[recipient.to_owned()]) {
            Ok(payload) => payload,
            Err((code, text)) => {
                return Outcome::Failed(Failure::new(FailureKind::Reply { code }, text));
            }
        };
        let mut handovers = 0;
        let mut waited = Duration::ZERO;
        loop {
            let (channel, ended) = match self.relay.attachments.lookup(recipient) {
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
            let answer = tokio::select! {
                answer = tokio::time::timeout(REPLY_TIMEOUT, channel.request(payload.clone())) => answer,
                () = ended.cancelled() => {
                    // Overridden or detached while in flight: RFC 3342 §1
                    // lets data meant for the old application go to the new.
                    handovers += 1;
                    if handovers > MAX_HANDOVERS {
                        return Outcome::Deferred(Failure::new(
                            FailureKind::Connect,
                            format!("{recipient}: attachments keep ending"),
                        ));
                    }
                    continue;
                }
            };
            return match answer {
                Ok(Ok(response)) => outcome_of(&response, Some("local".into())),
                Ok(Err(_)) if hold && !self.relay.attachments.is_attached(recipient) => {
                    Outcome::Held
                }
                Ok(Err(error)) => Outcome::Deferred(Failure::new(
                    FailureKind::Connect,
                    format!("{recipient}: {error}"),
                )),
                Err(_) => Outcome::Deferred(Failure::new(
                    FailureKind::Connect,
                    format!("{recipient}: no answer within {REPLY_TIMEOUT:?}"),
                )),
            };
        }
    }

    /// After the spool recorded [`Outcome::Held`] for `endpoint`: if it
    /// attached meanwhile (before the hold was durable), release it now.
    pub(crate) fn held_recorded(&self, endpoint: &str) {
        if self.relay.attachments.is_attached(endpoint) {
            self.relay.release.request(endpoint);
        }
    }

    async fn deliver_remote(
        &self,
        envelope: &Envelope,
        content: &Bytes,
        domain: &str,
        indexes: &[usize],
    ) -> Outcome {
        let targets = match self.router.route(domain).await {
            Ok(Route::Remote(targets)) => targets,
            Ok(Route::Local) => {
                return Outcome::Failed(Failure::new(
                    FailureKind::Policy,
                    format!("{domain} routes to this relay but is not served here"),
                ));
            }
            Err(error) if error.is_permanent() => {
                return Outcome::Failed(Failure::new(FailureKind::Dns, error.to_string()));
            }
            Err(error) => {
                return Outcome::Deferred(Failure::new(FailureKind::Dns, error.to_string()));
            }
        };
        let recipients: Vec<String> = indexes
            .iter()
            .map(|&i| envelope.recipients[i].endpoint.clone())
            .collect();
        let payload = match datagram::for_recipients(content, &recipients) {
            Ok(payload) => payload,
            Err((code, text)) => {
                return Outcome::Failed(Failure::new(FailureKind::Reply { code }, text));
            }
        };
        let (channel, via) = match self.outbound.channel(domain, &targets).await {
            Ok(found) => found,
            Err(failure) => return Outcome::Deferred(failure),
        };
        match tokio::time::timeout(REPLY_TIMEOUT, channel.request(payload)).await {
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
        }
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
