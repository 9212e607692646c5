//! Option processing rules (RFC 3340 §5, §4.4.4.1) as pure functions: which
//! options apply at this relay, which this implementation understands,
//! which are kept for the next transmission, and where a `data`'s typed
//! options are.
//!
//! * `targetHop='this'` applies here and is removed before the containing
//!   element is transmitted (to a next relay or to the recipient).
//! * `targetHop='final'` applies only where the data is transmitted
//!   directly to the recipient (local delivery, step 5.3); elsewhere it
//!   passes through untouched.
//! * `targetHop='all'` applies everywhere and is kept.
//! * `mustUnderstand='true'` matters only for an option that applies: if
//!   it is not understood, processing fails (per-data options: an `error`
//!   before `ok`; per-originator and per-recipient options: the recipient
//!   fails, reported if asked). Spec-digest §9 erratum 10: the code is
//!   504, "parameter not implemented".

use crate::code::ReplyCode;
use crate::data::{Content, Data};
use crate::error::ApexError;
use crate::option::{ApexOption, OptionKind, STATUS_REQUEST, TargetHop};
use crate::party::{DATA_HOPPING, DATA_TIMING, DataHopping, DataTiming, HOLD_FOR_ENDPOINT};
use crate::status::StatusResponse;

/// Where this relay transmits a recipient's data (RFC 3340 §4.4.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hop {
    /// To a next relay (step 5.2).
    Forward,
    /// Directly to the recipient, an attached application (step 5.3).
    Final,
}

/// The internal options this implementation understands in `data`,
/// `originator` and `recipient` (RFC 3340 §5.1, RFC 3342 §2–§4).
pub const UNDERSTOOD: &[&str] = &[STATUS_REQUEST, DATA_TIMING, DATA_HOPPING, HOLD_FOR_ENDPOINT];

/// The reply code for an applicable, not-understood mustUnderstand option
/// (docs/decisions.md, APEX core).
pub const NOT_UNDERSTOOD: ReplyCode = ReplyCode::PARAMETER_NOT_IMPLEMENTED;

/// Whether `option` applies at a relay transmitting as `hop` (RFC 3340 §5).
pub fn applies(option: &ApexOption, hop: Hop) -> bool {
    match option.target_hop {
        TargetHop::This | TargetHop::All => true,
        TargetHop::Final => hop == Hop::Final,
    }
}

/// Whether this implementation understands `option`: the internal
/// options of [`UNDERSTOOD`] and the hop identity ([`crate::hop_id`]).
pub fn understood(option: &ApexOption) -> bool {
    match &option.kind {
        OptionKind::Internal(name) => UNDERSTOOD.contains(&name.as_str()),
        OptionKind::External(_) => crate::hop_id::is_hop_id(option),
    }
}

/// The first option of `options` that applies at `hop`, must be understood,
/// and is not: processing it is an error (RFC 3340 §5).
pub fn not_understood(options: &[ApexOption], hop: Hop) -> Option<&ApexOption> {
    options
        .iter()
        .find(|o| o.must_understand && applies(o, hop) && !understood(o))
}

/// The error text for [`not_understood`].
pub fn not_understood_text(option: &ApexOption) -> String {
    format!(
        "option {} is not understood (mustUnderstand)",
        option.name()
    )
}

/// Removes the `targetHop='this'` options, which must not be transmitted
/// further (RFC 3340 §5).
pub fn strip_this(options: &mut Vec<ApexOption>) {
    options.retain(|o| o.target_hop != TargetHop::This);
}

impl Data {
    /// The first per-data internal option `name`.
    pub fn option(&self, name: &str) -> Option<&ApexOption> {
        self.options.iter().find(|o| o.is_internal(name))
    }

    /// The first per-data internal option `name`, for changing it.
    pub fn option_mut(&mut self, name: &str) -> Option<&mut ApexOption> {
        self.options.iter_mut().find(|o| o.is_internal(name))
    }

    /// Removes `targetHop='this'` options from the data, its originator and
    /// its recipients: what a relay does before transmitting (RFC 3340 §5).
    pub fn strip_this(&mut self) {
        strip_this(&mut self.options);
        strip_this(&mut self.originator.options);
        for recipient in &mut self.recipients {
            strip_this(&mut recipient.options);
        }
    }

    /// The first applicable, not-understood mustUnderstand option of the
    /// per-originator options or of `recipient`'s options (processed after
    /// `ok`, RFC 3340 §4.4.4.1 steps 4 and 5.1).
    pub fn recipient_not_understood(&self, recipient: usize, hop: Hop) -> Option<&ApexOption> {
        not_understood(&self.originator.options, hop).or_else(|| {
            self.recipients
                .get(recipient)
                .and_then(|r| not_understood(&r.options, hop))
        })
    }

    /// The `statusRequest` covering `recipient` at `hop`: its per-recipient
    /// one, else the per-data one, if it applies there (RFC 3340 §5.1).
    pub fn status_request_for(&self, recipient: usize, hop: Hop) -> Option<&ApexOption> {
        let per_recipient = self
            .recipients
            .get(recipient)
            .and_then(|r| r.options.iter().find(|o| o.is_internal(STATUS_REQUEST)));
        per_recipient
            .or_else(|| self.option(STATUS_REQUEST))
            .filter(|o| applies(o, hop))
    }

    /// Whether any `statusRequest` is present (per data or per recipient).
    pub fn has_status_request(&self) -> bool {
        self.option(STATUS_REQUEST).is_some()
            || self
                .recipients
                .iter()
                .any(|r| r.options.iter().any(|o| o.is_internal(STATUS_REQUEST)))
    }

    /// The per-data `dataTiming` option and its value, if present.
    pub fn data_timing(&self) -> Result<Option<(&ApexOption, DataTiming)>, ApexError> {
        self.option(DATA_TIMING)
            .map(|o| DataTiming::from_option(o).map(|t| (o, t)))
            .transpose()
    }

    /// The per-data `dataHopping` option and its value, if present.
    pub fn data_hopping(&self) -> Result<Option<(&ApexOption, DataHopping)>, ApexError> {
        self.option(DATA_HOPPING)
            .map(|o| DataHopping::from_option(o).map(|h| (o, h)))
            .transpose()
    }

    /// Replaces the content of the per-data `dataTiming` option, keeping its
    /// attributes (a relay adjusts only the counters).
    pub fn set_data_timing(&mut self, timing: &DataTiming) {
        if let Some(option) = self.option_mut(DATA_TIMING) {
            option.content = timing.to_xml();
        }
    }

    /// Replaces the content of the per-data `dataHopping` option.
    pub fn set_data_hopping(&mut self, hopping: &DataHopping) {
        if let Some(option) = self.option_mut(DATA_HOPPING) {
            option.content = hopping.to_xml();
        }
    }
}

/// Whether a `data` with `content` is a report: it comes from a report
/// service or carries a `statusResponse` inline. Reports never cause
/// reports (RFC 3340 §5.1: a data carrying a statusResponse must not carry
/// a statusRequest).
pub fn is_report(data: &Data, content: &Content) -> bool {
    data.originator.identity.service_name() == Some("report")
        || matches!(content, Content::Inline(inline) if StatusResponse::from_data_content(inline).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address::{Domain, Endpoint};
    use crate::data::Recipient;
    use crate::status::{Destination, Reply};

    fn ep(text: &str) -> Endpoint {
        Endpoint::parse(text).unwrap()
    }

    #[test]
    fn target_hop_applicability() {
        let this = ApexOption::internal("x").target_hop(TargetHop::This);
        let fin = ApexOption::internal("x").target_hop(TargetHop::Final);
        let all = ApexOption::internal("x").target_hop(TargetHop::All);
        assert!(applies(&this, Hop::Forward) && applies(&this, Hop::Final));
        assert!(!applies(&fin, Hop::Forward) && applies(&fin, Hop::Final));
        assert!(applies(&all, Hop::Forward) && applies(&all, Hop::Final));
    }

    #[test]
    fn must_understand_only_where_it_applies() {
        let unknown_final = ApexOption::external("urn:x:y").must_understand(true);
        let unknown_all = ApexOption::internal("fancy")
            .target_hop(TargetHop::All)
            .must_understand(true);
        let unknown_optional = ApexOption::internal("fancy").target_hop(TargetHop::All);
        let known = ApexOption::status_request(1);
        let options = vec![known.clone(), unknown_optional, unknown_final.clone()];
        assert_eq!(not_understood(&options, Hop::Forward), None);
        assert_eq!(not_understood(&options, Hop::Final), Some(&unknown_final));
        let options = vec![known, unknown_all.clone()];
        assert_eq!(not_understood(&options, Hop::Forward), Some(&unknown_all));
        assert_eq!(
            not_understood_text(&unknown_all),
            "option fancy is not understood (mustUnderstand)"
        );
    }

    #[test]
    fn strips_this_everywhere_and_keeps_the_rest() {
        let mut data = Data::new(ep("fred@example.com"), [ep("barney@example.com")]);
        let this = ApexOption::internal("a").target_hop(TargetHop::This);
        let fin = ApexOption::status_request(86);
        let all = DataHopping {
            no_more_than: 2,
            report_errors: true,
        }
        .to_option(87);
        data.options = vec![this.clone(), fin.clone(), all.clone()];
        data.originator.options = vec![this.clone()];
        data.recipients.push(Recipient {
            identity: ep("wilma@example.com"),
            options: vec![this, fin.clone()],
        });
        data.strip_this();
        assert_eq!(data.options, vec![fin.clone(), all]);
        assert!(data.originator.options.is_empty());
        assert_eq!(data.recipients[1].options, vec![fin]);
    }

    #[test]
    fn status_request_scopes() {
        let mut data = Data::new(ep("fred@example.com"), [ep("barney@example.com")]);
        assert!(!data.has_status_request());
        data.recipients.push(Recipient {
            identity: ep("wilma@example.com"),
            options: vec![ApexOption::status_request(5).target_hop(TargetHop::All)],
        });
        assert!(data.has_status_request());
        assert_eq!(data.status_request_for(0, Hop::Final), None);
        assert_eq!(
            data.status_request_for(1, Hop::Forward).unwrap().trans_id,
            Some(5)
        );
        data.options.push(ApexOption::status_request(86));
        assert_eq!(data.status_request_for(0, Hop::Forward), None);
        assert_eq!(
            data.status_request_for(0, Hop::Final).unwrap().trans_id,
            Some(86)
        );
        // The per-recipient request wins over the per-data one.
        assert_eq!(
            data.status_request_for(1, Hop::Final).unwrap().trans_id,
            Some(5)
        );
        // Per-originator and per-recipient mustUnderstand options.
        data.originator
            .options
            .push(ApexOption::internal("zz").must_understand(true));
        assert!(data.recipient_not_understood(0, Hop::Forward).is_none());
        assert!(data.recipient_not_understood(0, Hop::Final).is_some());
    }

    #[test]
    fn typed_options_in_data() {
        let mut data = Data::new(ep("fred@example.com"), [ep("barney@example.com")]);
        assert_eq!(data.data_timing().unwrap(), None);
        data.options.push(
            DataTiming {
                no_later_than: 10_000,
                return_trip: 20_000,
                ..DataTiming::default()
            }
            .to_option(86),
        );
        let (_, timing) = data.data_timing().unwrap().unwrap();
        data.set_data_timing(&timing.elapse(4_000).timing);
        let (option, timing) = data.data_timing().unwrap().unwrap();
        assert_eq!(option.trans_id, Some(86));
        assert_eq!(timing.no_later_than, 6_000);
        assert_eq!(timing.return_trip, 20_000);
        data.options.push(DataHopping::default().to_option(2));
        data.set_data_hopping(&DataHopping {
            no_more_than: 3,
            report_errors: false,
        });
        assert_eq!(data.data_hopping().unwrap().unwrap().1.no_more_than, 3);
        data.options.push(
            ApexOption::internal(DATA_HOPPING)
                .with_content("<x/>")
                .unwrap(),
        );
        assert_eq!(data.data_hopping().unwrap().unwrap().1.no_more_than, 3);
        data.options.remove(1);
        assert!(data.data_hopping().is_err());
    }

    #[test]
    fn reports_are_recognized() {
        let status = StatusResponse {
            trans_id: 86,
            destinations: vec![Destination {
                identity: ep("barney@example.com"),
                reply: Reply::new(ReplyCode(250)),
            }],
        };
        let (data, content) = status.to_report(
            Domain::parse("example.com").unwrap(),
            ep("fred@example.com"),
        );
        assert!(is_report(&data, &content));
        let mut forged = data;
        forged.originator.identity = ep("mallory@example.com");
        assert!(is_report(&forged, &content));
        let plain = Data::new(ep("fred@example.com"), [ep("barney@example.com")]);
        assert!(!is_report(
            &plain,
            &Content::External("http://x.test/".into())
        ));
    }
}
