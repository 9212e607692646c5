//! The reads of [`Spool`]: straight from the engine, never through the
//! committer (a read sees the last commit). An undecodable envelope met by
//! a read is sent to quarantine and reported as [`SpoolError::Corrupt`].

use std::ops::{Bound, ControlFlow};

use super::hex::hex;
use super::op::Op;
use super::{HeldUsage, RawEntry, Spool};
use crate::engine::{Engine, Tree};
use crate::error::SpoolError;
use crate::event::Event;
use crate::keys;
use crate::record::{DatagramId, Envelope, QuarantineEntry, decode_envelope, decode_quarantine};

impl Spool {
    /// What is held for `endpoint`: datagrams and content bytes (a prefix
    /// scan of the held index, which carries each datagram's size).
    pub fn held_usage(&self, endpoint: &str) -> Result<HeldUsage, SpoolError> {
        let mut usage = HeldUsage::default();
        self.inner
            .engine
            .scan_prefix(Tree::Held, &keys::held_prefix(endpoint), &mut |k, _| {
                if let Some(held) = keys::parse_held_key(k) {
                    usage.count += 1;
                    usage.bytes = usage.bytes.saturating_add(held.size);
                }
                ControlFlow::Continue(())
            })?;
        Ok(usage)
    }
    /// The dedup entries: `(id, seen_ms)`, in id order.
    pub fn dedup_entries(&self) -> Result<Vec<(DatagramId, u64)>, SpoolError> {
        let mut out = Vec::new();
        self.inner
            .engine
            .scan_prefix(Tree::Dedup, &[keys::DEDUP_BY_ID], &mut |k, v| {
                if let (Some(id), Ok(b)) = (DatagramId::from_slice(&k[1..]), <[u8; 8]>::try_from(v))
                {
                    out.push((id, u64::from_be_bytes(b)));
                }
                ControlFlow::Continue(())
            })?;
        Ok(out)
    }

    /// Raw quarantine entries: `(key, value)` as stored.
    pub fn quarantine_raw(&self) -> Result<Vec<RawEntry>, SpoolError> {
        let mut out = Vec::new();
        self.inner.engine.scan(
            Tree::Quarantine,
            Bound::Unbounded,
            Bound::Unbounded,
            &mut |k, v| {
                out.push((k.to_vec(), v.to_vec()));
                ControlFlow::Continue(())
            },
        )?;
        Ok(out)
    }

    /// Every record of the presence tree, `(key, value)` in key order, as
    /// of the last durable commit.
    pub fn presence_records(&self) -> Result<Vec<RawEntry>, SpoolError> {
        let mut out = Vec::new();
        self.inner.engine.scan(
            Tree::Presence,
            Bound::Unbounded,
            Bound::Unbounded,
            &mut |k, v| {
                out.push((k.to_vec(), v.to_vec()));
                ControlFlow::Continue(())
            },
        )?;
        Ok(out)
    }

    /// Decodes a stored envelope; an undecodable one is sent to quarantine
    /// (asynchronously) and reported as [`SpoolError::Corrupt`].
    fn decode_or_quarantine(&self, key: &[u8], bytes: &[u8]) -> Result<Envelope, SpoolError> {
        decode_envelope(bytes).map_err(|e| {
            let reason = e.to_string();
            tracing::warn!(key = %hex(key), %reason, event = Event::Quarantined.as_str(), "quarantining undecodable envelope");
            self.submit_detached(Op::Quarantine {
                tree: Tree::Envelopes,
                key: key.to_vec(),
                reason: reason.clone(),
            });
            SpoolError::Corrupt {
                id: DatagramId::from_slice(key).unwrap_or(DatagramId::from_bytes([0; 16])),
                reason,
            }
        })
    }

    /// The envelope of a datagram.
    pub fn get(&self, id: DatagramId) -> Result<Option<Envelope>, SpoolError> {
        match self.inner.engine.get(Tree::Envelopes, id.as_bytes())? {
            None => Ok(None),
            Some(b) => self.decode_or_quarantine(id.as_bytes(), &b).map(Some),
        }
    }

    /// The content bytes of a datagram.
    pub fn content(&self, id: DatagramId) -> Result<Option<Vec<u8>>, SpoolError> {
        Ok(self.inner.engine.get(Tree::Content, id.as_bytes())?)
    }

    /// The work list: up to `limit` entries of the due index with due time
    /// ≤ `up_to_ms`, earliest first.
    pub fn due_ids(
        &self,
        up_to_ms: u64,
        limit: usize,
    ) -> Result<Vec<(u64, DatagramId)>, SpoolError> {
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        let hi = keys::due(up_to_ms, &DatagramId::from_bytes([0xff; 16]));
        self.inner.engine.scan(
            Tree::Due,
            Bound::Unbounded,
            Bound::Included(&hi),
            &mut |k, _| {
                if let Some(x) = keys::parse_due(k) {
                    out.push(x);
                }
                if out.len() >= limit {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            },
        )?;
        Ok(out)
    }

    /// The work due now (see [`Spool::due_ids`]).
    pub fn due_now(&self, limit: usize) -> Result<Vec<(u64, DatagramId)>, SpoolError> {
        self.due_ids(self.now_ms(), limit)
    }

    /// The earliest due time in the spool, for the scheduler's sleep.
    pub fn next_due(&self) -> Result<Option<u64>, SpoolError> {
        Ok(self.due_ids(u64::MAX, 1)?.first().map(|(d, _)| *d))
    }

    /// Datagrams with recipients held for `endpoint` (prefix scan of the
    /// held index; the endpoint must match exactly).
    pub fn held_for(&self, endpoint: &str) -> Result<Vec<DatagramId>, SpoolError> {
        let mut out = Vec::new();
        self.inner
            .engine
            .scan_prefix(Tree::Held, &keys::held_prefix(endpoint), &mut |k, _| {
                if let Some((_, id)) = keys::parse_held(k) {
                    out.push(id);
                }
                ControlFlow::Continue(())
            })?;
        Ok(out)
    }

    /// Visits every envelope in id order (never loads content). Undecodable
    /// envelopes are quarantined and skipped; returns how many were.
    pub fn for_each(
        &self,
        mut visit: impl FnMut(Envelope) -> ControlFlow<()>,
    ) -> Result<u64, SpoolError> {
        let mut bad = 0;
        self.inner.engine.scan(
            Tree::Envelopes,
            Bound::Unbounded,
            Bound::Unbounded,
            &mut |k, v| match self.decode_or_quarantine(k, v) {
                Ok(env) => visit(env),
                Err(_) => {
                    bad += 1;
                    ControlFlow::Continue(())
                }
            },
        )?;
        Ok(bad)
    }

    /// Number of datagrams.
    pub fn len(&self) -> Result<u64, SpoolError> {
        Ok(self.inner.engine.len(Tree::Envelopes)?)
    }

    /// Whether the spool holds no datagram.
    pub fn is_empty(&self) -> Result<bool, SpoolError> {
        Ok(self.len()? == 0)
    }

    /// The quarantine: `(key, entry)` pairs (key hex), oldest first. An entry
    /// that itself cannot be decoded is shown with its raw bytes.
    pub fn quarantined(&self) -> Result<Vec<(String, QuarantineEntry)>, SpoolError> {
        let mut out = Vec::new();
        self.inner.engine.scan(
            Tree::Quarantine,
            Bound::Unbounded,
            Bound::Unbounded,
            &mut |k, v| {
                let entry = decode_quarantine(v).unwrap_or_else(|e| QuarantineEntry {
                    tree: Tree::Quarantine,
                    key: k.to_vec(),
                    value: v.to_vec(),
                    reason: format!("undecodable quarantine entry: {e}"),
                    at_ms: 0,
                });
                out.push((hex(k), entry));
                ControlFlow::Continue(())
            },
        )?;
        Ok(out)
    }

    /// Number of quarantined records.
    pub fn quarantine_len(&self) -> Result<u64, SpoolError> {
        Ok(self.inner.engine.len(Tree::Quarantine)?)
    }

    /// Number of dedup entries (ids remembered).
    pub fn dedup_len(&self) -> Result<u64, SpoolError> {
        let mut n = 0;
        self.inner
            .engine
            .scan_prefix(Tree::Dedup, &[keys::DEDUP_BY_ID], &mut |_, _| {
                n += 1;
                ControlFlow::Continue(())
            })?;
        Ok(n)
    }

    /// Whether a datagram id was seen within the dedup window.
    pub fn seen(&self, id: DatagramId) -> Result<bool, SpoolError> {
        Ok(self
            .inner
            .engine
            .get(Tree::Dedup, &keys::dedup_id(&id))?
            .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
            .is_some_and(|b| {
                u64::from_be_bytes(b).saturating_add(self.inner.config.dedup_window_ms)
                    > self.now_ms()
            }))
    }

    pub(crate) fn engine(&self) -> &dyn Engine {
        &*self.inner.engine
    }
}
