//! `imxp-spool`: look into and manage the imxp relay's spool (postqueue +
//! postsuper + postcat).
//!
//! # Layout
//!
//! - `cli`: the command line (global options and the command list).
//! - `mode`: offline (the spool opened here) or online (the relay's admin
//!   socket), and how a command gets one.
//! - `selection`: the ids a bulk command acts on.
//! - `filter`: the filter options of `list` and the bulk commands.
//! - `time`: ages and dates as printed.
//! - `progress`: progress bars on a terminal.
//! - One module per command, each with its arguments and output: `list`,
//!   `show`, `apply` (hold, release, requeue, delete, flush), `stats`,
//!   `check`, `quarantine`, `export`, `import`.

mod apply;
mod check;
mod cli;
mod export;
mod filter;
mod import;
mod list;
mod mode;
mod progress;
mod quarantine;
mod selection;
mod show;
mod stats;
mod time;

use anyhow::Result;
use clap::Parser;
use imxp_spool::admin::Action;

use cli::{Cli, Command};

fn run(cli: Cli) -> Result<i32> {
    let now = imxp_spool::spool::system_now_ms();
    match &cli.command {
        Command::List(a) => list::run(&cli, a, now)?,
        Command::Show(a) => show::run(&cli, a, now)?,
        Command::Hold(a) => apply::run(&cli, Action::Hold, a)?,
        Command::Release(a) => apply::run(&cli, Action::Release, a)?,
        Command::Requeue(a) => apply::run(&cli, Action::Requeue, a)?,
        Command::Delete(a) => apply::run(&cli, Action::Delete, a)?,
        Command::Flush(a) => apply::flush(&cli, a)?,
        Command::Stats(a) => stats::run(&cli, a)?,
        Command::Check(a) => return check::run(&cli, a),
        Command::Quarantine(a) => quarantine::run(&cli, a)?,
        Command::Export(a) => export::run(&cli, a)?,
        Command::Import(a) => import::run(&cli, a)?,
    }
    Ok(0)
}

fn main() {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("imxp-spool: {e:#}");
            std::process::exit(1);
        }
    }
}

#[cfg(test)]
mod man_page {
    use clap::CommandFactory as _;

    /// The synopsis and option lists of imxp-spool(8) are generated from
    /// [`Cli`] (`scripts/man` rewrites them).
    #[test]
    fn generated_parts_are_current() {
        if let Err(e) = imxp_mangen::check_page("imxp-spool.8", [super::Cli::command()]) {
            panic!("{e}");
        }
    }
}
