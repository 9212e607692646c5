//! The spool's lock file: one process owns a spool directory at a time
//! (`flock(2)` on [`LOCK_FILE`], released by the kernel when the owner
//! dies). [`Spool::open`](super::Spool::open) takes it; the `imxp-spool`
//! tool probes it with [`is_locked`] to choose offline or online mode.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write as _};
use std::path::Path;

use crate::error::SpoolError;

pub(super) struct LockFile {
    _file: File,
}

impl LockFile {
    pub(super) fn acquire(dir: &Path) -> Result<Self, SpoolError> {
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| SpoolError::io(&path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(SpoolError::Locked {
                    path,
                    holder: (!holder.is_empty()).then(|| holder.to_owned()),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(SpoolError::io(&path, e)),
        }
        file.set_len(0).map_err(|e| SpoolError::io(&path, e))?;
        writeln!(file, "{}", std::process::id()).map_err(|e| SpoolError::io(&path, e))?;
        Ok(Self { _file: file })
    }
}

/// The lock file's name in the spool directory. Whoever holds an exclusive
/// lock on it (`flock(2)`, released by the kernel when the process dies) owns
/// the spool; it contains the owner's pid.
pub const LOCK_FILE: &str = "lock";

/// Whether another process holds the lock of the spool in `dir` (a probe:
/// takes and releases the lock if free).
pub fn is_locked(dir: &Path) -> bool {
    let Ok(file) = OpenOptions::new().read(true).open(dir.join(LOCK_FILE)) else {
        return false;
    };
    matches!(file.try_lock(), Err(std::fs::TryLockError::WouldBlock))
}
