//! `quarantine`: the records moved aside because they could not be read.

use anyhow::{Result, bail};
use clap::Args;
use imxp_spool::admin::{Reply, Request};

use crate::cli::Cli;
use crate::mode::{IfMissing, Reach, connect};
use crate::time::fmt_ms;

#[derive(Args, Debug)]
pub(crate) struct QuarantineArgs {
    /// Print JSON lines.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(cli: &Cli, args: &QuarantineArgs) -> Result<()> {
    let QuarantineArgs { json } = args;
    let mut m = connect(cli, Reach::Either, IfMissing::Fail)?;
    let Reply::Quarantine { entries } = m.call(Request::Quarantine, None)? else {
        bail!("unexpected reply");
    };
    for (key, e) in &entries {
        if *json {
            println!(
                "{}",
                serde_json::to_string(&serde_json::json!({"key": key, "entry": e}))?
            );
        } else {
            println!(
                "{key}  {}  from {} ({} bytes): {}",
                fmt_ms(e.at_ms),
                e.tree,
                e.value.len(),
                e.reason
            );
        }
    }
    if !*json {
        println!("-- {} record(s) in quarantine", entries.len());
    }
    Ok(())
}
