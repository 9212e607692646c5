//! The sled engine (selectable; sled 0.34.7).

use std::collections::BTreeSet;
use std::fs::File;
use std::ops::{Bound, ControlFlow};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sled::Transactional;

use super::{Batch, Engine, EngineError, EngineKind, Tree, Visit, Write};

/// The sled engine: a sled database in the `sled/` subdirectory of the spool
/// directory, one sled tree per [`Tree`].
///
/// # What it guarantees
///
/// - **Atomicity across trees:** a commit is one sled multi-tree transaction.
/// - **Durability when [`Engine::commit`] returns**, which sled alone does not
///   give: `Db::flush` writes the log buffers and calls only
///   `sync_file_range(2)` on Linux (no disk-cache flush, no metadata), and
///   sled writes values too large for its log (`blobs/`) with no sync at all.
///   After the flush this engine therefore calls `fdatasync(2)`
///   ([`File::sync_data`]) on the log file `db`, on every blob file it has not
///   synced yet, and `fsync(2)` on `blobs/` and `sled/` whenever their
///   listings change. sled's own background flusher is left at its 500 ms
///   default; it only adds syncs.
///
/// # What it does not guarantee
///
/// - It cannot fix sled's own recovery: sled 0.34 is beta and has open
///   reports of corruption after abrupt stops. The crash test of this
///   repository (SIGKILL at random moments) passes, but it does not cut the
///   power. Prefer redb when reliability is the first constraint.
/// - sled assumes a single process owns its files; the spool's lock file
///   enforces that.
pub struct SledEngine {
    db: sled::Db,
    trees: Vec<sled::Tree>,
    dir: PathBuf,
    log: File,
    synced: Mutex<SyncState>,
}

#[derive(Default)]
struct SyncState {
    blobs: BTreeSet<std::ffi::OsString>,
    top: BTreeSet<std::ffi::OsString>,
}

/// How long [`SledEngine::open`] waits for sled's own file lock.
const PREDECESSOR_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Opens the database, waiting a little while sled's file lock is still
/// held. The spool's own lock file is already ours, so the holder can only
/// be the previous instance in this process, whose sled background threads
/// let go of the database shortly after it was dropped (seen when a spool is
/// reopened at once, e.g. a relay restarted in the same process).
fn open_waiting_for_predecessor(path: &Path) -> sled::Result<sled::Db> {
    let deadline = std::time::Instant::now() + PREDECESSOR_GRACE;
    loop {
        let opened = sled::Config::new()
            .path(path)
            .cache_capacity(64 * 1024 * 1024)
            .open();
        match opened {
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

impl SledEngine {
    /// The subdirectory of the spool directory holding the sled database.
    pub const DIR_NAME: &'static str = "sled";

    /// Opens or creates the sled database in `dir/sled` and every tree.
    pub fn open(dir: &Path) -> Result<Self, EngineError> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(Self::DIR_NAME);
        let db = open_waiting_for_predecessor(&path)?;
        let trees = Tree::ALL
            .iter()
            .map(|t| db.open_tree(t.name()))
            .collect::<Result<Vec<_>, _>>()?;
        db.flush()?;
        let log = File::open(path.join("db"))?;
        let engine = Self {
            db,
            trees,
            dir: path,
            log,
            synced: Mutex::new(SyncState::default()),
        };
        engine.sync_files()?;
        sync_dir(dir)?;
        Ok(engine)
    }

    /// The sled directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    fn tree(&self, tree: Tree) -> &sled::Tree {
        &self.trees[tree.index()]
    }

    /// fdatasyncs the log, every blob not synced yet, and the directories
    /// whose listings changed.
    fn sync_files(&self) -> Result<(), EngineError> {
        self.log.sync_data()?;
        let mut state = self.synced.lock().unwrap_or_else(|p| p.into_inner());
        let blobs_dir = self.dir.join("blobs");
        if blobs_dir.exists() {
            let mut now = BTreeSet::new();
            let mut changed = false;
            for entry in std::fs::read_dir(&blobs_dir)? {
                let entry = entry?;
                let name = entry.file_name();
                if !state.blobs.contains(&name) {
                    match File::open(entry.path()) {
                        Ok(f) => f.sync_data()?,
                        // sled removed it meanwhile (blob garbage collection).
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                        Err(e) => return Err(e.into()),
                    }
                    changed = true;
                }
                now.insert(name);
            }
            if changed || now.len() != state.blobs.len() {
                sync_dir(&blobs_dir)?;
            }
            state.blobs = now;
        }
        let mut top = BTreeSet::new();
        for entry in std::fs::read_dir(&self.dir)? {
            top.insert(entry?.file_name());
        }
        if top != state.top {
            sync_dir(&self.dir)?;
            state.top = top;
        }
        Ok(())
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Engine for SledEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::Sled
    }

    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, EngineError> {
        Ok(self.tree(tree).get(key)?.map(|v| v.to_vec()))
    }

    fn scan(
        &self,
        tree: Tree,
        lower: Bound<&[u8]>,
        upper: Bound<&[u8]>,
        visit: &mut Visit<'_>,
    ) -> Result<(), EngineError> {
        let lower = lower.map(<[u8]>::to_vec);
        let upper = upper.map(<[u8]>::to_vec);
        if let (Bound::Included(l) | Bound::Excluded(l), Bound::Included(u) | Bound::Excluded(u)) =
            (&lower, &upper)
        {
            // sled panics on an inverted range.
            if l > u {
                return Ok(());
            }
        }
        for entry in self.tree(tree).range::<Vec<u8>, _>((lower, upper)) {
            let (k, v) = entry?;
            if let ControlFlow::Break(()) = visit(&k, &v) {
                break;
            }
        }
        Ok(())
    }

    fn len(&self, tree: Tree) -> Result<u64, EngineError> {
        Ok(self.tree(tree).len() as u64)
    }

    fn commit(&self, batch: &Batch) -> Result<(), EngineError> {
        let mut per_tree: Vec<Option<sled::Batch>> = vec![None; Tree::ALL.len()];
        for write in batch.writes() {
            match write {
                Write::Put { tree, key, value } => per_tree[tree.index()]
                    .get_or_insert_with(sled::Batch::default)
                    .insert(key.as_slice(), value.as_slice()),
                Write::Delete { tree, key } => per_tree[tree.index()]
                    .get_or_insert_with(sled::Batch::default)
                    .remove(key.as_slice()),
            }
        }
        let involved: Vec<usize> = (0..per_tree.len())
            .filter(|i| per_tree[*i].is_some())
            .collect();
        if involved.is_empty() {
            return Ok(());
        }
        let trees: Vec<sled::Tree> = involved.iter().map(|i| self.trees[*i].clone()).collect();
        trees
            .as_slice()
            .transaction(|views| {
                for (view, i) in views.iter().zip(&involved) {
                    if let Some(b) = &per_tree[*i] {
                        view.apply_batch(b)?;
                    }
                }
                Ok::<(), sled::transaction::ConflictableTransactionError<()>>(())
            })
            .map_err(|e| match e {
                sled::transaction::TransactionError::Storage(e) => EngineError::Sled(e),
                sled::transaction::TransactionError::Abort(()) => {
                    EngineError::Io(std::io::Error::other("sled transaction aborted"))
                }
            })?;
        self.db.flush()?;
        self.sync_files()
    }
}
