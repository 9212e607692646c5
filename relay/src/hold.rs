//! Release requests for held datagrams (`hold4Endpoint`, RFC 3342 §3):
//! when an application attaches as an endpoint, the datagrams the spool
//! holds for that exact endpoint are delivered to it one at a time, in
//! order of arrival, before anything newer (local deliveries to the
//! endpoint wait for the release to finish: [`Release::idle`]).
//!
//! This module only coordinates: listeners ask for a release
//! ([`Release::request`]), delivery waits for it ([`Release::idle`]), and
//! the dispatcher ([`crate::qmgr`]) runs it — claims each held datagram,
//! has it delivered, records the endpoint's answer.

use parking_lot::Mutex;
use std::collections::HashMap;
use tokio::sync::{mpsc, watch};

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
        let mut running = self.running.lock();
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

    /// The stream of requested releases, for the dispatcher that runs
    /// them; `None` after the first call.
    pub(crate) fn take_requests(&self) -> Option<mpsc::UnboundedReceiver<String>> {
        self.receiver.lock().take()
    }

    /// Whether a release for `endpoint` is running.
    fn is_running(&self, endpoint: &str) -> bool {
        self.running.lock().contains_key(endpoint)
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
    pub(crate) fn finish(&self, endpoint: &str) -> bool {
        let mut running = self.running.lock();
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn requests_coalesce_and_idle_waits_for_the_end() {
        let release = Arc::new(Release::default());
        let mut requests = release.take_requests().unwrap();
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
