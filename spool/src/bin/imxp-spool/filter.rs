//! The filter options `list` and the bulk commands (`hold`, `release`,
//! `requeue`, `delete`) share: by state, destination domain, originator,
//! recipient and age. All given ones must match.

use clap::Args;
use imxp_spool::StateName;
use imxp_spool::admin::Filter;

/// The ids of [`FilterArgs`]' options, for argument groups.
pub(crate) const FILTER_IDS: [&str; 6] = [
    "state",
    "domain",
    "originator",
    "recipient",
    "older_than",
    "newer_than",
];

#[derive(Args, Debug, Default)]
pub(crate) struct FilterArgs {
    /// Only datagrams with a recipient in this state: queued, in-flight,
    /// deferred, held (also matches operator hold), delivered, failed.
    #[arg(long)]
    state: Option<StateName>,
    /// Only datagrams with a recipient in this destination domain.
    #[arg(long)]
    domain: Option<String>,
    /// Only datagrams from this originator endpoint.
    #[arg(long)]
    originator: Option<String>,
    /// Only datagrams to this recipient endpoint.
    #[arg(long)]
    recipient: Option<String>,
    /// Only datagrams queued at least this long ago (e.g. 90s, 30m, 2h, 3d).
    #[arg(long, value_parser = parse_duration, value_name = "AGE")]
    older_than: Option<u64>,
    /// Only datagrams queued at most this long ago (e.g. 10m).
    #[arg(long, value_parser = parse_duration, value_name = "AGE")]
    newer_than: Option<u64>,
}

impl FilterArgs {
    /// The filter, or `None` when no option was given.
    pub(crate) fn filter(&self) -> Option<Filter> {
        let filter = Filter {
            state: self.state,
            domain: self.domain.clone(),
            originator: self.originator.clone(),
            recipient: self.recipient.clone(),
            older_than_ms: self.older_than,
            newer_than_ms: self.newer_than,
        };
        (filter != Filter::default()).then_some(filter)
    }
}

/// `90s`, `30m`, `2h`, `3d`, `250ms` or a bare number of seconds, in ms.
fn parse_duration(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("bad duration {s:?} (e.g. 90s, 30m, 2h, 3d)"))?;
    let ms = match unit {
        "" | "s" => 1_000,
        "ms" => 1,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(format!("bad duration unit in {s:?} (ms, s, m, h, d)")),
    };
    Ok(n.saturating_mul(ms))
}
