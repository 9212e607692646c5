//! The RFC 3342 options a relay acts on, typed: `dataTiming` (§2) and
//! `dataHopping` (§4), read from and written to an [`ApexOption`]'s
//! content, with their per-hop arithmetic as pure functions.
//!
//! ```dtd
//! <!ELEMENT dataTiming  EMPTY>
//! <!ATTLIST dataTiming
//!           noLaterThan %MILLISECS;       "0"
//!           returnTrip  %MILLISECS;       "0"
//!           reportAfter %MILLISECS;       "0"
//!           reportErrors (true|false)     "false">
//! <!ELEMENT dataHopping EMPTY>
//! <!ATTLIST dataHopping
//!           noMoreThan  %HOPS;            "0"
//!           reportErrors (true|false)     "false">
//! ```
//!
//! MILLISECS is 0..2147483647 and HOPS 0..255; 0 means "not set" for every
//! counter.

use crate::error::ApexError;
use crate::limits::Limits;
use crate::option::{ApexOption, TargetHop};
use crate::xml::{self, DtdChecks as _};

/// Name of the `dataTiming` option (RFC 3342 §2).
pub const DATA_TIMING: &str = "dataTiming";
/// Name of the `dataHopping` option (RFC 3342 §4).
pub const DATA_HOPPING: &str = "dataHopping";
/// Name of the `hold4Endpoint` option (RFC 3342 §3).
pub const HOLD_FOR_ENDPOINT: &str = "hold4Endpoint";
/// Name of the `attachOverride` option (RFC 3342 §1).
pub const ATTACH_OVERRIDE: &str = "attachOverride";

/// The largest MILLISECS value (RFC 3342 §5).
pub const MAX_MILLISECS: u32 = 2_147_483_647;

/// `<dataTiming noLaterThan returnTrip reportAfter reportErrors/>`
/// (RFC 3342 §2). Each counter is in milliseconds; 0 means unset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct DataTiming {
    /// Deliver within this many ms or fail.
    pub no_later_than: u32,
    /// Send a final-hop report (with this as its own `noLaterThan`) on
    /// success.
    pub return_trip: u32,
    /// Send a transient (350) report if not delivered within this many ms.
    pub report_after: u32,
    /// Send a timing error report on failure.
    pub report_errors: bool,
}

/// What one hop's processing time does to a [`DataTiming`] (RFC 3342 §2.1,
/// §2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimingStep {
    /// The counters to send on (`noLaterThan` and `reportAfter` reduced;
    /// `reportAfter` at 0 once it ran out).
    pub timing: DataTiming,
    /// `noLaterThan` was set and ran out: do not send; fail the recipient
    /// (timing error report if `reportErrors`).
    pub expired: bool,
    /// `reportAfter` was set and ran out during this hop: send the
    /// transient (350) report, and still send the data on.
    pub report_transient: bool,
}

impl DataTiming {
    /// Reads the option's content (exactly one `dataTiming` element).
    pub fn from_option(option: &ApexOption) -> Result<Self, ApexError> {
        const E: &str = "dataTiming";
        let doc = xml::parse(option.content.as_bytes(), &Limits::default())?;
        let root = &doc.root;
        if root.name != E {
            return Err(ApexError::UnexpectedElement {
                expected: E,
                found: root.name.clone(),
            });
        }
        root.check_attributes(
            E,
            &["noLaterThan", "returnTrip", "reportAfter", "reportErrors"],
        )?;
        root.check_empty(E)?;
        Ok(Self {
            no_later_than: millisecs(root.attribute("noLaterThan"), "noLaterThan")?,
            return_trip: millisecs(root.attribute("returnTrip"), "returnTrip")?,
            report_after: millisecs(root.attribute("reportAfter"), "reportAfter")?,
            report_errors: boolean(E, root.attribute("reportErrors"))?,
        })
    }

    /// The element, writing only the attributes that differ from their
    /// defaults (as the RFC 3342 examples do).
    pub fn to_xml(&self) -> String {
        let mut out = String::from("<dataTiming");
        for (name, value) in [
            ("noLaterThan", self.no_later_than),
            ("returnTrip", self.return_trip),
            ("reportAfter", self.report_after),
        ] {
            if value != 0 {
                xml::push_attribute(&mut out, name, &value.to_string());
            }
        }
        if self.report_errors {
            xml::push_attribute(&mut out, "reportErrors", "true");
        }
        out.push_str(" />");
        out
    }

    /// The option as RFC 3342 §2 requires the originator to write it:
    /// `targetHop='all' mustUnderstand='true'`.
    pub fn to_option(&self, trans_id: u32) -> ApexOption {
        let mut option = ApexOption::internal(DATA_TIMING)
            .target_hop(TargetHop::All)
            .must_understand(true)
            .trans_id(trans_id);
        option.content = self.to_xml();
        option
    }

    /// Subtracts `elapsed_ms` (this hop's processing and queueing time)
    /// from the set counters (RFC 3342 §2.1 and §2.2, steps 5.2 and 5.3).
    /// A counter reaching 0 or less has run out.
    pub fn elapse(&self, elapsed_ms: u64) -> TimingStep {
        let reduce = |value: u32| -> (u32, bool) {
            if value == 0 {
                return (0, false);
            }
            match u64::from(value).checked_sub(elapsed_ms) {
                Some(left) if left > 0 => (left as u32, false),
                _ => (0, true),
            }
        };
        let (no_later_than, expired) = reduce(self.no_later_than);
        let (report_after, report_transient) = reduce(self.report_after);
        TimingStep {
            timing: Self {
                no_later_than,
                report_after,
                ..*self
            },
            expired,
            report_transient,
        }
    }
}

/// `<dataHopping noMoreThan reportErrors/>` (RFC 3342 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct DataHopping {
    /// Relays the data may still be sent to; 0 means unset.
    pub no_more_than: u8,
    /// Send an error report when the budget runs out.
    pub report_errors: bool,
}

impl DataHopping {
    /// Reads the option's content (exactly one `dataHopping` element).
    pub fn from_option(option: &ApexOption) -> Result<Self, ApexError> {
        const E: &str = "dataHopping";
        let doc = xml::parse(option.content.as_bytes(), &Limits::default())?;
        let root = &doc.root;
        if root.name != E {
            return Err(ApexError::UnexpectedElement {
                expected: E,
                found: root.name.clone(),
            });
        }
        root.check_attributes(E, &["noMoreThan", "reportErrors"])?;
        root.check_empty(E)?;
        let no_more_than = match root.attribute("noMoreThan") {
            None => 0,
            Some(value) => value
                .parse::<u8>()
                .map_err(|_| ApexError::InvalidAttribute {
                    element: E,
                    attribute: "noMoreThan",
                    value: value.to_owned(),
                    reason: "not a hop count 0..255",
                })?,
        };
        Ok(Self {
            no_more_than,
            report_errors: boolean(E, root.attribute("reportErrors"))?,
        })
    }

    /// The element.
    pub fn to_xml(&self) -> String {
        let mut out = String::from("<dataHopping");
        xml::push_attribute(&mut out, "noMoreThan", &self.no_more_than.to_string());
        if self.report_errors {
            xml::push_attribute(&mut out, "reportErrors", "true");
        }
        out.push_str(" />");
        out
    }

    /// The option as RFC 3342 §4 requires the originator to write it:
    /// `targetHop='all' mustUnderstand='true'`.
    pub fn to_option(&self, trans_id: u32) -> ApexOption {
        let mut option = ApexOption::internal(DATA_HOPPING)
            .target_hop(TargetHop::All)
            .must_understand(true)
            .trans_id(trans_id);
        option.content = self.to_xml();
        option
    }

    /// The budget to send to the next relay (RFC 3342 §4, step 5.2: "just
    /// before sending, decrement by one"): `None` when it reaches 0 (the
    /// data must not be sent). An unset budget (0) stays unset.
    pub fn decrement(&self) -> Option<Self> {
        match self.no_more_than {
            0 => Some(*self),
            1 => None,
            n => Some(Self {
                no_more_than: n - 1,
                ..*self
            }),
        }
    }
}

fn millisecs(value: Option<&str>, attribute: &'static str) -> Result<u32, ApexError> {
    let Some(value) = value else { return Ok(0) };
    value
        .parse::<u32>()
        .ok()
        .filter(|v| *v <= MAX_MILLISECS)
        .ok_or_else(|| ApexError::InvalidAttribute {
            element: "dataTiming",
            attribute,
            value: value.to_owned(),
            reason: "not milliseconds 0..2147483647",
        })
}

fn boolean(element: &'static str, value: Option<&str>) -> Result<bool, ApexError> {
    match value {
        None => Ok(false),
        Some(v) => crate::parse_bool(v).ok_or_else(|| ApexError::InvalidAttribute {
            element,
            attribute: "reportErrors",
            value: v.to_owned(),
            reason: "not true or false",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn option(content: &str) -> ApexOption {
        ApexOption::internal("x").with_content(content).unwrap()
    }

    #[test]
    fn reads_rfc_3342_timing_forms() {
        let t = DataTiming::from_option(&option(
            "\n <dataTiming noLaterThan='10000' returnTrip='20000' />\n",
        ))
        .unwrap();
        assert_eq!(
            t,
            DataTiming {
                no_later_than: 10_000,
                return_trip: 20_000,
                ..DataTiming::default()
            }
        );
        let t = DataTiming::from_option(&option(
            "<dataTiming noLaterThan='6000' reportErrors='true' />",
        ))
        .unwrap();
        assert!(t.report_errors);
        assert_eq!(
            t.to_xml(),
            "<dataTiming noLaterThan='6000' reportErrors='true' />"
        );
        let o = t.to_option(86);
        assert_eq!(
            o.to_xml(),
            "<option internal='dataTiming' targetHop='all' mustUnderstand='true' transID='86'><dataTiming noLaterThan='6000' reportErrors='true' /></option>"
        );
        assert_eq!(DataTiming::from_option(&o).unwrap(), t);
    }

    #[test]
    fn refuses_bad_timing() {
        let code = |c: &str| {
            DataTiming::from_option(&option(c))
                .unwrap_err()
                .reply_code()
                .0
        };
        assert_eq!(code("<dataTiming noLaterThan='-1' />"), 501);
        assert_eq!(code("<dataTiming noLaterThan='2147483648' />"), 501);
        assert_eq!(code("<dataTiming reportErrors='yes' />"), 501);
        assert_eq!(code("<dataTiming other='1' />"), 501);
        assert_eq!(code("<dataHopping />"), 501);
        assert_eq!(code("<dataTiming><x/></dataTiming>"), 501);
        assert!(DataTiming::from_option(&ApexOption::internal(DATA_TIMING)).is_err());
    }

    #[test]
    fn timing_counts_down() {
        // RFC 3342 §3: 60000 at the first relay, 18000 when delivered.
        let t = DataTiming {
            no_later_than: 60_000,
            report_after: 30_000,
            ..DataTiming::default()
        };
        let step = t.elapse(42_000);
        assert_eq!(step.timing.no_later_than, 18_000);
        assert_eq!(step.timing.report_after, 0);
        assert!(!step.expired);
        assert!(step.report_transient);
        // Once at 0, reportAfter is unset: no second transient report.
        let again = step.timing.elapse(1_000);
        assert!(!again.report_transient);
        assert_eq!(again.timing.no_later_than, 17_000);
        // Exactly used up is expired (≤ 0).
        assert!(t.elapse(60_000).expired);
        assert!(t.elapse(u64::MAX).expired);
        // Unset counters never run out.
        let off = DataTiming::default().elapse(u64::MAX);
        assert!(!off.expired && !off.report_transient);
    }

    #[test]
    fn hopping_rfc_example() {
        // RFC 3342 §4: the application sends 2, relay #1 sends 1 on,
        // relay #2 cannot send further.
        let h = DataHopping::from_option(&option(
            "<dataHopping noMoreThan='2' reportErrors='true' />",
        ))
        .unwrap();
        assert_eq!(h.no_more_than, 2);
        assert!(h.report_errors);
        let next = h.decrement().unwrap();
        assert_eq!(next.no_more_than, 1);
        assert_eq!(
            next.to_option(86).to_xml(),
            "<option internal='dataHopping' targetHop='all' mustUnderstand='true' transID='86'><dataHopping noMoreThan='1' reportErrors='true' /></option>"
        );
        assert_eq!(next.decrement(), None);
        assert_eq!(
            DataHopping::default().decrement(),
            Some(DataHopping::default())
        );
        let code = |c: &str| {
            DataHopping::from_option(&option(c))
                .unwrap_err()
                .reply_code()
                .0
        };
        assert_eq!(code("<dataHopping noMoreThan='256' />"), 501);
        assert_eq!(code("<dataHopping noMoreThan='x' />"), 501);
        assert_eq!(code("<dataTiming />"), 501);
    }
}
