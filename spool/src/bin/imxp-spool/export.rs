//! `export`: a portable dump of the whole spool (offline only), the
//! migration path between engines and versions; see `imxp_spool::dump`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use crate::cli::Cli;
use crate::mode::Mode;
use crate::mode::{IfMissing, Reach, connect};
use crate::progress::progress_bar;

#[derive(Args, Debug)]
pub(crate) struct ExportArgs {
    /// Write to this file (default standard output).
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,
    /// Print the summary as one JSON object on standard output (needs -o,
    /// since without it the dump itself goes there).
    #[arg(long, requires = "output")]
    json: bool,
}

pub(crate) fn run(cli: &Cli, args: &ExportArgs) -> Result<()> {
    let ExportArgs { output, json } = args;
    let Mode::Offline(h, _) = connect(cli, Reach::OfflineOnly, IfMissing::Fail)? else {
        unreachable!("offline only");
    };
    let spool = h.spool();
    let bar = progress_bar(spool.len()?, "export");
    let mut progress = |done: u64, _total: u64| {
        if let Some(b) = &bar {
            b.set_position(done);
        }
    };
    let summary = match output {
        Some(path) => {
            let f = std::fs::File::create(path)
                .with_context(|| format!("creating {}", path.display()))?;
            let mut w = std::io::BufWriter::new(f);
            let s = imxp_spool::dump::export(spool, &mut w, &mut progress)?;
            w.into_inner()
                .map_err(|e| e.into_error())?
                .sync_all()
                .with_context(|| format!("syncing {}", path.display()))?;
            s
        }
        None => {
            let mut w = std::io::BufWriter::new(std::io::stdout().lock());
            imxp_spool::dump::export(spool, &mut w, &mut progress)?
        }
    };
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if *json {
        println!("{}", serde_json::to_string(&summary)?);
        return Ok(());
    }
    eprintln!(
        "exported {} datagram(s), {} dedup id(s), {} quarantined record(s){}",
        summary.datagrams,
        summary.dedup,
        summary.quarantine,
        if summary.skipped > 0 {
            format!("; {} skipped (no content: run check)", summary.skipped)
        } else {
            String::new()
        }
    );
    Ok(())
}
