//! `check`: the integrity scan, and with `--repair` its repairs; the exit
//! status says whether problems remain.

use anyhow::{Result, bail};
use clap::Args;
use imxp_spool::admin::{Reply, Request};

use crate::cli::Cli;
use crate::mode::{IfMissing, Reach, connect};

#[derive(Args, Debug)]
pub(crate) struct CheckArgs {
    /// Fix what can be fixed: rebuild index entries, drop stale ones,
    /// move unreadable or orphaned records to quarantine (never deletes
    /// data).
    #[arg(long)]
    repair: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Returns the exit status: 1 if problems remain unrepaired.
pub(crate) fn run(cli: &Cli, args: &CheckArgs) -> Result<i32> {
    let CheckArgs { repair, json } = args;
    let mut m = connect(cli, Reach::Either, IfMissing::Fail)?;
    let Reply::Check { report, repaired } = m.call(Request::Check { repair: *repair }, None)?
    else {
        bail!("unexpected reply");
    };
    if *json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"report": report, "repaired": repaired})
            )?
        );
    } else {
        println!(
            "checked {} envelopes, {} contents, {} index entries; {} in quarantine",
            report.envelopes, report.contents, report.index_entries, report.quarantined
        );
        for p in &report.problems {
            println!("problem: {}", p.description);
        }
        if *repair {
            println!(
                "repaired {repaired} of {} problem(s)",
                report.problems.len()
            );
        } else if !report.is_clean() {
            println!(
                "{} problem(s); run `check --repair` to fix",
                report.problems.len()
            );
        } else {
            println!("ok");
        }
    }
    let left = report.problems.len() as u64 - if *repair { repaired } else { 0 };
    Ok(i32::from(left > 0))
}
