//! The spool's error type.

use std::path::PathBuf;

use crate::engine::{EngineError, EngineKind};
use crate::record::{DatagramId, RecordError};

/// An error of the spool.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpoolError {
    /// The storage engine failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// A record could not be encoded.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Another process holds the spool's lock file.
    #[error("spool {path} is locked by another process{}", holder.as_ref().map(|h| format!(" (pid {h})")).unwrap_or_default())]
    Locked {
        /// The lock file.
        path: PathBuf,
        /// The pid written in the lock file, if readable.
        holder: Option<String>,
    },
    /// No spool exists in the directory (and creating one was not asked).
    #[error("no spool in {0}")]
    NoSpool(PathBuf),
    /// The directory holds a spool of another engine.
    #[error(
        "spool holds a {found} database but {configured} was configured; migrate with `imxp-spool export` and `import`"
    )]
    EngineMismatch {
        /// The engine whose files are present.
        found: EngineKind,
        /// The configured engine.
        configured: EngineKind,
    },
    /// The spool's schema version is not one this build reads.
    #[error("unsupported spool schema version {0}")]
    UnsupportedSchema(u32),
    /// A record could not be decoded and was moved to quarantine.
    #[error("datagram {id} is unreadable ({reason}); moved to quarantine")]
    Corrupt {
        /// The datagram.
        id: DatagramId,
        /// Why.
        reason: String,
    },
    /// No datagram with this id.
    #[error("no datagram {0}")]
    NotFound(DatagramId),
    /// The request is invalid (e.g. no recipients, an endpoint with NUL).
    #[error("invalid: {0}")]
    Invalid(String),
    /// A commit failed; this spool accepts no more writes (reopen it).
    #[error("spool commit failed: {0}")]
    CommitFailed(String),
    /// An earlier commit failed, so the spool refuses writes until reopened.
    #[error("spool is poisoned by an earlier commit failure; reopen it")]
    Poisoned,
    /// The spool was closed.
    #[error("spool closed")]
    Closed,
}

impl SpoolError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}
