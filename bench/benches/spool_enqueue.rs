//! Durable enqueue throughput of the spool: 512-byte datagrams from 1, 16
//! and 256 concurrent producers, redb and sled side by side, with commits
//! (fsync cycles) per datagram. Not a timed test: it prints a table.
//!
//! `cargo bench -p imxp-bench --bench spool_enqueue`
//! Knobs: `IMXP_BENCH_SECS` (seconds per cell, default 3),
//! `IMXP_BENCH_DIR` (where the spools go; default the system temp dir,
//! which must be a real disk for the figures to mean anything).

use std::time::Duration;

use imxp_bench::enqueue_throughput;
use imxp_spool::EngineKind;

fn main() {
    // `cargo test --benches` passes `--bench`-less args; run quickly then.
    let quick = !std::env::args().any(|a| a == "--bench");
    let secs: f64 = std::env::var("IMXP_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if quick { 0.2 } else { 3.0 });
    let base = std::env::var_os("IMXP_BENCH_DIR").map(std::path::PathBuf::from);
    println!(
        "{:<6} {:>9} {:>11} {:>12} {:>9} {:>14}",
        "engine", "producers", "datagrams", "datagrams/s", "commits", "commits/dgram"
    );
    for producers in [1, 16, 256] {
        for engine in EngineKind::ALL {
            let dir = match &base {
                Some(b) => tempfile::tempdir_in(b),
                None => tempfile::tempdir(),
            }
            .expect("temp dir");
            let run = enqueue_throughput(
                dir.path(),
                engine,
                producers,
                512,
                Duration::from_secs_f64(secs),
            );
            println!(
                "{:<6} {:>9} {:>11} {:>12.0} {:>9} {:>14.4}",
                run.engine.name(),
                run.producers,
                run.datagrams,
                run.per_second(),
                run.commits,
                run.commits_per_datagram()
            );
        }
    }
}
