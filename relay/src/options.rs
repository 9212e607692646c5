//! Option processing at intake (RFC 3340 §4.4.4.1 step 2, §5; RFC 3342):
//! before a `data` is answered `ok`, the operator's ingress options are
//! added (edge only), every per-data option that applies here and must be
//! understood is checked, and what the spool needs of the options is read
//! into [`QueueOptions`]: the deadline (`dataTiming` `noLaterThan`), the hop
//! budget (`dataHopping`), and which reports the originator asked for.
//!
//! Per-originator and per-recipient options are processed after `ok`, at
//! delivery ([`crate::datagram::prepare`]).
//!
//! Decisions (docs/decisions.md, Options):
//! * A per-data option with `targetHop='final'` applies here if any
//!   recipient is in a domain this relay serves; `this` and `all` always
//!   apply.
//! * An applicable, not-understood mustUnderstand per-data option is
//!   refused with 504 (RFC 3340 §5 names no code).
//! * A `statusRequest` or `dataTiming` per-data option without a `transID`
//!   cannot be answered (a statusResponse needs one): refused with 501.
//! * A `data` that is a report (from `apex=report@…`, or carrying a
//!   `statusResponse`) never asks for a report, whatever options it has.

use crate::config::Config;
use crate::datagram::Incoming;
use crate::refusal::Refusal;
use bytes::Bytes;
use imxp_apex::processing::{self, Hop};
use imxp_apex::{ApexOption, DataHopping, TargetHop};
use imxp_spool::QueueOptions;

/// Where a `data` came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// An attached application (apex-edge): the ingress, where the operator
    /// may add options.
    Edge,
    /// Another relay (apex-mesh).
    Mesh,
}

/// Processes the per-data options of `incoming` (step 2) and fills in its
/// [`QueueOptions`]; an `Err` is the `error` to answer instead of `ok`.
pub(crate) fn at_intake(
    config: &Config,
    incoming: &mut Incoming,
    source: Source,
    now_ms: u64,
) -> Result<(), Refusal> {
    if source == Source::Edge {
        add_ingress_options(config, incoming);
    }
    let any_local = incoming
        .recipients
        .iter()
        .any(|r| config.serves(&imxp_spool::record::domain_of(r)));
    let any_remote = incoming
        .recipients
        .iter()
        .any(|r| !config.serves(&imxp_spool::record::domain_of(r)));
    let data = &incoming.data;
    let applies_here = |option: &ApexOption| {
        (any_local && processing::applies(option, Hop::Final))
            || (any_remote && processing::applies(option, Hop::Forward))
    };
    if let Some(option) = data
        .options
        .iter()
        .find(|o| o.must_understand && applies_here(o) && !processing::understood(o))
    {
        return Err(Refusal::new(
            processing::NOT_UNDERSTOOD,
            processing::not_understood_text(option),
        ));
    }
    let mut options = QueueOptions {
        originated_ms: Some(now_ms),
        ..QueueOptions::default()
    };
    let is_report = processing::is_report(data, &incoming.content);
    let timing = data
        .data_timing()
        .map_err(|e| Refusal::parameter_syntax(e.to_string()))?;
    if let Some((option, timing)) = timing.filter(|(o, _)| applies_here(o)) {
        if option.trans_id.is_none() && !is_report {
            return Err(Refusal::parameter_syntax(
                "the dataTiming option needs a transID",
            ));
        }
        if timing.no_later_than != 0 {
            options.deadline_ms = Some(now_ms + u64::from(timing.no_later_than));
        }
        if !is_report {
            options.report_errors |= timing.report_errors;
            options.report_delivery |= timing.return_trip != 0 && any_local;
            if timing.report_after != 0 {
                options.report_after_ms = Some(now_ms + u64::from(timing.report_after));
            }
        }
    }
    let hopping = data
        .data_hopping()
        .map_err(|e| Refusal::parameter_syntax(e.to_string()))?;
    if let Some((option, hopping)) = hopping.filter(|(o, _)| applies_here(o)) {
        if hopping.no_more_than != 0 {
            options.hops_left = Some(u32::from(hopping.no_more_than));
        }
        if !is_report {
            options.report_errors |= hopping.report_errors && option.trans_id.is_some();
        }
    }
    // RFC 3342 §3: hold for a local recipient that is not attached
    // (targetHop 'final' by default: it applies where data is delivered).
    options.hold_for_endpoint = any_local
        && data
            .option(imxp_apex::party::HOLD_FOR_ENDPOINT)
            .is_some_and(|o| processing::applies(o, Hop::Final));
    if !is_report && data.has_status_request() {
        let request = data.option(imxp_apex::option::STATUS_REQUEST);
        if let Some(request) = request
            && request.trans_id.is_none()
        {
            return Err(Refusal::parameter_syntax(
                "the statusRequest option needs a transID",
            ));
        }
        options.status_request = Some(
            request
                .and_then(|r| r.trans_id)
                .map_or_else(|| "per-recipient".to_owned(), |t| t.to_string()),
        );
        options.report_delivery = true;
    }
    incoming.options = options;
    Ok(())
}

/// Adds the operator's ingress options that the data does not carry yet
/// (by name), and the default hop budget as a `dataHopping` option when
/// it has none (RFC 3340 §4.4.4.1: a relay receiving data from an
/// application may be configured to add administrative options). The
/// payload is rewritten; the content part stays octet for octet.
fn add_ingress_options(config: &Config, incoming: &mut Incoming) {
    let mut added = false;
    for option in &config.options.ingress {
        let present = incoming.data.options.iter().any(|o| o.kind == option.kind);
        if !present {
            incoming.data.options.push(option.clone());
            added = true;
        }
    }
    if config.options.default_hops != 0
        && incoming
            .data
            .option(imxp_apex::party::DATA_HOPPING)
            .is_none()
    {
        let option = DataHopping {
            no_more_than: config.options.default_hops,
            report_errors: false,
        }
        .to_option(fresh_trans_id())
        .target_hop(TargetHop::All);
        incoming.data.options.push(option);
        added = true;
    }
    if added {
        incoming.payload = Bytes::from(incoming.data.to_payload(&incoming.content));
    }
}

/// An unpredictable transID (RFC 3340 §6.1: generated values should look
/// unpredictable), 1..2147483647.
pub(crate) fn fresh_trans_id() -> u32 {
    rand::random_range(1..=imxp_apex::MAX_TRANS_ID)
}
