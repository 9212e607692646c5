//! The datagrams a bulk command (hold, release, requeue, delete) acts on:
//! ids as arguments, `-` for ids on standard input, the literal `ALL`, or
//! the datagrams the filter options match (clap keeps ids and filters
//! apart).

use std::io::BufRead;

use anyhow::{Context, Result, bail};
use imxp_spool::DatagramId;
use imxp_spool::admin::Selection;

use crate::apply::IdsArgs;

pub(crate) fn selection(args: &IdsArgs) -> Result<Selection> {
    if let Some(filter) = args.filter.filter() {
        return Ok(Selection::Matching(filter));
    }
    if args.ids.iter().any(|a| a == "ALL") {
        if args.ids.len() != 1 {
            bail!("ALL cannot be combined with ids");
        }
        return Ok(Selection::All);
    }
    let mut ids = Vec::new();
    for a in &args.ids {
        if a == "-" {
            for line in std::io::stdin().lock().lines() {
                let line = line.context("reading ids from standard input")?;
                let t = line.split_whitespace().next().unwrap_or("");
                if t.is_empty() {
                    continue;
                }
                if t == "ALL" {
                    bail!("ALL is only accepted as an argument");
                }
                ids.push(t.parse::<DatagramId>()?);
            }
        } else if a.eq_ignore_ascii_case("all") {
            bail!("to select every datagram write ALL in capitals");
        } else {
            ids.push(a.parse::<DatagramId>()?);
        }
    }
    Ok(Selection::Ids(ids))
}
