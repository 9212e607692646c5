//! imxp-bench: load driver for real `imxpd` processes.
//!
//! `imxp-bench relay` writes what an operator would (a CA and one
//! certificate per relay, `imxpd.toml` with `[routes]` between the relays,
//! users through `imxpd user add`), starts two `imxpd` processes (a.test →
//! b.test, TLS on every hop, durable redb spools), attaches N senders at
//! a.test and sinks at b.test, and measures per run: accepted/s at a.test,
//! delivered/s at the sinks, end-to-end latency percentiles (hdrhistogram),
//! CPU per datagram and RSS of each relay (`/proc/PID/stat`, `status`),
//! and spool commits per datagram (the admin socket's stats). `--rate R`
//! sends at a fixed rate instead of as fast as accepted.
//!
//! The scale scenarios (`backlog`, `restart`, `idle`; module `scale`) use
//! the same relays and report their own figures.

mod load;
mod procfs;
mod relays;
mod report;
mod scale;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Parser)]
#[command(about = "Load driver and benchmarks for imxp")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Senders → imxpd a.test → imxpd b.test → sinks, real processes.
    Relay(RelayArgs),
    /// Queue N datagrams at a.test with b.test down, then drain them.
    Backlog(scale::backlog::Args),
    /// SIGKILL a relay holding N queued datagrams: time until it accepts
    /// and delivers again.
    Restart(scale::restart::Args),
    /// Attach N endpoints over many sessions: relay memory per endpoint.
    Idle(scale::idle::Args),
}

#[derive(clap::Args)]
struct RelayArgs {
    /// Concurrent senders (one session and attachment each, at a.test).
    #[arg(long, default_value_t = 50)]
    senders: usize,
    /// Datagrams in flight per sender (each waits for its `<ok />`).
    #[arg(long, default_value_t = 1)]
    pipeline: usize,
    /// Sinks (one session and attachment each, at b.test); the senders
    /// spread their datagrams over them.
    #[arg(long, default_value_t = 1)]
    sinks: usize,
    /// Datagrams per run.
    #[arg(long, default_value_t = 20_000)]
    count: u64,
    /// Content octets per datagram (at least 17: the sequence number).
    #[arg(long, default_value_t = 500)]
    size: usize,
    /// Send at this many datagrams per second over all senders (latency
    /// is only meaningful below saturation); default: as fast as accepted.
    #[arg(long)]
    rate: Option<f64>,
    /// Runs against the same relays.
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// One JSON object per run on standard output instead of text.
    #[arg(long)]
    json: bool,
    /// The imxpd binary (default: next to this one).
    #[arg(long)]
    imxpd: Option<PathBuf>,
    /// Keep the relays' files (configs, spools, logs) here instead of a
    /// temporary directory.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Give up when nothing was delivered for this many seconds.
    #[arg(long, default_value_t = 60)]
    stall_secs: u64,
}

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    match Cli::parse().command {
        Command::Relay(args) => runtime.block_on(relay(args)),
        Command::Backlog(args) => {
            let imxpd = imxpd_path(&args.common.imxpd)?;
            runtime.block_on(scale::backlog::run(args, &imxpd))
        }
        Command::Restart(args) => {
            let imxpd = imxpd_path(&args.common.imxpd)?;
            runtime.block_on(scale::restart::run(args, &imxpd))
        }
        Command::Idle(args) => {
            let imxpd = imxpd_path(&args.common.imxpd)?;
            runtime.block_on(scale::idle::run(args, &imxpd))
        }
    }
}

/// `--imxpd`, or the one next to this executable.
fn imxpd_path(given: &Option<PathBuf>) -> anyhow::Result<PathBuf> {
    match given {
        Some(path) => Ok(path.clone()),
        None => default_imxpd(),
    }
}

/// The `imxpd` next to this executable (`target/<profile>/`).
fn default_imxpd() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let path = exe.with_file_name("imxpd");
    anyhow::ensure!(
        path.exists(),
        "no imxpd at {} (build it with `cargo build --release -p imxp-relay`, or pass --imxpd)",
        path.display()
    );
    Ok(path)
}

async fn relay(args: RelayArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.runs > 0, "--runs must be at least 1");
    if let Some(rate) = args.rate {
        anyhow::ensure!(rate > 0.0, "--rate must be positive, not {rate}");
    }
    let imxpd = imxpd_path(&args.imxpd)?;
    let temporary;
    let base: &Path = match &args.dir {
        Some(dir) => dir,
        None => {
            temporary = tempfile::tempdir()?;
            temporary.path()
        }
    };
    let shape = load::Shape {
        senders: args.senders,
        pipeline: args.pipeline,
        sinks: args.sinks,
        count: args.count,
        size: args.size,
        rate: args.rate,
        stall: Duration::from_secs(args.stall_secs),
    };
    // Every session comes from 127.0.0.1: lift the per-address limit.
    let limits = format!(
        "[limits]\nmax_sessions_per_address = {}\n",
        args.senders.max(args.sinks) + 16
    );
    let plans = [
        relays::Plan {
            domain: "a.test".into(),
            users: (0..args.senders)
                .map(|i| load::sender(i, "a.test"))
                .collect(),
            extra: limits.clone(),
        },
        relays::Plan {
            domain: "b.test".into(),
            users: (0..args.sinks).map(|j| load::sink(j, "b.test")).collect(),
            extra: limits,
        },
    ];
    let layouts = relays::write(&imxpd, base, &plans)?;
    let mut running = Vec::new();
    for layout in &layouts {
        running.push(relays::Relay::start(&imxpd, layout)?);
    }
    let tls = imxp_client::tls::client_config_from_ca_file(&layouts[0].dir.join("ca.pem"))
        .context("client TLS configuration")?;
    let target = load::Target {
        source: (layouts[0].edge, layouts[0].domain.clone()),
        sink: (layouts[1].edge, layouts[1].domain.clone()),
        tls,
    };
    let mut failed = None;
    for run in 1..=args.runs {
        let prepared = load::prepare(&target, shape).await?;
        let read = |relays: &[relays::Relay]| -> anyhow::Result<(procfs::Sample, Vec<_>)> {
            let driver = procfs::sample(std::process::id())?;
            let relays = relays
                .iter()
                .map(|r| Ok((procfs::sample(r.pid())?, r.stats()?.commits)))
                .collect::<anyhow::Result<_>>()?;
            Ok((driver, relays))
        };
        let (driver_before, before) = read(&running)?;
        let progress = progress_bar(shape.count);
        let (outcome, after) = prepared.run(&progress, || read(&running)).await?;
        progress.finish_and_clear();
        let (driver_after, after) = after?;
        let figures = running
            .iter()
            .zip(before.into_iter().zip(after))
            .map(|(relay, ((cpu0, commits0), (cpu1, commits1)))| {
                report::RelayFigures::new(
                    &relay.layout.domain,
                    relay.pid(),
                    (cpu0, cpu1),
                    (commits0, commits1),
                    outcome.delivered,
                )
            })
            .collect();
        let driver_cpu_us = driver_after.cpu_us.saturating_sub(driver_before.cpu_us);
        let report = report::Run::new(run, &shape, &outcome, figures, driver_cpu_us);
        if args.json {
            println!("{}", serde_json::to_string(&report)?);
        } else {
            print!("{}", report.text());
        }
        if outcome.delivered < outcome.accepted || outcome.refused.0 > 0 {
            failed.get_or_insert_with(|| {
                format!(
                    "run {run}: {} accepted, {} refused, {} delivered",
                    outcome.accepted, outcome.refused.0, outcome.delivered
                )
            });
        }
    }
    for relay in running {
        relay.stop()?;
    }
    match failed {
        Some(failure) => anyhow::bail!("{failure}"),
        None => Ok(()),
    }
}

/// A progress bar on standard error (drawn only on a terminal).
pub(crate) fn progress_bar(total: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{elapsed_precise} [{bar:40}] {pos}/{len} delivered {per_sec} {msg}",
        )
        .expect("progress template")
        .progress_chars("=> "),
    );
    bar
}
