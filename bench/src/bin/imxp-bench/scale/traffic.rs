//! Traffic for the scale scenarios: [`fill`] sends numbered datagrams as
//! fast as the first relay accepts them; a [`Sink`] attached at the last
//! relay counts the distinct ones that arrive (and the repeats), with the
//! times of the first and the last.

use crate::load::{HEADER_LEN, connect, sequence};
use imxp_apex::Endpoint;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Where a relay takes endpoints: its edge address and domain, and the
/// trust anchor.
#[derive(Clone)]
pub(crate) struct Edge {
    pub(crate) addr: SocketAddr,
    pub(crate) domain: String,
    pub(crate) tls: Arc<rustls::ClientConfig>,
}

/// What [`fill`] did.
#[derive(Debug)]
pub(crate) struct Filled {
    /// Datagrams acknowledged (`<ok />`: durable at the relay).
    pub(crate) accepted: u64,
    /// Datagrams refused, and the first refusal.
    pub(crate) refused: (u64, Option<String>),
    /// From the first send to the last answer.
    pub(crate) elapsed: Duration,
}

/// Sends the datagrams numbered `seqs` (content `size` octets, starting
/// with the number) from `senders` sessions at `edge` to `to`, each
/// waiting for its `<ok />`; `progress` counts the answers.
pub(crate) async fn fill(
    edge: &Edge,
    senders: &[(String, String)],
    to: &Endpoint,
    seqs: std::ops::Range<u64>,
    size: usize,
    progress: &indicatif::ProgressBar,
) -> anyhow::Result<Filled> {
    anyhow::ensure!(
        size >= HEADER_LEN,
        "--size must be at least {HEADER_LEN} octets (the sequence number)"
    );
    let mut clients = Vec::new();
    let mut tasks = Vec::new();
    let start = Instant::now();
    let n = senders.len() as u64;
    for (i, user) in senders.iter().enumerate() {
        let (client, attachment) =
            connect(edge.addr, &edge.domain, &edge.tls, user.clone()).await?;
        clients.push((client, attachment));
        let sender = clients[i].1.sender();
        let to = vec![to.clone()];
        let progress = progress.clone();
        let seqs = (seqs.start + i as u64..seqs.end).step_by(usize::try_from(n)?);
        tasks.push(tokio::spawn(async move {
            let mut content = vec![b'x'; size];
            let mut accepted = 0u64;
            let mut refused = (0u64, None::<String>);
            for seq in seqs {
                content[..HEADER_LEN].copy_from_slice(format!("{seq:016x}\n").as_bytes());
                match sender
                    .send(to.clone(), "application/octet-stream", &content)
                    .await
                {
                    Ok(()) => accepted += 1,
                    Err(error) => {
                        refused.0 += 1;
                        refused.1.get_or_insert_with(|| error.to_string());
                    }
                }
                progress.inc(1);
            }
            (accepted, refused)
        }));
    }
    let mut filled = Filled {
        accepted: 0,
        refused: (0, None),
        elapsed: Duration::ZERO,
    };
    for task in tasks {
        let (accepted, (refused, first)) = task.await?;
        filled.accepted += accepted;
        filled.refused.0 += refused;
        if filled.refused.1.is_none() {
            filled.refused.1 = first;
        }
    }
    filled.elapsed = start.elapsed();
    drop(clients);
    Ok(filled)
}

/// What a sink has seen.
#[derive(Debug, Default)]
pub(crate) struct Seen {
    /// Distinct sequence numbers received.
    pub(crate) distinct: HashSet<u64>,
    /// Receptions of a number already received.
    pub(crate) duplicates: u64,
    /// The first and the last new arrival.
    pub(crate) first: Option<Instant>,
    pub(crate) last: Option<Instant>,
}

/// An endpoint attached at the last relay, acknowledging and counting
/// what arrives.
pub(crate) struct Sink {
    seen: Arc<Mutex<Seen>>,
    count: watch::Receiver<u64>,
    task: tokio::task::JoinHandle<()>,
    _client: imxp_client::Client,
}

impl Sink {
    /// Connects and attaches as `user` at `edge`.
    pub(crate) async fn attach(edge: &Edge, user: (String, String)) -> anyhow::Result<Self> {
        let (client, mut attachment) = connect(edge.addr, &edge.domain, &edge.tls, user).await?;
        attachment.set_auto_ack(true);
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (tx, count) = watch::channel(0u64);
        let task = {
            let seen = seen.clone();
            tokio::spawn(async move {
                while let Some(received) = attachment.next().await {
                    let Some(seq) = sequence(&received.content) else {
                        continue;
                    };
                    let now = Instant::now();
                    let mut seen = seen.lock().expect("seen lock");
                    if !seen.distinct.insert(seq as u64) {
                        seen.duplicates += 1;
                        continue;
                    }
                    seen.first.get_or_insert(now);
                    seen.last = Some(now);
                    tx.send_replace(seen.distinct.len() as u64);
                }
            })
        };
        Ok(Self {
            seen,
            count,
            task,
            _client: client,
        })
    }

    /// Waits until `n` distinct datagrams arrived, or nothing new arrived
    /// for `stall`; the count then.
    pub(crate) async fn wait_for(
        &mut self,
        n: u64,
        stall: Duration,
        progress: &indicatif::ProgressBar,
    ) -> u64 {
        loop {
            let now = *self.count.borrow_and_update();
            progress.set_position(now);
            if now >= n {
                return now;
            }
            match tokio::time::timeout(stall, self.count.changed()).await {
                Ok(Ok(())) => {}
                _ => return now,
            }
        }
    }

    /// Whether `seq` arrived.
    pub(crate) fn has(&self, seq: u64) -> bool {
        self.seen.lock().expect("seen lock").distinct.contains(&seq)
    }

    /// Ends the attachment and returns what was seen.
    pub(crate) async fn finish(self) -> Seen {
        self.task.abort();
        let _ = self.task.await;
        std::mem::take(&mut *self.seen.lock().expect("seen lock"))
    }
}
