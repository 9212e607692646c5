//! `list`: the queued datagrams, one line each or JSON lines, filtered by
//! state, domain, originator, recipient and age.

use std::io::Write;

use anyhow::{Result, bail};
use clap::Args;
use imxp_spool::admin::{Filter, Reply, Request};
use imxp_spool::{Envelope, StateName};

use crate::cli::Cli;
use crate::mode::{IfMissing, Reach, connect};
use crate::time::age;

#[derive(Args, Debug)]
pub(crate) struct ListArgs {
    /// Only datagrams with a recipient in this state: queued, in-flight,
    /// deferred, held (also matches operator hold), delivered, failed.
    #[arg(long)]
    state: Option<StateName>,
    /// Only datagrams with a recipient in this domain.
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
    /// One JSON object per line (the envelope, with `id`).
    #[arg(long)]
    json: bool,
}

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

pub(crate) fn run(cli: &Cli, a: &ListArgs, now: u64) -> Result<()> {
    let mut m = connect(cli, Reach::Either, IfMissing::Fail)?;
    let filter = Filter {
        state: a.state,
        domain: a.domain.clone(),
        originator: a.originator.clone(),
        recipient: a.recipient.clone(),
        older_than_ms: a.older_than,
        newer_than_ms: a.newer_than,
    };
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
