//! The presence service, `apex=presence@<domain>` (RFC 3343), on every
//! relay.
//!
//! * `registry` — the state and the rules of §4, without I/O: entries,
//!   subscriptions, watches; what `subscribe`, `watch`, `publish`,
//!   `terminate`, an attachment and the passing of time change and send.
//! * `store` — where that state is kept durably ([`PresenceStore`]; in the
//!   spool's `presence` tree today).
//! * `service` — datagrams addressed to `apex=presence@<served domain>`,
//!   the datagrams the service sends (through intake, like any other:
//!   durable, routed, retried), attachment events and expiry.
//!
//! # Tuples of attached endpoints
//!
//! When an endpoint `fred/appl=im@example.com` attaches, the relay puts a
//! tuple `apex:fred/appl=im@example.com`, open, into the entry of its
//! user `fred@example.com`; when the attachment ends (terminate, channel
//! or session end, attachOverride, relay restart) the tuple goes. These
//! tuples carry `tupleInfo='urn:x-imxp:attachment'` and belong to the
//! relay: a `publish` replaces the publisher's own tuples and keeps them.
//! So a client that never publishes is online while it is attached, and
//! one that publishes adds what it knows (a note, another contact, "away
//! until") beside them.
//!
//! # Coalescing
//!
//! Each subscription remembers the datagram that carried its last update.
//! The next update for it is queued with
//! [`imxp_spool::Spool::enqueue_superseding`]: if the previous one still
//! waits in the queue (the subscriber's relay is down), it is deleted in
//! the same commit, so a subscriber coming back gets the newest state
//! once, not every state in between.

mod registry;
pub(crate) mod service;
mod store;

use imxp_apex::Endpoint;
use parking_lot::Mutex as SyncMutex;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio::sync::{Mutex, MutexGuard, Notify};

pub(crate) use registry::{Grants, Registry};
pub(crate) use store::{PresenceStore, SpoolStore, StoreError};

use crate::config::PresenceSettings;

/// The presence state of a running relay and where it is stored.
pub(crate) struct Presence {
    registry: Mutex<Registry>,
    store: Box<dyn PresenceStore>,
    /// Wakes the expiry task when a subscription or watch was added.
    changed: Notify,
    /// Owners whose access entries changed, for the service's task to
    /// show their subscribers what they may see now.
    access_changes: UnboundedSender<Endpoint>,
    access_receiver: SyncMutex<Option<UnboundedReceiver<Endpoint>>>,
}

impl Presence {
    /// The state stored in `store`.
    pub(crate) fn open(
        store: Box<dyn PresenceStore>,
        settings: PresenceSettings,
    ) -> Result<Self, StoreError> {
        let snapshot = store.load()?;
        let mut registry = Registry::new(settings);
        let (entries, subscriptions, watches) = (
            snapshot.entries.len(),
            snapshot.subscriptions.len(),
            snapshot.watches.len(),
        );
        registry.restore(snapshot.entries, snapshot.subscriptions, snapshot.watches);
        tracing::info!(entries, subscriptions, watches, "presence state loaded");
        let (access_changes, access_receiver) = unbounded_channel();
        Ok(Self {
            registry: Mutex::new(registry),
            store,
            changed: Notify::new(),
            access_changes,
            access_receiver: SyncMutex::new(Some(access_receiver)),
        })
    }

    /// The registry, for one operation at a time.
    pub(crate) async fn lock(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().await
    }

    /// The durable store.
    pub(crate) fn store(&self) -> &dyn PresenceStore {
        self.store.as_ref()
    }

    /// Wakes the expiry task (a new expiry time may be the earliest).
    pub(crate) fn changed(&self) {
        self.changed.notify_one();
    }

    /// Waits for [`Presence::changed`].
    pub(crate) async fn wait_changed(&self) {
        self.changed.notified().await;
    }

    /// `owner`'s access entries changed (RFC 3341 `set`): its subscribers
    /// are shown what they may see now, not at its next change.
    pub(crate) fn access_changed(&self, owner: &Endpoint) {
        let _ = self.access_changes.send(owner.clone());
    }

    /// The owners whose access changed, for the service's task; `None`
    /// after the first call.
    pub(crate) fn take_access_changes(&self) -> Option<UnboundedReceiver<Endpoint>> {
        self.access_receiver.lock().take()
    }
}
