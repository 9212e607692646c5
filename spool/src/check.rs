//! The integrity scan (`imxp-spool check`, like `postsuper -s`).
//!
//! Verifies that every envelope decodes and has its content with the
//! recorded size; that the due, held and in-flight indexes hold exactly the
//! entries the envelopes imply; that no content lacks an envelope; that the
//! dedup index is consistent; and that the schema version is present. Each
//! problem comes with a [`Fix`] that [`Spool::repair`] re-validates and
//! applies (nothing is ever deleted but stale index entries: unreadable or
//! orphaned records go to quarantine).

use std::collections::{BTreeSet, HashSet};
use std::ops::{Bound, ControlFlow};

use serde::{Deserialize, Serialize};

use crate::engine::Tree;
use crate::error::SpoolError;
use crate::keys;
use crate::record::{DatagramId, decode_envelope};
use crate::spool::{Fix, SCHEMA_VERSION, Spool, index_keys, key_hex};

/// One problem found by [`Spool::check`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// What is wrong.
    pub description: String,
    /// How `check --repair` fixes it, if it can.
    pub fix: Option<Fix>,
}

/// The result of [`Spool::check`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckReport {
    /// Envelopes scanned.
    pub envelopes: u64,
    /// Content records scanned.
    pub contents: u64,
    /// Index entries scanned (due, held, in-flight).
    pub index_entries: u64,
    /// Records in quarantine (not a problem by itself; reported).
    pub quarantined: u64,
    /// Problems found.
    pub problems: Vec<Problem>,
}

impl CheckReport {
    /// Whether no problem was found.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

impl Spool {
    /// Scans the whole spool for inconsistencies. Read-only: apply the
    /// problems' fixes with [`Spool::repair`]. Candidate problems are
    /// re-verified with fresh reads, so a concurrent writer (the running
    /// relay) does not cause false reports.
    pub fn check(&self) -> Result<CheckReport, SpoolError> {
        let engine = self.engine();
        let mut report = CheckReport::default();
        let mut problems = Vec::new();

        match engine.get(Tree::Meta, keys::META_SCHEMA)? {
            Some(v) if v == SCHEMA_VERSION.to_be_bytes() => {}
            other => problems.push(Problem {
                description: format!("meta schema is {other:?}, expected {SCHEMA_VERSION}"),
                fix: None,
            }),
        }

        let mut want_due = HashSet::new();
        let mut want_held = HashSet::new();
        let mut want_inflight = HashSet::new();
        let mut ids = BTreeSet::new();
        let mut candidates: Vec<DatagramId> = Vec::new();
        let mut undecodable = Vec::new();
        engine.scan(
            Tree::Envelopes,
            Bound::Unbounded,
            Bound::Unbounded,
            &mut |k, v| {
                report.envelopes += 1;
                let Some(id) = DatagramId::from_slice(k) else {
                    undecodable.push((k.to_vec(), "key is not a datagram id".to_owned()));
                    return ControlFlow::Continue(());
                };
                ids.insert(id);
                match decode_envelope(v) {
                    Ok(env) => {
                        if env.id != id {
                            undecodable.push((k.to_vec(), format!("envelope says id {}", env.id)));
                            return ControlFlow::Continue(());
                        }
                        let ik = index_keys(&env);
                        if env.is_complete() {
                            candidates.push(id);
                        }
                        if let Some(d) = ik.due {
                            want_due.insert(d);
                        }
                        want_held.extend(ik.held);
                        if ik.inflight {
                            want_inflight.insert(id.as_bytes().to_vec());
                        }
                    }
                    Err(e) => undecodable.push((k.to_vec(), e.to_string())),
                }
                ControlFlow::Continue(())
            },
        )?;
        for (k, reason) in undecodable {
            problems.push(Problem {
                description: format!("envelope {} is unreadable: {reason}", key_hex(&k)),
                fix: Some(Fix::Quarantine {
                    tree: Tree::Envelopes,
                    key: key_hex(&k),
                    reason,
                }),
            });
        }
        for id in candidates {
            problems.push(Problem {
                description: format!("datagram {id} is complete but still stored"),
                fix: None,
            });
        }

        // Content: present, right size, no orphans.
        let mut content_ids = HashSet::new();
        let mut orphans = Vec::new();
        engine.scan(
            Tree::Content,
            Bound::Unbounded,
            Bound::Unbounded,
            &mut |k, _| {
                report.contents += 1;
                match DatagramId::from_slice(k) {
                    Some(id) if ids.contains(&id) => {
                        content_ids.insert(id);
                    }
                    _ => orphans.push(k.to_vec()),
                }
                ControlFlow::Continue(())
            },
        )?;
        for k in orphans {
            if engine.get(Tree::Envelopes, &k)?.is_none() {
                problems.push(Problem {
                    description: format!("content {} has no envelope", key_hex(&k)),
                    fix: Some(Fix::Quarantine {
                        tree: Tree::Content,
                        key: key_hex(&k),
                        reason: "content without envelope".into(),
                    }),
                });
            }
        }
        for id in &ids {
            let Some(env_bytes) = engine.get(Tree::Envelopes, id.as_bytes())? else {
                continue; // removed meanwhile
            };
            let Ok(env) = decode_envelope(&env_bytes) else {
                continue; // reported above
            };
            match engine.get(Tree::Content, id.as_bytes())? {
                None => problems.push(Problem {
                    description: format!("datagram {id} has no content"),
                    fix: Some(Fix::Quarantine {
                        tree: Tree::Envelopes,
                        key: key_hex(id.as_bytes()),
                        reason: "envelope without content".into(),
                    }),
                }),
                Some(c) if c.len() as u64 != env.size => problems.push(Problem {
                    description: format!(
                        "datagram {id}: content is {} bytes, envelope says {}",
                        c.len(),
                        env.size
                    ),
                    fix: None,
                }),
                Some(_) => {}
            }
        }

        // Indexes: exactly what the envelopes imply.
        for (tree, want) in [
            (Tree::Due, &want_due),
            (Tree::Held, &want_held),
            (Tree::Inflight, &want_inflight),
        ] {
            let mut have = HashSet::new();
            engine.scan(tree, Bound::Unbounded, Bound::Unbounded, &mut |k, _| {
                have.insert(k.to_vec());
                ControlFlow::Continue(())
            })?;
            report.index_entries += have.len() as u64;
            for k in have.difference(want) {
                if self.index_entry_stale(tree, k)? {
                    problems.push(Problem {
                        description: format!(
                            "{tree} index entry {} matches no envelope",
                            key_hex(k)
                        ),
                        fix: Some(Fix::DropStaleIndex {
                            tree,
                            key: key_hex(k),
                        }),
                    });
                }
            }
            for k in want.difference(&have) {
                if engine.get(tree, k)?.is_none() && !self.index_entry_stale(tree, k)? {
                    let id = index_id(tree, k);
                    problems.push(Problem {
                        description: format!("{tree} index lacks entry {}", key_hex(k)),
                        fix: id.map(|id| Fix::Reindex { id }),
                    });
                }
            }
        }

        // Dedup: both directions agree.
        let mut by_id = HashSet::new();
        let mut by_time = HashSet::new();
        engine.scan(
            Tree::Dedup,
            Bound::Unbounded,
            Bound::Unbounded,
            &mut |k, v| {
                match k.first() {
                    Some(&keys::DEDUP_BY_ID) => {
                        if let (Some(id), Ok(b)) =
                            (DatagramId::from_slice(&k[1..]), <[u8; 8]>::try_from(v))
                        {
                            by_id.insert((u64::from_be_bytes(b), id));
                        } else {
                            by_id.insert((u64::MAX, DatagramId::from_bytes([0; 16])));
                        }
                    }
                    _ => match keys::parse_dedup_time(k) {
                        Some(x) => {
                            by_time.insert(x);
                        }
                        None => {
                            by_time.insert((u64::MAX, DatagramId::from_bytes([0xff; 16])));
                        }
                    },
                }
                ControlFlow::Continue(())
            },
        )?;
        let mismatched = by_id.symmetric_difference(&by_time).count();
        if mismatched > 0 {
            problems.push(Problem {
                description: format!("dedup index: {mismatched} entries without their pair"),
                fix: None,
            });
        }

        report.quarantined = engine.len(Tree::Quarantine)?;
        report.problems = problems;
        Ok(report)
    }

    /// Re-reads: is this index entry not implied by its envelope now?
    fn index_entry_stale(&self, tree: Tree, key: &[u8]) -> Result<bool, SpoolError> {
        let Some(id) = index_id(tree, key) else {
            return Ok(true);
        };
        let Some(bytes) = self.engine().get(Tree::Envelopes, id.as_bytes())? else {
            return Ok(true);
        };
        let Ok(env) = decode_envelope(&bytes) else {
            return Ok(false); // the envelope problem is reported instead
        };
        let ik = index_keys(&env);
        Ok(match tree {
            Tree::Due => ik.due.as_deref() != Some(key),
            Tree::Held => !ik.held.iter().any(|k| k == key),
            _ => !ik.inflight,
        })
    }
}

fn index_id(tree: Tree, key: &[u8]) -> Option<DatagramId> {
    match tree {
        Tree::Due => keys::parse_due(key).map(|(_, id)| id),
        Tree::Held => keys::parse_held(key).map(|(_, id)| id),
        _ => DatagramId::from_slice(key),
    }
}
