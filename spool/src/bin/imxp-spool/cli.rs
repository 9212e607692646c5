//! The command line: global options (where the spool and the socket are,
//! which mode) and the list of commands, each of whose arguments is defined
//! in its own module.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use imxp_spool::EngineKind;

use crate::apply::{FlushArgs, IdsArgs};
use crate::check::CheckArgs;
use crate::export::ExportArgs;
use crate::import::ImportArgs;
use crate::list::ListArgs;
use crate::quarantine::QuarantineArgs;
use crate::show::ShowArgs;
use crate::stats::StatsArgs;

const AFTER_HELP: &str = "\
MODES
  Online: when a relay (imxpd) owns the spool, commands go to its admin socket
  (STATE/admin.sock, mode 0600) and the relay performs them. Offline: when no
  process holds the spool's lock file (SPOOL/lock), imxp-spool opens the spool
  itself. By default the mode is chosen automatically: offline if the lock is
  free, else online. If the lock is held but the socket does not answer within
  --timeout, imxp-spool says so and exits without touching the spool.

IDS
  Datagram ids are 32 hex digits (see `list`). Commands taking IDS accept them
  as arguments, or `-` to read one id per line from standard input. Bulk
  operations on every datagram need the literal word ALL.

EXIT STATUS
  0 success; 1 error (or `check` found problems left unrepaired); 2 usage.

EXAMPLES
  imxp-spool list --state deferred --domain b.example
  imxp-spool show 0190c6e1a2b34c5d8e9f001122334455 --content > msg.eml
  imxp-spool list --older-than 2d --json | jq -r .id | imxp-spool delete --dry-run -
  imxp-spool hold ALL
  imxp-spool --offline export -o spool.dump
  imxp-spool --spool-dir /new/spool --engine sled import spool.dump";

/// Look into and manage the spool of the imxp relay.
#[derive(Parser, Debug)]
#[command(name = "imxp-spool", version, after_long_help = AFTER_HELP, after_help = "Run with --help for modes, ids, exit status and examples.")]
pub(crate) struct Cli {
    /// The relay's state directory; the spool is STATE/spool and the admin
    /// socket STATE/admin.sock.
    #[arg(
        long,
        short = 'd',
        global = true,
        env = "IMXP_STATE_DIR",
        default_value = "/var/lib/imxp",
        value_name = "STATE"
    )]
    pub(crate) state_dir: PathBuf,

    /// The spool directory (default STATE/spool).
    #[arg(long, global = true, value_name = "DIR")]
    pub(crate) spool_dir: Option<PathBuf>,

    /// The relay's admin socket (default STATE/admin.sock).
    #[arg(long, global = true, value_name = "PATH")]
    pub(crate) socket: Option<PathBuf>,

    /// Only talk to the running relay over its admin socket.
    #[arg(long, global = true, conflicts_with = "offline")]
    pub(crate) online: bool,

    /// Only open the spool directly; fails if a process (the relay) holds
    /// its lock.
    #[arg(long, global = true)]
    pub(crate) offline: bool,

    /// Seconds to wait for the relay's socket to connect and to answer each
    /// request.
    #[arg(long, global = true, default_value_t = 30.0, value_name = "SECS")]
    pub(crate) timeout: f64,

    /// Storage engine of a spool created by `import` (an existing spool's
    /// engine is detected): redb or sled.
    #[arg(long, global = true, default_value = "redb", value_name = "ENGINE")]
    pub(crate) engine: EngineKind,

    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// List queued datagrams (one line each, or JSON lines with --json).
    ///
    /// Columns: id, age, size, state of each recipient, originator,
    /// recipients. A datagram on operator hold shows `HOLD`.
    List(ListArgs),
    /// Show one datagram: envelope, per-recipient state, attempts, last
    /// error, sizes (postcat).
    Show(ShowArgs),
    /// Put datagrams on operator hold: they are not tried until released.
    Hold(IdsArgs),
    /// Release datagrams from operator hold.
    Release(IdsArgs),
    /// Retry datagrams now: queued, deferred and endpoint-held recipients
    /// become due immediately.
    Requeue(IdsArgs),
    /// Delete datagrams (envelope and content; no report is sent).
    Delete(IdsArgs),
    /// Make everything deferred due now (postqueue -f).
    Flush(FlushArgs),
    /// Counts by state, by destination domain and by age (like qshape).
    Stats(StatsArgs),
    /// Integrity scan: envelopes decode, contents present with the recorded
    /// size, indexes exact, dedup consistent. Exit status 1 if problems
    /// remain.
    Check(CheckArgs),
    /// List quarantined records (unreadable records moved aside).
    Quarantine(QuarantineArgs),
    /// Write a portable dump of the whole spool (JSON lines: envelopes,
    /// content, dedup and quarantine). Offline only. The migration path
    /// between engines and versions.
    Export(ExportArgs),
    /// Load a dump made by `export` into the spool, creating it with
    /// --engine if absent. Offline only. Existing ids are skipped, so an
    /// interrupted import can be repeated.
    Import(ImportArgs),
}
