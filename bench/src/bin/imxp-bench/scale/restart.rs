//! `imxp-bench restart`: a.test holds N queued datagrams (b.test was
//! down while they came in); b.test comes up with the sink attached;
//! a.test is killed with SIGKILL and started again. Measured from the
//! new start: when its edge listener takes connections, when it
//! acknowledges a new datagram (durably queued: it accepts again), and
//! when that datagram reaches the sink (delivery resumed). The queue
//! itself waits for its retry time (or a flush), as after any restart.

use super::{Common, Pair, base_dir, print, queue_with_next_down, traffic};
use crate::relays::Relay;
use anyhow::Context as _;
use serde::Serialize;
use std::time::{Duration, Instant};

#[derive(clap::Args, Clone, Debug)]
pub(crate) struct Args {
    #[command(flatten)]
    pub(crate) common: Common,
    /// Datagrams queued at the relay killed (default 1,000,000; 2,000 with
    /// --quick).
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
    spool_bytes: u64,
    listening_ms: f64,
    accepting_ms: f64,
    delivering_ms: f64,
}

/// How long the restarted relay may take to listen.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(600);

pub(crate) async fn run(args: Args, imxpd: &std::path::Path) -> anyhow::Result<()> {
    let count = args
        .count
        .unwrap_or(if args.common.quick { 2_000 } else { 1_000_000 });
    let mut holder = None;
    let base = base_dir(&args.common.dir, &mut holder)?;
    let pair = Pair::write(imxpd, &base, args.senders)?;
    let (a, filled) = queue_with_next_down(&pair, count, args.size).await?;
    let b = pair.start(&pair.b)?;
    let sink = traffic::Sink::attach(&pair.edge(&pair.b), crate::load::sink(0, "b.test")).await?;
    a.kill()?;
    let spool_bytes = dir_bytes(&pair.a.dir.join("spool"))?;
    let start = Instant::now();
    let mut a = Relay::spawn(&pair.imxpd, &pair.a)?;
    a.wait_listening(LISTEN_TIMEOUT)?;
    let listening = start.elapsed();
    // The probe: one new datagram, numbered past the queue.
    let probe = filled.accepted + 1_000_000_000;
    let hidden = indicatif::ProgressBar::hidden();
    let sent = traffic::fill(
        &pair.edge(&pair.a),
        &pair.senders[..1],
        &pair.sink_endpoint()?,
        probe..probe + 1,
        args.size,
        &hidden,
    )
    .await?;
    anyhow::ensure!(
        sent.accepted == 1,
        "the restarted relay refused the probe: {}",
        sent.refused.1.as_deref().unwrap_or("")
    );
    let accepting = start.elapsed();
    let deadline = Instant::now() + args.common.stall();
    while !sink.has(probe) {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the probe was not delivered within {:?}",
            args.common.stall()
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let delivering = start.elapsed();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let figures = Figures {
        scenario: "restart",
        queued: filled.accepted,
        size: args.size,
        spool_bytes,
        listening_ms: ms(listening),
        accepting_ms: ms(accepting),
        delivering_ms: ms(delivering),
    };
    print(args.common.json, &figures)?;
    drop(sink.finish().await);
    a.kill().context("stopping a.test")?;
    b.stop()?;
    Ok(())
}

/// The size of the files under `dir`.
fn dir_bytes(dir: &std::path::Path) -> anyhow::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            dir_bytes(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}
