//! The public types of spool operations: what a caller hands to a write
//! ([`NewDatagram`], [`Outcome`]) and what the write resolves to
//! ([`Enqueued`], [`Claim`], [`Recorded`]), plus the counters and the open
//! report. The writes themselves are in `transitions`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::record::{DatagramId, Envelope, Failure, QueueOptions};

#[cfg(doc)]
use super::Spool;

/// A raw `(key, value)` pair of a tree.
pub type RawEntry = (Vec<u8>, Vec<u8>);
/// A datagram to enqueue.
#[derive(Clone, Debug)]
pub struct NewDatagram {
    /// Its id: derived from an identity the sender gives the datagram (see
    /// [`IdOrigin::Derived`]), or generated ([`DatagramId::generate`]).
    pub id: DatagramId,
    /// Where the id comes from, which decides whether it is a dedup key.
    pub id_origin: IdOrigin,
    /// The originator endpoint.
    pub originator: String,
    /// Recipient endpoints (at least one; no NUL bytes).
    pub recipients: Vec<String>,
    /// Queueing options.
    pub options: QueueOptions,
    /// The content, stored byte-exact.
    pub content: Vec<u8>,
}

/// Where a [`NewDatagram`]'s id comes from.
///
/// Content equality is not identity: two datagrams with the same text are
/// two datagrams. Only an id derived from something a *retransmission* of
/// the same datagram carries again (the previous hop's own id for it, or
/// the Content-ID its originator gave it) may be used to recognise a
/// duplicate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdOrigin {
    /// Derived from the sender's identity for the datagram: remembered for
    /// the dedup window, and a datagram with the same id within it is a
    /// duplicate ([`Enqueued::Duplicate`]).
    Derived,
    /// Freshly generated: the datagram has no identity a resend would
    /// repeat, so it is never recognised as a duplicate (at-least-once) and
    /// its id is not remembered.
    Generated,
}

/// The result of [`crate::Spool::enqueue_superseding`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Superseding {
    /// The new datagram's enqueue.
    pub enqueued: Enqueued,
    /// The superseded datagrams that were in flight and so stayed.
    pub in_flight: Vec<DatagramId>,
}

/// The result of an enqueue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Enqueued {
    /// Durably queued.
    Queued(DatagramId),
    /// The id was seen within the dedup window (or is still queued): nothing
    /// was written; the earlier copy stands.
    Duplicate(DatagramId),
}

impl Enqueued {
    /// The id.
    pub fn id(&self) -> DatagramId {
        match self {
            Self::Queued(id) | Self::Duplicate(id) => *id,
        }
    }
}

/// Work handed to the relay by [`Spool::claim`] or [`Spool::claim_held`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    /// The envelope after the claim.
    pub envelope: Envelope,
    /// Recipients (indexes) now in flight: attempt them, then [`Spool::record`].
    pub attempt: Vec<usize>,
    /// Recipients that just expired (failed) in this claim.
    pub expired: Vec<usize>,
    /// Failed recipients whose report the relay must now send, then confirm
    /// with [`Spool::mark_reported`].
    pub report_due: Vec<usize>,
    /// Recipients still waiting when `reportAfter` ran out
    /// ([`QueueOptions::report_after_ms`], cleared by this claim): the
    /// relay sends their transient report (RFC 3342 §2.2.1), once.
    pub transient_due: Vec<usize>,
}

/// A datagram claimed in the commit that queued it, handed to the
/// receiver of [`Spool::fresh_claims`] once that commit is durable.
///
/// Its recipients went in flight at enqueue, so it needs no separate claim
/// (one operation and one envelope write less per datagram) and its
/// content comes along (no read of the content tree). It is otherwise an
/// ordinary claim: attempt, then [`Spool::record`]; if the relay stops
/// before that, the next open resets it to due now like any claim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FreshClaim {
    /// The claim (every recipient in `attempt`).
    pub claim: Claim,
    /// The content, as queued.
    pub content: Vec<u8>,
}

/// The outcome of one delivery attempt for one recipient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted by the next hop or the endpoint.
    Delivered {
        /// The next hop (or `local`).
        via: Option<String>,
    },
    /// Temporary failure: retry per policy (or fail if the deadline would pass).
    Deferred(Failure),
    /// Permanent failure.
    Failed(Failure),
    /// The endpoint is not attached and the datagram asked `hold4Endpoint`.
    Held,
    /// Not attempted after all (e.g. shutdown): back to queued, due now, and
    /// the attempt is not counted.
    NotAttempted,
}

/// The result of [`Spool::record`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    /// The envelope after the change.
    pub envelope: Envelope,
    /// Whether the datagram is complete and was removed.
    pub removed: bool,
    /// Recipients that failed (or, with [`QueueOptions::report_delivery`],
    /// were delivered) in this call and owe a report (claimed for the
    /// caller: send the report, then [`Spool::mark_reported`]).
    pub report_due: Vec<usize>,
}

/// Counters of the committer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitStats {
    /// Durable commits made.
    pub commits: u64,
    /// Operations carried by them.
    pub operations: u64,
}

/// What [`Spool::open`] did.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct OpenReport {
    /// Whether the spool was created.
    pub created: bool,
    /// Claims outstanding at open (a crash or stop while in flight) that
    /// were reset to due now.
    pub resumed: u64,
    /// Time spent opening the engine.
    pub open_engine: Duration,
    /// Time spent resetting outstanding claims.
    pub resume: Duration,
}
