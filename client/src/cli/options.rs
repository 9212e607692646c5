//! `imxp send`'s delivery options: the per-data APEX options a datagram
//! asks the relays for (RFC 3340 §5.1 statusRequest, RFC 3342 dataTiming
//! and dataHopping), flattened into the send arguments.

use clap::{Args, ValueEnum};
use imxp_apex::{ApexOption, Data, DataHopping, DataTiming, TargetHop};

/// Which relays answer a status request (the option's `targetHop`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum HopArg {
    /// Only the first relay.
    This,
    /// Only the relay that delivers to the recipient (default).
    Final,
    /// Every relay on the way: a per-hop trace.
    All,
}

impl From<HopArg> for TargetHop {
    fn from(hop: HopArg) -> Self {
        match hop {
            HopArg::This => Self::This,
            HopArg::Final => Self::Final,
            HopArg::All => Self::All,
        }
    }
}

/// One option added to a datagram that reports may answer, by its transID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Asked {
    /// The option's transID, which its reports carry (RFC 3340 §5.1).
    pub(crate) trans_id: u32,
    /// Which option.
    pub(crate) kind: AskedKind,
}

/// The options that reports answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AskedKind {
    /// `statusRequest` for these relays (RFC 3340 §5.1).
    Status(TargetHop),
    /// `dataTiming` (RFC 3342 §2).
    Timing(DataTiming),
    /// `dataHopping` (RFC 3342 §4).
    Hopping(DataHopping),
}

impl std::fmt::Display for Asked {
    /// `statusRequest transID=… targetHop=…`, `dataTiming transID=… <…/>`, …
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let id = self.trans_id;
        match &self.kind {
            AskedKind::Status(hop) => {
                write!(f, "statusRequest transID={id} targetHop={}", hop.as_str())
            }
            AskedKind::Timing(timing) => write!(f, "dataTiming transID={id} {}", timing.to_xml()),
            AskedKind::Hopping(hopping) => {
                write!(f, "dataHopping transID={id} {}", hopping.to_xml())
            }
        }
    }
}

/// Delivery options of `imxp send`.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct DeliveryOptions {
    /// Ask for a status report per recipient (statusRequest, RFC 3340
    /// §5.1): success when delivered, the failure's code otherwise.
    #[arg(long)]
    pub(crate) status_request: bool,
    /// Which relays answer --status-request: this, final (default) or all.
    #[arg(long, value_enum, value_name = "HOP", requires = "status_request")]
    pub(crate) hop: Option<HopArg>,
    /// Deliver within MS milliseconds or fail (dataTiming noLaterThan,
    /// RFC 3342 §2).
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u32).range(1..=2_147_483_647))]
    pub(crate) deadline: Option<u32>,
    /// Report 350 if not delivered within MS milliseconds (dataTiming
    /// reportAfter).
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u32).range(1..=2_147_483_647))]
    pub(crate) report_after: Option<u32>,
    /// On delivery, ask for a final-hop report that must arrive within MS
    /// milliseconds (dataTiming returnTrip).
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u32).range(1..=2_147_483_647))]
    pub(crate) return_trip: Option<u32>,
    /// Let the datagram cross at most N relays (dataHopping noMoreThan,
    /// RFC 3342 §4).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(1..))]
    pub(crate) hops: Option<u8>,
    /// Report deadline and hop-limit failures (reportErrors of
    /// --deadline and --hops).
    #[arg(long)]
    pub(crate) report_errors: bool,
}

impl DeliveryOptions {
    /// Adds the options asked for to `data`, each with a fresh transID;
    /// returns what was asked (displayed as `statusRequest transID=…`), so
    /// that reports can be matched to it.
    pub(crate) fn apply(&self, data: &mut Data) -> Vec<Asked> {
        let mut asked = Vec::new();
        if self.status_request {
            let trans_id = fresh_trans_id();
            let hop = self.hop.unwrap_or(HopArg::Final);
            data.options
                .push(ApexOption::status_request(trans_id).target_hop(hop.into()));
            asked.push(Asked {
                trans_id,
                kind: AskedKind::Status(hop.into()),
            });
        }
        if self.deadline.is_some() || self.report_after.is_some() || self.return_trip.is_some() {
            let trans_id = fresh_trans_id();
            let timing = DataTiming {
                no_later_than: self.deadline.unwrap_or(0),
                return_trip: self.return_trip.unwrap_or(0),
                report_after: self.report_after.unwrap_or(0),
                report_errors: self.report_errors,
            };
            data.options.push(timing.to_option(trans_id));
            asked.push(Asked {
                trans_id,
                kind: AskedKind::Timing(timing),
            });
        }
        if let Some(hops) = self.hops {
            let trans_id = fresh_trans_id();
            let hopping = DataHopping {
                no_more_than: hops,
                report_errors: self.report_errors,
            };
            data.options.push(hopping.to_option(trans_id));
            asked.push(Asked {
                trans_id,
                kind: AskedKind::Hopping(hopping),
            });
        }
        asked
    }
}

/// An unpredictable transID, 1..2147483647 (RFC 3340 §6.1).
fn fresh_trans_id() -> u32 {
    rand::random_range(1..=imxp_apex::MAX_TRANS_ID)
}

#[cfg(test)]
mod tests {
    use super::*;
    use imxp_apex::Endpoint;

    fn data() -> Data {
        Data::new(
            Endpoint::parse("fred@a.test").unwrap(),
            [Endpoint::parse("wilma@b.test").unwrap()],
        )
    }

    #[test]
    fn no_flags_no_options() {
        let mut d = data();
        assert!(DeliveryOptions::default().apply(&mut d).is_empty());
        assert!(d.options.is_empty());
    }

    #[test]
    fn every_flag() {
        let mut d = data();
        let asked = DeliveryOptions {
            status_request: true,
            hop: Some(HopArg::All),
            deadline: Some(10_000),
            report_after: Some(5_000),
            return_trip: Some(20_000),
            hops: Some(3),
            report_errors: true,
        }
        .apply(&mut d);
        assert_eq!(asked.len(), 3);
        let first = asked[0].to_string();
        assert!(first.starts_with("statusRequest transID="), "{first}");
        assert!(first.ends_with("targetHop=all"));
        let status = &d.options[0];
        assert!(status.is_internal("statusRequest"));
        assert_eq!(status.target_hop, TargetHop::All);
        let (option, timing) = d.data_timing().unwrap().unwrap();
        assert_eq!(option.target_hop, TargetHop::All);
        assert!(option.must_understand);
        assert_eq!(
            timing,
            DataTiming {
                no_later_than: 10_000,
                return_trip: 20_000,
                report_after: 5_000,
                report_errors: true,
            }
        );
        let (_, hopping) = d.data_hopping().unwrap().unwrap();
        assert_eq!(hopping.no_more_than, 3);
        assert!(hopping.report_errors);
        let ids: Vec<_> = d.options.iter().map(|o| o.trans_id.unwrap()).collect();
        assert!(
            ids.iter()
                .all(|&t| (1..=imxp_apex::MAX_TRANS_ID).contains(&t))
        );
    }
}
