//! The report service `apex=report@<domain>` (RFC 3340 §5.1, §6.2; RFC 3342
//! §2, §4): `statusResponse` datagrams to the originator of a datagram
//! that asked for them, enqueued through intake like any datagram (so
//! they are durable, retried and survive restarts).
//!
//! Which reports a recipient's outcome produces at this relay:
//! * `statusRequest` that applies here (`this` and `all`: every relay;
//!   `final`: the relay that delivers to the recipient): 250 when
//!   delivered, or, at a relay that forwards, when handed to the next relay
//!   (the per-hop trace of `targetHop='all'`); the failure's code
//!   otherwise. Decision (docs/decisions.md, Options): a relay that gives up on a
//!   recipient also answers a `final` request, since the final relay never
//!   will.
//! * `dataTiming` `reportErrors`: a timing error report (550) when the
//!   recipient failed because the deadline passed (RFC 3342 §2.1.2).
//! * `dataTiming` `returnTrip`: the final-hop report (250) on local
//!   delivery, with its own `dataTiming noLaterThan=returnTrip` (§2.1.1).
//! * `dataTiming` `reportAfter` ran out: the transient report (350), once
//!   per recipient (§2.2.1): when it runs out while the data waits here
//!   (deferred or held; the spool wakes the datagram then), just before the
//!   data is sent on, or while the endpoint has not answered; the data
//!   still goes on.
//! * `dataHopping` `reportErrors`: 550 when the hop budget ran out (§4).
//!
//! Rules: a datagram that is itself a report never produces one
//! (docs/architecture.md, "Reports never cause reports"); a recipient is reported once (the spool's report state, plus a
//! report id derived from what it reports, so an enqueue repeated after a
//! crash is recognized as a duplicate); reports are limited per originator
//! per minute (`[reports] max_per_originator_per_minute`), the rest dropped,
//! counted and logged.

use crate::context::Context;
use crate::datagram::{self, Incoming};
use crate::options::fresh_trans_id;
use crate::trail::{self, Transition};
use bytes::Bytes;
use imxp_apex::processing::{self, Hop};
use imxp_apex::{
    Content, Data, DataTiming, Destination, Domain, Endpoint, Reply, ReplyCode, StatusResponse,
};
use imxp_spool::Event;
use imxp_spool::{DatagramId, Envelope, Failure, FailureKind, QueueOptions, RecipientState};
use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Why a report is sent (part of its identity).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Kind {
    /// `statusRequest` (RFC 3340 §5.1).
    Status,
    /// `dataTiming` timing error (RFC 3342 §2.1.2).
    Timing,
    /// `dataTiming` final-hop report (RFC 3342 §2.1.1).
    ReturnTrip,
    /// `dataTiming` transient report (RFC 3342 §2.2.1).
    Transient,
    /// `dataHopping` error (RFC 3342 §4).
    Hopping,
}

impl Kind {
    fn tag(self) -> u8 {
        match self {
            Self::Status => 1,
            Self::Timing => 2,
            Self::ReturnTrip => 3,
            Self::Transient => 4,
            Self::Hopping => 5,
        }
    }
}

/// One report to send: a `statusResponse` to `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Report {
    pub(crate) kind: Kind,
    /// The original originator.
    pub(crate) to: Endpoint,
    /// The statusResponse.
    pub(crate) status: StatusResponse,
    /// For the final-hop report: the `returnTrip` to send as its own
    /// `noLaterThan`.
    pub(crate) return_trip: Option<u32>,
}

/// The reply code a failure is reported with: the next hop's or the
/// endpoint's own 5xx code, else 550 (RFC 3340 §5.1, RFC 3342 examples).
pub(crate) fn failure_code(failure: &Failure) -> ReplyCode {
    match failure.kind {
        FailureKind::Reply { code } if (500..600).contains(&code) => ReplyCode(code),
        _ => ReplyCode::ACTION_NOT_TAKEN,
    }
}

/// The reports owed for recipients `indexes` of `envelope` at a relay
/// serving `serves` (pure: the decision table of the module doc).
pub(crate) fn owed(
    envelope: &Envelope,
    data: &Data,
    content: &Content,
    indexes: &[usize],
    serves: impl Fn(&str) -> bool,
) -> Vec<Report> {
    if processing::is_report(data, content) {
        return Vec::new();
    }
    let timing = data.data_timing().ok().flatten();
    let hopping = data.data_hopping().ok().flatten();
    // (kind, transID, returnTrip) → destinations
    let mut grouped: BTreeMap<(Kind, u32, Option<u32>), Vec<Destination>> = BTreeMap::new();
    for &index in indexes {
        let Some(recipient) = envelope.recipients.get(index) else {
            continue;
        };
        let Some(position) = data
            .recipients
            .iter()
            .position(|r| datagram::key(&r.identity) == recipient.endpoint)
        else {
            continue;
        };
        let identity = data.recipients[position].identity.clone();
        let hop = if serves(&recipient.domain()) {
            Hop::Final
        } else {
            Hop::Forward
        };
        let mut add = |kind, trans_id: Option<u32>, return_trip, reply: Reply| {
            if let Some(trans_id) = trans_id {
                grouped
                    .entry((kind, trans_id, return_trip))
                    .or_default()
                    .push(Destination {
                        identity: identity.clone(),
                        reply,
                    });
            }
        };
        match &recipient.state {
            RecipientState::Delivered { via, .. } => {
                if let Some(request) = data.status_request_for(position, hop) {
                    let text = match hop {
                        Hop::Final => String::new(),
                        Hop::Forward => {
                            format!("relayed to {}", via.as_deref().unwrap_or("the next relay"))
                        }
                    };
                    add(
                        Kind::Status,
                        request.trans_id,
                        None,
                        Reply::with_text(ReplyCode::APEX_OK, text),
                    );
                }
                if hop == Hop::Final
                    && let Some((option, timing)) = &timing
                    && timing.return_trip != 0
                {
                    add(
                        Kind::ReturnTrip,
                        option.trans_id,
                        Some(timing.return_trip),
                        Reply::new(ReplyCode::APEX_OK),
                    );
                }
            }
            RecipientState::Failed { error, .. } => {
                let reply = Reply::with_text(failure_code(error), error.text.clone());
                let request = data
                    .status_request_for(position, hop)
                    .or_else(|| data.status_request_for(position, Hop::Final));
                if let Some(request) = request {
                    add(Kind::Status, request.trans_id, None, reply);
                } else if error.kind == FailureKind::Expired
                    && let Some((option, timing)) = &timing
                    && timing.report_errors
                {
                    add(Kind::Timing, option.trans_id, None, reply);
                } else if error.kind == FailureKind::HopLimit
                    && let Some((option, hopping)) = &hopping
                    && hopping.report_errors
                {
                    add(Kind::Hopping, option.trans_id, None, reply);
                }
            }
            _ => {}
        }
    }
    grouped
        .into_iter()
        .map(|((kind, trans_id, return_trip), destinations)| Report {
            kind,
            to: data.originator.identity.clone(),
            status: StatusResponse {
                trans_id,
                destinations,
            },
            return_trip,
        })
        .collect()
}

/// The transient (350) report for `recipients` of a datagram whose
/// `reportAfter` ran out here (RFC 3342 §2.2.1), if it has a dataTiming
/// transID to answer and is not itself a report.
pub(crate) fn transient(data: &Data, content: &Content, recipients: &[String]) -> Option<Report> {
    if processing::is_report(data, content) {
        return None;
    }
    let (option, _) = data.data_timing().ok().flatten()?;
    let destinations: Vec<Destination> = data
        .recipients
        .iter()
        .filter(|r| recipients.contains(&datagram::key(&r.identity)))
        .map(|r| Destination {
            identity: r.identity.clone(),
            reply: Reply::new(ReplyCode::TRANSIENT),
        })
        .collect();
    if destinations.is_empty() {
        return None;
    }
    Some(Report {
        kind: Kind::Transient,
        to: data.originator.identity.clone(),
        status: StatusResponse {
            trans_id: option.trans_id?,
            destinations,
        },
        return_trip: None,
    })
}

/// The report's datagram id: derived from the reporting service, the
/// datagram reported on and what is reported, so the same report enqueued
/// twice (a crash between enqueueing it and confirming it) is a duplicate,
/// while the same status reported by two relays (a `targetHop='all'`
/// trace) is not.
fn report_id(service: &Endpoint, about: DatagramId, report: &Report) -> DatagramId {
    let mut digest = Sha256::new();
    digest.update(b"imxp report\0");
    digest.update(datagram::key(service).as_bytes());
    digest.update([0]);
    digest.update(about.as_bytes());
    digest.update([report.kind.tag()]);
    digest.update(report.status.trans_id.to_be_bytes());
    for destination in &report.status.destinations {
        digest.update(datagram::key(&destination.identity).as_bytes());
        digest.update(destination.reply.code.0.to_be_bytes());
    }
    let hash = digest.finalize();
    let mut id = [0u8; DatagramId::LEN];
    id.copy_from_slice(&hash[..DatagramId::LEN]);
    DatagramId::from_bytes(id)
}

/// Per-originator report counts in the current minute.
#[derive(Debug, Default)]
struct Window {
    start_ms: u64,
    count: u32,
}

/// Per-originator report counts, minute by minute.
#[derive(Debug, Default)]
struct RateLimit {
    windows: Mutex<HashMap<String, Window>>,
}

impl RateLimit {
    /// Whether one more report for `originator` is allowed at `now_ms`
    /// under `limit` per minute (0: none), counting it if so.
    fn allow(&self, originator: &str, now_ms: u64, limit: u32) -> bool {
        if limit == 0 {
            return false;
        }
        let mut windows = self.windows.lock();
        if windows.len() > 10_000 {
            windows.retain(|_, w| now_ms.saturating_sub(w.start_ms) < 60_000);
        }
        let window = windows.entry(originator.to_owned()).or_default();
        if now_ms.saturating_sub(window.start_ms) >= 60_000 {
            *window = Window {
                start_ms: now_ms,
                count: 0,
            };
        }
        if window.count >= limit {
            return false;
        }
        window.count += 1;
        true
    }
}

/// Sends reports for the relay.
pub(crate) struct Reporter {
    ctx: Arc<Context>,
    domain: Option<Domain>,
    limit: RateLimit,
    dropped: AtomicU64,
}

impl Reporter {
    pub(crate) fn new(ctx: Arc<Context>) -> Self {
        let domain = ctx
            .config()
            .domains
            .first()
            .and_then(|d| Domain::parse(d).ok());
        Self {
            ctx,
            domain,
            limit: RateLimit::default(),
            dropped: AtomicU64::new(0),
        }
    }

    /// Sends the reports owed for recipients `indexes` of `envelope`
    /// (handed out by the spool), about the stored datagram `stored`.
    /// True when every one is queued (or there is nothing to report), so
    /// the dispatcher may confirm them to the spool; false leaves them
    /// owed, and the spool hands them out again later.
    pub(crate) async fn send_owed(
        &self,
        envelope: &Envelope,
        stored: &Bytes,
        indexes: &[usize],
    ) -> bool {
        let id = envelope.id;
        let reports = match datagram::parse_stored(stored) {
            Ok((data, content)) => owed(envelope, &data, &content, indexes, |d| {
                self.ctx.config().serves(d)
            }),
            Err(refusal) => {
                tracing::warn!(%id, error = %refusal.text, "stored datagram unreadable; no report");
                Vec::new()
            }
        };
        for report in reports {
            if let Err(error) = self.send(id, report).await {
                tracing::error!(%id, %error, "queueing a report failed; it stays owed");
                return false;
            }
        }
        true
    }

    /// Sends the transient (350) report for each of `recipients` of the
    /// stored datagram `stored` (RFC 3342 §2.2.1): one report per
    /// recipient, so that the waiting and the delivery paths produce the
    /// same report (and the second is a duplicate).
    pub(crate) async fn send_transient(
        &self,
        envelope: &Envelope,
        stored: &Bytes,
        recipients: &[String],
    ) {
        let Ok((data, content)) = datagram::parse_stored(stored) else {
            return;
        };
        for recipient in recipients {
            if let Some(report) = transient(&data, &content, std::slice::from_ref(recipient))
                && let Err(error) = self.send(envelope.id, report).await
            {
                tracing::error!(id = %envelope.id, %error, "queueing the transient report failed");
            }
        }
    }

    /// Sends the transient reports a claim handed out: recipients still
    /// waiting when `reportAfter` ran out (deferred, or held).
    pub(crate) async fn send_transient_due(
        &self,
        envelope: &Envelope,
        stored: &Bytes,
        indexes: &[usize],
    ) {
        if indexes.is_empty() {
            return;
        }
        let recipients: Vec<String> = indexes
            .iter()
            .filter_map(|&i| envelope.recipients.get(i).map(|r| r.endpoint.clone()))
            .collect();
        self.send_transient(envelope, stored, &recipients).await;
    }

    /// Queues `report` about datagram `about` through intake, unless the
    /// originator's rate is exceeded (then it is dropped, counted and
    /// logged).
    pub(crate) async fn send(&self, about: DatagramId, report: Report) -> Result<(), String> {
        let Some(domain) = self.domain.clone() else {
            return Ok(());
        };
        let to = datagram::key(&report.to);
        let now = self.ctx.now_ms();
        let limit = self.ctx.config().reports.max_per_originator_per_minute;
        if !self.limit.allow(&to, now, limit) {
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            self.ctx.metrics.refused("reports_per_originator");
            tracing::warn!(
                id = %about,
                originator = %to,
                dropped_total = dropped,
                "report rate exceeded for this originator; report dropped"
            );
            return Ok(());
        }
        let (mut data, content) = report.status.to_report(domain, report.to.clone());
        let mut options = QueueOptions {
            originated_ms: Some(now),
            ..QueueOptions::default()
        };
        if let Some(return_trip) = report.return_trip {
            data.options.push(
                DataTiming {
                    no_later_than: return_trip,
                    ..DataTiming::default()
                }
                .to_option(fresh_trans_id()),
            );
            options.deadline_ms = Some(now + u64::from(return_trip));
        }
        let id = report_id(&data.originator.identity, about, &report);
        let payload = Bytes::from(data.to_payload(&content));
        let originator = datagram::key(&data.originator.identity);
        let incoming = Incoming {
            originator: datagram::key(&data.originator.identity),
            recipients: vec![to.clone()],
            payload,
            data: Box::new(data),
            content,
            options,
        };
        // Derived, so the same report queued twice across a crash is a
        // duplicate (see report_id).
        let queued = self
            .ctx
            .intake
            .write(incoming, id, imxp_spool::IdOrigin::Derived)
            .await
            .map_err(|e| e.0)?;
        let status = format!(
            "{kind:?} report {id}{again}",
            kind = report.kind,
            again = if queued { "" } else { " (queued before)" }
        );
        trail::record(
            &self.ctx.metrics,
            &Transition {
                event: Event::Reported,
                id: about,
                originator: &originator,
                recipient: &to,
                hop: "local",
                delay_ms: 0,
                status: &status,
            },
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imxp_apex::{ApexOption, DataHopping, TargetHop};
    use imxp_spool::{Recipient, ReportState};

    fn ep(text: &str) -> Endpoint {
        Endpoint::parse(text).unwrap()
    }

    fn envelope(states: Vec<(&str, RecipientState)>) -> Envelope {
        Envelope {
            id: DatagramId::from_bytes([7; 16]),
            originator: "fred@example.com".into(),
            recipients: states
                .into_iter()
                .map(|(endpoint, state)| Recipient {
                    endpoint: endpoint.into(),
                    state,
                    attempts: 1,
                    last_error: None,
                    report: ReportState::Claimed { since_ms: 1 },
                })
                .collect(),
            options: QueueOptions::default(),
            queued_ms: 0,
            expires_ms: 1,
            size: 0,
            admin_hold: false,
            arrival: 0,
        }
    }

    fn delivered() -> RecipientState {
        RecipientState::Delivered {
            at_ms: 1,
            via: Some("relay.rubble.com".into()),
        }
    }

    fn failed(kind: FailureKind, text: &str) -> RecipientState {
        RecipientState::Failed {
            at_ms: 1,
            error: Failure::new(kind, text),
        }
    }

    fn content() -> Content {
        Content::External("cid:1@example.com".into())
    }

    fn serves_example(domain: &str) -> bool {
        domain == "example.com"
    }

    #[test]
    fn rate_limit_per_originator_per_minute() {
        let limit = RateLimit::default();
        let t0 = 1_000_000;
        assert!(limit.allow("fred@a.test", t0, 2));
        assert!(limit.allow("fred@a.test", t0 + 1, 2));
        assert!(
            !limit.allow("fred@a.test", t0 + 2, 2),
            "third in the minute"
        );
        assert!(limit.allow("barney@a.test", t0 + 2, 2), "per originator");
        assert!(limit.allow("fred@a.test", t0 + 60_000, 2), "next minute");
        assert!(!limit.allow("wilma@b.test", t0, 0), "0 turns reports off");
    }

    #[test]
    fn status_request_final_reports_local_delivery_only() {
        // RFC 3340 §5.1: barney@example.com delivered locally → 250.
        let mut data = Data::new(ep("fred@example.com"), [ep("barney@example.com")]);
        data.options.push(ApexOption::status_request(86));
        let env = envelope(vec![("barney@example.com", delivered())]);
        let reports = owed(&env, &data, &content(), &[0], serves_example);
        assert_eq!(reports.len(), 1);
        let (report_data, report_content) = reports[0]
            .status
            .to_report(Domain::parse("example.com").unwrap(), reports[0].to.clone());
        // The RFC's report: from apex=report@example.com to fred, transID 86.
        let expected = StatusResponse::parse(
            b"<statusResponse transID='86'><destination identity='barney@example.com'><reply code='250' /></destination></statusResponse>",
        )
        .unwrap();
        assert_eq!(reports[0].status, expected);
        assert_eq!(
            report_data.originator.identity.to_string(),
            "apex=report@example.com"
        );
        // The report is a report: it produces none.
        assert!(owed(&env, &report_data, &report_content, &[0], serves_example).is_empty());
        // Handed to a next relay: a final request is not answered here.
        let mut data = Data::new(ep("fred@example.com"), [ep("barney@rubble.com")]);
        data.options.push(ApexOption::status_request(86));
        let env = envelope(vec![("barney@rubble.com", delivered())]);
        assert!(owed(&env, &data, &content(), &[0], serves_example).is_empty());
        // ... but a trace (all) is: 250 "relayed".
        data.options[0].target_hop = TargetHop::All;
        let reports = owed(&env, &data, &content(), &[0], serves_example);
        assert_eq!(reports[0].status.destinations[0].reply.code, ReplyCode(250));
        assert!(
            reports[0].status.destinations[0]
                .reply
                .text
                .contains("relay.rubble.com")
        );
    }

    #[test]
    fn failures_carry_their_code() {
        let mut data = Data::new(
            ep("fred@example.com"),
            [ep("barney@example.com"), ep("wilma@rubble.com")],
        );
        data.options.push(ApexOption::status_request(86));
        let env = envelope(vec![
            (
                "barney@example.com",
                failed(FailureKind::Other, "unknown endpoint identity"),
            ),
            (
                "wilma@rubble.com",
                failed(FailureKind::Reply { code: 554 }, "policy"),
            ),
        ]);
        let reports = owed(&env, &data, &content(), &[0, 1], serves_example);
        assert_eq!(reports.len(), 1, "one statusResponse, two destinations");
        let destinations = &reports[0].status.destinations;
        assert_eq!(destinations[0].reply.code, ReplyCode(550));
        assert_eq!(destinations[0].reply.text, "unknown endpoint identity");
        assert_eq!(destinations[1].reply.code, ReplyCode(554));
    }

    #[test]
    fn timing_and_hopping_reports() {
        let mut data = Data::new(ep("fred@example.com"), [ep("barney@example.com")]);
        data.options.push(
            DataTiming {
                no_later_than: 10_000,
                return_trip: 20_000,
                report_errors: true,
                ..DataTiming::default()
            }
            .to_option(86),
        );
        // RFC 3342 §2.1.1: the final-hop report.
        let env = envelope(vec![("barney@example.com", delivered())]);
        let reports = owed(&env, &data, &content(), &[0], serves_example);
        assert_eq!(reports.len(), 1);
        assert_eq!(reports[0].kind, Kind::ReturnTrip);
        assert_eq!(reports[0].return_trip, Some(20_000));
        assert_eq!(reports[0].status.trans_id, 86);
        // RFC 3342 §2.1.2: the timing error report.
        let env = envelope(vec![(
            "barney@example.com",
            failed(FailureKind::Expired, "deadline"),
        )]);
        let reports = owed(&env, &data, &content(), &[0], serves_example);
        assert_eq!(reports[0].kind, Kind::Timing);
        assert_eq!(reports[0].status.destinations[0].reply.code, ReplyCode(550));
        // Other failures are not timing errors.
        let env = envelope(vec![(
            "barney@example.com",
            failed(FailureKind::Other, "not attached"),
        )]);
        assert!(owed(&env, &data, &content(), &[0], serves_example).is_empty());
        // RFC 3342 §4: hop budget.
        let mut data = Data::new(ep("fred@example.com"), [ep("barney@rubble.com")]);
        data.options.push(
            DataHopping {
                no_more_than: 1,
                report_errors: true,
            }
            .to_option(86),
        );
        let env = envelope(vec![(
            "barney@rubble.com",
            failed(FailureKind::HopLimit, "no hops"),
        )]);
        let reports = owed(&env, &data, &content(), &[0], serves_example);
        assert_eq!(reports[0].kind, Kind::Hopping);
        // The transient report: 350 for the dataTiming transID.
        let mut data = Data::new(ep("fred@example.com"), [ep("barney@example.com")]);
        data.options.push(
            DataTiming {
                report_after: 60_000,
                ..DataTiming::default()
            }
            .to_option(86),
        );
        let report = transient(&data, &content(), &["barney@example.com".into()]).unwrap();
        assert_eq!(report.status.destinations[0].reply.code, ReplyCode(350));
        assert_eq!(report.status.trans_id, 86);
        // Same report, same id; different content, different id.
        let about = DatagramId::from_bytes([1; 16]);
        let a = ep("apex=report@a.test");
        let b = ep("apex=report@b.test");
        assert_eq!(
            report_id(&a, about, &report),
            report_id(&a, about, &report.clone())
        );
        assert_ne!(report_id(&a, about, &report), report_id(&b, about, &report));
        let mut other = report.clone();
        other.status.destinations[0].reply.code = ReplyCode(250);
        assert_ne!(report_id(&a, about, &report), report_id(&a, about, &other));
    }
}
