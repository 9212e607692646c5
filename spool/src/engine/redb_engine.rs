//! The redb engine (default).

use std::ops::{Bound, ControlFlow};
use std::path::{Path, PathBuf};

use redb::{Database, Durability, ReadableDatabase, ReadableTableMetadata, TableDefinition};

use super::{Batch, Engine, EngineError, EngineKind, Tree, Visit, Write};

type Def = TableDefinition<'static, &'static [u8], &'static [u8]>;

fn def(tree: Tree) -> Def {
    TableDefinition::new(tree.name())
}

fn redb_err(e: impl Into<redb::Error>) -> EngineError {
    EngineError::Redb(e.into())
}

/// The redb engine: one file, `spool.redb`, in the spool directory.
///
/// Guarantee: every [`Engine::commit`] is one redb write transaction with
/// [`Durability::Immediate`]; when it returns, the transaction is on stable
/// storage (redb fsyncs the file), and after a crash either all of a batch's
/// writes are visible or none is. Commits use redb's quick-repair mode
/// (two-phase commit, allocator state saved with each commit: two fsyncs per
/// commit), so the first open after a crash does not walk the whole file.
pub struct RedbEngine {
    db: Database,
    path: PathBuf,
}

impl RedbEngine {
    /// The database file's name inside the spool directory.
    pub const FILE_NAME: &'static str = "spool.redb";

    /// Opens or creates `dir/spool.redb` and creates every tree.
    pub fn open(dir: &Path) -> Result<Self, EngineError> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(Self::FILE_NAME);
        let db = Database::builder()
            .set_cache_size(64 * 1024 * 1024)
            .create(&path)
            .map_err(redb_err)?;
        let txn = db.begin_write().map_err(redb_err)?;
        for tree in Tree::ALL {
            txn.open_table(def(tree)).map_err(redb_err)?;
        }
        txn.commit().map_err(redb_err)?;
        Ok(Self { db, path })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Engine for RedbEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::Redb
    }

    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, EngineError> {
        let txn = self.db.begin_read().map_err(redb_err)?;
        let table = txn.open_table(def(tree)).map_err(redb_err)?;
        Ok(table
            .get(key)
            .map_err(redb_err)?
            .map(|v| v.value().to_vec()))
    }

    fn scan(
        &self,
        tree: Tree,
        lower: Bound<&[u8]>,
        upper: Bound<&[u8]>,
        visit: &mut Visit<'_>,
    ) -> Result<(), EngineError> {
        let txn = self.db.begin_read().map_err(redb_err)?;
        let table = txn.open_table(def(tree)).map_err(redb_err)?;
        let range = table.range::<&[u8]>((lower, upper)).map_err(redb_err)?;
        for entry in range {
            let (k, v) = entry.map_err(redb_err)?;
            if let ControlFlow::Break(()) = visit(k.value(), v.value()) {
                break;
            }
        }
        Ok(())
    }

    fn len(&self, tree: Tree) -> Result<u64, EngineError> {
        let txn = self.db.begin_read().map_err(redb_err)?;
        let table = txn.open_table(def(tree)).map_err(redb_err)?;
        table.len().map_err(redb_err)
    }

    fn commit(&self, batch: &Batch) -> Result<(), EngineError> {
        let mut txn = self.db.begin_write().map_err(redb_err)?;
        txn.set_durability(Durability::Immediate)
            .map_err(|e| EngineError::Io(std::io::Error::other(e.to_string())))?;
        // Save the allocator state with each commit (and use 2-phase
        // commit), so reopening after a crash does not walk the whole file.
        txn.set_quick_repair(true);
        {
            let mut tables = Vec::with_capacity(Tree::ALL.len());
            for tree in Tree::ALL {
                tables.push(txn.open_table(def(tree)).map_err(redb_err)?);
            }
            for write in batch.writes() {
                match write {
                    Write::Put { tree, key, value } => {
                        tables[tree.index()]
                            .insert(key.as_slice(), value.as_slice())
                            .map_err(redb_err)?;
                    }
                    Write::Delete { tree, key } => {
                        tables[tree.index()]
                            .remove(key.as_slice())
                            .map_err(redb_err)?;
                    }
                }
            }
        }
        txn.commit().map_err(redb_err)?;
        Ok(())
    }
}
