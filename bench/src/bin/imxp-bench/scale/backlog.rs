//! `imxp-bench backlog`: with b.test down, queue N datagrams at a.test;
//! bring b.test up with the sink attached, flush a.test's queue (what an
//! operator does with `imxp-spool flush` once the next hop is back), and
//! measure the drain: its rate at the sink and the peak RSS of each relay.

use super::{Common, Pair, base_dir, print, queue_with_next_down, rate, traffic};
use crate::procfs;
use serde::Serialize;
use std::time::Instant;

#[derive(clap::Args, Clone, Debug)]
pub(crate) struct Args {
    #[command(flatten)]
    pub(crate) common: Common,
    /// Datagrams to queue (default 1,000,000; 2,000 with --quick).
    #[arg(long)]
    pub(crate) count: Option<u64>,
    /// Content octets per datagram.
    #[arg(long, default_value_t = 500)]
    pub(crate) size: usize,
    /// Concurrent senders filling the queue.
    #[arg(long, default_value_t = 50)]
    pub(crate) senders: usize,
}

#[derive(Serialize)]
struct Figures {
    scenario: &'static str,
    queued: u64,
    size: usize,
    queued_per_s: f64,
    delivered: u64,
    duplicates: u64,
    drain_s: f64,
    drained_per_s: f64,
    a_rss_queued_kib: u64,
    a_peak_rss_kib: u64,
    b_peak_rss_kib: u64,
    a_cpu_us_per_datagram_drain: f64,
}

pub(crate) async fn run(args: Args, imxpd: &std::path::Path) -> anyhow::Result<()> {
    let count = args
        .count
        .unwrap_or(if args.common.quick { 2_000 } else { 1_000_000 });
    let mut holder = None;
    let base = base_dir(&args.common.dir, &mut holder)?;
    let pair = Pair::write(imxpd, &base, args.senders)?;
    let (a, filled) = queue_with_next_down(&pair, count, args.size).await?;
    let queued = procfs::sample(a.pid())?;
    let b = pair.start(&pair.b)?;
    let mut sink =
        traffic::Sink::attach(&pair.edge(&pair.b), crate::load::sink(0, "b.test")).await?;
    let progress = crate::progress_bar(filled.accepted);
    progress.set_message("drained to the sink");
    let start = Instant::now();
    a.flush()?;
    let delivered = sink
        .wait_for(filled.accepted, args.common.stall(), &progress)
        .await;
    progress.finish_and_clear();
    let a_end = procfs::sample(a.pid())?;
    let b_end = procfs::sample(b.pid())?;
    let seen = sink.finish().await;
    let drain = seen
        .last
        .map_or_else(|| start.elapsed(), |last| last - start);
    let figures = Figures {
        scenario: "backlog",
        queued: filled.accepted,
        size: args.size,
        queued_per_s: rate(filled.accepted, filled.elapsed),
        delivered,
        duplicates: seen.duplicates,
        drain_s: drain.as_secs_f64(),
        drained_per_s: rate(delivered, drain),
        a_rss_queued_kib: queued.rss_kib,
        a_peak_rss_kib: a_end.peak_rss_kib,
        b_peak_rss_kib: b_end.peak_rss_kib,
        a_cpu_us_per_datagram_drain: a_end.cpu_us.saturating_sub(queued.cpu_us) as f64
            / delivered.max(1) as f64,
    };
    print(args.common.json, &figures)?;
    a.stop()?;
    b.stop()?;
    anyhow::ensure!(
        delivered == filled.accepted,
        "{} of {} queued datagrams delivered",
        delivered,
        filled.accepted
    );
    Ok(())
}
