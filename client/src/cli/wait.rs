//! `imxp send --wait`: which reports a datagram's options will bring
//! (RFC 3340 §5.1 statusRequest; RFC 3342 §2 dataTiming, §4 dataHopping),
//! and what the ones received so far say about each recipient.
//!
//! A recipient's outcome is known from a report that ends its story:
//! * `statusRequest`: the report for it (with `targetHop='all'`, the one
//!   from the relay of the recipient's own domain, or any failure: the
//!   earlier relays only report handing it on);
//! * `dataTiming`: the final-hop report of `returnTrip` (250) or a timing
//!   error (5xx); the transient report of `reportAfter` (350) says only that
//!   it is late;
//! * `dataHopping`: the hop-limit error.
//!
//! When the datagram asked for nothing that reports a delivery (neither
//! `statusRequest` nor `returnTrip`), any report about a recipient is all
//! that will come, so it settles the wait for that recipient.

use super::options::{Asked, AskedKind};
use imxp_apex::{Endpoint, ReplyCode, StatusResponse, TargetHop};

/// Exit status when every recipient was delivered.
pub(crate) const EXIT_DELIVERED: u8 = 0;
/// Exit status when the reports did not arrive in time, or do not tell.
pub(crate) const EXIT_UNKNOWN: u8 = 1;
/// Exit status when a recipient failed.
pub(crate) const EXIT_FAILED: u8 = 3;

/// The reports awaited for one datagram.
#[derive(Debug)]
pub(crate) struct Awaited {
    asked: Vec<Asked>,
    recipients: Vec<Recipient>,
}

#[derive(Debug)]
struct Recipient {
    endpoint: Endpoint,
    /// The code that ended its story, if known.
    outcome: Option<ReplyCode>,
    /// Some report about it arrived.
    reported: bool,
}

impl Awaited {
    /// What `asked` will bring about `recipients`.
    pub(crate) fn new(asked: Vec<Asked>, recipients: &[Endpoint]) -> Self {
        Self {
            asked,
            recipients: recipients
                .iter()
                .map(|endpoint| Recipient {
                    endpoint: endpoint.clone(),
                    outcome: None,
                    reported: false,
                })
                .collect(),
        }
    }

    /// True if an option asked for reports delivery itself.
    fn tells_delivery(&self) -> bool {
        self.asked.iter().any(|a| match &a.kind {
            AskedKind::Status(_) => true,
            AskedKind::Timing(timing) => timing.return_trip != 0,
            AskedKind::Hopping(_) => false,
        })
    }

    /// Takes in a report that `reporter` (a relay's report service) sent;
    /// false if it answers none of this datagram's options.
    pub(crate) fn take(&mut self, reporter: &Endpoint, report: &StatusResponse) -> bool {
        let Some(kind) = self
            .asked
            .iter()
            .find(|a| a.trans_id == report.trans_id)
            .map(|a| a.kind.clone())
        else {
            return false;
        };
        for destination in &report.destinations {
            let Some(recipient) = self
                .recipients
                .iter_mut()
                .find(|r| r.endpoint == destination.identity)
            else {
                continue;
            };
            let code = destination.reply.code;
            let ends = match &kind {
                AskedKind::Status(TargetHop::All) => {
                    !code.is_positive() || reporter.domain() == recipient.endpoint.domain()
                }
                AskedKind::Status(_) => true,
                AskedKind::Timing(_) => code != ReplyCode(350),
                AskedKind::Hopping(_) => true,
            };
            recipient.reported = true;
            // A failure stands; a success does not hide an earlier failure.
            if ends && recipient.outcome.is_none_or(|known| known.is_positive()) {
                recipient.outcome = Some(code);
            }
        }
        true
    }

    /// True once nothing more is awaited.
    pub(crate) fn done(&self) -> bool {
        let tells = self.tells_delivery();
        self.recipients
            .iter()
            .all(|r| r.outcome.is_some() || (!tells && r.reported))
    }

    /// The recipients whose outcome is not known yet.
    pub(crate) fn unknown(&self) -> Vec<&Endpoint> {
        self.recipients
            .iter()
            .filter(|r| r.outcome.is_none())
            .map(|r| &r.endpoint)
            .collect()
    }

    /// 3 if a recipient failed, 0 if every one was delivered, else 1.
    pub(crate) fn exit_status(&self) -> u8 {
        let outcomes: Vec<Option<ReplyCode>> = self.recipients.iter().map(|r| r.outcome).collect();
        if outcomes.iter().flatten().any(|code| !code.is_positive()) {
            EXIT_FAILED
        } else if outcomes
            .iter()
            .all(|o| o.is_some_and(ReplyCode::is_positive))
        {
            EXIT_DELIVERED
        } else {
            EXIT_UNKNOWN
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imxp_apex::{DataHopping, DataTiming, Destination, Reply};

    fn ep(text: &str) -> Endpoint {
        Endpoint::parse(text).unwrap()
    }

    fn report(trans_id: u32, outcomes: &[(&str, u16)]) -> StatusResponse {
        StatusResponse {
            trans_id,
            destinations: outcomes
                .iter()
                .map(|(identity, code)| Destination {
                    identity: ep(identity),
                    reply: Reply::new(ReplyCode(*code)),
                })
                .collect(),
        }
    }

    fn status(hop: TargetHop) -> Asked {
        Asked {
            trans_id: 7,
            kind: AskedKind::Status(hop),
        }
    }

    #[test]
    fn status_reports_settle_each_recipient() {
        let mut awaited = Awaited::new(
            vec![status(TargetHop::Final)],
            &[ep("wilma@b.test"), ep("betty@b.test")],
        );
        let reporter = ep("apex=report@b.test");
        assert!(!awaited.take(&reporter, &report(8, &[("wilma@b.test", 250)])));
        assert!(awaited.take(&reporter, &report(7, &[("wilma@b.test", 250)])));
        assert!(!awaited.done());
        assert_eq!(awaited.exit_status(), EXIT_UNKNOWN);
        assert!(awaited.take(&reporter, &report(7, &[("betty@b.test", 250)])));
        assert!(awaited.done());
        assert_eq!(awaited.exit_status(), EXIT_DELIVERED);
        awaited.take(&reporter, &report(7, &[("betty@b.test", 550)]));
        assert_eq!(awaited.exit_status(), EXIT_FAILED);
    }

    #[test]
    fn a_trace_waits_for_the_recipients_relay() {
        let mut awaited = Awaited::new(vec![status(TargetHop::All)], &[ep("wilma@b.test")]);
        awaited.take(
            &ep("apex=report@a.test"),
            &report(7, &[("wilma@b.test", 250)]),
        );
        assert!(!awaited.done(), "handed on by a.test only");
        awaited.take(
            &ep("apex=report@b.test"),
            &report(7, &[("wilma@b.test", 250)]),
        );
        assert!(awaited.done());
        assert_eq!(awaited.exit_status(), EXIT_DELIVERED);
    }

    #[test]
    fn timing_reports() {
        let timing = |return_trip| Asked {
            trans_id: 9,
            kind: AskedKind::Timing(DataTiming {
                return_trip,
                report_after: 1000,
                ..DataTiming::default()
            }),
        };
        let reporter = ep("apex=report@b.test");
        let mut awaited = Awaited::new(vec![timing(20_000)], &[ep("wilma@b.test")]);
        awaited.take(&reporter, &report(9, &[("wilma@b.test", 350)]));
        assert!(!awaited.done(), "late is not delivered");
        awaited.take(&reporter, &report(9, &[("wilma@b.test", 250)]));
        assert!(awaited.done());
        assert_eq!(awaited.exit_status(), EXIT_DELIVERED);
        // Without returnTrip the transient report is all that will come.
        let mut awaited = Awaited::new(vec![timing(0)], &[ep("wilma@b.test")]);
        awaited.take(&reporter, &report(9, &[("wilma@b.test", 350)]));
        assert!(awaited.done());
        assert_eq!(awaited.exit_status(), EXIT_UNKNOWN);
        let mut awaited = Awaited::new(
            vec![Asked {
                trans_id: 3,
                kind: AskedKind::Hopping(DataHopping {
                    no_more_than: 1,
                    report_errors: true,
                }),
            }],
            &[ep("wilma@b.test")],
        );
        awaited.take(&reporter, &report(3, &[("wilma@b.test", 550)]));
        assert!(awaited.done());
        assert_eq!(awaited.exit_status(), EXIT_FAILED);
    }
}
