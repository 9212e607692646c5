//! Intake: the one path into the spool (DESIGN rule 4). A `data` whose
//! originator the peer may use is written durably (group commit), and
//! only then answered `ok` (RFC 3340 §4.4.4.1 step 3; DESIGN rule 1).

use crate::datagram::{self, Incoming};
use crate::server::Relay;
use imxp_beep::io::ChannelHandle;
use imxp_spool::{Enqueued, NewDatagram, QueueOptions};
use std::sync::Arc;
use tokio_util::task::TaskTracker;

/// The spool write failed: the peer gets 451 and should retry; nothing was
/// accepted.
#[derive(Debug)]
pub(crate) struct IntakeError(pub(crate) String);

/// Writes `incoming` durably in a task of `writes`, then answers MSG
/// `msgno` (`ok`, or 451 if the write failed). The write runs concurrently
/// with the channel's later MSGs; the session sends replies in MSG order.
pub(crate) fn spawn(
    writes: &TaskTracker,
    relay: &Arc<Relay>,
    handle: &ChannelHandle,
    msgno: u32,
    incoming: Incoming,
) {
    let relay = relay.clone();
    let handle = handle.clone();
    writes.spawn(async move {
        let outcome = accept(&relay, incoming).await.map_err(|e| (451, e.0));
        let _ = datagram::answer(&handle, msgno, outcome).await;
    });
}

/// Writes `incoming` to the spool; resolves once it is durable.
pub(crate) async fn accept(relay: &Relay, incoming: Incoming) -> Result<(), IntakeError> {
    let id = incoming.id;
    let recipients = incoming.recipients.clone();
    let datagram = NewDatagram {
        id,
        originator: incoming.originator,
        recipients: incoming.recipients,
        options: QueueOptions {
            hold_for_endpoint: incoming.hold,
            originated_ms: Some(relay.spool.now_ms()),
            ..QueueOptions::default()
        },
        content: incoming.payload.to_vec(),
    };
    match relay.spool.enqueue(datagram).await {
        Ok(Enqueued::Queued(_)) => {
            tracing::info!(%id, recipients = recipients.len(), event = "queued");
            Ok(())
        }
        Ok(Enqueued::Duplicate(_)) => {
            tracing::info!(%id, event = "duplicate");
            Ok(())
        }
        Err(error) => {
            tracing::error!(%id, %error, "spool write failed");
            Err(IntakeError(error.to_string()))
        }
    }
}
