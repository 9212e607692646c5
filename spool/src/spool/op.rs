//! The operations sent to the committer ([`Op`], carried in a [`Job`] with
//! its reply), the context they are applied in ([`Ctx`]: the batch's time,
//! the policies, held usage), and [`Fix`], a repair found by `check`.
//! `apply` executes them; `transitions` builds them.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::pending::{Output, Reply};
use super::{HeldUsage, HoldPolicy, NewDatagram};
use crate::engine::Tree;
use crate::record::{DatagramId, Envelope};
use crate::retry::RetryPolicy;

#[derive(Clone)]
pub(super) struct Ctx<'a> {
    pub(super) now_ms: u64,
    pub(super) retry: &'a RetryPolicy,
    pub(super) dedup_window_ms: u64,
    pub(super) hold: &'a HoldPolicy,
    /// The last arrival sequence handed out (see [`Envelope::arrival`]).
    pub(super) arrival: &'a std::cell::Cell<u64>,
    /// Held usage of the endpoints of the envelope being changed, before
    /// the change (filled for mutations that may hold a recipient).
    pub(super) usage: HashMap<String, HeldUsage>,
}

impl Ctx<'_> {
    /// The next arrival sequence: now in microseconds, or just past the
    /// last one handed out.
    pub(super) fn next_arrival(&self) -> u64 {
        let next = self
            .now_ms
            .saturating_mul(1000)
            .max(self.arrival.get().saturating_add(1));
        self.arrival.set(next);
        next
    }
}

pub(super) type MutateFn = Box<dyn FnOnce(&mut Envelope, &Ctx<'_>) -> Output + Send>;

pub(super) enum Op {
    Enqueue(NewDatagram),
    /// Enqueue `datagram` and, in the same batch, delete each of `old`
    /// none of whose recipients is in flight (a newer state supersedes
    /// them).
    Supersede {
        datagram: NewDatagram,
        old: Vec<DatagramId>,
    },
    /// Put (`Some`) or delete (`None`) records of [`Tree::Presence`].
    Presence(Vec<(Vec<u8>, Option<Vec<u8>>)>),
    /// Change an envelope; `None` output if it does not exist.
    Mutate {
        id: DatagramId,
        f: MutateFn,
        missing: fn() -> Output,
        /// Whether `f` needs the held usage of the envelope's endpoints.
        usage: bool,
    },
    Delete(DatagramId),
    Quarantine {
        tree: Tree,
        key: Vec<u8>,
        reason: String,
    },
    Import {
        envelope: Box<Envelope>,
        content: Vec<u8>,
    },
    PruneDedup,
    Repair(Fix),
    /// Restore a dedup or quarantine entry from a dump (kept if present).
    Restore {
        tree: Tree,
        key: Vec<u8>,
        value: Vec<u8>,
    },
}

/// A repair found by `check`, re-validated by the committer before it is
/// applied (the relay may have changed things since).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "fix")]
pub enum Fix {
    /// Rewrite the index entries of an envelope.
    Reindex {
        /// The datagram.
        id: DatagramId,
    },
    /// Delete an index entry that matches no envelope.
    DropStaleIndex {
        /// The index tree.
        tree: Tree,
        /// The key, hex.
        key: String,
    },
    /// Quarantine a record (undecodable envelope, envelope without content,
    /// content without envelope).
    Quarantine {
        /// The tree.
        tree: Tree,
        /// The key, hex.
        key: String,
        /// Why.
        reason: String,
    },
}

pub(super) struct Job {
    pub(super) op: Op,
    pub(super) reply: Option<Reply>,
}
