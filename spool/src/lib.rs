//! The durable spool of imxpd: a datagram the relay acknowledged is never
//! lost, whatever happens to the process or the machine.
//!
//! # Layout
//!
//! - [`engine`]: the [`Engine`] trait (ordered key/value trees, atomic
//!   multi-tree durable commit) and its two implementations, redb (default)
//!   and sled.
//! - [`record`]: the envelope with per-recipient state, and the versioned
//!   CBOR encoding.
//! - [`keys`]: key layouts of the index trees (big-endian, so byte order is
//!   numeric order).
//! - [`retry`]: the retry policy as a pure function.
//! - [`spool`]: [`Spool`]: open/lock/resume, group commit, transitions,
//!   reads (one submodule each; see its Layout).
//! - [`event`]: [`Event`], the names of datagram transitions in logs.
//! - [`stats`]: counts by state, domain and age (qshape).
//! - [`check`]: the integrity scan and its repairs.
//! - [`dump`]: the portable export/import format.
//! - [`admin`]: the online admin protocol (request/response types, the
//!   server-side handler the relay wires to its Unix socket, and the client).
//!
//! The `imxp-spool` binary (postqueue + postsuper + postcat) lives in
//! `src/bin/imxp-spool/` (`main.rs`, one module per command).

pub mod admin;
pub mod check;
pub mod dump;
pub mod engine;
pub mod error;
pub mod event;
pub mod keys;
pub mod record;
pub mod retry;
pub mod spool;
pub mod stats;

pub use engine::{Engine, EngineError, EngineKind, Tree};
pub use error::SpoolError;
pub use event::Event;
pub use record::{
    DatagramId, Envelope, Failure, FailureKind, QueueOptions, Recipient, RecipientState,
    ReportState, StateName,
};
pub use retry::{Retry, RetryPolicy};
pub use spool::{
    Claim, Clock, CommitObserver, CommitSample, CommitStats, Enqueued, FreshClaim, HeldUsage,
    HoldPolicy, IdOrigin, NewDatagram, Outcome, Pending, Recorded, Spool, SpoolConfig, Superseding,
};
