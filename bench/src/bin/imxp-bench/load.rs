//! The load: senders attached at the first relay send datagrams to sinks
//! attached at the last one, either as fast as the relays accept them or
//! at a fixed rate; the sinks time each datagram end to end.
//!
//! Each datagram's content starts with its sequence number (16 hex
//! digits and a newline); the driver keeps the instant each one was due
//! to leave, so the sink can read the latency off a datagram and count
//! duplicates. At a fixed rate a datagram is due at its slot in the
//! schedule whether or not its sender could send it then, so a stalled
//! relay shows up in the latency instead of hiding it (no coordinated
//! omission).

use anyhow::{Context as _, ensure};
use hdrhistogram::Histogram;
use imxp_apex::Endpoint;
use imxp_client::{Attachment, Client, ConnectOptions, Mechanism};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Octets of the sequence-number header at the start of each content.
pub(crate) const HEADER_LEN: usize = 17;

/// Where and as whom the load attaches.
#[derive(Clone)]
pub(crate) struct Target {
    /// The first relay's edge address and domain.
    pub(crate) source: (SocketAddr, String),
    /// The last relay's edge address and domain.
    pub(crate) sink: (SocketAddr, String),
    /// Trust anchor for both.
    pub(crate) tls: Arc<rustls::ClientConfig>,
}

/// The shape of the load.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Shape {
    /// Sessions (one attachment each) at the first relay.
    pub(crate) senders: usize,
    /// Datagrams in flight per sender.
    pub(crate) pipeline: usize,
    /// Sessions (one attachment each) at the last relay.
    pub(crate) sinks: usize,
    /// Datagrams in the run.
    pub(crate) count: u64,
    /// Content octets per datagram.
    pub(crate) size: usize,
    /// Datagrams per second over all senders; `None`: as fast as accepted.
    pub(crate) rate: Option<f64>,
    /// Give up waiting for deliveries after this long without one.
    pub(crate) stall: Duration,
}

/// The sender address `i` at `domain` and its password.
pub(crate) fn sender(i: usize, domain: &str) -> (String, String) {
    (format!("s{i}@{domain}"), format!("bench-s{i}"))
}

/// The sink address `j` at `domain` and its password.
pub(crate) fn sink(j: usize, domain: &str) -> (String, String) {
    (format!("sink{j}@{domain}"), format!("bench-sink{j}"))
}

/// What one run measured.
#[derive(Debug)]
pub(crate) struct Outcome {
    /// Datagrams the first relay accepted (`<ok />`).
    pub(crate) accepted: u64,
    /// Datagrams refused, and the first refusal.
    pub(crate) refused: (u64, Option<String>),
    /// From the first send to the last acceptance.
    pub(crate) accepting: Duration,
    /// Distinct datagrams received by the sinks.
    pub(crate) delivered: u64,
    /// Datagrams received more than once (each repeat counted).
    pub(crate) duplicates: u64,
    /// From the first send to the last delivery.
    pub(crate) delivering: Duration,
    /// End-to-end latency, µs.
    pub(crate) latency: Histogram<u64>,
}

/// Sessions attached and ready to run.
pub(crate) struct Prepared {
    shape: Shape,
    senders: Vec<(Client, Attachment)>,
    sinks: Vec<(Client, Attachment)>,
    sink_domain: String,
}

pub(crate) async fn connect(
    edge: SocketAddr,
    domain: &str,
    tls: &Arc<rustls::ClientConfig>,
    (user, password): (String, String),
) -> anyhow::Result<(Client, Attachment)> {
    let client = Client::connect(ConnectOptions {
        relay: edge.to_string(),
        tls: Some((tls.clone(), domain.to_owned())),
        user: user.clone(),
        password,
        mechanism: Mechanism::ScramSha256,
    })
    .await
    .with_context(|| format!("connecting to {edge} as {user}"))?;
    let attachment = client
        .attach(Endpoint::parse(&user).context("endpoint")?)
        .await
        .with_context(|| format!("attaching as {user}"))?;
    Ok((client, attachment))
}

/// Connects and attaches the sinks and the senders.
pub(crate) async fn prepare(target: &Target, shape: Shape) -> anyhow::Result<Prepared> {
    ensure!(
        shape.size >= HEADER_LEN,
        "--size must be at least {HEADER_LEN} octets (the sequence number)"
    );
    ensure!(shape.senders > 0 && shape.sinks > 0 && shape.pipeline > 0);
    let (sink_edge, sink_domain) = &target.sink;
    let (source_edge, source_domain) = &target.source;
    let mut sinks = Vec::new();
    for j in 0..shape.sinks {
        let (client, mut attachment) =
            connect(*sink_edge, sink_domain, &target.tls, sink(j, sink_domain)).await?;
        attachment.set_auto_ack(true);
        sinks.push((client, attachment));
    }
    let mut senders = Vec::new();
    for i in 0..shape.senders {
        senders.push(
            connect(
                *source_edge,
                source_domain,
                &target.tls,
                sender(i, source_domain),
            )
            .await?,
        );
    }
    Ok(Prepared {
        shape,
        senders,
        sinks,
        sink_domain: sink_domain.clone(),
    })
}

/// What the sinks have seen.
struct Seen {
    once: Vec<bool>,
    distinct: u64,
    duplicates: u64,
    last: Instant,
    latency: Histogram<u64>,
}

impl Prepared {
    /// Runs the load; `progress` is told of each delivery. Once every
    /// accepted datagram was delivered (or nothing was delivered for
    /// [`Shape::stall`]), calls `at_end` before any session closes (to
    /// read the relays' counters) and returns its value with the outcome.
    pub(crate) async fn run<T>(
        self,
        progress: &indicatif::ProgressBar,
        at_end: impl FnOnce() -> T,
    ) -> anyhow::Result<(Outcome, T)> {
        let shape = self.shape;
        let mut clients = Vec::new();
        let count = usize::try_from(shape.count)?;
        let due: Arc<Vec<AtomicU64>> = Arc::new((0..count).map(|_| AtomicU64::new(0)).collect());
        let start = Instant::now();
        let seen = Arc::new(Mutex::new(Seen {
            once: vec![false; count],
            distinct: 0,
            duplicates: 0,
            last: start,
            latency: Histogram::new_with_bounds(1, 3_600_000_000, 3)?,
        }));
        let (distinct_tx, mut distinct_rx) = watch::channel(0u64);
        let distinct_tx = Arc::new(distinct_tx);
        let mut sink_tasks = Vec::new();
        for (client, mut attachment) in self.sinks {
            clients.push(client);
            let due = due.clone();
            let seen = seen.clone();
            let distinct_tx = distinct_tx.clone();
            let progress = progress.clone();
            sink_tasks.push(tokio::spawn(async move {
                while let Some(received) = attachment.next().await {
                    let now = Instant::now();
                    let Some(seq) = sequence(&received.content).filter(|s| *s < count) else {
                        continue;
                    };
                    let sent_ns = due[seq].load(Ordering::Acquire);
                    let elapsed_ns = now.duration_since(start).as_nanos() as u64;
                    let mut seen = seen.lock().expect("seen lock");
                    if seen.once[seq] {
                        seen.duplicates += 1;
                        continue;
                    }
                    seen.once[seq] = true;
                    seen.distinct += 1;
                    seen.last = now;
                    let micros = elapsed_ns.saturating_sub(sent_ns).div_ceil(1000).max(1);
                    seen.latency.saturating_record(micros);
                    let distinct = seen.distinct;
                    drop(seen);
                    progress.inc(1);
                    distinct_tx.send_replace(distinct);
                }
            }));
        }
        let tasks = shape.senders * shape.pipeline;
        let refused = Arc::new(Mutex::new((0u64, None::<String>)));
        let body = Arc::new(vec![b'x'; shape.size]);
        let to: Vec<Endpoint> = (0..shape.sinks)
            .map(|j| Endpoint::parse(&sink(j, &self.sink_domain).0))
            .collect::<Result<_, _>>()?;
        let mut send_tasks = Vec::new();
        for t in 0..tasks {
            let sender = self.senders[t % shape.senders].1.sender();
            let due = due.clone();
            let refused = refused.clone();
            let body = body.clone();
            let to = vec![to[t % to.len()].clone()];
            send_tasks.push(tokio::spawn(async move {
                let mut accepted = 0u64;
                let mut content = body.to_vec();
                for seq in (t..count).step_by(tasks) {
                    let slot = match shape.rate {
                        Some(rate) => {
                            let slot = Duration::from_secs_f64(seq as f64 / rate);
                            tokio::time::sleep_until((start + slot).into()).await;
                            slot
                        }
                        None => start.elapsed(),
                    };
                    due[seq].store(slot.as_nanos() as u64, Ordering::Release);
                    content[..HEADER_LEN].copy_from_slice(format!("{seq:016x}\n").as_bytes());
                    match sender
                        .send(to.clone(), "application/octet-stream", &content)
                        .await
                    {
                        Ok(()) => accepted += 1,
                        Err(error) => {
                            let mut refused = refused.lock().expect("refused lock");
                            refused.0 += 1;
                            refused.1.get_or_insert_with(|| error.to_string());
                        }
                    }
                }
                (accepted, start.elapsed())
            }));
        }
        let mut accepted = 0;
        let mut accepting = Duration::ZERO;
        for task in send_tasks {
            let (n, at) = task.await?;
            accepted += n;
            accepting = accepting.max(at);
        }
        progress.set_message(format!("{accepted} accepted"));
        loop {
            if *distinct_rx.borrow_and_update() >= accepted {
                break;
            }
            match tokio::time::timeout(shape.stall, distinct_rx.changed()).await {
                Ok(Ok(())) => {}
                _ => break,
            }
        }
        let end = at_end();
        for task in &sink_tasks {
            task.abort();
        }
        for task in sink_tasks {
            // Aborted: a cancellation error is expected.
            let _ = task.await;
        }
        let seen = Arc::try_unwrap(seen)
            .ok()
            .context("sink tasks still running")?
            .into_inner()
            .expect("seen lock");
        let refused = refused.lock().expect("refused lock").clone();
        drop(clients);
        let outcome = Outcome {
            accepted,
            refused,
            accepting,
            delivered: seen.distinct,
            duplicates: seen.duplicates,
            delivering: seen.last.duration_since(start),
            latency: seen.latency,
        };
        Ok((outcome, end))
    }
}

/// The sequence number at the start of a content.
pub(crate) fn sequence(content: &[u8]) -> Option<usize> {
    let digits = std::str::from_utf8(content.get(..HEADER_LEN - 1)?).ok()?;
    usize::from_str_radix(digits, 16).ok()
}
