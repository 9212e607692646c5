//! `imxp-spool`: look into and manage the imxp relay's spool (postqueue +
//! postsuper + postcat).

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use imxp_spool::admin::{
    self, Action, Client, Filter, Handler, Reply, Request, Response, Selection,
};
use imxp_spool::{
    DatagramId, EngineKind, Envelope, RecipientState, Spool, SpoolConfig, SpoolError, StateName,
};

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
struct Cli {
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
    state_dir: PathBuf,

    /// The spool directory (default STATE/spool).
    #[arg(long, global = true, value_name = "DIR")]
    spool_dir: Option<PathBuf>,

    /// The relay's admin socket (default STATE/admin.sock).
    #[arg(long, global = true, value_name = "PATH")]
    socket: Option<PathBuf>,

    /// Only talk to the running relay over its admin socket.
    #[arg(long, global = true, conflicts_with = "offline")]
    online: bool,

    /// Only open the spool directly; fails if a process (the relay) holds
    /// its lock.
    #[arg(long, global = true)]
    offline: bool,

    /// Seconds to wait for the relay's socket to connect and to answer each
    /// request.
    #[arg(long, global = true, default_value_t = 30.0, value_name = "SECS")]
    timeout: f64,

    /// Storage engine of a spool created by `import` (an existing spool's
    /// engine is detected): redb or sled.
    #[arg(long, global = true, default_value = "redb", value_name = "ENGINE")]
    engine: EngineKind,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// List queued datagrams (one line each, or JSON lines with --json).
    ///
    /// Columns: id, age, size, state of each recipient, originator,
    /// recipients. A datagram on operator hold shows `HOLD`.
    List(ListArgs),
    /// Show one datagram: envelope, per-recipient state, attempts, last
    /// error, sizes (postcat).
    Show {
        /// The datagram id.
        id: DatagramId,
        /// Write the raw content bytes to standard output instead (exactly
        /// as received, nothing else).
        #[arg(long)]
        content: bool,
        /// Print the envelope as JSON.
        #[arg(long)]
        json: bool,
    },
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
    Flush {
        /// Only show what would be flushed.
        #[arg(long)]
        dry_run: bool,
    },
    /// Counts by state, by destination domain and by age (like qshape).
    Stats {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Integrity scan: envelopes decode, contents present with the recorded
    /// size, indexes exact, dedup consistent. Exit status 1 if problems
    /// remain.
    Check {
        /// Fix what can be fixed: rebuild index entries, drop stale ones,
        /// move unreadable or orphaned records to quarantine (never deletes
        /// data).
        #[arg(long)]
        repair: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List quarantined records (unreadable records moved aside).
    Quarantine {
        /// Print JSON lines.
        #[arg(long)]
        json: bool,
    },
    /// Write a portable dump of the whole spool (JSON lines: envelopes,
    /// content, dedup and quarantine). Offline only. The migration path
    /// between engines and versions.
    Export {
        /// Write to this file (default standard output).
        #[arg(long, short = 'o', value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Load a dump made by `export` into the spool, creating it with
    /// --engine if absent. Offline only. Existing ids are skipped, so an
    /// interrupted import can be repeated.
    Import {
        /// The dump (default or `-`: standard input).
        #[arg(value_name = "FILE")]
        input: Option<PathBuf>,
    },
}

#[derive(Args, Debug)]
struct ListArgs {
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

#[derive(Args, Debug)]
struct IdsArgs {
    /// Datagram ids; `-` reads ids from standard input, one per line; `ALL`
    /// selects every datagram.
    #[arg(required = true, value_name = "ID|-|ALL")]
    ids: Vec<String>,
    /// Only show what would change.
    #[arg(long)]
    dry_run: bool,
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

fn selection(args: &IdsArgs) -> Result<Selection> {
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

// ===== modes =====

enum Mode {
    Offline(Handler, tokio::runtime::Runtime),
    Online(Client),
}

impl Mode {
    fn call(&mut self, request: Request, progress: Option<Arc<admin::Progress>>) -> Result<Reply> {
        let response = match self {
            Self::Offline(handler, rt) => rt.block_on(
                handler
                    .handle_with_progress(request, progress.unwrap_or_else(|| Arc::new(|_, _| {}))),
            ),
            Self::Online(client) => client.call(&request)?,
        };
        match response {
            Response::Ok(r) => Ok(r),
            Response::Error { message } => bail!("{message}"),
        }
    }
}

struct Paths {
    spool: PathBuf,
    socket: PathBuf,
    timeout: Duration,
}

fn paths(cli: &Cli) -> Paths {
    Paths {
        spool: cli
            .spool_dir
            .clone()
            .unwrap_or_else(|| cli.state_dir.join("spool")),
        socket: cli
            .socket
            .clone()
            .unwrap_or_else(|| cli.state_dir.join(admin::SOCKET_NAME)),
        timeout: Duration::from_secs_f64(cli.timeout.max(0.1)),
    }
}

fn open_offline(cli: &Cli, p: &Paths, create: bool) -> Result<Spool, SpoolError> {
    let engine = EngineKind::detect(&p.spool).unwrap_or(cli.engine);
    Spool::open(
        &p.spool,
        SpoolConfig {
            engine,
            create,
            ..SpoolConfig::default()
        },
    )
}

fn offline(spool: Spool) -> Result<Mode> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting runtime")?;
    Ok(Mode::Offline(Handler::new(spool), rt))
}

fn locked_message(p: &Paths, e: &SpoolError, why: &dyn std::fmt::Display) -> String {
    format!(
        "{e}, and its admin socket {} does not answer ({why}). The relay may be starting, \
         stopping or hung; nothing was changed. Retry, or stop the relay and use --offline.",
        p.socket.display()
    )
}

fn connect(cli: &Cli, need_offline: bool, create: bool) -> Result<Mode> {
    let p = paths(cli);
    if cli.online {
        if need_offline {
            bail!("this command works offline only (stop the relay first)");
        }
        return Ok(Mode::Online(Client::connect(&p.socket, p.timeout)?));
    }
    match open_offline(cli, &p, create) {
        Ok(spool) => offline(spool),
        Err(e @ SpoolError::Locked { .. }) => {
            if cli.offline || need_offline {
                bail!(
                    "{e}; {} needs the spool to itself: stop the relay first",
                    if need_offline {
                        "this command"
                    } else {
                        "--offline"
                    }
                );
            }
            match Client::connect(&p.socket, p.timeout) {
                Ok(c) => Ok(Mode::Online(c)),
                Err(why) => bail!("{}", locked_message(&p, &e, &why)),
            }
        }
        Err(e) => Err(e).with_context(|| format!("opening spool {}", p.spool.display())),
    }
}

fn progress_bar(total: u64, what: &str) -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({per_sec}, {eta})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message(what.to_owned());
    Some(bar)
}

// ===== output =====

fn age(now: u64, then: u64) -> String {
    let s = now.saturating_sub(then) / 1000;
    match s {
        0..=99 => format!("{s}s"),
        100..=5999 => format!("{}m", s / 60),
        6000..=359_999 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
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

fn fmt_ms(ms: u64) -> String {
    imxp_wire::datetime::display_millis(ms)
}

fn print_show(env: &Envelope, now: u64) -> Result<()> {
    let mut o = std::io::stdout().lock();
    writeln!(o, "id:           {}", env.id)?;
    writeln!(o, "originator:   {}", env.originator)?;
    writeln!(
        o,
        "queued:       {} ({} ago)",
        fmt_ms(env.queued_ms),
        age(now, env.queued_ms)
    )?;
    writeln!(o, "expires:      {}", fmt_ms(env.expires_ms))?;
    writeln!(o, "size:         {} bytes", env.size)?;
    writeln!(
        o,
        "on hold:      {}",
        if env.admin_hold {
            "yes (operator)"
        } else {
            "no"
        }
    )?;
    let opt = &env.options;
    writeln!(
        o,
        "options:      deadline={} hold4Endpoint={} hops-left={} statusRequest={} reportErrors={}",
        opt.deadline_ms.map_or_else(|| "-".into(), fmt_ms),
        opt.hold_for_endpoint,
        opt.hops_left.map_or_else(|| "-".into(), |h| h.to_string()),
        opt.status_request.as_deref().unwrap_or("-"),
        opt.report_errors
    )?;
    if opt.report_delivery || opt.report_after_ms.is_some() {
        writeln!(
            o,
            "reports:      on-delivery={} transient-at={}",
            opt.report_delivery,
            opt.report_after_ms.map_or_else(|| "-".into(), fmt_ms),
        )?;
    }
    writeln!(o, "recipients:   {}", env.recipients.len())?;
    for (i, r) in env.recipients.iter().enumerate() {
        let detail = match &r.state {
            RecipientState::Queued { due_ms } => format!("due {}", fmt_ms(*due_ms)),
            RecipientState::InFlight { since_ms } => format!("since {}", fmt_ms(*since_ms)),
            // The error is shown once, on the attempts line below.
            RecipientState::Deferred {
                attempt,
                next_due_ms,
                ..
            } => format!("attempt {attempt}, next {}", fmt_ms(*next_due_ms)),
            RecipientState::Held { since_ms, until_ms } => match until_ms {
                Some(until) => format!(
                    "waiting for the endpoint since {}, until {}",
                    fmt_ms(*since_ms),
                    fmt_ms(*until)
                ),
                None => format!("waiting for the endpoint since {}", fmt_ms(*since_ms)),
            },
            RecipientState::Delivered { at_ms, via } => {
                format!(
                    "at {}{}",
                    fmt_ms(*at_ms),
                    via.as_ref()
                        .map(|v| format!(" via {v}"))
                        .unwrap_or_default()
                )
            }
            RecipientState::Failed { at_ms, .. } => format!("at {}", fmt_ms(*at_ms)),
        };
        writeln!(o, "  [{i}] {}  {}  ({detail})", r.endpoint, r.state.name())?;
        writeln!(
            o,
            "      attempts {}, last error: {}, report: {:?}",
            r.attempts,
            r.last_error
                .as_ref()
                .map_or_else(|| "-".into(), ToString::to_string),
            r.report
        )?;
    }
    Ok(())
}

fn print_applied(verb: &str, reply: Reply) -> Result<()> {
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

fn run(cli: Cli) -> Result<i32> {
    let now = imxp_spool::spool::system_now_ms();
    match &cli.command {
        Command::List(a) => {
            let mut m = connect(&cli, false, false)?;
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
        }
        Command::Show { id, content, json } => {
            let mut m = connect(&cli, false, false)?;
            let Reply::Show {
                envelope,
                content: bytes,
            } = m.call(
                Request::Show {
                    id: *id,
                    content: *content,
                },
                None,
            )?
            else {
                bail!("unexpected reply");
            };
            if *content {
                let bytes =
                    bytes.with_context(|| format!("datagram {id} has no content (run check)"))?;
                let mut o = std::io::stdout().lock();
                o.write_all(&bytes)?;
                o.flush()?;
            } else if *json {
                println!("{}", serde_json::to_string_pretty(&envelope)?);
            } else {
                print_show(&envelope, now)?;
            }
        }
        Command::Hold(a) | Command::Release(a) | Command::Requeue(a) | Command::Delete(a) => {
            let (action, verb) = match &cli.command {
                Command::Hold(_) => (Action::Hold, "held"),
                Command::Release(_) => (Action::Release, "released"),
                Command::Requeue(_) => (Action::Requeue, "requeued"),
                _ => (Action::Delete, "deleted"),
            };
            let sel = selection(a)?;
            let mut m = connect(&cli, false, false)?;
            let bar = match (&m, &sel) {
                (Mode::Offline(h, _), Selection::All) if !a.dry_run => {
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
            print_applied(verb, reply)?;
        }
        Command::Flush { dry_run } => {
            let mut m = connect(&cli, false, false)?;
            let reply = m.call(Request::Flush { dry_run: *dry_run }, None)?;
            print_applied("flushed", reply)?;
        }
        Command::Stats { json } => {
            let mut m = connect(&cli, false, false)?;
            let Reply::Stats(s) = m.call(Request::Stats, None)? else {
                bail!("unexpected reply");
            };
            if *json {
                println!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                let mut o = std::io::stdout().lock();
                writeln!(
                    o,
                    "datagrams {}  on hold {}  content {} bytes  quarantined {}  dedup ids {}",
                    s.datagrams, s.on_hold, s.content_bytes, s.quarantined, s.dedup_entries
                )?;
                let by_state: Vec<String> =
                    s.by_state.iter().map(|(k, v)| format!("{k} {v}")).collect();
                writeln!(o, "recipients: {}", by_state.join("  "))?;
                writeln!(o)?;
                write!(o, "{:<28} {:>6}", "DOMAIN (pending by age)", "T")?;
                for l in &s.age_labels {
                    write!(o, " {l:>9}")?;
                }
                writeln!(o)?;
                write!(o, "{:<28} {:>6}", "TOTAL", s.by_age.iter().sum::<u64>())?;
                for n in &s.by_age {
                    write!(o, " {n:>9}")?;
                }
                writeln!(o)?;
                let mut domains: Vec<_> = s.by_domain.iter().collect();
                domains.sort_by_key(|(d, st)| {
                    (
                        std::cmp::Reverse(st.by_age.iter().sum::<u64>()),
                        (*d).clone(),
                    )
                });
                for (d, st) in domains {
                    write!(o, "{d:<28} {:>6}", st.by_age.iter().sum::<u64>())?;
                    for n in &st.by_age {
                        write!(o, " {n:>9}")?;
                    }
                    writeln!(o)?;
                }
            }
        }
        Command::Check { repair, json } => {
            let mut m = connect(&cli, false, false)?;
            let Reply::Check { report, repaired } =
                m.call(Request::Check { repair: *repair }, None)?
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
            return Ok(i32::from(left > 0));
        }
        Command::Quarantine { json } => {
            let mut m = connect(&cli, false, false)?;
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
        }
        Command::Export { output } => {
            let Mode::Offline(h, _) = connect(&cli, true, false)? else {
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
        }
        Command::Import { input } => {
            let Mode::Offline(h, _) = connect(&cli, true, true)? else {
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
            eprintln!(
                "imported {} datagram(s) into the {} spool {} ({} already present), {} dedup id(s), {} quarantined record(s)",
                summary.datagrams,
                spool.engine_kind(),
                spool.dir().display(),
                summary.skipped,
                summary.dedup,
                summary.quarantine
            );
        }
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
