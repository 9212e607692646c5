//! [`View`]: the committer's overlay of the engine. Reads see the batch
//! built so far and the current operation's own writes; an operation that
//! fails has its writes dropped ([`View::finish_op`]); the kept writes
//! become one [`Batch`] committed at once.

use std::collections::HashMap;
use std::ops::ControlFlow;

use super::HeldUsage;
use crate::engine::{Batch, Engine, Tree};
use crate::error::SpoolError;
use crate::keys;

pub(super) struct View<'e> {
    pub(super) engine: &'e dyn Engine,
    batch: HashMap<(Tree, Vec<u8>), Option<Vec<u8>>>,
    op: HashMap<(Tree, Vec<u8>), Option<Vec<u8>>>,
}

impl<'e> View<'e> {
    /// What the held index (with this batch's changes) holds for `endpoint`.
    pub(super) fn held_usage(&self, endpoint: &str) -> Result<HeldUsage, SpoolError> {
        let prefix = keys::held_prefix(endpoint);
        let mut present = std::collections::BTreeSet::new();
        self.engine.scan_prefix(Tree::Held, &prefix, &mut |k, _| {
            present.insert(k.to_vec());
            ControlFlow::Continue(())
        })?;
        for layer in [&self.batch, &self.op] {
            for ((tree, key), value) in layer {
                if *tree == Tree::Held && key.starts_with(&prefix) {
                    if value.is_some() {
                        present.insert(key.clone());
                    } else {
                        present.remove(key);
                    }
                }
            }
        }
        let mut usage = HeldUsage::default();
        for key in &present {
            if let Some(held) = keys::parse_held_key(key) {
                usage.count += 1;
                usage.bytes = usage.bytes.saturating_add(held.size);
            }
        }
        Ok(usage)
    }

    pub(super) fn new(engine: &'e dyn Engine) -> Self {
        Self {
            engine,
            batch: HashMap::new(),
            op: HashMap::new(),
        }
    }

    pub(super) fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, SpoolError> {
        let k = (tree, key.to_vec());
        if let Some(v) = self.op.get(&k) {
            return Ok(v.clone());
        }
        if let Some(v) = self.batch.get(&k) {
            return Ok(v.clone());
        }
        Ok(self.engine.get(tree, key)?)
    }

    pub(super) fn put(&mut self, tree: Tree, key: Vec<u8>, value: Vec<u8>) {
        self.op.insert((tree, key), Some(value));
    }

    pub(super) fn delete(&mut self, tree: Tree, key: Vec<u8>) {
        self.op.insert((tree, key), None);
    }

    pub(super) fn finish_op(&mut self, keep: bool) {
        if keep {
            self.batch.extend(self.op.drain());
        } else {
            self.op.clear();
        }
    }

    pub(super) fn into_batch(self) -> Batch {
        let mut b = Batch::new();
        for ((tree, key), v) in self.batch {
            match v {
                Some(v) => b.put(tree, key, v),
                None => b.delete(tree, key),
            }
        }
        b
    }
}
