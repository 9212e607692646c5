//! APEX payloads as the relay handles them (RFC 3340 §4): what a MSG asks
//! for, the stored form of an accepted datagram, the new `data` built for
//! each next hop, and the replies.
//!
//! The spool keeps the MSG payload exactly as received; each delivery
//! re-reads it and writes a new `data` naming only the recipients of that
//! hop, with the content part carried octet for octet (docs/architecture.md, "Content is opaque").

use crate::identity::{self, Sender};
use crate::refusal::Refusal;
use bytes::Bytes;
use imxp_apex::{
    Bind, Content, Data, Domain, Endpoint, ErrorReply, Hop, Limits, Operation, ReplyCode, Response,
};
use imxp_beep::io::Channel;
use imxp_spool::{DatagramId, Failure, FailureKind, IdOrigin, Outcome, QueueOptions};

/// A stored datagram delivered to one of the relay's own services
/// (`apex=access@…`, `apex=presence@…`).
pub(crate) struct ServiceRequest {
    /// The service endpoint it was addressed to.
    pub(crate) service: Endpoint,
    /// Who sent it.
    pub(crate) originator: Endpoint,
    /// What it carries.
    pub(crate) content: Content,
}

impl ServiceRequest {
    /// Reads the stored datagram `stored` from `originator` to `service`.
    /// `Err` is the outcome to record instead: failed if it does not read
    /// as a `data` between two endpoints; delivered (and dropped, logged
    /// as `ignored`) if it comes from an APEX service, since answering a
    /// service's datagram could loop.
    pub(crate) fn read(service: &str, originator: &str, stored: &Bytes) -> Result<Self, Outcome> {
        let (Ok(service), Ok(originator)) = (Endpoint::parse(service), Endpoint::parse(originator))
        else {
            return Err(Outcome::Failed(Failure::new(
                FailureKind::Other,
                "unparsable endpoint in the envelope",
            )));
        };
        if originator.is_service() {
            tracing::info!(%originator, %service, event = "service-ignored", "datagram from a service dropped");
            return Err(Outcome::Delivered {
                via: Some(service.local()),
            });
        }
        let parsed =
            Operation::parse_bytes(stored, &Limits::default().with_max_payload(usize::MAX));
        let Some((_, content)) = parsed.ok().and_then(|p| p.into_data()) else {
            return Err(Outcome::Failed(Failure::new(
                FailureKind::Other,
                "stored datagram is not a data",
            )));
        };
        Ok(Self {
            service,
            originator,
            content,
        })
    }
}

/// The APEX profile URI (RFC 3340 §4.2).
pub(crate) const APEX_PROFILE: &str = "http://iana.org/beep/APEX";

/// A `data` accepted for intake.
#[derive(Debug, Clone)]
pub(crate) struct Incoming {
    /// Canonical originator.
    pub(crate) originator: String,
    /// Canonical recipients.
    pub(crate) recipients: Vec<String>,
    /// The MSG payload as received (or with the operator's ingress options
    /// added, [`crate::options::at_intake`]).
    pub(crate) payload: Bytes,
    /// The parsed `data` and its content.
    pub(crate) data: Box<Data>,
    /// Its content (sharing the payload's bytes).
    pub(crate) content: Content,
    /// What the spool needs of its options (filled in by
    /// [`crate::options::at_intake`]).
    pub(crate) options: QueueOptions,
}

/// What a MSG on an APEX channel asks for.
#[derive(Debug)]
pub(crate) enum Request {
    Attach {
        endpoint: Endpoint,
        trans_id: u32,
        /// The attach carries `attachOverride` (RFC 3342 §1).
        take_over: bool,
    },
    Bind {
        domain: Domain,
        trans_id: u32,
    },
    Terminate {
        trans_id: u32,
    },
    Data(Incoming),
}

/// The canonical text of an endpoint: local part as written, domain in
/// lower case (RFC 3340 §2.2.1; docs/decisions.md, APEX core).
pub(crate) fn key(endpoint: &Endpoint) -> String {
    format!("{}@{}", endpoint.local(), endpoint.domain().canonical())
}

/// An authenticated user may act as itself and its subaddresses, never as
/// a service (`apex=…`).
pub(crate) fn may_act_as(user: &str, endpoint: &Endpoint) -> bool {
    !endpoint.is_service() && key(&endpoint.base()) == user
}

fn limits(max_message_size: usize) -> Limits {
    Limits::default().with_max_payload(max_message_size)
}

/// Parses a MSG payload.
pub(crate) fn parse_request(payload: &Bytes, max_message_size: usize) -> Result<Request, Refusal> {
    let parsed = Operation::parse_bytes(payload, &limits(max_message_size))
        .map_err(|e| Refusal::from(&e))?;
    Ok(match parsed.operation {
        Operation::Attach(attach) => attach_request(attach),
        Operation::Bind(bind) => Request::Bind {
            domain: bind.relay,
            trans_id: bind.trans_id,
        },
        Operation::Terminate(terminate) => Request::Terminate {
            trans_id: terminate.trans_id,
        },
        Operation::Data(data) => {
            let content = parsed
                .content
                .ok_or_else(|| Refusal::syntax("data without content"))?;
            let originator = key(&data.originator.identity);
            let recipients: Vec<String> = data.recipient_identities().map(key).collect();
            Request::Data(Incoming {
                originator,
                recipients,
                payload: payload.clone(),
                data: Box::new(data),
                content,
                options: QueueOptions::default(),
            })
        }
    })
}

/// An attach request; of its options only `attachOverride` matters here
/// (§4.4.1 step 4: `targetHop` and `transID` are ignored in attach).
fn attach_request(attach: imxp_apex::Attach) -> Request {
    Request::Attach {
        take_over: attach
            .options
            .iter()
            .any(|o| o.is_internal(imxp_apex::party::ATTACH_OVERRIDE)),
        endpoint: attach.endpoint,
        trans_id: attach.trans_id,
    }
}

/// Parses the init content of an APEX `<start>` (an attach or a bind).
pub(crate) fn parse_init(init: &[u8]) -> Result<Request, Refusal> {
    match Operation::parse_init(init).map_err(|e| Refusal::from(&e))? {
        Operation::Attach(attach) => Ok(attach_request(attach)),
        Operation::Bind(bind) => Ok(Request::Bind {
            domain: bind.relay,
            trans_id: bind.trans_id,
        }),
        other => Err(Refusal::parameter_syntax(format!(
            "{} cannot be init content",
            other.name()
        ))),
    }
}

impl Incoming {
    /// The spool id of this datagram as one handed over by `sender`, and
    /// whether it is a dedup key ([`identity::identify`]).
    pub(crate) fn identity(&self, sender: &Sender, now_ms: u64) -> (DatagramId, IdOrigin) {
        identity::identify(
            sender,
            &self.originator,
            &self.recipients,
            &self.data,
            &self.content,
            now_ms,
        )
    }
}

/// Parses a stored payload back into its `data` and content.
pub(crate) fn parse_stored(stored: &Bytes) -> Result<(Data, Content), Refusal> {
    let parsed = Operation::parse_bytes(stored, &Limits::default().with_max_payload(usize::MAX))
        .map_err(|e| Refusal::from(&e))?;
    parsed
        .into_data()
        .ok_or_else(|| Refusal::syntax("stored datagram is not a data"))
}

/// The new `data` for one transmission (RFC 3340 §4.4.4.1 steps 5.2 and
/// 5.3), with the option rules of RFC 3340 §5 and RFC 3342 applied.
#[derive(Debug)]
pub(crate) struct Prepared {
    /// The payload to send, if any recipient is left.
    pub(crate) payload: Option<Bytes>,
    /// The recipients that may be sent to (canonical).
    pub(crate) recipients: Vec<String>,
    /// Recipients that fail before sending, and why.
    pub(crate) failed: Vec<(String, Failure)>,
    /// `reportAfter` ran out at this hop: a transient (350) report is due
    /// for the recipients sent to (RFC 3342 §2.2).
    pub(crate) report_transient: bool,
    /// What is left of `noLaterThan`, if set: the time the next hop or the
    /// endpoint has to answer (RFC 3342 §2.1, step 5.3).
    pub(crate) time_left_ms: Option<u64>,
    /// What is left of `reportAfter`, if set: without an answer by then,
    /// the transient report is due (RFC 3342 §2.2, step 5.3).
    pub(crate) report_after_left_ms: Option<u64>,
}

/// Builds the `data` for `recipients` of the stored datagram, transmitted
/// as `hop` after `elapsed_ms` at this relay: per-originator and
/// per-recipient mustUnderstand options that apply and are not understood
/// fail their recipient (504, after `ok`: docs/decisions.md, APEX core);
/// `targetHop='this'` options are removed; the `dataTiming` counters are
/// reduced by `elapsed_ms` (noLaterThan run out: the recipients fail as
/// expired, nothing is sent); going to a next relay, the `dataHopping`
/// budget is decremented (run out: the recipients fail, nothing is sent);
/// the hop identity `hop_id` (this relay's id for the datagram,
/// [`imxp_apex::hop_id`]) replaces the previous hop's, so the receiver can
/// recognise a retransmission. Identities and content are kept octet for
/// octet (docs/architecture.md, "Content is opaque").
pub(crate) fn prepare(
    stored: &Bytes,
    recipients: &[String],
    hop: Hop,
    elapsed_ms: u64,
    hop_id: &DatagramId,
) -> Result<Prepared, Refusal> {
    let (mut data, content) = parse_stored(stored)?;
    let mut failed = Vec::new();
    let mut keep = Vec::new();
    for (index, recipient) in data.recipients.iter().enumerate() {
        let name = key(&recipient.identity);
        if !recipients.contains(&name) {
            continue;
        }
        match data.recipient_not_understood(index, hop) {
            Some(option) => failed.push((
                name,
                Failure::new(
                    FailureKind::Reply {
                        code: imxp_apex::processing::NOT_UNDERSTOOD.0,
                    },
                    imxp_apex::processing::not_understood_text(option),
                ),
            )),
            None => keep.push(index),
        }
    }
    let mut index = 0;
    data.recipients.retain(|_| {
        index += 1;
        keep.contains(&(index - 1))
    });
    let names: Vec<String> = data.recipient_identities().map(key).collect();
    let mut prepared = Prepared {
        payload: None,
        recipients: Vec::new(),
        failed,
        report_transient: false,
        time_left_ms: None,
        report_after_left_ms: None,
    };
    if names.is_empty() {
        return Ok(prepared);
    }
    let fail_all = |prepared: &mut Prepared, failure: Failure| {
        prepared
            .failed
            .extend(names.iter().map(|n| (n.clone(), failure.clone())));
    };
    data.strip_this();
    imxp_apex::hop_id::set(&mut data, hop_id.as_bytes());
    match data.data_timing() {
        Ok(Some((_, timing))) => {
            let step = timing.elapse(elapsed_ms);
            if step.expired {
                fail_all(
                    &mut prepared,
                    Failure::new(
                        FailureKind::Expired,
                        format!(
                            "dataTiming noLaterThan ({} ms) ran out after {elapsed_ms} ms here",
                            timing.no_later_than
                        ),
                    ),
                );
                return Ok(prepared);
            }
            prepared.report_transient = step.report_transient;
            if step.timing.no_later_than != 0 {
                prepared.time_left_ms = Some(u64::from(step.timing.no_later_than));
            }
            if step.timing.report_after != 0 {
                prepared.report_after_left_ms = Some(u64::from(step.timing.report_after));
            }
            data.set_data_timing(&step.timing);
        }
        Ok(None) => {}
        Err(error) => {
            fail_all(
                &mut prepared,
                Failure::new(
                    FailureKind::Reply {
                        code: ReplyCode::PARAMETER_SYNTAX_ERROR.0,
                    },
                    error.to_string(),
                ),
            );
            return Ok(prepared);
        }
    }
    if hop == Hop::Forward {
        match data.data_hopping() {
            Ok(Some((_, hopping))) => match hopping.decrement() {
                Some(next) => data.set_data_hopping(&next),
                None => {
                    fail_all(
                        &mut prepared,
                        Failure::new(
                            FailureKind::HopLimit,
                            "dataHopping noMoreThan ran out: not sent to a further relay",
                        ),
                    );
                    return Ok(prepared);
                }
            },
            Ok(None) => {}
            Err(error) => {
                fail_all(
                    &mut prepared,
                    Failure::new(
                        FailureKind::Reply {
                            code: ReplyCode::PARAMETER_SYNTAX_ERROR.0,
                        },
                        error.to_string(),
                    ),
                );
                return Ok(prepared);
            }
        }
    }
    prepared.payload = Some(Bytes::from(data.to_payload(&content)));
    prepared.recipients = names;
    Ok(prepared)
}

/// The RPY payload `<ok />`.
pub(crate) fn ok_payload() -> Bytes {
    Bytes::from_static(imxp_apex::reply::OK_PAYLOAD)
}

/// An ERR payload with an `<error>`.
pub(crate) fn error_payload(code: ReplyCode, text: &str) -> Bytes {
    Bytes::from(ErrorReply::new(code, text).to_payload())
}

/// Answers MSG `msgno`: RPY `<ok />`, or ERR with the refusal.
pub(crate) async fn answer(
    handle: &imxp_beep::io::ChannelHandle,
    msgno: u32,
    outcome: Result<(), Refusal>,
) -> Result<(), imxp_beep::io::DriverError> {
    match outcome {
        Ok(()) => handle.reply(msgno, ok_payload()).await,
        Err(refusal) => {
            handle
                .reply_error(msgno, error_payload(refusal.code, &refusal.text))
                .await
        }
    }
}

/// `<ok />` as init reply.
pub(crate) fn ok_init() -> String {
    Response::Ok.to_xml()
}

/// The reply to an init (an `attach` or `bind` in `<start>`): `<ok />`
/// or the `<error>`.
pub(crate) fn init_reply(outcome: Result<(), Refusal>) -> String {
    match outcome {
        Ok(()) => ok_init(),
        Err(refusal) => ErrorReply::new(refusal.code, refusal.text).to_xml(),
    }
}

/// A `bind` for init content.
pub(crate) fn bind_init(domain: &str, trans_id: u32) -> String {
    match Domain::parse(domain) {
        Ok(domain) => Bind::new(domain, trans_id).to_xml(),
        Err(_) => String::new(),
    }
}

/// A `bind` MSG payload.
pub(crate) fn bind_payload(domain: &str, trans_id: u32) -> Vec<u8> {
    match Domain::parse(domain) {
        Ok(domain) => Bind::new(domain, trans_id).to_payload(),
        Err(_) => Vec::new(),
    }
}

/// Checks the init reply of a start: `<ok />` or an `<error>`.
pub(crate) fn check_init_reply(init: Option<&[u8]>) -> Result<(), Refusal> {
    let init = init.ok_or_else(|| Refusal::syntax("the peer did not answer the init"))?;
    match Response::parse_init(init).map_err(|e| Refusal::from(&e))? {
        Response::Ok => Ok(()),
        Response::Error(error) => Err(Refusal::new(error.code, error.text)),
    }
}

/// Checks the answer to a MSG: RPY `<ok />`, or ERR with an `<error>`.
pub(crate) fn check_response(response: &imxp_beep::io::Response) -> Result<(), Refusal> {
    let payload = match response {
        imxp_beep::io::Response::Reply(payload) | imxp_beep::io::Response::Error(payload) => {
            payload
        }
        imxp_beep::io::Response::Answers(_) => {
            return Err(Refusal::syntax("one-to-many answer to an APEX operation"));
        }
    };
    match Response::parse(payload).map_err(|e| Refusal::from(&e))? {
        Response::Ok => Ok(()),
        Response::Error(error) => Err(Refusal::new(error.code, error.text)),
    }
}

/// Serves the peer's MSGs on an outbound mesh channel: `terminate` is
/// acknowledged (the session pool notices when the channel goes), anything
/// else refused — we deliver to that relay, it does not deliver to us here.
pub(crate) async fn drain_outbound_channel(mut channel: Channel) {
    while let Some(message) = channel.next_message().await {
        let reply = match Operation::parse(&message.payload) {
            Ok(parsed) if matches!(parsed.operation, Operation::Terminate(_)) => {
                channel.reply(message.msgno, ok_payload()).await
            }
            _ => {
                channel
                    .reply_error(
                        message.msgno,
                        error_payload(
                            ReplyCode::ACTION_NOT_TAKEN,
                            "this channel carries data to you only",
                        ),
                    )
                    .await
            }
        };
        if reply.is_err() {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imxp_apex::{ApexOption, DataHopping, DataTiming, MimePart, Recipient, TargetHop};

    const HOP: DatagramId = DatagramId::from_bytes([5; 16]);

    fn ep(text: &str) -> Endpoint {
        Endpoint::parse(text).unwrap()
    }

    /// A stored datagram from fred@a.test to `to`, with `options`.
    fn stored(to: &[&str], options: Vec<ApexOption>) -> (Bytes, MimePart) {
        let part = MimePart::new("text/plain", b"hi", &Domain::parse("a.test").unwrap()).unwrap();
        let mut data = Data::new(ep("fred@a.test"), to.iter().map(|t| ep(t)));
        data.options = options;
        let content = Content::Part(part.clone());
        (Bytes::from(data.to_payload(&content)), part)
    }

    fn sent(prepared: &Prepared) -> (Data, Content) {
        parse_stored(prepared.payload.as_ref().expect("a payload")).unwrap()
    }

    #[test]
    fn keeps_content_and_selects_recipients() {
        let (payload, part) = stored(&["wilma@b.test", "betty@b.test", "x@c.test"], Vec::new());
        let names = ["wilma@b.test".to_owned(), "betty@b.test".to_owned()];
        let prepared = prepare(&payload, &names, Hop::Forward, 5, &HOP).unwrap();
        assert_eq!(prepared.recipients, names);
        assert!(prepared.failed.is_empty());
        let (data, content) = sent(&prepared);
        assert_eq!(data.recipients.len(), 2);
        let Content::Part(out) = content else {
            panic!("a part")
        };
        assert_eq!(out.raw(), part.raw(), "octet for octet");
    }

    #[test]
    fn removes_this_and_reduces_counters() {
        let timing = DataTiming {
            no_later_than: 10_000,
            report_after: 3_000,
            ..DataTiming::default()
        };
        let hopping = DataHopping {
            no_more_than: 3,
            report_errors: true,
        };
        let (payload, _) = stored(
            &["wilma@b.test"],
            vec![
                ApexOption::internal("x-here").target_hop(TargetHop::This),
                ApexOption::status_request(86),
                timing.to_option(1),
                hopping.to_option(2),
            ],
        );
        let names = ["wilma@b.test".to_owned()];
        let prepared = prepare(&payload, &names, Hop::Forward, 4_000, &HOP).unwrap();
        assert!(prepared.report_transient);
        assert_eq!(prepared.time_left_ms, Some(6_000));
        assert_eq!(prepared.report_after_left_ms, None);
        let (data, _) = sent(&prepared);
        assert!(data.option("x-here").is_none());
        assert!(data.option("statusRequest").is_some());
        let (_, t) = data.data_timing().unwrap().unwrap();
        assert_eq!((t.no_later_than, t.report_after), (6_000, 0));
        let (_, h) = data.data_hopping().unwrap().unwrap();
        assert_eq!(h.no_more_than, 2);
        // Local delivery: timing reduced, hops untouched.
        let prepared = prepare(&payload, &names, Hop::Final, 1_000, &HOP).unwrap();
        assert!(!prepared.report_transient);
        assert_eq!(prepared.report_after_left_ms, Some(2_000));
        let (data, _) = sent(&prepared);
        assert_eq!(data.data_hopping().unwrap().unwrap().1.no_more_than, 3);
    }

    #[test]
    fn fails_when_time_or_hops_run_out() {
        let names = ["wilma@b.test".to_owned()];
        let timing = DataTiming {
            no_later_than: 1_000,
            ..DataTiming::default()
        };
        let (payload, _) = stored(&["wilma@b.test"], vec![timing.to_option(1)]);
        let prepared = prepare(&payload, &names, Hop::Forward, 1_000, &HOP).unwrap();
        assert!(prepared.payload.is_none());
        assert_eq!(prepared.failed[0].1.kind, FailureKind::Expired);
        let hopping = DataHopping {
            no_more_than: 1,
            report_errors: false,
        };
        let (payload, _) = stored(&["wilma@b.test"], vec![hopping.to_option(1)]);
        let prepared = prepare(&payload, &names, Hop::Forward, 0, &HOP).unwrap();
        assert!(prepared.payload.is_none());
        assert_eq!(prepared.failed[0].1.kind, FailureKind::HopLimit);
        // Delivered locally, the last hop is fine.
        assert!(
            prepare(&payload, &names, Hop::Final, 0, &HOP)
                .unwrap()
                .payload
                .is_some()
        );
    }

    #[test]
    fn per_recipient_must_understand() {
        let part = MimePart::new("text/plain", b"hi", &Domain::parse("a.test").unwrap()).unwrap();
        let mut data = Data::new(ep("fred@a.test"), [ep("wilma@b.test")]);
        data.recipients.push(Recipient {
            identity: ep("betty@b.test"),
            options: vec![ApexOption::internal("x-new").must_understand(true)],
        });
        let payload = Bytes::from(data.to_payload(&Content::Part(part)));
        let names = ["wilma@b.test".to_owned(), "betty@b.test".to_owned()];
        // targetHop='final' (default): not checked on the way.
        let prepared = prepare(&payload, &names, Hop::Forward, 0, &HOP).unwrap();
        assert!(prepared.failed.is_empty());
        assert_eq!(prepared.recipients.len(), 2);
        // At the final relay betty fails with 504, wilma gets it alone.
        let prepared = prepare(&payload, &names, Hop::Final, 0, &HOP).unwrap();
        assert_eq!(prepared.failed.len(), 1);
        assert_eq!(prepared.failed[0].0, "betty@b.test");
        assert_eq!(prepared.failed[0].1.kind, FailureKind::Reply { code: 504 });
        assert_eq!(prepared.recipients, ["wilma@b.test".to_owned()]);
        let (sent, _) = sent(&prepared);
        assert_eq!(sent.recipients.len(), 1);
    }
}
