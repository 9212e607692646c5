//! Recognising a datagram the relay hands over a second time.
//!
//! A relay removes a datagram once the application answered `<ok />`. If
//! the relay stops between receiving that `ok` and recording it, or gives
//! up waiting for it (the application answered late), it delivers the
//! datagram again later: the same stored datagram, so with the same hop
//! identity ([`imxp_apex::hop_id`]), which an imxp relay puts on every
//! datagram it hands to an application.
//!
//! [`SeenDeliveries`] remembers the hop identities of the datagrams this
//! application acknowledged. An [`crate::Attachment`] given one (see
//! [`crate::AttachOptions::seen`]) answers a repeated delivery `<ok />`
//! itself and does not hand it to the application again. Share one set
//! across reconnections (an `Arc`) so that a delivery repeated after the
//! relay restarted is recognised too; keep it on disk if the application
//! itself restarts and must not show a message twice.
//!
//! A datagram from a relay that sends no hop identity cannot be recognised
//! this way; the application may compare the content part's Content-ID
//! ([`crate::Received::part`]) instead, which the originator chose.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

/// A hop identity: the delivering relay's id for a datagram.
pub type HopId = [u8; imxp_apex::hop_id::LEN];

/// The hop identities of the most recent acknowledged deliveries, at most
/// `capacity` of them (the oldest are forgotten first).
#[derive(Debug)]
pub struct SeenDeliveries {
    capacity: usize,
    inner: Mutex<Recent>,
}

#[derive(Debug, Default)]
struct Recent {
    set: HashSet<HopId>,
    order: VecDeque<HopId>,
}

impl SeenDeliveries {
    /// Remembers up to `capacity` deliveries (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            inner: Mutex::new(Recent::default()),
        }
    }

    /// Records that the application acknowledged the delivery `id`.
    pub fn insert(&self, id: HopId) {
        let mut recent = self.lock();
        if !recent.set.insert(id) {
            return;
        }
        recent.order.push_back(id);
        while recent.order.len() > self.capacity {
            if let Some(oldest) = recent.order.pop_front() {
                recent.set.remove(&oldest);
            }
        }
    }

    /// Whether the delivery `id` was acknowledged before.
    pub fn contains(&self, id: &HopId) -> bool {
        self.lock().set.contains(id)
    }

    /// How many deliveries are remembered.
    pub fn len(&self) -> usize {
        self.lock().order.len()
    }

    /// Whether none is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Recent> {
        // Nothing can be left half-updated by a panic elsewhere.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Default for SeenDeliveries {
    /// 4096 deliveries.
    fn default() -> Self {
        Self::new(4096)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_the_most_recent() {
        let seen = SeenDeliveries::new(2);
        seen.insert([1; 16]);
        seen.insert([2; 16]);
        seen.insert([2; 16]);
        assert!(seen.contains(&[1; 16]) && seen.contains(&[2; 16]));
        seen.insert([3; 16]);
        assert!(!seen.contains(&[1; 16]), "the oldest is forgotten");
        assert!(seen.contains(&[3; 16]));
        assert_eq!(seen.len(), 2);
    }
}
