//! `import`: load a dump made by `export` (offline only), creating the
//! spool with `--engine` if absent; ids already present are skipped, so an
//! interrupted import can be repeated.

use std::io::BufRead;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use crate::cli::Cli;
use crate::mode::Mode;
use crate::mode::{IfMissing, Reach, connect};
use crate::progress::progress_bar;

#[derive(Args, Debug)]
pub(crate) struct ImportArgs {
    /// The dump (default or `-`: standard input).
    #[arg(value_name = "FILE")]
    input: Option<PathBuf>,
    /// Print the summary as one JSON object on standard output (`skipped`:
    /// datagrams already present).
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(cli: &Cli, args: &ImportArgs) -> Result<()> {
    let ImportArgs { input, json } = args;
    let Mode::Offline(h, _) = connect(cli, Reach::OfflineOnly, IfMissing::Create)? else {
        unreachable!("offline only");
    };
    let spool = h.spool();
    let reader: Box<dyn BufRead> = match input {
        Some(p) if p.as_os_str() != "-" => Box::new(std::io::BufReader::new(
            std::fs::File::open(p).with_context(|| format!("opening {}", p.display()))?,
        )),
        _ => Box::new(std::io::stdin().lock()),
    };
    let mut bar: Option<indicatif::ProgressBar> = None;
    let mut progress = |done: u64, total: u64| {
        if bar.is_none() {
            bar = progress_bar(total, "import");
        }
        if let Some(b) = &bar {
            b.set_position(done);
        }
    };
    let summary = imxp_spool::dump::import(spool, reader, &mut progress)?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if *json {
        println!("{}", serde_json::to_string(&summary)?);
        return Ok(());
    }
    eprintln!(
        "imported {} datagram(s) into the {} spool {} ({} already present), {} dedup id(s), {} quarantined record(s)",
        summary.datagrams,
        spool.engine_kind(),
        spool.dir().display(),
        summary.skipped,
        summary.dedup,
        summary.quarantine
    );
    Ok(())
}
