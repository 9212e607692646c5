//! `list`: the queued datagrams, one line each or JSON lines, filtered by
//! state, domain, originator, recipient and age.

use std::io::Write;

use anyhow::{Result, bail};
use clap::Args;
use imxp_spool::Envelope;
use imxp_spool::admin::{Reply, Request};

use crate::cli::Cli;
use crate::filter::FilterArgs;
use crate::mode::{IfMissing, Reach, connect};
use crate::time::age;

#[derive(Args, Debug)]
pub(crate) struct ListArgs {
    #[command(flatten)]
    filter: FilterArgs,
    /// One JSON object per line (the envelope, with `id`).
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(cli: &Cli, a: &ListArgs, now: u64) -> Result<()> {
    let mut m = connect(cli, Reach::Either, IfMissing::Fail)?;
    let filter = a.filter.filter().unwrap_or_default();
    let Reply::List { envelopes } = m.call(Request::List { filter }, None)? else {
        bail!("unexpected reply");
    };
    print_list(&envelopes, a.json, now)?;
    Ok(())
}

fn states(env: &Envelope) -> String {
    let mut v: Vec<&str> = env.recipients.iter().map(|r| r.state.name()).collect();
    v.dedup();
    let mut s = v.join(",");
    if env.admin_hold {
        s = format!("HOLD:{s}");
    }
    s
}

fn print_list(envs: &[Envelope], json: bool, now: u64) -> Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        for e in envs {
            serde_json::to_writer(&mut out, e)?;
            writeln!(out)?;
        }
        return Ok(());
    }
    writeln!(
        out,
        "{:<32} {:>5} {:>8} {:<18} {:<24} RECIPIENTS",
        "ID", "AGE", "SIZE", "STATE", "ORIGINATOR"
    )?;
    for e in envs {
        let rcpts: Vec<&str> = e.recipients.iter().map(|r| r.endpoint.as_str()).collect();
        writeln!(
            out,
            "{:<32} {:>5} {:>8} {:<18} {:<24} {}",
            e.id,
            age(now, e.queued_ms),
            e.size,
            states(e),
            e.originator,
            rcpts.join(" ")
        )?;
    }
    writeln!(out, "-- {} datagram(s)", envs.len())?;
    Ok(())
}
