//! Intake: the one path into the spool (DESIGN rule 4). A `data` whose
//! originator the peer may use has its per-data options processed
//! ([`crate::options::at_intake`], step 2), is written durably (group
//! commit), and only then answered `ok` (RFC 3340 §4.4.4.1 step 3; DESIGN
//! rule 1). Reports the relay generates come in here too
//! ([`crate::report`]).

use crate::datagram::{self, Incoming};
use crate::identity::Sender;
use crate::options::{self, Source};
use crate::server::Relay;
use imxp_beep::io::ChannelHandle;
use imxp_spool::{Enqueued, NewDatagram};
use std::sync::Arc;
use tokio_util::task::TaskTracker;

/// The spool write failed: the peer gets 451 and should retry; nothing was
/// accepted.
#[derive(Debug)]
pub(crate) struct IntakeError(pub(crate) String);

/// Names the datagram as one from `sender` ([`crate::identity`]),
/// processes the per-data options of `incoming` and writes it durably in a
/// task of `writes`, then answers MSG `msgno` (`ok`; the option error; or
/// 451 if the write failed). The write runs concurrently with the
/// channel's later MSGs; the session sends replies in MSG order.
pub(crate) fn spawn(
    writes: &TaskTracker,
    relay: &Arc<Relay>,
    handle: &ChannelHandle,
    msgno: u32,
    mut incoming: Incoming,
    sender: Sender,
) {
    let relay = relay.clone();
    let handle = handle.clone();
    let source = match sender {
        Sender::Endpoint => Source::Edge,
        Sender::Relay { .. } => Source::Mesh,
    };
    if sender != Sender::Endpoint {
        incoming.identify_as(&sender, relay.spool.now_ms());
    }
    writes.spawn(async move {
        let outcome = match options::at_intake(
            &relay.config,
            &mut incoming,
            source,
            relay.spool.now_ms(),
        ) {
            Ok(()) => accept(&relay, incoming).await.map(drop).map_err(|e| (451, e.0)),
            Err(refusal) => {
                tracing::info!(id = %incoming.id, code = refusal.0, reason = %refusal.1, event = "refused");
                Err(refusal)
            }
        };
        let _ = datagram::answer(&handle, msgno, outcome).await;
    });
}

/// Writes `incoming` (options already processed) to the spool; resolves
/// once it is durable. `Ok(false)`: a duplicate, not queued again.
pub(crate) async fn accept(relay: &Relay, incoming: Incoming) -> Result<bool, IntakeError> {
    let id = incoming.id;
    let recipients = incoming.recipients.len();
    let datagram = NewDatagram {
        id,
        id_origin: incoming.id_origin,
        originator: incoming.originator,
        recipients: incoming.recipients,
        options: incoming.options,
        content: incoming.payload.to_vec(),
    };
    match relay.spool.enqueue(datagram).await {
        Ok(Enqueued::Queued(_)) => {
            tracing::info!(%id, recipients, event = "queued");
            Ok(true)
        }
        Ok(Enqueued::Duplicate(_)) => {
            tracing::info!(%id, event = "duplicate");
            Ok(false)
        }
        Err(error) => {
            tracing::error!(%id, %error, "spool write failed");
            Err(IntakeError(error.to_string()))
        }
    }
}
