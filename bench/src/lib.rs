//! Benchmarks for imxp.
//!
//! - `imxp-bench relay` (`src/bin/imxp-bench/`): real `imxpd` processes
//!   driven by senders and sinks, with throughput, latency percentiles, CPU
//!   and RSS per relay and spool commits per datagram; see `bench/README.md`.
//!
//! - `benches/spool_enqueue.rs`: durable enqueue throughput of the spool
//!   (512-byte datagrams; 1, 16 and 256 concurrent producers; redb and sled
//!   side by side), with the commits (fsyncs) per datagram. Run it with
//!   `cargo bench -p imxp-bench --bench spool_enqueue`.

use std::time::{Duration, Instant};

use imxp_spool::{DatagramId, EngineKind, NewDatagram, QueueOptions, Spool, SpoolConfig};

/// One measured run of [`enqueue_throughput`].
#[derive(Clone, Debug)]
pub struct EnqueueRun {
    /// The engine.
    pub engine: EngineKind,
    /// Concurrent producers.
    pub producers: usize,
    /// Datagrams made durable.
    pub datagrams: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// Durable commits made.
    pub commits: u64,
}

impl EnqueueRun {
    /// Datagrams per second.
    pub fn per_second(&self) -> f64 {
        self.datagrams as f64 / self.elapsed.as_secs_f64()
    }

    /// Commits (each one fsync cycle) per datagram.
    pub fn commits_per_datagram(&self) -> f64 {
        self.commits as f64 / self.datagrams as f64
    }
}

/// Enqueues datagrams of `size` bytes from `producers` concurrent tokio tasks
/// into a fresh spool in `dir` for about `duration`; every enqueue awaits its
/// durable commit before the producer sends the next one.
pub fn enqueue_throughput(
    dir: &std::path::Path,
    engine: EngineKind,
    producers: usize,
    size: usize,
    duration: Duration,
) -> EnqueueRun {
    let spool = Spool::open(
        dir,
        SpoolConfig {
            engine,
            ..SpoolConfig::default()
        },
    )
    .expect("open spool");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let content = vec![0x5a; size];
    let before = spool.commit_stats();
    let start = Instant::now();
    let deadline = start + duration;
    let datagrams: u64 = rt.block_on(async {
        let mut tasks = Vec::with_capacity(producers);
        for _ in 0..producers {
            let spool = spool.clone();
            let content = content.clone();
            tasks.push(tokio::spawn(async move {
                let mut n = 0u64;
                while Instant::now() < deadline {
                    let d = NewDatagram {
                        id: DatagramId::generate(spool.now_ms()),
                        id_origin: imxp_spool::IdOrigin::Generated,
                        originator: "bench@a.example".into(),
                        recipients: vec!["sink@b.example".into()],
                        options: QueueOptions::default(),
                        content: content.clone(),
                    };
                    spool.enqueue(d).await.expect("enqueue");
                    n += 1;
                }
                n
            }));
        }
        let mut total = 0;
        for t in tasks {
            total += t.await.expect("producer");
        }
        total
    });
    let elapsed = start.elapsed();
    let after = spool.commit_stats();
    EnqueueRun {
        engine,
        producers,
        datagrams,
        elapsed,
        commits: after.commits - before.commits,
    }
}
