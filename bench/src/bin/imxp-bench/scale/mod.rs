//! The scale scenarios of `imxp-bench`, each against real `imxpd`
//! processes: `backlog` (a queue built up while the next relay is down,
//! then drained), `restart` (SIGKILL of a relay holding a queue: time
//! until it accepts and delivers again), `idle` (memory per attached
//! endpoint and per session). `traffic` sends and counts datagrams;
//! this module sets up the two relays they share.

pub(crate) mod backlog;
pub(crate) mod idle;
pub(crate) mod restart;
pub(crate) mod traffic;

use crate::load;
use crate::relays::{self, Layout, Relay};
use anyhow::Context as _;
use imxp_apex::Endpoint;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The options every scale scenario takes.
#[derive(clap::Args, Clone, Debug)]
pub(crate) struct Common {
    /// Scale the scenario down for a quick run (see each scenario's
    /// defaults).
    #[arg(long)]
    pub(crate) quick: bool,
    /// One JSON object on standard output instead of text.
    #[arg(long)]
    pub(crate) json: bool,
    /// The imxpd binary (default: next to this one).
    #[arg(long)]
    pub(crate) imxpd: Option<PathBuf>,
    /// Keep the relays' files here instead of a temporary directory.
    #[arg(long)]
    pub(crate) dir: Option<PathBuf>,
    /// Give up when nothing was delivered for this many seconds.
    #[arg(long, default_value_t = 120)]
    pub(crate) stall_secs: u64,
}

impl Common {
    pub(crate) fn stall(&self) -> Duration {
        Duration::from_secs(self.stall_secs)
    }
}

/// The scenario's figures, printed as text or as one JSON object.
pub(crate) fn print<T: Serialize>(json: bool, figures: &T) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(figures)?);
    } else {
        let value = serde_json::to_value(figures)?;
        if let serde_json::Value::Object(map) = value {
            for (key, value) in map {
                println!("  {key:<28} {value}");
            }
        }
    }
    Ok(())
}

/// a.test (with `senders` sender users, retrying deferred datagrams
/// only after an hour) and b.test (one sink user), routed to each other,
/// written under `base`; neither is started.
pub(crate) struct Pair {
    pub(crate) imxpd: PathBuf,
    pub(crate) a: Layout,
    pub(crate) b: Layout,
    pub(crate) senders: Vec<(String, String)>,
    pub(crate) tls: std::sync::Arc<rustls::ClientConfig>,
}

impl Pair {
    pub(crate) fn write(imxpd: &Path, base: &Path, senders: usize) -> anyhow::Result<Self> {
        let limits = format!("[limits]\nmax_sessions_per_address = {}\n", senders + 16);
        let senders: Vec<_> = (0..senders).map(|i| load::sender(i, "a.test")).collect();
        let plans = [
            relays::Plan {
                domain: "a.test".into(),
                users: senders.clone(),
                // A deferred datagram waits for the scenario's flush: a
                // retry of its own could reach b.test before the sink is
                // attached there, and fail as "not attached".
                extra: format!("{limits}\n[queue]\nmin_backoff = \"1h\"\nmax_backoff = \"1h\"\n"),
            },
            relays::Plan {
                domain: "b.test".into(),
                users: vec![load::sink(0, "b.test")],
                extra: limits,
            },
        ];
        let mut layouts = relays::write(imxpd, base, &plans)?.into_iter();
        let (a, b) = (
            layouts.next().context("a.test layout")?,
            layouts.next().context("b.test layout")?,
        );
        let tls = imxp_client::tls::client_config_from_ca_file(&a.dir.join("ca.pem"))
            .context("client TLS configuration")?;
        Ok(Self {
            imxpd: imxpd.to_owned(),
            a,
            b,
            senders,
            tls,
        })
    }

    pub(crate) fn edge(&self, layout: &Layout) -> traffic::Edge {
        traffic::Edge {
            addr: layout.edge,
            domain: layout.domain.clone(),
            tls: self.tls.clone(),
        }
    }

    /// The sink's endpoint at b.test.
    pub(crate) fn sink_endpoint(&self) -> anyhow::Result<Endpoint> {
        Ok(Endpoint::parse(&load::sink(0, "b.test").0)?)
    }

    pub(crate) fn start(&self, layout: &Layout) -> anyhow::Result<Relay> {
        Relay::start(&self.imxpd, layout)
    }
}

/// Builds a queue of `count` datagrams at a.test while b.test is down
/// (each attempt fails to connect and is deferred): a.test is left
/// running. The fill's figures come back with it.
pub(crate) async fn queue_with_next_down(
    pair: &Pair,
    count: u64,
    size: usize,
) -> anyhow::Result<(Relay, traffic::Filled)> {
    let a = pair.start(&pair.a)?;
    let progress = crate::progress_bar(count);
    progress.set_message("queued at a.test (b.test down)");
    let filled = traffic::fill(
        &pair.edge(&pair.a),
        &pair.senders,
        &pair.sink_endpoint()?,
        0..count,
        size,
        &progress,
    )
    .await?;
    progress.finish_and_clear();
    anyhow::ensure!(
        filled.refused.0 == 0,
        "a.test refused {} datagrams while queueing: {}",
        filled.refused.0,
        filled.refused.1.as_deref().unwrap_or("")
    );
    Ok((a, filled))
}

/// `count` over `elapsed`, per second.
pub(crate) fn rate(count: u64, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64().max(1e-9)
}

/// The base directory: `dir`, or a new temporary one kept alive by
/// `holder`.
pub(crate) fn base_dir(
    dir: &Option<PathBuf>,
    holder: &mut Option<tempfile::TempDir>,
) -> anyhow::Result<PathBuf> {
    Ok(match dir {
        Some(dir) => dir.clone(),
        None => holder.insert(tempfile::tempdir()?).path().to_owned(),
    })
}
