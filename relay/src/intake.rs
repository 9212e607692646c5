//! Intake: the one path into the spool. [`Intake`] is the only type in the
//! relay that can add a datagram to the spool; the listeners, the report
//! service and the access service hold an `Intake`, never the spool.
//!
//! A `data` the peer may send is named ([`crate::identity`]), its per-data
//! options are processed ([`crate::options::at_intake`], RFC 3340
//! §4.4.4.1 step 2), it is written durably (group commit), and only then
//! answered `ok` (step 3): accepted means durable.

use crate::config::Live;
use crate::datagram::{self, Incoming};
use crate::identity::Sender;
use crate::metrics::Metrics;
use crate::options::{self, Source};
use crate::refusal::Refusal;
use crate::trail::{self, Transition};
use imxp_beep::io::ChannelHandle;
use imxp_spool::Event;
use imxp_spool::{DatagramId, Enqueued, IdOrigin, NewDatagram, Spool};
use std::sync::Arc;
use tokio_util::task::TaskTracker;

/// The spool write failed: the peer gets 451 and should retry; nothing was
/// accepted.
#[derive(Debug)]
pub(crate) struct IntakeError(pub(crate) String);

/// The handle that adds datagrams to the spool (and can do nothing else
/// with it).
#[derive(Clone)]
pub(crate) struct Intake {
    spool: Spool,
    config: Arc<Live>,
    metrics: Arc<Metrics>,
}

impl Intake {
    /// Intake into `spool`, with the options of `config`, counting in
    /// `metrics`.
    pub(crate) fn new(spool: Spool, config: Arc<Live>, metrics: Arc<Metrics>) -> Self {
        Self {
            spool,
            config,
            metrics,
        }
    }

    /// Names the datagram as one from `sender`, processes the per-data
    /// options of `incoming` and writes it durably in a task of `writes`,
    /// then answers MSG `msgno` (`ok`; the option error; or 451 if the
    /// write failed). The write runs concurrently with the channel's later
    /// MSGs; the session sends replies in MSG order.
    pub(crate) fn spawn(
        &self,
        writes: &TaskTracker,
        handle: &ChannelHandle,
        msgno: u32,
        mut incoming: Incoming,
        sender: Sender,
    ) {
        let this = self.clone();
        let handle = handle.clone();
        let now = self.spool.now_ms();
        let (source, hop) = match &sender {
            Sender::Endpoint => (Source::Edge, "edge".to_owned()),
            Sender::Relay { domain } => (Source::Mesh, domain.clone()),
        };
        let (id, id_origin) = incoming.identity(&sender, now);
        writes.spawn(async move {
            let outcome = match options::at_intake(&this.config.get(), &mut incoming, source, now) {
                Ok(()) => this
                    .write_from(incoming, id, id_origin, &hop)
                    .await
                    .map(drop)
                    .map_err(|e| Refusal::aborted(e.0)),
                Err(refusal) => {
                    let status = format!("{} {}", refusal.code.0, refusal.text);
                    trail::record(
                        &this.metrics,
                        &Transition {
                            event: Event::Refused,
                            id,
                            originator: &incoming.originator,
                            recipient: &incoming.recipients.join(","),
                            hop: &hop,
                            delay_ms: 0,
                            status: &status,
                        },
                    );
                    Err(refusal)
                }
            };
            let _ = datagram::answer(&handle, msgno, outcome).await;
        });
    }

    /// Writes `incoming` (options already processed), a datagram the
    /// relay's own services send as `sender`, to the spool; resolves once
    /// it is durable. `Ok(false)`: a duplicate, not queued again.
    pub(crate) async fn accept(
        &self,
        incoming: Incoming,
        sender: &Sender,
    ) -> Result<bool, IntakeError> {
        let (id, id_origin) = incoming.identity(sender, self.spool.now_ms());
        self.write(incoming, id, id_origin).await
    }

    /// Writes `incoming`, a datagram of the relay's own services, under
    /// the id `id` (options already processed); resolves once it is
    /// durable. `Ok(false)`: a duplicate, not queued again. Reports use it
    /// directly: their id is derived from what they report, so the same
    /// report queued twice is a duplicate.
    pub(crate) async fn write(
        &self,
        incoming: Incoming,
        id: DatagramId,
        id_origin: IdOrigin,
    ) -> Result<bool, IntakeError> {
        self.write_from(incoming, id, id_origin, "local").await
    }

    /// [`Intake::write`] of a datagram received from `hop` (`edge`, or a
    /// peer relay's bound domain), for the trail.
    async fn write_from(
        &self,
        incoming: Incoming,
        id: DatagramId,
        id_origin: IdOrigin,
        hop: &str,
    ) -> Result<bool, IntakeError> {
        let originator = incoming.originator.clone();
        let recipients = incoming.recipients.join(",");
        let size = incoming.payload.len();
        let datagram = new_datagram(incoming, id, id_origin);
        let result = self.spool.enqueue(datagram).await;
        self.logged(id, (&originator, &recipients, size, hop), result)
    }

    /// Writes `incoming` (a service's own datagram, id generated) in place
    /// of the datagrams `previous`, deleted in the same commit where they
    /// still wait in the queue ([`Spool::enqueue_superseding`]): the
    /// presence service's newest update to a subscriber. Resolves to those
    /// of `previous` that were in flight and stay.
    pub(crate) async fn write_replacing(
        &self,
        incoming: Incoming,
        id: DatagramId,
        previous: Vec<DatagramId>,
    ) -> Result<Vec<DatagramId>, IntakeError> {
        let originator = incoming.originator.clone();
        let recipients = incoming.recipients.join(",");
        let size = incoming.payload.len();
        let datagram = new_datagram(incoming, id, IdOrigin::Generated);
        let written = self.spool.enqueue_superseding(datagram, previous).await;
        let about = (originator.as_str(), recipients.as_str(), size, "local");
        match written {
            Ok(superseding) => {
                self.logged(id, about, Ok(superseding.enqueued))?;
                Ok(superseding.in_flight)
            }
            Err(error) => self.logged(id, about, Err(error)).map(|_| Vec::new()),
        }
    }

    /// Logs and counts the result of an enqueue of datagram `id`
    /// (originator, recipients, content size, where it came from):
    /// `Ok(false)` for a duplicate.
    fn logged(
        &self,
        id: DatagramId,
        (originator, recipients, size, hop): (&str, &str, usize, &str),
        result: Result<Enqueued, imxp_spool::SpoolError>,
    ) -> Result<bool, IntakeError> {
        let (event, status) = match &result {
            Ok(Enqueued::Queued(_)) => (Event::Queued, format!("accepted, {size} octets")),
            Ok(Enqueued::Duplicate(_)) => (
                Event::Duplicate,
                "accepted, seen before: not queued again".to_owned(),
            ),
            Err(_) => (Event::Refused, "451 spool write failed".to_owned()),
        };
        trail::record(
            &self.metrics,
            &Transition {
                event,
                id,
                originator,
                recipient: recipients,
                hop,
                delay_ms: 0,
                status: &status,
            },
        );
        match result {
            Ok(Enqueued::Queued(_)) => Ok(true),
            Ok(Enqueued::Duplicate(_)) => Ok(false),
            Err(error) => {
                tracing::error!(%id, %error, "spool write failed");
                Err(IntakeError(error.to_string()))
            }
        }
    }
}

fn new_datagram(incoming: Incoming, id: DatagramId, id_origin: IdOrigin) -> NewDatagram {
    NewDatagram {
        id,
        id_origin,
        originator: incoming.originator,
        recipients: incoming.recipients,
        options: incoming.options,
        content: incoming.payload.to_vec(),
    }
}
