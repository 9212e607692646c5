//! Storage engines: ordered key/value trees with an atomic, durable commit.
//!
//! The spool needs very little from its storage: a fixed set of named
//! [`Tree`]s, each an ordered map from byte keys to byte values; point reads;
//! ordered range scans; and one [`Engine::commit`] that applies a [`Batch`]
//! of writes to several trees **atomically** (all or nothing after a crash)
//! and **durably** (on stable storage when it returns).
//!
//! Two engines implement [`Engine`]:
//!
//! - [`RedbEngine`] (the default): one redb file; every commit is a redb write
//!   transaction with [`redb::Durability::Immediate`], which fsyncs before it
//!   returns.
//! - [`SledEngine`]: sled 0.34.7. Its `flush()` only calls
//!   `sync_file_range(2)` on Linux, which does not flush the disk cache nor
//!   the file's metadata, and sled writes large values to `blobs/` files
//!   without any sync; so after each flush this engine calls `fdatasync(2)`
//!   on the log file, every new blob file and the directories itself. See
//!   [`SledEngine`] for what that does and does not guarantee.
//!
//! Both engines run the same conformance suite (`engine/tests.rs`).

use std::fmt;
use std::ops::{Bound, ControlFlow};
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

mod redb_engine;
mod sled_engine;
#[cfg(test)]
mod tests;

pub use redb_engine::RedbEngine;
pub use sled_engine::SledEngine;

/// The trees of the spool. Every engine creates all of them at open.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tree {
    /// Datagram id → versioned envelope.
    Envelopes,
    /// Datagram id → opaque content bytes.
    Content,
    /// `be_u64(due_ms) ‖ id` → empty: the work list in time order.
    Due,
    /// `endpoint ‖ 0x00 ‖ id` → empty: datagrams held for an endpoint.
    Held,
    /// Datagram id → empty: datagrams with a claim outstanding (in flight).
    Inflight,
    /// Dedup index: `'i' ‖ id` → `be_u64(seen_ms)` and `'t' ‖ be_u64(seen_ms) ‖ id` → empty.
    Dedup,
    /// `be_u64(at_ms) ‖ tree ‖ key` → versioned quarantine entry.
    Quarantine,
    /// Schema version and creation facts.
    Meta,
    /// The relay's presence state (RFC 3343 §4: entries, subscriptions and
    /// watches in progress), opaque to the spool: keys and values are the
    /// relay's. Written only through [`crate::Spool::presence_write`].
    Presence,
}

impl Tree {
    /// Every tree, in a fixed order (engines index their handles by it).
    pub const ALL: [Self; 9] = [
        Self::Envelopes,
        Self::Content,
        Self::Due,
        Self::Held,
        Self::Inflight,
        Self::Dedup,
        Self::Quarantine,
        Self::Meta,
        Self::Presence,
    ];

    /// The tree's stable on-disk name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Envelopes => "envelopes",
            Self::Content => "content",
            Self::Due => "due",
            Self::Held => "held",
            Self::Inflight => "inflight",
            Self::Dedup => "dedup",
            Self::Quarantine => "quarantine",
            Self::Meta => "meta",
            Self::Presence => "presence",
        }
    }

    /// The position of the tree in [`Tree::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// A one-byte tag for the tree (used in quarantine keys).
    pub fn tag(self) -> u8 {
        self as u8
    }
}

impl fmt::Display for Tree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which storage engine a spool uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// redb (default): durable commits by construction.
    #[default]
    Redb,
    /// sled 0.34.7, with an fdatasync of its files after every flush.
    Sled,
}

impl EngineKind {
    /// Both engines.
    pub const ALL: [Self; 2] = [Self::Redb, Self::Sled];

    /// The engine's name as used in configuration (`redb`, `sled`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Redb => "redb",
            Self::Sled => "sled",
        }
    }

    /// Whether a spool of this engine exists in `dir`.
    pub fn exists_in(self, dir: &Path) -> bool {
        match self {
            Self::Redb => dir.join(RedbEngine::FILE_NAME).exists(),
            Self::Sled => dir.join(SledEngine::DIR_NAME).exists(),
        }
    }

    /// The engine whose files are present in `dir`, if any.
    pub fn detect(dir: &Path) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.exists_in(dir))
    }

    /// Opens (creating if needed) an engine of this kind in `dir`.
    pub fn open(self, dir: &Path) -> Result<Box<dyn Engine>, EngineError> {
        Ok(match self {
            Self::Redb => Box::new(RedbEngine::open(dir)?),
            Self::Sled => Box::new(SledEngine::open(dir)?),
        })
    }
}

impl fmt::Display for EngineKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for EngineKind {
    type Err = EngineError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "redb" => Ok(Self::Redb),
            "sled" => Ok(Self::Sled),
            other => Err(EngineError::UnknownEngine(other.to_owned())),
        }
    }
}

/// An error of a storage engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// An error from redb.
    #[error("redb: {0}")]
    Redb(#[from] redb::Error),
    /// An error from sled.
    #[error("sled: {0}")]
    Sled(#[from] sled::Error),
    /// An I/O error outside the engine library (e.g. syncing sled's files).
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// An engine name that is neither `redb` nor `sled`.
    #[error("unknown spool engine {0:?} (expected \"redb\" or \"sled\")")]
    UnknownEngine(String),
}

/// One write of a [`Batch`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Write {
    /// Insert or replace `key` in `tree`.
    Put {
        /// The tree.
        tree: Tree,
        /// The key.
        key: Vec<u8>,
        /// The new value.
        value: Vec<u8>,
    },
    /// Remove `key` from `tree` (no error if absent).
    Delete {
        /// The tree.
        tree: Tree,
        /// The key.
        key: Vec<u8>,
    },
}

/// A set of writes committed together by [`Engine::commit`], in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Batch {
    writes: Vec<Write>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an insert.
    pub fn put(&mut self, tree: Tree, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.writes.push(Write::Put {
            tree,
            key: key.into(),
            value: value.into(),
        });
    }

    /// Adds a removal.
    pub fn delete(&mut self, tree: Tree, key: impl Into<Vec<u8>>) {
        self.writes.push(Write::Delete {
            tree,
            key: key.into(),
        });
    }

    /// The writes, in order.
    pub fn writes(&self) -> &[Write] {
        &self.writes
    }

    /// Number of writes.
    pub fn len(&self) -> usize {
        self.writes.len()
    }

    /// Whether the batch has no writes.
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }
}

/// A visitor for [`Engine::scan`]: called with each key and value in order;
/// return [`ControlFlow::Break`] to stop early.
pub type Visit<'a> = dyn FnMut(&[u8], &[u8]) -> ControlFlow<()> + 'a;

/// Ordered key/value trees with an atomic, durable multi-tree commit.
///
/// Reads see committed state only. Writes happen only through
/// [`Engine::commit`]; the spool calls it from a single thread, but engines
/// must be safe to share (`Send + Sync`).
pub trait Engine: Send + Sync + 'static {
    /// Which engine this is.
    fn kind(&self) -> EngineKind;

    /// The value of `key` in `tree`.
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, EngineError>;

    /// Visits the entries of `tree` with keys within `(lower, upper)`, in
    /// ascending key order, until the visitor breaks.
    fn scan(
        &self,
        tree: Tree,
        lower: Bound<&[u8]>,
        upper: Bound<&[u8]>,
        visit: &mut Visit<'_>,
    ) -> Result<(), EngineError>;

    /// Number of entries in `tree`.
    fn len(&self, tree: Tree) -> Result<u64, EngineError>;

    /// Applies every write of `batch` atomically across trees, and returns
    /// only when the result is on stable storage.
    fn commit(&self, batch: &Batch) -> Result<(), EngineError>;

    /// Visits every entry of `tree` whose key starts with `prefix`.
    fn scan_prefix(
        &self,
        tree: Tree,
        prefix: &[u8],
        visit: &mut Visit<'_>,
    ) -> Result<(), EngineError> {
        match prefix_successor(prefix) {
            Some(end) => self.scan(tree, Bound::Included(prefix), Bound::Excluded(&end), visit),
            None => self.scan(tree, Bound::Included(prefix), Bound::Unbounded, visit),
        }
    }
}

/// The smallest key greater than every key starting with `prefix`, or
/// `None` when there is none (the prefix is empty or all `0xff`).
pub fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}
