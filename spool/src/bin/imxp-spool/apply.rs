//! `hold`, `release`, `requeue`, `delete` (an [`Action`] on the datagrams
//! named by id, or matched by the filter options) and `flush` (deferred recipients due now): the commands that
//! change datagrams, each answered with what changed, what did not and
//! what was not found (or would, with `--dry-run`).

use std::io::Write;
use std::sync::Arc;

use anyhow::{Result, bail};
use clap::{ArgGroup, Args};
use imxp_spool::admin::{self, Action, Reply, Request, Selection};

use crate::cli::Cli;
use crate::filter::{FILTER_IDS, FilterArgs};
use crate::mode::Mode;
use crate::mode::{IfMissing, Reach, connect};
use crate::progress::progress_bar;
use crate::selection::selection;

#[derive(Args, Debug)]
#[command(group = ArgGroup::new("target").required(true).multiple(true).args(["ids"]).args(FILTER_IDS))]
pub(crate) struct IdsArgs {
    /// Datagram ids; `-` reads ids from standard input, one per line; `ALL`
    /// selects every datagram. Instead of ids, the filter options select
    /// the datagrams they match.
    #[arg(value_name = "ID|-|ALL", conflicts_with_all = FILTER_IDS)]
    pub(crate) ids: Vec<String>,
    #[command(flatten)]
    pub(crate) filter: FilterArgs,
    /// Only show what would change.
    #[arg(long)]
    dry_run: bool,
    /// Print one JSON object: the command, whether it was a dry run, and
    /// the ids changed, unchanged and not found.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
pub(crate) struct FlushArgs {
    /// Only show what would be flushed.
    #[arg(long)]
    dry_run: bool,
    /// Print one JSON object, as the other bulk commands do.
    #[arg(long)]
    json: bool,
}

/// How the output names what `action` did to a datagram.
fn past_tense(action: Action) -> &'static str {
    match action {
        Action::Hold => "held",
        Action::Release => "released",
        Action::Requeue => "requeued",
        Action::Delete => "deleted",
    }
}

/// The command that performs `action`.
fn command_name(action: Action) -> &'static str {
    match action {
        Action::Hold => "hold",
        Action::Release => "release",
        Action::Requeue => "requeue",
        Action::Delete => "delete",
    }
}

/// `hold`, `release`, `requeue` or `delete`.
pub(crate) fn run(cli: &Cli, action: Action, a: &IdsArgs) -> Result<()> {
    let verb = past_tense(action);
    let sel = selection(a)?;
    let mut m = connect(cli, Reach::Either, IfMissing::Fail)?;
    let bar = match (&m, &sel) {
        (Mode::Offline(h, _), Selection::All | Selection::Matching(_)) if !a.dry_run => {
            progress_bar(h.spool().len()?, verb)
        }
        (Mode::Offline(..), Selection::Ids(ids)) if ids.len() > 10_000 && !a.dry_run => {
            progress_bar(ids.len() as u64, verb)
        }
        _ => None,
    };
    let progress: Option<Arc<admin::Progress>> = bar.clone().map(|b| {
        Arc::new(move |done: u64, total: u64| {
            b.set_length(total);
            b.set_position(done);
        }) as Arc<admin::Progress>
    });
    let reply = m.call(
        Request::Apply {
            action,
            selection: sel,
            dry_run: a.dry_run,
        },
        progress,
    )?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    print_applied(command_name(action), verb, reply, a.json)?;
    Ok(())
}

/// `flush`.
pub(crate) fn flush(cli: &Cli, args: &FlushArgs) -> Result<()> {
    let FlushArgs { dry_run, json } = args;
    let mut m = connect(cli, Reach::Either, IfMissing::Fail)?;
    let reply = m.call(Request::Flush { dry_run: *dry_run }, None)?;
    print_applied("flush", "flushed", reply, *json)?;
    Ok(())
}

fn print_applied(command: &str, verb: &str, reply: Reply, json: bool) -> Result<()> {
    let Reply::Applied {
        changed,
        unchanged,
        missing,
        dry_run,
    } = reply
    else {
        bail!("unexpected reply");
    };
    let mut o = std::io::stdout().lock();
    if json {
        let ids =
            |v: &[imxp_spool::DatagramId]| v.iter().map(ToString::to_string).collect::<Vec<_>>();
        let value = serde_json::json!({
            "command": command,
            "dry_run": dry_run,
            "changed": ids(&changed),
            "unchanged": ids(&unchanged),
            "not_found": ids(&missing),
        });
        writeln!(o, "{value}")?;
        return Ok(());
    }
    let prefix = if dry_run { "would " } else { "" };
    for id in &changed {
        writeln!(o, "{prefix}{verb}: {id}")?;
    }
    for id in &missing {
        writeln!(o, "not found: {id}")?;
    }
    writeln!(
        o,
        "-- {}{verb} {}, unchanged {}, not found {}",
        prefix,
        changed.len(),
        unchanged.len(),
        missing.len()
    )?;
    Ok(())
}
