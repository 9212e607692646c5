//! `imxp-bench idle`: attach N endpoints to one relay, many per session
//! (the user and its subaddresses `user/k`, RFC 3340 §2.2) over many
//! sessions, and measure the relay's memory: RSS per session (a session
//! with its first endpoint) and per attached endpoint. The file limit of
//! this process (and so of the relay it starts) is raised to its hard
//! limit first.

use super::{Common, base_dir, print};
use crate::relays::{self, Relay};
use crate::{load, procfs};
use anyhow::Context as _;
use imxp_apex::Endpoint;
use serde::Serialize;
use std::time::Instant;

#[derive(clap::Args, Clone, Debug)]
pub(crate) struct Args {
    #[command(flatten)]
    pub(crate) common: Common,
    /// Endpoints to attach (default 50,000; 1,000 with --quick).
    #[arg(long)]
    pub(crate) endpoints: Option<usize>,
    /// Sessions to spread them over (default 250; 10 with --quick).
    #[arg(long)]
    pub(crate) sessions: Option<usize>,
}

#[derive(Serialize)]
struct Figures {
    scenario: &'static str,
    sessions: usize,
    endpoints: usize,
    file_limit: u64,
    rss_start_kib: u64,
    rss_sessions_kib: u64,
    rss_attached_kib: u64,
    kib_per_session: f64,
    kib_per_endpoint: f64,
    kib_per_extra_endpoint: f64,
    attach_s: f64,
}

/// Raises the soft limit of open files to the hard one; the new limit.
pub(crate) fn raise_file_limit() -> anyhow::Result<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    limit.current = limit.maximum;
    setrlimit(Resource::Nofile, limit).context("raising RLIMIT_NOFILE")?;
    Ok(limit.current.unwrap_or(u64::MAX))
}

pub(crate) async fn run(args: Args, imxpd: &std::path::Path) -> anyhow::Result<()> {
    let quick = args.common.quick;
    let endpoints = args.endpoints.unwrap_or(if quick { 1_000 } else { 50_000 });
    let sessions = args.sessions.unwrap_or(if quick { 10 } else { 250 });
    anyhow::ensure!(
        sessions > 0 && endpoints >= sessions,
        "need at least one session and one endpoint per session ({endpoints} endpoints, {sessions} sessions)"
    );
    let file_limit = raise_file_limit()?;
    let per_session = endpoints.div_ceil(sessions);
    let mut holder = None;
    let base = base_dir(&args.common.dir, &mut holder)?;
    let users: Vec<_> = (0..sessions).map(|i| load::sender(i, "a.test")).collect();
    let plan = relays::Plan {
        domain: "a.test".into(),
        users: users.clone(),
        extra: format!(
            "[limits]\nmax_sessions = {}\nmax_sessions_per_address = {}\n\
             max_attachments_per_session = {per_session}\n",
            sessions + 16,
            sessions + 16
        ),
    };
    let layout = relays::write(imxpd, &base, &[plan])?
        .pop()
        .context("a.test layout")?;
    let tls = imxp_client::tls::client_config_from_ca_file(&layout.dir.join("ca.pem"))
        .context("client TLS configuration")?;
    let relay = Relay::start(imxpd, &layout)?;
    let rss = |relay: &Relay| procfs::sample(relay.pid()).map(|s| s.rss_kib);
    let rss_start = rss(&relay)?;
    let progress = crate::progress_bar(endpoints as u64);
    progress.set_message("endpoints attached");
    let start = Instant::now();
    let mut attached = Vec::new();
    for user in &users {
        let pair = load::connect(layout.edge, &layout.domain, &tls, user.clone()).await?;
        progress.inc(1);
        attached.push(pair);
    }
    let rss_sessions = rss(&relay)?;
    let mut n = sessions;
    'outer: for k in 1..per_session {
        for ((name, _), (_, attachment)) in users.iter().zip(&attached) {
            if n == endpoints {
                break 'outer;
            }
            let (local, domain) = name.split_once('@').context("user address")?;
            let endpoint = Endpoint::parse(&format!("{local}/{k}@{domain}"))?;
            attachment
                .attach(endpoint)
                .await
                .with_context(|| format!("attaching {local}/{k}@{domain}"))?;
            n += 1;
            progress.inc(1);
        }
    }
    let attach = start.elapsed();
    progress.finish_and_clear();
    let rss_attached = rss(&relay)?;
    let kib = |a: u64, b: u64, n: usize| a.saturating_sub(b) as f64 / n.max(1) as f64;
    let figures = Figures {
        scenario: "idle",
        sessions,
        endpoints: n,
        file_limit,
        rss_start_kib: rss_start,
        rss_sessions_kib: rss_sessions,
        rss_attached_kib: rss_attached,
        kib_per_session: kib(rss_sessions, rss_start, sessions),
        kib_per_endpoint: kib(rss_attached, rss_start, n),
        kib_per_extra_endpoint: kib(rss_attached, rss_sessions, n - sessions),
        attach_s: attach.as_secs_f64(),
    };
    print(args.common.json, &figures)?;
    drop(attached);
    relay.stop()?;
    Ok(())
}
