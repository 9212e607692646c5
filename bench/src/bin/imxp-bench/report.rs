//! What a run prints: a few lines for people, or one JSON object per run
//! (`--json`).

use crate::load::Outcome;
use crate::procfs::Sample;
use serde::Serialize;
use std::fmt::Write as _;

/// One relay's share of a run.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct RelayFigures {
    /// The domain it serves.
    pub(crate) domain: String,
    /// Process id.
    pub(crate) pid: u32,
    /// User plus system CPU over the run, µs.
    pub(crate) cpu_us: u64,
    /// `cpu_us` per delivered datagram.
    pub(crate) cpu_us_per_datagram: f64,
    /// Resident set size at the end, KiB.
    pub(crate) rss_kib: u64,
    /// Peak resident set size of the process so far, KiB.
    pub(crate) peak_rss_kib: u64,
    /// Durable spool commits over the run.
    pub(crate) commits: u64,
    /// Spool operations carried by those commits.
    pub(crate) operations: u64,
    /// `commits` per delivered datagram.
    pub(crate) commits_per_datagram: f64,
}

impl RelayFigures {
    /// The figures of one relay from its readings before and after.
    pub(crate) fn new(
        domain: &str,
        pid: u32,
        (before, after): (Sample, Sample),
        (commits_before, commits_after): (imxp_spool::CommitStats, imxp_spool::CommitStats),
        delivered: u64,
    ) -> Self {
        let per = |n: u64| n as f64 / delivered.max(1) as f64;
        let cpu_us = after.cpu_us.saturating_sub(before.cpu_us);
        let commits = commits_after.commits.saturating_sub(commits_before.commits);
        Self {
            domain: domain.to_owned(),
            pid,
            cpu_us,
            cpu_us_per_datagram: per(cpu_us),
            rss_kib: after.rss_kib,
            peak_rss_kib: after.peak_rss_kib,
            commits,
            operations: commits_after
                .operations
                .saturating_sub(commits_before.operations),
            commits_per_datagram: per(commits),
        }
    }
}

/// End-to-end latency percentiles, µs.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Latency {
    pub(crate) p50: u64,
    pub(crate) p90: u64,
    pub(crate) p99: u64,
    pub(crate) p99_9: u64,
    pub(crate) max: u64,
}

/// One run.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Run {
    /// 1-based run number.
    pub(crate) run: usize,
    pub(crate) senders: usize,
    pub(crate) pipeline: usize,
    pub(crate) sinks: usize,
    pub(crate) datagrams: u64,
    pub(crate) size: usize,
    /// The fixed rate asked for, datagrams/s.
    pub(crate) rate: Option<f64>,
    pub(crate) accepted: u64,
    pub(crate) refused: u64,
    pub(crate) first_refusal: Option<String>,
    /// Accepted at the first relay per second (first send to last `<ok />`).
    pub(crate) accepted_per_s: f64,
    pub(crate) delivered: u64,
    pub(crate) duplicates: u64,
    /// Delivered at the sinks per second (first send to last delivery).
    pub(crate) delivered_per_s: f64,
    pub(crate) latency_us: Latency,
    pub(crate) relays: Vec<RelayFigures>,
    /// CPU of this process (senders and sinks: TLS, SASL, XML) per
    /// delivered datagram, µs: on a small machine it competes with the
    /// relays.
    pub(crate) driver_cpu_us_per_datagram: f64,
}

impl Run {
    /// The run's figures.
    pub(crate) fn new(
        run: usize,
        shape: &crate::load::Shape,
        outcome: &Outcome,
        relays: Vec<RelayFigures>,
        driver_cpu_us: u64,
    ) -> Self {
        let h = &outcome.latency;
        let q = |q: f64| {
            if h.is_empty() {
                0
            } else {
                h.value_at_quantile(q)
            }
        };
        Self {
            run,
            senders: shape.senders,
            pipeline: shape.pipeline,
            sinks: shape.sinks,
            datagrams: shape.count,
            size: shape.size,
            rate: shape.rate,
            accepted: outcome.accepted,
            refused: outcome.refused.0,
            first_refusal: outcome.refused.1.clone(),
            accepted_per_s: outcome.accepted as f64 / outcome.accepting.as_secs_f64().max(1e-9),
            delivered: outcome.delivered,
            duplicates: outcome.duplicates,
            delivered_per_s: outcome.delivered as f64 / outcome.delivering.as_secs_f64().max(1e-9),
            latency_us: Latency {
                p50: q(0.5),
                p90: q(0.9),
                p99: q(0.99),
                p99_9: q(0.999),
                max: if h.is_empty() { 0 } else { h.max() },
            },
            relays,
            driver_cpu_us_per_datagram: driver_cpu_us as f64 / outcome.delivered.max(1) as f64,
        }
    }

    /// The lines a person reads.
    pub(crate) fn text(&self) -> String {
        let mut out = String::new();
        let rate = match self.rate {
            Some(rate) => format!(", fixed rate {rate:.0}/s"),
            None => String::new(),
        };
        let _ = writeln!(
            out,
            "run {}: {} datagrams of {} octets, {} senders × {} in flight, {} sink(s){rate}",
            self.run, self.datagrams, self.size, self.senders, self.pipeline, self.sinks
        );
        let _ = writeln!(
            out,
            "  accepted at {}: {:>9.0} datagrams/s ({} accepted, {} refused)",
            self.relays.first().map_or("first", |r| r.domain.as_str()),
            self.accepted_per_s,
            self.accepted,
            self.refused
        );
        if let Some(refusal) = &self.first_refusal {
            let _ = writeln!(out, "    first refusal: {refusal}");
        }
        let _ = writeln!(
            out,
            "  delivered at sink:  {:>9.0} datagrams/s ({} delivered, {} duplicates)",
            self.delivered_per_s, self.delivered, self.duplicates
        );
        let l = &self.latency_us;
        let _ = writeln!(
            out,
            "  latency µs: p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
            l.p50, l.p90, l.p99, l.p99_9, l.max
        );
        for r in &self.relays {
            let _ = writeln!(
                out,
                "  {:<10} pid {:<7} CPU {:>7.1} µs/datagram  RSS {} KiB (peak {})  \
                 commits/datagram {:.3} ({} ops in {} commits)",
                r.domain,
                r.pid,
                r.cpu_us_per_datagram,
                r.rss_kib,
                r.peak_rss_kib,
                r.commits_per_datagram,
                r.operations,
                r.commits
            );
        }
        let _ = writeln!(
            out,
            "  driver     CPU {:>7.1} µs/datagram (senders and sinks, this process)",
            self.driver_cpu_us_per_datagram
        );
        out
    }
}
