//! Releasing held datagrams (`hold4Endpoint`, RFC 3342 §3): when an
//! application attaches as an endpoint, the datagrams the spool holds for
//! that exact endpoint are delivered to it one at a time, in order of
//! arrival, before anything newer (local deliveries to the endpoint wait
//! for the release to finish: [`Release::idle`]).
//!
//! Each datagram is claimed from the held index, sent, and recorded with
//! the endpoint's answer: only its `ok` makes it delivered, so an
//! attachment that ends mid-release loses nothing (the datagram is held
//! again, in its place). Expiry of held datagrams is the scheduler's, like
//! every other failure and its report.

use crate::deliver::Deliverer;
use crate::server::Relay;
use imxp_spool::Outcome;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Release requests and the endpoints being released.
pub(crate) struct Release {
    requests: mpsc::UnboundedSender<String>,
    receiver: Mutex<Option<mpsc::UnboundedReceiver<String>>>,
    /// Endpoints being released → asked again meanwhile.
    running: Mutex<HashMap<String, bool>>,
    /// Bumped whenever a release ends.
    ended: watch::Sender<u64>,
}

impl Default for Release {
    fn default() -> Self {
        let (requests, receiver) = mpsc::unbounded_channel();
        Self {
            requests,
            receiver: Mutex::new(Some(receiver)),
            running: Mutex::new(HashMap::new()),
            ended: watch::Sender::new(0),
        }
    }
}

impl Release {
    /// Asks for the datagrams held for `endpoint` to be delivered to it
    /// (it just attached, or something was held for it while attached). A
    /// release already running for it goes round once more.
    pub(crate) fn request(&self, endpoint: &str) {
        let mut running = self.running.lock().expect("release state");
        match running.get_mut(endpoint) {
            Some(again) => *again = true,
            None => {
                running.insert(endpoint.to_owned(), false);
                if self.requests.send(endpoint.to_owned()).is_err() {
                    // The relay is stopping: nothing will run it.
                    running.remove(endpoint);
                }
            }
        }
    }

    /// Whether a release for `endpoint` is running.
    fn is_running(&self, endpoint: &str) -> bool {
        self.running
            .lock()
            .expect("release state")
            .contains_key(endpoint)
    }

    /// Resolves once no release for `endpoint` is running, so that newer
    /// datagrams never overtake held ones.
    pub(crate) async fn idle(&self, endpoint: &str) {
        let mut ended = self.ended.subscribe();
        while self.is_running(endpoint) {
            if ended.changed().await.is_err() {
                return;
            }
        }
    }

    /// Ends a release round: true if it was asked again meanwhile (run
    /// another round), false if it is over.
    fn finish(&self, endpoint: &str) -> bool {
        let mut running = self.running.lock().expect("release state");
        match running.get_mut(endpoint) {
            Some(again) if *again => {
                *again = false;
                true
            }
            _ => {
                running.remove(endpoint);
                drop(running);
                self.ended.send_modify(|n| *n = n.wrapping_add(1));
                false
            }
        }
    }
}

/// Runs releases as they are requested, until `stop`.
pub(crate) async fn run(relay: Arc<Relay>, deliverer: Arc<Deliverer>, stop: CancellationToken) {
    let Some(mut requests) = relay.release.receiver.lock().expect("release").take() else {
        tracing::error!("the release loop runs once per relay");
        return;
    };
    let tasks = TaskTracker::new();
    loop {
        tokio::select! {
            request = requests.recv() => match request {
                Some(endpoint) => {
                    let (relay, deliverer, stop) = (relay.clone(), deliverer.clone(), stop.clone());
                    tasks.spawn(async move {
                        loop {
                            release(&relay, &deliverer, &endpoint, &stop).await;
                            if !relay.release.finish(&endpoint) {
                                break;
                            }
                        }
                    });
                }
                None => break,
            },
            () = stop.cancelled() => break,
        }
    }
    tasks.close();
    tasks.wait().await;
}

/// One round: every datagram held for `endpoint`, oldest first, while it
/// stays attached.
async fn release(relay: &Relay, deliverer: &Deliverer, endpoint: &str, stop: &CancellationToken) {
    let ids = match relay.spool.held_for(endpoint) {
        Ok(ids) => ids,
        Err(error) => {
            tracing::error!(%endpoint, %error, "reading the held index failed");
            return;
        }
    };
    if !ids.is_empty() {
        tracing::info!(%endpoint, held = ids.len(), "releasing held datagrams");
    }
    for id in ids {
        if stop.is_cancelled() || !relay.attachments.is_attached(endpoint) {
            return;
        }
        let claim = match relay.spool.claim_held(id, endpoint).await {
            Ok(Some(claim)) => claim,
            Ok(None) => continue,
            Err(error) => {
                tracing::error!(%id, %endpoint, %error, "claiming a held datagram failed");
                return;
            }
        };
        let content = match relay.spool.content(id) {
            Ok(Some(content)) => bytes::Bytes::from(content),
            Ok(None) | Err(_) => {
                tracing::error!(%id, "content missing; back to the queue");
                let outcomes = claim
                    .attempt
                    .iter()
                    .map(|&i| (i, Outcome::NotAttempted))
                    .collect();
                let _ = relay.spool.record(id, outcomes).await;
                continue;
            }
        };
        let mut outcomes = Vec::new();
        let mut detached = false;
        for &index in &claim.attempt {
            let outcome = deliverer
                .deliver_held(&claim.envelope, &content, endpoint)
                .await;
            match &outcome {
                Outcome::Delivered { .. } => {
                    tracing::info!(%id, recipient = %endpoint, via = "local", event = "delivered", held = true);
                }
                Outcome::Held => {
                    detached = true;
                    tracing::info!(%id, recipient = %endpoint, event = "held");
                }
                Outcome::Deferred(failure) => {
                    tracing::info!(%id, recipient = %endpoint, %failure, event = "deferred");
                }
                Outcome::Failed(failure) => {
                    tracing::info!(%id, recipient = %endpoint, %failure, event = "failed");
                }
                Outcome::NotAttempted => {}
            }
            outcomes.push((index, outcome));
        }
        match relay.spool.record(id, outcomes).await {
            Ok(Some(recorded)) if recorded.removed => {
                tracing::info!(%id, event = "removed");
            }
            Ok(_) => {}
            Err(error) => tracing::error!(%id, %error, "recording the outcome failed"),
        }
        if detached {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn requests_coalesce_and_idle_waits_for_the_end() {
        let release = Arc::new(Release::default());
        let mut requests = release.receiver.lock().unwrap().take().unwrap();
        release.request("fred@a.test");
        release.request("fred@a.test");
        assert_eq!(requests.recv().await.as_deref(), Some("fred@a.test"));
        assert!(
            requests.try_recv().is_err(),
            "one run per endpoint at a time"
        );
        // Idle for another endpoint at once; for fred only after the end.
        release.idle("barney@a.test").await;
        let waiter = tokio::spawn({
            let release = release.clone();
            async move { release.idle("fred@a.test").await }
        });
        assert!(release.finish("fred@a.test"), "asked again: one more round");
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        assert!(!release.finish("fred@a.test"));
        waiter.await.unwrap();
        assert!(!release.is_running("fred@a.test"));
    }
}
