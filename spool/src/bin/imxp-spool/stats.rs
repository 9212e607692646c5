//! `stats`: counts by state, and the pending recipients in a table of
//! domains by age (Postfix's qshape): rows by destination domain, or by
//! originator domain with `--by originator`, a TOTAL row, columns by age.

use std::io::Write;

use anyhow::{Result, bail};
use clap::Args;
use imxp_spool::admin::{Reply, Request};

use crate::cli::Cli;
use crate::mode::{IfMissing, Reach, connect};

#[derive(Args, Debug)]
pub(crate) struct StatsArgs {
    /// The rows of the age table: the recipients' (destination) domains,
    /// or the originators' domains (who fills the queue).
    #[arg(long, value_enum, default_value_t = Rows::Destination)]
    by: Rows,
    /// Print the whole snapshot as one JSON object (both tables, counts by
    /// state, the age bucket labels).
    #[arg(long)]
    json: bool,
}

/// What the rows of the age table are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Rows {
    /// One row per destination domain.
    Destination,
    /// One row per originator domain.
    Originator,
}

pub(crate) fn run(cli: &Cli, args: &StatsArgs) -> Result<()> {
    let StatsArgs { by, json } = args;
    let mut m = connect(cli, Reach::Either, IfMissing::Fail)?;
    let Reply::Stats(s) = m.call(Request::Stats, None)? else {
        bail!("unexpected reply");
    };
    if *json {
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else {
        let mut o = std::io::stdout().lock();
        writeln!(
            o,
            "datagrams {}  on hold {}  content {} bytes  quarantined {}  dedup ids {}",
            s.datagrams, s.on_hold, s.content_bytes, s.quarantined, s.dedup_entries
        )?;
        writeln!(
            o,
            "commits {}  operations {} (since the spool was opened)",
            s.commits.commits, s.commits.operations
        )?;
        let by_state: Vec<String> = s.by_state.iter().map(|(k, v)| format!("{k} {v}")).collect();
        writeln!(o, "recipients: {}", by_state.join("  "))?;
        writeln!(o)?;
        let (heading, rows) = match by {
            Rows::Destination => ("DESTINATION (pending by age)", &s.by_domain),
            Rows::Originator => ("ORIGINATOR (pending by age)", &s.by_origin),
        };
        write!(o, "{heading:<28} {:>6}", "T")?;
        for l in &s.age_labels {
            write!(o, " {l:>9}")?;
        }
        writeln!(o)?;
        write!(o, "{:<28} {:>6}", "TOTAL", s.by_age.iter().sum::<u64>())?;
        for n in &s.by_age {
            write!(o, " {n:>9}")?;
        }
        writeln!(o)?;
        let mut domains: Vec<_> = rows.iter().collect();
        domains.sort_by_key(|(d, st)| {
            (
                std::cmp::Reverse(st.by_age.iter().sum::<u64>()),
                (*d).clone(),
            )
        });
        for (d, st) in domains {
            write!(o, "{d:<28} {:>6}", st.by_age.iter().sum::<u64>())?;
            for n in &st.by_age {
                write!(o, " {n:>9}")?;
            }
            writeln!(o)?;
        }
    }
    Ok(())
}
