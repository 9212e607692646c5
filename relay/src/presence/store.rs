//! Where presence state is kept: the [`PresenceStore`] interface
//! (entries, subscriptions, watches; expiry times are in the records),
//! and its implementation in the relay's spool ([`SpoolStore`], the
//! spool's `presence` tree, written through the spool's committer like
//! datagrams, durable when a write resolves).
//!
//! A domain served by several relays will keep this state in a shared
//! store instead; that is one more implementation of [`PresenceStore`].
//!
//! Records of the spool tree: `e\0<publisher>` → the entry's XML (RFC 3343
//! §3), `s\0<publisher>\0<subscriber>` → a [`Subscription`] and
//! `w\0<publisher>\0<watcher>` → a [`Watch`], both JSON.

use std::future::Future;
use std::pin::Pin;

use imxp_apex::presence::PresenceEntry;
use imxp_spool::Spool;

use super::registry::{Change, Subscription, Watch};

/// Reading or writing presence state failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    /// The spool failed.
    #[error("presence store: {0}")]
    Spool(#[from] imxp_spool::SpoolError),
    /// A stored record does not decode.
    #[error("presence store: record {key:?}: {reason}")]
    Corrupt { key: String, reason: String },
}

/// Everything stored.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    pub(crate) entries: Vec<PresenceEntry>,
    pub(crate) subscriptions: Vec<Subscription>,
    pub(crate) watches: Vec<Watch>,
}

/// A write in progress.
pub(crate) type Writing<'a> = Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send + 'a>>;

/// Durable presence state.
pub(crate) trait PresenceStore: Send + Sync {
    /// Everything stored (at start).
    fn load(&self) -> Result<Snapshot, StoreError>;
    /// Applies `changes` atomically; resolves once they are durable.
    fn apply(&self, changes: Vec<Change>) -> Writing<'_>;
}

/// [`PresenceStore`] in the spool's `presence` tree.
pub(crate) struct SpoolStore {
    spool: Spool,
}

impl SpoolStore {
    pub(crate) fn new(spool: Spool) -> Self {
        Self { spool }
    }
}

fn key(kind: u8, parts: &[&str]) -> Vec<u8> {
    let mut key = vec![kind];
    for part in parts {
        key.push(0);
        key.extend_from_slice(part.as_bytes());
    }
    key
}

fn json(value: &impl serde::Serialize) -> Vec<u8> {
    serde_json::to_vec(value).expect("presence records serialize")
}

fn record(change: Change) -> (Vec<u8>, Option<Vec<u8>>) {
    match change {
        Change::Entry(entry) => (
            key(b'e', &[&entry.publisher.to_string()]),
            Some(entry.to_xml().into_bytes()),
        ),
        Change::Subscription(s) => (key(b's', &[&s.publisher, &s.subscriber]), Some(json(&s))),
        Change::EndSubscription((p, s)) => (key(b's', &[&p, &s]), None),
        Change::Watch(w) => (key(b'w', &[&w.publisher, &w.watcher]), Some(json(&w))),
        Change::EndWatch((p, w)) => (key(b'w', &[&p, &w]), None),
    }
}

impl PresenceStore for SpoolStore {
    fn load(&self) -> Result<Snapshot, StoreError> {
        let mut snapshot = Snapshot::default();
        for (key, value) in self.spool.presence_records()? {
            let corrupt = |reason: String| StoreError::Corrupt {
                key: String::from_utf8_lossy(&key).replace('\0', "/"),
                reason,
            };
            match key.first() {
                Some(b'e') => snapshot
                    .entries
                    .push(PresenceEntry::parse(&value).map_err(|e| corrupt(e.to_string()))?),
                Some(b's') => snapshot
                    .subscriptions
                    .push(serde_json::from_slice(&value).map_err(|e| corrupt(e.to_string()))?),
                Some(b'w') => snapshot
                    .watches
                    .push(serde_json::from_slice(&value).map_err(|e| corrupt(e.to_string()))?),
                _ => return Err(corrupt("unknown record kind".into())),
            }
        }
        Ok(snapshot)
    }

    fn apply(&self, changes: Vec<Change>) -> Writing<'_> {
        let records: Vec<_> = changes.into_iter().map(record).collect();
        let pending = (!records.is_empty()).then(|| self.spool.presence_write(records));
        Box::pin(async move {
            if let Some(pending) = pending {
                pending.await?;
            }
            Ok(())
        })
    }
}
