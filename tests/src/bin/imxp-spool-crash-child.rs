//! Child process of the spool crash test: opens a spool and writes to it
//! from many producers until it is killed, printing each event the moment
//! its commit returned (see `imxp_tests::spool_crash`).
//!
//! Usage:
//!   imxp-spool-crash-child crash DIR ENGINE PRODUCERS
//!   imxp-spool-crash-child fill DIR ENGINE COUNT

use std::io::Write;

use imxp_spool::{
    DatagramId, EngineKind, Failure, FailureKind, NewDatagram, Outcome, QueueOptions, Spool,
    SpoolConfig,
};
use imxp_tests::spool_crash::{RECIPIENT, content_for, open_retrying};

fn say(line: String) {
    let mut out = std::io::stdout().lock();
    // One write per line; a failure means the parent is gone.
    if out
        .write_all(line.as_bytes())
        .and_then(|()| out.flush())
        .is_err()
    {
        std::process::exit(0);
    }
}

fn datagram(spool: &Spool) -> NewDatagram {
    let id = DatagramId::generate(spool.now_ms());
    NewDatagram {
        id,
        id_origin: imxp_spool::IdOrigin::Derived,
        originator: "crash@a.example".into(),
        recipients: vec![RECIPIENT.into()],
        options: QueueOptions::default(),
        content: content_for(&id),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 5 {
        eprintln!("usage: {} crash|fill DIR ENGINE N", args[0]);
        std::process::exit(2);
    }
    let engine: EngineKind = args[3].parse().expect("engine");
    let n: u64 = args[4].parse().expect("number");
    let spool = open_retrying(
        std::path::Path::new(&args[2]),
        SpoolConfig {
            engine,
            ..SpoolConfig::default()
        },
    )
    .expect("open spool");
    say("READY\n".into());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    match args[1].as_str() {
        "crash" => rt.block_on(crash(spool, n as usize)),
        "fill" => rt.block_on(fill(spool, n)),
        other => panic!("unknown mode {other}"),
    }
}

/// Producers enqueue forever; one in three datagrams is then delivered
/// (removed), one in three deferred.
async fn crash(spool: Spool, producers: usize) {
    let mut tasks = Vec::new();
    for p in 0..producers {
        let spool = spool.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0u64.. {
                let d = datagram(&spool);
                let id = d.id;
                spool.enqueue(d).await.expect("enqueue");
                say(format!("E {id}\n"));
                match (i + p as u64) % 3 {
                    0 => {
                        say(format!("d {id}\n"));
                        let c = spool.claim(id).await.expect("claim").expect("due");
                        let r = spool
                            .record(id, vec![(c.attempt[0], Outcome::Delivered { via: None })])
                            .await
                            .expect("record")
                            .expect("exists");
                        assert!(r.removed);
                        say(format!("D {id}\n"));
                    }
                    1 => {
                        let c = spool.claim(id).await.expect("claim").expect("due");
                        let fail = Failure::new(FailureKind::Connect, "crash test");
                        spool
                            .record(id, vec![(c.attempt[0], Outcome::Deferred(fail))])
                            .await
                            .expect("record")
                            .expect("exists");
                        say(format!("F {id}\n"));
                    }
                    _ => {}
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("producer");
    }
}

/// Queues `count` datagrams (64 producers), claims 1 % of them (left in
/// flight), prints `FILLED`, then waits to be killed.
async fn fill(spool: Spool, count: u64) {
    let producers = 64;
    let mut tasks = Vec::new();
    for p in 0..producers {
        let spool = spool.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = p;
            while i < count {
                let d = datagram(&spool);
                let id = d.id;
                spool.enqueue(d).await.expect("enqueue");
                if i % 100 == 0 {
                    spool.claim(id).await.expect("claim");
                }
                i += producers;
            }
        }));
    }
    for t in tasks {
        t.await.expect("producer");
    }
    say(format!("FILLED {}\n", spool.len().expect("len")));
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
    }
}
