//! The index entries (due, held, in-flight) an envelope must have, a pure
//! function of the envelope that `check` also verifies, and
//! [`write_envelope`], which writes an envelope with exactly those index
//! changes through the committer's overlay.

use super::overlay::View;
use crate::engine::Tree;
use crate::error::SpoolError;
use crate::keys;
use crate::record::{DatagramId, Envelope, encode_envelope};

/// The index entries an envelope must have.
#[derive(Default, PartialEq, Eq, Debug)]
pub(crate) struct IndexKeys {
    pub(crate) due: Option<Vec<u8>>,
    pub(crate) held: Vec<Vec<u8>>,
    pub(crate) inflight: bool,
}

pub(crate) fn index_keys(env: &Envelope) -> IndexKeys {
    if env.is_complete() {
        return IndexKeys::default();
    }
    IndexKeys {
        due: env.due_ms().map(|d| keys::due(d, &env.id)),
        held: env
            .held_endpoints()
            .into_iter()
            .map(|e| keys::held(e, env.arrival_order(), env.size, &env.id))
            .collect(),
        inflight: env.has_claim(),
    }
}

/// Writes `new` (or removes the datagram when `new` is `None` or complete)
/// with the index changes from `old`.
pub(super) fn write_envelope(
    view: &mut View<'_>,
    id: &DatagramId,
    old: Option<&Envelope>,
    new: Option<&Envelope>,
) -> Result<bool, SpoolError> {
    let old_keys = old.map(index_keys).unwrap_or_default();
    let removed = new.is_none_or(Envelope::is_complete);
    let new_keys = match new {
        Some(n) if !removed => index_keys(n),
        _ => IndexKeys::default(),
    };
    if old_keys.due != new_keys.due {
        if let Some(k) = old_keys.due {
            view.delete(Tree::Due, k);
        }
        if let Some(k) = new_keys.due {
            view.put(Tree::Due, k, Vec::new());
        }
    }
    for k in &old_keys.held {
        if !new_keys.held.contains(k) {
            view.delete(Tree::Held, k.clone());
        }
    }
    for k in &new_keys.held {
        if !old_keys.held.contains(k) {
            view.put(Tree::Held, k.clone(), Vec::new());
        }
    }
    if old_keys.inflight != new_keys.inflight {
        if new_keys.inflight {
            view.put(Tree::Inflight, id.as_bytes().to_vec(), Vec::new());
        } else {
            view.delete(Tree::Inflight, id.as_bytes().to_vec());
        }
    }
    match new {
        Some(n) if !removed => {
            view.put(Tree::Envelopes, id.as_bytes().to_vec(), encode_envelope(n)?);
        }
        _ => {
            view.delete(Tree::Envelopes, id.as_bytes().to_vec());
            view.delete(Tree::Content, id.as_bytes().to_vec());
        }
    }
    Ok(removed)
}
