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
                    None => self.deliver_local(content, recipient).await,
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

    async fn deliver_local(&self, content: &Bytes, recipient: &str) -> Outcome {
        let Some(channel) = self.relay.attachments.channel(recipient) else {
            return Outcome::Failed(Failure::new(
                FailureKind::Other,
                format!("{recipient} is not attached"),
            ));
        };
        let payload = match datagram::for_recipients(content, &[recipient.to_owned()]) {
            Ok(payload) => payload,
            Err((code, text)) => {
                return Outcome::Failed(Failure::new(FailureKind::Reply { code }, text));
            }
        };
        match tokio::time::timeout(REPLY_TIMEOUT, channel.request(payload)).await {
            Ok(Ok(response)) => outcome_of(&response, Some("local".into())),
            Ok(Err(error)) => Outcome::Deferred(Failure::new(
                FailureKind::Connect,
                format!("{recipient}: {error}"),
            )),
            Err(_) => Outcome::Deferred(Failure::new(
                FailureKind::Connect,
                format!("{recipient}: no answer within {REPLY_TIMEOUT:?}"),
            )),
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
